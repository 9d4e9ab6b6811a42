//! Every own CUDA kernel, named by an id, with its source embedded in the binary.
//!
//! Sources live in `kernels/*.cu` and are compiled at run time by NVRTC for the exact GPU
//! architecture (see `nvrtc.rs`), so the binary carries no precompiled code and works on any
//! architecture NVRTC knows.
//!
//! [`kernel_table!`] below is the one place a kernel is declared: one row gives its id, the
//! `extern "C"` symbol, the source file, its parameter list and a description. The
//! [`KernelId`] enum and every lookup are generated from it, so no lookup can fall back
//! silently for a kernel someone forgot; tests/kernels_compile.rs checks each row's parameter
//! list against the `.entry` signature of the compiled PTX.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The kind of one kernel parameter, as C declares it and PTX lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    /// A device pointer (`T*` / `const T*`): `.u64` in PTX.
    Ptr,
    /// `int`: `.u32` in PTX (PTX parameters carry no signedness).
    I32,
    /// `unsigned long long` / `uint64_t`: `.u64`.
    U64,
    /// `float`: `.f32`.
    F32,
    /// A `const __grid_constant__` CUtensorMap (128 bytes, 64-byte aligned) for TMA:
    /// `.param .align 64 .b8 name[128]` in PTX.
    TensorMap,
    /// `unsigned int`: `.u32` (user kernels).
    U32,
    /// `long long`: `.u64` in PTX (user kernels).
    I64,
    /// `double`: `.f64` (user kernels).
    F64,
}

impl Param {
    /// The PTX type of the `.param` this kind compiles to.
    pub fn ptx_type(self) -> &'static str {
        match self {
            Param::Ptr | Param::U64 | Param::I64 => ".u64",
            Param::I32 | Param::U32 => ".u32",
            Param::F32 => ".f32",
            Param::TensorMap => ".b8[128]",
            Param::F64 => ".f64",
        }
    }
}

/// One `.cu` file: compiled as one NVRTC program, loaded as one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Memory,
    Attention,
    MatmulSimt,
    MatmulMma,
    /// Hopper only: wgmma, TMA, setmaxnreg (sm_90a).
    MatmulWgmma,
    FlashFwd,
    FlashDecode,
    /// Hopper only: FA3-style prefill with wgmma, TMA, setmaxnreg (sm_90a).
    FlashFwdSm90,
    /// A user's own `.cu` file (a later `bench kernel`), read once by [`UserSource::load`].
    User(&'static UserSource),
}

/// A user kernel source: its path and the text read from it. Loaded once and kept for the
/// process, so that [`Source`] stays `Copy` and a module is compiled from exactly the text
/// that was hashed, even if the file changes on disk during the run.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UserSource {
    pub path: PathBuf,
    /// `path` as text, what NVRTC and error messages name the program by.
    name: String,
    /// The file name without `.cu`, for cache file names.
    stem: String,
    text: String,
}

impl UserSource {
    /// Reads `path` (a `.cu` file) as a kernel source.
    pub fn load(path: &Path) -> Result<Source> {
        let text = crate::files::read_text_bounded(path, crate::files::MAX_SMALL_FILE_BYTES)
            .map_err(|e| {
                Error::invalid(format!("cannot read kernel source {}: {e}", path.display()))
            })?;
        Ok(Source::User(Self::from_text(path, text)))
    }

    /// A user source with the given text (what `load` read).
    pub fn from_text(path: &Path, text: String) -> &'static UserSource {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "user".into());
        // One small allocation per user file per process: the price of a `Copy` Source.
        Box::leak(Box::new(UserSource {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            stem: format!("user-{stem}"),
            text,
        }))
    }
}

impl Source {
    pub const ALL: [Source; 8] = [
        Source::Memory,
        Source::Attention,
        Source::MatmulSimt,
        Source::MatmulMma,
        Source::MatmulWgmma,
        Source::FlashFwd,
        Source::FlashDecode,
        Source::FlashFwdSm90,
    ];

