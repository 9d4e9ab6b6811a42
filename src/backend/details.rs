//! `DeviceInfo::details` as typed data: the device's state ([`DeviceState`]), the facts its
//! backend records about it ([`CudaFacts`], [`CpuFacts`]), and whatever else a report holds.
//!
//! On the wire it is the one flat JSON object reports have always carried, keys in sorted order,
//! so files written by earlier versions load unchanged and new files read the same. Reading is
//! lenient, as reports from other tools or hand-edited fixtures are (see `state`): a value a
//! field cannot read leaves the field unknown. Nothing is lost on the way through: an entry no
//! field takes, a newer version's or an unreadable one, is kept in [`DeviceDetails::other`] and
//! written back as it was.

use super::state::{number, text, DeviceState};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

/// Everything the `details` object of a device records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceDetails {
    /// Clocks, power limits, ECC and memory health, PCIe link, MIG, virtualisation: what
    /// identity and health are judged on.
    pub state: DeviceState,
    /// What the CUDA backend records about a GPU and the libraries it runs with.
    pub cuda: CudaFacts,
    /// What the CPU backend records about the host it runs on.
    pub cpu: CpuFacts,
    /// Entries none of the above reads, kept verbatim.
    pub other: Map<String, Value>,
}

/// Facts of a CUDA device and the software stack it is driven with, as the backend found them
/// when it opened the device. `None` = not recorded.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CudaFacts {
    /// The device's CUDA ordinal.
    #[serde(deserialize_with = "number")]
    pub cuda_ordinal: Option<u64>,
    /// The architecture kernels are compiled for (`sm_90a`, `sm_89`, ...).
    #[serde(deserialize_with = "text")]
    pub arch: Option<String>,
    #[serde(deserialize_with = "number")]
    pub max_threads_per_sm: Option<u32>,
    #[serde(deserialize_with = "number")]
    pub shared_memory_per_sm_bytes: Option<u64>,
    /// Shared memory a block gets without opting in.
    #[serde(deserialize_with = "number")]
    pub shared_memory_per_block_bytes: Option<u64>,
    /// Shared memory a block may opt in to (what large-tile kernels need).
    #[serde(deserialize_with = "number")]
    pub shared_memory_per_block_optin_bytes: Option<u64>,
    /// CUDA version the driver API offers (`12.4`).
    #[serde(deserialize_with = "text")]
    pub cuda_driver_api: Option<String>,
    /// NVRTC's version (`12.4`).
    #[serde(deserialize_with = "text")]
    pub nvrtc_version: Option<String>,
    /// The NVRTC library in use: `Some(None)` (written `null`) when it was looked for and not
    /// found.
    #[serde(deserialize_with = "found")]
    pub nvrtc: Option<Option<String>>,
    /// The cuBLASLt library in use, as `nvrtc`.
    #[serde(deserialize_with = "found")]
    pub cublaslt: Option<Option<String>>,
    /// `cublasLtGetVersion()`, e.g. 120804 for 12.8.4.
    #[serde(deserialize_with = "number")]
    pub cublaslt_version: Option<u64>,
}

/// Facts of the host the CPU backend runs on. `None` = not recorded.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuFacts {
    /// Worker threads the CPU kernels run on.
    #[serde(deserialize_with = "number")]
    pub threads: Option<u64>,
    #[serde(deserialize_with = "number")]
    pub logical_cpus: Option<u64>,
    #[serde(deserialize_with = "number")]
    pub physical_cores: Option<u64>,
    /// The widest SIMD instruction set in use (`avx512f`, `avx2+fma`, `neon`, ...).
    #[serde(deserialize_with = "text")]
    pub simd: Option<String>,
}

impl DeviceDetails {
    /// True when there is nothing to write (the object is then left out of the report).
    pub fn is_empty(&self) -> bool {
        self.to_map().is_empty()
    }

    /// Every entry as its report key and the text a table shows for it, in key order: for
    /// listings that show whatever a backend recorded (`info`, the environment diff of
    /// `compare`). See [`shown`] for how a value reads.
    pub fn entries(&self) -> BTreeMap<String, String> {
        self.to_map()
            .into_iter()
            .map(|(k, v)| (k, shown(&v)))
            .collect()
    }

    /// The flat object as written: the typed entries over the kept ones.
    fn to_map(&self) -> Map<String, Value> {
        let mut m = self.other.clone();
        for typed in [
            serde_json::to_value(&self.state),
            serde_json::to_value(&self.cuda),
            serde_json::to_value(&self.cpu),
        ] {
            if let Ok(Value::Object(t)) = typed {
                m.extend(t);
            }
        }
        m
    }

    /// Reads a flat object: each typed part takes what it can read, the rest is kept.
    fn from_map(m: Map<String, Value>) -> DeviceDetails {
        let v = Value::Object(m);
        // Every field reads leniently from any JSON value, so these cannot fail on an object;
        // the fallback only guards against a future field that forgets to be lenient.
        let mut d = DeviceDetails {
            state: DeviceState::deserialize(&v).unwrap_or_default(),
            cuda: CudaFacts::deserialize(&v).unwrap_or_default(),
            cpu: CpuFacts::deserialize(&v).unwrap_or_default(),
            other: Map::new(),
        };
        let typed = d.to_map();
        if let Value::Object(m) = v {
            d.other = m
                .into_iter()
                .filter(|(k, _)| !typed.contains_key(k))
                .collect();
        }
        d
    }
}

