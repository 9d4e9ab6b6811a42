//! `gpuvet suite llm`: a model's layers as workloads, and token rates estimated from their times.
//!
//! | piece | module | job |
//! |---|---|---|
//! | the model | [`models`] | presets as data files, or the user's own file |
//! | what to run | [`kernels`], [`suite_workloads`] | each layer's GEMMs and attention at per-GPU shapes under tensor parallelism |
//! | what it means | [`estimate`] | time to first token and decode tokens/s from the measured medians |
//!
//! Shapes follow the usual Megatron-style tensor parallelism: QKV and gate+up are split by
//! output columns, O and down by input rows, the LM head by vocabulary; every GPU of the group
//! runs the same shapes at the same time, so one GPU's kernels are what is measured. Weights are
//! stored as `nn.Linear` keeps them, N×K (the `nk` layout).

pub mod estimate;
pub mod models;

pub use estimate::{estimate, estimate_for_device, BatchEstimate, Estimate, KernelRow};
pub use models::ModelConfig;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::workload::{AttentionSpec, BLayout, MatmulSpec, Workload};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What `gpuvet suite llm` measures and estimates (the CLI's flags, as plain data).
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteArgs {
    /// Model preset name (llama3.1-8b, ...); ignored when `model_file` is given.
    pub model: Option<String>,
    /// A model TOML file with the fields of data/models/*.toml.
    pub model_file: Option<PathBuf>,
    /// Tensor-parallel degree.
    pub tp: u64,
    /// Concurrent sequences: one estimate per batch size.
    pub batch: Vec<u64>,
    /// Prompt tokens per sequence (prefill length).
    pub prompt: u64,
    /// Generated tokens per sequence (decode steps).
    pub gen: u64,
    /// GEMM dtype.
    pub dtype: DType,
}

impl Default for SuiteArgs {
    fn default() -> Self {
        SuiteArgs {
            model: Some("llama3.1-8b".into()),
            model_file: None,
            tp: 1,
            batch: vec![1],
            prompt: 2048,
            gen: 256,
            dtype: DType::Bf16,
        }
    }
}

impl SuiteArgs {
    /// The model asked for: the file when given, otherwise the preset.
    pub fn model_config(&self) -> Result<ModelConfig> {
        match (&self.model_file, &self.model) {
            (Some(p), _) => ModelConfig::load(p),
            (None, Some(id)) => models::preset(id),
            (None, None) => Err(Error::invalid(format!(
                "give --model (one of {}) or --model-file PATH",
                models::preset_ids().join(", ")
            ))),
        }
    }

    /// Attention dtype: the GEMM dtype where attention runs in it, otherwise bf16.
    pub fn attention_dtype(&self) -> DType {
        if self.dtype.valid_for_attention() {
            self.dtype
        } else {
            DType::Bf16
        }
    }

    /// KV length of the decode attention that is measured: the mean over the generation,
    /// prompt + gen/2. Decode attention time grows linearly with the KV length, so that one
    /// time × `gen` is the time of every step together.
    pub fn decode_kv_len(&self) -> u64 {
        self.prompt + self.gen / 2
    }
}

/// Prefill (the prompt, all tokens at once) or one decode step (one token per sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prefill,
    Decode,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
        }
    }
}

/// One kernel of a forward pass and how often a forward pass runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelUse {
    pub batch: u64,
    pub phase: Phase,
    /// `qkv`, `o`, `gate_up`, `down`, `router`, `expert_gate_up`, `expert_down`, `attention`,
    /// `lm_head`.
    pub op: &'static str,
    pub workload: Workload,
    /// Launches per transformer block (0 for the LM head, which runs once per pass).
    pub per_layer: u64,
    /// Launches per forward pass: `per_layer × layers`, or 1 for the LM head.
    pub per_pass: u64,
}

