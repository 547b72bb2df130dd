//! The crossover profile `auto` reads: `$CHRONOS2_PROFILE`, else the profile `chronos2 calibrate`
//! measured on this machine (`$XDG_CONFIG_HOME/chronos2/profile.json`, else
//! `~/.config/chronos2/profile.json`), else the built-in one of the platform, which was measured
//! elsewhere (and says so).

use std::path::{Path, PathBuf};

use chronos2_core::dispatch::Profile;

use crate::backend::Route;
use crate::error::{Error, ProfileError, Result};
use crate::machine::Machine;

/// Environment variable naming a crossover profile file (JSON, as `chronos2 calibrate` or
/// `cargo xtask bench-matrix --write-profile` write it), used as it is.
pub const PROFILE_ENV: &str = "CHRONOS2_PROFILE";

/// The built-in profile of Linux x86_64: written by `cargo xtask bench-matrix --write-profile`
/// on a 2-core AMD EPYC (Zen 4), every precision measured.
pub(crate) const LINUX_X86_PROFILE: (&str, &str) = ("linux-x86_64.json", include_str!("../profiles/linux-x86_64.json"));
/// The built-in profile of Apple silicon: derived from the source article's crossover (winners
/// only), not measured by us.
pub(crate) const APPLE_SILICON_PROFILE: (&str, &str) =
    ("apple-silicon.json", include_str!("../profiles/apple-silicon.json"));

/// How to measure this machine, for messages.
pub const CALIBRATE_HINT: &str =
    "run `chronos2 calibrate` (or `chronos2.calibrate()` in Python) to measure this machine";

/// The machine a profile file was measured on (`machine`, written by `chronos2 calibrate`).
#[derive(serde::Deserialize)]
struct MachineField {
    #[serde(default)]
    machine: Option<Machine>,
}

/// The profile the dispatcher uses, its `source` saying where it comes from: `$CHRONOS2_PROFILE`,
/// else the user's profile when it was measured on this machine (or does not say where it was
/// measured), else the platform's built-in one.
pub fn load_profile() -> Result<Profile> {
    if let Some(path) = std::env::var_os(PROFILE_ENV).map(PathBuf::from) {
        let (mut profile, _) = read_profile(&path)?;
        profile.source = format!("{} ({PROFILE_ENV}={})", profile.source, path.display());
        return Ok(profile);
    }
    let Some(path) = user_profile_path().filter(|p| p.is_file()) else {
        return builtin_profile(&format!("measured elsewhere; {CALIBRATE_HINT}"));
    };
    let (mut profile, machine) = read_profile(&path)?;
    let here = Machine::this();
    match machine {
        Some(m) if !m.differences(&here).is_empty() => builtin_profile(&format!(
            "measured elsewhere; {} was calibrated on another machine ({}); {CALIBRATE_HINT}",
            path.display(),
            m.differences(&here).join("; ")
        )),
        Some(_) => {
            profile.source = format!("calibrated on this machine: {} ({})", profile.source, path.display());
            Ok(profile)
        }
        None => {
            profile.source = format!("{} ({})", profile.source, path.display());
            Ok(profile)
        }
    }
}

/// A profile file and the machine it says it was measured on.
fn read_profile(path: &Path) -> Result<(Profile, Option<Machine>)> {
    let fail = |source| Error::Profile { path: path.to_path_buf(), source };
    let text = std::fs::read_to_string(path).map_err(|e| fail(ProfileError::Io(e)))?;
    let profile = parse_profile(&text).map_err(fail)?;
    let machine = serde_json::from_str::<MachineField>(&text)
        .map_err(|e| fail(ProfileError::Invalid(chronos2_core::dispatch::DispatchError::InvalidProfile(e))))?
        .machine;
    Ok((profile, machine))
}

/// The built-in profile of the platform this was compiled for; `note` says why it is used.
pub fn builtin_profile(note: &str) -> Result<Profile> {
    let (name, text) =
        if cfg!(all(target_os = "macos", target_arch = "aarch64")) { APPLE_SILICON_PROFILE } else { LINUX_X86_PROFILE };
    let mut profile =
        parse_profile(text).map_err(|source| Error::Profile { path: PathBuf::from("built-in").join(name), source })?;
    profile.source = format!("built-in {name}: {} ({note})", profile.source);
    Ok(profile)
}

/// Parses a profile; every route it names must be a route of the registry (an unknown name is
/// an error, never read as some other backend).
pub(crate) fn parse_profile(text: &str) -> std::result::Result<Profile, ProfileError> {
    let profile = Profile::from_json(text)?;
    for entry in &profile.entries {
        for key in entry.timings.iter().map(|t| &t.route).chain(entry.winner.as_ref()) {
            if Route::from_key(key, entry.precision).is_none() {
                let known = Route::all_keys().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                return Err(ProfileError::UnknownRoute { key: key.clone(), known });
            }
        }
    }
    Ok(profile)
}

/// Where `chronos2 calibrate` writes and `auto` looks: `$XDG_CONFIG_HOME/chronos2/profile.json`,
/// else `~/.config/chronos2/profile.json`.
pub fn user_profile_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("chronos2").join("profile.json"))
}
