//! Result files: JSON (the full report), CSV (one row per result), markdown (a table for
//! humans and pull requests), and the one [`Exporter`] trait every file format implements
//! (these three, github-action-benchmark and Bencher in [`crate::compare::export`], and
//! [`PrettyJson`] for the verdict, the estimate and the stress timeline).
//!
//! Targets are opened before the run, so a bad path fails at once, and every file is rewritten
//! atomically (temp file in the same directory, then rename) after each result: an interrupted
//! run leaves a complete, valid file with what finished, and a reader never sees half a file.

use crate::report::{
    noise_text, throughput_text, verification_text, Report, ResultRecord, Throughput,
};
use crate::units::seconds;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Markdown,
}

/// One output format: turns a value into the text of a file. Every file gpuvet writes goes
/// through [`Exporter::write`], so `-` always means stdout (a closed pipe is fine) and a file
/// is always replaced atomically.
pub trait Exporter<T: ?Sized> {
    /// The file's text.
    fn render(&self, value: &T) -> Result<String>;

    /// Why `value` gives a file its consumer would reject (an empty list of benchmarks), or
    /// `None` when it has something to say. Such a file is never written.
    fn empty_reason(&self, _value: &T) -> Option<String> {
        None
    }

    /// What a reader of the finished file should know that the file cannot say (results left
    /// out, and why). Said once, when the run ends.
    fn remarks(&self, _value: &T) -> Vec<String> {
        Vec::new()
    }

    /// Writes `value` to `target`: a path, or `-` for stdout.
    fn write(&self, target: &str, value: &T) -> Result<()> {
        self.write_to(Path::new(target), value)
    }

    /// [`Exporter::write`] to a path as given (`-o` flags: a name need not be UTF-8).
    fn write_to(&self, target: &Path, value: &T) -> Result<()> {
        let text = self.render(value)?;
        if target.as_os_str() == "-" {
            return crate::output::write_stdout(&text).context("writing to stdout");
        }
        write_atomic(target, text.as_bytes())
            .with_context(|| format!("writing {}", target.display()))
    }
}

/// Pretty-printed JSON and a final newline: the report, a node verdict, a token-rate
/// estimate, a stress run.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrettyJson;

impl<T: serde::Serialize + ?Sized> Exporter<T> for PrettyJson {
    fn render(&self, value: &T) -> Result<String> {
        Ok(serde_json::to_string_pretty(value)? + "\n")
    }
}

impl Exporter<Report> for Format {
    fn render(&self, report: &Report) -> Result<String> {
        match self {
            Format::Json => PrettyJson.render(report),
            Format::Csv => to_csv(report),
            Format::Markdown => Ok(to_markdown(report)),
        }
    }
}

impl Format {
    /// The flag that asks for this format.
    pub fn flag(self) -> &'static str {
        match self {
            Format::Json => "--json",
            Format::Csv => "--csv",
            Format::Markdown => "--markdown",
        }
    }
}

/// Where one format goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// A report format as the run holds it: any [`Exporter`] of reports.
pub type ReportExporter = Box<dyn Exporter<Report> + Send + Sync>;

/// One requested output: how the user asked for it (`--json out.json`, for messages), its
/// format, its target.
struct Sink {
    label: String,
    exporter: ReportExporter,
    target: Target,
}

/// The report outputs of one run: `--json`, `--csv`, `--markdown` and every `--export`.
///
/// Every path is checked when it is added, before anything runs; at most one output takes
/// stdout. Files are rewritten after every result ([`Exports::write_files`]), so an
/// interrupted run leaves each file with the results that finished; stdout is written once,
/// by [`Exports::finish`]. A format that would give its consumer an empty file (no verified
/// result to chart) is not written until it has something, and `finish` reports it.
#[derive(Default)]
pub struct Exports {
    sinks: Vec<Sink>,
    /// When the last mid-run rewrite ended and how long it took ([`Exports::rewrite_files`]).
    last_rewrite: std::sync::Mutex<Option<(std::time::Instant, std::time::Duration)>>,
}

/// The least time between two mid-run rewrites; and a rewrite waits ten times as long as the
/// last one took, so that writing stays under a tenth of the run however large the files get.
const REWRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sinks.iter().map(|o| (&o.label, &o.target)))
            .finish()
    }
}

impl Exports {
    /// The report formats `requests` ask for, each path checked now.
    pub fn open(requests: &[(Format, &str)]) -> Result<Exports> {
        let mut exports = Exports::default();
        for &(fmt, path) in requests {
            exports.add(&format!("{} {path}", fmt.flag()), Box::new(fmt), path)?;
        }
        Ok(exports)
    }

