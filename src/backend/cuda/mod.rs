//! CUDA backend: cudarc device layer, NVRTC kernel pipeline, cuBLASLt references, NVML
//! telemetry.
//!
//! Nothing here may panic on a machine without CUDA: [`libs::probe`] finds and loads each
//! library by absolute path before cudarc is called (cudarc panics on a missing library), and
//! every entry point into cudarc is additionally wrapped in `catch_unwind`. With no driver or
//! no GPU, [`open_all`] returns `Error::BackendUnavailable` with one line saying why.
//!
//! | module | job |
//! |---|---|
//! | `libs` | finding and loading libcuda, libnvrtc, libcublasLt, libnvidia-ml |
//! | `device` | context, stream, raw buffers, module loading, inventory |
//! | `nvml` | device state and telemetry, matched by UUID / PCI bus id |
//! | `kernels`, `nvrtc` | kernel ids and sources, compile to CUBIN, on-disk cache |
//! | `timing` | CUDA events |
//! | `error` | driver errors kept typed (out of memory, illegal address, other) |
//! | `launch` | the typed kernel launcher and its argument builder |
//! | `run` | the one prepared run (poison, verify, rotate, time, drop) |
//! | `matmul`, `memory`, `attention`, `own_*` | what each workload enqueues (`run::Exec`) |

pub mod attention;
pub mod device;
pub mod error;
pub mod kernels;
pub mod launch;
pub mod libs;
pub mod matmul;
pub mod memory;
pub mod nvml;
pub mod nvrtc;
pub mod own_attention;
pub mod own_matmul;
pub mod registry;
pub mod run;
pub mod timing;
pub mod user;

use super::{
    quick, Backend, BackendKind, DeviceInfo, ImplInfo, MemoryNeeds, PrepareOptions, Prepared,
    Sustained, Telemetry,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::{MemOp, Workload};
use device::Gpu;
use kernels::KernelId;
use memory::MemImpl;
use serde_json::json;

fn unavailable(reason: impl Into<String>) -> Error {
    Error::BackendUnavailable {
        backend: "cuda".into(),
        reason: reason.into(),
    }
}

/// Runs `f`, turning a panic inside cudarc (a library or symbol that could not be loaded)
/// into `BackendUnavailable` instead of an abort.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(unavailable(format!(
            "a CUDA library call panicked while {what} (a library or symbol is missing); the CPU backend still works; check the driver and CUDA libraries (docs/cuda.md)"
        )))
    })
}

/// Opens every visible CUDA device as a backend, or says why none can be opened (no driver,
/// no GPU, a missing library). Never panics, even when libcuda is absent.
pub fn open_all() -> Result<Vec<Box<dyn Backend>>> {
    let probe = libs::probe();
    let driver = probe.driver.as_ref().map_err(|e| unavailable(e.clone()))?;
    // SAFETY: only dlopens candidate names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(unavailable(libs::no_driver_line(
            "cudarc cannot load libcuda by name",
        )));
    }
    guarded("opening CUDA devices", || {
        cudarc::driver::result::init().map_err(|e| {
            unavailable(format!(
                "the NVIDIA driver (CUDA {}) failed to initialise: {e:?}; the CPU backend still works; check nvidia-smi and CUDA_VISIBLE_DEVICES",
                driver.version_string()
            ))
        })?;
        let count = cudarc::driver::result::device::get_count()
            .map_err(|e| unavailable(format!("cannot count CUDA devices: {e:?}")))?;
        if count <= 0 {
            return Err(unavailable(format!(
                "the NVIDIA driver (CUDA {}) sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES); the CPU backend still works",
                driver.version_string()
            )));
        }
        // A device that fails to open (a fault, a MIG configuration without access) does not
        // keep the others from being measured; its reason goes into the first one's notice.
        let mut out: Vec<CudaBackend> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        for i in 0..count as usize {
            match CudaBackend::open(i) {
                Ok(b) => out.push(b),
                Err(e) => failed.push(format!("CUDA device {i} could not be opened: {e}")),
            }
        }
        if out.is_empty() {
            return Err(unavailable(failed.join("; ")));
        }
        // Every notice so far is about the process (libraries), not a device: say it once.
        for b in out.iter_mut().skip(1) {
            b.notice = None;
        }
        if !failed.is_empty() {
            let first = &mut out[0];
            let mut lines: Vec<String> = first.notice.take().into_iter().collect();
            lines.extend(failed);
            first.notice = Some(lines.join("\n"));
        }
        Ok(out
            .into_iter()
            .map(|b| Box::new(b) as Box<dyn Backend>)
            .collect())
    })
}

