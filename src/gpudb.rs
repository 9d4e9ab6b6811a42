//! The GPU database: what each NVIDIA SKU is, what it peaks at, and what a healthy card reaches.
//!
//! The data lives in `data/gpus.toml` (embedded at build time) so that adding a SKU or fixing a
//! figure needs no code. Each figure carries its source and a confidence; the tests check every
//! peak against SMs × per-SM rate × clock. A GPU the database does not know still gets an fp32
//! peak and a memory bandwidth, computed from its SM count, its compute capability's per-SM rate,
//! its maximum clocks and its bus width, with a notice that they are not datasheet figures; its
//! tensor-core peaks are left unknown (product variants cut those and keep the SMs).

use crate::backend::{DeviceInfo, Peaks};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The database text, as built into this binary.
pub const DATA: &str = include_str!("../data/gpus.toml");

/// Relative tolerance of reported memory size against the SKU's nominal GiB: drivers report a
/// few percent less than the marketing figure (ECC, reserved memory), never more.
pub const MEMORY_TOLERANCE_LOW: f64 = 0.90;
/// Upper bound of reported memory against the nominal size.
pub const MEMORY_TOLERANCE_HIGH: f64 = 1.05;

/// Which per-SM rate table applies: consumer (GeForce-class) parts run fp16/bf16 with fp32
/// accumulate at half the professional rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateClass {
    Datacenter,
    Geforce,
}

/// Dense per-SM, per-clock rates of one architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Compute capability, `major.minor`.
    pub cc: String,
    pub class: RateClass,
    pub name: String,
    /// FLOP (OP for int8) per clock per SM, by dtype name.
    pub rates: BTreeMap<String, f64>,
    pub source: String,
    pub confidence: String,
}

/// How much an expectation can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectConfidence {
    /// Measured by this project on a named machine.
    Measured,
    /// Published by a named third party.
    Published,
    /// A guess with its basis stated; never enough to fail a GPU on its own.
    Estimate,
}

impl ExpectConfidence {
    pub fn name(self) -> &'static str {
        match self {
            ExpectConfidence::Measured => "measured",
            ExpectConfidence::Published => "published",
            ExpectConfidence::Estimate => "estimate",
        }
    }
}

/// The share of the peak a healthy card reaches on one gpuvet test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    /// Fraction of the datasheet peak (0–1).
    pub share: f64,
    pub confidence: ExpectConfidence,
    /// Where the figure comes from, in words.
    pub basis: String,
}

/// One datasheet peak.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// TFLOP/s (TOP/s for int8), dense.
    pub tflops: f64,
    /// Clock the peak is computed at, when not the SKU's `peak_clock_mhz`.
    pub clock_mhz: Option<f64>,
    /// Overrides the SKU's confidence for this figure.
    pub confidence: Option<String>,
    /// Overrides the SKU's source for this figure.
    pub source: Option<String>,
    /// Why this peak is not (or cannot be) checked against SMs × rate × clock.
    pub exception: Option<String>,
}

/// Physical form of the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormFactor {
    Sxm,
    Pcie,
}

/// One GPU model as sold.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sku {
    /// Short id used with `--expect` (`h100-sxm`, `a100-pcie-80gb`, ...).
    pub id: String,
    pub name: String,
    /// Case-insensitive globs matched against the device name without "NVIDIA " / "Tesla ".
    pub name_patterns: Vec<String>,
    pub compute_capability: String,
    pub class: RateClass,
    pub form_factor: FormFactor,
    pub sms: u32,
    /// Nominal memory in GiB (the driver reports slightly less).
    pub memory_gib: f64,
    /// Other capacities the same SKU is sold with.
    #[serde(default)]
    pub extra_memory_gib: Vec<f64>,
    pub memory_type: String,
    /// Datasheet memory bandwidth, GB/s (1e9 B/s).
    pub memory_bandwidth_gbs: f64,
    /// Default board power limit, W.
    pub power_limit_w: f64,
    /// Highest SM clock of a healthy card, MHz.
    pub max_sm_clock_mhz: f64,
    /// Clock the datasheet peaks are computed at, MHz.
    pub peak_clock_mhz: f64,
    pub pcie_gen: u32,
    pub pcie_width: u32,
    /// NVLink links a full system gives each GPU (0 = none).
    pub nvlink_links: u32,
    /// One NVLink link's rate each way, GB/s; by default from the compute capability
    /// ([`nvlink_link_gbs`]).
    pub nvlink_link_gbs: Option<f64>,
    /// Identity fields not from a primary source: a mismatch on them is a warning only.
    #[serde(default)]
    pub unverified: Vec<String>,
    pub source: String,
    pub confidence: String,
    /// Dense peaks by dtype name.
    pub peaks: BTreeMap<String, Peak>,
    /// Achievable shares by test key (defaults merged in at load).
    #[serde(default)]
    pub achievable: BTreeMap<String, Expectation>,
}

