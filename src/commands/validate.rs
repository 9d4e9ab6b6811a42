//! `gpuvet validate`: run the validation suite on every GPU at once (and the soak's stress
//! half), judge the node, print the table and the verdict, write the verdict file.

use super::{plot_stress, stop_on_ctrlc, Options};
use crate::backend::{self, Backend};
use crate::dtype::DType;
use crate::export::{Exporter, Exports, PrettyJson};
use crate::output::Output;
use crate::plan::{self, Plan};
use crate::report::Report;
use crate::runner::{self, Settings};
use crate::validate::{JudgeInputs, JudgeOptions, MemoryHeld};
use crate::workload::Workload;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What `validate` does beyond the common options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidateOptions {
    pub judge: JudgeOptions,
    /// Where the node verdict goes: a path, or `-` for stdout.
    pub verdict: Option<String>,
    /// Run on the CPU or mock backend (testing the pipeline without a GPU).
    pub allow_cpu: bool,
}

pub fn validate(opts: &Options, a: &ValidateOptions) -> Result<i32> {
    let exports = opts.open_exports()?;
    let extra_stdout = opts.check_fleet_targets(&exports, &[a.verdict.as_deref()])?;
    let price = opts.price_table()?;
    let backends = open(opts, a.allow_cpu)?;
    let workloads = suite_of(&backends, a.judge.is_quick());
    // Verdicts rest on the vendor libraries, never on gpuvet's own kernels under development.
    // A GPU short of free memory (another process holds it) is judged, not refused.
    let plan = plan::build_judging(&workloads, &backends, &[])?;
    let name_of = |i: usize| backends[i].device().name.clone();
    for s in plan.notices(name_of) {
        opts.notice(&format!("skipped: {s}"));
    }
    let mut held = BTreeMap::new();
    let short = add_memory_held(&mut held, &plan);
    notice_held(opts, &held, &short, &backends);
    // A soak spends half its time on the suite and half on a stress run with checksums and
    // per-second telemetry.
    let soak = a.judge.duration.map(|d| d / 2);
    let settings = soak_settings(opts, backends[0].kind(), &plan, backends.len(), soak);
    let stop = stop_on_ctrlc();
    let mut report = runner::new_report(&backends, &settings);
    report.config.price = price.map(|p| p.for_devices(&report.devices));
    report.not_run = plan.not_run.clone();
    // The links (host transfers, peer copies, all-reduce) run after the suite, one at a time.
    let devices: Vec<_> = backends.iter().map(|b| b.device().clone()).collect();
    let links = crate::validate::link_suite(&devices, a.judge.is_quick());
    if !opts.quiet {
        let link_results = plan::build_judging(&links, &backends, &[])?.entries.len();
        let said = announcement(a, backends.len(), plan.entries.len(), link_results);
        crate::output::write_stderr(&format!("{said}\n"));
    }
    // One table of lost devices for the whole process: a GPU lost in the suite is not stressed.
    let lost = runner::LostDevices::default();
    let backends = runner::execute_parallel(
        &plan,
        backends,
        &settings,
        &exports,
        &mut report,
        &lost,
        &stop,
    )?;
    // The links, one result at a time, into the same report.
    if !stop.load(Ordering::Relaxed) {
        let link_plan = plan::build_judging(&links, &backends, &lost.devices())?;
        for s in link_plan.notices(|i| backends[i].device().name.clone()) {
            opts.notice(&format!("skipped: {s}"));
        }
        let short = add_memory_held(&mut held, &link_plan);
        report.not_run.extend(link_plan.not_run.iter().cloned());
        notice_held(opts, &held, &short, &backends);
        let mut link_settings = settings.clone();
        link_settings.measure.max_time_s = link_settings.measure.max_time_s.min(1.0);
        runner::execute_sharing(
            &link_plan,
            &backends,
            &link_settings,
            &exports,
            &mut report,
            &lost,
            &stop,
        )?;
    }
    let (mut inputs, backends) = match soak {
        Some(half) if !stop.load(Ordering::Relaxed) => {
            let held: Vec<usize> = held.keys().copied().collect();
            soak_stress(opts, backends, half, &lost, &held, &stop)?
        }
        _ => (JudgeInputs::default(), backends),
    };
    if stop.load(Ordering::Relaxed) {
        return interrupted(opts, a, &exports, &mut report);
    }
    inputs.memory_held = held;
    // ECC counters, remapped rows and the PCIe link are judged as they are after the load.
    inputs.state_after = backends
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.current_state().map(|d| (i, d)))
        .collect();
    let verdict = crate::validate::judge_with(&report, &a.judge, &inputs);
    let output = Output::new(extra_stdout || exports.uses_stdout());
    show(output, &report, &verdict)?;
    let mut unwritten = exports.finish(&report, opts.quiet);
    if let Some(target) = a.verdict.as_deref() {
        PrettyJson
            .write(target, &verdict)
            .with_context(|| format!("writing the verdict to {target}"))?;
    }
    if let Err(e) = write_fleet_formats(opts, a, &report, &verdict) {
        unwritten.push(format!("{e:#}"));
    }
    Ok(super::run::fail_unwritten(verdict.exit_code, &unwritten))
}

