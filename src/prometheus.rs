//! Prometheus metrics in the text exposition format, for node-exporter's textfile collector
//! (`--prometheus PATH`): node-exporter reads every `*.prom` file of its
//! `--collector.textfile.directory` on each scrape, so the file is replaced atomically
//! ([`crate::output::write_atomic`]: a temp file in the same directory, then a rename) and a
//! scrape never sees half of it.
//!
//! Every metric is a gauge with HELP and TYPE lines, named in base units (seconds, bytes, hertz,
//! celsius, watts; ratios 0–1) as the Prometheus naming conventions ask, and without client
//! timestamps (the textfile collector refuses them). Every series also carries `command` (the
//! gpuvet command that wrote the file, as `config.command` names it: `validate`, `run`,
//! `stress`, `bench matmul`, ...), so the files of
//! different commands in one collector directory never define the same series. The families,
//! by what they describe:
//!
//! | family | labels | what |
//! |---|---|---|
//! | `gpuvet_build_info` | version, git_sha | always 1 |
//! | `gpuvet_last_run_timestamp_seconds`, `gpuvet_run_complete` | host, command | when the file was written; 0 when the run was interrupted |
//! | `gpuvet_result_throughput_{flop,op,bytes}_per_second` | host, gpu, uuid, sku, workload, kind, dtype, implementation | median throughput of a verified result |
//! | `gpuvet_result_peak_ratio` | same | throughput / datasheet peak (0–1) |
//! | `gpuvet_result_median_seconds` | same | median time of one iteration |
//! | `gpuvet_result_verified` | same | 1 when the output matched the f64 reference |
//! | `gpuvet_result_effective_sm_clock_hertz` | same | SM clock during the samples (`gpuvet_result_cpu_clock_hertz` on the CPU backend: a core's clock, not an SM's) |
//! | `gpuvet_result_{flop,op,bytes}_per_usd` | same | work one dollar buys at this rate (`--price-per-hour`) |
//! | `gpuvet_gpu_{sm,memory}_clock_hertz`, `gpuvet_gpu_temperature_celsius`, `gpuvet_gpu_power_watts`, `gpuvet_gpu_power_limit_watts` | host, gpu, uuid, sku | last telemetry sample of the run (a result on several GPUs counts for its lead) |
//! | `gpuvet_cpu_clock_hertz` | host, gpu, uuid, sku | the CPU backend's mean core clock at the last sample, instead of an SM clock |
//! | `gpuvet_gpu_temperature_max_celsius` | host, gpu, uuid, sku | hottest sample of the run |
//! | `gpuvet_gpu_throttle_reason` | host, gpu, uuid, sku, reason | 1 when the reason was active in any sample of the run, 0 for the others |
//! | `gpuvet_gpu_price_usd_per_hour` | host, gpu, uuid, sku | the price the results were priced at |
//! | `gpuvet_node_verdict` | host, verdict | validate: 1 for the node's verdict (pass, warn, fail), 0 for the others |
//! | `gpuvet_gpu_verdict` | host, gpu, uuid, sku, verdict | validate: the same per GPU |
//! | `gpuvet_gpu_check_verdict` | host, gpu, uuid, sku, check, verdict | validate: the same per check |
//! | `gpuvet_gpu_expected_ratio` | host, gpu, uuid, sku, test | validate: figure / what a healthy card of the SKU reaches |
//! | `gpuvet_stress_*` | host, gpu, uuid, sku, workload, dtype | stress: median throughput, iterations, checksum mismatches, first output verified; `gpuvet_stress_verdict{host,verdict}` |

use crate::backend::{DeviceInfo, Telemetry, ThrottleReason};
use crate::export::Exporter;
use crate::report::{Report, ResultRecord};
use crate::stress::{StressReport, StressVerdict};
use crate::validate::{NodeVerdict, Verdict};
use crate::workload::Workload;
use std::collections::BTreeSet;

/// The Prometheus text format, as an [`Exporter`] of a report, a validation and a stress run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prometheus;

/// A validation run: its measurements and its verdict.
pub struct ValidateRun<'a> {
    pub report: &'a Report,
    pub verdict: &'a NodeVerdict,
}

/// A stress run, with what the stress report itself does not carry: the host and the devices.
pub struct StressRun<'a> {
    pub report: &'a StressReport,
    pub host: &'a str,
    pub devices: &'a [DeviceInfo],
}

