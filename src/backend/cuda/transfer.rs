//! Host↔device transfers on one GPU: the copy engine (`cuMemcpyHtoDAsync` /
//! `cuMemcpyDtoHAsync`) from pinned or pageable host memory, and the SM copy kernel reading or
//! writing mapped pinned host memory (`cuMemHostAlloc` with DEVICEMAP). Both directions at once
//! run on two streams, so the two copy engines (or two kernels) overlap as the link allows.
//!
//! What landed is read back and compared bit for bit with what was sent.

use super::device::{DevBuf, Gpu};
use super::error::cu;
use super::kernels::KernelId;
use super::launch::{launch_on, Args, Dims, Kernel};
use super::row::{Built, PrepareCtx};
use super::run::{sync_on_drop, tensor_from_bytes};
use super::timing::Timer;
use crate::backend::{CachePolicy, Prepared};
use crate::dtype::ComputeType;
use crate::dtype::OutType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::{Direction, HostMemory, TransferSpec};
use cudarc::driver::result as dr;
use cudarc::driver::sys;
use cudarc::driver::{CudaContext, CudaStream};
use std::ffi::c_void;
use std::sync::Arc;

/// Implementation names.
pub const MEMCPY: &str = "memcpy";
pub const KERNEL: &str = "kernel";

/// Device bytes a run allocates: the device side of every set (the host side is host memory).
pub fn memory_needed(spec: &TransferSpec, sets: usize) -> u64 {
    spec.bytes() * sets.max(1) as u64
}

/// Threads per block of the link copy kernel.
const BLOCK: u32 = 256;

/// Host memory of one side of a transfer.
pub enum HostBuf {
    /// Page-locked and mapped into the device's address space (`dev`).
    Pinned {
        ptr: *mut c_void,
        bytes: usize,
        dev: sys::CUdeviceptr,
        ctx: Arc<CudaContext>,
    },
    /// Ordinary memory (the driver stages copies through its own pinned buffer).
    Pageable(Vec<u8>),
}

// SAFETY: the pinned pointer is owned by this value alone and freed once, on drop; the host
// memory it points at may be touched from any thread.
unsafe impl Send for HostBuf {}

impl HostBuf {
    /// `bytes` of host memory holding `data` (zeros after it).
    pub fn new(gpu: &Gpu, memory: HostMemory, bytes: usize, data: &[u8]) -> Result<HostBuf> {
        let mut b = match memory {
            HostMemory::Pageable => HostBuf::Pageable(vec![0u8; bytes]),
            HostMemory::Pinned => {
                gpu.bind()?;
                let flags = sys::CU_MEMHOSTALLOC_PORTABLE | sys::CU_MEMHOSTALLOC_DEVICEMAP;
                // SAFETY: a plain allocation of `bytes` (at least one), written before read.
                let ptr = cu("cuMemHostAlloc (pinned host memory)", unsafe {
                    dr::malloc_host(bytes.max(1), flags)
                })?;
                let mut dev: sys::CUdeviceptr = 0;
                // SAFETY: `ptr` came from cuMemHostAlloc with DEVICEMAP in this context.
                let mapped = unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dev, ptr, 0) };
                let b = HostBuf::Pinned {
                    ptr,
                    bytes,
                    dev,
                    ctx: gpu.ctx.clone(),
                };
                cu("cuMemHostGetDevicePointer", mapped.result())?;
                b
            }
        };
        b.bytes_mut()[..data.len()].copy_from_slice(data);
        Ok(b)
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: `bytes` bytes allocated by cuMemHostAlloc, alive as long as self.
            HostBuf::Pinned { ptr, bytes, .. } => unsafe {
                std::slice::from_raw_parts(*ptr as *const u8, *bytes)
            },
            HostBuf::Pageable(v) => v,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            // SAFETY: as `bytes`, and `&mut self` is the only access.
            HostBuf::Pinned { ptr, bytes, .. } => unsafe {
                std::slice::from_raw_parts_mut(*ptr as *mut u8, *bytes)
            },
            HostBuf::Pageable(v) => v,
        }
    }

    fn ptr(&self) -> *mut c_void {
        self.bytes().as_ptr() as *mut c_void
    }

    /// The device's address of pinned host memory (what the SM kernel reads or writes).
    fn mapped(&self) -> Option<sys::CUdeviceptr> {
        match self {
            HostBuf::Pinned { dev, .. } => Some(*dev),
            HostBuf::Pageable(_) => None,
        }
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        if let HostBuf::Pinned { ptr, ctx, .. } = self {
            // Freeing pinned memory waits for the device: not after its work hung.
            if super::timing::is_hung(ctx) {
                return;
            }
            let _ = ctx.bind_to_thread();
            // SAFETY: allocated by cuMemHostAlloc, freed once; the run synchronised before.
            let _ = unsafe { dr::free_host(*ptr) };
        }
    }
}

