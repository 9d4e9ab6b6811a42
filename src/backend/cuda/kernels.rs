//! Every own CUDA kernel, named by an id, with its source embedded in the binary.
//!
//! Sources live in `kernels/*.cu` and are compiled at run time by NVRTC for the exact GPU
//! architecture (see `nvrtc.rs`), so the binary carries no precompiled code and works on any
//! architecture NVRTC knows.

use sha2::{Digest, Sha256};

/// One `.cu` file: compiled as one NVRTC program, loaded as one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Memory,
    Attention,
    MatmulSimt,
    MatmulMma,
    FlashFwd,
    FlashDecode,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::Memory,
        Source::Attention,
        Source::MatmulSimt,
        Source::MatmulMma,
        Source::FlashFwd,
        Source::FlashDecode,
    ];

    pub fn file(self) -> &'static str {
        match self {
            Source::Memory => "kernels/memory.cu",
            Source::Attention => "kernels/attention.cu",
            Source::MatmulSimt => "kernels/matmul_simt.cu",
            Source::MatmulMma => "kernels/matmul_mma.cu",
            Source::FlashFwd => "kernels/flash_fwd.cu",
            Source::FlashDecode => "kernels/flash_decode.cu",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Source::Memory => include_str!("../../../kernels/memory.cu"),
            Source::Attention => include_str!("../../../kernels/attention.cu"),
            Source::MatmulSimt => include_str!("../../../kernels/matmul_simt.cu"),
            Source::MatmulMma => include_str!("../../../kernels/matmul_mma.cu"),
            Source::FlashFwd => include_str!("../../../kernels/flash_fwd.cu"),
            Source::FlashDecode => include_str!("../../../kernels/flash_decode.cu"),
        }
    }

    /// Short name used in cache file names.
    pub fn stem(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Attention => "attention",
            Source::MatmulSimt => "matmul_simt",
            Source::MatmulMma => "matmul_mma",
            Source::FlashFwd => "flash_fwd",
            Source::FlashDecode => "flash_decode",
        }
    }
}

/// Every kernel gpuvet launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelId {
    MemCopy,
    MemRead,
    MemWrite,
    MemTriad,
    SoftmaxF32,
    SoftmaxF16,
    SoftmaxBf16,
    MatmulSimtF32Kn,
    MatmulSimtF32Nk,
    MatmulMmaBf16Kn128,
    MatmulMmaBf16Nk128,
    MatmulMmaBf16Kn32,
    MatmulMmaBf16Nk32,
    MatmulMmaF16Kn128,
    MatmulMmaF16Nk128,
    MatmulMmaF16Kn32,
    MatmulMmaF16Nk32,
    MatmulMmaS8Nk128,
    MatmulMmaE4m3Nk128,
    MatmulMmaS8Nk32,
    MatmulMmaE4m3Nk32,
    MatmulMmaTf32Nk128,
    MatmulMmaTf32Nk32,
    FlashFwdBf16D64,
    FlashFwdBf16D128,
    FlashFwdF16D64,
    FlashFwdF16D128,
    FlashDecodeBf16D64,
    FlashDecodeBf16D128,
    FlashDecodeF16D64,
    FlashDecodeF16D128,
    FlashCombineBf16,
    FlashCombineF16,
    FlashDecodePagedBf16D64,
    FlashDecodePagedBf16D128,
    FlashDecodePagedF16D64,
    FlashDecodePagedF16D128,
}

impl KernelId {
    pub const ALL: [KernelId; 37] = [
        KernelId::MemCopy,
        KernelId::MemRead,
        KernelId::MemWrite,
        KernelId::MemTriad,
        KernelId::SoftmaxF32,
        KernelId::SoftmaxF16,
        KernelId::SoftmaxBf16,
        KernelId::MatmulSimtF32Kn,
        KernelId::MatmulSimtF32Nk,
        KernelId::MatmulMmaBf16Kn128,
        KernelId::MatmulMmaBf16Nk128,
        KernelId::MatmulMmaBf16Kn32,
        KernelId::MatmulMmaBf16Nk32,
        KernelId::MatmulMmaF16Kn128,
        KernelId::MatmulMmaF16Nk128,
        KernelId::MatmulMmaF16Kn32,
        KernelId::MatmulMmaF16Nk32,
        KernelId::MatmulMmaS8Nk128,
        KernelId::MatmulMmaE4m3Nk128,
        KernelId::MatmulMmaS8Nk32,
        KernelId::MatmulMmaE4m3Nk32,
        KernelId::MatmulMmaTf32Nk128,
        KernelId::MatmulMmaTf32Nk32,
        KernelId::FlashFwdBf16D64,
        KernelId::FlashFwdBf16D128,
        KernelId::FlashFwdF16D64,
        KernelId::FlashFwdF16D128,
        KernelId::FlashDecodeBf16D64,
        KernelId::FlashDecodeBf16D128,
        KernelId::FlashDecodeF16D64,
        KernelId::FlashDecodeF16D128,
        KernelId::FlashCombineBf16,
        KernelId::FlashCombineF16,
        KernelId::FlashDecodePagedBf16D64,
        KernelId::FlashDecodePagedBf16D128,
        KernelId::FlashDecodePagedF16D64,
        KernelId::FlashDecodePagedF16D128,
    ];

