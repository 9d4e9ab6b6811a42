//! The roofline: every verified result as a point (arithmetic intensity, achieved rate) under
//! the device's ceilings, so that "how far from what this GPU can do" is one look.

use super::{color, compact, draw_err, draw_legend, line_mark, square_mark, HEIGHT, WIDTH};
use crate::error::Result;
use crate::report::Report;
use crate::workload::Workload;
use plotters::prelude::*;
use std::collections::BTreeMap;

/// What a roofline chart draws, computed from a report (kept apart from the drawing so that it
/// can be checked and reused).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RooflineData {
    pub device: String,
    /// Series name (`matmul bf16 · cublaslt`) → points (FLOP per byte, FLOP/s).
    pub series: BTreeMap<String, Vec<(f64, f64)>>,
    /// Datasheet compute peaks of the dtypes present, FLOP/s (OP/s for int8).
    pub compute_peaks: BTreeMap<String, f64>,
    /// Datasheet memory bandwidth, B/s.
    pub bandwidth: Option<f64>,
    /// The best measured memory bandwidth (B/s) and the result it came from.
    pub measured_bandwidth: Option<(f64, String)>,
}

impl RooflineData {
    /// Points of the verified compute results on `device`, and its ceilings.
    pub fn from_report(report: &Report, device: usize) -> RooflineData {
        let info = report.devices.get(device);
        let mut d = RooflineData {
            device: info.map(|i| i.name.clone()).unwrap_or_default(),
            ..Default::default()
        };
        let peaks = info.and_then(|i| i.peaks.as_ref());
        for r in report
            .results
            .iter()
            .filter(|r| r.device == device && r.is_valid())
        {
            let Some(stats) = &r.stats else { continue };
            if stats.median_s <= 0.0 || r.bytes == 0 {
                continue;
            }
            if let Workload::Memory(_) = r.workload {
                let bw = r.bytes as f64 / stats.median_s;
                if !matches!(&d.measured_bandwidth, Some((b, _)) if *b >= bw) {
                    d.measured_bandwidth = Some((bw, r.id.clone()));
                }
                continue;
            }
            if r.flops <= 0.0 {
                continue;
            }
            let rate = r.flops / stats.median_s;
            let name = format!("{} {} · {}", r.workload.kind(), r.dtype, r.implementation);
            d.series
                .entry(name)
                .or_default()
                .push((r.flops / r.bytes as f64, rate));
            if let Some(p) = peaks.and_then(|p| p.flops.get(&r.dtype)) {
                if *p > 0.0 {
                    d.compute_peaks.insert(r.dtype.to_string(), *p);
                }
            }
        }
        d.bandwidth = peaks.and_then(|p| p.memory_bandwidth).filter(|b| *b > 0.0);
        d
    }

    /// True when there is nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.measured_bandwidth.is_none()
    }

    /// Axis extents (x0, x1, y0, y1), padded, covering points, ridge points and roofs.
    fn extents(&self) -> (f64, f64, f64, f64) {
        let mut xs: Vec<f64> = self.series.values().flatten().map(|p| p.0).collect();
        let mut ys: Vec<f64> = self.series.values().flatten().map(|p| p.1).collect();
        let bws: Vec<f64> = self
            .bandwidth
            .iter()
            .copied()
            .chain(self.measured_bandwidth.iter().map(|m| m.0))
            .collect();
        for &p in self.compute_peaks.values() {
            ys.push(p);
            for &bw in &bws {
                xs.push(p / bw);
            }
        }
        if xs.is_empty() {
            xs.push(1.0);
        }
        if ys.is_empty() {
            // only a memory roof: show it over intensities 0.1 to 100
            let bw = bws.first().copied().unwrap_or(1.0);
            ys.extend([bw * 0.1, bw * 100.0]);
            xs.extend([0.1, 100.0]);
        }
        // Only finite, positive values set the axes, and the bounds stay finite: a report read
        // from disk may carry any number, and a log axis ending at infinity never finishes
        // placing its ticks (a fuzzed report once hung the plot here).
        let finite = |v: &[f64]| -> Vec<f64> {
            v.iter()
                .copied()
                .filter(|x| x.is_finite() && *x > 0.0)
                .collect()
        };
        let (xs, ys) = (finite(&xs), finite(&ys));
        let lo = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let axis = |lo: f64, hi: f64, floor: f64| {
            let lo = lo.clamp(floor, 1e300);
            (lo, hi.clamp(lo * 10.0, 1e301))
        };
        let (x0, x1) = axis(lo(&xs) / 4.0, hi(&xs) * 4.0, 1e-6);
        let (y0, y1) = axis(lo(&ys) / 4.0, hi(&ys) * 2.0, 1e-3);
        (x0, x1, y0, y1)
    }
}

/// The roofline chart of `device` as an SVG document, or `None` when it has no verified compute
/// or memory result.
pub fn roofline_svg(report: &Report, device: usize) -> Result<Option<String>> {
    let data = RooflineData::from_report(report, device);
    if data.is_empty() {
        return Ok(None);
    }
    let mut svg = String::new();
    draw(&data, &mut svg)?;
    Ok(Some(svg))
}

/// The chart a roofline is drawn on: log-log, FLOP per byte against FLOP/s.
type LogChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>;

