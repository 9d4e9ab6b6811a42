//! Verdicts: pure functions from results, telemetry and the SKU to PASS / WARN / FAIL with
//! reasons a person can act on.
//!
//! Four checks besides identity ([`super::identity`]):
//! - **absolute**: each figure against what a healthy card of the SKU reaches;
//! - **peers**: each figure against the median of the node's GPUs of the same SKU;
//! - **health**: throttling, clocks, temperature, ECC, remapped rows, PCIe link;
//! - **correctness**: every result verified, every stress checksum identical.

use crate::backend::{DeviceInfo, DeviceState, Peaks, Telemetry, ThrottleReason};
use crate::gpudb::{ExpectConfidence, Expectation, Sku};
use crate::report::{ResultRecord, Status};
use crate::workload::{Metric, Workload};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

/// Ordered so that `max` is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }

    /// The worst of `verdicts` (FAIL over WARN over PASS); `none` when there are none.
    pub fn worst(verdicts: impl IntoIterator<Item = Verdict>, none: Verdict) -> Verdict {
        verdicts.into_iter().max().unwrap_or(none)
    }

    /// Process exit status: 0 healthy (PASS, or WARN unless `fail_on_warn`), 1 unhealthy.
    /// (2, a tool error, is the caller's: no verdict was reached.)
    pub fn exit_code(self, fail_on_warn: bool) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Warn if fail_on_warn => 1,
            Verdict::Warn => 0,
            Verdict::Fail => 1,
        }
    }
}

crate::label::display_name!(Verdict);

/// One observation. A `Pass` finding is a note (why a check was skipped, what was seen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub verdict: Verdict,
    pub message: String,
}

impl Finding {
    pub fn new(verdict: Verdict, message: impl Into<String>) -> Self {
        Finding {
            verdict,
            message: message.into(),
        }
    }
    pub fn pass(message: impl Into<String>) -> Self {
        Finding::new(Verdict::Pass, message)
    }
    pub fn warn(message: impl Into<String>) -> Self {
        Finding::new(Verdict::Warn, message)
    }
    pub fn fail(message: impl Into<String>) -> Self {
        Finding::new(Verdict::Fail, message)
    }
}

/// The checks a GPU goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Identity,
    Absolute,
    Peers,
    Health,
    Correctness,
    /// The node's links: NVLink per pair, peer copies, the collective's bus bandwidth.
    Links,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Identity => "identity",
            CheckKind::Absolute => "absolute",
            CheckKind::Peers => "peers",
            CheckKind::Health => "health",
            CheckKind::Correctness => "correctness",
            CheckKind::Links => "links",
        }
    }
}

/// The outcome of one check: the worst of its findings.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub check: CheckKind,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    /// Why the check judged nothing (no database entry, no peers, no telemetry), when it did
    /// not: its PASS is then vacuous, and reports that know skips (JUnit) say so.
    pub skipped: Option<String>,
}

impl Check {
    pub fn new(check: CheckKind, findings: Vec<Finding>) -> Self {
        let verdict = Verdict::worst(findings.iter().map(|f| f.verdict), Verdict::Pass);
        Check {
            check,
            verdict,
            findings,
            skipped: None,
        }
    }

    /// A check with nothing to judge: PASS, with `reason` as its one finding and as `skipped`.
    pub fn skipped(check: CheckKind, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Check {
            skipped: Some(reason.clone()),
            ..Check::new(check, vec![Finding::pass(reason)])
        }
    }

    /// Marks the check skipped for `reason` when its only finding is that PASS note: other
    /// findings (a MIG slice, a PCIe link) mean something was judged after all.
    fn skipped_if_alone(mut self, reason: &str) -> Self {
        if self.findings.len() == 1 && self.findings[0].message == reason {
            self.skipped = Some(reason.to_string());
        }
        self
    }

