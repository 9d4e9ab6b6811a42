//! One CUDA device: its context and stream, raw device buffers, kernel modules, and the
//! inventory read from the driver.

use super::error::cu;
use super::kernels::{KernelId, Source};
use super::nvrtc;
use crate::backend::{CudaFacts, DeviceDetails, DeviceState};
use crate::error::{Error, Result};
use crate::units::Bytes;
use cudarc::driver::result as dr;
use cudarc::driver::sys::{self, CUdevice_attribute_enum as A, CUdeviceptr};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Static properties of a device, read once.
#[derive(Debug, Clone)]
pub struct Props {
    pub ordinal: usize,
    pub name: String,
    pub uuid: String,
    pub pci_bus_id: String,
    pub cc: (i32, i32),
    pub sms: u32,
    pub total_mem: u64,
    pub l2_bytes: u64,
    /// What one SM, and one block on it, may use.
    pub sm: SmLimits,
    /// What the driver reports of the clocks and the memory bus: the `*_driver` facts of the
    /// device state (NVML's, where present, come on top).
    pub driver: DeviceState,
}

/// What one SM, and one block on it, may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmLimits {
    pub max_threads: u32,
    /// Shared memory of one SM.
    pub smem: u64,
    /// Shared memory one block gets without opting in.
    pub smem_per_block: u64,
    /// The most dynamic shared memory one block may opt in to.
    pub smem_per_block_optin: u64,
}

impl Props {
    /// Blocks for a grid-stride kernel: enough resident blocks to fill every SM.
    pub fn stream_grid(&self, block: u32, elements_per_block_min: u64, n: u64) -> u32 {
        let full = self.sms as u64 * (self.sm.max_threads as u64 / block as u64).max(1);
        let useful = n.div_ceil(elements_per_block_min).max(1);
        full.min(useful).min(u32::MAX as u64) as u32
    }

    pub fn arch(&self) -> String {
        nvrtc::arch_for(self.cc.0, self.cc.1)
    }

    /// What the driver tells of the device, for `DeviceInfo.details`.
    pub fn details(&self) -> DeviceDetails {
        DeviceDetails {
            state: self.driver.clone(),
            cuda: CudaFacts {
                cuda_ordinal: Some(self.ordinal as u64),
                arch: Some(self.arch()),
                max_threads_per_sm: Some(self.sm.max_threads),
                shared_memory_per_sm_bytes: Some(self.sm.smem),
                shared_memory_per_block_bytes: Some(self.sm.smem_per_block),
                shared_memory_per_block_optin_bytes: Some(self.sm.smem_per_block_optin),
                ..CudaFacts::default()
            },
            ..DeviceDetails::default()
        }
    }
}

/// Formats a CUDA UUID as `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as NVML and nvidia-smi do.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `0000:3b:00.0`, the form NVML accepts (it also reports 8 domain digits; see `nvml.rs`).
pub fn format_pci(domain: i32, bus: i32, device: i32) -> String {
    format!("{domain:04x}:{bus:02x}:{device:02x}.0")
}

/// A device with its context and the one stream all work is queued on.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub props: Props,
    modules: Mutex<HashMap<Source, (Arc<CudaModule>, String)>>,
}

impl Drop for Gpu {
    /// A device whose work hung keeps its context, stream and modules for the life of the
    /// process: releasing them would wait in the driver for work that never ends, and the run
    /// could not finish. The process's exit tears them down.
    fn drop(&mut self) {
        if super::timing::is_hung(&self.ctx) {
            std::mem::forget(self.ctx.clone());
            std::mem::forget(self.stream.clone());
            if let Ok(m) = self.modules.lock() {
                m.values()
                    .for_each(|(module, _)| std::mem::forget(module.clone()));
            }
        }
    }
}

impl Gpu {
    pub fn open(ordinal: usize) -> Result<Gpu> {
        let ctx = cu(
            &format!("open CUDA device {ordinal}"),
            CudaContext::new(ordinal),
        )?;
        // One stream, and raw buffers that gpuvet synchronises itself: cudarc's per-buffer
        // event tracking would add driver calls to every timed launch.
        // SAFETY: every buffer used here is allocated and used on this single stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = cu("create stream", ctx.new_stream())?;
        let props = read_props(&ctx, ordinal)?;
        Ok(Gpu {
            ctx,
            stream,
            props,
            modules: Mutex::new(HashMap::new()),
        })
    }

    pub fn bind(&self) -> Result<()> {
        cu("bind context", self.ctx.bind_to_thread())
    }

    pub fn free_memory(&self) -> Result<u64> {
        self.bind()?;
        let (free, _total) = cu("cuMemGetInfo", dr::mem_get_info())?;
        Ok(free as u64)
    }

