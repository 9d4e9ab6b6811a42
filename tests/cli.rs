//! End-to-end tests of the command line: every subcommand, bad inputs, exit codes, files.

mod common;

use common::{
    assert_exit, exits_2_saying, gpuvet, gpuvet_in_background, has_a_result, mock_report,
    quick_mock, read, read_json, signal_when, stdout_of, temp_files, words, words_with, QUICK,
};
use predicates::prelude::*;
use std::path::{Path, PathBuf};

/// True (and says so on stderr) where this machine has an NVIDIA GPU, so that a test of the
/// no-GPU path has nothing to check.
/// Whether this machine has an NVIDIA GPU, which a test of the no-GPU paths cannot run on: then
/// `test` is reported skipped (counted so by .ci/run, not as passed).
fn has_gpu(test: &str) -> bool {
    let gpu = Path::new("/dev/nvidia0").exists();
    if gpu {
        common::say_skip(test, "this machine has an NVIDIA GPU");
    }
    gpu
}

#[test]
fn quick_suite_on_mock_prints_a_table_and_exits_0() {
    gpuvet()
        .args(["--backend", "mock"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("matmul.bf16.64x64x64.nk"))
        .stdout(predicate::str::contains("ok ("))
        .stdout(predicate::str::contains("% peak"));
}

#[test]
fn json_to_stdout_is_pure_json_with_the_public_fields() {
    let out = gpuvet()
        .args(["--backend", "mock", "--json", "-"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("stdout is JSON only");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["complete"], true);
    for key in ["tool", "host", "devices", "config", "results"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let r = &v["results"][1];
    assert_eq!(r["workload"]["kind"], "matmul");
    for key in ["backend", "implementation", "dtype"] {
        assert!(r[key].is_string(), "{key}");
    }
    for key in ["passed", "method", "max_rel_error"] {
        assert!(r["verification"].get(key).is_some(), "verification.{key}");
    }
    for key in words("samples median_s mean_s min_s max_s stddev_s ci95_low_s ci95_high_s") {
        assert!(r["stats"].get(key).is_some(), "stats.{key}");
    }
    assert_eq!(r["throughput"]["unit"], "FLOP/s");
    assert!(r["throughput"]["value"].as_f64().unwrap() > 0.0);
}

#[test]
fn whole_mock_run_matches_snapshot() {
    let out = gpuvet()
        .args(["--backend", "mock", "--json", "-", "-q"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let mut v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    // The version moves with every release; everything else is fixed by the mock.
    v["tool"]["version"] = "VERSION".into();
    insta::assert_json_snapshot!("mock_quick_suite", v);
}

#[test]
fn a_wrong_result_exits_1_and_has_no_throughput() {
    let (_dir, [json, dumps]) = temp_files(["r.json", "dumps"]);
    gpuvet()
        .env("GPUVET_MOCK_FAULT", "matmul.f32")
        .args(words_with(
            "--backend mock --json {} --dump-dir {}",
            &[&json, &dumps],
        ))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL"));
    let v = read_json(&json);
    let bad = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workload"]["dtype"] == "f32" && r["workload"]["kind"] == "matmul")
        .unwrap();
    assert_eq!(bad["status"], "verification_failed");
    assert_eq!(bad["verification"]["passed"], false);
    assert!(bad["throughput"].is_null());
    assert!(bad["stats"].is_null());
    // inputs and output of the failed result, and nothing of the others
    let names: Vec<String> = std::fs::read_dir(&dumps)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.starts_with("matmul.f32.64x64x64.kn_mock.")));
    assert!(names.iter().any(|n| n.ends_with(".C.npy")));
}

/// On a node of several GPUs of one model a failure must say which GPU, in the table, in the
/// line that gives the error, and in the dumps' names (which never overwrite each other).
#[test]
fn a_failure_on_a_node_of_several_devices_names_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let out = gpuvet()
        .env("GPUVET_MOCK_DEVICES", "2")
        .env("GPUVET_MOCK_FAULT", "matmul.f32")
        .args(words_with(
            "--backend mock -q --dump-dir {} --markdown {}",
            &[&dir.path().join("dumps"), &dir.path().join("r.md")],
        ))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for d in [0, 1] {
        assert!(text.contains(&format!("Mock GPU [{d}] / mock")), "{text}");
        assert!(
            text.contains(&format!("matmul.f32.64x64x64.kn/mock [{d}]: worst error")),
            "{text}"
        );
    }
    let md = std::fs::read_to_string(dir.path().join("r.md")).unwrap();
    assert!(md.contains("on [0] Mock GPU, [1] Mock GPU"), "{md}");
    assert!(
        md.contains("| `matmul.f32.64x64x64.kn` | mock [1] |"),
        "{md}"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("dumps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want: Vec<String> = ["dev0", "dev1"]
        .iter()
        .flat_map(|d| ["A", "B", "C"].map(|t| format!("matmul.f32.64x64x64.kn_mock.{d}.{t}.npy")))
        .collect();
    assert_eq!(names, want);
}

#[test]
fn dump_all_writes_every_result() {
    let dir = tempfile::tempdir().unwrap();
    gpuvet()
        .args(words_with(
            "--backend mock -q --dump-all --dump-dir {}",
            &[dir.path()],
        ))
        .assert()
        .code(0);
    let n = std::fs::read_dir(dir.path()).unwrap().count();
    // memory copy: src + dst; 3 matmuls: A, B, C; attention: Q, K, V, O
    assert_eq!(n, 2 + 3 * 3 + 4);
}

#[test]
fn csv_and_markdown_files() {
    let (_dir, [csv, md]) = temp_files(["r.csv", "r.md"]);
    gpuvet()
        .args(words_with(
            "--backend mock -q --csv {} --markdown {}",
            &[&csv, &md],
        ))
        .assert()
        .code(0);
    let csv = std::fs::read_to_string(csv).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5);
    assert!(csv.starts_with("id,kind,workload,backend"));
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("| workload | impl |"));
    assert!(md.contains("`matmul.int8.32x32x32.nk`"));
}

#[test]
fn bad_export_path_fails_before_running() {
    exits_2_saying(
        gpuvet().args(words(
            "--backend mock --json /nonexistent-dir/x/report.json",
        )),
        "cannot write /nonexistent-dir/x/report.json: directory /nonexistent-dir/x does not exist",
    );
}

/// A file where an output directory should go (`--plot`, `--dump-dir`, the baseline
/// directory) is found before anything runs: nothing measured is thrown away at the end.
#[test]
fn a_file_in_place_of_an_output_directory_fails_before_running() {
    let (_dir, [file]) = temp_files(["a-file"]);
    std::fs::write(&file, "not a directory").unwrap();
    let f = file.display().to_string();
    let cases = [
        (
            format!("--plot {f}"),
            format!("--plot {f}: a file is in the way"),
        ),
        (
            format!("--dump-dir {f}/dumps --dump-all"),
            format!("--dump-dir {f}/dumps: cannot create it, {f} is a file"),
        ),
        (
            format!("--baseline-dir {f} --save-baseline main"),
            format!("--baseline-dir {f}: a file is in the way"),
        ),
        (
            format!("--baseline-dir {f} --baseline main"),
            format!("--baseline-dir {f}: a file is in the way"),
        ),
    ];
    for (args, msg) in cases {
        let out = gpuvet()
            .args(["--backend", "mock", "-q"])
            .args(words(&args))
            .assert()
            .code(2)
            .get_output()
            .clone();
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&msg),
            "{args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // No results table: the run never started.
        assert!(out.stdout.is_empty(), "{args}: ran before failing");
    }
}

#[test]
fn bad_inputs_exit_2_with_one_clear_line() {
    let cases: &[(&str, &str)] = &[
        ("bench matmul --shape 0x8x8", "must each be at least 1"),
        ("bench matmul --shape 8x8", "is not a shape"),
        ("bench matmul --shape 8x8x8 --dtype f64", "unknown dtype"),
        (
            "bench matmul --shape 18446744073709551615x18446744073709551615x2",
            "far beyond any device memory",
        ),
        ("bench attention --seq 16 --dtype int8", "f32, f16 or bf16"),
        (
            "bench attention --seq 16 --heads 8 --kv-heads 3",
            "must divide",
        ),
        (
            "bench attention --seq 32 --kv-seq 16 --causal",
            "causal needs",
        ),
        ("bench memory --size 8TiB", "not enough memory"),
        ("bench memory --size 12XB", "unknown size unit"),
        ("--no-such-flag", "unexpected argument"),
        ("--max-time=-1", "out of range"),
        ("--warmup 1e300", "--warmup 1e300 is out of range"),
        ("--threads 100000", "not in 0..=1024"),
        (
            "bench matmul --shape 8x8x8 --impl nonesuch",
            "no implementation `nonesuch`",
        ),
    ];
    for (args, msg) in cases {
        let out = gpuvet()
            .args(["--backend", "cpu"])
            .args(words(args))
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("RUST_BACKTRACE"), "{args:?}: {err}");
    }
}