    /// Findings that are not notes, as "check: message".
    pub fn reasons(&self) -> impl Iterator<Item = String> + '_ {
        self.reasons_where(|v| v != Verdict::Pass)
    }

    /// The findings of exactly `level`, as "check: message".
    pub fn reasons_at(&self, level: Verdict) -> impl Iterator<Item = String> + '_ {
        self.reasons_where(move |v| v == level)
    }

    fn reasons_where<'a>(
        &'a self,
        keep: impl Fn(Verdict) -> bool + 'a,
    ) -> impl Iterator<Item = String> + 'a {
        self.findings
            .iter()
            .filter(move |f| keep(f.verdict))
            .map(|f| format!("{}: {}", self.check.name(), f.message))
    }
}

/// One headline figure of a GPU, with what it was judged against.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// FLOP/s, OP/s or B/s.
    pub value: f64,
    pub unit: String,
    /// The result it came from (`<workload>/<implementation>`).
    pub result_id: String,
    /// Datasheet (or computed) peak in the same unit.
    pub peak: Option<f64>,
    /// What a healthy card reaches: share × peak.
    pub expected: Option<f64>,
    /// value / expected.
    pub ratio: Option<f64>,
    /// `value` at the fast end of the 95% interval of its median time: the most the
    /// measurement allows. A shortfall fails only when this falls short too.
    #[serde(default)]
    pub value_high: Option<f64>,
}

/// The finding for a figure judged `verdict` (`msg` says why): a FAIL that the fast end of the
/// figure's own 95% interval (`high`) would not reach (`fails(high)` false) is a WARN that says
/// so: the shortfall is not established beyond the measurement's noise.
pub(crate) fn beyond_noise(
    verdict: Verdict,
    msg: String,
    high: Option<f64>,
    unit: &str,
    fails: impl Fn(f64) -> bool,
) -> Finding {
    match high {
        Some(h) if verdict == Verdict::Fail && !fails(h) => Finding::warn(format!(
            "{msg}; not failed: the fast end of its 95% interval, {}, is not short, so this \
             rests on noise (measure longer: --max-time, --min-samples)",
            format_rate(h, unit)
        )),
        _ => Finding::new(verdict, msg),
    }
}

/// The test a workload belongs to, the key of expectations in the GPU database:
/// `memory.<op>`, `matmul.<dtype>`, `attention.prefill`, `attention.decode`.
pub fn test_key(w: &Workload) -> String {
    w.test_key()
}

/// The figure a result contributes to its test, from its median time: bytes per second for
/// bandwidth-bound workloads, operations per second for the rest ([`Workload::metric`] decides,
/// as it does for the runner's headline), in the unit reports use.
fn figure(r: &ResultRecord) -> Option<(f64, String)> {
    let t = r.stats.as_ref()?.median_s;
    let value = match r.workload.metric() {
        Metric::Bytes => r.bytes as f64 / t,
        Metric::Flops => r.flops / t,
    };
    let unit = ResultRecord::unit_for(&r.workload);
    (value.is_finite() && value > 0.0).then(|| (value, unit.to_string()))
}

/// Best verified figure per test of one GPU (several implementations of a test: the best one
/// says what the card can do), with peaks and expectations filled in where known.
///
/// `peaks` are the SKU's or computed ones; `expect` gives the achievable share per test key.
pub fn metrics(
    results: &[&ResultRecord],
    peaks: Option<&Peaks>,
    expect: &dyn Fn(&str) -> Option<Expectation>,
) -> BTreeMap<String, MetricValue> {
    let mut out: BTreeMap<String, MetricValue> = BTreeMap::new();
    for r in results.iter().filter(|r| r.is_valid()) {
        let key = test_key(&r.workload);
        let Some((value, unit)) = figure(r) else {
            continue;
        };
        if out.get(&key).is_some_and(|m| m.value >= value) {
            continue;
        }
        let peak = peaks.and_then(|p| crate::report::peak_of(p, &r.workload));
        let expected = peak.zip(expect(&key)).map(|(p, e)| p * e.share);
        out.insert(
            key,
            MetricValue {
                value,
                unit,
                result_id: r.id.clone(),
                peak,
                expected,
                ratio: expected.map(|e| value / e),
                value_high: r.rate_high(value),
            },
        );
    }
    out
}

