//! GPU tests of the CUDA backend: every workload verified against the f64 reference, timing,
//! telemetry, inventory, and a too-big request refused before allocating.
//!
//! They need an NVIDIA GPU. Elsewhere each test prints a visible SKIP line with the reason
//! and passes; set GPUVET_REQUIRE_GPU=1 (scripts/gpu-check.sh does) to make a missing GPU
//! a failure instead.

mod common;

use common::{attention, matmul};
use gpuvet::backend::{cuda, Backend, PrepareOptions};
use gpuvet::dtype::DType;
use gpuvet::inputs;
use gpuvet::tensor::Tensor;
use gpuvet::verify::verify;
use gpuvet::workload::{BLayout, MemOp, MemorySpec, Workload};
use gpuvet::Error;

/// The CUDA backends, or `None` after printing why the test is skipped.
fn gpus(test: &str) -> Option<Vec<Box<dyn Backend>>> {
    match cuda::open_all() {
        Ok(b) if !b.is_empty() => Some(b),
        Ok(_) => skip(test, "no CUDA device"),
        Err(e) => skip(test, &e.to_string()),
    }
}

/// Verifies `imp` on `w` (two buffer sets) where this GPU lists it; elsewhere says why not.
/// True when it ran.
fn check_if_listed(b: &dyn Backend, w: &Workload, imp: &str) -> bool {
    if !b.implementations(w).iter().any(|i| i.name == imp) {
        eprintln!(
            "not on this GPU: {} / {imp} ({:?})",
            w.name(),
            b.check(w, imp).err()
        );
        return false;
    }
    check(b, w, imp, 2);
    true
}

/// Runs `f` on the first GPU, or skips as `gpus` does.
fn on_first_gpu(test: &str, f: impl FnOnce(&dyn Backend)) {
    if let Some(gpus) = gpus(test) {
        f(gpus[0].as_ref());
    }
}

fn skip<T>(test: &str, why: &str) -> Option<T> {
    common::skip_unless_required("GPUVET_REQUIRE_GPU", test, why)
}

const OPTS: PrepareOptions = PrepareOptions {
    buffer_sets: 1,
    hot: false,
};

/// Prepares, verifies and times `w` with `imp`; returns the verification detail on failure.
fn check(b: &dyn Backend, w: &Workload, imp: &str, sets: usize) {
    let ins = inputs::generate(w, 42);
    let opts = PrepareOptions {
        buffer_sets: sets,
        ..OPTS
    };
    let mut p = b
        .prepare(w, imp, &ins, opts)
        .unwrap_or_else(|e| panic!("prepare {} / {imp}: {e}", w.name()));
    let out = p
        .run_verify()
        .unwrap_or_else(|e| panic!("run {}: {e}", w.name()));
    let v = verify(w, &ins, &out, 7);
    assert!(
        v.passed,
        "{} / {imp} ({}) failed verification: {:?}",
        w.name(),
        p.compute_dtype(),
        v
    );
    let t = p
        .run(3)
        .unwrap_or_else(|e| panic!("time {}: {e}", w.name()));
    assert!(t.is_finite() && t > 0.0, "{}: {t} s", w.name());
    // Rotating buffer sets and running again must still give a correct set 0.
    let again = p.run_verify().unwrap();
    assert!(verify(w, &ins, &again, 8).passed, "{} second run", w.name());
    eprintln!(
        "ok {} / {imp}: {} max rel err {:.2e}, {:.3} ms/iter, cache {}",
        w.name(),
        v.method,
        v.max_rel_error,
        t / 3.0 * 1e3,
        p.cache_policy()
    );
}

#[test]
fn inventory_is_complete() {
    let Some(gpus) = gpus("inventory_is_complete") else {
        return;
    };
    for b in &gpus {
        let d = b.device();
        assert!(
            d.uuid.as_deref().unwrap().starts_with("GPU-"),
            "{:?}",
            d.uuid
        );
        assert!(d.pci_bus_id.as_deref().unwrap().contains(':'));
        assert!(d.compute_capability.is_some());
        assert!(d.multiprocessors.unwrap() > 0);
        assert!(d.memory_bytes.unwrap() > 0);
        assert!(d.last_level_cache_bytes.unwrap() > 0);
        assert!(d.details.cuda.shared_memory_per_sm_bytes.is_some());
        assert!(b.free_memory().unwrap() > 0);
        eprintln!("{}", serde_json::to_string_pretty(d).unwrap());
        if let Some(n) = b.notice() {
            eprintln!("notice: {n}");
        }
    }
}

