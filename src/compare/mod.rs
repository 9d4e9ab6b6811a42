//! Regression tracking: baselines and statistically sound comparison of two reports.
//!
//! | piece | module | job |
//! |---|---|---|
//! | statistics | [`verdict`] | bootstrap interval of the ratio of medians → faster / slower / same / ambiguous |
//! | matching | this module | pair results of OLD and NEW by id and device, diff the environments |
//! | baselines | [`baseline`] | named reports saved atomically under `.gpuvet/baselines/` |
//! | output | [`render`] | terminal table, pull-request markdown, JSON |
//! | CI exports | [`export`](mod@export) | github-action-benchmark and Bencher JSON |
//!
//! A comparison never turns a wrong result into a number: a result whose verification failed
//! on either side gets `unverified` (or `failed` when the backend errored) and no ratio.

pub mod baseline;
pub mod export;
pub mod junit;
pub mod render;
pub mod verdict;

pub use baseline::{
    compare_to_baseline, default_baseline_dir, list_baselines, load_baseline, save_baseline,
};
pub use export::export;
pub use render::{render_csv, render_json, render_markdown, render_table};
pub use verdict::{
    classify, ratio_of_medians_ci, ratio_of_run_medians_ci, widening, RatioCi, Verdict,
};

use crate::report::{Report, ResultRecord, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Version of the comparison JSON (`--json`); fields are only added within a version.
pub const COMPARISON_SCHEMA_VERSION: u32 = 1;

/// Bootstrap seed used when none is given: fixed, so the same two reports always give the
/// same verdicts. Equal to the CLI's global `--seed` default, so the flag can be global
/// (the CLI lets a subcommand's own `--seed`, `--json` and `--markdown` stand in for global flags of
/// the same name and type).
pub const DEFAULT_SEED: u64 = 20261128;

/// Bound on the samples drawn by one result's bootstrap (resamples × samples of both runs).
const MAX_BOOTSTRAP_DRAWS: usize = 40_000_000;

/// Fewest resamples however many samples a run has.
const MIN_RESAMPLES: usize = 200;

/// Fewest samples per side for anything but `ambiguous`.
pub const MIN_SAMPLES: usize = 5;

/// Default noise threshold in percent.
pub const DEFAULT_THRESHOLD_PCT: f64 = 2.0;

/// One value of `compare --fail-on`: a kind of result that makes the comparison exit 1. The
/// values given make one [`Gate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Confirmed regressions only: `slower`, or a result that verified in OLD and not in NEW.
    /// Always fails; naming it alone keeps the default.
    Regression,
    /// Also `ambiguous`: for gates that would rather re-run than let a possible regression in.
    Ambiguous,
    /// Also `missing` (in OLD, not in NEW): for gates that must notice a benchmark that
    /// stopped running (a workload dropped from the sweep, a run cut short), which would
    /// otherwise pass as "no regression" with less measured.
    Missing,
}

/// What fails a comparison (exit 1): confirmed regressions always, and whatever `--fail-on`
/// adds. `new` results never fail: measuring more is not a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gate {
    pub ambiguous: bool,
    pub missing: bool,
}

impl Gate {
    /// Whether `r` fails the comparison under this gate.
    pub fn fails(self, r: &ResultComparison) -> bool {
        r.regression
            || match r.verdict {
                Verdict::Ambiguous => self.ambiguous,
                Verdict::Missing => self.missing,
                _ => false,
            }
    }

    /// What a failing result is, for the summary line: `regression`, `regression or
    /// ambiguous result`, ...
    pub fn describe(self) -> &'static str {
        match (self.ambiguous, self.missing) {
            (false, false) => "regression",
            (true, false) => "regression or ambiguous result",
            (false, true) => "regression or missing result",
            (true, true) => "regression, ambiguous or missing result",
        }
    }

    /// The `--fail-on` values that make this gate (`regression` when it adds nothing), as the
    /// JUnit property `fail_on` records them.
    pub fn names(self) -> String {
        let extra: Vec<&str> = [(self.ambiguous, "ambiguous"), (self.missing, "missing")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        if extra.is_empty() {
            "regression".into()
        } else {
            extra.join(",")
        }
    }
}

impl From<FailOn> for Gate {
    fn from(f: FailOn) -> Gate {
        [f].into_iter().collect()
    }
}

impl FromIterator<FailOn> for Gate {
    fn from_iter<I: IntoIterator<Item = FailOn>>(values: I) -> Gate {
        let mut g = Gate::default();
        for f in values {
            match f {
                FailOn::Regression => {}
                FailOn::Ambiguous => g.ambiguous = true,
                FailOn::Missing => g.missing = true,
            }
        }
        g
    }
}

/// One `gpuvet compare OLD NEW` invocation in domain terms (the CLI builds it from its flags).
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRequest {
    /// The earlier report (the baseline), or several runs of the earlier build.
    pub old: Vec<PathBuf>,
    /// The later report, or several runs of the later build, compared against OLD.
    pub new: Vec<PathBuf>,
    pub options: CompareOptions,
    pub fail_on: Gate,
    /// Markdown target: a path, or `-` for stdout.
    pub markdown: Option<String>,
    /// JSON target: a path, or `-` for stdout.
    pub json: Option<String>,
    /// JUnit XML target (a testcase per compared result): a path, or `-` for stdout.
    pub junit: Option<String>,
    /// CSV target (one row per result): a path, or `-` for stdout.
    pub csv: Option<String>,
}

/// How two reports are compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Noise band in percent (see [`verdict::band`]).
    pub threshold_pct: f64,
    /// Compare time × effective clock where both results recorded a clock.
    pub normalize_clock: bool,
    /// Bootstrap seed; each result derives its own stream from it and its id.
    pub seed: u64,
    /// Bootstrap resamples per result.
    pub resamples: usize,
    /// Two-sided confidence level of the interval.
    pub confidence: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            threshold_pct: DEFAULT_THRESHOLD_PCT,
            normalize_clock: false,
            seed: DEFAULT_SEED,
            resamples: verdict::DEFAULT_RESAMPLES,
            confidence: verdict::DEFAULT_CONFIDENCE,
        }
    }
}

