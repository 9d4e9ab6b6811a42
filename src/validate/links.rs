//! The node's links, judged: the topology (NVLink links per pair) against the SKU, every
//! pair's peer copy against its link and against the other pairs, and the collective's bus
//! bandwidth against what a node of this type reaches (data/gpus.toml `[[node]]`, else the
//! share of the slowest pair's rate). Every WARN and FAIL names the pair or the node.
//!
//! Per-GPU host-link figures (`transfer.*`) are ordinary GPU metrics: the absolute and peer
//! checks judge them like any other figure.

use super::verdict::{format_rate, Check, CheckKind, Finding, MetricValue, Verdict};
use crate::backend::topology::{self, LinkPath};
use crate::gpudb::{self, FormFactor, Sku};
use crate::interconnect::{figures, LinkFigure};
use crate::plan::Placement;
use crate::report::Report;
use crate::stats::median;
use crate::validate::verdict::{against_expectation, beyond_noise};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

/// The test pair copies are judged on (the copy engine, one way, the source writing).
pub const PAIR_TEST: &str = "p2p.write";
/// The collective the node is judged on.
pub const NODE_TEST: &str = "collective.all_reduce";

/// One pair's figure in the verdict.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairMetric {
    /// The test (`p2p.write`).
    pub test: String,
    /// Source first.
    pub devices: Placement,
    /// `NV18`, `PCIe`.
    pub path: String,
    pub value: f64,
    pub unit: String,
    pub link: Option<f64>,
    pub expected: Option<f64>,
    pub verdict: Verdict,
    pub result_id: String,
}

/// What the links of a node come to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkJudgement {
    /// `None` when the run has no link results and a single device.
    pub check: Option<Check>,
    pub pairs: Vec<PairMetric>,
    /// `collective.all_reduce` (busbw), `p2p.write.slowest`, `p2p.write.median`.
    pub metrics: BTreeMap<String, MetricValue>,
    /// `8x h100-sxm`: what node expectations and the fleet view group by.
    pub node_type: Option<String>,
}

/// Judges the links of `report`; `skus[i]` is what device `i` is judged against.
pub fn judge(
    report: &Report,
    skus: &[Option<Sku>],
    tolerance: f64,
    straggler: f64,
) -> LinkJudgement {
    let n = report.devices.len();
    let node_type = skus
        .first()
        .cloned()
        .flatten()
        .filter(|s| {
            skus.iter()
                .all(|o| o.as_ref().map(|o| &o.id) == Some(&s.id))
        })
        .map(|s| format!("{n}x {}", s.id));
    let figs = figures(report);
    let mut f = Vec::new();
    topology_findings(report, skus, &mut f);
    let (pairs, mut metrics) = pair_findings(report, &figs, tolerance, straggler, &mut f);
    if let Some(m) = collective_finding(report, &figs, skus, tolerance, &mut f) {
        metrics.insert(NODE_TEST.into(), m);
    }
    let sets = report.not_run.iter().filter(|n| !n.device.is_single());
    f.extend(super::not_measured_findings(sets));
    let check = (!f.is_empty() || !pairs.is_empty()).then(|| Check::new(CheckKind::Links, f));
    LinkJudgement {
        check,
        pairs,
        metrics,
        node_type,
    }
}

