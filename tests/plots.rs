//! Charts: the SVGs parse as XML and hold the expected series (names in the legend, one filled
//! circle per data point in the series' colour). Reports come from mock runs of the binary.

mod common;

use common::{mock_report, mock_report_with_fault, MATMUL_SWEEP};
use gpuvet::plot::{self, Timeline, COLORS};
use gpuvet::report::Report;
use std::collections::BTreeMap;
use std::path::Path;

fn hex(i: usize) -> String {
    let c = COLORS[i % COLORS.len()];
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// What an SVG shows: its texts and the filled circles per colour.
struct Svg {
    texts: Vec<String>,
    circles: BTreeMap<String, usize>,
    /// Polylines per stroke colour (mesh lines are grey or black, series in their colour).
    polylines: BTreeMap<String, usize>,
}

impl Svg {
    /// Whether some text of the SVG satisfies `f`.
    fn has_text(&self, f: impl Fn(&str) -> bool) -> bool {
        self.texts.iter().any(|t| f(t))
    }
}

fn parse(path: &Path) -> Svg {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let mut s = Svg {
        texts: vec![],
        circles: BTreeMap::new(),
        polylines: BTreeMap::new(),
    };
    for n in doc.descendants() {
        match n.tag_name().name() {
            "text" => s.texts.push(n.text().unwrap_or("").trim().to_string()),
            "circle" => {
                *s.circles
                    .entry(n.attribute("fill").unwrap_or("").to_uppercase())
                    .or_default() += 1
            }
            "polyline" => {
                *s.polylines
                    .entry(n.attribute("stroke").unwrap_or("").to_uppercase())
                    .or_default() += 1
            }
            _ => {}
        }
    }
    s
}

/// Expected roofline series: verified compute results grouped as `kind dtype · impl`.
fn expected_roofline(r: &Report) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for x in r.results.iter().filter(|x| x.is_valid() && x.flops > 0.0) {
        *m.entry(format!(
            "{} {} · {}",
            x.workload.kind(),
            x.dtype,
            x.implementation
        ))
        .or_default() += 1;
    }
    m
}

#[test]
fn roofline_has_every_verified_result_and_the_ceilings() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = mock_report(dir.path(), "run", "");
    let files = plot::write_plots(&r, &dir.path().join("plots"), None).unwrap();
    assert_eq!(files, vec![dir.path().join("plots/roofline.svg")]);
    let svg = parse(&files[0]);
    let want = expected_roofline(&r);
    assert!(want.len() >= 3, "{want:?}");
    for (i, (name, n)) in want.iter().enumerate() {
        assert!(
            svg.texts.contains(name),
            "legend lacks {name}: {:?}",
            svg.texts
        );
        assert_eq!(svg.circles.get(&hex(i)), Some(n), "points of {name}");
    }
    // every circle is a data point
    assert_eq!(
        svg.circles.values().sum::<usize>(),
        want.values().sum::<usize>()
    );
    // ceilings: the datasheet bandwidth, the measured one, and the compute roofs
    assert!(svg.has_text(|t| t.contains("(datasheet)") && t.starts_with("memory")));
    assert!(svg.has_text(|t| t.contains("measured, memory.copy")));
    assert!(svg.has_text(|t| t.starts_with("bf16") && t.contains("400.0 TFLOP/s")));
    assert!(svg.has_text(|t| t.starts_with("int8") && t.contains("OP/s")));
}

#[test]
fn wrong_results_are_not_plotted() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = mock_report_with_fault(dir.path(), "fault", "", "matmul.bf16");
    assert!(r.results.iter().any(|x| !x.is_valid()));
    let svg = plot::roofline_svg(&r, 0).unwrap().unwrap();
    assert!(!svg.contains("matmul bf16"), "a wrong result was drawn");
    assert!(svg.contains("matmul f32 · mock"));
}

#[test]
fn matmul_sweep_curves_per_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = mock_report(dir.path(), "sweep", MATMUL_SWEEP);
    assert_eq!(plot::infer_axis(&r).as_deref(), Some("m"));
    let files = plot::write_plots(&r, dir.path(), Some("m")).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["roofline.svg", "sweep.svg"]);
    let svg = parse(&dir.path().join("sweep.svg"));
    // series sorted by name: bf16 first, each with its 4 points
    for (i, name) in ["mock dtype=bf16", "mock dtype=f32"].iter().enumerate() {
        assert!(svg.texts.iter().any(|t| t == name), "{:?}", svg.texts);
        assert_eq!(svg.circles.get(&hex(i)), Some(&4), "{name}");
    }
    assert_eq!(svg.polylines.get(&hex(0)), Some(&1));
    assert_eq!(svg.polylines.get(&hex(1)), Some(&1));
    // powers of two on a log axis: the ticks are the swept values
    for tick in ["16", "32", "64", "128"] {
        assert!(svg.texts.iter().any(|t| t == tick), "no tick {tick}");
    }
    assert!(svg.has_text(|t| t.ends_with("FLOP/s")));
}