/// Hash of the kernel sources and compile options, recorded in every GPU report.
pub fn kernel_hash() -> Option<String> {
    Some(kernels::sources_hash())
}

/// Text for `gpuvet list --kernels [-v]`: every kernel id; with `verbose`, the registers and
/// spills ptxas reports for this GPU's architecture (or sm_90a without a GPU).
pub fn list_kernels(verbose: bool) -> Result<String> {
    let mut s = String::new();
    let width = KernelId::ALL
        .iter()
        .map(|k| k.id().len())
        .max()
        .unwrap_or(0);
    let (arch, arch_note) = if verbose {
        detect_arch()
    } else {
        (String::new(), String::new())
    };
    let mut logs: Vec<(kernels::Source, String)> = Vec::new();
    let mut compile_note = None;
    if verbose {
        for src in kernels::Source::ALL {
            match nvrtc::compile(src, &arch) {
                Ok(c) => logs.push((src, c.log)),
                Err(e) => {
                    compile_note = Some(e.to_string());
                    break;
                }
            }
        }
        s.push_str(&format!(
            "CUDA kernels (compiled for {arch}{arch_note}), sources hash {}\n",
            kernels::sources_hash()
        ));
    } else {
        s.push_str(&format!(
            "CUDA kernels, sources hash {}\n",
            kernels::sources_hash()
        ));
    }
    for k in KernelId::ALL {
        s.push_str(&format!(
            "  {:width$}  {:<16} {}",
            k.id(),
            k.symbol(),
            k.description()
        ));
        if verbose {
            let res = logs
                .iter()
                .find(|(src, _)| *src == k.source())
                .and_then(|(_, log)| nvrtc::resources_of(log, k));
            if let Some(r) = res {
                s.push_str(&format!(
                    "  [{} registers, {} B spill stores, {} B spill loads, {} B stack]",
                    r.registers, r.spill_stores, r.spill_loads, r.stack_bytes
                ));
            }
        }
        s.push('\n');
    }
    if let Some(n) = compile_note {
        s.push_str(&format!("registers and spills unavailable: {n}\n"));
    }
    Ok(s)
}

