//! Interrupted commands leave nothing behind: `finetune`, `fuse` and `predict --adapter` stopped
//! by SIGINT or SIGTERM at any moment leave neither their output's staging directory nor a
//! temporary file; a later run removes `.partial-*` leftovers of processes
//! that are gone (killed by SIGKILL, which cannot be handled).

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::root;

const TINY: &str = "tests/fixtures/models/tiny";
const INPUT: &str = "examples/airpassengers.csv";

fn tmpdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chronos2-cli-interrupt").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The isolated `chronos2 args` (tests/common) with a private TMPDIR, spawned to be signalled.
/// The arguments of `predict --adapter` on the tiny model, writing `out`.
fn predict_with_adapter<'a>(adapter: &'a Path, out: &'a Path) -> [&'a str; 11] {
    let path = |p: &'a Path| p.to_str().unwrap();
    [
        "predict",
        "--model",
        TINY,
        "--adapter",
        path(adapter),
        "--input",
        INPUT,
        "--prediction-length",
        "12",
        "--output",
        path(out),
    ]
}

fn spawn(args: &[&str], tmp: &Path) -> Child {
    common::command(args).env("TMPDIR", tmp).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// After the process ends: the output is there (renamed into place whole, before the signal)
/// or absent, and nothing else is in `dir` or in the private TMPDIR.
fn assert_nothing_left(mut child: Child, dir: &Path, tmp: &Path, output: &str, what: &str) {
    let status = child.wait().unwrap();
    let left = entries(dir);
    if status.success() {
        assert_eq!(left, [output], "{what}: finished, but left {left:?}");
    } else {
        assert!(left.is_empty() || left == [output], "{what}: interrupted ({status}), but left {left:?}");
    }
    assert!(entries(tmp).is_empty(), "{what}: left {:?} in TMPDIR", entries(tmp));
}

#[test]
fn an_interrupted_finetune_leaves_nothing() {
    for (signal_name, delay_ms) in [("INT", 300), ("TERM", 1500), ("INT", 3000)] {
        let (dir, tmp) = (tmpdir(&format!("finetune-{delay_ms}")), tmpdir(&format!("finetune-{delay_ms}-tmp")));
        let out = dir.join("out");
        let args = [
            "finetune",
            "--model",
            TINY,
            "--input",
            INPUT,
            "--prediction-length",
            "12",
            "--mode",
            "lora",
            "--steps",
            "1000000",
            "--batch-size",
            "4",
            "--output",
            out.to_str().unwrap(),
        ];
        let child = spawn(&args, &tmp);
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, signal_name);
        assert_nothing_left(child, &dir, &tmp, "out", &format!("finetune SIG{signal_name} after {delay_ms} ms"));
    }
}

#[test]
fn an_interrupted_fuse_or_predict_with_an_adapter_leaves_nothing() {
    let adapter = root().join("tests/fixtures/finetune/adapters/tiny_lora");
    for delay_ms in [0, 5, 20, 60, 150, 400] {
        let (dir, tmp) = (tmpdir(&format!("fuse-{delay_ms}")), tmpdir(&format!("fuse-{delay_ms}-tmp")));
        let out = dir.join("fused");
        let args = ["fuse", "--model", TINY, "--adapter", adapter.to_str().unwrap(), "--output", out.to_str().unwrap()];
        let child = spawn(&args, &tmp);
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, "INT");
        assert_nothing_left(child, &dir, &tmp, "fused", &format!("fuse SIGINT after {delay_ms} ms"));

        let (dir, tmp) = (tmpdir(&format!("predict-{delay_ms}")), tmpdir(&format!("predict-{delay_ms}-tmp")));
        let out = dir.join("p.csv");
        let args = predict_with_adapter(&adapter, &out);
        let child = spawn(&args, &tmp);
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, "INT");
        assert_nothing_left(child, &dir, &tmp, "p.csv", &format!("predict --adapter SIGINT after {delay_ms} ms"));
    }
}

/// `predict --adapter` fuses in memory: it runs with a TMPDIR where nothing can be created (a
/// file) and leaves only its output.
#[test]
fn predict_with_an_adapter_writes_nothing_but_its_output() {
    let adapter = root().join("tests/fixtures/finetune/adapters/tiny_lora");
    let dir = tmpdir("predict-no-tmp");
    let tmp = dir.join("tmpdir-is-a-file");
    std::fs::write(&tmp, b"").unwrap();
    let out = dir.join("p.csv");
    let args = predict_with_adapter(&adapter, &out);
    let output = spawn(&args, &tmp).wait_with_output().unwrap();
    assert!(output.status.success(), "predict --adapter failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(entries(&dir), ["p.csv", "tmpdir-is-a-file"]);
    assert_eq!(std::fs::metadata(&tmp).unwrap().len(), 0);
}

#[test]
fn stale_staging_of_dead_processes_is_removed() {
    let (dir, tmp) = (tmpdir("stale"), tmpdir("stale-tmp"));
    // a process id that is gone: a child that has exited and been waited for
    let mut dead = Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    let stale = dir.join(format!(".fused.partial-{}", dead.id()));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"truncated").unwrap();
    // a live process's staging stays (this test's own id)
    let live = dir.join(format!(".fused.partial-{}", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    let adapter = root().join("tests/fixtures/finetune/adapters/tiny_lora");
    let out = dir.join("fused");
    let args = ["fuse", "--model", TINY, "--adapter", adapter.to_str().unwrap(), "--output", out.to_str().unwrap()];
    let child = spawn(&args, &tmp);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected = vec![live.file_name().unwrap().to_string_lossy().into_owned(), "fused".to_string()];
    assert_eq!(entries(&dir), expected);
}
