//! Every export as its consumer reads it, from files and from stdout: github-action-benchmark
//! (custom JSON), Bencher (BMF), CSV, the comparison's and the fleet view's files. One test
//! per row of the exports check (../shared/reference/exports-check.md); each runs the binary
//! on the mock backend and parses what it wrote the way the consumer does.

mod common;

use assert_cmd::Command;
use common::{
    gpuvet, gpuvet_in_background, interrupt_when, read, stdout_of, temp_files, words, words_with,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// `gpuvet --backend mock -q` followed by `args` (split at white space).
fn mock(args: &str) -> Command {
    let mut c = gpuvet();
    c.args(["--backend", "mock", "-q"])
        .args(args.split_whitespace());
    c
}

/// [`mock`] with paths: the `{}` in a word of `line` takes the next of `paths` (see
/// [`words_with`]).
fn mock_with(line: &str, paths: &[&Path]) -> Command {
    let mut c = mock("");
    c.args(words_with(line, paths));
    c
}

/// github-action-benchmark's parse of a custom file (`customBiggerIsBetter` or
/// `customSmallerIsBetter`): JSON, an array of `{name, value, unit, range?, extra?}`, then its
/// "No benchmark result was found" on an empty array.
fn gab_accepts(text: &str) -> Result<Vec<Value>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let entries = v.as_array().ok_or("not an array")?.clone();
    if entries.is_empty() {
        return Err("No benchmark result was found".into());
    }
    for e in &entries {
        let o = e.as_object().ok_or("an entry is not an object")?;
        for key in ["name", "unit"] {
            o.get(key)
                .and_then(Value::as_str)
                .ok_or(format!("{key} missing"))?;
        }
        o.get("value")
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
            .ok_or("value is not a number")?;
        for key in ["range", "extra"] {
            if let Some(x) = o.get(key) {
                x.as_str().ok_or(format!("{key} is not a string"))?;
            }
        }
    }
    Ok(entries)
}

/// github-action-benchmark's reading of `range` (extractRangeInfo): `±` or `+-`, spaces, then
/// a number starting with a digit.
fn gab_range(range: &str) -> Option<f64> {
    let rest = range
        .strip_prefix('±')
        .or_else(|| range.strip_prefix("+-"))?
        .trim_start();
    rest.starts_with(|c: char| c.is_ascii_digit())
        .then(|| rest.parse().ok())
        .flatten()
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct BencherMetric {
    value: f64,
    lower_value: Option<f64>,
    upper_value: Option<f64>,
}

/// Bencher's JSON adapter: benchmark name → measure slug → metric (value, optional bounds);
/// a report without a single metric is refused. Measure slugs are lowercase kebab case of at
/// most 64 characters.
fn bencher_accepts(text: &str) -> Result<BTreeMap<String, HashMap<String, BencherMetric>>, String> {
    let bmf: BTreeMap<String, HashMap<String, BencherMetric>> =
        serde_json::from_str(text).map_err(|e| format!("not BMF: {e}"))?;
    if bmf.values().all(|m| m.is_empty()) {
        return Err("no metrics".into());
    }
    for measures in bmf.values() {
        for slug in measures.keys() {
            let kebab = slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !kebab || slug.is_empty() || slug.len() > 64 {
                return Err(format!("`{slug}` is not a measure slug"));
            }
        }
    }
    Ok(bmf)
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), header.len());
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

#[test]
fn row1_stdout_carries_only_the_machine_format() {
    for (fmt, check) in [
        ("github", "gab"),
        ("github-latency", "gab"),
        ("bencher", "bencher"),
    ] {
        let (out, err) = stdout_of(&mut mock(&format!("--export {fmt}:-")), 0);
        match check {
            "gab" => assert_eq!(gab_accepts(&out).unwrap().len(), 5, "{fmt}"),
            _ => assert_eq!(bencher_accepts(&out).unwrap().len(), 5),
        }
        // The table is still shown, on stderr.
        assert!(err.contains("matmul.bf16.64x64x64.nk"), "{fmt}: {err}");
    }
    let (out, err) = stdout_of(&mut mock("--csv -"), 0);
    assert_eq!(csv_rows(&out).1.len(), 5);
    assert!(err.contains("% peak"));
    // validate and suite llm follow the same rule.
    let (out, _) = stdout_of(&mut mock("validate --allow-cpu --export github:-"), 0);
    assert!(!gab_accepts(&out).unwrap().is_empty());
}

