//! `gpuvet report RESULTS.json -o report.html`: one self-contained HTML file to send around.
//!
//! Everything is inline — CSS in a `<style>` block, charts as inline SVG — and there is no
//! script and no external reference (not even a favicon), so the file opens the same offline,
//! in a mail attachment, or in a CI artifact viewer. Sections: the verdict (when a verdict file
//! is given), the inventory (host and devices with their datasheet peaks), the results table,
//! the charts (roofline per device, sweep curves for sweep runs, timelines when given), the LLM
//! estimate (when given), and the settings of the run.

use crate::export::Exporter;
use crate::markup::escape;
use crate::plot::{self, Timeline};
use crate::report::Report;
use crate::report::{noise_text, throughput_text, verification_text};
use crate::suite::Estimate;
use crate::units::{seconds, si, Bytes};
use crate::validate::{NodeVerdict, Verdict};
use std::fmt::Write as _;

/// Optional parts of a report page.
#[derive(Debug, Clone, Copy, Default)]
pub struct HtmlExtras<'a> {
    pub title: Option<&'a str>,
    pub verdict: Option<&'a NodeVerdict>,
    pub estimate: Option<&'a Estimate>,
    pub timelines: &'a [Timeline],
    /// Axis of the sweep curves; inferred from the results of a `sweep` or `bench` run when
    /// `None`.
    pub swept_axis: Option<&'a str>,
}

/// The page for a report alone.
pub fn render_html(report: &Report) -> String {
    render_html_with(report, &HtmlExtras::default())
}

/// The HTML report format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

/// The HTML page of a report, as one file format: `gpuvet report -o PATH` writes it through
/// [`Exporter::write`] (atomically; `-` is stdout).
pub struct HtmlPage<'a> {
    pub report: &'a Report,
    pub extras: HtmlExtras<'a>,
}

impl Exporter<HtmlPage<'_>> for Html {
    fn render(&self, page: &HtmlPage<'_>) -> anyhow::Result<String> {
        Ok(render_html_with(page.report, &page.extras))
    }
}

