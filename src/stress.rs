//! `gpuvet stress`: sustained matmul load on every device, with a per-second timeline and
//! silent-data-corruption checks.
//!
//! Each device runs the same matmul on the same inputs again and again. Every work call is
//! synchronous and short (about 0.2 s), so at most one call is in flight per device: throughput
//! counts completed work, never queued launches, and Ctrl-C ends the run within a second.
//! About once a second the output is read back and hashed; the kernels are deterministic, so
//! every hash on every device must equal the first one. A mismatch is a FAIL naming the device
//! and the iteration.

use crate::backend::{Backend, PrepareOptions, Prepared, Telemetry};
use crate::dtype::DType;
use crate::error::Result;
use crate::plan::{ImplSelect, Placement, PlanEntry};
use crate::runner::{schedule, Devices, LostDevices};
use crate::tensor::Tensor;
use crate::workload::{BLayout, MatmulSpec, Workload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Target duration of one synchronous work call.
const CALL_SECONDS: f64 = 0.2;

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct StressConfig {
    pub duration: Duration,
    pub workload: Workload,
    pub seed: u64,
    /// Seconds between output checksums.
    pub check_interval_s: f64,
    /// Test hook: flip one bit of the output of this (device index, check number).
    pub plant_fault: Option<(usize, u64)>,
}

impl StressConfig {
    /// A square matmul of `size` in `dtype`, weights in the nk layout.
    pub fn matmul(size: u64, dtype: DType, duration: Duration, seed: u64) -> Self {
        StressConfig {
            duration,
            workload: Workload::Matmul(MatmulSpec {
                m: size,
                n: size,
                k: size,
                dtype,
                b_layout: BLayout::Nk,
            }),
            seed,
            check_interval_s: 1.0,
            plant_fault: None,
        }
    }
}

/// One second of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the start of the stress run (end of the interval).
    pub t_s: f64,
    /// Completed work per second in the interval (FLOP/s, OP/s for int8).
    pub throughput: f64,
    pub iterations: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
}

/// A checksum that differed from the first one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    /// Iteration count on that device when the output was read.
    pub iteration: u64,
    pub check: u64,
    pub expected: String,
    pub got: String,
}

/// The outcome on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStress {
    pub device: usize,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub iterations: u64,
    pub checks: u64,
    /// SHA-256 of the first output, which every later output must equal.
    pub checksum: String,
    /// The first output matched the f64 reference.
    pub verified: bool,
    pub mismatches: Vec<Mismatch>,
    /// Median of the per-second throughputs; absent when the first output was wrong (the speed
    /// of a wrong computation is no figure) or nothing was timed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_throughput: Option<f64>,
    /// Median board power of the timeline's readings taken from the sensor's averaging window
    /// into the load on ([`Backend::power_window_s`]), W; absent without power readings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_power_w: Option<f64>,
    pub timeline: Vec<TimelinePoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole stress run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressReport {
    pub workload: Workload,
    pub duration_s: f64,
    pub interrupted: bool,
    pub devices: Vec<DeviceStress>,
    /// Every device produced the same checksum as every other.
    pub consistent_across_devices: bool,
    pub verdict: StressVerdict,
    pub reasons: Vec<String>,
}

/// What a stress run concludes, written `PASS`, `FAIL` or `INCOMPLETE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StressVerdict {
    Pass,
    Fail,
    /// Interrupted before it found a fault: it never ran as long as it was asked to.
    Incomplete,
}

impl StressVerdict {
    pub fn name(self) -> &'static str {
        match self {
            StressVerdict::Pass => "PASS",
            StressVerdict::Fail => "FAIL",
            StressVerdict::Incomplete => "INCOMPLETE",
        }
    }
}