#[test]
fn row1_two_machine_formats_on_stdout_are_a_usage_error_before_anything_runs() {
    for args in [
        "--json - --export github:-",
        "--export github:- --export bencher:-",
        "--csv - --markdown -",
        "validate --allow-cpu --json - --export bencher:-",
        "validate --allow-cpu --export github:- --verdict -",
    ] {
        let (out, err) = stdout_of(&mut mock(args), 2);
        assert!(out.is_empty(), "{args}: {out}");
        assert!(err.contains("stdout"), "{args}: {err}");
        assert!(!err.contains("% peak"), "{args}: it ran: {err}");
    }
}

#[test]
fn row2_export_is_written_by_validate_and_refused_where_it_has_no_meaning() {
    let (dir, [gab]) = temp_files(["gab.json"]);
    mock_with("validate --allow-cpu --export github:{}", &[&gab])
        .assert()
        .code(0);
    let entries = gab_accepts(&read(&gab)).unwrap();
    assert!(entries
        .iter()
        .any(|e| e["name"].as_str().unwrap().starts_with("matmul.")));
    let report = dir.path().join("r.json");
    mock_with("--json {}", &[&report]).assert().code(0);
    let refused = [
        format!("compare {0} {0} --export github:x.json", report.display()),
        "stress --duration 1s --export github:x.json".to_string(),
        "stress --duration 1s --csv x.csv".to_string(),
        "info --export github:x.json".to_string(),
        "list --json x.json".to_string(),
        format!("aggregate {} --export bencher:x.json", dir.path().display()),
        "validate --allow-cpu --save-baseline x".to_string(),
        // Measurement flags where nothing is measured.
        format!("compare {0} {0} --min-samples 50", report.display()),
        format!("report {} --hot", report.display()),
        format!("aggregate {} --max-time 9", dir.path().display()),
        "info --warmup 1".to_string(),
        // validate draws the soak's timelines, and there is no soak without --duration.
        "validate --allow-cpu --plot x.json".to_string(),
        "list --threads 7".to_string(),
        "stress --duration 1s --min-samples 500".to_string(),
    ];
    for args in &refused {
        let (_, err) = stdout_of(&mut mock(args), 2);
        assert!(
            err.contains("does not take --") || err.contains("has no soak; give --duration"),
            "{args}: {err}"
        );
        assert!(!dir.path().join("x.json").exists());
    }
}

/// A comparison of the two fixtures as CSV, from a file and from stdout.
#[test]
fn row3_compare_csv_is_written() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (old, new) = (
        fixtures.join("compare_old.json"),
        fixtures.join("compare_new.json"),
    );
    let (_dir, [csv_path, json_path]) = temp_files(["cmp.csv", "cmp.json"]);
    gpuvet()
        .arg("compare")
        .args([&old, &new])
        .args(words_with("--csv {} --json {}", &[&csv_path, &json_path]))
        .assert()
        .code(1);
    let (header, rows) = csv_rows(&read(&csv_path));
    assert_eq!(header[..4], ["id", "device", "verdict", "regression"]);
    let json: Value = serde_json::from_str(&read(&json_path)).unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(rows.len(), results.len());
    for (row, r) in rows.iter().zip(results) {
        assert_eq!(row["id"], r["id"].as_str().unwrap());
        assert_eq!(row["verdict"], r["verdict"].as_str().unwrap());
        if let Some(ratio) = r["ratio"]["ratio"].as_f64() {
            let got: f64 = row["ratio"].parse().unwrap();
            assert!((got - ratio).abs() <= 1e-12 * ratio);
        }
    }
    // `-`: the CSV alone on stdout, the table on stderr; the global spelling works too.
    let out = gpuvet()
        .args(["--csv", "-", "compare"])
        .args([&old, &new])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert_eq!(csv_rows(&String::from_utf8(out.stdout).unwrap()).1.len(), 8);
    assert!(String::from_utf8(out.stderr).unwrap().contains("slower"));
    gpuvet()
        .arg("compare")
        .args([&old, &new])
        .args(["--csv", "-", "--json", "-"])
        .assert()
        .code(2);
}

