//! gpuvet's own matmul kernels (`kernels/matmul_simt.cu`, `kernels/matmul_mma.cu`), run beside
//! cuBLASLt on the same inputs so that the ratio shows what a hand-written kernel reaches.
//!
//! | implementation | dtypes | needs | kernel |
//! |---|---|---|---|
//! | `simt` | f32 | any GPU | 128×128×8 tiles on CUDA cores (fp32 FFMA, never TF32) |
//! | `mma` | bf16, f16 (f32 accumulate, 16-bit out) | sm_80+ | `mma.sync` m16n8k16, cp.async ring |
//! | `mma` | int8 (s32 accumulate, i32 out) | sm_80+ | `mma.sync` m16n8k32 |
//! | `mma` | fp8 e4m3 (f32 accumulate, bf16 out) | sm_89+ | `mma.sync` m16n8k32 |
//! | `mma` | tf32 (f32 accumulate, f32 out) | sm_80+ | `mma.sync` m16n8k8 |
//!
//! Both take row-major A and B as K×N (`kn`) or N×K (`nk`) directly, any M, N, K (tails are
//! guarded in the kernels), and write C in `DType::matmul_output()`. The 8-bit and tf32
//! kernels read B as N×K only (ldmatrix transposes 16-bit elements, not bytes or words): a K×N
//! B is uploaded transposed, as an inference engine pre-packs weights once, and the result
//! says so in its notes.
//! The tile configuration is data ([`TileConfig`]); [`choose_tile`] picks one per shape.
//! Conventions match `matmul.rs`: buffer sets rotated between launches, the output poisoned
//! before the verification run, CUDA-event timing.

use super::device::{DevBuf, Gpu};
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel};
use super::matmul::set_layout;
use super::registry::{Built, PrepareCtx};
use super::run::{Buffers, Exec, Output};
use crate::dtype::{Arith, ComputeType, DType, Fp8Scaling};
use crate::error::{Error, Result};
use crate::tensor::{Data, Tensor};
use crate::workload::{BLayout, MatmulSpec};

/// gpuvet's two matmul kernel families, each one implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// fp32 on CUDA cores.
    Simt,
    /// `mma.sync` on tensor cores.
    Mma,
}

impl Family {
    /// The implementation name (`--impl`, reports).
    pub const fn name(self) -> &'static str {
        match self {
            Family::Simt => "simt",
            Family::Mma => "mma",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The fp32 CUDA-core kernel.
pub const SIMT: Family = Family::Simt;
/// The `mma.sync` tensor-core kernel.
pub const MMA: Family = Family::Mma;

/// Largest grid y dimension CUDA allows (rows of tiles).
const MAX_GRID_Y: u64 = 65_535;

/// One compiled tile shape of a kernel family. Must match the constants in the `.cu` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileConfig {
    /// Suffix of the kernel ids (`matmul.mma.bf16.nk.<name>`).
    pub name: &'static str,
    pub bm: u32,
    pub bn: u32,
    /// Bytes of K per tile row and stage (16-bit: 32 elements, 8-bit: 64; SIMT f32: 8).
    pub bk_bytes: u32,
    /// cp.async pipeline depth (2 = the register double buffer of the SIMT kernel).
    pub stages: u32,
    pub threads: u32,
    /// Static shared memory per block, for the notes and occupancy reasoning.
    pub smem_bytes: u32,
}

/// The SIMT kernel's only tile.
pub const SIMT_128X128: TileConfig = TileConfig {
    name: "128x128",
    bm: 128,
    bn: 128,
    bk_bytes: 32,
    stages: 2,
    threads: 256,
    smem_bytes: 2 * 2 * 8 * (128 + 4) * 4,
};

/// mma.sync, large tiles: 2×4 warps of 64×32, 3 stages of 128×32 + 32×128 bf16.
pub const MMA_128X128: TileConfig = TileConfig {
    name: "128x128",
    bm: 128,
    bn: 128,
    bk_bytes: 64,
    stages: 3,
    threads: 256,
    smem_bytes: 3 * (128 + 128) * 64,
};

/// mma.sync, small-M tiles: 2×4 warps of 16×16, 4 stages; for decode-like shapes.
pub const MMA_32X64: TileConfig = TileConfig {
    name: "32x64",
    bm: 32,
    bn: 64,
    bk_bytes: 64,
    stages: 4,
    threads: 256,
    smem_bytes: 4 * (32 + 64) * 64,
};

// Static shared memory is limited to 48 KiB per block without an opt-in attribute, which the
// launch does not set: a tile over the limit must fail the build, not the first GPU run.
const _: () = assert!(SIMT_128X128.smem_bytes <= 48 * 1024);
const _: () = assert!(MMA_128X128.smem_bytes <= 48 * 1024);
const _: () = assert!(MMA_32X64.smem_bytes <= 48 * 1024);

/// Every mma tile configuration, largest first.
pub const MMA_TILES: [TileConfig; 2] = [MMA_128X128, MMA_32X64];

/// Blocks of `t` needed to cover an M×N output.
pub fn tiles(t: &TileConfig, m: u64, n: u64) -> u64 {
    m.div_ceil(t.bm as u64) * n.div_ceil(t.bn as u64)
}

/// The mma tile for an M×N output on a GPU with `sms` multiprocessors.
///
/// 128×128 tiles reuse each loaded element 128 times and win whenever the grid fills the GPU.
/// They lose when M is small (decode: at M ≤ 64 most of a 128-row tile multiplies zero
/// padding, and the run is bound by reading B, which wants many CTAs streaming it) or when the
/// grid has fewer blocks than SMs (idle SMs): then the 32×64 tile, with 8× the blocks.
pub fn choose_tile(m: u64, n: u64, sms: u32) -> TileConfig {
    let big = MMA_128X128;
    if m <= 64 || tiles(&big, m, n) < sms as u64 {
        MMA_32X64
    } else {
        big
    }
}

/// Split-K of a decode GEMM: `splits` blocks along z, each over `kchunk` K tiles, writing
/// partial sums that `reduce` adds up into C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitK {
    pub splits: u32,
    pub kchunk: u32,
    pub reduce: KernelId,
}

