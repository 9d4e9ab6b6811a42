//! Workloads described as data: what is computed, on which shapes and dtypes, and how much
//! arithmetic and memory traffic that takes at the least.
//!
//! A workload knows nothing about backends. Its `flops()` and `bytes()` turn a measured time
//! into TFLOP/s or GB/s, and its `name()` is the stable id results are matched by across runs.

mod attention;
pub mod axis;
pub mod kernel;
mod matmul;
mod memory;

pub use attention::{AttentionAxes, AttentionSpec};
pub use axis::{Axis, Param};
pub use kernel::KernelSpec;
pub use matmul::{BLayout, MatmulAxes, MatmulSpec};
pub use memory::{MemOp, MemoryAxes, MemorySpec, TRIAD_SCALAR, WRITE_VALUE};

use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Upper bound on any single dimension product, to catch typos before they become allocations.
pub(crate) const MAX_ELEMENTS: u128 = 1 << 40;

/// Attention with at most this many query rows is decode (1, or up to 8 with speculative decoding).
pub const DECODE_MAX_Q_LEN: u64 = 8;

/// One unit of work to verify and time.
///
/// Adding a kind: its module (spec with `name`/`flops`/`bytes`/`validate`, a [`WorkloadKind`]
/// impl, axes with a [`KindAxes`] impl), a variant here and an arm in [`each_kind!`], its
/// `Verify` impl in `verify`, a `SweepKind` variant (sweep.rs) and a `BenchCommand` variant
/// with its one argument set (cli.rs), and its arms in each backend (cpu, cuda, mock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Workload {
    Matmul(MatmulSpec),
    Attention(AttentionSpec),
    Memory(MemorySpec),
    /// A free-form user kernel (`bench kernel --spec`): its buffers, work and verification
    /// come from its spec.
    Kernel(Box<KernelSpec>),
}

/// Runs `$e` with `$s` bound to the spec inside a [`Workload`], whatever its kind: the one
/// place (with the enum) that lists every kind, so per-kind behaviour is a trait method.
macro_rules! each_kind {
    ($w:expr, $s:ident => $e:expr) => {
        match $w {
            $crate::workload::Workload::Matmul($s) => $e,
            $crate::workload::Workload::Attention($s) => $e,
            $crate::workload::Workload::Memory($s) => $e,
            $crate::workload::Workload::Kernel(boxed) => {
                let $s: &$crate::workload::KernelSpec = boxed;
                $e
            }
        }
    };
}
pub(crate) use each_kind;

/// Which figure is the headline for a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Floating-point (or integer) operations per second.
    Flops,
    /// Bytes moved per second.
    Bytes,
}

/// What every workload kind answers for itself, so that [`Workload`] only dispatches and a new
/// kind is one module rather than an arm in each of a dozen matches.
///
/// Every spec also has the inherent `name()` (the stable id), `flops()`, `bytes()` (the fewest
/// bytes one execution moves) and `validate()`, which backends call on a spec directly;
/// [`each_kind!`] dispatches to those as it does to the trait.
pub trait WorkloadKind {
    /// `matmul`, `attention`, `memory`: the first part of the id and the `bench`/`sweep`
    /// subcommand.
    fn kind(&self) -> &'static str;
    /// Bytes of buffers one set of inputs and outputs occupies.
    fn buffer_bytes(&self) -> u64;
    /// The dtype the result is recorded under.
    fn result_dtype(&self) -> DType;
    /// The headline figure: bytes per second for bandwidth-bound work, FLOP/s otherwise.
    fn metric(&self) -> Metric {
        Metric::Flops
    }
    /// The test the workload belongs to: the key of expectations in the GPU database and the
    /// id prefix `validate` and `compare` group by (`matmul.bf16`, `attention.decode`, ...).
    fn test_key(&self) -> String;
    /// Host inputs from the workload's own seed, in the order backends expect them.
    fn inputs(&self, seed: u64) -> Vec<Tensor>;
    /// Elements of the output a backend must return.
    fn output_len(&self) -> usize;
    /// The named parameters of the workload, as charts label series.
    fn params(&self) -> Vec<(&'static str, String)>;
    /// The value of a sweep parameter (`Size` in bytes), `None` when the kind has no such one.
    fn axis_value(&self, axis: Param) -> Option<u64>;
    /// The parameters a sweep of this kind can run over, in the order charts look at them.
    fn sweep_params(&self) -> &'static [Param];
}

/// A kind's sweep axes (`MatmulAxes`, ...): what `bench` and `sweep` ask of them. A bench is a
/// sweep whose axes hold one value each.
pub trait KindAxes {
    /// The cross product of the axes, each point validated, at most
    /// [`axis::MAX_SWEEP_WORKLOADS`].
    fn expand(&self) -> Result<Vec<Workload>>;
    /// The parameter charts put on x: the first with more than one value.
    fn swept(&self) -> Option<Param>;
    /// Implementations to run at every point (`default`, `all` or names; empty = default),
    /// resolved per backend by the plan.
    fn implementations(&self) -> &[String];
}

impl Workload {
    /// Stable id, e.g. `matmul.bf16.4096x4096x4096.nt` or `memory.copy.1GiB`.
    pub fn name(&self) -> String {
        each_kind!(self, s => s.name())
    }

