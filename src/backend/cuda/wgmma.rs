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
//! `wgmma` is one row of the implementation table (`registry.rs`): [`plan`] is its check and
//! [`prepare`] its factory.

use super::device::{Gpu, Props};
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel};
use super::matmul::{self, transpose_bytes};
use super::own_matmul::{self, Family};
use super::row::{Built, PrepareCtx};
use super::run::{Buffers, Exec, Output, PlannedRun, SetLayout};
use super::tma::MapGeometry;
use crate::dtype::{ComputeType, DType};
use crate::error::{Error, Result};
use crate::workload::{BLayout, MatmulSpec};
use std::borrow::Cow;

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
        let l = own_matmul::plan(spec, Family::Mma, cc, sms)?;
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

/// Row-major `rows`×`cols` bytes of `elem`-byte elements, rows padded to `pitch` bytes (the
/// bytes as they are when no padding is needed).
pub fn pad_rows(
    src: Cow<'_, [u8]>,
    rows: usize,
    cols: usize,
    elem: usize,
    pitch: usize,
) -> Cow<'_, [u8]> {
    let row = cols * elem;
    if pitch == row {
        return src;
    }
    let mut out = vec![0u8; rows * pitch];
    for r in 0..rows {
        out[r * pitch..r * pitch + row].copy_from_slice(&src[r * row..(r + 1) * row]);
    }
    Cow::Owned(out)
}

/// A `wgmma` run: the Hopper kernel, or the split-K `mma` path for decode shapes.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, spec: &MatmulSpec) -> Built<'a> {
    let p = &ctx.gpu.props;
    match plan(spec, p.cc, p.sms, p.sm.smem_per_block_optin)? {
        WgLaunch::Decode(_) => own_matmul::prepare_via(ctx, spec, Family::Mma, Some(DECODE_NOTE)),
        WgLaunch::Tma(l) => prepare_tma(ctx, spec, l),
    }
}

/// The buffer set of the Hopper kernel: A and B as TMA reads them (B transposed for fp8 `kn`,
/// rows padded to 16-byte multiples), C, and one tensor map over each of A and B.
pub fn set_layout<'h>(
    spec: &MatmulSpec,
    l: &TmaLaunch,
    a: &'h [u8],
    b: &'h [u8],
) -> Result<SetLayout<'h>> {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let e = l.tile.elem as usize;
    let elem = e as u64;
    super::run::check_len(0, a, m * k * elem)?;
    super::run::check_len(1, b, k * n * elem)?;
    let b: Cow<[u8]> = if l.transpose_b_on_host {
        Cow::Owned(transpose_bytes(b, k as usize, n as usize, e))
    } else {
        Cow::Borrowed(b)
    };
    let (b_rows, b_cols) = if l.b_nk { (n, k) } else { (k, n) };
    let a = pad_rows(a.into(), m as usize, k as usize, e, l.pitch_a as usize);
    let b = pad_rows(b, b_rows as usize, b_cols as usize, e, l.pitch_b as usize);
    let (t, d) = (l.tile, spec.dtype);
    let map_a = MapGeometry::matrix(d, k, m, l.pitch_a, t.bk(), BM);
    let map_b = if l.b_nk {
        MapGeometry::matrix(d, k, n, l.pitch_b, t.bk(), t.bn)
    } else {
        // 64 columns (128 bytes) × BK rows per box; the kernel loads BN/64 of them.
        MapGeometry::matrix(d, n, k, l.pitch_b, 64, t.bk())
    };
    let c = m * n * spec.dtype.matmul_output().size();
    SetLayout::new(c)
        .input(a, l.pitch_a * m)?
        .input(b, l.pitch_b * b_rows)?
        .tensor_map(0, map_a)?
        .tensor_map(1, map_b)
}

