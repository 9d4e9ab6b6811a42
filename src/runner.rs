//! Executes a plan: inputs → prepare → verify → measure → record, through the one scheduler
//! ([`schedule`]) that also drives lock-step and sustained runs.
//!
//! A result's time is taken only after its output passed verification; a wrong output is
//! recorded with its error and no throughput. Exports are rewritten after every result, so an
//! interrupted run keeps what finished.

use crate::backend::{Backend, Group, PrepareOptions, Telemetry};
use crate::env::{HostInfo, ToolInfo};
use crate::export::Exports;
use crate::inputs;
use crate::measure::{
    measure_fixed, measure_observed, FixedSchedule, MeasureConfig, Measurement, Phase, StopReason,
};
use crate::plan::{Plan, PlanEntry};
use crate::report::{Report, ResultRecord, RunConfig, Status, Throughput, SCHEMA_VERSION};
use crate::tensor::Tensor;
use crate::verify::{Verification, Verify, VerifyMethod};
use crate::workload::Placing;
use crate::world::World;
use crate::Error;
pub use schedule::{schedule, Devices, Done, Job, LostDevices};
use std::path::PathBuf;

mod schedule;
use std::sync::atomic::{AtomicBool, Ordering};

/// Everything about a run that is not the plan itself.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub measure: MeasureConfig,
    pub seed: u64,
    pub hot: bool,
    pub threads: usize,
    pub dump_dir: Option<PathBuf>,
    pub dump_all: bool,
    pub quiet: bool,
    pub command: String,
    /// The backend the run's devices are on (recorded as `config.backend`).
    pub backend: crate::report::RunBackend,
    /// Fixed host and start time, for reproducible snapshots (mock runs in tests).
    pub fixed_environment: bool,
    /// The processes of the run (a single process unless launched as a world), joined.
    pub world: World,
}

/// A report with no results yet, describing the run about to happen.
pub fn new_report(backends: &[Box<dyn Backend>], s: &Settings) -> Report {
    let (host, started_at, tool) = if s.fixed_environment {
        (
            HostInfo::fixed(),
            "2026-01-01T00:00:00Z".to_string(),
            ToolInfo {
                git_sha: "test".into(),
                ..ToolInfo::current()
            },
        )
    } else {
        (
            HostInfo::capture(),
            crate::env::now_rfc3339(),
            ToolInfo::current(),
        )
    };
    let kernel_hash = backends.iter().find_map(|b| b.kernel_hash());
    Report {
        schema_version: SCHEMA_VERSION,
        tool,
        host,
        devices: backends
            .iter()
            .map(|b| crate::gpudb::with_peaks(b.device().clone()))
            .collect(),
        config: RunConfig {
            command: s.command.clone(),
            backend: s.backend.clone(),
            seed: s.seed,
            min_samples: s.measure.min_samples,
            max_samples: s.measure.max_samples,
            max_time_s: s.measure.max_time_s,
            warmup_s: s.measure.warmup_s,
            target_rel_noise: s.measure.target_rel_noise,
            min_sample_time_s: s.measure.min_sample_time_s,
            hot: s.hot,
            threads: s.threads,
            kernel_hash,
            price: None,
        },
        started_at,
        complete: false,
        world: s.world.record(),
        results: Vec::new(),
        not_run: Vec::new(),
        telemetry: Vec::new(),
    }
}

/// Runs every entry of `plan` one after another, appending to `report` and rewriting `exports`
/// after each. Returns when done or when `stop` is set (Ctrl-C).
pub fn execute(
    plan: &Plan,
    backends: &[Box<dyn Backend>],
    settings: &Settings,
    exports: &Exports,
    report: &mut Report,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    execute_sharing(
        plan,
        backends,
        settings,
        exports,
        report,
        &LostDevices::default(),
        stop,
    )
}