#[test]
fn cuda_backend_without_a_gpu_exits_2() {
    exits_2_without_a_gpu(
        "cuda_backend_without_a_gpu_exits_2",
        "--backend cuda info",
        "cuda",
    );
}

/// On a machine with no NVIDIA GPU, `line` exits 2 with `msg` on stderr.
fn exits_2_without_a_gpu(test: &str, line: &str, msg: &str) {
    if has_gpu(test) {
        return;
    }
    exits_2_saying(gpuvet().args(words(line)), msg);
}

#[test]
fn auto_falls_back_to_cpu_with_a_notice() {
    if has_gpu("auto_falls_back_to_cpu_with_a_notice") {
        return;
    }
    gpuvet()
        .args(["info"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("running on the CPU backend"))
        .stdout(predicate::str::contains("[cpu]"));
}

#[test]
fn cpu_bench_each_workload_kind() {
    // A quick run of `line` on the CPU backend: exit 0, and `id` in the table.
    let bench = |line: &str, id: &str| {
        gpuvet()
            .args(["--backend", "cpu"])
            .args(QUICK)
            .args(words(line))
            .assert()
            .code(0)
            .stdout(predicate::str::contains(id));
    };
    bench(
        "bench matmul --shape 33x17x9 --dtype f32,bf16,int8 --layout kn,nk",
        "matmul.int8.33x17x9.nk",
    );
    bench(
        "bench attention --batch 2 --heads 8 --kv-heads 2 --seq 5 --kv-seq 40 \
         --head-dim 64 --causal --dtype f32,f16",
        "attention.f16.b2.h8kv2.q5.kv40.d64.causal",
    );
    bench(
        "bench memory --size 1MiB --op copy,read,write,triad",
        "memory.triad.1MiB",
    );
}

/// `info --json` carries what the text shows of each device's state, read once for both.
#[test]
fn info_json_has_each_devices_telemetry() {
    let out = gpuvet()
        .args(["--backend", "mock", "info", "--json", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = r["telemetry"].as_array().unwrap();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["device"], 0);
    assert_eq!(t[0]["sm_clock_mhz"], 1500.0);
    assert_eq!(t[0]["power_limit_w"], 300.0);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("SM 1500 MHz"), "{text}");
    // A run's report has no such list: its results carry their own telemetry.
    let run = gpuvet()
        .args(["--backend", "mock", "-q", "--json", "-"])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(r.get("telemetry").is_none());
    assert!(r["results"][0]["telemetry_before"].is_object());
}

#[test]
fn info_list_and_completions() {
    gpuvet()
        .args(["--backend", "cpu", "info"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("host"))
        .stdout(predicate::str::contains("last-level cache"));
    // A GPU's state reads as words, its NVLink links as runs, not as JSON.
    gpuvet()
        .args(["--backend", "mock", "info"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "SM 1500 MHz, memory 2600 MHz, 40 °C, 100 W of 300 W",
        ))
        .stdout(predicate::str::contains("18 × switch 00000000:F0:00.0"))
        .stdout(predicate::str::contains("{").not());
    gpuvet()
        .args(["--backend", "cpu", "list"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("quick suite"))
        .stdout(predicate::str::contains("gemm"));
    gpuvet().args(["list", "--kernels"]).assert().code(0);
    for shell in ["bash", "zsh", "fish"] {
        gpuvet()
            .args(["completions", shell])
            .assert()
            .code(0)
            .stdout(predicate::str::contains("gpuvet"));
    }
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() {
    use std::process::{Command as P, Stdio};
    let mut child = P::new(assert_cmd::cargo::cargo_bin("gpuvet"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, as with `| head -0`
    assert_exit(
        &child.wait_with_output().unwrap(),
        0,
        "gpuvet completions bash",
    );
}

#[test]
fn ctrl_c_stops_cleanly_and_keeps_what_finished() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let (_dir, [json]) = temp_files(["r.json"]);
        let child = gpuvet_in_background()
            .args(words(
                "--backend cpu --warmup 0 --max-time 0.2 --min-samples 2 --json",
            ))
            .arg(&json)
            .args(words(
                "bench memory --size 1MiB --op copy,read,write,triad,copy,read --size",
            ))
            .arg(
                "2MiB,3MiB,4MiB,5MiB,6MiB,7MiB,8MiB,9MiB,10MiB,11MiB,12MiB,13MiB,14MiB,15MiB,16MiB",
            )
            .spawn()
            .unwrap();
        // Wait until at least one result is on disk, then interrupt (Ctrl-C, or the SIGTERM
        // of a scheduler's time limit).
        signal_when(child, "result", signal, || has_a_result(&json));
        let v = read_json(&json);
        assert_eq!(v["complete"], false, "signal {signal}");
        let n = v["results"].as_array().unwrap().len();
        assert!((1..60).contains(&n), "signal {signal}: {n} results");
    }
}

/// One interruption delivered twice at once (GNU `timeout` signals the process and its group)
/// is one Ctrl-C, not two: the run still ends cleanly and writes its files.
#[test]
fn a_signal_delivered_twice_at_once_still_stops_cleanly() {
    let (_dir, [json, gab]) = temp_files(["r.json", "gab.json"]);
    let child = gpuvet_in_background()
        .args(words(
            "--backend cpu --warmup 0 --max-time 0.2 --min-samples 2 --json",
        ))
        .arg(&json)
        .arg("--export")
        .arg(format!("github:{}", gab.display()))
        .args(words("bench memory --op copy,read,write,triad --size"))
        .arg("1MiB,2MiB,3MiB,4MiB,5MiB,6MiB,7MiB,8MiB,9MiB,10MiB,11MiB,12MiB,13MiB,14MiB")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !has_a_result(&json) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(t0.elapsed().as_secs() < 60, "no result within 60 s");
    }
    // Two deliveries 10 ms apart: the first handled before the second arrives (the kernel
    // merges two sent at the same instant), the second well inside the same interruption.
    for _ in 0..2 {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 130, "gpuvet");
    // A clean stop prints the table of what finished (a second Ctrl-C leaves without it) and
    // finishes the files.
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("memory.copy.1MiB"), "{table}");
    assert_eq!(read_json(&json)["complete"], false);
    let entries = read_json(&gab);
    assert!(!entries.as_array().unwrap().is_empty(), "{entries}");
}

/// A device whose first output was wrong gets no throughput anywhere (it was reported as if
/// measured), as a wrong result of `run` gets none.
#[test]
fn stress_gives_no_figure_for_a_wrong_output() {
    let (_dir, [json, prom]) = temp_files(["s.json", "s.prom"]);
    gpuvet()
        .env("GPUVET_MOCK_FAULT", "matmul")
        .args(words("--backend mock stress --duration 1s --json"))
        .arg(&json)
        .arg("--prometheus")
        .arg(&prom)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("median —, first output WRONG"));
    let v = read_json(&json);
    assert!(v["devices"][0].get("median_throughput").is_none(), "{v}");
    assert!(!read(&prom).contains("gpuvet_stress_throughput_"));
}

#[test]
fn stress_passes_when_outputs_repeat_and_names_a_planted_fault() {
    let (_dir, [json]) = temp_files(["stress.json"]);
    gpuvet()
        .args(words("--backend cpu stress --duration 2s --size 64"))
        .args(["--check-interval", "0.3"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("verdict: PASS"));
    // int8 work is counted in OP/s; a board whose power is read gets its work per watt.
    gpuvet()
        .args(words(
            "--backend mock stress --duration 2s --size 64 --dtype int8",
        ))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("GOP/s at 100 W ("))
        .stdout(predicate::str::contains("GOP/s/W)"))
        .stdout(predicate::str::contains("FLOP").not());
    gpuvet()
        .args(words_with("--backend cpu --json {}", &[&json]))
        .args(words("stress --duration 2s --size 64 --check-interval 0.3"))
        .args(["--plant-fault", "0:2"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("silent data corruption"));
    let v = read_json(&json);
    assert_eq!(v["verdict"], "FAIL");
    assert_eq!(v["devices"][0]["mismatches"][0]["check"], 2);
    assert!(!v["devices"][0]["timeline"].as_array().unwrap().is_empty());
}

#[test]
fn stress_without_a_gpu_says_so_and_exits_2() {
    exits_2_without_a_gpu(
        "stress_without_a_gpu_says_so_and_exits_2",
        "stress --duration 1s",
        "stress needs an NVIDIA GPU",
    );
}

/// A run with a wrong result is never saved as a baseline: the good one stays, and the next
/// run is still judged against it; with no baseline yet, none is made.
#[test]
fn a_run_with_a_wrong_result_does_not_replace_a_baseline() {
    let (_dir, [bdir]) = temp_files(["baselines"]);
    let base = |line: &str| mock_with_baselines(&bdir, line);
    base("--save-baseline first")
        .env("GPUVET_MOCK_FAULT", "matmul.f32")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "baseline first not saved: 1 result(s) failed verification; no baseline of that \
             name exists yet",
        ));
    assert!(!bdir.join("first.json").exists());
    base("--save-baseline main").assert().code(0);
    let good = std::fs::read_to_string(bdir.join("main.json")).unwrap();
    base("--baseline main --save-baseline main")
        .env("GPUVET_MOCK_FAULT", "matmul.f32")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("unverified"))
        .stderr(predicate::str::contains("baseline main not saved"))
        .stderr(predicate::str::contains("is kept as it was"));
    assert_eq!(
        std::fs::read_to_string(bdir.join("main.json")).unwrap(),
        good
    );
    // Nor is a suite that measured nothing (no library for anything): its empty report would
    // leave every later run nothing to be judged against.
    base("--save-baseline main")
        .env("GPUVET_MOCK_NO_LIBRARY", "matmul,attention,memory")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "baseline main not saved: it measured nothing",
        ));
    assert_eq!(
        std::fs::read_to_string(bdir.join("main.json")).unwrap(),
        good
    );
}