#[test]
fn row3_aggregate_writes_the_global_formats() {
    let (_dir, [nodes, csv_path, json_path, md_path]) =
        temp_files(["nodes", "fleet.csv", "fleet.json", "fleet.md"]);
    std::fs::create_dir(&nodes).unwrap();
    mock("validate --allow-cpu --verdict")
        .arg(nodes.join("n1.json"))
        .assert()
        .code(0);
    gpuvet()
        .args(words_with(
            "aggregate {} --csv {} --json {} --markdown {}",
            &[&nodes, &csv_path, &json_path, &md_path],
        ))
        .assert()
        .code(0)
        .stdout(predicate_contains("SKU"));
    let (header, rows) = csv_rows(&read(&csv_path));
    assert!(header.contains(&"uuid".to_string()), "{header:?}");
    assert!(!rows.is_empty());
    let fleet: Value = serde_json::from_str(&read(&json_path)).unwrap();
    assert!(fleet["skus"].is_array());
    assert!(read(&md_path).contains('|'));
    // `--json -`: only JSON on stdout, the table on stderr.
    let out = gpuvet()
        .args(words_with("aggregate --json - {}", &[&nodes]))
        .assert()
        .code(0)
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON only");
    assert!(v["skus"].is_array());
    assert!(!out.stderr.is_empty());
    // Two formats on stdout.
    gpuvet()
        .args(words_with("aggregate --format json --csv - {}", &[&nodes]))
        .assert()
        .code(2);
}

fn predicate_contains(s: &str) -> predicates::str::ContainsPredicate {
    predicates::str::contains(s)
}

#[test]
fn row4_export_paths_are_checked_before_the_run_naming_the_users_path() {
    for spec in [
        "github:/nonexistent-dir/gab.json",
        "bencher:/nonexistent-dir/bmf.json",
    ] {
        let (out, err) = stdout_of(&mut mock(&format!("--export {spec}")), 2);
        assert!(out.is_empty(), "it ran: {out}");
        let path = spec.split_once(':').unwrap().1;
        assert!(err.contains(&format!("cannot write {path}")), "{err}");
        assert!(
            !err.contains(".gpuvet-tmp") && !err.contains(".tmp"),
            "{err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, err) = stdout_of(
        &mut mock(&format!("--export github:{}", dir.path().display())),
        2,
    );
    assert!(err.contains("is a directory"), "{err}");
}

/// An export that cannot be written at the end (nothing verified) fails clearly; the run, with
/// a wrong result, is not saved as a baseline either (it says so).
#[test]
fn row4_and_row14_nothing_verified_fails_clearly_and_saves_no_baseline() {
    let (dir, [gab, bmf, lat]) = temp_files(["gab.json", "bmf.json", "lat.json"]);
    // A stale file from an earlier run must not pass for this run's.
    std::fs::write(&gab, "[{\"name\": \"old\", \"unit\": \"x\", \"value\": 1}]").unwrap();
    let bdir = dir.path().join("baselines");
    let (_, err) = stdout_of(
        mock_with(
            "--baseline-dir {} --save-baseline main bench matmul --shape 64x64x64 --dtype f32 \
             --export github:{} --export bencher:{} --export github-latency:{}",
            &[&bdir, &gab, &bmf, &lat],
        )
        .env("GPUVET_MOCK_FAULT", "matmul.f32"),
        1,
    );
    for p in [&gab, &bmf, &lat] {
        assert!(!p.exists(), "{} was written", p.display());
        assert!(err.contains(&p.display().to_string()), "{err}");
    }
    assert!(err.contains("no verified result"), "{err}");
    assert!(err.contains("removed"), "{err}");
    assert!(
        !bdir.join("main.json").exists(),
        "a failing run became a baseline"
    );
    assert!(
        err.contains("baseline main not saved: 1 result(s) failed verification"),
        "{err}"
    );
}

/// A FIFO as an output (what a shell's `>(…)` is) receives one whole document at the end of
/// a run of several results, not one more after every result; the FIFO stays a FIFO.
#[test]
fn a_fifo_output_gets_one_document() {
    use std::io::Read;
    let (_dir, [fifo]) = temp_files(["pipe.json"]);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIP a_fifo_output_gets_one_document: mkfifo is not available");
        return;
    }
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(fifo)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        })
    };
    mock_with("--json {} bench memory --size 1MiB,2MiB,4MiB", &[&fifo])
        .assert()
        .code(0);
    let text = reader.join().unwrap();
    let doc: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(doc["results"].as_array().unwrap().len(), 3);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

