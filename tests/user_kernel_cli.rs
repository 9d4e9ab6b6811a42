//! `bench kernel` and `--kernel` end to end without a GPU: the CPU refuses with "needs a GPU"
//! (exit 2); every bad input is a clear exit 2 before anything runs; on the mock backend (which
//! checks the kernel with NVRTC where it can and simulates its output, labelled) the whole path
//! runs: plan, verification, measurement, the kernel record in the report, `--set` sweeps, an
//! unverified result labelled and failing, a wrong one never a figure, and `compare` saying
//! when the kernel changed. tests/cuda_gpu.rs runs the same examples on a GPU.

mod common;

use common::{exits_2_saying, gpuvet, temp_files};
use predicates::prelude::*;
use std::path::{Path, PathBuf};

/// Fast measurement settings.
const QUICK: [&str; 6] = ["--warmup", "0", "--max-time", "0.05", "--min-samples", "3"];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kernels")
}

/// gpuvet on the mock with the quick sampling settings.
fn mock_quick() -> assert_cmd::Command {
    let mut c = gpuvet();
    c.args(["--backend", "mock"]).args(QUICK);
    c
}

fn ex(name: &str) -> String {
    examples().join(name).display().to_string()
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// NVRTC is available to the gpuvet binary (then the mock compiles and checks the kernels).
/// The string `key` of every result of report `r`, in order.
fn each<'a>(r: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap())
        .collect()
}

fn have_nvrtc() -> bool {
    gpuvet::backend::cuda::nvrtc::available().is_ok()
}

/// A copy of examples/kernels in a temporary folder, to edit.
fn copy_examples() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(examples()).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
        }
    }
    std::fs::create_dir(d.path().join("data")).unwrap();
    for e in std::fs::read_dir(examples().join("data")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.path().join("data").join(e.file_name())).unwrap();
    }
    d
}

#[test]
fn the_cpu_refuses_user_kernels_saying_they_need_a_gpu() {
    let spec = ex("vector_add.toml");
    let gemm = ex("naive_gemm.toml");
    for args in [
        vec!["bench", "kernel", "--spec", &spec],
        vec!["bench", "matmul", "--shape", "64x64x64", "--kernel", &gemm],
    ] {
        gpuvet()
            .args(["--backend", "cpu"])
            .args(&args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("user CUDA kernels need a GPU"));
    }
}