    /// Refuses, before allocating anything, a request larger than the free memory.
    pub fn ensure_fits(&self, need: u64) -> Result<()> {
        let have = self.free_memory()?;
        if need > have {
            return Err(Error::OutOfMemory {
                device: format!("{} (cuda:{})", self.props.name, self.props.ordinal),
                need: Bytes(need),
                have: Bytes(have),
            });
        }
        Ok(())
    }

    pub fn alloc(&self, bytes: usize) -> Result<DevBuf> {
        DevBuf::new(self, bytes)
    }

    /// The function `k`, compiling and loading its module on first use.
    pub fn function(&self, k: KernelId) -> Result<CudaFunction> {
        let module = self.module(k.source())?;
        cu(
            &format!("load kernel {}", k.symbol()),
            module.load_function(k.symbol()),
        )
    }

    /// The compile log of a module already loaded (ptxas register and spill report).
    pub fn module_log(&self, s: Source) -> Option<String> {
        let m = self.modules.lock().ok()?;
        m.get(&s).map(|(_, log)| log.clone())
    }

    /// Registers and spills of `k`, from the compile log of its loaded module.
    pub fn resources(&self, k: KernelId) -> Option<nvrtc::KernelResources> {
        nvrtc::resources_of(&self.module_log(k.source())?, k)
    }

    fn module(&self, s: Source) -> Result<Arc<CudaModule>> {
        let mut m = self
            .modules
            .lock()
            .map_err(|_| Error::backend("cuda", "module table poisoned"))?;
        if let Some((module, _)) = m.get(&s) {
            return Ok(module.clone());
        }
        let arch = self.props.arch();
        if !s.builds_for(&arch) {
            return Err(Error::unsupported(format!(
                "{} is written for {} only; this GPU is {arch}",
                s.file(),
                s.archs().join(", ")
            )));
        }
        let compiled = nvrtc::compile(s, &arch)?;
        self.bind()?;
        let module = cu(
            &format!("load {} for {}", s.file(), self.props.arch()),
            self.ctx.load_module(Ptx::from_binary(compiled.cubin)),
        )?;
        m.insert(s, (module.clone(), compiled.log));
        Ok(module)
    }

    /// Waits for the stream's work, calling the device hung past the timing module's
    /// [`super::timing::hang_timeout`].
    pub fn sync(&self) -> Result<()> {
        super::timing::wait_stream(&self.ctx, &self.stream, "synchronize stream")
    }

    /// Blocks for a grid-stride kernel on this device ([`Props::stream_grid`]).
    pub fn stream_grid(&self, block: u32, elements_per_block_min: u64, n: u64) -> u32 {
        self.props.stream_grid(block, elements_per_block_min, n)
    }
}

fn read_props(ctx: &Arc<CudaContext>, ordinal: usize) -> Result<Props> {
    let attr =
        |a: A| -> Result<i32> { cu(&format!("read device attribute {a:?}"), ctx.attribute(a)) };
    let opt = |a: A| -> Option<u64> { ctx.attribute(a).ok().filter(|&v| v > 0).map(|v| v as u64) };
    let uuid = cu("read device UUID", ctx.uuid())?;
    let uuid_bytes: [u8; 16] = uuid.bytes.map(|b| b as u8);
    Ok(Props {
        ordinal,
        name: cu("read device name", ctx.name())?,
        uuid: format_uuid(&uuid_bytes),
        pci_bus_id: format_pci(
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID)?,
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID)?,
        ),
        cc: cu("read compute capability", ctx.compute_capability())?,
        sms: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
        total_mem: cu("read total memory", ctx.total_mem())? as u64,
        l2_bytes: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as u64,
        sm: SmLimits {
            max_threads: attr(A::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR)? as u32,
            smem: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR)? as u64,
            smem_per_block: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)? as u64,
            smem_per_block_optin: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?
                as u64,
        },
        // The driver reports clocks in kHz.
        driver: DeviceState {
            sm_clock_max_mhz_driver: opt(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE).map(|k| k / 1000),
            memory_clock_max_mhz_driver: opt(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)
                .map(|k| k / 1000),
            memory_bus_width_bits: opt(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH),
            ..DeviceState::default()
        },
    })
}

/// A raw device allocation, freed on drop.
pub struct DevBuf {
    pub ptr: CUdeviceptr,
    pub bytes: usize,
    ctx: Arc<CudaContext>,
}

impl DevBuf {
    fn new(gpu: &Gpu, bytes: usize) -> Result<DevBuf> {
        gpu.bind()?;
        // cuMemAlloc rejects 0 bytes; a 1-byte allocation keeps every pointer valid.
        let ptr = cu(
            &format!("allocate {} on {}", Bytes(bytes as u64), gpu.props.name),
            // SAFETY: plain allocation; the memory is written before it is read.
            unsafe { dr::malloc_sync(bytes.max(1)) },
        )?;
        Ok(DevBuf {
            ptr,
            bytes,
            ctx: gpu.ctx.clone(),
        })
    }