/// One sample has no spread: the exports carry the figure without an interval and the CSV
/// leaves stddev and the interval empty, rather than claim a width of zero. Five samples have a
/// spread but no 95% interval (at most [min, max], which holds the median 94% of the time);
/// six have one.
#[test]
fn one_sample_is_exported_without_an_interval() {
    let (_dir, [gab, bmf, csv]) = temp_files(["gab.json", "bmf.json", "r.csv"]);
    let run = |samples: u64| {
        mock(&format!("--min-samples {samples} --max-samples {samples}"))
            .args(words_with(
                "--export github:{} --export bencher:{} --csv {} \
                 bench matmul --shape 64x64x64 --dtype f32",
                &[&gab, &bmf, &csv],
            ))
            .assert()
            .code(0);
        let g: Value = serde_json::from_str(&read(&gab)).unwrap();
        let b: Value = serde_json::from_str(&read(&bmf)).unwrap();
        let (_, rows) = csv_rows(&read(&csv));
        (
            g[0].clone(),
            b.as_object().unwrap().values().next().unwrap().clone(),
            rows,
        )
    };
    let (g, b, rows) = run(1);
    assert!(g["value"].as_f64().unwrap() > 0.0);
    assert!(g.get("range").is_none(), "{g}");
    for measure in ["flops", "latency"] {
        assert!(b[measure]["value"].as_f64().unwrap() > 0.0, "{b}");
        assert!(b[measure].get("lower_value").is_none(), "{b}");
        assert!(b[measure].get("upper_value").is_none(), "{b}");
    }
    assert_eq!(rows[0]["samples"], "1");
    for col in ["stddev_s", "ci95_low_s", "ci95_high_s"] {
        assert_eq!(rows[0][col], "", "{col}");
    }
    assert_ne!(rows[0]["median_s"], "");
    let (g, b, rows) = run(5);
    assert!(g.get("range").is_none(), "{g}");
    assert!(b["latency"].get("lower_value").is_none(), "{b}");
    assert_ne!(rows[0]["stddev_s"], "");
    assert_eq!(rows[0]["ci95_low_s"], "");
    let (g, b, rows) = run(6);
    assert!(g["range"].as_str().unwrap().starts_with("± "), "{g}");
    assert!(b["latency"]["lower_value"].as_f64().is_some(), "{b}");
    assert_ne!(rows[0]["ci95_low_s"], "");
}

/// CSV: the JSON's names and values, the device index and UUID (eight identical GPUs give
/// eight distinguishable rows), the workload's parameters, and what joins CSVs of many nodes.
#[test]
fn row5_and_row6_csv_has_the_jsons_columns_and_tells_identical_gpus_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (csv_path, json_path) = (dir.path().join("r.csv"), dir.path().join("r.json"));
    mock_with(
        "--csv {} --json {} bench matmul --shape 64x64x64",
        &[&csv_path, &json_path],
    )
    .env("GPUVET_MOCK_DEVICES", "8")
    .assert()
    .code(0);
    let (header, rows) = csv_rows(&read(&csv_path));
    assert_eq!(header, gpuvet::export::CSV_COLUMNS);
    let report: Value = serde_json::from_str(&read(&json_path)).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    let keys: std::collections::HashSet<(String, String)> = rows
        .iter()
        .map(|r| (r["device"].clone(), r["device.uuid"].clone()))
        .collect();
    assert_eq!(keys.len(), 8, "rows of identical GPUs must differ");
    for (row, r) in rows.iter().zip(results) {
        assert_eq!(row["device"], r["device"].to_string());
        let dev = &report["devices"][r["device"].as_u64().unwrap() as usize];
        assert_eq!(row["device.uuid"], dev["uuid"].as_str().unwrap());
        assert_eq!(row["device.name"], dev["name"].as_str().unwrap());
        assert_eq!(
            row["host.hostname"],
            report["host"]["hostname"].as_str().unwrap()
        );
        assert_eq!(row["started_at"], report["started_at"].as_str().unwrap());
        assert_eq!(
            row["tool.version"],
            report["tool"]["version"].as_str().unwrap()
        );
        assert_eq!(row["stop_reason"], r["stop_reason"].as_str().unwrap());
        for (col, json) in [
            ("flops", &r["flops"]),
            ("bytes", &r["bytes"]),
            ("p10_s", &r["stats"]["p10_s"]),
            ("p90_s", &r["stats"]["p90_s"]),
            ("mad_s", &r["stats"]["mad_s"]),
            ("effective_clock_mhz", &r["effective_clock_mhz"]),
            ("iterations_per_sample", &r["iterations_per_sample"]),
            ("tolerance", &r["verification"]["tolerance"]),
        ] {
            let got: f64 = row[col].parse().unwrap_or_else(|_| panic!("{col}"));
            assert_eq!(got, json.as_f64().unwrap(), "{col}");
        }
        assert_eq!(row["error"], "");
    }
    // Every workload parameter of every kind in the quick suite has its column.
    mock_with("--csv {} --json {}", &[&csv_path, &json_path])
        .assert()
        .code(0);
    let (_, rows) = csv_rows(&read(&csv_path));
    let report: Value = serde_json::from_str(&read(&json_path)).unwrap();
    for (row, r) in rows.iter().zip(report["results"].as_array().unwrap()) {
        for (k, v) in r["workload"].as_object().unwrap() {
            if k == "kind" || k == "dtype" {
                continue;
            }
            let cell = &row[&format!("workload.{k}")];
            let want = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            assert_eq!(cell, &want, "workload.{k}");
        }
    }
}

