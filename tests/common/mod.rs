//! Helpers the binary-level tests share: a hermetic `gpuvet` command, fast measurement settings,
//! readers of what it wrote, and a command line written as one string. Each test file compiles
//! this module on its own and uses part of it.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::Path;

/// Fast measurement settings for the real CPU backend.
pub const QUICK: [&str; 6] = ["--warmup", "0", "--max-time", "0.05", "--min-samples", "2"];

/// The `gpuvet` binary with no environment that would change its backend, its mock's faults or
/// devices, or where baselines live, and without colour.
pub fn gpuvet() -> Command {
    let mut c = Command::cargo_bin("gpuvet").unwrap();
    c.env_remove("GPUVET_MOCK_FAULT")
        .env_remove("GPUVET_MOCK_DEVICES")
        .env_remove("GPUVET_BACKEND")
        .env_remove("GPUVET_BASELINE_DIR")
        .env("NO_COLOR", "1");
    c
}

/// A command line written as one string, split at white space (no argument here has any).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A file's text; the test fails naming the path when it cannot be read.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A JSON file, parsed.
pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `c`, checks that it exits with `code`, and returns its stdout and stderr.
pub fn stdout_of(c: &mut Command, code: i32) -> (String, String) {
    let out = c.assert().code(code).get_output().clone();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
