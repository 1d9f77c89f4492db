//! Upgrade plans: the one parser of `upgrade-info.json` (x/upgrade's `Plan` as Go
//! `encoding/json` writes it), the matcher for the daemon's `UPGRADE "<name>" NEEDED at height:
//! <h>: <info>` log line, the `--unsafe-skip-upgrades` heights in the daemon's arguments, and the
//! rule that decides whether a plan is new enough to apply.
//!
//! Pure functions, except [`read_applied`]: the one read of a version folder's applied-plan
//! record (bounded, as chain-writable data is). Watching `data/` for a plan is
//! `supervisor/watcher.rs`.

use std::ffi::OsString;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bounded_read::{self, DOCUMENT_CAP};
use crate::home::layout::Layout;
use crate::home::name::{NameError, UpgradeName};

/// The zero `time.Time` as x/upgrade writes it; any other time is a deprecated time-based plan.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A validated upgrade plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The normalised name (lower-cased unless recase is disabled): folder and comparisons.
    pub name: UpgradeName,
    /// The name exactly as the chain wrote it (given to the custom pre-upgrade script, as Go does).
    pub raw_name: String,
    pub height: i64,
    pub info: String,
}

/// Why `upgrade-info.json` (or another plan source) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("upgrade plan is empty")]
    Empty,
    #[error("upgrade plan is not valid JSON: {0}")]
    Malformed(String),
    // Parity: Go's texts (`parseUpgradeInfoFile` wrapping x/upgrade's `ValidateBasic`, whose
    // checks run in this order), then what was found; Go's `, got: {…}` tail is not repeated.
    #[error(
        "invalid upgrade-info.json content: time-based upgrades have been deprecated in the SDK: \
         invalid request (plan {name:?} has time {time})"
    )]
    TimeBased { name: String, time: String },
    #[error(
        "invalid upgrade-info.json content: upgrade logic for IBC has been moved to the IBC module: \
         invalid request (plan {0:?} sets upgraded_client_state)"
    )]
    ClientState(String),
    #[error("invalid upgrade-info.json content: name cannot be empty: invalid request")]
    NoName,
    #[error(
        "invalid upgrade-info.json content: height must be greater than 0: invalid request (plan \
         {name:?} has height {height})"
    )]
    BadHeight { name: String, height: i64 },
    #[error(transparent)]
    Name(#[from] NameError),
}

#[derive(Deserialize)]
struct RawPlan {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    height: i64,
    #[serde(default)]
    info: String,
    #[serde(default)]
    upgraded_client_state: Option<serde_json::Value>,
}

/// What we write into `upgrades/<name>/upgrade-info.json`: Go's shape, `info` left out when
/// empty, no trailing newline.
#[derive(Serialize)]
struct PlanRecord<'a> {
    name: &'a str,
    time: &'a str,
    height: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    info: &'a str,
}

/// Parses and validates a plan (Go v1.5+ `ParseUpgradeInfoFile` + `ValidateBasic`).
pub fn parse(bytes: &[u8], recase: bool) -> Result<Plan, PlanError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PlanError::Empty);
    }
    let raw: RawPlan =
        serde_json::from_slice(bytes).map_err(|err| PlanError::Malformed(err.to_string()))?;
    from_parts(raw, recase)
}

fn from_parts(raw: RawPlan, recase: bool) -> Result<Plan, PlanError> {
    if let Some(time) = raw.time {
        if time != ZERO_TIME && !time.is_empty() {
            return Err(PlanError::TimeBased {
                name: raw.name,
                time,
            });
        }
    }
    if raw
        .upgraded_client_state
        .is_some_and(|value| !value.is_null())
    {
        return Err(PlanError::ClientState(raw.name));
    }
    if raw.name.is_empty() {
        return Err(PlanError::NoName);
    }
    if raw.height <= 0 {
        return Err(PlanError::BadHeight {
            name: raw.name,
            height: raw.height,
        });
    }
    Ok(Plan {
        name: UpgradeName::new(&raw.name, recase)?,
        raw_name: raw.name,
        height: raw.height,
        info: raw.info,
    })
}

