//! Helpers the unit tests of several modules share (compiled for tests only), including the
//! integration tests' one rule for a test that cannot run here (`skip`).

use std::ffi::OsString;

/// A command line as the process gets it.
pub fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// `skip_or_fail_in_ci`: the same file the integration tests use, so both follow one rule.
#[path = "../tests/integration/skip.rs"]
#[allow(
    dead_code,
    reason = "the integration tests use all of it, the unit tests a part"
)]
pub mod skip;
