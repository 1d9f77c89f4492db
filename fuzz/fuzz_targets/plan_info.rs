//! Fuzz target: a plan's `info` and its download URLs → `plan_info::classify`,
//! `parse_binaries`, `url_for` and `parse_source`. Never panics; every URL a parsed map holds
//! goes through `parse_source` too.
#![no_main]

use cosmovisor::acquire::plan_info::{self, Info};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = plan_info::parse_binaries(data);
    let text = String::from_utf8_lossy(data);
    for must_have_checksum in [true, false] {
        if let Ok(source) = plan_info::parse_source(&text, must_have_checksum) {
            assert_eq!(source.original, text.trim());
            if must_have_checksum {
                assert!(source.checksum.is_some());
            }
        }
    }
    match plan_info::classify(&text) {
        Ok(Info::Binaries(map)) => {
            for platform in ["any", "linux/amd64", "linux/arm64", &plan_info::platform()] {
                if let Ok(url) = map.url_for(platform) {
                    let _ = plan_info::parse_source(url, true);
                    let _ = plan_info::parse_source(url, false);
                }
            }
        }
        Ok(Info::Reference(url)) => {
            let _ = plan_info::parse_source(&url, false);
        }
        Err(_) => {}
    }
});