    /// The architectures this source is written for: CI compiles it for each of them
    /// (tests/kernels_compile.rs) and the backend loads it only there. Most sources build for
    /// every target gpuvet supports; the Hopper kernels use instructions that exist only on
    /// sm_90a (wgmma, setmaxnreg) and refuse to compile elsewhere.
    pub fn archs(self) -> &'static [&'static str] {
        match self {
            Source::MatmulWgmma | Source::FlashFwdSm90 => &SM90A_ONLY,
            // Every source named: a new one must say where it builds.
            Source::Memory
            | Source::Attention
            | Source::MatmulSimt
            | Source::MatmulMma
            | Source::FlashFwd
            | Source::FlashDecode
            | Source::User(_) => &ALL_ARCHS,
        }
    }

    /// Whether this source can be compiled for `arch` (user sources: always tried).
    pub fn builds_for(self, arch: &str) -> bool {
        matches!(self, Source::User(_)) || self.archs().contains(&arch)
    }

    pub fn file(self) -> &'static str {
        match self {
            Source::User(u) => &u.name,
            Source::MatmulWgmma => "kernels/matmul_wgmma.cu",
            Source::Memory => "kernels/memory.cu",
            Source::Attention => "kernels/attention.cu",
            Source::MatmulSimt => "kernels/matmul_simt.cu",
            Source::MatmulMma => "kernels/matmul_mma.cu",
            Source::FlashFwd => "kernels/flash_fwd.cu",
            Source::FlashDecode => "kernels/flash_decode.cu",
            Source::FlashFwdSm90 => "kernels/flash_fwd_sm90.cu",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Source::User(u) => &u.text,
            Source::Memory => include_str!("../../../kernels/memory.cu"),
            Source::Attention => include_str!("../../../kernels/attention.cu"),
            Source::MatmulSimt => include_str!("../../../kernels/matmul_simt.cu"),
            Source::MatmulMma => include_str!("../../../kernels/matmul_mma.cu"),
            Source::MatmulWgmma => include_str!("../../../kernels/matmul_wgmma.cu"),
            Source::FlashFwd => include_str!("../../../kernels/flash_fwd.cu"),
            Source::FlashDecode => include_str!("../../../kernels/flash_decode.cu"),
            Source::FlashFwdSm90 => include_str!("../../../kernels/flash_fwd_sm90.cu"),
        }
    }

    /// Short name used in cache file names.
    pub fn stem(self) -> &'static str {
        if let Source::User(u) = self {
            return &u.stem;
        }
        let f = self.file();
        &f["kernels/".len()..f.len() - ".cu".len()]
    }
}

/// The targets gpuvet compiles its portable kernels for in CI: A100, L4/L40S/4090, H100/H200.
pub const ALL_ARCHS: [&str; 3] = ["sm_80", "sm_89", "sm_90a"];
/// Kernels that use Hopper's arch-specific instructions.
pub const SM90A_ONLY: [&str; 1] = ["sm_90a"];

/// gpuvet's own headers, `#include`d by name and handed to NVRTC in memory (no CUDA toolkit
/// headers are ever needed). Every source is compiled with all of them available.
pub const HEADERS: [(&str, &str); 3] = [
    (
        "gpuvet_ptx.cuh",
        include_str!("../../../kernels/gpuvet_ptx.cuh"),
    ),
    (
        "gpuvet_flash.cuh",
        include_str!("../../../kernels/gpuvet_flash.cuh"),
    ),
    (
        "gpuvet_sm90.cuh",
        include_str!("../../../kernels/gpuvet_sm90.cuh"),
    ),
];

