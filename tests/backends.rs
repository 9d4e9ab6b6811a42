//! One test body per property, run on every backend that can take it: the CPU, the mock and,
//! where a GPU is present, CUDA. Each body walks one shared list of odd shapes (sizes 1, 7, 13,
//! 127 ... so that every tail path runs) over every implementation the backend lists for it,
//! verifies each output against the f64 reference and counts what ran: a body that could run
//! nothing fails instead of passing.
//!
//! Without a GPU the CUDA variants print `SKIP cuda::<test>: <why>` (counted as skipped by
//! .ci/run's closing line); GPUVET_REQUIRE_GPU=1 turns that into a failure. The GPU-only large
//! shapes (4097×4095×4096, 33000 keys) stay in tests/cuda_gpu.rs: the f64 references of those
//! cost minutes on a 2-core host.

mod common;

use common::attention;
use gpuvet::backend::{cpu::CpuBackend, mock::MockBackend, Backend, PrepareOptions};
use gpuvet::backend::{Group, RankLayout};
use gpuvet::dtype::DType;
use gpuvet::inputs;
use gpuvet::verify::verify;
use gpuvet::workload::{
    BLayout, CollectiveOp, CollectiveSpec, Direction, HostMemory, MatmulSpec, MemOp, MemorySpec,
    TransferSpec, Workload,
};
use gpuvet::world::World;
use gpuvet::Error;

const SEED: u64 = 0x0dd5;

/// The matmul shapes every backend must get right, in every dtype and both B layouts.
fn matmul_shapes() -> Vec<Workload> {
    let mut v = Vec::new();
    for (m, n, k) in [(1, 1, 1), (7, 13, 129), (33, 70, 40), (127, 255, 513)] {
        for dtype in DType::ALL {
            for layout in [BLayout::Kn, BLayout::Nk] {
                let mut s = MatmulSpec::new(m, n, k, dtype);
                s.b_layout = layout;
                v.push(Workload::Matmul(s));
            }
        }
    }
    v
}

/// Prefill and decode, GQA ratios 1, 4 and 8, causal with query length ≠ key length, odd
/// lengths, head dims 64 and 128.
fn attention_shapes() -> Vec<Workload> {
    let mut v = Vec::new();
    let cases = [
        // (batch, q heads, kv heads, q len, kv len, head dim, causal)
        (1, 4, 4, 1, 17, 64, true),
        (2, 8, 2, 1, 1000, 128, true),
        (1, 8, 1, 17, 17, 64, false),
        (1, 4, 1, 100, 301, 128, true),
        (1, 8, 2, 129, 129, 64, true),
    ];
    for (batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal) in cases {
        for dtype in [DType::F32, DType::F16, DType::Bf16] {
            v.push(attention(
                batch,
                (q_heads, kv_heads),
                (q_len, kv_len),
                head_dim,
                causal,
                dtype,
            ));
        }
    }
    v
}

/// Every memory op at sizes whose element counts leave ragged tails for vector loads.
fn memory_shapes() -> Vec<Workload> {
    let mut v = Vec::new();
    for bytes in [4096, 4096 + 12, (3 << 20) + 4] {
        for op in [MemOp::Copy, MemOp::Read, MemOp::Write, MemOp::Triad] {
            v.push(Workload::Memory(MemorySpec { op, bytes }));
        }
    }
    v
}

/// Prepares, runs once, verifies and times a few iterations of every implementation of every
/// workload in `ws` that the backend lists; returns how many ran. A refusal at prepare time
/// (`Unsupported`: a shape an own kernel does not take) is skipped, anything else fails.
fn verify_every_implementation(b: &dyn Backend, ws: &[Workload], sets: usize) -> usize {
    let opts = PrepareOptions {
        buffer_sets: sets,
        hot: false,
    };
    let mut ran = 0;
    for w in ws {
        let ins = inputs::generate(w, SEED);
        for imp in b.implementations(w) {
            let mut p = match b.prepare(w, &imp.name, &ins, opts) {
                Ok(p) => p,
                Err(Error::Unsupported(why)) => {
                    eprintln!("{} / {}: refused: {why}", w.name(), imp.name);
                    continue;
                }
                Err(e) => panic!("prepare {} / {}: {e}", w.name(), imp.name),
            };
            let out = p
                .run_verify()
                .unwrap_or_else(|e| panic!("run {} / {}: {e}", w.name(), imp.name));
            let v = verify(w, &ins, &out, SEED);
            assert!(
                v.passed && v.checked_elements > 0,
                "{} / {} failed verification: {v:?}",
                w.name(),
                imp.name
            );
            let t = p
                .run(2)
                .unwrap_or_else(|e| panic!("time {} / {}: {e}", w.name(), imp.name));
            assert!(
                t.is_finite() && t > 0.0,
                "{} / {}: {t} s",
                w.name(),
                imp.name
            );
            ran += 1;
        }
    }
    ran
}

fn matmul_verified(b: &dyn Backend) {
    let ran = verify_every_implementation(b, &matmul_shapes(), 1);
    // Every backend has f32, f16 and bf16 at the least: 4 shapes × 3 dtypes × 2 layouts.
    assert!(ran >= 24, "only {ran} matmul runs on {}", b.device().name);
}