impl Serialize for DeviceDetails {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for DeviceDetails {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(DeviceDetails::from_map(Map::deserialize(d)?))
    }
}

/// A library path, `null` for "not found"; anything else is unknown.
fn found<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s)),
        _ => None,
    })
}

/// A value as a listing shows it: strings bare; a list as its items joined by `, ` with a run
/// of equal items written once as `N × item` (18 NVLink links to one switch read
/// `18 × switch 00000000:F0:00.0`, not 18 copies), an empty list as `none`, null (a library
/// looked for and not found) as `not found`; an object inside a list as its values joined by
/// spaces; anything else as JSON.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // The one null a backend records: a library it looked for and did not find.
        Value::Null => "not found".to_string(),
        Value::Array(items) if items.is_empty() => "none".to_string(),
        Value::Array(items) => {
            let mut runs: Vec<(usize, &Value)> = Vec::new();
            for item in items {
                match runs.last_mut() {
                    Some((n, last)) if *last == item => *n += 1,
                    _ => runs.push((1, item)),
                }
            }
            let item = |v: &Value| match v {
                Value::Object(m) => m.values().map(shown).collect::<Vec<_>>().join(" "),
                other => shown(other),
            };
            runs.iter()
                .map(|&(n, v)| match n {
                    1 => item(v),
                    n => format!("{n} × {}", item(v)),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::state::tests::read;
    use crate::backend::ThrottleReason;
    use serde_json::json;

    #[test]
    fn writes_one_flat_object_in_key_order() {
        let d = DeviceDetails {
            state: DeviceState {
                sm_clock_max_mhz_driver: Some(1980),
                mig_mode: Some(false),
                ..DeviceState::default()
            },
            cuda: CudaFacts {
                arch: Some("sm_90a".into()),
                nvrtc: Some(None),
                cublaslt: Some(Some("/usr/lib/libcublasLt.so.12".into())),
                ..CudaFacts::default()
            },
            ..DeviceDetails::default()
        };
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(
            text,
            r#"{"arch":"sm_90a","cublaslt":"/usr/lib/libcublasLt.so.12","mig_mode":"disabled","nvrtc":null,"sm_clock_max_mhz_driver":1980}"#
        );
        assert_eq!(serde_json::from_str::<DeviceDetails>(&text).unwrap(), d);
        assert!(DeviceDetails::default().is_empty());
        assert_eq!(
            serde_json::to_value(DeviceDetails::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn unknown_and_unreadable_entries_survive_a_round_trip() {
        let v = json!({
            "threads": "8",
            "simd": "avx2+fma",
            "serial": 12,
            "future_fact": {"a": [1, 2]},
            "throttle_reasons": ["HwThermalSlowdown"],
        });
        let d: DeviceDetails = read(v);
        assert_eq!(d.cpu.threads, Some(8));
        assert_eq!(d.cpu.simd.as_deref(), Some("avx2+fma"));
        assert_eq!(d.state.serial, None);
        assert_eq!(
            d.state.throttle_reasons,
            Some(vec![ThrottleReason::HwThermalSlowdown])
        );
        assert_eq!(
            d.other.keys().collect::<Vec<_>>(),
            ["future_fact", "serial"]
        );
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({
                "threads": 8,
                "simd": "avx2+fma",
                "serial": 12,
                "future_fact": {"a": [1, 2]},
                "throttle_reasons": ["hw_thermal_slowdown"],
            })
        );
    }

    #[test]
    fn entries_show_strings_bare_and_the_rest_as_json() {
        let d: DeviceDetails = read(json!({"nvrtc": null, "nvrtc_version": "12.4", "threads": 2}));
        let e = d.entries();
        assert_eq!(e["nvrtc"], "not found");
        assert_eq!(e["nvrtc_version"], "12.4");
        assert_eq!(e["threads"], "2");
        assert_eq!(d.cuda.nvrtc, Some(None));
    }

    #[test]
    fn entries_show_lists_compactly() {
        let switch = json!({"kind": "switch", "pci_bus_id": "00000000:F0:00.0"});
        let gpu = json!({"kind": "gpu", "pci_bus_id": "00000000:1B:00.0"});
        let d: DeviceDetails = read(json!({
            "nvlink_peers": [switch, switch, switch, gpu, switch],
            "peer_access": [1, 2, 3],
            "future_list": [],
            "future_nested": [[1, 1], [1, 1]],
        }));
        let e = d.entries();
        assert_eq!(
            e["nvlink_peers"],
            "3 × switch 00000000:F0:00.0, gpu 00000000:1B:00.0, switch 00000000:F0:00.0"
        );
        assert_eq!(e["peer_access"], "1, 2, 3");
        assert_eq!(e["future_list"], "none");
        assert_eq!(e["future_nested"], "2 × 2 × 1");
    }
}