/// One set of buffers: host → device (`up`) and device → host (`down`), as the direction has.
struct Set {
    up: Option<(HostBuf, DevBuf)>,
    down: Option<(DevBuf, HostBuf)>,
}

/// A prepared transfer.
pub struct TransferRun<'a> {
    gpu: &'a Gpu,
    spec: TransferSpec,
    kernel: Option<Kernel>,
    grid: u32,
    /// The stream device→host copies run on: a second one when both directions overlap.
    down_stream: Arc<CudaStream>,
    sets: Vec<Set>,
    next: usize,
    timer: Timer,
    policy: CachePolicy,
}

/// The factory of the transfer rows: `imp` (`memcpy` or `kernel`) on the context's device.
pub fn prepare<'a>(ctx: &PrepareCtx<'a, '_>, t: &TransferSpec, imp: &str) -> Built<'a> {
    let run = TransferRun::new(ctx.gpu, t, imp, ctx.inputs, ctx.sets, ctx.policy.clone())?;
    Ok(Box::new(run))
}

/// The SM kernel reads the host buffer through its device mapping, which only pinned memory
/// has.
pub fn kernel_offered(t: &TransferSpec) -> Result<()> {
    if t.memory == HostMemory::Pinned {
        Ok(())
    } else {
        Err(Error::unsupported(
            "the SM copy kernel needs pinned host memory (pageable memory is not mapped into \
             the device)",
        ))
    }
}

impl<'a> TransferRun<'a> {
    pub fn new(
        gpu: &'a Gpu,
        spec: &TransferSpec,
        imp: &str,
        inputs: &[Tensor],
        sets: usize,
        policy: CachePolicy,
    ) -> Result<TransferRun<'a>> {
        let bytes = (spec.words() * 4) as usize;
        let kernel = match imp {
            MEMCPY => None,
            KERNEL => {
                kernel_offered(spec)?;
                Some(Kernel::load(gpu, KernelId::MemCopy)?)
            }
            other => {
                return Err(Error::unsupported(format!(
                    "cuda has no transfer implementation `{other}` (memcpy, kernel)"
                )))
            }
        };
        gpu.ensure_fits(memory_needed(spec, sets))?;
        let input = |i: usize| inputs.get(i).map(|t| t.as_bytes()).unwrap_or_default();
        let (up_src, down_src) = match spec.direction {
            Direction::H2d => (Some(input(0)), None),
            Direction::D2h => (None, Some(input(0))),
            Direction::Bidir => (Some(input(0)), Some(input(1))),
        };
        let mut all = Vec::with_capacity(sets.max(1));
        for _ in 0..sets.max(1) {
            let up = match up_src {
                Some(d) => Some((HostBuf::new(gpu, spec.memory, bytes, d)?, gpu.alloc(bytes)?)),
                None => None,
            };
            let down = match down_src {
                Some(d) => {
                    let dev = gpu.alloc(bytes)?;
                    dev.upload(gpu, d)?;
                    Some((dev, HostBuf::new(gpu, spec.memory, bytes, &[])?))
                }
                None => None,
            };
            all.push(Set { up, down });
        }
        let down_stream = match spec.direction {
            Direction::Bidir => cu("create a second stream", gpu.ctx.new_stream())?,
            _ => gpu.stream.clone(),
        };
        Ok(TransferRun {
            gpu,
            spec: spec.clone(),
            kernel,
            grid: gpu.stream_grid(BLOCK, BLOCK as u64 * 16, spec.words().div_ceil(4)),
            down_stream,
            sets: all,
            next: 0,
            timer: Timer::new(&gpu.ctx)?,
            policy,
        })
    }

    /// Copies `bytes` from `src` (host or mapped host address, or device) to `dst` on `stream`.
    fn copy(
        &self,
        stream: &CudaStream,
        to_device: bool,
        host: &HostBuf,
        dev: &DevBuf,
    ) -> Result<()> {
        let bytes = host.bytes().len();
        let s = stream.cu_stream();
        match (&self.kernel, to_device) {
            // SAFETY (both memcpys): both buffers hold `bytes`, stay allocated until the run
            // synchronises, and the host side is not touched meanwhile.
            (None, true) => cu("cuMemcpyHtoDAsync", unsafe {
                sys::cuMemcpyHtoDAsync_v2(dev.ptr, host.ptr(), bytes, s).result()
            }),
            (None, false) => cu("cuMemcpyDtoHAsync", unsafe {
                sys::cuMemcpyDtoHAsync_v2(host.ptr(), dev.ptr, bytes, s).result()
            }),
            (Some(k), _) => {
                let mapped = host
                    .mapped()
                    .ok_or_else(|| Error::unsupported("the SM copy needs mapped host memory"))?;
                let (src, dst) = if to_device {
                    (mapped, dev.ptr)
                } else {
                    (dev.ptr, mapped)
                };
                let args = Args::new().ptr(src).ptr(dst).u64((bytes / 4) as u64);
                // SAFETY: both addresses hold `bytes` until the run synchronises; the
                // arguments follow gv_copy's row in the kernel table.
                unsafe { launch_on(stream, k, Dims::linear(self.grid, BLOCK), args) }
            }
        }
    }

    /// One iteration on set `i`: up on the device's stream, down on the second stream (the
    /// same one unless both directions run).
    fn enqueue(&self, i: usize) -> Result<()> {
        let set = &self.sets[i];
        if let Some((host, dev)) = &set.up {
            self.copy(&self.gpu.stream, true, host, dev)?;
        }
        if let Some((dev, host)) = &set.down {
            self.copy(&self.down_stream, false, host, dev)?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.gpu.sync()?;
        super::timing::wait_stream(
            &self.gpu.ctx,
            &self.down_stream,
            "synchronize the second stream",
        )
    }
}

