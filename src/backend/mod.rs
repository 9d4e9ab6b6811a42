//! The seam between "what to measure" and "where it runs".
//!
//! A [`Backend`] is one device (the host CPU, one CUDA GPU, or the mock used in tests). It says
//! which implementations apply to a workload, and turns a workload plus host inputs into a
//! [`Prepared`] run: buffers allocated, inputs uploaded, descriptors built, so that the timed
//! loop does nothing but launch work. Everything above this trait (verification, statistics,
//! reports) is shared by every backend.

pub mod cpu;
pub mod cuda;
pub mod details;
pub mod mock;
pub mod state;
pub mod topology;

pub use details::{CpuFacts, CudaFacts, DeviceDetails};
pub use state::{DeviceState, NvLinkPeer, NvLinkPeerKind, ThrottleReason};

use crate::dtype::ComputeType;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::workload::Workload;
use crate::world::World;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// Which kind of backend a device is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Cpu,
    Cuda,
    Mock,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Cpu, BackendKind::Cuda, BackendKind::Mock];

    /// The kind a report names (`cpu`, `cuda`, `mock`); `None` for any other name.
    pub fn from_name(s: &str) -> Option<BackendKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Mock => "mock",
        }
    }

    /// True when the backend's devices are real GPUs: their compute capability decides the
    /// dtypes, their identity is checked against the SKU database, and their peaks may be
    /// computed from clocks.
    pub fn is_gpu(self) -> bool {
        match self {
            BackendKind::Cuda => true,
            BackendKind::Cpu | BackendKind::Mock => false,
        }
    }

    /// True when the backend describes its devices as GPU models (names, SM counts, memory)
    /// that the SKU database can recognise: real GPUs, and the mock's simulated ones (so that
    /// tests can exercise the lookup).
    pub fn names_gpu_models(self) -> bool {
        match self {
            BackendKind::Cuda | BackendKind::Mock => true,
            BackendKind::Cpu => false,
        }
    }

    /// True when a run's report gets a fixed host and start time: the mock's runs are the
    /// snapshots of the tests, the same on every machine.
    pub fn fixed_environment(self) -> bool {
        match self {
            BackendKind::Mock => true,
            BackendKind::Cpu | BackendKind::Cuda => false,
        }
    }

    /// How large a `validate` suite the backend's devices get.
    pub fn suite_scale(self) -> SuiteScale {
        match self {
            BackendKind::Cuda => SuiteScale::Device,
            BackendKind::Mock => SuiteScale::Smoke,
            BackendKind::Cpu => SuiteScale::Host,
        }
    }
}

/// Backend policy read off a recorded device, so callers never branch on the backend kind.
impl DeviceInfo {
    /// True when the device is a real GPU (see [`BackendKind::is_gpu`]); false when the report
    /// does not say which backend measured it.
    pub fn is_gpu(&self) -> bool {
        self.backend.is_some_and(|b| b.is_gpu())
    }

    /// True unless the device's backend is known not to describe GPU models (a CPU): a report
    /// without a backend is given the benefit of the doubt.
    pub fn may_name_gpu_model(&self) -> bool {
        self.backend.is_none_or(|b| b.names_gpu_models())
    }

    /// The `validate` suite size for this device (the host's when the backend is unknown).
    pub fn suite_scale(&self) -> SuiteScale {
        self.backend.map_or(SuiteScale::Host, |b| b.suite_scale())
    }
}

/// The size class of the `validate` suite for a device: the policy is the backend's, the
/// shapes are `validate`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteScale {
    /// Shapes sized from the device's memory and cache: the hardware is what is tested.
    Device,
    /// The smallest shapes that still run every stage: the pipeline is what is tested.
    Smoke,
    /// Shapes a host CPU runs in seconds (also devices of unknown backend).
    Host,
}

/// An implementation of a workload on a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImplInfo {
    /// Short id used with `--impl` and in reports (`gemm`, `cublaslt`, `flash`, `unfused`, ...).
    pub name: String,
    /// One line on what it is.
    pub description: String,
    /// True for vendor-library references (the ceiling own kernels are compared with).
    pub reference: bool,
}

impl ImplInfo {
    pub fn new(name: &str, description: &str, reference: bool) -> Self {
        ImplInfo {
            name: name.into(),
            description: description.into(),
            reference,
        }
    }
}

