//! Collectives on the CPU: every rank a thread of this process, exchanging through shared
//! memory. The same operations NCCL runs, with the same per-rank buffers and the same
//! verification, so that rank layouts, bus-bandwidth arithmetic and reports are tested without
//! a GPU. The figure is a host-memory figure: it is never presented as a network one.
//!
//! Each rank moves what a bandwidth-optimal algorithm moves: an all-reduce is a reduce-scatter
//! (rank r adds chunk r of every rank's input into its own output) then an all-gather (rank r
//! copies every other chunk from the rank that owns it), 2(n−1)/n of the buffer per rank, as
//! nccl-tests' bus factor assumes.

use super::{Alloc, CpuBackend, CpuKernel, Run, COLLECTIVE_IMPL};
use crate::backend::{CachePolicy, Group, ImplInfo, Prepared};
use crate::dtype::{ComputeType, DType};
use crate::error::{Error, Result};
use crate::tensor::{Data, Tensor};
use crate::workload::collective::COLLECTIVE_DTYPES;
use crate::workload::{CollectiveOp, CollectiveSpec, WorkloadKind};
use half::{bf16, f16};
use std::sync::Barrier;

/// What the CPU collectives are.
const ABOUT: &str = "ranks are threads of this process over shared memory: not a network figure";

impl CpuKernel for CollectiveSpec {
    fn implementation(&self) -> Option<ImplInfo> {
        COLLECTIVE_DTYPES
            .contains(&self.dtype)
            .then(|| ImplInfo::new(COLLECTIVE_IMPL, ABOUT, true))
    }

    /// Every rank's buffers, all held by this one device.
    fn bytes_per_set(&self) -> u64 {
        self.buffer_bytes()
    }

    fn prepare<'a>(&self, _cpu: &'a CpuBackend, _a: Alloc) -> Run<'a> {
        Err(Error::unsupported(format!(
            "{} runs across ranks (the group seam), not on one device alone",
            self.name()
        )))
    }

    fn prepare_group<'a>(&self, group: &Group<'a>, inputs: &[Tensor]) -> Run<'a> {
        prepare(self, inputs, group.world.size)
    }
}

/// An element type the CPU collectives run in: sums are taken in f32 and rounded once.
pub(super) trait Elem: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
    fn tensor(name: &str, v: Vec<Self>) -> Tensor;
    fn of(t: &Tensor) -> Option<Vec<Self>>;
}

macro_rules! elem {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Elem for $t {
            fn to_f32(self) -> f32 {
                $to(self)
            }
            fn from_f32(v: f32) -> Self {
                $from(v)
            }
            fn tensor(name: &str, v: Vec<Self>) -> Tensor {
                Tensor {
                    name: name.into(),
                    shape: vec![v.len()],
                    data: Data::$variant(v),
                }
            }
            fn of(t: &Tensor) -> Option<Vec<Self>> {
                match &t.data {
                    Data::$variant(v) => Some(v.clone()),
                    _ => None,
                }
            }
        }
    };
}
elem!(f32, F32, |x: f32| x, |v: f32| v);
elem!(bf16, Bf16, bf16::to_f32, bf16::from_f32);
elem!(f16, F16, f16::to_f32, f16::from_f32);

/// Raw views of every rank's buffers, shared by the rank threads of one run.
struct Shared<T> {
    send: Vec<*const T>,
    recv: Vec<*mut T>,
}

// SAFETY: the pointers stay valid for the whole scoped run (the buffers outlive it and are not
// reallocated), and the ranks' accesses never race: rank r writes only its own receive buffer,
// and reads another rank's receive buffer only after a barrier that follows that rank's write
// of it (see `PreparedCollective::rank_step`).
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the views move into the scope only.
unsafe impl<T: Send> Send for Shared<T> {}

pub(super) struct PreparedCollective<T: Elem> {
    spec: CollectiveSpec,
    n: usize,
    send: Vec<Vec<T>>,
    recv: Vec<Vec<T>>,
    notes: Vec<String>,
}

