//! The one structure every exporter, comparison and verdict reads.
//!
//! Field names here are the public JSON schema (docs/json-schema.md). Within a major
//! `schema_version`, fields are only ever added.

use crate::backend::{BackendKind, CachePolicy, DeviceInfo, Peaks, Telemetry};
use crate::env::{HostInfo, ToolInfo};
use crate::measure::StopReason;
use crate::plan::Placement;
use crate::stats::Summary;
use crate::verify::Verification;
use crate::workload::{Metric, Roof, Workload};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// The longest time per iteration a report may hold: eleven days (a longer one is a damaged
/// file, not a kernel).
pub const MAX_SAMPLE_SECONDS: f64 = 1e6;

/// Major version of the JSON schema.
pub const SCHEMA_VERSION: u32 = 1;

/// A figure more than this many times its device's peak is not the device's: the datasheet
/// peak is at the highest clock, so beyond noise only a broken measurement (or data left in a
/// cache, for a bandwidth) can pass it.
pub const ABOVE_PEAK: f64 = 1.05;

/// A whole run.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: ToolInfo,
    pub host: HostInfo,
    pub devices: Vec<DeviceInfo>,
    pub config: RunConfig,
    /// RFC 3339 UTC time the run started.
    pub started_at: String,
    /// False while the run is still going or when it was interrupted.
    #[serde(default)]
    pub complete: bool,
    /// The processes of the run, when it was one process of several (a Slurm world).
    pub world: Option<crate::world::WorldRecord>,
    pub results: Vec<ResultRecord>,
    /// Workloads of the suite that a device ran nothing of (a missing library), and why:
    /// absent when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<crate::plan::NotRun>,
    /// Each device's state as `info` read it. Absent from a run's report: its results carry
    /// the telemetry read around each of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telemetry: Vec<DeviceTelemetry>,
}

/// One device's telemetry, with the index into `devices` it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTelemetry {
    pub device: usize,
    #[serde(flatten)]
    pub state: crate::backend::Telemetry,
}

/// The settings that shaped every measurement of the run.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub command: String,
    pub backend: RunBackend,
    pub seed: u64,
    pub min_samples: usize,
    pub max_samples: usize,
    pub max_time_s: f64,
    pub warmup_s: f64,
    pub target_rel_noise: f64,
    pub min_sample_time_s: f64,
    pub hot: bool,
    pub threads: usize,
    /// Hash of the kernel sources and compile options in use (GPU runs).
    pub kernel_hash: Option<String>,
    /// The price per device-hour the run was given (`--price-per-hour`, `--price-file`); each
    /// result's `price_performance` derives from it. Absent when no price was given.
    pub price: Option<crate::price::PriceInfo>,
}

/// The backend a run's devices were on, as `config.backend` (and a verdict's `backend`) records
/// it: `cpu`, `cuda` or `mock`, what the `--backend` choice resolved to (`auto` is resolved
/// before anything runs, so no report holds it). Written as that name; a name this version does
/// not know (a newer backend) loads and is written back as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunBackend {
    Kind(BackendKind),
    /// Any other name, kept verbatim (empty when a library caller left it unset).
    Other(String),
}

impl RunBackend {
    /// True unless the backend is known not to describe GPU models (the CPU): what decides
    /// whether a verdict counts "GPUs" or "devices". An unknown name gets the benefit of the
    /// doubt, as [`DeviceInfo::may_name_gpu_model`] does.
    pub fn names_gpu_models(&self) -> bool {
        match self {
            RunBackend::Kind(k) => k.names_gpu_models(),
            RunBackend::Other(_) => true,
        }
    }
}

impl Default for RunBackend {
    /// Unset: written as an empty name, as an unset string always was.
    fn default() -> Self {
        RunBackend::Other(String::new())
    }
}

impl From<BackendKind> for RunBackend {
    fn from(k: BackendKind) -> Self {
        RunBackend::Kind(k)
    }
}

impl From<&str> for RunBackend {
    /// Never fails: a name that is no [`BackendKind`] becomes [`RunBackend::Other`].
    fn from(s: &str) -> Self {
        BackendKind::from_name(s).map_or_else(|| RunBackend::Other(s.to_string()), RunBackend::Kind)
    }
}

impl std::fmt::Display for RunBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunBackend::Kind(k) => f.write_str(k.name()),
            RunBackend::Other(s) => f.write_str(s),
        }
    }
}

