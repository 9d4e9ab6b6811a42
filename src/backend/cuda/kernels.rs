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
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Memory, Source::Attention];

    pub fn file(self) -> &'static str {
        match self {
            Source::Memory => "kernels/memory.cu",
            Source::Attention => "kernels/attention.cu",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Source::Memory => include_str!("../../../kernels/memory.cu"),
            Source::Attention => include_str!("../../../kernels/attention.cu"),
        }
    }

    /// Short name used in cache file names.
    pub fn stem(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Attention => "attention",
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
}

impl KernelId {
    pub const ALL: [KernelId; 7] = [
        KernelId::MemCopy,
        KernelId::MemRead,
        KernelId::MemWrite,
        KernelId::MemTriad,
        KernelId::SoftmaxF32,
        KernelId::SoftmaxF16,
        KernelId::SoftmaxBf16,
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
        }
    }

    pub fn source(self) -> Source {
        match self {
            KernelId::MemCopy | KernelId::MemRead | KernelId::MemWrite | KernelId::MemTriad => {
                Source::Memory
            }
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