/// Which report a comparison side came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// A path, or `baseline NAME`, or `this run`.
    pub label: String,
    pub started_at: String,
    /// `version (git sha)` of the gpuvet that wrote it.
    pub gpuvet: String,
    /// False when the run (any of the runs) was interrupted or is still going.
    pub complete: bool,
    /// How many runs (reports) this side holds: 1 unless `compare` was given several, whose
    /// spread then sets the interval (`started_at` and `gpuvet` are then the newest run's).
    #[serde(default = "one")]
    pub runs: usize,
    /// Every run's label when there are several (`label` then names the newest and the count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Which run (index into the runs given) is the newest, whose start and gpuvet are shown.
    #[serde(skip)]
    lead: usize,
}

fn one() -> usize {
    1
}

/// The side's newest run (the latest start; the last given of equal starts): what the side's
/// environment and header show. For a baseline that keeps its earlier runs, the saved baseline.
fn newest<'a>(runs: &[&'a Report]) -> &'a Report {
    runs[newest_index(runs)]
}

/// The index of [`newest`]'s run: `max_by` keeps the last of equal maxima, so of runs started
/// in the same second the last given leads (the saved baseline after its earlier runs).
fn newest_index(runs: &[&Report]) -> usize {
    (0..runs.len())
        .max_by(|&a, &b| runs[a].started_at.cmp(&runs[b].started_at))
        .unwrap_or(0)
}

impl RunInfo {
    fn of(runs: &[&Report], label: &str) -> Self {
        let lead = newest_index(runs);
        RunInfo {
            label: label.to_string(),
            started_at: runs[lead].started_at.clone(),
            gpuvet: format!("{} ({})", runs[lead].tool.version, runs[lead].tool.git_sha),
            complete: runs.iter().all(|r| r.complete),
            runs: runs.len(),
            files: Vec::new(),
            lead,
        }
    }

    /// Labels the side with its runs' labels: the one, or the newest (whose start and gpuvet
    /// the side shows) and the count (all of them, in the order given, in `files`).
    fn label_runs(&mut self, labels: &[String]) {
        match labels {
            [] => {}
            [one] => self.label = one.clone(),
            _ => {
                let lead = labels.get(self.lead).unwrap_or(&labels[0]);
                self.label = format!("{lead} + {} more ({} runs)", labels.len() - 1, labels.len());
                self.files = labels.to_vec();
            }
        }
    }
}

/// One way the two runs' environments differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvDiff {
    pub field: String,
    pub old: String,
    pub new: String,
}

/// The verdict for one matched (or unmatched) result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultComparison {
    /// `<workload name>/<implementation>`.
    pub id: String,
    /// Device name, with its index (`[3]`) when the report has several devices (`OLD → NEW`
    /// when they differ).
    pub device: String,
    pub verdict: Verdict,
    /// True when this result alone would fail the comparison with `--fail-on regression`.
    pub regression: bool,
    /// What was compared: `time` or `cycles` (`--normalize-clock` with both clocks known).
    pub quantity: String,
    pub old_median_s: Option<f64>,
    pub new_median_s: Option<f64>,
    /// Samples of the result on each side, over all its runs.
    pub old_samples: usize,
    pub new_samples: usize,
    /// Runs (reports) of each side that hold the result: 1 and 1 for two reports. Above one on
    /// a side, the interval is Student's t over the runs' medians, and the medians shown are
    /// the geometric means of the runs' medians.
    #[serde(default = "one")]
    pub old_runs: usize,
    #[serde(default = "one")]
    pub new_runs: usize,
    /// NEW/OLD ratio of medians of `quantity` with its interval (above 1: NEW is slower).
    pub ratio: Option<RatioCi>,
    /// Why there is no number, or what else to know (clock unknown, device changed); `null`
    /// when there is nothing to add (always present, as documented).
    #[serde(default)]
    pub detail: Option<String>,
}

/// Everything a comparison found; every renderer reads this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub old: RunInfo,
    pub new: RunInfo,
    pub options: CompareOptions,
    /// Shown first: a changed GPU, driver or kernel explains a moved number better than any
    /// statistics.
    pub environment: Vec<EnvDiff>,
    pub results: Vec<ResultComparison>,
    /// Run-level remarks (incomplete runs, clocks missing for normalisation).
    pub notes: Vec<String>,
}

/// Counts of each verdict, in a fixed order for summaries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCounts {
    pub faster: usize,
    pub slower: usize,
    pub same: usize,
    pub ambiguous: usize,
    pub missing: usize,
    pub new: usize,
    pub unverified: usize,
    pub failed: usize,
}

impl Comparison {
    /// How many results got each verdict.
    pub fn counts(&self) -> VerdictCounts {
        let mut c = VerdictCounts::default();
        for r in &self.results {
            match r.verdict {
                Verdict::Faster => c.faster += 1,
                Verdict::Slower => c.slower += 1,
                Verdict::Same => c.same += 1,
                Verdict::Ambiguous => c.ambiguous += 1,
                Verdict::Missing => c.missing += 1,
                Verdict::New => c.new += 1,
                Verdict::Unverified => c.unverified += 1,
                Verdict::Failed => c.failed += 1,
            }
        }
        c
    }

    /// The results that fail the comparison under `gate`.
    pub fn failing(&self, gate: impl Into<Gate>) -> Vec<&ResultComparison> {
        let gate = gate.into();
        self.results.iter().filter(|r| gate.fails(r)).collect()
    }

    /// How many results both runs have (every verdict but `missing` and `new`).
    pub fn compared(&self) -> usize {
        let c = self.counts();
        self.results.len() - c.missing - c.new
    }

