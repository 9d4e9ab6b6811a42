//! Workloads described as data: what is computed, on which shapes and dtypes, and how much
//! arithmetic and memory traffic that takes at the least.
//!
//! A workload knows nothing about backends. Its `flops()` and `bytes()` turn a measured time
//! into TFLOP/s or GB/s, and its `name()` is the stable id results are matched by across runs.

mod attention;
pub mod axis;
pub mod collective;
pub mod kernel;
mod matmul;
mod memory;
mod p2p;
mod transfer;

pub use attention::{AttentionAxes, AttentionSpec};
pub use axis::{Axis, Param};
pub use collective::{CollectiveAxes, CollectiveOp, CollectiveSpec, RankRange};
pub use kernel::KernelSpec;
pub use matmul::{BLayout, MatmulAxes, MatmulSpec};
pub use memory::{MemOp, MemoryAxes, MemorySpec, TRIAD_SCALAR, WRITE_VALUE};
pub use p2p::{P2pAxes, P2pOp, P2pSpec};
pub use transfer::{Direction, HostMemory, TransferAxes, TransferSpec, MIN_TRANSFER};

/// The f64 references each kind's check compares with (also the mock backend's exact outputs).
pub mod reference {
    pub use super::attention::attention_row;
    pub use super::matmul::{b_at, matmul_element};
}

/// The words of `--impl` that choose a set rather than name an implementation
/// ([`crate::plan::ImplSelect::parse`]); no kernel may be called one of them.
pub const IMPL_KEYWORDS: [&str; 3] = ["default", "all", "reference"];

use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::verify::{Verification, Verify};
use serde::{Deserialize, Serialize};

/// Upper bound on any single dimension product, to catch typos before they become allocations.
pub(crate) const MAX_ELEMENTS: u128 = 1 << 40;

/// Refuses a zero among `fields` (name, value) as `{what}: {name} must be at least 1`: the check
/// every attention shape and model preset starts with.
pub(crate) fn require_nonzero<'a>(
    what: &str,
    fields: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<()> {
    match fields.into_iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(crate::error::Error::invalid(format!(
            "{what}: {name} must be at least 1"
        ))),
        None => Ok(()),
    }
}

/// Refuses query heads that do not group over the KV heads (grouped-query attention), as
/// `{what}: {kv name} ({kv}) must divide {q name} ({q})`.
pub(crate) fn require_head_groups(what: &str, q: (&str, u64), kv: (&str, u64)) -> Result<()> {
    if kv.1 == 0 || q.1 % kv.1 != 0 {
        return Err(crate::error::Error::invalid(format!(
            "{what}: {} ({}) must divide {} ({})",
            kv.0, kv.1, q.0, q.1
        )));
    }
    Ok(())
}

/// Attention with at most this many query rows is decode (1, or up to 8 with speculative decoding).
pub const DECODE_MAX_Q_LEN: u64 = 8;

/// One unit of work to verify and time.
///
/// Adding a kind: its module (spec with `name`/`flops`/`bytes`/`validate`, a [`WorkloadKind`]
/// impl with its inputs, its [`Verify`] impl and f64 reference, axes with a [`KindAxes`] impl),
/// a variant here and an arm in [`each_kind!`], its argument set in `cli.rs` (the clap types:
/// a `BenchCommand` and a `SweepCommand` variant), and one arm per backend (cpu, cuda, mock).
/// docs/architecture.md has the measured count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Workload {
    Matmul(MatmulSpec),
    Attention(AttentionSpec),
    Memory(MemorySpec),
    Transfer(TransferSpec),
    P2p(P2pSpec),
    Collective(CollectiveSpec),
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
            $crate::workload::Workload::Transfer($s) => $e,
            $crate::workload::Workload::P2p($s) => $e,
            $crate::workload::Workload::Collective($s) => $e,
            $crate::workload::Workload::Kernel(boxed) => {
                let $s: &$crate::workload::KernelSpec = boxed;
                $e
            }
        }
    };
}

/// One input tensor a workload takes, as backends receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

impl InputSpec {
    pub fn new(name: &'static str, shape: Vec<usize>, dtype: DType) -> InputSpec {
        InputSpec { name, shape, dtype }
    }
}

/// Which figure is the headline for a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Floating-point (or integer) operations per second.
    Flops,
    /// Bytes moved per second.
    Bytes,
}

