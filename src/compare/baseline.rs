//! Named baselines: a report saved under a name, to compare later runs against.
//!
//! A baseline is the plain report JSON at `<dir>/<NAME>.json`, so `gpuvet compare` reads it like
//! any other report. Writes are atomic (a temporary file in the same directory, then a rename),
//! so an interrupted save never leaves half a baseline; and a file that is already there but does
//! not parse is never replaced, because it may be the only copy of someone's reference numbers.

use super::{compare, CompareOptions, Comparison};
use crate::error::{Error, Result};
use crate::report::Report;
use std::path::{Path, PathBuf};

/// Environment variable that moves the baseline directory (e.g. to a CI cache).
pub const BASELINE_DIR_ENV: &str = "GPUVET_BASELINE_DIR";

/// `$GPUVET_BASELINE_DIR` when set and non-empty, else `.gpuvet/baselines` (relative to the
/// working directory, so each checkout keeps its own).
pub fn default_baseline_dir() -> PathBuf {
    match std::env::var_os(BASELINE_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(".gpuvet").join("baselines"),
    }
}

/// Checks a baseline name: letters, digits, `.`, `_`, `-`; not starting with `.`; at most 100
/// characters. Anything else could escape the directory or clash with hidden files.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 100 || !ok_chars || name.starts_with('.') {
        return Err(Error::invalid(format!(
            "baseline name `{name}` is not allowed: use 1–100 letters, digits, `.`, `_` or `-`, \
             not starting with `.` (no path separators)"
        )));
    }
    Ok(())
}

/// Where the baseline `name` lives in `dir`.
pub fn baseline_path(name: &str, dir: &Path) -> Result<PathBuf> {
    validate_name(name)?;
    Ok(dir.join(format!("{name}.json")))
}

/// Where baseline `name` would be saved in `dir`, after checking it may be: an existing file
/// of that name must be a readable gpuvet report, or it is [`Error::CorruptFile`] and left
/// alone. `run --save-baseline` asks before measuring, so a run is not spent to be refused.
pub fn check_overwrite(name: &str, dir: &Path) -> Result<PathBuf> {
    let path = baseline_path(name, dir)?;
    if path.exists() {
        if let Err(e) = Report::load(&path) {
            let reason = match e {
                Error::CorruptFile { reason, .. } => reason,
                other => other.to_string(),
            };
            return Err(Error::CorruptFile {
                path: path.display().to_string(),
                reason: format!(
                    "{reason}; refusing to overwrite it as baseline `{name}` \
                     (move or delete it first)"
                ),
            });
        }
    }
    Ok(path)
}

/// Saves `report` as baseline `name` in `dir` (created if needed) and returns the file's path.
///
/// Replaces an existing baseline of that name only when the existing file is a readable gpuvet
/// report; a corrupt one is left untouched and reported as [`Error::CorruptFile`].
pub fn save_baseline(report: &Report, name: &str, dir: &Path) -> Result<PathBuf> {
    let path = check_overwrite(name, dir)?;
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("creating the baseline directory {}: {e}", dir.display()),
        ))
    })?;
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| Error::invalid(format!("cannot serialise the report: {e}")))?;
    write_atomic(&path, (json + "\n").as_bytes())?;
    Ok(path)
}

/// Reads baseline `name` from `dir`. A missing baseline is [`Error::InvalidInput`] naming the
/// ones that exist; a malformed one is [`Error::CorruptFile`].
pub fn load_baseline(name: &str, dir: &Path) -> Result<Report> {
    let path = baseline_path(name, dir)?;
    if !path.exists() {
        let known = list_baselines(dir).unwrap_or_default();
        let hint = if known.is_empty() {
            format!("none saved yet; save one with --save-baseline {name}")
        } else {
            format!("saved: {}", known.join(", "))
        };
        return Err(Error::invalid(format!(
            "no baseline `{name}` in {} ({hint})",
            dir.display()
        )));
    }
    Report::load(&path)
}

/// Names of the baselines in `dir`, sorted; empty when the directory does not exist.
pub fn list_baselines(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
            if validate_name(stem).is_ok() {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Compares `report` (NEW) against baseline `name` (OLD) from `dir`.
pub fn compare_to_baseline(
    report: &Report,
    name: &str,
    dir: &Path,
    opts: &CompareOptions,
) -> Result<Comparison> {
    let base = load_baseline(name, dir)?;
    Ok(compare(&base, report, opts).with_labels(&format!("baseline {name}"), "this run"))
}

/// Replaces `path` atomically (see [`crate::output::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(crate::output::write_atomic(path, bytes)?)
}
