//! Where text goes: the one place that decides stdout vs stderr, writes to a pipe that may be
//! closed, and replaces a file atomically.
//!
//! The rule every command follows: machine output (a `-` target: JSON, CSV, a verdict...) owns
//! stdout; human text (tables, summaries) then goes to stderr so that `gpuvet ... --json - | jq`
//! stays parseable. Without a `-` target, human text goes to stdout. A closed pipe
//! (`gpuvet list | head`) is never an error: the reader has what it wanted.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The stdout/stderr decision of one command run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    machine_on_stdout: bool,
}

impl Output {
    /// `machine_on_stdout`: some machine format was asked for on stdout (`-`).
    pub fn new(machine_on_stdout: bool) -> Output {
        Output { machine_on_stdout }
    }

    /// True when human text goes to stderr.
    pub fn human_to_stderr(&self) -> bool {
        self.machine_on_stdout
    }

    /// Whether human text should be coloured, judged on the stream it goes to.
    pub fn human_color(&self) -> bool {
        if self.machine_on_stdout {
            use_color(io::stderr().is_terminal())
        } else {
            use_color(io::stdout().is_terminal())
        }
    }

    /// Writes human text where it belongs.
    pub fn human(&self, text: &str) -> io::Result<()> {
        if self.machine_on_stdout {
            write_stderr(text);
            Ok(())
        } else {
            write_stdout(text)
        }
    }
}

/// Whether to colour output written to a stream that is (or is not) a terminal. It lives here,
/// with the stdout/stderr decision, so that the writers never depend on the table renderer.
pub fn use_color(is_terminal: bool) -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    is_terminal && std::env::var_os("CLICOLOR").is_none_or(|v| v != "0")
}

/// Writes to stdout and flushes; a closed pipe is not an error.
pub fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Writes to stderr. Nothing useful can be done when stderr itself is gone, so failures are
/// dropped (as `eprint!` would panic instead).
pub fn write_stderr(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|_| err.flush());
}

/// The directory a file path lives in (`.` for a bare file name).
pub fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// How a result file reaches `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A regular file (or none yet): replaced through a temp file beside it and a rename. A
    /// symbolic link names its final target here, which is replaced while the link stays.
    Replace(PathBuf),
    /// Something that is not a regular file and cannot be replaced (`/dev/null`, a FIFO, a
    /// terminal, `/dev/stdout`, a shell's `>(…)`): written into, as a shell's `>` would.
    /// Renaming a temp file over it would put a plain file where the device was.
    Stream,
}

/// Where [`write_atomic`] writes `path`.
pub fn destination(path: &Path) -> Destination {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => Destination::Stream,
        _ => Destination::Replace(link_target(path)),
    }
}

/// The path a chain of symbolic links at `path` ends at (`path` itself when it is no link).
/// A link whose target does not exist yet names the file to create.
fn link_target(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    // As the kernel, give up on a chain of more than 40 links (a loop); the rename then fails
    // and says so.
    for _ in 0..40 {
        match (std::fs::symlink_metadata(&p), std::fs::read_link(&p)) {
            (Ok(m), Ok(t)) if m.file_type().is_symlink() => {
                p = if t.is_absolute() {
                    t
                } else {
                    parent_dir(&p).join(t)
                };
            }
            _ => break,
        }
    }
    p
}

/// Whether `path` is this process's standard output under another name: one of the names
/// the system gives it (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`), or the regular file
/// stdout is redirected to. A terminal or pipe reached by another name (`/dev/stderr` on the
/// same terminal) does not count: only these names say "stdout".
pub fn is_stdout(path: &Path) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    if ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"]
        .iter()
        .any(|n| path == Path::new(n))
    {
        return true;
    }
    let Some(m) = std::fs::metadata(path).ok().filter(|m| m.is_file()) else {
        return false;
    };
    let out = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| std::fs::File::from(fd).metadata());
    out.is_ok_and(|o| o.is_file() && (o.dev(), o.ino()) == (m.dev(), m.ino()))
}

