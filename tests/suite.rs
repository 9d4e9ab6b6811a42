//! `suite llm`: the estimate arithmetic against hand-computed cases, and the whole path (model
//! file → workloads → mock run → estimate).

mod common;

use common::{matmul, run_plan};
use gpuvet::backend::{mock::MockBackend, Backend, BackendKind, DeviceInfo, Peaks};
use gpuvet::dtype::DType;
use gpuvet::env::{HostInfo, ToolInfo};
use gpuvet::report::{Report, ResultRecord, RunConfig, Status, Throughput, SCHEMA_VERSION};
use gpuvet::stats::Summary;
use gpuvet::suite::{self, estimate, Phase, SuiteArgs};
use gpuvet::verify::Verification;
use gpuvet::workload::{BLayout, Workload};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// hidden 64, FFN 96, 4 q heads / 2 kv heads of 16, 2 layers, vocab 100.
const TINY: &str = "id = 'tiny'\nname = 'Tiny'\nhidden_size = 64\nffn_size = 96\nq_heads = 4\nkv_heads = 2\nhead_dim = 16\nlayers = 2\nvocab_size = 100\n";

fn model_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let p = dir.path().join("model.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn tiny_args(path: PathBuf) -> SuiteArgs {
    SuiteArgs {
        model: None,
        model_file: Some(path),
        tp: 2,
        batch: vec![2],
        prompt: 8,
        gen: 4,
        dtype: DType::Bf16,
    }
}

fn report(peaks: Option<Peaks>) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo::current(),
        host: HostInfo::fixed(),
        devices: vec![DeviceInfo {
            index: 0,
            backend: Some(BackendKind::Mock),
            name: "Test GPU".into(),
            peaks,
            ..Default::default()
        }],
        config: RunConfig {
            command: "suite llm".into(),
            backend: "mock".into(),
            seed: 1,
            min_samples: 1,
            max_samples: 1,
            max_time_s: 1.0,
            warmup_s: 0.0,
            target_rel_noise: 0.0,
            min_sample_time_s: 0.0,
            hot: false,
            threads: 0,
            kernel_hash: None,
            price: None,
        },
        started_at: "2026-01-01T00:00:00Z".into(),
        complete: true,
        world: None,
        results: vec![],
        not_run: Vec::new(),
        telemetry: Vec::new(),
    }
}

/// A result whose every sample took `t` seconds.
fn record(w: &Workload, imp: &str, t: f64, passed: bool) -> ResultRecord {
    ResultRecord {
        compute_dtype: w.dtype().name().into(),
        status: if passed {
            Status::Ok
        } else {
            Status::VerificationFailed
        },
        verification: Verification {
            passed,
            method: gpuvet::verify::VerifyMethod::Full,
            max_rel_error: 0.0,
            tolerance: 1e-2,
            checked_elements: 1,
            detail: None,
        },
        stats: passed.then(|| Summary::from_samples(&[t, t, t], 1)),
        throughput: passed.then(|| Throughput {
            value: w.flops() / t,
            unit: "FLOP/s".into(),
        }),
        iterations_per_sample: 1,
        cache: "hot".into(),
        stop_reason: gpuvet::measure::StopReason::MaxSamples,
        ..ResultRecord::unrun(w, imp, gpuvet::backend::BackendKind::Mock, 0.into())
    }
}

/// Milliseconds per (phase, op) for the hand-computed case.
fn times() -> BTreeMap<(Phase, &'static str), f64> {
    let mut t = BTreeMap::new();
    for (op, pre, dec) in [
        ("qkv", 1.0, 0.1),
        ("attention", 2.0, 0.2),
        ("o", 3.0, 0.3),
        ("gate_up", 4.0, 0.4),
        ("down", 5.0, 0.5),
        // the LM head has the same shape in both phases (M = batch), so one time
        ("lm_head", 7.0, 7.0),
    ] {
        t.insert((Phase::Prefill, op), pre * 1e-3);
        t.insert((Phase::Decode, op), dec * 1e-3);
    }
    t
}

