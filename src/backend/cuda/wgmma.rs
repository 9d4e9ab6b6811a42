//! The Hopper GEMM (`kernels/matmul_wgmma.cu`, implementation `wgmma`): TMA tensor maps,
//! a persistent grid sized by the SM count, the dynamic shared memory opt-in.
//!
//! | dtype | kernel | tile | stages |
//! |---|---|---|---|
//! | bf16, f16 (f32 accumulate, 16-bit out) | `matmul.wgmma.{bf16,f16}.{nk,kn}` | 128×256 | 4 |
//! | fp8 e4m3 (f32 promotion, bf16 out) | `matmul.wgmma.e4m3.nk` (a `kn` B is uploaded transposed) | 128×128 | 6 |
//!
//! Only sm_90a (H100/H200: compute capability 9.0) has wgmma and setmaxnreg; elsewhere the
//! implementation is refused with that reason. Decode shapes (M ≤ 64) run the split-K
//! `mma.sync` path of `own_matmul` instead: a 128-row wgmma tile would multiply padding and
//! the grid would have a block for few SMs; the notes say so.
//!
//! TMA needs every row pitch to be a multiple of 16 bytes. Shapes whose rows are not (K of A,
//! the stored row of B) are uploaded with rows padded to the next multiple of 16 bytes (the
//! tensor map keeps the true extents, so TMA fills zeros past them); the notes say so.
//!
//! This file holds the host side whole so that the implementation-table rework of
//! `backend/cuda/mod.rs` (a separate branch) needs one row for it: `plan`, `implementation`,
//! `WgmmaRun::new`.

use super::device::Gpu;
use super::error::cu;
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel, TensorMapArg};
use super::matmul::{self, transpose_bytes, Set};
use super::own_matmul;
use super::run::{upload, CudaRun, Exec, Output};
use crate::backend::ImplInfo;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::{BLayout, MatmulSpec};
use cudarc::driver::sys::{
    self as ds, CUfunction_attribute_enum as FnAttr, CUtensorMap, CUtensorMapDataType as TmType,
};

/// Implementation name of the Hopper kernel.
pub const WGMMA: &str = "wgmma";

/// Rows of a CTA tile (two consumer warpgroups of 64).
pub const BM: u32 = 128;
/// Bytes of K per tile row and stage: one 128-byte swizzle row.
pub const ROW_BYTES: u32 = 128;
/// Three warpgroups: a producer and two consumers.
pub const THREADS: u32 = 384;

/// The tile of one input type; must match `WgCfg` in the .cu file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WgTile {
    pub bn: u32,
    pub stages: u32,
    pub elem: u32,
}

impl WgTile {
    pub fn of(dtype: DType) -> Option<WgTile> {
        match dtype {
            DType::Bf16 | DType::F16 => Some(WgTile {
                bn: 256,
                stages: 4,
                elem: 2,
            }),
            DType::Fp8E4m3 => Some(WgTile {
                bn: 128,
                stages: 6,
                elem: 1,
            }),
            _ => None,
        }
    }

    /// K elements per stage.
    pub fn bk(&self) -> u32 {
        ROW_BYTES / self.elem
    }

    /// Bytes TMA brings per stage (A box + B boxes): the full box always counts, even where
    /// it lies outside the matrix.
    pub fn stage_bytes(&self) -> u32 {
        (BM + self.bn) * ROW_BYTES
    }

    /// Dynamic shared memory: the stages, 1 KiB to align the 128-byte swizzle atoms, and the
    /// full/empty mbarriers.
    pub fn smem_bytes(&self) -> u32 {
        self.stages * self.stage_bytes() + 1024 + 256
    }
}

/// How a GEMM runs under the `wgmma` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WgLaunch {
    /// The Hopper kernel.
    Tma(TmaLaunch),
    /// A decode shape, handed to the split-K mma.sync path.
    Decode(own_matmul::Launch),
}

