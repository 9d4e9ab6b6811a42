//! Fleet aggregation of per-node verdict files: distributions per SKU, outliers, nodes to drain,
//! every output format, and clear errors for files that are not verdicts.

mod common;

use common::{assert_any_contains, words_with};
use gpuvet::commands::aggregate::run as run_aggregate;
use gpuvet::validate::aggregate::{load_verdicts, render, summarize, AggregateArgs, FleetFormat};
use gpuvet::validate::{
    Check, CheckKind, Finding, GpuVerdict, MetricValue, NodeVerdict, Verdict, VerdictSettings,
    VERDICT_KIND, VERDICT_SCHEMA_VERSION,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A GPU verdict with a bf16 matmul figure and a copy bandwidth.
fn gpu(index: usize, sku: &str, bf16: f64, copy: f64, verdict: Verdict) -> GpuVerdict {
    let mut metrics = BTreeMap::new();
    metrics.insert(
        "matmul.bf16".to_string(),
        MetricValue {
            value: bf16,
            unit: "FLOP/s".into(),
            result_id: "matmul.bf16.8192x8192x8192.nk/cublaslt".into(),
            peak: Some(989.4e12),
            expected: Some(791.5e12),
            ratio: Some(bf16 / 791.5e12),
            value_high: None,
        },
    );
    metrics.insert(
        "memory.copy".to_string(),
        MetricValue {
            value: copy,
            unit: "B/s".into(),
            result_id: "memory.copy.4GiB/kernel".into(),
            peak: None,
            expected: None,
            ratio: None,
            value_high: None,
        },
    );
    let findings = match verdict {
        Verdict::Pass => vec![],
        v => vec![Finding::new(v, format!("synthetic problem on GPU {index}"))],
    };
    let check = Check::new(CheckKind::Health, findings);
    GpuVerdict {
        index,
        name: "NVIDIA H100 80GB HBM3".into(),
        uuid: Some(format!("GPU-{index:08}")),
        pci_bus_id: Some(format!("00000000:{:02X}:00.0", index + 0x18)),
        serial: Some(format!("S{index}")),
        sku: Some(sku.into()),
        detected_sku: Some(sku.into()),
        peaks_computed: false,
        verdict,
        reasons: check.reasons().collect(),
        checks: vec![check],
        metrics,
    }
}

/// An H100 at its expected bf16 rate and copy bandwidth, judged `verdict`.
fn h100(index: usize, verdict: Verdict) -> GpuVerdict {
    gpu(index, "h100-sxm", 790e12, 2.9e12, verdict)
}

fn node(host: &str, started: &str, gpus: Vec<GpuVerdict>) -> NodeVerdict {
    let verdict = gpus
        .iter()
        .map(|g| g.verdict)
        .max()
        .unwrap_or(Verdict::Fail);
    NodeVerdict {
        schema_version: VERDICT_SCHEMA_VERSION,
        kind: VERDICT_KIND.into(),
        hostname: host.into(),
        started_at: started.into(),
        tool_version: "0.1.0".into(),
        backend: "cuda".into(),
        verdict,
        exit_code: verdict.exit_code(false),
        reasons: gpus
            .iter()
            .flat_map(|g| {
                g.reasons
                    .iter()
                    .map(move |r| format!("GPU {}: {r}", g.index))
            })
            .collect(),
        settings: VerdictSettings {
            expect: None,
            quick: true,
            duration_s: None,
            tolerance_pct: 10.0,
            straggler_pct: 10.0,
        },
        gpus,
        node_type: None,
        node_checks: Vec::new(),
        node_metrics: Default::default(),
        pairs: Vec::new(),
    }
}

/// Four H100 nodes (one with a slow GPU, one failing) and one A100 node.
fn fleet() -> Vec<NodeVerdict> {
    let h = |i, bf16| gpu(i, "h100-sxm", bf16, 2.9e12, Verdict::Pass);
    vec![
        node(
            "node-a",
            "2026-11-28T10:00:00Z",
            (0..4).map(|i| h(i, 790e12)).collect(),
        ),
        node(
            "node-b",
            "2026-11-28T10:00:00Z",
            vec![h(0, 795e12), h(1, 640e12), h(2, 792e12), h(3, 788e12)],
        ),
        node(
            "node-c",
            "2026-11-28T10:00:00Z",
            vec![
                h(0, 791e12),
                gpu(1, "h100-sxm", 789e12, 2.9e12, Verdict::Fail),
                h(2, 793e12),
                h(3, 790e12),
            ],
        ),
        node(
            "node-d",
            "2026-11-28T10:00:00Z",
            (0..4).map(|i| h(i, 786e12)).collect(),
        ),
        node(
            "node-e",
            "2026-11-28T10:00:00Z",
            (0..2)
                .map(|i| gpu(i, "a100-sxm-80gb", 268e12, 1.8e12, Verdict::Pass))
                .collect(),
        ),
    ]
}

fn write_fleet(dir: &Path, nodes: &[NodeVerdict]) -> Vec<PathBuf> {
    nodes
        .iter()
        .map(|n| {
            let p = dir.join(format!("{}.json", n.hostname));
            std::fs::write(&p, n.to_json()).unwrap();
            p
        })
        .collect()
}

#[test]
fn summary_has_distributions_outliers_and_drains() {
    let s = summarize(&fleet(), 10.0);
    assert_eq!((s.nodes, s.gpus), (5, 18));
    assert_eq!((s.nodes_pass, s.nodes_warn, s.nodes_fail), (4, 0, 1));
    let h100 = s.skus.iter().find(|k| k.sku == "h100-sxm").unwrap();
    assert_eq!((h100.gpus, h100.pass, h100.fail), (16, 15, 1));
    let bf16 = h100
        .metrics
        .iter()
        .find(|m| m.metric == "matmul.bf16")
        .unwrap();
    assert_eq!(bf16.gpus, Some(16));
    assert_eq!(bf16.min, 640e12);
    assert_eq!(bf16.max, 795e12);
    assert!((bf16.median - 790e12).abs() < 1e12, "{}", bf16.median);
    assert_eq!(bf16.expected, Some(791.5e12));
    // The slow GPU is an outlier although its node's verdict is PASS.
    assert_eq!(s.outliers.len(), 1);
    let o = &s.outliers[0];
    assert_eq!(
        (o.host.as_str(), o.gpu, o.metric.as_str()),
        ("node-b", 1, "matmul.bf16")
    );
    assert!(o.below_pct > 18.0 && o.below_pct < 20.0, "{}", o.below_pct);
    assert_eq!(s.outlier_nodes, vec!["node-b".to_string()]);
    // The failing node is the one to drain, with its reason.
    assert_eq!(s.drain.len(), 1);
    assert_eq!(s.drain[0].host, "node-c");
    assert!(s.drain[0].reasons[0].contains("synthetic problem on GPU 1"));
    // The A100s are their own population: no outliers against the H100 median.
    let a100 = s.skus.iter().find(|k| k.sku == "a100-sxm-80gb").unwrap();
    assert_eq!(a100.gpus, 2);
}

#[test]
fn every_format_renders() {
    let nodes = fleet();
    let s = summarize(&nodes, 10.0);
    let table = render(&nodes, &s, FleetFormat::Table, false).unwrap();
    assert!(
        table.contains("h100-sxm") && table.contains("790.0 TFLOP/s"),
        "{table}"
    );
    assert!(
        table.contains("node-b") && table.contains("node-c"),
        "{table}"
    );
    assert!(
        table.contains("5 nodes (18 GPUs): nodes 4 PASS, 0 WARN, 1 FAIL; 1 to drain"),
        "{table}"
    );
    let md = render(&nodes, &s, FleetFormat::Markdown, false).unwrap();
    assert!(
        md.contains("## Nodes to drain") && md.contains("| node-c |"),
        "{md}"
    );
    assert!(md.contains("## Outliers"));
    let json = render(&nodes, &s, FleetFormat::Json, false).unwrap();
    let back: gpuvet::validate::aggregate::FleetSummary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let csv = render(&nodes, &s, FleetFormat::Csv, false).unwrap();
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 18 * 2);
    let hdr = rd.headers().unwrap().clone();
    let col = |name: &str| hdr.iter().position(|h| h == name).unwrap();
    let outliers: Vec<_> = rows
        .iter()
        .filter(|r| &r[col("outlier")] == "true")
        .collect();
    assert_eq!(outliers.len(), 1);
    assert_eq!(&outliers[0][col("host")], "node-b");
    assert_eq!(&outliers[0][col("uuid")], "GPU-00000001");
}