fn filled(args: &SuiteArgs, peaks: Option<Peaks>) -> Report {
    let mut r = report(peaks);
    let t = times();
    let mut seen = std::collections::HashSet::new();
    for k in suite::kernels(args).unwrap() {
        if seen.insert(k.workload.name()) {
            r.results
                .push(record(&k.workload, "own", t[&(k.phase, k.op)], true));
        }
    }
    r
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn dense_estimate_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let args = tiny_args(model_file(&dir, TINY));
    let e = estimate(&args, &filled(&args, None));
    assert!(e.missing.is_empty(), "{:?}", e.missing);
    assert_eq!(e.model, "Tiny");
    assert_eq!(e.decode_kv_len, 8 + 2);
    let b = &e.batches[0];
    // prefill: (1 + 2 + 3 + 4 + 5) ms × 2 layers + 7 ms LM head = 37 ms
    assert!(close(b.ttft_s.unwrap(), 0.037), "{:?}", b.ttft_s);
    // 2 sequences × 8 prompt tokens / 37 ms
    assert!(close(b.prefill_tokens_per_s.unwrap(), 16.0 / 0.037));
    // decode step: (0.1 + 0.2 + 0.3 + 0.4 + 0.5) ms × 2 layers + 7 ms = 10 ms
    assert!(close(b.decode_step_s.unwrap(), 0.010));
    // 2 tokens per 10 ms step = 200 tok/s for the TP-2 group, 100 per GPU, 100 per sequence
    assert!(close(b.decode_tokens_per_s.unwrap(), 200.0));
    assert!(close(b.decode_tokens_per_s_per_gpu.unwrap(), 100.0));
    assert!(close(b.decode_tokens_per_s_per_sequence.unwrap(), 100.0));
    // one request: 37 ms + 3 steps × 10 ms (gen 4: the prefill gives the first token)
    assert!(close(b.request_s.unwrap(), 0.067));
    // no peaks known: no bounds
    assert!(b.ttft_bound_s.is_none());
    // shares of the pass: the LM head is 7 of the 10 ms decode step
    let lm = e
        .kernels
        .iter()
        .find(|k| k.phase == Phase::Decode && k.op == "lm_head")
        .unwrap();
    assert!(close(lm.pass_share.unwrap(), 0.7));
    let text = e.render();
    for s in [
        "Tiny",
        "communication",
        "sampling",
        "framework overhead",
        "KV cache",
    ] {
        assert!(text.contains(s), "{s} missing from:\n{text}");
    }
    let back: gpuvet::suite::Estimate = serde_json::from_str(&e.to_json()).unwrap();
    // JSON keeps every field (floats to within parsing precision)
    assert_eq!(back.kernels.len(), e.kernels.len());
    assert_eq!(back.leaves_out, e.leaves_out);
    assert!(close(back.batches[0].ttft_s.unwrap(), 0.037));
}

#[test]
fn roofline_bound_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let args = tiny_args(model_file(&dir, TINY));
    let mut flops = BTreeMap::new();
    flops.insert(gpuvet::dtype::DType::Bf16, 1e12);
    let peaks = Peaks {
        source: "test".into(),
        flops,
        memory_bandwidth: Some(1e10),
        ..Peaks::default()
    };
    let e = estimate(&args, &filled(&args, Some(peaks)));
    let qkv = e
        .kernels
        .iter()
        .find(|k| k.phase == Phase::Prefill && k.op == "qkv")
        .unwrap();
    // per GPU: 2 q heads + 1 kv head → (2 + 2·1) × 16 = 64 columns; M = 2 × 8 = 16, K = 64
    assert_eq!(qkv.workload, "matmul.bf16.16x64x64.nk");
    // FLOPs 2·16·64·64 = 131072 → 0.131 µs at 1 TFLOP/s;
    // bytes (16·64 + 64·64)·2 + 16·64·2 = 12288 → 1.2288 µs at 10 GB/s: memory-bound
    assert!(close(qkv.bound_s.unwrap(), 1.2288e-6));
    assert_eq!(qkv.bound_by.as_deref(), Some("memory"));
    assert!(close(qkv.roofline_fraction.unwrap(), 1.2288e-6 / 1e-3));
    // the pass bounds are the sums of per-kernel bounds × launches
    let want: f64 = e
        .kernels
        .iter()
        .filter(|k| k.phase == Phase::Decode)
        .map(|k| k.bound_s.unwrap() * k.per_pass as f64)
        .sum();
    assert!(close(e.batches[0].decode_step_bound_s.unwrap(), want));
    // a compute-bound case: prefill attention at 1 FLOP/s would be compute-bound
    let w = matmul(1024, 1024, 1024, DType::Bf16, BLayout::Nk);
    let mut f = BTreeMap::new();
    f.insert(gpuvet::dtype::DType::Bf16, 1e12);
    let p = Peaks {
        source: "t".into(),
        flops: f,
        memory_bandwidth: Some(1e12),
        ..Peaks::default()
    };
    let (t, by) = gpuvet::suite::estimate::roofline_bound(&w, &p).unwrap();
    assert_eq!(by, "compute");
    assert!(close(t, 2.0 * 1024f64.powi(3) / 1e12));
}

