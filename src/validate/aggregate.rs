//! `gpuvet aggregate`: per-node verdict files → one fleet view.
//!
//! Per SKU, the distribution of every figure (median, min, max over the fleet's GPUs); GPUs
//! more than a set share below their SKU's fleet median (outliers, even when each passed on its
//! own node); per node type (`8x h100-sxm`), the node-level link figures (all-reduce busbw,
//! slowest pair) and the nodes below their type's median; and the nodes to drain (node verdict
//! FAIL) with their reasons.

use super::verdict::Verdict;
use super::{GpuVerdict, MetricValue, NodeVerdict};
use crate::error::{Error, Result};
use crate::export::{md_cell as md, md_row};
use crate::stats::median;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Major version of the fleet JSON.
pub const FLEET_SCHEMA_VERSION: u32 = 1;

/// Output format of the fleet view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetFormat {
    Table,
    Markdown,
    Json,
    Csv,
}

/// What `gpuvet aggregate` does (the CLI's flags, as plain data).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateArgs {
    /// Verdict files or directories holding them (every `*.json` directly inside).
    pub paths: Vec<PathBuf>,
    pub format: FleetFormat,
    /// Write to PATH instead of stdout.
    pub output: Option<PathBuf>,
    /// A GPU this many percent below its SKU's fleet median on any figure is an outlier.
    pub outlier_pct: f64,
    /// Prices per GPU-hour (`--price-per-hour`, `--price-file`): adds the cost of the capacity
    /// lost on the nodes to drain.
    pub price: Option<crate::price::PriceTable>,
    /// Further machine formats (the global `--json`, `--csv`, `--markdown`): each to a path,
    /// or `-` for stdout (the view then goes to stderr when it is the table).
    pub also: Vec<(FleetFormat, String)>,
}

impl FleetFormat {
    /// The flag that asks for this format.
    pub fn flag(self) -> &'static str {
        match self {
            FleetFormat::Table => "--format table",
            FleetFormat::Markdown => "--markdown",
            FleetFormat::Json => "--json",
            FleetFormat::Csv => "--csv",
        }
    }
}

/// Distribution of one figure over a SKU's GPUs (`gpus`: how many carried it) or over the
/// nodes of a node type (`nodes`: how many carried it); exactly one of the two counts is set.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    pub metric: String,
    pub unit: String,
    pub gpus: Option<usize>,
    pub nodes: Option<usize>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// What a healthy card reaches, where the database knows.
    pub expected: Option<f64>,
}

/// One SKU across the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkuStats {
    pub sku: String,
    pub gpus: usize,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub metrics: Vec<MetricStats>,
}

/// A GPU well below its SKU's fleet median on one figure.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outlier {
    pub host: String,
    pub gpu: usize,
    pub uuid: Option<String>,
    pub sku: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub fleet_median: f64,
    pub below_pct: f64,
}

/// A node-level figure (all-reduce busbw, slowest pair) across the nodes of one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTypeStats {
    /// `8x h100-sxm`.
    pub node_type: String,
    pub nodes: usize,
    pub metrics: Vec<MetricStats>,
}

/// A node well below its node type's fleet median on a node-level figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeOutlier {
    pub host: String,
    pub node_type: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub fleet_median: f64,
    pub below_pct: f64,
}

impl SkuStats {
    /// `pass/warn/fail` GPU counts, as the tables show them.
    fn pass_warn_fail(&self) -> String {
        format!("{}/{}/{}", self.pass, self.warn, self.fail)
    }
}

impl NodeOutlier {
    /// `host (node type) figure value is N% below`: the finding, which each format ends in
    /// its own words.
    fn below(&self) -> String {
        format!(
            "{} ({}) {} {} is {:.1}% below",
            self.host,
            self.node_type,
            self.metric,
            rate(self.value, &self.unit),
            self.below_pct
        )
    }
}

/// A node whose verdict says: take it out of service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    pub host: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

/// The fleet view.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetSummary {
    pub schema_version: u32,
    pub kind: String,
    pub nodes: usize,
    pub gpus: usize,
    pub nodes_pass: usize,
    pub nodes_warn: usize,
    pub nodes_fail: usize,
    pub skus: Vec<SkuStats>,
    pub outliers: Vec<Outlier>,
    /// Hosts with at least one outlier GPU (or an outlier node-level figure).
    pub outlier_nodes: Vec<String>,
    /// Node-level figures (the all-reduce, the pairs) per node type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_types: Vec<NodeTypeStats>,
    /// Nodes well below their node type's median on a node-level figure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_outliers: Vec<NodeOutlier>,
    /// Nodes to drain: node verdict FAIL.
    pub drain: Vec<Drain>,
    /// Things the reader should know (duplicate hosts, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the GPUs of the nodes to drain cost while they cannot serve, when prices were
    /// given (`--price-per-hour`, `--price-file`).
    pub lost_capacity: Option<LostCapacity>,
}

