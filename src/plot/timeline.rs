//! Timelines of stress and validate runs: throughput, clocks, temperature and power over time,
//! one panel per quantity and one line per GPU, so that a GPU that throttles or falls behind
//! its peers shows as a line that bends away from the others.

use super::{color, compact, draw_err, draw_legend, square_mark, HEIGHT, WIDTH};
use crate::backend::Telemetry;
use crate::error::{Error, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One GPU's time series. `series` values are aligned with `t_s`; a missing sample is NaN
/// (drawn as a gap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The GPU's label (`0 NVIDIA H100 80GB HBM3`).
    pub gpu: String,
    /// Seconds since the start of the run.
    pub t_s: Vec<f64>,
    /// Quantity name with its unit (`throughput (TFLOP/s)`, `temperature (°C)`) → values.
    pub series: BTreeMap<String, Vec<f64>>,
}

/// Reads one quantity from a telemetry sample.
type Getter = fn(&Telemetry) -> Option<f64>;

/// Names of the series [`Timeline::from_samples`] fills.
pub const THROUGHPUT: &str = "throughput (TFLOP/s)";
pub const SM_CLOCK: &str = "SM clock (MHz)";
pub const MEMORY_CLOCK: &str = "memory clock (MHz)";
pub const TEMPERATURE: &str = "temperature (°C)";
pub const POWER: &str = "power (W)";

impl Timeline {
    /// A timeline from per-interval samples: (seconds, FLOP/s, device state). Telemetry fields
    /// that no sample has are left out; ones some samples lack become NaN.
    pub fn from_samples(gpu: &str, samples: &[(f64, f64, Option<Telemetry>)]) -> Timeline {
        let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        series.insert(
            THROUGHPUT.into(),
            samples.iter().map(|s| s.1 / 1e12).collect(),
        );
        let fields: [(&str, Getter); 4] = [
            (SM_CLOCK, |t| t.sm_clock_mhz),
            (MEMORY_CLOCK, |t| t.memory_clock_mhz),
            (TEMPERATURE, |t| t.temperature_c),
            (POWER, |t| t.power_w),
        ];
        for (name, get) in fields {
            let v: Vec<f64> = samples
                .iter()
                .map(|s| s.2.as_ref().and_then(get).unwrap_or(f64::NAN))
                .collect();
            if v.iter().any(|x| x.is_finite()) {
                series.insert(name.into(), v);
            }
        }
        Timeline {
            gpu: gpu.into(),
            t_s: samples.iter().map(|s| s.0).collect(),
            series,
        }
    }

    /// A timeline of device state alone (no throughput), from telemetry sampled every
    /// `interval_s` seconds — what `validate` collects while its suite runs.
    pub fn from_telemetry(gpu: &str, interval_s: f64, samples: &[Telemetry]) -> Timeline {
        let with: Vec<(f64, f64, Option<Telemetry>)> = samples
            .iter()
            .enumerate()
            .map(|(i, t)| ((i + 1) as f64 * interval_s, f64::NAN, Some(t.clone())))
            .collect();
        let mut t = Timeline::from_samples(gpu, &with);
        t.series.remove(THROUGHPUT);
        t
    }

    /// The timeline of one device of a stress run (`gpuvet stress`).
    pub fn from_stress(d: &crate::stress::DeviceStress, int8: bool) -> Timeline {
        let samples: Vec<(f64, f64, Option<Telemetry>)> = d
            .timeline
            .iter()
            .map(|p| (p.t_s, p.throughput, p.telemetry.clone()))
            .collect();
        let mut t = Timeline::from_samples(&format!("{} {}", d.device, d.name), &samples);
        if int8 {
            // integer work is counted in operations, not floating-point operations
            if let Some(v) = t.series.remove(THROUGHPUT) {
                t.series.insert("throughput (TOP/s)".into(), v);
            }
        }
        t
    }

    /// Rejects series whose length differs from the time axis.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in &self.series {
            if v.len() != self.t_s.len() {
                return Err(Error::invalid(format!(
                    "timeline of {}: series `{name}` has {} values for {} times",
                    self.gpu,
                    v.len(),
                    self.t_s.len()
                )));
            }
        }
        Ok(())
    }
}

/// One timeline per device of a stress run, for [`timeline_svg`] and the HTML report.
pub fn stress_timelines(s: &crate::stress::StressReport) -> Vec<Timeline> {
    let int8 = s.workload.dtype() == crate::dtype::DType::Int8;
    s.devices
        .iter()
        .filter(|d| !d.timeline.is_empty())
        .map(|d| Timeline::from_stress(d, int8))
        .collect()
}