impl Exporter<Report> for Prometheus {
    fn render(&self, report: &Report) -> anyhow::Result<String> {
        let mut f = TextFile::of_command(&report.config.command);
        let gpus = Gpu::of_report(report, None);
        run_metrics(&mut f, &report.host.hostname, report, report.complete);
        report_metrics(&mut f, report, &gpus);
        Ok(f.render())
    }
}

impl Exporter<ValidateRun<'_>> for Prometheus {
    fn render(&self, v: &ValidateRun<'_>) -> anyhow::Result<String> {
        let mut f = TextFile::of_command(&v.report.config.command);
        let gpus = Gpu::of_report(v.report, Some(v.verdict));
        run_metrics(&mut f, &v.report.host.hostname, v.report, v.report.complete);
        report_metrics(&mut f, v.report, &gpus);
        verdict_metrics(&mut f, v.verdict, &gpus);
        Ok(f.render())
    }
}

impl Exporter<StressRun<'_>> for Prometheus {
    fn render(&self, s: &StressRun<'_>) -> anyhow::Result<String> {
        let mut f = TextFile::of_command("stress");
        let host = s.host.to_string();
        let tool = crate::env::ToolInfo::current();
        build_info(&mut f, &tool.version, &tool.git_sha);
        let run = [("host", host.clone()), ("command", "stress".to_string())];
        f.set(LAST_RUN, LAST_RUN_HELP, &run, unix_now());
        f.set(
            COMPLETE,
            COMPLETE_HELP,
            &run,
            bool_value(!s.report.interrupted),
        );
        let gpus: Vec<Gpu> = s.devices.iter().map(|d| Gpu::of(&host, d, None)).collect();
        stress_metrics(&mut f, s.report, &gpus, &host);
        Ok(f.render())
    }
}

const LAST_RUN: &str = "gpuvet_last_run_timestamp_seconds";
const LAST_RUN_HELP: &str =
    "Unix time gpuvet wrote this file, at the end of the run (alert when it grows old).";
const COMPLETE: &str = "gpuvet_run_complete";
const COMPLETE_HELP: &str =
    "1 when the run finished, 0 when it was interrupted (the figures cover what finished).";

/// One labelled sample.
type Labels = Vec<(&'static str, String)>;

/// One metric family: its HELP text and samples, in the order they were set.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, f64)>,
}

/// The families of one file, in the order they were first set.
#[derive(Default)]
pub struct TextFile {
    families: Vec<Family>,
    /// The command that wrote the file, a label of every series: the textfile collector
    /// refuses two files that define one series, and without it a validate DaemonSet's file
    /// and a nightly run's shared `gpuvet_build_info`, every `gpuvet_gpu_*` series and the
    /// results both measured.
    command: String,
}

impl TextFile {
    /// An empty file whose every series carries `command`.
    fn of_command(command: &str) -> TextFile {
        TextFile {
            families: Vec::new(),
            command: command.to_string(),
        }
    }

    /// Sets the sample of `name` with `labels` (replacing one with the same labels: the
    /// textfile collector refuses a file that repeats a series).
    fn set(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, String)],
        value: f64,
    ) {
        let mut labels = labels.to_vec();
        if !self.command.is_empty() && !labels.iter().any(|(k, _)| *k == "command") {
            // First, so that what reads a series by its last label (a script's
            // `verdict="fail"} 1`) reads it as before.
            labels.insert(0, ("command", self.command.clone()));
        }
        let i = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name,
                    help,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        let fam = &mut self.families[i];
        match fam.samples.iter_mut().find(|(l, _)| *l == labels) {
            Some(s) => s.1 = value,
            None => fam.samples.push((labels, value)),
        }
    }

    /// The exposition text: HELP, TYPE and the samples of each family, together.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            out.push_str(&format!("# HELP {} {}\n", f.name, escape_help(f.help)));
            out.push_str(&format!("# TYPE {} gauge\n", f.name));
            for (labels, v) in &f.samples {
                out.push_str(f.name);
                if !labels.is_empty() {
                    let parts: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
                        .collect();
                    out.push_str(&format!("{{{}}}", parts.join(",")));
                }
                out.push_str(&format!(" {}\n", format_value(*v)));
            }
        }
        out
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
pub fn escape_label_value(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// HELP text: backslash and newline escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', r"\\").replace('\n', r"\n")
}

/// A sample value: Go's float syntax, with the format's spellings of the special values.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64().floor())
        .unwrap_or(0.0)
}