/// A quiet mock run with its baselines in `bdir`, then `line`.
fn mock_with_baselines(bdir: &Path, line: &str) -> assert_cmd::Command {
    let mut c = gpuvet();
    c.args(words("--backend mock -q --baseline-dir"))
        .arg(bdir)
        .args(words(line));
    c
}

/// Rewrites the report at `path` as if it ran twice as fast: every time halved, every rate
/// doubled.
fn twice_as_fast(path: &Path) {
    let mut v = read_json(path);
    for r in v["results"].as_array_mut().unwrap() {
        let stats = r["stats"].as_object_mut().unwrap();
        for (k, x) in stats.iter_mut() {
            if k.ends_with("_s") {
                let half = |t: &serde_json::Value| serde_json::json!(t.as_f64().unwrap() / 2.0);
                *x = match x.as_array() {
                    Some(a) => a.iter().map(half).collect(),
                    None => half(x),
                };
            }
        }
        for k in ["throughput", "bandwidth"] {
            let value = r[k]["value"].as_f64().unwrap();
            r[k]["value"] = serde_json::json!(value * 2.0);
        }
    }
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// A run that fails its comparison with a baseline does not replace that baseline: the next run
/// would be judged against the slower figures and pass. Saved under another name it may be.
#[test]
fn a_regressed_run_does_not_replace_the_baseline_it_failed() {
    let (_dir, [bdir]) = temp_files(["baselines"]);
    let run = |line: &str| mock_with_baselines(&bdir, line);
    let bench = "bench matmul --shape 64x64x64 --dtype f32";
    run(&format!("--save-baseline main {bench}"))
        .assert()
        .code(0);
    // The baseline made twice as fast: this run is a confirmed regression against it.
    let path = bdir.join("main.json");
    twice_as_fast(&path);
    let fast = std::fs::read_to_string(&path).unwrap();
    run(&format!("--baseline main --save-baseline main {bench}"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "baseline main not saved: it failed the comparison with baseline main",
        ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), fast);
    run(&format!("--baseline main --save-baseline pr {bench}"))
        .assert()
        .code(1);
    assert!(bdir.join("pr.json").exists());
}

/// A comparison's JUnit file that cannot be written (a full disk: /dev/full) fails the run
/// after the baseline is saved, beside the other outputs' errors: it returned early, and the
/// save never happened.
#[test]
fn an_unwritable_junit_file_does_not_stop_the_baseline_save() {
    let (_dir, [bdir]) = temp_files(["baselines"]);
    for (flags, code) in [
        ("--save-baseline old", 0),
        ("--baseline old --save-baseline main --junit /dev/full", 2),
    ] {
        let line = format!("{flags} bench matmul --shape 64x64x64 --dtype f32");
        let (_, err) = stdout_of(&mut mock_with_baselines(&bdir, &line), code);
        assert!(code == 0 || err.contains("--junit /dev/full"), "{err}");
    }
    assert!(bdir.join("main.json").exists());
}

/// `--baseline` takes compare's gate: `--baseline-fail-on missing` fails a run that dropped a
/// result of the baseline (the default gate lets it pass), `--baseline-threshold` sets the
/// band the table states; neither is taken without `--baseline`.
#[test]
fn a_baseline_comparison_takes_the_gate_of_compare() {
    let (_dir, [bdir]) = temp_files(["baselines"]);
    let run = |line: &str| mock_with_baselines(&bdir, line);
    run("bench matmul --shape 64x64x64 --dtype f32,bf16 --save-baseline both")
        .assert()
        .code(0);
    let one = "bench matmul --shape 64x64x64 --dtype f32 --baseline both";
    run(one)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("threshold ±2%"))
        .stdout(predicate::str::contains("no regression: 1 same, 1 missing"));
    run(&format!(
        "{one} --baseline-fail-on missing --baseline-threshold 7"
    ))
    .assert()
    .code(1)
    .stdout(predicate::str::contains("threshold ±7%"))
    .stdout(predicate::str::contains("1 regression or missing result"));
    for flag in ["--baseline-fail-on missing", "--baseline-threshold 5"] {
        exits_2_saying(
            &mut run(&format!("bench matmul --shape 64x64x64 {flag}")),
            "--baseline <NAME>",
        );
    }
}

