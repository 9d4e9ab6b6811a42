//! Each command's workflow, one module per command, taking plain domain options (no clap):
//! [`crate::cli`] parses flags and converts them into these structs.
//!
//! | command | module |
//! |---|---|
//! | `run`, `bench`, `sweep`, `suite` (the measuring path) | [`run`] |
//! | `info` | [`info`] |
//! | `list` | [`list`] |
//! | `stress` | [`stress`] |
//! | `validate` | [`validate`] |
//! | `compare` | [`compare`] (the statistics: [`crate::compare`]) |
//! | `report` | [`report`] (the page: [`crate::html`]) |
//! | `aggregate` | [`aggregate`] (the fleet view: [`crate::validate::aggregate`]) |

pub mod aggregate;
pub mod compare;
pub mod info;
pub mod list;
pub mod report;
pub mod run;
pub mod stress;
pub mod validate;

use crate::backend::{BackendChoice, BackendKind};
use crate::export::{Exports, Format};
use crate::measure::MeasureConfig;
use crate::runner::Settings;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How a run compared with `--baseline` is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineGate {
    /// Noise band in percent.
    pub threshold_pct: f64,
    /// What fails the comparison besides confirmed regressions.
    pub fail_on: crate::compare::Gate,
}

impl Default for BaselineGate {
    fn default() -> Self {
        BaselineGate {
            threshold_pct: crate::compare::DEFAULT_THRESHOLD_PCT,
            fail_on: crate::compare::Gate::default(),
        }
    }
}

/// What every command takes: where to run, where results go, how to measure.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: BackendChoice,
    /// Report targets: a path, or `-` for stdout.
    pub json: Option<String>,
    pub csv: Option<String>,
    pub markdown: Option<String>,
    pub seed: u64,
    pub quiet: bool,
    pub measure: MeasureConfig,
    pub threads: usize,
    pub hot: bool,
    pub dump_dir: Option<PathBuf>,
    pub dump_all: bool,
    pub save_baseline: Option<String>,
    /// `--baseline-keep`: how many runs of the saved baseline to keep (1: only the newest; its
    /// earlier runs, if any, are left as they are).
    pub baseline_keep: usize,
    pub baseline: Option<String>,
    /// How `--baseline` judges: `--baseline-threshold` and `--baseline-fail-on`, as compare's
    /// `--threshold` and `--fail-on`.
    pub baseline_gate: BaselineGate,
    pub baseline_dir: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    /// CI exports as `FORMAT:PATH`.
    pub export: Vec<String>,
    /// Prometheus textfile target: a path, or `-` for stdout.
    pub prometheus: Option<String>,
    /// JUnit XML target: a path, or `-` for stdout.
    pub junit: Option<String>,
    /// `--price-per-hour`: USD per device-hour for every device.
    pub price_per_hour: Option<f64>,
    /// `--price-file`: prices per SKU.
    pub price_file: Option<PathBuf>,
}

impl Options {
    /// Opens every report output now (`--json`, `--csv`, `--markdown`, each `--export`), so
    /// that a bad path, an unknown format or two outputs on stdout fail before anything runs.
    pub fn open_exports(&self) -> Result<Exports> {
        let mut req = Vec::new();
        for (fmt, p) in [
            (Format::Json, &self.json),
            (Format::Csv, &self.csv),
            (Format::Markdown, &self.markdown),
        ] {
            if let Some(p) = p {
                req.push((fmt, p.as_str()));
            }
        }
        let mut exports = Exports::open(&req)?;
        for spec in &self.export {
            let (format, path) = crate::compare::export::parse_spec(spec)?;
            exports.add(&format!("--export {spec}"), Box::new(format), &path)?;
        }
        self.check_output_dirs(&exports, &[])?;
        Ok(exports)
    }