/// Device bytes a run of `l` allocates: the padded buffer sets.
pub fn memory_needed(spec: &MatmulSpec, l: &TmaLaunch, sets: usize) -> u64 {
    let b_rows = if l.b_nk { spec.n } else { spec.k };
    let c = spec.m * spec.n * spec.dtype.matmul_output().size();
    (l.pitch_a * spec.m + l.pitch_b * b_rows + c) * sets.max(1) as u64 + 256
}

/// Device bytes the run `plan` makes for `spec` on the device of `props` allocates: the TMA
/// path's padded sets, or the split-K decode path's (the `mma` kernel's); where it makes no
/// plan (its check refuses the workload first), the buffer sets alone.
pub fn memory_planned(spec: &MatmulSpec, props: &Props, sets: usize) -> u64 {
    match plan(spec, props.cc, props.sms, props.sm.smem_per_block_optin) {
        Ok(WgLaunch::Tma(l)) => memory_needed(spec, &l, sets),
        Ok(WgLaunch::Decode(_)) => own_matmul::memory_needed(spec, sets, props.sms),
        Err(_) => spec.bytes() * sets.max(1) as u64,
    }
}

fn prepare_tma<'a>(ctx: &PrepareCtx<'a, '_>, spec: &MatmulSpec, launch: TmaLaunch) -> Built<'a> {
    let gpu = ctx.gpu;
    let [a, b] = ctx.inputs else {
        return Err(Error::invalid("matmul takes two inputs, A and B"));
    };
    gpu.ensure_fits(memory_needed(spec, &launch, ctx.sets))?;
    // Compile before allocating gigabytes, so a compile error costs nothing.
    let kernel = Kernel::load_with_smem(gpu, launch.kernel, launch.tile.smem_bytes())?;
    let layout = set_layout(spec, &launch, a.as_bytes(), b.as_bytes())?;
    let exec = PlannedRun {
        spec: spec.clone(),
        plan: launch,
        kernel,
    };
    ctx.run(exec, layout)
}

/// A prepared `wgmma` run of the Hopper kernel.
impl Exec for PlannedRun<MatmulSpec, TmaLaunch> {
    fn enqueue(&self, gpu: &Gpu, s: &Buffers) -> Result<()> {
        // Checked against i32 in plan().
        let (m, n, k) = (self.spec.m as i32, self.spec.n as i32, self.spec.k as i32);
        let args = Args::new()
            .tensor_map(&s.maps[0])
            .tensor_map(&s.maps[1])
            .buf(&s.output)
            .i32(m)
            .i32(n)
            .i32(k);
        let dims = Dims {
            grid: (self.plan.grid, 1, 1),
            block: THREADS,
            smem: self.plan.tile.smem_bytes(),
        };
        // SAFETY: the arguments follow the kernel's signature; the tensor maps point into this
        // set's A and B (checked to hold the extents the maps declare), which like C live as
        // long as the run; the dynamic shared memory was allowed at prepare time.
        unsafe { launch(gpu, &self.kernel, dims, args) }
    }

    fn output(&self) -> Output {
        matmul::output(&self.spec)
    }

    /// The same arithmetic as the `mma` kernels: f32 accumulation (fp8: promoted into f32
    /// every 128 K, as the notes say), unscaled fp8.
    fn compute_dtype(&self) -> ComputeType {
        own_matmul::compute_type(self.spec.dtype)
    }

