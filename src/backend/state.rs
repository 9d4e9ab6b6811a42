//! Device state a backend reports (clocks, power limits, PCIe link, NVLink, MIG,
//! virtualisation, ECC, remapped rows, retired pages, slowdown temperature, serial), part of
//! `DeviceInfo::details` (see `details`), and the throttle reasons of a telemetry sample.
//!
//! The backend owns these types so that everything reading device state (the GPU database, the
//! validation checks) depends on `backend` and never the other way round. On the wire the state
//! is entries of the flat `details` object, with the keys they always had. Reading is lenient,
//! as reports from other tools or hand-edited fixtures are: numbers may be numeric strings,
//! flags may be booleans, numbers (non-zero = true) or `enabled`/`disabled`, `true`/`false`,
//! `yes`/`no`, `on`/`off`. A key that is absent or unreadable means "unknown", and the check
//! that needs it is skipped.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_with::skip_serializing_none;

/// Device state read from the driver and NVML. `None` = the backend could not read it.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceState {
    /// Device name as NVML reports it.
    #[serde(deserialize_with = "text")]
    pub nvml_name: Option<String>,
    /// SM clock when the state was read, MHz.
    #[serde(deserialize_with = "number")]
    pub sm_clock_mhz: Option<u32>,
    /// Highest SM clock the device allows (NVML max clock, SM), MHz.
    #[serde(deserialize_with = "number")]
    pub sm_clock_max_mhz: Option<u32>,
    /// The same from the CUDA driver's device attribute (used when NVML is missing), MHz.
    #[serde(deserialize_with = "number")]
    pub sm_clock_max_mhz_driver: Option<u64>,
    /// Memory clock when the state was read, MHz.
    #[serde(deserialize_with = "number")]
    pub memory_clock_mhz: Option<u32>,
    /// Highest memory clock (NVML max clock, MEM), MHz; with the bus width gives the bandwidth.
    #[serde(deserialize_with = "number")]
    pub memory_clock_max_mhz: Option<u32>,
    /// The same from the CUDA driver's device attribute, MHz.
    #[serde(deserialize_with = "number")]
    pub memory_clock_max_mhz_driver: Option<u64>,
    /// Memory bus width in bits (CUDA device attribute).
    #[serde(deserialize_with = "number")]
    pub memory_bus_width_bits: Option<u64>,
    /// GPU temperature when the state was read, °C.
    #[serde(deserialize_with = "number")]
    pub temperature_c: Option<u32>,
    /// Power limit in force (NVML enforced power limit), W.
    #[serde(deserialize_with = "number")]
    pub power_limit_w: Option<f64>,
    /// The board's default power limit (NVML default power management limit), W.
    #[serde(deserialize_with = "number")]
    pub power_limit_default_w: Option<f64>,
    /// Throttle reasons active when the state was read.
    #[serde(deserialize_with = "reasons")]
    pub throttle_reasons: Option<Vec<ThrottleReason>>,
    /// Whether ECC is enabled.
    #[serde(deserialize_with = "flag")]
    pub ecc_enabled: Option<bool>,
    /// Corrected (single-bit) ECC errors since the driver loaded.
    #[serde(deserialize_with = "number")]
    pub ecc_errors_corrected_volatile: Option<u64>,
    /// Uncorrected (double-bit) ECC errors since the driver loaded.
    #[serde(deserialize_with = "number")]
    pub ecc_errors_uncorrected_volatile: Option<u64>,
    /// Corrected ECC errors over the board's life.
    #[serde(deserialize_with = "number")]
    pub ecc_errors_corrected_aggregate: Option<u64>,
    /// Uncorrected ECC errors over the board's life.
    #[serde(deserialize_with = "number")]
    pub ecc_errors_uncorrected_aggregate: Option<u64>,
    /// Pages retired (pre-Ampere page retirement), for either cause.
    #[serde(deserialize_with = "number")]
    pub retired_pages: Option<u64>,
    /// Pages waiting to be retired: the GPU needs a reset.
    #[serde(deserialize_with = "flag")]
    pub retired_pages_pending: Option<bool>,
    /// Rows remapped after correctable errors (Ampere and later).
    #[serde(deserialize_with = "number")]
    pub remapped_rows_correctable: Option<u32>,
    /// Rows remapped after uncorrectable errors.
    #[serde(deserialize_with = "number")]
    pub remapped_rows_uncorrectable: Option<u32>,
    /// A remapping is pending: the GPU needs a reset before the spare row is used.
    #[serde(deserialize_with = "flag")]
    pub remapped_rows_pending: Option<bool>,
    /// A remapping failed: no spare rows left; the GPU should be replaced.
    #[serde(deserialize_with = "flag")]
    pub remapped_rows_failure: Option<bool>,
    /// PCIe generation of the link now. The link trains down when idle: sample it under load.
    #[serde(deserialize_with = "number")]
    pub pcie_gen: Option<u32>,
    /// Highest PCIe generation this GPU in this slot can reach.
    #[serde(deserialize_with = "number")]
    pub pcie_gen_max: Option<u32>,
    /// PCIe link width now (lanes).
    #[serde(deserialize_with = "number")]
    pub pcie_width: Option<u32>,
    /// Highest PCIe link width (lanes).
    #[serde(deserialize_with = "number")]
    pub pcie_width_max: Option<u32>,
    /// MIG mode of the physical GPU (written `"enabled"` / `"disabled"`).
    #[serde(serialize_with = "enabled", deserialize_with = "flag")]
    pub mig_mode: Option<bool>,
    /// True when the device itself is a MIG instance (a slice of a GPU).
    #[serde(deserialize_with = "flag")]
    pub mig_device: Option<bool>,
    /// Board serial number, recorded in the verdict.
    #[serde(deserialize_with = "text")]
    pub serial: Option<String>,
    /// Temperature at which the GPU starts to slow down (NVML slowdown threshold), °C.
    #[serde(deserialize_with = "number")]
    pub slowdown_temp_c: Option<u32>,
    /// NVML virtualisation mode: `none`, `passthrough`, `vgpu`, `host_vgpu`, `host_vsga`.
    #[serde(deserialize_with = "text")]
    pub virtualization_mode: Option<String>,
    /// Number of NVLink links in the active state (0 on PCIe-only boards).
    #[serde(deserialize_with = "number")]
    pub nvlink_active_links: Option<u32>,
    /// What each active NVLink link reaches (a GPU, or an NVSwitch), in link order: the
    /// topology matrix is built from these.
    #[serde(deserialize_with = "peers")]
    pub nvlink_peers: Option<Vec<NvLinkPeer>>,
    /// NVML's NVLink version code of the first active link (`nvmlNvlinkVersion_t`), as read.
    #[serde(deserialize_with = "number")]
    pub nvlink_version: Option<u32>,
    /// Devices (indices of the run) this device can map directly (`cuDeviceCanAccessPeer`).
    #[serde(deserialize_with = "indices")]
    pub peer_access: Option<Vec<u32>>,
}