impl Sku {
    /// Peak of `dtype` in FLOP/s (OP/s), if the SKU has that unit.
    pub fn peak(&self, dtype: &str) -> Option<f64> {
        self.peaks.get(dtype).map(|p| p.tflops * 1e12)
    }

    /// Datasheet memory bandwidth in B/s.
    pub fn memory_bandwidth(&self) -> f64 {
        self.memory_bandwidth_gbs * 1e9
    }

    /// The peaks in the form reports carry.
    pub fn peaks(&self) -> Peaks {
        Peaks {
            source: format!("{} ({}): {}", self.name, self.confidence, self.source),
            flops: self
                .peaks
                .keys()
                .filter_map(|d| Some((d.parse().ok()?, self.peak(d)?)))
                .collect(),
            memory_bandwidth: Some(self.memory_bandwidth()),
            pcie_bandwidth: crate::units::pcie_rate(self.pcie_gen, self.pcie_width),
            nvlink_link_bandwidth: (self.nvlink_links > 0)
                .then(|| {
                    self.nvlink_link_gbs
                        .or_else(|| nvlink_link_gbs(&self.compute_capability))
                })
                .flatten()
                .map(|g| g * 1e9),
        }
    }

    /// What a healthy card reaches on test `key` (`matmul.bf16`, `memory.copy`, ...).
    pub fn expectation(&self, key: &str) -> Option<&Expectation> {
        self.achievable.get(key)
    }

    /// True when `field` (a TOML field name) is marked unverified for this SKU.
    pub fn is_unverified(&self, field: &str) -> bool {
        self.unverified.iter().any(|f| f == field)
    }

    /// True when a device name matches one of the SKU's patterns.
    pub fn matches_name(&self, device_name: &str) -> bool {
        let n = normalize_name(device_name);
        self.name_patterns
            .iter()
            .any(|p| glob(&p.to_lowercase(), &n))
    }

    /// True when `bytes` of reported memory fits one of the SKU's capacities.
    pub fn memory_matches(&self, bytes: u64) -> bool {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        std::iter::once(self.memory_gib)
            .chain(self.extra_memory_gib.iter().copied())
            .any(|nominal| {
                gib >= nominal * MEMORY_TOLERANCE_LOW && gib <= nominal * MEMORY_TOLERANCE_HIGH
            })
    }

    /// The clock a peak is computed at.
    pub fn clock_for(&self, peak: &Peak) -> f64 {
        peak.clock_mhz.unwrap_or(self.peak_clock_mhz)
    }
}

/// What a node of several GPUs of one SKU reaches on a collective (all-reduce bus bandwidth
/// at large messages): the node-level expectation `validate` judges the node's collective on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeExpectation {
    /// The SKU of every GPU of the node.
    pub sku: String,
    /// GPUs in the node (the collective spans all of them).
    pub gpus: u32,
    /// Test key (`collective.all_reduce`).
    pub test: String,
    /// Bus bandwidth a healthy node reaches, GB/s.
    pub busbw_gbs: f64,
    pub confidence: ExpectConfidence,
    pub basis: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDb {
    schema_version: u32,
    arch: Vec<Arch>,
    defaults: RawDefaults,
    sku: Vec<Sku>,
    #[serde(default)]
    node: Vec<NodeExpectation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    achievable: BTreeMap<String, Expectation>,
}

/// The parsed database.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    pub arch: Vec<Arch>,
    /// Shares used where a SKU gives none.
    pub default_achievable: BTreeMap<String, Expectation>,
    pub skus: Vec<Sku>,
    /// Node-level expectations by (SKU, GPU count, test).
    pub nodes: Vec<NodeExpectation>,
}

/// Dtype names a peak or rate may be given for (those of [`crate::dtype::DType`]).
fn known_dtype(name: &str) -> bool {
    crate::dtype::DType::ALL.iter().any(|d| d.name() == name)
}

