//! NVML: device state (ECC, retired/remapped memory, PCIe link, MIG, power limit) and the
//! telemetry sampled before and after each result.
//!
//! NVML devices are matched to CUDA devices by UUID, then by PCI bus id, never by index:
//! `CUDA_VISIBLE_DEVICES` and `CUDA_DEVICE_ORDER` renumber CUDA devices but not NVML ones.

use super::libs;
use crate::backend::{DeviceState, NvLinkPeer, NvLinkPeerKind, Telemetry, ThrottleReason};
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, GpuVirtualizationMode, MemoryError, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::{Device, Nvml};
use std::sync::OnceLock;

static NVML: OnceLock<Option<Nvml>> = OnceLock::new();

/// The process-wide NVML handle, or `None` when the library is missing or fails to start.
pub fn nvml() -> Option<&'static Nvml> {
    NVML.get_or_init(|| {
        libs::probe().nvml.as_ref().ok()?;
        Nvml::init().ok()
    })
    .as_ref()
}

/// Finds the NVML device of a CUDA device by UUID, else by PCI bus id.
pub fn find<'a>(nvml: &'a Nvml, uuid: &str, pci_bus_id: &str) -> Option<Device<'a>> {
    nvml.device_by_uuid(uuid)
        .ok()
        .or_else(|| nvml.device_by_pci_bus_id(pci_bus_id).ok())
        .or_else(|| nvml.device_by_pci_bus_id(format!("0000{pci_bus_id}")).ok())
}

/// The driver version string (`580.95.05`), from NVML.
pub fn driver_version() -> Option<String> {
    nvml()?.sys_driver_version().ok()
}

/// Every throttle reason set in `bits`. A bitmask: several can be active at once; bits this
/// version has no name for are kept as one `Unknown` entry.
pub fn decode_throttle(bits: u64) -> Vec<ThrottleReason> {
    // USER_DEFINED_CLOCKS is the old name of APPLICATIONS_CLOCKS_SETTING (the same bit).
    const BITS: [ThrottleReasons; 9] = [
        ThrottleReasons::GPU_IDLE,
        ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
        ThrottleReasons::SW_POWER_CAP,
        ThrottleReasons::HW_SLOWDOWN,
        ThrottleReasons::SYNC_BOOST,
        ThrottleReasons::SW_THERMAL_SLOWDOWN,
        ThrottleReasons::HW_THERMAL_SLOWDOWN,
        ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
        ThrottleReasons::DISPLAY_CLOCK_SETTING,
    ];
    let mut out: Vec<ThrottleReason> = BITS
        .iter()
        .zip(ThrottleReason::KNOWN)
        .filter(|(b, _)| bits & b.bits() != 0)
        .map(|(_, r)| r)
        .collect();
    let known = BITS.iter().fold(0u64, |a, b| a | b.bits());
    let unknown = bits & !known;
    if unknown != 0 {
        out.push(ThrottleReason::Unknown(unknown));
    }
    out
}

/// The raw throttle-reason mask, read through the raw NVML symbol: nvml-wrapper's
/// `current_throttle_reasons` truncates bits it does not know, which would hide them.
fn throttle_bits(d: &Device) -> Option<u64> {
    let lib = d.nvml().lib();
    let f = lib
        .nvmlDeviceGetCurrentClocksEventReasons
        .as_ref()
        .or(lib.nvmlDeviceGetCurrentClocksThrottleReasons.as_ref())
        .ok()?;
    let mut bits: std::ffi::c_ulonglong = 0;
    // SAFETY: `nvmlReturn_t f(nvmlDevice_t, unsigned long long *)` with a live device handle
    // and a valid out-pointer.
    let rc = unsafe { f(d.handle(), &mut bits) };
    (rc == 0).then_some(bits)
}

/// A telemetry sample; fields NVML cannot read stay `None`.
pub fn telemetry(d: &Device) -> Telemetry {
    let mhz = |c| d.clock_info(c).ok().map(|v| v as f64);
    Telemetry {
        sm_clock_mhz: mhz(Clock::SM),
        memory_clock_mhz: mhz(Clock::Memory),
        temperature_c: d.temperature(TemperatureSensor::Gpu).ok().map(|v| v as f64),
        power_w: d.power_usage().ok().map(|mw| mw as f64 / 1e3),
        power_limit_w: d.enforced_power_limit().ok().map(|mw| mw as f64 / 1e3),
        throttle_reasons: throttle_bits(d).map(decode_throttle).unwrap_or_default(),
    }
}

