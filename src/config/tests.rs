//! The configuration's table tests: good and bad values from the environment and from
//! `config.toml`, error order, defaults, and the entry points' I/O. The Go duration tables live
//! in `duration.rs` and the `config.toml` round trip in `render.rs`.

use super::*;
use std::collections::HashMap;

const FILE: &str = "/h/cosmovisor/config.toml";
const DETAIL: &str = "Configurable Values:
  DAEMON_HOME: /h
  DAEMON_NAME: simd
  DAEMON_ALLOW_DOWNLOAD_BINARIES: false
  DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: false
  DAEMON_RESTART_AFTER_UPGRADE: true
  DAEMON_RESTART_DELAY: 0s
  DAEMON_SHUTDOWN_GRACE: 30s
  DAEMON_POLL_INTERVAL: 300ms
  UNSAFE_SKIP_BACKUP: false
  DAEMON_DATA_BACKUP_DIR: /h
  DAEMON_PREUPGRADE_MAX_RETRIES: 0
  COSMOVISOR_DISABLE_LOGS: false
  COSMOVISOR_COLOR_LOGS: true
  COSMOVISOR_TIMEFORMAT_LOGS: 3:04PM
  COSMOVISOR_CUSTOM_PREUPGRADE: \n  COSMOVISOR_DISABLE_RECASE: false
  DAEMON_GRPC_ADDRESS: localhost:9090
  COSMOVISOR_BACKUP_KEEP: \n  COSMOVISOR_LOG_FORMAT: console\n  COSMOVISOR_BACKUP_MODE: auto
  COSMOVISOR_METRICS_ADDR: \n  COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT: 1m0s
  COSMOVISOR_NODE_RPC: \n  COSMOVISOR_PLAN_CHECK_INTERVAL: 1m0s
  COSMOVISOR_WEBHOOK_URL: \nDerived Values:
         Root Dir: /h/cosmovisor
      Upgrade Dir: /h/cosmovisor/upgrades
      Genesis Bin: /h/cosmovisor/genesis/bin/simd
   Monitored File: /h/data/upgrade-info.json
  Data Backup Dir: /h
";

/// `VAR=value => line expected in detail_string()` (only that one set besides home and name).
const GOOD_ENV: &str = r"
DAEMON_HOME=/root/.panacea => DAEMON_DATA_BACKUP_DIR: /root/.panacea
DAEMON_NAME=panacead => Genesis Bin: /h/cosmovisor/genesis/bin/panacead
DAEMON_ALLOW_DOWNLOAD_BINARIES=TRUE => DAEMON_ALLOW_DOWNLOAD_BINARIES: true
DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM=true => DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: true
DAEMON_RESTART_AFTER_UPGRADE=False => DAEMON_RESTART_AFTER_UPGRADE: false
DAEMON_RESTART_DELAY=1m30s => DAEMON_RESTART_DELAY: 1m30s
DAEMON_SHUTDOWN_GRACE=90m => DAEMON_SHUTDOWN_GRACE: 1h30m0s
DAEMON_POLL_INTERVAL=1500ms => DAEMON_POLL_INTERVAL: 1.5s
DAEMON_DATA_BACKUP_DIR=/backup => Data Backup Dir: /backup
UNSAFE_SKIP_BACKUP=true => UNSAFE_SKIP_BACKUP: true
DAEMON_PREUPGRADE_MAX_RETRIES=3 => DAEMON_PREUPGRADE_MAX_RETRIES: 3
DAEMON_GRPC_ADDRESS=https://g:1 => DAEMON_GRPC_ADDRESS: https://g:1
COSMOVISOR_DISABLE_LOGS=TrUe => COSMOVISOR_DISABLE_LOGS: true
COSMOVISOR_COLOR_LOGS=false => COSMOVISOR_COLOR_LOGS: false
COSMOVISOR_TIMEFORMAT_LOGS=rfc3339 => COSMOVISOR_TIMEFORMAT_LOGS: 2006-01-02T15:04:05Z07:00
COSMOVISOR_TIMEFORMAT_LOGS= => COSMOVISOR_TIMEFORMAT_LOGS: \n
COSMOVISOR_CUSTOM_PREUPGRADE=pre.sh => COSMOVISOR_CUSTOM_PREUPGRADE: pre.sh
COSMOVISOR_DISABLE_RECASE=true => COSMOVISOR_DISABLE_RECASE: true
COSMOVISOR_BACKUP_KEEP=2 => COSMOVISOR_BACKUP_KEEP: 2
COSMOVISOR_LOG_FORMAT=JSON => COSMOVISOR_LOG_FORMAT: json
COSMOVISOR_METRICS_ADDR=127.0.0.1:9102 => COSMOVISOR_METRICS_ADDR: 127.0.0.1:9102
COSMOVISOR_METRICS_ADDR=[::1]:9102 => COSMOVISOR_METRICS_ADDR: [::1]:9102
COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT=250ms => COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT: 250ms
COSMOVISOR_NODE_RPC=http://10.0.0.5:26657/ => COSMOVISOR_NODE_RPC: http://10.0.0.5:26657
COSMOVISOR_NODE_RPC=https://rpc.example.org => COSMOVISOR_NODE_RPC: https://rpc.example.org
COSMOVISOR_NODE_RPC=https://user:pass@rpc.example.org/n/?token=t => COSMOVISOR_NODE_RPC: https://user:***@rpc.example.org/n/?token=***
COSMOVISOR_PLAN_CHECK_INTERVAL=5m => COSMOVISOR_PLAN_CHECK_INTERVAL: 5m0s
COSMOVISOR_PLAN_CHECK_INTERVAL=off => COSMOVISOR_PLAN_CHECK_INTERVAL: off
COSMOVISOR_PLAN_CHECK_INTERVAL=0 => COSMOVISOR_PLAN_CHECK_INTERVAL: off
COSMOVISOR_WEBHOOK_URL=https://hooks.example/services/T1?token=abc => COSMOVISOR_WEBHOOK_URL: https://hooks.example/services/T1?token=***
";

