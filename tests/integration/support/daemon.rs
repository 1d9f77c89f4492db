//! Fake daemons: POSIX shell scripts built step by step, each step that matters reporting to
//! `$DAEMON_HOME/events` so tests can wait on it.

use std::fmt::Write as _;

/// A fake daemon: a POSIX shell script built step by step. Every step that matters reports to
/// `$DAEMON_HOME/events` so tests can wait on it.
#[derive(Clone, Default)]
pub struct FakeDaemon {
    lines: Vec<String>,
}

impl FakeDaemon {
    pub fn new() -> FakeDaemon {
        FakeDaemon::default()
    }

    fn line(mut self, line: impl Into<String>) -> FakeDaemon {
        self.lines.push(line.into());
        self
    }

    /// Traps the forwarded signals (recording each; TERM/INT exit 0 after recording), then
    /// writes `ready <tag>`.
    pub fn ready(self, tag: &str) -> FakeDaemon {
        self.line(r#"ev() { printf '%s\n' "$1" >> "$DAEMON_HOME/events"; }"#)
            .line(r"trap 'ev TERM; exit 0' TERM")
            .line(r"trap 'ev INT; exit 0' INT")
            .line(r"trap 'ev QUIT' QUIT")
            .line(r"trap 'ev HUP' HUP")
            .line(r"trap 'ev USR1' USR1")
            .line(r"trap 'ev USR2' USR2")
            .line(format!("ev 'ready {tag}'"))
    }

    /// Like `ready`, but SIGTERM and SIGINT are recorded and otherwise ignored.
    pub fn ready_ignoring_term(self, tag: &str) -> FakeDaemon {
        self.ready(tag)
            .line(r"trap 'ev TERM' TERM")
            .line(r"trap 'ev INT' INT")
    }

    pub fn event(self, event: &str) -> FakeDaemon {
        self.line(format!(
            "printf '%s\\n' '{event}' >> \"$DAEMON_HOME/events\""
        ))
    }

    pub fn say(self, text: &str) -> FakeDaemon {
        self.line(format!("printf '%s\\n' '{text}'"))
    }

    pub fn say_err(self, text: &str) -> FakeDaemon {
        self.line(format!("printf '%s\\n' '{text}' >&2"))
    }

    /// Writes `data/upgrade-info.json` atomically (temp + mv).
    pub fn request_upgrade(self, name: &str, height: i64) -> FakeDaemon {
        self.line(format!(
            r#"printf '{{"name":"{name}","time":"0001-01-01T00:00:00Z","height":{height}}}' > "$DAEMON_HOME/data/upgrade-info.json.tmp" && mv "$DAEMON_HOME/data/upgrade-info.json.tmp" "$DAEMON_HOME/data/upgrade-info.json""#
        ))
    }

    /// Prints x/upgrade's line on stderr, without writing the file.
    pub fn upgrade_line(self, name: &str, height: i64, info: &str) -> FakeDaemon {
        self.line(format!(
            "printf '%s\\n' 'ERR UPGRADE \"{name}\" NEEDED at height: {height}: {info} module=x/upgrade' >&2"
        ))
    }

    /// Answers `pre-upgrade`: records `pre-upgrade <tag>` and exits with the n-th code of
    /// `codes` on the n-th call (the last one repeats).
    pub fn pre_upgrade(self, tag: &str, codes: &[i32]) -> FakeDaemon {
        let mut cases = String::new();
        for (i, code) in codes.iter().enumerate() {
            if i + 1 == codes.len() {
                let _ = write!(cases, "*) exit {code};; ");
            } else {
                let _ = write!(cases, "{}) exit {code};; ", i + 1);
            }
        }
        self.line(format!(
            r#"if [ "${{1:-}}" = pre-upgrade ]; then printf 'pre-upgrade {tag}\n' >> "$DAEMON_HOME/events"; n=$(cat "$DAEMON_HOME/pre-upgrade-calls" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$DAEMON_HOME/pre-upgrade-calls"; case $n in {cases}esac; fi"#
        ))
    }

    /// Waits interruptibly for ever (traps run at once).
    pub fn block(self) -> FakeDaemon {
        self.line("while :; do sleep 30 >/dev/null 2>&1 & wait $!; done")
    }

    pub fn exit(self, code: i32) -> FakeDaemon {
        self.line(format!("exit {code}"))
    }

    pub fn raw(self, line: &str) -> FakeDaemon {
        self.line(line)
    }

    pub fn script(&self) -> String {
        format!("#!/bin/sh\nset -u\n{}\n", self.lines.join("\n"))
    }
}

/// The genesis daemon of most upgrade tests: ready, asks for `name` at `height`, keeps running.
pub fn v1_requesting(name: &str, height: i64) -> FakeDaemon {
    FakeDaemon::new()
        .ready("v1")
        .request_upgrade(name, height)
        .block()
}

/// An upgrade's daemon: answers pre-upgrade with `codes`, then runs until stopped.
pub fn upgraded_daemon(tag: &str, codes: &[i32]) -> FakeDaemon {
    FakeDaemon::new().pre_upgrade(tag, codes).ready(tag).block()
}
