//! Names of the `DeviceInfo::details` entries that the GPU database and the validation checks
//! read. The CUDA backend fills them (src/backend/cuda/nvml.rs and device.rs use these names); a
//! key that is absent means "unknown" and the check that needs it is skipped, never failed.
//!
//! Numbers are JSON numbers; flags are JSON booleans (strings `"enabled"` / `"disabled"` and
//! `"true"` / `"false"` are accepted too).

/// Highest SM clock the device allows (NVML `nvmlDeviceGetMaxClockInfo(SM)`), MHz.
pub const MAX_SM_CLOCK_MHZ: &str = "sm_clock_max_mhz";
/// The same from the CUDA driver's device attribute (read when NVML is missing), MHz.
pub const MAX_SM_CLOCK_MHZ_DRIVER: &str = "sm_clock_max_mhz_driver";
/// Highest memory clock (NVML max clock, MEM), MHz; with the bus width gives the bandwidth.
pub const MAX_MEMORY_CLOCK_MHZ: &str = "memory_clock_max_mhz";
/// The same from the CUDA driver's device attribute, MHz.
pub const MAX_MEMORY_CLOCK_MHZ_DRIVER: &str = "memory_clock_max_mhz_driver";
/// Memory bus width in bits (CUDA device attribute).
pub const MEMORY_BUS_WIDTH_BITS: &str = "memory_bus_width_bits";
/// Board serial number (NVML), recorded in the verdict.
pub const SERIAL: &str = "serial";
/// Power limit in force now (NVML enforced power limit), W.
pub const POWER_LIMIT_W: &str = "power_limit_w";
/// The board's default power limit (NVML default power management limit), W.
pub const DEFAULT_POWER_LIMIT_W: &str = "power_limit_default_w";
/// PCIe generation of the link now. The link trains down when idle: sample it under load.
pub const PCIE_GEN_CURRENT: &str = "pcie_gen";
/// Highest PCIe generation this GPU in this slot can reach (NVML max link generation).
pub const PCIE_GEN_MAX: &str = "pcie_gen_max";
/// PCIe link width now (lanes).
pub const PCIE_WIDTH_CURRENT: &str = "pcie_width";
/// Highest PCIe link width (lanes).
pub const PCIE_WIDTH_MAX: &str = "pcie_width_max";
/// Number of NVLink links in the active state.
pub const NVLINK_ACTIVE_LINKS: &str = "nvlink_active_links";
/// MIG mode of the physical GPU (current mode).
pub const MIG_MODE: &str = "mig_mode";
/// True when the device itself is a MIG instance (a slice of a GPU).
pub const MIG_DEVICE: &str = "mig_device";
/// NVML virtualization mode: `none`, `passthrough`, `vgpu`, `host_vgpu`, `host_vsga`.
pub const VIRTUALIZATION_MODE: &str = "virtualization_mode";
/// Whether ECC is enabled.
pub const ECC_ENABLED: &str = "ecc_enabled";
/// Corrected (single-bit) ECC errors since the driver loaded.
pub const ECC_CORRECTED_VOLATILE: &str = "ecc_errors_corrected_volatile";
/// Uncorrected (double-bit) ECC errors since the driver loaded.
pub const ECC_UNCORRECTED_VOLATILE: &str = "ecc_errors_uncorrected_volatile";
/// Rows remapped after correctable errors (NVML remapped rows, Ampere and later).
pub const REMAPPED_ROWS_CORRECTABLE: &str = "remapped_rows_correctable";
/// Rows remapped after uncorrectable errors.
pub const REMAPPED_ROWS_UNCORRECTABLE: &str = "remapped_rows_uncorrectable";
/// A remapping is pending: the GPU needs a reset before the spare row is used.
pub const REMAPPED_ROWS_PENDING: &str = "remapped_rows_pending";
/// A remapping failed: no spare rows left; the GPU should be replaced.
pub const REMAPPED_ROWS_FAILURE: &str = "remapped_rows_failure";
/// Pages waiting to be retired (pre-Ampere page retirement): needs a reset.
pub const RETIRED_PAGES_PENDING: &str = "retired_pages_pending";
/// Temperature at which the GPU starts to slow down (NVML slowdown threshold), °C.
pub const SLOWDOWN_TEMP_C: &str = "slowdown_temp_c";

/// Throttle-reason names, as the backend should write them into `Telemetry::throttle_reasons`
/// (NVML clock-event reasons in snake case). Matching ignores case and punctuation, so
/// `HwThermalSlowdown` and `hw_thermal_slowdown` are the same reason.
pub mod throttle {
    pub const GPU_IDLE: &str = "gpu_idle";
    pub const APPLICATIONS_CLOCKS: &str = "applications_clocks_setting";
    pub const SW_POWER_CAP: &str = "sw_power_cap";
    pub const HW_SLOWDOWN: &str = "hw_slowdown";
    pub const SYNC_BOOST: &str = "sync_boost";
    pub const SW_THERMAL: &str = "sw_thermal_slowdown";
    pub const HW_THERMAL: &str = "hw_thermal_slowdown";
    pub const HW_POWER_BRAKE: &str = "hw_power_brake_slowdown";
    pub const DISPLAY_CLOCKS: &str = "display_clock_setting";
}

/// A number from the details map (numbers or numeric strings).
pub fn number(details: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<f64> {
    match details.get(key)? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A flag from the details map: booleans, `enabled`/`disabled`, `true`/`false`, `yes`/`no`,
/// numbers (non-zero = true).
pub fn flag(details: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<bool> {
    match details.get(key)? {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "enabled" | "true" | "yes" | "on" | "1" => Some(true),
            "disabled" | "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A string from the details map.
pub fn text<'a>(
    details: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a str> {
    details.get(key)?.as_str()
}

/// The maximum SM clock, from NVML or else the CUDA driver.
pub fn max_sm_clock_mhz(details: &serde_json::Map<String, serde_json::Value>) -> Option<f64> {
    number(details, MAX_SM_CLOCK_MHZ).or_else(|| number(details, MAX_SM_CLOCK_MHZ_DRIVER))
}

/// The maximum memory clock, from NVML or else the CUDA driver.
pub fn max_memory_clock_mhz(details: &serde_json::Map<String, serde_json::Value>) -> Option<f64> {
    number(details, MAX_MEMORY_CLOCK_MHZ).or_else(|| number(details, MAX_MEMORY_CLOCK_MHZ_DRIVER))
}
