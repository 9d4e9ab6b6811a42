//! Exports that existing CI tools read: github-action-benchmark's `customBiggerIsBetter` JSON
//! and Bencher Metric Format (BMF).
//!
//! Only verified results with a throughput are exported: a chart of a wrong kernel's speed is
//! worse than a gap in the chart. Names are the stable result ids, so each series continues
//! from run to run; a report with several devices suffixes the device index.

use crate::error::{Error, Result};
use crate::report::{Report, ResultRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A CI format gpuvet can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// github-action-benchmark, `tool: customBiggerIsBetter`.
    Github,
    /// Bencher Metric Format, for `bencher run --adapter json`.
    Bencher,
}

impl std::str::FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "github" | "github-action-benchmark" => Ok(ExportFormat::Github),
            "bencher" | "bmf" => Ok(ExportFormat::Bencher),
            _ => Err(Error::invalid(format!(
                "unknown export format `{s}` (github or bencher)"
            ))),
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GithubEntry {
    pub name: String,
    pub unit: String,
    pub value: f64,
    /// Half-width of the 95% interval, as `± x` in `unit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Shown in the chart's tooltip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
}

/// One Bencher metric: value with optional bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BencherMetric {
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_value: Option<f64>,
}

/// Bencher Metric Format: benchmark name → measure slug → metric.
pub type Bmf = BTreeMap<String, BTreeMap<String, BencherMetric>>;

/// A verified result's throughput with its 95% interval (from the interval of the median
/// time), in the report's base unit (FLOP/s, OP/s, B/s).
struct Rate<'a> {
    name: String,
    unit: &'a str,
    value: f64,
    bounds: Option<(f64, f64)>,
    rec: &'a ResultRecord,
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
        if !r.is_valid() || !tp.value.is_finite() || tp.value <= 0.0 {
            skipped.push(r.id.clone());
            continue;
        }
        // Work per iteration in the throughput's unit; the rate's interval is the time's, inverted.
        let work = tp.value * st.median_s;
        let bounds = (st.ci95_low_s > 0.0 && st.ci95_high_s >= st.ci95_low_s && work > 0.0)
            .then(|| (work / st.ci95_high_s, work / st.ci95_low_s));
        let name = if multi {
            format!("{} (device {})", r.id, r.device)
        } else {
            r.id.clone()
        };
        out.push(Rate {
            name,
            unit: &tp.unit,
            value: tp.value,
            bounds,
            rec: r,
        });
    }
    (out, skipped)
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

/// github-action-benchmark entries (`customBiggerIsBetter`), and the ids left out.
pub fn github_entries(report: &Report) -> (Vec<GithubEntry>, Vec<String>) {
    let (rates, skipped) = rates(report);
    let entries = rates
        .into_iter()
        .map(|r| {
            let (scale, unit) = display_unit(r.unit);
            let device = report
                .devices
                .get(r.rec.device.lead())
                .map_or("unknown device", |d| d.name.as_str());
            let samples = r.rec.stats.as_ref().map_or(0, |s| s.samples);
            GithubEntry {
                name: r.name,
                unit,
                value: r.value / scale,
                range: r
                    .bounds
                    .map(|(lo, hi)| format!("± {:.4}", (hi - lo) / 2.0 / scale)),
                extra: Some(format!(
                    "{device}; {} samples; verified ({})",
                    samples, r.rec.verification.method
                )),
            }
        })
        .collect();
    (entries, skipped)
}

/// Bencher Metric Format under the built-in `throughput` measure (values in FLOP/s, OP/s or
/// B/s: Bencher's throughput is "operations per second"), and the ids left out.
pub fn bencher_metrics(report: &Report) -> (Bmf, Vec<String>) {
    let (rates, skipped) = rates(report);
    let mut bmf = Bmf::new();
    for r in rates {
        let metric = BencherMetric {
            value: r.value,
            lower_value: r.bounds.map(|b| b.0),
            upper_value: r.bounds.map(|b| b.1),
        };
        bmf.entry(r.name)
            .or_default()
            .insert("throughput".to_string(), metric);
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
        Ok(render_export(report, *self).0 + "\n")
    }
}

/// Writes `report` as `FORMAT:PATH` (`github` or `bencher`; PATH `-` is stdout), atomically.
/// Results without a verified throughput are left out, with a line on stderr saying which.
pub fn export(report: &Report, spec: &str) -> Result<()> {
    let (format, path) = parse_spec(spec)?;
    let skipped = rates(report).1;
    if !skipped.is_empty() {
        eprintln!(
            "export {path}: left out {} result(s) without a verified throughput: {}",
            skipped.len(),
            skipped.join(", ")
        );
    }
    use crate::export::Exporter;
    format.write(&path, report).map_err(super::export_error)
}
