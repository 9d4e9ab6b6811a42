//! `gpuvet stress`: sustained matmul load on every device, per-second timeline, checksums.

use super::{plot_stress, stop_on_ctrlc, Options};
use crate::backend::{self, BackendChoice};
use crate::dtype::DType;
use crate::export::Exporter;
use crate::output::Output;
use crate::plan::{self, ImplSelect};
use crate::stress::StressReport;
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// What `stress` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StressOptions {
    pub duration: Duration,
    pub dtype: DType,
    /// Square matmul size; `None` = the backend's default.
    pub size: Option<u64>,
    /// Seconds between output checksums.
    pub check_interval: f64,
    /// Testing only: flip a bit in the output of device D at checksum N.
    pub plant_fault: Option<(usize, u64)>,
}

pub fn stress(opts: &Options, a: &StressOptions) -> Result<i32> {
    // A stress run is a timeline, not a table of results: never ignore a format asked for.
    if opts.csv.is_some() || opts.markdown.is_some() || !opts.export.is_empty() {
        bail!("stress writes JSON only (--json PATH|-) and charts (--plot DIR)");
    }
    let exports = opts.open_exports()?;
    let prometheus_stdout = opts.check_fleet_targets(&exports, &[])?;
    if !a.check_interval.is_finite() || a.check_interval <= 0.0 {
        bail!("--check-interval must be a positive number of seconds");
    }
    let backends = open(opts)?;
    if let Some((d, _)) = a.plant_fault.filter(|&(d, _)| d >= backends.len()) {
        bail!(
            "--plant-fault {d}:…: there is no device {d} (this run has {})",
            backends.len()
        );
    }
    let size = a
        .size
        .unwrap_or_else(|| backends[0].stress_size(crate::backend::Sustained::Stress));
    let mut cfg = crate::stress::StressConfig::matmul(size, a.dtype, a.duration, opts.seed);
    cfg.check_interval_s = a.check_interval;
    cfg.plant_fault = a.plant_fault;
    plan::build(
        std::slice::from_ref(&cfg.workload),
        &backends,
        &ImplSelect::Default,
        true,
        false,
    )?;
    let stop = stop_on_ctrlc();
    if !opts.quiet {
        crate::output::write_stderr(&format!(
            "stressing {} device(s) with {} for {} (Ctrl-C to stop)\n",
            backends.len(),
            cfg.workload.name(),
            humantime::format_duration(a.duration)
        ));
    }
    let devices: Vec<crate::backend::DeviceInfo> =
        backends.iter().map(|b| b.device().clone()).collect();
    let report = crate::stress::run(backends, &cfg, &stop)?;
    Output::new(opts.json.as_deref() == Some("-") || prometheus_stdout)
        .human(&summary(&report))
        .context("writing to stdout")?;
    if let Some(target) = opts.json.as_deref() {
        crate::export::PrettyJson.write(target, &report)?;
    }
    if let Some(target) = &opts.prometheus {
        let host = crate::env::HostInfo::capture().hostname;
        let run = crate::prometheus::StressRun {
            report: &report,
            host: &host,
            devices: &devices,
        };
        crate::prometheus::Prometheus
            .write(target, &run)
            .with_context(|| format!("writing Prometheus metrics to {target}"))?;
    }
    plot_stress(opts, &report)?;
    if report.interrupted {
        return Ok(130);
    }
    Ok(report.exit_code())
}

/// Stress is about GPUs: `auto` never falls back to the CPU here.
fn open(opts: &Options) -> Result<Vec<Box<dyn crate::backend::Backend>>> {
    backend::open_gpus(opts.backend, opts.threads).map_err(|e| match opts.backend {
        BackendChoice::Auto => anyhow::anyhow!(
            "stress needs an NVIDIA GPU: {e}. Use --backend cpu to exercise it on the CPU"
        ),
        _ => e.into(),
    })
}

/// One line per device, then the verdict and its reasons.
fn summary(report: &StressReport) -> String {
    let mut text = String::new();
    // OP/s for int8, FLOP/s otherwise.
    let unit = crate::report::ResultRecord::unit_for(&report.workload);
    for d in &report.devices {
        // Power and work per watt where the device's power was read under load.
        // A wrong first output has no figure; the line ends saying so.
        let rate = d
            .median_throughput
            .map_or_else(|| "—".to_string(), |r| crate::units::si(r, unit));
        let power = d
            .median_power_w
            .filter(|&w| w > 0.0)
            .zip(d.median_throughput)
            .map(|(w, r)| {
                format!(
                    " at {w:.0} W ({})",
                    crate::units::si(r / w, &format!("{unit}/W"))
                )
            })
            .unwrap_or_default();
        text.push_str(&format!(
            "device {} {}: {} iterations, {} checksums, median {}{power}, {}\n",
            d.device,
            d.name,
            d.iterations,
            d.checks,
            rate,
            match (&d.error, d.mismatches.len()) {
                (Some(e), _) => format!("ERROR: {e}"),
                // Only an interrupted run can end before its first comparison.
                (None, 0) if d.verified && d.checks == 0 =>
                    "stopped before any repeat was compared".to_string(),
                (None, 0) if d.verified => "outputs identical".to_string(),
                (None, 0) => "first output WRONG".to_string(),
                (None, n) => format!("{n} MISMATCHES"),
            }
        ));
    }
    text.push_str(&format!("verdict: {}\n", report.verdict));
    if report.verdict == crate::stress::StressVerdict::Incomplete {
        text.push_str("  - interrupted before the run's end, with no fault found until then\n");
    }
    for r in &report.reasons {
        text.push_str(&format!("  - {r}\n"));
    }
    text
}
