//! Executes a plan: inputs → prepare → verify → measure → record, one entry at a time.
//!
//! A result's time is taken only after its output passed verification; a wrong output is
//! recorded with its error and no throughput. Exports are rewritten after every result, so an
//! interrupted run keeps what finished.

use crate::backend::{Backend, PrepareOptions, Telemetry};
use crate::env::{HostInfo, ToolInfo};
use crate::export::Exports;
use crate::inputs;
use crate::measure::{measure, MeasureConfig, StopReason};
use crate::plan::{Plan, PlanEntry};
use crate::report::{Report, ResultRecord, RunConfig, Status, Throughput, SCHEMA_VERSION};
use crate::tensor::Tensor;
use crate::verify::{verify, Verification};
use crate::workload::{Metric, Workload};
use crate::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Everything about a run that is not the plan itself.
#[derive(Debug, Clone)]
pub struct Settings {
    pub measure: MeasureConfig,
    pub seed: u64,
    pub hot: bool,
    pub threads: usize,
    pub dump_dir: Option<PathBuf>,
    pub dump_all: bool,
    pub quiet: bool,
    pub command: String,
    pub backend: String,
    /// Fixed host and start time, for reproducible snapshots (mock runs in tests).
    pub fixed_environment: bool,
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
    let kernel_hash = backends
        .iter()
        .any(|b| b.kind() == crate::backend::BackendKind::Cuda)
        .then(crate::backend::cuda::kernel_hash)
        .flatten();
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
        },
        started_at,
        complete: false,
        results: Vec::new(),
    }
}

/// Runs every entry of `plan`, appending to `report` and rewriting `exports` after each.
/// Returns when done or when `stop` is set (Ctrl-C).
pub fn execute(
    plan: &Plan,
    backends: &[Box<dyn Backend>],
    settings: &Settings,
    exports: &Exports,
    report: &mut Report,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    exports.write_files(report)?;
    let pb = crate::term::progress(plan.entries.len() as u64, settings.quiet);
    // Inputs are generated once per workload and shared by its implementations and devices.
    let mut cached: Option<(String, Vec<Tensor>)> = None;
    for entry in &plan.entries {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        pb.set_message(format!(
            "{} / {}",
            entry.workload.name(),
            entry.implementation
        ));
        let name = entry.workload.name();
        if cached.as_ref().map(|c| &c.0) != Some(&name) {
            drop(cached.take()); // free the previous inputs before making new ones
            cached = Some((
                name.clone(),
                inputs::generate(&entry.workload, settings.seed),
            ));
        }
        let ins = &cached.as_ref().expect("inputs just generated").1;
        let backend = backends[entry.device].as_ref();
        match run_one(entry, backend, ins, settings, stop) {
            Ok(r) => report.push(r),
            Err(Error::Interrupted) => break,
            Err(e) => report.push(error_record(entry, backend, &e)),
        }
        exports.write_files(report)?;
        pb.inc(1);
    }
    pb.finish_and_clear();
    report.complete = !stop.load(Ordering::Relaxed);
    exports.write_files(report)?;
    Ok(())
}

fn run_one(
    entry: &PlanEntry,
    backend: &dyn Backend,
    ins: &[Tensor],
    s: &Settings,
    stop: &AtomicBool,
) -> crate::Result<ResultRecord> {
    let w = &entry.workload;
    let opts = PrepareOptions {
        buffer_sets: entry.buffer_sets,
        hot: s.hot,
    };
    let mut prepared = backend.prepare(w, &entry.implementation, ins, opts)?;
    let output = prepared.run_verify()?;
    let wseed = inputs::workload_seed(s.seed, w);
    let verification = verify(w, ins, &output, wseed);
    let id = result_id(w, &entry.implementation);
    if let Some(dir) = &s.dump_dir {
        if s.dump_all || !verification.passed {
            dump(dir, &id, ins, &output).map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("writing dumps to {}: {e}", dir.display()),
                ))
            })?;
        }
    }
    let mut record = ResultRecord {
        id,
        workload: w.clone(),
        backend: backend.kind(),
        device: entry.device,
        implementation: entry.implementation.clone(),
        dtype: w.dtype(),
        compute_dtype: prepared.compute_dtype(),
        status: Status::Ok,
        verification,
        stats: None,
        throughput: None,
        bandwidth: None,
        peak_fraction: None,
        flops: w.flops(),
        bytes: w.bytes(),
        iterations_per_sample: 0,
        cache: prepared.cache_policy(),
        // Set below: by the measurement, or when verification fails.
        stop_reason: StopReason::Error,
        telemetry_before: None,
        telemetry_after: None,
        effective_clock_mhz: None,
        error: None,
        notes: prepared.notes(),
    };
    if !record.verification.passed {
        // A wrong output is never timed: its speed means nothing.
        record.status = Status::VerificationFailed;
        record.stop_reason = StopReason::VerificationFailed;
        return Ok(record);
    }
    record.telemetry_before = backend.telemetry();
    let m = measure(prepared.as_mut(), &s.measure, wseed, stop)?;
    record.telemetry_after = backend.telemetry();
    record.effective_clock_mhz = effective_clock(&record.telemetry_before, &record.telemetry_after);
    let t = m.summary.median_s;
    let unit = ResultRecord::unit_for(w);
    let rate = match w.metric() {
        Metric::Flops => w.flops() / t,
        Metric::Bytes => w.bytes() as f64 / t,
    };
    record.throughput = Some(Throughput {
        value: rate,
        unit: unit.into(),
    });
    record.bandwidth = Some(Throughput {
        value: w.bytes() as f64 / t,
        unit: "B/s".into(),
    });
    record.iterations_per_sample = m.iterations_per_sample;
    record.stop_reason = m.stop_reason;
    record.stats = Some(m.summary);
    Ok(record)
}

