//! Host↔device transfers: host to device, device to host, or both at once, from pinned
//! (page-locked) or pageable host memory, as nvbandwidth's host tests measure them.
//!
//! The payload is random f32 words, so what landed is compared bit for bit with what was sent.

use super::axis::{cross, size_only_axes, size_only_params, Axis};
use super::{
    check_bytes, collect_checked, size_label, InputSpec, KindAxes, Metric, Roof, Workload,
    WorkloadKind,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::units::Bytes;
use crate::verify::{exact_elements, Verification, Verify};
use serde::{Deserialize, Serialize};

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Host to device.
    H2d,
    /// Device to host.
    D2h,
    /// Both at once (each way its own buffers): what a full-duplex link carries.
    Bidir,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Direction::H2d, Direction::D2h, Direction::Bidir];

    pub fn name(self) -> &'static str {
        match self {
            Direction::H2d => "h2d",
            Direction::D2h => "d2h",
            Direction::Bidir => "bidir",
        }
    }

    /// Ways the bytes travel: 2 for bidirectional.
    pub fn ways(self) -> u64 {
        match self {
            Direction::Bidir => 2,
            _ => 1,
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "h2d" | "htod" | "hosttodevice" | "upload" => Ok(Direction::H2d),
            "d2h" | "dtoh" | "devicetohost" | "download" => Ok(Direction::D2h),
            "bidir" | "bidirectional" | "both" => Ok(Direction::Bidir),
            _ => Err(format!("unknown direction `{s}` (h2d, d2h, bidir)")),
        }
    }
}

/// What the host side of a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostMemory {
    /// Page-locked memory the copy engine reads and writes directly (cuMemHostAlloc): what
    /// inference servers use for their transfers, and what the link's figure is judged on.
    Pinned,
    /// Ordinary (pageable) memory: the driver stages it through a pinned bounce buffer.
    Pageable,
}

impl HostMemory {
    pub const ALL: [HostMemory; 2] = [HostMemory::Pinned, HostMemory::Pageable];

    pub fn name(self) -> &'static str {
        match self {
            HostMemory::Pinned => "pinned",
            HostMemory::Pageable => "pageable",
        }
    }
}

impl std::str::FromStr for HostMemory {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pinned" | "page-locked" | "locked" => Ok(HostMemory::Pinned),
            "pageable" | "paged" | "malloc" => Ok(HostMemory::Pageable),
            _ => Err(format!("unknown host memory `{s}` (pinned, pageable)")),
        }
    }
}

/// A transfer of `bytes` each way between host memory and the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferSpec {
    pub direction: Direction,
    pub memory: HostMemory,
    /// Bytes each way (a whole number of 4-byte words).
    pub bytes: u64,
}

/// Smallest transfer: one page, where a copy is all latency.
pub const MIN_TRANSFER: u64 = 4096;

impl TransferSpec {
    pub fn new(direction: Direction, memory: HostMemory, bytes: u64) -> Self {
        TransferSpec {
            direction,
            memory,
            bytes,
        }
    }

    /// f32 words each way.
    pub fn words(&self) -> u64 {
        self.bytes / 4
    }

    /// `transfer.h2d.pinned.1GiB`.
    pub fn name(&self) -> String {
        format!(
            "transfer.{}.{}.{}",
            self.direction.name(),
            self.memory.name(),
            size_label(self.bytes)
        )
    }

    /// Bytes that cross the link, both ways added.
    pub fn bytes(&self) -> u64 {
        self.words() * 4 * self.direction.ways()
    }

    pub fn flops(&self) -> f64 {
        0.0
    }

    pub fn validate(&self) -> Result<()> {
        check_bytes("transfer", self.bytes, MIN_TRANSFER, 1 << 42, true)
    }
}

/// Every word that landed against every word sent (`inputs` laid end to end, in the order the
/// output holds what landed): the check of a transfer and of a peer copy.
pub(super) fn check_landed(inputs: &[Tensor], out: &Tensor) -> Verification {
    let len = inputs.first().map_or(0, |t| t.len()).max(1);
    exact_elements(out.len(), |i| (inputs[i / len].get(i % len), out.get(i)))
}

