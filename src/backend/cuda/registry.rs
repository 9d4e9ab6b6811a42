//! Every implementation of the CUDA backend, built in or added at run time, served through one
//! path: `CudaBackend::implementations`, `check` and `prepare` ask the [`Registry`] and branch
//! on no name.
//!
//! A built-in implementation is one row of [`BUILTIN`]: the workload kind it serves, its name,
//! a description, whether it is a vendor-library reference, the libraries it needs, the
//! reference an own kernel is measured beside, its own check (why it cannot run a workload on
//! a device: the dtype, the compute capability, the head dimension, ...) and a factory that
//! builds its prepared run (`run::CudaRun<E: Exec>`). A
//! later `bench kernel` adds a user's kernel (a [`Source::User`](super::kernels::Source) module
//! with an [`Exec`](super::run::Exec)) with [`Registry::register`]; it is then listed after the
//! built-in ones, checked, prepared, measured and verified like them.

use super::libs::Lib;
use super::memory::MemImpl;
use super::own_attention::Limits;
pub use super::row::{
    buffers_only, needs_nvrtc, set_bytes, Built, Check, Factory, Implementation, Kind, Ops,
    PrepareCtx, Refusal, Target, Typed, Verdict,
};
use super::{
    attention, flash_sm90, matmul, memory, own_attention, own_matmul, transfer, user, user_run,
    wgmma,
};
use crate::backend::ImplInfo;
use crate::error::{Error, Result};
use crate::workload::collective::COLLECTIVE_DTYPES;
use crate::workload::{CollectiveSpec, Workload, WorkloadKind};
use own_attention::Kind as Flash;
use own_matmul::Family;

/// One built-in implementation: a row of [`BUILTIN`].
pub struct Builtin {
    pub name: &'static str,
    pub description: &'static str,
    /// True for vendor-library references (the ceiling own kernels are compared with).
    pub reference: bool,
    /// The libraries it cannot run without.
    pub needs: &'static [Lib],
    /// The reference of the same kind an own kernel is measured beside: the kernel is offered
    /// only where that reference can run too, so its result always has its ceiling next to it.
    pub beside: Option<&'static str>,
    pub ops: Ops,
}

/// A vendor-library reference (`ImplInfo::reference`).
const REFERENCE: bool = true;
/// One of gpuvet's own kernels.
const OWN: bool = false;

/// Writes the rows of [`BUILTIN`]:
/// `Kind name, REFERENCE|OWN, beside, [libraries], |target, spec| own check, factory,
/// |target, spec, sets| device bytes, description;`
/// where the check may return any `Result` whose error is an [`Error`] or a [`Refusal`].
macro_rules! builtin_table {
    ($($kind:ident $name:expr, $role:expr, $beside:expr, [$($lib:ident),*],
       |$t:pat_param, $s:pat_param| $check:expr, $prepare:expr, $memory:expr, $desc:literal;)*) => {
        /// Every built-in implementation, in listing order: within a kind, best first (the
        /// vendor reference, then the own kernels).
        pub const BUILTIN: &[Builtin] = &[$(Builtin {
            name: $name,
            description: $desc,
            reference: $role,
            needs: &[$(Lib::$lib),*],
            beside: $beside,
            ops: Ops::$kind(Typed {
                check: |$t, $s| {
                    let _ = $check?;
                    Ok(())
                },
                prepare: $prepare,
                memory: $memory,
            }),
        },)*];
    };
}