/// Random tensors for `specs` ([`Tensor::random`]): the first from `seed`, each next one from
/// the seed before it mixed again. What [`WorkloadKind::inputs`] gives unless a kind overrides it.
pub fn random_inputs(specs: Vec<InputSpec>, seed: u64) -> Vec<Tensor> {
    let mut s = seed;
    let mut out = Vec::new();
    for i in specs {
        out.push(Tensor::random(i.name, i.shape, i.dtype, s));
        s = crate::tensor::splitmix(s);
    }
    out
}

/// Where the plan places a workload: on each device alone, or on several devices that work on
/// it together (the backends' group seam, `Backend::prepare_group`, prepares those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placing {
    /// Every device on its own (matmul, attention, memory, host↔device transfers).
    EachDevice,
    /// Every ordered pair of distinct devices, source first (a one-way p2p copy).
    OrderedPairs,
    /// Every pair of distinct devices, in ascending order (a two-way p2p copy).
    Pairs,
    /// The devices of the run as one set (a collective; on the CPU, one device whose ranks are
    /// threads).
    Group,
}

/// What a result is measured against: the roof `% of peak` divides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roof {
    /// The compute peak of a dtype.
    Compute(DType),
    /// The device's memory bandwidth.
    Memory,
    /// The device's PCIe link, `ways` directions at once.
    HostLink { ways: u32 },
    /// The link between the two devices of the placement, `ways` directions at once.
    PairLink { ways: u32 },
    /// The slowest link between the devices of the placement (a collective's bus).
    GroupLink,
}