#[test]
fn telemetry_is_read() {
    let Some(gpus) = gpus("telemetry_is_read") else {
        return;
    };
    for b in &gpus {
        match b.telemetry() {
            Some(t) => {
                assert!(t.sm_clock_mhz.unwrap_or(0.0) > 0.0, "{t:?}");
                assert!(t.temperature_c.is_some(), "{t:?}");
                eprintln!("{t:?}");
                let d = b.device();
                assert!(d.details.state.pcie_gen_max.is_some(), "{:?}", d.details);
                assert!(
                    d.details.state.ecc_enabled.is_some() || d.details.state.mig_mode.is_some()
                );
            }
            None => {
                skip::<()>(
                    "telemetry_is_read",
                    &b.notice()
                        .unwrap_or_else(|| "NVML did not match the device".into()),
                );
            }
        }
    }
}

#[test]
fn matmul_every_dtype_both_layouts_verified() {
    on_first_gpu("matmul_every_dtype_both_layouts_verified", |b| {
        let mut ran = 0;
        for dtype in DType::ALL {
            for layout in [BLayout::Kn, BLayout::Nk] {
                // N and K multiples of 16 (fp8/int8 alignment); M odd to exercise tails.
                for (m, n, k) in [(257, 192, 320), (1024, 1024, 1024)] {
                    let w = matmul(m, n, k, dtype, layout);
                    if b.implementations(&w).is_empty() {
                        eprintln!(
                            "not on this GPU: {} ({:?})",
                            w.name(),
                            b.check(&w, "cublaslt").err()
                        );
                        continue;
                    }
                    check(b, &w, "cublaslt", 2);
                    ran += 1;
                }
            }
        }
        assert!(ran >= 8, "only {ran} matmul variants ran");
    });
}

#[test]
fn matmul_ragged_shapes_verified() {
    let Some(gpus) = gpus("matmul_ragged_shapes_verified") else {
        return;
    };
    for dtype in [DType::F32, DType::Tf32, DType::F16, DType::Bf16] {
        for layout in [BLayout::Kn, BLayout::Nk] {
            let w = matmul(67, 45, 29, dtype, layout);
            if !gpus[0].implementations(&w).is_empty() {
                check(gpus[0].as_ref(), &w, "cublaslt", 1);
            }
        }
    }
}

#[test]
fn memory_ops_verified_with_ragged_tails() {
    on_first_gpu("memory_ops_verified_with_ragged_tails", |b| {
        for bytes in [(1 << 20) + 12, 64 << 20] {
            for op in MemOp::ALL {
                let w = Workload::Memory(MemorySpec { op, bytes });
                let imps: Vec<String> = b.implementations(&w).into_iter().map(|i| i.name).collect();
                assert!(
                    imps.contains(&"kernel".to_string()),
                    "{imps:?}: {:?}",
                    b.notice()
                );
                for imp in imps {
                    check(b, &w, &imp, 2);
                }
            }
        }
    });
}

#[test]
fn attention_unfused_verified() {
    on_first_gpu("attention_unfused_verified", |b| {
        for dtype in [DType::Bf16, DType::F16, DType::F32] {
            for (q_len, kv_len, causal) in [
                (64, 64, true),
                (37, 101, true),
                (1, 300, true),
                (48, 80, false),
            ] {
                let w = attention(2, (8, 2), (q_len, kv_len), 64, causal, dtype);
                check(b, &w, "unfused", 2);
            }
        }
    });
}

#[test]
fn too_big_requests_are_refused_before_allocating() {
    on_first_gpu("too_big_requests_are_refused_before_allocating", |b| {
        let free = b.free_memory().unwrap();
        // Two arrays of `free` bytes each: twice what is free. The input tensor is a token: the
        // refusal must come before any input is looked at or any memory allocated.
        let w = Workload::Memory(MemorySpec {
            op: MemOp::Copy,
            bytes: free.next_multiple_of(4096),
        });
        let token = Tensor::random("src", vec![4], DType::F32, 1);
        match b.prepare(&w, "kernel", &[token], OPTS) {
            Err(Error::OutOfMemory { need, have, .. }) => {
                assert!(need.0 > have.0);
                eprintln!("refused: need {need}, have {have}");
            }
            Err(e) => panic!("expected OutOfMemory, got {e}"),
            Ok(_) => panic!("a request of twice the free memory was accepted"),
        }
        // Nothing leaked: free memory is back where it was (within 64 MiB of driver noise).
        let after = b.free_memory().unwrap();
        assert!(
            after + (64 << 20) >= free,
            "free went from {free} to {after}"
        );
        // Attention whose S matrix cannot fit (2^36 scores, 384 GiB with P) is refused the same way.
        let a = attention(1, (64, 8), (32768, 32768), 128, true, DType::Bf16);
        let q = Tensor::random("Q", vec![4], DType::Bf16, 1);
        assert!(matches!(
            b.prepare(&a, "unfused", &[q.clone(), q.clone(), q], OPTS),
            Err(Error::OutOfMemory { .. })
        ));
    });
}