/// Per-GPU head counts under tensor parallelism: (query heads, KV heads). KV heads fewer than
/// the TP degree are replicated, one per GPU, as vLLM and TensorRT-LLM do.
pub fn heads_per_gpu(m: &ModelConfig, tp: u64) -> Result<(u64, u64)> {
    if m.q_heads % tp != 0 {
        return Err(Error::invalid(format!(
            "--tp {tp} does not divide the {} query heads of {}",
            m.q_heads, m.name
        )));
    }
    let kv = if m.kv_heads >= tp {
        if m.kv_heads % tp != 0 {
            return Err(Error::invalid(format!(
                "--tp {tp} does not divide the {} KV heads of {}",
                m.kv_heads, m.name
            )));
        }
        m.kv_heads / tp
    } else {
        if tp % m.kv_heads != 0 {
            return Err(Error::invalid(format!(
                "--tp {tp} is not a multiple of the {} KV heads of {} (they could not be replicated evenly)",
                m.kv_heads, m.name
            )));
        }
        1
    };
    Ok((m.q_heads / tp, kv))
}

/// Every kernel of prefill and of one decode step, for every batch size, in run order.
pub fn kernels(args: &SuiteArgs) -> Result<Vec<KernelUse>> {
    let m = args.model_config()?;
    kernels_for(&m, args)
}

/// [`kernels`] for a model already loaded.
pub fn kernels_for(m: &ModelConfig, args: &SuiteArgs) -> Result<Vec<KernelUse>> {
    check_args(m, args)?;
    let (q_heads, kv_heads) = heads_per_gpu(m, args.tp)?;
    let shard = Shard {
        q_heads,
        kv_heads,
        ffn: m.ffn_size / args.tp,
        vocab: m.vocab_size.div_ceil(args.tp),
    };
    let mut out = Vec::new();
    let mut batches = args.batch.clone();
    batches.sort_unstable();
    batches.dedup();
    for &b in &batches {
        for phase in [Phase::Prefill, Phase::Decode] {
            pass_kernels(m, args, &shard, b, phase, &mut out)?;
        }
    }
    for k in &out {
        k.workload.validate()?;
    }
    Ok(out)
}

/// Refuses suite options no forward pass can be built from, before any shape is computed.
fn check_args(m: &ModelConfig, args: &SuiteArgs) -> Result<()> {
    let tp = args.tp;
    if args.batch.is_empty() {
        return Err(Error::invalid("--batch needs at least one batch size"));
    }
    if args.batch.contains(&0) || args.prompt == 0 || args.gen == 0 || tp == 0 {
        return Err(Error::invalid(
            "--batch, --prompt, --gen and --tp must each be at least 1",
        ));
    }
    if !matches!(
        args.dtype,
        DType::Bf16 | DType::F16 | DType::Fp8E4m3 | DType::Fp8E5m2 | DType::F32 | DType::Tf32
    ) {
        return Err(Error::invalid(format!(
            "suite llm runs bf16, f16, fp8 (or f32/tf32) GEMMs, not {}",
            args.dtype
        )));
    }
    if m.ffn_size % tp != 0 {
        return Err(Error::invalid(format!(
            "--tp {tp} does not divide the FFN size {} of {}",
            m.ffn_size, m.name
        )));
    }
    Ok(())
}

/// One GPU's share of the model under tensor parallelism.
struct Shard {
    q_heads: u64,
    kv_heads: u64,
    ffn: u64,
    vocab: u64,
}

