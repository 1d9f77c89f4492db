//! Fuzz target: the daemon's output → `output::LineScanner` and `plan::match_notice`. Never
//! panics, and the notices found do not depend on how the stream is cut into chunks: feeding
//! the bytes in the chunks the first input byte chooses finds exactly what matching each line
//! on its own finds.
#![no_main]

use cosmovisor::supervisor::output::LineScanner;
use cosmovisor::home::plan::{Notice, match_notice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let expected: Vec<Notice> = stream
        .split_inclusive(|&b| b == b'\n')
        .filter_map(match_notice)
        .collect();

    let mut found = Vec::new();
    let mut scanner = LineScanner::default();
    let step = usize::from(seed % 17) + 1;
    for chunk in stream.chunks(step) {
        scanner.feed(chunk, &mut |notice| found.push(notice));
    }
    scanner.finish(&mut |notice| found.push(notice));
    assert_eq!(found, expected, "chunks of {step} bytes");

    let mut whole = Vec::new();
    let mut scanner = LineScanner::default();
    scanner.feed(stream, &mut |notice| whole.push(notice));
    scanner.finish(&mut |notice| whole.push(notice));
    assert_eq!(whole, expected, "one chunk");
});