/// One launch of an own kernel: which kernel and its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub kernel: KernelId,
    pub tile: TileConfig,
    /// (x = tiles over N, y = tiles over M).
    pub grid: (u32, u32),
    pub block: u32,
    /// B is K×N but the kernel reads N×K: upload it transposed.
    pub transpose_b_on_host: bool,
    /// Decode shapes: K split over grid z, then a reduction kernel.
    pub split: Option<SplitK>,
}

/// Rows of A (K elements) or B (K, or N for `kn`) are not 16-byte aligned: cp.async cannot read
/// them and the kernel takes its register-prefetch path.
pub fn is_ragged(spec: &MatmulSpec, b_read_nk: bool) -> bool {
    let epc = 16 / spec.dtype.size();
    let b_cols = if b_read_nk { spec.k } else { spec.n };
    spec.k % epc != 0 || b_cols % epc != 0
}

/// Decode GEMMs (M ≤ 64) are bound by reading B once: they need many blocks streaming it. The
/// 32×64 grid has ceil(N/64) · ceil(M/32) blocks (128 for N = 8192, M ≤ 32): too few to keep
/// the ~30–40 KB per SM in flight that HBM wants, so K is split until the grid has about three
/// blocks per SM, each split keeping at least 4 K tiles (one pass of the 4-stage ring).
pub fn choose_splits(m: u64, n: u64, k: u64, dtype: DType, sms: u32) -> Option<(u32, u32)> {
    if m > 64 {
        return None;
    }
    let blocks = tiles(&MMA_32X64, m, n);
    let ktiles = k.div_ceil(MMA_32X64.bk_bytes as u64 / dtype.size());
    let want = (3 * sms as u64).div_ceil(blocks);
    let most = (ktiles / 4).max(1);
    let s = want.min(most).clamp(1, 64);
    if s <= 1 {
        return None;
    }
    let kchunk = ktiles.div_ceil(s);
    // no empty split: the last one gets what is left
    let splits = ktiles.div_ceil(kchunk);
    (splits > 1).then_some((splits as u32, kchunk as u32))
}

fn reduce_kernel(dtype: DType) -> KernelId {
    match dtype {
        DType::Bf16 | DType::Fp8E4m3 => KernelId::MatmulReduceBf16,
        DType::F16 => KernelId::MatmulReduceF16,
        DType::Int8 => KernelId::MatmulReduceI32,
        _ => KernelId::MatmulReduceF32,
    }
}

/// The mma kernels compiled for one dtype and B layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MmaKernels {
    /// 128×128 tiles, cp.async staging.
    big: KernelId,
    /// 32×64 tiles (small grids).
    small: KernelId,
    /// 128×128 tiles for rows that are not 16-byte aligned (register prefetch); e4m3 has none
    /// (its emulated mma.sync on sm_90a leaves no registers): 32×64 instead.
    ragged: Option<KernelId>,
    /// 32×64 tiles with K split over grid z (decode shapes).
    split: KernelId,
}

