//! The CUDA backend's host path on a machine without a GPU, through a stand-in driver
//! (tests/fixtures/fake_cuda/fake_cuda.c, built here with `cc`): device memory is host memory,
//! events read the host clock, and kernel launches do nothing unless asked to copy. With the
//! real NVRTC compiling gpuvet's kernels, this drives what no other CPU test reaches: driver
//! loading, context, allocation, compile, module load, launch, event timing, read-back and
//! verification, and the refusals a user meets on a real node (no cuBLASLt, no peer access,
//! too little memory).
//!
//! Needs a C compiler; skipped without one (CI sets GPUVET_REQUIRE_FAKE_DRIVER=1, which makes
//! that a failure). Skipped, too, where a real NVIDIA driver is installed: cudarc would open the
//! real one by its bare name beside the stand-in.

mod common;

use common::{exits_2_saying, gpuvet, nvrtc_or_skip, read_json, skip_unless_required, stdout_of};
use std::path::{Path, PathBuf};

const REQUIRE: &str = "GPUVET_REQUIRE_FAKE_DRIVER";

/// Fast measurement settings: a handful of samples is all these tests look at.
const FAST: [&str; 4] = ["--warmup", "0", "--max-time", "0.05"];

/// A folder holding the stand-in `libcuda.so.1`, or `None` (skipped) where it cannot be built
/// or a real driver would be used beside it.
fn fake_driver(test: &str) -> Option<tempfile::TempDir> {
    // SAFETY: dlopen with a valid C string; the handle (if any) is never used.
    let real = unsafe { !libc::dlopen(c"libcuda.so".as_ptr(), libc::RTLD_LAZY).is_null() };
    if real {
        common::say_skip(test, "a real NVIDIA driver is installed here");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_cuda");
    let lt = dir.path().join("lt");
    std::fs::create_dir(&lt).unwrap();
    let build = |src: &str, soname: &str, out: &Path| {
        std::process::Command::new("cc")
            .args([
                "-shared",
                "-fPIC",
                "-O2",
                &format!("-Wl,-soname,{soname}"),
                "-o",
            ])
            .arg(out.join(soname))
            .arg(fixtures.join(src))
            .arg("-lm")
            .status()
            .is_ok_and(|s| s.success())
    };
    let built = build("fake_cuda.c", "libcuda.so.1", dir.path())
        && build("fake_cublaslt.c", "libcublasLt.so.13", &lt);
    if !built {
        return skip_unless_required(REQUIRE, test, "no C compiler (cc) to build the fake driver");
    }
    Some(dir)
}

/// [`fake_driver`], where NVRTC is there to compile gpuvet's kernels too (skipped otherwise).
fn fake_driver_and_nvrtc(test: &str) -> Option<tempfile::TempDir> {
    let dir = fake_driver(test)?;
    nvrtc_or_skip(test).then_some(dir)
}

/// `gpuvet --backend cuda` on the stand-in driver in `dir` (no cuBLASLt), with the fake's
/// knobs `env`.
fn on_fake(dir: &Path, env: &[(&str, &str)]) -> assert_cmd::Command {
    on_fakes(&[dir.to_path_buf()], env)
}

/// [`on_fake`] with the stand-in cuBLASLt beside the driver.
fn on_fake_with_cublaslt(dir: &Path, env: &[(&str, &str)]) -> assert_cmd::Command {
    on_fakes(&[dir.to_path_buf(), dir.join("lt")], env)
}

fn on_fakes(dirs: &[PathBuf], env: &[(&str, &str)]) -> assert_cmd::Command {
    let prepend = |var: &str| {
        let mut paths = dirs.to_vec();
        if let Some(v) = std::env::var_os(var) {
            paths.extend(std::env::split_paths(&v));
        }
        std::env::join_paths(paths).unwrap()
    };
    let mut c = gpuvet();
    c.env("GPUVET_CUDA_LIB_DIR", prepend("GPUVET_CUDA_LIB_DIR"))
        .env("LD_LIBRARY_PATH", prepend("LD_LIBRARY_PATH"))
        .args(["--backend", "cuda"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// `c` writing its report to `json`, with [`FAST`] measurement settings.
fn measured(mut c: assert_cmd::Command, json: &Path) -> assert_cmd::Command {
    c.arg("--json").arg(json).args(FAST);
    c
}

/// The results of a report as (implementation, status, passed, has a median).
fn outcomes(json: &Path) -> Vec<(String, String, bool, bool)> {
    let r = read_json(json);
    assert_eq!(r["devices"][0]["name"], "gpuvet fake CUDA device 0");
    assert_eq!(r["config"]["backend"], "cuda");
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["implementation"].as_str().unwrap().to_string(),
                x["status"].as_str().unwrap().to_string(),
                x["verification"]["passed"].as_bool().unwrap(),
                x["stats"]["median_s"].as_f64().is_some_and(|m| m > 0.0),
            )
        })
        .collect()
}

/// A kernel that writes nothing is a failure with no figure, never a number; the driver's copy
/// beside it verifies and is timed. This is the promise "a fast wrong kernel is a failure"
/// kept on the CUDA path itself, with kernels NVRTC really compiled.
#[test]
fn a_kernel_that_writes_nothing_fails_and_gets_no_figure() {
    let test = "a_kernel_that_writes_nothing_fails_and_gets_no_figure";
    let Some(dir) = fake_driver_and_nvrtc(test) else {
        return;
    };
    let json = dir.path().join("r.json");
    let (out, _) = stdout_of(
        measured(on_fake(dir.path(), &[]), &json).args([
            "bench",
            "memory",
            "--size",
            "1MiB",
            "--op",
            "copy,triad",
        ]),
        1,
    );
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains("memory.copy.1MiB/kernel: worst error inf at element 0: NaN, either an output the kernel never wrote"),
        "{out}"
    );
    let got = outcomes(&json);
    let want = [
        ("memcpy", "ok", true, true),
        ("kernel", "verification_failed", false, false),
        ("kernel", "verification_failed", false, false),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str(), g.2, g.3), w, "{got:?}");
    }
}

