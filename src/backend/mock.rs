//! A backend with a fake clock, for testing everything above the `Backend` seam without noise.
//!
//! Outputs are computed exactly (from the f64 references), so verification passes; times are
//! derived from the workload's FLOPs and bytes with a small deterministic wobble, so a whole run
//! gives the same report every time. Setting `GPUVET_MOCK_FAULT` to part of a workload name
//! corrupts one element of that workload's output, to exercise the failure path, and
//! `GPUVET_MOCK_DEVICES=N` opens N identical mock GPUs (a node of eight, say), and
//! `GPUVET_MOCK_HELD_MEMORY=1,3` leaves GPUs 1 and 3 almost no free memory (another process
//! holding it), and `GPUVET_MOCK_NO_LIBRARY=matmul,attention` has no implementation of those
//! kinds, with a missing library as the reason (a node without cuBLASLt);
//! [`MockBackend::with_device_fault`] (at preparation) and [`MockBackend::with_device_fault_after`]
//! (mid-run) make a workload fault the device as an illegal address does on a GPU, to exercise
//! the device-lost path. User kernels (`user`: registered implementations and free-form
//! `bench kernel` specs) are checked as far as possible without a device and never run: their
//! output is simulated, and their results say so.

use super::{
    quick, Backend, BackendKind, CachePolicy, DeviceInfo, DeviceState, Group, ImplInfo, NvLinkPeer,
    NvLinkPeerKind, Peaks, Prepared, Request, Sustained, Telemetry,
};
use crate::dtype::{ComputeType, DType};
use crate::error::{Error, Result};
use crate::inputs::{TRIAD_SCALAR, WRITE_VALUE};
use crate::tensor::{Data, Tensor};
use crate::workload::kernel::{KernelRecord, UserKernel};
use crate::workload::{reference, AttentionSpec, BLayout, MatmulSpec, MemOp, MemorySpec, Workload};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

mod user;

/// Largest multiply-add count the mock computes (it is a test double, not a compute engine).
const MAX_MACS: u128 = 1 << 28;

/// Fake rates: 100 TFLOP/s and 1 TB/s.
const FAKE_FLOPS: f64 = 100e12;
const FAKE_BANDWIDTH: f64 = 1e12;
/// Fake link rates each way: a Gen5 x16 host link (50 GB/s reached), NVLink between mock
/// GPUs (18 links reaching 360 GB/s), and the bus bandwidth of a collective.
const FAKE_PCIE: f64 = 50e9;
const FAKE_NVLINK: f64 = 360e9;
const FAKE_BUS: f64 = 340e9;
/// The variable that has another process hold all but [`HELD_MEMORY_LEFT`] of the named mock
/// GPUs' memory (`GPUVET_MOCK_HELD_MEMORY=1,3`): `validate` finds them short of memory.
pub const HELD_MEMORY_VAR: &str = "GPUVET_MOCK_HELD_MEMORY";

/// What a mock GPU named by [`HELD_MEMORY_VAR`] has free: less than any workload needs.
pub const HELD_MEMORY_LEFT: u64 = 16 << 10;

/// The variable naming workload kinds (`matmul,attention`) the mock has no implementation of,
/// for want of a library, as a GPU node without cuBLASLt has none of matmul and attention.
pub const NO_LIBRARY_VAR: &str = "GPUVET_MOCK_NO_LIBRARY";

/// The variable that slows the link between two mock GPUs (`GPUVET_MOCK_SLOW_PAIR=1:2`) four
/// times, to exercise the naming of a pair below its expectation.
pub const SLOW_PAIR_VAR: &str = "GPUVET_MOCK_SLOW_PAIR";

/// SM clock the mock reports while a run is busy.
const BUSY_CLOCK_MHZ: f64 = 1500.0;

