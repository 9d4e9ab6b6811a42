//! `flash-sm90`: the FA3-style prefill kernel for Hopper (`kernels/flash_fwd_sm90.cu`, sm_90a
//! only): TMA loads of Q, K and V through tensor maps, a producer warpgroup and two consumer
//! warpgroups, SS-wgmma for Q·Kᵀ, RS-wgmma for P·V, softmax overlapped with the GEMMs.
//!
//! Same workload, inputs, output and verification as `flash` (`own_attention.rs`); on sm_90a
//! it is listed first among the own attention kernels, so `--impl default` picks it for
//! prefill there. Elsewhere, and for head dims other than 64/128, dtypes other than
//! bf16/f16, or decode lengths, [`plan`] says why it cannot run.
//!
//! Everything that decides the launch (grid, shared memory, the tensor-map geometry) is pure
//! data computed by [`plan`] and [`map_geometry`], unit-tested without a GPU. It is one row of
//! the implementation table (`registry.rs`): [`plan`] is its check, [`prepare`] its factory;
//! the buffer sets and their tensor maps (one per Q, K, V, encoded per set by `tma::encode`)
//! come from its `SetLayout`, and [`Sm90Run`] only launches.

use super::device::Gpu;
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel};
use super::own_attention::{not_compiled, out_type, Limits, CAUSAL_SKIP_NOTE};
use super::row::{Built, PrepareCtx};
use super::run::{Buffers, Exec, Output, PlannedRun, SetLayout};
use super::tma::MapGeometry;
use crate::dtype::{AttentionPath, ComputeType, DType};
use crate::error::{Error, Result};
use crate::workload::{AttentionSpec, DECODE_MAX_Q_LEN};

/// Implementation name.
pub const IMPL: &str = "flash-sm90";

/// The kernel's compile-time geometry (`FA3_*` in flash_fwd_sm90.cu; a test holds both sides
/// to the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Threads per CTA: a producer and two consumer warpgroups.
    pub threads: u32,
    /// Query rows per CTA, 64 per consumer warpgroup.
    pub rows: u64,
    /// Keys per K/V tile.
    pub keys: u64,
    /// Tiles in the K/V ring.
    pub stages: u64,
    /// Width of a TMA box: one 128-byte swizzle row of 16-bit values.
    pub box_cols: u64,
}

/// The geometry the kernel is compiled with.
pub const FA3: Geometry = Geometry {
    threads: 384,
    rows: 128,
    keys: 128,
    stages: 2,
    box_cols: 64,
};

impl Geometry {
    /// Dynamic shared memory of one CTA: Q, the K and V rings, 128 bytes of mbarriers and
    /// 1 KiB of slack to align the tiles to 1024 bytes (`Fa3Layout<D>::BYTES` in the kernel).
    pub fn smem_bytes(&self, head_dim: u64) -> u64 {
        (self.rows + 2 * self.stages * self.keys) * head_dim * 2 + 128 + 1024
    }
}

/// One launch of the kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sm90Plan {
    pub kernel: KernelId,
    pub grid: (u32, u32, u32),
    pub smem: u32,
    /// Softmax scale 1/√D times log2(e): the kernel exponentiates in base 2.
    pub scale_log2: f32,
}

impl Sm90Plan {
    /// The launch dimensions.
    pub fn dims(&self) -> Dims {
        Dims {
            grid: self.grid,
            block: FA3.threads,
            smem: self.smem,
        }
    }

    /// What a result of this launch of `a` says about how it ran.
    pub fn notes(&self, a: &AttentionSpec) -> Vec<String> {
        let Geometry {
            rows, keys, stages, ..
        } = FA3;
        let what = format!(
            "producer + 2 consumer warpgroups, {rows}×{keys} tiles, {stages}-stage TMA ring"
        );
        let mut n = vec![super::attention::launch_note(IMPL, &self.dims(), &what)];
        if a.causal {
            n.push(CAUSAL_SKIP_NOTE.into());
        }
        n
    }
}

