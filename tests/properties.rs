//! Property tests (proptest, stable toolchain, part of the normal `cargo test`) for the parsers
//! that read untrusted input: the daemon's output scanner, the plan file, Go durations and a
//! plan's info and download URLs. The cargo-fuzz targets in `fuzz/` search the same code much
//! longer; these keep the properties checked on every run. Case counts are modest on purpose.

use cosmovisor::acquire::plan_info;
use cosmovisor::config::{format_go_duration, parse_go_duration};
use cosmovisor::home::plan::{self, LinePlan, Notice, match_notice};
use cosmovisor::supervisor::output::LineScanner;
use proptest::prelude::*;
use std::time::Duration;

/// Feeds `stream` cut at `cuts` (positions, any order, out-of-range ones wrap) and returns the
/// notices found.
fn scan_in_chunks(stream: &[u8], cuts: &[usize]) -> Vec<Notice> {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut found = Vec::new();
    let mut scanner = LineScanner::default();
    let mut from = 0;
    for cut in cuts.into_iter().chain([stream.len()]) {
        scanner.feed(&stream[from..cut], &mut |notice| found.push(notice));
        from = cut;
    }
    scanner.finish(&mut |notice| found.push(notice));
    found
}

fn notices_by_line(stream: &[u8]) -> Vec<Notice> {
    stream
        .split_inclusive(|&b| b == b'\n')
        .filter_map(match_notice)
        .collect()
}

/// One line of daemon output: noise, an upgrade request, a halt line, or arbitrary bytes.
fn output_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,60}".prop_map(String::into_bytes),
        ("[a-zA-Z0-9._-]{0,12}", any::<u32>(), "[!-~]{0,16}").prop_map(|(name, height, info)| {
            format!("ERR UPGRADE \"{name}\" NEEDED at height: {height}: {info} module=x")
                .into_bytes()
        }),
        any::<u32>().prop_map(|h| format!("INF halt per configuration height {h}").into_bytes()),
        any::<u32>().prop_map(|h| {
            format!("ERR halting node per configuration module=server height={h}").into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However the same bytes arrive, the scanner finds the same notices as matching each line.
    #[test]
    fn scanner_chunking_never_changes_the_notices(
        lines in proptest::collection::vec(output_line(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
        final_newline in any::<bool>(),
    ) {
        let mut stream = lines.join(&b'\n');
        if final_newline {
            stream.push(b'\n');
        }
        let expected = notices_by_line(&stream);
        prop_assert_eq!(&scan_in_chunks(&stream, &cuts), &expected);
        prop_assert_eq!(&scan_in_chunks(&stream, &[]), &expected);
    }

    /// An upgrade line between other output is found, with its name and height (its `info` is
    /// never kept: the plan applied is always the file's), wherever it is split.
    #[test]
    fn an_upgrade_line_is_found_wherever_it_is_split(
        before in "[a-z0-9 =:]{0,30}",
        name in "[a-zA-Z0-9._-]{1,20}",
        height in 1..i64::MAX,
        info in "[!-~]{1,30}",
        cut in any::<usize>(),
    ) {
        let stream = format!(
            "noise\n{before} UPGRADE \"{name}\" NEEDED at height: {height}: {info} module=x/upgrade\nmore noise\n"
        );
        let notices = scan_in_chunks(stream.as_bytes(), &[cut]);
        prop_assert_eq!(notices, vec![Notice::Upgrade(LinePlan { name, height })]);
    }

    /// A halt line is found wherever it is split.
    #[test]
    fn a_halt_line_is_found_wherever_it_is_split(height in 0..i64::MAX, cut in any::<usize>()) {
        let stream = format!("a\nINF halt per configuration height {height}\nb\n");
        prop_assert_eq!(scan_in_chunks(stream.as_bytes(), &[cut]), vec![Notice::Halted(height)]);
    }

    /// The plan parser returns a plan or an error for any bytes.
    #[test]
    fn plan_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = plan::parse(&bytes, true);
        let _ = plan::parse(&bytes, false);
    }

    /// The plan parser returns a plan or an error for JSON objects with the plan's keys.
    #[test]
    fn plan_parser_never_panics_on_plan_shaped_json(
        name in proptest::option::of(".{0,20}"),
        height in proptest::option::of(any::<i64>()),
        time in proptest::option::of("[0-9TZ:-]{0,24}"),
        info in proptest::option::of(".{0,40}"),
    ) {
        let mut object = serde_json::Map::new();
        if let Some(name) = name { object.insert("name".into(), name.into()); }
        if let Some(height) = height { object.insert("height".into(), height.into()); }
        if let Some(time) = time { object.insert("time".into(), time.into()); }
        if let Some(info) = info { object.insert("info".into(), info.into()); }
        let bytes = serde_json::to_vec(&object).expect("serialise");
        let _ = plan::parse(&bytes, true);
    }

    /// A valid plan parses to its fields, and the record we store of it parses back the same.
    #[test]
    fn a_valid_plan_round_trips(
        name in "[a-z0-9][a-z0-9._-]{0,30}",
        height in 1..i64::MAX,
        info in ".{0,60}",
    ) {
        let json = serde_json::json!({
            "name": name, "time": "0001-01-01T00:00:00Z", "height": height, "info": info,
        });
        let parsed = plan::parse(json.to_string().as_bytes(), true).expect("a valid plan");
        prop_assert_eq!(parsed.name.as_str(), name.as_str());
        prop_assert_eq!(&parsed.raw_name, &name);
        prop_assert_eq!(parsed.height, height);
        prop_assert_eq!(&parsed.info, &info);
        let again = plan::parse(&parsed.to_record_json(), true).expect("the record parses");
        prop_assert_eq!(again, parsed);
    }

    /// Every duration Go can hold prints to a text that parses back to it.
    #[test]
    fn go_duration_format_parse_round_trip(nanos in 0..=i64::MAX.unsigned_abs()) {
        let duration = Duration::from_nanos(nanos);
        let printed = format_go_duration(duration);
        prop_assert_eq!(parse_go_duration(&printed), Ok(duration), "printed as {}", printed);
    }

    /// The duration parser returns a value or an error for any text, duration-like or not.
    #[test]
    fn go_duration_parser_never_panics(
        any_text in ".{0,24}",
        like in "[-+]?([0-9]{0,22}(\\.[0-9]{0,12})?(ns|us|µs|μs|ms|s|m|h|x)?){0,4}",
    ) {
        let _ = parse_go_duration(&any_text);
        let _ = parse_go_duration(&like);
    }

    /// A plan's info and its URLs are classified and parsed, or refused, never a panic.
    #[test]
    fn plan_info_and_url_parsers_never_panic(
        any_text in ".{0,80}",
        url in "(https?|file|ftp|)(://|:/|/)?([a-z:@%.0-9]{0,20})(/[a-z%.0-9]{0,10}){0,3}(\\?([a-z]{0,8}=[a-z0-9:%]{0,70}&?){0,3})?",
        key in "[a-z/0-9]{0,12}",
    ) {
        for text in [&any_text, &url] {
            let _ = plan_info::classify(text);
            let _ = plan_info::parse_source(text, true);
            let _ = plan_info::parse_source(text, false);
            let _ = plan_info::parse_binaries(text.as_bytes());
        }
        let inline = serde_json::json!({"binaries": {key.clone(): url}}).to_string();
        if let Ok(plan_info::Info::Binaries(map)) = plan_info::classify(&inline) {
            if let Ok(found) = map.url_for(&key) {
                let _ = plan_info::parse_source(found, false);
            }
        }
    }
}
