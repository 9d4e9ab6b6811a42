//! The interconnect kinds end to end without a GPU: host↔device transfers and collectives on
//! the CPU backend (verified, busbw arithmetic, labelled as host-memory figures), peer copies
//! and collectives over a node of mock GPUs (every pair placed, the topology printed, a slow
//! pair named, `validate` judging the links, `aggregate` showing them across nodes), bandwidth
//! curves against size, and a world of several local processes meeting through the rendezvous.

mod common;

use common::{exits_2_saying, gpuvet, read_json, results_of, temp_files, words, words_with, QUICK};
use std::path::Path;
use std::process::Stdio;

#[test]
fn cpu_collectives_verify_and_report_busbw_as_host_memory_figures() {
    let (_dir, [json]) = temp_files(["c.json"]);
    gpuvet()
        .args(words("--backend cpu"))
        .args(QUICK)
        .args(words(
            "bench collective --op all_reduce,all_gather,reduce_scatter,broadcast,all_to_all \
             --dtype bf16,f32 --size 96KiB --ranks 3",
        ))
        .args(words_with("--json {}", &[&json]))
        .assert()
        .code(0);
    for r in results_of(&json, 10) {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["device"], 0);
        assert_eq!(r["workload"]["ranks"], 3);
        let (busbw, algbw) = (
            r["throughput"]["value"].as_f64().unwrap(),
            r["bandwidth"]["value"].as_f64().unwrap(),
        );
        let factor = match r["workload"]["op"].as_str().unwrap() {
            "all_reduce" => 4.0 / 3.0,
            "broadcast" => 1.0,
            _ => 2.0 / 3.0,
        };
        assert!((busbw / algbw - factor).abs() < 1e-9, "{r}");
        let notes = r["notes"].to_string();
        assert!(notes.contains("not a network or NVLink one"), "{notes}");
    }
}

#[test]
fn transfers_on_the_cpu_are_verified_and_plotted_against_size() {
    let (_dir, [plots, json]) = temp_files(["plots", "t.json"]);
    gpuvet()
        .args(words("--backend cpu"))
        .args(QUICK)
        .args(words(
            "bench transfer --size 64KiB,1MiB --direction h2d,bidir --memory pinned,pageable",
        ))
        .args(words_with("--json {} --plot {}", &[&json, &plots]))
        .assert()
        .code(0);
    for r in results_of(&json, 8) {
        assert_eq!(r["verification"]["method"], "exact", "{r}");
        assert!(r["notes"].to_string().contains("not a PCIe one"));
    }
    let svg = std::fs::read_to_string(plots.join("sweep.svg")).unwrap();
    assert!(
        svg.contains("bytes per array") || svg.contains("size"),
        "{svg}"
    );
}

#[test]
fn a_mock_node_copies_on_every_pair_and_names_the_slow_one() {
    let (_dir, [json]) = temp_files(["p.json"]);
    let out = gpuvet()
        .env("GPUVET_MOCK_DEVICES", "3")
        .env("GPUVET_MOCK_SLOW_PAIR", "1:2")
        .args(words("--backend mock"))
        .args(QUICK)
        .args(words_with(
            "bench p2p --size 64MiB --direction uni,bidir --json {}",
            &[&json],
        ))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("│ GPU0 ┆ X    ┆ NV18"), "{text}");
    assert!(text.contains("GPU 1→2 p2p.write [mock]"), "{text}");
    assert!(!text.contains("GPU 0→1 p2p.write [mock]"), "{text}");
    let v = read_json(&json);
    let placements: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["device"].to_string())
        .collect();
    // 6 ordered pairs one way, 3 pairs both ways; the source first.
    assert_eq!(placements.len(), 9);
    assert!(placements.contains(&"[2,1]".to_string()));
    let r = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["device"] == serde_json::json!([0, 1]))
        .unwrap();
    // 450 GB/s of 18 NVLink links; the mock reaches 360.
    let share = r["peak_fraction"].as_f64().unwrap();
    assert!(share > 0.7 && share < 0.81, "{share}");
}