/// Where the stand-in does the copy the kernel asks for, the kernel verifies and is timed with
/// events like the driver's copy: the success path, end to end.
#[test]
fn kernels_that_do_their_work_verify_and_are_timed() {
    let test = "kernels_that_do_their_work_verify_and_are_timed";
    let Some(dir) = fake_driver_and_nvrtc(test) else {
        return;
    };
    let json = dir.path().join("r.json");
    measured(on_fake(dir.path(), &[("FAKE_CUDA_KERNELS", "copy")]), &json)
        .args(["bench", "memory", "--size", "1MiB", "--op", "copy,write"])
        .assert()
        .code(0);
    let got = outcomes(&json);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|g| g.1 == "ok" && g.2 && g.3), "{got:?}");
    // A user's kernel takes its arguments in the order and types its spec gives them: the
    // stand-in reads copy_f32's (src, dst, n) from the launch and copies what they say.
    let copy = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kernels/copy.toml");
    let (out, _) = stdout_of(
        measured(on_fake(dir.path(), &[("FAKE_CUDA_KERNELS", "copy")]), &json)
            .args(["bench", "memory", "--size", "1MiB", "--op", "copy"])
            .arg("--kernel")
            .arg(&copy),
        0,
    );
    assert!(out.contains("f32 (user kernel)"), "{out}");
    let got = outcomes(&json);
    assert_eq!(
        got.last().map(|g| g.0.as_str()),
        Some("copy_f32"),
        "{got:?}"
    );
    assert!(got.iter().all(|g| g.1 == "ok" && g.2 && g.3), "{got:?}");
}

