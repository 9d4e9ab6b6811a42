//! Instance validation: *is this the GPU I paid for, and is it healthy?*
//!
//! | piece | module | job |
//! |---|---|---|
//! | what to run | [`suite`] | the validation suite of one device, as data |
//! | is it what it claims | [`identity`] | SKU, SMs, memory, power limit, clocks, PCIe, NVLink, MIG |
//! | verdicts | [`verdict`] | absolute, peers, health, correctness → PASS / WARN / FAIL |
//! | the links | [`links`] | NVLink per pair, peer copies, the node's all-reduce busbw |
//! | the node | [`judge`] | a [`NodeVerdict`] from a finished run: JSON, table, exit code |
//! | the fleet | [`aggregate`] | per-node verdict files → per-SKU distributions, nodes to drain |
//!
//! Exit status of `gpuvet validate`: 0 healthy (PASS; WARN unless `--fail-on-warn`), 1 unhealthy
//! (drain the node), 2 the tool could not judge (no GPU, bad flags).

pub mod aggregate;
pub mod identity;
pub mod links;
pub mod verdict;

pub use aggregate::AggregateArgs;
pub use verdict::{Check, CheckKind, ChecksumSample, Finding, MetricValue, Verdict};

use crate::backend::{DeviceInfo, DeviceState, Peaks, SuiteScale, Telemetry};
use crate::dtype::DType;
use crate::gpudb::{self, ExpectConfidence, Expectation, Sku};
use crate::plan::NotRun;
use crate::report::{Report, ResultRecord, Status};
use crate::units::Bytes;
use crate::workload::{AttentionSpec, BLayout, MatmulSpec, MemOp, MemorySpec, Workload};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Major version of the verdict JSON; within it fields are only added.
pub const VERDICT_SCHEMA_VERSION: u32 = 1;
/// The `kind` field of a verdict file, so that a report is never mistaken for one.
pub const VERDICT_KIND: &str = "gpuvet-verdict";

/// What a verdict is judged against: the domain side of `gpuvet validate`'s flags (the CLI
/// builds it; library callers fill it in directly).
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeOptions {
    /// Judge every GPU against this SKU id instead of the one it reports.
    pub expect: Option<String>,
    /// The soak duration; `None` is quick mode.
    pub duration: Option<Duration>,
    /// A figure this many percent below expectation is a WARN; twice as far, a FAIL.
    pub tolerance_pct: f64,
    /// A GPU this many percent below its peers' median is a straggler.
    pub straggler_pct: f64,
    /// Exit 1 on WARN too.
    pub fail_on_warn: bool,
}

impl Default for JudgeOptions {
    fn default() -> Self {
        JudgeOptions {
            expect: None,
            duration: None,
            tolerance_pct: 10.0,
            straggler_pct: 10.0,
            fail_on_warn: false,
        }
    }
}

impl JudgeOptions {
    /// Quick mode unless a soak duration was given.
    pub fn is_quick(&self) -> bool {
        self.duration.is_none()
    }
}

impl From<&JudgeOptions> for JudgeOptions {
    fn from(o: &JudgeOptions) -> Self {
        o.clone()
    }
}

/// Dtypes a device's tensor (or vector) units run, by compute capability. Devices without one
/// (a CPU) get those the CPU backend runs.
pub fn supported_dtypes(info: &DeviceInfo) -> Vec<DType> {
    let cc = info
        .compute_capability
        .as_deref()
        .and_then(|c| {
            let (a, b) = c.trim().split_once('.')?;
            Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
        })
        .unwrap_or((0, 0));
    if !info.is_gpu() {
        return vec![DType::F32, DType::Bf16, DType::F16, DType::Int8];
    }
    let mut v = vec![DType::F32];
    if cc >= (7, 0) {
        v.push(DType::F16);
    }
    if cc >= (7, 5) {
        v.push(DType::Int8);
    }
    if cc >= (8, 0) {
        v.push(DType::Bf16);
        v.push(DType::Tf32);
    }
    if cc >= (8, 9) {
        v.push(DType::Fp8E4m3);
    }
    v
}