/// The one table of mma kernels: per dtype and B layout. 8-bit and tf32 have one N×K kernel
/// for both layouts (see `Launch::transpose_b_on_host`).
#[rustfmt::skip]
fn mma_kernels(dtype: DType, layout: BLayout) -> Option<MmaKernels> {
    use KernelId::*;
    let row = |big, small, ragged, split| MmaKernels { big, small, ragged, split };
    Some(match (dtype, layout) {
        (DType::Bf16, BLayout::Kn) => row(MatmulMmaBf16Kn128, MatmulMmaBf16Kn32, Some(MatmulMmaBf16Kn128R), MatmulMmaBf16KnSplit),
        (DType::Bf16, BLayout::Nk) => row(MatmulMmaBf16Nk128, MatmulMmaBf16Nk32, Some(MatmulMmaBf16Nk128R), MatmulMmaBf16NkSplit),
        (DType::F16, BLayout::Kn) => row(MatmulMmaF16Kn128, MatmulMmaF16Kn32, Some(MatmulMmaF16Kn128R), MatmulMmaF16KnSplit),
        (DType::F16, BLayout::Nk) => row(MatmulMmaF16Nk128, MatmulMmaF16Nk32, Some(MatmulMmaF16Nk128R), MatmulMmaF16NkSplit),
        (DType::Int8, _) => row(MatmulMmaS8Nk128, MatmulMmaS8Nk32, Some(MatmulMmaS8Nk128R), MatmulMmaS8NkSplit),
        (DType::Fp8E4m3, _) => row(MatmulMmaE4m3Nk128, MatmulMmaE4m3Nk32, None, MatmulMmaE4m3NkSplit),
        (DType::Tf32, _) => row(MatmulMmaTf32Nk128, MatmulMmaTf32Nk32, Some(MatmulMmaTf32Nk128R), MatmulMmaTf32NkSplit),
        _ => return None,
    })
}

/// The mma kernels of this dtype read B as N×K only (ldmatrix.trans moves 16-bit elements).
fn kernel_reads_nk_only(dtype: DType) -> bool {
    matches!(dtype, DType::Int8 | DType::Fp8E4m3 | DType::Tf32)
}

/// The launch of `family`'s kernel for `spec` on a GPU of compute capability `cc` with `sms`
/// multiprocessors, or why it cannot run there. Pure: testable without a GPU.
pub fn plan(spec: &MatmulSpec, family: Family, cc: (i32, i32), sms: u32) -> Result<Launch> {
    let (kernel, tile) = match family {
        Family::Simt => {
            if spec.dtype != DType::F32 {
                return Err(Error::unsupported(format!(
                    "`simt` runs f32 only (asked for {}); use `mma` for bf16/f16",
                    spec.dtype
                )));
            }
            let k = match spec.b_layout {
                BLayout::Kn => KernelId::MatmulSimtF32Kn,
                BLayout::Nk => KernelId::MatmulSimtF32Nk,
            };
            (k, SIMT_128X128)
        }
        Family::Mma => {
            if cc.0 < 8 {
                return Err(Error::unsupported(format!(
                    "`mma` needs compute capability 8.0 or newer (cp.async, bf16 mma.sync); this GPU is {}.{}",
                    cc.0, cc.1
                )));
            }
            if spec.dtype == DType::Fp8E4m3 && cc < (8, 9) {
                return Err(Error::unsupported(format!(
                    "`mma` fp8_e4m3 needs compute capability 8.9 or newer; this GPU is {}.{}",
                    cc.0, cc.1
                )));
            }
            return plan_mma(spec, sms);
        }
    };
    finish(spec, kernel, tile, None)
}

/// The `mma` launch: split-K for decode shapes, the ragged 128×128 kernels for unaligned rows.
fn plan_mma(spec: &MatmulSpec, sms: u32) -> Result<Launch> {
    let unsupported = || {
        Error::unsupported(format!(
            "`mma` runs bf16, f16, tf32, int8 and fp8_e4m3 (asked for {}); f32 runs on `simt`, e5m2 is not written",
            spec.dtype
        ))
    };
    let ks = mma_kernels(spec.dtype, spec.b_layout).ok_or_else(unsupported)?;
    if let Some((splits, kchunk)) = choose_splits(spec.m, spec.n, spec.k, spec.dtype, sms) {
        let split = SplitK {
            splits,
            kchunk,
            reduce: reduce_kernel(spec.dtype),
        };
        return finish(spec, ks.split, MMA_32X64, Some(split));
    }
    let nk_only = kernel_reads_nk_only(spec.dtype);
    let ragged = is_ragged(spec, nk_only || spec.b_layout == BLayout::Nk);
    let big = choose_tile(spec.m, spec.n, sms) == MMA_128X128;
    let (k, tile) = match (big, ragged, ks.ragged) {
        (true, false, _) => (ks.big, MMA_128X128),
        (true, true, Some(r)) => (r, MMA_128X128),
        // small grids, and ragged rows without a ragged 128×128 kernel
        _ => (ks.small, MMA_32X64),
    };
    finish(spec, k, tile, None)
}