#[test]
fn kernels_are_listed_with_registers() {
    let Some(_gpus) = gpus("kernels_are_listed_with_registers") else {
        return;
    };
    let s = cuda::list_kernels(true).unwrap();
    eprintln!("{s}");
    assert!(s.contains("registers"), "{s}");
}

/// The attention spec the own-kernel tests use: q heads = 8, the KV heads give the GQA ratio.
fn attn(
    kv_heads: u64,
    q_len: u64,
    kv_len: u64,
    head_dim: u64,
    causal: bool,
    dtype: DType,
) -> Workload {
    attention(2, (8, kv_heads), (q_len, kv_len), head_dim, causal, dtype)
}

/// `imp` on every (KV heads, q length, kv length, causal) of `shapes` for bf16 and f16, head
/// dims 64 and 128: listed for each, `other` (the flash kernel for the other phase) not, and
/// verified.
fn own_flash_verified(test: &str, imp: &str, other: &str, shapes: &[(u64, u64, u64, bool)]) {
    on_first_gpu(test, |b| {
        for dtype in [DType::Bf16, DType::F16] {
            for head_dim in [64, 128] {
                for &(kv_heads, q_len, kv_len, causal) in shapes {
                    let w = attn(kv_heads, q_len, kv_len, head_dim, causal, dtype);
                    let imps: Vec<String> =
                        b.implementations(&w).into_iter().map(|i| i.name).collect();
                    assert!(imps.iter().any(|i| i == imp), "{}: {imps:?}", w.name());
                    assert!(!imps.iter().any(|i| i == other), "{imps:?}");
                    check(b, &w, imp, 2);
                }
            }
        }
    });
}

#[test]
fn attention_flash_prefill_verified() {
    // GQA ratios 8/8, 8/2 and 8/1; tails of every kind (17, 1000 and 4097 are not multiples of
    // the 64-row and 64-key tiles); causal with q length ≠ kv length.
    own_flash_verified(
        "attention_flash_prefill_verified",
        "flash",
        "flash-decode",
        &[
            (8, 17, 17, true),
            (8, 17, 1000, false),
            (2, 1000, 1000, true),
            (2, 1000, 4097, true),
            (1, 100, 4097, false),
            (1, 4097, 4097, true),
        ],
    );
}