/// Parameter lists shared by several kernels, as their C signatures declare them.
mod sig {
    use super::Param;
    use super::Param::Ptr as P;
    use super::Param::{TensorMap as TM, F32, I32, U64};
    /// `(const float4* src, float4* dst, u64 n)`
    pub const MEM_COPY: &[Param] = &[P, P, U64];
    /// `(const float4* src, u64 n, double* partials)`
    pub const MEM_READ: &[Param] = &[P, U64, P];
    /// `(float4* dst, u64 n, float value)`
    pub const MEM_WRITE: &[Param] = &[P, U64, F32];
    /// `(float4* a, const float4* b, const float4* c, u64 n, float s)`
    pub const MEM_TRIAD: &[Param] = &[P, P, P, U64, F32];
    /// `(const float* S, T* P, u64 q_len, u64 kv_len, int causal)`
    pub const SOFTMAX: &[Param] = &[P, P, U64, U64, I32];
    /// `(const void* A, const void* B, void* C, int M, int N, int K)`
    pub const MATMUL: &[Param] = &[P, P, P, I32, I32, I32];
    /// `(const void* A, const void* B, void* P, int M, int N, int K, int kchunk)`: split-K
    pub const MATMUL_SPLITK: &[Param] = &[P, P, P, I32, I32, I32, I32];
    /// `(const Acc* P, Out* C, u64 count, int splits)`
    pub const SPLITK_REDUCE: &[Param] = &[P, P, U64, I32];
    /// `(TensorMap A, TensorMap B, void* C, int M, int N, int K)`: the TMA kernels
    pub const MATMUL_TMA: &[Param] = &[TM, TM, P, I32, I32, I32];
    /// `(q, k, v, o, lse, int q_heads, kv_heads, q_len, kv_len, causal, float scale_log2)`
    pub const FLASH_FWD: &[Param] = &[P, P, P, P, P, I32, I32, I32, I32, I32, F32];
    /// `(TensorMap q, k, v, o, lse, int q_heads, kv_heads, q_len, kv_len, causal, float
    /// scale_log2)`: the TMA prefill
    pub const FLASH_FWD_TMA: &[Param] = &[TM, TM, TM, P, P, I32, I32, I32, I32, I32, F32];
    /// `(q, k, v, part_o, part_lse, int ×5, float scale_log2, int chunk)`
    pub const DECODE: &[Param] = &[P, P, P, P, P, I32, I32, I32, I32, I32, F32, I32];
    /// `(q, k, v, block_table, part_o, part_lse, int ×5, float, int chunk, pages_per_seq,
    /// page_size)`
    pub const DECODE_PAGED: &[Param] = &[
        P, P, P, P, P, P, I32, I32, I32, I32, I32, F32, I32, I32, I32,
    ];
    /// `(const float* part_o, const float* part_lse, u16* o, int rows, int splits, int d)`
    pub const COMBINE: &[Param] = &[P, P, P, I32, I32, I32];
}
use sig::*;

/// One row of the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRow {
    /// The id shown by `gpuvet list --kernels`.
    pub id: &'static str,
    /// The `extern "C"` function name in the source.
    pub symbol: &'static str,
    pub source: Source,
    /// The kernel's parameters in order, as the host passes them (launch::Args).
    pub params: &'static [Param],
    pub description: &'static str,
}

/// Generates [`KernelId`] and its table from rows `Variant: id, symbol, Source, params,
/// description;`.
macro_rules! kernel_table {
    ($($k:ident: $id:literal, $sym:literal, $src:ident, $params:ident, $desc:literal;)*) => {
        /// Every kernel gpuvet launches.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum KernelId {
            $($k,)*
        }

        impl KernelId {
            pub const ALL: [KernelId; [$(stringify!($k)),*].len()] = [$(KernelId::$k,)*];

            /// This kernel's row of the table.
            pub fn row(self) -> &'static KernelRow {
                match self {
                    $(KernelId::$k => &KernelRow {
                        id: $id,
                        symbol: $sym,
                        source: Source::$src,
                        params: $params,
                        description: $desc,
                    },)*
                }
            }
        }
    };
}

