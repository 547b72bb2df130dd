//! Only the registry knows the backends: no backend name appears in the sources of the facade,
//! the CLI, the Python package, the benchmarks or xtask, except in tests, in the registry
//! (`crates/chronos2/src/registry/`: its list and one entry per backend) and in xtask's build
//! entries (`xtask/src/backend_builds/`). Names are read from the registry, so a new backend is checked
//! as soon as it is listed.
//!
//! What counts: a name as a word in code or strings (as written, Capitalized, UPPERCASE),
//! outside comments (lines starting with `//` or `#`, trailing `// ...`) and outside
//! `#[cfg(test)] mod tests` blocks. Words that are not backend names: `CPU` (the processor: "CPU
//! model", "PyTorch CPU"), the adapter layout `mlx-lm`, torch's `Tensor.cpu()` and macOS's sysctl
//! key `machdep.cpu.brand_string`.
//! The benchmark sources checked are the matrix (`src/`) and the forward bench; the kernel
//! benches measure one backend crate's kernels, as that crate's own tests do.

use std::path::{Path, PathBuf};

use chronos2::BackendKind;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Source files under `dir` with one of `exts`, skipping `skip` (paths relative to the root).
fn sources(dir: &str, exts: &[&str], skip: &[&str], out: &mut Vec<PathBuf>) {
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if exts.iter().any(|e| rel.ends_with(e)) {
                out.push(path);
            }
        }
    }
}

/// Words that look like a backend name but are not one.
const NOT_BACKENDS: [&str; 5] = ["CPU", "mlx-lm", "mlx_lm", ".cpu()", "machdep.cpu.brand_string"];

/// The forms of a backend name searched for: as written, Capitalized and UPPERCASE.
fn forms(name: &str) -> Vec<String> {
    let mut cap = name.to_string();
    cap[..1].make_ascii_uppercase();
    let mut forms = vec![name.to_string(), cap, name.to_ascii_uppercase()];
    forms.dedup();
    forms
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `word` stands in `line` as a word (not part of a longer identifier), once the
/// words of [`NOT_BACKENDS`] are taken out.
fn finds_word(line: &str, word: &str) -> bool {
    let line = NOT_BACKENDS.iter().fold(line.to_string(), |l, n| l.replace(n, " "));
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

/// The lines of a source that are code: no comments, no `#[cfg(test)] mod tests` block.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let python = path.extension().is_some_and(|e| e == "py");
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let t = line.trim_start();
        if !python
            && t == "#[cfg(test)]"
            && lines.peek().is_some_and(|(_, next)| next.trim_start().starts_with("mod tests"))
        {
            // The test module runs to the end of the file by this project's layout.
            break;
        }
        let comment = if python { t.starts_with('#') } else { t.starts_with("//") };
        if !comment {
            // A trailing comment is not code either.
            let code = if python { line } else { line.split(" // ").next().unwrap_or(line) };
            out.push((i + 1, code.to_string()));
        }
    }
    out
}

#[test]
fn no_backend_name_outside_the_registry() {
    let mut files = Vec::new();
    sources("crates/chronos2/src", &[".rs"], &["crates/chronos2/src/registry/"], &mut files);
    sources("crates/chronos2-cli/src", &[".rs"], &[], &mut files);
    sources("crates/chronos2-py/src", &[".rs"], &[], &mut files);
    sources("crates/chronos2-py/python", &[".py"], &[], &mut files);
    sources("crates/chronos2-bench/src", &[".rs"], &[], &mut files);
    files.push(root().join("crates/chronos2-bench/benches/forward.rs"));
    sources("xtask/src", &[".rs"], &["xtask/src/backend_builds/"], &mut files);
    assert!(files.len() > 20, "found only {} sources", files.len());
    let mut found = Vec::new();
    for name in BackendKind::ALL.map(BackendKind::name) {
        for form in forms(name) {
            for path in &files {
                for (line_no, line) in code_lines(path) {
                    if finds_word(&line, &form) {
                        let rel = path.strip_prefix(root()).unwrap().display().to_string();
                        found.push(format!("{rel}:{line_no}: {}", line.trim()));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "backend names outside the registry:\n{}", found.join("\n"));
}

/// The check finds a name where one is written (it cannot pass by finding nothing).
#[test]
fn the_check_sees_names() {
    let name = BackendKind::ALL[1].name();
    assert!(finds_word(&format!("let x = \"{name}\";"), name));
    assert!(finds_word(&format!("Backend::{}", forms(name)[1]), &forms(name)[1]));
    assert!(!finds_word(&format!("chronos2_candle_{name}x"), name));
    assert!(!finds_word("PyTorch CPU fp32", "CPU"));
    assert!(!finds_word("an mlx-lm layout", "mlx"));
}