#[test]
fn memory_sweep_over_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = mock_report(
        dir.path(),
        "mem",
        "bench memory --size 1MiB,2MiB,4MiB --op copy,triad",
    );
    assert_eq!(plot::infer_axis(&r).as_deref(), Some("size"));
    let svgs = plot::sweep_svgs(&r, "size").unwrap();
    assert_eq!(svgs.len(), 1);
    assert_eq!(svgs[0].0, "B/s");
    let path = dir.path().join("mem.svg");
    std::fs::write(&path, &svgs[0].1).unwrap();
    let svg = parse(&path);
    for (i, name) in ["mock op=copy", "mock op=triad"].iter().enumerate() {
        assert!(svg.texts.iter().any(|t| t == name), "{:?}", svg.texts);
        assert_eq!(svg.circles.get(&hex(i)), Some(&3));
    }
    assert!(svg.has_text(|t| t == "bytes per array"));
}

#[test]
fn timelines_one_line_per_gpu_per_panel() {
    let dir = tempfile::tempdir().unwrap();
    let t: Vec<f64> = (0..20).map(|i| i as f64).collect();
    let mk = |gpu: &str, drop: f64, gap: bool| {
        let mut series = BTreeMap::new();
        let mut thr: Vec<f64> = t.iter().map(|s| 500.0 - drop * s).collect();
        if gap {
            thr[10] = f64::NAN;
        }
        series.insert("throughput (TFLOP/s)".to_string(), thr);
        series.insert(
            "temperature (°C)".to_string(),
            t.iter().map(|s| 40.0 + s).collect(),
        );
        Timeline {
            gpu: gpu.into(),
            t_s: t.clone(),
            series,
        }
    };
    let tls = vec![mk("0 H100", 0.0, false), mk("1 H100", 3.0, true)];
    let files = plot::write_timelines(&tls, dir.path()).unwrap();
    let svg = parse(&files[0]);
    for s in [
        "throughput (TFLOP/s)",
        "temperature (°C)",
        "0 H100",
        "1 H100",
    ] {
        assert!(svg.texts.iter().any(|t| t == s), "no {s}: {:?}", svg.texts);
    }
    // GPU 0: one line in each of the 2 panels; GPU 1: the NaN splits its throughput line in two
    assert_eq!(svg.polylines.get(&hex(0)), Some(&2));
    assert_eq!(svg.polylines.get(&hex(1)), Some(&3));
    // a series of the wrong length is refused, not drawn
    let mut bad = tls.clone();
    bad[0].t_s.pop();
    assert!(plot::timeline_svg(&bad).is_err());
    assert!(plot::timeline_svg(&[]).is_err());
}

#[test]
fn nothing_to_draw_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, _) = mock_report(dir.path(), "run", "");
    r.results.clear();
    assert!(plot::write_plots(&r, &dir.path().join("p"), Some("m"))
        .unwrap()
        .is_empty());
}

/// A report file named like a chart inside the plot directory (`--json plots/roofline.svg
/// --plot plots`) is refused before the run: the chart would have replaced the JSON, silently.
#[test]
fn an_output_named_as_a_chart_in_the_plot_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    std::fs::create_dir(&plots).unwrap();
    let run = |json: &Path| {
        common::quick_mock(
            "--json {} --plot {} bench memory --size 1MiB",
            &[json, &plots],
        )
    };
    let json = plots.join("roofline.svg");
    common::exits_2_saying(&mut run(&json), "name of a chart");
    assert!(!json.exists());
    // Another name in the same directory is fine.
    let json = plots.join("run.json");
    run(&json).assert().code(0);
    assert!(json.exists() && plots.join("roofline.svg").exists());
}

/// Charts an earlier run left in the plot directory that this run does not draw (another
/// device, another unit) are removed, so they cannot pass for this run's; other files stay.
#[test]
fn charts_of_an_earlier_run_are_not_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = mock_report(dir.path(), "run", "");
    let plots = dir.path().join("p");
    std::fs::create_dir(&plots).unwrap();
    for stale in [
        "roofline-1.svg",
        "sweep-gb_s.svg",
        "mine.svg",
        "roofline.json",
    ] {
        std::fs::write(plots.join(stale), "old").unwrap();
    }
    let written = plot::write_plots(&r, &plots, None).unwrap();
    assert!(
        written.iter().any(|p| p.ends_with("roofline.svg")),
        "{written:?}"
    );
    assert!(!plots.join("roofline-1.svg").exists());
    assert!(!plots.join("sweep-gb_s.svg").exists());
    assert!(plots.join("mine.svg").exists() && plots.join("roofline.json").exists());
}
