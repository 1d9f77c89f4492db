//! The module map of README "Architecture" and docs/design.md "Module map", checked: the folders
//! under `src/` are layers (`home` < `acquire` < `upgrade` < `supervisor` < `commands`), the
//! shared pieces at the top of `src/` use no layer, and no layer's code (tests aside) uses one
//! above it. A `use crate::…` that breaks the rule fails here with the file and the import. Also:
//! every coded error is listed for main, and `cli::COMMANDS` is exactly the clap subcommands.

// Tests fail by panicking.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first; a module may use its own layer, the ones below and the shared pieces.
const LAYERS: [&str; 6] = [
    "home",
    "acquire",
    "upgrade",
    "supervisor",
    "commands",
    "cli",
];

/// Files outside the rule: the binaries' fronts, the crate root and the unit tests' helpers.
const OUTSIDE: [&str; 3] = ["lib.rs", "main.rs", "test_support.rs"];

fn rank(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| *layer == module)
        .map_or(0, |index| index + 1)
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `text` without the items `#[cfg(test)]` gates (a `mod tests;` line or a `{ … }` block).
fn without_test_items(text: &str) -> String {
    let mut kept = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        let item = &rest[at..];
        let end = match (item.find(';'), item.find('{')) {
            (Some(semi), brace) if brace.is_none_or(|brace| semi < brace) => semi + 1,
            (_, Some(brace)) => block_end(item, brace),
            _ => item.len(),
        };
        rest = &item[end..];
    }
    kept.push_str(rest);
    kept
}

/// Where the block opened at `open` (a `{`) closes, just past its `}`.
fn block_end(text: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (at, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + at + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// The first path segment of each path after `crate::` in `code`, groups (`crate::{a, b::c}`)
/// included.
fn crate_modules(code: &str) -> Vec<&str> {
    let mut modules = Vec::new();
    for (at, prefix) in code.match_indices("crate::") {
        let rest = &code[at + prefix.len()..];
        if rest.starts_with('{') {
            let group = &rest[1..block_end(rest, 0) - 1];
            let mut depth = 0usize;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        modules.push(first_segment(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            modules.push(first_segment(&group[start..]));
        } else {
            modules.push(first_segment(rest));
        }
    }
    modules.retain(|module| !module.is_empty());
    modules
}

fn first_segment(path: &str) -> &str {
    let path = path.trim_start();
    let end = path
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    &path[..end]
}

#[test]
fn no_layer_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for layer in &LAYERS[..5] {
        assert!(src.join(layer).is_dir(), "src/{layer}/ is missing");
    }
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let top = first.as_os_str().to_string_lossy();
        if top == "bin" || OUTSIDE.contains(&top.as_ref()) {
            continue;
        }
        let own = rank(top.trim_end_matches(".rs"));
        let code = without_test_items(&fs::read_to_string(&file).unwrap());
        if code.contains("super::super") {
            broken.push(format!(
                "src/{} reaches out with super::super (name the module by its crate:: path)",
                relative.display()
            ));
        }
        for module in crate_modules(&code) {
            if rank(module) > own {
                broken.push(format!("src/{} uses crate::{module}", relative.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "a layer uses one above it (README \"Architecture\"):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_checker_sees_an_import_that_breaks_the_rule() {
    let code =
        "use crate::supervisor::process;\nfn f() { crate::home::plan::parse(b\"\", false); }";
    let modules = crate_modules(code);
    assert_eq!(modules, ["supervisor", "home"]);
    assert!(rank("supervisor") > rank("upgrade"));
    assert_eq!(rank("signals"), 0, "a shared piece is below every layer");
}

/// The last path segment of each `what<Type>` occurrence's type in `text`, e.g. of each
/// `ExitCode for Type` or `probe::<path::Type>`.
fn types_after<'a>(text: &'a str, what: &str) -> Vec<&'a str> {
    text.match_indices(what)
        .map(|(at, found)| {
            let path = &text[at + found.len()..];
            let end = path
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(path.len());
            path[..end].rsplit("::").next().unwrap_or_default()
        })
        .collect()
}

/// Every error type with an exit code (`impl … ExitCode for …`) is listed once in
/// `commands::CODED_ERRORS`, the list `main` asks; one that is not would exit 1 instead.
#[test]
fn every_coded_error_is_listed_where_main_asks() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut implemented: Vec<&str> = Vec::new();
    let texts: Vec<String> = files
        .iter()
        .map(|file| without_test_items(&fs::read_to_string(file).unwrap()))
        .collect();
    for text in &texts {
        implemented.extend(types_after(text, "ExitCode for "));
    }
    let commands = fs::read_to_string(src.join("commands/mod.rs")).unwrap();
    let list = commands
        .split("pub const CODED_ERRORS")
        .nth(1)
        .and_then(|rest| rest.split("];").next())
        .unwrap();
    let mut listed = types_after(list, "probe::<");
    implemented.sort_unstable();
    listed.sort_unstable();
    assert!(!listed.is_empty());
    assert_eq!(
        implemented, listed,
        "ExitCode impls vs commands::CODED_ERRORS"
    );
}

/// `cli::COMMANDS` decides which first words are ours: a subcommand missing from it would run as
/// the daemon's command (`cosmovisor newcmd` → `run newcmd`), a word in it without a subcommand
/// would be refused by clap. It must be exactly the clap definition's subcommands and `help`.
#[test]
fn the_command_words_are_the_clap_subcommands() {
    use clap::CommandFactory as _;
    let mut defined: Vec<String> = cosmovisor::cli::Cli::command()
        .get_subcommands()
        .map(|command| command.get_name().to_owned())
        .chain(std::iter::once("help".to_owned()))
        .collect();
    defined.sort();
    let mut listed: Vec<String> = cosmovisor::cli::COMMANDS
        .iter()
        .map(|word| (*word).to_owned())
        .collect();
    listed.sort();
    assert_eq!(
        listed, defined,
        "cli::COMMANDS differs from the subcommands of cli::Cli"
    );
}

/// The reporting calls only the event stream's observers make (docs/design.md "One event
/// stream"): a status line, a counter or an outlook set beside a step, instead of an event,
/// could disagree with the log and the webhook.
const REPORTING_CALLS: [&str; 12] = [
    "notify::running(",
    "notify::step(",
    "notify::stopping_node(",
    "notify::outlook(",
    "notify::failed(",
    "notify::stopping(",
    ".supervisor_started(",
    ".daemon_started(",
    ".daemon_exited(",
    ".upgrade_done(",
    ".backup_done(",
    ".set_outlook(",
];

/// The files that may make them: the event stream and the two surfaces' own modules.
const REPORTERS: [&str; 3] = ["events.rs", "notify.rs", "metrics.rs"];

#[test]
fn only_the_event_stream_reports_to_metrics_and_systemd() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        if REPORTERS
            .iter()
            .any(|reporter| relative == Path::new(reporter))
        {
            continue;
        }
        let code = without_test_items(&fs::read_to_string(&file).unwrap());
        for call in REPORTING_CALLS {
            if code.contains(call) {
                found.push(format!("src/{} calls {call}", relative.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "report through an events::Event instead (docs/design.md \"One event stream\"):\n{}",
        found.join("\n")
    );
}
