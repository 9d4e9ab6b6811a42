//! A comparison as a terminal table, as markdown for a pull-request comment, and as JSON.
//!
//! Every form says the environment differences first (a new driver explains a moved number
//! better than statistics can), then one row per result, then a one-line summary that matches
//! the exit status.

use super::{Comparison, Gate, ResultComparison, Verdict};
use crate::export::{md_cell as md, md_code, md_row};
use crate::term::table as new_table;
use crate::units::seconds;
use comfy_table::{Cell, CellAlignment, Color};
use std::fmt::Write;

/// `+5.12% [+3.90, +6.31]`, or `-` without a ratio; `+0.00% (no interval)` where the
/// interval has no width (one sample a side: `[+0.00, +0.00]` read as a certain zero).
fn change(r: &ResultComparison) -> String {
    match r.ratio {
        Some(ci) if ci.low == ci.high => {
            format!("{:+.2}% (no interval)", (ci.ratio - 1.0) * 100.0)
        }
        Some(ci) => format!(
            "{:+.2}% [{:+.2}, {:+.2}]",
            (ci.ratio - 1.0) * 100.0,
            (ci.low - 1.0) * 100.0,
            (ci.high - 1.0) * 100.0
        ),
        None => "-".into(),
    }
}

/// `1.234 ms (n=25)`, or with several runs `1.234 ms (n=125, 5 runs)`: the geometric mean of
/// the runs' medians then, and the samples of all of them.
fn median(m: Option<f64>, n: usize, runs: usize) -> String {
    match m {
        Some(m) if runs > 1 => format!("{} (n={n}, {runs} runs)", seconds(m)),
        Some(m) => format!("{} (n={n})", seconds(m)),
        None => "-".into(),
    }
}

fn note(r: &ResultComparison) -> String {
    let mut parts = Vec::new();
    if r.quantity == "cycles" {
        // The medians beside it are times: 399 µs → 528 µs can be a change of +0.2% in
        // cycles, and the row must say which is which.
        parts.push("change in cycles (time × SM clock); medians are times".to_string());
    }
    if let Some(d) = &r.detail {
        parts.push(d.clone());
    }
    parts.join("; ")
}

fn colour(v: Verdict) -> Option<Color> {
    match v {
        Verdict::Slower | Verdict::Failed | Verdict::Unverified => Some(Color::Red),
        Verdict::Faster => Some(Color::Green),
        Verdict::Ambiguous => Some(Color::Yellow),
        Verdict::Missing | Verdict::New => Some(Color::Cyan),
        Verdict::Same => None,
    }
}

