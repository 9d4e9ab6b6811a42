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
//! | `tma` | TMA tensor maps: geometry checked, one encoder for any rank |
//! | `registry` | the implementation table and user registrations: what `implementations`, `check` and `prepare` ask |
//! | `row` | what a row of that table is: its kind, check target and verdict, factory context, `Implementation` |
//! | `run` | the one prepared run (buffer sets, poison, verify, rotate, time, drop) |
//! | `matmul`, `memory`, `attention`, `own_*`, `wgmma`, `flash_sm90` | each implementation's plan, factory and `run::Exec` |
//! | `transfer`, `p2p`, `nccl` | host↔device copies (rows of the table), peer copies and NCCL collectives (rows whose runs the group seam builds) |

pub mod attention;
pub mod device;
pub mod error;
pub mod flash_sm90;
pub mod kernels;
pub mod launch;
pub mod libs;
pub mod matmul;
pub mod memory;
pub mod nccl;
pub mod nvml;
pub mod nvrtc;
pub mod own_attention;
pub mod own_matmul;
pub mod p2p;
pub mod registry;
pub mod row;
pub mod run;
pub mod timing;
pub mod tma;
pub mod transfer;
pub mod user;
pub mod user_run;
pub mod wgmma;

use super::{
    quick, Backend, BackendKind, CachePolicy, DeviceInfo, Group, ImplInfo, MemoryNeeds,
    PrepareOptions, Prepared, Request, Sustained, Telemetry,
};
use crate::error::{Error, Result};
use crate::workload::{MemOp, Workload};
use device::Gpu;
use kernels::KernelId;

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
        record_peer_access(&mut out);
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

/// Records in every device's details which of the others it can map
/// (`cuDeviceCanAccessPeer`), by index: the topology matrix reads it.
fn record_peer_access(devices: &mut [CudaBackend]) {
    let n = devices.len();
    if n < 2 {
        return;
    }
    for i in 0..n {
        let peers: Vec<u32> = (0..n)
            .filter(|&j| j != i)
            .filter(|&j| p2p::can_access_peer(&devices[i].gpu, &devices[j].gpu).unwrap_or(false))
            .map(|j| j as u32)
            .collect();
        devices[i].info.details.state.peer_access = Some(peers);
    }
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
        for src in kernels::Source::ALL
            .into_iter()
            .filter(|s| s.builds_for(&arch))
        {
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
            if !k.source().builds_for(&arch) {
                s.push_str(&format!("  [{} only]", k.source().archs().join(", ")));
            } else if let Some(r) = res {
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
pub fn cache_policy(opts: PrepareOptions, working_set: u64, l2: u64) -> CachePolicy {
    let sets = opts.buffer_sets.max(1);
    if opts.hot {
        CachePolicy::Hot
    } else if sets > 1 {
        CachePolicy::Rotate(sets)
    } else if working_set >= 2 * l2 {
        CachePolicy::SingleCold
    } else {
        CachePolicy::SingleWarm
    }
}

/// One CUDA device.
pub struct CudaBackend {
    /// The NCCL communicators of the last group this device led (first field: dropped before
    /// the device's context).
    comms: std::sync::Mutex<Option<(Vec<usize>, std::sync::Arc<nccl::Comms>)>>,
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
            details.cuda.cuda_driver_api = Some(d.version_string());
        }
        // The library each piece resolved to, as cudarc uses it (see libs::cudarc_nvrtc_file).
        let mut lib_notes: Vec<String> = Vec::new();
        match &probe.nvrtc {
            Ok(l) => {
                if let Ok((a, b)) = nvrtc::version() {
                    details.cuda.nvrtc_version = Some(format!("{a}.{b}"));
                }
                let used = libs::cudarc_nvrtc_file().unwrap_or_else(|| l.path.clone());
                details.cuda.nvrtc = Some(Some(used.display().to_string()));
                lib_notes.extend(libs::mismatch_line(libs::Lib::Nvrtc, &l.path, &used));
            }
            Err(_) => {
                details.cuda.nvrtc = Some(None);
            }
        }
        match &probe.cublaslt {
            Ok(l) => {
                let used = libs::cudarc_cublaslt_file().unwrap_or_else(|| l.path.clone());
                details.cuda.cublaslt = Some(Some(used.display().to_string()));
                lib_notes.extend(libs::mismatch_line(libs::Lib::CublasLt, &l.path, &used));
                if let Some(v) = cublaslt_version() {
                    details.cuda.cublaslt_version = Some(v as u64);
                }
            }
            Err(_) => {
                details.cuda.cublaslt = Some(None);
            }
        }
        let mut driver_version = probe
            .driver
            .as_ref()
            .ok()
            .map(|d| format!("CUDA {}", d.version_string()));
        if let Some(n) = nvml::nvml() {
            if let Some(d) = nvml::find(n, &p.uuid, &p.pci_bus_id) {
                details.state = details.state.overlay(&nvml::state(&d));
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
            comms: std::sync::Mutex::new(None),
            gpu,
            info,
            notice: (!notes.is_empty()).then(|| notes.join("\n")),
            registry: registry::Registry::default(),
        })
    }

    /// This device and the libraries loaded, as the implementations' checks see them.
    fn target(&self) -> registry::Target<'_> {
        registry::Target::of(&self.gpu.props)
    }

    /// The communicators of `members` (this device first) in `world`: made once per group and
    /// kept, since a communicator costs far more to create than one collective takes.
    fn comms_for(
        &self,
        members: &[&CudaBackend],
        world: &crate::world::World,
    ) -> Result<std::sync::Arc<nccl::Comms>> {
        let key: Vec<usize> = members.iter().map(|m| m.gpu.props.ordinal).collect();
        let mut slot = self
            .comms
            .lock()
            .map_err(|_| Error::backend("cuda", "communicator cache poisoned"))?;
        if let Some((k, c)) = slot.as_ref() {
            if *k == key {
                return Ok(c.clone());
            }
        }
        *slot = None;
        let gpus: Vec<&Gpu> = members.iter().map(|m| &m.gpu).collect();
        let here = gpus.len() as u32;
        let comms = if world.is_single() {
            nccl::Comms::new(&gpus, None, 0, here)?
        } else {
            let id = world.id.as_deref().ok_or_else(|| {
                Error::invalid("the world has no communicator id: the rendezvous did not run")
            })?;
            nccl::Comms::new(&gpus, Some(id), world.rank * here, world.size * here)?
        };
        let comms = std::sync::Arc::new(comms);
        *slot = Some((key, comms.clone()));
        Ok(comms)
    }

    /// Adds an implementation (a user's kernel, typically with [`registry::needs_nvrtc`] as
    /// its check): from then on `implementations`, `check` and `prepare` serve it like a
    /// built-in one, listed after them. Refuses a name its workload kind already has.
    pub fn register_implementation(&mut self, imp: registry::Implementation) -> Result<()> {
        self.registry.register(imp)
    }
}