/// The price of the capacity the nodes to drain take out of service: every GPU of a FAIL node,
/// at its SKU's price per GPU-hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostCapacity {
    /// `--price-per-hour`, or the price file's path.
    pub price_source: String,
    /// GPUs on the nodes to drain.
    pub gpus: usize,
    /// What those of them with a price cost per hour, per day and per month (730 hours).
    pub usd_per_hour: f64,
    pub usd_per_day: f64,
    pub usd_per_month: f64,
    /// What every priced GPU of the fleet costs per hour, and the lost share of it.
    pub fleet_usd_per_hour: f64,
    pub lost_share: Option<f64>,
    /// Per node to drain.
    pub nodes: Vec<NodeCost>,
    /// GPUs the prices do not cover (`host GPU i (sku)`): not in the sums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<String>,
}

/// One node to drain and what its GPUs cost per hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCost {
    pub host: String,
    pub gpus: usize,
    pub usd_per_hour: f64,
}

/// Hours in an average month (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// The cost of the capacity on the nodes to drain (node verdict FAIL; a host counts once, by
/// its latest verdict, as in [`summarize`]).
pub fn lost_capacity(verdicts: &[NodeVerdict], price: &crate::price::PriceTable) -> LostCapacity {
    let (nodes, _) = latest_per_host(verdicts);
    let mut lost = LostCapacity {
        price_source: price.source.clone(),
        gpus: 0,
        usd_per_hour: 0.0,
        usd_per_day: 0.0,
        usd_per_month: 0.0,
        fleet_usd_per_hour: 0.0,
        lost_share: None,
        nodes: Vec::new(),
        unpriced: Vec::new(),
    };
    for n in nodes {
        let fail = n.verdict == Verdict::Fail;
        let mut node_usd = 0.0;
        for g in &n.gpus {
            match price.for_sku(g.sku.as_deref()) {
                Some(usd) => {
                    lost.fleet_usd_per_hour += usd;
                    node_usd += usd;
                }
                None if fail => {
                    lost.unpriced
                        .push(format!("{} GPU {} ({})", n.hostname, g.index, sku_of(g)))
                }
                None => {}
            }
        }
        if fail {
            lost.gpus += n.gpus.len();
            lost.usd_per_hour += node_usd;
            lost.nodes.push(NodeCost {
                host: n.hostname.clone(),
                gpus: n.gpus.len(),
                usd_per_hour: node_usd,
            });
        }
    }
    lost.usd_per_day = lost.usd_per_hour * 24.0;
    lost.usd_per_month = lost.usd_per_hour * HOURS_PER_MONTH;
    lost.lost_share =
        (lost.fleet_usd_per_hour > 0.0).then(|| lost.usd_per_hour / lost.fleet_usd_per_hour);
    lost
}

impl LostCapacity {
    /// One line for the terminal and markdown views.
    pub fn line(&self) -> String {
        let mut s = format!(
            "capacity lost on the nodes to drain: ${:.2}/h (${:.2}/day, ${:.0}/month) for {} GPU{}",
            self.usd_per_hour,
            self.usd_per_day,
            self.usd_per_month,
            self.gpus,
            if self.gpus == 1 { "" } else { "s" }
        );
        if let Some(share) = self.lost_share {
            s.push_str(&format!(
                ", {:.1}% of the fleet's ${:.2}/h",
                share * 100.0,
                self.fleet_usd_per_hour
            ));
        }
        s.push_str(&format!(" (prices: {})", self.price_source));
        if !self.unpriced.is_empty() {
            s.push_str(&format!("; no price for {}", self.unpriced.join(", ")));
        }
        s
    }
}

/// The directory of `paths` that `target`, a `*.json` file, would be written straight into:
/// the directories aggregate reads every `*.json` of.
pub fn scanned_dir_of<'a>(target: &Path, paths: &'a [PathBuf]) -> Option<&'a PathBuf> {
    if target.extension().is_none_or(|x| x != "json") {
        return None;
    }
    paths
        .iter()
        .filter(|p| p.is_dir())
        .find(|p| crate::output::lands_in(target, p))
}