    /// Arithmetic operations of one execution (multiply and add counted separately).
    pub fn flops(&self) -> f64 {
        each_kind!(self, s => s.flops())
    }

    /// The fewest bytes one execution must move to and from memory (each input read once,
    /// each output written once).
    pub fn bytes(&self) -> u64 {
        each_kind!(self, s => s.bytes())
    }

    /// Bytes of buffers one set of inputs and outputs occupies.
    pub fn footprint(&self) -> u64 {
        each_kind!(self, s => s.buffer_bytes())
    }

    /// Memory workloads and decode attention (query length ≤ [`DECODE_MAX_Q_LEN`], which reads
    /// the whole KV cache for a handful of FLOPs) are judged by bytes per second; the rest by
    /// FLOP/s. Every result records both.
    pub fn metric(&self) -> Metric {
        each_kind!(self, s => WorkloadKind::metric(s))
    }

    pub fn dtype(&self) -> DType {
        each_kind!(self, s => s.result_dtype())
    }

    pub fn kind(&self) -> &'static str {
        each_kind!(self, s => s.kind())
    }

    /// Rejects shapes that cannot describe real work: zero sizes, products that overflow,
    /// dtypes the operation has no meaning for.
    pub fn validate(&self) -> Result<()> {
        each_kind!(self, s => s.validate())
    }

    /// See [`WorkloadKind::test_key`].
    pub fn test_key(&self) -> String {
        each_kind!(self, s => s.test_key())
    }

    /// See [`WorkloadKind::inputs`]; `seed` is the workload's own (`inputs::workload_seed`).
    pub fn inputs(&self, seed: u64) -> Vec<Tensor> {
        each_kind!(self, s => s.inputs(seed))
    }

    /// Elements of the output a backend must return.
    pub fn output_len(&self) -> usize {
        each_kind!(self, s => s.output_len())
    }

    /// See [`WorkloadKind::params`].
    pub fn params(&self) -> Vec<(&'static str, String)> {
        each_kind!(self, s => s.params())
    }

    /// See [`WorkloadKind::axis_value`].
    pub fn axis_value(&self, axis: Param) -> Option<u64> {
        each_kind!(self, s => s.axis_value(axis))
    }

    /// See [`WorkloadKind::sweep_params`].
    pub fn sweep_params(&self) -> &'static [Param] {
        each_kind!(self, s => s.sweep_params())
    }
}

/// Collects expanded workloads, validating each, and refuses more than
/// [`axis::MAX_SWEEP_WORKLOADS`]: every kind's `expand` ends here.
pub(crate) fn collect_checked(ws: impl Iterator<Item = Workload>) -> Result<Vec<Workload>> {
    let mut v = Vec::new();
    for w in ws {
        if v.len() >= axis::MAX_SWEEP_WORKLOADS {
            return Err(crate::Error::invalid(format!(
                "the sweep makes more than {} workloads; narrow an axis",
                axis::MAX_SWEEP_WORKLOADS
            )));
        }
        w.validate()?;
        v.push(w);
    }
    Ok(v)
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
