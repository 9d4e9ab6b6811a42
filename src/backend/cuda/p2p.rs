//! Copies between two GPUs: the copy engine (`cuMemcpyPeerAsync`) or the SM copy kernel over a
//! peer mapping (`cuCtxEnablePeerAccess`, where `cuDeviceCanAccessPeer` allows it), driven by
//! the source (write) or the destination (read), one way or both ways at once.
//!
//! The placement is (source, destination); both ways at once, each device copies to the other
//! on its own stream, timed from the first device's stream with the second joined to it.

use super::device::{poisoned_round, DevBuf, Gpu};
use super::error::cu;
use super::kernels::KernelId;
use super::launch::{launch_on, Args, Dims, Kernel};
use super::run::{sync_on_drop, tensor_from_bytes};
use super::timing::{hung_together, Timer};
use crate::backend::{CachePolicy, Prepared};
use crate::dtype::ComputeType;
use crate::dtype::OutType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::{P2pOp, P2pSpec};
use cudarc::driver::result as dr;
use cudarc::driver::sys;
use cudarc::driver::CudaContext;

/// Threads per block of the link copy kernel.
const BLOCK: u32 = 256;

/// Whether `from` may map `to`'s memory (`cuDeviceCanAccessPeer`).
pub fn can_access_peer(from: &Gpu, to: &Gpu) -> Result<bool> {
    let mut can = 0i32;
    // SAFETY: two valid device handles and an out-pointer.
    let rc =
        unsafe { sys::cuDeviceCanAccessPeer(&mut can, from.ctx.cu_device(), to.ctx.cu_device()) };
    cu("cuDeviceCanAccessPeer", rc.result())?;
    Ok(can != 0)
}

/// Maps `to`'s memory into `from`'s context; already mapped is fine. `false` when the two
/// cannot map each other (the copy engine then stages through host memory; the SM kernel
/// cannot run).
pub fn enable_peer_access(from: &Gpu, to: &Gpu) -> Result<bool> {
    if !can_access_peer(from, to)? {
        return Ok(false);
    }
    from.bind()?;
    // SAFETY: `to`'s context is valid for the life of its backend; flags must be 0.
    let rc = unsafe { sys::cuCtxEnablePeerAccess(to.ctx.cu_ctx(), 0) };
    match rc {
        sys::CUresult::CUDA_SUCCESS | sys::CUresult::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED => {
            Ok(true)
        }
        other => cu("cuCtxEnablePeerAccess", other.result()).map(|_| true),
    }
}

/// The ways of a copy between `a` and `b` as (source, destination) devices: `a` to `b`, and
/// back when bidirectional.
fn ways_of<'g>(a: &'g Gpu, b: &'g Gpu, spec: &P2pSpec) -> Vec<(&'g Gpu, &'g Gpu)> {
    let mut pairs = vec![(a, b)];
    if spec.bidirectional {
        pairs.push((b, a));
    }
    pairs
}

/// The device whose stream drives a way from `src` to `dst`, and the one whose memory it
/// maps: a write is pushed by the source, a read pulled by the destination.
fn exec_of<'g>(op: P2pOp, src: &'g Gpu, dst: &'g Gpu) -> (&'g Gpu, &'g Gpu) {
    match op {
        P2pOp::Write => (src, dst),
        P2pOp::Read => (dst, src),
    }
}

/// Why the SM copy kernel cannot run between `exec` and `other`.
fn no_mapping(exec: &Gpu, other: &Gpu) -> Error {
    Error::unsupported(format!(
        "{} cannot map {}'s memory (cuDeviceCanAccessPeer): the SM copy kernel needs a peer \
         mapping",
        exec.props.name, other.props.name
    ))
}

/// `Ok` when the SM copy kernel can run the copy between `a` and `b`: every executing device
/// may map the other's memory. Asked while the plan is built, so that a node without peer
/// access (most PCIe cloud instances) leaves the kernel out before anything runs.
pub fn check_kernel(a: &Gpu, b: &Gpu, spec: &P2pSpec) -> Result<()> {
    for (src, dst) in ways_of(a, b, spec) {
        let (exec, other) = exec_of(spec.op, src, dst);
        if !can_access_peer(exec, other)? {
            return Err(no_mapping(exec, other));
        }
    }
    Ok(())
}

/// One way of a copy: `src` on one device, `dst` on the other, driven by `exec`'s stream.
struct Way<'a> {
    src: DevBuf,
    dst: DevBuf,
    src_gpu: &'a Gpu,
    dst_gpu: &'a Gpu,
    exec: &'a Gpu,
    kernel: Option<Kernel>,
}

pub struct P2pRun<'a> {
    ways: Vec<Way<'a>>,
    spec: P2pSpec,
    timer: Timer,
    grid: u32,
    peer: bool,
}

