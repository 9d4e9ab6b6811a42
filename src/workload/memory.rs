use super::axis::{cross, size_swept, size_value, Axis, Param, SIZE_ONLY};
use super::{check_bytes, collect_checked, size_label, KindAxes, Metric, Workload, WorkloadKind};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::{splitmix, Tensor};
use crate::units::Bytes;
use serde::{Deserialize, Serialize};

/// The value the memory `write` operation stores.
pub const WRITE_VALUE: f32 = 1.5;
/// The scalar of the memory `triad` (a = b + s·c).
pub const TRIAD_SCALAR: f32 = 3.0;

/// A streaming memory operation over f32 arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemOp {
    /// dst = src: one read and one write per element.
    Copy,
    /// sum(src): one read per element (a reduction, so nothing to write back).
    Read,
    /// dst = value: one write per element.
    Write,
    /// a = b + s·c (STREAM triad): two reads and one write per element.
    Triad,
}

impl MemOp {
    pub const ALL: [MemOp; 4] = [MemOp::Copy, MemOp::Read, MemOp::Write, MemOp::Triad];

    pub fn name(self) -> &'static str {
        match self {
            MemOp::Copy => "copy",
            MemOp::Read => "read",
            MemOp::Write => "write",
            MemOp::Triad => "triad",
        }
    }

    /// Arrays the operation streams through.
    pub fn arrays(self) -> u64 {
        match self {
            MemOp::Copy => 2,
            MemOp::Read | MemOp::Write => 1,
            MemOp::Triad => 3,
        }
    }
}

impl std::str::FromStr for MemOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "copy" => Ok(MemOp::Copy),
            "read" | "reduce" | "sum" => Ok(MemOp::Read),
            "write" | "fill" => Ok(MemOp::Write),
            "triad" => Ok(MemOp::Triad),
            _ => Err(format!(
                "unknown memory op `{s}` (copy, read, write, triad)"
            )),
        }
    }
}

/// A memory operation over arrays of `bytes` each (rounded down to whole f32 elements).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySpec {
    pub op: MemOp,
    /// Size of each array in bytes.
    pub bytes: u64,
}

impl MemorySpec {
    pub fn elements(&self) -> u64 {
        self.bytes / 4
    }

    pub fn name(&self) -> String {
        format!("memory.{}.{}", self.op.name(), size_label(self.bytes))
    }

    /// Bytes moved: every array streamed once.
    pub fn bytes(&self) -> u64 {
        self.op.arrays() * self.elements() * 4
    }

    /// A stream does no arithmetic worth counting.
    pub fn flops(&self) -> f64 {
        0.0
    }

    pub fn footprint(&self) -> u64 {
        self.bytes()
    }

    pub fn validate(&self) -> Result<()> {
        check_bytes("memory", self.bytes, 4096, 1 << 44, false)
    }
}

impl WorkloadKind for MemorySpec {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn buffer_bytes(&self) -> u64 {
        self.footprint()
    }
    fn result_dtype(&self) -> DType {
        DType::F32
    }
    fn metric(&self) -> Metric {
        Metric::Bytes
    }
    fn test_key(&self) -> String {
        format!("memory.{}", self.op.name())
    }
    /// copy/read `[src]`, write `[]`, triad `[b, c]`.
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        let n = self.elements() as usize;
        match self.op {
            MemOp::Copy | MemOp::Read => vec![Tensor::random("src", vec![n], DType::F32, seed)],
            MemOp::Write => vec![],
            MemOp::Triad => vec![
                Tensor::random("b", vec![n], DType::F32, seed),
                Tensor::random("c", vec![n], DType::F32, splitmix(seed)),
            ],
        }
    }
    fn output_len(&self) -> usize {
        match self.op {
            MemOp::Read => 1,
            _ => self.elements() as usize,
        }
    }
    fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("op", self.op.name().into()),
            ("size", Bytes(self.bytes).to_string()),
        ]
    }
    fn axis_value(&self, axis: Param) -> Option<u64> {
        size_value(axis, self.bytes)
    }
    fn sweep_params(&self) -> &'static [Param] {
        &SIZE_ONLY
    }
}

/// The axes of a memory sweep, expanded op outermost.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryAxes {
    /// Bytes per array.
    pub size: Axis,
    pub op: Vec<MemOp>,
    /// Implementations to run at every point (empty = default).
    pub implementation: Vec<String>,
}

impl KindAxes for MemoryAxes {
    fn expand(&self) -> Result<Vec<Workload>> {
        collect_checked(cross(&[self.op.len(), self.size.0.len()]).map(|ix| {
            Workload::Memory(MemorySpec {
                op: self.op[ix[0]],
                bytes: self.size.0[ix[1]],
            })
        }))
    }

    fn swept(&self) -> Option<Param> {
        size_swept(&self.size)
    }

    fn implementations(&self) -> &[String] {
        &self.implementation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let c = MemorySpec {
            op: MemOp::Copy,
            bytes: 1 << 30,
        };
        assert_eq!(c.bytes(), 2 << 30);
        assert_eq!(c.name(), "memory.copy.1GiB");
        let t = MemorySpec {
            op: MemOp::Triad,
            bytes: 4000,
        };
        assert_eq!(t.bytes(), 3 * 4000);
        assert_eq!(t.name(), "memory.triad.4000B");
        assert!(t.validate().is_err());
    }
}