pub struct MockBackend {
    info: DeviceInfo,
    /// True from a timed call until the next verification run (the host then checks the output
    /// while the device idles) or the end of the run.
    busy: AtomicBool,
    /// SM clock reported while idle; the busy clock unless a test asks for a real GPU's gap.
    idle_clock_mhz: f64,
    /// Whether timings are treated as feeling the nominal 1 MiB "L2" (see `with_timed_cache`).
    timed_cache: bool,
    /// Part of a workload name whose run faults the device (see `with_device_fault`).
    device_fault: Option<String>,
    /// Timed calls of that workload that succeed before the fault; 0 = it faults when prepared.
    fault_after_calls: u64,
    /// Set once the device faulted: like a real context after an illegal address, every later
    /// preparation fails with the same sticky error.
    lost: AtomicBool,
    /// User kernels registered as implementations, by workload kind (simulated: see `user`).
    user_kernels: Vec<(&'static str, UserKernel)>,
    /// What `free_memory` answers: 16 GiB, or [`HELD_MEMORY_LEFT`] for a GPU named by
    /// [`HELD_MEMORY_VAR`] (see `with_free_memory`).
    free_bytes: u64,
}

impl MockBackend {
    pub fn new() -> Self {
        let mut flops = BTreeMap::new();
        for (d, v) in [
            (DType::F32, 50e12),
            (DType::Tf32, 200e12),
            (DType::F16, 400e12),
            (DType::Bf16, 400e12),
            (DType::Fp8E4m3, 800e12),
            (DType::Fp8E5m2, 800e12),
            (DType::Int8, 800e12),
        ] {
            flops.insert(d, v);
        }
        MockBackend {
            info: DeviceInfo {
                index: 0,
                backend: Some(BackendKind::Mock),
                name: "Mock GPU".into(),
                uuid: Some("GPU-00000000-0000-0000-0000-000000000000".into()),
                pci_bus_id: Some("00000000:00:00.0".into()),
                compute_capability: Some("9.0".into()),
                multiprocessors: Some(100),
                memory_bytes: Some(16 << 30),
                last_level_cache_bytes: Some(1 << 20),
                driver_version: Some("mock".into()),
                details: Default::default(),
                peaks: Some(Peaks {
                    source: "mock figures for tests".into(),
                    flops,
                    memory_bandwidth: Some(2e12),
                    ..Peaks::default()
                }),
            },
            busy: AtomicBool::new(false),
            idle_clock_mhz: BUSY_CLOCK_MHZ,
            timed_cache: false,
            device_fault: None,
            fault_after_calls: 0,
            lost: AtomicBool::new(false),
            user_kernels: Vec::new(),
            free_bytes: free_bytes_of(0),
        }
    }

    /// This mock with `bytes` of free device memory: another process holding the rest.
    pub fn with_free_memory(mut self, bytes: u64) -> Self {
        self.free_bytes = bytes;
        self
    }

    /// Device `index` of a node of `count` identical mock GPUs: same name, its own index, UUID
    /// and PCI bus id (what tells eight identical GPUs apart), a Gen5 x16 link and 18 NVLink
    /// links to an NVSwitch, able to map every other mock GPU: a node whose topology, peer
    /// copies and collectives can be tested.
    pub fn numbered(index: usize, count: usize) -> Self {
        let mut m = MockBackend::new();
        m.info.index = index;
        m.free_bytes = free_bytes_of(index);
        m.info.uuid = Some(format!("GPU-00000000-0000-0000-0000-{index:012x}"));
        m.info.pci_bus_id = Some(format!("00000000:{:02x}:00.0", index + 1));
        let state = DeviceState {
            pcie_gen: Some(5),
            pcie_gen_max: Some(5),
            pcie_width: Some(16),
            pcie_width_max: Some(16),
            nvlink_active_links: Some(18),
            nvlink_peers: Some(vec![
                NvLinkPeer {
                    kind: NvLinkPeerKind::Switch,
                    pci_bus_id: "00000000:F0:00.0".into(),
                };
                18
            ]),
            peer_access: Some((0..count as u32).filter(|&d| d != index as u32).collect()),
            ..DeviceState::default()
        };
        m.info.details.state = state;
        if let Some(p) = m.info.peaks.as_mut() {
            p.nvlink_link_bandwidth = Some(25e9);
            p.pcie_bandwidth = Some(crate::units::pcie_rate(5, 16).unwrap_or(0.0));
        }
        m
    }

    /// A mock whose fake clock is taken to feel its 1 MiB "L2", so that results whose rotated
    /// buffer sets stay under twice that are labelled `warm(N)`, as on a real GPU. The plain
    /// mock's clock ignores caches: its label stays what its rotation did.
    pub fn with_timed_cache() -> Self {
        MockBackend {
            timed_cache: true,
            ..Self::new()
        }
    }

    /// A mock on which preparing a workload whose name contains `pattern` fails with a sticky
    /// illegal-address driver error, and every preparation after it too (the device is lost).
    pub fn with_device_fault(pattern: &str) -> Self {
        MockBackend {
            device_fault: Some(pattern.to_string()),
            ..Self::new()
        }
    }