    /// Process exit status (never a count): 2 when the two runs share no result, so nothing
    /// was compared (a baseline of other workloads, or a run that produced nothing) and "no
    /// regression" would be a gate passed without a test; 1 when anything fails under `gate`;
    /// else 0. Only `--fail-on missing` can fail a comparison of nothing, and 2 says better
    /// what went wrong.
    pub fn exit_code(&self, gate: impl Into<Gate>) -> i32 {
        if self.compared() == 0 {
            2
        } else if !self.failing(gate).is_empty() {
            1
        } else {
            0
        }
    }

    /// Sets the labels shown for the two sides (paths, `baseline NAME`).
    pub fn with_labels(self, old: &str, new: &str) -> Self {
        self.with_run_labels(&[old.to_string()], &[new.to_string()])
    }

    /// Sets the labels of each side's runs, in the order the runs were given.
    pub fn with_run_labels(mut self, old: &[String], new: &[String]) -> Self {
        self.old.label_runs(old);
        self.new.label_runs(new);
        self
    }

    /// Whether either side holds several runs (the intervals are then over runs).
    pub fn over_runs(&self) -> bool {
        self.old.runs > 1 || self.new.runs > 1
    }
}

/// Compares NEW against OLD: environment first, then one verdict per result.
///
/// Results are matched by id on the same device index and model; failing that, by id on a
/// device of the same model; failing that, on the same index; failing that, by id alone when
/// each side has exactly one unmatched candidate (comparing one GPU model against another is a
/// legitimate question).
pub fn compare(old: &Report, new: &Report, opts: &CompareOptions) -> Comparison {
    compare_runs(&[old], &[new], opts)
}

/// Compares several runs of NEW against several runs of OLD (each side at least one report).
///
/// With one run a side this is [`compare`]: a bootstrap of the two runs' samples. With more,
/// a result's interval is Student's t over its runs' medians
/// ([`ratio_of_run_medians_ci`]), which holds the variation between runs that no number of
/// samples in one run shows; runs' medians that agree more closely than each run's own
/// samples allow are widened to that noise (its floor). Within a
/// side, each later run is matched to the first by the rules that match the two sides (id,
/// then device index and model, so a node enumerated in another order keeps each model
/// apart); the first run's results lead, then those only later runs have. The environment
/// and header show each side's newest run (by start time).
pub fn compare_runs(old: &[&Report], new: &[&Report], opts: &CompareOptions) -> Comparison {
    assert!(
        !old.is_empty() && !new.is_empty(),
        "compare_runs needs a run on each side"
    );
    let mut notes = Vec::new();
    side_notes(&mut notes, "OLD", old);
    side_notes(&mut notes, "NEW", new);
    let (old_side, new_side) = (Side::of(old), Side::of(new));
    let (old_all, new_all) = (&*old_side.all, &*new_side.all);
    let pairs = match_results(old_all, new_all);
    let mut results = Vec::with_capacity(pairs.len());
    let mut unnormalised = 0usize;
    let mut kernels_changed: Vec<String> = Vec::new();
    for (i, j) in pairs {
        let row = match (i, j) {
            (Some(i), Some(j)) => {
                let (o, n) = (&old_all.results[i], &new_all.results[j]);
                let sides = [
                    (old_all, o, old_side.members[i].as_slice()),
                    (new_all, n, new_side.members[j].as_slice()),
                ];
                let mut row = compare_pair(&sides, [old.len(), new.len()], opts);
                if let Some(change) = kernel_change(o, n) {
                    kernels_changed.push(o.id.clone());
                    row.detail = Some(match row.detail.take() {
                        Some(d) => format!("{change}; {d}"),
                        None => change,
                    });
                }
                if opts.normalize_clock && row.ratio.is_some() && row.quantity != "cycles" {
                    unnormalised += 1;
                }
                row
            }
            (Some(i), None) => unmatched(
                [old_all, new_all],
                &old_all.results[i],
                &old_side.members[i],
                Verdict::Missing,
            ),
            (None, Some(j)) => unmatched(
                [new_all, old_all],
                &new_all.results[j],
                &new_side.members[j],
                Verdict::New,
            ),
            (None, None) => continue,
        };
        results.push(row);
    }
    if !kernels_changed.is_empty() {
        notes.push(format!(
            "the user kernel changed between the runs (source, headers or options) for {}: its verdict compares two different kernels",
            kernels_changed.join(", ")
        ));
    }
    if unnormalised > 0 {
        notes.push(format!(
            "--normalize-clock: {unnormalised} result(s) were compared by time: bandwidth-bound, \
             or without an effective clock in OLD or NEW (each row says which)"
        ));
    }
    Comparison {
        schema_version: COMPARISON_SCHEMA_VERSION,
        old: RunInfo::of(old, "OLD"),
        new: RunInfo::of(new, "NEW"),
        options: opts.clone(),
        environment: environment_diff(newest(old), newest(new)),
        results,
        notes,
    }
}

/// Run-level notes of one side: incomplete runs, and what differs among its runs (a
/// run-to-run interval then holds those differences too, which may or may not be wanted).
fn side_notes(notes: &mut Vec<String>, tag: &str, runs: &[&Report]) {
    if let [one] = runs {
        if !one.complete {
            notes.push(format!(
                "{tag} is an incomplete run (interrupted or still going)"
            ));
        }
        return;
    }
    let incomplete: Vec<String> = (1..=runs.len())
        .filter(|&k| !runs[k - 1].complete)
        .map(|k| k.to_string())
        .collect();
    if !incomplete.is_empty() {
        notes.push(format!(
            "{tag} run(s) {} of {} incomplete (interrupted or still going)",
            incomplete.join(", "),
            runs.len()
        ));
    }
    let mut fields: Vec<String> = Vec::new();
    let lead = newest(runs);
    for run in runs {
        for d in environment_diff(lead, run) {
            if !fields.contains(&d.field) {
                fields.push(d.field);
            }
        }
    }
    if !fields.is_empty() {
        notes.push(format!(
            "{tag}'s {} runs differ among themselves in: {}; their spread, and so the interval, \
             includes what that changes",
            runs.len(),
            fields.join(", ")
        ));
    }
}