/// [`execute`] with the process's table of lost devices (`validate`'s link checks after its
/// suite): entries on a device lost earlier are recorded as skipped.
pub fn execute_sharing(
    plan: &Plan,
    backends: &[Box<dyn Backend>],
    settings: &Settings,
    exports: &Exports,
    report: &mut Report,
    lost: &LostDevices,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let run = Measuring {
        settings,
        exports,
        lost,
        stop,
    };
    run.plan(plan, Devices::Shared(backends), report)
}

/// Runs `plan` on every device at the same time: each step (one workload) starts on all
/// devices together, a thread per device, so peers are compared under the same conditions.
/// Results are appended in plan order. `lost` is the process's table of lost devices (a
/// validation soak shares it with its stress half): entries on a device lost before or during
/// the run are recorded as skipped. Returns the backends for later use (telemetry).
pub fn execute_parallel(
    plan: &Plan,
    mut backends: Vec<Box<dyn Backend>>,
    settings: &Settings,
    exports: &Exports,
    report: &mut Report,
    lost: &LostDevices,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<Box<dyn Backend>>> {
    let run = Measuring {
        settings,
        exports,
        lost,
        stop,
    };
    run.plan(plan, Devices::Exclusive(&mut backends), report)?;
    Ok(backends)
}

/// What a measuring run holds for its whole plan: the settings, where results are exported,
/// the process's table of lost devices, and the stop flag.
#[derive(Clone, Copy)]
struct Measuring<'r> {
    settings: &'r Settings,
    exports: &'r Exports,
    lost: &'r LostDevices,
    stop: &'r AtomicBool,
}

impl Measuring<'_> {
    /// The measuring job on the scheduler: verify then time every entry of `plan` on
    /// `devices`, exports rewritten after every batch of results.
    fn plan(self, plan: &Plan, devices: Devices<'_>, report: &mut Report) -> anyhow::Result<()> {
        let Measuring {
            settings,
            exports,
            lost,
            stop,
        } = self;
        exports.write_files(report)?;
        let several_devices = devices.len() > 1;
        let pb = crate::term::progress(plan.entries.len() as u64, settings.quiet);
        let job = |entry: &PlanEntry, bs: &[&dyn Backend], ins: &[Tensor]| {
            pb.set_message(format!(
                "{} / {}",
                entry.workload.name(),
                entry.implementation
            ));
            let id = result_id(&entry.workload, &entry.implementation);
            if let Some(short) = &entry.short_of_memory {
                // Planned to be recorded, never prepared (validate: a GPU whose memory another
                // process holds).
                pb.inc(1);
                return Some(error_record(entry, bs[0], &short.error()));
            }
            let rec = match lost.guard(&entry.placement, &id, || {
                run_one(entry, bs, ins, settings, stop, several_devices)
            }) {
                Ok(r) => Some(r),
                // Interrupted mid-measurement: nothing trustworthy to record.
                Err(Error::Interrupted) => None,
                Err(e) => Some(error_record(entry, bs[0], &e)),
            };
            pb.inc(1);
            rec
        };
        let mut done = |got: Vec<Option<ResultRecord>>| {
            for r in got.into_iter().flatten() {
                report.push(r);
            }
            exports.rewrite_files(report);
            Ok::<(), anyhow::Error>(())
        };
        schedule(plan, devices, settings.seed, stop, &job, &mut done)?;
        pb.finish_and_clear();
        report.complete = !stop.load(Ordering::Relaxed);
        exports.rewrite_files_now(report);
        Ok(())
    }
}

/// A record of what the entry and its lead device say, nothing verified or measured yet
/// ([`ResultRecord::unrun`]), with the plan's notes.
fn new_record(entry: &PlanEntry, lead: &dyn Backend) -> ResultRecord {
    ResultRecord {
        notes: entry.notes.clone(),
        ..ResultRecord::unrun(
            &entry.workload,
            &entry.implementation,
            lead.kind(),
            entry.placement.clone(),
        )
    }
}