impl Database {
    /// Parses and checks database text: unique ids, known dtypes, shares within (0, 1].
    pub fn parse(text: &str) -> Result<Database> {
        let bad = |reason: String| Error::CorruptFile {
            path: "data/gpus.toml".into(),
            reason,
        };
        let raw: RawDb = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if raw.schema_version != 1 {
            return Err(bad(format!(
                "schema_version {}; this gpuvet reads version 1",
                raw.schema_version
            )));
        }
        let check_share = |what: &str, e: &Expectation| {
            if !(e.share > 0.0 && e.share <= 1.0) {
                Err(bad(format!("{what}: share {} is not in (0, 1]", e.share)))
            } else {
                Ok(())
            }
        };
        for (k, e) in &raw.defaults.achievable {
            check_share(&format!("defaults.achievable.{k}"), e)?;
        }
        for a in &raw.arch {
            if let Some(d) = a.rates.keys().find(|d| !known_dtype(d)) {
                return Err(bad(format!("arch {}: unknown dtype `{d}`", a.cc)));
            }
        }
        let mut skus = Vec::with_capacity(raw.sku.len());
        for mut s in raw.sku {
            if skus.iter().any(|o: &Sku| o.id == s.id) {
                return Err(bad(format!("sku `{}` appears twice", s.id)));
            }
            if let Some(d) = s.peaks.keys().find(|d| !known_dtype(d)) {
                return Err(bad(format!("sku {}: unknown dtype `{d}`", s.id)));
            }
            if s.sms == 0 || s.memory_gib <= 0.0 || s.peak_clock_mhz <= 0.0 {
                return Err(bad(format!(
                    "sku {}: SMs, memory and clock must be positive",
                    s.id
                )));
            }
            for (k, e) in &s.achievable {
                check_share(&format!("sku {} achievable.{k}", s.id), e)?;
            }
            for (k, e) in &raw.defaults.achievable {
                s.achievable.entry(k.clone()).or_insert_with(|| e.clone());
            }
            skus.push(s);
        }
        for n in &raw.node {
            if !skus.iter().any(|s| s.id == n.sku) || n.gpus < 2 || n.busbw_gbs <= 0.0 {
                return Err(bad(format!(
                    "node {} x{} {}: needs a known SKU, at least 2 GPUs and a positive busbw",
                    n.sku, n.gpus, n.test
                )));
            }
        }
        Ok(Database {
            arch: raw.arch,
            default_achievable: raw.defaults.achievable,
            skus,
            nodes: raw.node,
        })
    }

    /// The per-SM rate table for a compute capability and class, falling back to the
    /// datacenter table of the same capability.
    pub fn arch(&self, cc: &str, class: RateClass) -> Option<&Arch> {
        self.arch
            .iter()
            .find(|a| a.cc == cc && a.class == class)
            .or_else(|| {
                self.arch
                    .iter()
                    .find(|a| a.cc == cc && a.class == RateClass::Datacenter)
            })
    }

    /// The node expectation of `test` for `gpus` GPUs of SKU `sku`.
    pub fn node(&self, sku: &str, gpus: u32, test: &str) -> Option<&NodeExpectation> {
        self.nodes
            .iter()
            .find(|n| n.sku == sku && n.gpus == gpus && n.test == test)
    }

    pub fn by_id(&self, id: &str) -> Option<&Sku> {
        let id = id.trim().to_ascii_lowercase();
        self.skus.iter().find(|s| s.id == id)
    }