    /// A mock on which a workload whose name contains `pattern` runs `calls` timed calls and
    /// then faults the device with a sticky illegal address, mid-run (a stress, a soak);
    /// every later call on the device fails with the same error.
    pub fn with_device_fault_after(pattern: &str, calls: u64) -> Self {
        MockBackend {
            fault_after_calls: calls,
            ..Self::with_device_fault(pattern)
        }
    }

    /// Timed calls `w` may make before it faults the device: `None` when it never does. A
    /// workload that faults when prepared loses the device here.
    fn arm_fault(&self, w: &Workload) -> Result<Option<u64>> {
        let hit = self
            .device_fault
            .as_deref()
            .is_some_and(|p| w.name().contains(p));
        if hit && self.fault_after_calls == 0 {
            self.lost.store(true, Ordering::Relaxed);
        }
        check_lost(&self.lost)?;
        Ok(hit.then_some(self.fault_after_calls))
    }

    /// The prepared run of `r`: its exact output computed once, `per_iter` fake seconds a call.
    fn run<'a>(&'a self, r: Request<'_>, per_iter: f64) -> Result<Box<dyn Prepared + 'a>> {
        let w = r.workload;
        let fault_in = self.arm_fault(w)?;
        // A user kernel is checked as far as the mock can (NVRTC, PTX, limits), never run: its
        // output is simulated and its result says so.
        let kernel = match (w, self.user_kernel(w, Some(r.implementation)).next()) {
            (Workload::Kernel(k), _) => Some(user::check(&k.kernel, &k.names())?),
            (_, Some((_, k))) => Some(user::check_implementation(w, k)?),
            _ => None,
        };
        let out = exact_output(w, r.inputs)?;
        Ok(Box::new(MockRun {
            busy: &self.busy,
            lost: &self.lost,
            fault_in,
            name: w.name(),
            out,
            per_iter,
            calls: 0,
            sets: r.opts.buffer_sets,
            kernel,
        }))
    }

    /// A mock whose SM clock drops to `mhz` while idle, as a real GPU's does (345 MHz idle vs
    /// 1980 MHz under load on an H200): for testing that clocks are read under load.
    pub fn with_idle_clock(mhz: f64) -> Self {
        MockBackend {
            idle_clock_mhz: mhz,
            ..Self::new()
        }
    }
}

impl Default for MockBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend for MockBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn implementations(&self, w: &Workload) -> Vec<ImplInfo> {
        if library_missing(w).is_some() {
            return Vec::new();
        }
        if let Workload::Kernel(_) = w {
            return vec![user::free_form_info()];
        }
        let mut v = vec![ImplInfo::new(
            "mock",
            "exact reference output, fake clock",
            false,
        )];
        v.extend(self.user_kernel(w, None).map(|(_, k)| user::info(k)));
        v
    }

    fn check(&self, w: &Workload, imp: &str) -> Result<()> {
        if let Some(why) = library_missing(w) {
            return Err(Error::unsupported(why));
        }
        super::check_listed(self, w, imp)?;
        match (w, self.user_kernel(w, Some(imp)).next()) {
            (Workload::Kernel(k), _) => user::check(&k.kernel, &k.names()).map(|_| ()),
            (_, Some((_, k))) => user::check_implementation(w, k).map(|_| ()),
            _ => Ok(()),
        }
    }

    fn register_user_kernel(&mut self, workload: &'static str, kernel: &UserKernel) -> Result<()> {
        let taken = kernel.name == "mock"
            || self
                .user_kernels
                .iter()
                .any(|(w, k)| *w == workload && k.name == kernel.name);
        if taken {
            return Err(Error::invalid(format!(
                "an implementation `{}` of {workload} already exists",
                kernel.name
            )));
        }
        self.user_kernels.push((workload, kernel.clone()));
        Ok(())
    }

    fn free_memory(&self) -> Result<u64> {
        // As a real context after a sticky fault: every driver call answers with it.
        check_lost(&self.lost)?;
        Ok(self.free_bytes)
    }

    /// As a GPU's: the buffers on the device (checked against [`Backend::free_memory`]), the
    /// host copies of inputs and outputs in RAM. The mock computes its outputs on the host, but
    /// only within [`MAX_MACS`]: what it stands in for is a GPU's planning.
    fn memory_needs(&self, w: &Workload, _: &str, sets: usize) -> crate::backend::MemoryNeeds {
        crate::backend::MemoryNeeds {
            host: w.footprint(),
            device: self.memory_needed(w, sets),
        }
    }

