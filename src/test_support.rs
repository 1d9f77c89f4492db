//! Helpers the unit tests of several modules share (compiled for tests only).

use std::ffi::OsString;

/// A command line as the process gets it.
pub fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}
