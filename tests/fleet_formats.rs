//! Formats fleets and CI systems read, through the binary on the mock backend: the Prometheus
//! textfile (`--prometheus`), JUnit XML (`--junit`) and price-performance (`--price-per-hour`,
//! `--price-file`). Every file is parsed back here; where the real consumer's checker is
//! installed it checks the file too: `promtool check metrics` (Debian `prometheus`) and
//! `xmllint --schema` against the Jenkins JUnit schema (Debian `libxml2-utils`). Without them
//! those checks print `SKIP`, unless GPUVET_REQUIRE_PROMTOOL=1 / GPUVET_REQUIRE_XMLLINT=1 (CI)
//! make them failures.

mod common;

use common::{gpuvet, read_json, stdout_of, temp_files, words, words_with, QUICK};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A tool from PATH, or `None` after saying the check is skipped (a failure when `require` is
/// set to 1).
fn tool_or_skip(tool: &str, require: &str, package: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var(require).as_deref() == Ok("1") {
            panic!("{require}=1 but no {tool} in PATH (apt-get install -y {package})");
        }
        common::say_skip(
            test,
            &format!("no {tool} in PATH (apt-get install -y {package}; set {require}=1 to make this a failure)"),
        );
    }
    found
}

// ---------------------------------------------------------------- Prometheus

/// One sample of a textfile.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough to catch what node-exporter refuses: a sample
/// before its family's HELP and TYPE, a family split in two, a repeated series, a bad escape,
/// a timestamp.
fn parse_textfile(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let (mut helped, mut typed, mut closed) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut current = String::new();
    let mut series = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(!rest[name.len()..].trim().is_empty(), "empty HELP: {line}");
            assert!(helped.insert(name.clone()), "second HELP: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge", "{line}");
            assert!(typed.insert(name.to_string()), "second TYPE: {line}");
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let s = parse_sample(line);
        assert!(
            helped.contains(&s.name) && typed.contains(&s.name),
            "no HELP/TYPE before {line}"
        );
        if s.name != current {
            assert!(!closed.contains(&s.name), "family {} split: {line}", s.name);
            closed.insert(std::mem::replace(&mut current, s.name.clone()));
        }
        assert!(
            series.insert(format!("{}{:?}", s.name, s.labels)),
            "repeated series {line}"
        );
        samples.push(s);
    }
    samples
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap();
    let name = &line[..name_end];
    assert!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && name.starts_with("gpuvet_"),
        "metric name {name}"
    );
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            let start = chars.peek().unwrap().0;
            let eq = body[start..].find('=').unwrap() + start;
            let key = body[start..eq].to_string();
            for _ in start..=eq {
                chars.next();
            }
            assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next().unwrap().1 {
                    '\\' => match chars.next().unwrap().1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => panic!("bad escape \\{c} in {line}"),
                    },
                    '"' => break,
                    '\n' => panic!("raw newline in {line}"),
                    c => value.push(c),
                }
            }
            assert!(
                labels.insert(key, value).is_none(),
                "repeated label in {line}"
            );
            match chars.next().unwrap() {
                (_, ',') => continue,
                (i, '}') => {
                    rest = &body[i + 1..];
                    break;
                }
                (_, c) => panic!("unexpected {c} in {line}"),
            }
        }
    }
    let value = rest.strip_prefix(' ').expect("one space before the value");
    assert!(
        !value.contains(' '),
        "a timestamp or junk after the value: {line}"
    );
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value {v} in {line}")),
    };
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// `promtool check metrics` accepts the file with no lint message, where promtool exists.
fn promtool_accepts(path: &Path, test: &str) {
    let Some(promtool) = tool_or_skip("promtool", "GPUVET_REQUIRE_PROMTOOL", "prometheus", test)
    else {
        return;
    };
    let out = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on {}: {said}",
        path.display()
    );
}

