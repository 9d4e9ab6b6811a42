//! Token rates from kernel times: time to first token and decode tokens/s.
//!
//! The arithmetic is plain on purpose, so that anyone can redo it by hand: a forward pass is the
//! sum, over its kernels, of (measured median time × launches per pass). Prefill of a batch is
//! one pass over `batch × prompt` tokens, so its time is the time to first token; one decode step
//! is one pass over `batch` tokens, and `batch / step time` is the decode rate of the group.
//! Every kernel also gets its roofline bound, max(FLOPs / peak FLOP/s, bytes / peak bandwidth),
//! the least time the device's datasheet allows, so that a slow kernel stands out.

use super::{kernels_for, KernelUse, Phase, SuiteArgs};
use crate::backend::Peaks;
use crate::report::Report;
use crate::units::seconds;
use crate::workload::Workload;
use serde::{Deserialize, Serialize};

/// What every estimate leaves out, said wherever an estimate is shown.
pub const LEAVES_OUT: [&str; 7] = [
    "communication between the GPUs of the tensor-parallel group (all-reduce after O and down, \
     the embedding's all-reduce, the all-gather of the LM head's logits)",
    "sampling and the logits softmax",
    "framework overhead: scheduling, kernel launch gaps, Python",
    "KV cache writes and paging",
    "normalisation, rotary embeddings, activations and residual adds (small elementwise kernels)",
    "overlap between kernels (everything is assumed to run back to back)",
    "for a mixture of experts: the router's top-k and the permutation of tokens to and from \
     their experts; tokens are assumed spread evenly over the experts",
];

/// One kernel of the estimate: its measured time beside its roofline bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelRow {
    pub batch: u64,
    pub phase: Phase,
    pub op: String,
    /// The workload id (`matmul.bf16.16384x1280x8192.nk`), as in the results.
    pub workload: String,
    /// Launches per forward pass.
    pub per_pass: u64,
    /// The fastest verified implementation on the device, and its median time.
    pub implementation: Option<String>,
    pub median_s: Option<f64>,
    /// max(FLOPs / peak, bytes / bandwidth), where the device's peaks are known.
    pub bound_s: Option<f64>,
    /// `compute` or `memory`: which side of the roofline sets the bound.
    pub bound_by: Option<String>,
    /// bound / median: 1.0 is at the roofline.
    pub roofline_fraction: Option<f64>,
    /// This kernel's share of its pass (prefill or one decode step): per_pass × median / pass.
    pub pass_share: Option<f64>,
}

/// The estimate at one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEstimate {
    pub batch: u64,
    /// Prefill of the whole batch: every prompt token of every sequence in one pass.
    pub ttft_s: Option<f64>,
    /// batch × prompt / TTFT.
    pub prefill_tokens_per_s: Option<f64>,
    /// One decode step (one token for every sequence) at the mean KV length.
    pub decode_step_s: Option<f64>,
    /// batch / step: tokens per second of the whole tensor-parallel group.
    pub decode_tokens_per_s: Option<f64>,
    /// decode_tokens_per_s / tp.
    pub decode_tokens_per_s_per_gpu: Option<f64>,
    /// 1 / step: what one user sees.
    pub decode_tokens_per_s_per_sequence: Option<f64>,
    /// TTFT + (gen − 1) × step: one request from prompt to last token (the prefill gives the
    /// first).
    pub request_s: Option<f64>,
    /// The same sums over roofline bounds: the best the datasheet allows.
    pub ttft_bound_s: Option<f64>,
    pub decode_step_bound_s: Option<f64>,
    /// With a price (`--price-per-hour`): what the tensor-parallel group (tp × the price per
    /// GPU-hour) costs per million prompt tokens in prefill (TTFT per batch × prompt tokens)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_million_input_tokens: Option<f64>,
    /// ... and per million generated tokens in decode (step per batch tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_million_output_tokens: Option<f64>,
}

/// Time-to-first-token and decode rates of a model on the measured device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub model: String,
    pub tp: u64,
    pub prompt: u64,
    pub gen: u64,
    pub dtype: String,
    pub attention_dtype: String,
    /// KV length the decode attention was measured at (prompt + gen/2, the mean over the
    /// generation).
    pub decode_kv_len: u64,
    /// Index into the report's devices whose times are used.
    pub device: Option<usize>,
    pub device_name: Option<String>,
    pub batches: Vec<BatchEstimate>,
    pub kernels: Vec<KernelRow>,
    /// How the figures were reached.
    pub method: Vec<String>,
    /// What the figures do not include.
    pub leaves_out: Vec<String>,
    /// Kernels with no verified time (their estimates are absent), or why there is no estimate.
    pub missing: Vec<String>,
    /// The price per GPU-hour the token costs are at (`config.price` of the measured device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_gpu_hour: Option<f64>,
}

