//! Named baselines: a report saved under a name, to compare later runs against.
//!
//! A baseline is the plain report JSON at `<dir>/<NAME>.json`, so `gpuvet compare` reads it like
//! any other report. Writes are atomic (a temporary file in the same directory, then a rename),
//! so an interrupted save never leaves half a baseline; and a file that is already there but does
//! not parse is never replaced, because it may be the only copy of someone's reference numbers.
//!
//! A baseline may keep its earlier runs (`--baseline-keep N`): each save first copies the run it
//! replaces into `<dir>/<NAME>.history/<NNNNNN>.json`, and keeps the newest N − 1 there.
//! `--baseline NAME` then compares against all of them, so the interval holds the spread between
//! runs ([`super::compare_runs`]) instead of one run's samples only. Saves that keep runs take
//! an advisory lock on the directory's `.gpuvet-lock` (and `<NAME>.history/lock`), so two at
//! once take turns; every other save takes the directory's lock too.

use super::{compare_runs, CompareOptions, Comparison};
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

/// Where the earlier runs of baseline `name` are kept in `dir`.
pub fn history_dir(name: &str, dir: &Path) -> Result<PathBuf> {
    validate_name(name)?;
    Ok(dir.join(format!("{name}.history")))
}

/// The sequence numbers of baseline `name`'s earlier runs, oldest first, from the names alone
/// (nothing is parsed): every `NNNNNN.json` in its history directory, the names a save writes
/// (other files there are not gpuvet's and are left out). None when there is no history.
pub fn history_seqs(name: &str, dir: &Path) -> Result<Vec<u64>> {
    let hist = history_dir(name, dir)?;
    let entries = match std::fs::read_dir(&hist) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Io(std::io::Error::new(
                e.kind(),
                format!(
                    "reading the history of baseline {name} ({}): {e}",
                    hist.display()
                ),
            )))
        }
    };
    let mut seqs = Vec::new();
    for entry in entries {
        let file = entry?.file_name();
        // Only the names a save writes (`000007.json`): a hand-made `7.json` beside it would
        // be the same run under another name, counted twice.
        if let Some(seq) = file
            .to_str()
            .and_then(|f| f.strip_suffix(".json"))
            .filter(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|stem| stem.parse::<u64>().ok())
            .filter(|seq| file.to_str() == Some(history_file(*seq).as_str()))
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// The earlier runs of baseline `name` ([`history_seqs`]), read, with their sequence numbers.
/// A file that does not parse is [`Error::CorruptFile`] naming it: a gate must not quietly
/// judge against fewer runs.
pub fn load_history(name: &str, dir: &Path) -> Result<Vec<(u64, Report)>> {
    let hist = history_dir(name, dir)?;
    check_stage(name, &hist.join(STAGED))?;
    history_seqs(name, dir)?
        .into_iter()
        // One cut from the history by a save since the listing is no longer a run of it.
        .filter(|&seq| hist.join(history_file(seq)).exists())
        .map(|seq| {
            let path = hist.join(history_file(seq));
            Report::load(&path).map(|r| (seq, r)).map_err(|e| match e {
                Error::CorruptFile { path, reason } => Error::CorruptFile {
                    path,
                    reason: format!(
                        "{reason}; it is an earlier run of baseline `{name}`: move or delete it"
                    ),
                },
                other => other,
            })
        })
        .collect()
}

fn history_file(seq: u64) -> String {
    format!("{seq:06}.json")
}

/// Baseline `name` with its earlier runs, oldest first and the saved baseline last, each with
/// its label (`baseline NAME`, `baseline NAME run 000003`).
pub fn load_baseline_runs(name: &str, dir: &Path) -> Result<Vec<(String, Report)>> {
    // Shared with other readers, never read while a save moves runs: the saved baseline and
    // its history are read as one state. The directory's lock covers a save that is only now
    // starting a history; the history's own lock, saves by earlier versions of gpuvet.
    let _dir_lock = lock_dir(dir, false)?;
    let _lock = lock(&history_dir(name, dir)?.join(LOCK), false)?;
    let current = load_baseline(name, dir)?;
    let mut runs: Vec<(String, Report)> = load_history(name, dir)?
        .into_iter()
        .map(|(seq, r)| (format!("baseline {name} run {seq:06}"), r))
        .collect();
    runs.push((format!("baseline {name}"), current));
    Ok(runs)
}

/// The file a save stages the run it replaces in, before it joins the history: not a
/// `<digits>.json`, so a save cut short never counts a run twice.
const STAGED: &str = "saving.tmp";

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
    save_baseline_keeping(report, name, dir, 1)
}