const CSS: &str = r#"
:root { --fg:#1d232a; --muted:#5b6670; --line:#d9dee3; --bg:#ffffff; --band:#f5f7f9;
  --pass:#1a7f37; --warn:#9a6700; --fail:#cf222e; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 24px 32px 48px; color: var(--fg);
  background: var(--bg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
.sub { color: var(--muted); margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
tr.bad td { background: #fff1f0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 700; color: #fff; }
.PASS { background: var(--pass); } .WARN { background: var(--warn); } .FAIL { background: var(--fail); }
.chart { margin: 12px 0 20px; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; }
.chart svg { display: block; max-width: 100%; height: auto; }
.note { color: var(--muted); }
ul.reasons { margin: 4px 0 8px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; }
pre.est { background: var(--band); padding: 12px; overflow-x: auto; font-size: 12px; }
"#;

/// The page, with whichever extras are given.
pub fn render_html_with(report: &Report, x: &HtmlExtras) -> String {
    let devices: Vec<String> = report.devices.iter().map(|d| d.name.clone()).collect();
    let title = x.title.map(str::to_string).unwrap_or_else(|| {
        format!(
            "gpuvet report — {}",
            if devices.is_empty() {
                "no device".to_string()
            } else {
                devices.join(", ")
            }
        )
    });
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"generator\" content=\"gpuvet {}\">\n<link rel=\"icon\" href=\"data:,\">\n\
<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&report.tool.version),
        escape(&title)
    );
    let _ = write!(
        h,
        "<h1>{}</h1>\n<p class=\"sub\">gpuvet {} ({}) · <code>{}</code> on the {} backend · started {}{}</p>\n",
        escape(&title),
        escape(&report.tool.version),
        escape(&report.tool.git_sha),
        escape(&report.config.command),
        escape(&report.config.backend.to_string()),
        escape(&report.started_at),
        if report.complete {
            ""
        } else {
            " · <strong>incomplete run</strong>"
        }
    );
    if let Some(v) = x.verdict {
        verdict_section(&mut h, v);
    }
    summary_line(&mut h, report);
    inventory(&mut h, report);
    results_table(&mut h, report);
    charts(&mut h, report, x);
    if let Some(e) = x.estimate {
        estimate_section(&mut h, e);
    }
    settings(&mut h, report);
    h.push_str("</body>\n</html>\n");
    h
}

fn badge(v: Verdict) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", v.name())
}

fn verdict_section(h: &mut String, v: &NodeVerdict) {
    let _ = write!(
        h,
        "<h2>Verdict: {}</h2>\n<p>{} — {} GPU{}, exit status {}.</p>\n",
        badge(v.verdict),
        escape(&v.hostname),
        v.gpus.len(),
        if v.gpus.len() == 1 { "" } else { "s" },
        v.exit_code
    );
    h.push_str(
        "<table><tr><th>GPU</th><th>SKU</th><th>verdict</th><th>checks</th><th>reasons</th></tr>\n",
    );
    for g in &v.gpus {
        let checks: Vec<String> = g
            .checks
            .iter()
            .map(|c| format!("{} {}", escape(c.check.name()), badge(c.verdict)))
            .collect();
        let reasons = if g.reasons.is_empty() {
            "—".to_string()
        } else {
            format!(
                "<ul class=\"reasons\">{}</ul>",
                g.reasons
                    .iter()
                    .map(|r| format!("<li>{}</li>", escape(r)))
                    .collect::<String>()
            )
        };
        let _ = writeln!(
            h,
            "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            g.index,
            escape(&g.name),
            escape(g.sku.as_deref().unwrap_or("unknown")),
            badge(g.verdict),
            checks.join(" "),
            reasons
        );
    }
    h.push_str("</table>\n");
}

fn summary_line(h: &mut String, r: &Report) {
    let total = r.results.len();
    let ok = r.results.iter().filter(|x| x.is_valid()).count();
    let failed = total - ok;
    let _ = writeln!(
        h,
        "<p>{total} result{}: {ok} verified and timed{}.</p>",
        if total == 1 { "" } else { "s" },
        if failed > 0 {
            format!(
                ", <strong style=\"color:var(--fail)\">{failed} wrong or failed</strong> (no time is reported for them)"
            )
        } else {
            String::new()
        }
    );
}

fn inventory(h: &mut String, r: &Report) {
    h.push_str("<h2>Inventory</h2>\n<dl class=\"kv\">\n");
    let host = &r.host;
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    };
    kv("host", host.hostname.clone());
    kv(
        "CPU",
        format!(
            "{} ({} logical CPUs{})",
            host.cpu_model,
            host.logical_cpus,
            host.cpu_cores
                .map(|c| format!(", {c} cores"))
                .unwrap_or_default()
        ),
    );
    kv("memory", Bytes(host.memory_bytes).to_string());
    kv("OS", format!("{} (kernel {})", host.os, host.kernel));
    h.push_str("</dl>\n");
    if r.devices.is_empty() {
        h.push_str("<p class=\"note\">No device recorded.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>#</th><th>device</th><th>backend</th><th>compute capability</th><th class=\"num\">SMs / threads</th><th class=\"num\">memory</th><th class=\"num\">last-level cache</th><th>driver</th><th>datasheet peaks</th></tr>\n");
    for d in &r.devices {
        let peaks = match &d.peaks {
            Some(p) => {
                let mut parts: Vec<String> = crate::dtype::by_name::entries(&p.flops)
                    .into_iter()
                    .map(|(k, v)| format!("{k} {}", si(v, k.rate_unit())))
                    .collect();
                if let Some(bw) = p.memory_bandwidth {
                    parts.push(format!("memory {}", si(bw, "B/s")));
                }
                format!(
                    "{} <span class=\"note\">({})</span>",
                    escape(&parts.join(", ")),
                    escape(&p.source)
                )
            }
            None => "<span class=\"note\">unknown</span>".into(),
        };
        let opt = |v: Option<String>| escape(&v.unwrap_or_else(|| "—".into()));
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            d.index,
            escape(&d.name),
            d.uuid
                .as_ref()
                .map(|u| format!("<br><code>{}</code>", escape(u)))
                .unwrap_or_default(),
            opt(d.backend.map(|b| b.name().to_string())),
            opt(d.compute_capability.clone()),
            opt(d.multiprocessors.map(|m| m.to_string())),
            opt(d.memory_bytes.map(|b| Bytes(b).to_string())),
            opt(d.last_level_cache_bytes.map(|b| Bytes(b).to_string())),
            opt(d.driver_version.clone()),
            peaks
        );
    }
    h.push_str("</table>\n");
}

fn results_table(h: &mut String, r: &Report) {
    h.push_str("<h2>Results</h2>\n");
    // What the suite left out, and why, before anything else: the table below lacks it.
    for line in r.not_run_lines() {
        let _ = writeln!(h, "<p class=\"note\">Not run: {}</p>", escape(&line));
    }
    if r.results.is_empty() {
        h.push_str("<p class=\"note\">No results.</p>\n");
        return;
    }
    let multi = r.devices.len() > 1;
    let _ = writeln!(
        h,
        "<table><tr>{}<th>workload</th><th>impl</th><th>dtype (compute)</th><th class=\"num\">throughput</th><th class=\"num\">% peak</th><th class=\"num\">median time</th><th class=\"num\">noise</th><th>verification</th></tr>",
        if multi { "<th>#</th>" } else { "" }
    );
    for x in &r.results {
        // Why it failed, and whether its figure can be the device's at all.
        let detail: String = [
            x.error.clone().or(x.verification.detail.clone()),
            x.above_peak(),
        ]
        .into_iter()
        .flatten()
        .map(|d| format!("<br><span class=\"note\">{}</span>", escape(&d)))
        .collect();
        let _ = writeln!(
            h,
            "<tr{}>{}<td><code>{}</code></td><td>{}</td><td>{} ({})</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}{}</td></tr>",
            if x.is_valid() { "" } else { " class=\"bad\"" },
            if multi {
                format!("<td>{}</td>", x.device)
            } else {
                String::new()
            },
            escape(&x.workload.name()),
            escape(&x.implementation),
            escape(x.dtype.name()),
            escape(&x.compute_dtype.to_string()),
            escape(&throughput_text(x)),
            x.peak_fraction
                .map(|p| format!("{:.1}%", p * 100.0))
                .unwrap_or_else(|| "—".into()),
            x.stats
                .as_ref()
                .map(|s| escape(&seconds(s.median_s)))
                .unwrap_or_else(|| "—".into()),
            escape(&noise_text(x)),
            escape(&verification_text(x)),
            detail
        );
    }
    h.push_str("</table>\n");
}

fn chart(h: &mut String, title: &str, svg: crate::Result<String>) {
    let _ = writeln!(h, "<h3>{}</h3>", escape(title));
    match svg {
        Ok(s) => {
            // Drop an XML declaration if one is there: it is not allowed inside HTML.
            let body = match s.find("<svg") {
                Some(i) => &s[i..],
                None => s.as_str(),
            };
            let _ = writeln!(h, "<div class=\"chart\">{body}</div>");
        }
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"note\">This chart could not be drawn: {}</p>",
                escape(&e.to_string())
            );
        }
    }
}