    /// Adds one output, asked for as `label` (`--json out.json`, `--export github:-`).
    /// `path` `-` (or stdout under another name, `/dev/stdout`) is stdout, which only one
    /// output may take (a second is a usage error: two
    /// documents on one stream parse as neither); a file's directory must exist and take new
    /// files.
    pub fn add(&mut self, label: &str, exporter: ReportExporter, path: &str) -> Result<()> {
        let target = if path == "-" || crate::output::is_stdout(Path::new(path)) {
            if let Some(other) = self.sinks.iter().find(|o| o.target == Target::Stdout) {
                bail!(
                    "`{}` and `{label}` both ask for stdout; send one of them to a file",
                    other.label
                );
            }
            Target::Stdout
        } else {
            check_path(path)?;
            if let Some(other) = self.writer_of(Path::new(path)) {
                bail!("`{other}` and `{label}` both write {path}; give each its own file");
            }
            Target::File(PathBuf::from(path))
        };
        self.sinks.push(Sink {
            label: label.to_string(),
            exporter,
            target,
        });
        Ok(())
    }

    /// The label of the output that already writes `path`, if one does.
    pub fn writer_of(&self, path: &Path) -> Option<&str> {
        crate::output::already_written(path, self.files())
    }

    /// The files the outputs write.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.sinks.iter().filter_map(|o| match &o.target {
            Target::File(p) => Some((o.label.as_str(), p.as_path())),
            Target::Stdout => None,
        })
    }

    /// True when a machine-readable format is going to stdout (the table then goes to stderr).
    pub fn uses_stdout(&self) -> bool {
        self.sinks.iter().any(|o| o.target == Target::Stdout)
    }

    /// Rewrites every file target that has something to say from `report`. A device or FIFO
    /// (`/dev/stdout`, `>(…)`) is left for [`Exports::finish`], as stdout is: written into,
    /// each rewrite would add another whole document to the stream.
    pub fn write_files(&self, report: &Report) -> Result<()> {
        self.write_files_each(report)
            .into_iter()
            .next()
            .map_or(Ok(()), Err)
    }

    /// [`Exports::write_files`] during a run: every target is tried, and what fails is left
    /// for [`Exports::finish`], which writes again and reports it. Failing here, a full disk
    /// under `--json` stopped the run after its first result, the other outputs and the
    /// baseline with it.
    ///
    /// At most once a second, or ten times the last rewrite's time: each rewrite writes the
    /// whole report, and a sweep of thousands of short points rewrote (and synced) a growing
    /// file after every one, quadratic in the points (67 s of writing for a 0.6 s sweep of
    /// 2,500). The first result is written at once; [`Exports::rewrite_files_now`] ends a run.
    pub fn rewrite_files(&self, report: &Report) {
        let mut last = self.last_rewrite.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, took)) = *last {
            if at.elapsed() < REWRITE_EVERY.max(took * 10) {
                return;
            }
        }
        let start = std::time::Instant::now();
        let _ = self.write_files_each(report);
        *last = Some((std::time::Instant::now(), start.elapsed()));
    }

    /// [`Exports::rewrite_files`] now, whenever the last one was: the run's end (what finished
    /// is on disk before baselines and the last outputs are written).
    pub fn rewrite_files_now(&self, report: &Report) {
        let _ = self.write_files_each(report);
    }

    /// Writes every file target, returning each failure.
    fn write_files_each(&self, report: &Report) -> Vec<anyhow::Error> {
        let mut failed = Vec::new();
        for o in &self.sinks {
            if let Target::File(p) = &o.target {
                let stream = crate::output::destination(p) == crate::output::Destination::Stream;
                if !stream && o.exporter.empty_reason(report).is_none() {
                    if let Err(e) = o.exporter.write(&p.to_string_lossy(), report) {
                        failed.push(e.context(o.label.clone()));
                    }
                }
            }
        }
        failed
    }

    /// Writes every file one last time and the stdout target, and says what a reader should
    /// know (notes on stderr unless `quiet`). Returns what could not be written, one message
    /// per output naming its flag and path, so that the caller can finish its other work
    /// (baselines) before failing. An output with nothing its consumer accepts is one of
    /// them: its file is not written, and an earlier file at that path is removed so that it
    /// cannot pass for this run's.
    pub fn finish(&self, report: &Report, quiet: bool) -> Vec<String> {
        let mut problems = Vec::new();
        for o in &self.sinks {
            let path = match &o.target {
                Target::Stdout => None,
                Target::File(p) => Some(p),
            };
            if let Some(why) = o.exporter.empty_reason(report) {
                let removed = path.is_some_and(|p| crate::output::remove_stale(p));
                problems.push(format!(
                    "{}: {why}; nothing written{}",
                    o.label,
                    if removed {
                        " (the earlier file there was removed so that it cannot pass for this run's)"
                    } else {
                        ""
                    }
                ));
                continue;
            }
            let target = path.map_or("-".to_string(), |p| p.to_string_lossy().into_owned());
            match o.exporter.write(&target, report) {
                Ok(()) => {
                    for r in o.exporter.remarks(report) {
                        crate::term::notice(quiet, &format!("{}: {r}", o.label));
                    }
                }
                Err(e) => problems.push(format!("{}: {e:#}", o.label)),
            }
        }
        problems
    }
}