/// Device state: clocks, ECC, retired and remapped memory, PCIe link (current vs max), MIG
/// mode, power limits. Each field is recorded only when NVML answers.
pub fn state(d: &Device) -> DeviceState {
    let watts = |mw: u32| mw as f64 / 1e3;
    let mut s = DeviceState {
        nvml_name: d.name().ok(),
        sm_clock_mhz: d.clock_info(Clock::SM).ok(),
        sm_clock_max_mhz: d.max_clock_info(Clock::SM).ok(),
        memory_clock_mhz: d.clock_info(Clock::Memory).ok(),
        memory_clock_max_mhz: d.max_clock_info(Clock::Memory).ok(),
        temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
        power_limit_w: d.enforced_power_limit().ok().map(watts),
        power_limit_default_w: d.power_management_limit_default().ok().map(watts),
        throttle_reasons: throttle_bits(d).map(decode_throttle),
        serial: d.serial().ok(),
        slowdown_temp_c: d.temperature_threshold(TemperatureThreshold::Slowdown).ok(),
        virtualization_mode: d
            .virtualization_mode()
            .ok()
            .map(|v| virtualization_name(v).into()),
        ..DeviceState::default()
    };
    nvlinks(d, &mut s);
    memory_health(d, &mut s);
    pcie_and_mig(d, &mut s);
    s
}

/// ECC counters, retired pages and remapped rows.
fn memory_health(d: &Device, s: &mut DeviceState) {
    s.ecc_enabled = d.is_ecc_enabled().ok().map(|e| e.currently_enabled);
    let ecc = |kind, counter| d.total_ecc_errors(kind, counter).ok();
    s.ecc_errors_corrected_volatile = ecc(MemoryError::Corrected, EccCounter::Volatile);
    s.ecc_errors_uncorrected_volatile = ecc(MemoryError::Uncorrected, EccCounter::Volatile);
    s.ecc_errors_corrected_aggregate = ecc(MemoryError::Corrected, EccCounter::Aggregate);
    s.ecc_errors_uncorrected_aggregate = ecc(MemoryError::Uncorrected, EccCounter::Aggregate);
    use nvml_wrapper::enum_wrappers::device::RetirementCause as R;
    s.retired_pages = match (
        d.retired_pages(R::MultipleSingleBitEccErrors),
        d.retired_pages(R::DoubleBitEccError),
    ) {
        (Ok(a), Ok(b)) => Some((a.len() + b.len()) as u64),
        _ => None,
    };
    s.retired_pages_pending = d.are_pages_pending_retired().ok();
    if let Some((corr, unc, pending, failed)) = remapped_rows(d) {
        s.remapped_rows_correctable = Some(corr);
        s.remapped_rows_uncorrectable = Some(unc);
        s.remapped_rows_pending = Some(pending);
        s.remapped_rows_failure = Some(failed);
    }
}

/// The PCIe link (now and at most) and MIG mode.
fn pcie_and_mig(d: &Device, s: &mut DeviceState) {
    s.pcie_gen = d.current_pcie_link_gen().ok();
    s.pcie_gen_max = d.max_pcie_link_gen().ok();
    s.pcie_width = d.current_pcie_link_width().ok();
    s.pcie_width_max = d.max_pcie_link_width().ok();
    s.mig_mode = d.mig_mode().ok().map(|m| m.current == 1);
    // A CUDA device on a GPU in MIG mode is one of its instances (CUDA sees only those).
    s.mig_device = s.mig_mode;
}

/// NVML's virtualisation mode by the name reports use.
fn virtualization_name(v: GpuVirtualizationMode) -> &'static str {
    match v {
        GpuVirtualizationMode::Bare => "none",
        GpuVirtualizationMode::PassThrough => "passthrough",
        GpuVirtualizationMode::Vgpu => "vgpu",
        GpuVirtualizationMode::HostVgpu => "host_vgpu",
        GpuVirtualizationMode::HostVsga => "host_vsga",
    }
}

