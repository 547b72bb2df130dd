//! The facade's modules stand on layers: no cycle of `crate::<module>` references among its
//! top-level modules (a file `src/x.rs` or a folder `src/x/`), so that, for one, `backend`,
//! `registry` and `error` no longer import each other in a loop (`kind` <- `error` <- `registry`
//! <- `backend`). Comments and `#[cfg(test)] mod tests` blocks do not count; the crate root
//! (`lib.rs`) is above every module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules each top-level module refers to through `crate::`.
fn references() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(src()).unwrap().to_string_lossy().replace('\\', "/");
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    edges.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle through `from`, if any (depth-first search).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>) -> Option<Vec<String>> {
    let last = path.last().unwrap().clone();
    for next in graph.get(&last).into_iter().flatten() {
        if let Some(at) = path.iter().position(|m| m == next) {
            let mut cycle = path[at..].to_vec();
            cycle.push(next.clone());
            return Some(cycle);
        }
        path.push(next.clone());
        if let Some(cycle) = cycle_from(graph, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

#[test]
fn facade_modules_have_no_import_cycle() {
    let graph = references();
    for module in ["backend", "registry", "error", "kind", "engine", "data"] {
        assert!(graph.contains_key(module), "module {module} not found: {graph:?}");
    }
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, &mut vec![module.clone()]) {
            panic!("import cycle among the facade's modules: {}", cycle.join(" -> "));
        }
    }
    // The loop the issue found is gone: error and registry do not import backend.
    assert!(!graph["error"].contains("backend") && !graph["error"].contains("registry"), "{:?}", graph["error"]);
    assert!(!graph["registry"].contains("backend"), "{:?}", graph["registry"]);
}