/// What one NVLink link of a GPU is connected to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvLinkPeer {
    pub kind: NvLinkPeerKind,
    /// PCI bus id of the far end, as NVML reports it (`00000000:1B:00.0`).
    pub pci_bus_id: String,
}

/// The far end of an NVLink link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NvLinkPeerKind {
    /// Another GPU, directly.
    Gpu,
    /// An NVSwitch: the link reaches every GPU on the same switches.
    Switch,
    /// Anything else (an IBM NPU, or a type NVML did not say).
    Other,
}

impl DeviceState {
    /// This state with every field `newer` knows taken from `newer`: the state read again
    /// later (ECC counters, the PCIe link) over what was read when the device opened, which
    /// keeps what only the opening could tell (the driver's clock attributes).
    pub fn overlay(&self, newer: &DeviceState) -> DeviceState {
        let (Ok(Value::Object(mut m)), Ok(Value::Object(n))) =
            (serde_json::to_value(self), serde_json::to_value(newer))
        else {
            return newer.clone();
        };
        m.extend(n);
        // Lenient fields read back what they wrote.
        DeviceState::deserialize(Value::Object(m)).unwrap_or_else(|_| newer.clone())
    }

    /// The maximum SM clock, from NVML or else the CUDA driver, MHz.
    pub fn max_sm_clock_mhz(&self) -> Option<f64> {
        self.sm_clock_max_mhz
            .map(f64::from)
            .or(self.sm_clock_max_mhz_driver.map(|v| v as f64))
    }