    /// Every file the run writes as (label, path): the report formats and exports, and the
    /// Prometheus and JUnit files.
    pub fn output_files<'a>(&'a self, exports: &'a Exports) -> Vec<(String, &'a Path)> {
        let others = [self.prometheus.as_deref(), self.junit.as_deref()]
            .into_iter()
            .flatten()
            .filter(|t| *t != "-")
            .map(|t| (format!("the output {t}"), Path::new(t)));
        exports
            .files()
            .map(|(label, p)| (label.to_string(), p))
            .chain(others)
            .collect()
    }

    /// Refuses a file output named as one of the run's directories (`--json pp --plot pp`):
    /// found only after the measurement, the second to be made failed with "File exists" and
    /// no flag named.
    fn check_output_dirs(&self, exports: &Exports, extra: &[(&str, &str)]) -> Result<()> {
        let baseline_dir = (self.baseline.is_some() || self.save_baseline.is_some()).then(|| {
            self.baseline_dir
                .clone()
                .unwrap_or_else(crate::compare::default_baseline_dir)
        });
        let dirs = [
            ("--plot", self.plot.clone()),
            ("--dump-dir", self.dump_dir.clone()),
            ("--baseline-dir", baseline_dir),
        ];
        let mut files = self.output_files(exports);
        files.extend(
            extra
                .iter()
                .filter(|(_, t)| *t != "-")
                .map(|(flag, t)| (format!("{flag} {t}"), Path::new(*t))),
        );
        if let Some(plots) = &self.plot {
            let charted = files.iter().find(|(_, p)| {
                let name = p.file_name().and_then(|n| n.to_str());
                name.is_some_and(crate::plot::may_be_a_chart) && crate::output::lands_in(p, plots)
            });
            if let Some((label, _)) = charted {
                anyhow::bail!(
                    "`{label}` is inside --plot {} under the name of a chart the run writes \
                     there, which would replace it; name the file otherwise",
                    plots.display()
                );
            }
        }
        for (flag, dir) in dirs {
            let Some(dir) = dir else { continue };
            let files = files.iter().map(|(label, p)| (label.as_str(), *p));
            if let Some(label) = crate::output::already_written(&dir, files) {
                anyhow::bail!(
                    "`{label}` and {flag} {} name the same path, one a file and one a \
                     directory; give each its own",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// The runner's settings for `command` on devices of the `backend` kind (what the choice
    /// resolved to).
    pub fn settings(&self, command: &str, backend: BackendKind) -> Settings {
        Settings {
            measure: self.measure.clone(),
            seed: self.seed,
            hot: self.hot,
            threads: self.threads,
            dump_dir: self.dump_dir.clone(),
            dump_all: self.dump_all,
            quiet: self.quiet,
            command: command.into(),
            backend: backend.into(),
            fixed_environment: backend.fixed_environment(),
            world: Default::default(),
        }
    }

    /// The options of rank `rank` (> 0) of a world: every output file it writes gets
    /// `.rank<N>` before its extension (`results.json` → `results.rank3.json`), so the
    /// processes of one run never overwrite each other's files on a shared filesystem; rank 0
    /// keeps the names as given. Stdout targets (`-`) stay. Baselines are per rank as well
    /// (`nightly` → `nightly.rank3`): each rank saves its own devices' results and compares
    /// against what that rank saved before.
    pub fn for_rank(&self, rank: u32) -> Options {
        let file = |p: &Option<String>| p.as_ref().map(|p| ranked(p, rank));
        let baseline = |b: &Option<String>| b.as_ref().map(|b| format!("{b}.rank{rank}"));
        let dir = |d: &Option<PathBuf>| {
            d.as_ref()
                .map(|d| PathBuf::from(ranked(&d.to_string_lossy(), rank)))
        };
        Options {
            json: file(&self.json),
            csv: file(&self.csv),
            markdown: file(&self.markdown),
            prometheus: file(&self.prometheus),
            junit: file(&self.junit),
            save_baseline: baseline(&self.save_baseline),
            baseline: baseline(&self.baseline),
            plot: dir(&self.plot),
            dump_dir: dir(&self.dump_dir),
            export: self
                .export
                .iter()
                .map(|e| match e.split_once(':') {
                    Some((f, p)) => format!("{f}:{}", ranked(p, rank)),
                    None => e.clone(),
                })
                .collect(),
            ..self.clone()
        }
    }

    /// The prices asked for (`--price-per-hour` or `--price-file`), checked; `None` when
    /// neither was given.
    pub fn price_table(&self) -> Result<Option<crate::price::PriceTable>> {
        Ok(match (self.price_per_hour, &self.price_file) {
            (Some(usd), _) => Some(crate::price::PriceTable::flat(usd)?),
            (None, Some(p)) => Some(crate::price::PriceTable::load(p)?),
            (None, None) => None,
        })
    }

    /// Checks the Prometheus and JUnit targets beside `exports` and `others` (further machine
    /// outputs of the command): at most one of them all may take stdout, and a file's directory
    /// must take files. Returns whether one of `--prometheus`, `--junit` or `others` takes
    /// stdout.
    pub fn check_fleet_targets(&self, exports: &Exports, others: &[Option<&str>]) -> Result<bool> {
        let mut targets = vec![self.prometheus.as_deref(), self.junit.as_deref()];
        targets.extend_from_slice(others);
        // A command's own file (`--verdict`, `--estimate-json`) named as one of its
        // directories is refused too, before anything runs.
        let own: Vec<(&str, &str)> = others
            .iter()
            .flatten()
            .map(|t| ("the output", *t))
            .collect();
        self.check_output_dirs(exports, &own)?;
        check_extra_targets(exports, &targets)
    }

    /// A notice on stderr unless `--quiet`.
    pub fn notice(&self, msg: &str) {
        crate::term::notice(self.quiet, msg);
    }
}

/// `results.json` → `results.rank3.json`; `-` (stdout) stays.
fn ranked(path: &str, rank: u32) -> String {
    if path == "-" {
        return path.into();
    }
    let p = Path::new(path);
    match (p.file_stem(), p.extension()) {
        (Some(stem), Some(ext)) => p
            .with_file_name(format!(
                "{}.rank{rank}.{}",
                stem.to_string_lossy(),
                ext.to_string_lossy()
            ))
            .to_string_lossy()
            .into_owned(),
        _ => format!("{path}.rank{rank}"),
    }
}

/// A second signal this soon after the first is the same interruption delivered twice: GNU
/// `timeout` (and a shell's kill of the process group) signals the process and its group at
/// once, microseconds apart. A person's second Ctrl-C comes later than this.
const SAME_INTERRUPTION: std::time::Duration = std::time::Duration::from_millis(200);

/// A stop flag set by Ctrl-C. A second Ctrl-C leaves at once; the first lets the current sample
/// finish and the files be written.
pub fn stop_on_ctrlc() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut first: Option<std::time::Instant> = None;
    let installed = ctrlc::set_handler(move || {
        let now = std::time::Instant::now();
        if flag.swap(true, Ordering::SeqCst) {
            if first.is_some_and(|t| now.duration_since(t) < SAME_INTERRUPTION) {
                return;
            }
            std::process::exit(130);
        }
        first = Some(now);
        crate::output::write_stderr(
            "\ninterrupted: finishing the current sample (a second Ctrl-C or SIGTERM quits now)\n",
        );
    });
    if let Err(e) = installed {
        // Only one handler per process; a library caller may have its own.
        crate::term::warn(&format!("Ctrl-C and SIGTERM will not stop cleanly: {e}"));
    }
    stop
}

/// Prints to stdout; a closed pipe (`gpuvet | head`) is not an error.
pub fn print_stdout(text: &str) -> Result<()> {
    crate::output::write_stdout(text).context("writing to stdout")
}

/// Creates DIR and runs a chart writer into it, listing what it wrote.
pub fn write_plots(
    opts: &Options,
    dir: &Path,
    f: impl FnOnce() -> crate::Result<Vec<PathBuf>>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for p in f()? {
        opts.notice(&format!("wrote {}", p.display()));
    }
    Ok(())
}

/// Writes a stress run's timelines as charts when `--plot` asks for them.
pub fn plot_stress(opts: &Options, report: &crate::stress::StressReport) -> Result<()> {
    if let Some(dir) = &opts.plot {
        write_plots(opts, dir, || {
            crate::plot::write_timelines(&crate::plot::stress_timelines(report), dir)
        })?;
    }
    Ok(())
}

/// Checks that a second machine format (`--verdict`, `--estimate-json`) can go where asked:
/// only one output may take stdout, and a file's directory must take files. Returns whether
/// it goes to stdout.
pub fn check_extra_target(exports: &Exports, target: Option<&str>) -> Result<bool> {
    check_extra_targets(exports, &[target])
}

/// [`check_extra_target`] for several targets at once: one stdout among them and `exports`.
pub fn check_extra_targets(exports: &Exports, targets: &[Option<&str>]) -> Result<bool> {
    let mut stdout = exports.uses_stdout();
    let mut any = false;
    let mut files: Vec<&str> = Vec::new();
    for t in targets.iter().flatten() {
        if *t == "-" {
            if stdout {
                anyhow::bail!("only one output can go to stdout (`-`)");
            }
            stdout = true;
            any = true;
        } else {
            Exports::open(&[(Format::Json, t)])?;
            let path = Path::new(t);
            let ours = files.iter().map(|&f| (f, Path::new(f)));
            if let Some(other) = crate::output::already_written(path, exports.files().chain(ours)) {
                anyhow::bail!("two outputs write {t} (also `{other}`); give each its own file");
            }
            files.push(t);
        }
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_target() -> Options {
        let s = |v: &str| Some(v.to_string());
        Options {
            backend: BackendChoice::Mock,
            json: s("out/r.json"),
            csv: s("-"),
            markdown: s("out/r.md"),
            seed: 1,
            quiet: true,
            measure: MeasureConfig::default(),
            threads: 1,
            hot: false,
            dump_dir: Some("dumps".into()),
            dump_all: false,
            save_baseline: s("nightly"),
            baseline_keep: 1,
            baseline: s("v1.2"),
            baseline_gate: BaselineGate::default(),
            baseline_dir: Some("base".into()),
            plot: Some("charts".into()),
            export: vec!["bencher:out/b.txt".into(), "junit".into()],
            prometheus: s("/var/lib/node_exporter/gpuvet.prom"),
            junit: s("out/j.xml"),
            price_per_hour: None,
            price_file: None,
        }
    }

    /// Two ranks of one run on a shared filesystem must never write the same file or the same
    /// baseline; stdout and the shared baseline directory stay as given.
    #[test]
    fn a_rank_writes_no_file_of_rank_zero() {
        let o = every_target().for_rank(3);
        assert_eq!(o.json.as_deref(), Some("out/r.rank3.json"));
        assert_eq!(o.csv.as_deref(), Some("-"));
        assert_eq!(o.markdown.as_deref(), Some("out/r.rank3.md"));
        assert_eq!(
            o.prometheus.as_deref(),
            Some("/var/lib/node_exporter/gpuvet.rank3.prom")
        );
        assert_eq!(o.junit.as_deref(), Some("out/j.rank3.xml"));
        assert_eq!(o.plot, Some(PathBuf::from("charts.rank3")));
        assert_eq!(o.dump_dir, Some(PathBuf::from("dumps.rank3")));
        assert_eq!(o.export, ["bencher:out/b.rank3.txt", "junit"]);
        assert_eq!(o.save_baseline.as_deref(), Some("nightly.rank3"));
        assert_eq!(o.baseline.as_deref(), Some("v1.2.rank3"));
        assert_eq!(o.baseline_dir, Some(PathBuf::from("base")));
        for name in [&o.save_baseline, &o.baseline].into_iter().flatten() {
            crate::compare::baseline::validate_name(name).unwrap();
        }
    }
}