fn error_record(entry: &PlanEntry, lead: &dyn Backend, e: &Error) -> ResultRecord {
    ResultRecord {
        stop_reason: StopReason::Error,
        error: Some(e.to_string()),
        ..new_record(entry, lead)
    }
}

/// Prepares, verifies and (when the output is right) measures one entry. `bs` are the backends
/// of its placement; a single-device workload runs on the first.
fn run_one(
    entry: &PlanEntry,
    bs: &[&dyn Backend],
    ins: &[Tensor],
    s: &Settings,
    stop: &AtomicBool,
    several_devices: bool,
) -> crate::Result<ResultRecord> {
    let backend = bs[0];
    let w = &entry.workload;
    let opts = PrepareOptions {
        buffer_sets: entry.buffer_sets,
        hot: s.hot,
    };
    let mut prepared = match w.placing() {
        Placing::EachDevice => backend.prepare(w, &entry.implementation, ins, opts)?,
        _ => {
            let group = Group {
                members: bs,
                world: &s.world,
            };
            backend.prepare_group(&group, w, &entry.implementation, ins, opts)?
        }
    };
    let runs = w.verify_runs();
    let outputs = if runs > 1 {
        prepared.run_verify_repeated(runs)?
    } else {
        vec![prepared.run_verify()?]
    };
    let wseed = inputs::workload_seed(s.seed, w);
    let verification = w.verify_outputs(ins, &outputs, wseed);
    let mut record = new_record(entry, backend);
    record.kernel = prepared.kernel_record();
    if s.dump_all || !verification.passed {
        dump_evidence(entry, &record.id, s, ins, &outputs[0], several_devices)?;
    }
    record.compute_dtype = prepared.compute_dtype();
    let (cache, cache_note) = crate::plan::honest_cache(prepared.cache_policy(), w, backend);
    record.cache = cache;
    record.notes.extend(cache_note);
    record.notes.extend(prepared.notes());
    record.notes.extend(verification_note(&verification, runs));
    record.verification = verification;
    // A wrong output is never timed: its speed means nothing. An output the user asked not to
    // check is timed, and stays labelled unverified (it never passes).
    let unverified = record.verification.method == VerifyMethod::Unverified;
    // In a world every rank must issue the same calls: no decision may rest on a timing.
    let fixed = (s.world.size > 1)
        .then(|| FixedSchedule::new(&s.measure, w.bytes(), backend.collective_pace()));
    if !record.verification.passed && !unverified {
        if let Some(sched) = &fixed {
            // The other ranks' outputs may have verified, and they go on to the samples: make
            // the same calls, untimed, or they would wait for this rank forever.
            let _ = measure_fixed(prepared.as_mut(), sched, wseed, stop, &mut |_| {});
        }
        record.status = Status::VerificationFailed;
        record.stop_reason = StopReason::VerificationFailed;
        return Ok(record);
    }
    record.telemetry_before = backend.telemetry();
    // Every member's board power, read as the lead's is: the work of a set of GPUs costs the
    // power of all of them (divided by the lead's alone, a 4-GPU all-reduce read 4x the work
    // per watt it did). Where other processes hold ranks of it, only the lead's clock is used.
    let other_processes = s.world.size > 1 && !matches!(w.placing(), Placing::EachDevice);
    let watched = if other_processes { &bs[..1] } else { bs };
    let mut in_run: Vec<InRunTelemetry> = (watched.iter())
        .map(|b| InRunTelemetry::new(b.power_window_s()))
        .collect();
    let mut observe = |ph| {
        for (t, b) in in_run.iter_mut().zip(watched) {
            t.observe(*b, ph);
        }
    };
    let m = match &fixed {
        Some(sched) => {
            record.notes.push(sched.note());
            measure_fixed(prepared.as_mut(), sched, wseed, stop, &mut observe)?
        }
        None => measure_observed(prepared.as_mut(), &s.measure, wseed, stop, &mut observe)?,
    };
    record.telemetry_after = backend.telemetry();
    record.power_w = group_power(&in_run, other_processes);
    record_measurement(&mut record, w, m, in_run[0].median_sm_clock());
    Ok(record)
}