/// [`save_baseline`], keeping the newest `keep` runs of the baseline. With `keep` above 1:
/// the run it replaces is staged in the history directory, the baseline is replaced, the staged
/// run joins the history under the next sequence number, and the history is cut to the newest
/// `keep − 1`. Each step leaves a whole baseline and counts no run twice; a stage left by a save
/// cut short is settled first (dropped when it is the saved baseline itself, else kept as the
/// earlier run it is). With `keep` 1 the history is left as it is.
pub fn save_baseline_keeping(
    report: &Report,
    name: &str,
    dir: &Path,
    keep: usize,
) -> Result<PathBuf> {
    let path = check_overwrite(name, dir)?;
    std::fs::create_dir_all(dir).map_err(io_context(format!(
        "creating the baseline directory {}",
        dir.display()
    )))?;
    let hist = history_dir(name, dir)?;
    let staged = hist.join(STAGED);
    // Held until the save returns, by every save: two saves at once (two CI jobs sharing a
    // cache) take turns instead of staging over each other, a save without a history cannot
    // replace the baseline between a first keeping save's staging and its write (which lost
    // the run it wrote), and a reader never sees a run half moved.
    let _dir_lock = lock_dir(dir, true)?;
    // Also the history's own lock, which earlier versions of gpuvet take alone.
    if keep > 1 {
        std::fs::create_dir_all(&hist).map_err(io_context(format!(
            "creating the baseline history {}",
            hist.display()
        )))?;
    }
    let _lock = if hist.is_dir() {
        lock(&hist.join(LOCK), true)?
    } else {
        None
    };
    let keeping = keep > 1 && path.exists();
    if keeping {
        settle_stage(name, dir, &path)?;
        // A regular file (check_overwrite parsed it as a report), read whole as reports are.
        let bytes =
            crate::files::read_whole_or_bounded(&path, crate::files::MAX_STREAMED_REPORT_BYTES)?;
        write_atomic(&staged, &bytes)?;
    }
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| Error::invalid(format!("cannot serialise the report: {e}")))?;
    write_atomic(&path, (json + "\n").as_bytes())?;
    if keeping {
        // Moving and cutting runs needs their numbers only: nothing is parsed.
        let earlier = history_seqs(name, dir)?;
        join_history(name, dir, &earlier)?;
        let kept = earlier.len() + 1;
        for seq in earlier.iter().take(kept.saturating_sub(keep - 1)) {
            let old = hist.join(history_file(*seq));
            std::fs::remove_file(&old).map_err(io_context(format!(
                "removing the earlier run {}",
                old.display()
            )))?;
        }
    }
    Ok(path)
}

/// Moves the staged run into the history under the next sequence number.
fn join_history(name: &str, dir: &Path, earlier: &[u64]) -> Result<()> {
    let hist = history_dir(name, dir)?;
    let next = earlier.last().map_or(1, |seq| seq + 1);
    let to = hist.join(history_file(next));
    std::fs::rename(hist.join(STAGED), &to).map_err(io_context(format!(
        "keeping the earlier run as {}",
        to.display()
    )))?;
    Ok(())
}

/// A stage left by a save cut short: the same bytes as the saved baseline (cut before the
/// baseline was replaced) is dropped; anything else is the run that save replaced, and joins
/// the history.
fn settle_stage(name: &str, dir: &Path, current: &Path) -> Result<()> {
    let staged = history_dir(name, dir)?.join(STAGED);
    if !staged.exists() {
        return Ok(());
    }
    check_stage(name, &staged)?;
    let read =
        |p: &Path| crate::files::read_whole_or_bounded(p, crate::files::MAX_STREAMED_REPORT_BYTES);
    if read(&staged)? == read(current)? {
        std::fs::remove_file(&staged)
            .map_err(io_context(format!("removing {}", staged.display())))?;
        return Ok(());
    }
    join_history(name, dir, &history_seqs(name, dir)?)
}