/// What the device is. Fields a backend cannot know are `None`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub index: usize,
    #[serialize_always]
    pub backend: Option<BackendKind>,
    pub name: String,
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    pub compute_capability: Option<String>,
    /// Streaming multiprocessors (GPU) or logical cores (CPU).
    pub multiprocessors: Option<u32>,
    pub memory_bytes: Option<u64>,
    /// L2 on a GPU, the last-level cache on a CPU.
    pub last_level_cache_bytes: Option<u64>,
    pub driver_version: Option<String>,
    /// Device state (clocks, health, link) and what the backend records about the device, one
    /// flat JSON object.
    #[serde(default, skip_serializing_if = "DeviceDetails::is_empty")]
    pub details: DeviceDetails,
    /// Datasheet peaks when the device is known, for "% of peak".
    pub peaks: Option<Peaks>,
}

/// Datasheet peaks of a device, dense (no sparsity).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    /// Where these figures come from (datasheet, computed from SMs × rate × clock, ...).
    pub source: String,
    /// FLOP/s (OP/s for int8) by dtype (written by name).
    #[serde(with = "crate::dtype::by_name")]
    pub flops: std::collections::BTreeMap<crate::dtype::DType, f64>,
    /// Memory bandwidth in bytes/s.
    pub memory_bandwidth: Option<f64>,
    /// The PCIe link's rate each way in bytes/s after line encoding: from the link's maximum
    /// generation and width as NVML reports them, else the SKU's.
    pub pcie_bandwidth: Option<f64>,
    /// One NVLink link's rate each way in bytes/s (25 GB/s for NVLink 2–4, 50 for NVLink 5).
    pub nvlink_link_bandwidth: Option<f64>,
}

/// A snapshot of the device's state, taken before and after each result.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    pub sm_clock_mhz: Option<f64>,
    pub memory_clock_mhz: Option<f64>,
    pub temperature_c: Option<f64>,
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    /// Decoded throttle reasons active at the sample (empty when none or unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_reasons: Vec<ThrottleReason>,
}

impl Telemetry {
    /// One line for a person: `SM 1980 MHz, memory 2619 MHz, 41 °C, 118 W of 700 W` (on a
    /// CPU, `clock 2100 MHz`), then any throttle reasons; fields not read are left out.
    pub fn describe(&self, gpu: bool) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(v) = self.sm_clock_mhz {
            parts.push(format!("{} {v:.0} MHz", if gpu { "SM" } else { "clock" }));
        }
        if let Some(v) = self.memory_clock_mhz {
            parts.push(format!("memory {v:.0} MHz"));
        }
        if let Some(v) = self.temperature_c {
            parts.push(format!("{v:.0} °C"));
        }
        match (self.power_w, self.power_limit_w) {
            (Some(w), Some(limit)) => parts.push(format!("{w:.0} W of {limit:.0} W")),
            (Some(w), None) => parts.push(format!("{w:.0} W")),
            (None, Some(limit)) => parts.push(format!("power limit {limit:.0} W")),
            (None, None) => {}
        }
        if !self.throttle_reasons.is_empty() {
            let reasons: Vec<String> = self.throttle_reasons.iter().map(|r| r.name()).collect();
            parts.push(format!("throttle: {}", reasons.join(", ")));
        }
        if parts.is_empty() {
            return "none read".to_string();
        }
        parts.join(", ")
    }
}

/// Bytes a run needs, by where they live: the plan refuses a workload before anything is
/// allocated when either does not fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryNeeds {
    /// Host RAM: the host copies of inputs and output (read back for verification), plus the
    /// buffers themselves on a backend whose "device memory" is host RAM.
    pub host: u64,
    /// Memory of the device itself (0 on a backend that computes in host RAM).
    pub device: u64,
}

/// The pace a world's fixed measurement schedule is sized for (`measure::FixedSchedule`): an
/// assumption, never a measurement, because a timing differs from rank to rank and the
/// schedule must not. Every rank of a world runs the same backend, so all size it alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Bytes a collective moves per second.
    pub bytes_per_s: f64,
    /// The shortest time one collective takes, however small.
    pub latency_s: f64,
}