/// Whether `a` and `b` name one regular file: the same file where both exist (whatever links
/// or `..` lead there), else the same name in the same resolved directory. Devices and FIFOs
/// never count: two outputs may both go to `/dev/null`.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.is_file() && y.is_file() && x.dev() == y.dev() && x.ino() == y.ino(),
        (Err(_), Err(_)) => {
            let resolved = |p: &Path| -> Option<PathBuf> {
                let p = link_target(p);
                Some(parent_dir(&p).canonicalize().ok()?.join(p.file_name()?))
            };
            matches!((resolved(a), resolved(b)), (Some(x), Some(y)) if x == y)
        }
        _ => false,
    }
}

/// The first of `inputs` that writing `output` would overwrite, if any: a command must not
/// write a result over a file it reads (`compare a.json b.json --json a.json` once destroyed
/// a.json).
pub fn overwritten_input<'a>(output: &Path, inputs: &[&'a Path]) -> Option<&'a Path> {
    already_written(output, inputs.iter().map(|&i| (i, i)))
}

/// True when `file` would be written straight into the existing directory `dir` (through any
/// spelling of either: `./d/x`, a link to `d`): what a directory that is read whole (verdicts
/// aggregated, a baseline's history) must not receive.
pub fn lands_in(file: &Path, dir: &Path) -> bool {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (parent.canonicalize(), dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The label of the first of `claimed` (label, path) pairs that names the same file as
/// `path` ([`same_file`]): the one search behind "two outputs write one file" and "an output
/// overwrites an input", wherever a command gathers its outputs.
pub fn already_written<'p, L>(
    path: &Path,
    claimed: impl IntoIterator<Item = (L, &'p Path)>,
) -> Option<L> {
    claimed
        .into_iter()
        .find(|(_, p)| same_file(p, path))
        .map(|(label, _)| label)
}

/// Removes an earlier file at `path` that this run has nothing to replace with (an output
/// with nothing to say, a verdict an interrupted run never reached), so that it cannot pass
/// for this run's. Only a regular file is removed (never a device or a FIFO); returns whether
/// one was.
pub fn remove_stale(path: &Path) -> bool {
    // A link keeps pointing where it did, as every write through it does: the stale file is
    // its target (removing the link left the old verdict where readers find it).
    let target = link_target(path);
    target.is_file() && std::fs::remove_file(&target).is_ok()
}

/// Replaces `path` with `bytes` through a temp file in the same directory and a rename, so a
/// reader sees the old file or the new one, never half of one. An existing file keeps its
/// permissions; a new one gets 0644 (results are meant to be shared, like any file the user's
/// shell would create; temp files start at 0600). A path that is not a regular file (a
/// device, a FIFO) is written into instead, and a symbolic link keeps pointing where it did
/// ([`destination`]).
///
/// Errors carry their kind and the OS's words without the temp file's name (the caller names
/// `path`, the file the user asked for).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_parts(path, &[bytes])
}

/// [`write_atomic`] of the concatenation of `parts`, without making it (a header and a large
/// tensor, written as they are).
pub fn write_atomic_parts(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    replace_via_temp(path, parts).map_err(|e| {
        let words = match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code).to_string(),
            None => e.kind().to_string(),
        };
        io::Error::new(e.kind(), words)
    })
}

fn replace_via_temp(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let path = match destination(path) {
        Destination::Stream => {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            for part in parts {
                f.write_all(part)?;
            }
            return f.flush();
        }
        Destination::Replace(target) => target,
    };
    let path = path.as_path();
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(parent_dir(path))?;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => tmp.as_file().set_permissions(m.permissions())?,
        _ => readable_by_all(tmp.as_file())?,
    }
    for part in parts {
        tmp.write_all(part)?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sweep_stale_temps(&parent_dir(path));
    Ok(())
}

/// The prefix of every temp file [`write_atomic`] makes.
const TEMP_PREFIX: &str = ".gpuvet-tmp-";