/// `flash-sm90` (FA3-style, sm_90a) on the odd shapes of the `flash` test plus the shortest
/// prefill (9 rows) and one key: verified like every kernel, listed first among the own
/// attention kernels on Hopper (so `--impl default` takes it), refused with a reason elsewhere.
#[test]
fn attention_flash_sm90_verified_or_refused() {
    on_first_gpu("attention_flash_sm90_verified_or_refused", |b| {
        let hopper = b.device().compute_capability.as_deref() == Some("9.0");
        // Both kernel variants a user meets first (bf16 hd 128, f16 hd 64) on every shape, the
        // other two on the first half: the step's time stays inside gpu-check's budget.
        for (i, (kv_heads, q_len, kv_len, causal)) in [
            (8, 9, 1, false),
            (8, 17, 17, true),
            (4, 17, 1000, false),
            (2, 1000, 4097, true),
            (2, 1000, 1000, true),
            (1, 100, 4097, false),
            (1, 4097, 4097, true),
            (8, 4097, 129, false),
        ]
        .into_iter()
        .enumerate()
        {
            let variants: &[(DType, u64)] = if i < 4 {
                &[
                    (DType::Bf16, 128),
                    (DType::F16, 64),
                    (DType::Bf16, 64),
                    (DType::F16, 128),
                ]
            } else {
                &[(DType::Bf16, 128), (DType::F16, 64)]
            };
            for &(dtype, head_dim) in variants {
                let w = attn(kv_heads, q_len, kv_len, head_dim, causal, dtype);
                let imps: Vec<String> = b.implementations(&w).into_iter().map(|i| i.name).collect();
                if !hopper {
                    assert!(!imps.contains(&"flash-sm90".to_string()), "{imps:?}");
                    match b.check(&w, "flash-sm90") {
                        Err(Error::Unsupported(m)) => assert!(m.contains("sm_90a"), "{m}"),
                        other => panic!("flash-sm90 off Hopper: {other:?}"),
                    }
                    continue;
                }
                assert_eq!(
                    imps.get(1).map(String::as_str),
                    Some("flash-sm90"),
                    "{imps:?}"
                );
                check(b, &w, "flash-sm90", 2);
            }
        }
        if hopper {
            for (w, why) in [
                (attn(2, 64, 64, 96, true, DType::Bf16), "head dims"),
                (attn(2, 64, 64, 128, true, DType::F32), "bf16 and f16"),
                (attn(2, 4, 64, 128, true, DType::Bf16), "flash-decode"),
            ] {
                match b.check(&w, "flash-sm90") {
                    Err(Error::Unsupported(m)) => assert!(m.contains(why), "{}: {m}", w.name()),
                    other => panic!("{}: expected Unsupported, got {other:?}", w.name()),
                }
            }
        }
    });
}

#[test]
fn attention_flash_decode_verified() {
    // q length 1 (plain decode) to 8 (speculative), KV lengths from one key to several splits
    // with a ragged last tile, GQA ratios 1, 4 and 8.
    own_flash_verified(
        "attention_flash_decode_verified",
        "flash-decode",
        "flash",
        &[
            (8, 1, 1, true),
            (8, 1, 17, false),
            (2, 1, 1000, true),
            (1, 1, 4097, true),
            (2, 5, 1000, true),
            (1, 8, 4097, true),
            (8, 8, 4097, false),
            (1, 4, 33_000, true),
        ],
    );
}

#[test]
fn attention_flash_refuses_what_it_does_not_compile() {
    on_first_gpu("attention_flash_refuses_what_it_does_not_compile", |b| {
        for (w, imp, why) in [
            (attn(2, 64, 64, 96, true, DType::Bf16), "flash", "head dims"),
            (
                attn(2, 64, 64, 128, true, DType::F32),
                "flash",
                "f16 and bf16",
            ),
            (
                attn(2, 1, 64, 80, true, DType::F16),
                "flash-decode",
                "head dims",
            ),
            (
                attn(2, 4, 64, 128, true, DType::Bf16),
                "flash",
                "flash-decode",
            ),
        ] {
            match b.check(&w, imp) {
                Err(Error::Unsupported(m)) => assert!(m.contains(why), "{}: {m}", w.name()),
                other => panic!("{} / {imp}: expected Unsupported, got {other:?}", w.name()),
            }
        }
    });
}

/// Shapes that exercise every tail of the own matmul kernels: a single element, sizes that are
/// not multiples of any tile or of the 16-byte vector width, a decode-like M = 16 with a wide N,
/// and a single row (GEMV).
const OWN_MATMUL_SHAPES: [(u64, u64, u64); 5] = [
    (1, 1, 1),
    (127, 255, 513),
    (4097, 4095, 4096),
    (16, 28672, 4096),
    (1, 8192, 8192),
];

#[test]
fn own_matmul_kernels_verified_on_odd_shapes() {
    on_first_gpu("own_matmul_kernels_verified_on_odd_shapes", |b| {
        let mut ran = 0;
        for (imp, dtype) in [
            ("simt", DType::F32),
            ("mma", DType::Bf16),
            ("mma", DType::F16),
            ("mma", DType::Int8),
            ("mma", DType::Fp8E4m3),
            ("mma", DType::Tf32),
            ("wgmma", DType::Bf16),
            ("wgmma", DType::F16),
            ("wgmma", DType::Fp8E4m3),
        ] {
            for layout in [BLayout::Kn, BLayout::Nk] {
                for (m, n, k) in OWN_MATMUL_SHAPES {
                    let w = matmul(m, n, k, dtype, layout);
                    ran += usize::from(check_if_listed(b, &w, imp));
                }
            }
        }
        // simt runs on every GPU NVRTC can target: at least its 10 variants.
        assert!(ran >= 10, "only {ran} own matmul variants ran");
    });
}