/// Fills the timed figures of a verified `record` of `w` from its measurement `m`: status,
/// throughput and bandwidth at the median time, the samples' statistics, the clock (read during
/// the samples where the backend could, else from the telemetry around them) and the figures
/// derived from it.
fn record_measurement(
    record: &mut ResultRecord,
    w: &crate::workload::Workload,
    m: Measurement,
    in_run_clock: Option<f64>,
) {
    record.effective_clock_mhz =
        in_run_clock.or_else(|| effective_clock(&record.telemetry_before, &record.telemetry_after));
    record.status = Status::Ok;
    let t = m.summary.median_s;
    record.throughput = Some(Throughput {
        value: w.rate(t),
        unit: ResultRecord::unit_for(w).into(),
    });
    record.bandwidth = Some(Throughput {
        value: w.bytes() as f64 / t,
        unit: "B/s".into(),
    });
    record.iterations_per_sample = m.iterations_per_sample;
    record.stop_reason = m.stop_reason;
    record.stats = Some(m.summary);
    record.fill_efficiency(in_run_clock);
}

/// Writes the inputs and output of result `id` to `--dump-dir`, where one is given. On a run of
/// several devices the names carry the devices (`….dev3.A.npy`), so that two failing GPUs do
/// not overwrite each other's evidence.
fn dump_evidence(
    entry: &PlanEntry,
    id: &str,
    s: &Settings,
    ins: &[Tensor],
    output: &Tensor,
    several_devices: bool,
) -> crate::Result<()> {
    let Some(dir) = &s.dump_dir else {
        return Ok(());
    };
    let name = if several_devices {
        let devs: Vec<String> = entry
            .placement
            .devices()
            .iter()
            .map(usize::to_string)
            .collect();
        format!("{id}.dev{}", devs.join("-"))
    } else {
        id.to_string()
    };
    dump(dir, &name, ins, output).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("writing dumps to {}: {e}", dir.display()),
        ))
    })
}

/// What a reader must know about how a user kernel's output was checked.
fn verification_note(v: &Verification, runs: usize) -> Option<String> {
    match v.method {
        VerifyMethod::Determinism if v.passed => Some(format!(
            "verified by determinism only: bit-identical over {runs} runs across buffer sets and poison patterns, not checked against a reference"
        )),
        VerifyMethod::Unverified => Some(
            "UNVERIFIED: the output was not checked (verify.method = \"none\"); the time is shown, the result never passes".into(),
        ),
        _ => None,
    }
}

pub use crate::report::result_id;

/// Shortest gap between two telemetry reads inside a measurement (an NVML query costs about a
/// millisecond; samples are 10 ms and up).
const TELEMETRY_INTERVAL_S: f64 = 0.25;

/// SM clocks and board power read while the measurement runs: after warm-up, every
/// [`TELEMETRY_INTERVAL_S`] between samples, and after the last sample. The before/after
/// snapshots alone read the clock of a device idling through host-side verification (hundreds
/// of MHz below its clock under load), which made `effective_clock_mhz` and every check built
/// on it wrong. Power counts only from `power_after_s` into the load
/// ([`Backend::power_window_s`]: a sensor that averages still holds the idle time before it).
struct InRunTelemetry {
    sm_clocks: Vec<f64>,
    power: Vec<f64>,
    started: std::time::Instant,
    power_after_s: f64,
    last: Option<std::time::Instant>,
}

impl InRunTelemetry {
    /// Starts the clock of the load now.
    fn new(power_after_s: f64) -> Self {
        InRunTelemetry {
            sm_clocks: Vec::new(),
            power: Vec::new(),
            started: std::time::Instant::now(),
            power_after_s,
            last: None,
        }
    }