/// The architecture of CUDA device 0, or sm_90a (the reference H200) without a GPU.
fn detect_arch() -> (String, String) {
    let fallback = (
        "sm_90a".to_string(),
        ", no GPU here: showing the H200 target".to_string(),
    );
    if libs::probe().driver.is_err() {
        return fallback;
    }
    guarded("reading the compute capability", || {
        use cudarc::driver::result as dr;
        use cudarc::driver::sys::CUdevice_attribute_enum as A;
        let err = |e| error::driver("reading the compute capability", e);
        dr::init().map_err(err)?;
        let dev = dr::device::get(0).map_err(err)?;
        // SAFETY: a valid device handle.
        let (ma, mi) = unsafe {
            (
                dr::device::get_attribute(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                    .map_err(err)?,
                dr::device::get_attribute(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
                    .map_err(err)?,
            )
        };
        Ok((nvrtc::arch_for(ma, mi), ", CUDA device 0".to_string()))
    })
    .unwrap_or(fallback)
}

/// How caches are handled, as reported in each result.
pub fn cache_policy(opts: PrepareOptions, working_set: u64, l2: u64) -> String {
    let sets = opts.buffer_sets.max(1);
    if opts.hot {
        "hot".into()
    } else if sets > 1 {
        format!("rotate({sets})")
    } else if working_set >= 2 * l2 {
        "cold (working set ≥ 2× L2)".into()
    } else {
        "warm (1 buffer set smaller than 2× L2)".into()
    }
}

/// One CUDA device.
pub struct CudaBackend {
    gpu: Gpu,
    info: DeviceInfo,
    notice: Option<String>,
    /// Implementations added at run time (user kernels), after the built-in ones.
    registry: registry::Registry,
}

impl CudaBackend {
    fn open(ordinal: usize) -> Result<CudaBackend> {
        let gpu = Gpu::open(ordinal)?;
        let p = &gpu.props;
        let probe = libs::probe();
        let mut details = p.details();
        if let Ok(d) = &probe.driver {
            details.insert("cuda_driver_api".into(), json!(d.version_string()));
        }
        // The library each piece resolved to, as cudarc uses it (see libs::cudarc_nvrtc_file).
        let mut lib_notes: Vec<String> = Vec::new();
        match &probe.nvrtc {
            Ok(l) => {
                if let Ok((a, b)) = nvrtc::version() {
                    details.insert("nvrtc_version".into(), json!(format!("{a}.{b}")));
                }
                let used = libs::cudarc_nvrtc_file().unwrap_or_else(|| l.path.clone());
                details.insert("nvrtc".into(), json!(used.display().to_string()));
                lib_notes.extend(libs::mismatch_line(libs::Lib::Nvrtc, &l.path, &used));
            }
            Err(_) => {
                details.insert("nvrtc".into(), json!(null));
            }
        }
        match &probe.cublaslt {
            Ok(l) => {
                let used = libs::cudarc_cublaslt_file().unwrap_or_else(|| l.path.clone());
                details.insert("cublaslt".into(), json!(used.display().to_string()));
                lib_notes.extend(libs::mismatch_line(libs::Lib::CublasLt, &l.path, &used));
                if let Some(v) = cublaslt_version() {
                    details.insert("cublaslt_version".into(), json!(v));
                }
            }
            Err(_) => {
                details.insert("cublaslt".into(), json!(null));
            }
        }
        let mut driver_version = probe
            .driver
            .as_ref()
            .ok()
            .map(|d| format!("CUDA {}", d.version_string()));
        if let Some(n) = nvml::nvml() {
            if let Some(d) = nvml::find(n, &p.uuid, &p.pci_bus_id) {
                details.extend(nvml::details(&d));
            }
            if let Some(v) = nvml::driver_version() {
                driver_version = Some(v);
            }
        }
        let notes: Vec<String> = [
            probe.nvrtc.as_ref().err(),
            probe.cublaslt.as_ref().err(),
            probe.nvml.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .chain(lib_notes)
        .collect();
        let info = DeviceInfo {
            index: ordinal,
            backend: Some(BackendKind::Cuda),
            name: p.name.clone(),
            uuid: Some(p.uuid.clone()),
            pci_bus_id: Some(p.pci_bus_id.clone()),
            compute_capability: Some(format!("{}.{}", p.cc.0, p.cc.1)),
            multiprocessors: Some(p.sms),
            memory_bytes: Some(p.total_mem),
            last_level_cache_bytes: Some(p.l2_bytes),
            driver_version,
            details,
            // Filled above the backend, from the GPU database (gpudb::with_peaks).
            peaks: None,
        };
        Ok(CudaBackend {
            gpu,
            info,
            notice: (!notes.is_empty()).then(|| notes.join("\n")),
            registry: registry::Registry::default(),
        })
    }

    /// Why `w` cannot run here at all (a missing library, an unsupported dtype), if it cannot.
    fn blocker(&self, w: &Workload) -> Option<Error> {
        let probe = libs::probe();
        let lib = |r: &std::result::Result<libs::Loaded, String>| {
            r.as_ref().err().map(|e| Error::unsupported(e.clone()))
        };
        match w {
            Workload::Matmul(m) => {
                lib(&probe.cublaslt).or_else(|| matmul::plan(m, self.gpu.props.cc).err())
            }
            Workload::Attention(a) => lib(&probe.cublaslt)
                .or_else(|| lib(&probe.nvrtc))
                .or_else(|| attention::plan(a, self.gpu.props.cc).err()),
            Workload::Memory(_) => None,
            Workload::Kernel(_) => lib(&probe.nvrtc),
        }
    }

    /// The built-in implementations of `w` on this device (the registry's come after them).
    fn builtin_implementations(&self, w: &Workload) -> Vec<ImplInfo> {
        if self.blocker(w).is_some() {
            return Vec::new();
        }
        let nvrtc_ok = libs::probe().nvrtc.is_ok();
        match w {
            Workload::Matmul(m) => {
                let reference =
                    ImplInfo::new("cublaslt", "cuBLASLt matmul, heuristic algorithm", true);
                let p = &self.gpu.props;
                with_own(reference, nvrtc_ok, || {
                    own_matmul::implementations(m, p.cc, p.sms)
                })
            }
            Workload::Attention(a) => {
                let reference = ImplInfo::new(
                    "unfused",
                    "cuBLASLt Q·Kᵀ, softmax kernel, cuBLASLt P·V (S materialised)",
                    true,
                );
                let lim = own_attention::Limits::of(&self.gpu.props);
                with_own(reference, nvrtc_ok, || {
                    own_attention::implementations(a, &lim)
                })
            }
            Workload::Memory(m) => {
                let mut v = Vec::new();
                if nvrtc_ok {
                    v.push(ImplInfo::new(
                        "kernel",
                        "gpuvet float4 grid-stride kernel",
                        false,
                    ));
                }
                if m.op == MemOp::Copy {
                    v.push(ImplInfo::new("memcpy", "driver cuMemcpyDtoDAsync", true));
                }
                v
            }
            Workload::Kernel(_) => vec![ImplInfo::new(
                USER_IMPL,
                "the user's kernel, compiled by NVRTC for this GPU",
                false,
            )],
        }
    }

    /// The plan-time check of a free-form kernel: compiled, its entry found, its arguments
    /// against the PTX and its launch against this device.
    fn check_user_spec(&self, k: &crate::workload::KernelSpec) -> Result<()> {
        guarded("checking a user kernel", || user::check_spec(&self.gpu, k))
    }

    /// Adds a user implementation of `workload` kind (`matmul`, `attention`, `memory`): from
    /// then on `implementations`, `check` and `prepare` treat `info.name` like a built-in one.
    /// Refuses a name the backend already has for that kind.
    pub fn register_implementation(
        &mut self,
        workload: &'static str,
        info: ImplInfo,
        factory: registry::Factory,
    ) -> Result<()> {
        let builtin = builtin_names(workload);
        self.registry.register(workload, info, factory, builtin)
    }
}

/// The one implementation of a free-form user kernel (`bench kernel --spec`).
pub const USER_IMPL: &str = "user";

/// The built-in implementation names of a workload kind, whatever the device.
pub fn builtin_names(workload: &str) -> &'static [&'static str] {
    match workload {
        "matmul" => &["cublaslt", own_matmul::SIMT, own_matmul::MMA],
        "attention" => &[
            "unfused",
            own_attention::PREFILL_IMPL,
            own_attention::DECODE_IMPL,
            own_attention::PAGED16_IMPL,
            own_attention::PAGED64_IMPL,
        ],
        "memory" => &["kernel", "memcpy"],
        _ => &[],
    }
}

/// The library reference implementation, then the own kernels when NVRTC can compile them.
fn with_own(
    reference: ImplInfo,
    nvrtc_ok: bool,
    own: impl FnOnce() -> Vec<ImplInfo>,
) -> Vec<ImplInfo> {
    let mut v = vec![reference];
    if nvrtc_ok {
        v.extend(own());
    }
    v
}

impl Backend for CudaBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cuda
    }

    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn implementations(&self, w: &Workload) -> Vec<ImplInfo> {
        let mut v = self.builtin_implementations(w);
        // Registered (user) kernels need NVRTC only, not cuBLASLt.
        if libs::probe().nvrtc.is_ok() {
            v.extend(self.registry.implementations(w));
        }
        v
    }

    fn check(&self, w: &Workload, imp: &str) -> Result<()> {
        if let Some(r) = self.registry.find(w.kind(), imp) {
            nvrtc::available()?;
            return match &r.check {
                Some(check) => guarded("checking a user kernel", || check(&self.gpu, w)),
                None => Ok(()),
            };
        }
        if let (Workload::Kernel(k), USER_IMPL) = (w, imp) {
            nvrtc::available()?;
            return self.check_user_spec(k);
        }
        if let Some(e) = self.blocker(w) {
            return Err(e);
        }
        if self.implementations(w).iter().any(|i| i.name == imp) {
            return Ok(());
        }
        if let Workload::Memory(m) = w {
            if imp == "kernel" {
                if let Err(e) = &libs::probe().nvrtc {
                    return Err(Error::unsupported(e.clone()));
                }
            }
            MemImpl::for_op(m.op, imp)?;
        }
        // Own attention kernels say why they cannot run this spec (head dim, dtype, length).
        if let (Workload::Attention(a), Some(kind)) = (w, own_attention::Kind::for_impl(imp)) {
            own_attention::plan(a, kind, &own_attention::Limits::of(&self.gpu.props))?;
        }
        // Own matmul kernels say why they cannot run this spec (dtype, compute capability).
        if let (Workload::Matmul(m), own_matmul::SIMT | own_matmul::MMA) = (w, imp) {
            let p = &self.gpu.props;
            own_matmul::plan(m, imp, p.cc, p.sms)?;
        }
        let have: Vec<String> = self
            .implementations(w)
            .into_iter()
            .map(|i| i.name)
            .collect();
        Err(Error::unsupported(format!(
            "cuda has no implementation `{imp}` of {} on {} (available: {})",
            w.name(),
            self.info.name,
            have.join(", ")
        )))
    }

    fn free_memory(&self) -> Result<u64> {
        guarded("reading free memory", || self.gpu.free_memory())
    }

    fn memory_needed(&self, w: &Workload, sets: usize) -> u64 {
        match w {
            Workload::Matmul(m) => matmul::memory_needed(m, sets),
            Workload::Attention(a) => attention::memory_needed(a, sets),
            Workload::Memory(m) => {
                let grid =
                    self.gpu
                        .stream_grid(memory::BLOCK, memory::MIN_ELEMS_PER_BLOCK, m.elements());
                memory::memory_needed(m, sets, grid as u64)
            }
            Workload::Kernel(_) => w.footprint().saturating_mul(sets.max(1) as u64),
        }
    }

    /// Buffers live on the GPU; the host holds only the copies read back for verification.
    fn memory_needs(&self, w: &Workload, sets: usize) -> MemoryNeeds {
        MemoryNeeds {
            host: w.footprint(),
            device: self.memory_needed(w, sets),
        }
    }

    fn is_gpu(&self) -> bool {
        true
    }

    fn kernel_hash(&self) -> Option<String> {
        kernel_hash()
    }

    fn stress_size(&self, _: Sustained) -> u64 {
        8192
    }

    /// Memory bandwidth far beyond L2, the vendor GEMM at 8192³ for every dtype (those the
    /// device lacks are skipped), prefill and decode attention.
    fn quick_suite(&self) -> Vec<Workload> {
        use crate::dtype::DType;
        use crate::workload::BLayout;
        let mut v = vec![
            quick::memory(MemOp::Copy, 4 << 30),
            quick::memory(MemOp::Triad, 4 << 30),
        ];
        for d in [
            DType::Bf16,
            DType::F16,
            DType::Fp8E4m3,
            DType::Int8,
            DType::Tf32,
            DType::F32,
        ] {
            v.push(quick::matmul(8192, d, BLayout::Nk));
        }
        v.push(quick::attention(
            (1, 32, 8),
            (4096, 4096),
            true,
            DType::Bf16,
        ));
        v.push(quick::attention((64, 32, 8), (1, 8192), true, DType::Bf16));
        v
    }

    fn prepare<'a>(
        &'a self,
        w: &Workload,
        imp: &str,
        inputs: &[Tensor],
        opts: PrepareOptions,
    ) -> Result<Box<dyn Prepared + 'a>> {
        w.validate()?;
        self.check(w, imp)?;
        let sets = if opts.hot { 1 } else { opts.buffer_sets.max(1) };
        let policy = cache_policy(opts, w.footprint(), self.gpu.props.l2_bytes);
        let gpu = &self.gpu;
        guarded("preparing a workload", || {
            gpu.bind()?;
            if let Some(r) = self.registry.find(w.kind(), imp) {
                let ctx = registry::PrepareCtx {
                    gpu,
                    workload: w,
                    inputs,
                    sets,
                    policy,
                };
                return (r.factory)(ctx);
            }
            Ok(match w {
                Workload::Matmul(m) if imp != "cublaslt" => Box::new(own_matmul::OwnMatmulRun::new(
                    gpu, m, imp, inputs, sets, policy,
                )?)
                    as Box<dyn Prepared + 'a>,
                Workload::Matmul(m) => {
                    Box::new(matmul::MatmulRun::new(gpu, m, inputs, sets, policy)?)
                }
                Workload::Attention(a) if own_attention::Kind::for_impl(imp).is_some() => {
                    let kind = own_attention::Kind::for_impl(imp).expect("matched by the guard");
                    Box::new(own_attention::FlashRun::new(
                        gpu, a, kind, inputs, sets, policy,
                    )?)
                }
                Workload::Attention(a) => {
                    Box::new(attention::AttentionRun::new(gpu, a, inputs, sets, policy)?)
                }
                Workload::Memory(m) => {
                    let mi = MemImpl::for_op(m.op, imp)?;
                    Box::new(memory::MemoryRun::new(gpu, m, mi, inputs, sets, policy)?)
                }
                Workload::Kernel(k) => user::prepare_spec(gpu, k, inputs, sets, policy)?,
            })
        })
    }

    fn register_user_kernel(
        &mut self,
        workload: &'static str,
        kernel: &crate::workload::kernel::UserKernel,
    ) -> Result<()> {
        let info = ImplInfo::new(
            &kernel.name,
            &format!(
                "user kernel {} from {}",
                kernel.entry,
                kernel.source.display()
            ),
            false,
        );
        let (k1, k2) = (kernel.clone(), kernel.clone());
        let factory: registry::Factory = Box::new(move |ctx| {
            user::prepare_implementation(
                ctx.gpu,
                ctx.workload,
                &k1,
                ctx.inputs,
                ctx.sets,
                ctx.policy,
            )
        });
        let check: registry::Checker =
            Box::new(move |gpu, w| user::check_implementation(gpu, w, &k2));
        let builtin = builtin_names(workload);
        self.registry
            .register_checked(workload, info, factory, Some(check), builtin)
    }

    fn telemetry(&self) -> Option<Telemetry> {
        let n = nvml::nvml()?;
        let d = nvml::find(n, &self.gpu.props.uuid, &self.gpu.props.pci_bus_id)?;
        Some(nvml::telemetry(&d))
    }

    fn current_details(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let n = nvml::nvml()?;
        let d = nvml::find(n, &self.gpu.props.uuid, &self.gpu.props.pci_bus_id)?;
        // Keep the driver-side facts from opening; refresh what NVML reports.
        let mut details = self.info.details.clone();
        details.extend(nvml::details(&d));
        Some(details)
    }

    fn notice(&self) -> Option<String> {
        self.notice.clone()
    }
}