/// A stage left by a save cut short must be a report before it may join the history: a
/// damaged one was promoted as it was, pushed a good run out, and every later `--baseline`
/// failed on it. Checked before a run that reads or keeps the history, and before settling.
fn check_stage(name: &str, staged: &Path) -> Result<()> {
    if !staged.exists() {
        return Ok(());
    }
    match Report::load(staged) {
        Ok(_) => Ok(()),
        Err(Error::CorruptFile { path, reason }) => Err(Error::CorruptFile {
            path,
            reason: format!(
                "{reason}; a save of baseline `{name}` cut short left it, and it is not a run \
                 to keep: move or delete it"
            ),
        }),
        Err(e) => Err(e),
    }
}

/// The lock file of a baseline's history (not a `<digits>.json`: never read as a run).
const LOCK: &str = "lock";

/// The lock file of a baseline directory (hidden, and not a `*.json`: never listed as a
/// baseline), which every save takes alone and every read of a baseline's runs shares.
pub const DIR_LOCK: &str = ".gpuvet-lock";

/// The lock of baseline directory `dir` (which must exist for a save); `None` for a reader
/// where there is none to share ([`lock`]).
pub fn lock_dir(dir: &Path, exclusive: bool) -> Result<Option<std::fs::File>> {
    lock(&dir.join(DIR_LOCK), exclusive)
}

/// An advisory lock on `path`, released when the file is dropped or the process ends, so a
/// save that dies leaves no lock behind. `exclusive` for a save, shared for a reader. The file
/// is opened read-only either way (flock needs no more), and a save that creates it makes it
/// writable by all (0666, whatever the umask): a lock file one user made must not stop another
/// user's save of a shared CI cache. A reader never creates it, and reads without the lock
/// where it is absent or unreadable: it must still be able to compare.
fn lock(path: &Path, exclusive: bool) -> Result<Option<std::fs::File>> {
    let open = || std::fs::OpenOptions::new().read(true).open(path);
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && exclusive => {
            let made = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io_context(format!("creating the lock {}", path.display())))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                // Best effort: on a filesystem without modes the lock still works.
                let _ = made.set_permissions(std::fs::Permissions::from_mode(0o666));
            }
            drop(made);
            open().map_err(io_context(format!("opening the lock {}", path.display())))?
        }
        Err(_) if !exclusive => return Ok(None),
        Err(e) => {
            return Err(io_context(format!("opening the lock {}", path.display()))(
                e,
            ));
        }
    };
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let how = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: the descriptor is open and owned by `file` for the whole call; flock takes
        // no pointers.
        let rc = unsafe { libc::flock(file.as_raw_fd(), how) };
        if rc != 0 {
            return Err(io_context(format!("locking {}", path.display()))(
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(Some(file))
}

/// An I/O error with what was being done in its message (same kind).
fn io_context(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Io(std::io::Error::new(e.kind(), format!("{what}: {e}")))
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

/// Compares `report` (NEW) against baseline `name` (OLD) from `dir`: against its earlier runs
/// too when it keeps them, as several OLD runs.
pub fn compare_to_baseline(
    report: &Report,
    name: &str,
    dir: &Path,
    opts: &CompareOptions,
) -> Result<Comparison> {
    let runs = load_baseline_runs(name, dir)?;
    let old: Vec<&Report> = runs.iter().map(|(_, r)| r).collect();
    let labels: Vec<String> = runs.iter().map(|(l, _)| l.clone()).collect();
    Ok(compare_runs(&old, &[report], opts).with_run_labels(&labels, &["this run".to_string()]))
}

/// Replaces `path` atomically (see [`crate::output::write_atomic`]). A failure names the
/// file: a full disk said only "no storage space", not which baseline it was saving.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::output::write_atomic(path, bytes)
        .map_err(io_context(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails names the file it was writing, whatever the system said.
    #[test]
    fn a_failed_write_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("main.json");
        let e = write_atomic(&path, b"{}").unwrap_err().to_string();
        assert!(e.contains(&format!("writing {}", path.display())), "{e}");
    }
}