impl Serialize for RunBackend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunBackend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(RunBackend::from(String::deserialize(d)?.as_str()))
    }
}

/// What happened to one (workload, implementation) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Verified and timed.
    Ok,
    /// The output was wrong: not timed, no throughput.
    VerificationFailed,
    /// The backend failed while preparing or running it.
    Error,
}

impl Status {
    /// The name the JSON writes (`verification_failed`), for every other format to write too.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::VerificationFailed => "verification_failed",
            Status::Error => "error",
        }
    }
}

/// One measured result.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// Stable id: `<workload name>/<implementation>`; how runs are matched in comparisons.
    pub id: String,
    pub workload: Workload,
    pub backend: BackendKind,
    /// Where it ran, as indices into `devices`: a number for one device (`0`), a list for a
    /// result placed on several devices together (a collective: `[0, 1]`).
    pub device: Placement,
    pub implementation: String,
    pub dtype: crate::dtype::DType,
    /// The arithmetic that really ran (e.g. `f32` for bf16 inputs on a CPU), written as its
    /// label (`bf16 (f32 accumulate)`); labels this version does not know are kept verbatim.
    pub compute_dtype: crate::dtype::ComputeType,
    pub status: Status,
    pub verification: Verification,
    /// `None` when verification failed or the run errored: never a number for a wrong result.
    #[serialize_always]
    pub stats: Option<Summary>,
    /// Headline rate from the median time: FLOP/s (OP/s for int8) or B/s.
    #[serialize_always]
    pub throughput: Option<Throughput>,
    /// Bytes moved per second at the minimum traffic `workload.bytes()` (every workload).
    pub bandwidth: Option<Throughput>,
    /// Throughput as a share of the device's datasheet peak, where the device is known.
    pub peak_fraction: Option<f64>,
    pub flops: f64,
    pub bytes: u64,
    /// Iterations timed together in one sample (short runs are batched).
    pub iterations_per_sample: u64,
    /// How caches were handled (`rotate(8)`, `warm(16)`, `single`, `hot`, ...).
    pub cache: CachePolicy,
    /// Why sampling stopped: `noise-target`, `max-time`, `max-samples`, `interrupted`.
    pub stop_reason: StopReason,
    pub telemetry_before: Option<Telemetry>,
    pub telemetry_after: Option<Telemetry>,
    /// Effective SM clock during the samples (MHz), where the backend can tell.
    pub effective_clock_mhz: Option<f64>,
    /// Median board power read while the samples ran, W, where the backend reads power (NVML
    /// on a GPU), from readings taken the sensor's averaging window into the load (a second on
    /// GPUs whose NVML averages the last second: `Backend::power_window_s`); absent for a
    /// shorter measurement.
    pub power_w: Option<f64>,
    /// Throughput per watt of `power_w` (FLOP/s/W, i.e. FLOP per joule; B/s/W for a bandwidth):
    /// what the work costs in energy.
    pub per_watt: Option<Throughput>,
    /// Throughput per MHz of the SM clock read during the samples: the figure with the clock
    /// taken out, so that a throttled device can be told from a slow one.
    pub per_mhz: Option<Throughput>,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The user kernel that produced the result (`bench kernel`, `--kernel`): its source and
    /// build hashes, launch and registers, so a comparison can say when the kernel changed.
    pub kernel: Option<crate::workload::kernel::KernelRecord>,
    /// What a dollar buys at this throughput, where the run was given a price for the device
    /// (`config.price`): TFLOP-hours (TOP-hours, TB-hours) per USD.
    pub price_performance: Option<crate::price::PricePerformance>,
}

/// A rate with its unit (`FLOP/s`, `OP/s`, `B/s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub value: f64,
    pub unit: String,
}

impl ResultRecord {
    /// True when the result has a trustworthy time.
    pub fn is_valid(&self) -> bool {
        self.status == Status::Ok && self.verification.passed && self.stats.is_some()
    }

    /// True when a test backend stood in for a user kernel that never ran. Its id is the one a
    /// GPU run would give, so every export that names series by id marks it: a simulated point
    /// must never join a real kernel's history.
    pub fn is_simulated(&self) -> bool {
        self.kernel.as_ref().is_some_and(|k| k.simulated)
    }

    /// Unit of the headline metric of a workload.
    pub fn unit_for(w: &Workload) -> &'static str {
        match w.metric() {
            Metric::Bytes => "B/s",
            Metric::Flops => w.dtype().rate_unit(),
        }
    }
}