#[test]
fn directory_is_read_and_exit_code_says_drain() {
    let dir = tempfile::tempdir().unwrap();
    write_fleet(dir.path(), &fleet());
    // Other files in the directory are not verdicts and are not read.
    std::fs::write(dir.path().join("slurm-42.out"), "log text").unwrap();
    let out = dir.path().join("fleet.md");
    let args = AggregateArgs {
        paths: vec![dir.path().to_path_buf()],
        format: FleetFormat::Markdown,
        output: Some(out.clone()),
        outlier_pct: 10.0,
        price: None,
        also: Vec::new(),
    };
    assert_eq!(run_aggregate(&args, false).unwrap(), 1);
    assert!(std::fs::read_to_string(&out).unwrap().contains("node-c"));
    // A JSON view written into the directory read would be read as a verdict next time, and
    // refused: it is refused now, before anything is written.
    let into_dir = AggregateArgs {
        format: FleetFormat::Json,
        output: Some(dir.path().join("fleet.json")),
        ..args.clone()
    };
    let e = run_aggregate(&into_dir, false).unwrap_err().to_string();
    assert!(e.contains("would land among the verdicts of"), "{e}");
    assert!(!dir.path().join("fleet.json").exists());
    // Without the failing node nothing is to be drained: exit 0.
    let dir2 = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = write_fleet(dir2.path(), &fleet())
        .into_iter()
        .filter(|p| !p.ends_with("node-c.json"))
        .collect();
    let args = AggregateArgs {
        paths: files,
        format: FleetFormat::Json,
        output: Some(dir2.path().join("fleet.json")),
        outlier_pct: 10.0,
        price: None,
        also: Vec::new(),
    };
    assert_eq!(run_aggregate(&args, false).unwrap(), 0);
}

