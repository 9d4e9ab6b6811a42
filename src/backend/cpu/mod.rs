//! The CPU backend: real, multithreaded kernels on the host, so every workload builds, runs and
//! verifies on any machine.
//!
//! * matmul (`gemm`): the `gemm` crate on this backend's own rayon pool. f32 and f16 run
//!   natively; bf16, tf32 and fp8 are widened to f32 once at prepare time (the CPU has no
//!   faster path for them) and int8 to f64, which multiplies and accumulates integers exactly.
//! * attention (`flash`): a blocked online-softmax kernel that never materialises the
//!   Lq×Lkv score matrix.
//! * memory (`stream`): copy / read / write / triad over f32 arrays.
//! * transfer (`memcpy`): host memory to host memory, labelled as such (the CPU has no link).
//! * collective (`threads`): the ranks are threads of this process over shared memory (the
//!   group seam, `prepare_group`); a host-memory figure, never a network one.
//! * p2p: none (one device has no peer).
//!
//! All work runs inside [`CpuBackend`]'s pool (`pool.install`), so `--threads` bounds every
//! kernel, including the ones `gemm` parallelises itself.

mod attention;
mod collective;
mod matmul;
mod memory;
mod p2p;
mod pages;
mod sgemm;
pub use sgemm::forced as sgemm_forced;
mod transfer;

use crate::backend::{
    quick, Backend, BackendKind, CachePolicy, CpuFacts, DeviceDetails, DeviceInfo, Group, ImplInfo,
    PrepareOptions, Prepared, RankLayout, Request, Sustained, Telemetry,
};
use crate::dtype::{ComputeType, DType};
use crate::error::{Error, Result};
use crate::tensor::{Data, Tensor};
use crate::workload::{BLayout, InputSpec, MemOp, Workload};

/// Implementation name of the CPU matmul.
pub const MATMUL_IMPL: &str = "gemm";
/// Implementation name of the CPU attention.
pub const ATTENTION_IMPL: &str = "flash";
/// Implementation name of the CPU memory operations.
pub const MEMORY_IMPL: &str = "stream";
/// Implementation name of the CPU host↔"device" copy.
pub const TRANSFER_IMPL: &str = "memcpy";
/// Implementation name of the CPU collectives (ranks as threads).
pub const COLLECTIVE_IMPL: &str = "threads";
/// The most ranks a CPU collective runs (one thread each): beyond a few hundred threads the
/// figure says nothing and the host struggles to spawn them.
pub const MAX_THREAD_RANKS: u32 = 256;

/// What the CPU backend has for one workload kind: each kind's module here implements it for
/// the kind's spec, and [`kernel`] is the one place this backend names the kinds.
trait CpuKernel {
    /// The implementation of this spec; `None` when the CPU cannot run it.
    fn implementation(&self) -> Option<ImplInfo>;
    /// Bytes one buffer set occupies.
    fn bytes_per_set(&self) -> u64;
    /// Allocates the buffer sets and fills them with the inputs.
    fn prepare<'a>(&self, cpu: &'a CpuBackend, alloc: Alloc) -> Run<'a>;
    /// Prepares the work as one member of a group (a collective's ranks as threads). The
    /// default: the CPU is one device, and the kind is not a group one.
    fn prepare_group<'a>(&self, group: &Group<'a>, inputs: &[Tensor]) -> Run<'a> {
        let _ = (group, inputs);
        Err(needs_two("this workload"))
    }
}

/// Why the CPU cannot run `what` (a workload of two devices): it is one.
fn needs_two(what: &str) -> Error {
    Error::unsupported(format!("the CPU backend is one device: {what} needs two"))
}

/// What a kind's kernel prepares a run from: the inputs (already checked against the spec),
/// how many buffer sets to rotate through, and the cache label the result will carry.
struct Alloc<'i> {
    inputs: &'i [Tensor],
    sets: usize,
    policy: CachePolicy,
}

impl Alloc<'_> {
    /// How many buffer sets a kernel allocates (and its timed runs rotate through).
    fn count(&self) -> usize {
        self.sets.max(1)
    }
}

