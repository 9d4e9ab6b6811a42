//! What a person sees: the results table, progress, notices, colour.
//!
//! Colour only when the stream is a terminal and `NO_COLOR` is unset (`CLICOLOR_FORCE=1`
//! forces it). The progress bar goes to stderr and hides itself when stderr is not a terminal.

use crate::report::{
    dtype_text, noise_text, throughput_text, verification_text, with_placement, Report,
    ResultRecord,
};
use crate::units::seconds;
use comfy_table::{presets, Cell, CellAlignment, Color, ContentArrangement, Table};
use std::io::IsTerminal;

pub use crate::output::{table, use_color};

pub fn stdout_color() -> bool {
    use_color(std::io::stdout().is_terminal())
}

pub fn stderr_color() -> bool {
    use_color(std::io::stderr().is_terminal())
}

/// A one-line notice on stderr (`note: ...`), unless quiet.
pub fn notice(quiet: bool, msg: &str) {
    if !quiet {
        labelled("36", "note", msg);
    }
}

/// `label: msg` on stderr, the label in ANSI colour `sgr` where stderr takes colour.
fn labelled(sgr: &str, label: &str, msg: &str) {
    let line = if stderr_color() {
        format!("\x1b[{sgr}m{label}:\x1b[0m {msg}\n")
    } else {
        format!("{label}: {msg}\n")
    };
    crate::output::write_stderr(&line);
}

/// A warning on stderr (always shown).
pub fn warn(msg: &str) {
    labelled("33", "warning", msg);
}

/// The results table.
pub fn results_table(report: &Report, color: bool) -> String {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Disabled);
    if color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    // Price-performance, when the run was given a price: after "% peak".
    let priced = report.config.price.is_some();
    let mut header = vec![
        "workload",
        "device / impl",
        "dtype (compute)",
        "throughput",
        "% peak",
        "median",
        "noise",
        "verified",
    ];
    if priced {
        header.insert(5, "per USD");
    }
    // Energy efficiency, where some result had its power read (a GPU measured for a second or
    // more): after "% peak" (and "per USD").
    let powered = report.results.iter().any(|r| r.per_watt.is_some());
    let watt_col = if priced { 6 } else { 5 };
    if powered {
        header.insert(watt_col, "per W");
    }
    t.set_header(header);
    for r in &report.results {
        let dev = device_label(report, r);
        let verified = verification_text(r);
        let vcell = if !color {
            Cell::new(verified)
        } else if r.is_valid() {
            Cell::new(verified).fg(Color::Green)
        } else {
            Cell::new(verified).fg(Color::Red)
        };
        let mut row = vec![
            Cell::new(r.workload.name()),
            Cell::new(format!("{dev} / {}", r.implementation)),
            Cell::new(dtype_text(r)),
            Cell::new(throughput_text(r)).set_alignment(CellAlignment::Right),
            Cell::new(
                r.peak_fraction
                    .map(|p| format!("{:.1}%", p * 100.0))
                    .unwrap_or_else(|| "—".into()),
            )
            .set_alignment(CellAlignment::Right),
            Cell::new(
                r.stats
                    .as_ref()
                    .map(|s| seconds(s.median_s))
                    .unwrap_or_else(|| "—".into()),
            )
            .set_alignment(CellAlignment::Right),
            Cell::new(noise_text(r)).set_alignment(CellAlignment::Right),
            vcell,
        ];
        if priced {
            let per_usd = r.price_performance.as_ref().map_or("—".into(), |p| {
                // Three significant figures: 317 TFLOP-h/USD on a GPU, 0.0823 on a CPU.
                let digits = (2 - p.value.abs().max(1e-9).log10().floor() as i32).clamp(0, 6);
                format!("{:.*} {}", digits as usize, p.value, p.unit)
            });
            row.insert(5, Cell::new(per_usd).set_alignment(CellAlignment::Right));
        }
        if powered {
            let per_w = r
                .per_watt
                .as_ref()
                .map_or("—".into(), |p| crate::units::si(p.value, &p.unit));
            row.insert(
                watt_col,
                Cell::new(per_w).set_alignment(CellAlignment::Right),
            );
        }
        t.add_row(row);
    }
    let mut s = t.to_string();
    s.push('\n');
    s.push_str(&footnotes(report));
    s
}

/// The lines under the results table: each user kernel's build and launch, each figure above
/// its peak, and why each result that did not pass failed.
fn footnotes(report: &Report) -> String {
    let mut s = String::new();
    for r in &report.results {
        if let Some(k) = &r.kernel {
            s.push_str(&format!("{}: {}\n", result_label(report, r), k.summary()));
        }
    }
    for r in &report.results {
        if let Some(why) = r.above_peak() {
            s.push_str(&format!("{}: {why}\n", result_label(report, r)));
        }
    }
    for r in report.results.iter().filter(|r| !r.is_valid()) {
        let why = r
            .error
            .clone()
            .or_else(|| r.verification.detail.clone())
            .unwrap_or_else(|| "verification failed".into());
        s.push_str(&format!("{}: {why}\n", result_label(report, r)));
    }
    s
}

/// The table's device cell: the device's (shortened) name, then its index where it is needed.
fn device_label(report: &Report, r: &ResultRecord) -> String {
    let name = report
        .devices
        .get(r.device.lead())
        .map(|d| short_device(&d.name))
        .unwrap_or_default();
    with_placement(report, r, name)
}

/// A result's id for the lines under the table, with its device index where it is needed.
fn result_label(report: &Report, r: &ResultRecord) -> String {
    with_placement(report, r, r.id.clone())
}

/// "NVIDIA H200" rather than the driver's full marketing string; CPUs keep their first words.
fn short_device(name: &str) -> String {
    let n = name.trim();
    if n.len() <= 24 {
        n.to_string()
    } else {
        let mut s: String = n.chars().take(23).collect();
        s.push('…');
        s
    }
}

/// A progress bar over `len` steps on stderr; hidden when quiet or not a terminal.
pub fn progress(len: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb
}

/// An error line on stderr (`error: ...`).
pub fn error(msg: &str) {
    labelled("31", "error", msg);
}