/// Checks that `path` can be written: not a directory, in a directory that exists and takes
/// new files. The message names the path as the user gave it.
pub fn check_path(path: &str) -> Result<()> {
    if path.is_empty() {
        bail!("an empty path; give a file path, or - for stdout");
    }
    let p = Path::new(path);
    if p.is_dir() {
        bail!("{path} is a directory; give a file path");
    }
    let p = match crate::output::destination(p) {
        // A device or FIFO is written into: it must take writes.
        crate::output::Destination::Stream => return check_stream(path),
        crate::output::Destination::Replace(target) => target,
    };
    let dir = crate::output::parent_dir(&p);
    if !dir.is_dir() {
        bail!(
            "cannot write {path}: directory {} does not exist",
            dir.display()
        );
    }
    // Creating (and dropping) a temp file proves the directory takes new files. Its error
    // would name the temp file; the user's path is what they need to see.
    tempfile::NamedTempFile::new_in(&dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot write {path}: directory {} does not take new files ({})",
            dir.display(),
            e.kind()
        )
    })?;
    if !can_replace(&p, &dir) {
        bail!(
            "cannot write {path}: it belongs to another user and directory {} lets only a \
             file's owner replace it (sticky bit, as /tmp)",
            dir.display()
        );
    }
    Ok(())
}

/// Whether an existing file at `p` can be replaced by a rename in `dir`. In a sticky directory
/// (`/tmp`) only the owner of the file or of the directory (or root) may; anywhere else, a
/// directory that takes new files takes renames over old ones.
fn can_replace(p: &Path, dir: &Path) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (Ok(file), Ok(d)) = (std::fs::metadata(p), std::fs::metadata(dir)) else {
        return true;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let sticky = d.permissions().mode() & 0o1000 != 0;
    !sticky || me == 0 || file.uid() == me || d.uid() == me
}

/// Checks that `path` (not a regular file) takes writes, without opening it: opening and
/// closing a named FIFO would hand its reader an end of file before the run has written
/// anything.
fn check_stream(path: &str) -> Result<()> {
    let c = std::ffi::CString::new(path)
        .map_err(|_| anyhow::anyhow!("cannot write {path}: the path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; access(2) only
    // reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        bail!("cannot write {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Checks, before anything runs, that `path` is a directory gpuvet can write into or create:
/// an existing directory that takes new files, or a path whose nearest existing ancestor is
/// one. `flag` names the option in the message (`--plot`). Without this a file in the way
/// was found only after the measurements, which were then lost.
pub fn check_dir(flag: &str, path: &Path) -> Result<()> {
    let shown = path.display();
    let existing = path
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        if existing == path {
            bail!("{flag} {shown}: a file is in the way; give a directory");
        }
        bail!(
            "{flag} {shown}: cannot create it, {} is a file",
            existing.display()
        );
    }
    tempfile::NamedTempFile::new_in(existing).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {shown}: directory {} does not take new files ({})",
            existing.display(),
            e.kind()
        )
    })?;
    Ok(())
}

pub use crate::output::{readable_by_all, write_atomic};