/// A prepared CPU run, or why it could not be prepared.
type Run<'a> = Result<Box<dyn Prepared + 'a>>;

/// `run` as the [`Run`] every kernel returns.
fn boxed<'a>(run: Result<impl Prepared + 'a>) -> Run<'a> {
    Ok(Box::new(run?))
}

/// The CPU kernel of `w`'s kind.
fn kernel(w: &Workload) -> &dyn CpuKernel {
    match w {
        Workload::Matmul(m) => m,
        Workload::Attention(a) => a,
        Workload::Memory(m) => m,
        Workload::Transfer(t) => t,
        Workload::P2p(p) => p,
        Workload::Collective(c) => c,
        Workload::Kernel(k) => &**k,
    }
}

/// A user's CUDA kernel runs on a GPU only: the CPU lists no implementation of it and refuses
/// it with [`super::needs_gpu`] (in [`Backend::check`], before anything is prepared).
impl CpuKernel for crate::workload::KernelSpec {
    fn implementation(&self) -> Option<ImplInfo> {
        None
    }
    fn bytes_per_set(&self) -> u64 {
        crate::workload::WorkloadKind::buffer_bytes(self)
    }
    fn prepare<'a>(&self, _: &'a CpuBackend, _: Alloc) -> Run<'a> {
        Err(super::needs_gpu(BackendKind::Cpu))
    }
}

/// The host CPU as a gpuvet device.
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
    device: DeviceInfo,
}

impl CpuBackend {
    /// A backend running on `threads` worker threads (0 = one per logical CPU).
    ///
    /// The pool is owned by the backend rather than taken from rayon's global pool, so that the
    /// thread count is exactly what was asked for even when the global pool is already set up.
    pub fn new(threads: usize) -> Result<CpuBackend> {
        let threads = if threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            threads
        };
        if threads > 4096 {
            return Err(Error::invalid(format!(
                "--threads {threads} is beyond any CPU (at most 4096)"
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("gpuvet-cpu-{i}"))
            .build()
            .map_err(|e| Error::backend("cpu", format!("cannot start {threads} threads: {e}")))?;
        let host = crate::env::HostInfo::capture();
        let details = DeviceDetails {
            cpu: CpuFacts {
                threads: Some(threads as u64),
                logical_cpus: Some(host.logical_cpus as u64),
                physical_cores: host.cpu_cores.map(|c| c as u64),
                simd: Some(simd_level().into()),
            },
            ..DeviceDetails::default()
        };
        let device = DeviceInfo {
            index: 0,
            backend: Some(BackendKind::Cpu),
            name: host.cpu_model,
            multiprocessors: Some(threads as u32),
            memory_bytes: Some(host.memory_bytes),
            last_level_cache_bytes: Some(crate::env::cpu_last_level_cache()),
            details,
            ..DeviceInfo::default()
        };
        Ok(CpuBackend {
            pool,
            threads,
            device,
        })
    }

    /// Worker threads every kernel of this backend runs on.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// The widest SIMD instruction set the host offers, for the device details.
fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2+fma";
        }
        "sse2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

impl Backend for CpuBackend {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }

    /// Ranks exchanging through host memory with threads: a few GB/s, tens of µs at the least
    /// (an assumption that only sizes a world's batches; the figures are measured).
    fn collective_pace(&self) -> super::Pace {
        super::Pace {
            bytes_per_s: 5e9,
            latency_s: 20e-6,
        }
    }

    fn implementations(&self, w: &Workload) -> Vec<ImplInfo> {
        kernel(w).implementation().into_iter().collect()
    }

    fn rank_layout(&self) -> RankLayout {
        RankLayout::Threads {
            default: (self.threads as u32).clamp(2, 8),
        }
    }

    fn check(&self, w: &Workload, imp: &str) -> Result<()> {
        match w {
            Workload::Kernel(_) => return Err(super::needs_gpu(self.kind())),
            Workload::Collective(c) if c.ranks > MAX_THREAD_RANKS => {
                return Err(Error::invalid(format!(
                    "{} ranks: the CPU backend runs each rank as a thread of this process, at \
                     most {MAX_THREAD_RANKS}",
                    c.ranks
                )))
            }
            _ => {}
        }
        super::check_listed(self, w, imp)
    }

    fn free_memory(&self) -> Result<u64> {
        Ok(crate::env::available_memory())
    }

    /// A CPU soak is a test of gpuvet itself, so it stays small.
    fn stress_size(&self, purpose: Sustained) -> u64 {
        match purpose {
            Sustained::Stress => 1024,
            Sustained::Soak => 512,
        }
    }

    /// Sizes scaled so the whole suite stays under a minute on a 2-core machine.
    fn quick_suite(&self) -> Vec<Workload> {
        vec![
            quick::memory(MemOp::Copy, 256 << 20),
            quick::memory(MemOp::Triad, 256 << 20),
            quick::matmul(2048, DType::F32, BLayout::Kn),
            quick::matmul(1024, DType::Bf16, BLayout::Nk),
            quick::matmul(1024, DType::F16, BLayout::Nk),
            quick::matmul(512, DType::Int8, BLayout::Nk),
            quick::attention((1, 8, 2), (1024, 1024), true, DType::F32),
            quick::attention((4, 32, 8), (1, 4096), true, DType::Bf16),
        ]
    }

    fn memory_needed(&self, w: &Workload, sets: usize) -> u64 {
        kernel(w).bytes_per_set().saturating_mul(sets.max(1) as u64)
    }

    fn prepare_checked<'a>(&'a self, r: Request<'_>) -> Result<Box<dyn Prepared + 'a>> {
        let (w, inputs, opts) = (r.workload, r.inputs, r.opts);
        check_inputs(w, inputs)?;
        let sets = opts.buffer_sets.max(1);
        let policy = cache_policy(opts, sets);
        kernel(w).prepare(
            self,
            Alloc {
                inputs,
                sets,
                policy,
            },
        )
    }

    fn prepare_group_checked<'a>(
        &'a self,
        group: &Group<'a>,
        r: Request<'_>,
    ) -> Result<Box<dyn Prepared + 'a>> {
        check_inputs(r.workload, r.inputs)?;
        kernel(r.workload).prepare_group(group, r.inputs)
    }

    fn telemetry(&self) -> Option<Telemetry> {
        let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        let mhz = average_mhz(&text)?;
        Some(Telemetry {
            sm_clock_mhz: Some(mhz),
            ..Telemetry::default()
        })
    }
}