/// One mock result's series in the textfile: its throughput (OP/s for int8) with its labels,
/// peak ratio, verified flag, power and work per joule, as the report has them.
fn result_series_match(samples: &[Sample], text: &str, r: &serde_json::Value) {
    let workload = r["id"].as_str().unwrap().split('/').next().unwrap();
    let int8 = r["dtype"] == "int8";
    let (family, per_joule) = if int8 {
        (
            "gpuvet_result_throughput_op_per_second",
            "gpuvet_result_op_per_joule",
        )
    } else {
        (
            "gpuvet_result_throughput_flop_per_second",
            "gpuvet_result_flop_per_joule",
        )
    };
    let got = find(samples, family, &[("workload", workload)]);
    assert_eq!(got.len(), 1, "{family} {workload}:\n{text}");
    let s = got[0];
    assert_eq!(s.value, r["throughput"]["value"].as_f64().unwrap());
    for (k, v) in [
        ("host", "test-host"),
        ("gpu", "0"),
        ("uuid", "GPU-00000000-0000-0000-0000-000000000000"),
        ("sku", "unknown"),
        ("kind", "matmul"),
        ("dtype", r["dtype"].as_str().unwrap()),
        ("implementation", r["implementation"].as_str().unwrap()),
    ] {
        assert_eq!(s.labels.get(k).map(String::as_str), Some(v), "{k} of {s:?}");
    }
    let peak = find(
        samples,
        "gpuvet_result_peak_ratio",
        &[("workload", workload)],
    );
    assert!((peak[0].value - r["peak_fraction"].as_f64().unwrap()).abs() < 1e-12);
    let verified = find(samples, "gpuvet_result_verified", &[("workload", workload)]);
    assert_eq!(verified[0].value, 1.0);
    // Energy: the mock's board draws 100 W under load; work per joule = throughput / W.
    let watts = find(
        samples,
        "gpuvet_result_power_watts",
        &[("workload", workload)],
    );
    assert_eq!(watts[0].value, 100.0);
    assert_eq!(r["power_w"], 100.0);
    let joule = find(samples, per_joule, &[("workload", workload)]);
    assert_eq!(joule.len(), 1, "{per_joule} {workload}:\n{text}");
    assert!((joule[0].value - s.value / 100.0).abs() <= 1e-9 * s.value);
}

#[test]
fn prometheus_textfile_of_a_bench_matches_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (prom, json) = (dir.path().join("gpuvet.prom"), dir.path().join("r.json"));
    gpuvet()
        .args(words(
            "--backend mock bench matmul --shape 64x64x64,32x48x16 --dtype f32,int8 --prometheus",
        ))
        .arg(&prom)
        .arg("--json")
        .arg(&json)
        .assert()
        .code(0);
    let text = std::fs::read_to_string(&prom).unwrap();
    let samples = parse_textfile(&text);
    let report = read_json(&json);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        result_series_match(&samples, &text, r);
    }
    // The mock's telemetry: 1500 MHz busy, 40 °C, no throttle reason, every known one listed.
    assert_eq!(
        find(&samples, "gpuvet_gpu_sm_clock_hertz", &[])[0].value,
        1.5e9
    );
    assert_eq!(
        find(&samples, "gpuvet_gpu_temperature_max_celsius", &[])[0].value,
        40.0
    );
    let reasons = find(&samples, "gpuvet_gpu_throttle_reason", &[]);
    assert!(reasons.len() >= 9 && reasons.iter().all(|s| s.value == 0.0));
    assert!(
        find(
            &samples,
            "gpuvet_gpu_throttle_reason",
            &[("reason", "hw_thermal_slowdown")]
        )
        .len()
            == 1
    );
    assert_eq!(
        find(
            &samples,
            "gpuvet_run_complete",
            &[("command", "bench matmul")]
        )[0]
        .value,
        1.0
    );
    let written = find(&samples, "gpuvet_last_run_timestamp_seconds", &[])[0].value;
    assert!(written > 1.7e9, "{written}");
    // No price given: no price families.
    assert!(!text.contains("per_usd") && !text.contains("price"));
    promtool_accepts(&prom, "prometheus_textfile_of_a_bench_matches_the_report");
}