/// One launch of the Hopper kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmaLaunch {
    pub kernel: KernelId,
    pub tile: WgTile,
    /// Output tiles; the persistent grid walks them.
    pub tiles: u64,
    /// CTAs: min(tiles, SMs), one per SM.
    pub grid: u32,
    /// B is uploaded transposed (fp8 `kn`: wgmma reads fp8 K-major only).
    pub transpose_b_on_host: bool,
    /// Row pitches in bytes as uploaded (A, B as the kernel reads it).
    pub pitch_a: u64,
    pub pitch_b: u64,
    /// The kernel reads B as N×K (K-major).
    pub b_nk: bool,
}

impl TmaLaunch {
    /// Whether any operand is uploaded with padded rows.
    pub fn padded(&self, spec: &MatmulSpec) -> bool {
        let e = self.tile.elem as u64;
        let b_row = if self.b_nk { spec.k } else { spec.n };
        self.pitch_a != spec.k * e || self.pitch_b != b_row * e
    }
}

fn pitch(elems: u64, elem: u32) -> u64 {
    (elems * elem as u64).div_ceil(16) * 16
}

/// The `wgmma` launch for `spec` on a GPU of compute capability `cc` with `sms` SMs and
/// `smem_optin` bytes of opt-in shared memory per block, or why it cannot run there. Pure.
pub fn plan(spec: &MatmulSpec, cc: (i32, i32), sms: u32, smem_optin: u64) -> Result<WgLaunch> {
    if cc != (9, 0) {
        return Err(Error::unsupported(format!(
            "`wgmma` needs an sm_90a GPU (H100/H200, compute capability 9.0): wgmma, TMA and setmaxnreg as used here exist nowhere else; this GPU is {}.{} (use `mma`)",
            cc.0, cc.1
        )));
    }
    let tile = WgTile::of(spec.dtype).ok_or_else(|| {
        Error::unsupported(format!(
            "`wgmma` runs bf16, f16 and fp8_e4m3 (asked for {}); use `mma` for tf32 and int8, `simt` for f32",
            spec.dtype
        ))
    })?;
    if spec.m <= 64 {
        let l = own_matmul::plan(spec, own_matmul::MMA, cc, sms)?;
        return Ok(WgLaunch::Decode(l));
    }
    let limit = i32::MAX as u64;
    if spec.m > limit || spec.n > limit || spec.k > limit {
        return Err(Error::unsupported(format!(
            "`wgmma` takes M, N and K up to {limit} (shape {}x{}x{})",
            spec.m, spec.n, spec.k
        )));
    }
    if (tile.smem_bytes() as u64) > smem_optin {
        return Err(Error::unsupported(format!(
            "`wgmma` needs {} B of shared memory per block; this GPU allows {smem_optin}",
            tile.smem_bytes()
        )));
    }
    use KernelId::*;
    let (kernel, b_nk, transpose) = match (spec.dtype, spec.b_layout) {
        (DType::Bf16, BLayout::Nk) => (MatmulWgmmaBf16Nk, true, false),
        (DType::Bf16, BLayout::Kn) => (MatmulWgmmaBf16Kn, false, false),
        (DType::F16, BLayout::Nk) => (MatmulWgmmaF16Nk, true, false),
        (DType::F16, BLayout::Kn) => (MatmulWgmmaF16Kn, false, false),
        (_, layout) => (MatmulWgmmaE4m3Nk, true, layout == BLayout::Kn),
    };
    let tiles = spec.m.div_ceil(BM as u64) * spec.n.div_ceil(tile.bn as u64);
    Ok(WgLaunch::Tma(TmaLaunch {
        kernel,
        tile,
        tiles,
        grid: tiles.min(sms.max(1) as u64) as u32,
        transpose_b_on_host: transpose,
        pitch_a: pitch(spec.k, tile.elem),
        pitch_b: pitch(if b_nk { spec.k } else { spec.n }, tile.elem),
        b_nk,
    }))
}