#[test]
fn baselines_save_compare_and_refuse_corrupt_files() {
    let (dir, [bdir]) = temp_files(["baselines"]);
    let base = |line: &str| mock_with_baselines(&bdir, line);
    base("--save-baseline main").assert().code(0);
    assert!(bdir.join("main.json").exists());
    // Same mock timings: every verdict is `same`, exit 0.
    base("--baseline main")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("same"));
    // Exports for CI tools.
    let gh = dir.path().join("gh.json");
    base("--export")
        .arg(format!("github:{}", gh.display()))
        .assert()
        .code(0);
    let v = read_json(&gh);
    assert!(v.as_array().unwrap().len() >= 4);
    // A corrupt baseline is an error before anything runs, and is left as it was.
    std::fs::write(bdir.join("bad.json"), "{\"schema_version\": 1, \"tool\"").unwrap();
    exits_2_saying(&mut base("--baseline bad"), "corrupt");
    // Saving over it is refused before the run, not after it.
    base("--save-baseline bad")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(bdir.join("bad.json")).unwrap(),
        "{\"schema_version\": 1, \"tool\""
    );
    // gpuvet compare on two saved runs: main against itself, and against the corrupt one
    let compare_main_with = |other: &str| {
        gpuvet()
            .arg("compare")
            .arg(bdir.join("main.json"))
            .arg(bdir.join(other))
            .assert()
    };
    compare_main_with("main.json").code(0);
    compare_main_with("bad.json").code(2);
    base("--export nonsense:x").assert().code(2);
}

/// `compare --fail-on missing` fails (exit 1) a NEW run that lacks a result of OLD, which by
/// default is listed and passes: a gate that must notice a benchmark that stopped running.
#[test]
fn compare_fails_on_a_missing_result_when_asked() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let old = fixtures.join("compare_old.json");
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
    let results = report["results"].as_array_mut().unwrap();
    // NEW lacks the noisy copy result (ambiguous even against itself) and one more.
    results.retain(|r| !r["id"].as_str().unwrap().starts_with("memory.copy"));
    let gone = results.remove(0)["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.json");
    std::fs::write(&new, serde_json::to_string(&report).unwrap()).unwrap();

    gpuvet()
        .arg("compare")
        .arg(&old)
        .arg(&new)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("no regression:").and(predicate::str::contains(&gone)));
    gpuvet()
        .args(["compare", "--fail-on", "ambiguous,missing"])
        .arg(&old)
        .arg(&new)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "2 regression, ambiguous or missing results: 5 same, 2 missing",
        ));
}

