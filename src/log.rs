//! Cosmovisor's own log lines, and nothing else.
//!
//! This module owns the one `tracing` subscriber that `main` installs at start-up,
//! and the two shapes our lines can take:
//!
//! * [`Format::Console`]: lines that look like Go zerolog's `ConsoleWriter` output,
//!   which upstream cosmovisor prints and operators grep for:
//!   `3:04PM INF running app args=["start","--home","/h"] module=cosmovisor path=/h/bin`.
//! * [`Format::Json`]: one JSON object per line, for log shippers.
//!
//! It does **not** handle the daemon's stdout/stderr. That output passes through
//! untouched elsewhere and never goes through `tracing`. Each of our lines is
//! built in full and then handed to the writer in one `write` call, so it does not
//! get mixed into the middle of a daemon line written by another thread to the same
//! file descriptor. Write errors are ignored: logging must never bring the
//! supervisor down.
//!
//! Level filter: INFO and above. The internal knob `COSMOVISOR_LOG_LEVEL`
//! (`trace`, `debug`, `info`, `warn`, `error`; read once by [`init`]) changes that.
//! It is for debugging cosmovisor itself and is not an upstream setting.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, SecondsFormat};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The `module` value added to every line (upstream: `module=cosmovisor`).
const MODULE: &str = "cosmovisor";

/// Internal knob: lowest level that is logged (default `info`). Read once by [`init`].
pub const LEVEL_ENV: &str = crate::config::COSMOVISOR_LOG_LEVEL;

/// Shape of our log lines (`COSMOVISOR_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// zerolog `ConsoleWriter`-like `key=value` lines.
    Console,
    /// One JSON object per line.
    Json,
}

/// How our log lines are written.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `COSMOVISOR_DISABLE_LOGS`: nothing is written at all.
    pub disabled: bool,
    /// `COSMOVISOR_COLOR_LOGS`: ANSI colours in the console format (never in JSON).
    pub color: bool,
    /// chrono strftime pattern, in local time, for the console timestamp (for example
    /// `"%-I:%M%p"` for Go's `time.Kitchen` `3:04PM`). `None`: no timestamp at all.
    /// An invalid pattern falls back to RFC 3339. The JSON format ignores this and
    /// always writes `"time"` in RFC 3339 with milliseconds and the local offset.
    pub time_pattern: Option<&'static str>,
    /// `COSMOVISOR_LOG_FORMAT`.
    pub format: Format,
}

/// Whether our lines get colours: `COSMOVISOR_COLOR_LOGS=true` set in the environment forces
/// them; otherwise the configured value (default true, and what `init` writes to `config.toml`)
/// applies only when stderr is a terminal, so journald, pipes and files get no escape codes.
#[must_use]
pub fn use_color(configured: bool, env_value: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    let forced = env_value.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    forced || (configured && terminal)
}

/// Installs the global subscriber, writing to stderr.
///
/// Reads [`LEVEL_ENV`] once. If `settings.disabled` is set, the subscriber writes
/// nothing. Calling this again, or after some other global subscriber has been set,
/// returns an error; it never panics.
pub fn init(settings: Settings) -> Result<(), tracing::subscriber::SetGlobalDefaultError> {
    let level = level_from_env(std::env::var(LEVEL_ENV).ok().as_deref());
    tracing::subscriber::set_global_default(build(settings, level, std::io::stderr()))
}