impl Pace {
    /// A GPU fabric: 100 GB/s, between one InfiniBand NDR port (50 GB/s) and NVLink
    /// (450 GB/s), so a sample lasts about `--min-sample-time` within a factor of a few
    /// whatever the fabric; a small NCCL collective takes 5 to 30 µs.
    pub const FABRIC: Pace = Pace {
        bytes_per_s: 100e9,
        latency_s: 5e-6,
    };
}

/// What a sustained matmul load is for: `gpuvet stress` on its own, or the stress half of a
/// validation soak (which keeps CPU test runs shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sustained {
    Stress,
    Soak,
}

/// Constructors for the quick-suite workloads each backend lists in [`Backend::quick_suite`].
pub mod quick {
    use crate::dtype::DType;
    use crate::workload::{AttentionSpec, BLayout, MatmulSpec, MemOp, MemorySpec, Workload};

    /// A square `s`×`s`×`s` matmul.
    pub fn matmul(s: u64, dtype: DType, b_layout: BLayout) -> Workload {
        Workload::Matmul(MatmulSpec {
            m: s,
            n: s,
            k: s,
            dtype,
            b_layout,
        })
    }

    /// Attention with head dim 128 (every model the suite mirrors uses it).
    pub fn attention(
        (batch, q_heads, kv_heads): (u64, u64, u64),
        (q_len, kv_len): (u64, u64),
        causal: bool,
        dtype: DType,
    ) -> Workload {
        Workload::Attention(AttentionSpec {
            batch,
            q_heads,
            kv_heads,
            q_len,
            kv_len,
            head_dim: 128,
            causal,
            dtype,
        })
    }

    /// A memory-bandwidth workload over `bytes`.
    pub fn memory(op: MemOp, bytes: u64) -> Workload {
        Workload::Memory(MemorySpec { op, bytes })
    }

    /// The bytes per array of a GPU's bandwidth test: 4 GiB, but no more than an eighth of the
    /// device (a copy holds two arrays, a triad three, and a MIG slice or a small card has a
    /// few GiB), and at least 8× its L2 so that the cache cannot serve it. Whole MiB: a share
    /// of the device's memory is rarely a whole number of f32 elements, and a memory workload
    /// must be one.
    pub fn memory_bytes(info: &super::DeviceInfo) -> u64 {
        let total = info.memory_bytes.unwrap_or(16 << 30);
        let l2 = info.last_level_cache_bytes.unwrap_or(64 << 20);
        (4u64 << 30).min(total / 8).max(8 * l2) & !((1 << 20) - 1)
    }
}

/// How the prepared run is laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrepareOptions {
    /// Copies of the inputs and outputs to rotate through between iterations, so that a small
    /// working set is not served from cache. 1 = no rotation.
    pub buffer_sets: usize,
    /// Leave caches warm on purpose (`--hot`).
    pub hot: bool,
}

/// How caches were handled between the iterations of a result (`ResultRecord.cache`).
///
/// Serialised as the strings reports have always held (`rotate(8)`, `hot`, ...); a string this
/// version does not know (an older or newer file) is kept as it was in [`CachePolicy::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CachePolicy {
    /// `rotate(N)`: N buffer sets, consecutive iterations rotate through them, and together
    /// they are at least twice the last-level cache (so each iteration starts cold).
    Rotate(usize),
    /// `warm(N)`: N buffer sets rotated through, but all of them together are smaller than
    /// twice the last-level cache, so part of each iteration's data is still cached: the
    /// figure is partly a cache figure (the number of sets is capped).
    Warm(usize),
    /// `flush-l2`: the cache is flushed between samples.
    FlushL2,
    /// `hot`: the same buffers every iteration, on purpose (`--hot`).
    Hot,
    /// `single`: one buffer set, large enough to need no rotation.
    #[default]
    Single,
    /// `cold (working set ≥ 2× L2)`: one buffer set of at least twice the L2 (CUDA).
    SingleCold,
    /// `warm (1 buffer set smaller than 2× L2)`: one buffer set that partly fits the L2 (CUDA).
    SingleWarm,
    /// Any other text, kept verbatim.
    Other(String),
}

impl CachePolicy {
    const SINGLE_COLD: &'static str = "cold (working set ≥ 2× L2)";
    const SINGLE_WARM: &'static str = "warm (1 buffer set smaller than 2× L2)";