fn attention_verified(b: &dyn Backend) {
    let ran = verify_every_implementation(b, &attention_shapes(), 1);
    assert!(
        ran >= 10,
        "only {ran} attention runs on {}",
        b.device().name
    );
}

fn memory_verified(b: &dyn Backend) {
    let ran = verify_every_implementation(b, &memory_shapes(), 1);
    assert!(ran >= 12, "only {ran} memory runs on {}", b.device().name);
}

/// Host↔device transfers at one page, a ragged size and a megabyte, every direction, pinned
/// and pageable.
fn transfer_shapes() -> Vec<Workload> {
    let mut v = Vec::new();
    for bytes in [4096, 4096 + 12, (1 << 20) + 4] {
        for d in Direction::ALL {
            for m in HostMemory::ALL {
                v.push(Workload::Transfer(TransferSpec::new(d, m, bytes)));
            }
        }
    }
    v
}

fn transfers_verified(b: &dyn Backend) {
    let ran = verify_every_implementation(b, &transfer_shapes(), 1);
    assert!(ran >= 18, "only {ran} transfer runs on {}", b.device().name);
}

/// Every collective on this backend alone, as a group of one device: three thread ranks on
/// the CPU, one rank elsewhere (several devices are tests/interconnect.rs and cuda_gpu.rs).
fn collectives_verified(b: &dyn Backend) {
    let ranks = match b.rank_layout() {
        RankLayout::Threads { .. } => 3,
        RankLayout::OnePerDevice => 1,
    };
    let world = World::single();
    let members = [b];
    let group = Group {
        members: &members,
        world: &world,
    };
    let opts = PrepareOptions {
        buffer_sets: 1,
        hot: false,
    };
    let mut ran = 0;
    for op in CollectiveOp::ALL {
        for dtype in [DType::Bf16, DType::F16, DType::F32] {
            let w = Workload::Collective(CollectiveSpec::new(op, dtype, 3 * 4096 + 48, ranks));
            for imp in b.implementations(&w) {
                let ins = inputs::generate(&w, SEED);
                let mut p = b.prepare_group(&group, &w, &imp.name, &ins, opts).unwrap();
                let out = p.run_verify().unwrap();
                let v = verify(&w, &ins, &out, SEED);
                assert!(
                    v.passed && v.checked_elements > 0,
                    "{} / {}: {v:?}",
                    w.name(),
                    imp.name
                );
                assert!(p.run(2).unwrap() > 0.0);
                ran += 1;
            }
        }
    }
    if ran == 0 && b.kind() == gpuvet::backend::BackendKind::Cuda {
        let probe = Workload::Collective(CollectiveSpec::new(
            CollectiveOp::AllReduce,
            DType::Bf16,
            4096,
            1,
        ));
        let why = b
            .check(&probe, "nccl")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        common::say_skip("cuda::collectives_as_a_group_of_one_device", &why);
        return;
    }
    assert_eq!(ran, 15, "{} collective runs on {}", ran, b.device().name);
}

fn rotated_buffer_sets_verified(b: &dyn Backend) {
    let ws = [
        matmul_shapes()[8].clone(),
        attention_shapes()[3].clone(),
        memory_shapes()[5].clone(),
    ];
    let ran = verify_every_implementation(b, &ws, 3);
    assert!(ran >= 3, "only {ran} rotated runs on {}", b.device().name);
}

fn cpu() -> Box<dyn Backend> {
    Box::new(CpuBackend::new(2).expect("a 2-thread pool starts"))
}

fn mock() -> Box<dyn Backend> {
    Box::new(MockBackend::new())
}

/// The first GPU, or `None` after a visible SKIP line (a failure with GPUVET_REQUIRE_GPU=1).
fn gpu(test: &str) -> Option<Box<dyn Backend>> {
    let why = match gpuvet::backend::cuda::open_all() {
        Ok(mut b) if !b.is_empty() => return Some(b.remove(0)),
        Ok(_) => "no CUDA device".to_string(),
        Err(e) => e.to_string(),
    };
    common::skip_unless_required("GPUVET_REQUIRE_GPU", test, &why)
}

/// Expands each `name => body` into `cpu::name`, `mock::name` and `cuda::name`.
macro_rules! on_every_backend {
    ($($name:ident => $body:ident),* $(,)?) => {
        mod cpu {
            $(#[test] fn $name() { super::$body(super::cpu().as_ref()) })*
        }
        mod mock {
            $(#[test] fn $name() { super::$body(super::mock().as_ref()) })*
        }
        mod cuda {
            $(#[test] fn $name() {
                if let Some(b) = super::gpu(concat!("cuda::", stringify!($name))) {
                    super::$body(b.as_ref())
                }
            })*
        }
    };
}

on_every_backend! {
    matmul_odd_shapes => matmul_verified,
    attention_odd_shapes => attention_verified,
    memory_ragged_sizes => memory_verified,
    rotated_buffer_sets => rotated_buffer_sets_verified,
    transfers_every_direction => transfers_verified,
    collectives_as_a_group_of_one_device => collectives_verified,
}