/// The peak `w` is measured against on a device with `peaks`: memory bandwidth for
/// bandwidth-bound workloads, the compute peak of its dtype for the rest, the PCIe link for a
/// host transfer ([`Workload::roof`] decides). Links between devices need the devices:
/// [`peak_for`].
pub fn peak_of(peaks: &Peaks, w: &Workload) -> Option<f64> {
    match w.roof() {
        Roof::Memory => peaks.memory_bandwidth,
        Roof::Compute(d) => peaks.flops.get(&d).copied(),
        Roof::HostLink { ways } => peaks.pcie_bandwidth.map(|b| b * ways as f64),
        Roof::PairLink { .. } | Roof::GroupLink => None,
    }
}

/// The peak of `w` placed on `placement` of `devices`: [`peak_of`] of the lead device, or the
/// link between the placement's devices (a pair's NVLink or PCIe path; a collective's slowest
/// pair, its bus bandwidth ceiling).
pub fn peak_for(devices: &[DeviceInfo], placement: &Placement, w: &Workload) -> Option<f64> {
    use crate::backend::topology;
    let ids = placement.devices();
    if ids.iter().any(|&d| d >= devices.len()) {
        return None;
    }
    match w.roof() {
        Roof::PairLink { ways } => match ids {
            [a, b] => topology::pair(devices, *a, *b)
                .rate
                .map(|r| r * ways as f64),
            _ => None,
        },
        Roof::GroupLink if ids.len() > 1 => topology::group_rate(devices, ids),
        Roof::GroupLink => None,
        _ => peak_of(devices[placement.lead()].peaks.as_ref()?, w),
    }
}

/// `<workload name>/<implementation>`: what comparisons match results by.
pub fn result_id(w: &Workload, implementation: &str) -> String {
    format!("{}/{implementation}", w.name())
}

impl ResultRecord {
    /// A result of `w` by `implementation` on `device` before anything ran: nothing verified or
    /// measured, status `error` and stop reason `error` until a run says otherwise. Every record
    /// starts here (the runner's, and the tests' synthetic ones), so a field is added in one
    /// place.
    pub fn unrun(
        w: &Workload,
        implementation: &str,
        backend: BackendKind,
        device: Placement,
    ) -> ResultRecord {
        ResultRecord {
            id: result_id(w, implementation),
            workload: w.clone(),
            backend,
            device,
            implementation: implementation.to_string(),
            dtype: w.dtype(),
            compute_dtype: crate::dtype::ComputeType::Unrecorded,
            status: Status::Error,
            verification: Verification {
                passed: false,
                method: crate::verify::VerifyMethod::None,
                max_rel_error: f64::INFINITY,
                tolerance: w.dtype().tolerance(),
                checked_elements: 0,
                detail: None,
            },
            stats: None,
            throughput: None,
            bandwidth: None,
            peak_fraction: None,
            flops: w.flops(),
            bytes: w.bytes(),
            iterations_per_sample: 0,
            cache: CachePolicy::Other(String::new()),
            stop_reason: StopReason::Error,
            telemetry_before: None,
            telemetry_after: None,
            effective_clock_mhz: None,
            power_w: None,
            per_watt: None,
            per_mhz: None,
            error: None,
            notes: Vec::new(),
            kernel: None,
            price_performance: None,
        }
    }

    /// Fills `per_watt` from `power_w`, and `per_mhz` from `in_run_clock_mhz` (a clock read
    /// during the samples; the before/after fallback of `effective_clock_mhz` reads an idle
    /// device and would flatter the figure), for a result with a throughput.
    pub fn fill_efficiency(&mut self, in_run_clock_mhz: Option<f64>) {
        let Some(t) = &self.throughput else {
            return;
        };
        let per = |by: Option<f64>, what: &str| {
            by.filter(|&x| x.is_finite() && x > 0.0)
                .map(|x| Throughput {
                    value: t.value / x,
                    unit: format!("{}/{what}", t.unit),
                })
        };
        self.per_watt = per(self.power_w, "W");
        self.per_mhz = per(in_run_clock_mhz, "MHz");
    }

    /// `rate` (work ÷ this result's median time) at the fast end of the 95% interval of the
    /// median: the most the measurement allows. A verdict fails a figure only when this too
    /// falls short, so that noise alone never fails a GPU. `None` without an interval (one
    /// sample).
    pub fn rate_high(&self, rate: f64) -> Option<f64> {
        let s = self.stats.as_ref()?;
        let (fast, _) = s.interval()?;
        (fast <= s.median_s).then(|| rate * s.median_s / fast)
    }