/// The estimate from the first device that has verified results (usually device 0).
pub fn estimate(args: &SuiteArgs, report: &Report) -> Estimate {
    let device = report
        .results
        .iter()
        .filter(|r| r.is_valid())
        .map(|r| r.device.lead())
        .min()
        .unwrap_or(0);
    estimate_for_device(args, report, device)
}

/// The estimate from the results of one device (an index into `report.devices`).
pub fn estimate_for_device(args: &SuiteArgs, report: &Report, device: usize) -> Estimate {
    let mut est = blank_estimate(args, report, device);
    let model = match args.model_config() {
        Ok(m) => m,
        Err(e) => {
            est.missing.push(e.to_string());
            return est;
        }
    };
    est.model = model.name.clone();
    if model.is_moe() {
        est.method.push(
            "mixture of experts: balanced routing, batch tokens × top-k spread evenly over the experts".into(),
        );
    }
    let uses = match kernels_for(&model, args) {
        Ok(k) => k,
        Err(e) => {
            est.missing.push(e.to_string());
            return est;
        }
    };
    let peaks = report.devices.get(device).and_then(|d| d.peaks.as_ref());
    est.kernels = uses
        .iter()
        .map(|u| kernel_row(u, report, device, peaks))
        .collect();
    // A kernel the device could not run at all (a missing library) says why, once per reason.
    let not_run: Vec<&crate::plan::NotRun> = report
        .not_run
        .iter()
        .filter(|n| n.device == device)
        .filter(|n| est.kernels.iter().any(|k| k.workload == n.workload))
        .collect();
    for r in &est.kernels {
        let unexplained = !not_run.iter().any(|n| n.workload == r.workload);
        if r.median_s.is_none() && unexplained && !est.missing.contains(&r.workload) {
            est.missing.push(r.workload.clone());
        }
    }
    for (_, why, ws) in crate::plan::grouped(not_run) {
        est.missing
            .push(format!("{} (not run: {why})", ws.join(", ")));
    }
    let mut batches: Vec<u64> = uses.iter().map(|u| u.batch).collect();
    batches.dedup();
    for b in batches {
        let mut row = batch_estimate(&est.kernels, b, args);
        if let Some(usd) = est.usd_per_gpu_hour {
            price_tokens(&mut row, usd, args);
        }
        est.batches.push(row);
    }
    fill_pass_shares(&mut est);
    est
}

/// The estimate's identity and method, with no figures yet.
fn blank_estimate(args: &SuiteArgs, report: &Report, device: usize) -> Estimate {
    Estimate {
        model: args
            .model
            .clone()
            .or_else(|| args.model_file.as_ref().map(|p| p.display().to_string()))
            .unwrap_or_default(),
        tp: args.tp,
        prompt: args.prompt,
        gen: args.gen,
        dtype: args.dtype.name().into(),
        attention_dtype: args.attention_dtype().name().into(),
        decode_kv_len: args.decode_kv_len(),
        device: report.devices.get(device).map(|_| device),
        device_name: report.devices.get(device).map(|d| d.name.clone()),
        batches: Vec::new(),
        kernels: Vec::new(),
        method: vec![
            "per pass: the sum over kernels of median time × launches per pass (layers × per layer)".into(),
            "each kernel's time: the fastest verified implementation on the device".into(),
            format!(
                "prefill: one pass over batch × {} prompt tokens, logits for the last token only = time to first token",
                args.prompt
            ),
            format!(
                "decode: one pass over batch tokens, attention at KV length {} (prompt + gen/2, the mean over {} generated tokens)",
                args.decode_kv_len(),
                args.gen
            ),
            format!(
                "tensor parallelism {}: every GPU runs these per-GPU shapes at once; per-GPU rate = group rate / {}",
                args.tp, args.tp
            ),
        ],
        leaves_out: LEAVES_OUT.iter().map(|s| s.to_string()).collect(),
        missing: Vec::new(),
        usd_per_gpu_hour: report
            .config
            .price
            .as_ref()
            .and_then(|p| p.of_device(device)),
    }
}

/// Dollars per million tokens at `usd` per GPU-hour: the group of `tp` GPUs for the time of
/// the prefill (over its batch × prompt tokens) and of one decode step (over its batch tokens).
fn price_tokens(row: &mut BatchEstimate, usd: f64, args: &SuiteArgs) {
    use crate::price::usd_per_million_tokens;
    let b = row.batch as f64;
    row.usd_per_million_input_tokens = row
        .ttft_s
        .and_then(|t| usd_per_million_tokens(usd, args.tp, t, b * args.prompt as f64));
    row.usd_per_million_output_tokens = row
        .decode_step_s
        .and_then(|t| usd_per_million_tokens(usd, args.tp, t, b));
}