fn charts(h: &mut String, r: &Report, x: &HtmlExtras) {
    let mut any = false;
    let mut out = String::new();
    for device in 0..r.devices.len().max(1) {
        match plot::roofline_svg(r, device) {
            Ok(Some(svg)) => {
                any = true;
                chart(
                    &mut out,
                    &format!(
                        "Roofline{}",
                        r.devices
                            .get(device)
                            .map(|d| format!(" — {} {}", device, d.name))
                            .unwrap_or_default()
                    ),
                    Ok(svg),
                );
            }
            Ok(None) => {}
            Err(e) => {
                any = true;
                chart(&mut out, "Roofline", Err(e));
            }
        }
    }
    let axis = x.swept_axis.map(str::to_string).or_else(|| {
        let c = &r.config.command;
        (c.starts_with("sweep") || c.starts_with("bench"))
            .then(|| plot::infer_axis(r))
            .flatten()
    });
    if let Some(axis) = axis {
        match plot::sweep_svgs(r, &axis) {
            Ok(list) => {
                for (unit, svg) in list {
                    any = true;
                    chart(&mut out, &format!("Sweep over {axis} ({unit})"), Ok(svg));
                }
            }
            Err(e) => {
                any = true;
                chart(&mut out, "Sweep", Err(e));
            }
        }
    }
    if !x.timelines.is_empty() {
        any = true;
        chart(&mut out, "Timeline", plot::timeline_svg(x.timelines));
    }
    if any {
        h.push_str("<h2>Charts</h2>\n<p class=\"note\">Roofline: each verified result at its arithmetic intensity (FLOPs per byte of the least traffic it needs) and achieved rate; the solid lines are the datasheet ceilings, the dashed line the best memory bandwidth measured in this run.</p>\n");
        h.push_str(&out);
    }
}