    /// Why the figure cannot be taken as the device's, when it is more than [`ABOVE_PEAK`]
    /// times its peak: a bandwidth measured with its data partly in cache (`warm`, `hot`) is the
    /// cache's; a collective's bus bandwidth can pass its links' rate where the switches reduce
    /// (NVLink SHARP), so it is only said to be above them; anything else is a broken
    /// measurement (the timing, or the work it counts).
    pub fn above_peak(&self) -> Option<String> {
        let share = self.peak_fraction.filter(|&p| p > ABOVE_PEAK)?;
        let cached = matches!(
            self.cache,
            CachePolicy::Warm(_) | CachePolicy::Hot | CachePolicy::SingleWarm
        );
        if self.workload.roof() == Roof::GroupLink {
            return Some(format!(
                "{:.0}% of the links' rate: bus bandwidth counts the traffic of a ring, and a \
                 reduction done in the switches (NVLink SHARP) moves less than that",
                100.0 * share
            ));
        }
        Some(if cached && self.workload.metric() == Metric::Bytes {
            format!(
                "{:.0}% of the peak: its data stayed partly in cache ({}), so this is the cache's \
                 bandwidth, not the memory's",
                100.0 * share,
                self.cache
            )
        } else {
            format!(
                "{:.0}% of the peak is more than the device can do: the measurement is broken \
                 (the timing, or the work it counts); do not quote this figure",
                100.0 * share
            )
        })
    }
}

impl Report {
    /// The lines that say which workloads of the suite the run's devices could not run, and
    /// why ([`crate::plan::not_run_lines`], devices named as the report lists them).
    pub fn not_run_lines(&self) -> Vec<String> {
        crate::plan::not_run_lines(&self.not_run, |i| self.device_name(i))
    }

    /// The name of device `i` of the run (`device i` where the report does not list it).
    pub fn device_name(&self, i: usize) -> String {
        self.devices
            .get(i)
            .map_or_else(|| format!("device {i}"), |d| d.name.clone())
    }

    /// Appends a result, with its share of its device's (or its devices' link's) peak filled
    /// in where the peak is known and its price-performance where the run was given a price for
    /// the device.
    pub fn push(&mut self, mut r: ResultRecord) {
        r.peak_fraction = r.throughput.as_ref().and_then(|t| {
            let peak = peak_for(&self.devices, &r.device, &r.workload)?;
            (peak > 0.0).then(|| t.value / peak)
        });
        // Said in the result itself too, for readers of the JSON and CSV (once: a record read
        // back from a rank's report and pushed again already carries it).
        if let Some(note) = r.above_peak().filter(|n| !r.notes.contains(n)) {
            r.notes.push(note);
        }
        // A result placed on several devices uses all of them: it is priced at their sum.
        let usd = self.config.price.as_ref().and_then(|p| {
            r.device
                .devices()
                .iter()
                .map(|&i| p.of_device(i))
                .sum::<Option<f64>>()
        });
        r.price_performance = r.throughput.as_ref().zip(usd).map(|(t, usd)| {
            crate::price::PricePerformance::of(t.value, &t.unit, r.workload.metric(), usd)
        });
        self.results.push(r);
    }