/// One line: the counts and what they mean for the exit status.
pub fn summary_line(cmp: &Comparison, gate: impl Into<Gate>) -> String {
    let gate = gate.into();
    let c = cmp.counts();
    let mut parts = Vec::new();
    for (n, what) in [
        (c.slower, "slower"),
        (c.faster, "faster"),
        (c.same, "same"),
        (c.ambiguous, "ambiguous"),
        (c.unverified, "unverified"),
        (c.failed, "failed"),
        (c.missing, "missing"),
        (c.new, "new"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        parts.push("no results".into());
    }
    let failing = cmp.failing(gate).len();
    let outcome = if cmp.compared() == 0 {
        "nothing compared (exit 2): OLD and NEW share no result".to_string()
    } else if failing == 0 {
        "no regression".to_string()
    } else {
        let what = gate.describe();
        format!("{failing} {what}{}", if failing == 1 { "" } else { "s" })
    };
    format!("{}: {}", outcome, parts.join(", "))
}

/// The device every result ran on, when there is just one: then it is said once in the header
/// instead of in a column on every row.
fn single_device(cmp: &Comparison) -> Option<&str> {
    let first = cmp.results.first()?.device.as_str();
    cmp.results
        .iter()
        .all(|r| r.device == first)
        .then_some(first)
}

fn header_lines(cmp: &Comparison) -> Vec<String> {
    let side = |tag: &str, s: &super::RunInfo| {
        format!(
            "{tag}: {} (started {}, gpuvet {}{})",
            s.label,
            s.started_at,
            s.gpuvet,
            if s.complete { "" } else { ", INCOMPLETE" }
        )
    };
    let o = &cmp.options;
    let mut lines = vec![side("OLD", &cmp.old), side("NEW", &cmp.new)];
    if let Some(d) = single_device(cmp) {
        lines.push(format!("device: {d}"));
    }
    let interval = if cmp.over_runs() {
        let how = if cmp.old.runs > 1 && cmp.new.runs > 1 {
            "Welch"
        } else {
            "pooled: the single run's spread taken to be the other side's"
        };
        format!(
            "{:.0}% Student-t interval of the NEW/OLD ratio over the runs' medians ({how}; OLD \
             {} run(s), NEW {} run(s))",
            o.confidence * 100.0,
            cmp.old.runs,
            cmp.new.runs
        )
    } else {
        format!(
            "{:.0}% bootstrap interval of the NEW/OLD ratio of medians ({} resamples, seed {})",
            o.confidence * 100.0,
            o.resamples,
            o.seed
        )
    };
    lines.push(format!(
        "threshold ±{}% · {interval}{}",
        o.threshold_pct,
        if o.normalize_clock {
            " · clock-normalised"
        } else {
            ""
        }
    ));
    lines
}

/// The terminal form. `color` turns on coloured verdicts (the caller decides from NO_COLOR,
/// CLICOLOR and whether the stream is a terminal).
pub fn render_table(cmp: &Comparison, gate: impl Into<Gate>, color: bool) -> String {
    let mut out = String::new();
    for l in header_lines(cmp) {
        let _ = writeln!(out, "{l}");
    }
    out.push('\n');
    if cmp.environment.is_empty() {
        out.push_str("Environment: no differences\n\n");
    } else {
        let mut t = new_table(color);
        t.set_header(vec!["Environment differs", "OLD", "NEW"]);
        for d in &cmp.environment {
            t.add_row(vec![d.field.as_str(), d.old.as_str(), d.new.as_str()]);
        }
        let _ = writeln!(out, "{t}\n");
    }
    let device_column = single_device(cmp).is_none();
    let mut t = new_table(color);
    let mut header = vec!["Result"];
    if device_column {
        header.push("Device");
    }
    header.extend([
        "OLD median",
        "NEW median",
        "Change [95% CI]",
        "Verdict",
        "Note",
    ]);
    t.set_header(header);
    for r in &cmp.results {
        let mut v = Cell::new(r.verdict.as_str());
        if color {
            if let Some(c) = colour(r.verdict) {
                v = v.fg(c);
            }
        }
        let mut row = vec![Cell::new(&r.id)];
        if device_column {
            row.push(Cell::new(&r.device));
        }
        row.extend([
            Cell::new(median(r.old_median_s, r.old_samples, r.old_runs))
                .set_alignment(CellAlignment::Right),
            Cell::new(median(r.new_median_s, r.new_samples, r.new_runs))
                .set_alignment(CellAlignment::Right),
            Cell::new(change(r)).set_alignment(CellAlignment::Right),
            v,
            Cell::new(note(r)),
        ]);
        t.add_row(row);
    }
    let _ = writeln!(out, "{t}");
    for n in &cmp.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = writeln!(out, "{}", summary_line(cmp, gate));
    out
}

/// The pull-request form: GitHub-flavoured markdown, no colour, stable for snapshots.
pub fn render_markdown(cmp: &Comparison, gate: impl Into<Gate>) -> String {
    let gate = gate.into();
    let mut out = String::new();
    let _ = writeln!(out, "## gpuvet comparison\n");
    let _ = writeln!(out, "**{}**\n", md(&summary_line(cmp, gate)));
    for l in header_lines(cmp) {
        let _ = writeln!(out, "- {}", md(&l));
    }
    out.push('\n');
    let _ = writeln!(out, "### Environment differences\n");
    if cmp.environment.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        let _ = writeln!(out, "| Field | OLD | NEW |\n|---|---|---|");
        for d in &cmp.environment {
            out.push_str(&md_row(&[&d.field, &d.old, &d.new]));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "### Results\n");
    if cmp.results.is_empty() {
        let _ = writeln!(out, "No results in either report.");
    } else {
        let device_column = single_device(cmp).is_none();
        let (dev_head, dev_rule) = if device_column {
            (" Device |", "---|")
        } else {
            ("", "")
        };
        let _ = writeln!(
            out,
            "| Result |{dev_head} OLD median | NEW median | Change [95% CI] | Verdict | Note |\n\
             |---|{dev_rule}--:|--:|--:|---|---|"
        );
        for r in &cmp.results {
            // Bold: what fails under the gate, and what may be a regression.
            let verdict = if gate.fails(r) || r.verdict == Verdict::Ambiguous {
                format!("**{}**", r.verdict)
            } else {
                r.verdict.to_string()
            };
            let device = if device_column {
                format!(" {} |", md(&r.device))
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {} |{device} {} | {} | {} | {} | {} |",
                md_code(&r.id),
                median(r.old_median_s, r.old_samples, r.old_runs),
                median(r.new_median_s, r.new_samples, r.new_runs),
                change(r),
                verdict,
                md(&note(r))
            );
        }
    }
    if !cmp.notes.is_empty() {
        out.push('\n');
        for n in &cmp.notes {
            let _ = writeln!(out, "- note: {}", md(n));
        }
    }
    out
}

/// The machine form: the whole [`Comparison`], pretty-printed.
pub fn render_json(cmp: &Comparison) -> String {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(cmp).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// CSV columns of a comparison, one row per result: the JSON's `results[]` fields, with the
/// ratio's interval flattened (`ratio`, `ratio_low`, `ratio_high`). Columns are only added, at
/// the end.
const CSV_HEADER: [&str; 15] = [
    "id",
    "device",
    "verdict",
    "regression",
    "quantity",
    "old_median_s",
    "new_median_s",
    "old_samples",
    "new_samples",
    "ratio",
    "ratio_low",
    "ratio_high",
    "detail",
    "old_runs",
    "new_runs",
];

/// The comparison as CSV, one row per result (the environment and notes are in the JSON).
pub fn render_csv(cmp: &Comparison) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    let num = |x: Option<f64>| x.map(|v| format!("{v:e}")).unwrap_or_default();
    for r in &cmp.results {
        w.write_record([
            r.id.clone(),
            r.device.clone(),
            r.verdict.to_string(),
            r.regression.to_string(),
            r.quantity.clone(),
            num(r.old_median_s),
            num(r.new_median_s),
            r.old_samples.to_string(),
            r.new_samples.to_string(),
            num(r.ratio.map(|c| c.ratio)),
            num(r.ratio.map(|c| c.low)),
            num(r.ratio.map(|c| c.high)),
            r.detail.clone().unwrap_or_default(),
            r.old_runs.to_string(),
            r.new_runs.to_string(),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}
