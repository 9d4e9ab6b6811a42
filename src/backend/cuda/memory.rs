//! Memory bandwidth on the GPU: gpuvet's own copy/read/write/triad kernels, and the driver's
//! device-to-device memcpy as the reference for copy.

use super::device::{cu, DevBuf, Gpu};
use super::kernels::KernelId;
use super::timing::Timer;
use crate::backend::Prepared;
use crate::error::{Error, Result};
use crate::inputs::{TRIAD_SCALAR, WRITE_VALUE};
use crate::tensor::{Data, Tensor};
use crate::workload::{MemOp, MemorySpec};
use cudarc::driver::result as dr;
use cudarc::driver::CudaFunction;
use std::ffi::c_void;

/// Threads per block of the streaming kernels.
pub const BLOCK: u32 = 256;
/// Elements (f32) a block should at least cover, so tiny arrays do not launch idle blocks.
pub const MIN_ELEMS_PER_BLOCK: u64 = BLOCK as u64 * 16;

/// How the operation is carried out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemImpl {
    Kernel(KernelId),
    /// `cuMemcpyDtoDAsync`: the driver's copy engine path, the reference for `copy`.
    Memcpy,
}

impl MemImpl {
    pub fn for_op(op: MemOp, imp: &str) -> Result<MemImpl> {
        match (op, imp) {
            (MemOp::Copy, "kernel") => Ok(MemImpl::Kernel(KernelId::MemCopy)),
            (MemOp::Copy, "memcpy") => Ok(MemImpl::Memcpy),
            (MemOp::Read, "kernel") => Ok(MemImpl::Kernel(KernelId::MemRead)),
            (MemOp::Write, "kernel") => Ok(MemImpl::Kernel(KernelId::MemWrite)),
            (MemOp::Triad, "kernel") => Ok(MemImpl::Kernel(KernelId::MemTriad)),
            _ => Err(Error::unsupported(format!(
                "cuda has no implementation `{imp}` of memory {} (available: {})",
                op.name(),
                if op == MemOp::Copy {
                    "kernel, memcpy"
                } else {
                    "kernel"
                }
            ))),
        }
    }
}

/// Device bytes a run allocates: every array of every set, plus the read partials.
pub fn memory_needed(spec: &MemorySpec, sets: usize, gpu_partials: u64) -> u64 {
    spec.footprint() * sets.max(1) as u64 + gpu_partials * 8
}

/// One set of arrays: `out` is what the operation writes (for read, the per-block partials).
struct Set {
    out: DevBuf,
    ins: Vec<DevBuf>,
}

pub struct MemoryRun<'a> {
    gpu: &'a Gpu,
    spec: MemorySpec,
    imp: MemImpl,
    func: Option<CudaFunction>,
    grid: u32,
    sets: Vec<Set>,
    timer: Timer,
    next: usize,
    policy: String,
}

impl<'a> MemoryRun<'a> {
    pub fn new(
        gpu: &'a Gpu,
        spec: &MemorySpec,
        imp: MemImpl,
        inputs: &[Tensor],
        sets: usize,
        policy: String,
    ) -> Result<Self> {
        let n = spec.elements();
        let grid = gpu.stream_grid(BLOCK, MIN_ELEMS_PER_BLOCK, n);
        let sets = sets.max(1);
        let want_inputs = match spec.op {
            MemOp::Copy | MemOp::Read => 1,
            MemOp::Write => 0,
            MemOp::Triad => 2,
        };
        if inputs.len() != want_inputs {
            return Err(Error::invalid(format!(
                "memory {} takes {want_inputs} input arrays, got {}",
                spec.op.name(),
                inputs.len()
            )));
        }
        gpu.ensure_fits(memory_needed(spec, sets, grid as u64))?;
        // Compile before allocating gigabytes, so a compile error costs nothing.
        let func = match imp {
            MemImpl::Kernel(k) => Some(gpu.function(k)?),
            MemImpl::Memcpy => None,
        };
        let bytes = (n * 4) as usize;
        let mut all = Vec::with_capacity(sets);
        for _ in 0..sets {
            let out = match spec.op {
                MemOp::Read => gpu.alloc(grid as usize * 8)?,
                _ => gpu.alloc(bytes)?,
            };
            let mut ins = Vec::new();
            for t in inputs {
                let b = gpu.alloc(bytes)?;
                b.upload(gpu, t.as_bytes())?;
                ins.push(b);
            }
            all.push(Set { out, ins });
        }
        Ok(MemoryRun {
            gpu,
            spec: spec.clone(),
            imp,
            func,
            grid,
            sets: all,
            timer: Timer::new(&gpu.ctx)?,
            next: 0,
            policy,
        })
    }

