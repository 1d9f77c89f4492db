//! A throw-away node home in the cosmovisor layout: its folders, the genesis and upgrade
//! binaries a test stages, its environment, and a listing of its tree for failure messages.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

/// A node home in a temporary folder (or one the test made): `cosmovisor/`, `data/`, and
/// whatever the test adds.
pub struct Home {
    dir: HomeDir,
    pub name: String,
}

enum HomeDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl Home {
    pub fn new(name: &str) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("cv-home-")
            .tempdir()
            .expect("temp dir");
        fs::create_dir_all(dir.path().join("cosmovisor")).expect("mkdir cosmovisor");
        fs::create_dir_all(dir.path().join("data")).expect("mkdir data");
        Home {
            dir: HomeDir::Temp(dir),
            name: name.to_owned(),
        }
    }

    /// A home with nothing in it at all.
    pub fn blank(name: &str) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("cv-home-")
            .tempdir()
            .expect("temp dir");
        Home {
            dir: HomeDir::Temp(dir),
            name: name.to_owned(),
        }
    }

    /// A home in a folder the test made (and removes), e.g. on a special file system.
    pub fn at(path: &Path, name: &str) -> Home {
        Home {
            dir: HomeDir::Given(path.to_path_buf()),
            name: name.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        match &self.dir {
            HomeDir::Temp(dir) => dir.path(),
            HomeDir::Given(path) => path,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.path().join("cosmovisor")
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn upgrade_dir(&self, name: &str) -> PathBuf {
        self.root().join("upgrades").join(name)
    }

    pub fn genesis_dir(&self) -> PathBuf {
        self.root().join("genesis")
    }

    /// Installs a fake daemon as the genesis binary.
    pub fn genesis(&self, daemon: &FakeDaemon) -> &Home {
        self.install(&self.genesis_dir(), daemon);
        self
    }

    /// Installs a fake daemon as `upgrades/<name>/bin/<daemon>`.
    pub fn upgrade(&self, name: &str, daemon: &FakeDaemon) -> &Home {
        self.install(&self.upgrade_dir(name), daemon);
        self
    }

    fn install(&self, version_dir: &Path, daemon: &FakeDaemon) {
        let bin = version_dir.join("bin").join(&self.name);
        fs::create_dir_all(bin.parent().expect("bin dir")).expect("mkdir bin");
        fs::write(&bin, daemon.script()).expect("write fake daemon");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Installs the real mock chain node in `version_dir` with its `mock-node.json`.
    pub fn mock(&self, version_dir: &Path, config: &serde_json::Value) -> &Home {
        let bin = version_dir.join("bin").join(&self.name);
        fs::create_dir_all(bin.parent().expect("bin dir")).expect("mkdir bin");
        fs::copy(MOCK_NODE, &bin).expect("copy mock-node");
        fs::write(version_dir.join("mock-node.json"), config.to_string()).expect("mock config");
        self
    }

    /// Points `current` at a version folder (relative, as we write it).
    pub fn set_current(&self, relative: &str) {
        let link = self.root().join("current");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(relative, link).expect("symlink current");
    }

    /// Where `current` points (as stored).
    pub fn current_target(&self) -> PathBuf {
        fs::read_link(self.root().join("current")).expect("current link")
    }

    pub fn write_plan(&self, name: &str, height: i64) {
        let plan = format!(
            r#"{{"name":"{name}","time":"0001-01-01T00:00:00Z","height":{height},"info":""}}"#
        );
        fs::write(self.data().join("upgrade-info.json"), plan).expect("write plan");
    }

    /// The lines fake daemons appended to `$DAEMON_HOME/events`.
    pub fn events(&self) -> Vec<String> {
        fs::read_to_string(self.path().join("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn wait_for_event(&self, event: &str) {
        self.wait_for_events(event, 1);
    }

    pub fn wait_for_events(&self, event: &str, count: usize) {
        wait_until(
            &format!("{count}× event {event:?} (have {:?})", self.events()),
            DEADLINE,
            || {
                self.events()
                    .iter()
                    .filter(|line| line.as_str() == event)
                    .count()
                    >= count
            },
        );
    }

    /// The backups (`data-backup-*` folders) in the home.
    pub fn backups(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path())
            .expect("read home")
            .filter_map(std::result::Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("data-backup-") || name.starts_with(".data-backup-"))
            .collect();
        names.sort();
        names
    }

    /// A listing of the whole home, for failure messages.
    pub fn tree(&self) -> String {
        let mut out = String::new();
        list(self.path(), self.path(), &mut out);
        out
    }

    /// The environment every test starts from.
    pub fn env(&self) -> Vec<(String, OsString)> {
        vec![
            ("DAEMON_HOME".into(), self.path().into()),
            ("DAEMON_NAME".into(), self.name.clone().into()),
            ("DAEMON_POLL_INTERVAL".into(), "50ms".into()),
            ("DAEMON_SHUTDOWN_GRACE".into(), "5s".into()),
            ("COSMOVISOR_COLOR_LOGS".into(), "false".into()),
            // Nothing answers there: tests that want a node RPC start the mock node's.
            ("COSMOVISOR_NODE_RPC".into(), "http://127.0.0.1:9".into()),
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ]
    }

    /// A `cosmovisor` invocation with this home's environment.
    pub fn cosmovisor<I, S>(&self, args: I) -> Cosmovisor
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = Cosmovisor::new(args);
        for (key, value) in self.env() {
            cmd = cmd.env(&key, value);
        }
        cmd.tree_of(self.path())
    }

    /// Like [`Home::cosmovisor`], run under `wrapper` (for example `strace -f -o <file>`): the
    /// wrapper's arguments must end with the program to run, [`COSMOVISOR`].
    pub fn cosmovisor_under<I, S>(&self, wrapper: &[OsString], args: I) -> Cosmovisor
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = Cosmovisor::wrapped(wrapper, args);
        for (key, value) in self.env() {
            cmd = cmd.env(&key, value);
        }
        cmd.tree_of(self.path())
    }
}

pub(super) fn list(root: &Path, dir: &Path, out: &mut String) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let meta = fs::symlink_metadata(&path);
        if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
            let target = fs::read_link(&path).unwrap_or_default();
            let _ = writeln!(out, "{} -> {}", rel.display(), target.display());
        } else if meta.as_ref().is_ok_and(fs::Metadata::is_dir) {
            let _ = writeln!(out, "{}/", rel.display());
            list(root, &path, out);
        } else {
            let _ = writeln!(
                out,
                "{} ({} bytes)",
                rel.display(),
                meta.map_or(0, |m| m.len())
            );
        }
    }
}