/// The validation suite of one device.
///
/// Memory copy far beyond the last-level cache, matmul at 8192³ for every dtype the device
/// runs, causal prefill attention (up to 4 × 4096 tokens, GQA 32/8, head dim 128) and decode attention
/// (KV ≥ 4× L2). A soak (`quick = false`) adds read bandwidth and inference-shaped GEMMs
/// (Llama-3-70B gate+up, 4096 tokens). CPU and mock devices get sizes that finish in seconds.
pub fn suite(info: &DeviceInfo, quick: bool) -> Vec<Workload> {
    let dtypes = supported_dtypes(info);
    let attn_dtype = if dtypes.contains(&DType::Bf16) {
        DType::Bf16
    } else {
        DType::F16
    };
    let mm = |m: u64, n: u64, k: u64, d: DType| {
        Workload::Matmul(MatmulSpec {
            m,
            n,
            k,
            dtype: d,
            b_layout: BLayout::Nk,
        })
    };
    let att = |batch, lq, lkv, causal, hd, dtype| {
        Workload::Attention(AttentionSpec {
            batch,
            q_heads: 32,
            kv_heads: 8,
            q_len: lq,
            kv_len: lkv,
            head_dim: hd,
            causal,
            dtype,
        })
    };
    let mem = |op, bytes| Workload::Memory(MemorySpec { op, bytes });
    let mut v = Vec::new();
    match info.suite_scale() {
        SuiteScale::Device => {
            let total = info.memory_bytes.unwrap_or(16 << 30);
            let bytes = crate::backend::quick::memory_bytes(info);
            v.push(mem(MemOp::Copy, bytes));
            if !quick {
                v.push(mem(MemOp::Read, bytes));
            }
            for &d in &dtypes {
                v.push(mm(8192, 8192, 8192, d));
            }
            if !quick {
                for d in [DType::Bf16, DType::Fp8E4m3] {
                    if dtypes.contains(&d) {
                        v.push(mm(4096, 57344, 8192, d));
                    }
                }
            }
            // 4 × 4096 tokens where memory allows: the unfused path keeps B·Hq·Lq·Lkv scores
            // (6 bytes each, 3.2 GB per sequence) on the device.
            let batch = match total >> 30 {
                g if g >= 40 => 4,
                g if g >= 20 => 2,
                _ => 1,
            };
            v.push(att(batch, 4096, 4096, true, 128, attn_dtype));
            v.push(att(64, 1, 8192, true, 128, attn_dtype));
        }
        SuiteScale::Smoke => {
            v.push(mem(MemOp::Copy, 1 << 20));
            for d in [DType::F32, DType::Bf16] {
                v.push(mm(64, 64, 64, d));
            }
            v.push(att(1, 32, 64, true, 16, DType::F16));
            v.push(att(2, 1, 64, true, 16, DType::F16));
        }
        SuiteScale::Host => {
            // CPU: the pipeline, not the hardware, is what is being tested; keep it to seconds.
            v.push(mem(MemOp::Copy, 64 << 20));
            for &d in &dtypes {
                v.push(mm(512, 512, 512, d));
            }
            v.push(att(1, 256, 256, true, 64, DType::F32));
            v.push(att(2, 1, 2048, true, 64, DType::F32));
        }
    }
    v
}

/// The link suite of a node, run after the per-GPU suite and one result at a time (links
/// share the host and the switches, so concurrent copies would judge each other's traffic):
/// host↔device copies from pinned memory on every device, and on a node of several devices a
/// peer copy on every ordered pair and an all-reduce over all of them. A soak adds both
/// directions at once and peer reads. The CPU backend (testing) gets its host copy and its
/// thread-rank all-reduce; sizes follow the suite scale.
pub fn link_suite(devices: &[DeviceInfo], quick: bool) -> Vec<Workload> {
    use crate::workload::{
        CollectiveOp, CollectiveSpec, Direction, HostMemory, P2pOp, P2pSpec, TransferSpec,
    };
    let Some(first) = devices.first() else {
        return Vec::new();
    };
    let (host, pair, coll) = match first.suite_scale() {
        SuiteScale::Device => (1u64 << 30, 64u64 << 20, 1u64 << 30),
        SuiteScale::Smoke => (1 << 20, 1 << 20, 1 << 20),
        SuiteScale::Host => (16 << 20, 16 << 20, 4 << 20),
    };
    let mut dirs = vec![Direction::H2d, Direction::D2h];
    if !quick {
        dirs.push(Direction::Bidir);
    }
    let mut v: Vec<Workload> = dirs
        .into_iter()
        .map(|d| Workload::Transfer(TransferSpec::new(d, HostMemory::Pinned, host)))
        .collect();
    if devices.len() > 1 {
        v.push(Workload::P2p(P2pSpec::new(P2pOp::Write, false, pair)));
        if !quick {
            v.push(Workload::P2p(P2pSpec::new(P2pOp::Read, false, pair)));
            v.push(Workload::P2p(P2pSpec::new(P2pOp::Write, true, pair)));
        }
    }
    if devices.len() > 1 || first.suite_scale() == SuiteScale::Host {
        v.push(Workload::Collective(CollectiveSpec::new(
            CollectiveOp::AllReduce,
            DType::Bf16,
            coll,
            0,
        )));
    }
    v
}

/// What a verdict needs beyond the report: stress checksums and telemetry timelines.
#[derive(Debug, Clone, Default)]
pub struct JudgeInputs {
    /// Telemetry sampled during the run, per device index (e.g. once a second).
    pub telemetry: BTreeMap<usize, Vec<Telemetry>>,
    /// Output checksums of repeated runs (stress), every device: mismatches are found here.
    pub checksums: Vec<ChecksumSample>,
    /// Mismatches already found elsewhere (a stress run compares as it goes).
    pub mismatches: Vec<verdict::ChecksumMismatch>,
    /// Further correctness findings per device (a stress run that could not run, ...).
    pub correctness: BTreeMap<usize, Vec<Finding>>,
    /// Device state read again after the run, per device index: ECC counters that grew during
    /// the run, and the PCIe generation while the link is still up.
    pub state_after: BTreeMap<usize, DeviceState>,
    /// Devices the plan found short of free memory, per device index: judged once under
    /// health, rather than as a failure of each result that therefore did not run.
    pub memory_held: BTreeMap<usize, MemoryHeld>,
}

