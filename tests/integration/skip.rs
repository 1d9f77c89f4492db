//! `skip_or_fail_in_ci`: the one way a test that cannot run here (it needs root or a tool) says
//! so. The integration tests get it through `support.rs`; the library's unit tests include this
//! file from `src/test_support.rs`.

use std::io::Write;

/// What a test that cannot run here does before it returns: with `CI` set (not empty) it fails
/// with `reason`, because `.ci/run` installs everything the tests need and runs them as root;
/// elsewhere it prints `skipped: <test>: <reason>` on the terminal.
pub fn skip_or_fail_in_ci(reason: &str) {
    let in_ci = std::env::var_os("CI").is_some_and(|value| !value.is_empty());
    assert!(
        !in_ci,
        "{reason}: in CI every test must run (.ci/run installs what they need)"
    );
    // The harness runs each test on a thread named after it.
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    // Straight to stderr: the harness captures (and hides) `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr().lock(), "skipped: {test}: {reason}");
}