/// The examples' `vector_add.toml` with `from` replaced by `to`, written as `name` beside it.
fn broken(d: &Path, name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(d.join("vector_add.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(d.join(name), text.replace(from, to)).unwrap();
    d.join(name).display().to_string()
}

/// `kernel --spec PATH [more]`.
fn spec(path: String, more: &[&str]) -> Vec<String> {
    let mut v = vec!["kernel".to_string(), "--spec".into(), path];
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

/// `matmul --shape 64x64x64 --layout nk [more]` (the layout naive_gemm_bf16_nk is written for,
/// as its spec says).
fn matmul(more: &[&str]) -> Vec<String> {
    ["matmul", "--shape", "64x64x64", "--layout", "nk"]
        .iter()
        .chain(more)
        .map(|s| s.to_string())
        .collect()
}

/// Each `bench ARGS` on the mock exits 2 saying its text.
fn each_refused(cases: Vec<(Vec<String>, &str)>) {
    for (args, want) in cases {
        exits_2_saying(
            gpuvet().args(["--backend", "mock", "bench"]).args(&args),
            want,
        );
    }
}

#[test]
fn bad_kernel_specs_exit_2_before_anything_runs() {
    let d = copy_examples();
    let p = |f: &str| d.path().join(f).display().to_string();
    let broken = |name: &str, from: &str, to: &str| broken(d.path(), name, from, to);
    each_refused(vec![
        (
            spec(
                broken("t1.toml", "count = \"N\"\ninit", "cout = \"N\"\ninit"),
                &[],
            ),
            "unknown field `cout`",
        ),
        (
            spec(broken("t2.toml", "BLOCK = 256", "BLOCK = 2048"), &[]),
            "block.x = 2048 is above the device's 1024",
        ),
        (
            spec(broken("t3.toml", "N = \"64Mi\"", "N = \"2**70\""), &[]),
            "does not fit 64 bits",
        ),
        (
            spec(broken("t4.toml", "N = \"64Mi\"", "N = \"8Gi\""), &[]),
            "not enough memory",
        ),
        (
            spec(
                broken("t5.toml", "BLOCK = 256", "BLOCK = \"256 / (N - N)\""),
                &[],
            ),
            "division by zero",
        ),
        (
            spec(
                broken(
                    "t6.toml",
                    "[verify]\nmethod = \"determinism\"\nruns = 3",
                    "",
                ),
                &[],
            ),
            "no [verify]",
        ),
        (
            spec(p("vector_add.toml"), &["--set", "BLOK=1,2"]),
            "uses `BLOK`",
        ),
        (
            spec(p("nowhere.toml"), &[]),
            "nowhere.toml: cannot read the spec",
        ),
        (
            spec(p("vector_add.cu"), &[]),
            "this is CUDA source, not a spec",
        ),
        (
            spec(
                broken(
                    "t9.toml",
                    "entry = \"vector_add\"",
                    "entry = \"vector_add\"\nlayout = \"nk\"",
                ),
                &[],
            ),
            "a free-form kernel's buffers say their own shapes",
        ),
    ]);
}

#[test]
fn bad_kernel_flags_exit_2_before_anything_runs() {
    let d = copy_examples();
    let p = |f: &str| d.path().join(f).display().to_string();
    let gemm = p("naive_gemm.toml");
    let cu = p("naive_gemm.cu");
    each_refused(vec![
        (
            matmul(&["--kernel", &format!("{cu}:naive_gemm_bf16_nk")]),
            "needs --launch",
        ),
        (
            matmul(&["--kernel", &gemm, "--launch", "block=64,64"]),
            "4096 threads",
        ),
        (
            matmul(&["--kernel", &gemm, "--launch", "grid=cdiv(Q,16)"]),
            "unknown name `Q`",
        ),
        (
            matmul(&["--kernel", &gemm, "--nvrtc-opt", "--gpu-architecture=sm_70"]),
            "device's own architecture",
        ),
        (
            matmul(&["--kernel", &gemm, "--kernel-name", "mock"]),
            "already exists",
        ),
        // A keyword of --impl: named `default`, the kernel silently did not run.
        (
            matmul(&["--kernel", &gemm, "--kernel-name", "default"]),
            "is a keyword of --impl",
        ),
        (
            matmul(&["--kernel", &gemm, "--impl", "all,naive_gemm"]),
            "give it alone",
        ),
        (matmul(&["--launch", "grid=1"]), "--kernel"),
        // The spec says what its entry reads: another dtype or B layout is refused up front.
        (
            matmul(&["--kernel", &gemm, "--dtype", "f32"]),
            "`naive_gemm` is written for dtype bf16 (its spec's `dtype`), and matmul.f32.64x64x64.nk is f32",
        ),
        (
            ["matmul", "--shape", "64x64x64", "--dtype", "bf16", "--kernel", &gemm]
                .map(String::from)
                .to_vec(),
            "`naive_gemm` is written for layout nk (its spec's `layout`), and matmul.bf16.64x64x64.kn is kn",
        ),
    ]);
}

/// What only the compiled kernel can tell.
#[test]
fn compiled_kernels_that_do_not_match_exit_2() {
    if !have_nvrtc() {
        common::say_skip(
            "compiled_kernels_that_do_not_match_exit_2",
            "NVRTC is not available for the PTX checks",
        );
        return;
    }
    let d = copy_examples();
    let p = |f: &str| d.path().join(f).display().to_string();
    let cu = p("naive_gemm.cu");
    // What only the compiled kernel can tell: a missing entry, an argument list that does not
    // match its PTX, a compile error with its source line.
    std::fs::write(
        d.path().join("bad.cu"),
        "extern \"C\" __global__ void bad(float* x) {\n  x[0] = nope;\n}\n",
    )
    .unwrap();
    for (kernel, launch, want) in [
        (
            format!("{cu}:gemm"),
            "grid=1,block=1,args=A,B,C,M,N,K",
            "no kernel `gemm`",
        ),
        (
            format!("{cu}:naive_gemm_bf16_nk"),
            "grid=1,block=1,args=A,B,C,M,N",
            "takes 6 parameter(s)",
        ),
        (
            format!("{cu}:naive_gemm_bf16_nk"),
            "grid=1,block=1,args=A,B,C,M,N,u64:K",
            "parameter 6 is `.u32`",
        ),
        (
            format!("{}:bad", p("bad.cu")),
            "grid=1,block=1,args=C",
            "x[0] = nope;",
        ),
    ] {
        exits_2_saying(
            gpuvet()
                .args([
                    "--backend",
                    "mock",
                    "bench",
                    "matmul",
                    "--shape",
                    "64x64x64",
                ])
                .args(["--kernel", &kernel, "--launch", launch]),
            want,
        );
    }
}

/// A user kernel on the mock has the id a GPU run would give it; every export that names a
/// series by id says it was simulated, so its points never join a real kernel's history.
#[test]
fn a_simulated_kernel_is_marked_in_every_series_export() {
    let (_dir, [gab, bmf, prom]) = temp_files(["gab.json", "bmf.json", "r.prom"]);
    mock_quick()
        .arg("--export")
        .arg(format!("github:{}", gab.display()))
        .arg("--export")
        .arg(format!("bencher:{}", bmf.display()))
        .arg("--prometheus")
        .arg(&prom)
        .args(["bench", "kernel", "--spec", &ex("vector_add.toml")])
        .args(["--set", "N=4Ki", "--set", "BLOCK=128"])
        .assert()
        .code(0);
    let want = "kernel.vector_add.BLOCK=128.N=4096/user (simulated)";
    let names: Vec<String> = read_json(&gab)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [want]);
    let bmf = read_json(&bmf);
    let keys: Vec<&String> = bmf.as_object().unwrap().keys().collect();
    assert_eq!(keys, [want]);
    let prom = std::fs::read_to_string(&prom).unwrap();
    let verified = prom
        .lines()
        .find(|l| l.starts_with("gpuvet_result_verified{"))
        .expect("a verified line");
    assert!(
        verified.contains(r#"implementation="user (simulated)""#),
        "{verified}"
    );
}

#[test]
fn a_free_form_kernel_runs_the_whole_path_on_the_mock() {
    let (_dir, [json, plots, gab]) = temp_files(["r.json", "plots", "gab.json"]);
    mock_quick()
        .args([
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
            "--export",
            &format!("github:{}", gab.display()),
        ])
        .args(["bench", "kernel", "--spec", &ex("vector_add.toml")])
        .args(["--set", "N=4Ki", "--set", "BLOCK=128,256"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "kernel.vector_add.BLOCK=128.N=4096",
        ))
        .stdout(predicate::str::contains("ok (determinism)"))
        // under the table, what ran: source and build hashes, launch, and that nothing ran
        .stdout(predicate::str::contains(
            "kernel.vector_add.BLOCK=256.N=4096/user: vector_add (",
        ))
        .stdout(predicate::str::contains("block 256×1×1"))
        .stdout(predicate::str::contains(if have_nvrtc() {
            "SIMULATED: checked, not run (mock backend)"
        } else {
            "SIMULATED: not compiled (no NVRTC) and not run"
        }));
    // A chart point of a kernel that never ran must not call it verified.
    for entry in read_json(&gab).as_array().unwrap() {
        let extra = entry["extra"].as_str().unwrap();
        assert!(
            extra.contains("SIMULATED") && !extra.contains("verified"),
            "{extra}"
        );
    }
    let r = read_json(&json);
    assert_eq!(r["config"]["command"], "bench kernel");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for x in results {
        assert_eq!(x["status"], "ok");
        assert_eq!(x["implementation"], "user");
        assert_eq!(x["workload"]["kind"], "kernel");
        assert_eq!(x["verification"]["method"], "determinism");
        assert_eq!(x["verification"]["checked_elements"], 3 * 4096);
        assert_eq!(x["throughput"]["unit"], "B/s");
        assert_eq!(x["kernel"]["simulated"], true);
        assert_eq!(x["kernel"]["source_sha256"].as_str().unwrap().len(), 16);
        let notes: Vec<&str> = x["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert!(
            notes.iter().any(|n| n.starts_with(if have_nvrtc() {
                "mock backend: the user kernel was checked but not run"
            } else {
                "mock backend: the user kernel was neither compiled (no NVRTC) nor run"
            })),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("verified by determinism only")),
            "{notes:?}"
        );
    }
    assert!(results[1]["kernel"]["launch"]
        .as_str()
        .unwrap()
        .contains("block 256×1×1"));
    // the swept variable is the charts' axis
    let sweep = std::fs::read_to_string(plots.join("sweep.svg")).unwrap();
    assert!(
        sweep.contains("BLOCK"),
        "the chart's x axis is the swept variable"
    );
    // an expected output from a file
    mock_quick()
        .args(["bench", "kernel", "--spec", &ex("saxpy.toml")])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("kernel.saxpy.BLOCK=128.N=4096"));
}

#[test]
fn wrong_and_unverified_kernels_never_pass() {
    // A determinism failure (the mock's planted fault makes run 2 differ) and a wrong output
    // against the expected file: FAILED, no figure, exit 1.
    for (spec, pattern, want) in [
        (
            "vector_add.toml",
            "kernel.vector_add",
            "run 2 differs from run 1",
        ),
        ("saxpy.toml", "kernel.saxpy", "element 0"),
    ] {
        let (_dir, [json]) = temp_files(["r.json"]);
        gpuvet()
            .env("GPUVET_MOCK_FAULT", pattern)
            .args(["--backend", "mock", "--json", json.to_str().unwrap()])
            .args(QUICK)
            .args(["bench", "kernel", "--spec", &ex(spec), "--set", "N=4096"])
            .assert()
            .code(1)
            .stdout(predicate::str::contains(want));
        let r = read_json(&json);
        let x = &r["results"][0];
        assert_eq!(x["status"], "verification_failed");
        assert!(x["throughput"].is_null() && x["stats"].is_null());
    }
    // Explicitly unverified: timed, labelled, never a pass (exit 1), never exported.
    let d = copy_examples();
    let text = std::fs::read_to_string(d.path().join("vector_add.toml")).unwrap();
    let spec = d.path().join("none.toml");
    std::fs::write(
        &spec,
        text.replace("method = \"determinism\"\nruns = 3", "method = \"none\""),
    )
    .unwrap();
    let json = d.path().join("r.json");
    let github = d.path().join("gab.json");
    let prom = d.path().join("r.prom");
    let bdir = d.path().join("baselines");
    gpuvet()
        .args(["--backend", "mock", "--json", json.to_str().unwrap()])
        .args([
            "--baseline-dir",
            bdir.to_str().unwrap(),
            "--save-baseline",
            "k",
        ])
        .args(["--export", &format!("github:{}", github.display())])
        .args(["--prometheus", prom.to_str().unwrap()])
        .args(QUICK)
        .args([
            "bench",
            "kernel",
            "--spec",
            spec.to_str().unwrap(),
            "--set",
            "N=4096",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("UNVERIFIED"))
        .stderr(predicate::str::contains(
            "no verified result with a throughput to export",
        ))
        .stderr(predicate::str::contains(
            "baseline k not saved: 1 result(s) were not verified",
        ));
    assert!(
        !bdir.join("k.json").exists(),
        "an unchecked run is no baseline"
    );
    let r = read_json(&json);
    let x = &r["results"][0];
    assert_eq!(x["verification"]["method"], "unverified");
    assert_eq!(x["verification"]["passed"], false);
    assert!(x["throughput"]["value"].as_f64().unwrap() > 0.0, "timed");
    assert!(!github.exists(), "never exported");
    // Prometheus says it did not verify, and carries none of its figures.
    let prom = std::fs::read_to_string(&prom).unwrap();
    let verified: Vec<&str> = prom
        .lines()
        .filter(|l| l.starts_with("gpuvet_result_verified{"))
        .collect();
    assert!(verified.len() == 1 && verified[0].ends_with(" 0"), "{prom}");
    for figure in [
        "gpuvet_result_throughput_",
        "gpuvet_result_peak_ratio{",
        "gpuvet_result_median_seconds{",
        "_per_joule{",
        "_per_usd",
    ] {
        assert!(
            !prom
                .lines()
                .any(|l| !l.starts_with('#') && l.contains(figure)),
            "{figure} exported: {prom}"
        );
    }
}

#[test]
fn an_implementation_runs_beside_the_others_and_compare_says_when_it_changed() {
    let d = copy_examples();
    let baselines = d.path().join("baselines");
    let spec = d.path().join("naive_gemm.toml").display().to_string();
    // gpuvet [global] bench matmul … --kernel naive_gemm.toml [kernel flags]
    let run_with = |global: &[&str], kernel_flags: &[&str]| {
        let mut c = gpuvet();
        c.args([
            "--backend",
            "mock",
            "--baseline-dir",
            baselines.to_str().unwrap(),
        ])
        .args(QUICK)
        .args(global)
        .args([
            "bench", "matmul", "--shape", "64x64x64", "--dtype", "bf16", "--layout", "nk",
        ])
        .args(["--kernel", &spec])
        .args(kernel_flags);
        c.assert()
    };
    let run = |global: &[&str]| run_with(global, &[]);
    let json = d.path().join("first.json");
    run(&[
        "--save-baseline",
        "before",
        "--json",
        json.to_str().unwrap(),
    ])
    .code(0)
    .stdout(predicate::str::contains("Mock GPU / mock"))
    .stdout(predicate::str::contains("Mock GPU / naive_gemm"));
    let r = read_json(&json);
    let imps = each(&r, "implementation");
    assert_eq!(imps, ["mock", "naive_gemm"]);
    assert!(r["results"][0]["kernel"].is_null());
    assert_eq!(r["results"][1]["kernel"]["entry"], "naive_gemm_bf16_nk");
    // The same kernel: no note. An edited source: the comparison says so.
    run(&["--baseline", "before"])
        .code(0)
        .stdout(predicate::str::contains("kernel changed").not());
    let cu = d.path().join("naive_gemm.cu");
    let text = std::fs::read_to_string(&cu).unwrap();
    std::fs::write(&cu, format!("{text}\n// tuned\n")).unwrap();
    run(&["--baseline", "before", "--save-baseline", "tuned"])
        .code(0)
        .stdout(predicate::str::contains("kernel changed"))
        .stdout(predicate::str::contains(
            "the user kernel changed between the runs",
        ));
    // Another define is another build of the same source.
    run_with(&["--baseline", "tuned"], &["-D", "EXTRA=1"])
        .code(0)
        .stdout(predicate::str::contains("kernel rebuilt differently"));
}

/// In a sweep, a kernel written for one dtype and layout runs at the points that are its own;
/// the others run without it and say why in a note. A sweep it suits at no point is refused.
#[test]
fn a_sweep_runs_the_kernel_where_it_suits_and_says_where_it_does_not() {
    let (_dir, [json]) = temp_files(["r.json"]);
    let gemm = ex("naive_gemm.toml");
    let sweep = |dtypes: &str| {
        let mut c = gpuvet();
        c.args(["--backend", "mock"])
            .args(QUICK)
            .args(["--json", json.to_str().unwrap()])
            .args(["bench", "matmul", "--shape", "64x64x64", "--dtype", dtypes])
            .args(["--layout", "kn,nk", "--kernel", &gemm]);
        c
    };
    let out = sweep("bf16,f32").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let r = read_json(&json);
    let ran = each(&r, "id");
    assert_eq!(
        ran,
        [
            "matmul.bf16.64x64x64.kn/mock",
            "matmul.bf16.64x64x64.nk/mock",
            "matmul.bf16.64x64x64.nk/naive_gemm",
            "matmul.f32.64x64x64.kn/mock",
            "matmul.f32.64x64x64.nk/mock",
        ]
    );
    for (point, why) in [
        ("matmul.bf16.64x64x64.kn", "written for layout nk"),
        ("matmul.f32.64x64x64.kn", "written for dtype bf16"),
        ("matmul.f32.64x64x64.nk", "written for dtype bf16"),
    ] {
        assert!(
            err.contains(&format!(
                "skipped: {point}/naive_gemm: `naive_gemm` is {why}"
            )),
            "{err}"
        );
    }
    assert_eq!(err.matches("skipped:").count(), 3, "{err}");
    // Asked for by name and run nowhere: an error, not a run of the others alone.
    exits_2_saying(
        &mut sweep("f16,f32"),
        "`naive_gemm` is written for dtype bf16 (its spec's `dtype`), and matmul.f16.64x64x64.kn is f16",
    );
}

#[test]
fn a_set_sweep_of_an_implementation_makes_one_implementation_per_value() {
    let (_dir, [json]) = temp_files(["r.json"]);
    gpuvet()
        .args(["--backend", "mock", "--json", json.to_str().unwrap()])
        .args(QUICK)
        .args(["bench", "memory", "--size", "1MiB", "--op", "copy"])
        .args([
            "--kernel",
            &ex("copy.toml"),
            "--set",
            "BLOCK=128,256,512",
            "--impl",
            "all",
        ])
        .assert()
        .code(0);
    let r = read_json(&json);
    let imps = each(&r, "implementation");
    assert_eq!(
        imps,
        [
            "mock",
            "copy_f32[BLOCK=128]",
            "copy_f32[BLOCK=256]",
            "copy_f32[BLOCK=512]"
        ]
    );
    assert!(r["results"][3]["kernel"]["launch"]
        .as_str()
        .unwrap()
        .contains("block 512×1×1"));
}

#[test]
fn sweep_kernel_keeps_the_curve_over_a_spec_variable() {
    let (_dir, [json, plots]) = temp_files(["r.json", "plots"]);
    gpuvet()
        .args(["--backend", "mock", "--json", json.to_str().unwrap()])
        .args(["--plot", plots.to_str().unwrap()])
        .args(QUICK)
        .args(["sweep", "kernel", "--spec", &ex("vector_add.toml")])
        .args(["--set", "N=4096", "--set", "BLOCK=64..256:64"])
        .assert()
        .code(0);
    let r = read_json(&json);
    assert_eq!(r["config"]["command"], "sweep kernel");
    let names = each(&r, "id");
    assert_eq!(
        names,
        [
            "kernel.vector_add.BLOCK=64.N=4096/user",
            "kernel.vector_add.BLOCK=128.N=4096/user",
            "kernel.vector_add.BLOCK=192.N=4096/user",
            "kernel.vector_add.BLOCK=256.N=4096/user"
        ]
    );
    let sweep = std::fs::read_to_string(plots.join("sweep.svg")).unwrap();
    assert!(sweep.contains("BLOCK"), "the curve is over the variable");
    // on the CPU, as bench kernel: a GPU is needed
    exits_2_saying(
        gpuvet()
            .args(["--backend", "cpu", "sweep", "kernel", "--spec"])
            .arg(ex("vector_add.toml")),
        "need a GPU",
    );
}

/// Without NVRTC the mock can check only a kernel's launch: its implementation list, notes,
/// kernel record and the line under the table must all say that it was not compiled, never
/// "checked". NVRTC is hidden by running with no search variables and an empty home; where it
/// is still found (a toolkit under /usr/local), the test says it skipped.
#[test]
fn the_mock_without_nvrtc_does_not_say_checked() {
    let (dir, [json]) = temp_files(["r.json"]);
    let hide = |c: &mut assert_cmd::Command| {
        for v in [
            "GPUVET_CUDA_LIB_DIR",
            "LD_LIBRARY_PATH",
            "CUDA_HOME",
            "CUDA_PATH",
            "CONDA_PREFIX",
            "VIRTUAL_ENV",
        ] {
            c.env_remove(v);
        }
        c.env("PATH", "/usr/bin:/bin").env("HOME", dir.path());
    };
    let mut run = gpuvet();
    hide(&mut run);
    run.args(["--backend", "mock"])
        .args(QUICK)
        .args(["--json", json.to_str().unwrap()])
        .args(["bench", "kernel", "--spec", &ex("vector_add.toml")])
        .args(["--set", "N=4Ki", "--set", "BLOCK=128"]);
    let (out, _) = common::stdout_of(&mut run, 0);
    let r = read_json(&json);
    let x = &r["results"][0];
    if x["kernel"]["compiled"].is_null() {
        common::say_skip(
            "the_mock_without_nvrtc_does_not_say_checked",
            "NVRTC is found even with the search variables removed",
        );
        return;
    }
    assert!(
        out.contains("SIMULATED: not compiled (no NVRTC) and not run"),
        "{out}"
    );
    assert!(!out.contains("SIMULATED: checked"), "{out}");
    assert_eq!(x["kernel"]["simulated"], true);
    assert_eq!(x["kernel"]["compiled"], false);
    let notes = x["notes"].to_string();
    assert!(
        notes.contains("neither compiled (no NVRTC) nor run"),
        "{notes}"
    );
    assert!(!notes.contains("was checked but not run"), "{notes}");
}

/// No output of `bench kernel` or `sweep kernel` may replace a file it reads: the spec, the kernel's source, a
/// `.npy` input or the expected output (`--json saxpy.toml` replaced the spec with the report).
#[test]
fn bench_kernel_outputs_never_replace_what_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| std::fs::copy(from, to).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for f in ["saxpy.toml", "saxpy.cu", "gv_types.cuh"] {
        copy(&examples().join(f), &dir.path().join(f));
    }
    for f in ["saxpy_x.npy", "saxpy_y.npy", "saxpy_expected.npy"] {
        copy(
            &examples().join("data").join(f),
            &dir.path().join("data").join(f),
        );
    }
    let spec = dir.path().join("saxpy.toml");
    for (command, flag, victim) in [
        ("bench", "--json", "saxpy.toml"),
        ("bench", "--markdown", "saxpy.cu"),
        ("bench", "--csv", "data/saxpy_x.npy"),
        ("bench", "--json", "data/saxpy_expected.npy"),
        ("sweep", "--json", "saxpy.toml"),
        ("sweep", "--csv", "data/saxpy_expected.npy"),
    ] {
        let victim = dir.path().join(victim);
        let before = std::fs::read(&victim).unwrap();
        let out = gpuvet()
            .args(["--backend", "mock"])
            .args(QUICK)
            .args([flag, victim.to_str().unwrap()])
            .args([command, "kernel", "--spec", spec.to_str().unwrap()])
            .output()
            .unwrap();
        let says = String::from_utf8_lossy(&out.stderr);
        let what = format!("{command} {flag} {}", victim.display());
        assert_eq!(out.status.code(), Some(2), "{what}: {says}");
        assert!(says.contains("which this run reads"), "{says}");
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            before,
            "{}",
            victim.display()
        );
    }
}