/// One WARN per placement and reason: the workloads of the suite not measured (the report's
/// `not_run`), so that a verdict resting on part of the suite says which part (a node without
/// cuBLASLt had its tensor cores never exercised, and its memory copy alone would PASS). A
/// device's own go under its absolute check; a set's (an all-reduce without NCCL) under the
/// node's links, naming the set.
fn not_measured_findings<'a>(missing: impl Iterator<Item = &'a NotRun>) -> Vec<Finding> {
    crate::plan::grouped(missing)
        .into_iter()
        .map(|(placement, why, ws)| {
            let on = match placement.is_single() {
                true => String::new(),
                false => format!(" on GPUs {placement}"),
            };
            Finding::warn(format!(
                "not measured{on}, so not covered by this verdict: {} ({why})",
                ws.join(", ")
            ))
        })
        .collect()
}

/// A GPU without the free memory the suite needs: another process holds it (a stale job, a
/// server left running). Its results were recorded as not run, never prepared.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHeld {
    /// What the device had free when the plan was made.
    pub have: Bytes,
    /// The most any of its results needed.
    pub need: Bytes,
    /// The results that did not run for it: id and the devices the result was placed on (a
    /// peer copy's id is the same for every pair).
    pub results: BTreeSet<(String, Vec<usize>)>,
}

impl MemoryHeld {
    /// The health finding: one FAIL, with the figures and what to look for.
    fn finding(&self) -> Finding {
        Finding::fail(format!(
            "memory: {} free where the suite needs {}: another process holds this GPU's memory \
             (`nvidia-smi --query-compute-apps=pid,used_memory --format=csv` lists it); {} \
             result(s) did not run",
            self.have,
            self.need,
            self.results.len()
        ))
    }
}

impl JudgeInputs {
    /// The inputs a `gpuvet stress` run gives a verdict: its per-second telemetry, the
    /// checksum mismatches it found on each device, devices whose checksum differs from the
    /// other devices', and devices whose first output failed verification or that errored.
    pub fn from_stress(s: &crate::stress::StressReport) -> JudgeInputs {
        let mut out = JudgeInputs::default();
        let workload = s.workload.name();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for d in s.devices.iter().filter(|d| d.error.is_none()) {
            *counts.entry(d.checksum.as_str()).or_default() += 1;
        }
        let ran = counts.values().sum::<usize>();
        let majority = counts
            .iter()
            .find(|(_, &n)| 2 * n > ran)
            .map(|(c, _)| c.to_string());
        for d in &s.devices {
            out.telemetry.insert(
                d.device,
                d.timeline
                    .iter()
                    .filter_map(|p| p.telemetry.clone())
                    .collect(),
            );
            let fs = out.correctness.entry(d.device).or_default();
            if let Some(e) = &d.error {
                let what = if d.iterations > 0 {
                    "stopped"
                } else {
                    "did not run"
                };
                fs.push(Finding::fail(format!("stress run {what}: {e}")));
                continue;
            }
            if !d.verified {
                fs.push(Finding::fail(format!(
                    "stress {workload}: the first output did not match the f64 reference"
                )));
            }
            if ran > 1 && majority.as_deref() != Some(d.checksum.as_str()) {
                out.mismatches.push(verdict::ChecksumMismatch {
                    device: d.device,
                    workload: format!("{workload} (across GPUs)"),
                    iteration: 0,
                    got: d.checksum.clone(),
                    expected: majority.clone(),
                });
            }
            for m in &d.mismatches {
                out.mismatches.push(verdict::ChecksumMismatch {
                    device: d.device,
                    workload: workload.clone(),
                    iteration: m.iteration,
                    got: m.got.clone(),
                    expected: Some(m.expected.clone()),
                });
            }
        }
        out
    }
}

/// The settings a verdict was reached with, recorded in it.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictSettings {
    pub expect: Option<String>,
    pub quick: bool,
    pub duration_s: Option<f64>,
    pub tolerance_pct: f64,
    pub straggler_pct: f64,
}

/// The verdict on one GPU.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuVerdict {
    pub index: usize,
    pub name: String,
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    pub serial: Option<String>,
    /// The SKU judged against (`--expect`, or the detected one).
    pub sku: Option<String>,
    /// What the database recognised from the device itself.
    pub detected_sku: Option<String>,
    /// True when peaks were computed (GPU not in the database), not read from a datasheet.
    #[serde(default)]
    pub peaks_computed: bool,
    pub verdict: Verdict,
    /// Every WARN and FAIL finding, as "check: message".
    pub reasons: Vec<String>,
    pub checks: Vec<Check>,
    /// Best figure per test (`matmul.bf16`, `memory.copy`, ...).
    pub metrics: BTreeMap<String, MetricValue>,
}