    /// Reads a report from JSON, refusing other major schema versions with a clear message.
    pub fn from_json(text: &str, path: &str) -> crate::Result<Report> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| crate::Error::CorruptFile {
                path: path.into(),
                reason: e.to_string(),
            })?;
        // A measurement report has no `kind`; verdicts and fleet views do (and also carry a
        // schema_version), and serde would only say a field is missing.
        if let Some(kind) = value.get("kind").and_then(|k| k.as_str()) {
            return Err(crate::Error::CorruptFile {
                path: path.into(),
                reason: format!(
                    "a `{kind}` file, not a measurement report (`gpuvet aggregate` reads \
                     verdicts; reports are written by --json, --save-baseline and --verdict's \
                     companion --json)"
                ),
            });
        }
        let version = value.get("schema_version");
        match version.and_then(|v| v.as_u64()) {
            Some(v) if v == SCHEMA_VERSION as u64 => {}
            Some(v) => {
                return Err(crate::Error::CorruptFile {
                    path: path.into(),
                    reason: format!(
                        "schema_version {v}; this gpuvet reads version {SCHEMA_VERSION}"
                    ),
                })
            }
            None => {
                // One present but not a whole number (`"1"`, edited by hand) is said as such.
                let reason = match version {
                    Some(v) => format!(
                        "schema_version is {v}, not the number {SCHEMA_VERSION} a report holds"
                    ),
                    None => "no schema_version: not a gpuvet report".into(),
                };
                return Err(crate::Error::CorruptFile {
                    path: path.into(),
                    reason,
                });
            }
        }
        let report: Report =
            serde_json::from_value(value).map_err(|e| crate::Error::CorruptFile {
                path: path.into(),
                reason: e.to_string(),
            })?;
        report
            .check_figures()
            .map_err(|reason| crate::Error::CorruptFile {
                path: path.into(),
                reason,
            })?;
        Ok(report)
    }

    /// The figures readers compute with must be ones a run can write: a time that is zero,
    /// negative, not finite or longer than [`MAX_SAMPLE_SECONDS`], a clock outside 0–100 GHz or
    /// a negative throughput marks a damaged or hand-edited file. Read as they were, `compare`
    /// called such a result unverified and passed, and `report` drew a median of -1 s.
    fn check_figures(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.results {
            let id = &r.id;
            // A run measures each result once per placement; a second copy would make
            // `compare` pair whichever came first (the verdict then hangs on record order).
            if !seen.insert((id, r.device.devices())) {
                return Err(format!("result {id} on device {} appears twice", r.device));
            }
            // Every device a result names is one of the report's: a row saying "device 1" of
            // a one-device report names a card that was never there.
            if let Some(d) = r
                .device
                .devices()
                .iter()
                .find(|&&d| d >= self.devices.len())
            {
                return Err(format!(
                    "result {id} names device {d}, and the report has {} device(s)",
                    self.devices.len()
                ));
            }
            if let Some(s) = &r.stats {
                let summary = [s.median_s, s.mean_s, s.min_s, s.max_s];
                if let Some(t) = s
                    .times_s
                    .iter()
                    .chain(&summary)
                    .find(|t| !(**t > 0.0 && **t <= MAX_SAMPLE_SECONDS))
                {
                    return Err(format!(
                        "result {id}: a time of {t:?} s; times are positive seconds, at most \
                         {MAX_SAMPLE_SECONDS:e}"
                    ));
                }
                // `compare` reads the samples and shows the median: the two must agree, or a
                // row reads "2.054 µs (n=1)" beside a change computed from a 1 µs sample.
                if !s.times_s.is_empty() {
                    let m = crate::stats::median(&s.times_s);
                    if (m - s.median_s).abs() > 1e-9 * m {
                        return Err(format!(
                            "result {id}: median_s {:?} is not the median of its times_s ({m:?}): \
                             an edited or damaged file",
                            s.median_s
                        ));
                    }
                }
            }
            if let Some(c) = r.effective_clock_mhz {
                if !(c > 0.0 && c < 100_000.0) {
                    return Err(format!("result {id}: an effective clock of {c} MHz"));
                }
            }
            for t in [&r.throughput, &r.bandwidth].into_iter().flatten() {
                if !(t.value.is_finite() && t.value >= 0.0) {
                    return Err(format!("result {id}: a rate of {} {}", t.value, t.unit));
                }
            }
            if let Some(f) = r.peak_fraction {
                if !(f.is_finite() && f >= 0.0) {
                    return Err(format!("result {id}: a peak fraction of {f}"));
                }
            }
            r.verification
                .check_figures()
                .map_err(|e| format!("result {id}: {e}"))?;
        }
        Ok(())
    }

    /// Reads a report file.
    pub fn load(path: &std::path::Path) -> crate::Result<Report> {
        let text =
            crate::files::read_text_whole_or_bounded(path, crate::files::MAX_STREAMED_REPORT_BYTES)
                .map_err(|e| crate::Error::CorruptFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
        Report::from_json(&text, &path.display().to_string())
    }
}

/// The headline figure of a result as text (`—` when it has none).
pub fn throughput_text(r: &ResultRecord) -> String {
    match &r.throughput {
        Some(t) => crate::units::si(t.value, &t.unit),
        None => "—".into(),
    }
}

/// The devices a result ran on, by index (`[3]`, `[0,1]`), where the run had several devices
/// or the result spans a set: eight GPUs of one model print the same name, and a line that
/// says a result failed must say on which of them.
fn placement_tag(report: &Report, r: &ResultRecord) -> Option<String> {
    (report.devices.len() > 1 || !r.device.is_single()).then(|| format!("[{}]", r.device))
}