    /// The SKU a device is, or `None`.
    ///
    /// Name patterns decide first; compute capability rules candidates out, and SM count and
    /// memory size choose among several (NVL vs SXM, 40 vs 80 GB). A device whose name matches
    /// nothing is still recognised when exactly one SKU has its compute capability, SM count
    /// and memory size, and the name still carries its model number (a vGPU-relabelled card).
    pub fn lookup(&self, info: &DeviceInfo) -> Option<&Sku> {
        if !info.may_name_gpu_model() {
            return None;
        }
        let cc_ok = |s: &Sku| match info.compute_capability.as_deref() {
            Some(cc) => cc.trim() == s.compute_capability,
            None => true,
        };
        let score = |s: &Sku| {
            let mut n = 0;
            if info.multiprocessors == Some(s.sms) {
                n += 2;
            }
            if info.memory_bytes.is_some_and(|b| s.memory_matches(b)) {
                n += 1;
            }
            n
        };
        let by_name: Vec<&Sku> = self
            .skus
            .iter()
            .filter(|s| s.matches_name(&info.name) && cc_ok(s))
            .collect();
        if !by_name.is_empty() {
            // max_by_key keeps the last maximum: iterate reversed so file order breaks ties.
            return by_name.into_iter().rev().max_by_key(|s| score(s));
        }
        let (cc, sms, mem) = (
            info.compute_capability.as_deref()?,
            info.multiprocessors?,
            info.memory_bytes?,
        );
        // The model number (`h100`, `a10g`, `rtx`) must still begin a word of the name: a
        // GH200 has an H100 NVL's SMs and memory but is not one, and a GB200 (whose name holds
        // `b200` inside a longer word) has a B200's SMs and memory but other peaks; vGPU names
        // run suffixes into it (`H100XM-80C`, `H100L-94C`).
        let name = normalize_name(&info.name);
        let words: Vec<&str> = name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let mut exact = self.skus.iter().filter(|s| {
            s.compute_capability == cc.trim()
                && s.sms == sms
                && s.memory_matches(mem)
                && words
                    .iter()
                    .any(|w| w.starts_with(s.id.split('-').next().unwrap_or(&s.id)))
        });
        let first = exact.next()?;
        if exact.next().is_some() {
            return None;
        }
        Some(first)
    }
}

static DB: OnceLock<std::result::Result<Database, String>> = OnceLock::new();

/// The built-in database (parsed once).
pub fn database() -> Result<&'static Database> {
    DB.get_or_init(|| Database::parse(DATA).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::invalid(format!("the built-in GPU database is broken: {e}")))
}

/// The SKU of a device, matched by name, compute capability, SM count and memory size.
pub fn lookup(info: &DeviceInfo) -> Option<Sku> {
    database().ok()?.lookup(info).cloned()
}

/// A SKU by its id (`--expect h100-sxm`).
pub fn by_id(id: &str) -> Option<Sku> {
    database().ok()?.by_id(id).cloned()
}

