//! `cosmovisor init <path>`: sets up a home (genesis binary, `current`, `config.toml`), keeps
//! what is already there, and refuses homes it cannot use: before writing anything, or, for the
//! genesis binary and `current`, at their steps as Go does.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::support::{Cosmovisor, FakeDaemon, Home, Output};

/// A daemon binary outside the home, to be passed to `init`.
struct Source {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
}

fn source(daemon: &FakeDaemon, mode: u32) -> Source {
    let dir = tempfile::Builder::new()
        .prefix("cv-src-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join("simd-build");
    let bytes = daemon.script().into_bytes();
    fs::write(&path, &bytes).expect("write source");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod source");
    Source {
        _dir: dir,
        path,
        bytes,
    }
}

fn simple_source() -> Source {
    source(&FakeDaemon::new().event("ran").exit(0), 0o755)
}

fn init(home: &Home, path: &Path) -> Cosmovisor {
    home.cosmovisor([OsString::from("init"), path.as_os_str().to_owned()])
}

fn genesis_bin(home: &Home) -> PathBuf {
    home.genesis_dir().join("bin").join(&home.name)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

/// `init` must succeed and leave a usable genesis binary behind.
fn assert_initialised(out: &Output, home: &Home) {
    out.assert_code(0);
    assert!(out.errors().is_empty(), "{out}");
    let bin = genesis_bin(home);
    assert!(
        fs::symlink_metadata(&bin).is_ok_and(|m| m.is_file()),
        "genesis binary is a regular file\n{out}"
    );
    assert_eq!(
        mode(&bin) & 0o111,
        0o111,
        "genesis binary executable\n{out}"
    );
}

/// `init` must fail with exactly `error`, write nothing and leave the home as it was.
fn assert_refused(home: &Home, path: &Path, code: i32, error: &str) -> Output {
    let before = home.tree();
    let out = init(home, path).run();
    out.assert_code(code);
    assert_eq!(out.errors(), [error], "{out}");
    assert_eq!(home.tree(), before, "the home changed\n{out}");
    out
}

#[test]
fn initialises_a_blank_home() {
    let home = Home::blank("simd");
    let src = simple_source();
    let out = init(&home, &src.path).run();
    assert_initialised(&out, &home);
    assert_eq!(fs::read(genesis_bin(&home)).unwrap(), src.bytes, "{out}");
    assert_eq!(mode(&genesis_bin(&home)), 0o755, "{out}");
    assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
    let text = fs::read_to_string(home.root().join("config.toml")).unwrap();
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("config.toml is not TOML: {e}\n{text}"));
    assert_eq!(table["daemon_name"].as_str(), Some("simd"), "{text}");
    assert_eq!(
        table["daemon_home"].as_str(),
        Some(show(home.path()).as_str()),
        "{text}"
    );
    assert!(text.contains("\ndaemon_name = 'simd'\n"), "{text}");
    // No terminal on stdin: no prompt, and nothing but the home is created.
    assert!(!out.stdout().contains("overwrite"), "{out}");
    assert_eq!(
        home.tree(),
        format!(
            "cosmovisor/\ncosmovisor/config.toml ({} bytes)\ncosmovisor/current -> genesis\n\
             cosmovisor/genesis/\ncosmovisor/genesis/bin/\ncosmovisor/genesis/bin/simd ({} bytes)\n",
            text.len(),
            src.bytes.len()
        )
    );
    // The source is left alone.
    assert_eq!(fs::read(&src.path).unwrap(), src.bytes);
}

#[test]
fn the_copy_is_executable_even_if_the_source_is_not() {
    let home = Home::blank("simd");
    let src = source(&FakeDaemon::new().exit(0), 0o644);
    let out = init(&home, &src.path).run();
    assert_initialised(&out, &home);
    assert_eq!(fs::read(genesis_bin(&home)).unwrap(), src.bytes, "{out}");
    assert_eq!(mode(&src.path), 0o644, "the source's mode was changed");
}

#[test]
fn an_existing_genesis_binary_is_kept() {
    let home = Home::blank("simd");
    let theirs = b"#!/bin/sh\nexit 5\n";
    fs::create_dir_all(genesis_bin(&home).parent().unwrap()).unwrap();
    fs::write(genesis_bin(&home), theirs).unwrap();
    fs::set_permissions(genesis_bin(&home), fs::Permissions::from_mode(0o755)).unwrap();
    let src = simple_source();
    let out = init(&home, &src.path).run();
    assert_initialised(&out, &home);
    assert_eq!(fs::read(genesis_bin(&home)).unwrap(), theirs, "{out}");
    assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
    assert!(home.root().join("config.toml").is_file(), "{out}");
}

#[test]
fn an_existing_current_link_is_kept() {
    let home = Home::blank("simd");
    fs::create_dir_all(home.genesis_dir()).unwrap();
    home.set_current("genesis");
    let link = home.root().join("current");
    let inode = fs::symlink_metadata(&link).unwrap().ino();
    let out = init(&home, &simple_source().path).run();
    assert_initialised(&out, &home);
    assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
    assert_eq!(
        fs::symlink_metadata(&link).unwrap().ino(),
        inode,
        "current was re-created\n{out}"
    );
}

#[test]
fn a_current_link_to_an_upgrade_is_kept() {
    let home = Home::blank("simd");
    home.upgrade("v2", &FakeDaemon::new().exit(0));
    home.set_current("upgrades/v2");
    let src = simple_source();
    let out = init(&home, &src.path).run();
    assert_initialised(&out, &home);
    assert_eq!(fs::read(genesis_bin(&home)).unwrap(), src.bytes, "{out}");
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"), "{out}");
}

#[test]
fn an_existing_config_file_is_not_overwritten() {
    let home = Home::blank("simd");
    fs::create_dir_all(home.root()).unwrap();
    let config = home.root().join("config.toml");
    let mine = "# mine\ndaemon_name = 'other'\n";
    fs::write(&config, mine).unwrap();
    let out = init(&home, &simple_source().path).run();
    assert_initialised(&out, &home);
    out.stderr_contains("file already exists, not overriding");
    assert!(!out.stdout().contains("overwrite"), "no prompt\n{out}");
    assert_eq!(fs::read_to_string(&config).unwrap(), mine, "{out}");
    assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
}

#[test]
fn a_second_init_changes_nothing() {
    let home = Home::blank("simd");
    let src = simple_source();
    init(&home, &src.path).run().assert_code(0);
    let before = home.tree();
    let config = fs::read(home.root().join("config.toml")).unwrap();
    let other = source(&FakeDaemon::new().exit(9), 0o755);
    let out = init(&home, &other.path).run();
    assert_initialised(&out, &home);
    assert_eq!(home.tree(), before, "{out}");
    assert_eq!(fs::read(genesis_bin(&home)).unwrap(), src.bytes, "{out}");
    assert_eq!(
        fs::read(home.root().join("config.toml")).unwrap(),
        config,
        "{out}"
    );
}

/// `init` must fail at the `current` step with exactly `error`, leaving `current` as it was.
fn assert_current_refused(home: &Home, error: &str) -> Output {
    let link = home.root().join("current");
    let before = fs::symlink_metadata(&link).unwrap();
    let out = init(home, &simple_source().path).run();
    out.assert_code(4);
    assert_eq!(out.errors(), [error], "{out}");
    let after = fs::symlink_metadata(&link).unwrap();
    assert_eq!(
        (before.ino(), before.file_type()),
        (after.ino(), after.file_type()),
        "current changed\n{out}"
    );
    assert!(!home.root().join("config.toml").exists(), "{out}");
    out
}

#[test]
fn current_as_a_plain_file_is_refused() {
    let home = Home::blank("simd");
    fs::create_dir_all(home.root()).unwrap();
    let link = home.root().join("current");
    fs::write(&link, "genesis").unwrap();
    assert_current_refused(
        &home,
        &format!(
            "symlink genesis current: file exists ({} is not a symbolic link: move it away and \
             run `cosmovisor init` again)",
            show(&link)
        ),
    );
}

#[test]
fn a_dangling_current_is_refused() {
    let home = Home::blank("simd");
    fs::create_dir_all(home.root()).unwrap();
    home.set_current("upgrades/gone");
    let link = show(&home.root().join("current"));
    assert_current_refused(
        &home,
        &format!(
            "{link} points to upgrades/gone, which does not exist: point it at a version folder \
             (`ln -sfn genesis {link}`)"
        ),
    );
}

#[test]
fn cosmovisor_as_a_plain_file_is_refused() {
    let home = Home::blank("simd");
    fs::write(home.root(), "").unwrap();
    assert_refused(
        &home,
        &simple_source().path,
        4,
        &format!(
            "{} is not a directory: move it away and run `cosmovisor init`",
            show(&home.root())
        ),
    );
}

/// The message when `genesis/bin` is a file.
fn genesis_bin_dir_error(home: &Home) -> String {
    format!(
        "the path \"{}\" already exists but is not a directory: move it away and run \
         `cosmovisor init` again",
        show(&home.genesis_dir().join("bin"))
    )
}

/// The message when `genesis/bin/<name>` is not a regular file.
fn genesis_bin_error(home: &Home) -> String {
    format!(
        "{} is not a regular file: move it away and run `cosmovisor init` again",
        show(&genesis_bin(home))
    )
}

#[test]
fn genesis_bin_as_a_plain_file_is_refused() {
    let home = Home::blank("simd");
    fs::create_dir_all(home.genesis_dir()).unwrap();
    fs::write(home.genesis_dir().join("bin"), "").unwrap();
    let before = home.tree();
    let out = init(&home, &simple_source().path).run();
    assert_ne!(out.code(), Some(0), "{out}");
    assert_eq!(out.errors(), [genesis_bin_dir_error(&home)], "{out}");
    assert_eq!(home.tree(), before, "the home changed\n{out}");
}

#[test]
fn genesis_binary_as_a_directory_is_refused() {
    let home = Home::blank("simd");
    fs::create_dir_all(genesis_bin(&home)).unwrap();
    let before = home.tree();
    let out = init(&home, &simple_source().path).run();
    assert_ne!(out.code(), Some(0), "{out}");
    assert_eq!(out.errors(), [genesis_bin_error(&home)], "{out}");
    assert_eq!(home.tree(), before, "the home changed\n{out}");
}

#[test]
fn genesis_refusals_are_layout_errors() {
    let home = Home::blank("simd");
    fs::create_dir_all(home.genesis_dir()).unwrap();
    fs::write(home.genesis_dir().join("bin"), "").unwrap();
    assert_refused(
        &home,
        &simple_source().path,
        4,
        &genesis_bin_dir_error(&home),
    );
    let home = Home::blank("simd");
    fs::create_dir_all(genesis_bin(&home)).unwrap();
    assert_refused(&home, &simple_source().path, 4, &genesis_bin_error(&home));
}

#[test]
fn a_nonexistent_executable_is_refused() {
    let home = Home::blank("simd");
    let missing = home.path().join("no-such-binary");
    assert_refused(
        &home,
        &missing,
        2,
        &format!("executable file not found: {}", show(&missing)),
    );
}

#[test]
fn a_directory_is_not_an_executable() {
    let home = Home::blank("simd");
    let src = simple_source();
    let dir = src.path.parent().unwrap();
    assert_refused(
        &home,
        dir,
        2,
        &format!(
            "invalid path to executable: must not be a directory ({} is a directory: give the \
             path of the daemon binary)",
            show(dir)
        ),
    );
}

#[test]
fn a_missing_daemon_name_is_a_config_error() {
    let home = Home::blank("simd");
    let src = simple_source();
    let before = home.tree();
    let out = init(&home, &src.path).env_remove("DAEMON_NAME").run();
    out.assert_code(3);
    assert_eq!(
        out.errors(),
        ["DAEMON_NAME is not set (set it to the daemon binary's file name, e.g. panacead)"],
        "{out}"
    );
    assert_eq!(home.tree(), before, "the home changed\n{out}");
}

#[test]
fn a_missing_argument_is_a_usage_error() {
    let home = Home::blank("simd");
    let out = home.cosmovisor(["init"]).run();
    out.assert_code(2)
        .stderr_contains("the following required arguments were not provided")
        .stderr_contains("Usage: cosmovisor init <PATH_TO_EXECUTABLE>");
    assert_eq!(home.tree(), "", "{out}");
}

#[test]
fn run_works_after_init() {
    // As after `simd init`: the node's data/ exists, cosmovisor/ is still empty.
    let home = Home::new("simd");
    let src = source(
        &FakeDaemon::new()
            .event("ran")
            .raw(r#"printf '%s\n' "$*""#)
            .exit(7),
        0o755,
    );
    init(&home, &src.path).run().assert_code(0);
    let out = home
        .cosmovisor(["run", "start", "--home", home.path().to_str().unwrap()])
        .run();
    out.assert_code(7);
    assert_eq!(home.events(), ["ran"], "{out}");
    assert_eq!(
        out.stdout(),
        format!("start --home {}\n", show(home.path())),
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}

#[test]
fn the_written_config_file_reads_back() {
    let home = Home::new("simd");
    let src = simple_source();
    init(&home, &src.path).run().assert_code(0);
    let from_env = home.cosmovisor(["config"]).run();
    from_env.assert_code(0);
    let config = home.root().join("config.toml");
    let from_file = Cosmovisor::new([
        OsString::from("config"),
        "--cosmovisor-config".into(),
        config.into_os_string(),
    ])
    .run();
    from_file.assert_code(0);
    assert_eq!(from_file.stdout(), from_env.stdout(), "{from_file}");
}
