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

use super::device::Gpu;
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel};
use super::matmul::set_layout;
use super::registry::{Built, PrepareCtx};
use super::run::{Buffers, Exec, Output};
use crate::dtype::{Arith, ComputeType, DType, Fp8Scaling};
use crate::error::{Error, Result};
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
}

fn mma_kernel(dtype: DType, layout: BLayout, tile: &TileConfig) -> Option<KernelId> {
    use KernelId::*;
    let small = *tile == MMA_32X64;
    Some(match (dtype, layout, small) {
        (DType::Bf16, BLayout::Kn, false) => MatmulMmaBf16Kn128,
        (DType::Bf16, BLayout::Nk, false) => MatmulMmaBf16Nk128,
        (DType::F16, BLayout::Kn, false) => MatmulMmaF16Kn128,
        (DType::F16, BLayout::Nk, false) => MatmulMmaF16Nk128,
        (DType::Bf16, BLayout::Kn, true) => MatmulMmaBf16Kn32,
        (DType::Bf16, BLayout::Nk, true) => MatmulMmaBf16Nk32,
        (DType::F16, BLayout::Kn, true) => MatmulMmaF16Kn32,
        (DType::F16, BLayout::Nk, true) => MatmulMmaF16Nk32,
        // 8-bit and tf32: one N×K kernel for both layouts (see `Launch::transpose_b_on_host`).
        (DType::Int8, _, false) => MatmulMmaS8Nk128,
        (DType::Int8, _, true) => MatmulMmaS8Nk32,
        (DType::Fp8E4m3, _, false) => MatmulMmaE4m3Nk128,
        (DType::Fp8E4m3, _, true) => MatmulMmaE4m3Nk32,
        (DType::Tf32, _, false) => MatmulMmaTf32Nk128,
        (DType::Tf32, _, true) => MatmulMmaTf32Nk32,
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
            let tile = choose_tile(spec.m, spec.n, sms);
            let k = mma_kernel(spec.dtype, spec.b_layout, &tile).ok_or_else(|| {
                Error::unsupported(format!(
                    "`mma` runs bf16, f16, tf32, int8 and fp8_e4m3 (asked for {}); f32 runs on `simt`, e5m2 is not written",
                    spec.dtype
                ))
            })?;
            (k, tile)
        }
    };
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
    })
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

/// Device bytes a run allocates (no workspace: the kernels need none).
pub fn memory_needed(spec: &MatmulSpec, sets: usize) -> u64 {
    spec.bytes() * sets.max(1) as u64 + 256
}

/// The prepared run of `family`'s kernel on `spec`.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, spec: &MatmulSpec, family: Family) -> Built<'a> {
    let gpu = ctx.gpu;
    let launch = plan(spec, family, gpu.props.cc, gpu.props.sms)?;
    gpu.ensure_fits(memory_needed(spec, ctx.sets))?;
    // Compile before allocating gigabytes, so a compile error costs nothing.
    let func = Kernel::load(gpu, launch.kernel)?;
    let layout = set_layout(spec, ctx.inputs, launch.transpose_b_on_host)?;
    let spec = spec.clone();
    ctx.run(OwnMatmulRun { spec, launch, func }, layout)
}

/// A prepared own-kernel matmul.
pub struct OwnMatmulRun {
    spec: MatmulSpec,
    launch: Launch,
    func: Kernel,
}

impl Exec for OwnMatmulRun {
    fn enqueue(&self, gpu: &Gpu, s: &Buffers) -> Result<()> {
        // Checked against i32 in plan().
        let (m, n, k) = (self.spec.m as i32, self.spec.n as i32, self.spec.k as i32);
        // (const T* A, const T* B, T* C, int M, int N, int K) in both .cu files.
        let args = Args::new()
            .buf(&s.inputs[0])
            .buf(&s.inputs[1])
            .buf(&s.output)
            .i32(m)
            .i32(n)
            .i32(k);
        let (gx, gy) = self.launch.grid;
        let dims = Dims {
            grid: (gx, gy, 1),
            block: self.launch.block,
            smem: 0,
        };
        // SAFETY: the arguments follow the kernel's signature; buffers are sized by spec and
        // live as long as the run; the kernels use static shared memory only.
        unsafe { launch(gpu, &self.func, dims, args) }
    }

    fn output(&self) -> Output {
        super::matmul::output(&self.spec)
    }

    fn compute_dtype(&self) -> ComputeType {
        compute_type(self.spec.dtype)
    }

    fn notes(&self, gpu: &Gpu) -> Vec<String> {
        let l = &self.launch;
        let mut n = vec![format!(
            "kernel {} ({}), tile {}×{} × {} B of K, {} stage(s), grid {}×{} × {} threads, {} B shared memory",
            l.kernel.id(),
            l.kernel.symbol(),
            l.tile.bm,
            l.tile.bn,
            l.tile.bk_bytes,
            l.tile.stages,
            l.grid.0,
            l.grid.1,
            l.block,
            l.tile.smem_bytes
        )];
        if let Some(r) = gpu
            .module_log(l.kernel.source())
            .and_then(|log| super::nvrtc::resources_of(&log, l.kernel))
        {
            n.push(format!(
                "{} registers, {} B spill stores, {} B spill loads",
                r.registers, r.spill_stores, r.spill_loads
            ));
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

    const H200: ((i32, i32), u32) = ((9, 0), 132);

    #[test]
    fn tile_constants_match_the_kernel_sources() {
        // The .cu files carry the same numbers; a change on one side only must fail here.
        let mma = KernelId::MatmulMmaBf16Nk128.source().text();
        assert!(mma.contains("GV_MMA_KERNEL(matmul_mma_bf16_nk_128x128, 128, 128, 2, 3,"));
        assert!(mma.contains("GV_MMA_KERNEL(matmul_mma_bf16_nk_32x64, 32, 64, 2, 4,"));
        assert!(mma.contains("#define BK_BYTES 64") && mma.contains("#define THREADS 256"));
        let simt = KernelId::MatmulSimtF32Kn.source().text();
        for d in [
            "#define BM 128",
            "#define BN 128",
            "#define BK 8",
            "#define THREADS 256",
        ] {
            assert!(simt.contains(d), "{d}");
        }
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
                    assert!(sym.ends_with(l.tile.name), "{sym} vs {}", l.tile.name);
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
            memory_needed(&spec(2, 3, 4, DType::F32, BLayout::Kn), 2),
            2 * (2 * 4 + 4 * 3 + 2 * 3) * 4 + 256
        );
    }
}