impl Backend for CudaBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn implementations(&self, w: &Workload) -> Vec<ImplInfo> {
        self.registry.implementations(&self.target(), w)
    }

    fn check(&self, w: &Workload, imp: &str) -> Result<()> {
        let t = self.target();
        if let (true, Some(why)) = (imp.is_empty(), self.registry.why_none(&t, w)) {
            return Err(Error::unsupported(why));
        }
        self.registry.check(&t, w, imp)
    }

    fn free_memory(&self) -> Result<u64> {
        guarded("reading free memory", || self.gpu.free_memory())
    }

    /// Buffers live on the GPU; the host holds only the copies read back for verification.
    /// What `imp` allocates there, from its row of the kernel table.
    fn memory_needs(&self, w: &Workload, imp: &str, sets: usize) -> MemoryNeeds {
        MemoryNeeds {
            host: w.footprint(),
            device: self.registry.memory_needed(&self.target(), w, imp, sets),
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

    /// Memory bandwidth far beyond L2 (4 GiB arrays, less on a device of under 32 GiB), the
    /// vendor GEMM at 8192³ for every dtype (those the device lacks are skipped), prefill and
    /// decode attention.
    fn quick_suite(&self) -> Vec<Workload> {
        use crate::dtype::DType;
        use crate::workload::BLayout;
        let bytes = quick::memory_bytes(self.device());
        let mut v = vec![
            quick::memory(MemOp::Copy, bytes),
            quick::memory(MemOp::Triad, bytes),
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

    fn prepare_checked<'a>(&'a self, r: Request<'_>) -> Result<Box<dyn Prepared + 'a>> {
        let (w, opts) = (r.workload, r.opts);
        let sets = if opts.hot { 1 } else { opts.buffer_sets.max(1) };
        let policy = cache_policy(opts, w.footprint(), self.gpu.props.l2_bytes);
        let ctx = registry::PrepareCtx {
            gpu: &self.gpu,
            workload: w,
            inputs: r.inputs,
            sets,
            policy,
        };
        guarded("preparing a workload", || {
            self.gpu.bind()?;
            self.registry.prepare(&ctx, r.implementation)
        })
    }

    /// Peer copies between two of this process's GPUs and NCCL collectives over a group (and
    /// the other processes of a world); anything else as on one device.
    fn check_group(&self, members: &[&dyn Backend], w: &Workload, imp: &str) -> Result<()> {
        match (w, imp, members) {
            (Workload::P2p(p), transfer::KERNEL, [_, _]) => {
                match super::members_as::<CudaBackend>(members, &w.name())?[..] {
                    [a, b] => p2p::check_kernel(&a.gpu, &b.gpu, p),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn prepare_group_checked<'a>(
        &'a self,
        group: &Group<'a>,
        r: Request<'_>,
    ) -> Result<Box<dyn Prepared + 'a>> {
        let (w, imp, inputs) = (r.workload, r.implementation, r.inputs);
        let members = group.members_as::<CudaBackend>(&w.name())?;
        guarded("preparing a group workload", || match w {
            Workload::P2p(p) => match members[..] {
                [a, b] => Ok(Box::new(p2p::P2pRun::new(&a.gpu, &b.gpu, p, imp, inputs)?)
                    as Box<dyn Prepared + 'a>),
                _ => Err(Error::invalid(format!("{} needs two devices", w.name()))),
            },
            Workload::Collective(c) => {
                let comms = self.comms_for(&members, group.world)?;
                let gpus: Vec<&Gpu> = members.iter().map(|m| &m.gpu).collect();
                Ok(Box::new(nccl::CollectiveRun::new(&gpus, comms, c, inputs)?))
            }
            _ => self.prepare_checked(r),
        })
    }

    /// NCCL's unique id: what rank 0 of a world hands to the other processes.
    fn world_id(&self) -> Result<Vec<u8>> {
        nccl::unique_id()
    }

    fn register_user_kernel(
        &mut self,
        workload: &'static str,
        kernel: &crate::workload::kernel::UserKernel,
    ) -> Result<()> {
        let kind = [
            registry::Kind::Matmul,
            registry::Kind::Attention,
            registry::Kind::Memory,
        ]
        .into_iter()
        .find(|k| k.name() == workload)
        .ok_or_else(|| {
            Error::unsupported(format!(
                "a user kernel cannot implement {workload} workloads"
            ))
        })?;
        self.register_implementation(user_run::implementation(kind, kernel))
    }

    /// NVML's power reading is instantaneous on GA100 (sm_80) and older GPUs, averaged over the
    /// last second on the rest of Ampere and newer.
    fn power_window_s(&self) -> f64 {
        if self.gpu.props.cc <= (8, 0) {
            0.0
        } else {
            1.0
        }
    }

    fn telemetry(&self) -> Option<Telemetry> {
        let n = nvml::nvml()?;
        let d = nvml::find(n, &self.gpu.props.uuid, &self.gpu.props.pci_bus_id)?;
        Some(nvml::telemetry(&d))
    }

    fn current_state(&self) -> Option<crate::backend::DeviceState> {
        let n = nvml::nvml()?;
        let d = nvml::find(n, &self.gpu.props.uuid, &self.gpu.props.pci_bus_id)?;
        // Keep the driver-side facts from opening; refresh what NVML reports.
        Some(self.info.details.state.overlay(&nvml::state(&d)))
    }

    fn notice(&self) -> Option<String> {
        self.notice.clone()
    }
}

/// The one implementation of a free-form user kernel (`bench kernel --spec`).
pub use registry::USER as USER_IMPL;

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
            crate::output::say_skip(
                "open_all_without_a_gpu_is_a_clean_error",
                "an NVIDIA driver is present",
            );
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
    fn cache_policy_names() {
        let o = |sets, hot| PrepareOptions {
            buffer_sets: sets,
            hot,
        };
        assert_eq!(cache_policy(o(4, false), 10, 100), "rotate(4)");
        assert_eq!(cache_policy(o(4, true), 10, 100), "hot");
        assert!(cache_policy(o(1, false), 1000, 100)
            .to_string()
            .starts_with("cold"));
        assert!(cache_policy(o(1, false), 10, 100)
            .to_string()
            .starts_with("warm"));
    }
}