fn kernel_for(dtype: DType, d: u64) -> Result<KernelId> {
    use KernelId as K;
    Ok(match (dtype, d) {
        (DType::Bf16, 64) => K::FlashFwdSm90Bf16D64,
        (DType::Bf16, 128) => K::FlashFwdSm90Bf16D128,
        (DType::F16, 64) => K::FlashFwdSm90F16D64,
        (DType::F16, 128) => K::FlashFwdSm90F16D128,
        (dtype, d) => {
            return Err(not_compiled(
                &format!("`{IMPL}`"),
                "bf16 and f16 (wgmma)",
                dtype,
                d,
            ))
        }
    })
}

fn fits(what: &str, v: u64, max: u64) -> Result<u32> {
    if v > max {
        return Err(Error::unsupported(format!(
            "`{IMPL}`: {what} ({v}) exceeds the launch limit {max}"
        )));
    }
    Ok(v as u32)
}

/// The launch for `a` on a device with `lim`, or why it cannot run there.
pub fn plan(a: &AttentionSpec, lim: &Limits) -> Result<Sm90Plan> {
    if lim.cc != (9, 0) {
        return Err(Error::unsupported(format!(
            "`{IMPL}` needs sm_90a (Hopper: wgmma, TMA, setmaxnreg); this GPU is {}.{}: use `flash`",
            lim.cc.0, lim.cc.1
        )));
    }
    let kernel = kernel_for(a.dtype, a.head_dim)?;
    if a.q_len <= DECODE_MAX_Q_LEN {
        return Err(Error::unsupported(format!(
            "`{IMPL}` is a prefill kernel (q length > {DECODE_MAX_Q_LEN}); q length {} is decode: use `flash-decode`",
            a.q_len
        )));
    }
    let i32_max = i32::MAX as u64;
    for (what, v) in [
        ("q length", a.q_len),
        ("kv length", a.kv_len),
        ("q heads", a.q_heads),
        // TMA's outermost coordinate (b·H) is an int32 too.
        ("batch × q heads", a.batch * a.q_heads),
    ] {
        fits(what, v, i32_max)?;
    }
    let smem = FA3.smem_bytes(a.head_dim);
    if smem > lim.smem_per_block_optin {
        return Err(Error::unsupported(format!(
            "`{IMPL}` with head dim {} needs {smem} bytes of shared memory per block; this GPU allows {}",
            a.head_dim, lim.smem_per_block_optin
        )));
    }
    Ok(Sm90Plan {
        kernel,
        grid: (
            fits("query tiles", a.q_len.div_ceil(FA3.rows), i32_max)?,
            fits("q heads", a.q_heads, 65535)?,
            fits("batch", a.batch, 65535)?,
        ),
        smem: smem as u32,
        scale_log2: (a.scale() * std::f64::consts::LOG2_E) as f32,
    })
}

/// The map of one of Q, K, V: the tensor [B·H, L, D] of 16-bit values, one head per box of 64
/// columns (one 128-byte swizzle span) × 128 rows. Rows past L (a tail tile) read as zeros
/// because the heads are their own dimension: a box never spills into the next head.
pub fn map_geometry(dtype: DType, heads: u64, len: u64, d: u64) -> MapGeometry {
    MapGeometry::stacked(dtype, heads, len, d, FA3.box_cols as u32, FA3.rows as u32)
}

/// The buffer set of a `flash-sm90` run: Q, K, V as the `flash` kernels have them, O, and a
/// tensor map over each of Q, K and V.
pub fn set_layout<'h>(a: &AttentionSpec, [q, k, v]: [&'h [u8]; 3]) -> Result<SetLayout<'h>> {
    let (d, hq, hkv) = (a.head_dim, a.batch * a.q_heads, a.batch * a.kv_heads);
    super::attention::set_layout(a, q, [k.into(), v.into()], a.elem_bytes_kv())?
        .tensor_map(0, map_geometry(a.dtype, hq, a.q_len, d))?
        .tensor_map(1, map_geometry(a.dtype, hkv, a.kv_len, d))?
        .tensor_map(2, map_geometry(a.dtype, hkv, a.kv_len, d))
}