    fn enqueue(&self, i: usize) -> Result<()> {
        let s = &self.sets[i];
        let mut n = self.spec.elements();
        let mut out = s.out.ptr;
        let Some(f) = &self.func else {
            // SAFETY: both buffers hold n f32 values.
            return cu("cuMemcpyDtoDAsync", unsafe {
                dr::memcpy_dtod_async(
                    out,
                    s.ins[0].ptr,
                    (n * 4) as usize,
                    self.gpu.stream.cu_stream(),
                )
            });
        };
        let p = |x: &mut u64| x as *mut u64 as *mut c_void;
        let mut value = WRITE_VALUE;
        let mut scalar = TRIAD_SCALAR;
        let mut in0 = s.ins.first().map_or(0, |b| b.ptr);
        let mut in1 = s.ins.get(1).map_or(0, |b| b.ptr);
        // Parameter lists match the C signatures in kernels/memory.cu exactly.
        let mut params: Vec<*mut c_void> = match self.spec.op {
            MemOp::Copy => vec![p(&mut in0), p(&mut out), p(&mut n)],
            MemOp::Read => vec![p(&mut in0), p(&mut n), p(&mut out)],
            MemOp::Write => vec![
                p(&mut out),
                p(&mut n),
                &mut value as *mut f32 as *mut c_void,
            ],
            MemOp::Triad => vec![
                p(&mut out),
                p(&mut in0),
                p(&mut in1),
                p(&mut n),
                &mut scalar as *mut f32 as *mut c_void,
            ],
        };
        // SAFETY: parameter types match the kernel; buffers live as long as self.
        unsafe { self.gpu.launch(f, self.grid, BLOCK, &mut params) }
    }
}

impl Drop for MemoryRun<'_> {
    fn drop(&mut self) {
        // Buffers are freed right after this: let queued work that uses them finish first.
        let _ = self.gpu.sync();
    }
}

impl Prepared for MemoryRun<'_> {
    fn compute_dtype(&self) -> String {
        "f32".into()
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        self.gpu.bind()?;
        let s = &self.sets[0];
        s.out.fill(self.gpu, 0xFF)?;
        self.enqueue(0)?;
        let bytes = s.out.download(self.gpu, s.out.bytes)?;
        if self.spec.op == MemOp::Read {
            // The kernel leaves one f64 partial per block; NaN poison in any unwritten slot
            // makes the sum NaN, which verification rejects.
            let sum: f64 = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                .sum();
            return Ok(Tensor {
                name: "sum".into(),
                shape: vec![1],
                data: Data::F64(vec![sum]),
            });
        }
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4-byte chunk")))
            .collect();
        Ok(Tensor {
            name: if self.spec.op == MemOp::Triad {
                "a"
            } else {
                "dst"
            }
            .into(),
            shape: vec![v.len()],
            data: Data::F32(v),
        })
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        self.gpu.bind()?;
        let mut next = self.next;
        let sets = self.sets.len();
        let t = self
            .timer
            .time_rotating(&self.gpu.stream, &mut next, sets, iters, |i| {
                self.enqueue(i)
            })?;
        self.next = next;
        Ok(t)
    }

    fn cache_policy(&self) -> String {
        self.policy.clone()
    }

    fn notes(&self) -> Vec<String> {
        match self.imp {
            MemImpl::Memcpy => vec!["driver cuMemcpyDtoDAsync (reference)".into()],
            MemImpl::Kernel(_) if self.spec.op == MemOp::Read => vec![format!(
                "{} blocks × {BLOCK} threads, f64 partial per block summed on the host",
                self.grid
            )],
            MemImpl::Kernel(_) => vec![format!(
                "{} blocks × {BLOCK} threads, float4 grid-stride",
                self.grid
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implementations_per_op() {
        assert_eq!(
            MemImpl::for_op(MemOp::Copy, "memcpy").unwrap(),
            MemImpl::Memcpy
        );
        assert_eq!(
            MemImpl::for_op(MemOp::Triad, "kernel").unwrap(),
            MemImpl::Kernel(KernelId::MemTriad)
        );
        let e = MemImpl::for_op(MemOp::Read, "memcpy").unwrap_err();
        assert!(e.to_string().contains("available: kernel"), "{e}");
    }
}
