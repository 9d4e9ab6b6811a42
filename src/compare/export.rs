//! Exports that existing CI tools read: github-action-benchmark's `customBiggerIsBetter` and
//! `customSmallerIsBetter` JSON, and Bencher Metric Format (BMF).
//!
//! Only verified results with a throughput are exported: a chart of a wrong kernel's speed is
//! worse than a gap in the chart. Names are the stable result ids, so each series continues
//! from run to run; a report with several devices suffixes the device index. A report with
//! nothing to export gives no file at all: both consumers reject an empty one
//! (github-action-benchmark fails with "No benchmark result was found", and an empty BMF
//! object records a report without a single metric), so the run says so and fails instead.

use crate::error::{Error, Result};
use crate::report::{Report, ResultRecord};
use crate::stats::Summary;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

/// A CI format gpuvet can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// github-action-benchmark, `tool: customBiggerIsBetter`: throughput.
    Github,
    /// github-action-benchmark, `tool: customSmallerIsBetter`: the median time.
    GithubLatency,
    /// Bencher Metric Format, for `bencher run --adapter json`: throughput and latency.
    Bencher,
}

impl std::str::FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "github" | "github-action-benchmark" => Ok(ExportFormat::Github),
            "github-latency" => Ok(ExportFormat::GithubLatency),
            "bencher" | "bmf" => Ok(ExportFormat::Bencher),
            _ => Err(Error::invalid(format!(
                "unknown export format `{s}` (github, github-latency or bencher)"
            ))),
        }
    }
}

impl ExportFormat {
    /// The consumer, as messages name it.
    fn consumer(self) -> &'static str {
        match self {
            ExportFormat::Github | ExportFormat::GithubLatency => "github-action-benchmark",
            ExportFormat::Bencher => "Bencher",
        }
    }
}

/// Splits `FORMAT:PATH` (PATH `-` is stdout).
pub fn parse_spec(spec: &str) -> Result<(ExportFormat, String)> {
    let (fmt, path) = spec.split_once(':').ok_or_else(|| {
        Error::invalid(format!(
            "export `{spec}` is not FORMAT:PATH (e.g. github:bench.json or bencher:bmf.json)"
        ))
    })?;
    if path.is_empty() {
        return Err(Error::invalid(format!(
            "export `{spec}` has no path after `:`"
        )));
    }
    Ok((fmt.parse()?, path.to_string()))
}

/// One entry of github-action-benchmark's custom JSON.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GithubEntry {
    pub name: String,
    pub unit: String,
    pub value: f64,
    /// Half-width of the 95% interval, as `± x` in `unit`.
    pub range: Option<String>,
    /// Shown in the chart's tooltip.
    pub extra: Option<String>,
}

/// One Bencher metric: value with optional bounds.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BencherMetric {
    pub value: f64,
    pub lower_value: Option<f64>,
    pub upper_value: Option<f64>,
}

/// Bencher Metric Format: benchmark name → measure slug → metric.
pub type Bmf = BTreeMap<String, BTreeMap<String, BencherMetric>>;

/// Bencher's built-in latency measure (nanoseconds).
pub const BENCHER_LATENCY: &str = "latency";

/// The Bencher measure slug a throughput unit goes under. Bencher's built-in `throughput` is
/// "operations / second"; FLOP/s and B/s are other quantities, so each gets its own measure
/// and a chart never mixes them. Bencher creates a measure it does not know on first use with
/// placeholder units; docs/regression.md has the `bencher measure create` lines that set them.
pub fn bencher_measure(unit: &str) -> Option<&'static str> {
    match unit {
        "FLOP/s" => Some("flops"),
        "OP/s" => Some("ops"),
        "B/s" => Some("bandwidth"),
        _ => None,
    }
}

/// A verified result's throughput with its 95% interval (from the interval of the median
/// time), in the report's base unit (FLOP/s, OP/s, B/s), and its median time.
struct Rate<'a> {
    name: String,
    unit: &'a str,
    value: f64,
    bounds: Option<(f64, f64)>,
    rec: &'a ResultRecord,
    stats: &'a Summary,
}

impl Rate<'_> {
    /// The median time and its 95% interval, in seconds.
    fn time(&self) -> (f64, Option<(f64, f64)>) {
        (self.stats.median_s, self.stats.interval())
    }
}