    fn notes(&self, gpu: &Gpu) -> Vec<String> {
        let l = &self.plan;
        let tile = format!(
            "{BM}×{} × {ROW_BYTES} B of K, {} stages",
            l.tile.bn, l.tile.stages
        );
        let launch = format!(
            "persistent grid {} CTAs × {THREADS} threads over {} tiles, {} B dynamic shared memory",
            l.grid,
            l.tiles,
            l.tile.smem_bytes()
        );
        let mut n = own_matmul::kernel_notes(gpu, l.kernel, &tile, &launch, " (before setmaxnreg)");
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
        if self.spec.dtype == DType::Fp8E4m3 {
            n.push(
                "fp8: each 128 K of wgmma products is added into an f32 total (the tensor core accumulates fp8 in reduced precision in between)"
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
    use super::super::own_matmul::tests::{declares, spec};
    use super::*;

    const H200: ((i32, i32), u32, u64) = ((9, 0), 132, 232_448);

    fn tma(s: &MatmulSpec) -> TmaLaunch {
        match plan(s, H200.0, H200.1, H200.2).unwrap() {
            WgLaunch::Tma(l) => l,
            WgLaunch::Decode(_) => panic!("{s:?} went to the decode path"),
        }
    }

    #[test]
    fn tiles_match_the_kernel_source() {
        declares(
            KernelId::MatmulWgmmaBf16Nk,
            &[
                "template <> struct WgCfg<WG_BF16> { enum { ESZ = 2, BN = 256, STAGES = 4 }; };",
                "template <> struct WgCfg<WG_F16> { enum { ESZ = 2, BN = 256, STAGES = 4 }; };",
                "template <> struct WgCfg<WG_E4M3> { enum { ESZ = 1, BN = 128, STAGES = 6 }; };",
                "#define WG_BM 128",
                "#define WG_THREADS 384",
                "#define WG_ROW_BYTES 128",
            ],
        );
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
        let p = pad_rows(Cow::Borrowed(&[1, 2, 3, 4, 5, 6]), 2, 3, 1, 16);
        assert_eq!(p.len(), 32);
        assert_eq!((&p[..3], &p[16..19]), (&[1u8, 2, 3][..], &[4u8, 5, 6][..]));
        assert!(p[3..16].iter().all(|&b| b == 0));
        // aligned rows are uploaded as they are, not copied
        let aligned = pad_rows(Cow::Borrowed(&[7; 32]), 2, 16, 1, 16);
        assert!(matches!(aligned, Cow::Borrowed(_)));
    }

    #[test]
    fn buffer_sets_hold_padded_rows_and_a_map_over_each_operand() {
        // 65×5×7 bf16 kn: A rows of 14 bytes → 16, B (K×N) rows of 10 bytes → 16; the maps
        // over them are checked against the padded sizes.
        let s = spec(65, 5, 7, DType::Bf16, BLayout::Kn);
        let l = tma(&s);
        assert_eq!((l.pitch_a, l.pitch_b), (16, 16));
        set_layout(&s, &l, &[1; 65 * 7 * 2], &[2; 7 * 5 * 2]).unwrap();
        assert_eq!(
            memory_needed(&s, &l, 1),
            65 * 16 + 7 * 16 + 65 * 5 * 2 + 256
        );
        // fp8 kn: B transposed to N×K before padding; a wrong input size is refused.
        let f = spec(100, 30, 20, DType::Fp8E4m3, BLayout::Kn);
        let l = tma(&f);
        assert!(l.transpose_b_on_host && l.b_nk);
        assert_eq!((l.pitch_a, l.pitch_b), (32, 32));
        set_layout(&f, &l, &[0; 2000], &[0; 600]).unwrap();
        let e = set_layout(&f, &l, &[0; 2000], &[0; 599]).err().unwrap();
        assert!(e.to_string().contains("599 bytes"), "{e}");
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
        }
        for d in [DType::F32, DType::Tf32, DType::Int8, DType::Fp8E5m2] {
            let e = plan(&spec(256, 256, 256, d, BLayout::Nk), H200.0, H200.1, H200.2)
                .unwrap_err()
                .to_string();
            assert!(e.contains("bf16, f16 and fp8_e4m3"), "{d}: {e}");
        }
        let e = plan(&s, H200.0, H200.1, 100_000).unwrap_err().to_string();
        assert!(e.contains("shared memory"), "{e}");
        assert!(plan(&s, H200.0, H200.1, H200.2).is_ok());
    }
}