/// Human form of a rate: `794.1 TFLOP/s`, `4.31 TB/s`.
pub fn format_rate(value: f64, unit: &str) -> String {
    crate::units::si(value, unit)
}

/// Absolute check: each figure against the SKU's achievable expectation.
///
/// ratio ≥ 1 − tolerance: PASS; ≥ 1 − 2·tolerance: WARN; below: FAIL. Against an expectation
/// that is an estimate, only a shortfall beyond 2·tolerance counts, and as a WARN: a guess may
/// not fail hardware. A figure above the datasheet peak is a broken measurement: WARN.
pub fn absolute(
    metrics: &BTreeMap<String, MetricValue>,
    expect: &dyn Fn(&str) -> Option<Expectation>,
    tolerance: f64,
) -> Check {
    let mut f = Vec::new();
    let mut judged = 0;
    for (key, m) in metrics {
        let (Some(expected), Some(ratio), Some(e)) = (m.expected, m.ratio, expect(key)) else {
            continue;
        };
        judged += 1;
        let what = format!(
            "{key}: {} = {:.0}% of the {:.0}% a healthy card reaches ({} expected; {} {})",
            format_rate(m.value, &m.unit),
            100.0 * ratio,
            100.0 * e.share,
            format_rate(expected, &m.unit),
            e.confidence.name(),
            if e.confidence == ExpectConfidence::Estimate {
                "figure"
            } else {
                "basis"
            },
        );
        if let Some(peak) = m.peak.filter(|&p| m.value > p * crate::report::ABOVE_PEAK) {
            f.push(Finding::warn(format!(
                "{key}: {} is above the peak {}: the measurement is broken (timing or FLOP count)",
                format_rate(m.value, &m.unit),
                format_rate(peak, &m.unit)
            )));
            continue;
        }
        f.push(against_expectation(
            (ratio, expected, m.value_high),
            e.confidence,
            tolerance,
            &m.unit,
            |v| match v {
                Verdict::Pass => what,
                _ => format!("{what}: below expectation"),
            },
        ));
    }
    // Nothing judged: say why, for a figure-less GPU (every test failed its verification or
    // none ran) is no unknown device.
    let why = if metrics.is_empty() {
        NO_FIGURE
    } else {
        NO_EXPECTATION
    };
    if judged == 0 {
        f.push(Finding::pass(why));
    }
    Check::new(CheckKind::Absolute, f).skipped_if_alone(why)
}

/// A figure's finding against its expectation, one rule for a GPU's figures, a pair's copy
/// and the node's all-reduce: the [`expectation_verdict`] of `ratio` (the figure over
/// `expected`), `msg(verdict)` its message, and a FAIL only where the figure at the fast end of
/// its interval (`high`) fails too ([`beyond_noise`]).
pub(crate) fn against_expectation(
    (ratio, expected, high): (f64, f64, Option<f64>),
    confidence: ExpectConfidence,
    tolerance: f64,
    unit: &str,
    msg: impl FnOnce(Verdict) -> String,
) -> Finding {
    let v = expectation_verdict(ratio, confidence, tolerance);
    let fails = |h: f64| expectation_verdict(h / expected, confidence, tolerance) == v;
    beyond_noise(v, msg(v), high, unit, fails)
}