/// The verdict on one node: what a scheduler acts on.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeVerdict {
    pub schema_version: u32,
    /// Always [`VERDICT_KIND`].
    pub kind: String,
    pub hostname: String,
    pub started_at: String,
    pub tool_version: String,
    pub backend: crate::report::RunBackend,
    pub verdict: Verdict,
    /// The exit status `gpuvet validate` returns for this verdict.
    pub exit_code: i32,
    /// Every WARN and FAIL reason, prefixed with the GPU it is about.
    pub reasons: Vec<String>,
    pub settings: VerdictSettings,
    pub gpus: Vec<GpuVerdict>,
    /// `8x h100-sxm`: the node type its node-level figures are grouped by in the fleet view.
    pub node_type: Option<String>,
    /// Checks of the node as a whole (its links).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_checks: Vec<Check>,
    /// Node-level figures: the all-reduce busbw, the slowest and median pair.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_metrics: BTreeMap<String, MetricValue>,
    /// Every pair's peer copy with its path and verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<links::PairMetric>,
}

impl NodeVerdict {
    /// Reads a verdict from JSON, with a clear message for anything else.
    pub fn from_json(text: &str, path: &str) -> crate::Result<NodeVerdict> {
        let corrupt = |reason: String| crate::Error::CorruptFile {
            path: path.into(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some(VERDICT_KIND) {
            return Err(corrupt(
                if value.get("results").is_some() {
                    "a gpuvet report, not a verdict (write verdicts with `gpuvet validate --verdict`)"
                } else {
                    "not a gpuvet verdict (no `kind: gpuvet-verdict`)"
                }
                .into(),
            ));
        }
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == VERDICT_SCHEMA_VERSION as u64 => {}
            other => {
                return Err(corrupt(format!(
                    "verdict schema_version {}; this gpuvet reads version {VERDICT_SCHEMA_VERSION}",
                    other.map_or("missing".to_string(), |v| v.to_string())
                )))
            }
        }
        let v: NodeVerdict = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        v.check_figures().map_err(corrupt)?;
        v.check_verdicts().map_err(corrupt)?;
        Ok(v)
    }

    /// The verdicts of a file must be ones a run can write: a check no better than its worst
    /// finding, a GPU no better than its worst check, the node no better than its worst GPU
    /// or node check, and a node without GPUs a FAIL (nothing was tested). A hand-edited file
    /// that says otherwise would put a failed GPU in a fleet view as healthy.
    fn check_verdicts(&self) -> std::result::Result<(), String> {
        let below = |what: String, have: Verdict, part: String, worst: Verdict| {
            Err(format!(
                "{what} is {} but {part} is {}",
                have.name(),
                worst.name()
            ))
        };
        let check = |c: &Check, whose: &str| match c.findings.iter().map(|f| f.verdict).max() {
            Some(w) if w > c.verdict => below(
                format!("{whose} check `{}`", c.check.name()),
                c.verdict,
                "one of its findings".into(),
                w,
            ),
            _ => Ok(()),
        };
        for g in &self.gpus {
            let whose = format!("GPU {}", g.index);
            for c in &g.checks {
                check(c, &whose)?;
                if c.verdict > g.verdict {
                    let part = format!("its check `{}`", c.check.name());
                    return below(whose, g.verdict, part, c.verdict);
                }
            }
            if g.verdict > self.verdict {
                return below("the node".into(), self.verdict, whose, g.verdict);
            }
        }
        for c in &self.node_checks {
            check(c, "the node's")?;
            if c.verdict > self.verdict {
                let part = format!("its check `{}`", c.check.name());
                return below("the node".into(), self.verdict, part, c.verdict);
            }
        }
        if self.gpus.is_empty() && self.verdict != Verdict::Fail {
            return Err(format!(
                "the node is {} with no GPU tested (a run that tests none writes FAIL)",
                self.verdict.name()
            ));
        }
        Ok(())
    }

    /// The figures a fleet view computes with must be ones a run can write: a rate, peak or
    /// expectation that is zero, negative or not finite marks a damaged or hand-edited file
    /// (read as it was, a negative figure became the fleet's minimum and a "198% below"
    /// outlier).
    fn check_figures(&self) -> std::result::Result<(), String> {
        let gpu = self.gpus.iter().flat_map(|g| {
            g.metrics
                .iter()
                .map(move |(name, m)| (format!("GPU {} {name}", g.index), m))
        });
        let node = self
            .node_metrics
            .iter()
            .map(|(name, m)| (format!("node {name}"), m));
        for (what, m) in gpu.chain(node) {
            // The units a run writes; "Gparsecs" in a fleet table is a file's error.
            if !["FLOP/s", "OP/s", "B/s"].contains(&m.unit.as_str()) {
                return Err(format!(
                    "{what}: a unit of `{}` (FLOP/s, OP/s or B/s)",
                    m.unit
                ));
            }
            // 1e18 /s (an exa-op or exabyte a second) is far past any device or link: a
            // figure beyond it printed as a 300-digit median.
            let rates = [Some(m.value), m.peak, m.expected].into_iter().flatten();
            if let Some(x) = rates
                .into_iter()
                .find(|x| !(x.is_finite() && *x > 0.0 && *x <= 1e18))
            {
                return Err(format!("{what}: a figure of {x:e} {}", m.unit));
            }
            if let Some(r) = m.ratio.filter(|r| !(r.is_finite() && *r >= 0.0)) {
                return Err(format!("{what}: a ratio to the expectation of {r}"));
            }
        }
        Ok(())
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            format!("{{\"kind\":\"{VERDICT_KIND}\",\"error\":\"cannot serialise verdict: {e}\"}}")
        });
        s.push('\n');
        s
    }

    /// "GPU" where the backend's devices are GPU models, else "device".
    fn device_noun(&self) -> &'static str {
        if self.backend.names_gpu_models() {
            "GPU"
        } else {
            "device"
        }
    }

    /// One line per check and reason that judged nothing, naming the GPUs it concerns
    /// (`skip: absolute on GPU 0, 1: no expectation …`), so that a PASS resting on fewer checks
    /// than it seems is visible under the table.
    fn not_judged(&self) -> String {
        let mut lines: Vec<(CheckKind, &str, Vec<usize>)> = Vec::new();
        for g in &self.gpus {
            for c in &g.checks {
                let Some(why) = c.skipped.as_deref() else {
                    continue;
                };
                match lines
                    .iter_mut()
                    .find(|(k, w, _)| *k == c.check && *w == why)
                {
                    Some((_, _, gpus)) => gpus.push(g.index),
                    None => lines.push((c.check, why, vec![g.index])),
                }
            }
        }
        let unit = self.device_noun();
        lines
            .iter()
            .map(|(k, why, gpus)| {
                let list: Vec<String> = gpus.iter().map(usize::to_string).collect();
                format!("skip: {} on {unit} {}: {why}\n", k.name(), list.join(", "))
            })
            .collect()
    }

    /// A terminal table: one row per GPU with each check's verdict (`skip` where a check had
    /// nothing to judge, with the reason under the table), then the reasons.
    pub fn render(&self, color: bool) -> String {
        use comfy_table::{Cell, Color};
        let paint = |v: Verdict| {
            let c = Cell::new(v.name());
            if !color {
                return c;
            }
            c.fg(match v {
                Verdict::Pass => Color::Green,
                Verdict::Warn => Color::Yellow,
                Verdict::Fail => Color::Red,
            })
        };
        let mut t = crate::term::table(color);
        let kinds = [
            CheckKind::Identity,
            CheckKind::Absolute,
            CheckKind::Peers,
            CheckKind::Health,
            CheckKind::Correctness,
        ];
        let mut header = vec!["GPU".to_string(), "SKU".into(), "verdict".into()];
        header.extend(kinds.iter().map(|k| k.name().to_string()));
        t.set_header(header);
        for g in &self.gpus {
            let mut row = vec![
                Cell::new(format!("{} {}", g.index, g.name)),
                Cell::new(match (&g.sku, &g.detected_sku) {
                    (Some(s), Some(d)) if s != d => format!("{s} (is {d})"),
                    (Some(s), _) => s.clone(),
                    (None, _) if g.peaks_computed => "unknown (computed peaks)".into(),
                    (None, _) => "unknown".into(),
                }),
                paint(g.verdict),
            ];
            for k in kinds {
                row.push(match g.checks.iter().find(|c| c.check == k) {
                    // A vacuous PASS says so: the check had nothing to judge.
                    Some(c) if c.skipped.is_some() => Cell::new("skip"),
                    Some(c) => paint(c.verdict),
                    None => Cell::new("-"),
                });
            }
            t.add_row(row);
        }
        let mut out = format!("{t}\n");
        out.push_str(&self.not_judged());
        for c in &self.node_checks {
            match &c.skipped {
                Some(why) => out.push_str(&format!("node {}: skip ({why})\n", c.check.name())),
                None => out.push_str(&format!("node {}: {}\n", c.check.name(), c.verdict)),
            }
        }
        // Under a heading of their own: indented straight below the node's lines, every GPU's
        // reasons read as if they were the links'.
        if !self.reasons.is_empty() {
            out.push_str("why (every WARN and FAIL):\n");
        }
        for r in &self.reasons {
            out.push_str(&format!("  {r}\n"));
        }
        out.push_str(&format!(
            "{}: {} ({} {}{}), exit {}\n",
            self.hostname,
            self.verdict,
            self.gpus.len(),
            self.device_noun(),
            if self.gpus.len() == 1 { "" } else { "s" },
            self.exit_code
        ));
        out
    }
}