/// Checks the shape against the kernels' int arithmetic and the grid limits; builds the launch.
fn finish(
    spec: &MatmulSpec,
    kernel: KernelId,
    tile: TileConfig,
    split: Option<SplitK>,
) -> Result<Launch> {
    // The kernels take M, N, K as int and index with 64-bit offsets.
    let limit = i32::MAX as u64;
    if spec.m > limit || spec.n > limit || spec.k > limit {
        return Err(Error::unsupported(format!(
            "own matmul kernels take M, N and K up to {limit} (shape {}x{}x{})",
            spec.m, spec.n, spec.k
        )));
    }
    let gy = spec.m.div_ceil(tile.bm as u64);
    let gx = spec.n.div_ceil(tile.bn as u64);
    if gy > MAX_GRID_Y {
        return Err(Error::unsupported(format!(
            "M = {} needs {gy} rows of {}-row tiles; CUDA allows {MAX_GRID_Y}",
            spec.m, tile.bm
        )));
    }
    Ok(Launch {
        kernel,
        tile,
        grid: (gx as u32, gy as u32),
        block: tile.threads,
        transpose_b_on_host: kernel_reads_nk_only(spec.dtype) && spec.b_layout == BLayout::Kn,
        split,
    })
}

/// The first notes of an own GEMM's result: the kernel, its tile and launch, then its registers
/// and spills from the compile log (`regs` says more about the registers).
pub fn kernel_notes(gpu: &Gpu, k: KernelId, tile: &str, launch: &str, regs: &str) -> Vec<String> {
    let mut n = vec![format!(
        "kernel {} ({}), tile {tile}, {launch}",
        k.id(),
        k.symbol()
    )];
    n.extend(gpu.resources(k).map(|r| r.note(regs)));
    n
}

/// What the kernels compute in for `dtype`: products summed in s32 for int8, in f32 otherwise;
/// fp8 writes bf16 without scale factors.
pub fn compute_type(dtype: DType) -> ComputeType {
    match dtype {
        DType::Int8 => ComputeType::accumulated(dtype, Arith::I32),
        DType::Fp8E4m3 => ComputeType::fp8(dtype, dtype.matmul_output(), Fp8Scaling::Unscaled),
        d => ComputeType::accumulated(d, Arith::F32),
    }
}

/// Device bytes a run allocates on a GPU with `sms` multiprocessors: the buffer sets, and the
/// split-K partials of decode shapes.
pub fn memory_needed(spec: &MatmulSpec, sets: usize, sms: u32) -> u64 {
    spec.bytes() * sets.max(1) as u64 + 256 + partials_bytes(spec, sms)
}

/// Bytes of the split-K partials (4-byte f32 or s32 per element and split), or 0.
pub fn partials_bytes(spec: &MatmulSpec, sms: u32) -> u64 {
    choose_splits(spec.m, spec.n, spec.k, spec.dtype, sms)
        .map(|(s, _)| s as u64 * spec.m * spec.n * 4)
        .unwrap_or(0)
}

/// tf32 operands rounded to tf32 once, on the host (the kernels feed them to the tensor cores
/// as they are, instead of rounding every fragment in the inner loop). gpuvet's own tf32
/// inputs are tf32 values already, so this copies them unchanged; data from elsewhere is
/// rounded the way the reference quantises it.
pub fn rounded_inputs(spec: &MatmulSpec, inputs: &[Tensor]) -> Option<Vec<Tensor>> {
    if spec.dtype != DType::Tf32 {
        return None;
    }
    Some(
        inputs
            .iter()
            .map(|t| match &t.data {
                Data::F32(v) => Tensor {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    data: Data::F32(v.iter().map(|&x| DType::Tf32.quantize(x)).collect()),
                },
                _ => t.clone(),
            })
            .collect(),
    )
}

/// The prepared run of `family`'s kernel on `spec`.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, spec: &MatmulSpec, family: Family) -> Built<'a> {
    prepare_via(ctx, spec, family, None)
}

