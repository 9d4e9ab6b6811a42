//! `gpuvet info`: the host, the devices and their state (and the report, where asked).

use super::Options;
use crate::backend::{self, Backend, DeviceInfo, Telemetry};
use crate::output::Output;
use crate::report::{DeviceTelemetry, Report};
use crate::runner;
use crate::units::Bytes;
use anyhow::{Context, Result};

pub fn info(opts: &Options) -> Result<i32> {
    let exports = opts.open_exports()?;
    let opened = backend::open(opts.backend, opts.threads)?;
    if let Some(n) = &opened.notice {
        opts.notice(n);
    }
    let s = opts.settings("info", opened.backends[0].kind());
    let mut report = runner::new_report(&opened.backends, &s);
    report.complete = true;
    let mut text = host_text(&report);
    for (i, (b, d)) in opened.backends.iter().zip(&report.devices).enumerate() {
        let state = b.telemetry();
        text.push_str(&device_text(b.as_ref(), d, state.as_ref())?);
        if let Some(state) = state {
            // The position in `devices` (a device that failed to open leaves a gap in the
            // ordinals, never in the list).
            report.telemetry.push(DeviceTelemetry { device: i, state });
        }
    }
    Output::new(exports.uses_stdout())
        .human(&text)
        .context("writing to stdout")?;
    let unwritten = exports.finish(&report, opts.quiet);
    Ok(super::run::fail_unwritten(0, &unwritten))
}

fn host_text(report: &Report) -> String {
    let h = &report.host;
    format!(
        "host      {} — {} ({} logical CPUs{}), {} RAM, {} (kernel {})\ngpuvet    {} ({})\n",
        h.hostname,
        h.cpu_model,
        h.logical_cpus,
        h.cpu_cores
            .map(|c| format!(", {c} cores"))
            .unwrap_or_default(),
        Bytes(h.memory_bytes),
        h.os,
        h.kernel,
        report.tool.version,
        report.tool.git_sha
    )
}

/// One device's block: its identity, then its details, peaks and telemetry.
fn device_text(b: &dyn Backend, d: &DeviceInfo, state: Option<&Telemetry>) -> Result<String> {
    let mut text = format!("\ndevice {}  [{}] {}\n", d.index, b.kind().name(), d.name);
    let mut row = |k: &str, v: String| text.push_str(&format!("  {k:<22} {v}\n"));
    let fields = [
        ("uuid", d.uuid.clone()),
        ("pci bus id", d.pci_bus_id.clone()),
        ("compute capability", d.compute_capability.clone()),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            row(k, v);
        }
    }
    if let Some(v) = d.multiprocessors {
        if b.is_gpu() {
            row("multiprocessors", v.to_string());
        } else if d.details.cpu.threads.is_none() {
            row("threads", v.to_string());
        }
    }
    let sizes = [
        ("memory", d.memory_bytes),
        ("last-level cache", d.last_level_cache_bytes),
    ];
    for (k, v) in sizes {
        if let Some(v) = v {
            row(k, Bytes(v).to_string());
        }
    }
    if let Some(v) = &d.driver_version {
        row("driver", v.clone());
    }
    for (k, v) in d.details.entries() {
        row(&k, v);
    }
    if let Some(p) = &d.peaks {
        let mut parts: Vec<String> = crate::dtype::by_name::entries(&p.flops)
            .into_iter()
            .map(|(k, v)| format!("{k} {}", crate::units::si(v, k.rate_unit())))
            .collect();
        if let Some(bw) = p.memory_bandwidth {
            parts.push(format!("memory {}", crate::units::si(bw, "B/s")));
        }
        row(
            "datasheet peaks",
            format!("{} ({})", parts.join(", "), p.source),
        );
    }
    if let Some(t) = state {
        row("telemetry", t.describe(b.is_gpu()));
    }
    Ok(text)
}