/// No cuBLASLt: matmul is refused with what to install, not "unsupported dtype".
#[test]
fn without_cublaslt_matmul_says_what_to_install() {
    let test = "without_cublaslt_matmul_says_what_to_install";
    let Some(dir) = fake_driver(test) else { return };
    exits_2_saying(
        on_fake(dir.path(), &[])
            .args(FAST)
            .args(["bench", "matmul", "--shape", "64x64x64", "--dtype", "f32"]),
        "cannot run matmul.f32.64x64x64.kn: cuBLASLt not found",
    );
    let (out, _) = stdout_of(on_fake(dir.path(), &[]).arg("info"), 0);
    assert!(out.contains("gpuvet fake CUDA device 0"), "{out}");
    assert!(out.contains("cublaslt               not found"), "{out}");
    // Not in the database: an fp32 peak from its SMs and clock, no tensor-core guess.
    assert!(out.contains("f32 512.0 GFLOP/s"), "{out}");
    assert!(out.contains("tensor-core peaks are not guessed"), "{out}");
    assert!(!out.contains("int8 16.38 TOP/s"), "{out}");
}

/// The main job on a small GPU without cuBLASLt (1 GiB, as a MIG slice is small): the memory
/// copies are sized to the device (an eighth of it per array, not the 4 GiB a large card gets),
/// and the report names every workload it could not run, with why, instead of refusing the
/// whole run for memory.
#[test]
fn the_quick_run_fits_a_small_gpu_and_names_what_it_could_not_run() {
    let test = "the_quick_run_fits_a_small_gpu_and_names_what_it_could_not_run";
    let Some(dir) = fake_driver_and_nvrtc(test) else {
        return;
    };
    let json = dir.path().join("r.json");
    // Exit 1: the stand-in's triad kernel computes nothing, and fails verification.
    let (_, err) = stdout_of(
        &mut measured(on_fake(dir.path(), &[("FAKE_CUDA_KERNELS", "copy")]), &json),
        1,
    );
    assert!(!err.contains("not enough memory"), "{err}");
    let r = read_json(&json);
    let copies: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["status"] == "ok")
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        copies,
        ["memory.copy.128MiB/memcpy", "memory.copy.128MiB/kernel"]
    );
    let not_run = r["not_run"].as_array().unwrap();
    assert_eq!(not_run.len(), 8, "{not_run:?}");
    assert!(not_run
        .iter()
        .all(|n| n["why"].as_str().unwrap().starts_with("cuBLASLt not found")));
}

/// Two GPUs that cannot map each other's memory (most PCIe cloud instances): the peer copy
/// runs on the copy engine, and the SM kernel, which needs the mapping, is left out before the
/// run with the reason; asked for by name, it is refused with that reason.
#[test]
fn without_peer_access_the_sm_copy_kernel_is_left_out_with_why() {
    let test = "without_peer_access_the_sm_copy_kernel_is_left_out_with_why";
    let Some(dir) = fake_driver_and_nvrtc(test) else {
        return;
    };
    let two = [("FAKE_CUDA_DEVICES", "2")];
    let (out, err) = stdout_of(
        on_fake(dir.path(), &two)
            .args(FAST)
            .args(["bench", "p2p", "--size", "1MiB"]),
        0,
    );
    assert!(
        err.contains("skipped: p2p.write.1MiB/kernel on devices 0,1: gpuvet fake CUDA device 0 cannot map gpuvet fake CUDA device 1's memory"),
        "{err}"
    );
    assert!(
        out.contains("[0,1] / memcpy") && out.contains("[1,0] / memcpy"),
        "{out}"
    );
    assert!(!out.contains("/ kernel"), "{out}");
    // Asked for the copy engine only, nothing is left out, and nothing is said of the kernel.
    let (_, err) = stdout_of(
        on_fake(dir.path(), &two)
            .args(FAST)
            .args(["bench", "p2p", "--size", "1MiB", "--impl", "memcpy"]),
        0,
    );
    assert!(!err.contains("skipped"), "{err}");
    exits_2_saying(
        on_fake(dir.path(), &two)
            .args(FAST)
            .args(["bench", "p2p", "--size", "1MiB", "--impl", "kernel"]),
        "the SM copy kernel needs a peer mapping",
    );
}