impl<'a> P2pRun<'a> {
    /// A copy from `a` to `b` (and back from `b` to `a` when bidirectional) with `imp`
    /// (`memcpy` or `kernel`); `inputs` are `a`'s data (and `b`'s).
    pub fn new(
        a: &'a Gpu,
        b: &'a Gpu,
        spec: &P2pSpec,
        imp: &str,
        inputs: &[Tensor],
    ) -> Result<P2pRun<'a>> {
        let kernel = match imp {
            super::transfer::MEMCPY => false,
            super::transfer::KERNEL => true,
            other => {
                return Err(Error::unsupported(format!(
                    "cuda has no p2p implementation `{other}` (memcpy, kernel)"
                )))
            }
        };
        let bytes = (spec.words() * 4) as usize;
        let mut peer = true;
        let mut ways = Vec::new();
        for (i, (src_gpu, dst_gpu)) in ways_of(a, b, spec).into_iter().enumerate() {
            let (exec, other) = exec_of(spec.op, src_gpu, dst_gpu);
            let mapped = enable_peer_access(exec, other)?;
            peer &= mapped;
            if kernel && !mapped {
                return Err(no_mapping(exec, other));
            }
            src_gpu.ensure_fits(bytes as u64)?;
            dst_gpu.ensure_fits(bytes as u64)?;
            let src = src_gpu.alloc(bytes)?;
            src.upload(
                src_gpu,
                inputs.get(i).map(|t| t.as_bytes()).unwrap_or_default(),
            )?;
            ways.push(Way {
                src,
                dst: dst_gpu.alloc(bytes)?,
                src_gpu,
                dst_gpu,
                exec,
                kernel: if kernel {
                    Some(Kernel::load(exec, KernelId::MemCopy)?)
                } else {
                    None
                },
            });
        }
        Ok(P2pRun {
            grid: a.stream_grid(BLOCK, BLOCK as u64 * 16, spec.words().div_ceil(4)),
            // The events are recorded on the first executing device's stream: its context.
            timer: Timer::new(&ways[0].exec.ctx)?.patient(super::timing::GROUP_PATIENCE),
            ways,
            spec: spec.clone(),
            peer,
        })
    }

    /// One copy of every way, each on its executing device's stream.
    fn enqueue(&self) -> Result<()> {
        for w in &self.ways {
            w.exec.bind()?;
            let stream = &w.exec.stream;
            match &w.kernel {
                // SAFETY: both buffers hold `dst.bytes` and live until the run synchronises.
                None => cu("cuMemcpyPeerAsync", unsafe {
                    dr::memcpy_peer_async(
                        w.dst_gpu.ctx.cu_ctx(),
                        w.dst.ptr,
                        w.src_gpu.ctx.cu_ctx(),
                        w.src.ptr,
                        w.dst.bytes,
                        stream.cu_stream(),
                    )
                })?,
                Some(k) => {
                    let args = Args::new()
                        .buf(&w.src)
                        .buf(&w.dst)
                        .u64((w.dst.bytes / 4) as u64);
                    // SAFETY: the peer buffer is mapped into the executing context (checked
                    // in `new`); both hold `bytes` until the run synchronises.
                    unsafe { launch_on(stream, k, Dims::linear(self.grid, BLOCK), args)? }
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let r = self.ways.iter().try_for_each(|w| w.exec.sync());
        hung_together(r, self.contexts())
    }

    /// The contexts of both devices of the copy (a hang marks them all).
    fn contexts(&self) -> impl Iterator<Item = &CudaContext> {
        self.ways
            .iter()
            .flat_map(|w| [&*w.src_gpu.ctx, &*w.dst_gpu.ctx])
    }

    /// The executing devices other than the first way's (both ways at once: the second).
    fn others(&self) -> impl Iterator<Item = &Gpu> {
        let first = self.ways[0].exec;
        self.ways
            .iter()
            .map(|w| w.exec)
            .filter(move |g| !std::ptr::eq(*g, first))
    }
}

sync_on_drop!(P2pRun);

impl Prepared for P2pRun<'_> {
    fn compute_dtype(&self) -> ComputeType {
        ComputeType::Bytes
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        let outs: Vec<_> = self.ways.iter().map(|w| (&w.dst, w.dst_gpu)).collect();
        let landed = poisoned_round(&outs, || self.sync(), || self.enqueue())?;
        Ok(tensor_from_bytes(
            "landed",
            vec![landed.len() / 4],
            OutType::F32,
            &landed,
        ))
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        let lead = self.ways[0].exec;
        lead.bind()?;
        self.timer.start(&lead.stream)?;
        for g in self.others() {
            cu(
                "order the second device's stream",
                g.stream.join(&lead.stream),
            )?;
        }
        for _ in 0..iters {
            self.enqueue()?;
        }
        lead.bind()?;
        for g in self.others() {
            cu(
                "join the second device's stream",
                lead.stream.join(&g.stream),
            )?;
        }
        self.timer.stop(&lead.stream)?;
        hung_together(self.timer.elapsed(iters), self.contexts())
    }

    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Single
    }

    fn notes(&self) -> Vec<String> {
        let how = match (&self.ways[0].kernel, self.spec.op) {
            (None, P2pOp::Write) => "copy engine of the source (cuMemcpyPeerAsync)".to_string(),
            (None, P2pOp::Read) => "copy engine of the destination (cuMemcpyPeerAsync)".to_string(),
            (Some(_), op) => format!(
                "SM copy kernel on the {} over the peer mapping: {} blocks × {BLOCK} threads",
                if op == P2pOp::Write {
                    "source"
                } else {
                    "destination"
                },
                self.grid
            ),
        };
        let mut v = vec![how];
        if !self.peer {
            v.push("no peer access between the two (cuDeviceCanAccessPeer): the driver stages the copy through host memory".into());
        }
        if self.spec.bidirectional {
            v.push("both ways at once, each device on its own stream".into());
        }
        v
    }
}
