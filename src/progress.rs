//! Progress of long operations (downloads, backups): bytes, rate and ETA, as a bar redrawn in
//! place when stderr is a terminal, or as a log line every few seconds otherwise (journald,
//! files). Callers report how far they got as often as they like; this module throttles. Sizes
//! in messages are written by [`human`].

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tracing::info;

use crate::config::format_go_duration;

/// How often the terminal bar is redrawn.
const BAR_EVERY: Duration = Duration::from_millis(200);
/// How often a log line is written when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);
const BAR_WIDTH: usize = 30;

pub struct Progress {
    what: &'static str,
    total: Option<u64>,
    started: Instant,
    last: Instant,
    bar: bool,
    drawn: bool,
}

impl Progress {
    /// `what` names the operation in the bar and in log lines ("download", "backup").
    #[must_use]
    pub fn new(what: &'static str, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            total,
            started: now,
            last: now,
            bar: std::io::stderr().is_terminal() && tracing::enabled!(tracing::Level::INFO),
            drawn: false,
        }
    }

    /// How often the caller should report, at the least.
    #[must_use]
    pub fn interval(&self) -> Duration {
        if self.bar { BAR_EVERY } else { LOG_EVERY }
    }

    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    /// Reports `done` bytes; draws or logs when it is time to.
    pub fn update(&mut self, done: u64) {
        if self.last.elapsed() < self.interval() {
            return;
        }
        self.last = Instant::now();
        if let Some(total) = self.total {
            crate::notify::progress(done, total);
        }
        let (rate, eta) = self.rate_and_eta(done);
        if self.bar {
            self.draw(done, rate, eta.as_deref());
        } else {
            info!(
                done = %human(done),
                total = %self.total.map_or_else(|| "unknown".to_owned(), human),
                rate = %format!("{}/s", human(rate)),
                eta = %eta.unwrap_or_else(|| "unknown".to_owned()),
                "{} in progress",
                self.what
            );
        }
    }

    /// Clears the bar (log lines need nothing).
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }

    fn rate_and_eta(&self, done: u64) -> (u64, Option<String>) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        #[expect(clippy::cast_precision_loss, reason = "a progress estimate")]
        let rate = done as f64 / secs;
        let eta = self.total.map(|total| {
            #[expect(clippy::cast_precision_loss, reason = "a progress estimate")]
            let left = total.saturating_sub(done) as f64;
            let secs = Duration::from_secs_f64((left / rate.max(1.0)).min(1e9));
            format_go_duration(Duration::from_secs(secs.as_secs()))
        });
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a rate"
        )]
        (rate as u64, eta)
    }

    fn draw(&mut self, done: u64, rate: u64, eta: Option<&str>) {
        use std::fmt::Write as _;
        let mut line = format!("{} ", self.what);
        if let Some(total) = self.total.filter(|t| *t > 0) {
            let filled = usize::try_from(done.min(total).saturating_mul(BAR_WIDTH as u64) / total)
                .unwrap_or(BAR_WIDTH);
            line.push('[');
            line.push_str(&"#".repeat(filled));
            line.push_str(&" ".repeat(BAR_WIDTH - filled));
            let _ = write!(line, "] {}/{}", human(done), human(total));
        } else {
            line.push_str(&human(done));
        }
        let _ = write!(line, " {}/s", human(rate));
        if let Some(eta) = eta {
            let _ = write!(line, " ETA {eta}");
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `1.5GiB`-style sizes for messages.
#[must_use]
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[expect(clippy::cast_precision_loss, reason = "a human-readable size")]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human(512), "512B");
        assert_eq!(human(1536), "1.5KiB");
        assert_eq!(human(5 << 30), "5.0GiB");
    }
}