    /// Copies `data` into the start of the buffer and waits until it is on the device.
    pub fn upload(&self, gpu: &Gpu, data: &[u8]) -> Result<()> {
        if data.len() > self.bytes {
            return Err(Error::backend("cuda", "upload larger than its buffer"));
        }
        gpu.bind()?;
        // SAFETY: the destination holds at least data.len() bytes.
        cu("copy inputs to the device", unsafe {
            dr::memcpy_htod_sync(self.ptr, data)
        })?;
        // From pageable memory the copy may return before its DMA has landed, and it runs on
        // the legacy stream, which gpuvet's non-blocking stream does not wait for: wait for
        // the whole context before any kernel can read the buffer.
        cu("wait for the input copy", gpu.ctx.synchronize())
    }

    /// Copies the first `bytes` of the buffer back after the stream has finished.
    pub fn download(&self, gpu: &Gpu, bytes: usize) -> Result<Vec<u8>> {
        gpu.sync()?;
        let mut out = vec![0u8; bytes.min(self.bytes)];
        // SAFETY: the source holds at least out.len() bytes and all work on it has finished.
        cu("copy results from the device", unsafe {
            dr::memcpy_dtoh_sync(&mut out, self.ptr)
        })?;
        Ok(out)
    }

    /// Fills every byte with `value`, queued on the stream.
    pub fn fill(&self, gpu: &Gpu, value: u8) -> Result<()> {
        gpu.bind()?;
        // SAFETY: the range is the whole allocation.
        cu("fill device memory", unsafe {
            dr::memset_d8_async(self.ptr, value, self.bytes, gpu.stream.cu_stream())
        })
    }

    /// Fills with a 32-bit pattern (bytes must be a multiple of 4), queued on the stream.
    pub fn fill_u32(&self, gpu: &Gpu, value: u32) -> Result<()> {
        gpu.bind()?;
        // SAFETY: the range is the whole allocation, in 4-byte words.
        cu("fill device memory", unsafe {
            sys::cuMemsetD32Async(self.ptr, value, self.bytes / 4, gpu.stream.cu_stream()).result()
        })
    }
}

/// The verified round of a run across devices: after `sync`, poisons every output buffer
/// (0xFF on its device), runs `enqueue` once, waits again, and returns the outputs' bytes in
/// order, so that nothing a previous round left can pass for this round's result.
pub fn poisoned_round(
    outs: &[(&DevBuf, &Gpu)],
    sync: impl Fn() -> Result<()>,
    enqueue: impl FnOnce() -> Result<()>,
) -> Result<Vec<u8>> {
    sync()?;
    for (buf, gpu) in outs {
        buf.fill(gpu, 0xFF)?;
        gpu.sync()?;
    }
    enqueue()?;
    sync()?;
    let mut bytes = Vec::new();
    for (buf, gpu) in outs {
        bytes.extend(buf.download(gpu, buf.bytes)?);
    }
    Ok(bytes)
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        // A free waits for the device's work; work that hung never ends: leave the memory to
        // the process's exit rather than block here.
        if super::timing::is_hung(&self.ctx) {
            return;
        }
        // Errors on free cannot be reported from drop; the context records sticky errors.
        let _ = self.ctx.bind_to_thread();
        // SAFETY: the pointer came from cuMemAlloc and is freed once.
        let _ = unsafe { dr::free_sync(self.ptr) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_use_the_shared_key_names() {
        let p = Props {
            ordinal: 0,
            name: "NVIDIA H200".into(),
            uuid: "GPU-0".into(),
            pci_bus_id: "0000:00:00.0".into(),
            cc: (9, 0),
            sms: 132,
            total_mem: 1,
            l2_bytes: 1,
            sm: SmLimits {
                max_threads: 2048,
                smem: 233472,
                smem_per_block: 49152,
                smem_per_block_optin: 232448,
            },
            driver: DeviceState {
                sm_clock_max_mhz_driver: Some(1980),
                memory_clock_max_mhz_driver: Some(3201),
                memory_bus_width_bits: Some(6144),
                ..DeviceState::default()
            },
        };
        let d = p.details();
        // gpudb computes peaks of unknown GPUs from these (see backend::state).
        let s = &d.state;
        assert_eq!(s.max_sm_clock_mhz(), Some(1980.0));
        assert_eq!(s.max_memory_clock_mhz(), Some(3201.0));
        assert_eq!(s.memory_bus_width_bits, Some(6144));
        let d = serde_json::to_value(&d).unwrap();
        assert_eq!(d["sm_clock_max_mhz_driver"], 1980);
        assert_eq!(d["arch"], "sm_90a");
    }

    #[test]
    fn ids_are_formatted_like_nvml() {
        let mut b = [0u8; 16];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8) * 17;
        }
        assert_eq!(format_uuid(&b), "GPU-00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(format_pci(0, 0x3b, 0), "0000:3b:00.0");
    }
}