#[test]
fn corrupt_or_foreign_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_fleet(dir.path(), &fleet());
    let bad = dir.path().join("node-x.json");
    std::fs::write(
        &bad,
        "{\"kind\": \"gpuvet-verdict\", \"schema_version\": 1, \"hostn",
    )
    .unwrap();
    let err = load_verdicts(&[dir.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("node-x.json") && err.contains("corrupt"),
        "{err}"
    );

    let report = dir.path().join("report.json");
    std::fs::write(&report, "{\"schema_version\": 1, \"results\": []}").unwrap();
    let err = load_verdicts(&[report]).unwrap_err().to_string();
    assert!(err.contains("a gpuvet report, not a verdict"), "{err}");

    let future = dir.path().join("future.json");
    std::fs::write(
        &future,
        format!("{{\"kind\": \"{VERDICT_KIND}\", \"schema_version\": 7}}"),
    )
    .unwrap();
    let err = load_verdicts(&[future]).unwrap_err().to_string();
    assert!(err.contains("schema_version 7"), "{err}");

    let missing = dir.path().join("nope.json");
    let err = load_verdicts(&[missing]).unwrap_err().to_string();
    assert!(err.contains("nope.json"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = load_verdicts(&[empty.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no *.json verdict files"), "{err}");

    // Figures no run writes: the fleet view would take a negative rate as its minimum.
    for (what, value) in [("negative", -2.5e11), ("zero", 0.0), ("absurd", 1e300)] {
        let mut n = fleet().remove(0);
        n.gpus[0].metrics.get_mut("matmul.bf16").unwrap().value = value;
        let path = dir.path().join(format!("{what}.json"));
        std::fs::write(&path, n.to_json()).unwrap();
        let err = load_verdicts(&[path]).unwrap_err().to_string();
        assert!(
            err.contains("corrupt") && err.contains("matmul.bf16"),
            "{what}: {err}"
        );
    }
    let mut n = fleet().remove(0);
    n.gpus[0].metrics.get_mut("matmul.bf16").unwrap().ratio = Some(-1.0);
    let path = dir.path().join("ratio.json");
    std::fs::write(&path, n.to_json()).unwrap();
    let err = load_verdicts(&[path]).unwrap_err().to_string();
    assert!(err.contains("ratio to the expectation of -1"), "{err}");
    let mut n = fleet().remove(0);
    n.gpus[0].metrics.get_mut("memory.copy").unwrap().unit = "parsecs".into();
    let path = dir.path().join("unit.json");
    std::fs::write(&path, n.to_json()).unwrap();
    let err = load_verdicts(&[path]).unwrap_err().to_string();
    assert!(err.contains("a unit of `parsecs`"), "{err}");

    // The good files alone still load.
    assert_eq!(load_verdicts(&files).unwrap().len(), 5);
}

#[test]
fn a_rerun_host_counts_once_by_its_latest_verdict() {
    let mut nodes = fleet();
    // An all-reduce figure on node-a and node-c, whose type the database does not know.
    let busbw = |v: f64| {
        BTreeMap::from([(
            "collective.all_reduce".to_string(),
            MetricValue {
                value: v,
                unit: "B/s".into(),
                result_id: "collective.all_reduce.bf16.256MiB.n4/nccl".into(),
                peak: None,
                expected: None,
                ratio: None,
                value_high: None,
            },
        )])
    };
    nodes[0].node_metrics = busbw(150e9);
    nodes[2].node_metrics = busbw(100e9);
    let mut rerun = nodes[2].clone(); // node-c, fixed and rerun later
    rerun.started_at = "2026-11-28T12:00:00Z".into();
    rerun.node_metrics = busbw(200e9);
    for g in rerun.gpus.iter_mut() {
        g.verdict = Verdict::Pass;
    }
    rerun.verdict = Verdict::Pass;
    nodes.push(rerun);
    let s = summarize(&nodes, 10.0);
    assert_eq!(s.nodes, 5);
    assert!(s.drain.is_empty());
    assert_any_contains(&s.notes, "node-c appears more than once");
    // The CSV holds the latest run's rows only, as the table counts it.
    let csv = render(&nodes, &s, FleetFormat::Csv, false).unwrap();
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let node_c: Vec<String> = rd
        .records()
        .map(|r| r.unwrap())
        .filter(|r| &r[0] == "node-c")
        .map(|r| r[1].to_string())
        .collect();
    assert!(!node_c.is_empty());
    assert!(node_c.iter().all(|v| v == "PASS"), "{node_c:?}");
    // Its node row too, once, with the median of its type as the table names it (the node
    // rows once came from every run, and found no median for a type the database lacks).
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let node_rows: Vec<csv::StringRecord> = rd
        .records()
        .map(|r| r.unwrap())
        .filter(|r| &r[0] == "node-c" && &r[2] == "node")
        .collect();
    assert_eq!(node_rows.len(), 1, "{node_rows:?}");
    let row = &node_rows[0];
    assert_eq!(&row[6], "unknown node type (4× h100-sxm)");
    assert_eq!(row[9].parse::<f64>().unwrap(), 200e9);
    assert_eq!(row[13].parse::<f64>().unwrap(), 175e9, "{row:?}");
}

/// A fleet validated in different ways says so: a soak's figures and a quick run's are not
/// alike, nor verdicts judged at other tolerances; a fleet of one kind has no such note.
#[test]
fn a_fleet_of_mixed_settings_is_noted() {
    let mut nodes = fleet();
    assert!(!summarize(&nodes, 10.0)
        .notes
        .iter()
        .any(|n| n.contains("mixes") || n.contains("bars")));
    nodes[1].settings.quick = false;
    nodes[1].settings.duration_s = Some(1800.0);
    nodes[3].settings.tolerance_pct = 20.0;
    let notes = summarize(&nodes, 10.0).notes;
    assert_any_contains(
        &notes,
        "the fleet mixes soaks (1: node-b) with quick runs (4)",
    );
    assert_any_contains(
        &notes,
        "judged at different bars (--tolerance 10 --straggler-pct 10; --tolerance 20 --straggler-pct 10)",
    );
}

/// `gpuvet aggregate` end to end: exit 1 when a node is to be drained, 2 on a corrupt file.
#[test]
fn aggregate_command_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    write_fleet(dir.path(), &fleet());
    let run = |args: &[&std::ffi::OsStr]| {
        assert_cmd::Command::cargo_bin("gpuvet")
            .unwrap()
            .arg("aggregate")
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&[dir.path().as_os_str(), "--format".as_ref(), "csv".as_ref()]);
    assert_eq!(
        ok.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("host,node_verdict,gpu"));
    std::fs::write(dir.path().join("zz-broken.json"), "{ not json").unwrap();
    let bad = run(&[dir.path().as_os_str()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("zz-broken.json"));
}

#[test]
fn prices_give_the_cost_of_the_nodes_to_drain() {
    let dir = tempfile::tempdir().unwrap();
    write_fleet(dir.path(), &fleet());
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[price]\nh100-sxm = 2.5\na100-sxm-80gb = 1.5\n").unwrap();
    // The fleet view goes elsewhere: a *.json in the verdict directory would be read next time.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join("fleet.json");
    let run = |args: &[&std::ffi::OsStr]| {
        assert_cmd::Command::cargo_bin("gpuvet")
            .unwrap()
            .env("NO_COLOR", "1")
            .args(words_with("aggregate {}", &[dir.path()]))
            .args(args)
            .output()
            .unwrap()
    };
    // prices.toml sits in the verdict directory: it is not a *.json, so it is not read there.
    let json = run(&[
        "--format".as_ref(),
        "json".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        "--price-file".as_ref(),
        prices.as_os_str(),
    ]);
    assert_eq!(
        json.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let lost = &v["lost_capacity"];
    // node-c (4 H100 at $2.5) is drained; the fleet is 16 H100 and 2 A100 at $1.5.
    assert_eq!(lost["gpus"], 4);
    assert_eq!(lost["usd_per_hour"], 10.0);
    assert_eq!(lost["usd_per_day"], 240.0);
    assert_eq!(lost["usd_per_month"], 7300.0);
    assert_eq!(lost["fleet_usd_per_hour"], 43.0);
    assert_eq!(lost["nodes"][0]["host"], "node-c");
    assert!((lost["lost_share"].as_f64().unwrap() - 10.0 / 43.0).abs() < 1e-12);
    // A flat price prices every GPU; the table says what is lost.
    let table = run(&["--price-per-hour".as_ref(), "2".as_ref()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("capacity lost on the nodes to drain: $8.00/h"),
        "{text}"
    );
    // Without prices there is no cost in the JSON.
    let plain = run(&["--format".as_ref(), "json".as_ref()]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("lost_capacity"));
}

/// Nodes the database has no type for are compared only with nodes of the same GPU count and
/// model: a 2-GPU node's all-reduce is not an outlier beside an 8-GPU node's.
#[test]
fn unknown_node_types_are_grouped_by_gpu_count_and_model() {
    let h = |i| h100(i, Verdict::Pass);
    let with_all_reduce = |mut n: NodeVerdict, busbw: f64| {
        n.node_metrics.insert(
            "collective.all_reduce".into(),
            MetricValue {
                value: busbw,
                unit: "B/s".into(),
                result_id: "collective.all_reduce.bf16.1GiB".into(),
                peak: None,
                expected: None,
                ratio: None,
                value_high: None,
            },
        );
        n
    };
    let nodes = vec![
        with_all_reduce(
            node("two-a", "2026-11-28T10:00:00Z", (0..2).map(h).collect()),
            80e9,
        ),
        with_all_reduce(
            node("eight-a", "2026-11-28T10:00:00Z", (0..8).map(h).collect()),
            400e9,
        ),
        with_all_reduce(
            node("eight-b", "2026-11-28T10:00:00Z", (0..8).map(h).collect()),
            300e9,
        ),
    ];
    let s = summarize(&nodes, 10.0);
    let types: Vec<&str> = s.node_types.iter().map(|t| t.node_type.as_str()).collect();
    assert_eq!(types.len(), 2, "{types:?}");
    assert!(
        types.iter().all(|t| t.starts_with("unknown node type (")),
        "{types:?}"
    );
    let hosts: Vec<&str> = s.node_outliers.iter().map(|o| o.host.as_str()).collect();
    assert_eq!(hosts, ["eight-b"], "{:?}", s.node_outliers);
    // The headline counts the node's figure among the outliers it names.
    let md = render(&nodes, &s, FleetFormat::Markdown, false).unwrap();
    assert!(md.contains("1 outlier figure on 1 node"), "{md}");
}

/// A PCIe card validated with `--expect h100-sxm` fails identity on its node; in the fleet it
/// counts as what it is, so the SXM cards' median and expectation stay theirs, and a note says
/// where it went.
#[test]
fn a_gpu_judged_as_another_sku_counts_under_the_detected_one() {
    let sxm = |i| h100(i, Verdict::Pass);
    let mut pcie = |i| {
        let mut g = gpu(i, "h100-sxm", 600e12, 1.9e12, Verdict::Fail);
        g.detected_sku = Some("h100-pcie".into());
        g
    };
    let nodes = vec![
        node("sxm-a", "2026-11-28T10:00:00Z", (0..2).map(sxm).collect()),
        node("sxm-b", "2026-11-28T10:00:00Z", (0..2).map(sxm).collect()),
        node(
            "pcie-a",
            "2026-11-28T10:00:00Z",
            (0..2).map(&mut pcie).collect(),
        ),
    ];
    let s = summarize(&nodes, 10.0);
    let skus: Vec<(&str, usize)> = s.skus.iter().map(|k| (k.sku.as_str(), k.gpus)).collect();
    assert_eq!(skus, [("h100-pcie", 2), ("h100-sxm", 4)]);
    let bf16 = |sku: &str| {
        let k = s.skus.iter().find(|k| k.sku == sku).unwrap();
        k.metrics
            .iter()
            .find(|m| m.metric == "matmul.bf16")
            .unwrap()
            .clone()
    };
    assert_eq!(bf16("h100-sxm").median, 790e12);
    assert_eq!(bf16("h100-sxm").expected, Some(791.5e12));
    // The SXM expectation the PCIe cards were judged against is not theirs.
    assert_eq!(bf16("h100-pcie").median, 600e12);
    assert_eq!(bf16("h100-pcie").expected, None);
    // Held to their own kind, the PCIe cards are no outliers; the SXM ones neither.
    assert!(s.outliers.is_empty(), "{:?}", s.outliers);
    let moved: Vec<&String> = s.notes.iter().filter(|n| n.contains("judged as")).collect();
    assert_eq!(moved.len(), 2, "{:?}", s.notes);
    assert!(
        moved[0].contains("pcie-a GPU 0 was judged as h100-sxm but is a h100-pcie"),
        "{moved:?}"
    );
    let csv = render(&nodes, &s, FleetFormat::Csv, false).unwrap();
    let row = csv
        .lines()
        .find(|l| l.starts_with("pcie-a,") && l.contains("matmul.bf16"))
        .unwrap();
    assert!(row.contains("h100-pcie"), "{row}");
}

/// Host n1's verdict on `gpus` from a run started at one fixed second.
fn same_second(gpus: Vec<GpuVerdict>) -> NodeVerdict {
    node("n1", "2026-11-28T10:00:00Z", gpus)
}

/// Two verdicts of one host started in the same second: the worse one counts, in whichever
/// order the files come (the first named used to win, hiding a FAIL named second). A node to
/// drain lists what its FAIL rests on, not the WARNs beside it.
#[test]
fn ties_keep_the_worse_verdict_and_drains_list_their_failures() {
    let ok = same_second(vec![h100(0, Verdict::Pass)]);
    let bad = same_second(vec![h100(0, Verdict::Fail), h100(1, Verdict::Warn)]);
    for order in [vec![ok.clone(), bad.clone()], vec![bad.clone(), ok.clone()]] {
        let s = summarize(&order, 10.0);
        assert_eq!((s.nodes, s.nodes_fail), (1, 1), "{:?}", s.notes);
        assert_eq!(s.drain.len(), 1);
        assert_eq!(
            s.drain[0].reasons,
            ["GPU 0 (GPU-00000000): health: synthetic problem on GPU 0"],
            "{:?}",
            s.drain[0].reasons
        );
        assert_any_contains(&s.notes, "the worse verdict, FAIL");
    }
}

/// Two runs of one host started in the same second with the same verdict: the one that tested
/// more GPUs counts, whichever file is named first.
#[test]
fn ties_of_equal_verdicts_do_not_depend_on_the_order_of_the_files() {
    let one = same_second(vec![h100(0, Verdict::Pass)]);
    let four = same_second((0..4).map(|i| h100(i, Verdict::Pass)).collect());
    let views: Vec<(usize, usize)> = [vec![one.clone(), four.clone()], vec![four, one]]
        .iter()
        .map(|order| {
            let s = summarize(order, 10.0);
            (s.nodes, s.gpus)
        })
        .collect();
    assert_eq!(views, [(1, 4), (1, 4)]);
}

/// Verdicts that no run writes (a FAIL under a PASS) are refused as corrupt files, naming
/// what contradicts what: a fleet view must never count a failed GPU as healthy.
#[test]
fn verdict_files_that_contradict_themselves_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = || {
        node(
            "n1",
            "2026-11-28T10:00:00Z",
            vec![h100(0, Verdict::Fail), h100(1, Verdict::Pass)],
        )
    };
    let mut under_node = good();
    under_node.verdict = Verdict::Warn;
    let mut under_gpu = good();
    under_gpu.gpus[0].verdict = Verdict::Pass;
    under_gpu.verdict = Verdict::Pass;
    let mut under_check = good();
    under_check.gpus[0].checks[0].verdict = Verdict::Pass;
    let mut empty = good();
    empty.gpus.clear();
    empty.verdict = Verdict::Pass;
    for (name, v, want) in [
        ("node", under_node, "the node is WARN but GPU 0 is FAIL"),
        (
            "gpu",
            under_gpu,
            "GPU 0 is PASS but its check `health` is FAIL",
        ),
        (
            "check",
            under_check,
            "GPU 0 check `health` is PASS but one of its findings is FAIL",
        ),
        ("empty", empty, "the node is PASS with no GPU tested"),
    ] {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, v.to_json()).unwrap();
        let err = load_verdicts(&[path]).unwrap_err().to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
    let path = dir.path().join("good.json");
    std::fs::write(&path, good().to_json()).unwrap();
    assert_eq!(load_verdicts(&[path]).unwrap().len(), 1);
}