#[test]
fn validate_without_a_gpu_exits_2_and_the_pipeline_runs_on_mock() {
    if !Path::new("/dev/nvidia0").exists() {
        exits_2_saying(gpuvet().arg("validate"), "validate needs an NVIDIA GPU");
    }
    let (dir, [v1]) = temp_files(["node1.json"]);
    gpuvet()
        .args(words_with(
            "--backend mock validate --allow-cpu --verdict {}",
            &[&v1],
        ))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("correctness"))
        // A check with nothing to judge reads `skip` (not PASS), with its reason under the table.
        .stdout(predicate::str::contains("┆ skip "))
        .stdout(predicate::str::contains(
            "skip: identity on GPU 0: mock backend: not an NVIDIA GPU, identity not checked",
        ))
        .stderr(predicate::str::contains(
            "validating 1 device(s): 5 results each, then 2 link result(s)",
        ));
    let v = read_json(&v1);
    assert_eq!(v["kind"], "gpuvet-verdict");
    // The mock's fake rates sit below its fake datasheet's expectations: WARN, still exit 0.
    assert_ne!(v["verdict"], "FAIL");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(
        v["gpus"][0]["uuid"],
        "GPU-00000000-0000-0000-0000-000000000000"
    );
    // A wrong result makes the node FAIL (exit 1).
    let v2 = dir.path().join("node2.json");
    gpuvet()
        .env("GPUVET_MOCK_FAULT", "matmul.bf16")
        .args(words_with(
            "--backend mock validate --allow-cpu --verdict {}",
            &[&v2],
        ))
        .assert()
        .code(1);
    // Mock runs all claim the same host: make the second another node.
    let mut v2j = read_json(&v2);
    v2j["hostname"] = "node2".into();
    std::fs::write(&v2, serde_json::to_string(&v2j).unwrap()).unwrap();
    // The fleet view names the node to drain.
    gpuvet()
        .args(words_with("aggregate {}", &[dir.path()]))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("drain"));
    // A soak: half suite, half stress with checksums. Its samples lengthen with the soak
    // rather than multiply: the mock's take no time, and 2 s once gave 2 million samples a
    // result (a 570 MB report, minutes of bootstrap); now at most 10,000.
    let soak = dir.path().join("soak.json");
    gpuvet()
        .args(words_with(
            "--backend mock -q --json {} validate --allow-cpu --duration 2s",
            &[&soak],
        ))
        .assert()
        .code(0);
    let soak = read_json(&soak);
    let results = soak["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        let n = r["stats"]["samples"].as_u64().unwrap();
        assert!((2..=10_000).contains(&n), "{}: {n} samples", r["id"]);
    }
    // --backend cpu without --allow-cpu is refused.
    exits_2_saying(
        gpuvet().args(["--backend", "cpu", "validate"]),
        "--backend cpu is only for testing, with --allow-cpu",
    );
}

#[test]
fn list_skus_shows_the_database() {
    gpuvet()
        .args(["list", "--skus"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("h100-pcie"))
        .stdout(predicate::str::contains("h200-sxm"));
}

#[test]
fn sweep_suite_report_and_plots() {
    let (dir, [json, plots]) = temp_files(["sweep.json", "plots"]);
    gpuvet()
        .args(words_with(
            "--backend mock -q --json {} --plot {}",
            &[&json, &plots],
        ))
        .args([
            "sweep", "matmul", "--m", "1,16,64", "--n", "64", "--k", "64",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("matmul.bf16.16x64x64"));
    assert!(plots.join("roofline.svg").exists());
    assert!(plots.join("sweep.svg").exists());
    // --m without --n and --k is told what it lacks, and only that (not also a --shape).
    gpuvet()
        .args(words("--backend mock sweep matmul --m 1..8"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--n <N>"))
        .stderr(predicate::str::contains("--k <K>"))
        .stderr(predicate::str::contains("--shape").not());
    let html = dir.path().join("report.html");
    gpuvet()
        .args(words_with("report {} -o {}", &[&json, &html]))
        .assert()
        .code(0)
        .stderr(predicate::str::contains("wrote "));
    // --quiet keeps stderr empty (the "wrote" line ignored it).
    gpuvet()
        .args(words_with("-q report {} -o {}", &[&json, &html]))
        .assert()
        .code(0)
        .stderr("");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("matmul.bf16.64x64x64"));
    gpuvet()
        .arg("report")
        .arg(dir.path().join("missing.json"))
        .assert()
        .code(2);
    let est = dir.path().join("estimate.json");
    gpuvet()
        .args(words(
            "--backend cpu --warmup 0 --max-time 0.02 --min-samples 2",
        ))
        .args(words("suite llm --model llama3.1-8b --tp 8 --batch 1"))
        .args(words_with(
            "--prompt 16 --gen 8 --estimate-json {}",
            &[&est],
        ))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Left out"));
    let v = read_json(&est);
    assert!(v.to_string().contains("ttft"), "{v}");
    gpuvet()
        .args(["suite", "llm", "--model", "no-such-model"])
        .assert()
        .code(2);
}

/// `args` exits 2 with `says` on stderr.
fn refused(args: Vec<std::ffi::OsString>, says: &str) {
    exits_2_saying(gpuvet().args(args), says);
}

/// No output is written over a report the command reads, or over another output; devices are
/// written into; `-` is stdout for `report` too.
#[test]
fn outputs_never_overwrite_reports_or_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r1) = mock_report(
        dir.path(),
        "r1",
        "bench matmul --shape 64x64x64 --dtype f32",
    );
    let (_, r2) = mock_report(
        dir.path(),
        "r2",
        "bench matmul --shape 64x64x64 --dtype f32",
    );
    let before = read(&r1);
    refused(
        words_with("compare {} {} --json {}", &[&r1, &r2, &r1]),
        "is a report being compared",
    );
    refused(
        words_with("report {} -o {}", &[&r1, &r1]),
        "is the file the report reads",
    );
    let o = dir.path().join("o.json");
    refused(
        words_with(
            "--backend mock -q --json {} --csv {} bench memory --size 1MiB",
            &[&o, &o],
        ),
        "both write",
    );
    refused(
        words_with(
            "--backend mock -q --json {} --prometheus {} bench memory --size 1MiB",
            &[&o, &o],
        ),
        "two outputs write",
    );
    refused(
        words_with("compare {} {} --json {} --csv {}", &[&r1, &r2, &o, &o]),
        "both write",
    );
    assert_eq!(read(&r1), before);
    // Devices are written into, never replaced; `-o -` is stdout.
    gpuvet()
        .args(words_with("report {} -o /dev/null", &[&r1]))
        .assert()
        .code(0);
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    let (html, _) = stdout_of(gpuvet().args(words_with("report {} -o -", &[&r1])), 0);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html:.80}");
    assert!(!PathBuf::from("-").exists());
    refused(
        words_with("report {} -o {} --axis bogus", &[&r1, &o]),
        "--axis bogus: no result of",
    );
}

