//! Regression tests of the hostile-input review (issue 12): one test per numbered failure, each
//! through the `chronos2` binary. Inputs are in `tests/data/hardening/` (written by its
//! `make_data.py` with pandas/pyarrow; expected timestamps there come from pandas).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chronos2::data::{ColumnData, Frame};

mod common;
use common::root;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hardening").join(name).to_string_lossy().into_owned()
}

const AIR: &str = "examples/airpassengers.csv";

/// A fresh empty directory for one test.
fn tmpdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chronos2-hardening").join(name);
    if dir.exists() {
        make_writable(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(unix)]
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walk(dir) {
        let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755));
    }
}

#[cfg(not(unix))]
fn make_writable(_dir: &Path) {}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&p));
            }
        }
    }
    out
}

fn command(args: &[&str]) -> Command {
    common::on_test_backend(common::command(args))
}

fn chronos2(args: &[&str]) -> Output {
    command(args).output().expect("run chronos2")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "chronos2 failed: {}", stderr(out));
    stdout(out)
}

/// A failure with an error message (no panic) holding every needle.
fn failed(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "expected a failure, got success; stderr: {err}");
    assert!(out.status.code().is_some(), "killed by a signal: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    err
}

fn forecast_air(extra: &[&str]) -> Output {
    let mut args = vec!["predict", "--input", AIR, "--prediction-length", "4"];
    args.extend(extra);
    chronos2(&args)
}

// 1. Duplicate quantile levels: one column each, in first-appearance order, in every format.
#[test]
fn duplicate_quantile_levels_are_merged() {
    let dir = tmpdir("dup_quantiles");
    let csv = ok(&forecast_air(&["--quantiles", "0.9,0.1,0.5,0.5"]));
    assert_eq!(csv.lines().next().unwrap(), "item_id,timestamp,target_name,predictions,0.9,0.1,0.5");
    let reference = ok(&forecast_air(&["--quantiles", "0.9,0.1,0.5"]));
    assert_eq!(csv, reference);
    for ext in ["csv", "parquet", "json"] {
        let path = dir.join(format!("f.{ext}"));
        ok(&forecast_air(&["--quantiles", "0.1,0.5,0.1", "--output", path.to_str().unwrap()]));
        let names: Vec<String> = match ext {
            "json" => {
                let text = std::fs::read_to_string(&path).unwrap();
                let first = &text[..text.find('}').unwrap()];
                assert_eq!(first.matches("\"0.1\":").count(), 1, "{first}");
                vec![]
            }
            _ => Frame::read(&path).unwrap().names().iter().map(|s| s.to_string()).collect(),
        };
        if ext != "json" {
            assert_eq!(names, ["item_id", "timestamp", "target_name", "predictions", "0.1", "0.5"], "{ext}");
        }
    }
}

// 2. --output naming the input (directly or through a link) is refused; the input is intact.
#[test]
fn output_equal_to_input_is_refused() {
    let dir = tmpdir("output_is_input");
    let input = dir.join("in.csv");
    std::fs::copy(root().join(AIR), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let i = input.to_str().unwrap();
    let out = chronos2(&["predict", "--input", i, "--prediction-length", "2", "--output", i]);
    failed(&out, &["is the input file"]);
    let future = dir.join("future.csv");
    std::fs::write(&future, "item_id,timestamp\nairpassengers,1975-09-01\n").unwrap();
    let f = future.to_str().unwrap();
    let out = chronos2(&["predict", "--input", i, "--future", f, "--prediction-length", "1", "--output", f]);
    failed(&out, &["is the future file"]);
    #[cfg(unix)]
    {
        let link = dir.join("link.csv");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let out = chronos2(&["predict", "--input", i, "--prediction-length", "2", "--output", link.to_str().unwrap()]);
        failed(&out, &["is the input file"]);
        let json = dir.join("in.json");
        std::fs::hard_link(&input, &json).unwrap();
        let out = chronos2(&["embed", "--input", i, "--output", json.to_str().unwrap()]);
        failed(&out, &["is the input file"]);
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

// 3. An existing output keeps its mode; a symlink is written through; a hard link is refused.
#[cfg(unix)]
#[test]
fn existing_output_keeps_mode_and_links() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = tmpdir("existing_output");
    let expected = ok(&forecast_air(&[]));

    let private = dir.join("private.csv");
    std::fs::write(&private, "old").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(&forecast_air(&["--output", private.to_str().unwrap()]));
    assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&private).unwrap(), expected);

    let target = dir.join("target.csv");
    let link = dir.join("link.csv");
    std::fs::write(&target, "old").unwrap();
    std::os::unix::fs::symlink("target.csv", &link).unwrap();
    ok(&forecast_air(&["--output", link.to_str().unwrap()]));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), expected);

    let a = dir.join("a.csv");
    let b = dir.join("b.csv");
    std::fs::write(&a, "old").unwrap();
    std::fs::hard_link(&a, &b).unwrap();
    failed(&forecast_air(&["--output", a.to_str().unwrap()]), &["hard links"]);
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "old");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "old");

    // A link to something that is not a regular file (here a FIFO) is refused, never replaced.
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let to_fifo = dir.join("fifo.csv");
    std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
    failed(&forecast_air(&["--output", to_fifo.to_str().unwrap()]), &["not a regular file"]);
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

