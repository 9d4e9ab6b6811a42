//! The Kubernetes example's node-verdict script (examples/kubernetes/node-verdict.sh) acting on
//! real textfiles from `gpuvet validate --prometheus`, with a stand-in `kubectl` that records
//! what it was asked to do: a failing node is labelled, tainted and given the condition; a
//! passing one is cleared; without a verdict only the label says `unknown`.

mod common;

use assert_cmd::Command;
use common::{assert_exit, words_with};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A textfile from a mock validation (`fault`: a wrong result, so the node FAILs).
fn textfile(dir: &Path, name: &str, fault: bool) -> PathBuf {
    let prom = dir.join(name);
    let mut c = Command::cargo_bin("gpuvet").unwrap();
    c.env_remove("GPUVET_MOCK_FAULT")
        .env_remove("GPUVET_BACKEND");
    if fault {
        c.env("GPUVET_MOCK_FAULT", "matmul.bf16");
    }
    c.args([
        "--backend",
        "mock",
        "-q",
        "validate",
        "--allow-cpu",
        "--prometheus",
    ])
    .arg(&prom)
    .assert()
    .code(if fault { 1 } else { 0 });
    prom
}

/// Runs the script once on `prom` and returns the kubectl calls, one per line.
fn act(dir: &Path, prom: &Path) -> Vec<String> {
    let log = dir.join("kubectl.log");
    let _ = std::fs::remove_file(&log);
    let fake = dir.join("kubectl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    make_executable(&fake);
    let out = std::process::Command::new("sh")
        .arg(root().join("examples/kubernetes/node-verdict.sh"))
        .args(words_with("--once {}", &[prom]))
        .env("NODE_NAME", "gpu-node-7")
        .env("KUBECTL", &fake)
        .output()
        .unwrap();
    assert_exit(&out, 0, "node-verdict.sh");
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn node_verdict_labels_taints_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let failing = textfile(dir.path(), "fail.prom", true);
    let calls = act(dir.path(), &failing);
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(
        calls[0],
        "label node gpu-node-7 --overwrite gpuvet/verdict=fail"
    );
    assert_eq!(
        calls[1],
        "taint node gpu-node-7 --overwrite gpuvet/unhealthy=true:NoSchedule"
    );
    assert!(calls[2].starts_with("patch node gpu-node-7 --subresource=status --type=strategic -p "));
    let patch: serde_json::Value =
        serde_json::from_str(calls[2].split(" -p ").nth(1).unwrap()).expect("the patch is JSON");
    let cond = &patch["status"]["conditions"][0];
    assert_eq!(cond["type"], "GpuvetUnhealthy");
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "ValidateFailed");

    // The mock's healthy run is a WARN: labelled warn, taint removed, condition False.
    let passing = textfile(dir.path(), "pass.prom", false);
    let calls = act(dir.path(), &passing);
    assert_eq!(
        calls[0],
        "label node gpu-node-7 --overwrite gpuvet/verdict=warn"
    );
    assert_eq!(
        calls[1],
        "taint node gpu-node-7 gpuvet/unhealthy:NoSchedule-"
    );
    assert!(calls[2].contains("\"status\":\"False\"") && calls[2].contains("ValidatePassed"));

    // No verdict in the file (gpuvet could not judge, or the file is not there yet).
    let empty = dir.path().join("empty.prom");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(
        act(dir.path(), &empty),
        ["label node gpu-node-7 --overwrite gpuvet/verdict=unknown"]
    );
}

#[cfg(unix)]
fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(not(unix))]
fn make_executable(_: &Path) {}

#[test]
fn the_daemonset_watches_the_file_gpuvet_writes_and_has_the_rbac_it_needs() {
    let read =
        |f: &str| std::fs::read_to_string(root().join("examples/kubernetes").join(f)).unwrap();
    let ds = read("daemonset.yaml");
    assert!(ds.contains("--prometheus /textfile/gpuvet.prom"));
    assert!(ds.contains(r#"["/bin/sh", "/scripts/node-verdict.sh", "/textfile/gpuvet.prom"]"#));
    assert!(ds.contains("serviceAccountName: gpuvet"));
    assert!(
        ds.contains("key: gpuvet/unhealthy"),
        "the pods tolerate their own taint"
    );
    let rbac = read("rbac.yaml");
    for needed in [
        r#"resources: ["nodes"]"#,
        r#"verbs: ["get", "patch"]"#,
        r#"resources: ["nodes/status"]"#,
    ] {
        assert!(rbac.contains(needed), "rbac.yaml lacks {needed}");
    }
}