    /// The label for `sets` rotated buffer sets of `set_bytes` each on a device with a
    /// last-level cache of `cache_bytes`: [`CachePolicy::Warm`] when they add up to less than
    /// twice the cache, [`CachePolicy::Rotate`] otherwise. One set is [`CachePolicy::Single`].
    pub fn rotating(sets: usize, set_bytes: u64, cache_bytes: u64) -> CachePolicy {
        match sets {
            0 | 1 => CachePolicy::Single,
            n if (n as u64).saturating_mul(set_bytes) < cache_bytes.saturating_mul(2) => {
                CachePolicy::Warm(n)
            }
            n => CachePolicy::Rotate(n),
        }
    }
}

impl std::fmt::Display for CachePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CachePolicy::Rotate(n) => write!(f, "rotate({n})"),
            CachePolicy::Warm(n) => write!(f, "warm({n})"),
            CachePolicy::FlushL2 => f.write_str("flush-l2"),
            CachePolicy::Hot => f.write_str("hot"),
            CachePolicy::Single => f.write_str("single"),
            CachePolicy::SingleCold => f.write_str(Self::SINGLE_COLD),
            CachePolicy::SingleWarm => f.write_str(Self::SINGLE_WARM),
            CachePolicy::Other(s) => f.write_str(s),
        }
    }
}

impl From<&str> for CachePolicy {
    /// Never fails: text that names no known policy becomes [`CachePolicy::Other`].
    fn from(s: &str) -> CachePolicy {
        let count = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.parse::<usize>().ok())
        };
        match s {
            "flush-l2" => CachePolicy::FlushL2,
            "hot" => CachePolicy::Hot,
            "single" => CachePolicy::Single,
            Self::SINGLE_COLD => CachePolicy::SingleCold,
            Self::SINGLE_WARM => CachePolicy::SingleWarm,
            _ => match (count("rotate("), count("warm(")) {
                (Some(n), _) => CachePolicy::Rotate(n),
                (_, Some(n)) => CachePolicy::Warm(n),
                _ => CachePolicy::Other(s.to_string()),
            },
        }
    }
}

crate::label::text_label!(CachePolicy);

/// A workload made ready to run on a device.
pub trait Prepared {
    /// The arithmetic that actually ran (`f32` for bf16 inputs on a CPU without bf16, ...).
    fn compute_dtype(&self) -> ComputeType;

    /// Fills the output of buffer set 0 with NaN or a bit pattern that no kernel produces,
    /// runs once on set 0, waits, and returns that output for verification.
    fn run_verify(&mut self) -> Result<Tensor>;

    /// Runs `iters` iterations back to back, rotating through the buffer sets, and returns the
    /// elapsed seconds on the backend's own clock (CUDA events on a GPU).
    fn run(&mut self, iters: u64) -> Result<f64>;

    /// How caches are handled between iterations.
    fn cache_policy(&self) -> CachePolicy;

    /// Anything the reader of the result should know (conversions done, fallbacks taken).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// The outputs of `runs` verification runs, for checks that hold runs against each other
    /// (a user kernel's determinism check): run `i` uses buffer set `i % sets`, and its output
    /// is poisoned with a pattern that changes from run to run, so an element the kernel left
    /// unwritten shows as a difference. The default repeats [`Prepared::run_verify`].
    fn run_verify_repeated(&mut self, runs: usize) -> Result<Vec<Tensor>> {
        (0..runs).map(|_| self.run_verify()).collect()
    }

    /// What the result should record about a user kernel it ran (source hash, build, launch,
    /// registers); `None` for gpuvet's own implementations.
    fn kernel_record(&self) -> Option<crate::workload::kernel::KernelRecord> {
        None
    }
}

/// The devices a group workload (a peer copy, a collective) runs on, handed to the first of
/// them by [`Backend::prepare_group`]: the seam that lets a backend set up work spanning
/// several of its devices (peer mappings, one communicator per device) and, for a collective,
/// the other processes of the run.
pub struct Group<'g> {
    /// The backends of the placement in placement order; the one preparing is `members[0]`
    /// (a peer copy: the source first).
    pub members: &'g [&'g dyn Backend],
    /// The processes of the run: a single process unless it was launched as a world (Slurm).
    pub world: &'g World,
}