/// Nor over a baseline, its history, a directory of the run, or a file the run reads (the
/// price table, the model of `suite llm`).
#[test]
fn outputs_never_overwrite_baselines_or_what_the_run_reads() {
    let dir = tempfile::tempdir().unwrap();
    // An output named as the baseline it is compared with.
    let bdir = dir.path().join("b");
    gpuvet()
        .args(words_with(
            "--backend mock -q --baseline-dir {} --save-baseline main bench memory --size 1MiB",
            &[&bdir],
        ))
        .assert()
        .code(0);
    let base = bdir.join("main.json");
    let saved = read(&base);
    // Refused, with `file` left as it was (an absent one stays absent).
    let refused_keeping = |line: &str, paths: &[&Path], says: &str, file: &Path| {
        let before = std::fs::read(file).ok();
        refused(words_with(line, paths), says);
        assert_eq!(std::fs::read(file).ok(), before, "{line}");
    };
    let json_over = "--backend mock -q --baseline-dir {} --baseline main --json {} bench memory \
                     --size 1MiB";
    let says = "would overwrite baseline main";
    refused_keeping(json_over, &[&bdir, &base], says, &base);
    // A file output named as one of the run's directories.
    let pp = dir.path().join("pp");
    for flags in [
        "--plot {}",
        "--dump-dir {}",
        "--baseline-dir {} --save-baseline x",
    ] {
        refused(
            words_with(
                &format!("--backend mock -q --json {{}} {flags} bench memory --size 1MiB"),
                &[&pp, &pp],
            ),
            "name the same path, one a file and one a directory",
        );
        assert!(!pp.exists(), "{flags}");
    }
    // A command's own file too (validate's verdict), before the soak runs.
    refused(
        words_with(
            "--backend mock -q --plot {} validate --allow-cpu --duration 2s --verdict {}",
            &[&pp, &pp],
        ),
        "name the same path, one a file and one a directory",
    );
    // Or as the baseline it saves: written first, it would stand there even when the run
    // may not be saved.
    for output in ["--json", "--markdown", "--csv", "--prometheus"] {
        refused(
            words_with(
                &format!(
                    "--backend mock -q --baseline-dir {{}} --save-baseline main {output} {{}} \
                     bench memory --size 1MiB"
                ),
                &[&bdir, &base],
            ),
            "would overwrite baseline main",
        );
        assert_eq!(read(&base), saved, "{output}");
    }
    // Or into its history, whose files are its earlier runs.
    let hist = bdir.join("main.history");
    std::fs::create_dir_all(&hist).unwrap();
    let earlier = hist.join("000001.json");
    let says = "would land in the history of baseline main";
    refused_keeping(json_over, &[&bdir, &earlier], says, &earlier);
    // Or over a file the run reads: the price table, the model of `suite llm`.
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[[gpu]]\nmatch = \"Mock\"\nusd_per_hour = 2.0\n").unwrap();
    let line = "--backend mock -q --price-file {} --json {} bench memory --size 1MiB";
    let says = "would overwrite --price-file";
    refused_keeping(line, &[&prices, &prices], says, &prices);
    let model = dir.path().join("m.toml");
    let tiny = "id = 'tiny'\nname = 'Tiny'\nhidden_size = 64\nffn_size = 96\nq_heads = 4\n\
                kv_heads = 2\nhead_dim = 16\nlayers = 2\nvocab_size = 100\n";
    std::fs::write(&model, tiny).unwrap();
    for output in ["--json", "--estimate-json"] {
        let line = match output {
            "--json" => "--backend mock -q --json {} suite llm --model-file {}",
            _ => "--backend mock -q suite llm --estimate-json {} --model-file {}",
        };
        refused(
            words_with(line, &[&model, &model]),
            "would overwrite --model-file",
        );
        assert_eq!(read(&model), tiny);
    }
}

/// Values that could only print nonsense are refused up front.
#[test]
fn values_that_could_only_print_nonsense_are_refused() {
    // Values that could only print nonsense.
    for (args, says) in [
        ("bench collective --size 4KiB --ranks 1", "at least 2 ranks"),
        (
            "bench collective --size 4KiB --ranks 100000",
            "at most 8192 ranks",
        ),
        (
            "--price-per-hour 1e-300 bench memory --size 1MiB",
            "1e-300 USD per GPU-hour is below 0.001",
        ),
        ("aggregate x --outlier-pct 1000", "outside 0–100%"),
        ("aggregate x --outlier-pct nan", "outside 0–100%"),
    ] {
        refused(
            words(&format!("--backend mock -q {args}"))
                .into_iter()
                .map(Into::into)
                .collect(),
            says,
        );
    }
}

/// A bad GPUVET_BACKEND or GPUVET_WORLD is named as the variable, not as a flag the user
/// never typed (clap checks the variable even when the flag is given); a bad flag is still
/// clap's usage error.
#[test]
fn a_bad_environment_variable_is_named() {
    for (var, value, line) in [
        ("GPUVET_BACKEND", "gpu", "list"),
        ("GPUVET_BACKEND", "gpu", "--backend cpu list"),
        ("GPUVET_WORLD", "mpi", "--backend mock bench collective"),
    ] {
        exits_2_saying(
            gpuvet().env(var, value).args(words(line)),
            &format!("{var}={value} is not a valid"),
        );
    }
    exits_2_saying(
        gpuvet()
            .env("GPUVET_BACKEND", "cpu")
            .args(words("--backend gpux list")),
        "invalid value 'gpux' for '--backend",
    );
    // Seconds: a typo is not the default, and 1e20 s (beyond what a Duration holds) was a
    // panic once the CUDA backend read it.
    for (var, value) in [
        ("GPUVET_HANG_TIMEOUT", "1e20"),
        ("GPUVET_HANG_TIMEOUT", "abc"),
        ("GPUVET_HANG_TIMEOUT", "-5"),
    ] {
        let line = "--backend mock bench collective --size 1MiB";
        exits_2_saying(
            gpuvet().env(var, value).args(words(line)),
            &format!("{var}={value} is not a number of seconds above 0 and at most 86400"),
        );
    }
}