impl<T: Elem> PreparedCollective<T> {
    /// Takes one send buffer per rank from `inputs` (ranks 0..n in order).
    pub(super) fn new(
        spec: &CollectiveSpec,
        inputs: &[Tensor],
        notes: Vec<String>,
    ) -> Result<Self> {
        let n = spec.ranks as usize;
        if inputs.len() != n {
            return Err(Error::invalid(format!(
                "{} takes one input per rank ({n}), got {}",
                spec.name(),
                inputs.len()
            )));
        }
        let send: Vec<Vec<T>> = inputs
            .iter()
            .map(|t| {
                T::of(t)
                    .filter(|v| v.len() as u64 == spec.send_elements())
                    .ok_or_else(|| {
                        Error::invalid(format!("{}: input {} does not fit", spec.name(), t.name))
                    })
            })
            .collect::<Result<_>>()?;
        let recv = vec![vec![T::from_f32(0.0); spec.recv_elements() as usize]; n];
        Ok(PreparedCollective {
            spec: spec.clone(),
            n,
            send,
            recv,
            notes,
        })
    }

    /// Runs `iters` iterations on a thread per rank; returns the wall-clock seconds.
    fn run_threads(&mut self, iters: u64) -> f64 {
        let shared = Shared {
            send: self.send.iter().map(|v| v.as_ptr()).collect(),
            recv: self.recv.iter_mut().map(|v| v.as_mut_ptr()).collect(),
        };
        let barrier = Barrier::new(self.n);
        let this = &*self;
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            for r in 0..this.n {
                let (shared, barrier) = (&shared, &barrier);
                s.spawn(move || {
                    for _ in 0..iters {
                        this.rank_step(shared, r, barrier);
                    }
                });
            }
        });
        start.elapsed().as_secs_f64()
    }

    /// Element range of chunk `k` of `len` elements split between the ranks (the last takes
    /// what does not divide).
    fn chunk(&self, k: usize, len: usize) -> std::ops::Range<usize> {
        let c = len.div_ceil(self.n);
        (k * c).min(len)..((k + 1) * c).min(len)
    }

    /// One iteration of rank `r`, ending at a barrier so the next iteration cannot overwrite
    /// what another rank still reads. Only `run_threads` calls it: every rank of the run once
    /// per iteration, with the same `sh`.
    fn rank_step(&self, sh: &Shared<T>, r: usize, barrier: &Barrier) {
        let n = self.n;
        let (e, recv_len) = (
            self.spec.elements() as usize,
            self.spec.recv_elements() as usize,
        );
        let send_len = self.spec.send_elements() as usize;
        // SAFETY: every send buffer holds send_len elements and nobody writes them during the
        // run.
        let send = |k: usize| unsafe { std::slice::from_raw_parts(sh.send[k], send_len) };
        // SAFETY: only rank r writes its receive buffer, and each range it writes is one no
        // other rank reads in the same phase (chunk ownership below); the slice lives only
        // for the write.
        let write = |at: std::ops::Range<usize>| {
            debug_assert!(at.end <= recv_len);
            unsafe { std::slice::from_raw_parts_mut(sh.recv[r].add(at.start), at.len()) }
        };
        match self.spec.op {
            CollectiveOp::AllReduce => {
                let own = self.chunk(r, e);
                reduce_into(write(own.clone()), (0..n).map(|k| &send(k)[own.clone()]));
                barrier.wait();
                for k in (0..n).filter(|&k| k != r) {
                    let c = self.chunk(k, e);
                    // SAFETY: rank k wrote chunk c of its receive buffer before the barrier
                    // and writes only other chunks of it until the next one.
                    let theirs =
                        unsafe { std::slice::from_raw_parts(sh.recv[k].add(c.start), c.len()) };
                    write(c).copy_from_slice(theirs);
                }
            }
            CollectiveOp::ReduceScatter => {
                let own = r * recv_len..(r + 1) * recv_len;
                reduce_into(write(0..recv_len), (0..n).map(|k| &send(k)[own.clone()]));
            }
            CollectiveOp::AllGather => {
                for k in 0..n {
                    write(k * send_len..(k + 1) * send_len).copy_from_slice(send(k));
                }
            }
            CollectiveOp::Broadcast => write(0..e).copy_from_slice(&send(0)[..e]),
            CollectiveOp::AllToAll => {
                let c = e / n;
                for k in 0..n {
                    write(k * c..(k + 1) * c).copy_from_slice(&send(k)[r * c..(r + 1) * c]);
                }
            }
        }
        barrier.wait();
    }
}