/// The Hopper kernel on an sm_90a GPU: listed first among the own kernels (the default there),
/// verified on shapes that make the persistent grid walk more tiles than it has CTAs, the ring
/// wrap across tiles, every tail, padded rows, both layouts, and the decode hand-over; refused
/// with a reason on other GPUs.
#[test]
fn wgmma_verified_on_hopper_and_refused_elsewhere() {
    on_first_gpu("wgmma_verified_on_hopper_and_refused_elsewhere", |b| {
        let mm = |m, n, k, dtype, b_layout| matmul(m, n, k, dtype, b_layout);
        if b.device().compute_capability.as_deref() != Some("9.0") {
            let w = mm(256, 256, 256, DType::Bf16, BLayout::Nk);
            match b.check(&w, "wgmma") {
                Err(Error::Unsupported(m)) => assert!(m.contains("sm_90a"), "{m}"),
                other => panic!("wgmma off Hopper: expected Unsupported, got {other:?}"),
            }
            skip::<()>(
                "wgmma_verified_on_hopper_and_refused_elsewhere",
                "not an sm_90a GPU (refusal checked)",
            );
            return;
        }
        let own: Vec<String> = b
            .implementations(&mm(4096, 4096, 4096, DType::Bf16, BLayout::Nk))
            .into_iter()
            .filter(|i| !i.reference)
            .map(|i| i.name)
            .collect();
        assert_eq!(own.first().map(String::as_str), Some("wgmma"), "{own:?}");
        let mut ran = 0;
        for dtype in [DType::Bf16, DType::F16, DType::Fp8E4m3] {
            for layout in [BLayout::Nk, BLayout::Kn] {
                // 2048×2304 bf16: 16 × 9 = 144 tiles on 132 CTAs; K = 1000: 16 K tiles, 4 ring
                // passes, a K tail; 65 rows: the smallest non-decode M; 33×4096: decode hand-over
                for (m, n, k) in [
                    (2048, 2304, 1000),
                    (65, 130, 72),
                    (300, 520, 4100),
                    (33, 4096, 1024),
                ] {
                    check(b, &mm(m, n, k, dtype, layout), "wgmma", 2);
                    ran += 1;
                }
            }
        }
        assert_eq!(ran, 24);
    });
}

/// Decode GEMMs on the split-K path, verified (the partials are poisoned first, so a split that
/// writes nothing fails), for every dtype the mma kernels run.
#[test]
fn mma_split_k_decode_verified() {
    on_first_gpu("mma_split_k_decode_verified", |b| {
        let mut ran = 0;
        for dtype in [
            DType::Bf16,
            DType::F16,
            DType::Int8,
            DType::Fp8E4m3,
            DType::Tf32,
        ] {
            for (m, n, k) in [(1, 4096, 4096), (33, 1000, 3000), (64, 8192, 1032)] {
                let w = matmul(m, n, k, dtype, BLayout::Nk);
                ran += usize::from(check_if_listed(b, &w, "mma"));
            }
        }
        assert!(ran >= 9, "only {ran} split-K runs");
    });
}

#[test]
fn attention_flash_decode_paged_is_identical_to_contiguous() {
    on_first_gpu(
        "attention_flash_decode_paged_is_identical_to_contiguous",
        |b| {
            let verified = |w: &Workload, imp: &str, ins: &[Tensor]| -> Tensor {
                let mut p = b
                    .prepare(w, imp, ins, OPTS)
                    .unwrap_or_else(|e| panic!("prepare {} / {imp}: {e}", w.name()));
                p.run_verify()
                    .unwrap_or_else(|e| panic!("run {} / {imp}: {e}", w.name()))
            };
            for dtype in [DType::Bf16, DType::F16] {
                for head_dim in [64, 128] {
                    // Ragged last pages (17, 1000, 4097 and 33000 keys are not multiples of 16 or 64),
                    // one and several splits, GQA ratios 1, 4 and 8.
                    for (kv_heads, q_len, kv_len) in
                        [(8, 1, 17), (2, 1, 1000), (1, 8, 4097), (2, 4, 33_000)]
                    {
                        let w = attn(kv_heads, q_len, kv_len, head_dim, true, dtype);
                        let ins = inputs::generate(&w, 42);
                        let contiguous = verified(&w, "flash-decode", &ins);
                        for imp in ["flash-decode-paged16", "flash-decode-paged64"] {
                            check(b, &w, imp, 2);
                            let paged = verified(&w, imp, &ins);
                            assert!(
                                paged.as_bytes() == contiguous.as_bytes(),
                                "{} / {imp}: paged output differs from contiguous",
                                w.name()
                            );
                        }
                    }
                }
            }
        },
    );
}