impl std::fmt::Display for StressVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Tests and readers of the JSON compare with the written name.
impl PartialEq<&str> for StressVerdict {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl StressReport {
    /// 0 pass; 1 fail: a wrong or differing output, or a device lost after it had started
    /// working (an illegal address mid-run is the GPU's failure); 2 when a device could not
    /// run at all and nothing else failed. A scheduler reads 2 as "the tool could not judge",
    /// so it must never hide a failure found beside it.
    pub fn exit_code(&self) -> i32 {
        let failed = |d: &DeviceStress| {
            !d.mismatches.is_empty()
                || (d.error.is_none() && !d.verified)
                || (d.error.is_some() && d.iterations > 0)
        };
        let differ = !self.consistent_across_devices;
        if self.devices.iter().any(failed) || differ {
            1
        } else if self.devices.iter().any(|d| d.error.is_some()) {
            2
        } else if self.verdict == StressVerdict::Pass {
            0
        } else {
            1
        }
    }
}

/// SHA-256 of a tensor's bytes, as hex.
pub fn checksum(t: &Tensor) -> String {
    let d = Sha256::digest(t.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the stress on every backend at once (the scheduler's lock-step, one step that lasts the
/// whole duration) until the duration passes or `stop` is set.
pub fn run(
    backends: Vec<Box<dyn Backend>>,
    cfg: &StressConfig,
    stop: &AtomicBool,
) -> Result<StressReport> {
    run_keeping(backends, cfg, &LostDevices::default(), &[], stop).map(|(r, _)| r)
}

/// [`run`], sharing the process's table of lost devices and handing the backends back (a
/// validation soak stresses after its suite, and reads device state afterwards). A device lost
/// before is not planned (it would answer every call with its sticky error) and is recorded as
/// skipped; one lost during the stress stops with that fault while the others go on. `held`
/// are devices not to stress and not to record at all (validate: GPUs whose memory another
/// process holds, judged under health; planning them would refuse the whole stress).
pub fn run_keeping(
    mut backends: Vec<Box<dyn Backend>>,
    cfg: &StressConfig,
    lost: &LostDevices,
    held: &[usize],
    stop: &AtomicBool,
) -> Result<(StressReport, Vec<Box<dyn Backend>>)> {
    // Through the plan like every other run: the implementation is chosen there (the best each
    // device has) and the buffers are checked against free memory before anything is allocated.
    let mut left_out = lost.devices();
    left_out.extend_from_slice(held);
    left_out.sort_unstable();
    left_out.dedup();
    let plan = crate::plan::build_without(
        std::slice::from_ref(&cfg.workload),
        &backends,
        &ImplSelect::Best,
        true,
        false,
        &left_out,
    )?;
    let start = Instant::now();
    let job = |e: &PlanEntry, bs: &[&dyn Backend], ins: &[Tensor]| {
        let load = Load { cfg, stop, start };
        stress_one(e, bs[0], ins, &load, lost)
    };
    let mut devices: Vec<DeviceStress> = left_out
        .iter()
        .filter_map(|&d| {
            let why = lost.skip_reason(&Placement::one(d))?;
            Some(DeviceStress::new(d, backends.get(d)?.device()).failed(&why))
        })
        .collect();
    let mut done = |got: Vec<DeviceStress>| {
        devices.extend(got);
        Ok::<(), crate::Error>(())
    };
    schedule(
        &plan,
        Devices::Exclusive(&mut backends),
        cfg.seed,
        stop,
        &job,
        &mut done,
    )?;
    devices.sort_by_key(|d| d.device);
    let (reasons, consistent) = judge(&devices);
    let interrupted = stop.load(Ordering::Relaxed);
    // A fault found before a stop is a fact; a clean run cut short has no verdict: it never
    // ran as long as it was asked to.
    let verdict = match (reasons.is_empty(), interrupted) {
        (false, _) => StressVerdict::Fail,
        (true, false) => StressVerdict::Pass,
        (true, true) => StressVerdict::Incomplete,
    };
    let report = StressReport {
        workload: cfg.workload.clone(),
        duration_s: start.elapsed().as_secs_f64(),
        interrupted,
        devices,
        consistent_across_devices: consistent,
        verdict,
        reasons,
    };
    Ok((report, backends))
}

/// Why the run fails (empty when it passes), and whether every device gave the same checksum.
fn judge(devices: &[DeviceStress]) -> (Vec<String>, bool) {
    let mut reasons = Vec::new();
    for d in devices {
        if let Some(e) = &d.error {
            reasons.push(format!("device {} ({}): {e}", d.device, d.name));
        } else if !d.verified {
            reasons.push(format!(
                "device {} ({}): the first output did not match the f64 reference",
                d.device, d.name
            ));
        }
        for m in &d.mismatches {
            reasons.push(format!(
                "device {} ({}): silent data corruption: output at iteration {} (check {}) differs from the first output",
                d.device, d.name, m.iteration, m.check
            ));
        }
    }
    let ok: Vec<&DeviceStress> = devices.iter().filter(|d| d.error.is_none()).collect();
    let consistent = ok.windows(2).all(|w| w[0].checksum == w[1].checksum);
    if !consistent {
        reasons.extend(outvoted(&ok));
    }
    (reasons, consistent)
}

/// The devices whose output differs from a strict majority's, or, where no output has more
/// than half the devices behind it (two GPUs that disagree, a 2-2 split), one reason naming
/// them all: the outputs alone cannot say which is wrong. The most common output of a tie
/// once stood for the majority, and on two GPUs the healthy one could be named.
fn outvoted(ok: &[&DeviceStress]) -> Vec<String> {
    let mut counts = std::collections::BTreeMap::new();
    for d in ok {
        *counts.entry(d.checksum.as_str()).or_insert(0usize) += 1;
    }
    let majority = counts
        .iter()
        .find(|(_, n)| 2 * **n > ok.len())
        .map(|(c, _)| *c);
    match majority {
        Some(m) => (ok.iter())
            .filter(|d| d.checksum != m)
            .map(|d| {
                format!(
                    "device {} ({}): its output differs from the other devices' for the same \
                     inputs",
                    d.device, d.name
                )
            })
            .collect(),
        None => vec![format!(
            "devices {}: their outputs for the same inputs differ, and no majority of them \
             agrees, so the outputs alone cannot tell which device is wrong",
            ok.iter()
                .map(|d| d.device.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )],
    }
}

/// What every device's load shares: the settings, the stop flag and the common start time.
struct Load<'a> {
    cfg: &'a StressConfig,
    stop: &'a AtomicBool,
    start: Instant,
}

impl DeviceStress {
    /// Device `index` before any work.
    pub fn new(index: usize, info: &crate::backend::DeviceInfo) -> DeviceStress {
        DeviceStress {
            device: index,
            name: info.name.clone(),
            uuid: info.uuid.clone(),
            iterations: 0,
            checks: 0,
            checksum: String::new(),
            verified: false,
            mismatches: Vec::new(),
            median_throughput: None,
            median_power_w: None,
            timeline: Vec::new(),
            error: None,
        }
    }

    /// Records why the load ended early (or never started). A fault that lost the device says
    /// how far the load got, so a reader can tell it from a device that could not start.
    fn failed(mut self, e: &crate::Error) -> DeviceStress {
        self.error = Some(if e.loses_device() {
            format!(
                "the device was lost after {} iterations: {e}",
                self.iterations
            )
        } else {
            e.to_string()
        });
        self
    }
}

/// One device's load, through the table of lost devices: skipped when the device was lost
/// before, recorded there when its fault loses it now.
fn stress_one(
    entry: &PlanEntry,
    b: &dyn Backend,
    inputs: &[Tensor],
    load: &Load,
    lost: &LostDevices,
) -> DeviceStress {
    let mut out = DeviceStress::new(entry.placement.lead(), b.device());
    let id = format!(
        "stress {}",
        crate::runner::result_id(&entry.workload, &entry.implementation)
    );
    let ran = lost.guard(&entry.placement, &id, || {
        stress_loop(entry, b, inputs, load, &mut out)
    });
    if let Err(e) = ran {
        out = out.failed(&e);
    }
    let rates: Vec<f64> = out.timeline.iter().map(|p| p.throughput).collect();
    if !rates.is_empty() && out.verified {
        out.median_throughput = Some(crate::stats::median(&rates));
    }
    // The first second also holds the preparation and the first output's check.
    let from_s = b.power_window_s() + 1.0;
    let watts: Vec<f64> = out
        .timeline
        .iter()
        .filter(|p| p.t_s >= from_s)
        .filter_map(|p| p.telemetry.as_ref()?.power_w)
        .collect();
    out.median_power_w = (!watts.is_empty()).then(|| crate::stats::median(&watts));
    out
}

fn stress_loop(
    entry: &PlanEntry,
    b: &dyn Backend,
    inputs: &[Tensor],
    load: &Load,
    out: &mut DeviceStress,
) -> Result<()> {
    let Load { cfg, stop, start } = *load;
    let (w, index) = (&entry.workload, entry.placement.lead());
    let opts = PrepareOptions {
        buffer_sets: entry.buffer_sets,
        hot: true,
    };
    let mut p = b.prepare(w, &entry.implementation, inputs, opts)?;
    let first = p.run_verify()?;
    let seed = crate::inputs::workload_seed(cfg.seed, w);
    out.verified = crate::verify::verify(w, inputs, &first, seed).passed;
    out.checksum = checksum(&first);
    // Size one call to about CALL_SECONDS.
    let t1 = p.run(1)?.max(1e-7);
    let per_call = ((CALL_SECONDS / t1) as u64).clamp(1, 1 << 20);
    out.iterations = 1;

    // The load lasts --duration from the end of this device's own setup: counted from the
    // common start, a device whose setup outlasted it (a short --duration, a slow compile or
    // link) skipped the loop, compared nothing, and passed.
    let deadline = cfg.duration.as_secs_f64();
    let loaded = Instant::now();
    let mut bin = Bin::new();
    let mut last_check = Instant::now();
    // Iterations since the last comparison with the first output.
    let mut unchecked = 0u64;
    while loaded.elapsed().as_secs_f64() < deadline && !stop.load(Ordering::Relaxed) {
        let secs = p.run(per_call)?;
        bin.add(per_call, secs);
        out.iterations += per_call;
        unchecked += per_call;
        if bin.start.elapsed().as_secs_f64() >= 1.0 {
            out.timeline.push(bin.point(w, b, start));
            bin = Bin::new();
        }
        if last_check.elapsed().as_secs_f64() >= cfg.check_interval_s {
            last_check = Instant::now();
            check(p.as_mut(), cfg, index, out)?;
            unchecked = 0;
        }
    }
    if stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    // The end of the run is checked too: a run shorter than --check-interval would otherwise
    // compare nothing and still say its outputs were identical, and a fault in the last
    // interval would go unseen. The last part second is a timeline point when it is long
    // enough to mean something, or when it is all there is.
    if bin.iterations > 0 && (out.timeline.is_empty() || bin.start.elapsed().as_secs_f64() >= 0.5) {
        out.timeline.push(bin.point(w, b, start));
    }
    if unchecked > 0 {
        check(p.as_mut(), cfg, index, out)?;
    }
    Ok(())
}

/// The iterations of one timeline point, and the device time they took.
struct Bin {
    start: Instant,
    iterations: u64,
    busy_s: f64,
}

impl Bin {
    fn new() -> Bin {
        Bin {
            start: Instant::now(),
            iterations: 0,
            busy_s: 0.0,
        }
    }

    fn add(&mut self, iterations: u64, busy_s: f64) {
        self.iterations += iterations;
        self.busy_s += busy_s;
    }

    /// The point this bin makes, ending now: its rate over the longer of the wall time and the
    /// device time (a device that reports more busy time than wall time is not believed).
    fn point(&self, w: &Workload, b: &dyn Backend, start: Instant) -> TimelinePoint {
        let wall = self.start.elapsed().as_secs_f64();
        TimelinePoint {
            t_s: start.elapsed().as_secs_f64(),
            throughput: w.flops() * self.iterations as f64 / wall.max(self.busy_s),
            iterations: self.iterations,
            telemetry: b.telemetry(),
        }
    }
}

/// One comparison of a fresh output with the first: a difference is a mismatch.
fn check(
    p: &mut dyn Prepared,
    cfg: &StressConfig,
    index: usize,
    out: &mut DeviceStress,
) -> Result<()> {
    out.checks += 1;
    let mut o = p.run_verify()?;
    out.iterations += 1;
    if cfg.plant_fault == Some((index, out.checks)) {
        flip_bit(&mut o);
    }
    let c = checksum(&o);
    if c != out.checksum {
        out.mismatches.push(Mismatch {
            iteration: out.iterations,
            check: out.checks,
            expected: out.checksum.clone(),
            got: c,
        });
    }
    Ok(())
}

/// Flips the lowest bit of the first element's storage.
fn flip_bit(t: &mut Tensor) {
    use crate::tensor::Data;
    match &mut t.data {
        Data::F32(v) => v[0] = f32::from_bits(v[0].to_bits() ^ 1),
        Data::F16(v) => v[0] = half::f16::from_bits(v[0].to_bits() ^ 1),
        Data::Bf16(v) => v[0] = half::bf16::from_bits(v[0].to_bits() ^ 1),
        Data::I32(v) => v[0] ^= 1,
        Data::F64(v) => v[0] = f64::from_bits(v[0].to_bits() ^ 1),
        Data::I8(v) => v[0] ^= 1,
        Data::F8E4M3(v) => v[0] = float8::F8E4M3::from_bits(v[0].to_bits() ^ 1),
        Data::F8E5M2(v) => v[0] = float8::F8E5M2::from_bits(v[0].to_bits() ^ 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mock::MockBackend;

    fn cfg(fault: Option<(usize, u64)>) -> StressConfig {
        let mut c = StressConfig::matmul(16, DType::Bf16, Duration::from_millis(2500), 1);
        c.check_interval_s = 0.3;
        c.plant_fault = fault;
        c
    }

    #[test]
    fn a_healthy_run_passes_with_a_timeline() {
        let r = run(
            vec![Box::new(MockBackend::new()), Box::new(MockBackend::new())],
            &cfg(None),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(r.verdict, "PASS", "{:?}", r.reasons);
        assert!(r.consistent_across_devices);
        for d in &r.devices {
            assert!(d.verified);
            assert!(d.checks >= 3, "{} checks", d.checks);
            assert!(d.timeline.len() >= 2);
            assert!(d.median_throughput.unwrap() > 0.0);
            // The mock's board draws 100 W under load.
            assert_eq!(d.median_power_w, Some(100.0));
        }
        assert_eq!(r.exit_code(), 0);
    }

    /// A run shorter than the check interval still compares its last output with the first,
    /// and still has a rate: nothing is claimed from zero comparisons.
    #[test]
    fn a_run_shorter_than_the_check_interval_checks_its_end() {
        for fault in [None, Some((0, 1))] {
            let mut c = cfg(fault);
            c.duration = Duration::from_millis(300);
            c.check_interval_s = 60.0;
            let r = run(
                vec![Box::new(MockBackend::new())],
                &c,
                &AtomicBool::new(false),
            )
            .unwrap();
            let d = &r.devices[0];
            assert_eq!(d.checks, 1, "{fault:?}");
            assert_eq!(d.timeline.len(), 1, "{fault:?}");
            assert!(d.median_throughput.unwrap() > 0.0, "{fault:?}");
            assert_eq!(
                d.mismatches.len(),
                usize::from(fault.is_some()),
                "{fault:?}"
            );
            assert_eq!(r.verdict, if fault.is_some() { "FAIL" } else { "PASS" });
        }
    }

    /// A run stopped before its end with no fault found has no verdict: it never ran as long
    /// as asked (it said PASS, "stopped before any repeat was compared"). A fault found before
    /// the stop still fails it.
    #[test]
    fn an_interrupted_run_passes_nothing() {
        for (fault, want) in [(None, "INCOMPLETE"), (Some((0, 1)), "FAIL")] {
            let mut c = cfg(fault);
            c.duration = Duration::from_secs(30);
            c.check_interval_s = 0.05;
            let stop = AtomicBool::new(false);
            let stopper = || {
                std::thread::sleep(Duration::from_millis(500));
                stop.store(true, Ordering::Relaxed);
            };
            let r = std::thread::scope(|s| {
                s.spawn(stopper);
                run(vec![Box::new(MockBackend::new())], &c, &stop).unwrap()
            });
            assert!(r.interrupted);
            assert_eq!(r.verdict, want, "{fault:?}: {:?}", r.reasons);
        }
    }

    /// Devices that disagree are named against a strict majority only: two GPUs that differ
    /// (or a 2-2 split) are one reason naming all of them, never the one whose checksum sorts
    /// first; three where one differs name that one.
    #[test]
    fn only_a_strict_majority_names_the_odd_device_out() {
        let info = MockBackend::new().device().clone();
        let dev = |i: usize, sum: &str| DeviceStress {
            checksum: sum.into(),
            verified: true,
            ..DeviceStress::new(i, &info)
        };
        let (two, consistent) = judge(&[dev(0, "3a"), dev(1, "c1")]);
        assert!(!consistent);
        assert_eq!(two.len(), 1, "{two:?}");
        assert!(
            two[0].starts_with(
                "devices 0, 1: their outputs for the same inputs differ, and no majority"
            ),
            "{two:?}"
        );
        let (three, _) = judge(&[dev(0, "c1"), dev(1, "3a"), dev(2, "c1")]);
        assert_eq!(three.len(), 1, "{three:?}");
        assert!(
            three[0].starts_with("device 1 (") && three[0].contains("differs"),
            "{three:?}"
        );
        let (split, _) = judge(&[dev(0, "a"), dev(1, "a"), dev(2, "b"), dev(3, "b")]);
        assert!(split[0].starts_with("devices 0, 1, 2, 3:"), "{split:?}");
    }

    /// A device whose setup outlasts a short --duration still loads and compares for the
    /// whole of it: counted from the common start, it skipped the loop and passed untested.
    #[test]
    fn every_device_is_loaded_and_compared_for_the_whole_duration() {
        // Setup checks the first 384^3 output against an f64 reference on the CPU: longer
        // than the 50 ms asked for.
        let mut c = StressConfig::matmul(384, DType::F32, Duration::from_millis(50), 1);
        c.check_interval_s = 0.3;
        let r = run(
            vec![Box::new(MockBackend::new()), Box::new(MockBackend::new())],
            &c,
            &AtomicBool::new(false),
        )
        .unwrap();
        for d in &r.devices {
            assert!(d.checks >= 1 && !d.timeline.is_empty(), "{d:?}");
        }
    }

    #[test]
    fn a_planted_bit_flip_is_caught_and_named() {
        let r = run(
            vec![Box::new(MockBackend::new()), Box::new(MockBackend::new())],
            &cfg(Some((1, 2))),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(r.verdict, "FAIL");
        assert_eq!(r.exit_code(), 1);
        assert!(r.devices[0].mismatches.is_empty());
        assert_eq!(r.devices[1].mismatches.len(), 1);
        assert_eq!(r.devices[1].mismatches[0].check, 2);
        assert!(
            r.reasons[0].contains("device 1") && r.reasons[0].contains("iteration"),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn a_device_lost_mid_run_stops_alone_with_its_fault_recorded() {
        let lost = LostDevices::default();
        let backends: Vec<Box<dyn Backend>> = vec![
            Box::new(MockBackend::with_device_fault_after("matmul", 3)),
            Box::new(MockBackend::new()),
        ];
        let (r, _) =
            run_keeping(backends, &cfg(None), &lost, &[], &AtomicBool::new(false)).unwrap();
        let (bad, good) = (&r.devices[0], &r.devices[1]);
        let e = bad.error.as_deref().unwrap();
        assert!(bad.iterations > 0);
        let head = format!("the device was lost after {} iterations: ", bad.iterations);
        assert!(
            e.starts_with(&head) && e.contains("CUDA_ERROR_ILLEGAL_ADDRESS"),
            "{e}"
        );
        // The other device ran the whole duration.
        assert!(good.error.is_none(), "{:?}", good.error);
        assert!(good.verified && good.checks >= 3 && good.timeline.len() >= 2);
        assert_eq!(r.verdict, "FAIL");
        // Lost after it had worked: the GPU's failure (1), not a run that could not start.
        assert_eq!(r.exit_code(), 1);
        // The table now holds device 0 only: later work on it is skipped with its fault.
        assert_eq!(lost.devices(), [0]);
        let skip = lost.skip_reason(&Placement::one(0)).unwrap().to_string();
        assert!(
            skip.starts_with(
                "skipped: the device was lost after stress matmul.bf16.16x16x16.nk/mock: "
            ) && skip.contains("CUDA_ERROR_ILLEGAL_ADDRESS"),
            "{skip}"
        );
    }

    #[test]
    fn a_device_lost_before_is_skipped_and_never_asked() {
        // As in a validation soak: work before the stress (the suite half, through the same
        // table) loses device 0, then the stress half runs.
        let backends: Vec<Box<dyn Backend>> = vec![
            Box::new(MockBackend::with_device_fault("matmul.f32")),
            Box::new(MockBackend::new()),
        ];
        let w = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let (ins, lost) = (w.inputs(1), LostDevices::default());
        let opts = PrepareOptions {
            buffer_sets: 1,
            hot: false,
        };
        let suite_id = "matmul.f32.8x8x8.kn/mock";
        let fault = lost
            .guard(&Placement::one(0), suite_id, || {
                backends[0].prepare(&w, "mock", &ins, opts).map(|_| ())
            })
            .unwrap_err();
        // The lost mock answers every call with its fault, free memory included: planning the
        // stress on it would have failed the stress of every device.
        assert!(backends[0].free_memory().is_err());
        let stop = AtomicBool::new(false);
        let (r, _) = run_keeping(backends, &cfg(None), &lost, &[], &stop).unwrap();
        let (bad, good) = (&r.devices[0], &r.devices[1]);
        assert_eq!(
            bad.error.as_deref().unwrap(),
            format!("skipped: the device was lost after {suite_id}: {fault}")
        );
        assert_eq!((bad.iterations, bad.checks), (0, 0));
        assert!(good.error.is_none() && good.verified && good.checks >= 3);
    }

    #[test]
    fn the_plan_refuses_a_load_that_does_not_fit() {
        // 3 × 4 TiB of f32 matrices: refused before anything is allocated, like any other run.
        let c = StressConfig::matmul(1 << 20, DType::F32, Duration::from_secs(1), 1);
        let e = run(
            vec![Box::new(MockBackend::new())],
            &c,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(matches!(e, crate::Error::OutOfMemory { .. }), "{e}");
    }

    #[test]
    fn stop_flag_ends_at_once() {
        let t = Instant::now();
        let r = run(
            vec![Box::new(MockBackend::new())],
            &StressConfig::matmul(16, DType::F32, Duration::from_secs(600), 1),
            &AtomicBool::new(true),
        )
        .unwrap();
        assert!(t.elapsed().as_secs_f64() < 1.0);
        assert!(r.interrupted);
    }
}