// 4. The bundled-model cache is checked by content, private, and never under a shared directory.
#[cfg(unix)]
#[test]
fn bundled_cache_is_verified_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmpdir("bundled_cache");
    let cache = dir.join("cache");
    let run = |cmd: &mut Command| cmd.output().expect("run chronos2");
    let expected =
        ok(&run(command(&["predict", "--input", AIR, "--prediction-length", "4"]).env("XDG_CACHE_HOME", &cache)));
    let model_dir = cache.join("chronos2/chronos2-mini");
    assert_eq!(std::fs::metadata(&model_dir).unwrap().permissions().mode() & 0o777, 0o700);
    // Same size, different bytes: the last 4 KiB of weights zeroed.
    let weights = model_dir.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 4096..].fill(0);
    std::fs::write(&weights, &bytes).unwrap();
    let again =
        ok(&run(command(&["predict", "--input", AIR, "--prediction-length", "4"]).env("XDG_CACHE_HOME", &cache)));
    assert_eq!(again, expected);
    assert_eq!(
        std::fs::read(&weights).unwrap(),
        std::fs::read(root().join("models/chronos2-mini/model.safetensors")).unwrap()
    );

    // No HOME and no XDG_CACHE_HOME: an error, nothing written to a shared directory.
    let out = run(command(&["predict", "--input", AIR, "--prediction-length", "4"])
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HOME"));
    failed(&out, &["HOME", "--model"]);

    // A relative XDG_CACHE_HOME is ignored (HOME/.cache is used).
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let input = root().join(AIR);
    ok(&run(command(&["predict", "--input", input.to_str().unwrap(), "--prediction-length", "4"])
        .env("XDG_CACHE_HOME", "relative-cache")
        .env("HOME", &home)
        .current_dir(&dir)));
    assert!(home.join(".cache/chronos2/chronos2-mini/model.safetensors").is_file());
    assert!(!dir.join("relative-cache").exists());
}

// 5. Infinite or out-of-float32-range values are refused, naming the item and the row.
#[test]
fn non_finite_input_values_are_refused() {
    let dir = tmpdir("non_finite");
    let good: String = (1..=12).map(|m| format!("A,2024-{m:02}-01,{m}\n")).collect();
    for (bad, shown) in [("inf", "inf"), ("-inf", "-inf"), ("1e39", "1e+39"), ("1e308", "1e+308")] {
        let text = format!("item_id,timestamp,target\n{}A,2025-01-01,{bad}\n", good);
        let path = dir.join("in.csv");
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let out = chronos2(&["predict", "--input", p, "--prediction-length", "2"]);
        failed(&out, &["item 'A'", shown, "target column 'target'", "row 13"]);
        assert!(out.stdout.is_empty());
        let json = dir.join("e.json");
        let out = chronos2(&["embed", "--input", p, "--output", json.to_str().unwrap()]);
        failed(&out, &["item 'A'", "row 13"]);
        assert!(!json.exists());
    }
    // A covariate too.
    let text: String =
        (1..=12).map(|m| format!("A,2024-{m:02}-01,{m},{}\n", if m == 5 { "inf" } else { "1" })).collect();
    let path = dir.join("cov.csv");
    std::fs::write(&path, format!("item_id,timestamp,target,price\n{text}")).unwrap();
    let out = chronos2(&["predict", "--input", path.to_str().unwrap(), "--prediction-length", "2"]);
    failed(&out, &["item 'A'", "covariate column 'price'", "row 5"]);
}