/// Reads every verdict file named or found in a named directory (`*.json`, sorted). A file that
/// is not a verdict is an error naming it: a fleet view with silently missing nodes misleads.
pub fn load_verdicts(paths: &[PathBuf]) -> Result<Vec<(PathBuf, NodeVerdict)>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::CorruptFile {
                    path: p.display().to_string(),
                    reason: e.to_string(),
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "json"))
                .collect();
            if found.is_empty() {
                return Err(Error::invalid(format!(
                    "no *.json verdict files in directory {}",
                    p.display()
                )));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files
        .into_iter()
        .map(|f| {
            let text = crate::files::read_text_bounded(&f, crate::files::MAX_SMALL_FILE_BYTES)
                .map_err(|e| Error::CorruptFile {
                    path: f.display().to_string(),
                    reason: e.to_string(),
                })?;
            let v = NodeVerdict::from_json(&text, &f.display().to_string())?;
            Ok((f, v))
        })
        .collect()
}

fn sku_of(g: &GpuVerdict) -> String {
    g.sku
        .clone()
        .unwrap_or_else(|| format!("unknown: {}", g.name))
}

/// The SKU a GPU's figures join in the fleet view: what the database recognised from the
/// device, else what it was judged against. A node validated with the wrong `--expect` (a PCIe
/// card judged as an SXM one) fails identity on its own report; its figures must not also pull
/// down the median of a SKU it is not.
fn fleet_sku(g: &GpuVerdict) -> String {
    g.detected_sku.clone().unwrap_or_else(|| sku_of(g))
}

/// GPUs judged against another SKU than the one detected, as notes: counted under the detected
/// SKU, without the other SKU's expectations.
fn judged_as_another_sku(nodes: &[&NodeVerdict]) -> Vec<String> {
    let mut notes = Vec::new();
    for n in nodes {
        for g in &n.gpus {
            if let (Some(judged), Some(detected)) = (&g.sku, &g.detected_sku) {
                if judged != detected {
                    notes.push(format!(
                        "{} GPU {} was judged as {judged} but is a {detected}: its figures count \
                         under {detected}",
                        n.hostname, g.index
                    ));
                }
            }
        }
    }
    notes
}

/// A note where the nodes were validated in different ways: a soak's figures come from larger,
/// inference-shaped GEMMs measured hot for minutes, a quick run's from one short pass, so one
/// median over both can make an outlier of the setting rather than the hardware; verdicts at
/// other tolerances passed or failed by other bars.
fn mixed_settings(nodes: &[&NodeVerdict]) -> Vec<String> {
    let mut notes = Vec::new();
    let soaks: Vec<&str> = (nodes.iter())
        .filter(|n| !n.settings.quick)
        .map(|n| n.hostname.as_str())
        .collect();
    if !soaks.is_empty() && soaks.len() < nodes.len() {
        notes.push(format!(
            "the fleet mixes soaks ({}: {}) with quick runs ({}): their figures come from other \
             shapes and durations, so aggregate each kind on its own to compare like with like",
            soaks.len(),
            soaks.join(", "),
            nodes.len() - soaks.len()
        ));
    }
    let bars: BTreeSet<String> = (nodes.iter())
        .map(|n| {
            format!(
                "--tolerance {} --straggler-pct {}",
                n.settings.tolerance_pct, n.settings.straggler_pct
            )
        })
        .collect();
    if bars.len() > 1 {
        notes.push(format!(
            "the nodes were judged at different bars ({}): their verdicts are not alike",
            bars.into_iter().collect::<Vec<_>>().join("; ")
        ));
    }
    notes
}