/// The CPU backend's clock is a core's: it is never written as an SM clock, and the CPU has
/// no throttle reasons to list (none read is not "none active").
#[test]
fn prometheus_textfile_of_the_cpu_names_no_gpu_clock() {
    let (_dir, [prom]) = temp_files(["cpu.prom"]);
    gpuvet()
        .args(words(
            "--backend cpu -q --warmup 0 --max-time 0.05 --min-samples 3 bench memory --size 64KiB --op copy --prometheus",
        ))
        .arg(&prom)
        .assert()
        .code(0);
    let text = std::fs::read_to_string(&prom).unwrap();
    let samples = parse_textfile(&text);
    assert_eq!(find(&samples, "gpuvet_result_verified", &[])[0].value, 1.0);
    for gpu_only in [
        "gpuvet_gpu_sm_clock_hertz",
        "gpuvet_result_effective_sm_clock_hertz",
        "gpuvet_gpu_throttle_reason",
    ] {
        assert!(!text.contains(gpu_only), "{gpu_only}:\n{text}");
    }
    // /proc/cpuinfo has `cpu MHz` lines on x86 Linux; where it has none there is no clock.
    let has_mhz = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|t| t.contains("cpu MHz"));
    for family in ["gpuvet_cpu_clock_hertz", "gpuvet_result_cpu_clock_hertz"] {
        let clock = find(&samples, family, &[]);
        assert_eq!(clock.len(), usize::from(has_mhz), "{family}:\n{text}");
        assert!(clock.iter().all(|c| c.value > 1e8), "{family}: {text}");
    }
    promtool_accepts(&prom, "prometheus_textfile_of_the_cpu_names_no_gpu_clock");
}

#[test]
fn prometheus_textfile_of_validate_has_verdict_state_sets() {
    let (_dir, [prom]) = temp_files(["validate.prom"]);
    gpuvet()
        .env("GPUVET_MOCK_FAULT", "matmul.bf16")
        .args(words_with(
            "--backend mock -q validate --allow-cpu --prometheus {}",
            &[&prom],
        ))
        .assert()
        .code(1);
    let samples = parse_textfile(&std::fs::read_to_string(&prom).unwrap());
    let node = |v: &str| find(&samples, "gpuvet_node_verdict", &[("verdict", v)])[0].value;
    assert_eq!((node("pass"), node("warn"), node("fail")), (0.0, 0.0, 1.0));
    assert_eq!(
        find(
            &samples,
            "gpuvet_gpu_verdict",
            &[("verdict", "fail"), ("gpu", "0")]
        )[0]
        .value,
        1.0
    );
    let correctness = find(
        &samples,
        "gpuvet_gpu_check_verdict",
        &[("check", "correctness"), ("verdict", "fail")],
    );
    assert_eq!(correctness[0].value, 1.0);
    // One GPU on the mock: identity and peers had nothing to judge, and say so instead of
    // reading as PASS.
    assert_eq!(find(&samples, "gpuvet_gpu_check_verdict", &[]).len(), 3 * 3);
    let skipped = find(&samples, "gpuvet_gpu_check_skipped", &[]);
    let mut checks: Vec<&str> = skipped.iter().map(|s| s.labels["check"].as_str()).collect();
    checks.sort_unstable();
    assert_eq!(checks, ["identity", "peers"]);
    assert!(find(
        &samples,
        "gpuvet_gpu_check_verdict",
        &[("check", "identity")]
    )
    .is_empty());
    // The wrong result has no throughput, only verified = 0.
    let bad = find(
        &samples,
        "gpuvet_result_verified",
        &[("dtype", "bf16"), ("kind", "matmul")],
    );
    assert_eq!(bad[0].value, 0.0);
    assert!(find(
        &samples,
        "gpuvet_result_throughput_flop_per_second",
        &[("dtype", "bf16"), ("kind", "matmul")]
    )
    .is_empty());
    promtool_accepts(
        &prom,
        "prometheus_textfile_of_validate_has_verdict_state_sets",
    );
}