impl Plan {
    /// The JSON we store next to an applied upgrade (Go's shape, with the normalised name).
    #[must_use]
    pub fn to_record_json(&self) -> Vec<u8> {
        let record = PlanRecord {
            name: self.name.as_str(),
            time: ZERO_TIME,
            height: self.height,
            info: &self.info,
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// The plan as x/upgrade writes `data/upgrade-info.json` (the name as the chain wrote it), to
    /// put the file back after a power cut emptied it.
    #[must_use]
    pub fn to_upgrade_info_json(&self) -> Vec<u8> {
        let record = PlanRecord {
            name: &self.raw_name,
            time: ZERO_TIME,
            height: self.height,
            info: &self.info,
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// The plan a daemon's `UPGRADE … NEEDED` line names, with an empty `info`: only to judge
    /// whether the line asks for something new (the plan applied is always the file's).
    pub fn from_line(line: &LinePlan, recase: bool) -> Result<Plan, PlanError> {
        from_parts(
            RawPlan {
                name: line.name.clone(),
                time: None,
                height: line.height,
                info: String::new(),
                upgraded_client_state: None,
            },
            recase,
        )
    }
}

/// The plan last applied to this home (from `current/upgrade-info.json`), if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    pub name: Option<String>,
    pub height: i64,
}

impl Applied {
    /// Whether `plan` is a new upgrade to carry out: its name differs (case-insensitively) from the
    /// applied one *and* its height is greater. The height rule prevents Go's "double upgrade" when
    /// an operator switched `current` by hand (docs/design.md "Differences from Go cosmovisor").
    #[must_use]
    pub fn is_superseded_by(&self, plan: &Plan) -> bool {
        let same_name = self
            .name
            .as_deref()
            .is_some_and(|name| plan.name.same_as(name));
        !same_name && plan.height > self.height
    }
}

/// Reads the applied plan record; anything unreadable counts as "no plan applied" (genesis),
/// like Go's empty-plan fallback.
#[must_use]
pub fn applied_from_record(bytes: Option<&[u8]>) -> Applied {
    let Some(bytes) = bytes else {
        return Applied::default();
    };
    match serde_json::from_slice::<RawPlan>(bytes) {
        Ok(raw) if !raw.name.is_empty() => Applied {
            name: Some(raw.name),
            height: raw.height,
        },
        _ => Applied::default(),
    }
}

/// Reads the plan recorded as applied in a version folder (`<dir>/upgrade-info.json`) through
/// [`applied_from_record`].
#[must_use]
pub fn read_applied(version_dir: &Path) -> Applied {
    let record =
        bounded_read::read_capped(&Layout::applied_plan_file(version_dir), DOCUMENT_CAP).ok();
    applied_from_record(record.as_deref())
}

/// The fields of an `UPGRADE "<name>" NEEDED at height: <h>: <info>` line. The line's `info` is not
/// kept: the line is only a hint to read `data/upgrade-info.json`, whose plan is the one applied
/// (docs/design.md "Trust boundaries"), so nothing the node merely logs can name a binary to
/// download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinePlan {
    pub name: String,
    pub height: i64,
}

const LINE_PREFIX: &[u8] = b"UPGRADE \"";
const LINE_MIDDLE: &[u8] = b"\" NEEDED at height: ";

/// Matches Go v0.1's `UPGRADE "(.*)" NEEDED at ((height): (\d+)|(time): (\S+)):\s+(\S*)`
/// (height form only) anywhere in a line. As in the regex, the match starts at the first
/// `UPGRADE "` and the name is greedy: the last `" NEEDED at height: ` after it that is followed
/// by digits, `:` and white space ends it. Linear in the line's length: the candidate middles are
/// tried from the end and the digit runs after them do not overlap.
#[must_use]
pub fn match_upgrade_line(line: &[u8]) -> Option<LinePlan> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let name_start = memchr::memmem::find(line, LINE_PREFIX)? + LINE_PREFIX.len();
    let rest = &line[name_start..];
    memchr::memmem::rfind_iter(rest, LINE_MIDDLE).find_map(|middle| {
        let height = match_tail(&rest[middle + LINE_MIDDLE.len()..])?;
        Some(LinePlan {
            name: String::from_utf8_lossy(&rest[..middle]).into_owned(),
            height,
        })
    })
}

/// The height of `<digits>:<white space>`, the part of the line after `NEEDED at height: `.
fn match_tail(tail: &[u8]) -> Option<i64> {
    let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || tail.get(digits) != Some(&b':') {
        return None;
    }
    if !tail.get(digits + 1).is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    std::str::from_utf8(&tail[..digits]).ok()?.parse().ok()
}

/// What the daemon's output can tell the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// x/upgrade's `UPGRADE "<name>" NEEDED at height: <h>: <info>`: a reason to read
    /// `data/upgrade-info.json` now, never a plan by itself.
    Upgrade(LinePlan),
    /// The node says it halts at its `--halt-height`: SDK 0.50's `halt per configuration height
    /// <h>` or SDK 0.45–0.47's `halting node per configuration … height=<h>`. It counts only
    /// once the daemon has exited after saying it (any text can claim it).
    Halted(i64),
}

/// Recognises the lines of [`Notice`].
#[must_use]
pub fn match_notice(line: &[u8]) -> Option<Notice> {
    if let Some(plan) = match_upgrade_line(line) {
        return Some(Notice::Upgrade(plan));
    }
    match_halt_line(line).map(Notice::Halted)
}