    fn observe(&mut self, b: &dyn Backend, phase: Phase) {
        let due = match phase {
            Phase::Warm | Phase::Done => true,
            Phase::Sampled(_) => self
                .last
                .is_none_or(|t| t.elapsed().as_secs_f64() >= TELEMETRY_INTERVAL_S),
        };
        if !due {
            return;
        }
        let t = b.telemetry();
        self.sm_clocks
            .extend(t.as_ref().and_then(|t| t.sm_clock_mhz));
        if self.started.elapsed().as_secs_f64() >= self.power_after_s {
            self.power.extend(t.as_ref().and_then(|t| t.power_w));
        }
        self.last = Some(std::time::Instant::now());
    }

    fn median_sm_clock(&self) -> Option<f64> {
        (!self.sm_clocks.is_empty()).then(|| crate::stats::median(&self.sm_clocks))
    }

    /// The median power reading that covers load only; `None` for a measurement shorter than
    /// the window (no figure rather than one diluted by idle time).
    fn median_power(&self) -> Option<f64> {
        (!self.power.is_empty()).then(|| crate::stats::median(&self.power))
    }
}

/// The board power behind a result: the sum of its devices' medians, where each was read. A
/// member without a reading, or work whose other ranks run in other processes (a world of
/// several), leaves it unknown rather than the power of part of the devices.
fn group_power(members: &[InRunTelemetry], other_processes: bool) -> Option<f64> {
    if other_processes {
        return None;
    }
    members.iter().map(InRunTelemetry::median_power).sum()
}