/// The `wgmma` entry of the implementation list, when it can run `spec` here.
pub fn implementation(
    spec: &MatmulSpec,
    cc: (i32, i32),
    sms: u32,
    smem_optin: u64,
) -> Option<ImplInfo> {
    plan(spec, cc, sms, smem_optin).ok().map(|_| {
        ImplInfo::new(
            WGMMA,
            "gpuvet Hopper kernel: wgmma from shared memory, TMA 128B swizzle, mbarrier ring, producer + 2 consumer warpgroups, persistent grid",
            false,
        )
    })
}

/// The TMA descriptor of a row-major `outer`×`inner` matrix at `ptr` with rows `pitch` bytes
/// apart, read in boxes of `box_inner`×`box_outer` elements with 128-byte swizzle and zero fill.
pub fn encode_2d(
    ptr: u64,
    ty: TmType,
    inner: u64,
    outer: u64,
    pitch: u64,
    box_inner: u32,
    box_outer: u32,
) -> Result<TensorMapArg> {
    let mut map = CUtensorMap { opaque: [0; 16] };
    let dims = [inner, outer];
    let strides = [pitch];
    let boxes = [box_inner, box_outer];
    let elem_strides = [1u32, 1];
    // SAFETY: every pointer names a live local array of the rank (2) the driver reads; the
    // global address is a device allocation the caller keeps alive while the map is used.
    let r = unsafe {
        ds::cuTensorMapEncodeTiled(
            &mut map,
            ty,
            2,
            ptr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            elem_strides.as_ptr(),
            ds::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            ds::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            ds::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            ds::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    cu("encode a TMA tensor map", r.result())?;
    Ok(TensorMapArg(map))
}

/// Row-major `rows`×`cols` bytes of `elem`-byte elements, rows padded to `pitch` bytes.
pub fn pad_rows(src: &[u8], rows: usize, cols: usize, elem: usize, pitch: usize) -> Vec<u8> {
    let row = cols * elem;
    if pitch == row {
        return src.to_vec();
    }
    let mut out = vec![0u8; rows * pitch];
    for r in 0..rows {
        out[r * pitch..r * pitch + row].copy_from_slice(&src[r * row..(r + 1) * row]);
    }
    out
}

/// One buffer set and the tensor maps that point into it.
pub struct WgSet {
    pub set: Set,
    map_a: TensorMapArg,
    map_b: TensorMapArg,
}

/// A prepared `wgmma` run of the Hopper kernel.
pub struct WgmmaRun<'a> {
    gpu: &'a Gpu,
    spec: MatmulSpec,
    launch: TmaLaunch,
    func: Kernel,
}

/// A `wgmma` run: the Hopper kernel, or the split-K path for decode shapes.
pub fn prepare<'a>(
    gpu: &'a Gpu,
    spec: &MatmulSpec,
    inputs: &[Tensor],
    sets: usize,
    policy: String,
) -> Result<Box<dyn crate::backend::Prepared + 'a>> {
    let p = &gpu.props;
    match plan(spec, p.cc, p.sms, p.smem_per_block_optin)? {
        WgLaunch::Decode(_) => Ok(Box::new(own_matmul::OwnMatmulRun::new_via(
            gpu,
            spec,
            own_matmul::MMA,
            inputs,
            sets,
            policy,
            Some(DECODE_NOTE),
        )?)),
        WgLaunch::Tma(l) => Ok(Box::new(WgmmaRun::new(gpu, spec, l, inputs, sets, policy)?)),
    }
}