/// A peer copy or an all-reduce that hands back wrong data fails the correctness of every GPU
/// it ran on (the output cannot say which one is to blame) and the node, exit 1: they were
/// judged only as figures, where a wrong one has none, so the node passed as WARN.
#[test]
fn wrong_data_over_a_link_fails_the_gpus_it_ran_on() {
    for (fault, named) in [
        ("p2p.write", "p2p.write.1MiB/mock on GPUs [0,1]"),
        ("collective", "on GPUs [0,1,2]"),
    ] {
        let (_dir, [verdict]) = temp_files(["v.json"]);
        gpuvet()
            .env("GPUVET_MOCK_DEVICES", "3")
            .env("GPUVET_MOCK_FAULT", fault)
            .args(words("--backend mock -q"))
            .args(QUICK)
            .args(words_with("validate --allow-cpu --verdict {}", &[&verdict]))
            .assert()
            .code(1);
        let v = read_json(&verdict);
        assert_eq!(v["verdict"], "FAIL", "{fault}");
        for g in v["gpus"].as_array().unwrap() {
            let correctness = g["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["check"] == "correctness")
                .unwrap();
            assert_eq!(correctness["verdict"], "FAIL", "{fault}: {g}");
        }
        let reasons = v["reasons"].to_string();
        assert!(
            reasons.contains(named) && reasons.contains("wrong result"),
            "{fault}: {reasons}"
        );
    }
}

#[test]
fn validate_judges_a_mock_nodes_links_and_aggregate_shows_them_per_node_type() {
    let dir = tempfile::tempdir().unwrap();
    let run = |slow: Option<&str>, file: &str| {
        let mut c = gpuvet();
        c.env("GPUVET_MOCK_DEVICES", "4");
        if let Some(p) = slow {
            c.env("GPUVET_MOCK_SLOW_PAIR", p);
        }
        c.args(words("--backend mock"))
            .args(QUICK)
            .args(words("validate --allow-cpu --verdict"))
            .arg(dir.path().join(file))
            .arg("--junit")
            .arg(dir.path().join(format!("{file}.xml")))
            .arg("--prometheus")
            .arg(dir.path().join(format!("{file}.prom")))
            .output()
            .unwrap();
        read_json(&dir.path().join(file))
    };
    let slow = run(Some("1:2"), "slow.json");
    // JUnit: the node's links are a testcase of the node's suite, failed, naming the pair.
    let xml = std::fs::read_to_string(dir.path().join("slow.json.xml")).unwrap();
    let node = &xml[xml.find("name=\"test-host node\"").expect("a node suite")..];
    assert!(node.contains("<testcase name=\"links\""), "{node}");
    assert!(
        node.contains("<failure") && node.contains("GPU 1→2"),
        "{node}"
    );
    // Prometheus: the node's links check as a state set, its figures as gauges.
    let prom = std::fs::read_to_string(dir.path().join("slow.json.prom")).unwrap();
    let links_failed = prom.lines().any(|l| {
        l.starts_with("gpuvet_node_check_verdict{")
            && l.contains("check=\"links\"")
            && l.contains("verdict=\"fail\"")
            && l.ends_with(" 1")
    });
    assert!(links_failed, "{prom}");
    assert!(
        prom.contains("gpuvet_node_bandwidth_bytes_per_second{")
            && prom.contains("test=\"collective.all_reduce\""),
        "{prom}"
    );
    let reasons = slow["reasons"].to_string();
    assert!(
        reasons.contains("node: links: GPU 1→2 p2p.write"),
        "{reasons}"
    );
    assert!(reasons.contains("below the median"), "{reasons}");
    assert_eq!(slow["verdict"], "FAIL");
    assert_eq!(slow["pairs"].as_array().unwrap().len(), 12);
    assert!(
        slow["node_metrics"]["collective.all_reduce"]["value"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(slow["gpus"][0]["metrics"]["transfer.h2d.pinned"].is_object());
    let checks = slow["node_checks"][0]["check"].clone();
    assert_eq!(checks, "links");
    // A second node, healthy, under another name: the fleet view per node type.
    let mut healthy = run(None, "healthy.json");
    healthy["hostname"] = "other-host".into();
    std::fs::write(dir.path().join("healthy.json"), healthy.to_string()).unwrap();
    let out = gpuvet()
        .args(words_with("aggregate {} --format json", &[dir.path()]))
        .output()
        .unwrap();
    let fleet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let types = fleet["node_types"].as_array().unwrap();
    assert_eq!(types.len(), 1, "{fleet}");
    assert_eq!(types[0]["nodes"], 2);
    // A node type's figures count the nodes that carry them, never GPUs.
    for m in types[0]["metrics"].as_array().unwrap() {
        assert_eq!(m["nodes"], 2, "{m}");
        assert!(m.get("gpus").is_none(), "{m}");
    }
    for m in fleet["skus"][0]["metrics"].as_array().unwrap() {
        assert!(
            m["gpus"].as_u64().unwrap() >= 1 && m.get("nodes").is_none(),
            "{m}"
        );
    }
    let slowest = fleet["node_outliers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["host"] == "test-host" && o["metric"] == "p2p.write.slowest");
    assert!(slowest, "{fleet}");
}

/// A free TCP port on the loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `size` gpuvet processes as one world meeting at `rendezvous`, each writing
/// `dir/c.json` (rank 0) or `dir/c.rankN.json`, the same for `c.prom`, and saving baseline `w`
/// (`w.rankN` on rank N) in `dir/base`; returns each one's exit status.
fn world_of_processes(dir: &Path, size: u32, rendezvous: &str) -> Vec<std::process::ExitStatus> {
    let exe = assert_cmd::cargo::cargo_bin("gpuvet");
    let children: Vec<std::process::Child> = (0..size)
        .map(|rank| {
            std::process::Command::new(&exe)
                .env_remove("SLURM_PROCID")
                .env("GPUVET_WORLD_SIZE", size.to_string())
                .env("GPUVET_RANK", rank.to_string())
                .env("GPUVET_RENDEZVOUS", rendezvous)
                .env("GPUVET_RENDEZVOUS_TIMEOUT", "60")
                .env("GPUVET_JOB_KEY", "interconnect-test")
                .args(words("--backend cpu --quiet"))
                .args(QUICK)
                .args(words("bench collective --size 64KiB --ranks 2 --json"))
                .arg(dir.join("c.json"))
                .arg("--prometheus")
                .arg(dir.join("c.prom"))
                .args(words("--save-baseline w --baseline-dir"))
                .arg(dir.join("base"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|mut c| c.wait().unwrap())
        .collect()
}

/// Every rank's report records the world and the same id hash, and every rank measured its
/// results with the same fixed schedule (the same calls, so no rank waits on another).
fn agreed_ids(dir: &Path, size: u32) -> Vec<String> {
    let mut schedules = Vec::new();
    let ids = (0..size)
        .map(|r| {
            let name = if r == 0 {
                "c.json".to_string()
            } else {
                format!("c.rank{r}.json")
            };
            let v = read_json(&dir.join(name));
            assert_eq!(v["world"]["rank"], r);
            assert_eq!(v["world"]["size"], size);
            let result = &v["results"][0];
            assert_eq!(result["status"], "ok");
            let notes = result["notes"].to_string();
            assert!(notes.contains("fixed schedule"), "rank {r}: {notes}");
            schedules.push((
                result["iterations_per_sample"].clone(),
                result["stats"]["samples"].clone(),
            ));
            v["world"]["id_sha256"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        schedules.iter().all(|s| s == &schedules[0]),
        "{schedules:?}"
    );
    ids
}

#[test]
fn local_processes_meet_over_tcp_and_agree_on_one_id() {
    let dir = tempfile::tempdir().unwrap();
    let rdv = format!("tcp://127.0.0.1:{}", free_port());
    let codes = world_of_processes(dir.path(), 3, &rdv);
    assert!(codes.iter().all(|c| c.success()), "{codes:?}");
    let ids = agreed_ids(dir.path(), 3);
    assert!(ids.iter().all(|i| i == &ids[0] && i.len() == 16), "{ids:?}");
    // No rank wrote over another's files or baseline.
    for name in ["c.prom", "c.rank1.prom", "c.rank2.prom"] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(text.contains("gpuvet_"), "{name}: {text}");
    }
    for (r, name) in ["w.json", "w.rank1.json", "w.rank2.json"]
        .iter()
        .enumerate()
    {
        let v = read_json(&dir.path().join("base").join(name));
        assert_eq!(v["world"]["rank"], r as u64, "{name}");
    }
}

#[test]
fn local_processes_meet_through_a_shared_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let rdv = format!("file:{}", dir.path().join("rdv.json").display());
    let codes = world_of_processes(dir.path(), 2, &rdv);
    assert!(codes.iter().all(|c| c.success()), "{codes:?}");
    let ids = agreed_ids(dir.path(), 2);
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn a_world_without_a_rendezvous_is_a_usage_error() {
    exits_2_saying(
        gpuvet()
            .env("GPUVET_WORLD_SIZE", "2")
            .env("GPUVET_RANK", "1")
            .args(words("--backend cpu bench collective --size 64KiB")),
        "GPUVET_RENDEZVOUS",
    );
}

#[test]
fn p2p_on_one_device_says_it_needs_two() {
    exits_2_saying(
        gpuvet().args(words("--backend cpu bench p2p --size 64KiB")),
        "needs two devices",
    );
}

/// Work on a set of GPUs is per watt of the whole set: a peer copy's power is the sum of its
/// two devices' (divided by the first GPU's alone, a 4-GPU all-reduce read 4x its efficiency).
#[test]
fn a_set_of_gpus_is_divided_by_the_power_of_all_of_them() {
    let (_dir, [json]) = temp_files(["r.json"]);
    gpuvet()
        .env("GPUVET_MOCK_DEVICES", "2")
        .args(words("--backend mock -q --warmup 1"))
        .args(&QUICK[2..])
        .args(words_with("--json {} validate --allow-cpu", &[&json]))
        .assert()
        .code(0);
    let r = read_json(&json);
    let results = r["results"].as_array().unwrap();
    let power = |device: serde_json::Value, id: &str| {
        let x = results
            .iter()
            .find(|x| x["device"] == device && x["id"].as_str().unwrap().starts_with(id))
            .unwrap_or_else(|| panic!("no {id} on {device}"));
        (
            x["power_w"].as_f64().unwrap(),
            x["per_watt"]["value"].as_f64().unwrap(),
            x["throughput"]["value"].as_f64().unwrap(),
        )
    };
    let (one, _, _) = power(serde_json::json!(0), "memory.copy");
    let (other, _, _) = power(serde_json::json!(1), "memory.copy");
    let (pair, per_watt, rate) = power(serde_json::json!([0, 1]), "p2p.write");
    assert_eq!(pair, one + other);
    assert!(
        (per_watt - rate / pair).abs() <= 1e-9 * per_watt,
        "{per_watt} vs {rate}/{pair}"
    );
}

/// The JSON report of `validate` on the mock with `env`, exiting `code`: its directory, path
/// and contents. Six samples a result at least: fewer give no 95% interval for the noise rule
/// to consult.
fn validate_report(
    env: &[(&str, &str)],
    code: i32,
) -> (tempfile::TempDir, std::path::PathBuf, serde_json::Value) {
    let (dir, [json]) = temp_files(["r.json"]);
    gpuvet()
        .envs(env.iter().copied())
        .args(words(
            "--backend mock -q --warmup 0 --max-time 0.05 --min-samples 6",
        ))
        .args(words_with("--json {} validate --allow-cpu", &[&json]))
        .assert()
        .code(code);
    let r = read_json(&json);
    (dir, json, r)
}

/// A pair is held to the other pairs' median, not to one its own copy is part of: on a
/// two-GPU node one direction 15% below the other is a straggler at the default 10% (with
/// itself in the median it came out 8.1% below, a WARN, and a FAIL needed an 18% gap).
#[test]
fn on_two_gpus_a_slow_direction_is_held_to_the_other() {
    let (_dir, json, mut r) = validate_report(&[("GPUVET_MOCK_DEVICES", "2")], 0);
    let mut slowed = 0;
    for x in r["results"].as_array_mut().unwrap() {
        if x["device"] == serde_json::json!([0, 1])
            && x["id"].as_str().unwrap().starts_with("p2p.write.")
        {
            let v = x["throughput"]["value"].as_f64().unwrap();
            x["throughput"]["value"] = (v * 0.85).into();
            slowed += 1;
        }
    }
    assert_eq!(slowed, 1, "one 0→1 copy");
    std::fs::write(&json, r.to_string()).unwrap();
    let report = gpuvet::report::Report::load(&json).unwrap();
    let v = gpuvet::validate::judge(&report, gpuvet::validate::JudgeOptions::default());
    let links = &v.node_checks[0];
    let straggler = links
        .findings
        .iter()
        .find(|f| f.message.starts_with("GPU 0→1 p2p.write"))
        .unwrap_or_else(|| panic!("{:#?}", links.findings));
    assert_eq!(
        straggler.verdict,
        gpuvet::validate::Verdict::Fail,
        "{}",
        straggler.message
    );
    assert!(
        straggler.message.contains("15.0% below the median")
            && straggler.message.contains("of the node's 1 other pair(s)"),
        "{}",
        straggler.message
    );
    // The faster direction is not below its other, so it is no straggler.
    assert!(!links
        .findings
        .iter()
        .any(|f| f.message.starts_with("GPU 1→0 p2p.write: ")
            && f.message.contains("below the median")));
}

/// A pair far below the node's other pairs fails the links check even where the link's rate is
/// unknown (NVML reports no NVLink state: every pair's path is unknown); the comparison with
/// the other pairs needs no rate, and was skipped with it.
#[test]
fn a_slow_pair_fails_when_the_links_are_unknown() {
    let env = [
        ("GPUVET_MOCK_DEVICES", "3"),
        ("GPUVET_MOCK_SLOW_PAIR", "1:2"),
    ];
    let (_dir, json, mut r) = validate_report(&env, 1);
    for d in r["devices"].as_array_mut().unwrap() {
        let details = d["details"].as_object_mut().unwrap();
        details.remove("nvlink_active_links");
        details.remove("nvlink_peers");
    }
    // The node's verdict and reasons once `r` is written back and read as a report.
    let judged = |r: &serde_json::Value| {
        std::fs::write(&json, r.to_string()).unwrap();
        let report = gpuvet::report::Report::load(&json).unwrap();
        let v = gpuvet::validate::judge(&report, gpuvet::validate::JudgeOptions::default());
        (v.verdict, v.reasons.join("\n"))
    };
    let (verdict, reasons) = judged(&r);
    assert!(
        reasons.contains("GPU 1→2 p2p.write") && reasons.contains("below the median"),
        "{reasons}"
    );
    assert_eq!(verdict, gpuvet::validate::Verdict::Fail, "{reasons}");
    // The same shortfall measured so noisily that the fast end of the slow pair's intervals
    // (both ways) is within the threshold: a WARN saying so, not a FAIL.
    let mut widened = 0;
    for x in r["results"].as_array_mut().unwrap() {
        let slow_pair = [[1, 2], [2, 1]]
            .iter()
            .any(|d| x["device"] == serde_json::json!(d));
        if slow_pair && x["id"].as_str().unwrap().starts_with("p2p.write.") {
            let median = x["stats"]["median_s"].as_f64().unwrap();
            x["stats"]["ci95_low_s"] = (median * 0.2).into();
            widened += 1;
        }
    }
    assert!(widened > 0);
    let (verdict, reasons) = judged(&r);
    assert!(
        reasons.contains("GPU 1→2 p2p.write") && reasons.contains("rests on noise"),
        "{reasons}"
    );
    assert_ne!(verdict, gpuvet::validate::Verdict::Fail, "{reasons}");
}

/// A GPU whose memory another process holds fails validate once, under health, with the
/// figures; its results are not each a correctness failure, and the healthy GPUs whose peer
/// copies and all-reduce included it are not failed for them (a note says what did not run).
#[test]
fn a_gpu_whose_memory_is_held_fails_health_and_only_it() {
    let (_dir, [verdict]) = temp_files(["v.json"]);
    let out = gpuvet()
        .env("GPUVET_MOCK_DEVICES", "4")
        .env("GPUVET_MOCK_HELD_MEMORY", "2")
        .args(words("--backend mock validate --allow-cpu --verdict"))
        .arg(&verdict)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = read_json(&verdict);
    let gpus = v["gpus"].as_array().unwrap();
    let check = |g: &serde_json::Value, kind: &str| -> serde_json::Value {
        g["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == kind)
            .unwrap()
            .clone()
    };
    for g in gpus {
        let i = g["index"].as_u64().unwrap();
        let (health, correctness) = (check(g, "health"), check(g, "correctness"));
        let notes = correctness["findings"].to_string();
        if i == 2 {
            assert_eq!(g["verdict"], "FAIL");
            assert_eq!(health["verdict"], "FAIL");
            let reasons = g["reasons"].to_string();
            assert!(
                reasons.contains("16.00 KiB free where the suite needs")
                    && reasons.contains("another process holds this GPU's memory"),
                "{reasons}"
            );
            assert!(
                !reasons.contains("did not run: not enough memory"),
                "{reasons}"
            );
            assert_eq!(correctness["verdict"], "PASS");
            assert!(correctness["skipped"]
                .as_str()
                .unwrap()
                .contains("nothing ran"));
            assert!(check(g, "peers")["skipped"].is_string());
        } else {
            assert_ne!(g["verdict"], "FAIL", "GPU {i}: {g}");
            assert_eq!(health["verdict"], "PASS");
            assert_eq!(correctness["verdict"], "PASS", "GPU {i}: {notes}");
            assert!(notes.contains("shared with GPU 2 did not run"), "{notes}");
        }
    }
    // Said before the run, too.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GPU 2: 16.00 KiB free"), "{stderr}");
}

/// The soak's stress leaves a held GPU out (planning it would refuse the whole stress, and the
/// node would get no verdict): exit 1 with the held GPU failed under health alone.
#[test]
fn a_soak_leaves_a_held_gpu_out_of_its_stress() {
    let (_dir, [verdict]) = temp_files(["v.json"]);
    let out = gpuvet()
        .env("GPUVET_MOCK_DEVICES", "3")
        .env("GPUVET_MOCK_HELD_MEMORY", "1")
        .args(words(
            "--backend mock -q validate --allow-cpu --duration 2s --verdict",
        ))
        .arg(&verdict)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = read_json(&verdict);
    for g in v["gpus"].as_array().unwrap() {
        let failed: Vec<&str> = g["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["verdict"] == "FAIL")
            .map(|c| c["check"].as_str().unwrap())
            .collect();
        let expect: &[&str] = if g["index"] == 1 { &["health"] } else { &[] };
        assert_eq!(failed, expect, "{g}");
    }
}

/// A node missing a library (the mock's `GPUVET_MOCK_NO_LIBRARY`, as a GPU node without
/// cuBLASLt) runs the rest of the suite, says once what it left out and why, and its verdict
/// names the workloads it does not cover instead of passing on the memory figures alone.
#[test]
fn validate_says_which_workloads_a_missing_library_left_out() {
    let (_dir, [verdict, json, md, prom]) = temp_files(["v.json", "r.json", "r.md", "g.prom"]);
    let out = gpuvet()
        .env("GPUVET_MOCK_NO_LIBRARY", "matmul,attention")
        .args(words(
            "--backend mock validate --quick --allow-cpu --verdict",
        ))
        .arg(&verdict)
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .arg("--prometheus")
        .arg(&prom)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("cannot run")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("Mock GPU cannot run 2 workloads (matmul.f32.64x64x64.nk, matmul.bf16.64x64x64.nk): the mock's library for matmul is not installed"),
        "{err}"
    );
    // The report says what it lacks and why, in JSON and in Markdown.
    let r = read_json(&json);
    let not_run: Vec<&str> = r["not_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["workload"].as_str().unwrap())
        .collect();
    assert_eq!(not_run.len(), 4, "{not_run:?}");
    assert!(not_run
        .iter()
        .all(|w| w.starts_with("matmul") || w.starts_with("attention")));
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("Not run:\n\n- Mock GPU cannot run 2 workloads (matmul.f32.64x64x64.nk"),
        "{md}"
    );
    // A dashboard sees each as a series of its own.
    let prom = std::fs::read_to_string(&prom).unwrap();
    let series: Vec<&str> = prom
        .lines()
        .filter(|l| l.starts_with("gpuvet_workload_not_run{"))
        .collect();
    assert_eq!(series.len(), 4, "{prom}");
    assert!(series
        .iter()
        .any(|l| l.contains("workload=\"matmul.f32.64x64x64.nk\"") && l.ends_with(" 1")));
    let v = read_json(&verdict);
    let g = &v["gpus"][0];
    assert_eq!(g["verdict"], "WARN");
    let reasons = g["reasons"].to_string();
    for kind in ["matmul", "attention"] {
        assert!(
            reasons.contains("not measured, so not covered by this verdict")
                && reasons.contains(&format!("the mock's library for {kind} is not installed")),
            "{reasons}"
        );
    }
}

/// A chart point of a collective names every GPU of its set (github-action-benchmark's
/// `extra`), not just the first: a slow all-reduce is then traceable to the cards it ran on.
#[test]
fn a_collectives_chart_point_names_every_gpu_of_its_set() {
    let (_dir, [gab]) = temp_files(["gab.json"]);
    let mut run = gpuvet();
    run.env("GPUVET_MOCK_DEVICES", "3").args(words_with(
        "--backend mock -q --max-time 0.05 --export github:{} bench collective --op all_reduce \
         --size 1MiB",
        &[&gab],
    ));
    run.assert().code(0);
    let entries = read_json(&gab);
    let all_reduce = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str().unwrap().contains("all_reduce"))
        .unwrap_or_else(|| panic!("no all-reduce entry in {entries}"));
    let extra = all_reduce["extra"].as_str().unwrap();
    assert!(extra.starts_with("GPUs 0,1,2: "), "{extra}");
    assert_eq!(extra.matches("Mock GPU GPU-").count(), 3, "{extra}");
}

/// A baseline name rank 0 can take but the highest rank cannot (`NAME.rank1` over the length
/// limit) is refused on every rank before the rendezvous: refused on rank 1 alone, rank 0
/// waited the whole timeout and then blamed rank 1 for not joining.
#[test]
fn a_baseline_name_too_long_for_the_last_rank_is_refused_on_rank_zero_at_once() {
    let (dir, [base]) = temp_files(["base"]);
    let name = "a".repeat(97);
    let started = std::time::Instant::now();
    let out = gpuvet()
        .env_remove("SLURM_PROCID")
        .env("GPUVET_WORLD_SIZE", "2")
        .env("GPUVET_RANK", "0")
        .env(
            "GPUVET_RENDEZVOUS",
            format!("file:{}", dir.path().join("rdv.json").display()),
        )
        .env("GPUVET_RENDEZVOUS_TIMEOUT", "60")
        .args(words("--backend cpu --quiet"))
        .args(QUICK)
        .args(words(
            "bench collective --size 64KiB --ranks 2 --save-baseline",
        ))
        .arg(&name)
        .arg("--baseline-dir")
        .arg(&base)
        .output()
        .unwrap();
    common::assert_exit(&out, 2, "a name too long for rank 1");
    let says = String::from_utf8_lossy(&out.stderr);
    assert!(
        says.contains(&format!("rank 1 keeps its baseline as `{name}.rank1`")),
        "{says}"
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "it waited for the rendezvous"
    );
}

/// An output named as the file rendezvous is refused before the ranks meet: rank 0 rewrites
/// that file while the others read it.
#[test]
fn an_output_over_the_file_rendezvous_is_refused() {
    let (dir, [json]) = temp_files(["rdv.json"]);
    let out = gpuvet()
        .env_remove("SLURM_PROCID")
        .env("GPUVET_WORLD_SIZE", "2")
        .env("GPUVET_RANK", "0")
        .env("GPUVET_RENDEZVOUS", format!("file:{}", json.display()))
        .env("GPUVET_RENDEZVOUS_TIMEOUT", "60")
        .args(words("--backend cpu --quiet"))
        .args(QUICK)
        .args(words("bench collective --size 64KiB --ranks 2 --json"))
        .arg(&json)
        .output()
        .unwrap();
    common::assert_exit(&out, 2, "--json over the rendezvous file");
    let says = String::from_utf8_lossy(&out.stderr);
    assert!(says.contains("GPUVET_RENDEZVOUS"), "{says}");
    drop(dir);
}

/// A collective on one device in one process is refused, as `--ranks 1` is: one rank
/// exchanges nothing, and it reported 0 B/s as "ok".
#[test]
fn a_collective_of_one_rank_is_refused() {
    exits_2_saying(
        gpuvet()
            .env("GPUVET_MOCK_DEVICES", "1")
            .args(words("--backend mock -q --max-time 0.02"))
            .args(words("sweep collective --size 4KiB,8KiB --op all_reduce")),
        "collective.all_reduce.bf16.4KiB needs two ranks or more",
    );
}