/// `VAR=value => the one exact error` (only that variable set besides home and name).
const BAD_ENV: &str = r#"
DAEMON_HOME=rel/home => DAEMON_HOME must be an absolute path, got "rel/home"
DAEMON_NAME=a/b => DAEMON_NAME must be a plain file name (no '/' or NUL, not . or ..), got "a/b"
DAEMON_NAME=.. => DAEMON_NAME must be a plain file name (no '/' or NUL, not . or ..), got ".."
DAEMON_ALLOW_DOWNLOAD_BINARIES=yes => DAEMON_ALLOW_DOWNLOAD_BINARIES: invalid boolean "yes" (expected true or false)
DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM=1 => DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: invalid boolean "1" (expected true or false)
DAEMON_RESTART_AFTER_UPGRADE=truee => DAEMON_RESTART_AFTER_UPGRADE: invalid boolean "truee" (expected true or false)
DAEMON_RESTART_DELAY=0s => DAEMON_RESTART_DELAY: must be greater than 0, got "0s" (unset it to disable the delay)
DAEMON_RESTART_DELAY=-1s => DAEMON_RESTART_DELAY: invalid duration "-1s": negative durations are not allowed (expected a Go duration such as 300ms or 1m30s)
DAEMON_SHUTDOWN_GRACE=0 => DAEMON_SHUTDOWN_GRACE: must be greater than 0, got "0" (unset it to use the default of 30s)
DAEMON_SHUTDOWN_GRACE=10 => DAEMON_SHUTDOWN_GRACE: invalid duration "10": missing unit (expected a Go duration such as 300ms or 1m30s)
DAEMON_POLL_INTERVAL=3x => DAEMON_POLL_INTERVAL: invalid duration "3x" (expected a Go duration such as 300ms or 1m30s)
DAEMON_POLL_INTERVAL=600 => DAEMON_POLL_INTERVAL: invalid duration "600": missing unit (expected a Go duration such as 300ms or 1m30s)
DAEMON_POLL_INTERVAL=0ms => DAEMON_POLL_INTERVAL: must be greater than 0, got "0ms" (unset it to use the default of 300ms)
DAEMON_POLL_INTERVAL=9999999h => DAEMON_POLL_INTERVAL: invalid duration "9999999h": out of range (expected a Go duration such as 300ms or 1m30s)
DAEMON_DATA_BACKUP_DIR=bak => DAEMON_DATA_BACKUP_DIR must be an absolute path, got "bak"
UNSAFE_SKIP_BACKUP=on => UNSAFE_SKIP_BACKUP: invalid boolean "on" (expected true or false)
DAEMON_PREUPGRADE_MAX_RETRIES=-1 => DAEMON_PREUPGRADE_MAX_RETRIES: invalid integer "-1" (expected a whole number 0 or greater)
DAEMON_PREUPGRADE_MAX_RETRIES=x => DAEMON_PREUPGRADE_MAX_RETRIES: invalid integer "x" (expected a whole number 0 or greater)
COSMOVISOR_DISABLE_LOGS=no => COSMOVISOR_DISABLE_LOGS: invalid boolean "no" (expected true or false)
COSMOVISOR_COLOR_LOGS=t => COSMOVISOR_COLOR_LOGS: invalid boolean "t" (expected true or false)
COSMOVISOR_TIMEFORMAT_LOGS=iso => COSMOVISOR_TIMEFORMAT_LOGS: invalid time format "iso" (expected one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none)
COSMOVISOR_TIMEFORMAT_LOGS=Kitchen => COSMOVISOR_TIMEFORMAT_LOGS: invalid time format "Kitchen" (expected one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none)
COSMOVISOR_DISABLE_RECASE=2 => COSMOVISOR_DISABLE_RECASE: invalid boolean "2" (expected true or false)
COSMOVISOR_BACKUP_KEEP=0 => COSMOVISOR_BACKUP_KEEP: must be greater than 0, got "0" (unset it to keep all backups)
COSMOVISOR_BACKUP_KEEP=all => COSMOVISOR_BACKUP_KEEP: invalid integer "all" (expected a whole number 1 or greater, or empty to keep all backups)
COSMOVISOR_LOG_FORMAT=xml => COSMOVISOR_LOG_FORMAT: invalid log format "xml" (expected console or json)
COSMOVISOR_METRICS_ADDR=localhost:9102 => COSMOVISOR_METRICS_ADDR: invalid address "localhost:9102" (expected an IP address and port such as 127.0.0.1:9102, or empty for no metrics)
COSMOVISOR_METRICS_ADDR=9102 => COSMOVISOR_METRICS_ADDR: invalid address "9102" (expected an IP address and port such as 127.0.0.1:9102, or empty for no metrics)
COSMOVISOR_PLAN_CHECK_INTERVAL=600 => COSMOVISOR_PLAN_CHECK_INTERVAL: invalid duration "600": missing unit (expected a Go duration such as 300ms or 1m30s)
COSMOVISOR_WEBHOOK_URL=hooks.example/x => COSMOVISOR_WEBHOOK_URL: invalid URL hooks.example/x (expected http:// or https:// with a host, such as https://hooks.slack.com/services/…, or empty for no webhook)
COSMOVISOR_NODE_RPC=127.0.0.1:26657 => COSMOVISOR_NODE_RPC: invalid URL "127.0.0.1:26657" (expected the node's CometBFT RPC such as http://127.0.0.1:26657, or empty for that default)
COSMOVISOR_NODE_RPC=tcp://127.0.0.1:26657 => COSMOVISOR_NODE_RPC: invalid URL "tcp://127.0.0.1:26657" (expected the node's CometBFT RPC such as http://127.0.0.1:26657, or empty for that default)
COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT=0s => COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT: must be greater than 0, got "0s" (unset it to use the default of 60s)
"#;

/// `one line added to a valid config.toml => the one exact error`.
const BAD_FILE: &str = r#"
daemon_poll_interval = true => config file /h/cosmovisor/config.toml: key daemon_poll_interval must be a duration string like '300ms' or an integer of nanoseconds
daemon_shutdown_grace = '600' => config file /h/cosmovisor/config.toml: key daemon_shutdown_grace: invalid value "600" (expected a Go duration such as '300ms' or '1m30s', or an integer of nanoseconds)
unsafe_skip_backup = 'true' => config file /h/cosmovisor/config.toml: key unsafe_skip_backup must be a boolean (true or false)
daemon_grpc_address = 9090 => config file /h/cosmovisor/config.toml: key daemon_grpc_address must be a string
daemon_preupgrade_max_retries = -1 => config file /h/cosmovisor/config.toml: key daemon_preupgrade_max_retries: invalid value "-1" (expected an integer 0 or greater)
daemon_preupgrade_max_retries = '3' => config file /h/cosmovisor/config.toml: key daemon_preupgrade_max_retries must be an integer 0 or greater
cosmovisor_backup_keep = 0 => config file /h/cosmovisor/config.toml: key cosmovisor_backup_keep: invalid value "0" (expected an integer 1 or greater, or no key to keep all backups)
cosmovisor_timeformat_logs = 'iso' => config file /h/cosmovisor/config.toml: key cosmovisor_timeformat_logs: invalid value "iso" (expected one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none)
cosmovisor_log_format = 'xml' => COSMOVISOR_LOG_FORMAT: invalid log format "xml" (expected console or json)
cosmovisor_metrics_addr = ':9102' => COSMOVISOR_METRICS_ADDR: invalid address ":9102" (expected an IP address and port such as 127.0.0.1:9102, or empty for no metrics)
cosmovisor_metrics_addr = 9102 => config file /h/cosmovisor/config.toml: key cosmovisor_metrics_addr must be a string
daemon_data_backup_dir = 'rel' => DAEMON_DATA_BACKUP_DIR must be an absolute path, got "rel"
daemon_poll_interval = [ => config file /h/cosmovisor/config.toml: invalid TOML: line 3, column 25: unclosed array, expected `]`
daemon_home = '/x' => config file /h/cosmovisor/config.toml: invalid TOML: line 3, column 1: duplicate key
"#;

fn table(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once(" => ").expect("every row has \" => \""))
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), OsString::from(v)))
        .collect();
    move |k| map.get(k).cloned()
}