    fn is_gpu(&self) -> bool {
        true
    }

    fn timed_cache_bytes(&self) -> Option<u64> {
        self.timed_cache
            .then_some(self.info.last_level_cache_bytes)
            .flatten()
    }

    fn stress_size(&self, _: Sustained) -> u64 {
        64
    }

    /// Tiny shapes: the mock computes exact outputs on the host.
    fn quick_suite(&self) -> Vec<Workload> {
        vec![
            quick::memory(MemOp::Copy, 1 << 20),
            quick::matmul(64, DType::F32, BLayout::Kn),
            quick::matmul(64, DType::Bf16, BLayout::Nk),
            quick::matmul(32, DType::Int8, BLayout::Nk),
            quick::attention((1, 4, 2), (16, 32), true, DType::F16),
        ]
    }

    fn prepare_checked<'a>(&'a self, r: Request<'_>) -> Result<Box<dyn Prepared + 'a>> {
        let w = r.workload;
        let per_iter = match w {
            Workload::Transfer(t) => t.bytes() as f64 / FAKE_PCIE + 8e-6,
            _ => w.flops() / FAKE_FLOPS + w.bytes() as f64 / FAKE_BANDWIDTH + 2e-6,
        };
        self.run(r, per_iter)
    }

    /// Peer copies between mock GPUs and collectives over them, computed exactly; timed from
    /// the fake link rates (a pair named by `GPUVET_MOCK_SLOW_PAIR` four times slower).
    fn prepare_group_checked<'a>(
        &'a self,
        group: &Group<'a>,
        r: Request<'_>,
    ) -> Result<Box<dyn Prepared + 'a>> {
        let w = r.workload;
        let members = group.members_as::<MockBackend>(&w.name())?;
        let per_iter = match w {
            Workload::P2p(p) => {
                let pair: Vec<usize> = members.iter().map(|m| m.info.index).collect();
                let slow = slow_pair().is_some_and(|(a, b)| pair.contains(&a) && pair.contains(&b));
                p.bytes() as f64 / FAKE_NVLINK * if slow { 4.0 } else { 1.0 } + 5e-6
            }
            Workload::Collective(c) => {
                if c.local.is_some() {
                    return Err(Error::unsupported(
                        "the mock computes collectives of one process only",
                    ));
                }
                c.bytes() as f64 * c.bus_factor().max(1.0 / c.ranks.max(1) as f64) / FAKE_BUS
                    + 10e-6
            }
            _ => return self.prepare_checked(r),
        };
        self.run(r, per_iter)
    }

    /// The mock's fake sensor reads instantly (and its fake clock runs a long measurement in
    /// moments of wall time), so its power counts from the first reading under load.
    fn power_window_s(&self) -> f64 {
        0.0
    }

    fn telemetry(&self) -> Option<Telemetry> {
        let busy = self.busy.load(Ordering::Relaxed);
        Some(Telemetry {
            sm_clock_mhz: Some(if busy {
                BUSY_CLOCK_MHZ
            } else {
                self.idle_clock_mhz
            }),
            memory_clock_mhz: Some(2600.0),
            temperature_c: Some(40.0),
            power_w: Some(100.0),
            power_limit_w: Some(300.0),
            throttle_reasons: vec![],
        })
    }
}

impl MockBackend {
    /// The registered user kernels that implement `w`'s kind (named `imp`, when given).
    fn user_kernel<'s>(
        &'s self,
        w: &'s Workload,
        imp: Option<&'s str>,
    ) -> impl Iterator<Item = &'s (&'static str, UserKernel)> + 's {
        self.user_kernels
            .iter()
            .filter(move |(kind, k)| *kind == w.kind() && imp.is_none_or(|i| i == k.name))
    }
}

struct MockRun<'a> {
    busy: &'a AtomicBool,
    /// The device's lost flag: set by a fault, checked by every call.
    lost: &'a AtomicBool,
    /// Timed calls left before this run faults the device, when it is set to.
    fault_in: Option<u64>,
    /// The workload's name (what `GPUVET_MOCK_FAULT` matches).
    name: String,
    /// The exact output, computed once when prepared.
    out: Tensor,
    per_iter: f64,
    calls: u64,
    sets: usize,
    /// The check of the user kernel this run stands in for.
    kernel: Option<user::Checked>,
}