/// The columns gpuvet has always written keep their names and places.
#[test]
fn row6_existing_csv_columns_keep_their_order() {
    let before = "id kind workload backend device implementation dtype compute_dtype status \
                  verified verification_method max_rel_error samples median_s mean_s min_s \
                  max_s stddev_s ci95_low_s ci95_high_s throughput throughput_unit \
                  peak_fraction bandwidth_bytes_per_s cache notes";
    let before: Vec<&str> = before.split_whitespace().collect();
    assert_eq!(gpuvet::export::CSV_COLUMNS[..before.len()], before[..]);
}

#[test]
fn row7_an_interrupted_run_keeps_every_export_with_what_finished() {
    let (_dir, [csv_path, gab, bmf]) = temp_files(["r.csv", "gab.json", "bmf.json"]);
    let child = gpuvet_in_background()
        .args("--backend cpu --warmup 0 --max-time 0.2 --min-samples 2 --csv".split(' '))
        .arg(&csv_path)
        .arg("--export")
        .arg(format!("github:{}", gab.display()))
        .arg("--export")
        .arg(format!("bencher:{}", bmf.display()))
        .args("bench memory --op copy,read,write,triad --size".split(' '))
        .arg("1MiB,2MiB,3MiB,4MiB,5MiB,6MiB,7MiB,8MiB,9MiB,10MiB,11MiB,12MiB,13MiB,14MiB,15MiB")
        .spawn()
        .unwrap();
    interrupt_when(child, "export", || gab.exists());
    let rows = csv_rows(&read(&csv_path)).1;
    let gab = gab_accepts(&read(&gab)).unwrap();
    let bmf = bencher_accepts(&read(&bmf)).unwrap();
    assert!(!rows.is_empty() && rows.len() < 60, "{} rows", rows.len());
    assert_eq!(gab.len(), rows.len());
    assert_eq!(bmf.len(), rows.len());
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn row8_every_file_gpuvet_writes_is_0644() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let bdir = p("baselines");
    mock_with(
        "--json {} --csv {} --markdown {} --export github:{} --export github-latency:{} \
         --export bencher:{} --baseline-dir {} --save-baseline main",
        &[
            &p("r.json"),
            &p("r.csv"),
            &p("r.md"),
            &p("gab.json"),
            &p("lat.json"),
            &p("bmf.json"),
            &bdir,
        ],
    )
    .assert()
    .code(0);
    gpuvet()
        .args(words_with(
            "compare {} {} --markdown {} --json {} --csv {}",
            &[
                &p("r.json"),
                &p("r.json"),
                &p("c.md"),
                &p("c.json"),
                &p("c.csv"),
            ],
        ))
        .assert()
        .code(0);
    mock("validate --allow-cpu --verdict")
        .arg(p("verdict.json"))
        .assert()
        .code(0);
    gpuvet()
        .args(words_with(
            "aggregate {} -o {} --csv {}",
            &[&p("verdict.json"), &p("fleet.txt"), &p("fleet.csv")],
        ))
        .assert()
        .code(0);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.push(bdir.join("main.json"));
    assert_eq!(files.len(), 13, "{files:?}");
    for f in files {
        assert_eq!(mode(&f), 0o644, "{}", f.display());
    }
}