/// What a device is judged against.
struct Target {
    sku: Option<Sku>,
    detected: Option<Sku>,
    peaks: Option<Peaks>,
    computed: bool,
}

fn target(info: &DeviceInfo, expect: Option<&str>) -> Target {
    let detected = gpudb::lookup(info);
    let sku = match expect {
        Some(id) => gpudb::by_id(id),
        None => detected.clone(),
    };
    let (peaks, computed) = match &sku {
        Some(s) => (Some(s.peaks()), false),
        None => match gpudb::peaks_for(info) {
            Some((p, c)) => (Some(p), c),
            None => (info.peaks.clone(), false),
        },
    };
    Target {
        sku,
        detected,
        peaks,
        computed,
    }
}

/// The expectation of a test: the SKU's, or for computed peaks the database default marked as
/// an estimate (so that it can warn but never fail).
fn expectation_for(t: &Target, key: &str) -> Option<Expectation> {
    match &t.sku {
        Some(s) => s.expectation(key).cloned(),
        None if t.peaks.is_some() => {
            let db = gpudb::database().ok()?;
            db.default_achievable.get(key).map(|e| Expectation {
                confidence: ExpectConfidence::Estimate,
                ..e.clone()
            })
        }
        None => None,
    }
}

/// The node verdict of a finished validation run.
pub fn judge(report: &Report, opts: impl Into<JudgeOptions>) -> NodeVerdict {
    judge_with(report, opts, &JudgeInputs::default())
}