impl<'g> Group<'g> {
    /// The member backends as the concrete type `B`, or an error naming the one that is not
    /// (a group never mixes backends; this is the check that it does not).
    pub fn members_as<B: 'static>(&self, what: &str) -> Result<Vec<&'g B>> {
        members_as(self.members, what)
    }
}

/// `members` as the concrete backend type `B`, or an error naming the one that is not.
pub fn members_as<'g, B: 'static>(members: &[&'g dyn Backend], what: &str) -> Result<Vec<&'g B>> {
    members
        .iter()
        .map(|&m| {
            m.as_any().downcast_ref::<B>().ok_or_else(|| {
                crate::Error::unsupported(format!(
                    "{what} spans devices of different backends ({} is {})",
                    m.device().name,
                    m.kind().name()
                ))
            })
        })
        .collect()
}

/// How a collective's ranks sit on a backend's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankLayout {
    /// One rank per device (GPUs, the mock): the collective is placed on the run's devices.
    OnePerDevice,
    /// Every rank a thread of one device (the CPU): placed on that device, `default` ranks
    /// unless asked for another count.
    Threads { default: u32 },
}

/// A preparation [`Backend::prepare`] has validated and checked: what a backend builds in
/// [`Backend::prepare_checked`].
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    pub workload: &'r Workload,
    pub implementation: &'r str,
    pub inputs: &'r [Tensor],
    pub opts: PrepareOptions,
}

impl<'r> Request<'r> {
    /// The request once `workload` is valid and `implementation` can run it on `b`: what both
    /// preparation seams (one device, a group) do first.
    fn checked<B: Backend + ?Sized>(
        b: &B,
        workload: &'r Workload,
        implementation: &'r str,
        inputs: &'r [Tensor],
        opts: PrepareOptions,
    ) -> Result<Request<'r>> {
        workload.validate()?;
        b.check(workload, implementation)?;
        Ok(Request {
            workload,
            implementation,
            inputs,
            opts,
        })
    }
}

/// The backend as `Any`, so a group's members can be taken back as the backend's own type
/// ([`Group::members_as`]): every backend is itself, by the blanket implementation.
pub trait AsAny {
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: std::any::Any> AsAny for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// One device able to run workloads.
pub trait Backend: AsAny + Send {
    /// What the device is; its `backend` is this backend's kind.
    fn device(&self) -> &DeviceInfo;

    /// The backend's kind, as its device records it (every backend sets it when it opens).
    fn kind(&self) -> BackendKind {
        self.device()
            .backend
            .expect("a backend records its kind in its device")
    }

    /// Implementations of `w` available here, best first; empty when the device cannot run it.
    fn implementations(&self, w: &Workload) -> Vec<ImplInfo>;

    /// Why `w` cannot run with `imp`, or `Ok` when it can. Called while the plan is validated.
    /// With `imp` empty, and nothing here able to run `w`, a backend that knows why (a missing
    /// library, a workload only a GPU runs) says so; the plan shows that reason, not a guess.
    fn check(&self, w: &Workload, imp: &str) -> Result<()> {
        check_listed(self, w, imp)
    }

    /// Adds a user's CUDA kernel as one more implementation of the `workload` kind (`matmul`,
    /// `attention`, `memory`), checked, prepared and verified like the built-in ones. Only a
    /// GPU (or the mock standing in for one) can: the default refuses with [`needs_gpu`].
    fn register_user_kernel(
        &mut self,
        workload: &'static str,
        kernel: &crate::workload::kernel::UserKernel,
    ) -> Result<()> {
        let _ = (workload, kernel);
        Err(needs_gpu(self.kind()))
    }

    /// Bytes of memory free for buffers right now.
    fn free_memory(&self) -> Result<u64>;

    /// Bytes a run of `w` allocates on the device with `sets` buffer sets (inputs, outputs,
    /// workspaces).
    fn memory_needed(&self, w: &Workload, sets: usize) -> u64 {
        w.footprint().saturating_mul(sets as u64)
    }

    /// Where the bytes of a run of `w` by implementation `imp` with `sets` buffer sets live.
    /// The default is a backend that computes in host RAM, whatever the implementation: its
    /// buffers come on top of the host copies. A GPU overrides this to put its buffers on the
    /// device, each implementation's own (a fused attention has no score matrix).
    fn memory_needs(&self, w: &Workload, imp: &str, sets: usize) -> MemoryNeeds {
        let _ = imp;
        MemoryNeeds {
            host: w.footprint().saturating_add(self.memory_needed(w, sets)),
            device: 0,
        }
    }