/// `text`, followed by the result's [`placement_tag`] where there is one (`mock [3]`).
pub fn with_placement(report: &Report, r: &ResultRecord, text: String) -> String {
    match placement_tag(report, r) {
        Some(tag) => format!("{text} {tag}"),
        None => text,
    }
}

/// Verification as a short word with the error.
pub fn verification_text(r: &ResultRecord) -> String {
    if r.error.is_some() {
        return "ERROR".into();
    }
    let v = &r.verification;
    match (v.method, v.passed) {
        (crate::verify::VerifyMethod::Unverified, _) => return "UNVERIFIED".into(),
        (crate::verify::VerifyMethod::Determinism, true) => return "ok (determinism)".into(),
        _ => {}
    }
    let word = if v.passed { "ok" } else { "FAIL" };
    if v.max_rel_error == 0.0 {
        format!("{word} (exact)")
    } else {
        format!("{word} ({:.1e})", v.max_rel_error)
    }
}

/// The dtype and what computed it, each said once: `f32` where the arithmetic adds nothing,
/// the compute label alone where it starts with the dtype (`bf16 (f32 accumulate)`, not
/// `bf16 (bf16 (f32 accumulate))`), else `bf16 (f32)`.
pub fn dtype_text(r: &ResultRecord) -> String {
    let c = &r.compute_dtype;
    if c.adds_nothing_to(r.dtype) {
        r.dtype.to_string()
    } else if c.inputs() == Some(r.dtype) {
        c.to_string()
    } else {
        format!("{} ({c})", r.dtype)
    }
}

/// Noise as ± half the CI95 of the median, relative.
pub fn noise_text(r: &ResultRecord) -> String {
    r.stats
        .as_ref()
        .and_then(|s| s.rel_ci_half_width())
        .map(|w| format!("±{:.2}%", w * 100.0))
        .unwrap_or_else(|| "—".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dtype_cell_says_each_thing_once() {
        use crate::backend::BackendKind;
        use crate::dtype::{Arith, ComputeType, DType};
        use crate::workload::{MemOp, MemorySpec};
        let w = Workload::Memory(MemorySpec::new(MemOp::Copy, 1 << 20));
        let mut r = ResultRecord::unrun(&w, "mine", BackendKind::Cuda, Placement::one(0));
        let cell = |r: &ResultRecord, c: ComputeType| {
            let mut r = r.clone();
            r.compute_dtype = c;
            dtype_text(&r)
        };
        let user = ComputeType::User {
            inputs: Some(DType::F32),
        };
        assert_eq!(cell(&r, user), "f32 (user kernel)");
        assert_eq!(cell(&r, ComputeType::uniform(DType::F32)), "f32");
        assert_eq!(cell(&r, ComputeType::Unrecorded), "f32");
        assert_eq!(cell(&r, ComputeType::Mock), "f32 (mock)");
        r.dtype = DType::Bf16;
        let lib = ComputeType::Accumulated {
            inputs: DType::Bf16,
            accumulate: Arith::Of(DType::F32),
            fp8: None,
        };
        assert_eq!(cell(&r, lib), "bf16 (f32 accumulate)");
        assert_eq!(cell(&r, ComputeType::uniform(DType::F32)), "bf16 (f32)");
    }

    /// Every format writes a status as the JSON does (the CSV once wrote `verificationfailed`).
    #[test]
    fn status_names_are_the_json_names() {
        for st in [Status::Ok, Status::VerificationFailed, Status::Error] {
            assert_eq!(serde_json::to_value(st).unwrap(), st.name());
        }
    }

    #[test]
    fn the_run_backend_keeps_its_name_and_unknown_names_load() {
        for (name, typed) in [
            ("cuda", RunBackend::Kind(BackendKind::Cuda)),
            ("cpu", RunBackend::Kind(BackendKind::Cpu)),
            ("mock", RunBackend::Kind(BackendKind::Mock)),
            ("rocm", RunBackend::Other("rocm".into())),
            ("", RunBackend::default()),
        ] {
            let json = serde_json::to_string(name).unwrap();
            let read: RunBackend = serde_json::from_str(&json).unwrap();
            assert_eq!(read, typed);
            assert_eq!(serde_json::to_string(&read).unwrap(), json);
        }
        assert!(!RunBackend::from("cpu").names_gpu_models());
        assert!(RunBackend::from("mock").names_gpu_models());
        assert!(RunBackend::from("rocm").names_gpu_models());
    }
}
