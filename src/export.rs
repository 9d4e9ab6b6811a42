//! Result files: JSON (the full report), CSV (one row per result), markdown (a table for
//! humans and pull requests), and the one [`Exporter`] trait every file format implements
//! (these three, github-action-benchmark and Bencher in [`crate::compare::export`], and
//! [`PrettyJson`] for the verdict, the estimate and the stress timeline).
//!
//! Targets are opened before the run, so a bad path fails at once, and every file is rewritten
//! atomically (temp file in the same directory, then rename) after each result: an interrupted
//! run leaves a complete, valid file with what finished, and a reader never sees half a file.

use crate::report::{Report, ResultRecord};
use crate::units::{seconds, si};
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

    /// Writes `value` to `target`: a path, or `-` for stdout.
    fn write(&self, target: &str, value: &T) -> Result<()> {
        let text = self.render(value)?;
        if target == "-" {
            return crate::output::write_stdout(&text).context("writing to stdout");
        }
        write_atomic(Path::new(target), text.as_bytes())
            .with_context(|| format!("writing {target}"))
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

/// Where one format goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// The set of exports of one run.
#[derive(Debug, Default)]
pub struct Exports {
    targets: Vec<(Format, Target)>,
}

impl Exports {
    /// Checks every path now: its directory must exist and be writable. `-` means stdout, for at
    /// most one format.
    pub fn open(requests: &[(Format, &str)]) -> Result<Exports> {
        let mut targets = Vec::new();
        let mut stdout_taken = false;
        for &(fmt, path) in requests {
            if path == "-" {
                if stdout_taken {
                    bail!("only one output can go to stdout (`-`)");
                }
                stdout_taken = true;
                targets.push((fmt, Target::Stdout));
                continue;
            }
            let p = PathBuf::from(path);
            if p.is_dir() {
                bail!("{} is a directory; give a file path", p.display());
            }
            let dir = crate::output::parent_dir(&p);
            // Creating (and dropping) a temp file proves the directory takes new files.
            tempfile::NamedTempFile::new_in(&dir).with_context(|| {
                format!(
                    "cannot write {}: directory {} is not writable or does not exist",
                    p.display(),
                    dir.display()
                )
            })?;
            targets.push((fmt, Target::File(p)));
        }
        Ok(Exports { targets })
    }

    /// True when a machine-readable format is going to stdout (the table then goes to stderr).
    pub fn uses_stdout(&self) -> bool {
        self.targets.iter().any(|(_, t)| *t == Target::Stdout)
    }

    /// Rewrites every file target from `report`.
    pub fn write_files(&self, report: &Report) -> Result<()> {
        for (fmt, t) in &self.targets {
            if let Target::File(p) = t {
                fmt.write(&p.to_string_lossy(), report)?;
            }
        }
        Ok(())
    }

    /// Writes the stdout target, if any (once, at the end). A closed pipe is not an error.
    pub fn write_stdout(&self, report: &Report) -> Result<()> {
        for (fmt, t) in &self.targets {
            if *t == Target::Stdout {
                fmt.write("-", report)?;
            }
        }
        Ok(())
    }
}

pub use crate::output::{readable_by_all, write_atomic};

/// CSV columns: stable, flat, one row per result.
const CSV_HEADER: [&str; 22] = [
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
];

fn to_csv(report: &Report) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = CSV_HEADER.to_vec();
    header.extend(["peak_fraction", "bandwidth_bytes_per_s", "cache", "notes"]);
    w.write_record(&header)?;
    for r in &report.results {
        let device = report
            .devices
            .get(r.device.lead())
            .map(|d| d.name.clone())
            .unwrap_or_default();
        let f = |x: Option<f64>| x.map(|v| format!("{v:e}")).unwrap_or_default();
        let s = r.stats.as_ref();
        w.write_record([
            r.id.clone(),
            r.workload.kind().to_string(),
            r.workload.name(),
            r.backend.name().to_string(),
            device,
            r.implementation.clone(),
            r.dtype.to_string(),
            r.compute_dtype.to_string(),
            format!("{:?}", r.status).to_lowercase(),
            r.verification.passed.to_string(),
            r.verification.method.to_string(),
            format!("{:e}", r.verification.max_rel_error),
            s.map(|s| s.samples.to_string()).unwrap_or_default(),
            f(s.map(|s| s.median_s)),
            f(s.map(|s| s.mean_s)),
            f(s.map(|s| s.min_s)),
            f(s.map(|s| s.max_s)),
            f(s.map(|s| s.stddev_s)),
            f(s.map(|s| s.ci95_low_s)),
            f(s.map(|s| s.ci95_high_s)),
            f(r.throughput.as_ref().map(|t| t.value)),
            r.throughput
                .as_ref()
                .map(|t| t.unit.clone())
                .unwrap_or_default(),
            f(r.peak_fraction),
            f(r.bandwidth.as_ref().map(|b| b.value)),
            r.cache.to_string(),
            r.notes.join("; "),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Escapes text for one markdown table cell or list item: a `|` would end the cell and a
/// newline the row, so the first is escaped and the second kept as an HTML line break.
pub fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

/// The headline figure of a result as text (`—` when it has none).
pub fn throughput_text(r: &ResultRecord) -> String {
    match &r.throughput {
        Some(t) => si(t.value, &t.unit),
        None => "—".into(),
    }
}

/// Verification as a short word with the error.
pub fn verification_text(r: &ResultRecord) -> String {
    if r.error.is_some() {
        return "ERROR".into();
    }
    let v = &r.verification;
    match (v.method, v.passed) {
        (crate::verify::VerifyMethod::Unverified, _) => return "UNVERIFIED".into(),
        (crate::verify::VerifyMethod::Determinism, true) => return "ok (determinism)".into(),
        _ => {}
    }
    let word = if v.passed { "ok" } else { "FAIL" };
    if v.max_rel_error == 0.0 {
        format!("{word} (exact)")
    } else {
        format!("{word} ({:.1e})", v.max_rel_error)
    }
}

/// Noise as ± half the CI95 of the median, relative.
pub fn noise_text(r: &ResultRecord) -> String {
    r.stats
        .as_ref()
        .map(|s| format!("±{:.2}%", s.rel_ci_half_width() * 100.0))
        .unwrap_or_else(|| "—".into())
}

fn to_markdown(report: &Report) -> String {
    let mut s = String::new();
    let dev: Vec<String> = report.devices.iter().map(|d| d.name.clone()).collect();
    s.push_str(&format!(
        "## gpuvet {} ({}) on {}\n\n",
        report.tool.version,
        report.tool.git_sha,
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
        report.started_at,
        if report.complete { "" } else { " (incomplete)" }
    ));
    s.push_str("| workload | impl | dtype (compute) | throughput | % peak | median time | noise | verification |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---|\n");
    for r in &report.results {
        s.push_str(&format!(
            "| `{}` | {} | {} ({}) | {} | {} | {} | {} | {} |\n",
            r.workload.name(),
            r.implementation,
            r.dtype,
            r.compute_dtype,
            throughput_text(r),
            r.peak_fraction
                .map(|p| format!("{:.1}%", p * 100.0))
                .unwrap_or_else(|| "—".into()),
            r.stats
                .as_ref()
                .map(|s| seconds(s.median_s))
                .unwrap_or_else(|| "—".into()),
            noise_text(r),
            verification_text(r),
        ));
    }
    s
}
