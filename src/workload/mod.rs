//! Workloads described as data: what is computed, on which shapes and dtypes, and how much
//! arithmetic and memory traffic that takes at the least.
//!
//! A workload knows nothing about backends. Its `flops()` and `bytes()` turn a measured time
//! into TFLOP/s or GB/s, and its `name()` is the stable id results are matched by across runs.

mod attention;
mod matmul;
mod memory;

pub use attention::AttentionSpec;
pub use matmul::{BLayout, MatmulSpec};
pub use memory::{MemOp, MemorySpec};

use crate::dtype::DType;
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// Upper bound on any single dimension product, to catch typos before they become allocations.
pub(crate) const MAX_ELEMENTS: u128 = 1 << 40;

/// Attention with at most this many query rows is decode (1, or up to 8 with speculative decoding).
pub const DECODE_MAX_Q_LEN: u64 = 8;

/// One unit of work to verify and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Workload {
    Matmul(MatmulSpec),
    Attention(AttentionSpec),
    Memory(MemorySpec),
}

/// Which figure is the headline for a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Floating-point (or integer) operations per second.
    Flops,
    /// Bytes moved per second.
    Bytes,
}

impl Workload {
    /// Stable id, e.g. `matmul.bf16.4096x4096x4096.nt` or `memory.copy.1GiB`.
    pub fn name(&self) -> String {
        match self {
            Workload::Matmul(m) => m.name(),
            Workload::Attention(a) => a.name(),
            Workload::Memory(m) => m.name(),
        }
    }

    /// Arithmetic operations of one execution (multiply and add counted separately).
    pub fn flops(&self) -> f64 {
        match self {
            Workload::Matmul(m) => m.flops(),
            Workload::Attention(a) => a.flops(),
            Workload::Memory(_) => 0.0,
        }
    }

    /// The fewest bytes one execution must move to and from memory (each input read once,
    /// each output written once).
    pub fn bytes(&self) -> u64 {
        match self {
            Workload::Matmul(m) => m.bytes(),
            Workload::Attention(a) => a.bytes(),
            Workload::Memory(m) => m.bytes(),
        }
    }

    /// Bytes of buffers one set of inputs and outputs occupies.
    pub fn footprint(&self) -> u64 {
        match self {
            Workload::Matmul(m) => m.bytes(),
            Workload::Attention(a) => a.bytes(),
            Workload::Memory(m) => m.footprint(),
        }
    }

    /// Memory workloads and decode attention (query length ≤ [`DECODE_MAX_Q_LEN`], which reads
    /// the whole KV cache for a handful of FLOPs) are judged by bytes per second; the rest by
    /// FLOP/s. Every result records both.
    pub fn metric(&self) -> Metric {
        match self {
            Workload::Memory(_) => Metric::Bytes,
            Workload::Attention(a) if a.q_len <= DECODE_MAX_Q_LEN => Metric::Bytes,
            _ => Metric::Flops,
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Workload::Matmul(m) => m.dtype,
            Workload::Attention(a) => a.dtype,
            Workload::Memory(_) => DType::F32,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Matmul(_) => "matmul",
            Workload::Attention(_) => "attention",
            Workload::Memory(_) => "memory",
        }
    }

    /// Rejects shapes that cannot describe real work: zero sizes, products that overflow,
    /// dtypes the operation has no meaning for.
    pub fn validate(&self) -> Result<()> {
        match self {
            Workload::Matmul(m) => m.validate(),
            Workload::Attention(a) => a.validate(),
            Workload::Memory(m) => m.validate(),
        }
    }
}

/// Multiplies dimensions in u128 and rejects a product above [`MAX_ELEMENTS`].
pub(crate) fn checked_product(what: &str, dims: &[u64]) -> Result<u128> {
    let mut p: u128 = 1;
    for &d in dims {
        p = p
            .checked_mul(d as u128)
            .ok_or_else(|| crate::Error::invalid(format!("{what}: the size product overflows")))?;
    }
    if p > MAX_ELEMENTS {
        return Err(crate::Error::invalid(format!(
            "{what}: {p} elements is far beyond any device memory"
        )));
    }
    Ok(p)
}
