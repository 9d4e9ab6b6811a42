//! `gpuvet sweep matmul|attention|memory|transfer|p2p|collective|kernel`: one workload kind over
//! axes of shapes or sizes (a user kernel: over its spec's `--set` variables).
//!
//! Every axis takes a comma-separated list whose items are single values, arithmetic ranges or
//! powers of two, mixed freely: `1,16,64`, `64..1024:64` (64 to 1024 in steps of 64, both ends
//! included when the step lands on them), `pow2:1..8192` (1, 2, 4, … 8192). Memory sizes take
//! byte units (`pow2:1MiB..1GiB`). The workloads are the cross product of the axes, in the
//! order the flags are listed, so results of one series come out together.
//!
//! The axes are each kind's own typed data (`MatmulAxes`, ...), and any kind's axes are a sweep:
//! nothing here names a kind. `bench <kind>` parses the very same flags (see `cli`), so a bench
//! is a sweep whose axes hold one value each.

use crate::error::{Error, Result};
use crate::workload::{KindAxes, Workload};

pub use crate::workload::axis::{Axis, MAX_AXIS_VALUES, MAX_SWEEP_WORKLOADS};

/// What is swept: one kind's typed axes (the CLI's `sweep <kind>` flags turn into these).
#[derive(Debug)]
pub struct SweepKind(Box<dyn KindAxes>);

impl SweepKind {
    pub fn new(axes: impl KindAxes + 'static) -> SweepKind {
        SweepKind(Box::new(axes))
    }

    /// The `--impl` list, for `plan::ImplSelect::parse`.
    pub fn implementations(&self) -> &[String] {
        self.0.implementations()
    }

    /// `sweep matmul` and so on: the command recorded in the report.
    pub fn command(&self) -> String {
        format!("sweep {}", self.0.kind())
    }
}

/// The cross product of the axes, validated, at most [`MAX_SWEEP_WORKLOADS`].
pub fn sweep_workloads(args: &SweepKind) -> Result<Vec<Workload>> {
    let v = args.0.expand()?;
    if v.is_empty() {
        return Err(Error::invalid("the sweep has no workloads"));
    }
    Ok(v)
}

/// The axis the charts put on x: the first one with more than one value (`m`, `seq`, `size`,
/// ...), or `None` when every axis has a single value.
pub fn swept_axis(args: &SweepKind) -> Option<String> {
    args.0.swept_name()
}

/// The named parameters of a workload, as charts label series: (`m`, `1024`), (`dtype`,
/// `bf16`), ... Axis names match [`swept_axis`].
pub fn params(w: &Workload) -> Vec<(&'static str, String)> {
    w.params()
}

/// The value of a swept axis in a workload (`size` in bytes, or a user kernel's `--set`
/// variable), or `None` when the workload has no such axis.
pub fn axis_value(w: &Workload, axis: &str) -> Option<u64> {
    w.axis_value_by_name(axis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::workload::{AttentionAxes, BLayout, MatmulAxes, MemOp, MemoryAxes};

    #[test]
    fn parses_lists_ranges_and_powers() {
        assert_eq!(Axis::parse_count("1,16,64").unwrap().0, vec![1, 16, 64]);
        assert_eq!(
            Axis::parse_count("64..320:64").unwrap().0,
            vec![64, 128, 192, 256, 320]
        );
        // the end is included only when the step lands on it
        assert_eq!(Axis::parse_count("1..10:4").unwrap().0, vec![1, 5, 9]);
        assert_eq!(Axis::parse_count("3..5").unwrap().0, vec![3, 4, 5]);
        assert_eq!(
            Axis::parse_count("pow2:1..64").unwrap().0,
            vec![1, 2, 4, 8, 16, 32, 64]
        );
        // non-powers at the ends round inwards
        assert_eq!(Axis::parse_count("pow2:3..20").unwrap().0, vec![4, 8, 16]);
        // mixed, deduplicated, order kept
        assert_eq!(
            Axis::parse_count("1, pow2:1..4, 3").unwrap().0,
            vec![1, 2, 4, 3]
        );
        assert_eq!(
            Axis::parse_bytes("pow2:1MiB..4MiB,4096").unwrap().0,
            vec![1 << 20, 2 << 20, 4 << 20, 4096]
        );
        for bad in [
            "",
            "1,,2",
            "0",
            "a",
            "10..1",
            "1..10:0",
            "pow2:5..7",
            "..4",
            "pow2:1..",
            "1..100000",
        ] {
            assert!(Axis::parse_count(bad).is_err(), "{bad}");
        }
    }

    fn matmul(m: &str) -> SweepKind {
        SweepKind::new(MatmulAxes {
            m: Axis::parse_count(m).unwrap(),
            n: Axis::one(64),
            k: Axis::one(32),
            dtype: vec![DType::Bf16, DType::F16],
            layout: vec![BLayout::Nk],
            implementation: vec![],
        })
    }

    #[test]
    fn cross_product_in_flag_order() {
        let a = matmul("1,16,64");
        let ws = sweep_workloads(&a).unwrap();
        assert_eq!(ws.len(), 6);
        assert_eq!(ws[0].name(), "matmul.bf16.1x64x32.nk");
        assert_eq!(ws[2].name(), "matmul.bf16.64x64x32.nk");
        assert_eq!(ws[3].name(), "matmul.f16.1x64x32.nk");
        assert_eq!(swept_axis(&a).as_deref(), Some("m"));
        assert_eq!(axis_value(&ws[1], "m"), Some(16));
        assert_eq!(swept_axis(&matmul("8")), None);
    }

    #[test]
    fn attention_and_memory_sweeps() {
        let attention = AttentionAxes {
            batch: Axis::one(2),
            heads: Axis::one(8),
            kv_heads: Some(Axis::one(2)),
            seq: Axis::one(1),
            kv_seq: Some(Axis::parse_count("pow2:128..1024").unwrap()),
            head_dim: Axis::one(64),
            causal: true,
            dtype: vec![DType::Bf16],
            implementation: vec![],
        };
        let a = SweepKind::new(attention.clone());
        let ws = sweep_workloads(&a).unwrap();
        assert_eq!(ws.len(), 4);
        assert_eq!(swept_axis(&a).as_deref(), Some("kv_seq"));
        // an impossible point is refused with the workload's own message
        let bad = SweepKind::new(AttentionAxes {
            kv_heads: Some(Axis::one(3)),
            ..attention
        });
        assert!(sweep_workloads(&bad)
            .unwrap_err()
            .to_string()
            .contains("divide"));
        let m = SweepKind::new(MemoryAxes {
            size: Axis::parse_bytes("pow2:1MiB..8MiB").unwrap(),
            op: vec![MemOp::Copy, MemOp::Triad],
            implementation: vec![],
        });
        assert_eq!(sweep_workloads(&m).unwrap().len(), 8);
        assert_eq!(swept_axis(&m).as_deref(), Some("size"));
        assert_eq!(m.command(), "sweep memory");
    }

    #[test]
    fn refuses_huge_sweeps() {
        let a = SweepKind::new(MatmulAxes {
            m: Axis::parse_count("1..4000").unwrap(),
            n: Axis::parse_count("1..4").unwrap(),
            k: Axis::one(1),
            dtype: vec![DType::F32],
            layout: vec![BLayout::Kn],
            implementation: vec![],
        });
        assert!(sweep_workloads(&a)
            .unwrap_err()
            .to_string()
            .contains("narrow"));
    }
}