impl Drop for MockRun<'_> {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Relaxed);
    }
}

impl Prepared for MockRun<'_> {
    fn compute_dtype(&self) -> ComputeType {
        ComputeType::Mock
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        self.busy.store(false, Ordering::Relaxed);
        check_lost(self.lost)?;
        let mut out = self.out.clone();
        if let Ok(pattern) = std::env::var("GPUVET_MOCK_FAULT") {
            if !pattern.is_empty() && self.name.contains(&pattern) {
                corrupt(&mut out);
            }
        }
        Ok(out)
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        // A fixed sequence of ±0.1% wobbles: samples are not all equal, and never random.
        self.busy.store(true, Ordering::Relaxed);
        match &mut self.fault_in {
            Some(0) => self.lost.store(true, Ordering::Relaxed),
            Some(left) => *left -= 1,
            None => {}
        }
        check_lost(self.lost)?;
        self.calls += 1;
        let wobble = ((self.calls * 7919) % 11) as f64 - 5.0;
        Ok(iters as f64 * self.per_iter * (1.0 + wobble * 2e-4))
    }

    fn cache_policy(&self) -> CachePolicy {
        if self.sets > 1 {
            CachePolicy::Rotate(self.sets)
        } else {
            CachePolicy::Single
        }
    }

    /// With `GPUVET_MOCK_FAULT` naming the workload, every run after the first differs from it
    /// (what a racy kernel does to a determinism check).
    fn run_verify_repeated(&mut self, runs: usize) -> Result<Vec<Tensor>> {
        let first = self.run_verify().map(|_| self.out.clone())?;
        let rest = (1..runs).map(|_| self.run_verify());
        std::iter::once(Ok(first)).chain(rest).collect()
    }

    fn notes(&self) -> Vec<String> {
        self.kernel.iter().flat_map(|c| c.notes.clone()).collect()
    }

    fn kernel_record(&self) -> Option<KernelRecord> {
        self.kernel.as_ref().map(|c| c.record.clone())
    }
}

/// The sticky error every call on a faulted mock device returns, as a CUDA context does after
/// an illegal address.
fn check_lost(lost: &AtomicBool) -> Result<()> {
    if lost.load(Ordering::Relaxed) {
        return Err(Error::Driver {
            what: "synchronize".into(),
            kind: crate::error::DriverErrorKind::IllegalAddress,
            detail: "DriverError(CUDA_ERROR_ILLEGAL_ADDRESS, \"mock fault\")".into(),
        });
    }
    Ok(())
}

/// Flips the sign of element 0 (and makes sure it changes even when it is zero).
fn corrupt(t: &mut Tensor) {
    match &mut t.data {
        Data::F32(v) => v[0] = -v[0] + 1.0,
        Data::F16(v) => v[0] = half::f16::from_f32(-v[0].to_f32() + 1.0),
        Data::Bf16(v) => v[0] = half::bf16::from_f32(-v[0].to_f32() + 1.0),
        Data::I32(v) => v[0] = v[0].wrapping_add(1),
        Data::F64(v) => v[0] = -v[0] + 1.0,
        _ => {}
    }
}

/// The free memory of mock GPU `index`: [`HELD_MEMORY_LEFT`] where `GPUVET_MOCK_HELD_MEMORY`
/// (`1,3`) names it, as a GPU with a stale job on it would report; else 16 GiB.
fn free_bytes_of(index: usize) -> u64 {
    let held = std::env::var(HELD_MEMORY_VAR).is_ok_and(|v| {
        v.split(',')
            .any(|d| d.trim().parse::<usize>().ok() == Some(index))
    });
    if held {
        HELD_MEMORY_LEFT
    } else {
        16 << 30
    }
}

/// Why the mock cannot run `w`, where `GPUVET_MOCK_NO_LIBRARY` names its kind.
fn library_missing(w: &Workload) -> Option<String> {
    let v = std::env::var(NO_LIBRARY_VAR).ok()?;
    v.split(',').any(|k| k.trim() == w.kind()).then(|| {
        format!(
            "the mock's library for {} is not installed ({NO_LIBRARY_VAR}): install it",
            w.kind()
        )
    })
}