/// CSV columns, one row per result. The first 26 are the columns gpuvet has always written, in
/// their order (`device` is the JSON's device index, as in the report); the rest were added
/// after them, so a reader that goes by position keeps working. Names are the JSON's: a field
/// of the result as it is named there (`stats.` dropped, as it always was), and a field of a
/// nested object as `object.field` (`workload.m`, `device.uuid`, `host.hostname`), as
/// `pandas.json_normalize` names them. docs/json-schema.md lists them all.
pub const CSV_COLUMNS: [&str; 61] = [
    "id",
    "kind",
    "workload",
    "backend",
    "device",
    "implementation",
    "dtype",
    "compute_dtype",
    "status",
    "verified",
    "verification_method",
    "max_rel_error",
    "samples",
    "median_s",
    "mean_s",
    "min_s",
    "max_s",
    "stddev_s",
    "ci95_low_s",
    "ci95_high_s",
    "throughput",
    "throughput_unit",
    "peak_fraction",
    "bandwidth_bytes_per_s",
    "cache",
    "notes",
    // Added: which device, told apart when several are identical.
    "device.name",
    "device.uuid",
    "device.pci_bus_id",
    // Added: the rest of the result.
    "flops",
    "bytes",
    "p10_s",
    "p90_s",
    "mad_s",
    "stop_reason",
    "effective_clock_mhz",
    "iterations_per_sample",
    "tolerance",
    "error",
    // Added: the workload's parameters (empty where the kind has no such parameter).
    "workload.m",
    "workload.n",
    "workload.k",
    "workload.b_layout",
    "workload.batch",
    "workload.q_heads",
    "workload.kv_heads",
    "workload.q_len",
    "workload.kv_len",
    "workload.head_dim",
    "workload.causal",
    "workload.op",
    "workload.bytes",
    // Added: the run, to join CSVs of many nodes.
    "host.hostname",
    "started_at",
    "tool.version",
    "tool.git_sha",
    // Added: energy and clock efficiency (empty where power or an in-run clock was not read).
    "power_w",
    "per_watt",
    "per_watt_unit",
    "per_mhz",
    "per_mhz_unit",
];

/// The workload parameters the CSV has a column for (`workload.<name>`); `kind` and `dtype`
/// have their own columns.
pub const CSV_WORKLOAD_PARAMS: [&str; 13] = [
    "m", "n", "k", "b_layout", "batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim",
    "causal", "op", "bytes",
];

/// A number as CSV text: `1.5e3` (round-trips exactly), empty when absent.
fn csv_num(x: Option<f64>) -> String {
    x.map(|v| format!("{v:e}")).unwrap_or_default()
}

/// The workload's parameters as the JSON writes them, in [`CSV_WORKLOAD_PARAMS`] order.
fn workload_cells(r: &ResultRecord) -> Vec<String> {
    let value = serde_json::to_value(&r.workload).unwrap_or_default();
    CSV_WORKLOAD_PARAMS
        .iter()
        .map(|k| match value.get(*k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        })
        .collect()
}

/// One result's row, in [`CSV_COLUMNS`] order.
fn csv_row(report: &Report, r: &ResultRecord) -> Vec<String> {
    let device = report.devices.get(r.device.lead());
    let s = r.stats.as_ref();
    let stat = |f: fn(&crate::stats::Summary) -> f64| csv_num(s.map(f));
    let mut row = vec![
        r.id.clone(),
        r.workload.kind().to_string(),
        r.workload.name(),
        r.backend.name().to_string(),
        r.device.to_string(),
        r.implementation.clone(),
        r.dtype.to_string(),
        r.compute_dtype.to_string(),
        r.status.name().to_string(),
        r.verification.passed.to_string(),
        r.verification.method.to_string(),
        format!("{:e}", r.verification.max_rel_error),
        s.map(|s| s.samples.to_string()).unwrap_or_default(),
        stat(|s| s.median_s),
        stat(|s| s.mean_s),
        stat(|s| s.min_s),
        stat(|s| s.max_s),
        // One sample has no spread: the cells stay empty rather than read as zero width.
        csv_num(s.filter(|s| s.samples >= 2).map(|s| s.stddev_s)),
        csv_num(s.and_then(|s| s.interval()).map(|i| i.0)),
        csv_num(s.and_then(|s| s.interval()).map(|i| i.1)),
        csv_num(r.throughput.as_ref().map(|t| t.value)),
        r.throughput
            .as_ref()
            .map(|t| t.unit.clone())
            .unwrap_or_default(),
        csv_num(r.peak_fraction),
        csv_num(r.bandwidth.as_ref().map(|b| b.value)),
        r.cache.to_string(),
        r.notes.join("; "),
        device.map(|d| d.name.clone()).unwrap_or_default(),
        device.and_then(|d| d.uuid.clone()).unwrap_or_default(),
        device
            .and_then(|d| d.pci_bus_id.clone())
            .unwrap_or_default(),
        format!("{:e}", r.flops),
        r.bytes.to_string(),
        stat(|s| s.p10_s),
        stat(|s| s.p90_s),
        stat(|s| s.mad_s),
        r.stop_reason.to_string(),
        csv_num(r.effective_clock_mhz),
        r.iterations_per_sample.to_string(),
        format!("{:e}", r.verification.tolerance),
        r.error.clone().unwrap_or_default(),
    ];
    row.extend(workload_cells(r));
    row.extend([
        report.host.hostname.clone(),
        report.started_at.clone(),
        report.tool.version.clone(),
        report.tool.git_sha.clone(),
    ]);
    let figure = |t: &Option<Throughput>| {
        [
            csv_num(t.as_ref().map(|t| t.value)),
            t.as_ref().map(|t| t.unit.clone()).unwrap_or_default(),
        ]
    };
    row.push(csv_num(r.power_w));
    row.extend(figure(&r.per_watt));
    row.extend(figure(&r.per_mhz));
    row
}

