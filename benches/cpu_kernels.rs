//! Criterion benches of the CPU kernels: f32 matmul (512³, 1024³) and flash attention
//! (f32, head dim 128, seq 512). Small enough to finish in well under a minute:
//! `cargo bench --bench cpu_kernels`.
//!
//! Each bench times `Prepared::run(iters)`, the same call gpuvet's measurement loop makes, so
//! the figures are comparable with `gpuvet bench` on the same machine.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gpuvet::backend::cpu::CpuBackend;
use gpuvet::backend::{Backend, PrepareOptions, Prepared};
use gpuvet::dtype::DType;
use gpuvet::inputs;
use gpuvet::verify::verify;
use gpuvet::workload::{AttentionSpec, MatmulSpec, Workload};
use std::time::Duration;

const SEED: u64 = 42;

/// Prepares `w` on `be` and checks its output once, so a bench never times a wrong kernel.
fn prepared<'a>(be: &'a CpuBackend, w: &Workload, imp: &str) -> Box<dyn Prepared + 'a> {
    let ins = inputs::generate(w, SEED);
    let opts = PrepareOptions {
        buffer_sets: 1,
        hot: true,
    };
    let mut p = be
        .prepare(w, imp, &ins, opts)
        .unwrap_or_else(|e| panic!("prepare {}: {e}", w.name()));
    let out = p.run_verify().expect("run_verify");
    let v = verify(w, &ins, &out, SEED);
    assert!(v.passed, "{} failed verification: {:?}", w.name(), v.detail);
    p
}

fn bench(c: &mut Criterion, be: &CpuBackend, group: &str, w: Workload, imp: &str) {
    let mut p = prepared(be, &w, imp);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(w.flops() as u64));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function(w.name(), |b| {
        b.iter_custom(|iters| Duration::from_secs_f64(p.run(iters).expect("run")))
    });
    g.finish();
}

fn cpu_kernels(c: &mut Criterion) {
    let be = CpuBackend::new(0).expect("thread pool");
    for n in [512, 1024] {
        let w = Workload::Matmul(MatmulSpec::new(n, n, n, DType::F32));
        bench(c, &be, "cpu_matmul_f32", w, "gemm");
    }
    let att = Workload::Attention(AttentionSpec {
        batch: 1,
        q_heads: 8,
        kv_heads: 8,
        q_len: 512,
        kv_len: 512,
        head_dim: 128,
        causal: false,
        dtype: DType::F32,
    });
    bench(c, &be, "cpu_attention_f32", att, "flash");
}

criterion_group!(benches, cpu_kernels);
criterion_main!(benches);
