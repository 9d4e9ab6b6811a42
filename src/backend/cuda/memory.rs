//! Memory bandwidth on the GPU: gpuvet's own copy/read/write/triad kernels, and the driver's
//! device-to-device memcpy as the reference for copy.

use super::device::{DevBuf, Gpu};
use super::error::cu;
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel};
use super::run::{CudaRun, Exec, Output, Readback};
use crate::backend::CachePolicy;
use crate::dtype::{ComputeType, DType, OutType};
use crate::error::{Error, Result};
use crate::inputs::{TRIAD_SCALAR, WRITE_VALUE};
use crate::tensor::Tensor;
use crate::workload::{MemOp, MemorySpec};
use cudarc::driver::result as dr;

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
pub struct Set {
    out: DevBuf,
    ins: Vec<DevBuf>,
}

pub struct MemoryRun<'a> {
    gpu: &'a Gpu,
    spec: MemorySpec,
    imp: MemImpl,
    func: Option<Kernel>,
    grid: u32,
}

impl<'a> MemoryRun<'a> {
    pub fn new(
        gpu: &'a Gpu,
        spec: &MemorySpec,
        imp: MemImpl,
        inputs: &[Tensor],
        sets: usize,
        policy: CachePolicy,
    ) -> Result<CudaRun<'a, Self>> {
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
            MemImpl::Kernel(k) => Some(Kernel::load(gpu, k)?),
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
        let exec = MemoryRun {
            gpu,
            spec: spec.clone(),
            imp,
            func,
            grid,
        };
        CudaRun::new(gpu, exec, all, policy)
    }
}

impl Exec for MemoryRun<'_> {
    type Set = Set;

    fn enqueue(&self, s: &Set) -> Result<()> {
        let n = self.spec.elements();
        let out = s.out.ptr;
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
        let in0 = s.ins.first().map_or(0, |b| b.ptr);
        let in1 = s.ins.get(1).map_or(0, |b| b.ptr);
        // Argument lists as the C signatures in kernels/memory.cu declare them.
        let args = match self.spec.op {
            MemOp::Copy => Args::new().ptr(in0).ptr(out).u64(n),
            MemOp::Read => Args::new().ptr(in0).u64(n).ptr(out),
            MemOp::Write => Args::new().ptr(out).u64(n).f32(WRITE_VALUE),
            MemOp::Triad => Args::new()
                .ptr(out)
                .ptr(in0)
                .ptr(in1)
                .u64(n)
                .f32(TRIAD_SCALAR),
        };
        // SAFETY: the arguments follow the kernel's signature; buffers live as long as self.
        unsafe { launch(self.gpu, f, Dims::linear(self.grid, BLOCK), args) }
    }

    fn output<'s>(&'s self, set0: &'s Set) -> Output<'s> {
        let buf = &set0.out;
        match self.spec.op {
            // One f64 partial per block, summed on the host.
            MemOp::Read => Output {
                buf,
                name: "sum",
                shape: vec![1],
                readback: Readback::SumF64,
            },
            op => {
                let name = if op == MemOp::Triad { "a" } else { "dst" };
                Output::typed(buf, name, vec![self.spec.elements() as usize], OutType::F32)
            }
        }
    }

    fn compute_dtype(&self) -> ComputeType {
        ComputeType::uniform(DType::F32)
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