/// `out = Σ inputs`, added in f32 blocks of 4096 elements, rounded once into `T`.
fn reduce_into<'s, T: Elem>(out: &mut [T], inputs: impl Iterator<Item = &'s [T]> + Clone) {
    const BLOCK: usize = 4096;
    let mut acc = vec![0f32; BLOCK.min(out.len())];
    for (b, o) in out.chunks_mut(BLOCK).enumerate() {
        let acc = &mut acc[..o.len()];
        acc.fill(0.0);
        for x in inputs.clone() {
            for (a, v) in acc.iter_mut().zip(&x[b * BLOCK..b * BLOCK + o.len()]) {
                *a += v.to_f32();
            }
        }
        for (o, a) in o.iter_mut().zip(acc.iter()) {
            *o = T::from_f32(*a);
        }
    }
}

impl<T: Elem> Prepared for PreparedCollective<T> {
    fn compute_dtype(&self) -> ComputeType {
        if self.spec.op.reduces() {
            ComputeType::uniform(DType::F32)
        } else {
            ComputeType::uniform(self.spec.dtype)
        }
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        for r in &mut self.recv {
            r.fill(T::from_f32(f32::NAN));
        }
        self.run_threads(1);
        let all: Vec<T> = self.recv.iter().flatten().copied().collect();
        Ok(T::tensor("recv", all))
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        Ok(self.run_threads(iters))
    }

    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Single
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

/// The CPU's collective for `spec` (ranks are threads), in the spec's dtype.
pub(super) fn prepare(
    spec: &CollectiveSpec,
    inputs: &[Tensor],
    world_size: u32,
) -> Result<Box<dyn Prepared + 'static>> {
    let mut notes = vec![format!(
        "CPU backend: {} ranks are threads of this process exchanging through shared memory; \
         a host-memory figure, not a network or NVLink one",
        spec.ranks
    )];
    if world_size > 1 {
        notes.push(format!(
            "world of {world_size} processes: the rendezvous ran, but the CPU backend's \
             collectives stay inside each process"
        ));
    }
    Ok(match spec.dtype {
        DType::F32 => Box::new(PreparedCollective::<f32>::new(spec, inputs, notes)?),
        DType::Bf16 => Box::new(PreparedCollective::<bf16>::new(spec, inputs, notes)?),
        DType::F16 => Box::new(PreparedCollective::<f16>::new(spec, inputs, notes)?),
        d => return Err(Error::unsupported(format!("collectives do not run in {d}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Verify;

    #[test]
    fn every_op_and_dtype_verifies_on_threads() {
        for op in CollectiveOp::ALL {
            for dtype in [DType::Bf16, DType::F16, DType::F32] {
                for ranks in [1, 3, 4] {
                    let s = CollectiveSpec::new(op, dtype, 4 * 1000 + 12, ranks);
                    let ins = s.inputs(21);
                    let mut p = prepare(&s, &ins, 1).unwrap();
                    let out = p.run_verify().unwrap();
                    let v = s.verify_output(&ins, &out, 21);
                    assert!(v.passed, "{op} {dtype} n={ranks}: {v:?}");
                    assert!(p.run(3).unwrap() > 0.0);
                }
            }
        }
    }
}