/// `cublasLtGetVersion()` of the cuBLASLt cudarc loaded (e.g. 130100 for 13.1.0), recorded so a
/// run can be matched with PyTorch's, which scripts/torch_reference.py reads with the same call:
/// ±3% comparisons mean little between two builds of the library.
fn cublaslt_version() -> Option<usize> {
    libs::cudarc_cublaslt_file()?;
    // SAFETY: cublasLtGetVersion takes no arguments, touches no state and returns a number; the
    // library was resolved just above. cudarc panics if the symbol cannot be loaded: caught, so
    // the version is then only missing from the report.
    std::panic::catch_unwind(|| unsafe { cudarc::cublaslt::sys::cublasLtGetVersion() }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_all_without_a_gpu_is_a_clean_error() {
        // On machines with a GPU this test has nothing to check: tests/cuda_gpu.rs covers them.
        if libs::probe().driver.is_ok() {
            eprintln!("SKIP open_all_without_a_gpu_is_a_clean_error: an NVIDIA driver is present");
            return;
        }
        match open_all() {
            Err(Error::BackendUnavailable { backend, reason }) => {
                assert_eq!(backend, "cuda");
                assert!(reason.contains("no NVIDIA driver"), "{reason}");
                assert!(!reason.contains('\n'));
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(b) => panic!("{} backends opened without a driver", b.len()),
        }
    }

    #[test]
    fn kernel_listing_always_works() {
        let s = list_kernels(false).unwrap();
        for k in KernelId::ALL {
            assert!(s.contains(k.id()), "{s}");
        }
        assert_eq!(kernel_hash().unwrap().len(), 16);
    }

    #[test]
    fn every_builtin_name_is_reserved_against_registration() {
        let m = crate::workload::MatmulSpec {
            m: 64,
            n: 64,
            k: 64,
            dtype: crate::dtype::DType::Bf16,
            b_layout: crate::workload::BLayout::Nk,
        };
        let names: Vec<String> = own_matmul::implementations(&m, (9, 0), 132)
            .into_iter()
            .map(|i| i.name)
            .collect();
        for n in names.iter().map(String::as_str).chain(["cublaslt"]) {
            assert!(builtin_names("matmul").contains(&n), "{n}");
        }
        for k in [
            "flash",
            "flash-decode",
            "flash-decode-paged16",
            "flash-decode-paged64",
        ] {
            assert!(own_attention::Kind::for_impl(k).is_some());
            assert!(builtin_names("attention").contains(&k), "{k}");
        }
        assert!(builtin_names("memory").contains(&"memcpy"));
    }

    #[test]
    fn cache_policy_names() {
        let o = |sets, hot| PrepareOptions {
            buffer_sets: sets,
            hot,
        };
        assert_eq!(cache_policy(o(4, false), 10, 100), "rotate(4)");
        assert_eq!(cache_policy(o(4, true), 10, 100), "hot");
        assert!(cache_policy(o(1, false), 1000, 100).starts_with("cold"));
        assert!(cache_policy(o(1, false), 10, 100).starts_with("warm"));
    }
}
