//! What one row of the CUDA implementation table is, apart from the table itself: the kind it
//! serves, what its check may ask ([`Target`]) and answer ([`Verdict`]), what its factory is
//! given ([`PrepareCtx`]) and builds ([`Built`]), and the [`Implementation`] the registry
//! serves. The implementation modules (matmul, attention, memory, …) build on these types and
//! the registry (registry.rs) lists those modules, so keeping the types here keeps the imports
//! running one way: registry → implementations → row.

use super::device::{Gpu, Props};
use super::libs::{self, Lib};
use super::nccl;
use super::run::{CudaRun, Exec, SetLayout};
use crate::backend::{CachePolicy, ImplInfo, Prepared};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::{
    AttentionSpec, CollectiveSpec, KernelSpec, MatmulSpec, MemorySpec, P2pSpec, TransferSpec,
    Workload,
};

/// The workload kind an implementation serves; names are unique within a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Matmul,
    Attention,
    Memory,
    Transfer,
    P2p,
    Collective,
    /// A free-form user kernel (`bench kernel --spec`).
    Kernel,
}

impl Kind {
    pub fn of(w: &Workload) -> Kind {
        match w {
            Workload::Matmul(_) => Kind::Matmul,
            Workload::Attention(_) => Kind::Attention,
            Workload::Memory(_) => Kind::Memory,
            Workload::Transfer(_) => Kind::Transfer,
            Workload::P2p(_) => Kind::P2p,
            Workload::Collective(_) => Kind::Collective,
            Workload::Kernel(_) => Kind::Kernel,
        }
    }

    /// As `Workload::kind()` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Matmul => "matmul",
            Kind::Attention => "attention",
            Kind::Memory => "memory",
            Kind::Transfer => "transfer",
            Kind::P2p => "p2p",
            Kind::Collective => "collective",
            Kind::Kernel => "kernel",
        }
    }
}

/// What a check may ask about the device and the libraries this process loaded.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub props: &'a Props,
    /// Why NVRTC cannot compile kernels here, when it cannot.
    pub nvrtc: std::result::Result<(), String>,
    /// Why cuBLASLt cannot be used here, when it cannot.
    pub cublaslt: std::result::Result<(), String>,
    /// Why NCCL cannot be used here, when it cannot.
    pub nccl: std::result::Result<(), String>,
}

impl<'a> Target<'a> {
    /// `props` with the libraries [`libs::probe`] found.
    pub fn of(props: &'a Props) -> Target<'a> {
        let why = |r: &std::result::Result<libs::Loaded, String>| {
            r.as_ref().map(|_| ()).map_err(String::clone)
        };
        let probe = libs::probe();
        Target {
            props,
            nvrtc: why(&probe.nvrtc),
            cublaslt: why(&probe.cublaslt),
            nccl: nccl::nccl().map(|_| ()),
        }
    }

    /// `Ok` when `lib` was loaded, otherwise the line saying what is missing and what to
    /// install.
    pub fn has(&self, lib: Lib) -> Result<()> {
        let loaded = match lib {
            Lib::Nvrtc => &self.nvrtc,
            Lib::CublasLt => &self.cublaslt,
            Lib::Nccl => &self.nccl,
        };
        loaded.clone().map_err(Error::unsupported)
    }
}

/// Why an implementation does not run a workload.
#[derive(Debug)]
pub enum Refusal {
    /// It is no implementation of this workload at all (the driver's memcpy of a read): a
    /// request for it is answered with the names the workload does have.
    NotOffered,
    /// It is one, but cannot run it here, and says why.
    Cannot(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        Refusal::Cannot(e)
    }
}

/// What a check answers: `Ok` when the implementation can run the workload here.
pub type Verdict = std::result::Result<(), Refusal>;

/// What a factory is given: the device, the workload, its inputs, the number of buffer sets
/// and the cache policy to report.
pub struct PrepareCtx<'a, 'w> {
    pub gpu: &'a Gpu,
    pub workload: &'w Workload,
    pub inputs: &'w [Tensor],
    pub sets: usize,
    pub policy: CachePolicy,
}

/// The prepared run a factory builds, or why it could not.
pub type Built<'a> = Result<Box<dyn Prepared + 'a>>;

impl<'a> PrepareCtx<'a, '_> {
    /// The prepared run of `exec`, with the buffer sets of `layout` allocated.
    pub fn run<E: Exec + 'a>(&self, exec: E, layout: SetLayout) -> Built<'a> {
        let run = CudaRun::new(self.gpu, exec, &layout, self.sets, self.policy.clone())?;
        Ok(Box::new(run))
    }
}

/// A row's own check and its factory, typed by the spec of the workload kind it serves.
pub struct Typed<S> {
    /// Why it cannot run `spec` on the target, if it cannot (after what it `needs` and what it
    /// is measured `beside`).
    pub check: fn(&Target, &S) -> Verdict,
    /// Builds the prepared run (once the check has passed).
    pub prepare: for<'a, 'w> fn(&PrepareCtx<'a, 'w>, &S) -> Built<'a>,
    /// Device bytes its run of `spec` with this many buffer sets allocates: what the plan
    /// checks against free memory before anything runs. Its own figure, not its kind's: a
    /// fused attention allocates no score matrix, a split-K matmul its partials.
    pub memory: fn(&Target, &S, usize) -> u64,
}

/// The typed operations of a row; the variant is the workload kind it serves.
pub enum Ops {
    Matmul(Typed<MatmulSpec>),
    Attention(Typed<AttentionSpec>),
    Memory(Typed<MemorySpec>),
    Transfer(Typed<TransferSpec>),
    P2p(Typed<P2pSpec>),
    Collective(Typed<CollectiveSpec>),
    Kernel(Typed<KernelSpec>),
}

/// Why an implementation cannot run a workload of its kind on a target.
pub type Check = Box<dyn Fn(&Target, &Workload) -> Verdict + Send + Sync>;

/// Builds the prepared run of an implementation (typically `ctx.run(exec, layout)`).
pub type Factory = Box<dyn for<'a, 'w> Fn(&PrepareCtx<'a, 'w>) -> Built<'a> + Send + Sync>;

/// Device bytes an implementation's run of a workload allocates with this many buffer sets.
pub type Memory = Box<dyn Fn(&Target, &Workload, usize) -> u64 + Send + Sync>;

/// One implementation as the registry serves it: a built-in row or a registration.
pub struct Implementation {
    pub kind: Kind,
    pub info: ImplInfo,
    pub check: Check,
    pub factory: Factory,
    pub memory: Memory,
}

/// Device bytes of `sets` buffer sets of `w` alone (at least one): the workload's own bytes
/// once per set, with no scratch.
pub fn set_bytes(w: &Workload, sets: usize) -> u64 {
    w.footprint().saturating_mul(sets.max(1) as u64)
}

/// A registered implementation's default memory: its buffer sets ([`set_bytes`]).
pub fn buffers_only() -> Memory {
    Box::new(|_, w, sets| set_bytes(w, sets))
}

/// A registered implementation's default check: it needs NVRTC to compile its kernel.
pub fn needs_nvrtc() -> Check {
    Box::new(|t, _| Ok(t.has(Lib::Nvrtc)?))
}