/// NVLink per pair against the SKU: on an NVLink system every pair should reach the other over
/// all of its links (directly or through NVSwitch).
fn topology_findings(report: &Report, skus: &[Option<Sku>], f: &mut Vec<Finding>) {
    let n = report.devices.len();
    for a in 0..n {
        for b in a + 1..n {
            let Some(sku) = skus.get(a).cloned().flatten() else {
                continue;
            };
            if sku.nvlink_links == 0 || sku.form_factor != FormFactor::Sxm {
                continue;
            }
            let p = topology::pair(&report.devices, a, b);
            match p.path {
                LinkPath::Unknown => {}
                LinkPath::Pcie => f.push(Finding::fail(format!(
                    "GPUs {a}↔{b}: no NVLink between them (PCIe only), but {} reaches its \
                     peers over {} links",
                    sku.name, sku.nvlink_links
                ))),
                path if path.nvlinks() < sku.nvlink_links => f.push(Finding::warn(format!(
                    "GPUs {a}↔{b}: {} of {} NVLink links (a link down, or a partial NVSwitch \
                     fabric)",
                    path.nvlinks(),
                    sku.nvlink_links
                ))),
                _ => {}
            }
            if p.peer_access == Some(false) && p.path.nvlinks() > 0 {
                f.push(Finding::warn(format!(
                    "GPUs {a}↔{b}: NVLink is up but GPU {a} cannot map GPU {b}'s memory \
                     (cuDeviceCanAccessPeer)"
                )));
            }
        }
    }
}

/// Every pair's copy against its link (absolute) and against the node's other pairs (a pair
/// far below their median is a straggler); the slowest and median pair as node metrics.
fn pair_findings(
    report: &Report,
    figs: &[LinkFigure],
    tolerance: f64,
    straggler: f64,
    f: &mut Vec<Finding>,
) -> (Vec<PairMetric>, BTreeMap<String, MetricValue>) {
    let pair_figs: Vec<&LinkFigure> = figs
        .iter()
        .filter(|x| x.key == PAIR_TEST && x.implementation == reference_impl(figs, PAIR_TEST))
        .collect();
    let values: Vec<f64> = pair_figs.iter().map(|x| x.value).collect();
    let med = (values.len() >= 2).then(|| median(&values));
    let mut pairs = Vec::new();
    for (k, x) in pair_figs.iter().enumerate() {
        // The pair against its link's expectation, where there is one; and against the
        // node's other pairs, which needs no link rate (NVML may not report the links). A
        // pair's verdict is the worse of the two; each finding keeps its own (an estimate
        // missed is never more than a WARN, straggler or not).
        let absolute = absolute_finding(x, tolerance);
        let mut verdict = absolute.as_ref().map_or(Verdict::Pass, |a| a.verdict);
        // Against the other pairs' median, as a GPU is against its peers': with its own copy
        // in the median, a 2-GPU node's slower direction had to be twice the threshold below
        // the other to fail.
        let others: Vec<f64> = (values.iter().enumerate())
            .filter_map(|(j, &v)| (j != k).then_some(v))
            .collect();
        if let Some(m) = (!others.is_empty())
            .then(|| median(&others))
            .filter(|&m| m > 0.0)
        {
            let below = 1.0 - x.value / m;
            let peer = if below > straggler {
                Some(Verdict::Fail)
            } else if below > straggler / 2.0 {
                Some(Verdict::Warn)
            } else {
                None
            };
            if let Some(pv) = peer {
                let msg = format!(
                    "{} {PAIR_TEST}: {} is {:.1}% below the median {} of the node's {} other \
                     pair(s)",
                    x.who(),
                    format_rate(x.value, "B/s"),
                    100.0 * below,
                    format_rate(m, "B/s"),
                    others.len()
                );
                let fails = |h: f64| 1.0 - h / m > straggler;
                let finding = beyond_noise(pv, msg, x.value_high, "B/s", fails);
                verdict = verdict.max(finding.verdict);
                f.push(finding);
            }
        }
        if let Some(a) = absolute.filter(|a| a.verdict != Verdict::Pass) {
            f.push(a);
        }
        let [a, b] = x.placement.devices() else {
            continue;
        };
        pairs.push(PairMetric {
            test: x.key.clone(),
            devices: x.placement.clone(),
            path: topology::pair(&report.devices, *a, *b).path.short(),
            value: x.value,
            unit: "B/s".into(),
            link: x.link,
            expected: x.expected,
            verdict,
            result_id: x.result_id.clone(),
        });
    }
    let mut metrics = BTreeMap::new();
    if let Some(slowest) = pair_figs.iter().min_by(|a, b| a.value.total_cmp(&b.value)) {
        metrics.insert(format!("{PAIR_TEST}.slowest"), metric(slowest));
    }
    if let Some(m) = med {
        metrics.insert(
            format!("{PAIR_TEST}.median"),
            MetricValue {
                value: m,
                unit: "B/s".into(),
                result_id: format!("median of {} pairs", values.len()),
                peak: None,
                expected: None,
                ratio: None,
                value_high: None,
            },
        );
    }
    (pairs, metrics)
}

