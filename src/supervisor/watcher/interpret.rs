//! What the bytes of `data/upgrade-info.json` mean for the running supervisor, judged without any
//! I/O: the watcher (`watcher.rs`) finds out *that* the file changed and reads it; this says
//! *what the change means* against the applied plan and the `--unsafe-skip-upgrades` heights
//! (the trigger rule is [`Applied::is_superseded_by`]). Pure, so every rule is a table row in the
//! tests below.

use crate::home::plan::{self, Applied, Plan, PlanError};

/// What the file holds, for the supervisor.
#[derive(Debug)]
pub(super) enum Reading {
    /// A plan to apply now.
    Apply(Plan),
    /// A valid plan, but not newer than the applied one.
    NotNew(Plan),
    /// A valid, newer plan at a height the node was told to skip.
    Skipped(Plan),
    /// Nothing yet: x/upgrade writes the file in place, an empty one is being written.
    Empty,
    /// Not a JSON plan (yet): partial, or garbled.
    Malformed(PlanError),
    /// A complete plan that can never be applied, at a height the node was told to skip.
    SkippedUnusable { height: i64, err: PlanError },
    /// A complete plan that can never be applied.
    Unusable(PlanError),
}

/// Judges the file's `bytes` against the `applied` plan and the `skip` heights.
pub(super) fn interpret(bytes: &[u8], recase: bool, applied: &Applied, skip: &[i64]) -> Reading {
    match plan::parse(bytes, recase) {
        Ok(plan) if !applied.is_superseded_by(&plan) => Reading::NotNew(plan),
        Ok(plan) if skip.contains(&plan.height) => Reading::Skipped(plan),
        Ok(plan) => Reading::Apply(plan),
        Err(PlanError::Empty) => Reading::Empty,
        Err(err @ PlanError::Malformed(_)) => Reading::Malformed(err),
        Err(err) => match plan::identify(bytes).map(|(_, height)| height) {
            Some(height) if skip.contains(&height) => Reading::SkippedUnusable { height, err },
            _ => Reading::Unusable(err),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(name: &str, height: i64) -> Applied {
        Applied {
            name: Some(name.to_owned()),
            height,
        }
    }

    /// The name of each reading's variant (and its plan's name@height), for table rows.
    fn shape(reading: &Reading) -> String {
        match reading {
            Reading::Apply(plan) => format!("apply {}@{}", plan.name, plan.height),
            Reading::NotNew(plan) => format!("not new {}@{}", plan.name, plan.height),
            Reading::Skipped(plan) => format!("skipped {}@{}", plan.name, plan.height),
            Reading::Empty => "empty".into(),
            Reading::Malformed(_) => "malformed".into(),
            Reading::SkippedUnusable { height, .. } => format!("skipped unusable @{height}"),
            Reading::Unusable(_) => "unusable".into(),
        }
    }

    #[test]
    #[expect(clippy::too_many_lines, reason = "one table of rows")]
    fn every_kind_of_file_gets_its_reading() {
        let genesis = Applied::default();
        let v2_at_10 = applied("v2", 10);
        let long = "x".repeat(300);
        let rows: Vec<(&str, String, &Applied, &[i64], String)> = vec![
            (
                "new plan",
                r#"{"name":"V3","height":20}"#.into(),
                &v2_at_10,
                &[],
                "apply v3@20".into(),
            ),
            (
                "from genesis",
                r#"{"name":"v2","height":10}"#.into(),
                &genesis,
                &[],
                "apply v2@10".into(),
            ),
            (
                "the applied plan",
                r#"{"name":"v2","height":10}"#.into(),
                &v2_at_10,
                &[],
                "not new v2@10".into(),
            ),
            (
                "a lower height",
                r#"{"name":"v3","height":5}"#.into(),
                &v2_at_10,
                &[],
                "not new v3@5".into(),
            ),
            (
                "a skipped height",
                r#"{"name":"v3","height":20}"#.into(),
                &v2_at_10,
                &[20],
                "skipped v3@20".into(),
            ),
            (
                "another skipped height",
                r#"{"name":"v3","height":20}"#.into(),
                &v2_at_10,
                &[21],
                "apply v3@20".into(),
            ),
            ("empty", String::new(), &v2_at_10, &[], "empty".into()),
            ("blank", " \n".into(), &v2_at_10, &[], "empty".into()),
            (
                "half written",
                r#"{"name":"v3","hei"#.into(),
                &v2_at_10,
                &[],
                "malformed".into(),
            ),
            (
                "not an object",
                "[1]".into(),
                &v2_at_10,
                &[],
                "malformed".into(),
            ),
            (
                "height 0",
                r#"{"name":"v3","height":0}"#.into(),
                &v2_at_10,
                &[],
                "unusable".into(),
            ),
            (
                "escaping name",
                r#"{"name":"..","height":20}"#.into(),
                &v2_at_10,
                &[],
                "unusable".into(),
            ),
            (
                "a 300-byte name",
                format!(r#"{{"name":"{long}","height":20}}"#),
                &v2_at_10,
                &[],
                "unusable".into(),
            ),
            (
                "a 300-byte name, skipped",
                format!(r#"{{"name":"{long}","height":20}}"#),
                &v2_at_10,
                &[20],
                "skipped unusable @20".into(),
            ),
            (
                "time-based",
                r#"{"name":"v3","height":20,"time":"2030-01-01T00:00:00Z"}"#.into(),
                &v2_at_10,
                &[],
                "unusable".into(),
            ),
        ];
        for (what, bytes, applied, skip, want) in rows {
            let reading = interpret(bytes.as_bytes(), true, applied, skip);
            assert_eq!(shape(&reading), want, "{what}");
        }
    }

    #[test]
    fn names_are_recased_unless_disabled() {
        let reading = interpret(
            br#"{"name":"V3","height":20}"#,
            false,
            &applied("v2", 10),
            &[],
        );
        assert_eq!(shape(&reading), "apply V3@20");
        // The applied plan's name is compared under the recase rule: V2 is v2.
        let reading = interpret(
            br#"{"name":"V2","height":20}"#,
            true,
            &applied("v2", 10),
            &[],
        );
        assert_eq!(shape(&reading), "not new v2@20");
    }
}