/// Appends to `out` the kernels of one forward pass (`phase`) at batch size `b`, in run order.
fn pass_kernels(
    m: &ModelConfig,
    args: &SuiteArgs,
    s: &Shard,
    b: u64,
    phase: Phase,
    out: &mut Vec<KernelUse>,
) -> Result<()> {
    let d = m.head_dim;
    // Serving stacks that run the layers' GEMMs in fp8 (vLLM, TensorRT-LLM) keep the LM head
    // and a MoE's router in bf16: in fp8 they made a batch-1 decode step of an 8B model read
    // about 6.5% fewer bytes than it does (7.50 GB against 8.03).
    let kept = match args.dtype {
        DType::Fp8E4m3 | DType::Fp8E5m2 => DType::Bf16,
        other => other,
    };
    let gemm_in = |dtype: DType, mm: u64, n: u64, k: u64| {
        Workload::Matmul(MatmulSpec {
            m: mm,
            n,
            k,
            dtype,
            b_layout: BLayout::Nk,
        })
    };
    let gemm = |mm: u64, n: u64, k: u64| gemm_in(args.dtype, mm, n, k);
    let tokens = match phase {
        Phase::Prefill => b
            .checked_mul(args.prompt)
            .ok_or_else(|| Error::invalid("--batch × --prompt overflows".to_string()))?,
        Phase::Decode => b,
    };
    let mut push = |op: &'static str, w: Workload, per_layer: u64| {
        out.push(KernelUse {
            batch: b,
            phase,
            op,
            workload: w,
            per_layer,
            per_pass: if per_layer == 0 {
                1
            } else {
                per_layer.saturating_mul(m.layers)
            },
        });
    };
    push(
        "qkv",
        gemm(tokens, (s.q_heads + 2 * s.kv_heads) * d, m.hidden_size),
        1,
    );
    let (q_len, kv_len) = match phase {
        Phase::Prefill => (args.prompt, args.prompt),
        Phase::Decode => (1, args.decode_kv_len()),
    };
    push(
        "attention",
        Workload::Attention(AttentionSpec {
            batch: b,
            q_heads: s.q_heads,
            kv_heads: s.kv_heads,
            q_len,
            kv_len,
            head_dim: d,
            causal: true,
            dtype: args.attention_dtype(),
        }),
        1,
    );
    push("o", gemm(tokens, m.hidden_size, s.q_heads * d), 1);
    match (m.experts, m.experts_per_token) {
        (Some(e), Some(k)) => {
            // Balanced routing: tokens·k assignments spread over the experts that get
            // any; with fewer assignments than experts, each active expert gets one.
            let assignments = tokens.saturating_mul(k);
            let active = assignments.min(e);
            let per_expert = assignments.div_ceil(active);
            push("router", gemm_in(kept, tokens, e, m.hidden_size), 1);
            push(
                "expert_gate_up",
                gemm(per_expert, 2 * s.ffn, m.hidden_size),
                active,
            );
            push(
                "expert_down",
                gemm(per_expert, m.hidden_size, s.ffn),
                active,
            );
        }
        _ => {
            push("gate_up", gemm(tokens, 2 * s.ffn, m.hidden_size), 1);
            push("down", gemm(tokens, m.hidden_size, s.ffn), 1);
        }
    }
    // Logits only for the last position of each sequence, in prefill as in decode.
    push("lm_head", gemm_in(kept, b, s.vocab, m.hidden_size), 0);
    Ok(())
}