fn match_halt_line(line: &[u8]) -> Option<i64> {
    const NEW: &[u8] = b"halt per configuration height ";
    const OLD: &[u8] = b"halting node per configuration";
    const OLD_HEIGHT: &[u8] = b"height=";
    let digits_at = |rest: &[u8]| -> Option<i64> {
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&rest[..n]).ok()?.parse().ok()
    };
    if let Some(at) = memchr::memmem::find(line, NEW) {
        return digits_at(&line[at + NEW.len()..]);
    }
    let at = memchr::memmem::find(line, OLD)?;
    let rest = &line[at + OLD.len()..];
    let height_at = memchr::memmem::find(rest, OLD_HEIGHT)?;
    digits_at(&rest[height_at + OLD_HEIGHT.len()..])
}

/// The name and height of a JSON plan, whatever else is wrong with it: a plan at a height listed
/// in `--unsafe-skip-upgrades` is skipped even when it could never be applied (Go skips any plan
/// whose height is listed), and `status` names a plan it cannot use.
#[must_use]
pub fn identify(bytes: &[u8]) -> Option<(String, i64)> {
    serde_json::from_slice::<RawPlan>(bytes)
        .ok()
        .map(|raw| (raw.name, raw.height))
}

/// Whether the queued manual upgrade `name` at `height` is passed over because `height` is in
/// `skip` (`--unsafe-skip-upgrades`); says so once per look while it is newer than `applied`.
#[must_use]
pub fn skips_queued(name: &str, height: i64, applied: &Applied, skip: &[i64]) -> bool {
    if !skip.contains(&height) {
        return false;
    }
    if height > applied.height {
        tracing::info!(
            name,
            height,
            "manual upgrade height is listed in --unsafe-skip-upgrades; the node does not halt for it"
        );
    }
    true
}