    /// The id shown by `gpuvet list --kernels`.
    pub fn id(self) -> &'static str {
        match self {
            KernelId::MemCopy => "memory.copy",
            KernelId::MemRead => "memory.read",
            KernelId::MemWrite => "memory.write",
            KernelId::MemTriad => "memory.triad",
            KernelId::SoftmaxF32 => "attention.softmax.f32",
            KernelId::SoftmaxF16 => "attention.softmax.f16",
            KernelId::SoftmaxBf16 => "attention.softmax.bf16",
            KernelId::MatmulSimtF32Kn => "matmul.simt.f32.kn",
            KernelId::MatmulSimtF32Nk => "matmul.simt.f32.nk",
            KernelId::MatmulMmaBf16Kn128 => "matmul.mma.bf16.kn.128x128",
            KernelId::MatmulMmaBf16Nk128 => "matmul.mma.bf16.nk.128x128",
            KernelId::MatmulMmaBf16Kn32 => "matmul.mma.bf16.kn.32x64",
            KernelId::MatmulMmaBf16Nk32 => "matmul.mma.bf16.nk.32x64",
            KernelId::MatmulMmaF16Kn128 => "matmul.mma.f16.kn.128x128",
            KernelId::MatmulMmaF16Nk128 => "matmul.mma.f16.nk.128x128",
            KernelId::MatmulMmaF16Kn32 => "matmul.mma.f16.kn.32x64",
            KernelId::MatmulMmaF16Nk32 => "matmul.mma.f16.nk.32x64",
            KernelId::MatmulMmaS8Nk128 => "matmul.mma.s8.nk.128x128",
            KernelId::MatmulMmaE4m3Nk128 => "matmul.mma.e4m3.nk.128x128",
            KernelId::MatmulMmaS8Nk32 => "matmul.mma.s8.nk.32x64",
            KernelId::MatmulMmaE4m3Nk32 => "matmul.mma.e4m3.nk.32x64",
            KernelId::MatmulMmaTf32Nk128 => "matmul.mma.tf32.nk.128x128",
            KernelId::MatmulMmaTf32Nk32 => "matmul.mma.tf32.nk.32x64",
            KernelId::FlashFwdBf16D64 => "attention.flash_fwd.bf16.d64",
            KernelId::FlashFwdBf16D128 => "attention.flash_fwd.bf16.d128",
            KernelId::FlashFwdF16D64 => "attention.flash_fwd.f16.d64",
            KernelId::FlashFwdF16D128 => "attention.flash_fwd.f16.d128",
            KernelId::FlashDecodeBf16D64 => "attention.flash_decode.bf16.d64",
            KernelId::FlashDecodeBf16D128 => "attention.flash_decode.bf16.d128",
            KernelId::FlashDecodeF16D64 => "attention.flash_decode.f16.d64",
            KernelId::FlashDecodeF16D128 => "attention.flash_decode.f16.d128",
            KernelId::FlashCombineBf16 => "attention.flash_decode.combine.bf16",
            KernelId::FlashCombineF16 => "attention.flash_decode.combine.f16",
            KernelId::FlashDecodePagedBf16D64 => "attention.flash_decode_paged.bf16.d64",
            KernelId::FlashDecodePagedBf16D128 => "attention.flash_decode_paged.bf16.d128",
            KernelId::FlashDecodePagedF16D64 => "attention.flash_decode_paged.f16.d64",
            KernelId::FlashDecodePagedF16D128 => "attention.flash_decode_paged.f16.d128",
        }
    }

    /// The `extern "C"` function name in the source.
    pub fn symbol(self) -> &'static str {
        match self {
            KernelId::MemCopy => "gv_copy",
            KernelId::MemRead => "gv_read",
            KernelId::MemWrite => "gv_write",
            KernelId::MemTriad => "gv_triad",
            KernelId::SoftmaxF32 => "gv_softmax_f32",
            KernelId::SoftmaxF16 => "gv_softmax_f16",
            KernelId::SoftmaxBf16 => "gv_softmax_bf16",
            KernelId::MatmulSimtF32Kn => "matmul_simt_f32_kn",
            KernelId::MatmulSimtF32Nk => "matmul_simt_f32_nk",
            KernelId::MatmulMmaBf16Kn128 => "matmul_mma_bf16_kn_128x128",
            KernelId::MatmulMmaBf16Nk128 => "matmul_mma_bf16_nk_128x128",
            KernelId::MatmulMmaBf16Kn32 => "matmul_mma_bf16_kn_32x64",
            KernelId::MatmulMmaBf16Nk32 => "matmul_mma_bf16_nk_32x64",
            KernelId::MatmulMmaF16Kn128 => "matmul_mma_f16_kn_128x128",
            KernelId::MatmulMmaF16Nk128 => "matmul_mma_f16_nk_128x128",
            KernelId::MatmulMmaF16Kn32 => "matmul_mma_f16_kn_32x64",
            KernelId::MatmulMmaF16Nk32 => "matmul_mma_f16_nk_32x64",
            KernelId::MatmulMmaS8Nk128 => "matmul_mma_s8_nk_128x128",
            KernelId::MatmulMmaE4m3Nk128 => "matmul_mma_e4m3_nk_128x128",
            KernelId::MatmulMmaS8Nk32 => "matmul_mma_s8_nk_32x64",
            KernelId::MatmulMmaE4m3Nk32 => "matmul_mma_e4m3_nk_32x64",
            KernelId::MatmulMmaTf32Nk128 => "matmul_mma_tf32_nk_128x128",
            KernelId::MatmulMmaTf32Nk32 => "matmul_mma_tf32_nk_32x64",
            KernelId::FlashFwdBf16D64 => "gv_flash_fwd_bf16_d64",
            KernelId::FlashFwdBf16D128 => "gv_flash_fwd_bf16_d128",
            KernelId::FlashFwdF16D64 => "gv_flash_fwd_f16_d64",
            KernelId::FlashFwdF16D128 => "gv_flash_fwd_f16_d128",
            KernelId::FlashDecodeBf16D64 => "gv_flash_decode_bf16_d64",
            KernelId::FlashDecodeBf16D128 => "gv_flash_decode_bf16_d128",
            KernelId::FlashDecodeF16D64 => "gv_flash_decode_f16_d64",
            KernelId::FlashDecodeF16D128 => "gv_flash_decode_f16_d128",
            KernelId::FlashCombineBf16 => "gv_flash_decode_combine_bf16",
            KernelId::FlashCombineF16 => "gv_flash_decode_combine_f16",
            KernelId::FlashDecodePagedBf16D64 => "gv_flash_decode_paged_bf16_d64",
            KernelId::FlashDecodePagedBf16D128 => "gv_flash_decode_paged_bf16_d128",
            KernelId::FlashDecodePagedF16D64 => "gv_flash_decode_paged_f16_d64",
            KernelId::FlashDecodePagedF16D128 => "gv_flash_decode_paged_f16_d128",
        }
    }

    pub fn source(self) -> Source {
        match self {
            KernelId::MemCopy | KernelId::MemRead | KernelId::MemWrite | KernelId::MemTriad => {
                Source::Memory
            }
            KernelId::MatmulSimtF32Kn | KernelId::MatmulSimtF32Nk => Source::MatmulSimt,
            KernelId::MatmulMmaBf16Kn128 => Source::MatmulMma,
            KernelId::MatmulMmaBf16Nk128 => Source::MatmulMma,
            KernelId::MatmulMmaBf16Kn32 => Source::MatmulMma,
            KernelId::MatmulMmaBf16Nk32 => Source::MatmulMma,
            KernelId::MatmulMmaF16Kn128 => Source::MatmulMma,
            KernelId::MatmulMmaF16Nk128 => Source::MatmulMma,
            KernelId::MatmulMmaF16Kn32 => Source::MatmulMma,
            KernelId::MatmulMmaF16Nk32 => Source::MatmulMma,
            KernelId::MatmulMmaS8Nk128 => Source::MatmulMma,
            KernelId::MatmulMmaE4m3Nk128 => Source::MatmulMma,
            KernelId::MatmulMmaS8Nk32 => Source::MatmulMma,
            KernelId::MatmulMmaE4m3Nk32 => Source::MatmulMma,
            KernelId::MatmulMmaTf32Nk128 => Source::MatmulMma,
            KernelId::MatmulMmaTf32Nk32 => Source::MatmulMma,
            KernelId::FlashFwdBf16D64 => Source::FlashFwd,
            KernelId::FlashFwdBf16D128 => Source::FlashFwd,
            KernelId::FlashFwdF16D64 => Source::FlashFwd,
            KernelId::FlashFwdF16D128 => Source::FlashFwd,
            KernelId::FlashDecodeBf16D64 => Source::FlashDecode,
            KernelId::FlashDecodeBf16D128 => Source::FlashDecode,
            KernelId::FlashDecodeF16D64 => Source::FlashDecode,
            KernelId::FlashDecodeF16D128 => Source::FlashDecode,
            KernelId::FlashCombineBf16 => Source::FlashDecode,
            KernelId::FlashCombineF16 => Source::FlashDecode,
            KernelId::FlashDecodePagedBf16D64 => Source::FlashDecode,
            KernelId::FlashDecodePagedBf16D128 => Source::FlashDecode,
            KernelId::FlashDecodePagedF16D64 => Source::FlashDecode,
            KernelId::FlashDecodePagedF16D128 => Source::FlashDecode,
            _ => Source::Attention,
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            KernelId::MemCopy => "dst = src, float4 loads/stores, grid-stride, 4 loads in flight",
            KernelId::MemRead => "sum(src), float4 loads, f64 per-block partials",
            KernelId::MemWrite => "dst = value, float4 stores, grid-stride",
            KernelId::MemTriad => "a = b + s*c (STREAM triad), float4, grid-stride",
            KernelId::SoftmaxF32 => "row softmax of f32 scores, causal end-aligned, P in f32",
            KernelId::SoftmaxF16 => "row softmax of f32 scores, causal end-aligned, P in f16",
            KernelId::SoftmaxBf16 => "row softmax of f32 scores, causal end-aligned, P in bf16",
            KernelId::MatmulSimtF32Kn => "fp32 SGEMM on CUDA cores, B K×N: 128×128×8 tiles, 8×8 per thread, float4 loads",
            KernelId::MatmulSimtF32Nk => "fp32 SGEMM on CUDA cores, B N×K: 128×128×8 tiles, 8×8 per thread, float4 loads",
            KernelId::MatmulMmaBf16Kn128 => "bf16 mma.sync m16n8k16 (f32 accumulate), B K×N, ldmatrix.trans, 128×128×32 tiles, 3-stage cp.async, swizzled smem",
            KernelId::MatmulMmaBf16Nk128 => "bf16 mma.sync m16n8k16 (f32 accumulate), B N×K, 128×128×32 tiles, 3-stage cp.async, swizzled smem",
            KernelId::MatmulMmaBf16Kn32 => "bf16 mma.sync m16n8k16 (f32 accumulate), B K×N, ldmatrix.trans, 32×64×32 tiles (small M), 4-stage cp.async, swizzled smem",
            KernelId::MatmulMmaBf16Nk32 => "bf16 mma.sync m16n8k16 (f32 accumulate), B N×K, 32×64×32 tiles (small M), 4-stage cp.async, swizzled smem",
            KernelId::MatmulMmaF16Kn128 => "f16 mma.sync m16n8k16 (f32 accumulate), B K×N, ldmatrix.trans, 128×128×32 tiles, 3-stage cp.async, swizzled smem",
            KernelId::MatmulMmaF16Nk128 => "f16 mma.sync m16n8k16 (f32 accumulate), B N×K, 128×128×32 tiles, 3-stage cp.async, swizzled smem",
            KernelId::MatmulMmaF16Kn32 => "f16 mma.sync m16n8k16 (f32 accumulate), B K×N, ldmatrix.trans, 32×64×32 tiles (small M), 4-stage cp.async, swizzled smem",
            KernelId::MatmulMmaF16Nk32 => "f16 mma.sync m16n8k16 (f32 accumulate), B N×K, 32×64×32 tiles (small M), 4-stage cp.async, swizzled smem",
            KernelId::MatmulMmaS8Nk128 => "int8 mma.sync m16n8k32 (s32 accumulate, i32 out), B N×K, 128×128 tiles (64 K bytes/stage), 3-stage cp.async, swizzled smem",
            KernelId::MatmulMmaE4m3Nk128 => "fp8 e4m3 mma.sync m16n8k32 (sm_89+, f32 accumulate, bf16 out), B N×K, 128×128 tiles (64 K bytes/stage), 3-stage cp.async",
            KernelId::MatmulMmaS8Nk32 => "int8 mma.sync m16n8k32 (s32 accumulate, i32 out), B N×K, 32×64 tiles (small M), 4-stage cp.async, swizzled smem",
            KernelId::MatmulMmaE4m3Nk32 => "fp8 e4m3 mma.sync m16n8k32 (sm_89+, f32 accumulate, bf16 out), B N×K, 32×64 tiles (small M), 4-stage cp.async",
            KernelId::MatmulMmaTf32Nk128 => "tf32 mma.sync m16n8k8 (f32 accumulate, f32 out), B N×K, 128×128 tiles (64 K bytes/stage), 3-stage cp.async",
            KernelId::MatmulMmaTf32Nk32 => "tf32 mma.sync m16n8k8 (f32 accumulate, f32 out), B N×K, 32×64 tiles (small M), 4-stage cp.async",
            KernelId::FlashFwdBf16D64 => "fused prefill, bf16, head dim 64: 64-row Q tiles, 64-key K/V tiles, mma.sync m16n8k16, cp.async double buffer, online softmax",
            KernelId::FlashFwdBf16D128 => "fused prefill, bf16, head dim 128: 64-row Q tiles, 64-key K/V tiles, mma.sync m16n8k16, cp.async double buffer, online softmax",
            KernelId::FlashFwdF16D64 => "fused prefill, f16, head dim 64: 64-row Q tiles, 64-key K/V tiles, mma.sync m16n8k16, cp.async double buffer, online softmax",
            KernelId::FlashFwdF16D128 => "fused prefill, f16, head dim 128: 64-row Q tiles, 64-key K/V tiles, mma.sync m16n8k16, cp.async double buffer, online softmax",
            KernelId::FlashDecodeBf16D64 => "split-KV decode, bf16, head dim 64: GQA rows packed into 16-row mma tiles, partial O and log-sum-exp per split",
            KernelId::FlashDecodeBf16D128 => "split-KV decode, bf16, head dim 128: GQA rows packed into 16-row mma tiles, partial O and log-sum-exp per split",
            KernelId::FlashDecodeF16D64 => "split-KV decode, f16, head dim 64: GQA rows packed into 16-row mma tiles, partial O and log-sum-exp per split",
            KernelId::FlashDecodeF16D128 => "split-KV decode, f16, head dim 128: GQA rows packed into 16-row mma tiles, partial O and log-sum-exp per split",
            KernelId::FlashCombineBf16 => "merges the KV splits of decode by log-sum-exp weights, O in bf16",
            KernelId::FlashCombineF16 => "merges the KV splits of decode by log-sum-exp weights, O in f16",
            KernelId::FlashDecodePagedBf16D64 => "split-KV decode from a paged KV cache (block table, page size 16 or 64), bf16, head dim 64",
            KernelId::FlashDecodePagedBf16D128 => "split-KV decode from a paged KV cache (block table, page size 16 or 64), bf16, head dim 128",
            KernelId::FlashDecodePagedF16D64 => "split-KV decode from a paged KV cache (block table, page size 16 or 64), f16, head dim 64",
            KernelId::FlashDecodePagedF16D128 => "split-KV decode from a paged KV cache (block table, page size 16 or 64), f16, head dim 128",
        }
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
                src.contains(&format!("extern \"C\" __global__ void {}(", k.symbol())),
                "{} not found in {}",
                k.symbol(),
                k.source().file()
            );
        }
        let ids: std::collections::HashSet<_> = KernelId::ALL.iter().map(|k| k.id()).collect();
        assert_eq!(ids.len(), KernelId::ALL.len());
    }

    #[test]
    fn sources_need_no_headers() {
        // NVRTC without a toolkit has no headers: an #include would fail in CI and on machines
        // with only the pip NVRTC.
        for s in Source::ALL {
            let has_include = s
                .text()
                .lines()
                .any(|l| l.trim_start().starts_with("#include"));
            assert!(!has_include, "{}", s.file());
        }
    }

    #[test]
    fn hash_is_stable_hex() {
        let h = sources_hash();
        assert_eq!(h.len(), 16);
        assert_eq!(h, sources_hash());
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