kernel_table! {
    MemCopy: "memory.copy", "gv_copy", Memory, MEM_COPY,
        "dst = src, float4 loads/stores, grid-stride, 4 loads in flight (also the SM copy over a link: mapped pinned host memory, a peer's memory)";
    MemRead: "memory.read", "gv_read", Memory, MEM_READ,
        "sum(src), float4 loads, f64 per-block partials";
    MemWrite: "memory.write", "gv_write", Memory, MEM_WRITE,
        "dst = value, float4 stores, grid-stride";
    MemTriad: "memory.triad", "gv_triad", Memory, MEM_TRIAD,
        "a = b + s*c (STREAM triad), float4, grid-stride";
    SoftmaxF32: "attention.softmax.f32", "gv_softmax_f32", Attention, SOFTMAX,
        "row softmax of f32 scores, causal end-aligned, P in f32";
    SoftmaxF16: "attention.softmax.f16", "gv_softmax_f16", Attention, SOFTMAX,
        "row softmax of f32 scores, causal end-aligned, P in f16";
    SoftmaxBf16: "attention.softmax.bf16", "gv_softmax_bf16", Attention, SOFTMAX,
        "row softmax of f32 scores, causal end-aligned, P in bf16";
    MatmulSimtF32Kn: "matmul.simt.f32.kn", "matmul_simt_f32_kn", MatmulSimt, MATMUL,
        "fp32 SGEMM on CUDA cores, B K×N: 128×128×8 tiles, 8×8 per thread, float4 loads";
    MatmulSimtF32Nk: "matmul.simt.f32.nk", "matmul_simt_f32_nk", MatmulSimt, MATMUL,
        "fp32 SGEMM on CUDA cores, B N×K: 128×128×8 tiles, 8×8 per thread, float4 loads";
    MatmulMmaBf16Kn128: "matmul.mma.bf16.kn.128x128", "matmul_mma_bf16_kn_128x128", MatmulMma, MATMUL,
        "bf16 mma.sync m16n8k16 (f32 accumulate), B K×N, ldmatrix.trans, 128×128×32 tiles, 3-stage cp.async, swizzled smem";
    MatmulMmaBf16Nk128: "matmul.mma.bf16.nk.128x128", "matmul_mma_bf16_nk_128x128", MatmulMma, MATMUL,
        "bf16 mma.sync m16n8k16 (f32 accumulate), B N×K, 128×128×32 tiles, 3-stage cp.async, swizzled smem";
    MatmulMmaBf16Kn32: "matmul.mma.bf16.kn.32x64", "matmul_mma_bf16_kn_32x64", MatmulMma, MATMUL,
        "bf16 mma.sync m16n8k16 (f32 accumulate), B K×N, ldmatrix.trans, 32×64×32 tiles (small M), 4-stage cp.async, swizzled smem";
    MatmulMmaBf16Nk32: "matmul.mma.bf16.nk.32x64", "matmul_mma_bf16_nk_32x64", MatmulMma, MATMUL,
        "bf16 mma.sync m16n8k16 (f32 accumulate), B N×K, 32×64×32 tiles (small M), 4-stage cp.async, swizzled smem";
    MatmulMmaF16Kn128: "matmul.mma.f16.kn.128x128", "matmul_mma_f16_kn_128x128", MatmulMma, MATMUL,
        "f16 mma.sync m16n8k16 (f32 accumulate), B K×N, ldmatrix.trans, 128×128×32 tiles, 3-stage cp.async, swizzled smem";
    MatmulMmaF16Nk128: "matmul.mma.f16.nk.128x128", "matmul_mma_f16_nk_128x128", MatmulMma, MATMUL,
        "f16 mma.sync m16n8k16 (f32 accumulate), B N×K, 128×128×32 tiles, 3-stage cp.async, swizzled smem";
    MatmulMmaF16Kn32: "matmul.mma.f16.kn.32x64", "matmul_mma_f16_kn_32x64", MatmulMma, MATMUL,
        "f16 mma.sync m16n8k16 (f32 accumulate), B K×N, ldmatrix.trans, 32×64×32 tiles (small M), 4-stage cp.async, swizzled smem";
    MatmulMmaF16Nk32: "matmul.mma.f16.nk.32x64", "matmul_mma_f16_nk_32x64", MatmulMma, MATMUL,
        "f16 mma.sync m16n8k16 (f32 accumulate), B N×K, 32×64×32 tiles (small M), 4-stage cp.async, swizzled smem";
    MatmulMmaS8Nk128: "matmul.mma.s8.nk.128x128", "matmul_mma_s8_nk_128x128", MatmulMma, MATMUL,
        "int8 mma.sync m16n8k32 (s32 accumulate, i32 out), B N×K, 128×128 tiles (64 K bytes/stage), 3-stage cp.async, swizzled smem";
    MatmulMmaE4m3Nk128: "matmul.mma.e4m3.nk.128x128", "matmul_mma_e4m3_nk_128x128", MatmulMma, MATMUL,
        "fp8 e4m3 mma.sync m16n8k32 (sm_89+, f32 accumulate, bf16 out), B N×K, 128×128 tiles (64 K bytes/stage), 3-stage cp.async";
    MatmulMmaS8Nk32: "matmul.mma.s8.nk.32x64", "matmul_mma_s8_nk_32x64", MatmulMma, MATMUL,
        "int8 mma.sync m16n8k32 (s32 accumulate, i32 out), B N×K, 32×64 tiles (small M), 4-stage cp.async, swizzled smem";
    MatmulMmaE4m3Nk32: "matmul.mma.e4m3.nk.32x64", "matmul_mma_e4m3_nk_32x64", MatmulMma, MATMUL,
        "fp8 e4m3 mma.sync m16n8k32 (sm_89+, f32 accumulate, bf16 out), B N×K, 32×64 tiles (small M), 4-stage cp.async";
    MatmulMmaTf32Nk128: "matmul.mma.tf32.nk.128x128", "matmul_mma_tf32_nk_128x128", MatmulMma, MATMUL,
        "tf32 mma.sync m16n8k8 (f32 accumulate, f32 out), B N×K, 128×128 tiles (64 K bytes/stage), 3-stage cp.async";
    MatmulMmaTf32Nk32: "matmul.mma.tf32.nk.32x64", "matmul_mma_tf32_nk_32x64", MatmulMma, MATMUL,
        "tf32 mma.sync m16n8k8 (f32 accumulate, f32 out), B N×K, 32×64 tiles (small M), 4-stage cp.async";
    MatmulMmaBf16Kn128R: "matmul.mma.bf16.kn.128x128_ragged", "matmul_mma_bf16_kn_128x128_ragged", MatmulMma, MATMUL,
        "bf16 mma.sync m16n8k16 (f32 accumulate), B K×N, 128×128 tiles for rows that are not 16-byte aligned: register prefetch one K tile ahead, 1 block/SM";
    MatmulMmaBf16Nk128R: "matmul.mma.bf16.nk.128x128_ragged", "matmul_mma_bf16_nk_128x128_ragged", MatmulMma, MATMUL,
        "bf16 mma.sync m16n8k16 (f32 accumulate), B N×K, 128×128 tiles for rows that are not 16-byte aligned: register prefetch one K tile ahead, 1 block/SM";
    MatmulMmaF16Kn128R: "matmul.mma.f16.kn.128x128_ragged", "matmul_mma_f16_kn_128x128_ragged", MatmulMma, MATMUL,
        "f16 mma.sync m16n8k16 (f32 accumulate), B K×N, 128×128 tiles for rows that are not 16-byte aligned: register prefetch one K tile ahead, 1 block/SM";
    MatmulMmaF16Nk128R: "matmul.mma.f16.nk.128x128_ragged", "matmul_mma_f16_nk_128x128_ragged", MatmulMma, MATMUL,
        "f16 mma.sync m16n8k16 (f32 accumulate), B N×K, 128×128 tiles for rows that are not 16-byte aligned: register prefetch one K tile ahead, 1 block/SM";
    MatmulMmaS8Nk128R: "matmul.mma.s8.nk.128x128_ragged", "matmul_mma_s8_nk_128x128_ragged", MatmulMma, MATMUL,
        "int8 mma.sync m16n8k32 (s32 accumulate, i32 out), B N×K, 128×128 tiles for rows that are not 16-byte aligned: register prefetch one K tile ahead, 1 block/SM";
    MatmulMmaTf32Nk128R: "matmul.mma.tf32.nk.128x128_ragged", "matmul_mma_tf32_nk_128x128_ragged", MatmulMma, MATMUL,
        "tf32 mma.sync m16n8k8 (f32 accumulate, f32 out), B N×K, 128×128 tiles for rows that are not 16-byte aligned: register prefetch one K tile ahead, 1 block/SM";
    MatmulMmaBf16KnSplit: "matmul.mma.bf16.kn.32x64_splitk", "matmul_mma_bf16_kn_32x64_splitk", MatmulMma, MATMUL_SPLITK,
        "decode GEMM (M ≤ 64): bf16 mma.sync (f32 partials), B K×N, 32×64 tiles, K split over blockIdx.z, 4-stage cp.async";
    MatmulMmaBf16NkSplit: "matmul.mma.bf16.nk.32x64_splitk", "matmul_mma_bf16_nk_32x64_splitk", MatmulMma, MATMUL_SPLITK,
        "decode GEMM (M ≤ 64): bf16 mma.sync (f32 partials), B N×K, 32×64 tiles, K split over blockIdx.z, 4-stage cp.async";
    MatmulMmaF16KnSplit: "matmul.mma.f16.kn.32x64_splitk", "matmul_mma_f16_kn_32x64_splitk", MatmulMma, MATMUL_SPLITK,
        "decode GEMM (M ≤ 64): f16 mma.sync (f32 partials), B K×N, 32×64 tiles, K split over blockIdx.z, 4-stage cp.async";
    MatmulMmaF16NkSplit: "matmul.mma.f16.nk.32x64_splitk", "matmul_mma_f16_nk_32x64_splitk", MatmulMma, MATMUL_SPLITK,
        "decode GEMM (M ≤ 64): f16 mma.sync (f32 partials), B N×K, 32×64 tiles, K split over blockIdx.z, 4-stage cp.async";
    MatmulMmaS8NkSplit: "matmul.mma.s8.nk.32x64_splitk", "matmul_mma_s8_nk_32x64_splitk", MatmulMma, MATMUL_SPLITK,
        "decode GEMM (M ≤ 64): int8 mma.sync (s32 partials), B N×K, 32×64 tiles, K split over blockIdx.z, 4-stage cp.async";
    MatmulMmaE4m3NkSplit: "matmul.mma.e4m3.nk.32x64_splitk", "matmul_mma_e4m3_nk_32x64_splitk", MatmulMma, MATMUL_SPLITK,
        "decode GEMM (M ≤ 64): fp8 e4m3 mma.sync (sm_89+, f32 partials), B N×K, 32×64 tiles, K split over blockIdx.z, 4-stage cp.async";
    MatmulMmaTf32NkSplit: "matmul.mma.tf32.nk.32x64_splitk", "matmul_mma_tf32_nk_32x64_splitk", MatmulMma, MATMUL_SPLITK,
        "decode GEMM (M ≤ 64): tf32 mma.sync (f32 partials), B N×K, 32×64 tiles, K split over blockIdx.z, 4-stage cp.async";
    MatmulReduceBf16: "matmul.splitk_reduce.bf16", "matmul_splitk_reduce_bf16", MatmulMma, SPLITK_REDUCE,
        "split-K reduction: f32 partials → bf16, grid-stride";
    MatmulReduceF16: "matmul.splitk_reduce.f16", "matmul_splitk_reduce_f16", MatmulMma, SPLITK_REDUCE,
        "split-K reduction: f32 partials → f16, grid-stride";
    MatmulReduceF32: "matmul.splitk_reduce.f32", "matmul_splitk_reduce_f32", MatmulMma, SPLITK_REDUCE,
        "split-K reduction: f32 partials → f32 (tf32), grid-stride";
    MatmulReduceI32: "matmul.splitk_reduce.i32", "matmul_splitk_reduce_i32", MatmulMma, SPLITK_REDUCE,
        "split-K reduction: s32 partials → i32 (int8), grid-stride";
    MatmulWgmmaBf16Nk: "matmul.wgmma.bf16.nk", "matmul_wgmma_bf16_nk", MatmulWgmma, MATMUL_TMA,
        "bf16 wgmma m64n256k16 (sm_90a, f32 accumulate), B N×K, TMA 128B swizzle, 4-stage mbarrier ring, producer + 2 consumer warpgroups, persistent 128×256 tiles";
    MatmulWgmmaBf16Kn: "matmul.wgmma.bf16.kn", "matmul_wgmma_bf16_kn", MatmulWgmma, MATMUL_TMA,
        "bf16 wgmma m64n256k16 (sm_90a, f32 accumulate), B K×N read MN-major, TMA 128B swizzle, 4-stage mbarrier ring, persistent 128×256 tiles";
    MatmulWgmmaF16Nk: "matmul.wgmma.f16.nk", "matmul_wgmma_f16_nk", MatmulWgmma, MATMUL_TMA,
        "f16 wgmma m64n256k16 (sm_90a, f32 accumulate), B N×K, TMA 128B swizzle, 4-stage mbarrier ring, producer + 2 consumer warpgroups, persistent 128×256 tiles";
    MatmulWgmmaF16Kn: "matmul.wgmma.f16.kn", "matmul_wgmma_f16_kn", MatmulWgmma, MATMUL_TMA,
        "f16 wgmma m64n256k16 (sm_90a, f32 accumulate), B K×N read MN-major, TMA 128B swizzle, 4-stage mbarrier ring, persistent 128×256 tiles";
    MatmulWgmmaE4m3Nk: "matmul.wgmma.e4m3.nk", "matmul_wgmma_e4m3_nk", MatmulWgmma, MATMUL_TMA,
        "fp8 e4m3 wgmma m64n128k32 (sm_90a, f32 promotion every 128 K, bf16 out), B N×K, TMA 128B swizzle, 6-stage ring, persistent 128×128 tiles";
    FlashFwdBf16D64: "attention.flash_fwd.bf16.d64", "gv_flash_fwd_bf16_d64", FlashFwd, FLASH_FWD,
        "fused prefill, bf16, head dim 64: 64-row Q tiles, 64-key K/V tiles, mma.sync m16n8k16, cp.async double buffer, online softmax";
    FlashFwdBf16D128: "attention.flash_fwd.bf16.d128", "gv_flash_fwd_bf16_d128", FlashFwd, FLASH_FWD,
        "fused prefill, bf16, head dim 128: 64-row Q tiles, 64-key K/V tiles, mma.sync m16n8k16, cp.async double buffer, online softmax";
    FlashFwdF16D64: "attention.flash_fwd.f16.d64", "gv_flash_fwd_f16_d64", FlashFwd, FLASH_FWD,
        "fused prefill, f16, head dim 64: 64-row Q tiles, 64-key K/V tiles, mma.sync m16n8k16, cp.async double buffer, online softmax";
    FlashFwdF16D128: "attention.flash_fwd.f16.d128", "gv_flash_fwd_f16_d128", FlashFwd, FLASH_FWD,
        "fused prefill, f16, head dim 128: 64-row Q tiles, 64-key K/V tiles, mma.sync m16n8k16, cp.async double buffer, online softmax";
    FlashFwdSm90Bf16D64: "attention.flash_fwd_sm90.bf16.d64", "gv_flash_fwd_sm90_bf16_d64", FlashFwdSm90, FLASH_FWD_TMA,
        "FA3-style prefill (sm_90a), bf16, head dim 64: TMA, producer + 2 consumer warpgroups, SS-wgmma Q·Kᵀ, RS-wgmma P·V, softmax overlapped, ping-pong, 128×128 tiles";
    FlashFwdSm90Bf16D128: "attention.flash_fwd_sm90.bf16.d128", "gv_flash_fwd_sm90_bf16_d128", FlashFwdSm90, FLASH_FWD_TMA,
        "FA3-style prefill (sm_90a), bf16, head dim 128: TMA, producer + 2 consumer warpgroups, SS-wgmma Q·Kᵀ, RS-wgmma P·V, softmax overlapped, ping-pong, 128×128 tiles";
    FlashFwdSm90F16D64: "attention.flash_fwd_sm90.f16.d64", "gv_flash_fwd_sm90_f16_d64", FlashFwdSm90, FLASH_FWD_TMA,
        "FA3-style prefill (sm_90a), f16, head dim 64: TMA, producer + 2 consumer warpgroups, SS-wgmma Q·Kᵀ, RS-wgmma P·V, softmax overlapped, ping-pong, 128×128 tiles";
    FlashFwdSm90F16D128: "attention.flash_fwd_sm90.f16.d128", "gv_flash_fwd_sm90_f16_d128", FlashFwdSm90, FLASH_FWD_TMA,
        "FA3-style prefill (sm_90a), f16, head dim 128: TMA, producer + 2 consumer warpgroups, SS-wgmma Q·Kᵀ, RS-wgmma P·V, softmax overlapped, ping-pong, 128×128 tiles";
    FlashDecodeBf16D64: "attention.flash_decode.bf16.d64", "gv_flash_decode_bf16_d64", FlashDecode, DECODE,
        "split-KV decode, bf16, head dim 64: GQA rows packed into 16-row mma tiles, partial O and log-sum-exp per split";
    FlashDecodeBf16D128: "attention.flash_decode.bf16.d128", "gv_flash_decode_bf16_d128", FlashDecode, DECODE,
        "split-KV decode, bf16, head dim 128: GQA rows packed into 16-row mma tiles, partial O and log-sum-exp per split";
    FlashDecodeF16D64: "attention.flash_decode.f16.d64", "gv_flash_decode_f16_d64", FlashDecode, DECODE,
        "split-KV decode, f16, head dim 64: GQA rows packed into 16-row mma tiles, partial O and log-sum-exp per split";
    FlashDecodeF16D128: "attention.flash_decode.f16.d128", "gv_flash_decode_f16_d128", FlashDecode, DECODE,
        "split-KV decode, f16, head dim 128: GQA rows packed into 16-row mma tiles, partial O and log-sum-exp per split";
    FlashCombineBf16: "attention.flash_decode.combine.bf16", "gv_flash_decode_combine_bf16", FlashDecode, COMBINE,
        "merges the KV splits of decode by log-sum-exp weights, O in bf16";
    FlashCombineF16: "attention.flash_decode.combine.f16", "gv_flash_decode_combine_f16", FlashDecode, COMBINE,
        "merges the KV splits of decode by log-sum-exp weights, O in f16";
    FlashDecodePagedBf16D64: "attention.flash_decode_paged.bf16.d64", "gv_flash_decode_paged_bf16_d64", FlashDecode, DECODE_PAGED,
        "split-KV decode from a paged KV cache (block table, page size 16 or 64), bf16, head dim 64";
    FlashDecodePagedBf16D128: "attention.flash_decode_paged.bf16.d128", "gv_flash_decode_paged_bf16_d128", FlashDecode, DECODE_PAGED,
        "split-KV decode from a paged KV cache (block table, page size 16 or 64), bf16, head dim 128";
    FlashDecodePagedF16D64: "attention.flash_decode_paged.f16.d64", "gv_flash_decode_paged_f16_d64", FlashDecode, DECODE_PAGED,
        "split-KV decode from a paged KV cache (block table, page size 16 or 64), f16, head dim 64";
    FlashDecodePagedF16D128: "attention.flash_decode_paged.f16.d128", "gv_flash_decode_paged_f16_d128", FlashDecode, DECODE_PAGED,
        "split-KV decode from a paged KV cache (block table, page size 16 or 64), f16, head dim 128";
}