/// The heights listed after `--unsafe-skip-upgrades` in the daemon's arguments: tokens up to the
/// next one starting with `-`; tokens that are not integers are skipped; only the first
/// occurrence of the flag counts (Go `UpgradeSkipHeights`). The `--flag=value` form is also
/// accepted, which Go does not.
#[must_use]
pub fn skip_heights(args: &[OsString]) -> Vec<i64> {
    let mut heights = Vec::new();
    let mut iter = args.iter().map(|arg| arg.to_string_lossy());
    while let Some(arg) = iter.next() {
        if let Some(value) = arg.strip_prefix("--unsafe-skip-upgrades=") {
            heights.extend(
                value
                    .split(',')
                    .filter_map(|h| h.trim().parse::<i64>().ok()),
            );
            break;
        }
        if arg != "--unsafe-skip-upgrades" {
            continue;
        }
        for next in iter.by_ref() {
            if next.starts_with('-') {
                break;
            }
            if let Ok(height) = next.parse::<i64>() {
                heights.push(height);
            }
        }
        break;
    }
    heights
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::os;

    #[test]
    fn parses_what_x_upgrade_writes() {
        let plan = parse(
            br#"{"name":"Chain2","time":"0001-01-01T00:00:00Z","height":49,"info":"x"}"#,
            true,
        )
        .unwrap();
        assert_eq!(plan.name.as_str(), "chain2");
        assert_eq!(plan.raw_name, "Chain2");
        assert_eq!(plan.height, 49);
        assert_eq!(plan.info, "x");
        let kept = parse(br#"{"name":"Chain2","height":49}"#, false).unwrap();
        assert_eq!(kept.name.as_str(), "Chain2");
    }

    #[test]
    fn rejects_bad_plans() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "upgrade plan is empty"),
            (b"  \n", "upgrade plan is empty"),
            (b"{\"name\":\"x\",\"hei", "upgrade plan is not valid JSON"),
            (
                b"{\"height\":5}",
                "invalid upgrade-info.json content: name cannot be empty: invalid request",
            ),
            (
                b"{}",
                "invalid upgrade-info.json content: name cannot be empty",
            ),
            (
                b"{\"name\":\"x\"}",
                "height must be greater than 0: invalid request (plan \"x\" has height 0)",
            ),
            (b"{\"name\":\"x\",\"height\":-3}", "has height -3"),
            (b"{\"name\":\"x\",\"height\":\"5\"}", "not valid JSON"),
            (b"[1,2]", "not valid JSON"),
            (
                b"{\"name\":\"x\",\"height\":5,\"time\":\"2024-01-01T00:00:00Z\"}",
                "time-based upgrades have been deprecated in the SDK: invalid request",
            ),
            (
                b"{\"name\":\"x\",\"height\":5,\"upgraded_client_state\":{}}",
                "upgrade logic for IBC has been moved to the IBC module: invalid request",
            ),
            (b"{\"name\":\"..\",\"height\":5}", "outside upgrades/"),
        ];
        for (input, want) in cases {
            let err = parse(input, true).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn record_json_matches_go() {
        let plan = parse(br#"{"name":"Chain2","height":49}"#, true).unwrap();
        assert_eq!(
            String::from_utf8(plan.to_record_json()).unwrap(),
            r#"{"name":"chain2","time":"0001-01-01T00:00:00Z","height":49}"#
        );
    }

    #[test]
    fn trigger_rule() {
        let plan = parse(br#"{"name":"v2","height":50}"#, true).unwrap();
        assert!(Applied::default().is_superseded_by(&plan));
        let same = Applied {
            name: Some("V2".into()),
            height: 50,
        };
        assert!(!same.is_superseded_by(&plan));
        let lower = Applied {
            name: Some("v3".into()),
            height: 60,
        };
        assert!(
            !lower.is_superseded_by(&plan),
            "a stale lower plan never downgrades"
        );
        let older = Applied {
            name: Some("v1".into()),
            height: 10,
        };
        assert!(older.is_superseded_by(&plan));
    }

    #[test]
    fn applied_record_fallbacks() {
        assert_eq!(applied_from_record(None), Applied::default());
        assert_eq!(applied_from_record(Some(b"garbage")), Applied::default());
        assert_eq!(
            applied_from_record(Some(br#"{"name":"v2","height":7}"#)),
            Applied {
                name: Some("v2".into()),
                height: 7
            }
        );
    }

    #[test]
    fn matches_upgrade_lines() {
        let line = |s: &str| match_upgrade_line(s.as_bytes());
        let plan = line("UPGRADE \"chain3\" NEEDED at height: 936: x\n").unwrap();
        assert_eq!((plan.name.as_str(), plan.height), ("chain3", 936));
        let plan = line("ERROR: UPGRADE \"chain3\" NEEDED at height: 936: x module=main").unwrap();
        assert_eq!(plan.height, 936);
        assert!(line("UPGRADE \"v2\" NEEDED at height: 5: ").is_some());
        let plan = line("UPGRADE \"\" NEEDED at height: 5: ").unwrap();
        assert_eq!(plan.name, "");
        assert!(line("UPGRADE \" NEEDED at height: 5: ").is_none());
        let plan = line("UPGRADE \"a\" NEEDED at height: 1: b\" NEEDED at height: x: c").unwrap();
        assert_eq!((plan.name.as_str(), plan.height), ("a", 1));
        let plan = line("x UPGRADE \"a\" UPGRADE \"b\" NEEDED at height: 2: c").unwrap();
        assert_eq!(
            plan.name, "a\" UPGRADE \"b",
            "the match starts at the first prefix"
        );
        let plan = line("UPGRADE \"a\" NEEDED at height: 1: b\" NEEDED at height: 7: c").unwrap();
        assert_eq!(
            (plan.name.as_str(), plan.height),
            ("a\" NEEDED at height: 1: b", 7)
        );
        assert!(line("UPGRADE \"v2\" NEEDED at height: 5:").is_none());
        assert!(line("UPGRADE \"v2\" NEEDED at height: x: y").is_none());
        assert!(line("UPGRADE \"v2\" SKIPPED at 5: y").is_none());
        assert!(line("nothing here").is_none());
        assert!(match_upgrade_line(b"\xff\xfeUPGRADE \"v2\" NEEDED at height: 9: i\xff").is_some());
    }

    #[test]
    fn matches_halt_lines() {
        let halt = |s: &str| match match_notice(s.as_bytes()) {
            Some(Notice::Halted(h)) => Some(h),
            _ => None,
        };
        assert_eq!(
            halt("12:00 INF halt per configuration height 50 module=server"),
            Some(50)
        );
        assert_eq!(
            halt("failed to finalize: halt per configuration height 7 time 0"),
            Some(7)
        );
        assert_eq!(
            halt("INF halting node per configuration height=123 module=baseapp time=0"),
            Some(123)
        );
        assert_eq!(halt("INF halting node per configuration time=5"), None);
        assert_eq!(halt("committed state height=5"), None);
    }

    #[test]
    fn skip_heights_like_go() {
        let cases: &[(&[&str], &[i64])] = &[
            (&["start"], &[]),
            (
                &[
                    "start",
                    "--unsafe-skip-upgrades",
                    "10",
                    "as",
                    "20",
                    "--x",
                    "34",
                ],
                &[10, 20],
            ),
            (
                &["--unsafe-skip-upgrades", "5", "--unsafe-skip-upgrades", "6"],
                &[5],
            ),
            (&["start", "--unsafe-skip-upgrades"], &[]),
            (&["start", "--unsafe-skip-upgrades=7,8"], &[7, 8]),
        ];
        for (args, want) in cases {
            assert_eq!(skip_heights(&os(args)), *want, "{args:?}");
        }
    }
}
