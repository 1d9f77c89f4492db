//! The module map of README "Architecture" and docs/design.md "Module map", checked: the folders
//! under `src/` are layers (`home` < `acquire` < `upgrade` < `supervisor` < `commands`), the
//! shared pieces at the top of `src/` use no layer, and no layer's code (tests aside) uses one
//! above it. A `use crate::…` that breaks the rule fails here with the file and the import.

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

/// The first path segment after each `crate::` in `code`.
fn crate_modules(code: &str) -> Vec<&str> {
    code.match_indices("crate::")
        .map(|(at, prefix)| {
            let rest = &code[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
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
        let text = fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for module in crate_modules(code) {
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