#[test]
fn prometheus_textfile_of_stress_and_to_stdout() {
    let (_dir, [prom, json]) = temp_files(["stress.prom", "stress.json"]);
    gpuvet()
        .args(words(
            "--backend mock stress --duration 2s --size 64 --check-interval 0.2 --prometheus",
        ))
        .arg(&prom)
        .arg("--json")
        .arg(&json)
        .assert()
        .code(0);
    let samples = parse_textfile(&std::fs::read_to_string(&prom).unwrap());
    let stress = read_json(&json);
    let dev = &stress["devices"][0];
    let one = |name: &str| find(&samples, name, &[("gpu", "0"), ("dtype", "bf16")])[0].value;
    assert_eq!(
        find(&samples, "gpuvet_stress_verdict", &[("verdict", "pass")])[0].value,
        1.0
    );
    assert_eq!(one("gpuvet_stress_checksum_mismatches"), 0.0);
    assert_eq!(one("gpuvet_stress_verified"), 1.0);
    assert_eq!(
        one("gpuvet_stress_iterations"),
        dev["iterations"].as_f64().unwrap()
    );
    assert_eq!(
        one("gpuvet_stress_throughput_flop_per_second"),
        dev["median_throughput"].as_f64().unwrap()
    );
    assert_eq!(one("gpuvet_stress_power_watts"), 100.0);
    assert_eq!(dev["median_power_w"], 100.0);
    promtool_accepts(&prom, "prometheus_textfile_of_stress_and_to_stdout");
    // `-`: the metrics own stdout, the table goes to stderr (e.g. for a Pushgateway).
    let (text, table) = stdout_of(
        gpuvet().args(words(
            "--backend mock bench memory --size 1MiB --prometheus -",
        )),
        0,
    );
    assert!(!parse_textfile(&text).is_empty());
    assert!(table.contains("memory.copy"));
    assert!(text.contains("gpuvet_result_throughput_bytes_per_second{"));
    // Two outputs cannot share stdout; a flag where it means nothing is refused.
    for line in [
        "--backend mock bench memory --size 1MiB --prometheus - --json -",
        "--backend mock info --prometheus x.prom",
        "--backend mock bench memory --size 1MiB --junit x.xml",
        "--backend mock list --price-per-hour 2",
        "--backend mock bench memory --size 1MiB --price-per-hour 2 --price-file p.toml",
    ] {
        gpuvet().args(words(line)).assert().code(2);
    }
}

// ---------------------------------------------------------------- JUnit