/// NVLink: links in the active state (0 on PCIe-only boards; `None` when NVML cannot say),
/// what each active one reaches (a GPU or an NVSwitch, by PCI bus id), and the version code.
fn nvlinks(d: &Device, s: &mut DeviceState) {
    let states: Vec<(u32, bool)> = (0..NVLINK_MAX_LINKS)
        .filter_map(|l| Some((l, d.link_wrapper_for(l).is_active().ok()?)))
        .collect();
    if states.is_empty() {
        return;
    }
    let active: Vec<u32> = states.iter().filter(|s| s.1).map(|s| s.0).collect();
    s.nvlink_active_links = Some(active.len() as u32);
    let peers: Vec<NvLinkPeer> = active
        .iter()
        .filter_map(|&l| {
            let pci = d.link_wrapper_for(l).remote_pci_info().ok()?;
            Some(NvLinkPeer {
                kind: remote_kind(d, l),
                pci_bus_id: pci.bus_id,
            })
        })
        .collect();
    if !peers.is_empty() {
        s.nvlink_peers = Some(peers);
    }
    s.nvlink_version = active
        .first()
        .and_then(|&l| d.link_wrapper_for(l).version().ok());
}

/// What link `l` reaches, through the raw NVML symbol (nvml-wrapper's wrapper of it reads its
/// result from a temporary).
fn remote_kind(d: &Device, l: u32) -> NvLinkPeerKind {
    let Ok(f) = d.nvml().lib().nvmlDeviceGetNvLinkRemoteDeviceType.as_ref() else {
        return NvLinkPeerKind::Other;
    };
    let mut kind: std::ffi::c_uint = 255;
    // SAFETY: a live device handle, a link index below NVML_NVLINK_MAX_LINKS, an out-pointer.
    let rc = unsafe { f(d.handle(), l, &mut kind) };
    match (rc, kind) {
        (0, 0) => NvLinkPeerKind::Gpu,
        (0, 2) => NvLinkPeerKind::Switch,
        _ => NvLinkPeerKind::Other,
    }
}

/// NVML_NVLINK_MAX_LINKS: the most NVLink links any GPU has.
const NVLINK_MAX_LINKS: u32 = 18;

/// Row remapping (A100 and later): correctable, uncorrectable, pending, failure. Read through
/// the raw symbol because nvml-wrapper has no safe wrapper for it.
fn remapped_rows(d: &Device) -> Option<(u32, u32, bool, bool)> {
    let f = d.nvml().lib().nvmlDeviceGetRemappedRows.as_ref().ok()?;
    let (mut c, mut u, mut p, mut fail) = (0u32, 0u32, 0u32, 0u32);
    // SAFETY: a live device handle and four valid out-pointers.
    let rc = unsafe { f(d.handle(), &mut c, &mut u, &mut p, &mut fail) };
    (rc == 0).then_some((c, u, p != 0, fail != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_reasons_are_a_bitmask() {
        use ThrottleReason as R;
        assert!(decode_throttle(0).is_empty());
        let both =
            ThrottleReasons::SW_POWER_CAP.bits() | ThrottleReasons::HW_THERMAL_SLOWDOWN.bits();
        assert_eq!(
            decode_throttle(both),
            vec![R::SwPowerCap, R::HwThermalSlowdown]
        );
        let odd = decode_throttle(ThrottleReasons::GPU_IDLE.bits() | (1 << 40));
        assert_eq!(odd, vec![R::GpuIdle, R::Unknown(1 << 40)]);
        let names: Vec<String> = odd.iter().map(R::name).collect();
        assert_eq!(names, ["gpu_idle", "unknown_0x10000000000"]);
    }

    #[test]
    fn every_named_reason_has_its_nvml_bit() {
        for (i, r) in ThrottleReason::KNOWN.iter().enumerate() {
            let bit = 1u64 << i;
            assert_eq!(decode_throttle(bit), vec![r.clone()], "bit {bit:#x}");
        }
    }
}
