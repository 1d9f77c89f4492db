//! Fuzz target: the configuration reader. The input is `KEY=VALUE` environment lines, a NUL,
//! then a `config.toml` text; both `Config::from_vars` and `Config::from_file_and_vars` must
//! return a config or errors (never panic), and a config renders (`to_toml`, `detail_string`).
#![no_main]

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use cosmovisor::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (env_part, toml_part) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let env: HashMap<String, OsString> = env_part
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let at = line.iter().position(|&b| b == b'=')?;
            let key = String::from_utf8_lossy(&line[..at]).into_owned();
            Some((key, OsString::from_vec(line[at + 1..].to_vec())))
        })
        .collect();
    let vars = |name: &str| env.get(name).cloned();
    if let Ok(config) = Config::from_vars(vars) {
        let _ = config.to_toml();
        let _ = config.detail_string();
    }
    let text = String::from_utf8_lossy(toml_part);
    if let Ok(config) =
        Config::from_file_and_vars(Path::new("/h/cosmovisor/config.toml"), &text, vars)
    {
        let _ = config.to_toml();
        let _ = config.detail_string();
    }
});