/// Splits a series into runs of finite points (NaN breaks the line).
fn segments(t: &[f64], v: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (&x, &y) in t.iter().zip(v) {
        if x.is_finite() && y.is_finite() {
            out.last_mut().expect("never empty").push((x, y));
        } else if !out.last().expect("never empty").is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// One SVG with a panel per quantity (the union over GPUs) and a line per GPU in each.
pub fn timeline_svg(timelines: &[Timeline]) -> Result<String> {
    for t in timelines {
        t.validate()?;
    }
    let names: BTreeSet<&String> = timelines.iter().flat_map(|t| t.series.keys()).collect();
    // Throughput first: it is what the run is about.
    let mut names: Vec<&String> = names.into_iter().collect();
    names.sort_by_key(|n| (n.as_str() != THROUGHPUT, n.as_str()));
    if names.is_empty() {
        return Err(Error::invalid("a timeline chart needs at least one series"));
    }
    let err = draw_err("timeline");
    let tmax = timelines
        .iter()
        .flat_map(|t| t.t_s.iter().copied())
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max)
        .max(1e-3);
    let panel_h = 200u32;
    let height = (panel_h * names.len() as u32 + 60).max(HEIGHT / 2);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let root = root.titled("Timeline", ("sans-serif", 22)).map_err(&err)?;
        let panels = root.split_evenly((names.len(), 1));
        for (panel, name) in panels.iter().zip(&names) {
            let vals: Vec<f64> = timelines
                .iter()
                .filter_map(|t| t.series.get(*name))
                .flatten()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if lo.is_finite() && hi.is_finite() {
                let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.02).max(1e-6);
                (
                    (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::MIN }),
                    hi + pad,
                )
            } else {
                (0.0, 1.0)
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(name.as_str(), ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(64)
                .build_cartesian_2d(0.0..tmax, lo..hi)
                .map_err(&err)?;
            chart
                .configure_mesh()
                .x_desc("seconds")
                .x_label_formatter(&|v| compact(*v))
                .y_label_formatter(&|v| format!("{v}"))
                .light_line_style(RGBColor(246, 246, 246))
                .draw()
                .map_err(&err)?;
            for (i, t) in timelines.iter().enumerate() {
                let Some(v) = t.series.get(*name) else {
                    continue;
                };
                let c = color(i);
                let mut first = true;
                for seg in segments(&t.t_s, v) {
                    let drawn = chart
                        .draw_series(LineSeries::new(seg, c.stroke_width(2)))
                        .map_err(&err)?;
                    if first {
                        drawn.label(t.gpu.clone()).legend(square_mark(c));
                        first = false;
                    }
                }
            }
            draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 12, "timeline")?;
        }
        root.present().map_err(&err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stress_devices_become_timelines() {
        use crate::stress::{DeviceStress, StressReport, TimelinePoint};
        use crate::workload::{MatmulSpec, Workload};
        let dev = |i: usize, pts: usize| DeviceStress {
            device: i,
            name: "GPU".into(),
            uuid: None,
            iterations: 1,
            checks: 1,
            checksum: String::new(),
            verified: true,
            mismatches: vec![],
            median_throughput: Some(1e15),
            median_power_w: None,
            timeline: (0..pts)
                .map(|k| TimelinePoint {
                    t_s: k as f64 + 1.0,
                    throughput: 1e15,
                    iterations: 1,
                    telemetry: Some(Telemetry {
                        power_w: Some(600.0),
                        ..Default::default()
                    }),
                })
                .collect(),
            error: None,
        };
        let s = StressReport {
            workload: Workload::Matmul(MatmulSpec::new(8, 8, 8, crate::dtype::DType::Int8)),
            duration_s: 3.0,
            interrupted: false,
            devices: vec![dev(0, 3), dev(1, 0)],
            consistent_across_devices: true,
            verdict: crate::stress::StressVerdict::Pass,
            reasons: vec![],
        };
        let t = stress_timelines(&s);
        assert_eq!(t.len(), 1, "a device without samples has no timeline");
        assert_eq!(t[0].gpu, "0 GPU");
        assert_eq!(t[0].series["throughput (TOP/s)"], vec![1000.0; 3]);
        assert_eq!(t[0].series[POWER], vec![600.0; 3]);
        assert!(timeline_svg(&t).unwrap().contains("throughput (TOP/s)"));
    }

    #[test]
    fn nan_breaks_lines() {
        let s = segments(
            &[0.0, 1.0, 2.0, 3.0, 4.0],
            &[1.0, f64::NAN, 2.0, 3.0, f64::NAN],
        );
        assert_eq!(s, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }

    #[test]
    fn from_samples_keeps_known_fields() {
        let tel = Telemetry {
            sm_clock_mhz: Some(1980.0),
            temperature_c: Some(60.0),
            ..Default::default()
        };
        let t = Timeline::from_samples(
            "0 GPU",
            &[(1.0, 5e14, Some(tel.clone())), (2.0, 4e14, None)],
        );
        assert_eq!(t.series[THROUGHPUT], vec![500.0, 400.0]);
        assert_eq!(t.series[SM_CLOCK][0], 1980.0);
        assert!(t.series[TEMPERATURE][1].is_nan());
        assert!(!t.series.contains_key(POWER));
        let v = Timeline::from_telemetry("1 GPU", 0.5, &[tel.clone(), tel]);
        assert_eq!(v.t_s, vec![0.5, 1.0]);
        assert!(!v.series.contains_key(THROUGHPUT));
        assert_eq!(v.series[SM_CLOCK], vec![1980.0, 1980.0]);
        t.validate().unwrap();
        let mut bad = t.clone();
        bad.t_s.pop();
        assert!(bad.validate().is_err());
    }
}