/// What every GPU of a report is judged against, computed once for all of them.
struct Judging<'a> {
    report: &'a Report,
    opts: JudgeOptions,
    inputs: &'a JudgeInputs,
    mismatches: Vec<verdict::ChecksumMismatch>,
    per_device: Vec<Vec<&'a ResultRecord>>,
    /// Every result a device took part in: its own, and the pairs and groups (peer copies,
    /// collectives) it was placed in. Correctness is judged over these: a peer copy or an
    /// all-reduce that hands back wrong data fails every GPU it ran on (which one is to blame
    /// cannot be told from the output), where judging only single-device results let it
    /// pass as a WARN node.
    involving: Vec<Vec<&'a ResultRecord>>,
    targets: Vec<Target>,
    metrics: Vec<BTreeMap<String, MetricValue>>,
}

/// [`judge`], with telemetry timelines and stress checksums.
pub fn judge_with(
    report: &Report,
    opts: impl Into<JudgeOptions>,
    inputs: &JudgeInputs,
) -> NodeVerdict {
    let opts = opts.into();
    let mut mismatches = verdict::checksum_mismatches(&inputs.checksums);
    mismatches.extend(inputs.mismatches.iter().cloned());
    let per_device: Vec<Vec<&ResultRecord>> = (0..report.devices.len())
        .map(|i| report.results.iter().filter(|r| r.device == i).collect())
        .collect();
    let involving: Vec<Vec<&ResultRecord>> = (0..report.devices.len())
        .map(|i| {
            let on = |r: &&ResultRecord| r.device.devices().contains(&i);
            report.results.iter().filter(on).collect()
        })
        .collect();
    let targets: Vec<Target> = report
        .devices
        .iter()
        .map(|d| target(d, opts.expect.as_deref()))
        .collect();
    let metrics = targets
        .iter()
        .zip(&per_device)
        .map(|(t, rs)| verdict::metrics(rs, t.peaks.as_ref(), &|k| expectation_for(t, k)))
        .collect();
    let j = Judging {
        report,
        opts,
        inputs,
        mismatches,
        per_device,
        involving,
        targets,
        metrics,
    };
    let gpus = (0..report.devices.len()).map(|i| j.gpu(i)).collect();
    let skus: Vec<Option<Sku>> = j.targets.iter().map(|t| t.sku.clone()).collect();
    let links = links::judge(
        report,
        &skus,
        j.opts.tolerance_pct / 100.0,
        j.opts.straggler_pct / 100.0,
    );
    j.node(gpus, links)
}

