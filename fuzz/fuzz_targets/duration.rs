//! Fuzz target: Go durations (`DAEMON_POLL_INTERVAL`, …) → `parse_go_duration`. Never panics,
//! and what parses prints (`format_go_duration`) to a text that parses back to the same value.
#![no_main]

use cosmovisor::config::{format_go_duration, parse_go_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = parse_go_duration(text) {
        let printed = format_go_duration(parsed);
        assert_eq!(
            parse_go_duration(&printed),
            Ok(parsed),
            "{text:?} printed as {printed:?}"
        );
    }
});
