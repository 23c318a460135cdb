//! The layering of `src`: imports run down the pipeline, never back up.
//! A newcomer adding a channel or a store reads these rules here and in
//! CONTRIBUTING.md; this test keeps them true.

use std::path::{Path, PathBuf};

/// Every module above the foundations.
const ENGINE: &[&str] = &[
    "conversation",
    "channels",
    "store",
    "bus",
    "assistant",
    "knowledge",
    "ingest",
    "admin",
    "app",
    "tools",
];
/// The top of the engine and the tools beside it.
const TOP: &[&str] = &["ingest", "admin", "app", "tools"];

/// (folder or file under `src`, modules it must not name, why).
const RULES: &[(&str, &[&str], &str)] = &[
    ("event.rs", ENGINE, "the event model sits below all"),
    ("fence.rs", ENGINE, "leases sit below all"),
    ("refusals.rs", ENGINE, "the refusal clock sits below all"),
    (
        "sync.rs",
        ENGINE,
        "the writer threads sit below bus and store",
    ),
    ("telemetry", ENGINE, "telemetry sits below all"),
    (
        "channels",
        &["conversation", "bus"],
        "channels never reach up",
    ),
    ("channels", TOP, "channels never reach up"),
    (
        "store",
        &["conversation", "channels", "bus"],
        "the store never reaches up",
    ),
    ("store", TOP, "the store never reaches up"),
    (
        "bus",
        &["conversation", "store", "channels"],
        "the bus carries events only",
    ),
    ("bus", TOP, "the bus never reaches up"),
    ("assistant", &["conversation"], "assistants never reach up"),
    (
        "knowledge",
        &["conversation", "assistant", "channels", "bus"],
        "knowledge bases sit on the store only",
    ),
    ("knowledge", TOP, "knowledge bases never reach up"),
    ("assistant", TOP, "assistants never reach up"),
    ("conversation", TOP, "conversations never reach up"),
    (
        "ingest",
        &["tools", "admin", "app"],
        "the engine never uses the tools",
    ),
    (
        "admin",
        &["tools", "app"],
        "the engine never uses the tools",
    ),
    ("app.rs", &["tools"], "the engine never uses the tools"),
    (
        "console",
        ENGINE,
        "the console's page speaks to the engine only through the admin API",
    ),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Module paths named by `crate::…` in the code (comments left out), with
/// their line numbers.
fn named_modules(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end]
                    .split(',')
                    .map(|s| s.trim().split("::").next().unwrap_or_default())
                    .collect()
            } else {
                vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()]
            };
            out.extend(names.into_iter().map(|m| (n + 1, m.to_string())));
        }
    }
    out
}

#[test]
fn imports_run_down_the_pipeline() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (place, forbidden, why) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(place), &mut files);
        assert!(!files.is_empty(), "no Rust files at src/{place}");
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            for (line, module) in named_modules(&source) {
                if forbidden.contains(&module.as_str()) {
                    broken.push(format!(
                        "{}:{line} names crate::{module} ({why})",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_check_sees_grouped_and_plain_imports() {
    let found = named_modules(
        "use crate::{bus::Delivery, store};\nlet x = crate::conversation::f(); // crate::tools\n",
    );
    let names: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(names, ["bus", "store", "conversation"]);
}