builtin_table! {
    Matmul "cublaslt", REFERENCE, None, [CublasLt], |t, m| matmul::plan(m, t.props.cc),
        matmul::prepare, |_, m, sets| matmul::memory_needed(m, sets),
        "cuBLASLt matmul, heuristic algorithm";
    Matmul wgmma::WGMMA, OWN, Some("cublaslt"), [Nvrtc],
        |t, m| wgmma::plan(m, t.props.cc, t.props.sms, t.props.sm.smem_per_block_optin),
        wgmma::prepare, |t, m, sets| wgmma::memory_planned(m, t.props, sets),
        "gpuvet Hopper kernel: wgmma from shared memory, TMA 128B swizzle, mbarrier ring, producer + 2 consumer warpgroups, persistent grid";
    Matmul Family::Simt.name(), OWN, Some("cublaslt"), [Nvrtc],
        |t, m| own_matmul::plan(m, Family::Simt, t.props.cc, t.props.sms),
        |c, m| own_matmul::prepare(c, m, Family::Simt),
        |t, m, sets| own_matmul::memory_needed(m, sets, t.props.sms),
        "gpuvet fp32 kernel on CUDA cores: 128×128×8 tiles, 8×8 per thread, float4 loads";
    Matmul Family::Mma.name(), OWN, Some("cublaslt"), [Nvrtc],
        |t, m| own_matmul::plan(m, Family::Mma, t.props.cc, t.props.sms),
        |c, m| own_matmul::prepare(c, m, Family::Mma),
        |t, m, sets| own_matmul::memory_needed(m, sets, t.props.sms),
        "gpuvet mma.sync kernel: cp.async ring, swizzled smem, ldmatrix, 32-bit accumulate";
    Attention "unfused", REFERENCE, None, [CublasLt, Nvrtc], |t, a| attention::plan(a, t.props.cc),
        attention::prepare, |_, a, sets| attention::memory_needed(a, sets),
        "cuBLASLt Q·Kᵀ, softmax kernel, cuBLASLt P·V (S materialised)";
    Attention flash_sm90::IMPL, OWN, Some("unfused"), [Nvrtc],
        |t, a| flash_sm90::plan(a, &Limits::of(t.props)),
        flash_sm90::prepare, |_, a, sets| flash_sm90::memory_needed(a, sets),
        "gpuvet FA3-style attention for Hopper: TMA, warp-specialised producer + 2 consumer warpgroups, wgmma, softmax overlapped with the GEMMs";
    Attention Flash::Prefill.name(), OWN, Some("unfused"), [Nvrtc],
        |t, a| own_attention::plan(a, Flash::Prefill, &Limits::of(t.props)),
        |c, a| own_attention::prepare(c, a, Flash::Prefill),
        |t, a, sets| own_attention::memory_planned(a, Flash::Prefill, t.props, sets),
        "gpuvet fused attention (FlashAttention-2 style): mma.sync, cp.async double buffer, online softmax, S never in memory";
    Attention Flash::Decode.name(), OWN, Some("unfused"), [Nvrtc],
        |t, a| own_attention::plan(a, Flash::Decode, &Limits::of(t.props)),
        |c, a| own_attention::prepare(c, a, Flash::Decode),
        |t, a, sets| own_attention::memory_planned(a, Flash::Decode, t.props, sets),
        "gpuvet split-KV decode (flash-decoding): GQA rows packed into mma tiles, KV split across blocks, combine kernel";
    Attention Flash::DecodePaged(16).name(), OWN, Some("unfused"), [Nvrtc],
        |t, a| own_attention::plan(a, Flash::DecodePaged(16), &Limits::of(t.props)),
        |c, a| own_attention::prepare(c, a, Flash::DecodePaged(16)),
        |t, a, sets| own_attention::memory_planned(a, Flash::DecodePaged(16), t.props, sets),
        "gpuvet split-KV decode from a paged KV cache, 16 tokens per page (block table, pages in random order)";
    Attention Flash::DecodePaged(64).name(), OWN, Some("unfused"), [Nvrtc],
        |t, a| own_attention::plan(a, Flash::DecodePaged(64), &Limits::of(t.props)),
        |c, a| own_attention::prepare(c, a, Flash::DecodePaged(64)),
        |t, a, sets| own_attention::memory_planned(a, Flash::DecodePaged(64), t.props, sets),
        "gpuvet split-KV decode from a paged KV cache, 64 tokens per page (block table, pages in random order)";
    Memory "kernel", OWN, None, [Nvrtc], |_, _| Verdict::Ok(()),
        |c, m| memory::prepare(c, m, MemImpl::Kernel(memory::kernel_of(m.op))),
        |t, m, sets| memory::memory_needed(m, sets, t.props),
        "gpuvet float4 grid-stride kernel";
    Memory "memcpy", REFERENCE, None, [], |_, m| memory::memcpy_offered(m),
        |c, m| memory::prepare(c, m, MemImpl::Memcpy),
        |t, m, sets| memory::memory_needed(m, sets, t.props),
        "driver cuMemcpyDtoDAsync";
    Transfer transfer::MEMCPY, REFERENCE, None, [], |_, _| Verdict::Ok(()),
        |c, t| transfer::prepare(c, t, transfer::MEMCPY),
        |_, t, sets| transfer::memory_needed(t, sets),
        "copy engine: cuMemcpyHtoDAsync / cuMemcpyDtoHAsync";
    Transfer transfer::KERNEL, OWN, None, [Nvrtc], |_, t| transfer::kernel_offered(t),
        |c, t| transfer::prepare(c, t, transfer::KERNEL),
        |_, t, sets| transfer::memory_needed(t, sets),
        "SM copy kernel through mapped pinned host memory";
    P2p transfer::MEMCPY, REFERENCE, None, [], |_, _| Verdict::Ok(()),
        |c, p| across_devices(c, &p.name()),
        // Each device of the pair: its own buffer and the peer's it is mapped to.
        |_, p, _| 2 * p.bytes(),
        "copy engine: cuMemcpyPeerAsync";
    P2p transfer::KERNEL, OWN, None, [Nvrtc], |_, _| Verdict::Ok(()),
        |c, p| across_devices(c, &p.name()),
        // Each device of the pair: its own buffer and the peer's it is mapped to.
        |_, p, _| 2 * p.bytes(),
        "SM copy kernel over the peer mapping";
    Collective "nccl", REFERENCE, None, [Nccl], |_, c| nccl_offered(c),
        |ctx, c| across_devices(ctx, &c.name()),
        // One rank per device: its own send and receive buffers.
        |_, c, _| (c.send_elements() + c.recv_elements()) * c.dtype.size(),
        "NCCL, one communicator per device";
    Kernel USER, OWN, None, [Nvrtc], |t, k| user::check_spec(t, k),
        user_run::prepare_spec, |_, k, sets| k.buffer_bytes().saturating_mul(sets.max(1) as u64),
        "the user's kernel from its spec, compiled by NVRTC for this GPU";
}

