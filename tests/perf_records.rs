//! The GPU records under docs/perf/records/ and the figures docs/perf/*.md cite from them.
//!
//! A record is what `scripts/gpu-check.sh` writes as `record.json` (format in
//! docs/perf/records/README.md). This test holds every committed record to that format, checks
//! that every `records/….json` a perf page cites exists and parses, and that no line of a perf
//! page claims a measured rate without citing a record. With GPUVET_CHECK_RECORD=PATH it also
//! checks a freshly written record (.ci/run points it at the CPU-mode run of the script).

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // fields are read by serde's checks, some only for their presence
struct Record {
    record_version: u32,
    date: String,
    command: String,
    backend: Backend,
    device: Device,
    gpuvet: Tool,
    torch: Option<Torch>,
    steps: Vec<Step>,
    figures: Vec<Figure>,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Cuda,
    Cpu,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Device {
    name: String,
    uuid: Option<String>,
    driver: Option<String>,
    nvrtc_version: Option<String>,
    cublaslt: Option<String>,
    count: usize,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Tool {
    version: String,
    commit: String,
    kernel_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Torch {
    version: Option<String>,
    cuda: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Step {
    name: String,
    status: String,
    seconds: u64,
    limit_s: u64,
}

#[derive(Debug, Deserialize)]
struct Figure {
    id: String,
    unit: String,
    gpuvet: Option<f64>,
    gpuvet_ci95_rel: Option<f64>,
    verified: bool,
    torch: Option<f64>,
    ratio: Option<f64>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses and checks one record; the error names the file and what is wrong.
fn check_record(path: &Path) -> Result<Record, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let r: Record = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let at = |what: String| format!("{}: {what}", path.display());
    if r.record_version != 1 {
        return Err(at(format!("record_version {}", r.record_version)));
    }
    if r.date.len() < 10 || r.gpuvet.commit.is_empty() || r.device.name.is_empty() {
        return Err(at("date, gpuvet.commit and device.name are required".into()));
    }
    if r.backend == Backend::Cuda
        && (r.device.uuid.is_none() || r.device.driver.is_none() || r.gpuvet.kernel_hash.is_none())
    {
        return Err(at(
            "a GPU record needs device.uuid, device.driver and gpuvet.kernel_hash".into(),
        ));
    }
    if r.steps.is_empty() {
        return Err(at("no steps".into()));
    }
    for s in &r.steps {
        let known = ["ok", "timeout", "failed", "skipped"];
        if !known.iter().any(|k| s.status.starts_with(k)) {
            return Err(at(format!("step {}: status `{}`", s.name, s.status)));
        }
        if s.status == "ok" && s.seconds > s.limit_s + 10 {
            return Err(at(format!(
                "step {} ran {} s past its limit",
                s.name, s.seconds
            )));
        }
    }
    for f in &r.figures {
        check_figure(f).map_err(|e| at(format!("figure {}: {e}", f.id)))?;
    }
    Ok(r)
}

fn check_figure(f: &Figure) -> Result<(), String> {
    if !["FLOP/s", "OP/s", "B/s"].contains(&f.unit.as_str()) {
        return Err(format!("unit `{}`", f.unit));
    }
    if f.verified && !f.gpuvet.is_some_and(|v| v.is_finite() && v > 0.0) {
        return Err("verified but no positive rate".into());
    }
    if let Some(ci) = f.gpuvet_ci95_rel {
        if !(ci.is_finite() && ci >= 0.0) {
            return Err(format!("CI95 {ci}"));
        }
    }
    match (f.gpuvet, f.torch, f.ratio) {
        (Some(g), Some(t), Some(q)) if ((g / t) - q).abs() > 1e-9 * q.abs().max(1.0) => {
            Err(format!("ratio {q} is not {g} / {t}"))
        }
        (Some(_), Some(_), None) => Err("both rates but no ratio".into()),
        (_, None, Some(_)) => Err("a ratio without a PyTorch rate".into()),
        _ => Ok(()),
    }
}

fn perf_pages() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("docs/perf"))
        .expect("docs/perf")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    v.sort();
    v
}

/// The `records/NAME.json` paths a line cites.
fn citations(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("records/") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
            .unwrap_or(tail.len());
        // A sentence may end right after the name: its full stop is not part of it.
        let cited = tail[..end].trim_end_matches('.');
        if cited.ends_with(".json") {
            out.push(cited.to_string());
        }
        rest = &tail[end.max(1)..];
    }
    out
}

/// True when a line states a measured rate: the word "measured" and a number with a rate unit,
/// and nothing saying it is a prediction or not measured.
fn claims_measured_rate(line: &str) -> bool {
    let low = line.to_lowercase();
    let says_measured = low
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w == "measured");
    let hedged = ["not measured", "predict", "estimat", "expected"]
        .iter()
        .any(|h| low.contains(h));
    let has_rate = ["FLOP/s", "OP/s", "B/s"].iter().any(|u| {
        line.match_indices(u).any(|(i, _)| {
            line[..i]
                .trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == ' ')
                .ends_with(|c: char| c.is_ascii_digit())
        })
    });
    says_measured && has_rate && !hedged
}