/// Mean of the `cpu MHz` lines of /proc/cpuinfo; `None` when there are none.
fn average_mhz(cpuinfo: &str) -> Option<f64> {
    let values: Vec<f64> = cpuinfo
        .lines()
        .filter(|l| l.starts_with("cpu MHz"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// How caches are treated, as reported in results.
fn cache_policy(opts: PrepareOptions, sets: usize) -> CachePolicy {
    if opts.hot {
        CachePolicy::Hot
    } else if sets > 1 {
        CachePolicy::Rotate(sets)
    } else {
        CachePolicy::Single
    }
}

/// Rejects inputs whose count, shape or storage type does not match the workload, so that a
/// caller's mistake is an error rather than an out-of-bounds read in a kernel.
fn check_inputs(w: &Workload, inputs: &[Tensor]) -> Result<()> {
    let expected = w.input_specs();
    Error::expect_count(w.name(), "input tensors", expected.len(), inputs.len())?;
    for (t, InputSpec { name, shape, dtype }) in inputs.iter().zip(expected) {
        if t.shape != shape {
            return Err(Error::invalid(format!(
                "{}: input {name} has shape {:?}, expected {shape:?}",
                w.name(),
                t.shape
            )));
        }
        if !storage_matches(&t.data, dtype) {
            return Err(Error::invalid(format!(
                "{}: input {name} is stored as {}, expected {dtype}",
                w.name(),
                t.storage_name()
            )));
        }
        if t.as_bytes().len() as u64 != t.len() as u64 * dtype.size() {
            return Err(Error::invalid(format!(
                "{}: input {name} holds a different number of elements than its shape",
                w.name()
            )));
        }
    }
    Ok(())
}

/// Whether `data` is the storage [`Tensor::from_f32`] uses for `dtype`.
fn storage_matches(data: &Data, dtype: DType) -> bool {
    matches!(
        (data, dtype),
        (Data::F32(_), DType::F32 | DType::Tf32)
            | (Data::F16(_), DType::F16)
            | (Data::Bf16(_), DType::Bf16)
            | (Data::F8E4M3(_), DType::Fp8E4m3)
            | (Data::F8E5M2(_), DType::Fp8E5m2)
            | (Data::I8(_), DType::Int8)
    )
}

/// Seconds that `iters` calls of `step` take: the timed loop of every CPU kernel.
fn timed(iters: u64, mut step: impl FnMut()) -> f64 {
    let start = std::time::Instant::now();
    for _ in 0..iters {
        step();
    }
    start.elapsed().as_secs_f64()
}

/// A CPU kernel over buffer sets, as [`Rotating`] runs it.
trait SetKernel {
    fn compute_dtype(&self) -> ComputeType;
    /// Poisons the output of set 0, runs once on it and reads the output back.
    fn run_verify(&mut self) -> Result<Tensor>;
    /// One run on set `i`.
    fn run_set(&mut self, i: usize);
    /// After each batch of timed runs.
    fn after_runs(&self) {}
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The one [`Prepared`] of the CPU kernels over buffer sets: timed runs use one set after
/// another (wrapping), so that no run finds its data in cache from the run before; set 0 is
/// the one verified.
struct Rotating<K> {
    kernel: K,
    sets: usize,
    next: usize,
    policy: CachePolicy,
}

/// `kernel`, prepared with the buffer sets of `a`, as the [`Run`] every kernel returns.
fn rotating<'a>(kernel: Result<impl SetKernel + 'a>, a: &Alloc) -> Run<'a> {
    boxed(kernel.map(|kernel| Rotating {
        kernel,
        sets: a.count(),
        next: 0,
        policy: a.policy.clone(),
    }))
}

impl<K: SetKernel> Prepared for Rotating<K> {
    fn compute_dtype(&self) -> ComputeType {
        self.kernel.compute_dtype()
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        self.kernel.run_verify()
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        let secs = timed(iters, || {
            let i = self.next;
            self.next = (i + 1) % self.sets;
            self.kernel.run_set(i);
        });
        self.kernel.after_runs();
        Ok(secs)
    }

    fn cache_policy(&self) -> CachePolicy {
        self.policy.clone()
    }

    fn notes(&self) -> Vec<String> {
        self.kernel.notes()
    }
}

/// `dst` = `src`, copied in parallel chunks of `chunk` elements (on the caller's pool).
fn par_copy(dst: &mut [f32], src: &[f32], chunk: usize) {
    use rayon::prelude::*;
    dst.par_chunks_mut(chunk)
        .zip(src.par_chunks(chunk))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

/// Splits `len` items into chunks for rayon: enough chunks to balance `threads` workers, none
/// so small that scheduling costs more than the work.
fn chunk_len(len: usize, threads: usize, min: usize) -> usize {
    let target = len.div_ceil(threads.max(1) * 4).max(1);
    target.max(min).min(len.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_mhz() {
        let text = "processor : 0\ncpu MHz\t\t: 2000.000\nprocessor : 1\ncpu MHz\t\t: 3000.5\n";
        assert_eq!(average_mhz(text), Some(2500.25));
        assert_eq!(average_mhz("processor : 0\n"), None);
    }

    #[test]
    fn chunks_balance_and_bound() {
        assert_eq!(chunk_len(0, 2, 16), 1);
        assert_eq!(chunk_len(10, 2, 16), 10);
        assert_eq!(chunk_len(1 << 20, 2, 16), 1 << 17);
    }

    #[test]
    fn policy_names() {
        let o = |hot| PrepareOptions {
            buffer_sets: 3,
            hot,
        };
        assert_eq!(cache_policy(o(false), 3), "rotate(3)");
        assert_eq!(cache_policy(o(true), 1), "hot");
        assert_eq!(cache_policy(o(false), 1), "single");
    }
}