/// Runs a group workload (peer copy, collective) on `members`, verifies and times it.
fn check_group(members: &[&dyn Backend], w: &Workload, imp: &str) {
    let world = gpuvet::world::World::single();
    let group = gpuvet::backend::Group {
        members,
        world: &world,
    };
    let ins = inputs::generate(w, 42);
    let mut p = members[0]
        .prepare_group(&group, w, imp, &ins, OPTS)
        .unwrap_or_else(|e| panic!("prepare {} / {imp}: {e}", w.name()));
    let out = p.run_verify().unwrap();
    let v = verify(w, &ins, &out, 42);
    assert!(v.passed, "{} / {imp}: {v:?}", w.name());
    let t = p.run(3).unwrap();
    eprintln!(
        "ok {} / {imp}: {:.2} GB/s ({})",
        w.name(),
        w.rate(t / 3.0) / 1e9,
        p.notes().join("; ")
    );
}

#[test]
fn transfers_both_ways_pinned_and_pageable_verified() {
    let Some(gpus) = gpus("transfers_both_ways_pinned_and_pageable_verified") else {
        return;
    };
    use gpuvet::workload::{Direction, HostMemory, TransferSpec};
    let pcie = gpuvet::backend::topology::PcieLink::of(gpus[0].device());
    eprintln!("PCIe: {pcie:?}");
    let mut ran = 0;
    for bytes in [4096 + 12, 64 << 20] {
        for direction in Direction::ALL {
            for memory in HostMemory::ALL {
                let w = Workload::Transfer(TransferSpec::new(direction, memory, bytes));
                for imp in gpus[0].implementations(&w) {
                    check(gpus[0].as_ref(), &w, &imp.name, 2);
                    ran += 1;
                }
            }
        }
    }
    // memcpy everywhere, the SM kernel for pinned memory.
    assert_eq!(ran, 2 * 3 * 3, "{ran}");
}

#[test]
fn p2p_every_pair_verified() {
    let Some(gpus) = gpus("p2p_every_pair_verified") else {
        return;
    };
    if gpus.len() < 2 {
        skip::<()>(
            "p2p_every_pair_verified",
            "needs ≥ 2 GPUs, this machine has 1",
        );
        return;
    }
    use gpuvet::workload::{P2pOp, P2pSpec};
    let devices: Vec<_> = gpus.iter().map(|g| g.device().clone()).collect();
    eprintln!("{}", gpuvet::interconnect::matrix(&devices, false));
    for (a, b) in [(0, 1), (1, 0)] {
        for op in P2pOp::ALL {
            for bidir in [false, true] {
                let w = Workload::P2p(P2pSpec::new(op, bidir, (16 << 20) + 12));
                let members = [gpus[a].as_ref(), gpus[b].as_ref()];
                for imp in gpus[a].implementations(&w) {
                    check_group(&members, &w, &imp.name);
                }
            }
        }
    }
}

#[test]
fn nccl_collectives_every_op_verified() {
    let Some(gpus) = gpus("nccl_collectives_every_op_verified") else {
        return;
    };
    if let Err(why) = gpuvet::backend::cuda::nccl::nccl() {
        skip::<()>("nccl_collectives_every_op_verified", &why);
        return;
    }
    use gpuvet::workload::{CollectiveOp, CollectiveSpec};
    let members: Vec<&dyn Backend> = gpus.iter().map(|g| g.as_ref()).collect();
    let n = members.len() as u32;
    if n < 2 {
        // One rank still exercises the library, the communicator and the buffers.
        skip::<()>(
            "nccl_collectives_across_gpus",
            "needs ≥ 2 GPUs, this machine has 1: running one rank only",
        );
    }
    for op in CollectiveOp::ALL {
        for dtype in [DType::Bf16, DType::F16, DType::F32] {
            for bytes in [(1 << 20) + 6 * 64, 64 << 20] {
                let w = Workload::Collective(CollectiveSpec::new(op, dtype, bytes, n));
                check_group(&members, &w, "nccl");
            }
        }
    }
}
