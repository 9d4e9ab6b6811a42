//! Sweep curves: throughput against the swept axis, one line per implementation (and per
//! dtype, layout or any other setting that differs between the results).

use super::{color, compact, draw_err, draw_legend, si_scale, square_mark, HEIGHT, WIDTH};
use crate::error::Result;
use crate::report::Report;
use crate::sweep::{axis_value, params};
use crate::workload::Workload;
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The swept axis of a finished run: the first axis (of the first workload kind) that takes
/// more than one value among the verified results. For `gpuvet report`, which has no flags.
pub fn infer_axis(report: &Report) -> Option<String> {
    let valid: Vec<&Workload> = report
        .results
        .iter()
        .filter(|r| r.is_valid())
        .map(|r| &r.workload)
        .collect();
    let kind = valid.first()?.kind();
    let axes = valid.first()?.sweep_params();
    axes.iter()
        .map(|a| a.name())
        .find(|a| {
            valid
                .iter()
                .filter(|w| w.kind() == kind)
                .filter_map(|w| axis_value(w, a))
                .collect::<BTreeSet<u64>>()
                .len()
                > 1
        })
        .map(|a| a.to_string())
}

/// One series of a sweep chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub name: String,
    /// (axis value, throughput in the chart's unit), sorted by x.
    pub points: Vec<(f64, f64)>,
}

/// The curves of a sweep over `axis`, grouped by unit (`FLOP/s`, `B/s`, ...).
pub fn curves(report: &Report, axis: &str) -> BTreeMap<String, Vec<Curve>> {
    let rows: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.is_valid())
        .filter_map(|r| {
            let x = axis_value(&r.workload, axis)?;
            let t = r.throughput.as_ref()?;
            Some((r, x, t))
        })
        .collect();
    let devices: BTreeSet<usize> = rows.iter().map(|(r, _, _)| r.device.lead()).collect();
    let mut by_unit: BTreeMap<String, Vec<Curve>> = BTreeMap::new();
    let units: BTreeSet<String> = rows.iter().map(|(_, _, t)| t.unit.clone()).collect();
    for unit in units {
        let in_unit: Vec<_> = rows.iter().filter(|(_, _, t)| t.unit == unit).collect();
        // Settings other than the axis that take more than one value name the series.
        let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (r, _, _) in &in_unit {
            for (k, v) in params(&r.workload) {
                if k != axis {
                    seen.entry(k).or_default().insert(v);
                }
            }
        }
        let varying: BTreeSet<&str> = seen
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, _)| *k)
            .collect();
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (r, x, t) in &in_unit {
            let mut name = r.implementation.clone();
            if devices.len() > 1 {
                name = format!("gpu{} {name}", r.device);
            }
            for (k, v) in params(&r.workload) {
                if varying.contains(k) {
                    name.push_str(&format!(" {k}={v}"));
                }
            }
            series.entry(name).or_default().push((*x as f64, t.value));
        }
        let list = series
            .into_iter()
            .map(|(name, mut points)| {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Curve { name, points }
            })
            .collect();
        by_unit.insert(unit, list);
    }
    by_unit
}

/// One SVG per unit: (unit, document). Empty when no verified result has the axis.
pub fn sweep_svgs(report: &Report, axis: &str) -> Result<Vec<(String, String)>> {
    let title_kind = report
        .results
        .iter()
        .find(|r| axis_value(&r.workload, axis).is_some())
        .map(|r| r.workload.kind())
        .unwrap_or("sweep");
    let device = report
        .devices
        .first()
        .map(|d| format!(" — {}", d.name))
        .unwrap_or_default();
    let mut out = Vec::new();
    for (unit, list) in curves(report, axis) {
        let mut svg = String::new();
        let title = format!("{title_kind}: {unit} against {axis}{device}");
        draw(&list, axis, &unit, &title, &mut svg)?;
        out.push((unit, svg));
    }
    Ok(out)
}

fn axis_desc(axis: &str) -> String {
    match axis {
        "size" => "bytes per array".into(),
        "seq" => "query length (seq)".into(),
        "kv_seq" => "KV length (kv_seq)".into(),
        other => other.to_string(),
    }
}

fn draw(list: &[Curve], axis: &str, unit: &str, title: &str, out: &mut String) -> Result<()> {
    let err = draw_err("sweep");
    let xs: Vec<f64> = list
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .collect();
    let ymax = list
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (div, prefix) = si_scale(ymax);
    let xmin = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let xmax = xs.iter().copied().fold(0.0, f64::max);
    let y1 = (ymax / div * 1.15).max(1e-9);
    let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let y_desc = format!("{prefix}{unit}");
    let x_desc = axis_desc(axis);

    // A wide axis is drawn in log2 coordinates with labels in axis units, so that the ticks of
    // a powers-of-two sweep land on its points (16, 32, 64, …).
    let log = xmin > 0.0 && xmax / xmin >= 8.0;
    let fx = |x: f64| if log { x.log2() } else { x };
    let (a, b) = (fx(xmin), fx(xmax));
    let pad = ((b - a) * 0.04).max(if log { 0.2 } else { 0.5 });
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((a - pad)..(b + pad), 0.0..y1)
        .map_err(&err)?;
    let x_fmt = |v: &f64| {
        if log {
            compact(2f64.powf(*v))
        } else {
            compact(*v)
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_desc.as_str())
        .y_desc(y_desc.as_str())
        .x_labels(if log {
            ((b - a).ceil() as usize + 1).clamp(2, 14)
        } else {
            10
        })
        .x_label_formatter(&x_fmt)
        .light_line_style(RGBColor(246, 246, 246))
        .draw()
        .map_err(&err)?;
    for (i, c) in list.iter().enumerate() {
        let col = color(i);
        let pts: Vec<(f64, f64)> = c.points.iter().map(|&(x, y)| (fx(x), y / div)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
            .map_err(&err)?
            .label(c.name.clone())
            .legend(square_mark(col));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, col.filled())))
            .map_err(&err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, 13, "sweep")?;
    root.present().map_err(&err)?;
    Ok(())
}