/// Joins node verdicts into the fleet view. A host that appears more than once counts once,
/// by its latest verdict (`started_at`).
pub fn summarize(verdicts: &[NodeVerdict], outlier_pct: f64) -> FleetSummary {
    let (nodes, mut notes) = latest_per_host(verdicts);
    notes.extend(judged_as_another_sku(&nodes));
    notes.extend(mixed_settings(&nodes));
    let mut skus = Vec::new();
    let mut outliers = Vec::new();
    for (sku, gpus) in &gpus_by_sku(&nodes) {
        let count = |v: Verdict| gpus.iter().filter(|(_, g)| g.verdict == v).count();
        let mut metrics = Vec::new();
        for name in metric_names(gpus) {
            metrics.push(metric_stats(sku, gpus, name, outlier_pct, &mut outliers));
        }
        skus.push(SkuStats {
            sku: sku.clone(),
            gpus: gpus.len(),
            pass: count(Verdict::Pass),
            warn: count(Verdict::Warn),
            fail: count(Verdict::Fail),
            metrics,
        });
    }
    outliers.sort_by(|a, b| b.below_pct.total_cmp(&a.below_pct));
    let (node_types, node_outliers) = node_view(&nodes, outlier_pct);
    let mut outlier_nodes: Vec<String> = outliers
        .iter()
        .map(|o| o.host.clone())
        .chain(node_outliers.iter().map(|o| o.host.clone()))
        .collect();
    outlier_nodes.sort();
    outlier_nodes.dedup();
    let drain = nodes
        .iter()
        .filter(|n| n.verdict == Verdict::Fail)
        .map(|n| Drain {
            host: n.hostname.clone(),
            verdict: n.verdict,
            // What the FAIL rests on; the node's WARNs stay in its own verdict file. A node
            // failed as a whole (no device tested) has no check to name: its own reasons.
            reasons: Some(n.reasons_at(Verdict::Fail))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| n.reasons.clone()),
        })
        .collect();
    let count = |v: Verdict| nodes.iter().filter(|n| n.verdict == v).count();
    FleetSummary {
        schema_version: FLEET_SCHEMA_VERSION,
        kind: "gpuvet-fleet".into(),
        nodes: nodes.len(),
        gpus: nodes.iter().map(|n| n.gpus.len()).sum(),
        nodes_pass: count(Verdict::Pass),
        nodes_warn: count(Verdict::Warn),
        nodes_fail: count(Verdict::Fail),
        skus,
        outliers,
        outlier_nodes,
        node_types,
        node_outliers,
        drain,
        notes,
        lost_capacity: None,
    }
}

/// Node-level figures grouped by node type: distributions, and the nodes more than
/// `outlier_pct` below their type's median.
fn node_view(nodes: &[&NodeVerdict], outlier_pct: f64) -> (Vec<NodeTypeStats>, Vec<NodeOutlier>) {
    let mut by_type: BTreeMap<String, Vec<&NodeVerdict>> = BTreeMap::new();
    for n in nodes.iter().filter(|n| !n.node_metrics.is_empty()) {
        by_type.entry(node_type_of(n)).or_default().push(n);
    }
    let mut types = Vec::new();
    let mut outliers = Vec::new();
    for (t, ns) in by_type {
        let mut names: Vec<&String> = ns.iter().flat_map(|n| n.node_metrics.keys()).collect();
        names.sort();
        names.dedup();
        let mut metrics = Vec::new();
        for name in names {
            let vals: Vec<(&str, &super::MetricValue)> = ns
                .iter()
                .filter_map(|n| n.node_metrics.get(name).map(|m| (n.hostname.as_str(), m)))
                .collect();
            let values: Vec<f64> = vals.iter().map(|v| v.1.value).collect();
            let unit = vals.first().map(|v| v.1.unit.clone()).unwrap_or_default();
            for (k, med, below) in below_the_others(&values, outlier_pct) {
                let (host, m) = vals[k];
                outliers.push(NodeOutlier {
                    host: host.to_string(),
                    node_type: t.clone(),
                    metric: name.clone(),
                    value: m.value,
                    unit: unit.clone(),
                    fleet_median: med,
                    below_pct: below,
                });
            }
            let expected: Vec<f64> = vals.iter().filter_map(|v| v.1.expected).collect();
            metrics.push(MetricStats::of(name, unit, &values, &expected, Over::Nodes));
        }
        types.push(NodeTypeStats {
            node_type: t.clone(),
            nodes: ns.len(),
            metrics,
        });
    }
    outliers.sort_by(|a, b| b.below_pct.total_cmp(&a.below_pct));
    (types, outliers)
}

/// The node type a node's figures are compared within: the database's, else the node's GPU
/// count and model, so that nodes the database does not know are still compared only with
/// nodes like them (a 2-GPU node's all-reduce against an 8-GPU node's is no outlier).
fn node_type_of(n: &NodeVerdict) -> String {
    if let Some(t) = &n.node_type {
        return t.clone();
    }
    let models: BTreeSet<&str> = n
        .gpus
        .iter()
        .map(|g| g.detected_sku.as_deref().unwrap_or(g.name.as_str()))
        .collect();
    let model = match models.len() {
        1 => models.into_iter().next().unwrap_or_default().to_string(),
        _ => "mixed GPUs".to_string(),
    };
    format!("unknown node type ({}× {model})", n.gpus.len())
}

/// A host's GPUs, each with the host's name.
type HostGpus<'a> = Vec<(&'a str, &'a GpuVerdict)>;