#[test]
fn best_verified_implementation_counts_and_gaps_show() {
    let dir = tempfile::tempdir().unwrap();
    let args = tiny_args(model_file(&dir, TINY));
    let mut r = filled(&args, None);
    let qkv = suite::kernels(&args)
        .unwrap()
        .into_iter()
        .find(|k| k.phase == Phase::Prefill && k.op == "qkv")
        .unwrap()
        .workload;
    // a faster vendor result (0.5 ms instead of 1 ms) is used; a faster wrong one is not
    r.results.push(record(&qkv, "vendor", 0.5e-3, true));
    r.results.push(record(&qkv, "broken", 0.01e-3, false));
    let e = estimate(&args, &r);
    let row = e
        .kernels
        .iter()
        .find(|k| k.phase == Phase::Prefill && k.op == "qkv")
        .unwrap();
    assert_eq!(row.implementation.as_deref(), Some("vendor"));
    // 37 ms − 2 layers × 0.5 ms
    assert!(close(e.batches[0].ttft_s.unwrap(), 0.036));

    // without the decode attention result there is no decode figure, and it is named
    let mut r = filled(&args, None);
    r.results
        .retain(|x| !(matches!(&x.workload, Workload::Attention(a) if a.q_len == 1)));
    let e = estimate(&args, &r);
    assert!(e.batches[0].decode_step_s.is_none());
    assert!(e.batches[0].decode_tokens_per_s.is_none());
    assert!(e.batches[0].ttft_s.is_some());
    assert_eq!(e.missing.len(), 1);
    assert!(e.missing[0].starts_with("attention."), "{:?}", e.missing);
    assert!(e.render().contains("No verified time for"));
    // Not run at all on the device (its library missing): named with the reason, once.
    let decode = e.missing[0].clone();
    r.not_run = vec![gpuvet::plan::NotRun {
        workload: decode.clone(),
        device: 0.into(),
        why: "cuBLASLt not found".into(),
    }];
    let e = estimate(&args, &r);
    assert_eq!(
        e.missing,
        [format!("{decode} (not run: cuBLASLt not found)")]
    );
}

#[test]
fn moe_estimate_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{TINY}experts = 4\nexperts_per_token = 2\n");
    let mut args = tiny_args(model_file(&dir, &text));
    args.tp = 1;
    args.batch = vec![1];
    let mut r = report(None);
    let ks = suite::kernels(&args).unwrap();
    let mut seen = std::collections::HashSet::new();
    for k in &ks {
        if seen.insert(k.workload.name()) {
            // 1 ms everywhere, 10 ms for the LM head
            let t = if k.op == "lm_head" { 10e-3 } else { 1e-3 };
            r.results.push(record(&k.workload, "own", t, true));
        }
    }
    let e = estimate(&args, &r);
    // decode, batch 1: qkv, attention, o, router once per layer, and 2 active experts × (gate+up,
    // down): 8 launches of 1 ms per layer × 2 layers + 10 ms = 26 ms
    assert!(
        close(e.batches[0].decode_step_s.unwrap(), 0.026),
        "{:?}",
        e.batches[0]
    );
    // prefill: 8 tokens × top-2 = 16 assignments over 4 experts → all 4 active, 4 tokens each:
    // 4 + 2 × 4 = 12 launches per layer × 2 + 10 ms = 34 ms
    assert!(close(e.batches[0].ttft_s.unwrap(), 0.034));
    let egu = ks
        .iter()
        .find(|k| k.phase == Phase::Prefill && k.op == "expert_gate_up")
        .unwrap();
    match &egu.workload {
        Workload::Matmul(m) => assert_eq!((m.m, m.n, m.k), (4, 192, 64)),
        _ => panic!(),
    }
    assert!(e.method.iter().any(|m| m.contains("mixture of experts")));
}

