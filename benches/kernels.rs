//! Criterion benches of gpuvet's kernels on the best backend present, timed on the backend's
//! own clock: CUDA events on a GPU, a monotonic clock on the CPU (with a note saying so).
//!
//! `cargo bench --bench kernels` keeps criterion's own baselines (`--save-baseline`,
//! `--baseline`) beside gpuvet's. The custom [`BackendClock`] measurement carries the seconds a
//! backend reports for `Prepared::run(iters)` — for CUDA those come from events recorded around
//! the launches, never from host wall time — and prints throughput in FLOP/s or B/s.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpuvet::backend::{self, Backend, BackendChoice, BackendKind, PrepareOptions};
use gpuvet::dtype::DType;
use gpuvet::workload::{AttentionSpec, BLayout, MatmulSpec, MemOp, MemorySpec, Workload};
use std::time::{Duration, Instant};

/// Time as reported by the backend, in nanoseconds.
pub struct BackendClock;

impl Measurement for BackendClock {
    // Only `iter_custom` supplies real backend time; `start`/`end` exist for criterion's
    // bookkeeping and fall back to the host clock.
    type Intermediate = Instant;
    type Value = f64;

    fn start(&self) -> Instant {
        Instant::now()
    }
    fn end(&self, i: Instant) -> f64 {
        i.elapsed().as_nanos() as f64
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &BackendFormatter
    }
}

struct BackendFormatter;

impl ValueFormatter for BackendFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (f, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else if ns < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|v| *v *= f);
        unit
    }

    fn scale_throughputs(&self, typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        // Elements are FLOPs, bytes are bytes: per nanosecond → per second, SI-scaled.
        let (per_iter, base) = match *t {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                (n as f64, "FLOP/s")
            }
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (n as f64, "B/s"),
            Throughput::Bits(n) => (n as f64 / 8.0, "B/s"),
        };
        let rate = per_iter * 1e9 / typical;
        let (f, unit) = match (rate, base) {
            (r, "FLOP/s") if r >= 1e12 => (1e-12, "TFLOP/s"),
            (_, "FLOP/s") => (1e-9, "GFLOP/s"),
            (r, _) if r >= 1e12 => (1e-12, "TB/s"),
            _ => (1e-9, "GB/s"),
        };
        values.iter_mut().for_each(|v| *v = per_iter * 1e9 / *v * f);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// The workloads benched: a tensor-core GEMM, decode-shaped GEMM, prefill attention, memory copy.
fn workloads(kind: BackendKind) -> Vec<Workload> {
    let gpu = kind == BackendKind::Cuda;
    let (s, seq, mem) = if gpu {
        (8192, 4096, 1u64 << 30)
    } else {
        (512, 512, 64 << 20)
    };
    let dtype = if gpu { DType::Bf16 } else { DType::F32 };
    vec![
        Workload::Matmul(MatmulSpec {
            m: s,
            n: s,
            k: s,
            dtype,
            b_layout: BLayout::Nk,
        }),
        Workload::Matmul(MatmulSpec {
            m: 16,
            n: s,
            k: s,
            dtype,
            b_layout: BLayout::Nk,
        }),
        Workload::Attention(AttentionSpec {
            batch: 1,
            q_heads: 8,
            kv_heads: 8,
            q_len: seq,
            kv_len: seq,
            head_dim: 128,
            causal: false,
            dtype: if gpu { DType::Bf16 } else { DType::F32 },
        }),
        Workload::Memory(MemorySpec {
            op: MemOp::Copy,
            bytes: mem,
        }),
    ]
}

fn kernels(c: &mut Criterion<BackendClock>) {
    let opened = backend::open(BackendChoice::Auto, 0).expect("no backend could be opened");
    let b: &dyn Backend = opened.backends[0].as_ref();
    if b.kind() != BackendKind::Cuda {
        eprintln!(
            "note: no usable GPU ({}); benching the CPU backend, timed with the host clock",
            opened.notice.as_deref().unwrap_or("none found")
        );
    }
    for w in workloads(b.kind()) {
        let imp = match b.implementations(&w).into_iter().next() {
            Some(i) => i.name,
            None => continue,
        };
        let ins = gpuvet::inputs::generate(&w, 7);
        let sets = gpuvet::plan::buffer_sets(&w, b, false);
        let mut p = b
            .prepare(
                &w,
                &imp,
                &ins,
                PrepareOptions {
                    buffer_sets: sets,
                    hot: false,
                },
            )
            .expect("prepare");
        // Never time a wrong kernel.
        let out = p.run_verify().expect("run");
        let v = gpuvet::verify::verify(&w, &ins, &out, 7);
        assert!(
            v.passed,
            "{} / {imp} failed verification: {:?}",
            w.name(),
            v.detail
        );
        let mut g = c.benchmark_group(w.kind());
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        g.throughput(match w.metric() {
            gpuvet::workload::Metric::Flops => Throughput::Elements(w.flops() as u64),
            gpuvet::workload::Metric::Bytes => Throughput::Bytes(w.bytes()),
        });
        g.bench_function(BenchmarkId::new(w.name(), &imp), |bench| {
            bench.iter_custom(|iters| p.run(iters).expect("run") * 1e9)
        });
        g.finish();
    }
}

fn config() -> Criterion<BackendClock> {
    Criterion::default().with_measurement(BackendClock)
}

criterion_group! {
    name = benches;
    config = config();
    targets = kernels
}
criterion_main!(benches);