/// Device bytes a run allocates: Q, K, V and O of every set (no scratch: S stays on chip).
pub fn memory_needed(spec: &AttentionSpec, sets: usize) -> u64 {
    spec.bytes() * sets.max(1) as u64
}

/// The prepared `flash-sm90` run of `spec`.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, spec: &AttentionSpec) -> Built<'a> {
    let gpu = ctx.gpu;
    let plan = plan(spec, &Limits::of(&gpu.props))?;
    gpu.ensure_fits(memory_needed(spec, ctx.sets))?;
    let qkv = super::attention::qkv(spec, ctx.inputs)?;
    // Compile and configure before allocating, so a compile error costs nothing.
    let kernel = Kernel::load_with_smem(gpu, plan.kernel, plan.smem)?;
    let layout = set_layout(spec, qkv)?;
    let exec = PlannedRun {
        spec: spec.clone(),
        plan,
        kernel,
    };
    ctx.run(exec, layout)
}

/// A prepared `flash-sm90` run.
impl Exec for PlannedRun<AttentionSpec, Sm90Plan> {
    fn enqueue(&self, gpu: &Gpu, set: &Buffers) -> Result<()> {
        let [q, k, v] = [0, 1, 2].map(|i| &set.maps[i]);
        let args = Args::new().tensor_map(q).tensor_map(k).tensor_map(v);
        // No log-sum-exp output: a null pointer.
        let args = args.buf(&set.output).ptr(0);
        let args = super::attention::dim_args(args, &self.spec, self.plan.scale_log2);
        let dims = self.plan.dims();
        // SAFETY: the arguments follow gv_flash_fwd_sm90_*(TensorMap×3, u16*, float* (null),
        // int×5, float); the maps describe this set's Q, K and V (checked against their sizes
        // by the layout), which like O live as long as the run.
        unsafe { launch(gpu, &self.kernel, dims, args) }
    }

    fn output(&self) -> Output {
        super::attention::output(&self.spec, out_type(self.spec.dtype))
    }

    fn compute_dtype(&self) -> ComputeType {
        ComputeType::Attention {
            inputs: self.spec.dtype,
            path: AttentionPath::FusedWgmma,
        }
    }

