//! `chronos2 calibrate`: measures this machine for `auto` and writes the profile it reads.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use chronos2::calibrate::CalibrateOptions;
use chronos2::Chronos2;

pub const CALIBRATE_ABOUT: &str = "\
Measure this machine for `--backend auto` and write the profile it reads.

Every usable backend is measured, compiled and not where it compiles its forward, in every
precision it runs, over the shapes of the built-in profile (--quick, the default: those of at most
8 series and 512 steps, 3 runs after 1 warm-up; --full: every shape, 10 runs after 3 warm-ups), at
the thread count this process runs with (set RAYON_NUM_THREADS as you will when forecasting).

The profile goes to $XDG_CONFIG_HOME/chronos2/profile.json (else ~/.config/chronos2/profile.json)
unless --output is given; it records the CPU model, its features and the thread count, and `auto`
uses it only on that machine (`chronos2 info` and `predict --explain-backend` show which profile is
used). $CHRONOS2_PROFILE, when set, names a profile used as it is.";

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Model to measure (directory or Hugging Face id; default: the bundled chronos2-mini).
    /// Measure the model you will forecast with: the crossover depends on its size.
    #[arg(long, value_name = "DIR|HF_ID")]
    model: Option<String>,
    /// The small shapes only, 3 runs after 1 warm-up (the default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Every shape of the built-in profile, 10 runs after 3 warm-ups.
    #[arg(long)]
    full: bool,
    /// Write the profile here instead of the user's configuration directory.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn calibrate(args: CalibrateArgs) -> Result<()> {
    let _ = args.quick; // the default; the flag exists to say so
    let options = CalibrateOptions { full: args.full, output: args.output };
    let done = Chronos2::calibrate(args.model.as_deref(), &options, &mut |line| eprintln!("calibrate: {line}"))?;
    eprintln!("calibrate: {} entries in {:.1} s", done.profile.entries.len(), done.seconds);
    println!("profile written to {}", done.path.display());
    Ok(())
}