    /// The last-level cache the backend's timings feel: what rotated buffer sets must outgrow
    /// for a result to be labelled `rotate(N)` rather than `warm(N)`. `None` where timings do
    /// not depend on a cache.
    fn timed_cache_bytes(&self) -> Option<u64> {
        self.device().last_level_cache_bytes
    }

    /// True for a GPU (or the mock, which stands in for one): what decides how device facts are
    /// shown and judged.
    fn is_gpu(&self) -> bool {
        false
    }

    /// Hash of the kernel sources and compile options this backend runs, recorded in reports
    /// so that results of different kernels are never compared as equals.
    fn kernel_hash(&self) -> Option<String> {
        None
    }

    /// Square matmul size of a sustained load: large enough to keep the device busy, small
    /// enough that one call stays short.
    fn stress_size(&self, purpose: Sustained) -> u64;

    /// What `gpuvet` with no arguments runs here: sizes chosen for this kind of device.
    fn quick_suite(&self) -> Vec<Workload>;

    /// Allocates buffers, uploads `inputs` (as many copies as `opts.buffer_sets`) and does every
    /// piece of one-time setup, once `w` is valid and `imp` can run it here.
    fn prepare<'a>(
        &'a self,
        w: &Workload,
        imp: &str,
        inputs: &[Tensor],
        opts: PrepareOptions,
    ) -> Result<Box<dyn Prepared + 'a>> {
        self.prepare_checked(Request::checked(self, w, imp, inputs, opts)?)
    }

    /// [`Backend::prepare`] after the workload was validated and the implementation checked.
    fn prepare_checked<'a>(&'a self, r: Request<'_>) -> Result<Box<dyn Prepared + 'a>>;

    /// Whether `imp` can run `w` across `members` (`members[0]` is `self`), beyond what each
    /// device's own [`Backend::check`] says: a link the devices lack (a peer mapping between
    /// two GPUs). Called while the plan is built, so that what cannot run is left out (or
    /// refused, when asked for by name) before anything runs. The default finds nothing.
    fn check_group(&self, members: &[&dyn Backend], w: &Workload, imp: &str) -> Result<()> {
        let _ = (members, w, imp);
        Ok(())
    }

    /// Prepares a workload placed on several devices together, or on one device as part of a
    /// group (a collective, a peer copy): `group.members[0]` is `self`. Validates the workload
    /// and checks the implementation once, as [`Backend::prepare`] does.
    fn prepare_group<'a>(
        &'a self,
        group: &Group<'a>,
        w: &Workload,
        imp: &str,
        inputs: &[Tensor],
        opts: PrepareOptions,
    ) -> Result<Box<dyn Prepared + 'a>> {
        self.prepare_group_checked(group, Request::checked(self, w, imp, inputs, opts)?)
    }

    /// [`Backend::prepare_group`] after the checks. The default: this backend runs no group
    /// workload.
    fn prepare_group_checked<'a>(
        &'a self,
        group: &Group<'a>,
        r: Request<'_>,
    ) -> Result<Box<dyn Prepared + 'a>> {
        let _ = group;
        Err(crate::Error::unsupported(format!(
            "{} runs no {} across devices",
            self.kind().name(),
            r.workload.kind()
        )))
    }

    /// How a collective's ranks sit on this backend's devices.
    fn rank_layout(&self) -> RankLayout {
        RankLayout::OnePerDevice
    }

    /// The id rank 0 of a world of processes hands to the others: NCCL's unique id where NCCL
    /// runs the collectives; elsewhere 128 random bytes (the exchange is still exercised).
    fn world_id(&self) -> Result<Vec<u8>> {
        use rand::RngCore;
        let mut id = vec![0u8; 128];
        rand::rng().fill_bytes(&mut id);
        Ok(id)
    }

    /// Device state now (clocks, temperature, power, throttling); `None` where unknown.
    fn telemetry(&self) -> Option<Telemetry> {
        None
    }

    /// The pace a world's fixed schedule assumes for this backend's collectives (see
    /// [`Pace`]); a GPU fabric's unless the backend's exchange is far slower.
    fn collective_pace(&self) -> Pace {
        Pace::FABRIC
    }

    /// Seconds over which [`Telemetry::power_w`] is averaged by the device's sensor: a reading
    /// taken sooner than this into a load still holds the idle time before it, so the runner
    /// counts power only from this far in. The default, a second, is NVML's on Ampere (but
    /// GA100) and newer GPUs, and is safe for a sensor that reads instantly.
    fn power_window_s(&self) -> f64 {
        1.0
    }

    /// The device's state read again now (ECC counters, remapped rows, PCIe link state move
    /// during a run); `None` when the backend cannot re-read it.
    fn current_state(&self) -> Option<DeviceState> {
        None
    }

    /// A short note to print once, e.g. why a fallback was taken.
    fn notice(&self) -> Option<String> {
        None
    }
}