sync_on_drop!(TransferRun);

impl Prepared for TransferRun<'_> {
    fn compute_dtype(&self) -> ComputeType {
        ComputeType::Bytes
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        self.gpu.bind()?;
        self.sync()?;
        let set = &mut self.sets[0];
        if let Some((_, dev)) = &set.up {
            dev.fill(self.gpu, 0xFF)?;
        }
        if let Some((_, host)) = &mut set.down {
            host.bytes_mut().fill(0xFF);
        }
        self.gpu.sync()?;
        self.enqueue(0)?;
        self.sync()?;
        let set = &self.sets[0];
        let mut landed = Vec::new();
        if let Some((_, dev)) = &set.up {
            landed.extend(dev.download(self.gpu, dev.bytes)?);
        }
        if let Some((_, host)) = &set.down {
            landed.extend_from_slice(host.bytes());
        }
        let words = landed.len() / 4;
        Ok(tensor_from_bytes(
            "landed",
            vec![words],
            OutType::F32,
            &landed,
        ))
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        self.gpu.bind()?;
        let main = &self.gpu.stream;
        let two = !Arc::ptr_eq(main, &self.down_stream);
        self.timer.start(main)?;
        if two {
            cu("order the second stream", self.down_stream.join(main))?;
        }
        for _ in 0..iters {
            self.enqueue(self.next)?;
            self.next = (self.next + 1) % self.sets.len();
        }
        if two {
            cu("join the second stream", main.join(&self.down_stream))?;
        }
        self.timer.stop(main)?;
        self.timer.elapsed(iters)
    }

    fn cache_policy(&self) -> CachePolicy {
        self.policy.clone()
    }

    fn notes(&self) -> Vec<String> {
        let mut v = vec![match &self.kernel {
            None => "copy engine: cuMemcpyHtoDAsync / cuMemcpyDtoHAsync".to_string(),
            Some(_) => format!(
                "SM copy kernel: {} blocks × {BLOCK} threads through mapped pinned host memory",
                self.grid
            ),
        }];
        if self.spec.memory == HostMemory::Pageable {
            v.push(
                "pageable host memory: the driver stages each copy through its own pinned buffer"
                    .into(),
            );
        }
        if self.spec.direction == Direction::Bidir {
            v.push("both directions at once, on two streams".into());
        }
        v
    }
}
