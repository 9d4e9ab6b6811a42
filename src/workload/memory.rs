use super::axis::{size_only_axes, size_only_params, spelled};
use super::{check_bytes, random_inputs, size_label, InputSpec, WorkloadKind};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
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

    /// Arrays the operation streams through.
    pub fn arrays(self) -> u64 {
        match self {
            MemOp::Copy => 2,
            MemOp::Read | MemOp::Write => 1,
            MemOp::Triad => 3,
        }
    }
}

spelled!(MemOp, "memory op" {
    Copy => "copy",
    Read => "read" | "reduce" | "sum",
    Write => "write" | "fill",
    Triad => "triad",
});

/// A memory operation over arrays of `bytes` each (rounded down to whole f32 elements).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySpec {
    pub op: MemOp,
    /// Size of each array in bytes.
    pub bytes: u64,
}

impl MemorySpec {
    pub fn new(op: MemOp, bytes: u64) -> Self {
        MemorySpec { op, bytes }
    }

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

    /// At least 4 KiB of whole f32 elements: a size between elements (`--size 4097`) would be
    /// labelled with bytes that never move.
    pub fn validate(&self) -> Result<()> {
        check_bytes("memory", self.bytes, 4096, 1 << 44, true)
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
    /// `read` sums small positive integers (1 to 8) instead of the usual values in [-1, 1):
    /// every partial sum of them below 2^24 is exact in f32 (and every sum in f64), so the
    /// check can ask for the exact total, and each element a kernel leaves out lowers it by at
    /// least 1. With signed values a skipped stretch nearly cancels out and hides within any
    /// rounding tolerance. The other operations keep the random inputs they always had.
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        match self.op {
            MemOp::Read => vec![read_input(self.elements() as usize, seed)],
            _ => random_inputs(self.input_specs(), seed),
        }
    }
    fn output_len(&self) -> usize {
        match self.op {
            MemOp::Read => 1,
            _ => self.elements() as usize,
        }
    }
    size_only_params!(|s| ("op", s.op.name().into()));
}

/// The source of `read`: uniform integers 1 to 8 as f32, in seeded chunks of 64 Ki elements
/// (the values depend on the seed only, never on the thread count).
fn read_input(n: usize, seed: u64) -> Tensor {
    let mut values = vec![0f32; n];
    values
        .par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(c, out)| {
            let mut h = crate::tensor::splitmix(seed ^ crate::tensor::splitmix(c as u64));
            for (j, x) in out.iter_mut().enumerate() {
                if j % 21 == 0 {
                    h = crate::tensor::splitmix(h);
                }
                *x = (1 + ((h >> (3 * (j % 21))) & 7)) as f32;
            }
        });
    Tensor::from_f32("src", vec![n], DType::F32, &values)
}

size_only_axes! {
    /// The axes of a memory sweep, expanded op outermost.
    pub struct MemoryAxes for MemorySpec as Memory {
        op: MemOp,
    }
}

impl Verify for MemorySpec {
    /// Copies, writes and the read of integer inputs exact; the triad within its rounding.
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
                // Integers (see `inputs`): the f64 total is exact in any order, and so is a
                // correct kernel's. Inputs that are not integers (a caller's own) are held to
                // the f32 rounding of their partial sums instead.
                let src = &inputs[0];
                let (sum, abs, integral) = (0..n)
                    .into_par_iter()
                    .map(|i| {
                        let x = src.get(i);
                        (x, x.abs(), x.fract() == 0.0)
                    })
                    .reduce(
                        || (0.0, 0.0, true),
                        |a, b| (a.0 + b.0, a.1 + b.1, a.2 && b.2),
                    );
                if integral && abs < 2f64.powi(53) {
                    exact_elements(1, |_| (sum, out.get(0)))
                } else {
                    let mut w = Worst::new();
                    w.see((out.get(0) - sum).abs() / abs.max(1e-30), || "sum".into());
                    w.finish(VerifyMethod::Full, 1e-5)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read's inputs are positive integers, so the check is exact: leaving out a single
    /// element of a million fails it, and so does any other wrong total.
    #[test]
    fn the_read_check_misses_no_element() {
        let spec = MemorySpec {
            op: MemOp::Read,
            bytes: 4 << 20,
        };
        let ins = spec.inputs(5);
        let n = spec.elements() as usize;
        assert_eq!(ins.len(), 1);
        assert_eq!(ins[0].len(), n);
        let values = ins[0].to_f64();
        assert!(values
            .iter()
            .all(|v| (1.0..=8.0).contains(v) && v.fract() == 0.0));
        for k in 1..=8 {
            assert!(values.contains(&(k as f64)), "{k} never drawn");
        }
        assert_eq!(ins, spec.inputs(5));
        assert_ne!(ins, spec.inputs(6));
        let total: f64 = values.iter().sum();
        let sum = |v: f64| Tensor {
            name: "sum".into(),
            shape: vec![1],
            data: crate::tensor::Data::F64(vec![v]),
        };
        let ok = spec.verify_output(&ins, &sum(total), 0);
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.method, VerifyMethod::Exact);
        for wrong in [
            total - values[n - 1],
            total - values[0],
            total + 1.0,
            f64::NAN,
        ] {
            let v = spec.verify_output(&ins, &sum(wrong), 0);
            assert!(!v.passed, "{wrong} passed: {v:?}");
        }
        // The other operations keep their random inputs.
        let copy = MemorySpec {
            op: MemOp::Copy,
            bytes: 4 << 20,
        };
        assert!(copy.inputs(5)[0].to_f64().iter().any(|v| *v < 0.0));
    }

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
        let odd = MemorySpec {
            op: MemOp::Copy,
            bytes: 4097,
        };
        assert!(odd
            .validate()
            .unwrap_err()
            .to_string()
            .contains("4-byte words"));
    }
}