/// The end of a run stopped by Ctrl-C: no verdict (and no stale one left behind), the files
/// written with what finished, exit 130.
fn interrupted(
    opts: &Options,
    a: &ValidateOptions,
    exports: &Exports,
    report: &mut Report,
) -> Result<i32> {
    crate::term::warn("interrupted: no verdict; the files hold the results that finished");
    // Stopped in the soak's stress half, the report's last step had finished whole.
    report.complete = false;
    // The previous round's verdict would pass for this one's (a DaemonSet writes one path
    // every round, and aggregate reads it).
    if let Some(p) = a.verdict.as_deref().filter(|t| *t != "-") {
        if crate::output::remove_stale(Path::new(p)) {
            crate::term::warn(&format!(
                "removed the previous verdict {p}: this run reached none"
            ));
        }
    }
    let mut unwritten = exports.finish(report, opts.quiet);
    if let Err(e) = write_interrupted_formats(opts, report) {
        unwritten.push(format!("{e:#}"));
    }
    Ok(super::run::fail_unwritten(130, &unwritten))
}

/// Says, before they run, which GPUs of `new` are short of memory and what will not run for it.
fn notice_held(
    opts: &Options,
    held: &BTreeMap<usize, MemoryHeld>,
    new: &[usize],
    backends: &[Box<dyn Backend>],
) {
    for (&i, h) in new.iter().filter_map(|i| held.get_key_value(i)) {
        // Named as every verdict names it: by its index on the node.
        let gpu = backends.get(i).map_or(i, |b| b.device().index);
        opts.notice(&format!(
            "GPU {gpu}: {} free where the suite needs {}: another process holds its memory; \
             {} result(s) will not run",
            h.have,
            h.need,
            h.results.len()
        ));
    }
}

/// Adds to `held` the devices `plan` found short of free memory, with the results it records
/// as not run (a pair's or a group's under the member that is short). Returns the devices not
/// in `held` before.
fn add_memory_held(held: &mut BTreeMap<usize, MemoryHeld>, plan: &Plan) -> Vec<usize> {
    let mut new = Vec::new();
    for e in &plan.entries {
        let Some(short) = e.short_of_memory.as_ref() else {
            continue;
        };
        let h = held.entry(short.index).or_insert_with(|| {
            new.push(short.index);
            MemoryHeld {
                have: short.have,
                need: short.need,
                results: Default::default(),
            }
        });
        h.need = h.need.max(short.need);
        h.results.insert((
            crate::report::result_id(&e.workload, &e.implementation),
            e.placement.devices().to_vec(),
        ));
    }
    new
}

/// The line that opens a validation on stderr: how many devices, results each, the link
/// results after them, and the soak.
fn announcement(a: &ValidateOptions, devices: usize, entries: usize, links: usize) -> String {
    let soak = a.judge.duration.map(|d| {
        format!(
            ", soak of {} (half suite, half stress)",
            humantime::format_duration(d)
        )
    });
    format!(
        "validating {devices} device(s): {} results each, then {links} link result(s){}",
        entries.div_ceil(devices),
        soak.unwrap_or_default()
    )
}

/// `--prometheus` (measurements and verdicts) and `--junit` (a testcase per check per GPU).
fn write_fleet_formats(
    opts: &Options,
    a: &ValidateOptions,
    report: &Report,
    verdict: &crate::validate::NodeVerdict,
) -> Result<()> {
    if let Some(target) = &opts.prometheus {
        let run = crate::prometheus::ValidateRun { report, verdict };
        crate::prometheus::Prometheus
            .write(target, &run)
            .with_context(|| format!("writing Prometheus metrics to {target}"))?;
    }
    if let Some(target) = &opts.junit {
        let junit = crate::junit::JunitValidate {
            fail_on_warn: a.judge.fail_on_warn,
        };
        junit
            .write(target, verdict)
            .with_context(|| format!("writing JUnit XML to {target}"))?;
    }
    Ok(())
}