/// Home and name plus one `VAR=value` (which may override them).
fn env_with(assignment: &str) -> Vec<(String, String)> {
    let (var, value) = assignment.split_once('=').unwrap_or((assignment, ""));
    let mut env = HashMap::from([(DAEMON_HOME, "/h"), (DAEMON_NAME, "simd")]);
    env.insert(var, value);
    env.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn from_env(env: &[(String, String)]) -> Result<Config, ConfigErrors> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Config::from_vars(vars(&env))
}

pub(super) fn from_file(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    Config::from_file_and_vars(Path::new(FILE), text, vars(env))
}

fn messages(r: Result<Config, ConfigErrors>) -> Vec<String> {
    match r {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

pub(super) fn defaults() -> Config {
    Config {
        home: "/h".into(),
        name: "simd".into(),
        allow_download_binaries: false,
        download_must_have_checksum: false,
        restart_after_upgrade: true,
        restart_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(30),
        poll_interval: Duration::from_millis(300),
        unsafe_skip_backup: false,
        data_backup_dir: "/h".into(),
        preupgrade_max_retries: 0,
        grpc_address: "localhost:9090".into(),
        disable_logs: false,
        color_logs: true,
        time_format: TimeFormat::Kitchen,
        custom_preupgrade: None,
        disable_recase: false,
        backup_keep: None,
        log_format: LogFormat::Console,
        backup_mode: BackupMode::Auto,
        metrics_addr: None,
        download_idle_timeout: Duration::from_secs(60),
        node_rpc: None,
        plan_check_interval: Some(Duration::from_secs(60)),
        webhook_url: None,
        warnings: Vec::new(),
    }
}

#[test]
fn defaults_and_empty_values() {
    assert_eq!(from_env(&env_with("")), Ok(defaults()));
    // Set-but-empty is the same as unset (the time format is the exception, see GOOD_ENV).
    for var in DETAIL
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|p| p.0)
    {
        if var.contains('_')
            && ![DAEMON_HOME, DAEMON_NAME, COSMOVISOR_TIMEFORMAT_LOGS].contains(&var)
        {
            assert_eq!(
                from_env(&env_with(&format!("{var}="))),
                Ok(defaults()),
                "{var}"
            );
        }
    }
    assert_eq!(defaults().detail_string(), DETAIL);
}

#[test]
fn good_env_values() {
    for (assignment, line) in table(GOOD_ENV) {
        let detail = from_env(&env_with(assignment)).map(|c| c.detail_string());
        let line = format!("  {}\n", line.replace("\\n", ""));
        assert!(
            detail.as_ref().is_ok_and(|d| d.contains(&line)),
            "{assignment}: {detail:?}"
        );
    }
}

#[test]
fn bad_env_values() {
    for (assignment, expected) in table(BAD_ENV) {
        assert_eq!(
            messages(from_env(&env_with(assignment))),
            [expected],
            "{assignment}"
        );
    }
}

#[test]
fn bad_file_values() {
    for (line, expected) in table(BAD_FILE) {
        let text = format!("daemon_home = '/h'\ndaemon_name = 'simd'\n{line}\n");
        assert_eq!(messages(from_file(&text, &[])), [expected], "{line}");
    }
}

#[test]
fn missing_required_and_skip_backup() {
    assert_eq!(
        messages(Config::from_vars(vars(&[(DAEMON_HOME, "")]))),
        [
            "DAEMON_NAME is not set (set it to the daemon binary's file name, e.g. panacead)",
            "DAEMON_HOME is not set (set it to the node's home directory, e.g. /root/.panacea)",
        ]
    );
    assert_eq!(messages(from_file("", &[])).len(), 2);
    // A relative home is reported once, not again for the backup dir that defaults to it.
    assert_eq!(messages(from_env(&env_with("DAEMON_HOME=h"))).len(), 1);
    // The backup dir is not checked when backups are skipped.
    let env = [
        (DAEMON_HOME, "/h"),
        (DAEMON_NAME, "n"),
        (UNSAFE_SKIP_BACKUP, "true"),
    ];
    let env = [&env[..], &[(DAEMON_DATA_BACKUP_DIR, "rel")]].concat();
    let c = Config::from_vars(vars(&env)).map(|c| c.data_backup_dir);
    assert_eq!(c, Ok(PathBuf::from("rel")));
}

#[test]
fn non_utf8_value_names_the_variable() {
    use std::os::unix::ffi::OsStringExt;
    let r = Config::from_vars(|k| match k {
        DAEMON_HOME => Some(OsString::from_vec(vec![b'/', b'h', 0xff])),
        DAEMON_NAME => Some("simd".into()),
        _ => None,
    });
    let want = "DAEMON_HOME: value \"/h\u{fffd}\" is not valid UTF-8 (use only UTF-8 characters)";
    assert_eq!(messages(r), [want]);
}

#[test]
fn all_bad_collects_every_error_in_order() {
    let order = [
        DAEMON_ALLOW_DOWNLOAD_BINARIES,
        DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM,
        DAEMON_RESTART_AFTER_UPGRADE,
        UNSAFE_SKIP_BACKUP,
        COSMOVISOR_DISABLE_LOGS,
        COSMOVISOR_COLOR_LOGS,
        COSMOVISOR_TIMEFORMAT_LOGS,
        COSMOVISOR_DISABLE_RECASE,
        DAEMON_POLL_INTERVAL,
        DAEMON_RESTART_DELAY,
        DAEMON_SHUTDOWN_GRACE,
        DAEMON_PREUPGRADE_MAX_RETRIES,
        COSMOVISOR_BACKUP_KEEP,
        COSMOVISOR_LOG_FORMAT,
        COSMOVISOR_BACKUP_MODE,
        COSMOVISOR_METRICS_ADDR,
        COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT,
        DAEMON_NAME,
        DAEMON_HOME,
        DAEMON_DATA_BACKUP_DIR,
    ];
    // Listed in reverse so the order of the errors cannot come from the order of the variables.
    let env: Vec<(&str, &str)> = order.iter().rev().map(|v| (*v, "x/y")).collect();
    let err = Config::from_vars(vars(&env)).expect_err("all bad");
    let got: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    let vars: Vec<&str> = got
        .iter()
        .filter_map(|m| m.split([':', ' ']).next())
        .collect();
    assert_eq!(vars, order);
    assert_eq!(got.len(), 20);
    assert_eq!(err.to_string(), got.join("\n"));
}

#[test]
fn time_and_log_formats() {
    let names = "layout ansic unixdate rubydate rfc822 rfc822z rfc850 rfc1123 rfc1123z rfc3339 \
                 rfc3339nano kitchen";
    for name in names.split(' ') {
        let tf = TimeFormat::parse(name).expect("known name");
        assert_eq!(tf.name(), name);
        assert!(!tf.go_layout().is_empty() && tf.strftime().is_some());
    }
    let k = TimeFormat::Kitchen;
    assert_eq!((k.go_layout(), k.strftime()), ("3:04PM", Some("%-I:%M%p")));
    let r = TimeFormat::Rfc3339;
    assert_eq!(
        (r.go_layout(), r.strftime()),
        ("2006-01-02T15:04:05Z07:00", Some("%Y-%m-%dT%H:%M:%S%:z"))
    );
    assert_eq!(TimeFormat::Ansic.strftime(), Some("%a %b %e %H:%M:%S %Y"));
    assert_eq!(TimeFormat::parse(""), Some(TimeFormat::None));
    assert_eq!(TimeFormat::parse("RFC3339"), None);
    let none = TimeFormat::None;
    assert_eq!(
        (none.name(), none.go_layout(), none.strftime()),
        ("", "", None)
    );
    assert_eq!(LogFormat::parse("Json"), Some(LogFormat::Json));
    assert_eq!(LogFormat::parse("text"), None);
}

#[test]
fn file_with_env_override() {
    let text = "daemon_home = '/h'\ndaemon_name = 'simd'\ndaemon_poll_interval = 1000000000\n\
                daemon_restart_delay = '2s'\ncosmovisor_color_logs = false\nunknown_key = 1\n\
                daemon_grpc_address = 'g:1'\ncosmovisor_backup_keep = 4\n\
                daemon_preupgrade_max_retries = 7\ncosmovisor_timeformat_logs = 'rfc3339'\n";
    let mut want = Config {
        poll_interval: Duration::from_secs(1),
        restart_delay: Duration::from_secs(2),
        color_logs: false,
        grpc_address: "g:1".into(),
        backup_keep: Some(4),
        preupgrade_max_retries: 7,
        time_format: TimeFormat::Rfc3339,
        ..defaults()
    };
    assert_eq!(from_file(text, &[]), Ok(want.clone()));
    // The environment wins over the file; an empty variable does not (viper's rule).
    let env = [
        (DAEMON_NAME, "panacead"),
        (DAEMON_POLL_INTERVAL, "5s"),
        (COSMOVISOR_COLOR_LOGS, ""),
        (COSMOVISOR_TIMEFORMAT_LOGS, ""),
    ];
    want.name = "panacead".into();
    want.poll_interval = Duration::from_secs(5);
    assert_eq!(from_file(text, &env), Ok(want));
    // In file mode an overriding variable is a Go ParseBool boolean (viper's weak decoding).
    for (value, want) in [
        ("1", true),
        ("t", true),
        ("T", true),
        ("0", false),
        ("F", false),
    ] {
        let cfg = from_file(text, &[(UNSAFE_SKIP_BACKUP, value)]).unwrap();
        assert_eq!(cfg.unsafe_skip_backup, want, "{value}");
    }
    assert_eq!(
        messages(from_file(text, &[(DAEMON_RESTART_AFTER_UPGRADE, "yes")])),
        [r#"DAEMON_RESTART_AFTER_UPGRADE: invalid boolean "yes" (expected true or false)"#]
    );
}

#[test]
fn file_zero_durations_and_missing_keys_give_defaults() {
    let text = "daemon_home = '/h'\ndaemon_name = 'simd'\ndaemon_restart_delay = 0\n\
                daemon_shutdown_grace = 0\ndaemon_poll_interval = '0s'\n\
                cosmovisor_custom_preupgrade = ''\n";
    assert_eq!(from_file(text, &[]), Ok(defaults()));
    // Parity: Go rejects an empty backup dir in the file, unless backups are off.
    let text = "daemon_home = '/h'\ndaemon_name = 'simd'\ndaemon_data_backup_dir = ''\n";
    assert_eq!(
        messages(from_file(text, &[])),
        [
            "DAEMON_DATA_BACKUP_DIR must not be empty (config file /h/cosmovisor/config.toml: set \
          daemon_data_backup_dir to an absolute folder, or remove the key to back up into \
          DAEMON_HOME)"
        ]
    );
    assert!(from_file(text, &[(UNSAFE_SKIP_BACKUP, "true")]).is_ok());
    let text = "daemon_home = '/h'\nDAEMON_NAME = 'simd'\ndaemon_shutdown_grace = 300000000\n\
                daemon_poll_interval = '1h2m'\ncosmovisor_timeformat_logs = ''\n";
    let want = Config {
        shutdown_grace: Duration::from_millis(300),
        poll_interval: Duration::from_secs(3720),
        time_format: TimeFormat::None,
        ..defaults()
    };
    assert_eq!(from_file(text, &[]), Ok(want));
}

#[test]
fn unreadable_file_names_the_path() {
    let r = Config::load(Some(Path::new("/nonexistent-dir/config.toml")));
    let want = "config file /nonexistent-dir/config.toml: cannot read it: \
                No such file or directory (check the --cosmovisor-config path)";
    assert_eq!(messages(r), [want]);
}

#[test]
fn check_filesystem_backup_dir() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = |d: PathBuf, skip: bool| {
        let c = Config {
            data_backup_dir: d,
            unsafe_skip_backup: skip,
            ..defaults()
        };
        c.check_filesystem()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert!(check(dir.to_path_buf(), false).is_empty());
    assert!(check("/nope".into(), true).is_empty());
    assert_eq!(
        check("/nope".into(), false),
        [
            "DAEMON_DATA_BACKUP_DIR must be an existing directory, got \"/nope\": \
             No such file or directory (create it or point it elsewhere)"
        ]
    );
    let file = dir.join("Cargo.toml");
    let want = format!(
        "DAEMON_DATA_BACKUP_DIR must be an existing directory, got {:?}: not a directory \
         (create it or point it elsewhere)",
        file.display().to_string()
    );
    assert_eq!(check(file, false), [want]);
}

/// Values upstream accepts that we use differently are warnings, never errors: a unit or
/// `config.toml` that works with Go keeps working (README, "Differences from Go cosmovisor").
#[test]
fn values_go_accepts_are_used_with_a_warning() {
    let raised = |value: &str| ConfigWarning::RaisedToMinimum {
        var: DAEMON_POLL_INTERVAL,
        value: value.to_owned(),
        min: Duration::from_millis(10),
    };
    for (value, warning) in [("8ms", "8ms"), ("15ns", "15ns"), ("9.999ms", "9.999ms")] {
        let cfg = from_env(&env_with(&format!("DAEMON_POLL_INTERVAL={value}"))).unwrap();
        assert_eq!(cfg.poll_interval, Duration::from_millis(10), "{value}");
        assert_eq!(cfg.warnings, vec![raised(warning)]);
    }
    assert_eq!(
        raised("8ms").to_string(),
        "DAEMON_POLL_INTERVAL: \"8ms\" is below the minimum of 10ms, polling every 10ms instead \
         (set it to 10ms or more to silence this warning)"
    );
    let base = "daemon_home = '/h'\ndaemon_name = 'simd'\n";
    let cfg = from_file(&format!("{base}daemon_poll_interval = 1\n"), &[]).unwrap();
    assert_eq!(cfg.poll_interval, Duration::from_millis(10));
    assert_eq!(cfg.warnings, vec![raised("1")]);
    let text = format!("{base}daemon_restart_delay = -5\ndaemon_shutdown_grace = '-1s'\n");
    let cfg = from_file(&text, &[]).unwrap();
    assert_eq!(cfg.restart_delay, Duration::ZERO);
    assert_eq!(cfg.shutdown_grace, Duration::from_secs(30));
    let lines: Vec<String> = cfg.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "config file /h/cosmovisor/config.toml: key daemon_restart_delay: negative duration \
             \"-5\", using 0s instead (remove the key or set a positive duration to silence this \
             warning)",
            "config file /h/cosmovisor/config.toml: key daemon_shutdown_grace: negative duration \
             \"-1s\", using 30s instead (remove the key or set a positive duration to silence this \
             warning)"
        ]
    );
    assert_eq!(
        from_env(&env_with("DAEMON_POLL_INTERVAL=300ms"))
            .unwrap()
            .warnings,
        []
    );
}