/// Too little memory for the buffers is refused before the run; memory another process takes
/// after the check fails the allocation with the driver's out-of-memory, typed and explained.
#[test]
fn memory_that_does_not_fit_is_refused_or_explained() {
    let test = "memory_that_does_not_fit_is_refused_or_explained";
    let Some(dir) = fake_driver(test) else { return };
    exits_2_saying(
        on_fake(dir.path(), &[("FAKE_CUDA_MEM_MIB", "4")])
            .args(FAST)
            .args([
                "bench", "memory", "--size", "64MiB", "--op", "copy", "--impl", "memcpy",
            ]),
        "not enough memory on gpuvet fake CUDA device 0",
    );
    let (out, _) = stdout_of(
        on_fake(dir.path(), &[("FAKE_CUDA_ALLOC_FAILS", "1")])
            .args(FAST)
            .args([
                "bench", "memory", "--size", "1MiB", "--op", "copy", "--impl", "memcpy",
            ]),
        2,
    );
    assert!(out.contains("CUDA_ERROR_OUT_OF_MEMORY"), "{out}");
    assert!(out.contains("another process may hold it"), "{out}");
}

/// cuBLASLt is asked for exactly the GEMM the workload is: the stand-in computes what the
/// descriptors, layouts, transposes and fp8 scales say, as cuBLASLt documents them, so every
/// dtype and B layout verifying here checks gpuvet's row-major to column-major mapping (and
/// int8/fp8's host transpose to the TN form) before any GPU runs it.
#[test]
fn cublaslt_is_asked_for_exactly_the_gemm_the_workload_is() {
    let test = "cublaslt_is_asked_for_exactly_the_gemm_the_workload_is";
    let Some(dir) = fake_driver(test) else { return };
    let json = dir.path().join("r.json");
    let (out, _) = stdout_of(
        measured(
            on_fake_with_cublaslt(dir.path(), &[("FAKE_CUDA_CC", "89")]),
            &json,
        )
        .args([
            "bench", "matmul", "--shape", "64x48x32", "--impl", "cublaslt",
        ])
        .args(["--dtype", "f32,tf32,bf16,f16,int8,fp8", "--layout", "kn,nk"]),
        0,
    );
    let got = outcomes(&json);
    assert_eq!(got.len(), 12, "{got:?}");
    assert!(got.iter().all(|g| g.1 == "ok" && g.2 && g.3), "{got:?}");
    // The table names the arithmetic once.
    assert!(out.contains("bf16 (f32 accumulate)"), "{out}");
    assert!(!out.contains("bf16 (bf16"), "{out}");
}

/// On a Hopper stand-in, the wgmma GEMM and the FA3-style attention get their TMA maps past the
/// rules the driver documents for cuTensorMapEncodeTiled, compile for sm_90a, load and launch;
/// the stand-in runs no kernel, so both FAIL verification, as a kernel writing nothing must.
#[test]
fn hopper_kernels_reach_their_launch_with_valid_tma_maps() {
    let test = "hopper_kernels_reach_their_launch_with_valid_tma_maps";
    let Some(dir) = fake_driver_and_nvrtc(test) else {
        return;
    };
    let hopper = [("FAKE_CUDA_CC", "90"), ("FAKE_CUDA_MEM_MIB", "4096")];
    let never_wrote = "worst error inf at C[0][0]: NaN, either an output the kernel never wrote";
    let (out, _) = stdout_of(
        on_fake_with_cublaslt(dir.path(), &hopper)
            .args(FAST)
            .args([
                "bench",
                "matmul",
                "--shape",
                "256x256x256",
                "--dtype",
                "bf16",
            ])
            .args(["--layout", "nk", "--impl", "wgmma"]),
        1,
    );
    assert!(out.contains(&format!("/wgmma: {never_wrote}")), "{out}");
    let (out, _) = stdout_of(
        on_fake_with_cublaslt(dir.path(), &hopper)
            .args(FAST)
            .args([
                "bench",
                "attention",
                "--batch",
                "1",
                "--heads",
                "2",
                "--seq",
                "64",
            ])
            .args([
                "--head-dim",
                "64",
                "--dtype",
                "bf16",
                "--impl",
                "flash-sm90",
            ]),
        1,
    );
    assert!(
        out.contains("/flash-sm90: worst error inf at O[b0][h0][q0]: NaN"),
        "{out}"
    );
}