/// The labels that name one GPU: the host, its index, UUID and SKU.
struct Gpu {
    labels: Labels,
    /// False for the CPU backend's one device. Its clock is a CPU core's, written as
    /// `gpuvet_cpu_clock_hertz` (never as an SM clock), and it has no throttle reasons to
    /// report, which is not "none active".
    is_gpu: bool,
}

impl Gpu {
    /// `sku` is the SKU it was judged against (validate), else the one the database recognises.
    fn of(host: &str, d: &DeviceInfo, sku: Option<&str>) -> Gpu {
        let sku = sku
            .map(str::to_string)
            .or_else(|| crate::gpudb::lookup(d).map(|s| s.id))
            .unwrap_or_else(|| "unknown".into());
        Gpu {
            labels: vec![
                ("host", host.to_string()),
                ("gpu", d.index.to_string()),
                ("uuid", d.uuid.clone().unwrap_or_default()),
                ("sku", sku),
            ],
            is_gpu: d.may_name_gpu_model(),
        }
    }

    fn of_report(report: &Report, verdict: Option<&NodeVerdict>) -> Vec<Gpu> {
        report
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let judged = verdict
                    .and_then(|v| v.gpus.iter().find(|g| g.index == d.index || g.index == i))
                    .and_then(|g| g.sku.as_deref());
                Gpu::of(&report.host.hostname, d, judged)
            })
            .collect()
    }

    /// These labels plus `extra`.
    fn with(&self, extra: &[(&'static str, String)]) -> Labels {
        let mut l = self.labels.clone();
        l.extend(extra.iter().cloned());
        l
    }
}

fn build_info(f: &mut TextFile, version: &str, git_sha: &str) {
    f.set(
        "gpuvet_build_info",
        "The gpuvet that wrote this file; always 1.",
        &[("version", version.into()), ("git_sha", git_sha.into())],
        1.0,
    );
}

fn run_metrics(f: &mut TextFile, host: &str, report: &Report, complete: bool) {
    build_info(f, &report.tool.version, &report.tool.git_sha);
    let run = [
        ("host", host.to_string()),
        ("command", report.config.command.clone()),
    ];
    f.set(LAST_RUN, LAST_RUN_HELP, &run, unix_now());
    f.set(COMPLETE, COMPLETE_HELP, &run, bool_value(complete));
}

/// Families named after a rate's unit: FLOP/s, OP/s (int8) or B/s.
fn by_unit(unit: &str) -> (&'static str, &'static str) {
    match unit {
        "OP/s" => (
            "gpuvet_result_throughput_op_per_second",
            "gpuvet_result_op_per_usd",
        ),
        "B/s" => (
            "gpuvet_result_throughput_bytes_per_second",
            "gpuvet_result_bytes_per_usd",
        ),
        _ => (
            "gpuvet_result_throughput_flop_per_second",
            "gpuvet_result_flop_per_usd",
        ),
    }
}

/// The labels of one result: its GPU (the lead of a set, whose index lists them all) and what
/// ran.
fn result_labels(r: &ResultRecord, gpus: &[Gpu]) -> Option<Labels> {
    let gpu = gpus.get(r.device.lead())?;
    let mut l = gpu.with(&[
        ("workload", r.workload.name()),
        ("kind", r.workload.kind().to_string()),
        ("dtype", r.dtype.to_string()),
        ("implementation", implementation_label(r)),
    ]);
    if !r.device.is_single() {
        l[1].1 = r.device.to_string();
    }
    Some(l)
}

/// The implementation, marked when a test backend only simulated it (a user kernel on the mock
/// has the implementation name a GPU run would have, and a dashboard must not mix the two).
fn implementation_label(r: &ResultRecord) -> String {
    if r.is_simulated() {
        format!("{} (simulated)", r.implementation)
    } else {
        r.implementation.clone()
    }
}

fn report_metrics(f: &mut TextFile, report: &Report, gpus: &[Gpu]) {
    for r in &report.results {
        if let Some(labels) = result_labels(r, gpus) {
            let on_gpu = gpus.get(r.device.lead()).is_some_and(|g| g.is_gpu);
            result_metrics(f, r, &labels, on_gpu);
        }
    }
    // A dashboard of figures cannot tell a workload never run from one not yet scraped: each
    // one the suite could not run on a device (a missing library) is a series of its own.
    for n in &report.not_run {
        if let Some(gpu) = gpus.get(n.device.lead()) {
            f.set(
                "gpuvet_workload_not_run",
                "1 for a workload of the suite that nothing on the device could run (a missing library); the JSON report's not_run says why.",
                &gpu.with(&[("workload", n.workload.clone())]),
                1.0,
            );
        }
    }
    for (i, gpu) in gpus.iter().enumerate() {
        let samples: Vec<&Telemetry> = report
            .results
            .iter()
            // A result on several devices reads its lead's state (the source of a peer copy,
            // rank 0 of a collective): that is whose telemetry it carries.
            .filter(|r| r.device.lead() == i)
            .flat_map(|r| [r.telemetry_before.as_ref(), r.telemetry_after.as_ref()])
            .flatten()
            .collect();
        telemetry_metrics(f, gpu, &samples);
        if let Some(usd) = report.config.price.as_ref().and_then(|p| p.of_device(i)) {
            f.set(
                "gpuvet_gpu_price_usd_per_hour",
                "Price of the device per hour the results were priced at (--price-per-hour, --price-file).",
                &gpu.labels,
                usd,
            );
        }
    }
}

/// One result's series: whether it verified, and the figures of one that did (throughput, its
/// price-performance, peak share, median time, work per joule), with the clock and power read
/// while it ran.
fn result_metrics(
    f: &mut TextFile,
    r: &ResultRecord,
    labels: &[(&'static str, String)],
    on_gpu: bool,
) {
    f.set(
        "gpuvet_result_verified",
        "1 when the result's output matched the f64 reference and it was timed, else 0.",
        labels,
        bool_value(r.is_valid()),
    );
    // Figures only of a result that verified: a user kernel run unverified (its spec's
    // choice) keeps its time in the report, labelled, but no dashboard may plot it.
    let figures = r.is_valid();
    if let Some(t) = r.throughput.as_ref().filter(|_| figures) {
        let (name, per_usd) = by_unit(&t.unit);
        f.set(name, throughput_help(name), labels, t.value);
        if let Some(p) = &r.price_performance {
            f.set(per_usd, PER_USD_HELP, labels, p.work_per_usd());
        }
    }
    if let Some(p) = r.peak_fraction.filter(|_| figures) {
        f.set(
            "gpuvet_result_peak_ratio",
            "Median throughput as a share of its reference (0-1): the device's datasheet peak, or the link's for transfers, peer copies and collectives.",
            labels,
            p,
        );
    }
    if let Some(s) = r.stats.as_ref().filter(|_| figures) {
        f.set(
            "gpuvet_result_median_seconds",
            "Median time of one iteration.",
            labels,
            s.median_s,
        );
    }
    if let Some(mhz) = r.effective_clock_mhz {
        let (name, help) = if on_gpu {
            (
                "gpuvet_result_effective_sm_clock_hertz",
                "Effective SM clock while the result was sampled.",
            )
        } else {
            (
                "gpuvet_result_cpu_clock_hertz",
                "Mean CPU core clock (/proc/cpuinfo) while the result was sampled.",
            )
        };
        f.set(name, help, labels, mhz * 1e6);
    }
    if let Some(w) = r.power_w {
        f.set(
            "gpuvet_result_power_watts",
            "Median board power while the result was sampled (readings a second or more into the load).",
            labels,
            w,
        );
    }
    let power = r.power_w.filter(|&w| w > 0.0);
    if let (Some(t), Some(w)) = (r.throughput.as_ref().filter(|_| figures), power) {
        // Per joule: throughput per watt in base units, one gauge per kind of work.
        let name = match t.unit.as_str() {
            "OP/s" => "gpuvet_result_op_per_joule",
            "B/s" => "gpuvet_result_bytes_per_joule",
            _ => "gpuvet_result_flop_per_joule",
        };
        f.set(
            name,
            "Work per joule of board energy: median throughput / median in-run power.",
            labels,
            t.value / w,
        );
    }
}

const PER_USD_HELP: &str =
    "Work one US dollar buys at the median throughput and the given price per device-hour.";

fn throughput_help(name: &str) -> &'static str {
    match name {
        "gpuvet_result_throughput_op_per_second" => {
            "Median throughput of a verified integer result, operations per second."
        }
        "gpuvet_result_throughput_bytes_per_second" => {
            "Median throughput of a verified bandwidth-bound result, bytes per second."
        }
        _ => "Median throughput of a verified result, floating-point operations per second.",
    }
}

/// Clocks, temperature, power and throttle reasons of one GPU from its samples, oldest first.
fn telemetry_metrics(f: &mut TextFile, gpu: &Gpu, samples: &[&Telemetry]) {
    type Field = fn(&Telemetry) -> Option<f64>;
    let (clock, clock_help) = if gpu.is_gpu {
        (
            "gpuvet_gpu_sm_clock_hertz",
            "SM clock at the last telemetry sample of the run.",
        )
    } else {
        (
            "gpuvet_cpu_clock_hertz",
            "Mean CPU core clock (/proc/cpuinfo) at the last telemetry sample of the run.",
        )
    };
    let last: [(&'static str, &'static str, Field, f64); 5] = [
        (clock, clock_help, |t| t.sm_clock_mhz, 1e6),
        (
            "gpuvet_gpu_memory_clock_hertz",
            "Memory clock at the last telemetry sample of the run.",
            |t| t.memory_clock_mhz,
            1e6,
        ),
        (
            "gpuvet_gpu_temperature_celsius",
            "GPU temperature at the last telemetry sample of the run.",
            |t| t.temperature_c,
            1.0,
        ),
        (
            "gpuvet_gpu_power_watts",
            "Power draw at the last telemetry sample of the run.",
            |t| t.power_w,
            1.0,
        ),
        (
            "gpuvet_gpu_power_limit_watts",
            "Enforced power limit at the last telemetry sample of the run.",
            |t| t.power_limit_w,
            1.0,
        ),
    ];
    for (name, help, field, scale) in last {
        if let Some(v) = samples.iter().rev().find_map(|t| field(t)) {
            f.set(name, help, &gpu.labels, v * scale);
        }
    }
    let hottest = samples
        .iter()
        .filter_map(|t| t.temperature_c)
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
    if let Some(t) = hottest {
        f.set(
            "gpuvet_gpu_temperature_max_celsius",
            "Hottest telemetry sample of the run.",
            &gpu.labels,
            t,
        );
    }
    if samples.is_empty() || !gpu.is_gpu {
        return;
    }
    let seen: BTreeSet<String> = samples
        .iter()
        .flat_map(|t| t.throttle_reasons.iter().map(ThrottleReason::name))
        .collect();
    let known = ThrottleReason::KNOWN.iter().map(ThrottleReason::name);
    let all: BTreeSet<String> = known.chain(seen.iter().cloned()).collect();
    for reason in all {
        f.set(
            "gpuvet_gpu_throttle_reason",
            "1 when the clock-event (throttle) reason was active in any telemetry sample of the run, else 0.",
            &gpu.with(&[("reason", reason.clone())]),
            bool_value(seen.contains(&reason)),
        );
    }
}

/// A state set: 1 for `v`, 0 for the other verdicts, so `== 1` alerts need no regex.
fn verdict_states(
    f: &mut TextFile,
    name: &'static str,
    help: &'static str,
    base: &Labels,
    v: Verdict,
) {
    for s in [Verdict::Pass, Verdict::Warn, Verdict::Fail] {
        let mut l = base.clone();
        l.push(("verdict", s.name().to_ascii_lowercase()));
        f.set(name, help, &l, bool_value(s == v));
    }
}

fn verdict_metrics(f: &mut TextFile, v: &NodeVerdict, gpus: &[Gpu]) {
    let node: Labels = vec![("host", v.hostname.clone())];
    verdict_states(
        f,
        "gpuvet_node_verdict",
        "gpuvet validate's verdict on the node: 1 for the verdict reached, 0 for the others.",
        &node,
        v.verdict,
    );
    // The node's own checks (its links) and figures (all-reduce busbw, slowest and median pair).
    for c in &v.node_checks {
        let mut l = node.clone();
        l.push(("check", c.check.name().to_string()));
        verdict_states(
            f,
            "gpuvet_node_check_verdict",
            "gpuvet validate's verdict of one check on the node (its links): 1 for the verdict reached, 0 for the others.",
            &l,
            c.verdict,
        );
    }
    for (test, m) in &v.node_metrics {
        let mut l = node.clone();
        l.push(("test", test.clone()));
        f.set(
            "gpuvet_node_bandwidth_bytes_per_second",
            "A node-level link figure of validate: the all-reduce's bus bandwidth, the slowest and the median GPU pair's copy.",
            &l,
            m.value,
        );
    }
    for g in &v.gpus {
        let Some(gpu) = gpus.get(g.index) else {
            continue;
        };
        verdict_states(
            f,
            "gpuvet_gpu_verdict",
            "gpuvet validate's verdict on the GPU (its worst check): 1 for the verdict reached, 0 for the others.",
            &gpu.labels,
            g.verdict,
        );
        for c in &g.checks {
            // A skipped check reached no verdict: exported as PASS it looked like a check
            // that had judged something (a mock's identity, one GPU's peers).
            if c.skipped.is_some() {
                f.set(
                    "gpuvet_gpu_check_skipped",
                    "1 for a check of gpuvet validate that had nothing to judge on the GPU (the verdict file says why); it has no gpuvet_gpu_check_verdict series.",
                    &gpu.with(&[("check", c.check.name().to_string())]),
                    1.0,
                );
                continue;
            }
            verdict_states(
                f,
                "gpuvet_gpu_check_verdict",
                "gpuvet validate's verdict of one check on the GPU: 1 for the verdict reached, 0 for the others.",
                &gpu.with(&[("check", c.check.name().to_string())]),
                c.verdict,
            );
        }
        for (test, m) in &g.metrics {
            if let Some(r) = m.ratio {
                f.set(
                    "gpuvet_gpu_expected_ratio",
                    "The GPU's best figure of a test over what a healthy card of its SKU reaches.",
                    &gpu.with(&[("test", test.clone())]),
                    r,
                );
            }
        }
    }
}

fn stress_metrics(f: &mut TextFile, s: &StressReport, gpus: &[Gpu], host: &str) {
    let w: &Workload = &s.workload;
    let rate_name = match ResultRecord::unit_for(w) {
        "OP/s" => "gpuvet_stress_throughput_op_per_second",
        _ => "gpuvet_stress_throughput_flop_per_second",
    };
    let verdict = match s.verdict {
        StressVerdict::Pass => Some(Verdict::Pass),
        StressVerdict::Fail => Some(Verdict::Fail),
        // Interrupted before a fault was found: no verdict, as a validate stopped early has
        // none (`gpuvet_run_complete` says 0).
        StressVerdict::Incomplete => None,
    };
    let base = vec![("host", host.to_string())];
    for st in [Verdict::Pass, Verdict::Fail]
        .into_iter()
        .filter(|_| verdict.is_some())
    {
        let mut l = base.clone();
        l.push(("verdict", st.name().to_ascii_lowercase()));
        f.set(
            "gpuvet_stress_verdict",
            "gpuvet stress's verdict: 1 for the verdict reached (pass or fail), 0 for the other.",
            &l,
            bool_value(Some(st) == verdict),
        );
    }
    for d in &s.devices {
        let Some(gpu) = gpus.get(d.device) else {
            continue;
        };
        let l = gpu.with(&[("workload", w.name()), ("dtype", w.dtype().to_string())]);
        if let Some(rate) = d.median_throughput {
            f.set(
                rate_name,
                "Median per-second throughput of the stress run (a device whose first output was wrong has none).",
                &l,
                rate,
            );
        }
        if let Some(w) = d.median_power_w {
            f.set(
                "gpuvet_stress_power_watts",
                "Median board power under the stress load.",
                &l,
                w,
            );
        }
        f.set(
            "gpuvet_stress_iterations",
            "Iterations the device completed.",
            &l,
            d.iterations as f64,
        );
        f.set(
            "gpuvet_stress_checksum_mismatches",
            "Outputs whose checksum differed from the first one (silent data corruption).",
            &l,
            d.mismatches.len() as f64,
        );
        f.set(
            "gpuvet_stress_verified",
            "1 when the first output matched the f64 reference and the device ran, else 0.",
            &l,
            bool_value(d.verified && d.error.is_none()),
        );
        let samples: Vec<&Telemetry> = d
            .timeline
            .iter()
            .filter_map(|p| p.telemetry.as_ref())
            .collect();
        telemetry_metrics(f, gpu, &samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
        assert_eq!(escape_help("x\\y\nz"), r"x\\y\nz");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(1.5e15), "1500000000000000");
    }

    #[test]
    fn a_series_is_written_once_and_families_stay_together() {
        let mut f = TextFile::default();
        let l = vec![("host", "h\"1".to_string())];
        f.set("gpuvet_a", "A.", &l, 1.0);
        f.set("gpuvet_b", "B.", &l, 2.0);
        f.set("gpuvet_a", "A.", &l, 3.0);
        f.set("gpuvet_a", "A.", &[("host", "h2".to_string())], 4.0);
        assert_eq!(
            f.render(),
            "# HELP gpuvet_a A.\n# TYPE gpuvet_a gauge\ngpuvet_a{host=\"h\\\"1\"} 3\n\
             gpuvet_a{host=\"h2\"} 4\n# HELP gpuvet_b B.\n# TYPE gpuvet_b gauge\n\
             gpuvet_b{host=\"h\\\"1\"} 2\n"
        );
    }
}