/// Sums the kernel rows of batch size `b` into its token rates (absent where a kernel is).
fn batch_estimate(kernels: &[KernelRow], b: u64, args: &SuiteArgs) -> BatchEstimate {
    let pass = |phase: Phase, f: &dyn Fn(&KernelRow) -> Option<f64>| -> Option<f64> {
        kernels
            .iter()
            .filter(|r| r.batch == b && r.phase == phase)
            .map(|r| f(r).map(|t| t * r.per_pass as f64))
            .sum()
    };
    let ttft = pass(Phase::Prefill, &|r| r.median_s);
    let step = pass(Phase::Decode, &|r| r.median_s);
    let rate = step.filter(|s| *s > 0.0).map(|s| b as f64 / s);
    BatchEstimate {
        batch: b,
        ttft_s: ttft,
        prefill_tokens_per_s: ttft
            .filter(|t| *t > 0.0)
            .map(|t| (b * args.prompt) as f64 / t),
        decode_step_s: step,
        decode_tokens_per_s: rate,
        decode_tokens_per_s_per_gpu: rate.map(|r| r / args.tp as f64),
        decode_tokens_per_s_per_sequence: step.filter(|s| *s > 0.0).map(|s| 1.0 / s),
        // The prefill gives the first token; the other gen − 1 are decode steps (whose mean
        // KV length, prompt + gen/2, is the one the decode attention was measured at).
        request_s: ttft
            .zip(step)
            .map(|(t, s)| t + args.gen.saturating_sub(1) as f64 * s),
        ttft_bound_s: pass(Phase::Prefill, &|r| r.bound_s),
        decode_step_bound_s: pass(Phase::Decode, &|r| r.bound_s),
        usd_per_million_input_tokens: None,
        usd_per_million_output_tokens: None,
    }
}

/// Each kernel's share of its pass (prefill, or one decode step of its batch).
fn fill_pass_shares(est: &mut Estimate) {
    for i in 0..est.kernels.len() {
        let (b, phase) = (est.kernels[i].batch, est.kernels[i].phase);
        let total = est
            .batches
            .iter()
            .find(|x| x.batch == b)
            .and_then(|x| match phase {
                Phase::Prefill => x.ttft_s,
                Phase::Decode => x.decode_step_s,
            });
        let r = &mut est.kernels[i];
        r.pass_share = total
            .filter(|t| *t > 0.0)
            .zip(r.median_s)
            .map(|(t, m)| m * r.per_pass as f64 / t);
    }
}