impl Verify for TransferSpec {
    /// Every word that landed against every word sent.
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, _seed: u64) -> Verification {
        check_landed(inputs, out)
    }
}

impl WorkloadKind for TransferSpec {
    const KIND: &'static str = "transfer";
    /// The device buffers (the host buffers mirror them).
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
        Roof::HostLink {
            ways: self.direction.ways() as u32,
        }
    }
    fn test_key(&self) -> String {
        format!("transfer.{}.{}", self.direction.name(), self.memory.name())
    }
    /// h2d `[host src]`, d2h `[device src]`, bidir `[host src, device src]`: random f32 words.
    fn input_specs(&self) -> Vec<InputSpec> {
        let n = vec![self.words() as usize];
        let host = InputSpec::new("host_src", n.clone(), DType::F32);
        let device = InputSpec::new("device_src", n, DType::F32);
        match self.direction {
            Direction::H2d => vec![host],
            Direction::D2h => vec![device],
            Direction::Bidir => vec![host, device],
        }
    }
    /// What landed: on the device (h2d), on the host (d2h), or both, in that order.
    fn output_len(&self) -> usize {
        (self.words() * self.direction.ways()) as usize
    }
    fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("direction", self.direction.name().into()),
            ("memory", self.memory.name().into()),
            ("size", Bytes(self.bytes).to_string()),
        ]
    }
    size_only_params!();
}

/// The axes of a transfer sweep: direction outermost, size fastest.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferAxes {
    pub size: Axis,
    pub direction: Vec<Direction>,
    pub memory: Vec<HostMemory>,
    pub implementation: Vec<String>,
}

impl KindAxes for TransferAxes {
    size_only_axes!(TransferSpec);

    fn expand(&self) -> Result<Vec<Workload>> {
        let lens = [self.direction.len(), self.memory.len(), self.size.0.len()];
        collect_checked(cross(&lens).map(|ix| {
            Workload::Transfer(TransferSpec::new(
                self.direction[ix[0]],
                self.memory[ix[1]],
                self.size.0[ix[2]],
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_bytes_and_inputs() {
        let t = TransferSpec::new(Direction::Bidir, HostMemory::Pinned, 1 << 30);
        assert_eq!(t.name(), "transfer.bidir.pinned.1GiB");
        assert_eq!(t.bytes(), 2 << 30);
        assert_eq!(t.test_key(), "transfer.bidir.pinned");
        let small = TransferSpec::new(Direction::H2d, HostMemory::Pageable, 4096);
        let ins = small.inputs(3);
        assert_eq!((ins.len(), ins[0].len()), (1, 1024));
        assert_eq!(small.output_len(), 1024);
        assert!(small.validate().is_ok());
        for bad in [4092, 4098, 1 << 43] {
            let t = TransferSpec::new(Direction::D2h, HostMemory::Pinned, bad);
            assert!(t.validate().is_err(), "{bad}");
        }
        assert_eq!("HtoD".parse::<Direction>(), Ok(Direction::H2d));
        assert_eq!("pageable".parse::<HostMemory>(), Ok(HostMemory::Pageable));
        assert!("sideways".parse::<Direction>().is_err());
    }

    #[test]
    fn transfers_compare_every_word() {
        let t = TransferSpec::new(Direction::Bidir, HostMemory::Pinned, 4096);
        let ins = Workload::Transfer(t.clone()).inputs(1);
        let mut landed: Vec<f32> = ins.iter().flat_map(|x| x.to_f32()).collect();
        let ok = Tensor::from_f32("dst", vec![landed.len()], DType::F32, &landed);
        assert!(t.verify_output(&ins, &ok, 0).passed);
        landed[1500] = 0.0;
        let bad = Tensor::from_f32("dst", vec![landed.len()], DType::F32, &landed);
        let v = t.verify_output(&ins, &bad, 0);
        assert!(!v.passed && v.detail.unwrap().contains("element 1500"));
    }
}