impl<'a> WgmmaRun<'a> {
    fn new(
        gpu: &'a Gpu,
        spec: &MatmulSpec,
        launch: TmaLaunch,
        inputs: &[Tensor],
        sets: usize,
        policy: String,
    ) -> Result<CudaRun<'a, Self>> {
        let [a_host, b_host] = inputs else {
            return Err(Error::invalid("matmul takes two inputs, A and B"));
        };
        let (m, n, k) = (spec.m as usize, spec.n as usize, spec.k as usize);
        let e = launch.tile.elem as usize;
        let a_bytes = launch.pitch_a * spec.m;
        let b_rows = if launch.b_nk { spec.n } else { spec.k };
        let b_bytes = launch.pitch_b * b_rows;
        let c_bytes = spec.m * spec.n * spec.dtype.matmul_output().size();
        gpu.ensure_fits((a_bytes + b_bytes + c_bytes) * sets.max(1) as u64 + 256)?;
        // Compile before allocating gigabytes, so a compile error costs nothing.
        let func = Kernel::load(gpu, launch.kernel)?;
        cu(
            "allow the wgmma kernel its dynamic shared memory",
            func.func.set_attribute(
                FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                launch.tile.smem_bytes() as i32,
            ),
        )?;
        let a = pad_rows(a_host.as_bytes(), m, k, e, launch.pitch_a as usize);
        let b_stored = if launch.transpose_b_on_host {
            transpose_bytes(b_host.as_bytes(), k, n, e)
        } else {
            b_host.as_bytes().to_vec()
        };
        let (b_r, b_c) = if launch.b_nk { (n, k) } else { (k, n) };
        let b = pad_rows(&b_stored, b_r, b_c, e, launch.pitch_b as usize);
        let ty = match spec.dtype {
            DType::Bf16 => TmType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            DType::F16 => TmType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
            _ => TmType::CU_TENSOR_MAP_DATA_TYPE_UINT8,
        };
        let t = launch.tile;
        let mut bufs = Vec::new();
        for _ in 0..sets.max(1) {
            let set = Set {
                a: upload(gpu, &a)?,
                b: upload(gpu, &b)?,
                d: gpu.alloc(c_bytes as usize)?,
            };
            let map_a = encode_2d(set.a.ptr, ty, spec.k, spec.m, launch.pitch_a, t.bk(), BM)?;
            let map_b = if launch.b_nk {
                encode_2d(set.b.ptr, ty, spec.k, spec.n, launch.pitch_b, t.bk(), t.bn)?
            } else {
                // 64 columns (128 bytes) × BK rows per box; the kernel loads BN/64 of them.
                encode_2d(set.b.ptr, ty, spec.n, spec.k, launch.pitch_b, 64, t.bk())?
            };
            bufs.push(WgSet { set, map_a, map_b });
        }
        let exec = WgmmaRun {
            gpu,
            spec: spec.clone(),
            launch,
            func,
        };
        CudaRun::new(gpu, exec, bufs, policy)
    }
}

