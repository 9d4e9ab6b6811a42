//! Host↔device transfers on the CPU backend, which has no device: the "device" buffers are
//! host memory too, so a transfer is a host memory copy between two buffers (the "pinned" host
//! side locked in RAM with `mlock`). It exercises the workload, its verification and its
//! reports; its figure is a memory-copy figure, never a PCIe one, and says so.

use super::{boxed, chunk_len, next_set, timed, Alloc, CpuBackend, CpuKernel, Run, TRANSFER_IMPL};
use crate::backend::{CachePolicy, ImplInfo, Prepared};
use crate::dtype::ComputeType;
use crate::error::Result;
use crate::tensor::{Data, Tensor};
use crate::workload::{Direction, HostMemory, TransferSpec};
use rayon::prelude::*;

/// What the CPU transfer is.
const ABOUT: &str = "host memory to host memory (the CPU has no device link): not a PCIe figure";

impl CpuKernel for TransferSpec {
    fn implementation(&self) -> Option<ImplInfo> {
        Some(ImplInfo::new(TRANSFER_IMPL, ABOUT, true))
    }

    /// The "device" buffers and their host mirrors.
    fn bytes_per_set(&self) -> u64 {
        2 * self.bytes()
    }

    fn prepare<'a>(&self, cpu: &'a CpuBackend, a: Alloc) -> Run<'a> {
        boxed(PreparedTransfer::new(
            &cpu.pool, self, a.inputs, a.sets, a.policy,
        ))
    }
}

/// Smallest chunk one worker copies (f32 words): 256 KiB.
const MIN_CHUNK: usize = 64 << 10;

/// A host buffer, locked in RAM (`mlock`) for a pinned transfer where the system allows it.
struct HostBuf {
    v: Vec<f32>,
    locked: bool,
}

impl HostBuf {
    fn new(v: Vec<f32>, memory: HostMemory) -> HostBuf {
        let locked = memory == HostMemory::Pinned
            // SAFETY: the range is the vector's own allocation, which lives as long as self.
            && unsafe { libc::mlock(v.as_ptr() as *const libc::c_void, v.len() * 4) } == 0;
        HostBuf { v, locked }
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        if self.locked {
            // SAFETY: the range locked in `new`, still allocated.
            unsafe { libc::munlock(self.v.as_ptr() as *const libc::c_void, self.v.len() * 4) };
        }
    }
}

/// One set of buffers: what goes up (host → "device") and what comes down.
struct Set {
    host_src: HostBuf,
    dev_dst: Vec<f32>,
    dev_src: Vec<f32>,
    host_dst: HostBuf,
}

pub(super) struct PreparedTransfer<'a> {
    pool: &'a rayon::ThreadPool,
    spec: TransferSpec,
    chunk: usize,
    sets: Vec<Set>,
    next: usize,
    policy: CachePolicy,
}

impl<'a> PreparedTransfer<'a> {
    pub(super) fn new(
        pool: &'a rayon::ThreadPool,
        spec: &TransferSpec,
        inputs: &[Tensor],
        sets: usize,
        policy: CachePolicy,
    ) -> Result<Self> {
        let n = spec.words() as usize;
        let data = |i: usize| match inputs.get(i).map(|t| &t.data) {
            Some(Data::F32(v)) => v.clone(),
            _ => vec![0.0; n],
        };
        let (up, down) = match spec.direction {
            Direction::H2d => (data(0), Vec::new()),
            Direction::D2h => (Vec::new(), data(0)),
            Direction::Bidir => (data(0), data(1)),
        };
        let sets = (0..sets.max(1))
            .map(|_| Set {
                host_src: HostBuf::new(up.clone(), spec.memory),
                dev_dst: vec![0.0; up.len()],
                dev_src: down.clone(),
                host_dst: HostBuf::new(vec![0.0; down.len()], spec.memory),
            })
            .collect();
        Ok(PreparedTransfer {
            pool,
            spec: spec.clone(),
            chunk: chunk_len(n, pool.current_num_threads(), MIN_CHUNK),
            sets,
            next: 0,
            policy,
        })
    }

    fn run_set(&mut self, i: usize) {
        let ch = self.chunk;
        let set = &mut self.sets[i];
        let copy = |dst: &mut [f32], src: &[f32]| {
            dst.par_chunks_mut(ch)
                .zip(src.par_chunks(ch))
                .for_each(|(d, s)| d.copy_from_slice(s))
        };
        let (up_dst, up_src) = (&mut set.dev_dst, &set.host_src.v);
        let (down_dst, down_src) = (&mut set.host_dst.v, &set.dev_src);
        self.pool.install(|| {
            rayon::join(|| copy(up_dst, up_src), || copy(down_dst, down_src));
        });
    }
}

impl Prepared for PreparedTransfer<'_> {
    fn compute_dtype(&self) -> ComputeType {
        ComputeType::Bytes
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        let set = &mut self.sets[0];
        set.dev_dst.fill(f32::NAN);
        set.host_dst.v.fill(f32::NAN);
        self.run_set(0);
        let set = &self.sets[0];
        let landed: Vec<f32> = set.dev_dst.iter().chain(&set.host_dst.v).copied().collect();
        Ok(Tensor {
            name: "landed".into(),
            shape: vec![landed.len()],
            data: Data::F32(landed),
        })
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        let sets = self.sets.len();
        let mut next = self.next;
        let t = timed(iters, || self.run_set(next_set(&mut next, sets)));
        self.next = next;
        Ok(t)
    }

    fn cache_policy(&self) -> CachePolicy {
        self.policy.clone()
    }

    fn notes(&self) -> Vec<String> {
        let mut v = vec![
            "CPU backend: host memory to host memory (there is no device link); a memory-copy \
             figure, not a PCIe one"
                .to_string(),
        ];
        let s = &self.sets[0];
        let unlocked = [&s.host_src, &s.host_dst]
            .iter()
            .any(|b| !b.v.is_empty() && !b.locked);
        if self.spec.memory == HostMemory::Pinned && unlocked {
            v.push("the host pages could not be locked (mlock; RLIMIT_MEMLOCK?)".into());
        }
        v
    }
}