/// The clock from the before/after snapshots: only where no in-run sample could be read.
fn effective_clock(a: &Option<Telemetry>, b: &Option<Telemetry>) -> Option<f64> {
    let xs: Vec<f64> = [a, b]
        .iter()
        .filter_map(|t| t.as_ref().and_then(|t| t.sm_clock_mhz))
        .collect();
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn dump(dir: &std::path::Path, id: &str, ins: &[Tensor], out: &Tensor) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let base = crate::npy::safe_name(id);
    for t in ins.iter().chain(std::iter::once(out)) {
        crate::npy::write(t, &dir.join(format!("{base}.{}.npy", t.name)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mock::MockBackend;
    use crate::backend::CachePolicy;
    use crate::dtype::DType;
    use crate::plan::Placement;
    use crate::workload::{MatmulSpec, Workload};

    fn quick_settings() -> Settings {
        let measure = MeasureConfig {
            warmup_s: 0.0,
            min_samples: 3,
            max_samples: 3,
            ..MeasureConfig::default()
        };
        Settings {
            measure,
            quiet: true,
            fixed_environment: true,
            ..Settings::default()
        }
    }

    #[test]
    fn a_multi_device_placement_is_scheduled_and_recorded() {
        let w = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let entry = |p: Placement| PlanEntry::new(&w, p, "mock");
        let plan = Plan {
            entries: vec![
                entry(Placement::set([0, 1]).unwrap()),
                entry(Placement::one(1)),
            ],
            ..Plan::default()
        };
        let backends: Vec<Box<dyn Backend>> =
            vec![Box::new(MockBackend::new()), Box::new(MockBackend::new())];
        let s = quick_settings();
        let mut report = new_report(&backends, &s);
        let stop = AtomicBool::new(false);
        let exports = Exports::default();
        let lost = LostDevices::default();
        execute_parallel(&plan, backends, &s, &exports, &mut report, &lost, &stop).unwrap();
        assert!(report.complete);
        let [set, one] = &report.results[..] else {
            panic!("{:?}", report.results)
        };
        assert_eq!(set.status, Status::Ok, "{:?}", set.error);
        assert_eq!(set.device, Placement::set([0, 1]).unwrap());
        assert_eq!(one.device, 1);
        assert!(set.notes.is_empty() && one.notes.is_empty());
        // A single device serialises as it always has: a number.
        let v = serde_json::to_value(one).unwrap();
        assert_eq!(v["device"], serde_json::json!(1));
        let v = serde_json::to_value(set).unwrap();
        assert_eq!(v["device"], serde_json::json!([0, 1]));
    }

    /// Plans `w` on `mock` alone, runs it, and returns its one result.
    fn run_alone(mock: MockBackend, w: Workload) -> ResultRecord {
        let backends: Vec<Box<dyn Backend>> = vec![Box::new(mock)];
        let select = crate::plan::ImplSelect::Default;
        let plan = crate::plan::build(&[w], &backends, &select, false, false).unwrap();
        let s = quick_settings();
        let mut report = new_report(&backends, &s);
        let stop = AtomicBool::new(false);
        let exports = Exports::default();
        execute(&plan, &backends, &s, &exports, &mut report, &stop).unwrap();
        report.results.remove(0)
    }

    #[test]
    fn a_small_rotation_is_recorded_as_warm_with_a_note() {
        // 16 sets of a 48 KiB matmul rotate through 768 KiB: under twice the mock's 1 MiB.
        let w = Workload::Matmul(MatmulSpec::new(64, 64, 64, DType::F32));
        let r = run_alone(MockBackend::with_timed_cache(), w);
        assert_eq!(r.status, Status::Ok, "{:?}", r.error);
        assert_eq!(r.cache, CachePolicy::Warm(16));
        assert_eq!(serde_json::to_value(&r).unwrap()["cache"], "warm(16)");
        let warm_note = r.notes.iter().any(|n| n.starts_with("warm(16): "));
        assert!(warm_note, "{:?}", r.notes);
    }

    #[test]
    fn a_sticky_driver_error_skips_the_rest_of_its_device_only() {
        let mm = |n| Workload::Matmul(MatmulSpec::new(n, n, n, DType::F32));
        let entry = |w: &Workload, d| PlanEntry::new(w, Placement::one(d), "mock");
        let (first, bad, after) = (mm(8), mm(16), mm(32));
        let mut entries = Vec::new();
        for w in [&first, &bad, &after] {
            entries.extend([entry(w, 0), entry(w, 1)]);
        }
        let plan = Plan {
            entries,
            ..Plan::default()
        };
        let s = quick_settings();
        let bad_name = bad.name();
        for parallel in [false, true] {
            // Device 0 faults on the middle workload; device 1 has no fault.
            let backends: Vec<Box<dyn Backend>> = vec![
                Box::new(MockBackend::with_device_fault(&bad_name)),
                Box::new(MockBackend::new()),
            ];
            let mut report = new_report(&backends, &s);
            let stop = AtomicBool::new(false);
            let exports = Exports::default();
            if parallel {
                let lost = LostDevices::default();
                execute_parallel(&plan, backends, &s, &exports, &mut report, &lost, &stop).unwrap();
            } else {
                execute(&plan, &backends, &s, &exports, &mut report, &stop).unwrap();
            }
            let on = |d: usize| -> Vec<&ResultRecord> {
                report.results.iter().filter(|r| r.device == d).collect()
            };
            let (zero, one) = (on(0), on(1));
            assert_eq!((zero.len(), one.len()), (3, 3));
            assert!(one.iter().all(|r| r.status == Status::Ok), "{one:?}");
            assert_eq!(zero[0].status, Status::Ok);
            let fault = zero[1].error.as_deref().unwrap();
            assert!(fault.contains("CUDA_ERROR_ILLEGAL_ADDRESS"), "{fault}");
            assert_eq!(zero[2].status, Status::Error);
            assert_eq!(
                zero[2].error.as_deref().unwrap(),
                format!("skipped: the device was lost after {}: {fault}", zero[1].id)
            );
        }
    }

    #[test]
    fn an_entry_short_of_memory_is_recorded_not_run() {
        // validate plans a GPU whose memory another process holds: its entry is a result
        // that did not run, with the shortfall, and the device is never asked to prepare it.
        let w = Workload::Matmul(MatmulSpec::new(64, 64, 64, DType::F32));
        let short = crate::plan::MemoryShortfall {
            index: 0,
            device: "Mock GPU".into(),
            need: crate::units::Bytes(48 << 30),
            have: crate::units::Bytes(1 << 30),
        };
        let plan = Plan {
            entries: vec![PlanEntry {
                short_of_memory: Some(short),
                ..PlanEntry::new(&w, Placement::one(0), "mock")
            }],
            ..Plan::default()
        };
        let backends: Vec<Box<dyn Backend>> = vec![Box::new(MockBackend::new())];
        let s = quick_settings();
        let mut report = new_report(&backends, &s);
        let stop = AtomicBool::new(false);
        execute(
            &plan,
            &backends,
            &s,
            &Exports::default(),
            &mut report,
            &stop,
        )
        .unwrap();
        let r = &report.results[0];
        assert_eq!(r.status, Status::Error);
        assert!(r.stats.is_none() && r.throughput.is_none());
        let e = r.error.as_deref().unwrap();
        assert!(e.contains("Mock GPU") && e.contains("needs"), "{e}");
    }

    #[test]
    fn power_counts_only_a_second_into_the_load() {
        let b = MockBackend::new();
        // NVML's reading averages the last second: earlier ones are left out, so a short
        // measurement has no power (and no per-watt figure) rather than a diluted one.
        let mut short = InRunTelemetry::new(1.0);
        short.observe(&b, Phase::Warm);
        short.observe(&b, Phase::Done);
        assert_eq!(short.median_power(), None);
        assert!(short.median_sm_clock().is_some(), "the clock has no window");
        let mut long = InRunTelemetry::new(0.0);
        long.observe(&b, Phase::Warm);
        long.observe(&b, Phase::Done);
        assert_eq!(long.median_power(), Some(100.0));
    }

    #[test]
    fn efficiency_is_throughput_per_watt_and_per_in_run_mhz() {
        let w = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let mut r = run_alone(MockBackend::new(), w);
        let rate = r.throughput.as_ref().unwrap().value;
        // The mock's sensor reads instantly: 100 W under load.
        assert_eq!(r.power_w, Some(100.0));
        let per_watt = r.per_watt.clone().expect("power was read");
        assert_eq!(per_watt.unit, "FLOP/s/W");
        assert!((per_watt.value - rate / 100.0).abs() <= 1e-9 * rate);
        let per_mhz = r
            .per_mhz
            .clone()
            .expect("the mock's clock is read in the run");
        assert_eq!(per_mhz.unit, "FLOP/s/MHz");
        assert!((per_mhz.value - rate / 1500.0).abs() <= 1e-9 * rate);
        r.power_w = Some(400.0);
        r.fill_efficiency(None);
        let per_watt = r.per_watt.clone().unwrap();
        assert_eq!(per_watt.unit, "FLOP/s/W");
        assert!((per_watt.value - rate / 400.0).abs() <= 1e-9 * rate);
        // Without a clock read during the samples, no per-MHz figure (the idle before/after
        // clock would flatter it).
        assert!(r.per_mhz.is_none());
    }

    #[test]
    fn the_effective_clock_is_read_under_load() {
        // Idle at 345 MHz (through verification), 1500 MHz while busy: the old before/after
        // mean said 922 MHz.
        let w = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let r = run_alone(MockBackend::with_idle_clock(345.0), w);
        let before = r.telemetry_before.as_ref().and_then(|t| t.sm_clock_mhz);
        assert_eq!(before, Some(345.0), "verification leaves the device idle");
        assert_eq!(r.effective_clock_mhz, Some(1500.0));
    }
}