/// One side's runs as one set of results: the first run's results, then those only later runs
/// have, each with its record in every run that has it (run number, 1-based; record).
struct Side<'a> {
    /// The first run, with the results only later runs have appended (borrowed as it is when
    /// the side is one run): what is matched against the other side, and whose devices label
    /// the rows.
    all: std::borrow::Cow<'a, Report>,
    /// For each result of `all`, its record in each run that has it.
    members: Vec<Vec<(usize, &'a ResultRecord)>>,
}

impl<'a> Side<'a> {
    fn of(runs: &[&'a Report]) -> Side<'a> {
        let mut all = std::borrow::Cow::Borrowed(runs[0]);
        let mut members: Vec<Vec<(usize, &'a ResultRecord)>> =
            runs[0].results.iter().map(|r| vec![(1, r)]).collect();
        for (k, run) in runs.iter().enumerate().skip(1) {
            for (i, j) in match_results(&all, run) {
                match (i, j) {
                    (Some(i), Some(j)) => members[i].push((k + 1, &run.results[j])),
                    (None, Some(j)) => {
                        all.to_mut().results.push(run.results[j].clone());
                        members.push(vec![(k + 1, &run.results[j])]);
                    }
                    _ => {}
                }
            }
        }
        Side { all, members }
    }
}

/// What changed in the user kernel behind a matched pair (source, or the build: headers,
/// options, defines, NVRTC, architecture), when anything did.
fn kernel_change(o: &ResultRecord, n: &ResultRecord) -> Option<String> {
    let (ko, kn) = (o.kernel.as_ref()?, n.kernel.as_ref()?);
    if ko.source_sha256 != kn.source_sha256 {
        return Some(format!(
            "kernel changed: {} source {} → {}",
            kn.source, ko.source_sha256, kn.source_sha256
        ));
    }
    if ko.build_sha256 != kn.build_sha256 {
        let opts = if ko.options != kn.options {
            format!(
                " (options {} → {})",
                ko.options.join(" "),
                kn.options.join(" ")
            )
        } else {
            " (headers, NVRTC or architecture)".to_string()
        };
        return Some(format!(
            "kernel rebuilt differently: build {} → {}{opts}",
            ko.build_sha256, kn.build_sha256
        ));
    }
    None
}

/// Pairs OLD and NEW records by index into each report's results; the order is OLD's, then
/// NEW-only results in NEW's order. Runs of one side are paired with each other the same way
/// (a node enumerated in another order from one run to the next keeps each model apart).
fn match_results(old: &Report, new: &Report) -> Vec<(Option<usize>, Option<usize>)> {
    let mut taken = vec![false; new.results.len()];
    let mut partner: Vec<Option<usize>> = vec![None; old.results.len()];
    type Key = fn(&Report, &ResultRecord, &Report, &ResultRecord) -> bool;
    let same_name: Key = |or, o, nr, n| device_name(or, o) == device_name(nr, n);
    let same_card: Key =
        |or, o, nr, n| o.device == n.device && device_name(or, o) == device_name(nr, n);
    let same_index: Key = |_, o, _, n| o.device == n.device;
    // The same index and model; then the same model at another index (a mixed node
    // enumerated in another order must not compare one model with the other); then the same
    // index (a node whose GPUs were all replaced by another model).
    for rule in [same_card, same_name, same_index] {
        for (i, o) in old.results.iter().enumerate() {
            if partner[i].is_some() {
                continue;
            }
            if let Some(j) = new
                .results
                .iter()
                .enumerate()
                .position(|(j, n)| !taken[j] && n.id == o.id && rule(old, o, new, n))
            {
                partner[i] = Some(j);
                taken[j] = true;
            }
        }
    }
    // Last resort: a lone unmatched id on each side, whatever its device.
    for (i, o) in old.results.iter().enumerate() {
        if partner[i].is_some() {
            continue;
        }
        let olds = (0..old.results.len())
            .filter(|&k| partner[k].is_none() && old.results[k].id == o.id)
            .count();
        let news: Vec<usize> = (0..new.results.len())
            .filter(|&j| !taken[j] && new.results[j].id == o.id)
            .collect();
        if olds == 1 && news.len() == 1 {
            partner[i] = Some(news[0]);
            taken[news[0]] = true;
        }
    }
    let mut out: Vec<_> = partner
        .iter()
        .enumerate()
        .map(|(i, p)| (Some(i), *p))
        .collect();
    out.extend(
        taken
            .iter()
            .enumerate()
            .filter(|(_, t)| !**t)
            .map(|(j, _)| (None, Some(j))),
    );
    out
}

/// The device as a row shows it: its name, and its index on a run of several devices (their
/// rows would otherwise read alike, and JUnit would get two cases of one name), for matched
/// and unmatched rows alike.
fn device_label(report: &Report, r: &ResultRecord) -> String {
    crate::report::with_placement(report, r, device_name(report, r))
}

fn device_name(report: &Report, r: &ResultRecord) -> String {
    report
        .devices
        .get(r.device.lead())
        .map(|d| d.name.clone())
        .unwrap_or_else(|| format!("device {}", r.device))
}

/// Why a record has no trustworthy time, or `None` when it has one.
fn why_unusable(r: &ResultRecord) -> Option<(Verdict, String)> {
    match r.status {
        Status::Error => Some((
            Verdict::Failed,
            format!(
                "backend error{}",
                r.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        )),
        Status::VerificationFailed => Some((
            Verdict::Unverified,
            format!(
                "verification failed (max rel. error {:.3e} > tolerance {:.1e})",
                r.verification.max_rel_error, r.verification.tolerance
            ),
        )),
        Status::Ok if !r.verification.passed => {
            Some((Verdict::Unverified, "verification did not pass".to_string()))
        }
        Status::Ok => match &r.stats {
            None => Some((Verdict::Unverified, "no timing samples".to_string())),
            Some(s) if s.times_s.is_empty() => {
                Some((Verdict::Unverified, "no timing samples".to_string()))
            }
            Some(_) => None,
        },
    }
}

/// One side of a matched pair: the side's merged report, its leading record, and the record in
/// each of the side's runs that has the result (run number, record).
type PairSide<'a> = (
    &'a Report,
    &'a ResultRecord,
    &'a [(usize, &'a ResultRecord)],
);

/// The verdict of one matched result. `side_runs` counts the runs each side holds in all.
fn compare_pair(
    sides: &[PairSide; 2],
    side_runs: [usize; 2],
    opts: &CompareOptions,
) -> ResultComparison {
    let [(old_report, o, old_recs), (new_report, n, new_recs)] = sides;
    let (dev_o, dev_n) = (device_label(old_report, o), device_label(new_report, n));
    let device = if dev_o == dev_n {
        dev_o
    } else {
        format!("{dev_o} → {dev_n}")
    };
    let mut row = ResultComparison {
        id: o.id.clone(),
        device,
        verdict: Verdict::Ambiguous,
        regression: false,
        quantity: "time".into(),
        old_median_s: side_median(old_recs),
        new_median_s: side_median(new_recs),
        old_samples: side_samples(old_recs),
        new_samples: side_samples(new_recs),
        old_runs: old_recs.len(),
        new_runs: new_recs.len(),
        ratio: None,
        detail: None,
    };
    let old_bad = why_unusable_in(old_recs, side_runs[0] > 1);
    let new_bad = why_unusable_in(new_recs, side_runs[1] > 1);
    if old_bad.is_some() || new_bad.is_some() {
        mark_unusable(&mut row, old_bad, new_bad);
        return row;
    }
    let (old_t, new_t) = compared_samples(old_recs, new_recs, opts, &mut row);
    // Another arithmetic (a library that switched compute mode, a CPU path that widens
    // differently) explains a moved number better than any statistics.
    if o.compute_dtype != n.compute_dtype {
        add_detail(
            &mut row,
            format!("compute type {} → {}", o.compute_dtype, n.compute_dtype),
        );
    }
    for (tag, recs, total) in [
        ("OLD", old_recs, side_runs[0]),
        ("NEW", new_recs, side_runs[1]),
    ] {
        if recs.len() < total {
            add_detail(&mut row, format!("in {} of {total} {tag} runs", recs.len()));
        }
    }
    if old_t.len() == 1 && new_t.len() == 1 {
        if side_runs != [1, 1] {
            add_detail(
                &mut row,
                "one run a side: the interval holds the noise within the run only".into(),
            );
        }
        bootstrap_verdict(&mut row, o, &old_t[0], &new_t[0], opts);
    } else {
        let floor = [within_run_floor(old_recs), within_run_floor(new_recs)];
        run_verdict(&mut row, [&old_t, &new_t], floor, opts);
    }
    row
}

/// The least variance of a run's log median on a side: the mean over its runs of each run's
/// own (the 95% interval of its median, recorded with its samples, as a standard error of the
/// log: (ln high − ln low) / (2 · 1.96)). Scale-free, so it holds for cycles as for time.
fn within_run_floor(recs: &[(usize, &ResultRecord)]) -> f64 {
    let vars: Vec<f64> = recs
        .iter()
        .filter_map(|(_, r)| r.stats.as_ref())
        .filter(|s| s.ci95_low_s > 0.0 && s.ci95_high_s >= s.ci95_low_s)
        .map(|s| ((s.ci95_high_s.ln() - s.ci95_low_s.ln()) / (2.0 * 1.96)).powi(2))
        .filter(|v| v.is_finite())
        .collect();
    if vars.is_empty() {
        0.0
    } else {
        vars.iter().sum::<f64>() / vars.len() as f64
    }
}

/// A side's median as rows show it: the run's median, or the geometric mean of the runs'
/// medians (the centre the interval over runs is about).
fn side_median(recs: &[(usize, &ResultRecord)]) -> Option<f64> {
    let medians: Vec<f64> = recs
        .iter()
        .filter_map(|(_, r)| r.stats.as_ref().map(|s| s.median_s))
        .collect();
    match medians.as_slice() {
        [] => None,
        [one] => Some(*one),
        many if many.iter().all(|m| *m > 0.0) => {
            Some((many.iter().map(|m| m.ln()).sum::<f64>() / many.len() as f64).exp())
        }
        _ => None,
    }
}

/// A side's samples of the result, over all its runs.
fn side_samples(recs: &[(usize, &ResultRecord)]) -> usize {
    recs.iter()
        .map(|(_, r)| r.stats.as_ref().map_or(0, |s| s.times_s.len()))
        .sum()
}

/// Why a side has no trustworthy time: a backend error in any run outranks a verification
/// failure in any run; with several runs the reason names its run.
fn why_unusable_in(recs: &[(usize, &ResultRecord)], several: bool) -> Option<(Verdict, String)> {
    let bad: Vec<(Verdict, String)> = recs
        .iter()
        .filter_map(|(k, r)| {
            why_unusable(r).map(|(v, why)| {
                (
                    v,
                    if several {
                        format!("run {k}: {why}")
                    } else {
                        why
                    },
                )
            })
        })
        .collect();
    bad.iter()
        .find(|(v, _)| *v == Verdict::Failed)
        .or(bad.first())
        .cloned()
}

/// Adds `why` to the row's detail, after what is already there.
fn add_detail(row: &mut ResultComparison, why: String) {
    row.detail = Some(match row.detail.take() {
        Some(d) => format!("{d}; {why}"),
        None => why,
    });
}

/// Sets the verdict of a pair where either side has no usable samples: `failed` (a backend
/// error) outranks `unverified`, and the detail says which side and why.
fn mark_unusable(
    row: &mut ResultComparison,
    old_bad: Option<(Verdict, String)>,
    new_bad: Option<(Verdict, String)>,
) {
    row.verdict = match (&old_bad, &new_bad) {
        (Some((Verdict::Failed, _)), _) | (_, Some((Verdict::Failed, _))) => Verdict::Failed,
        _ => Verdict::Unverified,
    };
    let mut parts = Vec::new();
    if let Some((_, why)) = &old_bad {
        parts.push(format!("OLD: {why}"));
    }
    if let Some((_, why)) = &new_bad {
        parts.push(format!("NEW: {why}"));
    }
    // A result that was right before and is wrong now is worse than a slow one.
    row.regression = old_bad.is_none() && new_bad.is_some();
    row.detail = Some(parts.join("; "));
}

/// The two sides' samples of the compared quantity, a list per run: times, or cycles (time ×
/// effective clock, each run its own) under `--normalize-clock` when every run of both sides
/// recorded a clock; otherwise the row's detail says why not.
fn compared_samples(
    o: &[(usize, &ResultRecord)],
    n: &[(usize, &ResultRecord)],
    opts: &CompareOptions,
    row: &mut ResultComparison,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let runs = |side: &[(usize, &ResultRecord)]| -> Vec<Vec<f64>> {
        side.iter().map(|(_, r)| times(r)).collect()
    };
    let (mut old_t, mut new_t) = (runs(o), runs(n));
    // Cycles measure work bound by the SM clock. A bandwidth-bound result's time follows the
    // memory clock: normalised, a run at a lower SM clock made it look faster by the clock
    // ratio (and hid a real regression there).
    let bandwidth_bound = o[0].1.workload.metric() == crate::workload::Metric::Bytes;
    if opts.normalize_clock && bandwidth_bound {
        add_detail(
            row,
            "bandwidth-bound: compared time (its speed follows the memory clock, not the SM \
             clock)"
                .into(),
        );
    } else if opts.normalize_clock {
        let clocks = |side: &[(usize, &ResultRecord)]| -> Option<Vec<f64>> {
            side.iter().map(|(_, r)| clock(r)).collect()
        };
        match (clocks(o), clocks(n)) {
            (Some(co), Some(cn)) => {
                for (t, c) in old_t.iter_mut().zip(co).chain(new_t.iter_mut().zip(cn)) {
                    t.iter_mut().for_each(|x| *x *= c * 1e6);
                }
                row.quantity = "cycles".into();
            }
            (co, cn) => {
                let missing: Vec<&str> = [("OLD", co.is_none()), ("NEW", cn.is_none())]
                    .iter()
                    .filter(|(_, none)| *none)
                    .map(|(s, _)| *s)
                    .collect();
                add_detail(
                    row,
                    format!(
                        "no effective clock in {}: compared time",
                        missing.join(" and ")
                    ),
                );
            }
        }
    }
    (old_t, new_t)
}

/// The Student-t interval over the runs' medians and the verdict it gives (a side holds
/// several runs).
fn run_verdict(
    row: &mut ResultComparison,
    [old_t, new_t]: [&[Vec<f64>]; 2],
    floor: [f64; 2],
    opts: &CompareOptions,
) {
    let all = || old_t.iter().chain(new_t);
    let usable = all().all(|t| !t.is_empty() && t.iter().all(|x| x.is_finite() && *x > 0.0));
    let medians =
        |side: &[Vec<f64>]| -> Vec<f64> { side.iter().map(|t| crate::stats::median(t)).collect() };
    let ci = usable
        .then(|| ratio_of_run_medians_ci(&medians(old_t), &medians(new_t), opts.confidence, floor))
        .flatten();
    let Some((ci, floored)) = ci else {
        row.verdict = Verdict::Unverified;
        row.detail = Some("a timing sample is zero, negative or not finite".into());
        return;
    };
    if floored {
        add_detail(
            row,
            "the runs' medians agree more closely than each run's own samples allow: the \
             interval uses the noise within the runs"
                .into(),
        );
    }
    for (single, tag, other) in [
        (old_t.len() == 1, "OLD", "NEW"),
        (new_t.len() == 1, "NEW", "OLD"),
    ] {
        if single {
            add_detail(
                row,
                format!("one {tag} run: its spread between runs taken to be {other}'s"),
            );
        }
    }
    let fewest = all().map(Vec::len).min().unwrap_or(0);
    row.verdict = if fewest < MIN_SAMPLES {
        add_detail(
            row,
            format!("only {fewest} sample(s) in a run; {MIN_SAMPLES} needed for a verdict"),
        );
        Verdict::Ambiguous
    } else {
        classify(&ci, opts.threshold_pct)
    };
    row.regression = row.verdict == Verdict::Slower;
    row.ratio = Some(ci);
}

/// The bootstrap interval of the ratio of medians and the verdict it gives.
fn bootstrap_verdict(
    row: &mut ResultComparison,
    o: &ResultRecord,
    old_t: &[f64],
    new_t: &[f64],
    opts: &CompareOptions,
) {
    let seed = crate::tensor::splitmix(
        opts.seed ^ crate::tensor::stable_hash(&format!("{}#{}", o.id, o.device)),
    );
    // Runs with very many samples (up to a million with --max-samples) would make 2000
    // resamples cost minutes; their intervals are narrow anyway, so fewer resamples do.
    let work = (old_t.len() + new_t.len()).max(1);
    let resamples = opts
        .resamples
        .min((MAX_BOOTSTRAP_DRAWS / work).max(MIN_RESAMPLES));
    if resamples < opts.resamples {
        // The header names the requested count; this row says it used fewer.
        add_detail(
            row,
            format!(
                "{resamples} bootstrap resamples, not {}: the runs hold {work} samples",
                opts.resamples
            ),
        );
    }
    // Samples that hang together in time count for less: each side's interval is widened by
    // its √τ (docs/regression.md).
    let widening = verdict::widening(old_t, new_t);
    if widening != [1.0, 1.0] {
        add_detail(
            row,
            format!(
                "interval widened ×{:.2} OLD, ×{:.2} NEW for samples correlated in time",
                widening[0], widening[1]
            ),
        );
    }
    match ratio_of_medians_ci(old_t, new_t, widening, opts.confidence, resamples, seed) {
        Some(ci) => {
            let fewest = old_t.len().min(new_t.len());
            row.verdict = if fewest < MIN_SAMPLES {
                // A bootstrap of a handful of samples knows nothing about the noise: its
                // interval is as narrow as the samples are few.
                let why = format!(
                    "only {fewest} sample(s) on one side; {MIN_SAMPLES} needed for a verdict"
                );
                add_detail(row, why);
                Verdict::Ambiguous
            } else {
                classify(&ci, opts.threshold_pct)
            };
            row.regression = row.verdict == Verdict::Slower;
            row.ratio = Some(ci);
        }
        None => {
            row.verdict = Verdict::Unverified;
            add_detail(
                row,
                "a timing sample is zero, negative or not finite".into(),
            );
        }
    }
}

fn times(r: &ResultRecord) -> Vec<f64> {
    r.stats
        .as_ref()
        .map(|s| s.times_s.clone())
        .unwrap_or_default()
}

fn clock(r: &ResultRecord) -> Option<f64> {
    r.effective_clock_mhz.filter(|c| c.is_finite() && *c > 0.0)
}

/// The row of a result one side has and the other lacks: `reports` is its own side's report,
/// then the other's, whose `not_run` may say why the result is not there (a library missing on
/// the new machine).
fn unmatched(
    [report, other]: [&Report; 2],
    r: &ResultRecord,
    recs: &[(usize, &ResultRecord)],
    verdict: Verdict,
) -> ResultComparison {
    let (median, samples, runs) = (side_median(recs), side_samples(recs), recs.len());
    let (old_median_s, new_median_s, old_samples, new_samples, old_runs, new_runs, why) =
        match verdict {
            Verdict::Missing => (median, None, samples, 0, runs, 0, "in OLD only"),
            _ => (None, median, 0, samples, 0, runs, "in NEW only"),
        };
    let mut detail = why.to_string();
    if let Some((_, bad)) = why_unusable(r) {
        detail.push_str(&format!(" ({bad})"));
    }
    let name = r.workload.name();
    if let Some(n) = other.not_run.iter().find(|n| n.workload == name) {
        let side = if verdict == Verdict::Missing {
            "NEW"
        } else {
            "OLD"
        };
        detail.push_str(&format!(
            "; {side} could not run it on {}: {}",
            other.device_name(n.device.lead()),
            n.why
        ));
    }
    ResultComparison {
        id: r.id.clone(),
        device: device_label(report, r),
        verdict,
        regression: false,
        quantity: "time".into(),
        old_median_s,
        new_median_s,
        old_samples,
        new_samples,
        old_runs,
        new_runs,
        ratio: None,
        detail: Some(detail),
    }
}

/// One run-level environment field: its label and its value as text.
type RunField = (&'static str, fn(&Report) -> String);

/// One per-device environment field (`-` when absent).
type DeviceField = (
    &'static str,
    fn(&crate::backend::DeviceInfo) -> Option<String>,
);

/// What the runs were: compared before the devices.
const RUN_FIELDS: &[RunField] = &[
    ("gpuvet version", |r| r.tool.version.clone()),
    ("gpuvet git sha", |r| r.tool.git_sha.clone()),
    ("backend", |r| r.config.backend.to_string()),
    ("devices", |r| r.devices.len().to_string()),
    // A collective's figures, and which GPUs a rank's report holds, depend on the world: a
    // 16-rank run compared with an 8-rank one says so.
    ("processes", |r| {
        r.world.as_ref().map_or("one".into(), |w| {
            format!(
                "rank {} of {} ({} per node, {})",
                w.rank,
                w.size,
                w.local_size,
                w.launcher.name()
            )
        })
    }),
];

/// Each device's identity, labelled `device N <field>`; its `details` follow.
const DEVICE_FIELDS: &[DeviceField] = &[
    ("name", |d| Some(d.name.clone())),
    ("driver", |d| d.driver_version.clone()),
    ("compute capability", |d| d.compute_capability.clone()),
    ("uuid", |d| d.uuid.clone()),
];

/// The host and the run's settings: compared after the devices.
const HOST_FIELDS: &[RunField] = &[
    ("kernel hash", |r| {
        r.config.kernel_hash.clone().unwrap_or_else(|| "-".into())
    }),
    ("host CPU", |r| r.host.cpu_model.clone()),
    ("host", |r| r.host.hostname.clone()),
    ("OS", |r| r.host.os.clone()),
    ("OS kernel", |r| r.host.kernel.clone()),
    ("cache mode", |r| {
        if r.config.hot { "hot" } else { "cold" }.into()
    }),
    ("threads", |r| r.config.threads.to_string()),
    ("input seed", |r| r.config.seed.to_string()),
];

/// A device's `details` entries as tables show them; none for a device one side lacks.
fn entries(d: Option<&crate::backend::DeviceInfo>) -> BTreeMap<String, String> {
    d.map(|d| d.details.entries()).unwrap_or_default()
}

/// Every environment field that differs between the two runs, in a fixed order: the run,
/// each device (identity, then every `details` key either side has), the host and settings.
pub fn environment_diff(old: &Report, new: &Report) -> Vec<EnvDiff> {
    let mut out = Vec::new();
    let mut push = |field: String, a: String, b: String| {
        if a != b {
            out.push(EnvDiff {
                field,
                old: a,
                new: b,
            });
        }
    };
    for (label, f) in RUN_FIELDS {
        push(label.to_string(), f(old), f(new));
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for i in 0..old.devices.len().max(new.devices.len()) {
        let (a, b) = (old.devices.get(i), new.devices.get(i));
        for (label, f) in DEVICE_FIELDS {
            push(
                format!("device {i} {label}"),
                opt(a.and_then(f)),
                opt(b.and_then(f)),
            );
        }
        // `details` carries NVRTC/CUDA versions, clocks and anything else a backend records.
        let (ea, eb) = (entries(a), entries(b));
        for k in ea.keys().chain(eb.keys()).collect::<BTreeSet<_>>() {
            let val = |e: &BTreeMap<String, String>| opt(e.get(k).cloned());
            push(format!("device {i} {k}"), val(&ea), val(&eb));
        }
    }
    for (label, f) in HOST_FIELDS {
        push(label.to_string(), f(old), f(new));
    }
    out
}

/// Reads the reports of one side. A run given twice (the same file, or two files of the same
/// run) would count its median twice and narrow the interval with no new evidence, so it is
/// refused.
pub fn load_side(tag: &str, paths: &[PathBuf]) -> crate::Result<Vec<Report>> {
    if paths.is_empty() {
        return Err(crate::Error::invalid(format!("no {tag} report given")));
    }
    let mut reports: Vec<Report> = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        let report = Report::load(path)?;
        if let Some(j) = reports.iter().position(|r| same_run(r, &report)) {
            return Err(crate::Error::invalid(format!(
                "{} and {} are the same run ({tag} run {} and {}); a run counted twice \
                 narrows the interval without new evidence: give each run once",
                paths[j].display(),
                path.display(),
                j + 1,
                i + 1
            )));
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Whether two reports are one run: the same start, host and samples.
fn same_run(a: &Report, b: &Report) -> bool {
    a.started_at == b.started_at && a.host == b.host && a.results == b.results
}

/// An [`Exporter`](crate::export::Exporter) failure as a library error: a library error it
/// carries comes back as it was; an I/O failure stays `Error::Io` (same kind) with the whole
/// message, target included.
pub(crate) fn export_error(e: anyhow::Error) -> crate::Error {
    let msg = format!("{e:#}");
    match e.downcast::<crate::Error>() {
        Ok(lib) => lib,
        Err(e) => match e.downcast_ref::<std::io::Error>() {
            Some(io) => crate::Error::Io(std::io::Error::new(io.kind(), msg)),
            None => crate::Error::invalid(msg),
        },
    }
}

/// The comparison as pull-request markdown, as a file format (`--markdown`).
#[derive(Debug, Clone, Copy)]
pub struct MarkdownExport(pub Gate);

impl crate::export::Exporter<Comparison> for MarkdownExport {
    fn render(&self, cmp: &Comparison) -> anyhow::Result<String> {
        Ok(render_markdown(cmp, self.0))
    }
}

/// The comparison as CSV, one row per result, as a file format (`--csv`).
#[derive(Debug, Clone, Copy)]
pub struct CsvExport;

impl crate::export::Exporter<Comparison> for CsvExport {
    fn render(&self, cmp: &Comparison) -> anyhow::Result<String> {
        render::render_csv(cmp)
    }
}

/// The files of a comparison (`--markdown`, `--json`, `--csv`), checked before anything is
/// read: each path must be writable, and at most one may be `-` (stdout).
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    markdown: Option<String>,
    json: Option<String>,
    csv: Option<String>,
    junit: Option<String>,
}

impl Outputs {
    /// Checks the targets of `--markdown`, `--json`, `--csv` and `--junit`, in that order:
    /// one stdout at most, each file writable, none written twice, and none of `inputs` (the
    /// reports compared) overwritten.
    pub fn check(targets: [Option<&str>; 4], inputs: &[&Path]) -> crate::Result<Outputs> {
        let [markdown, json, csv, junit] = targets;
        let given = [
            ("--markdown", markdown),
            ("--json", json),
            ("--csv", csv),
            ("--junit", junit),
        ];
        let on_stdout: Vec<&str> = given
            .iter()
            .filter(|(_, t)| *t == Some("-"))
            .map(|(f, _)| *f)
            .collect();
        if on_stdout.len() > 1 {
            return Err(crate::Error::invalid(format!(
                "{} all ask for stdout (`-`); send all but one of them to a file",
                on_stdout.join(" and ")
            )));
        }
        let mut seen: Vec<(&str, &Path)> = Vec::new();
        for (flag, target) in given {
            if let Some(path) = target.filter(|t| *t != "-") {
                crate::export::check_path(path)
                    .map_err(|e| crate::Error::invalid(format!("{flag}: {e:#}")))?;
                let p = Path::new(path);
                if let Some(i) = crate::output::overwritten_input(p, inputs) {
                    return Err(crate::Error::invalid(format!(
                        "{flag} {path} is a report being compared ({}); write the comparison \
                         elsewhere",
                        i.display()
                    )));
                }
                if let Some(other) = crate::output::already_written(p, seen.iter().copied()) {
                    return Err(crate::Error::invalid(format!(
                        "{other} and {flag} both write {path}; give each its own file"
                    )));
                }
                seen.push((flag, p));
            }
        }
        Ok(Outputs {
            markdown: markdown.map(str::to_string),
            json: json.map(str::to_string),
            csv: csv.map(str::to_string),
            junit: junit.map(str::to_string),
        })
    }

    /// Prints the table and writes each file. When one of them goes to stdout the table goes
    /// to stderr, so stdout stays machine-readable.
    pub fn emit(&self, cmp: &Comparison, fail_on: Gate, color: bool) -> crate::Result<()> {
        use crate::export::{Exporter, PrettyJson};
        let targets = [&self.markdown, &self.json, &self.csv, &self.junit];
        let machine_on_stdout = targets.iter().any(|t| t.as_deref() == Some("-"));
        let table = render_table(cmp, fail_on, color);
        crate::output::Output::new(machine_on_stdout).human(&table)?;
        if let Some(target) = &self.markdown {
            MarkdownExport(fail_on)
                .write(target, cmp)
                .map_err(export_error)?;
        }
        if let Some(target) = &self.json {
            PrettyJson.write(target, cmp).map_err(export_error)?;
        }
        if let Some(target) = &self.csv {
            CsvExport.write(target, cmp).map_err(export_error)?;
        }
        if let Some(target) = &self.junit {
            junit::JunitCompare(fail_on)
                .write(target, cmp)
                .map_err(export_error)?;
        }
        Ok(())
    }
}
