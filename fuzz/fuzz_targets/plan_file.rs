//! Fuzz target: `data/upgrade-info.json` bytes → `plan::parse`. Never panics; a plan that parses
//! round-trips through the record we write next to an applied upgrade.
#![no_main]

use cosmovisor::home::plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for recase in [true, false] {
        let Ok(parsed) = plan::parse(data, recase) else {
            continue;
        };
        let again = plan::parse(&parsed.to_record_json(), recase)
            .expect("the record of a valid plan parses");
        assert_eq!(again.name, parsed.name);
        assert_eq!(again.height, parsed.height);
        assert_eq!(again.info, parsed.info);
        let applied = plan::applied_from_record(Some(&parsed.to_record_json()));
        assert!(
            !applied.is_superseded_by(&parsed),
            "a plan never supersedes itself"
        );
    }
});