fn kernel_row(u: &KernelUse, report: &Report, device: usize, peaks: Option<&Peaks>) -> KernelRow {
    let name = u.workload.name();
    let best = report
        .results
        .iter()
        .filter(|r| r.device == device && r.is_valid() && r.workload.name() == name)
        .filter_map(|r| r.stats.as_ref().map(|s| (s.median_s, r)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let (bound_s, bound_by) = match peaks.and_then(|p| roofline_bound(&u.workload, p)) {
        Some((t, by)) => (Some(t), Some(by.to_string())),
        None => (None, None),
    };
    let median_s = best.map(|b| b.0);
    KernelRow {
        batch: u.batch,
        phase: u.phase,
        op: u.op.into(),
        workload: name,
        per_pass: u.per_pass,
        implementation: best.map(|b| b.1.implementation.clone()),
        median_s,
        bound_s,
        bound_by,
        roofline_fraction: bound_s
            .zip(median_s)
            .filter(|(_, m)| *m > 0.0)
            .map(|(b, m)| b / m),
        pass_share: None,
    }
}

/// The least time the datasheet allows for `w`: max(FLOPs / peak of its dtype, bytes / memory
/// bandwidth), and which side sets it. `None` when neither peak is known.
pub fn roofline_bound(w: &Workload, peaks: &Peaks) -> Option<(f64, &'static str)> {
    let compute = peaks
        .flops
        .get(&w.dtype())
        .filter(|p| **p > 0.0 && w.flops() > 0.0)
        .map(|p| w.flops() / p);
    let memory = peaks
        .memory_bandwidth
        .filter(|b| *b > 0.0)
        .map(|b| w.bytes() as f64 / b);
    match (compute, memory) {
        (Some(c), Some(m)) if c >= m => Some((c, "compute")),
        (_, Some(m)) => Some((m, "memory")),
        (Some(c), None) => Some((c, "compute")),
        (None, None) => None,
    }
}

fn opt_time(t: Option<f64>) -> String {
    t.map(seconds).unwrap_or_else(|| "—".into())
}

fn opt_rate(r: Option<f64>) -> String {
    match r {
        Some(v) if v >= 1e4 => format!("{:.0}", v),
        Some(v) => format!("{:.1}", v),
        None => "—".into(),
    }
}

fn opt_pct(f: Option<f64>) -> String {
    match f {
        Some(v) if v * 100.0 < 1.0 => format!("{:.2}%", v * 100.0),
        Some(v) => format!("{:.0}%", v * 100.0),
        None => "—".into(),
    }
}

impl Estimate {
    /// Terminal text: the per-batch estimate, the kernels beside their bounds, and what is left
    /// out.
    pub fn render(&self) -> String {
        use comfy_table::CellAlignment;
        let mut out = format!(
            "{} at tensor parallelism {}, {} GEMMs / {} attention, prompt {} + {} generated tokens{}\n\n",
            self.model,
            self.tp,
            self.dtype,
            self.attention_dtype,
            self.prompt,
            self.gen,
            self.device_name
                .as_ref()
                .map(|n| format!(", times from {n}"))
                .unwrap_or_default()
        );
        let mut t = crate::term::table(false);
        t.set_header(vec![
            "batch",
            "TTFT",
            "TTFT bound",
            "prefill tok/s",
            "decode step",
            "step bound",
            "decode tok/s (group)",
            "tok/s per GPU",
            "tok/s per sequence",
            "request",
        ]);
        for b in &self.batches {
            t.add_row(vec![
                b.batch.to_string(),
                opt_time(b.ttft_s),
                opt_time(b.ttft_bound_s),
                opt_rate(b.prefill_tokens_per_s),
                opt_time(b.decode_step_s),
                opt_time(b.decode_step_bound_s),
                opt_rate(b.decode_tokens_per_s),
                opt_rate(b.decode_tokens_per_s_per_gpu),
                opt_rate(b.decode_tokens_per_s_per_sequence),
                opt_time(b.request_s),
            ]);
        }
        for i in 1..10 {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        out.push_str(&format!("{t}\n\n"));
        if let Some(usd) = self.usd_per_gpu_hour {
            out.push_str(&self.render_prices(usd));
        }
        let mut k = crate::term::table(false);
        k.set_header(vec![
            "batch", "phase", "op", "×/pass", "workload", "impl", "median", "bound", "bound by",
            "of bound", "of pass",
        ]);
        for r in &self.kernels {
            k.add_row(vec![
                r.batch.to_string(),
                r.phase.name().to_string(),
                r.op.clone(),
                r.per_pass.to_string(),
                r.workload.clone(),
                r.implementation.clone().unwrap_or_else(|| "—".into()),
                opt_time(r.median_s),
                opt_time(r.bound_s),
                r.bound_by.clone().unwrap_or_else(|| "—".into()),
                opt_pct(r.roofline_fraction),
                opt_pct(r.pass_share),
            ]);
        }
        for i in [3, 6, 7, 9, 10] {
            if let Some(c) = k.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        out.push_str(&format!("{k}\n"));
        out.push_str("\nHow: ");
        out.push_str(&self.method.join("; "));
        out.push_str(".\nLeft out (real serving is slower): ");
        out.push_str(&self.leaves_out.join("; "));
        out.push_str(".\n");
        if !self.missing.is_empty() {
            out.push_str(&format!(
                "No verified time for: {} — the estimates that need them are blank.\n",
                self.missing.join(", ")
            ));
        }
        out
    }

    /// The token costs per batch size at `usd` per GPU-hour.
    fn render_prices(&self, usd: f64) -> String {
        let usd_text = |v: Option<f64>| match v {
            Some(v) if v < 0.01 => format!("{v:.4}"),
            Some(v) => format!("{v:.2}"),
            None => "—".into(),
        };
        let mut t = crate::term::table(false);
        t.set_header(vec![
            "batch",
            "USD per 1M input tokens (prefill)",
            "USD per 1M output tokens (decode)",
        ]);
        for b in &self.batches {
            t.add_row(vec![
                b.batch.to_string(),
                usd_text(b.usd_per_million_input_tokens),
                usd_text(b.usd_per_million_output_tokens),
            ]);
        }
        format!(
            "At ${usd}/GPU-hour × {} GPU{} (kernel-time floor, same omissions as above):\n{t}\n\n",
            self.tp,
            if self.tp == 1 { "" } else { "s" }
        )
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialise the estimate: {e}\"}}"));
        s.push('\n');
        s
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}