fn draw(d: &RooflineData, out: &mut String) -> Result<()> {
    let err = draw_err("roofline");
    let (x0, x1, y0, y1) = d.extents();
    let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let title = if d.device.is_empty() {
        "Roofline".to_string()
    } else {
        format!("Roofline — {}", d.device)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("arithmetic intensity (FLOP per byte of minimum traffic)")
        .y_desc("achieved FLOP/s (OP/s for int8)")
        .x_label_formatter(&|v| compact(*v))
        .y_label_formatter(&|v| compact(*v))
        .light_line_style(RGBColor(246, 246, 246))
        .draw()
        .map_err(&err)?;

    let top = d.compute_peaks.values().copied().fold(y1 / 2.0, f64::max);
    let x = (x0, x1);
    if let Some(bw) = d.bandwidth {
        let label = format!("memory {} (datasheet)", rate_text(bw, "B/s"));
        memory_roof(&mut chart, bw, x, top, false, label)?;
    }
    if let Some((bw, id)) = &d.measured_bandwidth {
        let label = format!(
            "memory {} (measured, {})",
            rate_text(*bw, "B/s"),
            id.split('/').next().unwrap_or(id)
        );
        memory_roof(&mut chart, *bw, x, top, true, label)?;
    }
    compute_roofs(&mut chart, d, x)?;
    // The results: one colour per series, marked by filled circles (legend marks are squares,
    // so every circle in the file is a data point).
    for (i, (name, pts)) in d.series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 5, c.filled())))
            .map_err(&err)?
            .label(name.clone())
            .legend(square_mark(c));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 13, "roofline")?;
    root.present().map_err(&err)?;
    Ok(())
}

/// A memory roof, bandwidth × intensity, from the left edge up to the highest compute peak
/// `top`: solid for the datasheet, dashed (and teal) for the measured one.
fn memory_roof(
    chart: &mut LogChart,
    bw: f64,
    (x0, x1): (f64, f64),
    top: f64,
    measured: bool,
    label: String,
) -> Result<()> {
    let err = draw_err("roofline");
    let end = (top / bw).min(x1);
    let line = vec![(x0, bw * x0), (end, bw * end)];
    let c = if measured {
        RGBColor(0, 128, 128)
    } else {
        RGBColor(60, 60, 60)
    };
    let drawn = if measured {
        chart.draw_series(DashedLineSeries::new(line, 8, 5, c.stroke_width(2)))
    } else {
        chart.draw_series(LineSeries::new(line, c.stroke_width(2)))
    };
    drawn.map_err(&err)?.label(label).legend(line_mark(c, 2));
    Ok(())
}

/// Compute roofs: flat from the ridge point (where the datasheet memory roof meets them).
/// Dtypes with the same peak share one roof; roofs are told apart by a label at their left end
/// rather than by colour, which is kept for the results.
fn compute_roofs(chart: &mut LogChart, d: &RooflineData, (x0, x1): (f64, f64)) -> Result<()> {
    let err = draw_err("roofline");
    let mut roofs: Vec<(f64, Vec<&str>)> = Vec::new();
    for (dtype, &peak) in &d.compute_peaks {
        match roofs.iter_mut().find(|r| r.0 == peak) {
            Some(r) => r.1.push(dtype),
            None => roofs.push((peak, vec![dtype])),
        }
    }
    let c = RGBColor(70, 70, 70);
    for (i, (peak, dtypes)) in roofs.iter().enumerate() {
        let peak = *peak;
        let start = d.bandwidth.map(|bw| (peak / bw).max(x0)).unwrap_or(x0);
        let unit = if dtypes.iter().all(|t| *t == "int8") {
            "OP/s"
        } else {
            "FLOP/s"
        };
        let drawn = chart
            .draw_series(LineSeries::new(
                vec![(start, peak), (x1, peak)],
                c.stroke_width(1),
            ))
            .map_err(&err)?;
        if i == 0 {
            drawn
                .label("compute peak per dtype (datasheet)")
                .legend(line_mark(c, 1));
        }
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{} {}", dtypes.join(", "), rate_text(peak, unit)),
                (start * 1.05, peak * 1.12),
                ("sans-serif", 12).into_font().color(&c),
            )))
            .map_err(&err)?;
    }
    Ok(())
}

fn rate_text(v: f64, unit: &str) -> String {
    crate::units::si(v, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_stay_finite_whatever_a_report_holds() {
        // A median of 1e-300 s makes a rate of ~1e308 FLOP/s and more: the padded bounds would
        // overflow to infinity, on which the log axis never finishes.
        let mut d = RooflineData::default();
        d.series.insert(
            "matmul".into(),
            vec![
                (1e308, f64::MAX),
                (f64::INFINITY, 1.0),
                (f64::NAN, 2.0),
                (8.0, 1e12),
            ],
        );
        d.compute_peaks.insert("f32".into(), f64::MAX);
        let (x0, x1, y0, y1) = d.extents();
        for v in [x0, x1, y0, y1] {
            assert!(v.is_finite() && v > 0.0, "{x0} {x1} {y0} {y1}");
        }
        assert!(x0 < x1 && y0 < y1);
        let mut svg = String::new();
        draw(&d, &mut svg).unwrap();
        assert!(svg.contains("<svg"));
    }
}
