//! Helpers the binary-level tests share: a hermetic `gpuvet` command, fast measurement settings,
//! readers of what it wrote, and a command line written as one string. Each test file compiles
//! this module on its own and uses part of it.
#![allow(dead_code)]

use assert_cmd::Command;
use gpuvet::dtype::DType;
use gpuvet::workload::{AttentionSpec, BLayout, MatmulSpec, Workload};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use gpuvet::output::say_skip;

/// Skips `test` (see [`say_skip`]), or fails it when the environment variable `require` is 1:
/// CI sets it where it installed what the test needs, so that a broken install cannot pass as a
/// skip.
pub fn skip_unless_required<T>(require: &str, test: &str, why: &str) -> Option<T> {
    if std::env::var(require).as_deref() == Ok("1") {
        panic!("{require}=1 but {test} cannot run: {why}");
    }
    say_skip(test, why);
    None
}

/// Fast measurement settings for the real CPU backend.
pub const QUICK: [&str; 6] = ["--warmup", "0", "--max-time", "0.05", "--min-samples", "2"];

/// What the environment could set that changes a run: its backend, the mock's faults, devices,
/// slow link and held memory, where baselines live, and a world of processes (its size, a Slurm
/// rank).
const RUN_ENV: [&str; 8] = [
    "GPUVET_MOCK_FAULT",
    "GPUVET_MOCK_DEVICES",
    "GPUVET_MOCK_SLOW_PAIR",
    "GPUVET_MOCK_HELD_MEMORY",
    "GPUVET_BACKEND",
    "GPUVET_BASELINE_DIR",
    "GPUVET_WORLD_SIZE",
    "SLURM_PROCID",
];

/// The `gpuvet` binary with none of `RUN_ENV`, and without colour.
pub fn gpuvet() -> Command {
    let mut c = Command::cargo_bin("gpuvet").unwrap();
    for v in RUN_ENV {
        c.env_remove(v);
    }
    c.env("NO_COLOR", "1");
    c
}

/// A short mock run of `line` (its `{}` filled from `paths`, as [`words_with`]), to run with
/// [`exits_2_saying`] or `.assert()`.
pub fn quick_mock(line: &str, paths: &[&Path]) -> Command {
    let mut c = gpuvet();
    c.args(words("--backend mock -q --max-time 0.05"))
        .args(words_with(line, paths));
    c
}

/// A command line written as one string, split at white space (no argument here has any).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `words(line)` with the `{}` in a word replaced by the next of `paths`, alone (`--json {}`)
/// or within the word (`--export github:{}`); a path may hold any characters, white space
/// included.
pub fn words_with(line: &str, paths: &[&Path]) -> Vec<OsString> {
    let mut paths = paths.iter();
    let v = words(line)
        .into_iter()
        .map(|w| match w.split_once("{}") {
            Some((before, after)) => {
                let mut word = OsString::from(before);
                word.push(paths.next().expect("a path for every {}"));
                word.push(after);
                word
            }
            None => w.into(),
        })
        .collect();
    assert!(paths.next().is_none(), "more paths than {{}} in {line}");
    v
}

/// Checks that some line of `lines` (a report's notes, a verdict's reasons) contains `text`;
/// fails showing them all.
pub fn assert_any_contains(lines: &[String], text: &str) {
    assert!(lines.iter().any(|l| l.contains(text)), "{lines:?}");
}

/// A file's text; the test fails naming the path when it cannot be read.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A JSON file, parsed.
pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The results of the report at `p`, checked to be `n`.
pub fn results_of(p: &Path, n: usize) -> Vec<serde_json::Value> {
    let v = read_json(p);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), n, "{v}");
    results.clone()
}

