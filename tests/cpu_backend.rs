//! The CPU backend against the f64 references, through the public library API only.
//!
//! Shapes are odd on purpose (1, 7, 13, 127, 129 ...) so that every tail path of the blocked
//! kernels runs. The speed comparison with numpy is an ignored test:
//! `cargo test --release --test cpu_backend -- --ignored --nocapture`.

mod common;

use common::{attention, matmul};
use gpuvet::backend::cpu::CpuBackend;
use gpuvet::backend::{Backend, BackendKind, PrepareOptions, Prepared, Sustained};
use gpuvet::dtype::DType;
use gpuvet::inputs;
use gpuvet::tensor::{Data, Tensor};
use gpuvet::verify::verify;
use gpuvet::workload::{reference, BLayout, MemOp, MemorySpec, Workload};
use gpuvet::Error;

const SEED: u64 = 0x5eed;

fn backend() -> CpuBackend {
    CpuBackend::new(2).expect("a 2-thread pool starts")
}

fn opts(sets: usize) -> PrepareOptions {
    PrepareOptions {
        buffer_sets: sets,
        hot: false,
    }
}

fn only_impl(be: &CpuBackend, w: &Workload) -> String {
    let imps = be.implementations(w);
    assert_eq!(imps.len(), 1, "{}", w.name());
    imps[0].name.clone()
}

/// Prepares `w`, runs it once for verification and returns the inputs, output and prepared run.
fn run_once<'a>(
    be: &'a CpuBackend,
    w: &Workload,
    sets: usize,
) -> (Vec<Tensor>, Tensor, Box<dyn Prepared + 'a>) {
    let ins = inputs::generate(w, SEED);
    let imp = only_impl(be, w);
    let mut p = be
        .prepare(w, &imp, &ins, opts(sets))
        .unwrap_or_else(|e| panic!("prepare {}: {e}", w.name()));
    let out = p.run_verify().expect("run_verify");
    (ins, out, p)
}

fn assert_verified(w: &Workload, ins: &[Tensor], out: &Tensor) {
    let v = verify(w, ins, out, SEED);
    assert!(
        v.passed,
        "{}: {} max rel error {:.3e} > {:.1e} ({:?})",
        w.name(),
        v.method,
        v.max_rel_error,
        v.tolerance,
        v.detail
    );
    assert!(v.checked_elements > 0, "{}: nothing was checked", w.name());
}

fn no_poison_left(out: &Tensor) -> bool {
    match &out.data {
        Data::I32(v) => v.iter().all(|&x| x != i32::MIN),
        _ => out.to_f64().iter().all(|x| x.is_finite()),
    }
}

#[test]
fn device_describes_the_host() {
    let be = backend();
    assert_eq!(be.kind(), BackendKind::Cpu);
    assert_eq!(be.threads(), 2);
    let d = be.device();
    assert_eq!(d.backend, Some(BackendKind::Cpu));
    assert_eq!(d.multiprocessors, Some(2));
    assert!(!d.name.is_empty());
    assert!(d.memory_bytes.unwrap_or(0) > 0);
    assert!(d.last_level_cache_bytes.unwrap_or(0) > 0);
    assert!(be.free_memory().unwrap() > 0);
    let all = CpuBackend::new(0).unwrap();
    assert!(all.threads() >= 1);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if cpuinfo.contains("cpu MHz") {
        let t = be.telemetry().expect("cpu MHz from /proc/cpuinfo");
        assert!(t.sm_clock_mhz.unwrap_or(0.0) > 0.0);
    } else {
        assert!(be.telemetry().is_none());
    }
}