    fn notes(&self, _gpu: &Gpu) -> Vec<String> {
        self.plan.notes(&self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::super::own_attention::tests::{gqa, H200};
    use super::super::own_attention::HEAD_DIMS;
    use super::super::own_matmul::tests::declares;
    use super::*;

    fn spec(q_len: u64, kv_len: u64, d: u64, dtype: DType) -> AttentionSpec {
        gqa(4, q_len, kv_len, d, dtype)
    }

    #[test]
    fn geometry_matches_the_kernel_source() {
        declares(
            KernelId::FlashFwdSm90Bf16D128,
            &[
                &format!("#define FA3_BM {}\n", FA3.rows),
                &format!("#define FA3_BN {}\n", FA3.keys),
                &format!("#define FA3_STAGES {}\n", FA3.stages),
                &format!("#define FA3_THREADS {}\n", FA3.threads),
                &format!("#define FA3_ROW_BYTES {} ", FA3.box_cols * 2),
            ],
        );
    }

    #[test]
    fn grid_and_shared_memory_match_the_kernel() {
        for (lq, tiles) in [(9, 1), (128, 1), (129, 2), (1000, 8), (4097, 33)] {
            let p = plan(&spec(lq, 4097, 128, DType::Bf16), &H200).unwrap();
            assert_eq!(p.grid, (tiles, 32, 4), "q length {lq}");
            assert_eq!(p.kernel, KernelId::FlashFwdSm90Bf16D128);
        }
        // Fa3Layout<128>::BYTES and Fa3Layout<64>::BYTES in the kernel.
        assert_eq!(FA3.smem_bytes(128), 164_992);
        assert_eq!(FA3.smem_bytes(64), 83_072);
        let p = plan(&spec(100, 100, 64, DType::F16), &H200).unwrap();
        assert_eq!(p.kernel, KernelId::FlashFwdSm90F16D64);
        assert_eq!(p.smem, 83_072);
        assert!((p.scale_log2 - 0.125 * std::f32::consts::LOG2_E).abs() < 1e-7);
    }

    #[test]
    fn refusals_say_why() {
        let msg = |a: &AttentionSpec, l: &Limits| plan(a, l).unwrap_err().to_string();
        let a100 = Limits { cc: (8, 0), ..H200 };
        let b200 = Limits {
            cc: (10, 0),
            ..H200
        };
        for l in [a100, b200] {
            let m = msg(&spec(4096, 4096, 128, DType::Bf16), &l);
            assert!(m.contains("sm_90a") && m.contains("`flash`"), "{m}");
        }
        assert!(msg(&spec(4096, 4096, 96, DType::Bf16), &H200).contains("head dims"));
        assert!(msg(&spec(4096, 4096, 128, DType::F32), &H200).contains("bf16 and f16"));
        assert!(msg(&spec(1, 4096, 128, DType::Bf16), &H200).contains("flash-decode"));
        let small = Limits {
            smem_per_block_optin: 101_376,
            ..H200
        };
        assert!(msg(&spec(4096, 4096, 128, DType::Bf16), &small).contains("shared memory"));
        assert!(plan(&spec(4096, 4096, 64, DType::Bf16), &small).is_ok());
        for e in [
            plan(&spec(4096, 4096, 256, DType::Bf16), &H200).unwrap_err(),
            plan(&spec(4096, 4096, 128, DType::Bf16), &a100).unwrap_err(),
        ] {
            assert!(matches!(e, Error::Unsupported(_)), "{e}");
        }
    }

    #[test]
    fn each_set_maps_q_k_and_v_over_their_own_heads() {
        let a = spec(1000, 4097, 64, DType::F16);
        let (q, kv) = (a.elem_bytes_q() as usize, a.elem_bytes_kv() as usize);
        let (qb, kb) = (vec![0u8; q], vec![0u8; kv]);
        set_layout(&a, [&qb, &kb, &kb]).unwrap();
        // a K of the wrong size is refused before any map is declared over it
        let e = set_layout(&a, [&qb, &kb[1..], &kb]).err().unwrap();
        assert!(e.to_string().contains("input 1"), "{e}");
    }

    #[test]
    fn tensor_maps_keep_each_head_apart() {
        // GQA: Q over B·Hq heads, K/V over B·Hkv; strides in bytes, 16-byte multiples as TMA
        // requires; the box is one 128-byte swizzle row wide and one tile tall.
        let g = map_geometry(DType::Bf16, 4 * 32, 1000, 128);
        assert_eq!(g.dims, [128, 1000, 128]);
        assert_eq!(g.strides, [256, 1000 * 256]);
        assert_eq!(g.boxes, [64, 128, 1]);
        for d in HEAD_DIMS {
            let g = map_geometry(DType::F16, 3, 17, d);
            g.check().unwrap();
            assert_eq!(g.boxes[0] as u64 * 2, 128, "one 128-byte swizzle span");
            assert_eq!(d % g.boxes[0] as u64, 0);
        }
    }

    #[test]
    fn notes_name_the_shape_of_the_launch() {
        let a = spec(4096, 4096, 128, DType::Bf16);
        let n = plan(&a, &H200).unwrap().notes(&a);
        assert!(n[0].contains("32×32×4 blocks × 384 threads"), "{n:?}");
        assert!(n.iter().any(|l| l.contains("causal")));
    }
}