/// Runs `c`, checks that it exits with `code`, and returns its stdout and stderr.
pub fn stdout_of(c: &mut Command, code: i32) -> (String, String) {
    let out = c.assert().code(code).get_output().clone();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs `c` and checks that it exits 2 (refused: bad input, or nothing to run it on) with
/// `says` on stderr.
pub fn exits_2_saying(c: &mut Command, says: &str) {
    c.assert().code(2).stderr(predicates::str::contains(says));
}

/// The same hermetic `gpuvet` as a plain process to start in the background (for a test that
/// interrupts it): stdout discarded, stderr kept.
pub fn gpuvet_in_background() -> std::process::Command {
    use std::process::Stdio;
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("gpuvet"));
    for v in RUN_ENV {
        c.env_remove(v);
    }
    c.env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Waits (up to 60 s, failing the test naming `what`) until `ready` holds, then interrupts
/// `child` as Ctrl-C would and checks that it stops with exit code 130.
pub fn interrupt_when(child: std::process::Child, what: &str, ready: impl FnMut() -> bool) {
    signal_when(child, what, libc::SIGINT, ready)
}

/// [`interrupt_when`] with another signal: SIGTERM is how Slurm and Kubernetes stop a job
/// (time limit, eviction, `scancel`), and gpuvet stops on it as on Ctrl-C.
pub fn signal_when(
    child: std::process::Child,
    what: &str,
    signal: i32,
    mut ready: impl FnMut() -> bool,
) {
    let t0 = std::time::Instant::now();
    while !ready() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(t0.elapsed().as_secs() < 60, "no {what} within 60 s");
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    assert_exit(&child.wait_with_output().unwrap(), 130, "gpuvet");
}

/// Whether the report at `json` holds at least one result: the moment to interrupt a run
/// whose files must show what finished.
pub fn has_a_result(json: &Path) -> bool {
    std::fs::read_to_string(json)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .is_some_and(|v| !v["results"].as_array().unwrap().is_empty())
}

/// Checks that a finished process exited with `code`; otherwise fails naming `what` and showing
/// its stderr.
pub fn assert_exit(out: &std::process::Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A matmul workload: C[m×n] = A[m×k] · B, B laid out as `layout`.
pub fn matmul(m: u64, n: u64, k: u64, dtype: DType, layout: BLayout) -> Workload {
    Workload::Matmul(MatmulSpec {
        b_layout: layout,
        ..MatmulSpec::new(m, n, k, dtype)
    })
}

/// An attention workload: `batch` sequences, `heads` = (query heads, KV heads), `lens` = (query
/// length, KV length), head dimension `head_dim`.
pub fn attention(
    batch: u64,
    heads: (u64, u64),
    lens: (u64, u64),
    head_dim: u64,
    causal: bool,
    dtype: DType,
) -> Workload {
    Workload::Attention(AttentionSpec {
        batch,
        q_heads: heads.0,
        kv_heads: heads.1,
        q_len: lens.0,
        kv_len: lens.1,
        head_dim,
        causal,
        dtype,
    })
}

/// True when NVRTC can be used; otherwise skips visibly, or fails when GPUVET_REQUIRE_NVRTC=1
/// (CI) says that it must be there.
pub fn nvrtc_or_skip(test: &str) -> bool {
    match &gpuvet::backend::cuda::libs::probe().nvrtc {
        Ok(l) => {
            eprintln!("{test}: using NVRTC {}", l.path.display());
            true
        }
        Err(e) => {
            if std::env::var("GPUVET_REQUIRE_NVRTC").as_deref() == Ok("1") {
                panic!("GPUVET_REQUIRE_NVRTC=1 but NVRTC is unavailable: {e}");
            }
            say_skip(
                test,
                &format!("{e} (run scripts/install-nvrtc.sh and set GPUVET_CUDA_LIB_DIR)"),
            );
            false
        }
    }
}

/// Runs `plan` on `backends` through the real runner as `command` would, quietly and with a
/// fixed host and start time, measuring with `measure`: no exports, never interrupted.
pub fn run_plan(
    plan: &gpuvet::plan::Plan,
    backends: &[Box<dyn gpuvet::backend::Backend>],
    command: &str,
    measure: gpuvet::measure::MeasureConfig,
) -> gpuvet::report::Report {
    use gpuvet::runner::{self, Settings};
    let settings = Settings {
        measure,
        seed: 7,
        threads: 1,
        quiet: true,
        command: command.into(),
        backend: backends[0].kind().name().into(),
        fixed_environment: true,
        ..Settings::default()
    };
    let mut report = runner::new_report(backends, &settings);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let exports = gpuvet::export::Exports::default();
    runner::execute(plan, backends, &settings, &exports, &mut report, &stop).unwrap();
    report
}

/// A fresh temporary folder (removed when the returned handle drops) and the paths of `names`
/// in it.
pub fn temp_files<const N: usize>(names: [&str; N]) -> (tempfile::TempDir, [PathBuf; N]) {
    let dir = tempfile::tempdir().unwrap();
    let paths = names.map(|n| dir.path().join(n));
    (dir, paths)
}

/// Runs `gpuvet --backend mock -q --min-samples 3 --max-samples 3 ARGS --json DIR/NAME.json`
/// and loads the report; also its path.
pub fn mock_report(dir: &Path, name: &str, args: &str) -> (gpuvet::report::Report, PathBuf) {
    mock_run(dir, name, args, None)
}

/// `mock_report` with the mock's `GPUVET_MOCK_FAULT` set to `fault` (exit 1 is expected then).
pub fn mock_report_with_fault(
    dir: &Path,
    name: &str,
    args: &str,
    fault: &str,
) -> (gpuvet::report::Report, PathBuf) {
    mock_run(dir, name, args, Some(fault))
}

/// `mock_report`'s run, with the mock `fault` planted when given (it may then also exit 1).
fn mock_run(
    dir: &Path,
    name: &str,
    args: &str,
    fault: Option<&str>,
) -> (gpuvet::report::Report, PathBuf) {
    let path = dir.join(format!("{name}.json"));
    let mut c = gpuvet();
    c.args(words("--backend mock -q --min-samples 3 --max-samples 3"))
        .args(words(args))
        .args(words_with("--json {}", &[&path]));
    if let Some(f) = fault {
        c.env("GPUVET_MOCK_FAULT", f);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.code() == Some(0) || (fault.is_some() && out.status.code() == Some(1)),
        "gpuvet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (gpuvet::report::Report::load(&path).unwrap(), path)
}

/// A matmul sweep over four M values (powers of two) in f32 and bf16: two curves of four points
/// each, for the plot and page tests.
pub const MATMUL_SWEEP: &str =
    "bench matmul --shape 16x64x32,32x64x32,64x64x32,128x64x32 --dtype f32,bf16";