#[test]
fn row9_a_shape_asked_for_twice_is_measured_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gab, bmf) = (dir.path().join("gab.json"), dir.path().join("bmf.json"));
    let out = gpuvet()
        .args(["--backend", "mock"])
        .args(
            format!(
            "--export github:{} --export bencher:{} bench matmul --shape 128x128x128,128x128x128 \
             --impl mock,mock",
            gab.display(),
            bmf.display()
        )
            .split_whitespace(),
        )
        .assert()
        .code(0)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("asked for 2 times; measured once"), "{err}");
    assert!(err.contains("asked for twice; measured once"), "{err}");
    assert_eq!(gab_accepts(&read(&gab)).unwrap().len(), 1);
    assert_eq!(bencher_accepts(&read(&bmf)).unwrap().len(), 1);
}

/// `range` is half the 95% interval, with digits that survive: the mock's interval is about
/// ±0.05%, which rounded to 4 decimals of TFLOP/s was `± 0.0000`.
#[test]
fn row10_gab_range_is_meaningful() {
    let (_dir, [gab, lat, json]) = temp_files(["gab.json", "lat.json", "r.json"]);
    mock_with(
        "--json {} --export github:{} --export github-latency:{}",
        &[&json, &gab, &lat],
    )
    .assert()
    .code(0);
    let report: Value = serde_json::from_str(&read(&json)).unwrap();
    let results = report["results"].as_array().unwrap();
    for (file, latency) in [(&gab, false), (&lat, true)] {
        for (e, r) in gab_accepts(&read(file)).unwrap().iter().zip(results) {
            let s = &r["stats"];
            let (median, lo, hi) = (
                s["median_s"].as_f64().unwrap(),
                s["ci95_low_s"].as_f64().unwrap(),
                s["ci95_high_s"].as_f64().unwrap(),
            );
            let want_rel = if latency {
                (hi - lo) / 2.0 / median
            } else {
                (1.0 / lo - 1.0 / hi) / 2.0 * median
            };
            let value = e["value"].as_f64().unwrap();
            let range = gab_range(e["range"].as_str().unwrap()).expect("a range GAB reads");
            assert!(range > 0.0, "{e}");
            let got_rel = range / value;
            assert!(
                (got_rel / want_rel - 1.0).abs() < 0.01,
                "{e}: {got_rel} vs {want_rel}"
            );
            if latency {
                assert_eq!(e["unit"], "us");
                assert!((value - median * 1e6).abs() < 1e-9 * value);
            }
        }
    }
}

/// Units per kind: decode attention moves bytes (GB/s, Bencher `bandwidth`), prefill
/// attention and matmul compute (TFLOP/s, `flops`), int8 (TOP/s, `ops`), memory (GB/s).
#[test]
fn row11_and_row12_units_and_bencher_measures_match_the_workload() {
    let dir = tempfile::tempdir().unwrap();
    let mut gab_all = Vec::new();
    let mut bmf_all = BTreeMap::new();
    for bench in [
        "",
        "bench attention --seq 1 --kv-seq 256 --heads 8 --dtype bf16",
    ] {
        let (gab, bmf) = (dir.path().join("gab.json"), dir.path().join("bmf.json"));
        mock_with("--export github:{} --export bencher:{}", &[&gab, &bmf])
            .args(words(bench))
            .assert()
            .code(0);
        gab_all.extend(gab_accepts(&read(&gab)).unwrap());
        bmf_all.extend(bencher_accepts(&read(&bmf)).unwrap());
    }
    let want = |name: &str| -> (&str, &str) {
        if name.starts_with("memory.") || name.contains(".q1.") {
            ("GB/s", "bandwidth")
        } else if name.contains(".int8.") {
            ("TOP/s", "ops")
        } else {
            ("TFLOP/s", "flops")
        }
    };
    assert!(gab_all
        .iter()
        .any(|e| e["name"].as_str().unwrap().contains(".q1.")));
    for e in &gab_all {
        let name = e["name"].as_str().unwrap();
        let (unit, slug) = want(name);
        assert_eq!(e["unit"], unit, "{name}");
        let measures = &bmf_all[name];
        let mut slugs: Vec<&str> = measures.keys().map(String::as_str).collect();
        slugs.sort();
        let mut expected = vec![slug, "latency"];
        expected.sort();
        assert_eq!(slugs, expected, "{name}");
        let m = &measures[slug];
        assert!(m.lower_value.unwrap() <= m.value && m.value <= m.upper_value.unwrap());
    }
    // The docs say so.
    let docs = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/regression.md"));
    assert!(
        docs.contains("`GB/s` (memory, and decode attention"),
        "docs/regression.md"
    );
}