/// One verdict per host (the latest by `started_at`, in host order), and a note for every host
/// seen more than once: a fleet view that counts a node twice misleads.
fn latest_per_host(verdicts: &[NodeVerdict]) -> (Vec<&NodeVerdict>, Vec<String>) {
    let mut notes = Vec::new();
    let mut latest: BTreeMap<&str, &NodeVerdict> = BTreeMap::new();
    for v in verdicts {
        if let Some(prev) = latest.get(v.hostname.as_str()) {
            // Two runs started in the same second: the worse verdict, whatever the order the
            // files were named in (a FAIL was hidden when its file came second); then the one
            // that tested more GPUs; then, for two that still tie, the file's own content, so
            // that naming the files in another order never gives another fleet view.
            let rank = |n: &NodeVerdict| (n.verdict, n.gpus.len(), n.to_json());
            let keep_prev = (&prev.started_at, rank(prev)) >= (&v.started_at, rank(v));
            let kept = if keep_prev { prev } else { v };
            notes.push(format!(
                "{} appears more than once: using the run started {}{}",
                v.hostname,
                kept.started_at,
                if prev.started_at == v.started_at {
                    format!(
                        " (two runs started then: the worse verdict, {})",
                        kept.verdict.name()
                    )
                } else {
                    String::new()
                }
            ));
            if keep_prev {
                continue;
            }
        }
        latest.insert(&v.hostname, v);
    }
    (latest.into_values().collect(), notes)
}

/// Every GPU with its host, grouped by the SKU it is ([`fleet_sku`]), sorted.
fn gpus_by_sku<'a>(nodes: &[&'a NodeVerdict]) -> BTreeMap<String, HostGpus<'a>> {
    let mut by_sku: BTreeMap<String, HostGpus<'a>> = BTreeMap::new();
    for n in nodes {
        for g in &n.gpus {
            by_sku
                .entry(fleet_sku(g))
                .or_default()
                .push((n.hostname.as_str(), g));
        }
    }
    by_sku
}

/// The metric names any of `gpus` reports, sorted, once each.
fn metric_names<'a>(gpus: &[(&str, &'a GpuVerdict)]) -> Vec<&'a String> {
    let mut names: Vec<&String> = gpus.iter().flat_map(|(_, g)| g.metrics.keys()).collect();
    names.sort();
    names.dedup();
    names
}

/// The fleet distribution of metric `name` over one SKU's `gpus`; GPUs more than `outlier_pct`
/// below its median are pushed onto `outliers` (a median of fewer than two has none).
fn metric_stats(
    sku: &str,
    gpus: &[(&str, &GpuVerdict)],
    name: &str,
    outlier_pct: f64,
    outliers: &mut Vec<Outlier>,
) -> MetricStats {
    let vals: Vec<(&str, &GpuVerdict, f64)> = gpus
        .iter()
        .filter_map(|(h, g)| g.metrics.get(name).map(|m| (*h, *g, m.value)))
        .collect();
    let values: Vec<f64> = vals.iter().map(|x| x.2).collect();
    let unit = gpus
        .iter()
        .find_map(|(_, g)| g.metrics.get(name).map(|m| m.unit.clone()))
        .unwrap_or_default();
    // Expectations belong to the SKU a GPU was judged against: one judged as another SKU
    // carries that SKU's.
    let expected: Vec<f64> = gpus
        .iter()
        .filter(|(_, g)| g.sku.as_deref().is_none_or(|judged| judged == sku))
        .filter_map(|(_, g)| g.metrics.get(name).and_then(|m| m.expected))
        .collect();
    for (k, med, below) in below_the_others(&values, outlier_pct) {
        let (host, g, v) = vals[k];
        outliers.push(Outlier {
            host: host.to_string(),
            gpu: g.index,
            uuid: g.uuid.clone(),
            sku: sku.to_string(),
            metric: name.to_string(),
            value: v,
            unit: unit.clone(),
            fleet_median: med,
            below_pct: below,
        });
    }
    MetricStats::of(name, unit, &values, &expected, Over::Gpus)
}

/// The figures more than `pct` percent below the median of the others: (index, that median,
/// percent below). One rule for GPU and node outliers.
fn below_the_others(values: &[f64], pct: f64) -> Vec<(usize, f64, f64)> {
    let others = OthersMedian::of(values);
    values
        .iter()
        .enumerate()
        .filter_map(|(k, &v)| {
            let med = others.without(v);
            // NaN (no other figure) and a zero median compare false: no outlier.
            let below = 100.0 * (1.0 - v / med);
            (med > 0.0 && below > pct).then_some((k, med, below))
        })
        .collect()
}