/// [`prepare`] for another implementation that hands this shape over (`wgmma` on a decode
/// shape), with `via` as the note saying so.
pub fn prepare_via<'a>(
    ctx: &PrepareCtx<'a, '_>,
    spec: &MatmulSpec,
    family: Family,
    via: Option<&'static str>,
) -> Built<'a> {
    let gpu = ctx.gpu;
    let launch = plan(spec, family, gpu.props.cc, gpu.props.sms)?;
    gpu.ensure_fits(memory_needed(spec, ctx.sets, gpu.props.sms))?;
    // Compile before allocating gigabytes, so a compile error costs nothing.
    let func = Kernel::load(gpu, launch.kernel)?;
    let reduce = match launch.split {
        Some(sk) => {
            let partials = gpu.alloc(partials_bytes(spec, gpu.props.sms) as usize)?;
            Some((Kernel::load(gpu, sk.reduce)?, partials))
        }
        None => None,
    };
    let rounded = rounded_inputs(spec, ctx.inputs);
    let inputs = rounded.as_deref().unwrap_or(ctx.inputs);
    let layout = set_layout(spec, inputs, launch.transpose_b_on_host)?;
    let exec = OwnMatmulRun {
        spec: spec.clone(),
        launch,
        func,
        reduce,
        via,
    };
    ctx.run(exec, layout)
}

/// A prepared own-kernel matmul.
pub struct OwnMatmulRun {
    spec: MatmulSpec,
    launch: Launch,
    func: Kernel,
    /// Split-K: the reduction kernel and the partials (shared by every buffer set: each launch
    /// pair writes all of them before reading).
    reduce: Option<(Kernel, DevBuf)>,
    /// Why this run serves another implementation's name (`wgmma` on a decode shape).
    via: Option<&'static str>,
}

impl Exec for OwnMatmulRun {
    fn enqueue(&self, gpu: &Gpu, s: &Buffers) -> Result<()> {
        // Checked against i32 in plan().
        let (m, n, k) = (self.spec.m as i32, self.spec.n as i32, self.spec.k as i32);
        let (gx, gy) = self.launch.grid;
        let (a, b, c) = (&s.inputs[0], &s.inputs[1], &s.output);
        let (Some(sk), Some((reduce, partials))) = (self.launch.split, &self.reduce) else {
            // (const T* A, const T* B, T* C, int M, int N, int K) in both .cu files.
            let args = Args::new().buf(a).buf(b).buf(c).i32(m).i32(n).i32(k);
            let dims = Dims {
                grid: (gx, gy, 1),
                block: self.launch.block,
                smem: 0,
            };
            // SAFETY: the arguments follow the kernel's signature; buffers are sized by spec
            // and live as long as the run; the kernels use static shared memory only.
            return unsafe { launch(gpu, &self.func, dims, args) };
        };
        // (A, B, P, M, N, K, kchunk), then (P, C, M·N, splits).
        let args = Args::new().buf(a).buf(b).buf(partials);
        let args = args.i32(m).i32(n).i32(k).i32(sk.kchunk as i32);
        let dims = Dims {
            grid: (gx, gy, sk.splits),
            block: self.launch.block,
            smem: 0,
        };
        let count = self.spec.m * self.spec.n;
        let red = Args::new().buf(partials).buf(c).u64(count);
        let red = red.i32(sk.splits as i32);
        let rdims = Dims::linear(gpu.stream_grid(256, 1024, count), 256);
        // SAFETY: as above; the partials buffer holds splits × M × N 4-byte values (sized by
        // partials_bytes for this spec and GPU), written entirely by the first launch before
        // the second, on the same stream, reads it.
        unsafe {
            launch(gpu, &self.func, dims, args)?;
            launch(gpu, reduce, rdims, red)
        }
    }

    fn poison_scratch(&self, gpu: &Gpu) -> Result<()> {
        match &self.reduce {
            // NaN for f32 partials, and for s32 i32::MIN (a 0xFF byte pattern, -1, would be
            // too quiet).
            Some((_, p)) if self.spec.dtype == DType::Int8 => p.fill_u32(gpu, 0x8000_0000),
            Some((_, p)) => p.fill(gpu, 0xFF),
            None => Ok(()),
        }
    }

    fn output(&self) -> Output {
        super::matmul::output(&self.spec)
    }

    fn compute_dtype(&self) -> ComputeType {
        compute_type(self.spec.dtype)
    }

