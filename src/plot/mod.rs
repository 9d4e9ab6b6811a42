//! SVG charts (`--plot DIR`, and the HTML report): a roofline of every result against the
//! device's ceilings, sweep curves, and stress/validate timelines.
//!
//! | chart | function | what it shows |
//! |---|---|---|
//! | roofline | [`roofline_svg`] | achieved FLOP/s against arithmetic intensity, under the datasheet roofs (compute per dtype, memory bandwidth) and the measured memory roof |
//! | sweep | [`sweep_svgs`] | throughput against the swept axis, one series per implementation (and per dtype or other varied setting) |
//! | timeline | [`timeline_svg`] | throughput, clocks, temperature and power over time, one line per GPU |
//!
//! Charts are drawn with plotters' SVG backend only: text stays text (the viewer's sans-serif
//! font), nothing is rasterised, and no font files are needed to build or run.

mod curves;
mod roofline;
mod timeline;

pub use curves::{infer_axis, sweep_svgs};
pub use roofline::{roofline_svg, RooflineData};
pub use timeline::{stress_timelines, timeline_svg, Timeline};

use crate::error::{Error, Result};
use crate::report::Report;
use plotters::chart::{ChartContext, SeriesLabelPosition};
use plotters::coord::CoordTranslate;
use plotters::element::{PathElement, Rectangle};
use plotters::prelude::DrawingBackend;
use plotters::style::{Color, RGBColor, WHITE};
use std::path::{Path, PathBuf};

/// Chart size in SVG user units (pixels at 100%).
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 600;

/// Series colours, in the order series are drawn (sorted by name): distinguishable, and readable on white (after the Tableau 10 palette).
pub const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Wraps a plotters error as a one-line library error.
pub(crate) fn draw_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| {
        Error::Io(std::io::Error::other(format!(
            "drawing the {what} chart: {e}"
        )))
    }
}

/// Draws the legend box every chart uses (white, grey border) at `pos`, then presents nothing:
/// the caller still owns the drawing area.
pub(crate) fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
    font_size: u32,
    what: &str,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", font_size))
        .draw()
        .map_err(draw_err(what))
}

/// The legend mark of a data series: a filled square (data points are circles, so every circle
/// in a file is a point).
pub(crate) fn square_mark(c: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x + 5, y - 5), (x + 15, y + 5)], c.filled())
}

/// The legend mark of a roof or reference line: a short stroke of `width`.
pub(crate) fn line_mark(c: RGBColor, width: u32) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(width))
}

/// Whether a chart of [`write_plots`] or [`write_timelines`] may be named `name`
/// (`roofline.svg`, `roofline-1.svg`, `sweep.svg`, `sweep-<unit>.svg`, `timeline.svg`): a
/// file output of that name inside the plot directory would be replaced by a chart.
pub fn may_be_a_chart(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".svg") else {
        return false;
    };
    let numbered = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    let slugged = |rest: &str| !rest.is_empty() && slug(rest) == rest;
    matches!(stem, "roofline" | "sweep" | "timeline")
        || stem.strip_prefix("roofline-").is_some_and(numbered)
        || stem.strip_prefix("sweep-").is_some_and(slugged)
}

/// Writes every chart the report supports into `dir` (created if missing): one roofline per
/// device with results, and with `swept_axis`, the sweep curves (one file per unit). Returns
/// the paths written. Files are written atomically.
pub fn write_plots(report: &Report, dir: &Path, swept_axis: Option<&str>) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("creating the plot directory {}: {e}", dir.display()),
        ))
    })?;
    let mut charts: Vec<(String, String)> = Vec::new();
    for device in 0..report.devices.len().max(1) {
        if let Some(svg) = roofline_svg(report, device)? {
            let name = if device == 0 {
                "roofline.svg".to_string()
            } else {
                format!("roofline-{device}.svg")
            };
            charts.push((name, svg));
        }
    }
    if let Some(axis) = swept_axis {
        let svgs = sweep_svgs(report, axis)?;
        let single = svgs.len() == 1;
        for (unit, svg) in svgs {
            let name = if single {
                "sweep.svg".to_string()
            } else {
                format!("sweep-{}.svg", slug(&unit))
            };
            charts.push((name, svg));
        }
    }
    let mut written = Vec::new();
    for (name, svg) in &charts {
        let path = dir.join(name);
        write_file(&path, svg)?;
        written.push(path);
    }
    // Charts of an earlier run that this one did not draw (a device or a unit it lacks, a run
    // with nothing verified) would pass for this run's: removed, as stale outputs are.
    let drawn = |n: &str| charts.iter().any(|(c, _)| c == n);
    remove_stale_charts(dir, |n| {
        (n.starts_with("roofline") || n.starts_with("sweep")) && !drawn(n)
    });
    Ok(written)
}

/// Removes the regular files in `dir` named as charts ([`may_be_a_chart`]) that `stale` picks.
fn remove_stale_charts(dir: &Path, stale: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if may_be_a_chart(name) && stale(name) {
            crate::output::remove_stale(&e.path());
        }
    }
}

/// Writes one timeline chart of every GPU into `dir` as `timeline.svg`.
pub fn write_timelines(timelines: &[Timeline], dir: &Path) -> Result<Vec<PathBuf>> {
    if timelines.is_empty() {
        remove_stale_charts(dir, |n| n == "timeline.svg");
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("timeline.svg");
    write_file(&path, &timeline_svg(timelines)?)?;
    Ok(vec![path])
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    crate::export::write_atomic(path, text.as_bytes()).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("writing {}: {e}", path.display()),
        ))
    })
}

/// `FLOP/s` → `flop_s`: a file-name-safe form.
pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Scale and unit prefix for an axis whose largest value is `max`: (divisor, prefix).
pub(crate) fn si_scale(max: f64) -> (f64, &'static str) {
    for (d, p) in [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if max >= d {
            return (d, p);
        }
    }
    (1.0, "")
}

/// Tick label for a log axis: 1, 10, 100, 1k, 10k, 1M, ... compact and exact enough.
/// Values the prefixes cannot write compactly (below 0.01, which would print as 0, or from
/// 1e18, which would print a run of zeros before `P`) are written with an exponent: `2.5e-3`,
/// `1e300`.
pub(crate) fn compact(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && a.is_finite() && !(0.01..1e18).contains(&a) {
        let s = format!("{v:.2e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    let (d, p) = si_scale(a);
    let x = v / d;
    if (x - x.round()).abs() < 1e-9 {
        format!("{}{p}", x.round())
    } else if x.abs() >= 10.0 {
        format!("{x:.0}{p}")
    } else {
        let t = format!("{x:.2}");
        format!("{}{p}", t.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_names_are_told_from_other_files() {
        for name in [
            "roofline.svg",
            "roofline-3.svg",
            "sweep.svg",
            "sweep-gb_s.svg",
            "timeline.svg",
        ] {
            assert!(may_be_a_chart(name), "{name}");
        }
        for name in [
            "roofline.json",
            "roofline-x.svg",
            "sweep-.svg",
            "sweep-GB.svg",
            "mine.svg",
        ] {
            assert!(!may_be_a_chart(name), "{name}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(compact(1000.0), "1k");
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(0.0025), "2.5e-3");
        assert_eq!(compact(1e300), "1e300");
        assert_eq!(compact(2.5e20), "2.5e20");
        assert_eq!(compact(9.99e17), "999P");
        assert_eq!(compact(2.5e12), "2.5T");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(compact(64.0), "64");
        assert_eq!(slug("FLOP/s"), "flop_s");
        assert_eq!(si_scale(3.2e12), (1e12, "T"));
    }
}