/// The default [`Backend::check`]: `Ok` when `imp` is among the implementations of `w`.
pub fn check_listed<B: Backend + ?Sized>(b: &B, w: &Workload, imp: &str) -> Result<()> {
    let have: Vec<String> = b.implementations(w).into_iter().map(|i| i.name).collect();
    if have.iter().any(|n| n == imp) {
        return Ok(());
    }
    Err(crate::Error::unsupported(format!(
        "{} has no implementation `{imp}` of {} on {}{}",
        b.kind().name(),
        w.name(),
        b.device().name,
        if have.is_empty() {
            String::new()
        } else {
            format!(" (available: {})", have.join(", "))
        }
    )))
}

/// Why a user's CUDA kernel cannot run on a backend of `kind`.
pub fn needs_gpu(kind: BackendKind) -> crate::Error {
    crate::Error::Unsupported(format!(
        "user CUDA kernels need a GPU: `bench kernel` and `--kernel` run on the cuda backend, and this run is on the {} backend (asked for, or --backend auto found no usable NVIDIA GPU)",
        kind.name()
    ))
}

/// Which backend the user asked for.
/// (Its flag values and their help are in [`crate::cli`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// CUDA when a usable NVIDIA GPU is present, otherwise the CPU (with a notice).
    Auto,
    /// The host CPU.
    Cpu,
    /// NVIDIA GPUs through CUDA; an error when none can be used.
    Cuda,
    /// Fake clock, exact outputs: for testing gpuvet itself.
    Mock,
}

impl BackendChoice {
    /// The flag value that selects it (`--backend cpu`), for messages.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Cpu => "cpu",
            BackendChoice::Cuda => "cuda",
            BackendChoice::Mock => "mock",
        }
    }
}

/// Backends opened for a run, and a notice to show when a fallback happened.
pub struct Opened {
    pub backends: Vec<Box<dyn Backend>>,
    pub notice: Option<String>,
}

/// How many mock GPUs `--backend mock` opens: `GPUVET_MOCK_DEVICES` (1 to 64), else 1.
fn mock_devices() -> Result<usize> {
    match std::env::var("GPUVET_MOCK_DEVICES") {
        Err(_) => Ok(1),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n @ 1..=64) => Ok(n),
            _ => Err(crate::Error::invalid(format!(
                "GPUVET_MOCK_DEVICES={v}: expected a number of devices from 1 to 64"
            ))),
        },
    }
}

impl BackendChoice {
    /// True for the backends that stand in for GPUs when testing gpuvet itself (cpu, mock):
    /// commands that judge GPUs accept them only when asked to.
    pub fn is_stand_in(self) -> bool {
        match self {
            BackendChoice::Cpu | BackendChoice::Mock => true,
            BackendChoice::Auto | BackendChoice::Cuda => false,
        }
    }
}

/// Opens the backends of a command about GPUs (stress, validate): `auto` means every NVIDIA GPU
/// and never falls back to the CPU (an error says why none could be opened); an explicit choice
/// opens as [`open`] does.
pub fn open_gpus(choice: BackendChoice, threads: usize) -> Result<Vec<Box<dyn Backend>>> {
    match choice {
        BackendChoice::Auto => cuda::open_all(),
        _ => Ok(open(choice, threads)?.backends),
    }
}