#[test]
fn row13_compare_json_always_has_detail() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (out, _) = stdout_of(
        gpuvet()
            .arg("compare")
            .args([
                fixtures.join("compare_old.json"),
                fixtures.join("compare_old.json"),
            ])
            .args(["--json", "-"]),
        0,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    for r in v["results"].as_array().unwrap() {
        assert!(r.as_object().unwrap().contains_key("detail"), "{r}");
    }
}

/// Eight identical GPUs: one series per device in both CI formats.
#[test]
fn identical_gpus_get_one_series_each() {
    let (out, _) = stdout_of(
        mock("--export bencher:- bench matmul --shape 64x64x64").env("GPUVET_MOCK_DEVICES", "8"),
        0,
    );
    let bmf = bencher_accepts(&out).unwrap();
    assert_eq!(bmf.len(), 8);
    assert!(bmf.contains_key("matmul.bf16.64x64x64.kn/mock (device 7)"));
}

/// Stdout under another name (`/dev/stdout`, here the test's pipe) is stdout: one output only,
/// the table on stderr, as with `-`.
#[test]
fn dev_stdout_is_stdout() {
    let out = gpuvet()
        .args(words(
            "--backend mock -q --warmup 0 --max-time 0.05 --export github:/dev/stdout",
        ))
        .assert()
        .code(0)
        .get_output()
        .clone();
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON alone");
    assert!(!entries.as_array().unwrap().is_empty());
    let err = String::from_utf8_lossy(
        &gpuvet()
            .args(words(
                "--backend mock -q --export github:/dev/stdout --json -",
            ))
            .assert()
            .code(2)
            .get_output()
            .stderr,
    )
    .into_owned();
    assert!(err.contains("stdout"), "{err}");
    // The same for every output flag, read as `-` when parsed.
    gpuvet()
        .args(words("--backend mock -q --json /dev/stdout --csv -"))
        .assert()
        .code(2);
    // The file stdout is redirected to, named: the JSON goes down stdout into it (renamed over,
    // the shell's stdout would write the table into a deleted file), the table to stderr.
    let (_dir, [f]) = temp_files(["out.json"]);
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("gpuvet"))
        .args(words("--backend mock -q --warmup 0 --max-time 0.05 --json"))
        .arg(&f)
        .stdout(std::fs::File::create(&f).unwrap())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let v: serde_json::Value = serde_json::from_str(&read(&f)).expect("the report alone");
    assert!(!v["results"].as_array().unwrap().is_empty());
    // /dev/null is no stdout: two outputs may go there.
    gpuvet()
        .args(words(
            "--backend mock -q --warmup 0 --max-time 0.05 --json /dev/null --csv /dev/null",
        ))
        .assert()
        .code(0);
}

/// A file another user owns in a sticky directory (as /tmp) cannot be replaced: refused before
/// the run, not after it, and left as it was. Needs root (to own the old file while gpuvet runs
/// as another user) and setpriv; skips visibly elsewhere.
#[test]
fn a_file_another_user_owns_in_a_sticky_directory_is_refused_before_the_run() {
    use std::os::unix::fs::PermissionsExt;
    let test = "a_file_another_user_owns_in_a_sticky_directory_is_refused_before_the_run";
    let bin = assert_cmd::cargo::cargo_bin("gpuvet");
    let setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || setpriv.is_err() {
        common::say_skip(test, "needs root and setpriv");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let perm = std::fs::Permissions::from_mode(0o1777);
    std::fs::set_permissions(dir.path(), perm).unwrap();
    let old = dir.path().join("g.json");
    std::fs::write(&old, "old\n").unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(words("--backend mock -q --export"))
        .arg(format!("github:{}", old.display()))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Permission denied") && !err.contains("g.json") {
        // The binary itself is out of that user's reach (a private build directory).
        common::say_skip(test, &format!("uid 65534 cannot run {}", bin.display()));
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("belongs to another user"), "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("mock"),
        "nothing ran"
    );
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "old\n");
}