/// `xmllint --schema` accepts the file against the vendored junit-10.xsd, where xmllint exists.
fn xsd_accepts(path: &Path, test: &str) {
    let Some(xmllint) = tool_or_skip("xmllint", "GPUVET_REQUIRE_XMLLINT", "libxml2-utils", test)
    else {
        return;
    };
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit/junit-10.xsd");
    let out = std::process::Command::new(xmllint)
        .args(words_with("--noout --schema {} {}", &[&xsd, path]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xmllint --schema junit-10.xsd {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (name, outcome) of every testcase, by suite name; outcome is `passed`, `failure`, `error`
/// or `skipped`. The suite and suites counters are checked against the cases on the way.
fn junit_cases(path: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let mut out = BTreeMap::new();
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for suite in root.children().filter(|n| n.has_tag_name("testsuite")) {
        let mut cases = Vec::new();
        for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
            let outcome = ["failure", "error", "skipped"]
                .into_iter()
                .find(|t| case.children().any(|c| c.has_tag_name(*t)))
                .unwrap_or("passed");
            cases.push((
                case.attribute("name").unwrap().to_string(),
                outcome.to_string(),
            ));
        }
        let count = |o: &str| cases.iter().filter(|c| c.1 == o).count().to_string();
        assert_eq!(
            suite.attribute("tests"),
            Some(cases.len().to_string().as_str())
        );
        assert_eq!(suite.attribute("failures"), Some(count("failure").as_str()));
        assert_eq!(suite.attribute("errors"), Some(count("error").as_str()));
        assert_eq!(suite.attribute("skipped"), Some(count("skipped").as_str()));
        tests += cases.len();
        failures += cases.iter().filter(|c| c.1 == "failure").count();
        errors += cases.iter().filter(|c| c.1 == "error").count();
        out.insert(suite.attribute("name").unwrap().to_string(), cases);
    }
    assert_eq!(root.attribute("tests"), Some(tests.to_string().as_str()));
    assert_eq!(
        root.attribute("failures"),
        Some(failures.to_string().as_str())
    );
    assert_eq!(root.attribute("errors"), Some(errors.to_string().as_str()));
    out
}

#[test]
fn junit_of_validate_has_a_testcase_per_check_per_gpu() {
    let (_dir, [ok, strict, bad]) = temp_files(["ok.xml", "strict.xml", "bad.xml"]);
    let test = "junit_of_validate_has_a_testcase_per_check_per_gpu";
    // Healthy but WARN (the mock's fake rates sit below its fake expectations): passes, the
    // checks with nothing to judge are skipped, the WARN is a failure only with --fail-on-warn.
    gpuvet()
        .args(words_with(
            "--backend mock -q validate --allow-cpu --junit {}",
            &[&ok],
        ))
        .assert()
        .code(0);
    let suites = junit_cases(&ok);
    assert_eq!(suites.len(), 1);
    let cases = suites.values().next().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        ["identity", "absolute", "peers", "health", "correctness"]
    );
    let outcome =
        |cases: &[(String, String)], n: &str| cases.iter().find(|c| c.0 == n).unwrap().1.clone();
    assert_eq!(outcome(cases, "peers"), "skipped"); // one GPU: no peers
    assert_eq!(outcome(cases, "correctness"), "passed");
    assert!(!cases.iter().any(|c| c.1 == "failure"), "{cases:?}");
    xsd_accepts(&ok, test);

    gpuvet()
        .args(words(
            "--backend mock -q validate --allow-cpu --fail-on-warn --junit",
        ))
        .arg(&strict)
        .assert()
        .code(1);
    let strict_cases = junit_cases(&strict).into_values().next().unwrap();
    assert!(
        strict_cases.iter().any(|c| c.1 == "failure"),
        "{strict_cases:?}"
    );
    xsd_accepts(&strict, test);

    gpuvet()
        .env("GPUVET_MOCK_FAULT", "matmul.bf16")
        .args(words_with(
            "--backend mock -q validate --allow-cpu --junit {}",
            &[&bad],
        ))
        .assert()
        .code(1);
    let bad_cases = junit_cases(&bad).into_values().next().unwrap();
    assert_eq!(outcome(&bad_cases, "correctness"), "failure");
    let xml = std::fs::read_to_string(&bad).unwrap();
    assert!(
        xml.contains("matmul.bf16"),
        "the failure names the result:\n{xml}"
    );
    xsd_accepts(&bad, test);
}

#[test]
fn junit_of_compare_and_of_a_baseline_run() {
    let dir = tempfile::tempdir().unwrap();
    let test = "junit_of_compare_and_of_a_baseline_run";
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (xml, json) = (dir.path().join("cmp.xml"), dir.path().join("cmp.json"));
    let code = gpuvet()
        .arg("compare")
        .arg(fixtures.join("compare_old.json"))
        .arg(fixtures.join("compare_new.json"))
        .args(words_with("--junit {} --json {}", &[&xml, &json]))
        .assert()
        .get_output()
        .status
        .code()
        .unwrap();
    let cmp = read_json(&json);
    let rows = cmp["results"].as_array().unwrap();
    let cases: Vec<(String, String)> = junit_cases(&xml).into_values().flatten().collect();
    assert_eq!(cases.len(), rows.len());
    for row in rows {
        let id = row["id"].as_str().unwrap();
        let got = &cases.iter().find(|c| c.0 == id).unwrap().1;
        let want = match (
            row["regression"].as_bool().unwrap(),
            row["verdict"].as_str().unwrap(),
        ) {
            (true, "failed") => "error",
            (true, _) => "failure",
            (false, _) if row["ratio"].is_null() => "skipped",
            _ => "passed",
        };
        assert_eq!(got, want, "{id}: {row}");
    }
    let regressions = rows.iter().filter(|r| r["regression"] == true).count();
    assert_eq!(code, if regressions > 0 { 1 } else { 0 });
    assert!(regressions > 0, "the fixtures hold a regression");
    xsd_accepts(&xml, test);

    // A run compared with --baseline writes the same testcases for its comparison.
    let base = dir.path().join("baselines");
    gpuvet()
        .args(words(
            "--backend mock -q bench memory --size 1MiB,2MiB --save-baseline main --baseline-dir",
        ))
        .arg(&base)
        .assert()
        .code(0);
    let run_xml = dir.path().join("run.xml");
    gpuvet()
        .args(words(
            "--backend mock -q bench memory --size 1MiB,2MiB --baseline main --baseline-dir",
        ))
        .arg(&base)
        .arg("--junit")
        .arg(&run_xml)
        .assert()
        .code(0);
    let run_cases: Vec<(String, String)> = junit_cases(&run_xml).into_values().flatten().collect();
    assert_eq!(run_cases.len(), 2);
    assert!(
        run_cases.iter().all(|c| c.1 != "failure" && c.1 != "error"),
        "{run_cases:?}"
    );
    xsd_accepts(&run_xml, test);
}

// ---------------------------------------------------------------- price

#[test]
fn price_per_hour_adds_price_performance_to_results_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (json, prom) = (dir.path().join("r.json"), dir.path().join("p.prom"));
    let (out, _) = stdout_of(
        gpuvet()
            .args(words(
                "--backend mock bench memory --size 1MiB --price-per-hour 2.5 --json",
            ))
            .arg(&json)
            .arg("--prometheus")
            .arg(&prom),
        0,
    );
    assert!(out.contains("TB-h/USD"));
    let v = read_json(&json);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["config"]["price"]["source"], "--price-per-hour");
    assert_eq!(v["config"]["price"]["usd_per_hour"][0], 2.5);
    let r = &v["results"][0];
    let p = &r["price_performance"];
    assert_eq!(p["unit"], "TB-h/USD");
    assert_eq!(p["usd_per_hour"], 2.5);
    let want = r["throughput"]["value"].as_f64().unwrap() / 1e12 / 2.5;
    assert!((p["value"].as_f64().unwrap() - want).abs() < 1e-9 * want);
    let samples = parse_textfile(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(
        find(&samples, "gpuvet_gpu_price_usd_per_hour", &[])[0].value,
        2.5
    );
    let per_usd = find(&samples, "gpuvet_result_bytes_per_usd", &[])[0].value;
    let bytes_per_usd = r["throughput"]["value"].as_f64().unwrap() * 3600.0 / 2.5;
    assert!((per_usd - bytes_per_usd).abs() < 1e-6 * bytes_per_usd);
    promtool_accepts(
        &prom,
        "price_per_hour_adds_price_performance_to_results_and_metrics",
    );
}

#[test]
fn price_files_are_checked_and_price_unknown_devices_by_default() {
    let (_dir, [file, json]) = temp_files(["prices.toml", "r.json"]);
    std::fs::write(&file, "[price]\nh100-sxm = 2.49\ndefault = 1.25\n").unwrap();
    gpuvet()
        .args(words_with(
            "--backend mock -q bench matmul --shape 64x64x64 --dtype bf16 --price-file {} --json {}",
            &[&file, &json],
        ))
        .assert()
        .code(0);
    let v = read_json(&json);
    assert_eq!(v["config"]["price"]["usd_per_hour"][0], 1.25);
    assert_eq!(v["results"][0]["price_performance"]["unit"], "TFLOP-h/USD");
    for (text, says) in [
        ("[price]\nh100-sxmm = 2\n", "unknown SKU"),
        ("[price]\nh100-sxm = 0\n", "not a price"),
        ("[price]\nh100-sxm = 25000\n", "per GPU and per hour"),
        ("h100-sxm = 2\n", "price"),
    ] {
        std::fs::write(&file, text).unwrap();
        let (_, err) = stdout_of(
            gpuvet().args(words_with(
                "--backend mock bench memory --size 1MiB --price-file {}",
                &[&file],
            )),
            2,
        );
        assert!(
            err.contains(says) && err.contains("prices.toml"),
            "{text:?}: {err}"
        );
    }
    gpuvet()
        .args(words(
            "--backend mock bench memory --size 1MiB --price-per-hour -1",
        ))
        .assert()
        .code(2);
}

#[test]
fn suite_llm_estimates_cost_per_million_tokens() {
    let (dir, [est]) = temp_files(["est.json"]);
    // A model small enough for the mock, which computes its outputs exactly.
    let model = dir.path().join("tiny.toml");
    std::fs::write(
        &model,
        "id = \"tiny\"\nname = \"Tiny\"\nhidden_size = 64\nffn_size = 128\nq_heads = 4\n\
         kv_heads = 2\nhead_dim = 16\nlayers = 2\nvocab_size = 256\n",
    )
    .unwrap();
    let (out, _) = stdout_of(
        gpuvet()
            .args(words(
                "--backend mock -q --price-per-hour 2 suite llm --model-file",
            ))
            .arg(&model)
            .args(words(
                "--tp 2 --batch 1,8 --prompt 32 --gen 8 --estimate-json",
            ))
            .arg(&est),
        0,
    );
    assert!(out.contains("USD per 1M output tokens"));
    let e = read_json(&est);
    assert_eq!(e["usd_per_gpu_hour"], 2.0);
    for b in e["batches"].as_array().unwrap() {
        let batch = b["batch"].as_f64().unwrap();
        // tp × price × time / tokens, per million tokens.
        let input = 2.0 * 2.0 * b["ttft_s"].as_f64().unwrap() / 3600.0 / (batch * 32.0) * 1e6;
        let output = 2.0 * 2.0 * b["decode_step_s"].as_f64().unwrap() / 3600.0 / batch * 1e6;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
        assert!(
            close(b["usd_per_million_input_tokens"].as_f64().unwrap(), input),
            "{b}"
        );
        assert!(
            close(b["usd_per_million_output_tokens"].as_f64().unwrap(), output),
            "{b}"
        );
    }
}

/// The textfile collector refuses two files that define one series: the files of two commands
/// (a validate DaemonSet's, a nightly run's) share none, each series carrying its command.
#[test]
fn prometheus_files_of_two_commands_share_no_series() {
    let (_dir, [validate, run]) = temp_files(["v.prom", "r.prom"]);
    let series = |path: &Path| -> BTreeSet<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
            .collect()
    };
    gpuvet()
        .env("GPUVET_MOCK_DEVICES", "2")
        .args(words("--backend mock -q"))
        .args(QUICK)
        .args(words_with(
            "--prometheus {} validate --allow-cpu",
            &[&validate],
        ))
        .assert()
        .code(0);
    gpuvet()
        .env("GPUVET_MOCK_DEVICES", "2")
        .args(words("--backend mock -q"))
        .args(QUICK)
        .args(words_with("--prometheus {} run", &[&run]))
        .assert()
        .code(0);
    let (v, r) = (series(&validate), series(&run));
    assert!(v.iter().any(|s| s.starts_with("gpuvet_result_")), "{v:?}");
    assert!(r.iter().any(|s| s.starts_with("gpuvet_gpu_")), "{r:?}");
    let shared: Vec<&String> = v.intersection(&r).collect();
    assert!(shared.is_empty(), "{shared:?}");
    assert!(
        v.iter().all(|s| s.contains("command=\"validate\"")),
        "{v:?}"
    );
}

/// A run of peer copies only still reports each GPU's state: a result on a pair carries the
/// telemetry of its source, and both directions make each GPU a source once.
#[test]
fn prometheus_textfile_of_peer_copies_has_each_gpus_telemetry() {
    let (_dir, [prom]) = temp_files(["p2p.prom"]);
    gpuvet()
        .env("GPUVET_MOCK_DEVICES", "2")
        .args(words("--backend mock --max-time 0.05 --warmup 0"))
        .args(words_with(
            "bench p2p --size 1MiB --direction uni --prometheus {}",
            &[&prom],
        ))
        .assert()
        .code(0);
    let text = std::fs::read_to_string(&prom).unwrap();
    let samples = parse_textfile(&text);
    for gpu in ["0", "1"] {
        let clock = find(&samples, "gpuvet_gpu_sm_clock_hertz", &[("gpu", gpu)]);
        assert_eq!(clock.len(), 1, "GPU {gpu}:\n{text}");
        assert_eq!(clock[0].value, 1.5e9);
    }
    promtool_accepts(
        &prom,
        "prometheus_textfile_of_peer_copies_has_each_gpus_telemetry",
    );
}