impl KernelId {
    /// The id shown by `gpuvet list --kernels`.
    pub fn id(self) -> &'static str {
        self.row().id
    }

    /// The `extern "C"` function name in the source.
    pub fn symbol(self) -> &'static str {
        self.row().symbol
    }

    pub fn source(self) -> Source {
        self.row().source
    }

    /// The parameter list the host passes, checked against the PTX by tests/kernels_compile.rs
    /// and against every launch's arguments by `launch::launch`.
    pub fn params(self) -> &'static [Param] {
        self.row().params
    }

    pub fn description(self) -> &'static str {
        self.row().description
    }
}

/// NVRTC options common to every kernel; the architecture is added per device.
pub const BASE_OPTIONS: [&str; 3] = ["--std=c++17", "-default-device", "--ptxas-options=-v"];

/// A hash of every kernel source and the compile options, recorded in reports so that results
/// from different kernel code are never compared as if they were the same.
pub fn sources_hash() -> String {
    let mut h = Sha256::new();
    for s in Source::ALL {
        h.update(s.file().as_bytes());
        h.update([0]);
        h.update(s.text().as_bytes());
        h.update([0]);
    }
    for (name, text) in HEADERS {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    for o in BASE_OPTIONS {
        h.update(o.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize()[..8])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_symbol_is_in_its_source() {
        for k in KernelId::ALL {
            let src = k.source().text();
            assert!(
                src.lines()
                    .any(|l| l.starts_with("extern \"C\" __global__ void")
                        && l.contains(&format!(" {}(", k.symbol()))),
                "{} not found in {}",
                k.symbol(),
                k.source().file()
            );
        }
        let ids: std::collections::HashSet<_> = KernelId::ALL.iter().map(|k| k.id()).collect();
        assert_eq!(ids.len(), KernelId::ALL.len());
    }

    #[test]
    fn sources_include_only_gpuvets_own_headers() {
        // NVRTC without a toolkit has no headers: an #include of anything but an in-memory
        // header would fail in CI and on machines with only the pip NVRTC.
        let texts = Source::ALL.iter().map(|s| (s.file(), s.text()));
        for (file, text) in texts.chain(HEADERS) {
            for l in text
                .lines()
                .filter(|l| l.trim_start().starts_with("#include"))
            {
                let name = l.split('"').nth(1).unwrap_or("");
                assert!(HEADERS.iter().any(|(h, _)| *h == name), "{file}: {l}");
            }
        }
        // The PTX helpers are defined once, in the header.
        for s in Source::ALL {
            assert!(!s.text().contains("cp.async.cg.shared"), "{}", s.file());
        }
    }

    #[test]
    fn a_user_source_is_named_by_its_file_and_hashed_by_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my_gemm.cu");
        std::fs::write(&path, "extern \"C\" __global__ void k() {}").unwrap();
        let a = UserSource::load(&path).unwrap();
        assert_eq!(a.stem(), "user-my_gemm");
        assert_eq!(a.file(), path.display().to_string());
        assert!(a.text().contains("void k()"));
        // The compile cache key follows the text: an edited file is never served stale.
        std::fs::write(&path, "extern \"C\" __global__ void k2() {}").unwrap();
        let b = UserSource::load(&path).unwrap();
        let key = |s| super::super::nvrtc::cache_key(s, "sm_90a", (13, 0));
        assert_ne!(key(a), key(b));
        assert_eq!(key(a), key(a));
        assert!(UserSource::load(&dir.path().join("missing.cu")).is_err());
    }

    #[test]
    fn hash_is_stable_hex() {
        let h = sources_hash();
        assert_eq!(h.len(), 16);
        assert_eq!(h, sources_hash());
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