/// The median of a fleet's figures with one of them left out: an outlier is measured against
/// the others (with its own figure in the median, the slower of two nodes had to be twice
/// `--outlier-pct` below the other to be one). One sort serves every figure left out.
struct OthersMedian(Vec<f64>);

impl OthersMedian {
    fn of(values: &[f64]) -> OthersMedian {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        OthersMedian(v)
    }

    /// The median of the figures without one equal to `value` (NaN with no other figure).
    fn without(&self, value: f64) -> f64 {
        let sorted = &self.0;
        if sorted.len() < 2 {
            return f64::NAN;
        }
        let p = sorted.partition_point(|x| x.total_cmp(&value).is_lt());
        let m = sorted.len() - 1;
        let at = |i: usize| sorted[if i < p { i } else { i + 1 }];
        if m % 2 == 1 {
            at(m / 2)
        } else {
            (at(m / 2 - 1) + at(m / 2)) / 2.0
        }
    }
}

/// What a figure's values are one of: a GPU's (per SKU) or a node's (per node type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    Gpus,
    Nodes,
}

impl MetricStats {
    /// The distribution of `values` of figure `name` (one per GPU or node, as `over` says), with
    /// the median of the `expected` figures those carried (none: no expectation).
    fn of(name: &str, unit: String, values: &[f64], expected: &[f64], over: Over) -> MetricStats {
        MetricStats {
            metric: name.to_string(),
            unit,
            gpus: (over == Over::Gpus).then_some(values.len()),
            nodes: (over == Over::Nodes).then_some(values.len()),
            median: median(values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            expected: (!expected.is_empty()).then(|| median(expected)),
        }
    }
}

fn rate(v: f64, unit: &str) -> String {
    if v.is_finite() {
        crate::units::si(v, unit)
    } else {
        "-".into()
    }
}

/// `1 node`, `3 nodes`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn headline(s: &FleetSummary) -> String {
    format!(
        // The verdicts are the nodes': "2 nodes, 6 GPUs: 0 PASS, 1 WARN, 1 FAIL" read as GPUs.
        "{} ({}): nodes {} PASS, {} WARN, {} FAIL; {} to drain, {} on {}",
        count(s.nodes, "node"),
        count(s.gpus, "GPU"),
        s.nodes_pass,
        s.nodes_warn,
        s.nodes_fail,
        s.drain.len(),
        count(s.outliers.len() + s.node_outliers.len(), "outlier figure"),
        count(s.outlier_nodes.len(), "node"),
    )
}

/// The headers of `stats_cells`.
const STATS_HEADER: [&str; 5] = ["figure", "median", "min", "max", "expected"];

/// A figure's distribution as table cells: name, median, min, max, expectation.
fn stats_cells(m: &MetricStats) -> Vec<String> {
    vec![
        m.metric.clone(),
        rate(m.median, &m.unit),
        rate(m.min, &m.unit),
        rate(m.max, &m.unit),
        m.expected.map_or("-".into(), |e| rate(e, &m.unit)),
    ]
}

/// A row per figure of a group (a SKU, a node type), the group's `lead` cells on its first row
/// only.
fn grouped_rows(t: &mut comfy_table::Table, lead: &[String], metrics: &[MetricStats]) {
    for (i, m) in metrics.iter().enumerate() {
        let shown = lead
            .iter()
            .map(|c| if i == 0 { c.clone() } else { String::new() });
        t.add_row(shown.chain(stats_cells(m)).collect::<Vec<_>>());
    }
}