/// `<workload name>/<implementation>`: what comparisons match results by.
pub fn result_id(w: &Workload, imp: &str) -> String {
    format!("{}/{imp}", w.name())
}

fn effective_clock(a: &Option<Telemetry>, b: &Option<Telemetry>) -> Option<f64> {
    let xs: Vec<f64> = [a, b]
        .iter()
        .filter_map(|t| t.as_ref().and_then(|t| t.sm_clock_mhz))
        .collect();
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn error_record(entry: &PlanEntry, backend: &dyn Backend, e: &Error) -> ResultRecord {
    let w = &entry.workload;
    ResultRecord {
        id: result_id(w, &entry.implementation),
        workload: w.clone(),
        backend: backend.kind(),
        device: entry.device,
        implementation: entry.implementation.clone(),
        dtype: w.dtype(),
        compute_dtype: String::new(),
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
        cache: String::new(),
        stop_reason: StopReason::Error,
        telemetry_before: None,
        telemetry_after: None,
        effective_clock_mhz: None,
        error: Some(e.to_string()),
        notes: Vec::new(),
    }
}

fn dump(dir: &std::path::Path, id: &str, ins: &[Tensor], out: &Tensor) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let base = crate::npy::safe_name(id);
    for t in ins.iter().chain(std::iter::once(out)) {
        crate::npy::write(t, &dir.join(format!("{base}.{}.npy", t.name)))?;
    }
    Ok(())
}

/// Runs `plan` on every device at the same time: one worker thread owns each backend (its own
/// context and stream), and every workload starts on all devices together, so peers are
/// compared under the same conditions. Inputs are generated once per workload and shared.
/// Results are appended in plan order. Returns the backends for later use (telemetry).
pub fn execute_parallel(
    plan: &Plan,
    backends: Vec<Box<dyn Backend>>,
    settings: &Settings,
    exports: &Exports,
    report: &mut Report,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<Box<dyn Backend>>> {
    use std::sync::mpsc;
    use std::sync::Arc;
    type Job = (usize, PlanEntry, Arc<Vec<Tensor>>);
    exports.write_files(report)?;
    let pb = crate::term::progress(plan.entries.len() as u64, settings.quiet);
    let returned = std::thread::scope(|s| -> anyhow::Result<Vec<Box<dyn Backend>>> {
        let (done_tx, done_rx) = mpsc::channel::<(usize, ResultRecord, bool)>();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for backend in backends {
            let (tx, rx) = mpsc::channel::<Job>();
            let done = done_tx.clone();
            senders.push(tx);
            handles.push(s.spawn(move || {
                for (slot, entry, ins) in rx {
                    let b = backend.as_ref();
                    let (rec, interrupted) = match run_one(&entry, b, &ins, settings, stop) {
                        Ok(r) => (r, false),
                        Err(Error::Interrupted) => {
                            (error_record(&entry, b, &Error::Interrupted), true)
                        }
                        Err(e) => (error_record(&entry, b, &e), false),
                    };
                    if done.send((slot, rec, interrupted)).is_err() {
                        break;
                    }
                }
                backend
            }));
        }
        drop(done_tx);
        // Entries of one workload are consecutive in the plan (workloads outer, devices inner).
        let mut i = 0;
        while i < plan.entries.len() && !stop.load(Ordering::Relaxed) {
            let name = plan.entries[i].workload.name();
            let end = plan.entries[i..]
                .iter()
                .position(|e| e.workload.name() != name)
                .map_or(plan.entries.len(), |p| i + p);
            pb.set_message(name.clone());
            let ins = Arc::new(inputs::generate(&plan.entries[i].workload, settings.seed));
            for (slot, entry) in plan.entries[i..end].iter().enumerate() {
                senders[entry.device].send((slot, entry.clone(), ins.clone()))?;
            }
            let mut got: Vec<Option<ResultRecord>> = vec![None; end - i];
            for _ in i..end {
                let (slot, rec, interrupted) = done_rx.recv()?;
                if !interrupted {
                    got[slot] = Some(rec);
                }
                pb.inc(1);
            }
            for r in got.into_iter().flatten() {
                report.push(r);
            }
            exports.write_files(report)?;
            i = end;
        }
        drop(senders);
        Ok(handles
            .into_iter()
            .map(|h| h.join().expect("device worker panicked"))
            .collect())
    })?;
    pb.finish_and_clear();
    report.complete = !stop.load(Ordering::Relaxed);
    exports.write_files(report)?;
    Ok(returned)
}