#[test]
fn bad_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let args = tiny_args(model_file(&dir, "id = 'x'\nname = 'x'\n"));
    let e = suite::suite_workloads(&args).unwrap_err();
    assert!(e.to_string().contains("model.toml"), "{e}");
    // the estimate of an unloadable model says why instead of panicking
    let est = estimate(&args, &report(None));
    assert!(est.batches.is_empty());
    assert!(!est.missing.is_empty());
}

/// Runs the suite's workloads on `backends` with a short measurement, as the CLI would.
fn run_suite(args: &SuiteArgs, backends: &[Box<dyn Backend>]) -> Report {
    use gpuvet::plan::{self, ImplSelect};
    let workloads = suite::suite_workloads(args).unwrap();
    let plan = plan::build(&workloads, backends, &ImplSelect::Default, false, false).unwrap();
    let measure = gpuvet::measure::MeasureConfig {
        warmup_s: 0.0,
        min_samples: 3,
        max_samples: 3,
        max_time_s: 1.0,
        target_rel_noise: 0.0,
        min_sample_time_s: 0.0,
    };
    let report = run_plan(&plan, backends, "suite llm", measure);
    assert_eq!(report.results.len(), plan.entries.len());
    report
}

#[test]
fn cpu_run_verifies_every_kernel() {
    // The real CPU kernels at the suite's odd shapes (N = 50 for the LM head, GQA attention,
    // MoE experts at a handful of tokens): every one must verify and get a time.
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{TINY}experts = 4\nexperts_per_token = 2\n");
    let mut args = tiny_args(model_file(&dir, &text));
    args.batch = vec![1, 3];
    let backends: Vec<Box<dyn Backend>> =
        vec![Box::new(gpuvet::backend::cpu::CpuBackend::new(1).unwrap())];
    let report = run_suite(&args, &backends);
    for r in &report.results {
        assert!(
            r.is_valid(),
            "{} failed: {:?} {:?}",
            r.id,
            r.error,
            r.verification.detail
        );
    }
    let e = estimate(&args, &report);
    assert!(e.missing.is_empty(), "{:?}", e.missing);
    assert!(e
        .batches
        .iter()
        .all(|b| b.ttft_s.is_some() && b.decode_step_s.is_some()));
}

#[test]
fn mock_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = tiny_args(model_file(&dir, TINY));
    args.batch = vec![1, 2];
    let workloads = suite::suite_workloads(&args).unwrap();
    let backends: Vec<Box<dyn Backend>> = vec![Box::new(MockBackend::new())];
    let report = run_suite(&args, &backends);
    assert_eq!(report.results.len(), workloads.len());
    let e = estimate(&args, &report);
    assert!(e.missing.is_empty(), "{:?}", e.missing);
    assert_eq!(e.batches.len(), 2);
    for b in &e.batches {
        assert!(b.ttft_s.unwrap() > 0.0);
        assert!(b.decode_tokens_per_s.unwrap() > 0.0);
        // the mock device has peaks: every pass has a bound, below the measured time
        assert!(b.ttft_bound_s.unwrap() <= b.ttft_s.unwrap());
    }
    assert!(e
        .kernels
        .iter()
        .all(|k| k.implementation.as_deref() == Some("mock")));
}