/// What every workload kind answers for itself, so that [`Workload`] only dispatches and a new
/// kind is one module rather than an arm in each of a dozen matches. Checking its output
/// ([`Verify`]) is part of it: a kind's verification lives in its module, beside its reference.
///
/// Every spec also has the inherent `name()` (the stable id), `flops()`, `bytes()` (the fewest
/// bytes one execution moves) and `validate()`, which backends call on a spec directly;
/// [`each_kind!`] dispatches to those as it does to the trait.
pub trait WorkloadKind: Verify {
    /// `matmul`, `attention`, `memory`: the first part of the id and the `bench`/`sweep`
    /// subcommand (the kind's axes say the same through [`KindAxes::kind`]).
    const KIND: &'static str;
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    /// Bytes of buffers one set of inputs and outputs occupies.
    fn buffer_bytes(&self) -> u64;
    /// The dtype the result is recorded under.
    fn result_dtype(&self) -> DType;
    /// The headline figure: bytes per second for bandwidth-bound work, FLOP/s otherwise.
    fn metric(&self) -> Metric {
        Metric::Flops
    }
    /// What `% of peak` divides by: the memory bandwidth for bandwidth-bound work, the
    /// dtype's compute peak otherwise; a link for the interconnect kinds.
    fn roof(&self) -> Roof {
        match self.metric() {
            Metric::Bytes => Roof::Memory,
            Metric::Flops => Roof::Compute(self.result_dtype()),
        }
    }
    /// The headline rate is `bytes()` (or `flops()`) per second times this: nccl-tests' bus
    /// factor for a collective (busbw = algbw × factor), 1 for everything else.
    fn rate_factor(&self) -> f64 {
        1.0
    }
    /// Where the plan places it.
    fn placing(&self) -> Placing {
        Placing::EachDevice
    }
    /// Ranks a group workload was asked to span (0: one per device of the run, or the
    /// backend's default); `None` for kinds without ranks.
    fn ranks(&self) -> Option<u32> {
        None
    }
    /// This workload over `ranks` ranks, of which `local` are held by this process (`None`:
    /// all of them); `None` for kinds without ranks.
    fn with_ranks(&self, ranks: u32, local: Option<RankRange>) -> Option<Workload> {
        let _ = (ranks, local);
        None
    }
    /// The test the workload belongs to: the key of expectations in the GPU database and the
    /// id prefix `validate` and `compare` group by (`matmul.bf16`, `attention.decode`, ...).
    fn test_key(&self) -> String;
    /// The inputs backends receive, in order: what [`WorkloadKind::inputs`] generates by
    /// default and what a backend checks the tensors it is given against. A kind whose inputs
    /// are not random tensors of gpuvet dtypes (a user kernel's buffers) lists none and makes
    /// its own in `inputs`.
    fn input_specs(&self) -> Vec<InputSpec>;
    /// Host inputs of [`WorkloadKind::input_specs`] from the workload's own `seed`
    /// (`inputs::workload_seed`), by the one seeding rule: random values, the first input from
    /// `seed`, each next one from the seed before it mixed again, so inputs never repeat each
    /// other. A kind whose check needs known values (a collective's exactly summable per-rank
    /// data) overrides it with inputs of the same specs.
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        random_inputs(self.input_specs(), seed)
    }
    /// Elements of the output a backend must return.
    fn output_len(&self) -> usize;
    /// The named parameters of the workload, as charts label series.
    fn params(&self) -> Vec<(&'static str, String)>;
    /// The value of a sweep parameter (`Size` in bytes), `None` when the kind has no such one.
    fn axis_value(&self, axis: Param) -> Option<u64>;
    /// The value of the sweep axis charts call `name`: a [`Param`] by its name, or a name of
    /// the kind's own (a user kernel's `--set` variable).
    fn axis_value_by_name(&self, name: &str) -> Option<u64> {
        self.axis_value(name.parse().ok()?)
    }
    /// The parameters a sweep of this kind can run over, in the order charts look at them.
    fn sweep_params(&self) -> &'static [Param];
    /// What runs that the name does not say (a collective's size rounded down to whole
    /// elements per rank): each becomes a note on the result.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A kind's sweep axes (`MatmulAxes`, ...): what `bench` and `sweep` ask of them. A bench is a
/// sweep whose axes hold one value each; a sweep is any kind's axes (`sweep::SweepKind`), so
/// nothing outside the kind's module lists kinds for it.
pub trait KindAxes: std::fmt::Debug {
    /// The kind the axes make (`matmul`, ...): the `bench`/`sweep` subcommand.
    fn kind(&self) -> &'static str;
    /// The cross product of the axes, each point validated, at most
    /// [`axis::MAX_SWEEP_WORKLOADS`].
    fn expand(&self) -> Result<Vec<Workload>>;
    /// The parameter charts put on x: the first with more than one value.
    fn swept(&self) -> Option<Param>;
    /// The name of that axis, as [`WorkloadKind::axis_value_by_name`] reads it back (a kind
    /// whose axes are its own names, as a user kernel's `--set` variables, says it here).
    fn swept_name(&self) -> Option<String> {
        self.swept().map(|p| p.name().to_string())
    }
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

    /// See [`WorkloadKind::roof`].
    pub fn roof(&self) -> Roof {
        each_kind!(self, s => s.roof())
    }

    /// See [`WorkloadKind::placing`].
    pub fn placing(&self) -> Placing {
        each_kind!(self, s => WorkloadKind::placing(s))
    }

    /// See [`WorkloadKind::ranks`].
    pub fn ranks(&self) -> Option<u32> {
        each_kind!(self, s => WorkloadKind::ranks(s))
    }

    /// See [`WorkloadKind::with_ranks`].
    pub fn with_ranks(&self, ranks: u32, local: Option<RankRange>) -> Option<Workload> {
        each_kind!(self, s => s.with_ranks(ranks, local))
    }

    /// The headline rate of one execution taking `seconds`: FLOP/s, or B/s (busbw for a
    /// collective): what results, verdicts and comparisons all report.
    pub fn rate(&self, seconds: f64) -> f64 {
        let base = match self.metric() {
            Metric::Flops => self.flops(),
            Metric::Bytes => self.bytes() as f64,
        };
        base * each_kind!(self, s => s.rate_factor()) / seconds
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

    /// See [`WorkloadKind::input_specs`].
    pub fn input_specs(&self) -> Vec<InputSpec> {
        each_kind!(self, s => s.input_specs())
    }

    /// See [`WorkloadKind::inputs`].
    pub fn inputs(&self, seed: u64) -> Vec<Tensor> {
        each_kind!(self, s => WorkloadKind::inputs(s, seed))
    }

    /// Elements of the output a backend must return.
    pub fn output_len(&self) -> usize {
        each_kind!(self, s => s.output_len())
    }

    /// See [`WorkloadKind::notes`].
    pub fn notes(&self) -> Vec<String> {
        each_kind!(self, s => s.notes())
    }

    /// See [`WorkloadKind::params`].
    pub fn params(&self) -> Vec<(&'static str, String)> {
        each_kind!(self, s => s.params())
    }

    /// See [`WorkloadKind::axis_value`].
    pub fn axis_value(&self, axis: Param) -> Option<u64> {
        each_kind!(self, s => s.axis_value(axis))
    }

    /// See [`WorkloadKind::axis_value_by_name`].
    pub fn axis_value_by_name(&self, name: &str) -> Option<u64> {
        each_kind!(self, s => s.axis_value_by_name(name))
    }

    /// See [`WorkloadKind::sweep_params`].
    pub fn sweep_params(&self) -> &'static [Param] {
        each_kind!(self, s => s.sweep_params())
    }
}

/// A workload's output is checked by its kind, once it has the length the kind promises.
impl Verify for Workload {
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, seed: u64) -> Verification {
        if let Some(v) = crate::verify::wrong_length(self.output_len(), out) {
            return v;
        }
        each_kind!(self, s => s.verify_output(inputs, out, seed))
    }

    fn verify_runs(&self) -> usize {
        each_kind!(self, s => s.verify_runs())
    }

    fn verify_outputs(&self, inputs: &[Tensor], outs: &[Tensor], seed: u64) -> Verification {
        let len = self.output_len();
        if let Some(v) = outs
            .iter()
            .find_map(|o| crate::verify::wrong_length(len, o))
        {
            return v;
        }
        each_kind!(self, s => s.verify_outputs(inputs, outs, seed))
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

/// `1GiB`, `256MiB`, `4000000B`: compact and exact.
pub(crate) fn size_label(b: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if b >= 1 << shift && b % (1 << shift) == 0 {
            return format!("{}{unit}", b >> shift);
        }
    }
    format!("{b}B")
}

/// Refuses a byte size below `min`, above `max`, or (with `words`) not a whole number of 4-byte
/// words: the size check of every kind measured in bytes.
pub(crate) fn check_bytes(what: &str, bytes: u64, min: u64, max: u64, words: bool) -> Result<()> {
    use crate::units::Bytes;
    if bytes < min || (words && bytes % 4 != 0) {
        // The exact bytes: rounded, 4097 B read "4.00 KiB must be at least 4.00 KiB".
        return Err(crate::Error::invalid(format!(
            "{what} size {} must be at least {}{}",
            size_label(bytes),
            size_label(min),
            if words {
                " and a whole number of 4-byte words"
            } else {
                ""
            }
        )));
    }
    if bytes > max {
        return Err(crate::Error::invalid(format!(
            "{what} size {} is beyond any device",
            Bytes(bytes)
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::splitmix;

    /// A refused size is said in exact bytes: rounded, 4097 B read "4.00 KiB must be at least
    /// 4.00 KiB".
    #[test]
    fn a_refused_size_says_its_exact_bytes() {
        let e = check_bytes("memory", 4097, 4096, 1 << 40, true).unwrap_err();
        assert!(
            e.to_string().contains(
                "memory size 4097B must be at least 4KiB and a whole number of 4-byte words"
            ),
            "{e}"
        );
        assert!(check_bytes("memory", 4096, 4096, 1 << 40, true).is_ok());
    }

    #[test]
    fn inputs_follow_their_specs_with_the_seeds_they_always_had() {
        let a = AttentionSpec {
            batch: 1,
            q_heads: 2,
            kv_heads: 1,
            q_len: 3,
            kv_len: 5,
            head_dim: 8,
            causal: false,
            dtype: DType::Bf16,
        };
        let ins = Workload::Attention(a.clone()).inputs(7);
        // Q from the seed (widened to [-3, 3) before rounding to the dtype), K from it mixed
        // once, V twice.
        let q: Vec<f32> = Tensor::random("Q", a.q_shape(), DType::F32, 7)
            .to_f32()
            .iter()
            .map(|x| x * super::attention::Q_RANGE)
            .collect();
        assert_eq!(ins[0], Tensor::from_f32("Q", a.q_shape(), a.dtype, &q));
        assert!(ins[0].to_f64().iter().any(|x| x.abs() > 1.0));
        assert_eq!(
            ins[1],
            Tensor::random("K", a.kv_shape(), a.dtype, splitmix(7))
        );
        assert_eq!(
            ins[2],
            Tensor::random("V", a.kv_shape(), a.dtype, splitmix(splitmix(7)))
        );
        let triad = Workload::Memory(MemorySpec {
            op: MemOp::Triad,
            bytes: 4096,
        });
        let ins = triad.inputs(1);
        let shapes: Vec<(&str, Vec<usize>)> = ins
            .iter()
            .map(|t| (t.name.as_str(), t.shape.clone()))
            .collect();
        assert_eq!(shapes, [("b", vec![1024]), ("c", vec![1024])]);
    }
}
