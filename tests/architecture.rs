//! Protects the module layering that ARCHITECTURE.md draws: every dependency arrow points
//! down. A tier imports no other tier, nothing below the coordinator imports the monitoring
//! layer, the shared modules import no tier, and the coordinator does no cold-file I/O of its
//! own (every cold byte goes through the cold tier's `ColdStore`).
//!
//! It reads the crate's sources (production code only: a file's `#[cfg(test)]` module and
//! comments are skipped) and collects the `crate::<module>` paths each module uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const TIERS: [&str; 3] = ["hot_storage", "warm_storage", "cold_storage"];
/// Modules every layer may use: types and utilities shared by the tiers.
const SHARED: [&str; 10] = [
    "blocking",
    "catalog",
    "clock",
    "config",
    "dir_lock",
    "error",
    "failpoint",
    "metrics",
    "record",
    "tier",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/warm_storage/apply.rs` → `warm_storage`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// A file's production code: up to its test module, without comments.
fn production(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate modules named in `code`: `crate::x` paths, including `use crate::{x, y::z}` lists.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let close = list.find('}').unwrap_or(list.len());
            for item in list[..close].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out.retain(|m| m.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    out
}

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        let code = production(&std::fs::read_to_string(&file).unwrap());
        let used = graph.entry(module.clone()).or_default();
        used.extend(crate_modules(&code).into_iter().filter(|m| *m != module));
    }
    graph
}

#[test]
fn architecture_dependency_arrows_point_down() {
    let graph = imports();
    assert!(graph.contains_key("coordinator") && graph.contains_key("warm_storage"));
    let mut wrong = Vec::new();
    for (module, used) in &graph {
        for dep in used {
            let allowed = match module.as_str() {
                // The coordinator is the top: it may use anything but the fuzzing hooks.
                "coordinator" => dep != "fuzzing",
                // Test tooling behind a feature: drives the whole store.
                "fuzzing" | "lib" => true,
                // Monitoring reads the tiers' snapshots and problem types; the coordinator
                // feeds it.
                "monitor" => SHARED.contains(&dep.as_str()) || TIERS.contains(&dep.as_str()),
                // A tier uses the shared modules only: never another tier, the monitoring
                // layer or the coordinator.
                m if TIERS.contains(&m) => SHARED.contains(&dep.as_str()),
                // The shared modules use each other only.
                m if SHARED.contains(&m) => SHARED.contains(&dep.as_str()),
                other => panic!("module `{other}` is not placed in a layer: add it to this test"),
            };
            if !allowed {
                wrong.push(format!("{module} -> {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows pointing up or across: {wrong:?}");
}

/// The coordinator touches the file system only for the data directory's write probe and the
/// backup target directory; every cold file is read, written, listed and deleted by the cold
/// tier through its `ColdStore`.
#[test]
fn architecture_coordinator_does_no_cold_file_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/coordinator");
    let mut files = Vec::new();
    sources(&dir, &mut files);
    let mut found = BTreeMap::new();
    for file in files {
        let code = production(&std::fs::read_to_string(&file).unwrap());
        for line in code.lines().filter(|l| l.contains("std::fs::")) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            found
                .entry(name)
                .or_insert_with(Vec::new)
                .push(line.trim().to_owned());
        }
        assert!(
            !code.contains("cold_storage::store"),
            "{} uses the cold store directly",
            file.display()
        );
    }
    let files: BTreeSet<_> = found.keys().map(String::as_str).collect();
    assert!(
        // backup.rs writes the backup directory, export.rs the user's export file: never a
        // cold file (the lines are checked below).
        files.is_subset(&BTreeSet::from(["mod.rs", "backup.rs", "export.rs"])),
        "file system calls in the coordinator: {found:#?}"
    );
    for line in found.values().flatten() {
        assert!(
            !line.contains("cold") && !line.contains("file_path"),
            "a cold file touched by the coordinator: {line}"
        );
    }
}