/// A temp file untouched this long was left by a gpuvet that was killed mid-write: no write
/// takes an hour, and one in progress keeps touching its file.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temp files an earlier gpuvet left in `dir` when it was killed while writing
/// (SIGKILL, the OOM killer, a node losing power), which nothing else would ever remove: only
/// gpuvet's own (`.gpuvet-tmp-*`), only stale ones, once per directory per process. Failures
/// are ignored: this is tidying, not the write.
fn sweep_stale_temps(dir: &Path) {
    static SWEPT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut swept) = SWEPT.lock() else {
        return;
    };
    if swept.iter().any(|d| d == dir) {
        return;
    }
    swept.push(dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for e in entries.flatten() {
        let ours = e.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
        let stale = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMP);
        if ours && stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Sets a new file to 0644 on unix (a no-op elsewhere).
pub fn readable_by_all(f: &std::fs::File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = f;
    Ok(())
}

/// An empty table in gpuvet's style. The caller has already decided about colour (on the
/// stream the table goes to); comfy-table must not second-guess it from whether stdout is a
/// terminal.
pub fn table(color: bool) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .force_no_tty();
    if color {
        t.enforce_styling();
    }
    t
}

/// For tests, unit and integration alike: says `SKIP <test>: <why>` where a plain `cargo test`
/// shows it and `.ci/run` counts it.
///
/// On the stderr handle, not with `eprintln!` (the harness captures the macros), and in one
/// write: `writeln!` on the unbuffered handle writes each piece of the format on its own, and
/// the harness's `test … ok` lines from other threads landed between the pieces, so that CI's
/// closing count missed a skip (28 instead of 29 in one run).
#[doc(hidden)]
pub fn say_skip(test: &str, why: &str) {
    use std::io::Write;
    let line = format!("SKIP {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A temp file a killed gpuvet left an hour ago goes with the next write beside it; one
    /// being written now, and anything not gpuvet's, stays.
    #[test]
    fn stale_temp_files_of_a_killed_run_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".gpuvet-tmp-AbC123");
        let fresh = dir.path().join(".gpuvet-tmp-XyZ789");
        let theirs = dir.path().join("notes.txt");
        for p in [&old, &fresh, &theirs] {
            std::fs::write(p, "x").unwrap();
        }
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for p in [&old, &theirs] {
            let f = std::fs::File::options().write(true).open(p).unwrap();
            f.set_modified(two_hours_ago).unwrap();
        }
        write_atomic(&dir.path().join("r.json"), b"{}").unwrap();
        assert!(!old.exists(), "the stale temp file stays");
        assert!(fresh.exists() && theirs.exists());
        assert_eq!(std::fs::read(dir.path().join("r.json")).unwrap(), b"{}");
    }

    /// A stale file behind a link is the target: the link stays, pointing where it did, and
    /// the old content is gone.
    #[test]
    fn a_stale_file_behind_a_link_is_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("shared.json");
        let link = dir.path().join("v.json");
        std::fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(remove_stale(&link));
        assert!(!target.exists());
        assert!(std::fs::symlink_metadata(&link).is_ok(), "the link stays");
        assert!(!remove_stale(Path::new("/dev/null")));
    }

    /// A temporary folder holding `files` (path relative to it, text), with the folders they
    /// name.
    pub(crate) fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = d.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    #[test]
    fn write_atomic_replaces_and_creates_0644() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_atomic(&p, b"first, longer").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
        }
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn write_atomic_keeps_the_existing_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("verdict.json");
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"new").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    /// A device is written into, never replaced by a plain file (FIFOs: tests/exports.rs); a
    /// symbolic link stays a link and its target gets the new text, also when the target does
    /// not exist yet.
    #[cfg(unix)]
    #[test]
    fn write_atomic_writes_into_devices_and_through_links() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(destination(Path::new("/dev/null")), Destination::Stream);
        write_atomic(Path::new("/dev/null"), b"nothing").unwrap();
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());

        let target = dir.path().join("real.json");
        let link = dir.path().join("latest.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write_atomic(&link, b"first").unwrap();
        write_atomic(&link, b"second").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
    }

    #[test]
    fn human_text_moves_to_stderr_only_when_stdout_carries_machine_output() {
        assert!(Output::new(true).human_to_stderr());
        assert!(!Output::new(false).human_to_stderr());
    }
}