/// The exportable results, and the ids left out for want of a verified throughput.
fn rates(report: &Report) -> (Vec<Rate<'_>>, Vec<String>) {
    let multi = report.devices.len() > 1;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for r in &report.results {
        let (Some(tp), Some(st)) = (r.throughput.as_ref(), r.stats.as_ref()) else {
            skipped.push(r.id.clone());
            continue;
        };
        let usable = r.is_valid()
            && tp.value.is_finite()
            && tp.value > 0.0
            && st.median_s.is_finite()
            && st.median_s > 0.0;
        if !usable {
            skipped.push(r.id.clone());
            continue;
        }
        // Work per iteration in the throughput's unit; the rate's interval is the time's, inverted.
        let work = tp.value * st.median_s;
        let bounds = st
            .interval()
            .filter(|_| work > 0.0)
            .map(|(lo, hi)| (work / hi, work / lo));
        let mut name = if multi {
            format!("{} (device {})", r.id, r.device)
        } else {
            r.id.clone()
        };
        if r.is_simulated() {
            name.push_str(" (simulated)");
        }
        out.push(Rate {
            name,
            unit: &tp.unit,
            value: tp.value,
            bounds,
            rec: r,
            stats: st,
        });
    }
    (out, skipped)
}

/// The first name two exportable results share: a consumer would merge or drop them.
fn duplicate_name(rates: &[Rate<'_>]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    rates
        .iter()
        .find(|r| !seen.insert(r.name.as_str()))
        .map(|r| r.name.clone())
}

/// The fixed display unit for a base unit, so a series never changes unit between runs.
fn display_unit(unit: &str) -> (f64, String) {
    match unit {
        "FLOP/s" => (1e12, "TFLOP/s".into()),
        "OP/s" => (1e12, "TOP/s".into()),
        "B/s" => (1e9, "GB/s".into()),
        other => (1.0, other.to_string()),
    }
}

/// Latency series are in microseconds whatever the size of the kernel, so that a series
/// never changes unit between runs.
const LATENCY_SCALE: f64 = 1e6;
const LATENCY_UNIT: &str = "us";

/// `x` with three significant digits, in plain notation where that stays short: a range of
/// 0.000123 TFLOP/s is `0.000123`, not `0.0000`.
pub fn significant(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-6..=15).contains(&magnitude) {
        return format!("{x:.2e}");
    }
    let decimals = (2 - magnitude).max(0) as usize;
    format!("{x:.decimals$}")
}

/// The tooltip of a chart point: the device (every member of a set, so a collective's point
/// names all the GPUs it ran on), samples, verification.
fn extra(report: &Report, r: &Rate<'_>) -> String {
    let named = |i: usize| {
        let device = report.devices.get(i);
        let name = device.map_or("unknown device", |d| d.name.as_str());
        match device.and_then(|d| d.uuid.as_deref()) {
            Some(u) => format!("{name} {u}"),
            None => name.to_string(),
        }
    };
    let placement = &r.rec.device;
    let devices = if placement.is_single() {
        named(placement.lead())
    } else {
        let each: Vec<String> = placement.devices().iter().map(|&i| named(i)).collect();
        format!("GPUs {placement}: {}", each.join(", "))
    };
    // A user kernel the mock stood in for was checked but never ran: its output, so its
    // "verification", is simulated, and a chart must not call it verified.
    let checked = if r.rec.is_simulated() {
        "SIMULATED (mock backend: the kernel did not run)".to_string()
    } else {
        format!("verified ({})", r.rec.verification.method)
    };
    format!("{devices}; {} samples; {checked}", r.stats.samples)
}

/// github-action-benchmark entries (`customBiggerIsBetter`), and the ids left out.
pub fn github_entries(report: &Report) -> (Vec<GithubEntry>, Vec<String>) {
    let (rates, skipped) = rates(report);
    let entries = rates
        .iter()
        .map(|r| {
            let (scale, unit) = display_unit(r.unit);
            GithubEntry {
                name: r.name.clone(),
                unit,
                value: r.value / scale,
                range: r
                    .bounds
                    .map(|(lo, hi)| format!("± {}", significant((hi - lo) / 2.0 / scale))),
                extra: Some(extra(report, r)),
            }
        })
        .collect();
    (entries, skipped)
}