impl Judging<'_> {
    /// Peers are the GPUs judged against the same SKU (or with the same name when unknown).
    fn group_of(&self, i: usize) -> String {
        self.targets[i]
            .sku
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_else(|| self.report.devices[i].name.clone())
    }

    fn identity(&self, i: usize) -> Check {
        let (info, t) = (&self.report.devices[i], &self.targets[i]);
        // A device of unknown backend is checked as a GPU.
        let is_gpu = info.backend.is_none() || info.is_gpu();
        if is_gpu {
            return identity::check(
                info,
                t.sku.as_ref(),
                t.detected.as_ref(),
                self.opts.expect.is_some(),
            );
        }
        Check::skipped(
            CheckKind::Identity,
            format!(
                "{} backend: not an NVIDIA GPU, identity not checked",
                info.backend.map_or("unknown", |b| b.name())
            ),
        )
    }

    fn absolute(&self, i: usize) -> Check {
        let t = &self.targets[i];
        let tolerance = self.opts.tolerance_pct / 100.0;
        let mut c = verdict::absolute(&self.metrics[i], &|k| expectation_for(t, k), tolerance);
        if t.computed {
            c.findings.push(Finding::pass(
                "peaks computed from SMs × per-SM rate × clock (GPU not in the database)",
            ));
        }
        let missing = not_measured_findings(self.report.not_run.iter().filter(|n| n.device == i));
        if missing.is_empty() {
            return c;
        }
        Check::new(
            CheckKind::Absolute,
            c.findings.into_iter().chain(missing).collect(),
        )
    }

    fn peers(&self, i: usize) -> Check {
        if self.metrics[i].is_empty() && self.inputs.memory_held.contains_key(&i) {
            return Check::skipped(
                CheckKind::Peers,
                "no figures: this GPU's memory is held by another process (its health check)",
            );
        }
        let group: Vec<usize> = (0..self.report.devices.len())
            .filter(|&j| self.group_of(j) == self.group_of(i))
            .collect();
        let peer_metrics: Vec<&BTreeMap<String, MetricValue>> =
            group.iter().map(|&j| &self.metrics[j]).collect();
        let me = group.iter().position(|&j| j == i).unwrap_or(0);
        verdict::peers(&peer_metrics, me, self.opts.straggler_pct)
    }

    fn health(&self, i: usize) -> Check {
        let extra = self
            .inputs
            .telemetry
            .get(&i)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let c = verdict::health(
            &self.report.devices[i],
            self.targets[i].sku.as_ref(),
            &self.per_device[i],
            extra,
            self.inputs.state_after.get(&i),
        );
        match self.inputs.memory_held.get(&i) {
            Some(held) => Check::new(
                CheckKind::Health,
                c.findings.into_iter().chain([held.finding()]).collect(),
            ),
            None => c,
        }
    }

    fn correctness(&self, i: usize) -> Check {
        // Results that did not run because a GPU's memory is held are that GPU's one health
        // finding, not each a correctness failure: not of the held GPU, and not of a healthy
        // GPU whose peer copy or collective included it (a note says so).
        let held_by = |r: &ResultRecord| {
            if r.status != Status::Error {
                return None;
            }
            let key = (r.id.clone(), r.device.devices().to_vec());
            self.inputs
                .memory_held
                .iter()
                .find_map(|(g, h)| h.results.contains(&key).then_some(*g))
        };
        let mut judged = Vec::new();
        let mut others: BTreeMap<usize, usize> = BTreeMap::new();
        for r in &self.involving[i] {
            match held_by(r) {
                Some(g) if g != i => *others.entry(g).or_default() += 1,
                Some(_) => {}
                None => judged.push(*r),
            }
        }
        let held_here = self.inputs.memory_held.contains_key(&i);
        let mut c = if held_here && judged.is_empty() {
            Check::skipped(
                CheckKind::Correctness,
                "nothing ran: this GPU's memory is held by another process (its health check)",
            )
        } else {
            verdict::correctness(i, &judged, &self.mismatches)
        };
        for (g, n) in others {
            // Named as its verdict names it: by its index on the node.
            let g = self.report.devices.get(g).map_or(g, |d| d.index);
            c.findings.push(Finding::pass(format!(
                "{n} result(s) shared with GPU {g} did not run: GPU {g}'s memory is held \
                 (its health check)"
            )));
        }
        match self.inputs.correctness.get(&i) {
            Some(extra) => Check::new(
                CheckKind::Correctness,
                c.findings
                    .into_iter()
                    .chain(extra.iter().cloned())
                    .collect(),
            ),
            None => c,
        }
    }

    fn gpu(&self, i: usize) -> GpuVerdict {
        let (info, t) = (&self.report.devices[i], &self.targets[i]);
        let checks = vec![
            self.identity(i),
            self.absolute(i),
            self.peers(i),
            self.health(i),
            self.correctness(i),
        ];
        let verdict = Verdict::worst(checks.iter().map(|c| c.verdict), Verdict::Pass);
        let reasons = checks.iter().flat_map(|c| c.reasons()).collect();
        GpuVerdict {
            index: info.index,
            name: info.name.clone(),
            uuid: info.uuid.clone(),
            pci_bus_id: info.pci_bus_id.clone(),
            serial: info.details.state.serial.clone(),
            sku: t.sku.as_ref().map(|s| s.id.clone()),
            detected_sku: t.detected.as_ref().map(|s| s.id.clone()),
            peaks_computed: t.computed,
            verdict,
            reasons,
            checks,
            metrics: self.metrics[i].clone(),
        }
    }

    /// The node's verdict from its GPUs' and its links': the worst of them, each reason
    /// naming its GPU (or `node` for the links, whose reasons name their pairs).
    fn node(&self, gpus: Vec<GpuVerdict>, links: links::LinkJudgement) -> NodeVerdict {
        let (report, opts) = (self.report, &self.opts);
        let mut reasons: Vec<String> = gpus.iter().flat_map(gpu_reasons).collect();
        let node_checks: Vec<Check> = links.check.into_iter().collect();
        reasons.extend(
            node_checks
                .iter()
                .flat_map(|c| c.reasons())
                .map(|r| format!("node: {r}")),
        );
        let mut verdict = Verdict::worst(
            gpus.iter()
                .map(|g| g.verdict)
                .chain(node_checks.iter().map(|c| c.verdict)),
            Verdict::Fail,
        );
        let mut exit_code = verdict.exit_code(opts.fail_on_warn);
        if gpus.is_empty() {
            reasons.push("no device was tested".into());
            verdict = Verdict::Fail;
            exit_code = 2;
        } else if !report.complete {
            reasons.push("the run did not complete: the verdict covers what finished".into());
            verdict = verdict.max(Verdict::Warn);
            exit_code = exit_code.max(verdict.exit_code(opts.fail_on_warn));
        }
        NodeVerdict {
            schema_version: VERDICT_SCHEMA_VERSION,
            kind: VERDICT_KIND.into(),
            hostname: report.host.hostname.clone(),
            started_at: report.started_at.clone(),
            tool_version: report.tool.version.clone(),
            backend: report.config.backend.clone(),
            verdict,
            exit_code,
            reasons,
            settings: VerdictSettings {
                expect: opts.expect.clone(),
                quick: opts.is_quick(),
                duration_s: opts.duration.map(|d| d.as_secs_f64()),
                tolerance_pct: opts.tolerance_pct,
                straggler_pct: opts.straggler_pct,
            },
            gpus,
            node_type: links.node_type,
            node_checks,
            node_metrics: links.metrics,
            pairs: links.pairs,
        }
    }
}