/// A FAIL is twice the tolerance below expectation: `--tolerance 50` or more would fail
/// nothing (a GPU at 0.03% of an H100 passed with exit 0), so it is refused; 49 still judges.
#[test]
fn a_tolerance_that_could_fail_nothing_is_refused() {
    for t in ["50", "60", "99"] {
        exits_2_saying(
            gpuvet().args(words(&format!(
                "--backend mock validate --allow-cpu --tolerance {t}"
            ))),
            "leaves nothing to fail",
        );
    }
}

/// A run interrupted before its `--baseline` comparison replaces the previous run's JUnit
/// file with one errored case: a CI job killed by its time limit must not read a green file.
#[test]
fn an_interrupted_baseline_run_replaces_the_last_junit_file() {
    let (_dir, [bdir, junit, json]) = temp_files(["b", "j.xml", "r.json"]);
    // The green file comes from the mock, whose runs repeat exactly: two real CPU runs on a
    // loaded machine differed by 3× here, beyond any band (the band is at most 100%).
    let quick = "--backend mock -q --warmup 0 --max-time 0.05 --min-samples 2 --baseline-dir";
    let bench = "bench memory --op copy --size 1MiB";
    gpuvet()
        .args(words(quick))
        .arg(&bdir)
        .args(words(&format!("--save-baseline main {bench}")))
        .assert()
        .code(0);
    gpuvet()
        .args(words(quick))
        .arg(&bdir)
        .args(words(&format!(
            "--baseline main --junit {} {bench}",
            junit.display()
        )))
        .assert()
        .code(0);
    assert!(read(&junit).contains("failures=\"0\""));
    let child = gpuvet_in_background()
        .args(words(
            "--backend cpu -q --warmup 0 --max-time 0.2 --min-samples 2 --baseline-dir",
        ))
        .arg(&bdir)
        .args(words(&format!(
            "--baseline main --junit {} --json {} {bench},2MiB,3MiB,4MiB,5MiB,6MiB,7MiB,8MiB,\
             9MiB,10MiB,11MiB,12MiB,13MiB,14MiB,15MiB,16MiB",
            junit.display(),
            json.display()
        )))
        .spawn()
        .unwrap();
    signal_when(child, "a result", libc::SIGTERM, || has_a_result(&json));
    let xml = read(&junit);
    assert!(
        xml.contains("errors=\"1\"") && xml.contains("interrupted before its baseline comparison"),
        "{xml}"
    );
}