/// The pair `GPUVET_MOCK_SLOW_PAIR` (`a:b`) names, if any.
fn slow_pair() -> Option<(usize, usize)> {
    let v = std::env::var(SLOW_PAIR_VAR).ok()?;
    let (a, b) = v.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// What landed: the inputs laid end to end (a transfer or a peer copy that lost nothing).
fn landed(inputs: &[Tensor]) -> Tensor {
    let v: Vec<f32> = inputs.iter().flat_map(|t| t.to_f32()).collect();
    Tensor {
        name: "landed".into(),
        shape: vec![v.len()],
        data: Data::F32(v),
    }
}

/// The exact output of `w` on `inputs`, from the f64 references: what the mock "computes" (for
/// a free-form user kernel, which has no reference, its simulated output: `user`). The one
/// place the mock names each workload kind. Refuses work beyond [`MAX_MACS`]
/// multiply-adds (or elements): it is a test double, not a compute engine.
fn exact_output(w: &Workload, inputs: &[Tensor]) -> Result<Tensor> {
    let within = |macs: u128| -> Result<()> {
        if macs > MAX_MACS {
            return Err(Error::unsupported(format!(
                "the mock backend computes at most {MAX_MACS} multiply-adds; {} is larger",
                w.name()
            )));
        }
        Ok(())
    };
    Ok(match w {
        Workload::Transfer(t) => {
            within(t.words() as u128)?;
            landed(inputs)
        }
        Workload::P2p(p) => {
            within(p.words() as u128)?;
            landed(inputs)
        }
        Workload::Collective(c) => {
            within(c.elements() as u128 * c.ranks as u128)?;
            let v = crate::workload::collective::reference(c, inputs);
            Tensor::from_f32("recv", vec![v.len()], c.dtype, &v)
        }
        Workload::Matmul(m) => {
            within(m.m as u128 * m.n as u128 * m.k as u128)?;
            matmul_output(m, inputs)
        }
        Workload::Attention(a) => {
            within(a.visible_pairs() * (a.batch * a.q_heads * a.head_dim) as u128)?;
            attention_output(a, inputs)
        }
        Workload::Memory(m) => {
            within(m.elements() as u128)?;
            memory_output(m, inputs)
        }
        Workload::Kernel(k) => {
            within(k.output().elements() as u128)?;
            user::simulated_output(k)
        }
    })
}

fn matmul_output(m: &MatmulSpec, inputs: &[Tensor]) -> Tensor {
    let a = inputs[0].to_f64();
    let (mm, n) = (m.m as usize, m.n as usize);
    let mut c = vec![0f32; mm * n];
    for i in 0..mm {
        for j in 0..n {
            c[i * n + j] = reference::matmul_element(m, &a, &inputs[1], i, j).0 as f32;
        }
    }
    Tensor::from_f32_out("C", vec![mm, n], m.dtype.matmul_output(), &c)
}

fn attention_output(a: &AttentionSpec, inputs: &[Tensor]) -> Tensor {
    let (bn, hn, lq) = (a.batch as usize, a.q_heads as usize, a.q_len as usize);
    let mut o = Vec::with_capacity(bn * hn * lq * a.head_dim as usize);
    for b in 0..bn {
        for h in 0..hn {
            for i in 0..lq {
                let (row, _) =
                    reference::attention_row(a, &inputs[0], &inputs[1], &inputs[2], b, h, i);
                o.extend(row.iter().map(|&x| x as f32));
            }
        }
    }
    Tensor::from_f32("O", a.q_shape(), a.dtype, &o)
}

fn memory_output(m: &MemorySpec, inputs: &[Tensor]) -> Tensor {
    let n = m.elements() as usize;
    match m.op {
        MemOp::Copy => Tensor {
            name: "dst".into(),
            ..inputs[0].clone()
        },
        MemOp::Read => Tensor {
            name: "sum".into(),
            shape: vec![1],
            data: Data::F64(vec![inputs[0].to_f64().iter().sum()]),
        },
        MemOp::Write => Tensor {
            name: "dst".into(),
            shape: vec![n],
            data: Data::F32(vec![WRITE_VALUE; n]),
        },
        MemOp::Triad => {
            let (b, c) = (inputs[0].to_f32(), inputs[1].to_f32());
            let a: Vec<f32> = b
                .iter()
                .zip(&c)
                .map(|(&x, &y)| x + TRIAD_SCALAR * y)
                .collect();
            Tensor {
                name: "a".into(),
                shape: vec![n],
                data: Data::F32(a),
            }
        }
    }
}
