//! `chronos2 calibrate --quick` writes a profile of this machine that `auto` then uses, and
//! `--explain-backend` and `chronos2 info` show which profile is used: without a profile of this
//! machine, the built-in one, said to be measured elsewhere, with how to calibrate.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use serde_json::Value;

fn tmpdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chronos2-cli-calibrate").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The isolated binary (tests/common) with its own configuration directory, on `auto`.
fn chronos2(config: &Path, args: &[&str]) -> Output {
    common::command(args).env("XDG_CONFIG_HOME", config).output().expect("run chronos2")
}

fn ok(out: &Output) -> (String, String) {
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "failed: {stderr}");
    (stdout, stderr)
}

const PREDICT: [&str; 6] =
    ["predict", "--input", "examples/airpassengers.csv", "--prediction-length", "12", "--explain-backend"];

#[test]
fn quick_calibration_writes_the_profile_that_auto_uses() {
    let config = tmpdir("config");
    let profile = config.join("chronos2/profile.json");

    // No profile of this machine: the built-in one, measured elsewhere, and how to calibrate.
    let (info, _) = ok(&chronos2(&config, &["info"]));
    assert!(info.contains("dispatch profile: built-in") && info.contains("measured elsewhere"), "{info}");
    assert!(info.contains("run `chronos2 calibrate`"), "{info}");
    let (_, explained) = ok(&chronos2(&config, &PREDICT));
    assert!(explained.contains("profile: built-in") && explained.contains("measured elsewhere"), "{explained}");

    let (stdout, stderr) = ok(&chronos2(&config, &["calibrate", "--quick"]));
    assert!(stdout.contains(&profile.display().to_string()), "{stdout}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    let machine = &json["machine"];
    assert!(machine["threads"].as_u64().unwrap() >= 1, "{machine}");
    assert!(!machine["processor"].as_str().unwrap().is_empty(), "{machine}");
    assert!(machine["features"].is_array(), "{machine}");
    // Every precision of every usable backend is measured (the CPU backend runs all five).
    let entries = json["entries"].as_array().unwrap();
    for precision in ["fp32", "bf16", "int8", "int4", "w8a8"] {
        let with = entries.iter().filter(|e| e["precision"] == precision).count();
        assert!(with >= 3, "{precision}: {with} entries\n{stderr}");
        assert!(
            entries.iter().filter(|e| e["precision"] == precision).all(|e| e["timings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["route"] == "cpu" && t["median_ms"].as_f64().unwrap() > 0.0)),
            "{precision}"
        );
    }

    // `auto` now uses it, and says so.
    let (info, _) = ok(&chronos2(&config, &["info"]));
    assert!(info.contains("dispatch profile: calibrated on this machine: chronos2 calibrate"), "{info}");
    let (_, explained) = ok(&chronos2(&config, &PREDICT));
    assert!(explained.contains("profile: calibrated on this machine"), "{explained}");
    assert!(explained.contains(&profile.display().to_string()), "{explained}");

    // A profile calibrated on another machine is not used for this one.
    let mut other = json.clone();
    other["machine"]["processor"] = Value::from("Another CPU");
    std::fs::write(&profile, other.to_string()).unwrap();
    let (info, _) = ok(&chronos2(&config, &["info"]));
    assert!(info.contains("dispatch profile: built-in") && info.contains("calibrated on another machine"), "{info}");
    assert!(info.contains("CPU Another CPU"), "{info}");
}

#[test]
fn calibrate_refuses_full_with_quick() {
    let config = tmpdir("conflict");
    let out = chronos2(&config, &["calibrate", "--quick", "--full"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    assert!(!config.join("chronos2/profile.json").exists());
}