/// An interrupted validate (a job's time limit, a DaemonSet's next round) leaves neither its
/// Prometheus file nor its JUnit file as the previous run wrote them: the metrics say the run
/// did not complete, and the JUnit file has one errored case.
#[test]
fn an_interrupted_validate_replaces_the_last_verdict_files() {
    let (_dir, [prom, junit, json, verdict]) =
        temp_files(["v.prom", "v.xml", "v.json", "verdict.json"]);
    let outputs = |c: &mut std::process::Command| {
        c.arg("--prometheus")
            .arg(&prom)
            .arg("--junit")
            .arg(&junit)
            .arg("--json")
            .arg(&json);
    };
    let mut first = gpuvet_in_background();
    outputs(&mut first);
    let out = first
        .args(words("--backend mock -q validate --allow-cpu --verdict"))
        .arg(&verdict)
        .output()
        .unwrap();
    assert_exit(&out, 0, "validate");
    assert!(read(&prom).contains("gpuvet_run_complete{"));
    assert!(verdict.exists());
    std::fs::remove_file(&json).unwrap();
    let mut second = gpuvet_in_background();
    outputs(&mut second);
    let child = second
        .args(words(
            "--backend mock -q validate --allow-cpu --duration 60s --verdict",
        ))
        .arg(&verdict)
        .spawn()
        .unwrap();
    signal_when(child, "result", libc::SIGTERM, || has_a_result(&json));
    let metrics = read(&prom);
    let complete: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("gpuvet_run_complete{"))
        .collect();
    assert!(
        complete.len() == 1
            && complete[0].contains("command=\"validate\"")
            && complete[0].ends_with(" 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("gpuvet_node_verdict"), "{metrics}");
    let xml = read(&junit);
    assert!(
        xml.contains("errors=\"1\"") && xml.contains("interrupted"),
        "{xml}"
    );
    // The last round's verdict is gone (aggregate would read it as this round's), and the
    // report says it is incomplete.
    assert!(!verdict.exists(), "the previous verdict was kept");
    assert_eq!(read_json(&json)["complete"], false);
}

/// `--save-baseline main --baseline-keep 3`: each save moves the run it replaces into
/// `main.history/` and keeps the newest two there; `--baseline main` then judges against all
/// three runs (the interval over runs), a corrupt earlier run stops the next run before it
/// starts, and a save without `--baseline-keep` leaves the history as it is.
#[test]
fn a_baseline_keeps_its_earlier_runs_and_is_judged_over_them() {
    let (_dir, [bdir]) = temp_files(["baselines"]);
    let run = |line: &str| mock_with_baselines(&bdir, line);
    let bench = "bench matmul --shape 64x64x64 --dtype f32";
    let hist = bdir.join("main.history");
    let history = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&hist)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|f| f.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    run(&format!("--save-baseline main --baseline-keep 3 {bench}"))
        .assert()
        .code(0);
    assert!(history().is_empty(), "nothing to keep yet: {:?}", history());
    let first = std::fs::read_to_string(bdir.join("main.json")).unwrap();
    run(&format!("--save-baseline main --baseline-keep 3 {bench}"))
        .assert()
        .code(0);
    assert_eq!(history(), ["000001.json"]);
    assert_eq!(
        std::fs::read_to_string(hist.join("000001.json")).unwrap(),
        first
    );
    for _ in 0..2 {
        run(&format!("--save-baseline main --baseline-keep 3 {bench}"))
            .assert()
            .code(0);
    }
    // Four saves, three kept: the oldest earlier run is gone.
    assert_eq!(history(), ["000002.json", "000003.json"]);
    run(&format!("--baseline main {bench}"))
        .assert()
        .stdout(predicate::str::contains(
            "OLD: baseline main + 2 more (3 runs)",
        ))
        .stdout(predicate::str::contains("OLD 3 run(s), NEW 1 run(s)"))
        .stdout(predicate::str::contains(
            "one NEW run: its spread between runs taken to be OLD's",
        ));
    // A save without --baseline-keep replaces main.json and leaves the history.
    run(&format!("--save-baseline main {bench}"))
        .assert()
        .code(0);
    assert_eq!(history(), ["000002.json", "000003.json"]);
    // A regressed run is not saved, and the message says the earlier runs would stay in the
    // interval if its figures were accepted.
    for f in [
        "main.json",
        "main.history/000002.json",
        "main.history/000003.json",
    ] {
        twice_as_fast(&bdir.join(f));
    }
    run(&format!("--baseline main --save-baseline main {bench}"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "run with --save-baseline main alone, without --baseline-keep",
        ))
        .stderr(predicate::str::contains("its 2 earlier run(s) in"))
        .stderr(predicate::str::contains(
            "stay in the interval until you delete that directory",
        ));
    // A damaged earlier run is found before anything runs, and named.
    std::fs::write(hist.join("000002.json"), "{\"schema_version\": 1,").unwrap();
    run(&format!("--baseline main {bench}"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("000002.json"))
        .stderr(predicate::str::contains("earlier run of baseline `main`"));
    // --baseline-keep means nothing without --save-baseline.
    run(&format!("--baseline-keep 3 {bench}")).assert().code(2);
}

/// A baseline lock the save could not take stops the run before it measures, like every other
/// baseline problem (it was found only after the run, whose figures were then not saved).
#[test]
fn a_baseline_lock_that_cannot_be_taken_stops_the_run_before_it_starts() {
    let (_dir, [base, json]) = common::temp_files(["base", "r.json"]);
    std::fs::create_dir_all(&base).unwrap();
    // A link to a place that cannot be made: the lock can be neither opened nor created.
    std::os::unix::fs::symlink(
        "/nonexistent-gpuvet-dir/lock",
        base.join(gpuvet::compare::baseline::DIR_LOCK),
    )
    .unwrap();
    common::exits_2_saying(
        &mut common::quick_mock(
            "--json {} --save-baseline main --baseline-dir {} bench memory --size 1MiB",
            &[&json, &base],
        ),
        ".gpuvet-lock",
    );
    assert!(!json.exists(), "the run measured before it was refused");
}

/// A wrong result exits 1 even beside one that could not run (2 means "could not judge", which
/// a CI retries; the wrong result must not be retried away).
#[test]
fn a_wrong_result_beside_one_that_could_not_run_exits_1() {
    let out = common::gpuvet()
        .env("GPUVET_MOCK_FAULT", "matmul.bf16.64x")
        .args(common::words(
            "--backend mock -q --warmup 0 --max-time 0.02 sweep matmul --m 64,1024 --n 1024 --k 1024",
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ERROR") && text.contains("FAIL"), "{text}");
    common::assert_exit(&out, 1, "a wrong result and an error");
}

/// A suite runs what its devices can: `suite llm` on a node without the attention library
/// still measures the matmuls and names the attention kernels under `missing` (it used to stop
/// with exit 2), and with `--estimate-json -` stdout is that JSON alone (the results table
/// went to stdout in front of it).
#[test]
fn suite_llm_runs_what_it_can_and_keeps_stdout_for_its_json() {
    let out = quick_mock(
        "suite llm --model llama3.1-8b --tp 8 --prompt 4 --gen 2 --estimate-json -",
        &[],
    )
    .env("GPUVET_MOCK_NO_LIBRARY", "attention")
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let est: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON");
    let missing = est["missing"].as_array().unwrap();
    assert!(
        missing.iter().any(|m| m
            .as_str()
            .unwrap()
            .contains("not run: the mock's library for attention")),
        "{est}"
    );
    assert!(
        est["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["median_s"].is_f64()),
        "{est}"
    );
    // The left-out kernels are warned about even under -q.
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: skipped: "));
}

/// A quick run whose devices could run none of its workloads measured nothing: exit 2, not an
/// empty table and 0.
#[test]
fn a_run_that_measured_nothing_exits_2() {
    exits_2_saying(
        quick_mock("run", &[]).env("GPUVET_MOCK_NO_LIBRARY", "matmul,attention,memory"),
        "nothing was measured",
    );
}

/// `--impl reference` runs vendor references only: the CPU's memory copy has none, so the run
/// is refused rather than quietly timing the own kernel.
#[test]
fn impl_reference_without_a_reference_is_refused() {
    exits_2_saying(
        gpuvet().args(words(
            "--backend cpu -q bench memory --size 1MiB --impl reference",
        )),
        "has no vendor reference",
    );
}

#[test]
fn a_bad_cpu_sgemm_choice_is_refused() {
    exits_2_saying(
        gpuvet()
            .args(words("--backend cpu info"))
            .env("GPUVET_CPU_SGEMM", "bogus"),
        "GPUVET_CPU_SGEMM=bogus is not `own` or `gemm`",
    );
}

/// `info` has devices, not results: its `--csv` and `--markdown` were tables with no rows, and
/// are refused. A report whose `schema_version` is text (`"1"`) is told so, not called "not a
/// gpuvet report".
#[test]
fn info_writes_json_only_and_a_text_schema_version_is_named() {
    let (_dir, [csv, bad, html]) = temp_files(["info.csv", "bad.json", "r.html"]);
    exits_2_saying(
        gpuvet().args(words_with("--backend cpu info --csv {}", &[&csv])),
        "`gpuvet info` does not take --csv",
    );
    std::fs::write(&bad, "{\"schema_version\": \"1\", \"results\": []}").unwrap();
    exits_2_saying(
        gpuvet().args(words_with("report {} -o {}", &[&bad, &html])),
        "schema_version is \"1\", not the number 1",
    );
}