/// The same formatting as [`init`], but written to `make_writer` instead of stderr.
/// Use it with `tracing::subscriber::with_default`, for tests or to capture output.
/// The level is always INFO here: [`LEVEL_ENV`] is read only by [`init`].
pub fn subscriber<W>(settings: Settings, make_writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: Write + Send + 'static,
{
    build(settings, LevelFilter::INFO, make_writer)
}

fn build<W>(
    settings: Settings,
    level: LevelFilter,
    writer: W,
) -> impl Subscriber + Send + Sync + 'static
where
    W: Write + Send + 'static,
{
    let level = if settings.disabled {
        LevelFilter::OFF
    } else {
        level
    };
    Registry::default()
        .with(level)
        .with(LineLayer::new(settings, writer))
}

/// Turns a [`LEVEL_ENV`] value into a filter. Unknown or missing values mean INFO.
fn level_from_env(value: Option<&str>) -> LevelFilter {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("trace") => LevelFilter::TRACE,
        Some("debug") => LevelFilter::DEBUG,
        Some("warn" | "warning") => LevelFilter::WARN,
        Some("error") => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

// ---------------------------------------------------------------------------
// Layer

/// How the console timestamp is rendered.
enum Timestamp {
    None,
    Pattern(Vec<Item<'static>>),
    Rfc3339,
}

struct LineLayer<W> {
    format: Format,
    color: bool,
    timestamp: Timestamp,
    writer: Mutex<W>,
}

impl<W: Write> LineLayer<W> {
    fn new(settings: Settings, writer: W) -> Self {
        let timestamp = match settings.time_pattern {
            None => Timestamp::None,
            Some(pattern) => match StrftimeItems::new(pattern).parse() {
                Ok(items) => Timestamp::Pattern(items),
                Err(_) => Timestamp::Rfc3339,
            },
        };
        Self {
            format: settings.format,
            color: settings.color,
            timestamp,
            writer: Mutex::new(writer),
        }
    }

    /// Hands one whole line to the writer. Errors are ignored.
    fn emit(&self, line: &[u8]) {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writer.write_all(line);
        let _ = writer.flush();
    }

    fn console_line(&self, now: &DateTime<Local>, level: Level, event: Collected) -> String {
        let mut line = String::with_capacity(160);
        if let Some(ts) = self.console_time(now) {
            self.paint(&mut line, &ts, DARK_GRAY);
            line.push(' ');
        }
        let (tag, colour) = level_tag(level);
        self.paint(&mut line, tag, colour);
        if !event.message.is_empty() {
            line.push(' ');
            line.push_str(&escape_controls(&event.message));
        }

        let mut fields = event.fields;
        if !fields.iter().any(|(key, _)| *key == "module") {
            fields.push(("module", Value::Str(MODULE.to_owned())));
        }
        // zerolog sorts by key, then moves an `error` field to the front.
        fields.sort_by(|a, b| a.0.cmp(b.0));
        if let Some(pos) = fields.iter().position(|(key, _)| *key == "error") {
            let error = fields.remove(pos);
            fields.insert(0, error);
        }
        for (key, value) in &fields {
            line.push(' ');
            if self.color {
                let _ = write!(line, "\x1b[{CYAN}m{key}=\x1b[0m");
            } else {
                line.push_str(key);
                line.push('=');
            }
            // The quoting above keeps a value on one line; a value that already looked quoted or
            // like JSON is passed as it is, so escape what a terminal would act on here, once.
            let console = value.console();
            let text = escape_controls(&console);
            if self.color && *key == "error" {
                let _ = write!(line, "\x1b[{RED}m\x1b[{BOLD}m{text}\x1b[0m\x1b[0m");
            } else {
                line.push_str(&text);
            }
        }
        line.push('\n');
        line
    }

    fn console_time(&self, now: &DateTime<Local>) -> Option<String> {
        match &self.timestamp {
            Timestamp::None => None,
            Timestamp::Pattern(items) => {
                let mut out = String::new();
                match write!(out, "{}", now.format_with_items(items.iter())) {
                    Ok(()) => Some(out),
                    Err(_) => Some(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
                }
            }
            Timestamp::Rfc3339 => Some(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
        }
    }

    fn paint(&self, out: &mut String, text: &str, colour: u8) {
        if self.color && colour != 0 {
            let _ = write!(out, "\x1b[{colour}m{text}\x1b[0m");
        } else {
            out.push_str(text);
        }
    }
}

impl<S: Subscriber, W: Write + Send + 'static> Layer<S> for LineLayer<W> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut collected = Collected::default();
        event.record(&mut collected);
        let now = Local::now();
        let level = *event.metadata().level();
        let line = match self.format {
            Format::Console => self.console_line(&now, level, collected),
            Format::Json => json_line(&now, level, collected),
        };
        self.emit(line.as_bytes());
    }
}

// ---------------------------------------------------------------------------
// Levels and colours (zerolog ConsoleWriter)

const BOLD: u8 = 1;
const RED: u8 = 31;
const GREEN: u8 = 32;
const YELLOW: u8 = 33;
const MAGENTA: u8 = 35;
const CYAN: u8 = 36;
const DARK_GRAY: u8 = 90;

fn level_tag(level: Level) -> (&'static str, u8) {
    match level {
        Level::TRACE => ("TRC", MAGENTA),
        Level::DEBUG => ("DBG", DARK_GRAY),
        Level::INFO => ("INF", GREEN),
        Level::WARN => ("WRN", YELLOW),
        Level::ERROR => ("ERR", RED),
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

// ---------------------------------------------------------------------------
// Field collection

/// One field value, as `tracing` handed it to us.
enum Value {
    /// `record_str` / `record_error`: text that is quoted when needed.
    Str(String),
    /// `record_debug` (`?x` and `%x`): the formatted text.
    Debug(String),
    /// Integers and finite floats, already formatted as a valid JSON number.
    Num(String),
    Bool(bool),
}

impl Value {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) | Value::Debug(s) | Value::Num(s) => Cow::Borrowed(s),
            Value::Bool(b) => Cow::Owned(b.to_string()),
        }
    }

    /// The value as printed after `key=` on a console line.
    fn console(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => {
                if needs_quote(s) {
                    Cow::Owned(go_quote(s))
                } else {
                    Cow::Borrowed(s)
                }
            }
            Value::Debug(s) => {
                if is_json_container(s) {
                    // `["start", "--home"]` → `["start","--home"]`, as Go's json.Marshal prints it.
                    Cow::Owned(compact_json(s))
                } else if is_quoted_literal(s) || !needs_quote(s) {
                    Cow::Borrowed(s)
                } else {
                    Cow::Owned(go_quote(s))
                }
            }
            Value::Num(s) => Cow::Borrowed(s),
            Value::Bool(b) => Cow::Owned(b.to_string()),
        }
    }

    /// Appends the value as a JSON value.
    fn push_json(&self, out: &mut String) {
        match self {
            Value::Str(s) => push_json_str(out, s),
            Value::Debug(s) => {
                if is_json_container(s) {
                    out.push_str(&compact_json(s));
                } else if let Ok(inner) = serde_json::from_str::<String>(s) {
                    // The Debug form of a string: store the string itself.
                    push_json_str(out, &inner);
                } else {
                    push_json_str(out, s);
                }
            }
            Value::Num(s) => out.push_str(s),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
}

#[derive(Default)]
struct Collected {
    message: String,
    fields: Vec<(&'static str, Value)>,
}

impl Collected {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = value.text().into_owned();
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

impl Visit for Collected {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = if value.is_finite() {
            Value::Num(value.to_string())
        } else {
            Value::Str(value.to_string())
        };
        self.push(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::Num(value.to_string()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::Num(value.to_string()));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, Value::Num(value.to_string()));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, Value::Num(value.to_string()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Str(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::Str(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, Value::Debug(format!("{value:?}")));
    }
}

// ---------------------------------------------------------------------------
// JSON

fn json_line(now: &DateTime<Local>, level: Level, event: Collected) -> String {
    let mut fields = event.fields;
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let module = fields
        .iter()
        .position(|(key, _)| *key == "module")
        .map(|pos| fields.remove(pos).1);

    let mut out = String::with_capacity(200);
    out.push_str("{\"time\":");
    push_json_str(&mut out, &now.to_rfc3339_opts(SecondsFormat::Millis, true));
    out.push_str(",\"level\":\"");
    out.push_str(level_name(level));
    out.push_str("\",\"module\":");
    match module {
        Some(value) => value.push_json(&mut out),
        None => push_json_str(&mut out, MODULE),
    }
    out.push_str(",\"message\":");
    push_json_str(&mut out, &event.message);
    for (key, value) in &fields {
        out.push(',');
        if matches!(*key, "time" | "level") {
            // Keep keys unique: a field may not shadow the envelope.
            push_json_str(&mut out, &format!("fields.{key}"));
        } else {
            push_json_str(&mut out, key);
        }
        out.push(':');
        value.push_json(&mut out);
    }
    out.push_str("}\n");
    out
}

fn push_json_str(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

// ---------------------------------------------------------------------------
// Text helpers

/// zerolog's `needsQuote` (control, non-ASCII, space, `\`, `"`), plus `=` and the
/// empty string so that `key=value` stays unambiguous.
fn needs_quote(s: &str) -> bool {
    s.is_empty()
        || s.bytes()
            .any(|b| !(0x20..=0x7e).contains(&b) || matches!(b, b' ' | b'\\' | b'"' | b'='))
}

/// `s` with every control character (CR, LF, ESC, BEL, the C1 range, ...) written as a `\n`,
/// `\x1b`-style or `\u{85}`-style escape, so text from outside (plan names, the node's or a hook's
/// output) can neither start a forged line nor reach a terminal as an escape sequence; other
/// text, non-ASCII included, is kept. Used for console log lines, `status` and `sd_notify` values.
#[must_use]
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Go `strconv.Quote`-style quoting (printable non-ASCII is kept as is).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True if `s` is exactly one double-quoted literal, such as the Debug form of a string.
fn is_quoted_literal(s: &str) -> bool {
    let Some(body) = s.strip_prefix('"') else {
        return false;
    };
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                // Skip the escaped character; a trailing `\` ends the loop.
                let _ = chars.next();
            }
            '"' => return chars.as_str().is_empty(),
            _ => {}
        }
    }
    false
}

/// True if `s` is a JSON array or object (the Debug form of `Vec<String>` is one).
fn is_json_container(s: &str) -> bool {
    (s.starts_with('[') || s.starts_with('{'))
        && serde_json::from_str::<serde_json::Value>(s).is_ok()
}

/// Removes the whitespace outside string literals from valid JSON text.
fn compact_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in s.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The console lines (no timestamp, no colour, INFO and up) written while `f` runs: for other
/// modules' unit tests.
#[cfg(test)]
pub fn captured(f: impl FnOnce()) -> String {
    tests::run(tests::plain(), f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing::{debug, error, info, trace, warn};

    /// Collects everything written, and counts the `write` calls.
    #[derive(Clone, Default)]
    struct Capture {
        buf: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicUsize>,
    }

    impl Write for Capture {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.buf
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            let buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8(buf.clone()).expect("log output is UTF-8")
        }
    }

    pub(super) fn plain() -> Settings {
        Settings {
            disabled: false,
            color: false,
            time_pattern: None,
            format: Format::Console,
        }
    }

    /// Runs `f` under the public `subscriber()` (INFO) and returns what it wrote.
    pub(super) fn run(settings: Settings, f: impl FnOnce()) -> String {
        let capture = Capture::default();
        tracing::subscriber::with_default(subscriber(settings, capture.clone()), f);
        capture.text()
    }

    fn run_at(settings: Settings, level: LevelFilter, f: impl FnOnce()) -> String {
        let capture = Capture::default();
        tracing::subscriber::with_default(build(settings, level, capture.clone()), f);
        capture.text()
    }

    #[test]
    fn exact_console_line() {
        let out = run(plain(), || {
            info!(path = "/h/bin", args = ?vec!["start"], "running app");
        });
        assert_eq!(
            out,
            "INF running app args=[\"start\"] module=cosmovisor path=/h/bin\n"
        );
    }

    #[test]
    fn debug_vectors_are_compacted_like_go_json() {
        let out = run(plain(), || {
            info!(args = ?vec!["start", "--home", "/h"], "running app");
        });
        assert_eq!(
            out,
            "INF running app args=[\"start\",\"--home\",\"/h\"] module=cosmovisor\n"
        );
    }

    #[test]
    fn fields_are_sorted_with_module_among_them() {
        let out = run(plain(), || {
            info!(zeta = 1, alpha = 2, name = "x", beta = true, "m");
        });
        assert_eq!(
            out,
            "INF m alpha=2 beta=true module=cosmovisor name=x zeta=1\n"
        );
    }

    #[test]
    fn error_field_goes_first_like_zerolog() {
        let err = io::Error::other("disk full");
        let out = run(plain(), || {
            error!(
                error = &err as &(dyn std::error::Error + 'static),
                attempt = 3,
                "write failed"
            );
        });
        assert_eq!(
            out,
            "ERR write failed error=\"disk full\" attempt=3 module=cosmovisor\n"
        );
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        let out = run(plain(), || {
            info!(
                a = "with space",
                b = "",
                c = "say \"hi\"",
                d = "k=v",
                e = "line\nbreak\\",
                f = "plain-value_1.2/x",
                g = %"display with space",
                h = ?"debug string",
                i = %"1.5s",
                "q"
            );
        });
        assert_eq!(
            out,
            "INF q a=\"with space\" b=\"\" c=\"say \\\"hi\\\"\" d=\"k=v\" e=\"line\\nbreak\\\\\" \
             f=plain-value_1.2/x g=\"display with space\" h=\"debug string\" i=1.5s module=cosmovisor\n"
        );
    }

    #[test]
    fn no_field_or_message_carries_a_control_character() {
        // A value that already looks quoted (`%name` of a plan name, a hook's output) or like
        // JSON, and a message built from one, are escaped too: no forged line, no escape code.
        let forged = "\"x\"\n11:59PM ERR validator key leaked\r\u{1b}]0;owned\u{7}\"";
        let out = run(plain(), || {
            info!(
                a = %forged,
                b = ?forged,
                c = forged,
                d = %"[\"\u{85}\"]",
                "hook said {forged}"
            );
        });
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(!out.chars().any(|c| c != '\n' && c.is_control()), "{out:?}");
        assert!(
            out.contains("\\n11:59PM ERR validator key leaked\\r\\x1b]0;owned\\x07"),
            "{out:?}"
        );
        assert_eq!(escape_controls("plain ünïcode"), "plain ünïcode");
        assert_eq!(escape_controls("a\u{2028}b\u{9b}"), "a\\u{2028}b\\u{9b}");
    }

    #[test]
    fn numbers_and_bools_are_plain() {
        let out = run(plain(), || {
            info!(n = -5_i64, u = 7_u64, f = 1.5_f64, b = false, "nums");
        });
        assert_eq!(out, "INF nums b=false f=1.5 module=cosmovisor n=-5 u=7\n");
    }

    #[test]
    fn level_names() {
        let out = run(plain(), || {
            info!("i");
            warn!("w");
            error!("e");
        });
        assert_eq!(
            out,
            "INF i module=cosmovisor\nWRN w module=cosmovisor\nERR e module=cosmovisor\n"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_unless_forced() {
        use std::ffi::OsStr;
        assert!(!use_color(true, None, false), "default, not a terminal");
        assert!(use_color(true, None, true), "default, a terminal");
        assert!(use_color(true, Some(OsStr::new("TRUE")), false), "forced");
        assert!(!use_color(false, Some(OsStr::new("false")), true), "off");
        assert!(!use_color(false, None, true), "off in config.toml");
        assert!(
            !use_color(true, Some(OsStr::new("")), false),
            "empty is unset"
        );
    }

    #[test]
    fn colour_on_has_zerolog_escapes() {
        let settings = Settings {
            color: true,
            time_pattern: Some("%-I:%M%p"),
            ..plain()
        };
        let out = run(settings, || {
            info!(path = "/h", "i");
            warn!("w");
            error!(error = "boom", "e");
        });
        assert!(out.contains("\x1b[90m"), "{out:?}");
        assert!(out.contains("\x1b[32mINF\x1b[0m i "), "{out:?}");
        assert!(out.contains("\x1b[33mWRN\x1b[0m"), "{out:?}");
        assert!(out.contains("\x1b[31mERR\x1b[0m"), "{out:?}");
        assert!(out.contains("\x1b[36mpath=\x1b[0m/h"), "{out:?}");
        assert!(out.contains("\x1b[36mmodule=\x1b[0mcosmovisor"), "{out:?}");
        assert!(
            out.contains("\x1b[36merror=\x1b[0m\x1b[31m\x1b[1mboom\x1b[0m\x1b[0m"),
            "{out:?}"
        );

        let debug = run_at(settings, LevelFilter::DEBUG, || debug!("d"));
        assert!(debug.contains("\x1b[90mDBG\x1b[0m"), "{debug:?}");
    }

    #[test]
    fn colour_off_never_writes_escapes() {
        let settings = Settings {
            time_pattern: Some("%-I:%M%p"),
            ..plain()
        };
        let out = run_at(settings, LevelFilter::TRACE, || {
            trace!(a = 1, "t");
            debug!(a = 1, "d");
            info!(error = "x", "i");
            warn!("w");
            error!("e");
        });
        assert_eq!(out.lines().count(), 5);
        assert!(!out.contains('\x1b'), "{out:?}");
    }

    #[test]
    fn kitchen_time_prefix() {
        let settings = Settings {
            time_pattern: Some("%-I:%M%p"),
            ..plain()
        };
        let out = run(settings, || info!("hello"));
        let (time, rest) = out.split_once(' ').expect("a space after the time");
        assert_eq!(rest, "INF hello module=cosmovisor\n");
        let (hours, minutes) = time.split_once(':').expect("h:mm");
        assert!(
            (1..=2).contains(&hours.len()) && hours.bytes().all(|b| b.is_ascii_digit()),
            "{time}"
        );
        let (digits, ampm) = minutes.split_at(2);
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{time}");
        assert!(ampm == "AM" || ampm == "PM", "{time}");
    }

    #[test]
    fn invalid_time_pattern_does_not_panic() {
        let settings = Settings {
            time_pattern: Some("%Q %"),
            ..plain()
        };
        let out = run(settings, || info!("hello"));
        let (time, rest) = out.split_once(' ').expect("a space after the time");
        assert_eq!(rest, "INF hello module=cosmovisor\n");
        assert!(
            DateTime::parse_from_rfc3339(time).is_ok(),
            "falls back to RFC 3339: {time}"
        );
    }

    #[test]
    fn debug_dropped_by_default() {
        let out = run(plain(), || {
            debug!("hidden");
            trace!("hidden");
            info!("shown");
        });
        assert_eq!(out, "INF shown module=cosmovisor\n");

        let out = run_at(plain(), LevelFilter::DEBUG, || {
            debug!(k = 1, "visible");
            trace!("hidden");
        });
        assert_eq!(out, "DBG visible k=1 module=cosmovisor\n");
    }

    #[test]
    fn disabled_writes_nothing() {
        let settings = Settings {
            disabled: true,
            ..plain()
        };
        let out = run_at(settings, LevelFilter::TRACE, || {
            error!("nope");
            info!("nope");
        });
        assert_eq!(out, "");
    }

    #[test]
    fn one_write_per_line() {
        let capture = Capture::default();
        let sub = subscriber(plain(), capture.clone());
        tracing::subscriber::with_default(sub, || {
            for i in 0..10 {
                info!(i, path = "/a b", args = ?vec!["x", "y"], "line");
            }
        });
        assert_eq!(capture.writes.load(Ordering::SeqCst), 10);
        assert_eq!(capture.text().lines().count(), 10);
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn write_errors_are_ignored() {
        for format in [Format::Console, Format::Json] {
            let settings = Settings { format, ..plain() };
            tracing::subscriber::with_default(subscriber(settings, Broken), || {
                error!("still alive");
            });
        }
    }

    #[test]
    fn module_field_overrides_default() {
        let out = run(plain(), || info!(module = "x", "m"));
        assert_eq!(out, "INF m module=x\n");
    }

    #[test]
    fn json_lines_parse_with_types() {
        let settings = Settings {
            format: Format::Json,
            color: true,
            time_pattern: None,
            disabled: false,
        };
        let out = run(settings, || {
            info!(
                height = 42_u64,
                delta = -3_i64,
                ok = true,
                ratio = 0.5_f64,
                path = "/h/bin",
                took = %"1.5s",
                name = ?"simd",
                args = ?vec!["start", "--home"],
                time = "shadow",
                "running app"
            );
            warn!("careful");
        });
        assert!(!out.contains('\x1b'));
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 2);

        let first = &lines[0];
        assert_eq!(first["level"], "info");
        assert_eq!(first["message"], "running app");
        assert_eq!(first["module"], "cosmovisor");
        assert_eq!(first["height"], 42);
        assert_eq!(first["delta"], -3);
        assert_eq!(first["ok"], true);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["path"], "/h/bin");
        assert_eq!(first["took"], "1.5s");
        assert_eq!(first["name"], "simd");
        assert_eq!(first["args"], serde_json::json!(["start", "--home"]));
        assert_eq!(first["fields.time"], "shadow");
        let time = first["time"].as_str().expect("time is a string");
        let parsed = DateTime::parse_from_rfc3339(time).expect("time is RFC 3339");
        assert_eq!(
            parsed.timestamp_subsec_nanos() % 1_000_000,
            0,
            "millisecond precision"
        );
        let (stamp, offset) = time.split_at(23);
        assert_eq!(&stamp[19..20], ".", "{time}");
        assert!(stamp[20..].bytes().all(|b| b.is_ascii_digit()), "{time}");
        assert!(offset == "Z" || offset.len() == 6, "{time}");

        assert_eq!(lines[1]["level"], "warn");
        assert_eq!(lines[1]["message"], "careful");

        // Key order of the envelope: time, level, module, message.
        assert!(out.starts_with("{\"time\":\""), "{out}");
        let idx = |k: &str| out.find(k).expect("key present");
        assert!(idx("\"level\"") < idx("\"module\""));
        assert!(idx("\"module\"") < idx("\"message\""));
    }

    #[test]
    fn level_env_values() {
        assert_eq!(level_from_env(None), LevelFilter::INFO);
        assert_eq!(level_from_env(Some("debug")), LevelFilter::DEBUG);
        assert_eq!(level_from_env(Some(" DEBUG ")), LevelFilter::DEBUG);
        assert_eq!(level_from_env(Some("trace")), LevelFilter::TRACE);
        assert_eq!(level_from_env(Some("warn")), LevelFilter::WARN);
        assert_eq!(level_from_env(Some("error")), LevelFilter::ERROR);
        assert_eq!(level_from_env(Some("bogus")), LevelFilter::INFO);
        assert_eq!(level_from_env(Some("")), LevelFilter::INFO);
    }

    #[test]
    fn init_twice_is_an_error_not_a_panic() {
        let settings = Settings {
            disabled: true,
            ..plain()
        };
        // The first call may fail too if another test installed a global subscriber.
        let _ = init(settings);
        assert!(init(settings).is_err());
    }

    #[test]
    fn helpers() {
        assert!(is_quoted_literal("\"a b\""));
        assert!(is_quoted_literal("\"a \\\" b\""));
        assert!(!is_quoted_literal("\"a\" and \"b\""));
        assert!(!is_quoted_literal("\""));
        assert!(!is_quoted_literal("x"));
        assert_eq!(
            compact_json("[ \"a b\", { \"k\" : 1 } ]"),
            "[\"a b\",{\"k\":1}]"
        );
        assert_eq!(go_quote("a\u{1}\u{7f}\u{85}é"), "\"a\\x01\\x7f\\u0085é\"");
        assert!(needs_quote("é"));
        assert!(!needs_quote("abc"));
    }
}
