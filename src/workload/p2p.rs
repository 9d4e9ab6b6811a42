//! Peer-to-peer copies between two GPUs, as nvbandwidth measures them: the source device
//! writing into the destination's memory, or the destination reading the source's, one way or
//! both ways at once.
//!
//! A p2p result is placed on an ordered pair of devices, source first (`device: [3, 5]` is a
//! copy from GPU 3 to GPU 5); a bidirectional one on the pair in ascending order, each side
//! copying to the other. The payload is random f32 words, compared bit for bit where it landed.

use super::axis::{cross, size_only_axes, size_only_params, Axis};
use super::{
    check_bytes, collect_checked, size_label, InputSpec, KindAxes, Metric, Placing, Roof, Workload,
    WorkloadKind,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::units::Bytes;
use crate::verify::{Verification, Verify};
use serde::{Deserialize, Serialize};

/// Which side drives the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum P2pOp {
    /// The source pushes: its copy engine (or its SMs) writes into the peer's memory.
    Write,
    /// The destination pulls: its copy engine (or its SMs) reads the peer's memory.
    Read,
}

impl P2pOp {
    pub const ALL: [P2pOp; 2] = [P2pOp::Write, P2pOp::Read];

    pub fn name(self) -> &'static str {
        match self {
            P2pOp::Write => "write",
            P2pOp::Read => "read",
        }
    }
}

impl std::str::FromStr for P2pOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "write" | "push" => Ok(P2pOp::Write),
            "read" | "pull" => Ok(P2pOp::Read),
            _ => Err(format!("unknown p2p operation `{s}` (write, read)")),
        }
    }
}

/// A copy of `bytes` from one GPU to another (or both ways at once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct P2pSpec {
    pub op: P2pOp,
    /// Both devices copy to each other at the same time.
    #[serde(default)]
    pub bidirectional: bool,
    /// Bytes each way (a whole number of 4-byte words).
    pub bytes: u64,
}

impl P2pSpec {
    pub fn new(op: P2pOp, bidirectional: bool, bytes: u64) -> Self {
        P2pSpec {
            op,
            bidirectional,
            bytes,
        }
    }

    pub fn words(&self) -> u64 {
        self.bytes / 4
    }

    fn ways(&self) -> u64 {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// `p2p.write.64MiB`, `p2p.read.bidir.64MiB`.
    pub fn name(&self) -> String {
        format!(
            "p2p.{}{}.{}",
            self.op.name(),
            if self.bidirectional { ".bidir" } else { "" },
            size_label(self.bytes)
        )
    }

    /// Bytes over the link, both ways added.
    pub fn bytes(&self) -> u64 {
        self.words() * 4 * self.ways()
    }

    pub fn flops(&self) -> f64 {
        0.0
    }

    pub fn validate(&self) -> Result<()> {
        check_bytes("p2p", self.bytes, super::MIN_TRANSFER, 1 << 40, true)
    }
}

impl Verify for P2pSpec {
    /// Every word that landed on the peer against every word sent.
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, _seed: u64) -> Verification {
        super::transfer::check_landed(inputs, out)
    }
}

impl WorkloadKind for P2pSpec {
    const KIND: &'static str = "p2p";
    /// A source and a destination buffer each way (on the two devices together).
    fn buffer_bytes(&self) -> u64 {
        2 * self.bytes()
    }
    fn result_dtype(&self) -> DType {
        DType::F32
    }
    fn metric(&self) -> Metric {
        Metric::Bytes
    }
    fn roof(&self) -> Roof {
        Roof::PairLink {
            ways: self.ways() as u32,
        }
    }
    fn placing(&self) -> Placing {
        if self.bidirectional {
            Placing::Pairs
        } else {
            Placing::OrderedPairs
        }
    }
    fn test_key(&self) -> String {
        format!(
            "p2p.{}{}",
            self.op.name(),
            if self.bidirectional { ".bidir" } else { "" }
        )
    }
    /// The first device's data `[a]`; bidirectional also the second's `[a, b]`: random f32
    /// words.
    fn input_specs(&self) -> Vec<InputSpec> {
        let n = vec![self.words() as usize];
        let mut v = vec![InputSpec::new("a_src", n.clone(), DType::F32)];
        if self.bidirectional {
            v.push(InputSpec::new("b_src", n, DType::F32));
        }
        v
    }
    /// What landed on the second device; bidirectional, then what landed on the first.
    fn output_len(&self) -> usize {
        (self.words() * self.ways()) as usize
    }
    fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("op", self.op.name().into()),
            ("bidirectional", self.bidirectional.to_string()),
            ("size", Bytes(self.bytes).to_string()),
        ]
    }
    size_only_params!();
}

/// The axes of a p2p sweep: operation outermost, size fastest.
#[derive(Debug, Clone, PartialEq)]
pub struct P2pAxes {
    pub size: Axis,
    pub op: Vec<P2pOp>,
    /// One way, both ways at once, or both kinds (`[false, true]`).
    pub bidirectional: Vec<bool>,
    pub implementation: Vec<String>,
}

impl KindAxes for P2pAxes {
    size_only_axes!(P2pSpec);

    fn expand(&self) -> Result<Vec<Workload>> {
        let lens = [self.op.len(), self.bidirectional.len(), self.size.0.len()];
        collect_checked(cross(&lens).map(|ix| {
            Workload::P2p(P2pSpec::new(
                self.op[ix[0]],
                self.bidirectional[ix[1]],
                self.size.0[ix[2]],
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_placing() {
        let w = P2pSpec::new(P2pOp::Write, false, 64 << 20);
        assert_eq!(w.name(), "p2p.write.64MiB");
        assert_eq!(w.placing(), Placing::OrderedPairs);
        assert_eq!(w.bytes(), 64 << 20);
        let b = P2pSpec::new(P2pOp::Read, true, 4096);
        assert_eq!(b.name(), "p2p.read.bidir.4KiB");
        assert_eq!(b.test_key(), "p2p.read.bidir");
        assert_eq!(b.placing(), Placing::Pairs);
        assert_eq!((b.inputs(1).len(), b.output_len()), (2, 2048));
        assert!(P2pSpec::new(P2pOp::Write, false, 100).validate().is_err());
    }
}