/// A copy of chronos2-mini in `dir` (weights patched by `patch`, config edited by `config`).
fn model_copy(dir: &Path, patch: impl FnOnce(&mut Vec<u8>), config: impl FnOnce(String) -> String) -> String {
    let src = root().join("models/chronos2-mini");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let mut weights = std::fs::read(src.join("model.safetensors")).unwrap();
    patch(&mut weights);
    std::fs::write(model.join("model.safetensors"), weights).unwrap();
    let text = std::fs::read_to_string(src.join("config.json")).unwrap();
    std::fs::write(model.join("config.json"), config(text)).unwrap();
    model.to_string_lossy().into_owned()
}

// 6. A NaN weight is refused at load.
#[test]
fn nan_weights_are_refused() {
    let dir = tmpdir("nan_weights");
    let model = model_copy(
        &dir,
        |w| {
            // The last f32 of the data section (the file ends with tensor data).
            let n = w.len();
            w[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
        },
        |c| c,
    );
    let out = chronos2(&["predict", "--model", &model, "--input", AIR, "--prediction-length", "4"]);
    failed(&out, &["non-finite", "model.safetensors"]);
    assert!(out.stdout.is_empty());
}

// 7. Parquet in every codec pandas writes gives the same forecast as the CSV.
#[test]
fn compressed_parquet_is_read() {
    let expected = ok(&chronos2(&["predict", "--input", &data("small.csv"), "--prediction-length", "3"]));
    for codec in ["snappy", "zstd", "gzip", "brotli", "lz4"] {
        let out =
            chronos2(&["predict", "--input", &data(&format!("small_{codec}.parquet")), "--prediction-length", "3"]);
        assert_eq!(ok(&out), expected, "{codec}");
    }
}

// 8. The out-of-range warning names only the levels outside the model's range.
#[test]
fn out_of_range_warning_names_only_outside_levels() {
    let out = forecast_air(&["--quantiles", "0.005,0.1,0.5,0.9"]);
    ok(&out);
    let err = stderr(&out);
    assert!(err.contains("0.005"), "{err}");
    let warning = err.lines().find(|l| l.contains("0.005")).unwrap();
    assert!(!warning.contains("0.1") && !warning.contains("0.9,"), "{warning}");
}

// 9. An output that cannot be written is reported before any work (here: before loading a model
// that does not exist).
#[cfg(target_os = "linux")]
#[test]
fn unwritable_output_is_reported_first() {
    // /proc refuses new files even to root.
    let out = chronos2(&[
        "predict",
        "--model",
        "/no/such/model",
        "--input",
        AIR,
        "--prediction-length",
        "4",
        "--output",
        "/proc/forecast.csv",
    ]);
    let err = failed(&out, &["/proc/forecast.csv", "cannot create files in directory /proc"]);
    assert!(!err.contains("/no/such/model"), "{err}");
}

/// The same CSV forecast: identical on the CPU backend, whose kernels compute each row alone;
/// on another backend (`CHRONOS2_TEST_BACKEND`) the same rows and labels and every number within
/// 1e-6 relative, since its matrix products may round differently with the batch's shape
/// (measured: MLX with OpenBLAS on an AMD EPYC Zen 4, batches of 256 vs 1024 rows, at most
/// 4.1e-7 relative).
fn assert_same_forecast(got: &str, expected: &str) {
    if std::env::var("CHRONOS2_TEST_BACKEND").map_or(true, |b| b == "cpu") {
        assert_eq!(got, expected);
        return;
    }
    let (got, expected): (Vec<&str>, Vec<&str>) = (got.lines().collect(), expected.lines().collect());
    assert_eq!(got.len(), expected.len(), "row count");
    for (g, e) in got.iter().zip(&expected) {
        let (g, e): (Vec<&str>, Vec<&str>) = (g.split(',').collect(), e.split(',').collect());
        assert_eq!(g.len(), e.len());
        for (a, b) in g.iter().zip(&e) {
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{a} vs {b}"),
                _ => assert_eq!(a, b),
            }
        }
    }
}