/// A kernel that never ends (a deadlocked pipeline, a GPU that stopped answering) is a result,
/// not a run that blocks until its scheduler kills it: after GPUVET_HANG_TIMEOUT the entry
/// errors with why, the device's later entries are skipped as lost, the report is written, and
/// nothing the hung work still holds is freed (the stand-in exits 99 if it were: a real driver
/// would wait there forever).
#[test]
fn a_kernel_that_never_ends_is_reported_and_the_run_finishes() {
    let test = "a_kernel_that_never_ends_is_reported_and_the_run_finishes";
    let Some(dir) = fake_driver_and_nvrtc(test) else {
        return;
    };
    let json = dir.path().join("r.json");
    let env = [
        ("FAKE_CUDA_KERNELS", "copy"),
        ("FAKE_CUDA_HANG", "gv_triad"),
        ("GPUVET_HANG_TIMEOUT", "1"),
    ];
    let started = std::time::Instant::now();
    let (out, _) = stdout_of(
        measured(on_fake(dir.path(), &env), &json)
            .args([
                "bench",
                "memory",
                "--size",
                "1MiB",
                "--op",
                "copy,triad,write",
            ])
            .args(["--impl", "kernel"])
            .timeout(std::time::Duration::from_secs(60)),
        2,
    );
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    assert!(
        out.contains("memory.triad.1MiB/kernel: cuda error: synchronize stream: the GPU work did not finish within 1 s"),
        "{out}"
    );
    assert!(
        out.contains(
            "memory.write.1MiB/kernel: skipped: the device was lost after memory.triad.1MiB/kernel"
        ),
        "{out}"
    );
    let got = outcomes(&json);
    let statuses: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    assert_eq!(statuses, ["ok", "error", "error"], "{got:?}");
}

/// Slow work is not stuck work: a batch longer than GPUVET_HANG_TIMEOUT (8 launches of 200 ms
/// each, asked for by `--min-sample-time 1500` (ms), against a 1 s limit) is waited for, since
/// a batch is given ten times what its iterations took before; its time is what the stand-in's
/// events say the work took.
#[test]
fn a_batch_longer_than_the_hang_limit_is_timed_not_called_hung() {
    let test = "a_batch_longer_than_the_hang_limit_is_timed_not_called_hung";
    let Some(dir) = fake_driver_and_nvrtc(test) else {
        return;
    };
    let json = dir.path().join("r.json");
    let env = [
        ("FAKE_CUDA_KERNELS", "copy"),
        ("FAKE_CUDA_KERNEL_MS", "200"),
        ("GPUVET_HANG_TIMEOUT", "1"),
    ];
    on_fake(dir.path(), &env)
        .arg("--json")
        .arg(&json)
        .args(["--warmup", "0", "--min-sample-time", "1500"])
        .args(["--min-samples", "2", "--max-samples", "2"])
        .args(["bench", "memory", "--size", "1MiB", "--op", "copy"])
        .args(["--impl", "kernel"])
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .code(0);
    let got = outcomes(&json);
    assert_eq!(got, [("kernel".to_string(), "ok".to_string(), true, true)]);
    let r = read_json(&json)["results"][0].clone();
    assert_eq!(r["iterations_per_sample"], 8, "{r}");
    let median = r["stats"]["median_s"].as_f64().unwrap();
    assert!((0.19..0.3).contains(&median), "median {median} s");
}