/// The factory of the rows whose runs span devices (peer copies, collectives): the group seam
/// (`CudaBackend::prepare_group`) builds those, with every member device in hand.
fn across_devices<'a>(_: &PrepareCtx<'a, '_>, name: &str) -> Built<'a> {
    Err(Error::unsupported(format!(
        "{name} runs across devices (the group seam), not on one"
    )))
}

/// A collective runs in the dtypes NCCL reduces that gpuvet verifies.
fn nccl_offered(c: &CollectiveSpec) -> Result<()> {
    if COLLECTIVE_DTYPES.contains(&c.dtype) {
        Ok(())
    } else {
        Err(Error::unsupported(format!(
            "collectives run in bf16, f16 or f32, not {}",
            c.dtype
        )))
    }
}

/// The one implementation of a free-form user kernel (`bench kernel --spec`).
pub const USER: &str = crate::workload::kernel::FREE_FORM_IMPL;

/// `$call` on a row's typed ops and a workload of the same kind (each arm binds `$o` and `$x`
/// with that kind's types), `$other` for a workload of another kind.
macro_rules! same_kind {
    ($ops:expr, $w:expr, |$o:ident, $x:ident| $call:expr, $other:expr) => {
        match ($ops, $w) {
            (Ops::Matmul($o), Workload::Matmul($x)) => $call,
            (Ops::Attention($o), Workload::Attention($x)) => $call,
            (Ops::Memory($o), Workload::Memory($x)) => $call,
            (Ops::Transfer($o), Workload::Transfer($x)) => $call,
            (Ops::P2p($o), Workload::P2p($x)) => $call,
            (Ops::Collective($o), Workload::Collective($x)) => $call,
            (Ops::Kernel($o), Workload::Kernel($x)) => $call,
            _ => $other,
        }
    };
}

impl Builtin {
    pub fn kind(&self) -> Kind {
        match self.ops {
            Ops::Matmul(_) => Kind::Matmul,
            Ops::Attention(_) => Kind::Attention,
            Ops::Memory(_) => Kind::Memory,
            Ops::Transfer(_) => Kind::Transfer,
            Ops::P2p(_) => Kind::P2p,
            Ops::Collective(_) => Kind::Collective,
            Ops::Kernel(_) => Kind::Kernel,
        }
    }

    /// What the row needs, the reference it is measured beside, then its own check on `w`;
    /// `NotOffered` for a workload of another kind.
    fn check(&self, t: &Target, w: &Workload) -> Verdict {
        if let Some(r) = self.beside {
            let reference = BUILTIN
                .iter()
                .find(|b| b.kind() == self.kind() && b.name == r);
            reference.map_or(Ok(()), |b| b.check(t, w))?;
        }
        for &lib in self.needs {
            t.has(lib)?;
        }
        same_kind!(
            &self.ops,
            w,
            |o, x| (o.check)(t, x),
            Err(Refusal::NotOffered)
        )
    }

    /// The row's typed factory on the context's workload.
    fn prepare<'a>(&self, ctx: &PrepareCtx<'a, '_>) -> Built<'a> {
        same_kind!(
            &self.ops,
            ctx.workload,
            |o, x| (o.prepare)(ctx, x),
            Err(Error::invalid(format!(
                "`{}` implements {}, not {}",
                self.name,
                self.kind().name(),
                ctx.workload.name()
            )))
        )
    }

