//! The layering of `src/`, checked on every test run: which top-level
//! module uses which is read from the `crate::` paths in its code (not its
//! comments), and
//! no module may use one above it. The order (top first) is the one
//! `src/lib.rs` draws; modules on one line are peers and may not use each
//! other in both directions (a cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module, top layer first. A module may use only modules
/// on later lines (and never its own line's peers in a cycle).
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["server", "reload"],
    &["admin", "demo"],
    &["proxy", "egress"],
    &["limits", "replay", "queue", "metrics", "routes"],
    &["config"],
    &["schemes", "http1"],
    &["dedupe", "reject", "logging"],
];

/// The top-level modules each module's files name in `crate::` paths.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let module = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            // Code only: a doc comment may point anywhere.
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let used = graph.entry(module.clone()).or_default();
            for (at, _) in text.match_indices("crate::") {
                let preceded = text[..at].chars().next_back();
                if preceded.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // `hookguard::...` in doc examples, `mycrate::`
                }
                let rest = &text[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    used.insert(name);
                }
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| {
            panic!("src/{module} is in no layer: add it to LAYERS and to src/lib.rs")
        })
}

#[test]
fn no_module_uses_one_above_it_and_the_wire_uses_nothing() {
    let graph = uses();
    let mut upward = Vec::new();
    for (module, used) in &graph {
        for other in used {
            if layer_of(other) < layer_of(module) {
                upward.push(format!("{module} uses {other}, which is above it"));
            }
        }
    }
    assert!(upward.is_empty(), "{upward:#?}");
    assert_eq!(
        graph["http1"],
        BTreeSet::new(),
        "the wire knows nothing of the rest of the crate"
    );
}

#[test]
fn no_two_modules_use_each_other() {
    let graph = uses();
    let mut cycles = Vec::new();
    for (module, used) in &graph {
        for other in used {
            if graph.get(other).is_some_and(|back| back.contains(module)) && module < other {
                cycles.push(format!("{module} <-> {other}"));
            }
        }
    }
    assert!(cycles.is_empty(), "{cycles:#?}");
}