/// Ids of every SKU, for help text and error messages.
pub fn ids() -> Vec<String> {
    database()
        .map(|d| d.skus.iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default()
}

/// `info` with its datasheet peaks filled in where the backend left them empty: the database's
/// for a known GPU, computed from SMs × rate × clock (and said so in `peaks.source`) for one the
/// database does not know. Called where devices are collected into a report, so that backends
/// need not know the database.
///
/// The PCIe rate is the device's own link where it reported one (its maximum generation and
/// width: a card in a narrower slot is judged on the slot), else the SKU's.
pub fn with_peaks(mut info: DeviceInfo) -> DeviceInfo {
    if info.peaks.is_none() {
        info.peaks = peaks_for(&info).map(|(p, _computed)| p);
    }
    let link = crate::backend::topology::PcieLink::of(&info).and_then(|l| l.capability());
    if let (Some(p), Some(rate)) = (info.peaks.as_mut(), link) {
        p.pcie_bandwidth = Some(rate);
    }
    info
}

/// One NVLink link's rate each way (GB/s) by compute capability: NVLink 2 (Volta), 3 (Ampere)
/// and 4 (Hopper) run 25 GB/s per link per direction, NVLink 5 (Blackwell) 50.
pub fn nvlink_link_gbs(cc: &str) -> Option<f64> {
    match cc.trim() {
        "7.0" | "8.0" | "9.0" => Some(25.0),
        "10.0" => Some(50.0),
        _ => None,
    }
}

/// Peaks for a device: the database's when the SKU is known (`false`), otherwise computed (`true`;
/// the `source` says so): fp32 from SMs × per-SM rate × max SM clock, memory bandwidth from bus
/// width × memory clock, and no tensor-core dtype at all.
/// `None` when neither is possible (a CPU, or a GPU without clocks in its details).
pub fn peaks_for(info: &DeviceInfo) -> Option<(Peaks, bool)> {
    let db = database().ok()?;
    if let Some(s) = db.lookup(info) {
        return Some((s.peaks(), false));
    }
    if !info.is_gpu() {
        return None;
    }
    let state = &info.details.state;
    let mut flops = BTreeMap::new();
    let mut how = Vec::new();
    let class = if normalize_name(&info.name).contains("geforce") {
        RateClass::Geforce
    } else {
        RateClass::Datacenter
    };
    if let (Some(cc), Some(sms), Some(clock)) = (
        info.compute_capability.as_deref(),
        info.multiprocessors,
        state.max_sm_clock_mhz(),
    ) {
        if let Some(arch) = db.arch(cc.trim(), class) {
            // fp32 only. Tensor-core rates are what NVIDIA cuts in product variants while the
            // SMs stay: an H20's 78 SMs at Hopper's bf16 rate would give 632 TFLOP/s, and its
            // published dense figure is 148, so a healthy card would read 23% "of peak" and
            // its validation would warn. fp32 runs on the CUDA cores at the architecture's rate.
            if let Some(rate) = arch.rates.get(crate::dtype::DType::F32.name()) {
                flops.insert(crate::dtype::DType::F32, sms as f64 * rate * clock * 1e6);
                how.push(format!(
                    "fp32: {sms} SMs × per-SM rate of {} × {clock:.0} MHz (tensor-core peaks \
                     are not guessed: product variants cut them)",
                    arch.name
                ));
            }
        }
    }
    let bandwidth = match (
        state.memory_bus_width_bits.map(|b| b as f64),
        state.max_memory_clock_mhz(),
    ) {
        (Some(bits), Some(mhz)) if bits > 0.0 && mhz > 0.0 => {
            how.push(format!(
                "{bits:.0}-bit bus × {mhz:.0} MHz × 2 (double data rate)"
            ));
            Some(bits / 8.0 * mhz * 1e6 * 2.0)
        }
        _ => None,
    };
    if flops.is_empty() && bandwidth.is_none() {
        return None;
    }
    Some((
        Peaks {
            source: format!(
                "computed, not a datasheet figure ({} is not in the GPU database): {}",
                info.name,
                how.join("; ")
            ),
            flops,
            memory_bandwidth: bandwidth,
            pcie_bandwidth: crate::backend::topology::PcieLink::of(info)
                .and_then(|l| l.capability()),
            nvlink_link_bandwidth: (state.nvlink_active_links.unwrap_or(0) > 0)
                .then(|| info.compute_capability.as_deref().and_then(nvlink_link_gbs))
                .flatten()
                .map(|g| g * 1e9),
        },
        true,
    ))
}

/// The database as a terminal table (for `gpuvet list --skus`): id, name, identity, bf16
/// and fp8 peaks, and how sure the figures are.
pub fn skus_table(color: bool) -> Result<String> {
    let db = database()?;
    let mut t = crate::output::table(color);
    t.set_header(vec![
        "id",
        "name",
        "cc",
        "SMs",
        "memory",
        "bandwidth",
        "power",
        "bf16/f16",
        "fp8",
        "confidence",
    ]);
    let tf = |s: &Sku, d: &str| {
        s.peaks
            .get(d)
            .map_or("-".to_string(), |p| format!("{:.0} T", p.tflops))
    };
    for s in &db.skus {
        t.add_row(vec![
            s.id.clone(),
            s.name.clone(),
            s.compute_capability.clone(),
            s.sms.to_string(),
            format!("{} GiB {}", s.memory_gib, s.memory_type),
            format!("{:.0} GB/s", s.memory_bandwidth_gbs),
            format!("{:.0} W", s.power_limit_w),
            if s.peaks.contains_key("bf16") {
                tf(s, "bf16")
            } else {
                tf(s, "f16")
            },
            tf(s, "fp8_e4m3"),
            s.confidence.clone(),
        ]);
    }
    Ok(format!(
        "{t}\nDense peaks (TFLOP/s, fp32 accumulate); sources and achievable shares: data/gpus.toml\n"
    ))
}

/// Lower-cases a device name and drops the vendor prefixes drivers put in front.
pub fn normalize_name(name: &str) -> String {
    let mut n = name.trim().to_lowercase();
    for prefix in ["nvidia ", "tesla "] {
        if let Some(rest) = n.strip_prefix(prefix) {
            n = rest.trim_start().to_string();
        }
    }
    n
}

/// Whole-string glob match where `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("a10", "a10"));
        assert!(!glob("a10", "a10g"));
        assert!(!glob("a10", "a100-sxm4-80gb"));
        assert!(glob("a100*sxm*80gb*", "a100-sxm4-80gb"));
        assert!(glob("h100 pcie*", "h100 pcie"));
        assert!(glob("*", ""));
        assert!(!glob("h100*nvl", "h100 pcie"));
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalize_name("NVIDIA H100 80GB HBM3"), "h100 80gb hbm3");
        assert_eq!(normalize_name("Tesla T4"), "t4");
        assert_eq!(
            normalize_name("NVIDIA Tesla V100-SXM2-16GB"),
            "v100-sxm2-16gb"
        );
    }
}