/// github-action-benchmark entries of the median time (`customSmallerIsBetter`, in µs), and
/// the ids left out.
pub fn github_latency_entries(report: &Report) -> (Vec<GithubEntry>, Vec<String>) {
    let (rates, skipped) = rates(report);
    let entries = rates
        .iter()
        .map(|r| {
            let (median, ci) = r.time();
            GithubEntry {
                name: r.name.clone(),
                unit: LATENCY_UNIT.into(),
                value: median * LATENCY_SCALE,
                range: ci
                    .map(|(lo, hi)| format!("± {}", significant((hi - lo) / 2.0 * LATENCY_SCALE))),
                extra: Some(extra(report, r)),
            }
        })
        .collect();
    (entries, skipped)
}

/// Bencher Metric Format: per result, its throughput under the measure of its unit
/// ([`bencher_measure`]: `flops`, `ops` or `bandwidth`) and its median time under Bencher's
/// built-in `latency` (nanoseconds), each with its 95% interval; and the ids left out.
pub fn bencher_metrics(report: &Report) -> (Bmf, Vec<String>) {
    let (rates, skipped) = rates(report);
    let mut bmf = Bmf::new();
    for r in rates {
        let measures = bmf.entry(r.name.clone()).or_default();
        if let Some(slug) = bencher_measure(r.unit) {
            measures.insert(
                slug.to_string(),
                BencherMetric {
                    value: r.value,
                    lower_value: r.bounds.map(|b| b.0),
                    upper_value: r.bounds.map(|b| b.1),
                },
            );
        }
        let (median, ci) = r.time();
        measures.insert(
            BENCHER_LATENCY.to_string(),
            BencherMetric {
                value: median * 1e9,
                lower_value: ci.map(|c| c.0 * 1e9),
                upper_value: ci.map(|c| c.1 * 1e9),
            },
        );
    }
    (bmf, skipped)
}

/// The export's JSON text and the ids left out.
pub fn render_export(report: &Report, format: ExportFormat) -> (String, Vec<String>) {
    let (json, skipped) = match format {
        ExportFormat::Github => {
            let (e, s) = github_entries(report);
            (serde_json::to_string_pretty(&e), s)
        }
        ExportFormat::GithubLatency => {
            let (e, s) = github_latency_entries(report);
            (serde_json::to_string_pretty(&e), s)
        }
        ExportFormat::Bencher => {
            let (b, s) = bencher_metrics(report);
            (serde_json::to_string_pretty(&b), s)
        }
    };
    // Plain strings and numbers: serialisation cannot fail.
    (json.unwrap_or_default(), skipped)
}

impl crate::export::Exporter<Report> for ExportFormat {
    fn render(&self, report: &Report) -> anyhow::Result<String> {
        if let Some(name) = duplicate_name(&rates(report).0) {
            anyhow::bail!(
                "two results are both named `{name}`; {} would merge them into one series",
                self.consumer()
            );
        }
        Ok(render_export(report, *self).0 + "\n")
    }

    fn empty_reason(&self, report: &Report) -> Option<String> {
        rates(report).0.is_empty().then(|| {
            format!(
                "no verified result with a throughput to export ({} rejects an empty file)",
                self.consumer()
            )
        })
    }

    fn remarks(&self, report: &Report) -> Vec<String> {
        let skipped = rates(report).1;
        if skipped.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "left out {} result(s) without a verified throughput: {}",
            skipped.len(),
            skipped.join(", ")
        )]
    }
}

/// Writes `report` as `FORMAT:PATH` (PATH `-` is stdout), atomically, through the same
/// [`Exports`](crate::export::Exports) a run uses: nothing to export is an error and leaves
/// no file; results left out are named on stderr.
pub fn export(report: &Report, spec: &str) -> Result<()> {
    let (format, path) = parse_spec(spec)?;
    let mut exports = crate::export::Exports::default();
    exports
        .add(&format!("--export {spec}"), Box::new(format), &path)
        .map_err(super::export_error)?;
    match exports.finish(report, false).into_iter().next() {
        Some(problem) => Err(Error::invalid(problem)),
        None => Ok(()),
    }
}