/// The implementation verdicts rest on: the vendor path (`memcpy`, `nccl`, or the CPU's own).
fn reference_impl<'f>(figs: &'f [LinkFigure], key: &str) -> &'f str {
    let of_key = || figs.iter().filter(|x| x.key == key);
    of_key()
        .find(|x| matches!(x.implementation.as_str(), "memcpy" | "nccl"))
        .or_else(|| of_key().next())
        .map_or("", |x| x.implementation.as_str())
}

/// A figure against its expectation, where it has one ([`against_expectation`], as in the
/// absolute check: an estimate never fails); a PASS has no message, since only shortfalls are
/// reported per pair.
fn absolute_finding(x: &LinkFigure, tolerance: f64) -> Option<Finding> {
    let (ratio, e, expected) = (x.ratio()?, x.expectation.as_ref()?, x.expected?);
    let judged = (ratio, expected, x.value_high);
    Some(against_expectation(
        judged,
        e.confidence,
        tolerance,
        "B/s",
        |v| match v {
            Verdict::Pass => String::new(),
            _ => crate::interconnect::shortfall(x, 0.0)
                .unwrap_or_else(|| format!("{} below expectation", x.who())),
        },
    ))
}

fn metric(x: &LinkFigure) -> MetricValue {
    MetricValue {
        value: x.value,
        unit: "B/s".into(),
        result_id: x.result_id.clone(),
        peak: x.link,
        expected: x.expected,
        ratio: x.ratio(),
        value_high: x.value_high,
    }
}

/// The all-reduce of the whole node against the node type's expectation (`[[node]]` in
/// data/gpus.toml), else against the share of its slowest pair's rate.
fn collective_finding(
    report: &Report,
    figs: &[LinkFigure],
    skus: &[Option<Sku>],
    tolerance: f64,
    f: &mut Vec<Finding>,
) -> Option<MetricValue> {
    let n = report.devices.len();
    let imp = reference_impl(figs, NODE_TEST);
    let x = figs
        .iter()
        .filter(|x| x.key == NODE_TEST && x.implementation == imp)
        .max_by_key(|x| x.placement.devices().len())?;
    let mut x = x.clone();
    let node = skus.first().cloned().flatten().and_then(|s| {
        gpudb::database()
            .ok()?
            .node(&s.id, n as u32, NODE_TEST)
            .cloned()
    });
    if let Some(node) = &node {
        x.expected = Some(node.busbw_gbs * 1e9);
        x.expectation = Some(gpudb::Expectation {
            share: 1.0,
            confidence: node.confidence,
            basis: node.basis.clone(),
        });
    }
    let m = metric(&x);
    if let (Some(ratio), Some(e), Some(expected)) = (x.ratio(), &x.expectation, x.expected) {
        let judged = (ratio, expected, x.value_high);
        f.push(against_expectation(
            judged,
            e.confidence,
            tolerance,
            "B/s",
            |v| match v {
                Verdict::Pass => format!(
                    "all-reduce busbw {} over {} ranks",
                    format_rate(x.value, "B/s"),
                    x.placement.devices().len()
                ),
                _ => format!(
                    "{} all-reduce busbw {} is {:.0}% of the {} a healthy {} reaches ({})",
                    x.who(),
                    format_rate(x.value, "B/s"),
                    100.0 * ratio,
                    format_rate(expected, "B/s"),
                    node.as_ref().map_or("node".to_string(), |nd| format!(
                        "{}x {} node",
                        nd.gpus, nd.sku
                    )),
                    e.confidence.name(),
                ),
            },
        ));
    }
    Some(m)
}