/// The distinct workloads of the suite, in run order (a shape used twice runs once).
pub fn suite_workloads(args: &SuiteArgs) -> Result<Vec<Workload>> {
    let mut seen = std::collections::HashSet::new();
    Ok(kernels(args)?
        .into_iter()
        .filter(|k| seen.insert(k.workload.name()))
        .map(|k| k.workload)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(model: &str, tp: u64, batch: &[u64]) -> SuiteArgs {
        SuiteArgs {
            model: Some(model.into()),
            tp,
            batch: batch.to_vec(),
            ..SuiteArgs::default()
        }
    }

    fn mm(k: &KernelUse) -> (u64, u64, u64) {
        match &k.workload {
            Workload::Matmul(m) => {
                assert_eq!(m.b_layout, BLayout::Nk);
                (m.m, m.n, m.k)
            }
            other => panic!("not a matmul: {other:?}"),
        }
    }

    #[test]
    fn llama70b_tp8_shapes() {
        let ks = kernels(&args("llama3.1-70b", 8, &[8])).unwrap();
        let find = |phase, op| {
            ks.iter()
                .find(|k| k.phase == phase && k.op == op)
                .unwrap_or_else(|| panic!("{op}"))
        };
        // 8 q heads and 1 kv head per GPU, head dim 128: (8 + 2) × 128 = 1280 QKV columns.
        assert_eq!(mm(find(Phase::Prefill, "qkv")), (8 * 2048, 1280, 8192));
        assert_eq!(mm(find(Phase::Decode, "qkv")), (8, 1280, 8192));
        assert_eq!(mm(find(Phase::Decode, "o")), (8, 8192, 1024));
        assert_eq!(mm(find(Phase::Decode, "gate_up")), (8, 2 * 3584, 8192));
        assert_eq!(mm(find(Phase::Decode, "down")), (8, 8192, 3584));
        assert_eq!(mm(find(Phase::Prefill, "lm_head")), (8, 16032, 8192));
        assert_eq!(find(Phase::Decode, "qkv").per_pass, 80);
        assert_eq!(find(Phase::Decode, "lm_head").per_pass, 1);
        match &find(Phase::Decode, "attention").workload {
            Workload::Attention(a) => {
                assert_eq!((a.batch, a.q_heads, a.kv_heads), (8, 8, 1));
                assert_eq!((a.q_len, a.kv_len), (1, 2048 + 128));
            }
            _ => panic!(),
        }
        match &find(Phase::Prefill, "attention").workload {
            Workload::Attention(a) => assert_eq!((a.q_len, a.kv_len, a.causal), (2048, 2048, true)),
            _ => panic!(),
        }
        // the LM head of prefill and of decode is the same shape: run once
        let ws = suite_workloads(&args("llama3.1-70b", 8, &[8])).unwrap();
        assert_eq!(ws.len(), ks.len() - 1);
    }

    #[test]
    fn mixtral_routes_tokens_to_experts() {
        let ks = kernels(&args("mixtral-8x7b", 2, &[1, 64])).unwrap();
        let find = |b, phase, op| {
            ks.iter()
                .find(|k| k.batch == b && k.phase == phase && k.op == op)
                .unwrap()
        };
        // batch 1 decode: 2 assignments → 2 active experts with 1 token each
        let e = find(1, Phase::Decode, "expert_gate_up");
        assert_eq!(mm(e), (1, 14336, 4096));
        assert_eq!((e.per_layer, e.per_pass), (2, 64));
        // batch 64 decode: 128 assignments over 8 experts → 16 tokens each
        let e = find(64, Phase::Decode, "expert_down");
        assert_eq!(mm(e), (16, 4096, 7168));
        assert_eq!(e.per_layer, 8);
        assert_eq!(mm(find(64, Phase::Prefill, "router")), (64 * 2048, 8, 4096));
        assert!(!ks.iter().any(|k| k.op == "gate_up"));
    }

    #[test]
    fn fp8_keeps_attention_in_bf16_and_rejects_bad_tp() {
        // The layers' GEMMs in fp8; attention, the LM head and a router in bf16.
        for model in ["llama3.1-8b", "mixtral-8x7b"] {
            let mut a = args(model, 1, &[1]);
            a.dtype = DType::Fp8E4m3;
            for k in kernels(&a).unwrap() {
                let kept = matches!(k.op, "attention" | "lm_head" | "router");
                assert_eq!(k.workload.dtype() == DType::Bf16, kept, "{model} {}", k.op);
            }
        }
        let e = kernels(&args("llama3.1-8b", 3, &[1])).unwrap_err();
        assert!(e.to_string().contains("does not divide"), "{e}");
        // tp 16 over 8 KV heads: replicated, one per GPU
        let ks = kernels(&args("llama3.1-405b", 16, &[1])).unwrap();
        assert_eq!(mm(&ks[0]), (2048, (8 + 2) * 128, 16384));
        let mut a = args("llama3.1-8b", 1, &[1]);
        a.dtype = DType::Int8;
        assert!(kernels(&a).is_err());
        // absurd sizes are refused by the workload checks, never overflow
        let mut a = args("mixtral-8x7b", 1, &[1_000_000]);
        a.prompt = 10_000_000;
        assert!(kernels(&a).is_err());
        assert!(kernels(&args("nope", 1, &[1])).is_err());
    }
}