#[test]
fn matmul_every_dtype_and_layout_matches_reference() {
    let be = backend();
    for dtype in DType::ALL {
        for layout in [BLayout::Kn, BLayout::Nk] {
            for (m, n, k) in [(1, 1, 1), (7, 13, 5), (127, 129, 65)] {
                let w = matmul(m, n, k, dtype, layout);
                let (ins, out, p) = run_once(&be, &w, 1);
                assert_eq!(out.shape, vec![m as usize, n as usize]);
                let want = Tensor::from_f32_out("C", vec![1], dtype.matmul_output(), &[0.0]);
                assert_eq!(
                    out.storage_name(),
                    want.storage_name(),
                    "{}: output storage",
                    w.name()
                );
                assert!(no_poison_left(&out), "{}: poison left", w.name());
                assert_verified(&w, &ins, &out);
                let v = verify(&w, &ins, &out, SEED);
                assert_eq!(v.method, "full", "{}", w.name());
                match dtype {
                    DType::Int8 => assert_eq!(p.compute_dtype(), "f64"),
                    DType::F16 => assert_eq!(p.compute_dtype(), "f16"),
                    _ => assert_eq!(p.compute_dtype(), "f32"),
                }
                if matches!(
                    dtype,
                    DType::Bf16 | DType::Fp8E4m3 | DType::Fp8E5m2 | DType::Int8
                ) {
                    assert!(
                        p.notes().iter().any(|n| n.contains("converted")),
                        "{}: {:?}",
                        w.name(),
                        p.notes()
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_int8_is_exact_and_f32_close_to_f64() {
    let be = backend();
    for layout in [BLayout::Kn, BLayout::Nk] {
        let w = matmul(31, 17, 257, DType::Int8, layout);
        let (ins, out, _) = run_once(&be, &w, 1);
        let Workload::Matmul(spec) = &w else {
            unreachable!()
        };
        let a = ins[0].to_f64();
        for i in 0..31 {
            for j in 0..17 {
                let (r, _) = reference::matmul_element(spec, &a, &ins[1], i, j);
                assert_eq!(out.get(i * 17 + j), r, "C[{i}][{j}] {layout:?}");
            }
        }
        let w = matmul(33, 19, 301, DType::F32, layout);
        let (ins, out, _) = run_once(&be, &w, 1);
        let Workload::Matmul(spec) = &w else {
            unreachable!()
        };
        let a = ins[0].to_f64();
        for (i, j) in [(0, 0), (32, 18), (17, 5)] {
            let (r, s) = reference::matmul_element(spec, &a, &ins[1], i, j);
            assert!((out.get(i * 19 + j) - r).abs() <= 1e-5 * (r.abs() + s));
        }
    }
}

#[test]
fn attention_matches_reference() {
    let be = backend();
    for dtype in [DType::F32, DType::F16, DType::Bf16] {
        for d in [64, 128] {
            let cases = [
                // GQA 8 query heads on 2 KV heads, square, both masks.
                (8, 2, 17, 17, false),
                (8, 2, 17, 17, true),
                // causal with fewer queries than keys (chunked prefill), and decode.
                (8, 2, 5, 37, true),
                // few query rows per task: the dot-product path, with the diagonal mask.
                (2, 1, 5, 37, true),
                (4, 1, 1, 37, true),
                (4, 4, 1, 300, false),
            ];
            for (hq, hkv, lq, lkv, causal) in cases {
                let w = attention(2, (hq, hkv), (lq, lkv), d, causal, dtype);
                let (ins, out, p) = run_once(&be, &w, 1);
                assert_eq!(out.shape, vec![2, hq as usize, lq as usize, d as usize]);
                assert_eq!(out.storage_name(), dtype.name(), "{}", w.name());
                assert!(no_poison_left(&out), "{}: poison left", w.name());
                assert_verified(&w, &ins, &out);
                assert_eq!(p.compute_dtype(), "f32");
            }
        }
    }
}

#[test]
fn attention_odd_head_dims_and_more_queries_than_keys() {
    let be = backend();
    // (65, 2, …) and (24, 1, …): few query rows per task (key tiles), with head dims that end
    // on a partial column strip; both 16-bit types, whose K and V stay in 16 bits there.
    for dtype in [DType::Bf16, DType::F16] {
        for (d, lq, lkv, causal) in [
            (1, 3, 3, true),
            (3, 300, 5, false),
            (65, 9, 260, true),
            (65, 2, 260, true),
            (24, 1, 37, false),
        ] {
            let w = attention(3, (3, 1), (lq, lkv), d, causal, dtype);
            let (ins, out, _) = run_once(&be, &w, 1);
            assert_verified(&w, &ins, &out);
        }
    }
}

/// What the CPU's memory ops hand back (verification of every op at ragged sizes is in
/// tests/backends.rs): a read is one f64 sum, and everything computes in f32.
#[test]
fn memory_read_is_one_f64_sum_and_ops_compute_in_f32() {
    let be = backend();
    for op in MemOp::ALL {
        let w = Workload::Memory(MemorySpec {
            op,
            bytes: (1 << 20) + 4,
        });
        let (ins, out, p) = run_once(&be, &w, 1);
        assert!(no_poison_left(&out), "{}: poison left", w.name());
        if op == MemOp::Read {
            assert!(matches!(out.data, Data::F64(_)));
            assert_eq!(out.len(), 1);
        }
        assert_verified(&w, &ins, &out);
        assert_eq!(p.compute_dtype(), "f32");
    }
}

/// The cache policy each prepare option gives, the memory rotation needs, and that set 0 still
/// verifies after every set has run (tests/backends.rs verifies before the timed runs only).
#[test]
fn rotated_buffer_sets_give_verified_outputs() {
    let be = backend();
    let work = [
        matmul(127, 129, 65, DType::Bf16, BLayout::Nk),
        attention(2, (8, 2), (5, 37), 64, true, DType::F16),
        Workload::Memory(MemorySpec {
            op: MemOp::Triad,
            bytes: 1 << 16,
        }),
    ];
    for w in work {
        let (ins, _, mut p) = run_once(&be, &w, 3);
        assert_eq!(p.cache_policy(), "rotate(3)");
        // Every set runs (twice), then set 0 is verified again after the rotation.
        let secs = p.run(6).expect("run");
        assert!(secs > 0.0 && secs.is_finite());
        let out = p.run_verify().expect("run_verify");
        assert_verified(&w, &ins, &out);
        assert!(be.memory_needed(&w, 3) >= 3 * w.footprint() / 2);
    }
    let w = matmul(8, 8, 8, DType::F32, BLayout::Kn);
    let ins = inputs::generate(&w, SEED);
    let hot = be
        .prepare(
            &w,
            "gemm",
            &ins,
            PrepareOptions {
                buffer_sets: 1,
                hot: true,
            },
        )
        .unwrap();
    assert_eq!(hot.cache_policy(), "hot");
    let single = be.prepare(&w, "gemm", &ins, opts(1)).unwrap();
    assert_eq!(single.cache_policy(), "single");
}

#[test]
fn memory_needed_counts_converted_copies() {
    let be = backend();
    let w = matmul(64, 64, 64, DType::Int8, BLayout::Kn);
    // Two 64×64 f64 inputs, an f64 result and the i32 output.
    assert_eq!(be.memory_needed(&w, 1), 3 * 64 * 64 * 8 + 64 * 64 * 4);
    assert_eq!(be.memory_needed(&w, 2), 2 * be.memory_needed(&w, 1));
    let w = attention(2, (8, 2), (16, 16), 64, false, DType::Bf16);
    assert!(be.memory_needed(&w, 1) > w.footprint());
    // Decode: Q (2×8×1×128) in f32 and O in the input type; K and V (2×2×1000×128 each) stay
    // in their 16 bits for bf16 and f16 (widened in the loops), in f32 for f32; K is stored
    // in tiles of 16 keys, 1000 padded to 1008.
    let (q, k, v) = (2 * 8 * 128, 2 * 2 * 1008 * 128, 2 * 2 * 1000 * 128);
    for dt in [DType::Bf16, DType::F16] {
        let w = attention(2, (8, 2), (1, 1000), 128, true, dt);
        assert_eq!(be.memory_needed(&w, 1), q * 4 + (k + v) * 2 + q * 2, "{dt}");
    }
    let w = attention(2, (8, 2), (1, 1000), 128, true, DType::F32);
    assert_eq!(be.memory_needed(&w, 1), q * 4 + (k + v) * 4 + q * 4);
    // A prefill runs `gemm` over f32 copies of K and V, rows not padded: Q 2×8×64×128.
    let (q, kv) = (2 * 8 * 64 * 128, 2 * 2 * 64 * 128);
    let w = attention(2, (8, 2), (64, 64), 128, true, DType::F16);
    assert_eq!(be.memory_needed(&w, 1), q * 4 + 2 * kv * 4 + q * 2);
}

/// The CPU computes in host RAM: its buffers count against host memory, on top of the host
/// copies of inputs and output, and nothing against a device.
#[test]
fn cpu_policy_keeps_buffers_in_host_memory() {
    let be = backend();
    let w = matmul(64, 64, 64, DType::Int8, BLayout::Kn);
    let need = be.memory_needs(&w, "gemm", 2);
    assert_eq!(need.device, 0);
    assert_eq!(need.host, w.footprint() + be.memory_needed(&w, 2));
    assert!(!be.is_gpu());
    assert_eq!(be.kernel_hash(), None);
    assert_eq!(be.stress_size(Sustained::Stress), 1024);
    assert_eq!(be.stress_size(Sustained::Soak), 512);
    // Every quick-suite workload is valid and runnable here.
    let suite = be.quick_suite();
    assert_eq!(suite.len(), 8);
    for w in &suite {
        w.validate().unwrap();
        assert!(!be.implementations(w).is_empty(), "{}", w.name());
    }
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let be = backend();
    let w = matmul(4, 4, 4, DType::F32, BLayout::Kn);
    let ins = inputs::generate(&w, SEED);
    assert!(matches!(
        be.prepare(&w, "cublaslt", &ins, opts(1)),
        Err(Error::Unsupported(_))
    ));
    // Inputs of the wrong shape, count or dtype.
    let other = inputs::generate(&matmul(4, 5, 4, DType::F32, BLayout::Kn), SEED);
    assert!(matches!(
        be.prepare(&w, "gemm", &other, opts(1)),
        Err(Error::InvalidInput(_))
    ));
    assert!(be.prepare(&w, "gemm", &ins[..1], opts(1)).is_err());
    let halfs = inputs::generate(&matmul(4, 4, 4, DType::F16, BLayout::Kn), SEED);
    assert!(be.prepare(&w, "gemm", &halfs, opts(1)).is_err());
    // A workload that does not validate.
    let zero = matmul(0, 4, 4, DType::F32, BLayout::Kn);
    assert!(be.prepare(&zero, "gemm", &ins, opts(1)).is_err());
    // Attention has no int8 implementation.
    let int8 = attention(2, (2, 1), (4, 4), 8, false, DType::Int8);
    assert!(be.implementations(&int8).is_empty());
    assert!(be.check(&int8, "flash").is_err());
    // Buffer sets of 0 are treated as 1.
    assert!(be.prepare(&w, "gemm", &ins, opts(0)).is_ok());
}

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// The speed goals of docs/perf/cpu.md, measured side by side with numpy in one process run.
///
/// The matmul and the attention alternate iteration by iteration, so that load from other
/// processes changes both alike and their ratio stays meaningful on a shared machine; numpy runs
/// between the rounds.
#[test]
#[ignore = "speed measurement; run with --release -- --ignored --nocapture"]
fn speed_against_numpy() {
    let reps: usize = std::env::var("GPUVET_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let rounds: usize = std::env::var("GPUVET_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let threads: usize = std::env::var("GPUVET_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let be = CpuBackend::new(threads).unwrap();
    println!("cpu: {} ({} threads)", be.device().name, be.threads());
    let mm = matmul(2048, 2048, 2048, DType::F32, BLayout::Kn);
    let att = attention(1, (8, 8), (2048, 2048), 128, false, DType::F32);
    let (ins, out, mut pm) = run_once(&be, &mm, 1);
    assert_verified(&mm, &ins, &out);
    let (ins, out, mut pa) = run_once(&be, &att, 1);
    assert_verified(&att, &ins, &out);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/numpy_matmul.py");
    for round in 1..=rounds {
        pm.run(2).unwrap();
        pa.run(1).unwrap();
        let (mut tm, mut ta) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            tm.push(pm.run(1).unwrap());
            ta.push(pa.run(1).unwrap());
        }
        let (sm, sa) = (median(tm), median(ta));
        let (mm_rate, att_rate) = (mm.flops() / sm / 1e9, att.flops() / sa / 1e9);
        println!(
            "round {round}: gpuvet gemm f32 2048^3: {mm_rate:.1} GFLOP/s ({:.2} ms); \
             flash f32 b1 h8 seq2048 d128: {att_rate:.1} GFLOP/s ({:.2} ms) = {:.0}% of gemm",
            sm * 1e3,
            sa * 1e3,
            100.0 * att_rate / mm_rate
        );
        let numpy = std::process::Command::new("python3")
            .arg(script)
            .args(["--threads", &be.threads().to_string()])
            .output();
        match numpy {
            Ok(o) if o.status.success() => {
                print!("round {round}: {}", String::from_utf8_lossy(&o.stdout))
            }
            Ok(o) => println!(
                "round {round}: numpy unavailable: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
            Err(e) => println!("round {round}: python3 unavailable: {e}"),
        }
    }
}