// 10. A huge --batch-size is capped at 1024 rows per call (said on stderr) and gives the same
// forecast as the default 256: 1100 items, so both runs split the input, differently.
#[test]
fn huge_batch_size_is_capped_with_the_same_output() {
    let dir = tmpdir("huge_batch");
    let mut text = String::from("item_id,timestamp,target\n");
    for i in 0..1100 {
        for k in 0..20 {
            let v = 10.0 + 3.0 * ((k as f64) / 3.0 + i as f64).sin() + 0.01 * i as f64;
            text.push_str(&format!("s{i},2024-01-{:02},{v:.3}\n", k + 1));
        }
    }
    let input = dir.join("many.csv");
    std::fs::write(&input, text).unwrap();
    let args = ["predict", "--input", input.to_str().unwrap(), "--prediction-length", "3"];
    let normal = ok(&chronos2(&args));
    let mut big = args.to_vec();
    big.extend(["--batch-size", "1000000000"]);
    let out = chronos2(&big);
    assert_same_forecast(&ok(&out), &normal);
    assert!(stderr(&out).contains("capped at 1024"), "{}", stderr(&out));
}

// 11. A --model symlink loop is named as such, relative or absolute, and never downloaded.
#[cfg(unix)]
#[test]
fn model_symlink_loop_is_named() {
    let dir = tmpdir("model_loop");
    std::os::unix::fs::symlink("b", dir.join("a")).unwrap();
    std::os::unix::fs::symlink("a", dir.join("b")).unwrap();
    let abs = dir.join("a");
    let out = chronos2(&["predict", "--model", abs.to_str().unwrap(), "--input", AIR, "--prediction-length", "2"]);
    let err = failed(&out, &["cannot follow"]);
    assert!(!err.contains("no such directory"), "{err}");
    let input = root().join(AIR);
    let out = command(&[
        "predict",
        "--model",
        "model_loop/a",
        "--input",
        input.to_str().unwrap(),
        "--prediction-length",
        "2",
    ])
    .current_dir(dir.parent().unwrap())
    .output()
    .unwrap();
    let err = failed(&out, &["cannot follow"]);
    assert!(!err.contains("Hugging Face"), "{err}");
}

// 12. A bad config.json is reported at load, naming the file and the field.
#[test]
fn bad_config_names_file_and_field() {
    let dir = tmpdir("bad_config");
    for (i, (from, to, field)) in [
        ("\"context_length\": 2048", "\"context_length\": 0", "chronos_config.context_length"),
        ("\"max_output_patches\": 64", "\"max_output_patches\": 0", "chronos_config.max_output_patches"),
        ("      0.5,\n", "", "0.5"),
    ]
    .into_iter()
    .enumerate()
    {
        let sub = dir.join(i.to_string());
        let model = model_copy(
            &sub,
            |_| {},
            |c| {
                assert!(c.contains(from), "{from}");
                c.replace(from, to)
            },
        );
        let out = chronos2(&["predict", "--model", &model, "--input", AIR, "--prediction-length", "2"]);
        let err = failed(&out, &["config.json", field]);
        assert!(!err.contains("invalid input"), "{err}");
    }
}