/// A measured/expected ratio against the tolerance: ≥ 1 − tolerance PASS, ≥ 1 − 2·tolerance
/// WARN, below FAIL. Against an estimate (a guess) a small shortfall says nothing and a large
/// one is worth a look (WARN), never a FAIL.
fn expectation_verdict(ratio: f64, confidence: ExpectConfidence, tolerance: f64) -> Verdict {
    match confidence {
        ExpectConfidence::Estimate if ratio >= 1.0 - 2.0 * tolerance => Verdict::Pass,
        ExpectConfidence::Estimate => Verdict::Warn,
        _ if ratio >= 1.0 - tolerance => Verdict::Pass,
        _ if ratio >= 1.0 - 2.0 * tolerance => Verdict::Warn,
        _ => Verdict::Fail,
    }
}

const NO_EXPECTATION: &str =
    "no expectation for this device (not a known GPU, or no peaks): absolute check skipped";
const NO_FIGURE: &str =
    "no verified figure to judge (every test failed or none ran): absolute check skipped";
const NO_TELEMETRY: &str =
    "no telemetry samples from this backend: throttling, clocks and temperature not checked";

/// Peer check of GPU `me` among `all` (the metrics of every GPU of the same SKU on the node):
/// a figure more than `straggler_pct` percent below the median of the group makes the GPU a
/// straggler (FAIL); more than half that, a WARN.
pub fn peers(all: &[&BTreeMap<String, MetricValue>], me: usize, straggler_pct: f64) -> Check {
    let mut f = Vec::new();
    if all.len() < 2 {
        return Check::skipped(CheckKind::Peers, "no peer of the same SKU on this node");
    }
    let Some(mine) = all.get(me) else {
        return Check::new(CheckKind::Peers, f);
    };
    let limit = straggler_pct / 100.0;
    for (key, m) in mine.iter() {
        // The other GPUs' median: with the GPU's own figure in it, a 2-GPU node compared each
        // card with the mean of itself and its twin, and a card had to be twice the
        // threshold slower than its twin to fail.
        let values: Vec<f64> = all
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != me)
            .filter_map(|(_, g)| g.get(key).map(|x| x.value))
            .collect();
        if values.is_empty() {
            continue;
        }
        let median = crate::stats::median(&values);
        if median <= 0.0 {
            continue;
        }
        let below = 1.0 - m.value / median;
        let msg = format!(
            "{key}: {} is {:.1}% below the median {} of the other {} GPU(s)",
            format_rate(m.value, &m.unit),
            100.0 * below,
            format_rate(median, &m.unit),
            values.len()
        );
        if below > limit {
            let fails = |h: f64| 1.0 - h / median > limit;
            let msg = format!("{msg}: a straggler");
            f.push(beyond_noise(
                Verdict::Fail,
                msg,
                m.value_high,
                &m.unit,
                fails,
            ));
        } else if below > limit / 2.0 {
            f.push(Finding::warn(msg));
        }
    }
    if f.is_empty() {
        f.push(Finding::pass(format!(
            "within {straggler_pct}% of the median of its {} peers on every test",
            all.len() - 1
        )));
    }
    Check::new(CheckKind::Peers, f)
}

/// Temperature at which a GPU without a reported slowdown threshold gets a warning, °C.
pub const HOT_WARN_C: f64 = 87.0;
/// Clocks below this share of the maximum under load are "not held" (nvbench discards samples
/// below 75% of the default clock).
pub const CLOCK_HELD_SHARE: f64 = 0.75;

/// How serious a throttle reason is, by NVML's meaning.
fn throttle_severity(reason: &ThrottleReason) -> Option<(Verdict, &'static str)> {
    use ThrottleReason as R;
    use Verdict::{Fail, Pass, Warn};
    Some(match reason {
        R::HwThermalSlowdown => (Fail, "hardware thermal slowdown (overheating)"),
        R::HwPowerBrakeSlowdown => (
            Fail,
            "hardware power brake (the power supply or board asserted it)",
        ),
        R::HwSlowdown => (Fail, "hardware slowdown (thermal or power-brake signal)"),
        R::SwThermalSlowdown => (
            Warn,
            "software thermal slowdown (running near its temperature limit)",
        ),
        R::SwPowerCap => (Pass, "power capping (normal under full tensor load)"),
        _ => return None,
    })
}

