//! NVML: device state (ECC, retired/remapped memory, PCIe link, MIG, power limit) and the
//! telemetry sampled before and after each result.
//!
//! NVML devices are matched to CUDA devices by UUID, then by PCI bus id, never by index:
//! `CUDA_VISIBLE_DEVICES` and `CUDA_DEVICE_ORDER` renumber CUDA devices but not NVML ones.

use super::libs;
use crate::backend::Telemetry;
use crate::validate::keys;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, GpuVirtualizationMode, MemoryError, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::{Device, Nvml};
use serde_json::{json, Map, Value};
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

/// Every throttle reason set in `bits`, by name. A bitmask: several can be active at once.
pub fn decode_throttle(bits: u64) -> Vec<String> {
    // USER_DEFINED_CLOCKS is the old name of APPLICATIONS_CLOCKS_SETTING (the same bit).
    const NAMES: [(ThrottleReasons, &str); 9] = [
        (ThrottleReasons::GPU_IDLE, "gpu_idle"),
        (
            ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
            "applications_clocks_setting",
        ),
        (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
        (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
        (ThrottleReasons::SYNC_BOOST, "sync_boost"),
        (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
        (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
        (
            ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
            "hw_power_brake_slowdown",
        ),
        (
            ThrottleReasons::DISPLAY_CLOCK_SETTING,
            "display_clock_setting",
        ),
    ];
    let mut out: Vec<String> = NAMES
        .iter()
        .filter(|(r, _)| bits & r.bits() != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known = NAMES.iter().fold(0u64, |a, (r, _)| a | r.bits());
    let unknown = bits & !known;
    if unknown != 0 {
        out.push(format!("unknown_0x{unknown:x}"));
    }
    out
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
        throttle_reasons: d
            .current_throttle_reasons()
            .map(|r| decode_throttle(r.bits()))
            .unwrap_or_default(),
    }
}

/// Device state for `DeviceInfo.details`: clocks, ECC, retired and remapped memory, PCIe link
/// (current vs max), MIG mode, power limits. Each field is recorded only when NVML answers.
pub fn details(d: &Device) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("nvml_name", d.name().ok().map(Value::from));
    for (now, max, clock) in [
        ("sm_clock_mhz", keys::MAX_SM_CLOCK_MHZ, Clock::SM),
        (
            "memory_clock_mhz",
            keys::MAX_MEMORY_CLOCK_MHZ,
            Clock::Memory,
        ),
    ] {
        put(now, d.clock_info(clock).ok().map(Value::from));
        put(max, d.max_clock_info(clock).ok().map(Value::from));
    }
    put(
        "temperature_c",
        d.temperature(TemperatureSensor::Gpu).ok().map(Value::from),
    );
    put(
        keys::POWER_LIMIT_W,
        d.enforced_power_limit().ok().map(|v| json!(v as f64 / 1e3)),
    );
    put(
        keys::DEFAULT_POWER_LIMIT_W,
        d.power_management_limit_default()
            .ok()
            .map(|v| json!(v as f64 / 1e3)),
    );
    put(
        "throttle_reasons",
        d.current_throttle_reasons()
            .ok()
            .map(|r| json!(decode_throttle(r.bits()))),
    );
    put(
        keys::ECC_ENABLED,
        d.is_ecc_enabled().ok().map(|e| json!(e.currently_enabled)),
    );
    for (key, kind) in [
        (keys::ECC_CORRECTED_VOLATILE, MemoryError::Corrected),
        (keys::ECC_UNCORRECTED_VOLATILE, MemoryError::Uncorrected),
    ] {
        put(
            key,
            d.total_ecc_errors(kind, EccCounter::Volatile)
                .ok()
                .map(Value::from),
        );
    }
    for (key, kind) in [
        ("ecc_errors_corrected_aggregate", MemoryError::Corrected),
        ("ecc_errors_uncorrected_aggregate", MemoryError::Uncorrected),
    ] {
        put(
            key,
            d.total_ecc_errors(kind, EccCounter::Aggregate)
                .ok()
                .map(Value::from),
        );
    }
    use nvml_wrapper::enum_wrappers::device::RetirementCause as R;
    let retired: Option<usize> = match (
        d.retired_pages(R::MultipleSingleBitEccErrors),
        d.retired_pages(R::DoubleBitEccError),
    ) {
        (Ok(a), Ok(b)) => Some(a.len() + b.len()),
        _ => None,
    };
    put("retired_pages", retired.map(Value::from));
    put(
        keys::RETIRED_PAGES_PENDING,
        d.are_pages_pending_retired().ok().map(Value::from),
    );
    if let Some((corr, unc, pending, failed)) = remapped_rows(d) {
        put(keys::REMAPPED_ROWS_CORRECTABLE, Some(json!(corr)));
        put(keys::REMAPPED_ROWS_UNCORRECTABLE, Some(json!(unc)));
        put(keys::REMAPPED_ROWS_PENDING, Some(json!(pending)));
        put(keys::REMAPPED_ROWS_FAILURE, Some(json!(failed)));
    }
    put(
        keys::PCIE_GEN_CURRENT,
        d.current_pcie_link_gen().ok().map(Value::from),
    );
    put(
        keys::PCIE_GEN_MAX,
        d.max_pcie_link_gen().ok().map(Value::from),
    );
    put(
        keys::PCIE_WIDTH_CURRENT,
        d.current_pcie_link_width().ok().map(Value::from),
    );
    put(
        keys::PCIE_WIDTH_MAX,
        d.max_pcie_link_width().ok().map(Value::from),
    );
    let mig = d.mig_mode().ok().map(|m| m.current == 1);
    put(
        keys::MIG_MODE,
        mig.map(|on| json!(if on { "enabled" } else { "disabled" })),
    );
    // A CUDA device on a GPU in MIG mode is one of its instances (CUDA sees only those).
    put(keys::MIG_DEVICE, mig.map(Value::from));
    put(keys::SERIAL, d.serial().ok().map(Value::from));
    put(
        keys::SLOWDOWN_TEMP_C,
        d.temperature_threshold(TemperatureThreshold::Slowdown)
            .ok()
            .map(Value::from),
    );
    put(
        keys::VIRTUALIZATION_MODE,
        d.virtualization_mode().ok().map(|v| {
            json!(match v {
                GpuVirtualizationMode::Bare => "none",
                GpuVirtualizationMode::PassThrough => "passthrough",
                GpuVirtualizationMode::Vgpu => "vgpu",
                GpuVirtualizationMode::HostVgpu => "host_vgpu",
                GpuVirtualizationMode::HostVsga => "host_vsga",
            })
        }),
    );
    // NVLink: links in the active state (0 on PCIe-only boards; absent when NVML cannot say).
    let links: Vec<bool> = (0..NVLINK_MAX_LINKS)
        .filter_map(|l| d.link_wrapper_for(l).is_active().ok())
        .collect();
    if !links.is_empty() {
        put(
            keys::NVLINK_ACTIVE_LINKS,
            Some(json!(links.iter().filter(|&&a| a).count())),
        );
    }
    m
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
        assert!(decode_throttle(0).is_empty());
        let both =
            ThrottleReasons::SW_POWER_CAP.bits() | ThrottleReasons::HW_THERMAL_SLOWDOWN.bits();
        assert_eq!(
            decode_throttle(both),
            vec![
                "sw_power_cap".to_string(),
                "hw_thermal_slowdown".to_string()
            ]
        );
        let odd = decode_throttle(ThrottleReasons::GPU_IDLE.bits() | (1 << 40));
        assert_eq!(
            odd,
            vec!["gpu_idle".to_string(), "unknown_0x10000000000".to_string()]
        );
    }
}