fn to_csv(report: &Report) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    for r in &report.results {
        w.write_record(csv_row(report, r))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Escapes text for one markdown table cell or list item: a `|` would end the cell and a
/// newline the row, so the first is escaped and the second kept as an HTML line break; `&`,
/// `<` and `>` become entities, since markdown passes raw HTML through and a device name or an
/// error message from a report is not the writer's markup (`<script>` in a hostname reached
/// the fleet page as it was).
pub fn md_cell(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace('\n', "<br>")
}

/// `s` as one inline code span in a table cell: fenced with one backtick more than the longest
/// run inside it (a backtick in an id ended a one-backtick span early), padded where it starts
/// or ends with one, `|` escaped (tables split cells before code spans are read) and newlines
/// made spaces. Code spans show HTML as text, so nothing else needs escaping.
pub fn md_code(s: &str) -> String {
    let s = s.replace('\n', " ").replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// One markdown table row: every cell escaped (`md_cell`), `|`-separated, with its newline.
pub fn md_row<S: AsRef<str>>(cells: &[S]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| md_cell(c.as_ref())).collect();
    format!("| {} |\n", cells.join(" | "))
}

fn to_markdown(report: &Report) -> String {
    let mut s = String::new();
    // Several devices: each named with its index, as the rows below refer to them.
    let several = report.devices.len() > 1;
    let dev: Vec<String> = report
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| match several {
            true => format!("[{i}] {}", md_cell(&d.name)),
            false => md_cell(&d.name),
        })
        .collect();
    s.push_str(&format!(
        "## gpuvet {} ({}) on {}\n\n",
        md_cell(&report.tool.version),
        md_cell(&report.tool.git_sha),
        if dev.is_empty() {
            "no device".into()
        } else {
            dev.join(", ")
        }
    ));
    s.push_str(&format!(
        "Backend `{}`, seed {}, started {}{}.\n\n",
        report.config.backend,
        report.config.seed,
        md_cell(&report.started_at),
        if report.complete { "" } else { " (incomplete)" }
    ));
    s.push_str("| workload | impl | dtype (compute) | throughput | % peak | median time | noise | verification |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---|\n");
    for r in &report.results {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            md_code(&r.workload.name()),
            md_cell(&crate::report::with_placement(
                report,
                r,
                r.implementation.clone()
            )),
            md_cell(&crate::report::dtype_text(r)),
            throughput_text(r),
            r.peak_fraction
                .map(|p| format!("{:.1}%", p * 100.0))
                .unwrap_or_else(|| "—".into()),
            r.stats
                .as_ref()
                .map(|s| seconds(s.median_s))
                .unwrap_or_else(|| "—".into()),
            noise_text(r),
            md_cell(&verification_text(r)),
        ));
    }
    if !report.not_run.is_empty() {
        s.push_str("\nNot run:\n\n");
        for line in report.not_run_lines() {
            s.push_str(&format!("- {}\n", md_cell(&line)));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text from a report is text in markdown: HTML is escaped, a `|` cannot split a cell, a
    /// newline cannot end a row, and a backtick cannot end a code span early.
    #[test]
    fn markdown_cells_and_code_spans_keep_foreign_text_as_text() {
        assert_eq!(
            md_cell("Mock <script>alert(1)</script> a&b | c\nd"),
            "Mock &lt;script&gt;alert(1)&lt;/script&gt; a&amp;b \\| c<br>d"
        );
        assert_eq!(md_code("matmul.f32"), "`matmul.f32`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`x``"), "``` `x`` ```");
        assert_eq!(md_code("a|b\nc"), "`a\\|b c`");
    }
}