    /// The row's device bytes for `w` (a workload of its kind: the registry asks no other).
    fn memory(&self, t: &Target, w: &Workload, sets: usize) -> u64 {
        same_kind!(
            &self.ops,
            w,
            |o, x| (o.memory)(t, x, sets),
            set_bytes(w, sets)
        )
    }

    /// The row as the registry serves it.
    fn implementation(&'static self) -> Implementation {
        Implementation {
            kind: self.kind(),
            info: ImplInfo::new(self.name, self.description, self.reference),
            check: Box::new(|t, w| self.check(t, w)),
            factory: Box::new(|ctx| self.prepare(ctx)),
            memory: Box::new(|t, w, sets| self.memory(t, w, sets)),
        }
    }
}

/// The implementations of one backend: the built-in table, then the registered ones.
pub struct Registry {
    entries: Vec<Implementation>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            entries: BUILTIN.iter().map(Builtin::implementation).collect(),
        }
    }
}

impl Registry {
    /// The implementation `name` of `kind`.
    fn find(&self, kind: Kind, name: &str) -> Option<&Implementation> {
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.info.name == name)
    }

    /// Adds an implementation, listed after every one before it. A name its kind already has
    /// (built in or registered) is refused: a registration never shadows another.
    pub fn register(&mut self, imp: Implementation) -> Result<()> {
        if self.find(imp.kind, &imp.info.name).is_some() {
            return Err(Error::invalid(format!(
                "an implementation `{}` of {} already exists",
                imp.info.name,
                imp.kind.name()
            )));
        }
        self.entries.push(imp);
        Ok(())
    }

    /// The implementations that can run `w` on the target, best first, built-in before
    /// registered.
    pub fn implementations(&self, t: &Target, w: &Workload) -> Vec<ImplInfo> {
        let kind = Kind::of(w);
        self.entries
            .iter()
            .filter(|e| e.kind == kind && (e.check)(t, w).is_ok())
            .map(|e| e.info.clone())
            .collect()
    }

    /// `Ok` when `name` can run `w` on the target; otherwise why not: the implementation's own
    /// reason, or for a name `w` does not have, the names it has.
    pub fn check(&self, t: &Target, w: &Workload, name: &str) -> Result<()> {
        let verdict = match self.find(Kind::of(w), name) {
            Some(e) => (e.check)(t, w),
            None => Err(Refusal::NotOffered),
        };
        match verdict {
            Ok(()) => Ok(()),
            Err(Refusal::Cannot(e)) => Err(e),
            Err(Refusal::NotOffered) => {
                let have: Vec<String> = self
                    .implementations(t, w)
                    .into_iter()
                    .map(|i| i.name)
                    .collect();
                let have = if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                };
                Err(Error::unsupported(format!(
                    "cuda has no implementation `{name}` of {} on {} (available: {have})",
                    w.name(),
                    t.props.name,
                )))
            }
        }
    }

    /// Why no implementation here runs `w`: the reasons its kind's implementations give (a
    /// missing library once, however many rows need it), or `None` when one of them runs it or
    /// none of them is an implementation of `w` at all.
    pub fn why_none(&self, t: &Target, w: &Workload) -> Option<String> {
        let kind = Kind::of(w);
        let mut reasons: Vec<String> = Vec::new();
        for e in self.entries.iter().filter(|e| e.kind == kind) {
            match (e.check)(t, w) {
                Ok(()) => return None,
                Err(Refusal::Cannot(why)) => {
                    let why = why.reason();
                    if !reasons.contains(&why) {
                        reasons.push(why);
                    }
                }
                Err(Refusal::NotOffered) => {}
            }
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Device bytes the run of `name` on `w` allocates with `sets` buffer sets; for a name `w`
    /// does not have (refused by `check` first), its buffer sets.
    pub fn memory_needed(&self, t: &Target, w: &Workload, name: &str, sets: usize) -> u64 {
        match self.find(Kind::of(w), name) {
            Some(e) => (e.memory)(t, w, sets),
            None => set_bytes(w, sets),
        }
    }

    /// Builds the prepared run of `name` (checked before) for `ctx.workload`.
    pub fn prepare<'a>(&self, ctx: &PrepareCtx<'a, '_>, name: &str) -> Built<'a> {
        let e = self.find(Kind::of(ctx.workload), name).ok_or_else(|| {
            Error::unsupported(format!(
                "cuda has no implementation `{name}` of {}",
                ctx.workload.name()
            ))
        })?;
        (e.factory)(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::device::{Props, SmLimits};
    use super::*;
    use crate::dtype::DType;
    use crate::workload::{AttentionSpec, MatmulSpec, MemorySpec, P2pSpec, TransferSpec};
    use crate::workload::{BLayout, CollectiveOp, Direction, HostMemory, MemOp, P2pOp};

    /// A device of compute capability `cc` with an H200's SMs and shared memory.
    fn props(cc: (i32, i32)) -> Props {
        Props {
            ordinal: 0,
            name: "NVIDIA H200".into(),
            uuid: "GPU-0".into(),
            pci_bus_id: "0000:00:00.0".into(),
            cc,
            sms: 132,
            total_mem: 141 << 30,
            l2_bytes: 60 << 20,
            sm: SmLimits {
                max_threads: 2048,
                smem: 233_472,
                smem_per_block: 49_152,
                smem_per_block_optin: 232_448,
            },
            driver: Default::default(),
        }
    }

    /// `p` with NVRTC and cuBLASLt both loaded.
    fn full(p: &Props) -> Target<'_> {
        Target {
            props: p,
            nvrtc: Ok(()),
            cublaslt: Ok(()),
            nccl: Ok(()),
        }
    }

    fn matmul(dtype: DType) -> Workload {
        Workload::Matmul(MatmulSpec {
            m: 64,
            n: 64,
            k: 64,
            dtype,
            b_layout: BLayout::Nk,
        })
    }

    fn attention(q_len: u64, head_dim: u64, dtype: DType) -> Workload {
        Workload::Attention(AttentionSpec {
            batch: 2,
            q_heads: 32,
            kv_heads: 8,
            q_len,
            kv_len: 4096,
            head_dim,
            causal: true,
            dtype,
        })
    }

    fn memory(op: MemOp) -> Workload {
        Workload::Memory(MemorySpec { op, bytes: 1 << 20 })
    }

    fn transfer(memory: HostMemory) -> Workload {
        Workload::Transfer(TransferSpec::new(Direction::H2d, memory, 1 << 20))
    }

    fn p2p() -> Workload {
        Workload::P2p(P2pSpec::new(P2pOp::Write, false, 1 << 20))
    }

    fn collective(dtype: DType) -> Workload {
        Workload::Collective(CollectiveSpec::new(
            CollectiveOp::AllReduce,
            dtype,
            1 << 20,
            2,
        ))
    }

    fn names(r: &Registry, t: &Target, w: &Workload) -> Vec<String> {
        r.implementations(t, w)
            .into_iter()
            .map(|i| i.name)
            .collect()
    }

    /// The own (not reference) implementations listed.
    fn own(r: &Registry, t: &Target, w: &Workload) -> Vec<String> {
        let v = r.implementations(t, w).into_iter();
        v.filter(|i| !i.reference).map(|i| i.name).collect()
    }

    fn refusal(r: &Registry, t: &Target, w: &Workload, name: &str) -> String {
        r.check(t, w, name).unwrap_err().to_string()
    }

    /// A user implementation whose factory refuses (nothing here has a GPU to prepare on).
    fn user(kind: Kind, name: &str) -> Implementation {
        Implementation {
            kind,
            info: ImplInfo::new(name, "a user kernel", false),
            check: needs_nvrtc(),
            factory: Box::new(|_| Err(Error::unsupported("test factory"))),
            memory: buffers_only(),
        }
    }

    #[test]
    fn every_row_is_listed_and_accepted_for_some_workload() {
        let p = props((9, 0));
        let t = full(&p);
        let r = Registry::default();
        let workloads = [
            matmul(DType::F32),
            matmul(DType::Bf16),
            attention(4096, 128, DType::Bf16),
            attention(1, 128, DType::Bf16),
            memory(MemOp::Copy),
            transfer(HostMemory::Pinned),
            p2p(),
            collective(DType::Bf16),
        ];
        let mut listed: Vec<(Kind, String)> = Vec::new();
        for w in &workloads {
            for n in names(&r, &t, w) {
                r.check(&t, w, &n).unwrap();
                listed.push((Kind::of(w), n));
            }
        }
        // The free-form user kernel's row compiles a spec's kernel (NVRTC, a file): covered
        // by tests/user_kernels.rs and tests/cuda_gpu.rs.
        for b in BUILTIN.iter().filter(|b| b.kind() != Kind::Kernel) {
            let row = (b.kind(), b.name.to_string());
            assert!(listed.contains(&row), "{row:?} is never listed");
        }
    }

    /// Each row charges what its own run allocates: at a 32k-token prefill the unfused
    /// attention's score matrix outgrows an H200 while the fused kernels need the tensors
    /// alone; the split-K decode matmul adds its partials; a name the kind does not have is
    /// charged its buffer sets.
    #[test]
    fn each_row_charges_its_own_memory() {
        let p = props((9, 0));
        let t = full(&p);
        let r = Registry::default();
        let long = Workload::Attention(AttentionSpec {
            batch: 1,
            q_heads: 32,
            kv_heads: 8,
            q_len: 32768,
            kv_len: 32768,
            head_dim: 128,
            causal: true,
            dtype: DType::Bf16,
        });
        let need = |w: &Workload, name: &str| r.memory_needed(&t, w, name, 1);
        let tensors = long.footprint();
        assert!(need(&long, "unfused") > p.total_mem, "the S and P scratch");
        for fused in ["flash", "flash-sm90"] {
            r.check(&t, &long, fused).unwrap();
            let n = need(&long, fused);
            assert!((tensors..tensors + (64 << 20)).contains(&n), "{fused}: {n}");
        }
        let decode = Workload::Matmul(MatmulSpec::new(8, 8192, 8192, DType::Bf16));
        let Workload::Matmul(d) = &decode else {
            unreachable!()
        };
        let partials = own_matmul::partials_bytes(d, p.sms);
        assert!(partials > 0, "a decode shape splits K");
        assert_eq!(need(&decode, "mma"), own_matmul::memory_needed(d, 1, p.sms));
        assert!(need(&decode, "mma") >= decode.footprint() + partials);
        assert_eq!(need(&decode, "nosuch"), decode.footprint());
        // Every row of every kind charges at least the buffers of its sets.
        for w in [
            matmul(DType::Bf16),
            attention(1, 128, DType::F16),
            long.clone(),
        ] {
            for imp in r.implementations(&t, &w) {
                assert!(need(&w, &imp.name) >= w.footprint(), "{}", imp.name);
                let two = r.memory_needed(&t, &w, &imp.name, 2);
                assert!(two >= need(&w, &imp.name), "{}", imp.name);
            }
        }
    }

    #[test]
    fn names_are_unique_within_a_kind() {
        for (i, a) in BUILTIN.iter().enumerate() {
            for b in &BUILTIN[i + 1..] {
                assert!(a.kind() != b.kind() || a.name != b.name, "{} twice", a.name);
            }
        }
        for w in [
            matmul(DType::F32),
            attention(1, 64, DType::F16),
            memory(MemOp::Read),
            transfer(HostMemory::Pageable),
            p2p(),
            collective(DType::F16),
        ] {
            assert_eq!(Kind::of(&w).name(), w.kind());
        }
    }

    #[test]
    fn each_kind_lists_its_reference_first_then_its_own_kernels() {
        let p = props((9, 0));
        let (t, r) = (full(&p), Registry::default());
        assert_eq!(names(&r, &t, &matmul(DType::F32)), ["cublaslt", "simt"]);
        assert_eq!(
            names(&r, &t, &matmul(DType::Bf16)),
            ["cublaslt", "wgmma", "mma"]
        );
        assert_eq!(
            names(&r, &t, &attention(4096, 128, DType::Bf16)),
            ["unfused", "flash-sm90", "flash"]
        );
        let decode = [
            "unfused",
            "flash-decode",
            "flash-decode-paged16",
            "flash-decode-paged64",
        ];
        assert_eq!(names(&r, &t, &attention(1, 128, DType::Bf16)), decode);
        assert_eq!(names(&r, &t, &memory(MemOp::Copy)), ["kernel", "memcpy"]);
        assert_eq!(names(&r, &t, &memory(MemOp::Triad)), ["kernel"]);
        let copies = ["memcpy", "kernel"];
        assert_eq!(names(&r, &t, &transfer(HostMemory::Pinned)), copies);
        // Pageable memory is not mapped into the device: the copy engine only.
        assert_eq!(names(&r, &t, &transfer(HostMemory::Pageable)), ["memcpy"]);
        assert_eq!(names(&r, &t, &p2p()), copies);
        assert_eq!(names(&r, &t, &collective(DType::F32)), ["nccl"]);
        assert!(names(&r, &t, &collective(DType::Int8)).is_empty());
        let no_nccl = Target {
            nccl: Err("NCCL not found".into()),
            ..full(&p)
        };
        let e = refusal(&r, &no_nccl, &collective(DType::Bf16), "nccl");
        assert!(e.contains("NCCL not found"), "{e}");
        let refs: Vec<&str> = BUILTIN
            .iter()
            .filter(|b| b.reference)
            .map(|b| b.name)
            .collect();
        assert_eq!(
            refs,
            ["cublaslt", "unfused", "memcpy", "memcpy", "memcpy", "nccl"]
        );
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_names_there_are() {
        let p = props((9, 0));
        let (t, r) = (full(&p), Registry::default());
        let e = refusal(&r, &t, &matmul(DType::F32), "gemm");
        assert!(e.contains("no implementation `gemm` of matmul"), "{e}");
        assert!(
            e.contains("on NVIDIA H200 (available: cublaslt, simt)"),
            "{e}"
        );
        // the driver's memcpy copies; it is no implementation of a read
        let e = refusal(&r, &t, &memory(MemOp::Read), "memcpy");
        assert!(e.contains("available: kernel)"), "{e}");
        let e = refusal(&r, &t, &matmul(DType::Fp8E5m2), "mma");
        assert!(e.contains("e5m2"), "{e}");
        let e = refusal(&r, &t, &matmul(DType::Fp8E5m2), "gemm");
        assert!(e.contains("(available: none)"), "{e}");
        // a known name that cannot run says why, not what else there is
        let e = refusal(&r, &t, &matmul(DType::Bf16), "simt");
        assert!(e.contains("f32 only"), "{e}");
    }

    #[test]
    fn own_matmul_kernels_per_dtype_and_gpu() {
        let r = Registry::default();
        let own = |d: DType, cc| {
            let p = props(cc);
            own(&r, &full(&p), &matmul(d))
        };
        assert_eq!(own(DType::F32, (9, 0)), ["simt"]);
        // On sm_90a the Hopper kernel comes first: `--impl default` takes it there.
        assert_eq!(own(DType::Bf16, (9, 0)), ["wgmma", "mma"]);
        assert_eq!(own(DType::Fp8E4m3, (9, 0)), ["wgmma", "mma"]);
        assert_eq!(own(DType::Int8, (9, 0)), ["mma"]);
        assert_eq!(own(DType::Bf16, (8, 9)), ["mma"]);
        assert_eq!(own(DType::Bf16, (10, 0)), ["mma"]);
        assert_eq!(own(DType::F16, (8, 0)), ["mma"]);
        assert!(own(DType::F16, (7, 5)).is_empty());
        assert_eq!(own(DType::Int8, (8, 0)), ["mma"]);
        assert_eq!(own(DType::Fp8E4m3, (8, 9)), ["mma"]);
        assert!(own(DType::Fp8E4m3, (8, 0)).is_empty());
        assert_eq!(own(DType::Tf32, (9, 0)), ["mma"]);
        assert!(own(DType::Fp8E5m2, (9, 0)).is_empty());
    }

    #[test]
    fn each_query_length_lists_its_attention_kernels() {
        let p = props((9, 0));
        let (t, r) = (full(&p), Registry::default());
        let decode = [
            "flash-decode",
            "flash-decode-paged16",
            "flash-decode-paged64",
        ];
        assert_eq!(own(&r, &t, &attention(1, 128, DType::Bf16)), decode);
        assert_eq!(own(&r, &t, &attention(8, 128, DType::Bf16)), decode);
        let prefill = ["flash-sm90", "flash"];
        assert_eq!(own(&r, &t, &attention(9, 128, DType::Bf16)), prefill);
        assert!(own(&r, &t, &attention(4096, 256, DType::Bf16)).is_empty());
        assert!(own(&r, &t, &attention(4096, 128, DType::F32)).is_empty());
        // Each row runs the kernel of its name: on the other phase it refuses by that name.
        for b in BUILTIN
            .iter()
            .filter(|b| b.kind() == Kind::Attention && !b.reference)
        {
            let q_len = if b.name.starts_with("flash-decode") {
                64
            } else {
                4
            };
            let e = refusal(&r, &t, &attention(q_len, 128, DType::F16), b.name);
            assert!(e.contains(&format!("`{}`", b.name)), "{}: {e}", b.name);
        }
    }

    #[test]
    fn the_hopper_kernels_are_the_default_on_sm_90a_and_say_why_not_elsewhere() {
        let r = Registry::default();
        let first_own = |cc, w: &Workload| {
            let p = props(cc);
            own(&r, &full(&p), w).into_iter().next()
        };
        let big = Workload::Matmul(MatmulSpec {
            m: 4096,
            n: 4096,
            k: 4096,
            dtype: DType::Bf16,
            b_layout: BLayout::Kn,
        });
        let prefill = attention(4096, 128, DType::Bf16);
        assert_eq!(first_own((9, 0), &big).as_deref(), Some("wgmma"));
        assert_eq!(first_own((9, 0), &prefill).as_deref(), Some("flash-sm90"));
        // decode attention has no Hopper kernel; a decode GEMM under `wgmma` is handed to
        // the split-K mma path (its note says so)
        let decode = attention(1, 128, DType::Bf16);
        assert_eq!(first_own((9, 0), &decode).as_deref(), Some("flash-decode"));
        for cc in [(8, 0), (8, 9), (10, 0), (12, 0)] {
            assert_eq!(first_own(cc, &big).as_deref(), Some("mma"), "{cc:?}");
            assert_eq!(first_own(cc, &prefill).as_deref(), Some("flash"), "{cc:?}");
            let p = props(cc);
            for (w, name) in [(&big, "wgmma"), (&prefill, "flash-sm90")] {
                let e = refusal(&r, &full(&p), w, name);
                assert!(e.contains("sm_90a"), "{name} on {cc:?}: {e}");
            }
        }
        // what else each refuses, with the reason
        let p = props((9, 0));
        let t = full(&p);
        for (w, name, why) in [
            (matmul(DType::Tf32), "wgmma", "bf16, f16 and fp8_e4m3"),
            (matmul(DType::Int8), "wgmma", "bf16, f16 and fp8_e4m3"),
            (attention(4096, 96, DType::Bf16), "flash-sm90", "head dims"),
            (
                attention(4096, 128, DType::F32),
                "flash-sm90",
                "bf16 and f16",
            ),
            (attention(8, 128, DType::F16), "flash-sm90", "flash-decode"),
        ] {
            let e = refusal(&r, &t, &w, name);
            assert!(e.contains(why), "{name} on {}: {e}", w.name());
        }
        let small = Props {
            sm: SmLimits {
                smem_per_block_optin: 101_376,
                ..p.sm
            },
            ..props((9, 0))
        };
        let e = refusal(&r, &full(&small), &big, "wgmma");
        assert!(e.contains("shared memory"), "{e}");
    }

    #[test]
    fn missing_libraries_leave_what_does_not_need_them() {
        let p = props((9, 0));
        let r = Registry::default();
        let no_lt = Target {
            cublaslt: Err("cuBLASLt not found".into()),
            ..full(&p)
        };
        // Own kernels are offered only beside the reference they are measured against.
        assert!(names(&r, &no_lt, &matmul(DType::F32)).is_empty());
        let e = refusal(&r, &no_lt, &matmul(DType::F32), "simt");
        assert!(e.contains("cuBLASLt not found"), "{e}");
        assert_eq!(
            names(&r, &no_lt, &memory(MemOp::Copy)),
            ["kernel", "memcpy"]
        );
        let no_nvrtc = Target {
            nvrtc: Err("NVRTC not found".into()),
            ..full(&p)
        };
        assert_eq!(names(&r, &no_nvrtc, &matmul(DType::Bf16)), ["cublaslt"]);
        assert!(refusal(&r, &no_nvrtc, &matmul(DType::Bf16), "mma").contains("NVRTC"));
        assert!(names(&r, &no_nvrtc, &attention(1, 128, DType::Bf16)).is_empty());
        assert_eq!(names(&r, &no_nvrtc, &memory(MemOp::Copy)), ["memcpy"]);
        let e = refusal(&r, &no_nvrtc, &memory(MemOp::Copy), "kernel");
        assert!(e.contains("NVRTC not found"), "{e}");
    }

    #[test]
    fn registrations_come_after_the_builtins_and_never_shadow_a_name() {
        let p = props((9, 0));
        let t = full(&p);
        let mut r = Registry::default();
        for b in BUILTIN {
            let e = r.register(user(b.kind(), b.name)).unwrap_err();
            assert!(e.to_string().contains("already exists"), "{e}");
        }
        r.register(user(Kind::Matmul, "my-gemm")).unwrap();
        assert_eq!(
            names(&r, &t, &matmul(DType::Bf16)),
            ["cublaslt", "wgmma", "mma", "my-gemm"]
        );
        r.check(&t, &matmul(DType::Bf16), "my-gemm").unwrap();
        assert!(r.register(user(Kind::Matmul, "my-gemm")).is_err());
        // the same name on another workload kind is another implementation
        r.register(user(Kind::Attention, "my-gemm")).unwrap();
        assert_eq!(names(&r, &t, &memory(MemOp::Copy)), ["kernel", "memcpy"]);
        // a registered kernel needs NVRTC, and says so
        let no_nvrtc = Target {
            nvrtc: Err("NVRTC not found".into()),
            ..full(&p)
        };
        assert!(!names(&r, &no_nvrtc, &matmul(DType::Bf16)).contains(&"my-gemm".into()));
        let e = refusal(&r, &no_nvrtc, &matmul(DType::Bf16), "my-gemm");
        assert!(e.contains("NVRTC not found"), "{e}");
    }
}