// 13. decimal128 and float16 Parquet targets are read as numbers.
#[test]
fn decimal_and_float16_targets_are_numbers() {
    let args = |input: String| -> Vec<String> {
        vec!["predict".into(), "--input".into(), input, "--prediction-length".into(), "3".into()]
    };
    let run = |a: Vec<String>| ok(&chronos2(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(run(args(data("small_decimal.parquet"))), run(args(data("small.csv"))));
    assert_eq!(run(args(data("small_float16.parquet"))), run(args(data("small_float16.csv"))));
}

// 14. Forecast timestamps past the year 9999 are an error, not unreadable text.
#[test]
fn timestamps_past_year_9999_are_refused() {
    let dir = tmpdir("year_10000");
    let text: String = (9990..=9999).map(|y| format!("A,{y}-01-01,{}\n", y - 9989)).collect();
    let path = dir.join("in.csv");
    std::fs::write(&path, format!("item_id,timestamp,target\n{text}")).unwrap();
    let out = chronos2(&["predict", "--input", path.to_str().unwrap(), "--prediction-length", "2"]);
    failed(&out, &["year 9999", "item 'A'"]);
    assert!(out.stdout.is_empty());
}

// 15. Negative numbers reach the range checks instead of a parser error.
#[test]
fn negative_option_values_get_range_messages() {
    failed(&forecast_air(&["--quantiles", "-0.1"]), &["between 0 and 1"]);
    let out = chronos2(&["predict", "--input", AIR, "--prediction-length", "-1"]);
    let err = failed(&out, &["--prediction-length", "at least 1"]);
    assert!(!err.contains("unexpected argument"), "{err}");
    failed(&forecast_air(&["--batch-size", "-5"]), &["--batch-size", "at least 1"]);
    failed(&forecast_air(&["--context-length", "-5"]), &["--context-length", "at least 1"]);
}

/// Runs with standard output connected to a pipe whose reader is already closed.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command(args).stdout(writer).stderr(Stdio::piped()).output().expect("run chronos2")
}

// Closing standard output early ends the program quietly.
#[test]
fn closed_stdout_ends_quietly() {
    for args in [&["info"][..], &["predict", "--input", AIR, "--prediction-length", "4"][..]] {
        let out = with_closed_stdout(args);
        assert!(out.status.success(), "{args:?}: {:?} {}", out.status, stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}

// SIGINT during the final write is documented.
#[test]
fn help_documents_interrupts_and_output_files() {
    for cmd in ["predict", "embed"] {
        let help = ok(&chronos2(&[cmd, "--help"]));
        assert!(help.contains("SIGINT") && help.contains("symbolic link") && help.contains("hard links"), "{help}");
    }
}

// 16. Time zones: a tz-aware Parquet column keeps its zone, daily frequencies are inferred and
// stepped in local calendar time, and ISO offsets across a DST change are accepted.
#[test]
fn time_zones_are_kept() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("paris_expected.json")).unwrap()).unwrap();
    let timestamps = |csv: &str, item: &str| -> Vec<String> {
        csv.lines()
            .skip(1)
            .filter(|l| l.starts_with(&format!("{item},")))
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect()
    };
    let want = |item: &str| -> Vec<String> {
        expected[item]["timestamps"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    for (input, items) in [
        ("paris_daily.parquet", &["P", "Q"][..]),
        ("paris_hourly.parquet", &["H"][..]),
        ("paris_daily.csv", &["P"][..]),
    ] {
        let out = chronos2(&["predict", "--input", &data(input), "--prediction-length", "5"]);
        let csv = ok(&out);
        for item in items {
            assert_eq!(timestamps(&csv, item), want(item), "{input} item {item}");
        }
    }
    // Parquet output keeps the zone.
    let dir = tmpdir("time_zones");
    let path = dir.join("f.parquet");
    ok(&chronos2(&[
        "predict",
        "--input",
        &data("paris_daily.parquet"),
        "--prediction-length",
        "5",
        "--output",
        path.to_str().unwrap(),
    ]));
    let frame = Frame::read(&path).unwrap();
    let ts = &frame.column("timestamp").unwrap().data;
    assert!(matches!(ts, ColumnData::Timestamp(..)));
    let labels: Vec<String> = (0..5).map(|i| ts.label_at(i).unwrap()).collect();
    assert_eq!(labels, want("P"));
}
