//! docs/report.schema.json against real reports: the snapshot of a whole mock run, the
//! comparison fixtures, fresh mock runs (several devices, a wrong result, an interrupted-style
//! incomplete file, info) and a CPU run. Validated twice: as published (objects open, as
//! readers must treat them), and strictly (every object closed), so that a field a report
//! carries and the schema does not declare fails here instead of going undocumented.

mod common;

use assert_cmd::Command;
use common::{gpuvet, words, QUICK};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join("docs/report.schema.json")).unwrap();
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// The schema with `additionalProperties: false` on every object that lists its properties
/// and says nothing else about further ones.
fn strict(mut schema: Value) -> Value {
    fn close(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                    o.insert("additionalProperties".into(), Value::Bool(false));
                }
                o.values_mut().for_each(close);
            }
            Value::Array(a) => a.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut schema);
    schema
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("the schema compiles")
}

/// Every error, with where it is, for the assertion message.
fn errors(v: &jsonschema::Validator, report: &Value) -> Vec<String> {
    v.iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn assert_valid(name: &str, report: &Value) {
    for (mode, schema) in [("published", schema()), ("strict", strict(schema()))] {
        let errs = errors(&validator(&schema), report);
        assert!(errs.is_empty(), "{name} ({mode}):\n{}", errs.join("\n"));
    }
}

fn examples() -> String {
    root().join("examples/kernels").display().to_string()
}

fn run_json(c: &mut Command, code: i32) -> Value {
    let out = c.assert().code(code).get_output().stdout.clone();
    serde_json::from_slice(&out).expect("stdout is the report")
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema();
    let meta = jsonschema::meta::validate(&schema);
    assert!(meta.is_ok(), "{meta:?}");
}

#[test]
fn the_snapshot_and_the_fixtures_match_the_schema() {
    let snap =
        std::fs::read_to_string(root().join("tests/snapshots/cli__mock_quick_suite.snap")).unwrap();
    // An insta snapshot: a YAML header between `---` lines, then the JSON.
    let json = snap.splitn(3, "---").nth(2).unwrap();
    let mut v: Value = serde_json::from_str(json).unwrap();
    v["tool"]["version"] = "0.1.0".into();
    assert_valid("the mock snapshot", &v);
    for f in ["compare_old.json", "compare_new.json"] {
        let text = std::fs::read_to_string(root().join("tests/fixtures").join(f)).unwrap();
        assert_valid(f, &serde_json::from_str(&text).unwrap());
    }
}

/// `gpuvet --backend mock -q --json - ARGS`.
fn mock(args: &str) -> Command {
    let mut c = gpuvet();
    c.args(["--backend", "mock", "-q", "--json", "-"])
        .args(args.split_whitespace());
    c
}

/// The same on a node of four mock GPUs.
fn mock_node(args: &str) -> Command {
    let mut c = mock(args);
    c.env("GPUVET_MOCK_DEVICES", "4");
    c
}

/// A quick run on the CPU backend.
fn cpu(args: &str) -> Command {
    let mut c = gpuvet();
    c.args(words("--backend cpu -q --json -"))
        .args(QUICK)
        .args(words(args));
    c
}

fn all_valid(cases: &[(&str, Value)]) {
    for (name, report) in cases {
        assert_valid(name, report);
    }
}

#[test]
fn fresh_runs_match_the_schema() {
    all_valid(&[
        ("quick suite", run_json(&mut mock(""), 0)),
        (
            "4 devices, decode attention",
            run_json(
                &mut mock_node("bench attention --seq 1 --kv-seq 512 --heads 8 --kv-heads 2"),
                0,
            ),
        ),
        (
            "a wrong result",
            run_json(mock("").env("GPUVET_MOCK_FAULT", "matmul.f32"), 1),
        ),
        (
            "a library missing: not_run",
            run_json(mock("").env("GPUVET_MOCK_NO_LIBRARY", "attention"), 0),
        ),
        (
            "a backend error",
            run_json(&mut mock("bench matmul --shape 4096x4096x4096"), 2),
        ),
        ("info", run_json(&mut mock("info"), 0)),
        (
            "a mock node's peer copies",
            run_json(
                &mut mock_node("bench p2p --size 1MiB --op write,read --direction uni,bidir"),
                0,
            ),
        ),
        (
            "cpu transfers",
            run_json(
                &mut cpu(
                    "bench transfer --size 1MiB --direction h2d,bidir --memory pinned,pageable",
                ),
                0,
            ),
        ),
        (
            "cpu collective",
            run_json(
                &mut cpu("bench collective --op all_reduce,all_gather --size 1MiB --ranks 2"),
                0,
            ),
        ),
    ]);
}

#[test]
fn fresh_runs_of_user_kernels_validate_prices_and_worlds_match_the_schema() {
    all_valid(&[
        (
            "user kernels: free-form, by determinism and by an expected file",
            run_json(
                &mut mock(&format!(
                    "--warmup 0 --max-time 0.05 bench kernel --spec {}/vector_add.toml --set N=4096",
                    examples()
                )),
                0,
            ),
        ),
        (
            "a user kernel from a file, verified against the expected output",
            run_json(
                &mut mock(&format!(
                    "--warmup 0 --max-time 0.05 bench kernel --spec {}/saxpy.toml",
                    examples()
                )),
                0,
            ),
        ),
        (
            "a user kernel as a matmul implementation, with options",
            run_json(
                &mut mock(&format!(
                    "--warmup 0 --max-time 0.05 bench matmul --shape 64x64x64 --dtype bf16 \
                     --layout nk --kernel {}/naive_gemm.toml --nvrtc-opt --use_fast_math",
                    examples()
                )),
                0,
            ),
        ),
        ("validate", run_json(&mut mock("validate --allow-cpu"), 0)),
        (
            "priced",
            run_json(
                &mut mock("--price-per-hour 2.5 bench matmul --shape 64x64x64 --dtype f32,int8"),
                0,
            ),
        ),
        ("one rank of a world", {
            let mut v = run_json(&mut mock("bench memory --size 1MiB --op copy"), 0);
            let world = gpuvet::world::WorldRecord {
                rank: 1,
                size: 2,
                local_rank: 1,
                local_size: 2,
                launcher: gpuvet::world::Launcher::Env,
                rendezvous: Some("file:/shared/rdv".into()),
                id_sha256: Some("0123456789abcdef".into()),
                hosts: vec!["gpu001".into(), "gpu001".into()],
            };
            v["world"] = serde_json::to_value(world).unwrap();
            v
        }),
        (
            "cpu",
            run_json(&mut cpu("bench memory --size 1MiB --op copy,triad"), 0),
        ),
    ]);
}

/// One way to break a report.
type Mutation = fn(&mut Value);

#[test]
fn reports_that_break_the_schema_are_refused() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/compare_old.json")).unwrap();
    let good: Value = serde_json::from_str(&text).unwrap();
    let v = validator(&schema());
    let broken: Vec<(&str, Mutation)> = vec![
        ("schema 2", |r| r["schema_version"] = 2.into()),
        ("no results", |r| {
            r.as_object_mut().unwrap().remove("results");
        }),
        ("unknown dtype", |r| r["results"][0]["dtype"] = "f64".into()),
        ("negative time", |r| {
            r["results"][0]["stats"]["median_s"] = (-1.0).into()
        }),
        ("device as text", |r| r["results"][0]["device"] = "0".into()),
        ("bad status", |r| r["results"][0]["status"] = "fine".into()),
        ("bad start time", |r| r["started_at"] = "yesterday".into()),
        ("matmul without m", |r| {
            r["results"][0]["workload"]
                .as_object_mut()
                .unwrap()
                .remove("m");
        }),
    ];
    assert!(v.is_valid(&good));
    for (what, f) in broken {
        let mut r = good.clone();
        f(&mut r);
        assert!(!v.is_valid(&r), "{what} passed");
    }
    // The strict form catches an undeclared field; the published one lets it through.
    let mut extra = good.clone();
    extra["results"][0]["new_field"] = 1.into();
    assert!(v.is_valid(&extra));
    assert!(!validator(&strict(schema())).is_valid(&extra));
}

/// The docs point at the file.
#[test]
fn the_docs_name_the_schema_file() {
    let doc = std::fs::read_to_string(Path::new(&root()).join("docs/json-schema.md")).unwrap();
    assert!(doc.contains("report.schema.json"));
}