/// Checks the variables that tune the backends (`GPUVET_HANG_TIMEOUT`, `GPUVET_CPU_SGEMM`), so
/// that a typo is an error before anything runs rather than a silent default.
pub fn check_env() -> Result<()> {
    cuda::timing::hang_timeout_from_env()?;
    cpu::sgemm_forced()?;
    Ok(())
}

/// `gpuvet list --kernels [-v]`: gpuvet's own CUDA kernels, from the CUDA backend's kernel
/// table (with `verbose`, what ptxas reports of each).
pub fn list_kernels(verbose: bool) -> Result<String> {
    cuda::list_kernels(verbose)
}

/// Opens the backends for `choice`. `threads` is the CPU thread count (0 = all).
pub fn open(choice: BackendChoice, threads: usize) -> Result<Opened> {
    let cpu = || -> Result<Vec<Box<dyn Backend>>> {
        Ok(vec![
            Box::new(cpu::CpuBackend::new(threads)?) as Box<dyn Backend>
        ])
    };
    match choice {
        BackendChoice::Cpu => Ok(Opened {
            backends: cpu()?,
            notice: None,
        }),
        BackendChoice::Mock => Ok(Opened {
            backends: {
                let n = mock_devices()?;
                (0..n)
                    .map(|i| Box::new(mock::MockBackend::numbered(i, n)) as Box<dyn Backend>)
                    .collect()
            },
            notice: None,
        }),
        BackendChoice::Cuda => {
            let backends = cuda::open_all()?;
            Ok(Opened {
                backends,
                notice: None,
            })
        }
        BackendChoice::Auto => match cuda::open_all() {
            Ok(b) if !b.is_empty() => Ok(Opened {
                backends: b,
                notice: None,
            }),
            Ok(_) => Ok(Opened {
                backends: cpu()?,
                notice: Some("no NVIDIA GPU found; running on the CPU backend".into()),
            }),
            Err(e) => Ok(Opened {
                backends: cpu()?,
                notice: Some(format!("{e}; running on the CPU backend")),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, BackendKind, CachePolicy};

    #[test]
    fn each_backend_reports_the_kind_its_device_records() {
        let cpu = super::cpu::CpuBackend::new(1).unwrap();
        assert_eq!(cpu.kind(), BackendKind::Cpu);
        assert_eq!(super::mock::MockBackend::new().kind(), BackendKind::Mock);
    }

    #[test]
    fn telemetry_reads_as_one_line() {
        use super::{Telemetry, ThrottleReason};
        let t = Telemetry {
            sm_clock_mhz: Some(1980.0),
            memory_clock_mhz: Some(2619.0),
            temperature_c: Some(41.4),
            power_w: Some(118.2),
            power_limit_w: Some(700.0),
            throttle_reasons: vec![ThrottleReason::SwPowerCap],
        };
        assert_eq!(
            t.describe(true),
            "SM 1980 MHz, memory 2619 MHz, 41 °C, 118 W of 700 W, throttle: sw_power_cap"
        );
        let cpu = Telemetry {
            sm_clock_mhz: Some(2100.0),
            ..Telemetry::default()
        };
        assert_eq!(cpu.describe(false), "clock 2100 MHz");
        assert_eq!(Telemetry::default().describe(true), "none read");
    }

    #[test]
    fn cache_policies_keep_their_strings_and_unknown_ones_survive() {
        crate::label::assert_round_trips::<CachePolicy>(&[
            "rotate(8)",
            "warm(16)",
            "flush-l2",
            "hot",
            "single",
            "cold (working set ≥ 2× L2)",
            "warm (1 buffer set smaller than 2× L2)",
            "something newer",
        ]);
        assert_eq!(CachePolicy::from("rotate(8)"), CachePolicy::Rotate(8));
        assert_eq!(
            CachePolicy::from("rotate(x)"),
            CachePolicy::Other("rotate(x)".into())
        );
        // 16 sets of 48 KiB against a 1 MiB cache: under 2× the cache, so warm.
        assert_eq!(
            CachePolicy::rotating(16, 48 << 10, 1 << 20),
            CachePolicy::Warm(16)
        );
        assert_eq!(
            CachePolicy::rotating(2, 1 << 20, 1 << 20),
            CachePolicy::Rotate(2)
        );
        assert_eq!(CachePolicy::rotating(1, 1, 1 << 20), CachePolicy::Single);
    }
}