/// A GPU's reasons, each prefixed with which GPU it is.
fn gpu_reasons(g: &GpuVerdict) -> Vec<String> {
    let who = g.who();
    g.reasons.iter().map(|r| format!("{who}: {r}")).collect()
}

impl GpuVerdict {
    /// `GPU 3 (GPU-uuid)`: how a node's reasons name the GPU.
    fn who(&self) -> String {
        format!(
            "GPU {}{}",
            self.index,
            self.uuid
                .as_deref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default()
        )
    }
}

impl NodeVerdict {
    /// The node's reasons of exactly `level`, named as in `reasons` (`GPU i (uuid): check:
    /// message`, `node: links: …`): what a FAIL rests on, without the WARNs beside it.
    pub fn reasons_at(&self, level: Verdict) -> Vec<String> {
        let gpus = self.gpus.iter().flat_map(|g| {
            let who = g.who();
            g.checks
                .iter()
                .flat_map(move |c| c.reasons_at(level).collect::<Vec<_>>())
                .map(move |r| format!("{who}: {r}"))
        });
        let node = self
            .node_checks
            .iter()
            .flat_map(|c| c.reasons_at(level))
            .map(|r| format!("node: {r}"));
        gpus.chain(node).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendKind;

    fn gpu(cc: &str) -> DeviceInfo {
        DeviceInfo {
            backend: Some(BackendKind::Cuda),
            name: "NVIDIA Test".into(),
            compute_capability: Some(cc.into()),
            memory_bytes: Some(80 << 30),
            last_level_cache_bytes: Some(50 << 20),
            ..DeviceInfo::default()
        }
    }

    #[test]
    fn suite_follows_compute_capability() {
        let names =
            |cc: &str| -> Vec<String> { suite(&gpu(cc), true).iter().map(|w| w.name()).collect() };
        let h = names("9.0");
        assert!(h.iter().any(|n| n.starts_with("matmul.fp8_e4m3.8192")));
        assert!(h
            .iter()
            .any(|n| n.starts_with("attention.bf16") && n.contains(".q1.")));
        let t4 = names("7.5");
        assert!(!t4.iter().any(|n| n.contains("bf16") || n.contains("fp8")));
        assert!(t4.iter().any(|n| n.starts_with("attention.f16")));
        for w in suite(&gpu("9.0"), false) {
            w.validate().unwrap();
        }
        assert!(suite(&gpu("9.0"), false).len() > suite(&gpu("9.0"), true).len());
        let cpu = DeviceInfo {
            backend: Some(BackendKind::Cpu),
            ..DeviceInfo::default()
        };
        for w in suite(&cpu, true) {
            w.validate().unwrap();
            assert!(w.flops() < 1e10, "{} is too big for a CPU", w.name());
        }
    }

    #[test]
    fn a_stress_that_stopped_is_told_from_one_that_never_ran() {
        use crate::stress::{DeviceStress, StressReport};
        let device = |d: usize, iterations: u64, error: &str| DeviceStress {
            iterations,
            error: Some(error.into()),
            ..DeviceStress::new(d, &gpu("9.0"))
        };
        let s = StressReport {
            workload: crate::backend::quick::matmul(16, DType::Bf16, BLayout::Nk),
            duration_s: 1.0,
            interrupted: false,
            devices: vec![
                device(
                    0,
                    1200,
                    "the device was lost after 1200 iterations: cuda error",
                ),
                device(
                    1,
                    0,
                    "skipped: the device was lost after matmul.x/mock: cuda error",
                ),
            ],
            consistent_across_devices: true,
            verdict: crate::stress::StressVerdict::Fail,
            reasons: Vec::new(),
        };
        let c = JudgeInputs::from_stress(&s).correctness;
        let only = |d: usize| -> String {
            assert_eq!(c[&d].len(), 1, "{:?}", c[&d]);
            c[&d][0].message.clone()
        };
        assert_eq!(
            only(0),
            "stress run stopped: the device was lost after 1200 iterations: cuda error"
        );
        assert_eq!(
            only(1),
            "stress run did not run: skipped: the device was lost after matmul.x/mock: cuda error"
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            crate::units::parse_duration("10m").unwrap(),
            Duration::from_secs(600)
        );
        assert!(crate::units::parse_duration("0s").is_err());
    }
}