    /// The maximum memory clock, from NVML or else the CUDA driver, MHz.
    pub fn max_memory_clock_mhz(&self) -> Option<f64> {
        self.memory_clock_max_mhz
            .map(f64::from)
            .or(self.memory_clock_max_mhz_driver.map(|v| v as f64))
    }
}

/// Why the clocks were held below their maximum at a telemetry sample (NVML clock-event
/// reasons). Several can be active at once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ThrottleReason {
    GpuIdle,
    /// Clocks set by the applications-clocks setting (formerly "user defined clocks").
    ApplicationsClocksSetting,
    SwPowerCap,
    /// The hardware slowdown signal (thermal or power brake).
    HwSlowdown,
    SyncBoost,
    SwThermalSlowdown,
    HwThermalSlowdown,
    HwPowerBrakeSlowdown,
    DisplayClockSetting,
    /// Bits of the reason mask this version does not know, kept as they were read.
    Unknown(u64),
    /// A name in a report that is none of the above (a newer or another tool's), kept verbatim.
    Other(String),
}

impl ThrottleReason {
    /// Every named reason, in NVML bit order.
    pub const KNOWN: [ThrottleReason; 9] = [
        ThrottleReason::GpuIdle,
        ThrottleReason::ApplicationsClocksSetting,
        ThrottleReason::SwPowerCap,
        ThrottleReason::HwSlowdown,
        ThrottleReason::SyncBoost,
        ThrottleReason::SwThermalSlowdown,
        ThrottleReason::HwThermalSlowdown,
        ThrottleReason::HwPowerBrakeSlowdown,
        ThrottleReason::DisplayClockSetting,
    ];

    /// The snake-case name written in reports (`unknown_0x…` for unknown bits).
    pub fn name(&self) -> String {
        let s = match self {
            ThrottleReason::GpuIdle => "gpu_idle",
            ThrottleReason::ApplicationsClocksSetting => "applications_clocks_setting",
            ThrottleReason::SwPowerCap => "sw_power_cap",
            ThrottleReason::HwSlowdown => "hw_slowdown",
            ThrottleReason::SyncBoost => "sync_boost",
            ThrottleReason::SwThermalSlowdown => "sw_thermal_slowdown",
            ThrottleReason::HwThermalSlowdown => "hw_thermal_slowdown",
            ThrottleReason::HwPowerBrakeSlowdown => "hw_power_brake_slowdown",
            ThrottleReason::DisplayClockSetting => "display_clock_setting",
            ThrottleReason::Unknown(bits) => return format!("unknown_0x{bits:x}"),
            ThrottleReason::Other(s) => return s.clone(),
        };
        s.to_string()
    }

    /// Reads a name from a report. Case and punctuation are ignored, so `HwThermalSlowdown`
    /// (NVML's spelling) and `hw_thermal_slowdown` are the same reason.
    fn from_report(s: &str) -> ThrottleReason {
        let squash = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let key = squash(s);
        if let Some(r) = Self::KNOWN.iter().find(|r| squash(&r.name()) == key) {
            return r.clone();
        }
        if key == "userdefinedclocks" {
            return ThrottleReason::ApplicationsClocksSetting;
        }
        match key
            .strip_prefix("unknown0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        {
            Some(bits) => ThrottleReason::Unknown(bits),
            None => ThrottleReason::Other(s.to_string()),
        }
    }
}

impl std::fmt::Display for ThrottleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for ThrottleReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for ThrottleReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ThrottleReason::from_report(&s))
    }
}

/// A value that can be read from a JSON number.
pub(super) trait FromNumber: Sized {
    fn from_f64(x: f64) -> Option<Self>;
}

impl FromNumber for f64 {
    fn from_f64(x: f64) -> Option<f64> {
        x.is_finite().then_some(x)
    }
}

macro_rules! from_number_unsigned {
    ($($t:ty),*) => {$(
        impl FromNumber for $t {
            fn from_f64(x: f64) -> Option<$t> {
                (x.is_finite() && x >= 0.0 && x <= <$t>::MAX as f64).then_some(x as $t)
            }
        }
    )*};
}
from_number_unsigned!(u32, u64);

/// Numbers or numeric strings; anything else is unknown.
pub(super) fn number<'de, D: Deserializer<'de>, T: FromNumber>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let x = match Value::deserialize(d)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(x.and_then(T::from_f64))
}

/// Booleans, numbers (non-zero = true) and the usual words for on and off.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "enabled" | "true" | "yes" | "on" | "1" => Some(true),
            "disabled" | "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// Strings; anything else is unknown.
pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// A list of reason names; entries that are not strings are dropped.
fn reasons<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<ThrottleReason>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(xs) => Some(
            xs.iter()
                .filter_map(Value::as_str)
                .map(ThrottleReason::from_report)
                .collect(),
        ),
        _ => None,
    })
}

/// NVLink peers; entries that do not read as one are dropped.
fn peers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<NvLinkPeer>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(xs) => Some(
            xs.into_iter()
                .filter_map(|x| serde_json::from_value(x).ok())
                .collect(),
        ),
        _ => None,
    })
}

/// Whole numbers (device indices); entries that are not are dropped.
fn indices<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u32>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(xs) => Some(
            xs.iter()
                .filter_map(Value::as_u64)
                .filter_map(|v| u32::try_from(v).ok())
                .collect(),
        ),
        _ => None,
    })
}

/// MIG mode as NVML tools print it.
fn enabled<S: Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(true) => s.serialize_str("enabled"),
        Some(false) => s.serialize_str("disabled"),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// `v` read as a `T` (a device's state or details), as a report file would be.
    pub(crate) fn read<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn writes_the_keys_reports_always_had() {
        let s = DeviceState {
            sm_clock_max_mhz_driver: Some(1980),
            power_limit_w: Some(700.0),
            mig_mode: Some(false),
            ecc_enabled: Some(true),
            throttle_reasons: Some(vec![
                ThrottleReason::SwPowerCap,
                ThrottleReason::Unknown(0x400),
            ]),
            ..DeviceState::default()
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({
                "sm_clock_max_mhz_driver": 1980,
                "power_limit_w": 700.0,
                "mig_mode": "disabled",
                "ecc_enabled": true,
                "throttle_reasons": ["sw_power_cap", "unknown_0x400"],
            })
        );
        assert_eq!(read::<DeviceState>(serde_json::to_value(&s).unwrap()), s);
    }

    #[test]
    fn reads_leniently_and_ignores_other_keys() {
        let s: DeviceState = read(json!({
            "sm_clock_max_mhz_driver": "2505",
            "mig_mode": "enabled",
            "ecc_enabled": "false",
            "remapped_rows_pending": 1,
            "pcie_gen": 4.0,
            "serial": 12,
            "slowdown_temp_c": "hot",
            "arch": "sm_90a",
            "throttle_reasons": ["HwThermalSlowdown", "user_defined_clocks", "new_thing"],
        }));
        assert_eq!(s.max_sm_clock_mhz(), Some(2505.0));
        assert_eq!(s.mig_mode, Some(true));
        assert_eq!(s.ecc_enabled, Some(false));
        assert_eq!(s.remapped_rows_pending, Some(true));
        assert_eq!(s.pcie_gen, Some(4));
        assert_eq!(s.serial, None);
        assert_eq!(s.slowdown_temp_c, None);
        assert_eq!(
            s.throttle_reasons,
            Some(vec![
                ThrottleReason::HwThermalSlowdown,
                ThrottleReason::ApplicationsClocksSetting,
                ThrottleReason::Other("new_thing".into()),
            ])
        );
    }

    #[test]
    fn the_nvml_clock_wins_over_the_driver_attribute() {
        let s = DeviceState {
            sm_clock_max_mhz: Some(1980),
            sm_clock_max_mhz_driver: Some(1755),
            memory_clock_max_mhz_driver: Some(2619),
            ..DeviceState::default()
        };
        assert_eq!(s.max_sm_clock_mhz(), Some(1980.0));
        assert_eq!(s.max_memory_clock_mhz(), Some(2619.0));
    }

    #[test]
    fn a_later_read_overlays_what_it_knows() {
        let open = DeviceState {
            sm_clock_max_mhz_driver: Some(1980),
            ecc_errors_corrected_volatile: Some(0),
            pcie_gen: Some(1),
            ..DeviceState::default()
        };
        let later = DeviceState {
            ecc_errors_corrected_volatile: Some(12),
            pcie_gen: Some(5),
            ..DeviceState::default()
        };
        let now = open.overlay(&later);
        assert_eq!(now.sm_clock_max_mhz_driver, Some(1980));
        assert_eq!(now.ecc_errors_corrected_volatile, Some(12));
        assert_eq!(now.pcie_gen, Some(5));
    }
}