/// Health check of one GPU: telemetry of its results (before and after each) and any extra
/// samples (a timeline), plus the state in `info.details` (ECC, remapped rows, PCIe link).
///
/// `after` is the device state read again after the run, when the caller has it: memory-error
/// counters are then judged as they are at the end and by how much they grew, and the PCIe
/// generation is judged at all (a link trains down when idle, so the state read when the device
/// was opened says nothing about it).
pub fn health(
    info: &DeviceInfo,
    sku: Option<&Sku>,
    results: &[&ResultRecord],
    extra: &[Telemetry],
    after: Option<&DeviceState>,
) -> Check {
    let mut f = Vec::new();
    let before = &info.details.state;
    let d = after.unwrap_or(before);
    // Every telemetry sample with the result it belongs to.
    let mut samples: Vec<(&str, &Telemetry)> = Vec::new();
    for r in results {
        for t in [&r.telemetry_before, &r.telemetry_after]
            .into_iter()
            .flatten()
        {
            samples.push((r.id.as_str(), t));
        }
    }
    for t in extra {
        samples.push(("timeline", t));
    }
    throttle_findings(&samples, &mut f);
    let max_clock = d.max_sm_clock_mhz().or(sku.map(|s| s.max_sm_clock_mhz));
    clock_findings(results, max_clock, &mut f);
    temperature_findings(&samples, d.slowdown_temp_c.map(f64::from), &mut f);
    memory_findings(d, before, after, sku, &mut f);
    pcie_findings(d, after, &mut f);
    if samples.is_empty() {
        f.push(Finding::pass(NO_TELEMETRY));
    }
    Check::new(CheckKind::Health, f).skipped_if_alone(NO_TELEMETRY)
}

/// Throttle reasons, each reported once with where it was seen.
fn throttle_findings(samples: &[(&str, &Telemetry)], f: &mut Vec<Finding>) {
    let mut seen: BTreeMap<&'static str, (Verdict, Vec<&str>)> = BTreeMap::new();
    for (id, t) in samples {
        for reason in &t.throttle_reasons {
            if let Some((v, what)) = throttle_severity(reason) {
                let e = seen.entry(what).or_insert((v, Vec::new()));
                if !e.1.contains(id) {
                    e.1.push(id);
                }
            }
        }
    }
    for (what, (v, ids)) in seen {
        let mut list = ids.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        if ids.len() > 3 {
            list.push_str(&format!(" and {} more", ids.len() - 3));
        }
        f.push(Finding::new(v, format!("{what} during {list}")));
    }
}