impl Exec for WgmmaRun<'_> {
    type Set = WgSet;

    fn enqueue(&self, s: &WgSet) -> Result<()> {
        // Checked against i32 in plan().
        let (m, n, k) = (self.spec.m as i32, self.spec.n as i32, self.spec.k as i32);
        let args = Args::new()
            .tensor_map(&s.map_a)
            .tensor_map(&s.map_b)
            .buf(&s.set.d)
            .i32(m)
            .i32(n)
            .i32(k);
        let dims = Dims {
            grid: (self.launch.grid, 1, 1),
            block: THREADS,
            smem: self.launch.tile.smem_bytes(),
        };
        // SAFETY: the arguments follow the kernel's signature; the tensor maps point into this
        // set's A and B, which (like C) live as long as self and have the extents the maps
        // declare; the dynamic shared memory was allowed at prepare time.
        unsafe { launch(self.gpu, &self.func, dims, args) }
    }

    fn output<'s>(&'s self, set0: &'s WgSet) -> Output<'s> {
        matmul::output(&self.spec, &set0.set)
    }

    fn compute_dtype(&self) -> String {
        match self.spec.dtype {
            DType::Fp8E4m3 => {
                "fp8_e4m3 (f32 accumulate, promoted every 128 K, bf16 out, no scales)".into()
            }
            d => format!("{d} (f32 accumulate)"),
        }
    }

    fn notes(&self) -> Vec<String> {
        let l = &self.launch;
        let mut n = vec![format!(
            "kernel {} ({}), tile {}×{} × {} B of K, {} stages, persistent grid {} CTAs × {} threads over {} tiles, {} B dynamic shared memory",
            l.kernel.id(),
            l.kernel.symbol(),
            BM,
            l.tile.bn,
            ROW_BYTES,
            l.tile.stages,
            l.grid,
            THREADS,
            l.tiles,
            l.tile.smem_bytes()
        )];
        if let Some(r) = self
            .gpu
            .module_log(l.kernel.source())
            .and_then(|log| super::nvrtc::resources_of(&log, l.kernel))
        {
            n.push(format!(
                "{} registers (before setmaxnreg), {} B spill stores, {} B spill loads",
                r.registers, r.spill_stores, r.spill_loads
            ));
        }
        if l.padded(&self.spec) {
            n.push(format!(
                "rows uploaded padded to 16-byte multiples for TMA (A {} B, B {} B per row)",
                l.pitch_a, l.pitch_b
            ));
        }
        if l.transpose_b_on_host {
            n.push(
                "B uploaded transposed (N×K): fp8 wgmma reads K-major operands only; the timed GEMM is that one"
                    .into(),
            );
        }
        n
    }
}