fn estimate_section(h: &mut String, e: &Estimate) {
    let _ = writeln!(
        h,
        "<h2>LLM estimate: {} at TP {}</h2>",
        escape(&e.model),
        e.tp
    );
    h.push_str("<table><tr><th class=\"num\">batch</th><th class=\"num\">time to first token</th><th class=\"num\">bound</th><th class=\"num\">decode step</th><th class=\"num\">bound</th><th class=\"num\">decode tok/s (group)</th><th class=\"num\">per GPU</th><th class=\"num\">per sequence</th></tr>\n");
    let t = |v: Option<f64>| v.map(seconds).unwrap_or_else(|| "—".into());
    let r = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "—".into());
    for b in &e.batches {
        let _ = writeln!(
            h,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            b.batch,
            escape(&t(b.ttft_s)),
            escape(&t(b.ttft_bound_s)),
            escape(&t(b.decode_step_s)),
            escape(&t(b.decode_step_bound_s)),
            r(b.decode_tokens_per_s),
            r(b.decode_tokens_per_s_per_gpu),
            r(b.decode_tokens_per_s_per_sequence)
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">How: {}.</p>\n<p><strong>Left out</strong> (real serving is slower): {}.</p>",
        escape(&e.method.join("; ")),
        escape(&e.leaves_out.join("; "))
    );
    if !e.missing.is_empty() {
        let _ = writeln!(
            h,
            "<p style=\"color:var(--fail)\">No verified time for: {}.</p>",
            escape(&e.missing.join(", "))
        );
    }
    let _ = writeln!(
        h,
        "<details><summary>Kernels</summary><pre class=\"est\">{}</pre></details>",
        escape(&e.render())
    );
}

fn settings(h: &mut String, r: &Report) {
    let c = &r.config;
    h.push_str("<h2>Settings</h2>\n<dl class=\"kv\">\n");
    let rows = [
        ("seed", c.seed.to_string()),
        (
            "samples",
            format!("{} to {} per result", c.min_samples, c.max_samples),
        ),
        ("max time per result", format!("{} s", c.max_time_s)),
        ("warm-up", format!("{} s", c.warmup_s)),
        (
            "noise target",
            format!(
                "{:.2}% relative standard deviation",
                c.target_rel_noise * 100.0
            ),
        ),
        ("shortest sample", seconds(c.min_sample_time_s)),
        (
            "caches",
            if c.hot {
                "hot (--hot)".into()
            } else {
                "rotated / flushed".to_string()
            },
        ),
        (
            "kernel hash",
            c.kernel_hash.clone().unwrap_or_else(|| "—".into()),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    }
    h.push_str("</dl>\n");
}