/// Terminal tables: per-SKU distributions, outliers, nodes to drain.
pub fn render_table(s: &FleetSummary, color: bool) -> String {
    use comfy_table::{Cell, Color};
    let new = || crate::term::table(color);
    let mut out = String::new();
    let mut t = new();
    t.set_header([&["SKU", "GPUs", "P/W/F"][..], &STATS_HEADER].concat());
    for k in &s.skus {
        let lead = [k.sku.clone(), k.gpus.to_string(), k.pass_warn_fail()];
        grouped_rows(&mut t, &lead, &k.metrics);
        if k.metrics.is_empty() {
            t.add_row([&lead[..], &["-".into()]].concat());
        }
    }
    out.push_str(&format!("{t}\n"));
    if !s.node_types.is_empty() {
        let mut t = new();
        t.set_header([&["node type", "nodes"][..], &STATS_HEADER].concat());
        for k in &s.node_types {
            grouped_rows(
                &mut t,
                &[k.node_type.clone(), k.nodes.to_string()],
                &k.metrics,
            );
        }
        out.push_str(&format!("{t}\n"));
    }
    for o in &s.node_outliers {
        out.push_str(&format!(
            "node outlier: {} the median of its node type\n",
            o.below()
        ));
    }
    if !s.outliers.is_empty() {
        let mut t = new();
        t.set_header(vec![
            "outlier: host",
            "GPU",
            "SKU",
            "figure",
            "value",
            "below median",
        ]);
        for o in &s.outliers {
            t.add_row(vec![
                Cell::new(&o.host),
                Cell::new(o.gpu),
                Cell::new(&o.sku),
                Cell::new(&o.metric),
                Cell::new(rate(o.value, &o.unit)),
                Cell::new(format!("{:.1}%", o.below_pct)),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    if !s.drain.is_empty() {
        let mut t = new();
        t.set_header(vec!["drain: host", "reasons"]);
        for d in &s.drain {
            let c = Cell::new(&d.host);
            t.add_row(vec![
                if color { c.fg(Color::Red) } else { c },
                Cell::new(d.reasons.join("\n")),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    for n in &s.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    if let Some(l) = &s.lost_capacity {
        out.push_str(&format!("{}\n", l.line()));
    }
    out.push_str(&headline(s));
    out.push('\n');
    out
}

/// Markdown: the same three tables, for a wiki page or a ticket.
pub fn render_markdown(s: &FleetSummary) -> String {
    let mut o = format!("# GPU fleet validation\n\n{}\n\n", headline(s));
    o.push_str("## Per SKU\n\n| SKU | GPUs | PASS/WARN/FAIL | figure | median | min | max | expected |\n|---|---|---|---|---|---|---|---|\n");
    for k in &s.skus {
        let lead = [k.sku.clone(), k.gpus.to_string(), k.pass_warn_fail()];
        for m in &k.metrics {
            o.push_str(&md_row(&[&lead[..], &stats_cells(m)].concat()));
        }
    }
    if !s.node_types.is_empty() {
        o.push_str("\n## Per node type (links)\n\n| node type | nodes | figure | median | min | max | expected |\n|---|---|---|---|---|---|---|\n");
        for k in &s.node_types {
            let lead = [k.node_type.clone(), k.nodes.to_string()];
            for m in &k.metrics {
                o.push_str(&md_row(&[&lead[..], &stats_cells(m)].concat()));
            }
        }
        for x in &s.node_outliers {
            o.push_str(&format!(
                "\nNode outlier: {} its node type's median.\n",
                md(&x.below())
            ));
        }
    }
    if !s.outliers.is_empty() {
        o.push_str("\n## Outliers\n\n| host | GPU | SKU | figure | value | below fleet median |\n|---|---|---|---|---|---|\n");
        for x in &s.outliers {
            o.push_str(&md_row(&[
                x.host.clone(),
                x.gpu.to_string(),
                x.sku.clone(),
                x.metric.clone(),
                rate(x.value, &x.unit),
                format!("{:.1}%", x.below_pct),
            ]));
        }
    }
    if !s.drain.is_empty() {
        o.push_str("\n## Nodes to drain\n\n| host | reasons |\n|---|---|\n");
        for d in &s.drain {
            o.push_str(&md_row(&[d.host.clone(), d.reasons.join("\n")]));
        }
    }
    if let Some(l) = &s.lost_capacity {
        o.push_str(
            "\n## Cost of the nodes to drain\n\n| host | GPUs | USD per hour |\n|---|---|---|\n",
        );
        for n in &l.nodes {
            o.push_str(&md_row(&[
                n.host.clone(),
                n.gpus.to_string(),
                format!("{:.2}", n.usd_per_hour),
            ]));
        }
        o.push_str(&format!("\n{}\n", md(&l.line())));
    }
    for n in &s.notes {
        o.push_str(&format!("\nNote: {}\n", md(n)));
    }
    o
}

/// The last seven CSV cells of one figure (GPU or node): figure, value, unit, expected, ratio,
/// the fleet median it was held against, whether it is an outlier.
fn figure_cells(metric: &str, m: &MetricValue, median: Option<f64>, outlier: bool) -> [String; 7] {
    let opt = |x: Option<f64>| x.map(|v| format!("{v:.6e}")).unwrap_or_default();
    [
        metric.to_string(),
        format!("{:.6e}", m.value),
        m.unit.clone(),
        opt(m.expected),
        m.ratio.map(|r| format!("{r:.4}")).unwrap_or_default(),
        opt(median),
        outlier.to_string(),
    ]
}

/// CSV: one row per GPU and figure (a GPU without figures gets one row), with the SKU's fleet
/// median and whether the figure is an outlier — the shape a spreadsheet pivots.
pub fn render_csv(verdicts: &[NodeVerdict], s: &FleetSummary) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Error::Io(std::io::Error::other(e.to_string()));
    w.write_record([
        "host",
        "node_verdict",
        "gpu",
        "uuid",
        "pci_bus_id",
        "serial",
        "sku",
        "gpu_verdict",
        "figure",
        "value",
        "unit",
        "expected",
        "ratio",
        "sku_fleet_median",
        "outlier",
    ])
    .map_err(io)?;
    let fleet_median = |sku: &str, metric: &str| {
        s.skus
            .iter()
            .find(|k| k.sku == sku)
            .and_then(|k| k.metrics.iter().find(|m| m.metric == metric))
            .map(|m| m.median)
    };
    // The latest run of each host, as the table and the JSON count it: a superseded run's
    // rows would count the host twice in a spreadsheet.
    let (latest, _) = latest_per_host(verdicts);
    for n in &latest {
        for g in &n.gpus {
            let sku = fleet_sku(g);
            let base = [
                n.hostname.clone(),
                n.verdict.name().to_string(),
                g.index.to_string(),
                g.uuid.clone().unwrap_or_default(),
                g.pci_bus_id.clone().unwrap_or_default(),
                g.serial.clone().unwrap_or_default(),
                sku.clone(),
                g.verdict.name().to_string(),
            ];
            if g.metrics.is_empty() {
                let mut row = base.to_vec();
                row.resize(row.len() + 7, String::new());
                w.write_record(&row).map_err(io)?;
            }
            for (metric, m) in g.metrics.iter() {
                let outlier = s
                    .outliers
                    .iter()
                    .any(|o| o.host == n.hostname && o.gpu == g.index && &o.metric == metric);
                let mut row = base.to_vec();
                row.extend(figure_cells(metric, m, fleet_median(&sku, metric), outlier));
                w.write_record(&row).map_err(io)?;
            }
        }
    }
    // The node rows too: the latest run of each host, and its type as the summary names it
    // (a node the database does not know is `unknown node type (2× …)` there, not absent).
    for n in &latest {
        let node_type = node_type_of(n);
        for (metric, m) in &n.node_metrics {
            let outlier = s
                .node_outliers
                .iter()
                .any(|o| o.host == n.hostname && &o.metric == metric);
            let median = s
                .node_types
                .iter()
                .find(|t| t.node_type == node_type)
                .and_then(|t| t.metrics.iter().find(|x| &x.metric == metric))
                .map(|x| x.median);
            let mut row = vec![
                n.hostname.clone(),
                n.verdict.name().to_string(),
                "node".into(),
                String::new(),
                String::new(),
                String::new(),
                node_type.clone(),
                n.verdict.name().to_string(),
            ];
            row.extend(figure_cells(metric, m, median, outlier));
            w.write_record(&row).map_err(io)?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Renders the fleet view in `format`.
pub fn render(
    verdicts: &[NodeVerdict],
    s: &FleetSummary,
    format: FleetFormat,
    color: bool,
) -> Result<String> {
    Ok(match format {
        FleetFormat::Table => render_table(s, color),
        FleetFormat::Markdown => render_markdown(s),
        FleetFormat::Json => {
            let mut j = serde_json::to_string_pretty(s)
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
            j.push('\n');
            j
        }
        FleetFormat::Csv => render_csv(verdicts, s)?,
    })
}

/// The fleet view of a set of verdicts, as every format renders it.
pub struct Fleet<'a> {
    pub verdicts: &'a [NodeVerdict],
    pub summary: &'a FleetSummary,
}

/// Each format is a file of the fleet view (a table in a file is written without colour).
impl crate::export::Exporter<Fleet<'_>> for FleetFormat {
    fn render(&self, f: &Fleet<'_>) -> anyhow::Result<String> {
        Ok(render(f.verdicts, f.summary, *self, false)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_the_others_leaves_one_figure_out() {
        let m = OthersMedian::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!(m.without(10.0), 2.0);
        assert_eq!(m.without(1.0), 3.0);
        assert_eq!(m.without(2.0), 3.0);
        let two = OthersMedian::of(&[100.0, 85.0]);
        assert_eq!((two.without(85.0), two.without(100.0)), (100.0, 85.0));
        let same = OthersMedian::of(&[5.0, 5.0, 5.0]);
        assert_eq!(same.without(5.0), 5.0);
        assert!(OthersMedian::of(&[1.0]).without(1.0).is_nan());
    }
}
