//! Memory bandwidth on the GPU: gpuvet's own copy/read/write/triad kernels, and the driver's
//! device-to-device memcpy as the reference for copy.

use super::device::{Gpu, Props};
use super::error::cu;
use super::kernels::KernelId;
use super::launch::{launch, Args, Dims, Kernel};
use super::row::{Built, PrepareCtx, Refusal, Verdict};
use super::run::{Buffers, Exec, Output, Readback, SetLayout};
use crate::dtype::{ComputeType, DType, OutType};
use crate::error::{Error, Result};
use crate::inputs::{TRIAD_SCALAR, WRITE_VALUE};
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

/// The kernel of `op` in kernels/memory.cu.
pub fn kernel_of(op: MemOp) -> KernelId {
    match op {
        MemOp::Copy => KernelId::MemCopy,
        MemOp::Read => KernelId::MemRead,
        MemOp::Write => KernelId::MemWrite,
        MemOp::Triad => KernelId::MemTriad,
    }
}

/// The driver's memcpy is an implementation of `copy` only.
pub fn memcpy_offered(m: &MemorySpec) -> Verdict {
    match m.op {
        MemOp::Copy => Ok(()),
        _ => Err(Refusal::NotOffered),
    }
}

/// Device bytes a run allocates on the device of `props`: every array of every set, plus one
/// f64 partial per block of the read kernel's grid.
pub fn memory_needed(spec: &MemorySpec, sets: usize, props: &Props) -> u64 {
    let grid = props.stream_grid(BLOCK, MIN_ELEMS_PER_BLOCK, spec.elements());
    spec.footprint() * sets.max(1) as u64 + grid as u64 * 8
}

/// The prepared run of `spec` carried out by `imp`.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, spec: &MemorySpec, imp: MemImpl) -> Built<'a> {
    let (gpu, inputs) = (ctx.gpu, ctx.inputs);
    let n = spec.elements();
    let grid = gpu.stream_grid(BLOCK, MIN_ELEMS_PER_BLOCK, n);
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
    gpu.ensure_fits(memory_needed(spec, ctx.sets, &gpu.props))?;
    // Compile before allocating gigabytes, so a compile error costs nothing.
    let func = match imp {
        MemImpl::Kernel(k) => Some(Kernel::load(gpu, k)?),
        MemImpl::Memcpy => None,
    };
    // The read kernel writes one f64 partial per block; the others an array like the inputs.
    let out = match spec.op {
        MemOp::Read => grid as u64 * 8,
        _ => n * 4,
    };
    let layout = inputs
        .iter()
        .try_fold(SetLayout::new(out), |l, t| l.input(t.as_bytes(), n * 4))?;
    let spec = spec.clone();
    ctx.run(
        MemoryRun {
            spec,
            imp,
            func,
            grid,
        },
        layout,
    )
}

pub struct MemoryRun {
    spec: MemorySpec,
    imp: MemImpl,
    func: Option<Kernel>,
    grid: u32,
}

impl Exec for MemoryRun {
    fn enqueue(&self, gpu: &Gpu, s: &Buffers) -> Result<()> {
        let n = self.spec.elements();
        let out = s.output.ptr;
        let Some(f) = &self.func else {
            // SAFETY: both buffers hold n f32 values.
            return cu("cuMemcpyDtoDAsync", unsafe {
                dr::memcpy_dtod_async(
                    out,
                    s.inputs[0].ptr,
                    (n * 4) as usize,
                    gpu.stream.cu_stream(),
                )
            });
        };
        let in0 = s.inputs.first().map_or(0, |b| b.ptr);
        let in1 = s.inputs.get(1).map_or(0, |b| b.ptr);
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
        unsafe { launch(gpu, f, Dims::linear(self.grid, BLOCK), args) }
    }

    fn output(&self) -> Output {
        match self.spec.op {
            // One f64 partial per block, summed on the host.
            MemOp::Read => Readback::SumF64.output("sum", vec![1]),
            op => {
                let name = if op == MemOp::Triad { "a" } else { "dst" };
                Readback::Typed(OutType::F32).output(name, vec![self.spec.elements() as usize])
            }
        }
    }

    fn compute_dtype(&self) -> ComputeType {
        ComputeType::uniform(DType::F32)
    }

    fn notes(&self, _gpu: &Gpu) -> Vec<String> {
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