/// The note of a `wgmma` run that went to the decode path.
pub const DECODE_NOTE: &str = "decode shape (M ≤ 64): `wgmma` runs the split-K mma.sync path (a 128-row wgmma tile would multiply padding and leave SMs idle)";

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(m: u64, n: u64, k: u64, dtype: DType, b_layout: BLayout) -> MatmulSpec {
        MatmulSpec {
            m,
            n,
            k,
            dtype,
            b_layout,
        }
    }

    const H200: ((i32, i32), u32, u64) = ((9, 0), 132, 232_448);

    fn tma(s: &MatmulSpec) -> TmaLaunch {
        match plan(s, H200.0, H200.1, H200.2).unwrap() {
            WgLaunch::Tma(l) => l,
            WgLaunch::Decode(_) => panic!("{s:?} went to the decode path"),
        }
    }

    #[test]
    fn tiles_match_the_kernel_source() {
        let src = KernelId::MatmulWgmmaBf16Nk.source().text();
        for line in [
            "template <> struct WgCfg<WG_BF16> { enum { ESZ = 2, BN = 256, STAGES = 4 }; };",
            "template <> struct WgCfg<WG_F16> { enum { ESZ = 2, BN = 256, STAGES = 4 }; };",
            "template <> struct WgCfg<WG_E4M3> { enum { ESZ = 1, BN = 128, STAGES = 6 }; };",
            "#define WG_BM 128",
            "#define WG_THREADS 384",
            "#define WG_ROW_BYTES 128",
        ] {
            assert!(src.contains(line), "{line}");
        }
        for d in [DType::Bf16, DType::F16, DType::Fp8E4m3] {
            let t = WgTile::of(d).unwrap();
            // 197 888 B: fits the 227 KiB opt-in of H100/H200 with room to spare
            assert_eq!(t.smem_bytes(), 197_888, "{d}");
            assert_eq!(t.bk() * t.elem, ROW_BYTES);
        }
    }

    #[test]
    fn every_dtype_and_layout_gets_its_kernel() {
        for (d, lay, want, transpose) in [
            (DType::Bf16, BLayout::Nk, KernelId::MatmulWgmmaBf16Nk, false),
            (DType::Bf16, BLayout::Kn, KernelId::MatmulWgmmaBf16Kn, false),
            (DType::F16, BLayout::Nk, KernelId::MatmulWgmmaF16Nk, false),
            (DType::F16, BLayout::Kn, KernelId::MatmulWgmmaF16Kn, false),
            (
                DType::Fp8E4m3,
                BLayout::Nk,
                KernelId::MatmulWgmmaE4m3Nk,
                false,
            ),
            (
                DType::Fp8E4m3,
                BLayout::Kn,
                KernelId::MatmulWgmmaE4m3Nk,
                true,
            ),
        ] {
            let l = tma(&spec(8192, 8192, 8192, d, lay));
            assert_eq!(l.kernel, want);
            assert_eq!(l.transpose_b_on_host, transpose);
            assert_eq!(l.grid, 132, "persistent: one CTA per SM");
            assert!(!l.padded(&spec(8192, 8192, 8192, d, lay)));
        }
        // 8192³ bf16: 64 × 32 tiles of 128×256 walked by 132 CTAs
        assert_eq!(
            tma(&spec(8192, 8192, 8192, DType::Bf16, BLayout::Nk)).tiles,
            2048
        );
        // fewer tiles than SMs: one CTA per tile
        let l = tma(&spec(129, 300, 64, DType::Bf16, BLayout::Nk));
        assert_eq!((l.tiles, l.grid), (4, 4));
    }

    #[test]
    fn unaligned_rows_are_padded_for_tma() {
        // K = 513 bf16: rows of 1026 bytes → 1040
        let s = spec(127, 255, 513, DType::Bf16, BLayout::Nk);
        let l = tma(&s);
        assert_eq!((l.pitch_a, l.pitch_b), (1040, 1040));
        assert!(l.padded(&s));
        // kn reads B rows of N = 255 → 510 bytes → 512
        let s = spec(4097, 4095, 4096, DType::F16, BLayout::Kn);
        let l = tma(&s);
        assert_eq!((l.pitch_a, l.pitch_b), (8192, 8192));
        assert!(l.padded(&s));
        let p = pad_rows(&[1, 2, 3, 4, 5, 6], 2, 3, 1, 16);
        assert_eq!(p.len(), 32);
        assert_eq!((&p[..3], &p[16..19]), (&[1u8, 2, 3][..], &[4u8, 5, 6][..]));
        assert!(p[3..16].iter().all(|&b| b == 0));
    }

    #[test]
    fn decode_shapes_take_the_split_k_path() {
        for m in [1, 16, 64] {
            match plan(
                &spec(m, 8192, 8192, DType::Bf16, BLayout::Nk),
                H200.0,
                H200.1,
                H200.2,
            )
            .unwrap()
            {
                WgLaunch::Decode(l) => assert!(l.split.is_some(), "M = {m}"),
                WgLaunch::Tma(_) => panic!("M = {m} should be a decode shape"),
            }
        }
        assert!(matches!(
            plan(
                &spec(65, 8192, 8192, DType::Bf16, BLayout::Nk),
                H200.0,
                H200.1,
                H200.2
            ),
            Ok(WgLaunch::Tma(_))
        ));
    }

    #[test]
    fn refusals_say_why() {
        let s = spec(256, 256, 256, DType::Bf16, BLayout::Nk);
        for cc in [(8, 0), (8, 9), (10, 0), (12, 0)] {
            let e = plan(&s, cc, 132, 232_448).unwrap_err().to_string();
            assert!(e.contains("sm_90a") && e.contains("use `mma`"), "{e}");
            assert!(implementation(&s, cc, 132, 232_448).is_none());
        }
        for d in [DType::F32, DType::Tf32, DType::Int8, DType::Fp8E5m2] {
            let e = plan(&spec(256, 256, 256, d, BLayout::Nk), H200.0, H200.1, H200.2)
                .unwrap_err()
                .to_string();
            assert!(e.contains("bf16, f16 and fp8_e4m3"), "{d}: {e}");
        }
        let e = plan(&s, H200.0, H200.1, 100_000).unwrap_err().to_string();
        assert!(e.contains("shared memory"), "{e}");
        assert!(implementation(&s, H200.0, H200.1, H200.2).is_some());
    }
}