#[test]
fn every_committed_record_parses_and_is_consistent() {
    let dir = root().join("docs/perf/records");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("docs/perf/records exists") {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            check_record(&p).unwrap();
            n += 1;
        }
    }
    eprintln!("{n} record(s) in {}", dir.display());
}

#[test]
fn perf_pages_cite_existing_records_for_measured_figures() {
    let mut checked = 0;
    for page in perf_pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (i, line) in text.lines().enumerate() {
            let cited = citations(line);
            for c in &cited {
                let p = root().join("docs/perf").join(c);
                check_record(&p)
                    .unwrap_or_else(|e| panic!("{}:{}: cites {c}: {e}", page.display(), i + 1));
            }
            if claims_measured_rate(line) {
                assert!(
                    !cited.is_empty(),
                    "{}:{}: a measured figure without its record (cite records/FILE.json, or say \
                     it is predicted): {line}",
                    page.display(),
                    i + 1
                );
                checked += 1;
            }
        }
    }
    eprintln!("{checked} measured line(s) cite records");
}

#[test]
fn the_doc_rule_tells_claims_from_predictions() {
    assert!(claims_measured_rate("bf16 8192³: 781 TFLOP/s measured"));
    assert!(claims_measured_rate("| copy | measured 4.31 TB/s |"));
    assert!(!claims_measured_rate(
        "Predicted 250 TFLOP/s, to be measured"
    ));
    assert!(!claims_measured_rate(
        "not measured yet: 250 TFLOP/s expected"
    ));
    assert!(!claims_measured_rate("measured on the GPU, see below"));
    assert_eq!(
        citations("781 T ([record](records/2026-12-03-h200.json)), x records/b.json."),
        ["records/2026-12-03-h200.json", "records/b.json"]
    );
}

#[test]
fn a_record_with_a_wrong_ratio_or_unit_is_refused() {
    let good = Figure {
        id: "matmul.bf16.8192x8192x8192.kn/cublaslt".into(),
        unit: "FLOP/s".into(),
        gpuvet: Some(780e12),
        gpuvet_ci95_rel: Some(0.002),
        verified: true,
        torch: Some(790e12),
        ratio: Some(780.0 / 790.0),
    };
    check_figure(&good).unwrap();
    let bad_ratio = Figure {
        ratio: Some(1.0),
        ..good
    };
    assert!(check_figure(&bad_ratio).unwrap_err().contains("ratio"));
    let bad_unit = Figure {
        unit: "TFLOPS".into(),
        ratio: Some(780.0 / 790.0),
        ..bad_ratio
    };
    assert!(check_figure(&bad_unit).unwrap_err().contains("unit"));
    let unverified_without_rate = Figure {
        unit: "FLOP/s".into(),
        verified: false,
        gpuvet: None,
        torch: None,
        ratio: None,
        ..bad_unit
    };
    check_figure(&unverified_without_rate).unwrap();
}

/// The record of a gpu-check run made just now (CI's CPU-mode run), when one is named.
#[test]
fn a_fresh_gpu_check_record_parses() {
    let Some(path) = std::env::var_os("GPUVET_CHECK_RECORD") else {
        gpuvet::output::say_skip(
            "a_fresh_gpu_check_record_parses",
            "GPUVET_CHECK_RECORD not set",
        );
        return;
    };
    let r = check_record(Path::new(&path)).unwrap();
    assert!(
        r.figures.iter().any(|f| f.verified),
        "no verified figure in {}",
        Path::new(&path).display()
    );
    let first = r.steps.first().map(|s| s.name.as_str());
    assert_eq!(first, Some("inventory"), "the inventory comes first");
    assert!(r.torch.is_none() || r.backend == Backend::Cuda);
}
