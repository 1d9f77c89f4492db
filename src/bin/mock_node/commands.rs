//! The simple commands: `version`, `pre-upgrade`, `echo-args` and `cat-stdin`.

use std::fs::{self};
use std::io::{self, Write};

use crate::Config;
use crate::common::{OrDie, die, exe_path, flag_value, home_dir, parse_height, record_event};

pub(crate) fn cmd_version(cfg: &Config, args: &[String]) -> i32 {
    let long = args.iter().any(|a| a == "--long");
    let json = flag_value(args, "output").is_some_and(|o| o == "json");
    let exe = exe_path();
    let server_name = exe
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let text = if long && json {
        serde_json::json!({
            "name": "mock-node",
            "server_name": server_name,
            "version": cfg.version,
            "commit": "mock",
        })
        .to_string()
    } else if long {
        format!(
            "name: mock-node\nserver_name: {server_name}\nversion: {}\ncommit: mock",
            cfg.version
        )
    } else {
        cfg.version.clone()
    };
    println!("{text}");
    0
}

pub(crate) fn cmd_pre_upgrade(cfg: &Config, args: &[String]) -> i32 {
    let home = home_dir(args);
    let counter = home.join(format!("mock-pre-upgrade-calls-{}", cfg.version));
    let calls = match fs::read_to_string(&counter) {
        Ok(text) => parse_height(&text, "pre-upgrade call count"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => die(format_args!("reading {}: {e}", counter.display())),
    };
    fs::write(&counter, format!("{}\n", calls + 1)).or_die_at("writing", &counter);
    let last = cfg.pre_upgrade_exit.len().saturating_sub(1);
    let index = usize::try_from(calls).map_or(last, |n| n.min(last));
    let code = cfg.pre_upgrade_exit.get(index).copied().unwrap_or(0);
    event!(&home, "pre-upgrade {} {code}", cfg.version);
    println!("pre-upgrade {} call={} exit={code}", cfg.version, calls + 1);
    code
}

pub(crate) fn cmd_echo_args(args: &[String]) -> i32 {
    let mut out = io::stdout().lock();
    for arg in args {
        let _ = writeln!(out, "{arg}");
    }
    0
}

pub(crate) fn cmd_cat_stdin() -> i32 {
    let mut out = io::stdout().lock();
    io::copy(&mut io::stdin().lock(), &mut out).or_die("copying stdin to stdout");
    out.flush().or_die("flushing stdout");
    0
}