    fn notes(&self, gpu: &Gpu) -> Vec<String> {
        let l = &self.launch;
        let t = &l.tile;
        let tile = format!(
            "{}×{} × {} B of K, {} stage(s)",
            t.bm, t.bn, t.bk_bytes, t.stages
        );
        let (g, z) = (l.grid, l.split.map_or(1, |s| s.splits));
        let launch = format!(
            "grid {}×{}×{z} × {} threads, {} B shared memory",
            g.0, g.1, l.block, t.smem_bytes
        );
        let mut n = kernel_notes(gpu, l.kernel, &tile, &launch, "");
        if let Some(v) = self.via {
            n.push(v.to_string());
        }
        if let Some(sk) = l.split {
            n.push(format!(
                "decode GEMM: K split {} ways ({} K tiles each) over grid z, partials summed by {}",
                sk.splits,
                sk.kchunk,
                sk.reduce.id()
            ));
        }
        if self.spec.dtype == DType::Tf32 {
            n.push("tf32 operands rounded to tf32 once on upload, not in the inner loop".into());
        }
        if l.transpose_b_on_host {
            n.push(format!(
                "B uploaded transposed (N×K) because the {} kernel reads B as N×K; the timed GEMM is that one",
                self.spec.dtype
            ));
        }
        if self.spec.dtype == DType::Fp8E4m3 && gpu.props.cc.0 == 9 {
            n.push(
                "fp8 mma.sync on Hopper is not native (ptxas emulates it, ~240 registers): a wgmma kernel is the real fp8 path there"
                    .into(),
            );
        }
        n
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fails unless the source of `k` has each of `lines`: the constants on the Rust side and
    /// in the .cu file change together or not at all. Shared with wgmma's tests.
    pub(crate) fn declares(k: KernelId, lines: &[&str]) {
        let src = k.source().text();
        for l in lines {
            assert!(src.contains(l), "{} lacks `{l}`", k.source().file());
        }
    }

    /// A matmul spec with B in `b_layout`, shared with wgmma's tests.
    pub(crate) fn spec(m: u64, n: u64, k: u64, dtype: DType, b_layout: BLayout) -> MatmulSpec {
        MatmulSpec {
            b_layout,
            ..MatmulSpec::new(m, n, k, dtype)
        }
    }

    const H200: ((i32, i32), u32) = ((9, 0), 132);

    #[test]
    fn tile_constants_match_the_kernel_sources() {
        // The .cu files carry the same numbers; a change on one side only must fail here.
        let mma = KernelId::MatmulMmaBf16Nk128.source().text();
        assert!(mma.contains("GV_MMA_KERNEL(matmul_mma_bf16_nk_128x128, 128, 128, 2, 3,"));
        assert!(mma.contains("GV_MMA_KERNEL(matmul_mma_bf16_nk_32x64, 32, 64, 2, 4,"));
        assert!(mma.contains("#define BK_BYTES 64") && mma.contains("#define THREADS 256"));
        declares(
            KernelId::MatmulSimtF32Kn,
            &[
                "#define BM 128",
                "#define BN 128",
                "#define BK 8",
                "#define THREADS 256",
            ],
        );
        for t in MMA_TILES {
            assert_eq!(
                t.smem_bytes,
                t.stages * (t.bm + t.bn) * t.bk_bytes,
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn every_plan_names_a_kernel_of_its_tile_and_layout() {
        for (dtype, kind) in [
            (DType::Bf16, "bf16"),
            (DType::F16, "f16"),
            (DType::Int8, "s8"),
            (DType::Fp8E4m3, "e4m3"),
            (DType::Tf32, "tf32"),
        ] {
            for layout in [BLayout::Kn, BLayout::Nk] {
                for (m, n) in [(1, 8192), (8192, 8192)] {
                    let l = plan(&spec(m, n, 4096, dtype, layout), MMA, H200.0, H200.1).unwrap();
                    let sym = l.kernel.symbol();
                    assert!(sym.starts_with(&format!("matmul_mma_{kind}_")), "{sym}");
                    // 8-bit and tf32 kernels read N×K; a K×N B is transposed on the host
                    let nk_only = dtype.size() != 2;
                    let read = if nk_only { "nk" } else { layout.name() };
                    assert!(sym.contains(&format!("_{read}_")), "{sym}");
                    assert_eq!(
                        l.transpose_b_on_host,
                        nk_only && layout == BLayout::Kn,
                        "{sym}"
                    );
                    assert!(sym.contains(l.tile.name), "{sym} vs {}", l.tile.name);
                    assert_eq!(sym.ends_with("_splitk"), l.split.is_some(), "{sym}");
                    assert_eq!(l.block, 256);
                }
            }
        }
        let s = plan(&spec(5, 7, 9, DType::F32, BLayout::Nk), SIMT, (7, 5), 40).unwrap();
        assert_eq!(s.kernel, KernelId::MatmulSimtF32Nk);
        let s = plan(&spec(5, 7, 9, DType::F32, BLayout::Kn), SIMT, (7, 5), 40).unwrap();
        assert_eq!(s.kernel, KernelId::MatmulSimtF32Kn);
    }

    #[test]
    fn grid_covers_every_output_element_with_tails() {
        for (m, n) in [
            (1, 1),
            (127, 255),
            (128, 128),
            (129, 129),
            (4097, 4095),
            (16, 28672),
            (1, 8192),
            (8192, 8192),
        ] {
            for (imp, dtype) in [(SIMT, DType::F32), (MMA, DType::Bf16)] {
                let l = plan(&spec(m, n, 513, dtype, BLayout::Nk), imp, H200.0, H200.1).unwrap();
                let (gx, gy) = (l.grid.0 as u64, l.grid.1 as u64);
                let (bm, bn) = (l.tile.bm as u64, l.tile.bn as u64);
                // covers the whole output...
                assert!(gx * bn >= n && gy * bm >= m, "{imp} {m}x{n}: {l:?}");
                // ...with no block entirely outside it
                assert!(
                    (gx - 1) * bn < n && (gy - 1) * bm < m,
                    "{imp} {m}x{n}: {l:?}"
                );
                assert_eq!(gx * gy, tiles(&l.tile, m, n));
            }
        }
        let tail = spec(4097, 4095, 4096, DType::F32, BLayout::Kn);
        assert_eq!(plan(&tail, SIMT, H200.0, H200.1).unwrap().grid, (32, 33));
    }

    #[test]
    fn heuristic_picks_small_tiles_for_decode_and_underfilled_grids() {
        // decode: M ≤ 64
        for m in [1, 16, 64] {
            assert_eq!(choose_tile(m, 8192, 132), MMA_32X64, "M = {m}");
        }
        // large prefill GEMMs fill the GPU with 128×128 tiles
        assert_eq!(choose_tile(8192, 8192, 132), MMA_128X128);
        assert_eq!(choose_tile(4097, 4095, 132), MMA_128X128);
        // 2×2 = 4 large tiles on 132 SMs would leave 128 SMs idle
        assert_eq!(choose_tile(256, 256, 132), MMA_32X64);
        // the same shape fills a 4-SM GPU with large tiles
        assert_eq!(choose_tile(256, 256, 4), MMA_128X128);
    }

    #[test]
    fn decode_shapes_split_k_to_fill_the_gpu() {
        // M = 1…64, N = K = 8192 on 132 SMs: 128 or 256 blocks → split until ~3 per SM
        for (m, want) in [(1, 4), (16, 4), (32, 4), (33, 2), (64, 2)] {
            let l = plan(
                &spec(m, 8192, 8192, DType::Bf16, BLayout::Nk),
                MMA,
                H200.0,
                H200.1,
            )
            .unwrap();
            let sk = l.split.expect("decode shapes split K");
            assert_eq!(sk.splits, want, "M = {m}");
            assert_eq!(l.tile, MMA_32X64);
            let blocks = l.grid.0 as u64 * l.grid.1 as u64 * sk.splits as u64;
            assert!(blocks >= 3 * 132, "M = {m}: {blocks} blocks");
            // the splits cover every K tile exactly once, none empty
            let ktiles = 8192u64.div_ceil(32);
            assert!((sk.splits as u64 - 1) * (sk.kchunk as u64) < ktiles);
            assert!(sk.splits as u64 * sk.kchunk as u64 >= ktiles);
            assert_eq!(sk.reduce, KernelId::MatmulReduceBf16);
        }
        // short K: no split (each split keeps ≥ 4 K tiles of the 4-stage ring)
        assert!(choose_splits(1, 8192, 64, DType::Bf16, 132).is_none());
        // many N tiles already fill the GPU
        assert_eq!(choose_splits(16, 28672, 4096, DType::Bf16, 132), None);
        assert!(choose_splits(65, 8192, 8192, DType::Bf16, 132).is_none());
        for (d, r) in [
            (DType::F16, KernelId::MatmulReduceF16),
            (DType::Int8, KernelId::MatmulReduceI32),
            (DType::Fp8E4m3, KernelId::MatmulReduceBf16),
            (DType::Tf32, KernelId::MatmulReduceF32),
        ] {
            let l = plan(&spec(8, 4096, 4096, d, BLayout::Kn), MMA, H200.0, H200.1).unwrap();
            assert_eq!(l.split.unwrap().reduce, r, "{d}");
        }
        let s = spec(64, 8192, 8192, DType::Bf16, BLayout::Nk);
        assert_eq!(partials_bytes(&s, 132), 2 * 64 * 8192 * 4);
        assert_eq!(
            memory_needed(&s, 1, 132),
            s.bytes() + 256 + 2 * 64 * 8192 * 4
        );
    }

    #[test]
    fn unaligned_rows_take_the_register_prefetch_kernels() {
        let kernel = |m, n, k, d, l| {
            plan(&spec(m, n, k, d, l), MMA, H200.0, H200.1)
                .unwrap()
                .kernel
        };
        // 4097×4095×4096 kn: B rows of 4095 bf16 are not 16-byte aligned
        let (d, kn, nk) = (DType::Bf16, BLayout::Kn, BLayout::Nk);
        assert_eq!(
            kernel(4097, 4095, 4096, d, kn),
            KernelId::MatmulMmaBf16Kn128R
        );
        // the same shape nk reads rows of K = 4096: aligned
        assert_eq!(
            kernel(4097, 4095, 4096, d, nk),
            KernelId::MatmulMmaBf16Nk128
        );
        // K = 513: A is ragged in both layouts
        assert_eq!(
            kernel(2000, 2000, 513, DType::F16, nk),
            KernelId::MatmulMmaF16Nk128R
        );
        // fp8 has no ragged 128×128 kernel: 32×64
        let e = DType::Fp8E4m3;
        assert_eq!(kernel(2000, 2000, 520, e, nk), KernelId::MatmulMmaE4m3Nk32);
        assert!(is_ragged(&spec(8, 8, 513, DType::Bf16, BLayout::Nk), true));
        assert!(!is_ragged(
            &spec(8, 4095, 512, DType::Bf16, BLayout::Nk),
            true
        ));
        assert!(is_ragged(
            &spec(8, 4095, 512, DType::Bf16, BLayout::Kn),
            false
        ));
    }

    #[test]
    fn tf32_inputs_are_rounded_once_on_upload() {
        let s = spec(1, 2, 2, DType::Tf32, BLayout::Nk);
        let x = 1.0f32 + 3.0 * 2f32.powi(-12);
        let t = Tensor {
            name: "A".into(),
            shape: vec![1, 2],
            data: Data::F32(vec![x, 2.0]),
        };
        let r = rounded_inputs(&s, &[t]).unwrap();
        let Data::F32(v) = &r[0].data else { panic!() };
        assert_eq!(v, &vec![DType::Tf32.quantize(x), 2.0]);
        assert_ne!(v[0], x);
        assert!(rounded_inputs(&spec(1, 1, 1, DType::Bf16, BLayout::Nk), &[]).is_none());
    }

    #[test]
    fn refusals_say_why() {
        let bf16 = spec(8, 8, 8, DType::Bf16, BLayout::Kn);
        let e = plan(&bf16, SIMT, H200.0, H200.1).unwrap_err();
        assert!(e.to_string().contains("f32 only"), "{e}");
        let e = plan(&spec(8, 8, 8, DType::F32, BLayout::Kn), MMA, H200.0, H200.1).unwrap_err();
        assert!(e.to_string().contains("bf16, f16, tf32, int8"), "{e}");
        let e = plan(&spec(8, 8, 8, DType::Fp8E4m3, BLayout::Nk), MMA, (8, 6), 84).unwrap_err();
        assert!(e.to_string().contains("8.9"), "{e}");
        assert!(plan(&spec(8, 8, 8, DType::Fp8E4m3, BLayout::Nk), MMA, (8, 9), 58).is_ok());
        assert!(plan(
            &spec(8, 8, 8, DType::Fp8E5m2, BLayout::Nk),
            MMA,
            H200.0,
            H200.1
        )
        .is_err());
        let e = plan(&spec(8, 8, 8, DType::Bf16, BLayout::Kn), MMA, (7, 5), 40).unwrap_err();
        assert!(e.to_string().contains("8.0"), "{e}");
        let e = plan(
            &spec(1 << 32, 8, 8, DType::F32, BLayout::Kn),
            SIMT,
            H200.0,
            H200.1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("up to"), "{e}");
        // 65536 tile rows of 128 exceed the grid's y limit
        let e = plan(
            &spec(65_536 * 128, 8, 8, DType::F32, BLayout::Kn),
            SIMT,
            H200.0,
            H200.1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("65535"), "{e}");
    }

    #[test]
    fn memory_is_the_buffer_sets_only() {
        assert_eq!(
            memory_needed(&spec(2, 3, 4, DType::F32, BLayout::Kn), 2, 132),
            2 * (2 * 4 + 4 * 3 + 2 * 3) * 4 + 256
        );
    }
}
