use super::axis::{cross, size_only_axes, size_only_params, Axis};
use super::{
    check_bytes, collect_checked, size_label, InputSpec, KindAxes, Metric, Workload, WorkloadKind,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::units::Bytes;
use crate::verify::{exact_elements, Verification, Verify, VerifyMethod, Worst};
use rayon::prelude::*;
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
    const KIND: &'static str = "memory";
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
    fn input_specs(&self) -> Vec<InputSpec> {
        let n = || vec![self.elements() as usize];
        match self.op {
            MemOp::Copy | MemOp::Read => vec![InputSpec::new("src", n(), DType::F32)],
            MemOp::Write => vec![],
            MemOp::Triad => vec![
                InputSpec::new("b", n(), DType::F32),
                InputSpec::new("c", n(), DType::F32),
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
    size_only_params!();
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
    size_only_axes!(MemorySpec);

    fn expand(&self) -> Result<Vec<Workload>> {
        collect_checked(cross(&[self.op.len(), self.size.0.len()]).map(|ix| {
            Workload::Memory(MemorySpec {
                op: self.op[ix[0]],
                bytes: self.size.0[ix[1]],
            })
        }))
    }
}

impl Verify for MemorySpec {
    /// Copies and writes bit-exact; the triad and the read within their rounding.
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, _seed: u64) -> Verification {
        let spec = self;
        let n = spec.elements() as usize;
        match spec.op {
            MemOp::Copy => exact_elements(n, |i| (inputs[0].get(i), out.get(i))),
            MemOp::Write => exact_elements(n, |i| (WRITE_VALUE as f64, out.get(i))),
            MemOp::Triad => {
                let (b, c) = (&inputs[0], &inputs[1]);
                let s = TRIAD_SCALAR as f64;
                let worst = Worst::over((0..n).into_par_iter(), |w, i| {
                    let (bv, cv) = (b.get(i), c.get(i));
                    let r = bv + s * cv;
                    let e = (out.get(i) - r).abs() / (bv.abs() + (s * cv).abs()).max(1e-30);
                    w.see(e, || format!("a[{i}]"));
                });
                // f32 rounding of b + s·c, with or without a fused multiply-add: two ulps.
                worst.finish(VerifyMethod::Full, 2.5e-7)
            }
            MemOp::Read => {
                let src = &inputs[0];
                let (sum, abs): (f64, f64) = (0..n)
                    .into_par_iter()
                    .map(|i| {
                        let x = src.get(i);
                        (x, x.abs())
                    })
                    .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
                let mut w = Worst::new();
                w.see((out.get(0) - sum).abs() / abs.max(1e-30), || "sum".into());
                w.finish(VerifyMethod::Full, 1e-5)
            }
        }
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