/// Clocks held under arithmetic load.
fn clock_findings(results: &[&ResultRecord], max_clock: Option<f64>, f: &mut Vec<Finding>) {
    let Some(max_clock) = max_clock.filter(|&c| c > 0.0) else {
        return;
    };
    let loaded = results
        .iter()
        .filter(|r| r.is_valid() && matches!(r.workload, Workload::Matmul(_)))
        .filter_map(|r| {
            r.effective_clock_mhz
                .or(r.telemetry_after.as_ref().and_then(|t| t.sm_clock_mhz))
                .map(|c| (r.id.as_str(), c))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((id, c)) = loaded {
        if c < CLOCK_HELD_SHARE * max_clock {
            f.push(Finding::warn(format!(
                "clocks not held: {c:.0} MHz under load ({id}), {:.0}% of the {max_clock:.0} MHz maximum",
                100.0 * c / max_clock
            )));
        }
    }
}

/// The hottest sample against the slowdown threshold, or a fixed limit when there is none.
fn temperature_findings(
    samples: &[(&str, &Telemetry)],
    slowdown: Option<f64>,
    f: &mut Vec<Finding>,
) {
    let hottest = samples
        .iter()
        .filter_map(|(id, t)| t.temperature_c.map(|c| (*id, c)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((id, c)) = hottest {
        match slowdown {
            Some(slow) if c >= slow => f.push(Finding::fail(format!(
                "{c:.0} °C during {id}: at or above its {slow:.0} °C slowdown threshold"
            ))),
            Some(slow) if c >= slow - 5.0 => f.push(Finding::warn(format!(
                "{c:.0} °C during {id}: within 5 °C of its {slow:.0} °C slowdown threshold"
            ))),
            None if c >= HOT_WARN_C => f.push(Finding::warn(format!(
                "{c:.0} °C during {id}: hot (cooling or airflow)"
            ))),
            _ => {}
        }
    }
}

/// ECC counters (and their growth during the run), remapped rows, retired pages.
fn memory_findings(
    d: &DeviceState,
    before: &DeviceState,
    after: Option<&DeviceState>,
    sku: Option<&Sku>,
    f: &mut Vec<Finding>,
) {
    if let Some(n) = d.ecc_errors_uncorrected_volatile.filter(|&n| n > 0) {
        f.push(Finding::fail(format!(
            "{n} uncorrectable ECC errors since the driver loaded"
        )));
    }
    if let Some(after) = after {
        let grew = |field: fn(&DeviceState) -> Option<u64>| match (field(before), field(after)) {
            (Some(b), Some(a)) if a > b => Some(a - b),
            _ => None,
        };
        if let Some(n) = grew(|s| s.ecc_errors_uncorrected_volatile) {
            f.push(Finding::fail(format!(
                "{n} new uncorrectable ECC errors during the run"
            )));
        }
        if let Some(n) = grew(|s| s.ecc_errors_corrected_volatile) {
            f.push(Finding::warn(format!(
                "{n} new corrected ECC errors during the run"
            )));
        }
    }
    if let Some(n) = d.ecc_errors_corrected_volatile.filter(|&n| n > 0) {
        f.push(Finding::pass(format!(
            "{n} corrected ECC errors since the driver loaded (corrected: watch the trend)"
        )));
    }
    if d.ecc_enabled == Some(false) && sku.is_some_and(|s| s.memory_type.starts_with("HBM")) {
        f.push(Finding::warn(
            "ECC is disabled: memory errors would go unnoticed",
        ));
    }
    if d.remapped_rows_failure == Some(true) {
        f.push(Finding::fail(
            "row remapping failed: no spare memory rows left, the GPU needs replacing",
        ));
    }
    if d.remapped_rows_pending == Some(true) {
        f.push(Finding::fail(
            "a row remapping is pending: drain and reset the GPU",
        ));
    }
    if d.retired_pages_pending == Some(true) {
        f.push(Finding::fail(
            "a page retirement is pending: drain and reset the GPU",
        ));
    }
    if let Some(n) = d.remapped_rows_uncorrectable.filter(|&n| n > 0) {
        f.push(Finding::warn(format!(
            "{n} memory rows remapped after uncorrectable errors"
        )));
    }
}

/// PCIe link now against its maximum: the width always, the generation only right after the
/// run (idle links train down).
fn pcie_findings(d: &DeviceState, after: Option<&DeviceState>, f: &mut Vec<Finding>) {
    if let (Some(cur), Some(max)) = (d.pcie_width, d.pcie_width_max) {
        if cur < max {
            f.push(Finding::fail(format!(
                "PCIe link degraded to x{cur} of x{max} (reseat the card or check the riser)"
            )));
        }
    }
    if let (Some(after), Some(max)) = (after, d.pcie_gen_max) {
        if let Some(cur) = after.pcie_gen.filter(|&c| c < max) {
            f.push(Finding::warn(format!(
                "PCIe link at Gen{cur} of Gen{max} right after the run (a link at full \
                 load trains to its maximum): degraded, or read after it went idle"
            )));
        }
    }
}

/// One checksum of one output, from a stress run that recomputes the same inputs again and
/// again on every GPU: deterministic kernels must give identical bits every time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumSample {
    /// Device index.
    pub device: usize,
    /// Workload (or result) id the checksum is of.
    pub workload: String,
    pub iteration: u64,
    /// Any fixed-width rendering of the checksum (hex of a hash of the output bits).
    pub checksum: String,
}

/// A checksum that differs from the one most samples of the same workload agree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumMismatch {
    pub device: usize,
    pub workload: String,
    pub iteration: u64,
    pub got: String,
    /// The majority checksum, or `None` when no checksum holds a strict majority.
    pub expected: Option<String>,
}

/// Finds checksums that differ from the majority of their workload, across every device and
/// iteration. Without a strict majority every sample of the workload is reported.
pub fn checksum_mismatches(samples: &[ChecksumSample]) -> Vec<ChecksumMismatch> {
    let mut by_workload: BTreeMap<&str, Vec<&ChecksumSample>> = BTreeMap::new();
    for s in samples {
        by_workload.entry(&s.workload).or_default().push(s);
    }
    let mut out = Vec::new();
    for (w, list) in by_workload {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &list {
            *counts.entry(&s.checksum).or_default() += 1;
        }
        let majority = counts
            .iter()
            .find(|(_, &n)| 2 * n > list.len())
            .map(|(c, _)| *c);
        if counts.len() == 1 {
            continue;
        }
        for s in list {
            if majority != Some(s.checksum.as_str()) {
                out.push(ChecksumMismatch {
                    device: s.device,
                    workload: w.to_string(),
                    iteration: s.iteration,
                    got: s.checksum.clone(),
                    expected: majority.map(str::to_string),
                });
            }
        }
    }
    out
}

/// Correctness check of GPU `device`: every result verified, no checksum mismatch.
pub fn correctness(
    device: usize,
    results: &[&ResultRecord],
    mismatches: &[ChecksumMismatch],
) -> Check {
    let mut f = Vec::new();
    let mut verified = 0;
    for r in results {
        // A pair's or a group's result names its devices: both directions of a peer copy
        // share one id.
        let id = if r.device.is_single() {
            r.id.clone()
        } else {
            format!("{} on GPUs [{}]", r.id, r.device)
        };
        match r.status {
            Status::Ok if r.verification.passed => verified += 1,
            _ if r.verification.method == crate::verify::VerifyMethod::Unverified => {
                f.push(Finding::fail(format!(
                    "{}: not verified (a user kernel whose spec says verify.method = \"none\"): an unverified result never passes",
                    id
                )))
            }
            Status::Error => f.push(Finding::fail(format!(
                "{}: did not run: {}",
                id,
                r.error.as_deref().unwrap_or("unknown error")
            ))),
            _ => f.push(Finding::fail(format!(
                "{}: wrong result: max relative error {:.3e} over tolerance {:.1e} ({}){}",
                id,
                r.verification.max_rel_error,
                r.verification.tolerance,
                r.verification.method,
                r.verification
                    .detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ))),
        }
    }
    let mine: Vec<&ChecksumMismatch> = mismatches.iter().filter(|m| m.device == device).collect();
    for m in mine.iter().take(5) {
        f.push(Finding::fail(format!(
            "silent data corruption: {} at iteration {} gave checksum {}{}",
            m.workload,
            m.iteration,
            m.got,
            match &m.expected {
                Some(e) => format!(", every other run gave {e}"),
                None => ", and no checksum holds a majority".into(),
            }
        )));
    }
    if mine.len() > 5 {
        f.push(Finding::fail(format!(
            "{} more checksum mismatches",
            mine.len() - 5
        )));
    }
    if results.is_empty() {
        f.push(Finding::fail("no result from this GPU: it did no work"));
    } else if f.is_empty() {
        f.push(Finding::pass(format!(
            "{verified} of {} results verified against the f64 reference",
            results.len()
        )));
    }
    Check::new(CheckKind::Correctness, f)
}