/// The Prometheus and JUnit files of a validate stopped before its verdict: what finished with
/// `gpuvet_run_complete 0`, and one errored JUnit case. Left alone, both files would keep the
/// previous round's verdict (a DaemonSet writes one path every round; a CI job killed by its
/// time limit would read the last green file).
fn write_interrupted_formats(opts: &Options, report: &Report) -> Result<()> {
    if let Some(target) = &opts.prometheus {
        crate::prometheus::Prometheus
            .write(target, report)
            .with_context(|| format!("writing Prometheus metrics to {target}"))?;
    }
    if let Some(target) = &opts.junit {
        let host = report.host.hostname.as_str();
        crate::junit::JunitInterrupted {
            host,
            command: "validate",
            judgement: "verdict",
        }
        .write(target, &())
        .with_context(|| format!("writing JUnit XML to {target}"))?;
    }
    Ok(())
}

/// validate judges NVIDIA GPUs; the CPU and mock backends only with `allow_cpu` (testing).
fn open(opts: &Options, allow_cpu: bool) -> Result<Vec<Box<dyn Backend>>> {
    let testing = opts.backend.is_stand_in();
    if testing && !allow_cpu {
        bail!(
            "validate judges NVIDIA GPUs; --backend {} is only for testing, with --allow-cpu",
            opts.backend.name()
        );
    }
    backend::open_gpus(opts.backend, opts.threads).map_err(|e| {
        if testing {
            e.into()
        } else {
            anyhow::anyhow!("validate needs an NVIDIA GPU: {e}")
        }
    })
}

/// The union of every device's suite, in order; devices skip what they cannot run.
fn suite_of(backends: &[Box<dyn Backend>], quick: bool) -> Vec<Workload> {
    let mut workloads: Vec<Workload> = Vec::new();
    for b in backends {
        for w in crate::validate::suite(b.device(), quick) {
            if !workloads.contains(&w) {
                workloads.push(w);
            }
        }
    }
    workloads
}

/// The runner's settings; in a soak the suite's half is spread over its results and noise
/// never ends a result early.
fn soak_settings(
    opts: &Options,
    backend: crate::backend::BackendKind,
    plan: &Plan,
    devices: usize,
    soak: Option<Duration>,
) -> Settings {
    let mut settings = opts.settings("validate", backend);
    if let Some(half) = soak {
        let per_device = plan.entries.len().div_ceil(devices);
        let per_result = half.as_secs_f64() / per_device.max(1) as f64;
        settings.measure.max_time_s = per_result;
        settings.measure.target_rel_noise = 0.0;
        // Samples grow with the soak instead of their number: about SOAK_SAMPLES per result,
        // each a longer batch, so an 8-hour soak keeps the GPU as busy as a 10-minute one
        // without millions of samples in the report (every sample is written to the JSON).
        settings.measure.min_sample_time_s = settings
            .measure
            .min_sample_time_s
            .max(per_result / SOAK_SAMPLES as f64);
        // A backstop for a backend whose wall clock does not follow its timings (the mock's
        // samples take no time): past this the result ends early, as `max-samples`.
        settings.measure.max_samples = SOAK_MAX_SAMPLES;
    }
    settings
}

/// Samples a soak result aims at; their batches lengthen with `--duration`.
const SOAK_SAMPLES: usize = 1_000;

/// Samples a soak result never exceeds (10 × [`SOAK_SAMPLES`]).
const SOAK_MAX_SAMPLES: usize = 10 * SOAK_SAMPLES;

/// The soak's stress half: checksums and telemetry for the judge.
fn soak_stress(
    opts: &Options,
    backends: Vec<Box<dyn Backend>>,
    half: Duration,
    lost: &runner::LostDevices,
    held: &[usize],
    stop: &AtomicBool,
) -> Result<(JudgeInputs, Vec<Box<dyn Backend>>)> {
    let size = backends[0].stress_size(crate::backend::Sustained::Soak);
    let dtype = if crate::validate::supported_dtypes(backends[0].device()).contains(&DType::Bf16) {
        DType::Bf16
    } else {
        DType::F16
    };
    let cfg = crate::stress::StressConfig::matmul(size, dtype, half, opts.seed);
    let (s, b) = crate::stress::run_keeping(backends, &cfg, lost, held, stop)?;
    plot_stress(opts, &s)?;
    Ok((JudgeInputs::from_stress(&s), b))
}

/// The results table and the verdict, where human text goes.
fn show(output: Output, report: &Report, verdict: &crate::validate::NodeVerdict) -> Result<()> {
    let color = output.human_color();
    let table = crate::term::results_table(report, color);
    output
        .human(&format!("{table}\n{}", verdict.render(color)))
        .context("writing to stdout")
}
