//! Verdict logic on synthetic results and telemetry: each fault gives the right verdict and a
//! reason that names it; a healthy node passes.

mod common;

use common::run_plan;
use gpuvet::backend::{BackendKind, DeviceInfo, Telemetry};
use gpuvet::cli::ValidateArgs;
use gpuvet::dtype::DType;
use gpuvet::env::{HostInfo, ToolInfo};
use gpuvet::gpudb;
use gpuvet::plan::NotRun;
use gpuvet::report::{Report, ResultRecord, RunConfig, Status, Throughput, SCHEMA_VERSION};
use gpuvet::stats::Summary;
use gpuvet::validate::verdict::{self, test_key};
use gpuvet::validate::{
    judge, judge_with, suite, Check, CheckKind, ChecksumSample, GpuVerdict, JudgeInputs,
    NodeVerdict, Verdict,
};
use gpuvet::verify::Verification;
use gpuvet::workload::Workload;
use serde_json::json;

/// A healthy H100 SXM as the CUDA backend describes it.
fn h100_sxm(i: usize) -> DeviceInfo {
    let mut d = DeviceInfo {
        index: i,
        backend: Some(BackendKind::Cuda),
        name: "NVIDIA H100 80GB HBM3".into(),
        uuid: Some(format!("GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd")),
        pci_bus_id: Some(format!("00000000:{:02X}:00.0", 0x18 + i)),
        compute_capability: Some("9.0".into()),
        multiprocessors: Some(132),
        memory_bytes: Some(81559 << 20),
        last_level_cache_bytes: Some(50 << 20),
        ..DeviceInfo::default()
    };
    let healthy = json!({
        "serial": format!("165432100{i}"),
        "sm_clock_max_mhz": 1980,
        "power_limit_w": 700.0,
        "power_limit_default_w": 700.0,
        "pcie_gen": 5, "pcie_gen_max": 5,
        "pcie_width": 16, "pcie_width_max": 16,
        "nvlink_active_links": 18,
        "ecc_enabled": true,
        "ecc_errors_corrected_volatile": 0, "ecc_errors_uncorrected_volatile": 0,
        "remapped_rows_correctable": 0, "remapped_rows_uncorrectable": 0,
        "remapped_rows_pending": false, "remapped_rows_failure": false,
        "mig_mode": "disabled",
    });
    d.details = serde_json::from_value(healthy).unwrap();
    d
}

/// The H100 PCIe card as it really is (it reports its own name and figures).
fn h100_pcie(i: usize) -> DeviceInfo {
    let mut d = h100_sxm(i);
    d.name = "NVIDIA H100 PCIe".into();
    d.multiprocessors = Some(114);
    d.details.state.sm_clock_max_mhz = Some(1755);
    d.details.state.power_limit_w = Some(350.0);
    d.details.state.power_limit_default_w = Some(350.0);
    d.details.state.nvlink_active_links = Some(0);
    d
}

fn telemetry(clock: f64, temp: f64, reasons: &[&str]) -> Telemetry {
    Telemetry {
        sm_clock_mhz: Some(clock),
        temperature_c: Some(temp),
        power_w: Some(650.0),
        power_limit_w: Some(700.0),
        // Named as reports write them (or as NVML spells them): read through the schema.
        throttle_reasons: reasons
            .iter()
            .map(|s| serde_json::from_value(json!(s)).unwrap())
            .collect(),
        ..Telemetry::default()
    }
}

/// A verified result of `w` on `device` whose headline figure is `value` (FLOP/s or B/s).
fn record(device: usize, w: &Workload, value: f64) -> ResultRecord {
    let key = test_key(w);
    // Decode is judged on bandwidth; everything else on throughput.
    let t = if key == "attention.decode" {
        w.bytes() as f64 / value
    } else if w.flops() > 0.0 {
        w.flops() / value
    } else {
        w.bytes() as f64 / value
    };
    ResultRecord {
        compute_dtype: w.dtype().name().into(),
        status: Status::Ok,
        verification: Verification {
            passed: true,
            method: gpuvet::verify::VerifyMethod::FreivaldsSampled,
            max_rel_error: 1e-3,
            tolerance: 1e-2,
            checked_elements: 4096,
            detail: None,
        },
        stats: Some(Summary::from_samples(&[t, t * 1.001, t * 0.999], 1)),
        throughput: Some(Throughput {
            value: w.flops().max(w.bytes() as f64) / t,
            unit: ResultRecord::unit_for(w).into(),
        }),
        bandwidth: Some(Throughput {
            value: w.bytes() as f64 / t,
            unit: "B/s".into(),
        }),
        iterations_per_sample: 1,
        cache: "rotate(2)".into(),
        stop_reason: gpuvet::measure::StopReason::NoiseTarget,
        telemetry_before: Some(telemetry(1980.0, 45.0, &[])),
        telemetry_after: Some(telemetry(1980.0, 62.0, &["sw_power_cap"])),
        effective_clock_mhz: Some(1965.0),
        ..ResultRecord::unrun(w, "test", BackendKind::Cuda, device.into())
    }
}

/// What a healthy card of `sku` reaches on `w` (its expectation, times `scale`).
fn healthy_value(sku: &str, w: &Workload, scale: f64) -> f64 {
    let s = gpudb::by_id(sku).unwrap();
    let key = test_key(w);
    let share = s.expectation(&key).unwrap().share;
    let peak = if key.starts_with("memory") || key == "attention.decode" {
        s.memory_bandwidth()
    } else {
        s.peak(w.dtype().name()).unwrap()
    };
    peak * share * scale
}

/// A finished validation report of `devices`, each GPU at its SKU's expectation × `scale(i)`.
fn report_of(devices: Vec<DeviceInfo>, sku: &str, scale: impl Fn(usize) -> f64) -> Report {
    let mut results = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        for w in suite(d, true) {
            // A spread of ±1% between GPUs, as real cards show.
            let jitter = 1.0 + 0.01 * ((i % 3) as f64 - 1.0);
            results.push(record(i, &w, healthy_value(sku, &w, scale(i) * jitter)));
        }
    }
    Report {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo::current(),
        host: HostInfo {
            hostname: "gpu-node-017".into(),
            ..HostInfo::fixed()
        },
        devices,
        config: RunConfig {
            command: "validate".into(),
            backend: "cuda".into(),
            seed: 1,
            min_samples: 10,
            max_samples: 1000,
            max_time_s: 3.0,
            warmup_s: 0.3,
            target_rel_noise: 0.005,
            min_sample_time_s: 0.01,
            hot: false,
            threads: 0,
            kernel_hash: None,
            price: None,
        },
        started_at: "2026-11-28T20:00:00Z".into(),
        complete: true,
        world: None,
        results,
        not_run: Vec::new(),
        telemetry: Vec::new(),
    }
}

fn healthy_node(n: usize) -> Report {
    report_of((0..n).map(h100_sxm).collect(), "h100-sxm", |_| 1.0)
}

fn gpu(v: &NodeVerdict, i: usize) -> &GpuVerdict {
    &v.gpus[i]
}

fn check(g: &GpuVerdict, k: CheckKind) -> Verdict {
    findings_of(g, k).verdict
}

/// The GPU's check of kind `k`, with its findings.
fn findings_of(g: &GpuVerdict, k: CheckKind) -> &Check {
    g.checks.iter().find(|c| c.check == k).unwrap()
}

/// Checks that the GPU's check of kind `k` gave `verdict` and that some reason names every
/// word of `words`.
fn judged(g: &GpuVerdict, k: CheckKind, verdict: Verdict, words: &[&str]) {
    assert_eq!(check(g, k), verdict);
    assert!(has_reason(g, words), "{:#?}", g.reasons);
}

/// Judges `r` with the default settings and checks GPU `i` as [`judged`] does; returns the
/// node's verdict for the test's further checks.
fn judged_gpu(r: &Report, i: usize, k: CheckKind, verdict: Verdict, words: &[&str]) -> NodeVerdict {
    let v = judge(r, &ValidateArgs::default());
    judged(gpu(&v, i), k, verdict, words);
    v
}

/// True when some WARN/FAIL reason of the GPU contains every word of `words`.
fn has_reason(g: &GpuVerdict, words: &[&str]) -> bool {
    g.reasons
        .iter()
        .any(|r| words.iter().all(|w| r.contains(w)))
}

#[test]
fn healthy_node_passes_and_names_every_gpu() {
    let v = judge(&healthy_node(8), &ValidateArgs::default());
    assert_eq!(v.verdict, Verdict::Pass, "{:#?}", v.reasons);
    assert_eq!(v.exit_code, 0);
    assert!(v.reasons.is_empty(), "{:#?}", v.reasons);
    assert_eq!(v.hostname, "gpu-node-017");
    assert_eq!(v.gpus.len(), 8);
    let g = gpu(&v, 3);
    assert_eq!(g.sku.as_deref(), Some("h100-sxm"));
    assert_eq!(g.serial.as_deref(), Some("1654321003"));
    assert!(g.uuid.as_deref().unwrap().starts_with("GPU-"));
    assert_eq!(g.pci_bus_id.as_deref(), Some("00000000:1B:00.0"));
    // Every suite test has a figure with an expectation.
    for key in [
        "memory.copy",
        "matmul.bf16",
        "matmul.fp8_e4m3",
        "attention.prefill",
        "attention.decode",
    ] {
        let m = &g.metrics[key];
        assert!(
            (m.ratio.unwrap() - 1.0).abs() < 0.02,
            "{key}: {:?}",
            m.ratio
        );
    }
    // Power capping under full load is a note, not a problem.
    assert!(findings_of(g, CheckKind::Health)
        .findings
        .iter()
        .any(|f| f.message.contains("power capping")));
    // The JSON is what the aggregator reads back.
    // (serde_json may read a float back one ulp off, so figures are compared, not bits.)
    let back = NodeVerdict::from_json(&v.to_json(), "mem").unwrap();
    assert_eq!((back.verdict, back.exit_code), (v.verdict, v.exit_code));
    for (a, b) in back.gpus.iter().zip(&v.gpus) {
        assert_eq!(
            (&a.uuid, &a.serial, &a.sku, &a.checks),
            (&b.uuid, &b.serial, &b.sku, &b.checks)
        );
        for (k, m) in &b.metrics {
            assert!(
                (a.metrics[k].value - m.value).abs() <= 1e-12 * m.value,
                "{k}"
            );
        }
    }
    // And the table says it in words.
    let table = v.render(false);
    assert!(
        table.contains("gpu-node-017: PASS (8 GPUs), exit 0"),
        "{table}"
    );
}

#[test]
fn thermal_throttling_fails_health() {
    let mut r = healthy_node(4);
    let rec = r.results.iter_mut().find(|x| x.device == 2).unwrap();
    rec.telemetry_after = Some(telemetry(
        1410.0,
        91.0,
        &["sw_power_cap", "HwThermalSlowdown"],
    ));
    let v = judge(&r, &ValidateArgs::default());
    assert_eq!(v.verdict, Verdict::Fail);
    assert_eq!(v.exit_code, 1);
    let g = gpu(&v, 2);
    judged(
        g,
        CheckKind::Health,
        Verdict::Fail,
        &["health", "hardware thermal slowdown", &rec_id(&r, 2)],
    );
    assert!(has_reason(g, &["91 °C"]), "{:#?}", g.reasons);
    assert!(v
        .reasons
        .iter()
        .any(|x| x.starts_with("GPU 2 (GPU-00000002")));
    for i in [0, 1, 3] {
        assert_eq!(gpu(&v, i).verdict, Verdict::Pass);
    }
}

fn rec_id(r: &Report, device: usize) -> String {
    r.results
        .iter()
        .find(|x| x.device == device)
        .unwrap()
        .id
        .clone()
}

#[test]
fn clocks_not_held_warn() {
    let mut r = healthy_node(1);
    for rec in r.results.iter_mut() {
        rec.effective_clock_mhz = Some(1200.0);
    }
    judged_gpu(
        &r,
        0,
        CheckKind::Health,
        Verdict::Warn,
        &["clocks not held", "1200 MHz"],
    );
}

#[test]
fn ecc_errors_and_pending_remaps_fail() {
    let mut r = healthy_node(2);
    r.devices[1].details.state.ecc_errors_uncorrected_volatile = Some(3);
    r.devices[0].details.state.remapped_rows_pending = Some(true);
    let v = judge(&r, &ValidateArgs::default());
    assert!(has_reason(gpu(&v, 1), &["3 uncorrectable ECC errors"]));
    assert!(has_reason(
        gpu(&v, 0),
        &["row remapping is pending", "reset"]
    ));
    assert_eq!(gpu(&v, 0).verdict, Verdict::Fail);
    assert_eq!(gpu(&v, 1).verdict, Verdict::Fail);
    // Errors that appear during the run are named as such.
    let r = healthy_node(1);
    let mut after = r.devices[0].details.state.clone();
    after.ecc_errors_corrected_volatile = Some(12);
    after.ecc_errors_uncorrected_volatile = Some(1);
    let inputs = JudgeInputs {
        state_after: [(0, after)].into_iter().collect(),
        ..JudgeInputs::default()
    };
    let g = judge_with(&r, &ValidateArgs::default(), &inputs)
        .gpus
        .remove(0);
    assert!(
        has_reason(&g, &["1 new uncorrectable ECC errors during the run"]),
        "{:#?}",
        g.reasons
    );
    assert!(has_reason(
        &g,
        &["12 new corrected ECC errors during the run"]
    ));
    assert_eq!(g.verdict, Verdict::Fail);
    // Corrected errors alone are a note.
    let mut r = healthy_node(1);
    r.devices[0].details.state.ecc_errors_corrected_volatile = Some(5);
    assert_eq!(judge(&r, &ValidateArgs::default()).verdict, Verdict::Pass);
}

#[test]
fn degraded_pcie_link_fails() {
    let mut r = healthy_node(2);
    r.devices[1].details.state.pcie_width = Some(8);
    judged_gpu(
        &r,
        1,
        CheckKind::Health,
        Verdict::Fail,
        &["PCIe link degraded to x8 of x16"],
    );
    // The generation is judged only on the state read after the run: at open the link may
    // have trained down to save power.
    let mut idle = healthy_node(1);
    idle.devices[0].details.state.pcie_gen = Some(1);
    assert_eq!(
        judge(&idle, &ValidateArgs::default()).verdict,
        Verdict::Pass
    );
    let mut after = idle.devices[0].details.state.clone();
    after.pcie_gen = Some(3);
    let inputs = JudgeInputs {
        state_after: [(0, after)].into_iter().collect(),
        ..JudgeInputs::default()
    };
    let v = judge_with(&idle, &ValidateArgs::default(), &inputs);
    assert!(
        has_reason(gpu(&v, 0), &["health", "Gen3 of Gen5", "after the run"]),
        "{:#?}",
        v.reasons
    );
    // A slot that cannot do Gen5 is an identity warning.
    let mut r = healthy_node(1);
    r.devices[0].details.state.pcie_gen_max = Some(4);
    r.devices[0].details.state.pcie_gen = Some(4);
    let v = judge(&r, &ValidateArgs::default());
    assert_eq!(v.verdict, Verdict::Warn);
    assert!(has_reason(gpu(&v, 0), &["identity", "Gen4", "Gen5"]));
    assert_eq!(v.exit_code, 0);
    let strict = ValidateArgs {
        fail_on_warn: true,
        ..ValidateArgs::default()
    };
    assert_eq!(judge(&r, &strict).exit_code, 1);
}

#[test]
fn straggler_fails_peers() {
    // `n` H100s, GPU `slow` at 85% of the others' speed.
    let node = |n: usize, slow: usize| {
        report_of((0..n).map(h100_sxm).collect(), "h100-sxm", move |i| {
            if i == slow {
                0.85
            } else {
                1.0
            }
        })
    };
    let r = node(8, 5);
    let v = judged_gpu(
        &r,
        5,
        CheckKind::Peers,
        Verdict::Fail,
        &[
            "peers",
            "matmul.bf16",
            "below the median",
            "other 7 GPU(s)",
            "straggler",
        ],
    );
    assert_eq!(v.verdict, Verdict::Fail);
    for i in [0, 1, 2, 3, 4, 6, 7] {
        assert_eq!(
            check(gpu(&v, i), CheckKind::Peers),
            Verdict::Pass,
            "GPU {i}"
        );
    }
    // Two GPUs: each is held to its twin, not to the mean of the pair (a card 15% slower
    // than its twin was 8% below that mean, a WARN).
    let pair = node(2, 1);
    let v = judged_gpu(
        &pair,
        1,
        CheckKind::Peers,
        Verdict::Fail,
        &["below the median", "other 1 GPU(s)", "straggler"],
    );
    assert_eq!(check(gpu(&v, 0), CheckKind::Peers), Verdict::Pass);
    // A looser threshold lets the same GPU through the peer check.
    let loose = ValidateArgs {
        straggler_pct: 40.0,
        ..ValidateArgs::default()
    };
    assert_ne!(
        check(gpu(&judge(&r, &loose), 5), CheckKind::Peers),
        Verdict::Fail
    );
}

#[test]
fn absolute_bands_and_estimates() {
    // 15% below expectation: WARN; 30% below: FAIL (a published expectation).
    let warn = report_of(vec![h100_sxm(0)], "h100-sxm", |_| 0.85);
    let g = judge(&warn, &ValidateArgs::default()).gpus.remove(0);
    assert_eq!(check(&g, CheckKind::Absolute), Verdict::Warn);
    let fail = report_of(vec![h100_sxm(0)], "h100-sxm", |_| 0.70);
    let g = judge(&fail, &ValidateArgs::default()).gpus.remove(0);
    assert_eq!(check(&g, CheckKind::Absolute), Verdict::Fail);
    assert!(
        has_reason(
            &g,
            &["absolute", "matmul.bf16", "below expectation", "published"]
        ),
        "{:#?}",
        g.reasons
    );
    // Attention prefill's expectation is an estimate: far below it is still only a WARN.
    assert!(g
        .reasons
        .iter()
        .any(|r| r.contains("attention.prefill") && r.contains("estimate")));
    assert!(findings_of(&g, CheckKind::Absolute)
        .findings
        .iter()
        .filter(|f| f.message.starts_with("attention.prefill"))
        .all(|f| f.verdict == Verdict::Warn));
    // A wider tolerance passes the 15%-low card.
    let wide = ValidateArgs {
        tolerance: 20.0,
        ..ValidateArgs::default()
    };
    assert_eq!(judge(&warn, &wide).verdict, Verdict::Pass);
}

/// Outside validate too: a result above its device's peak says why in its notes and under
/// the results table; a bandwidth above it with its data left in cache is called a cache figure.
#[test]
fn results_above_the_peak_are_called_out_in_every_run() {
    let device = gpudb::with_peaks(h100_sxm(0));
    let peaks = device
        .peaks
        .clone()
        .expect("the H100 SXM is in the database");
    let mut report = report_of(vec![device], "h100-sxm", |_| 1.0);
    let ws: Vec<Workload> = report.results.iter().map(|r| r.workload.clone()).collect();
    report.results.clear();
    let mm = ws.iter().find(|w| test_key(w) == "matmul.bf16").unwrap();
    let copy = ws.iter().find(|w| test_key(w) == "memory.copy").unwrap();
    let bf16 = peaks.flops[&DType::Bf16];
    let hbm = peaks.memory_bandwidth.unwrap();
    report.push(record(0, mm, 0.8 * bf16));
    report.push(record(0, mm, 1.3 * bf16));
    let mut warm = record(0, copy, 1.6 * hbm);
    warm.cache = "warm(4)".into();
    report.push(warm);
    let r = &report.results;
    assert!(r[0].notes.is_empty(), "{:?}", r[0].notes);
    assert!(
        r[1].notes.iter().any(|n| n.starts_with("130% of the peak")
            && n.contains("broken")
            && n.contains("do not quote")),
        "{:?}",
        r[1].notes
    );
    assert!(
        r[2].notes
            .iter()
            .any(|n| n.contains("warm(4)") && n.contains("cache's bandwidth")),
        "{:?}",
        r[2].notes
    );
    let table = gpuvet::term::results_table(&report, false);
    assert_eq!(table.matches("of the peak").count(), 2, "{table}");
    assert!(table.contains("130% of the peak is more than the device can do"));
    // Pushed again (a rank's report merged), the note is not doubled.
    let again = report.results[1].clone();
    report.push(again);
    assert_eq!(report.results[3].notes.len(), 1);
    // A collective's bus bandwidth above its links' rate is possible (in-switch reduction):
    // said, not called broken.
    use gpuvet::workload::{CollectiveOp, CollectiveSpec};
    let all_reduce = Workload::Collective(CollectiveSpec::new(
        CollectiveOp::AllReduce,
        DType::Bf16,
        1 << 30,
        8,
    ));
    let mut nvls = record(0, &all_reduce, 480e9);
    nvls.peak_fraction = Some(480.0 / 450.0);
    let why = nvls.above_peak().unwrap();
    assert!(
        why.starts_with("107% of the links' rate") && why.contains("SHARP"),
        "{why}"
    );
    assert!(!why.contains("broken"), "{why}");
}

/// Where a result had its power read, the table gains a `per W` column (only then).
#[test]
fn the_table_shows_work_per_watt_where_power_was_read() {
    let mut report = healthy_node(1);
    let table = gpuvet::term::results_table(&report, false);
    assert!(!table.contains("per W"), "{table}");
    let r = &mut report.results[0];
    let rate = r.throughput.as_ref().unwrap().value;
    r.power_w = Some(500.0);
    r.fill_efficiency(Some(1980.0));
    let unit = r.throughput.as_ref().unwrap().unit.clone();
    let per_w = gpuvet::units::si(rate / 500.0, &format!("{unit}/W"));
    let table = gpuvet::term::results_table(&report, false);
    assert!(table.contains("per W"), "{table}");
    assert!(table.contains(&per_w), "{per_w} in {table}");
    // Only the row whose power was read has a figure there.
    assert_eq!(table.matches("/W ").count(), 1, "{table}");
}

#[test]
fn figure_above_peak_is_a_broken_measurement() {
    let r = report_of(vec![h100_sxm(0)], "h100-sxm", |_| 1.5);
    let g = judge(&r, &ValidateArgs::default()).gpus.remove(0);
    assert!(
        has_reason(&g, &["matmul.bf16", "above the peak", "broken"]),
        "{:#?}",
        g.reasons
    );
}

#[test]
fn checksum_mismatch_fails_correctness_naming_gpu_and_iteration() {
    let r = healthy_node(4);
    let mut checksums = Vec::new();
    for device in 0..4 {
        for iteration in 0..50 {
            let bad = device == 1 && iteration == 37;
            checksums.push(ChecksumSample {
                device,
                workload: "matmul.bf16.8192x8192x8192.nk".into(),
                iteration,
                checksum: if bad { "9f31c0de" } else { "9f31c0df" }.into(),
            });
        }
    }
    let inputs = JudgeInputs {
        checksums,
        ..JudgeInputs::default()
    };
    let v = judge_with(&r, &ValidateArgs::default(), &inputs);
    let g = gpu(&v, 1);
    judged(
        g,
        CheckKind::Correctness,
        Verdict::Fail,
        &[
            "silent data corruption",
            "iteration 37",
            "9f31c0de",
            "9f31c0df",
        ],
    );
    for i in [0, 2, 3] {
        assert_eq!(gpu(&v, i).verdict, Verdict::Pass, "GPU {i}");
    }
    // Without a majority every sample is suspect.
    let split = [("a", 0), ("b", 1)]
        .map(|(c, d)| ChecksumSample {
            device: d,
            workload: "w".into(),
            iteration: 0,
            checksum: c.into(),
        })
        .to_vec();
    let m = verdict::checksum_mismatches(&split);
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|x| x.expected.is_none()));
}

#[test]
fn wrong_result_fails_correctness() {
    let mut r = healthy_node(2);
    let rec = r
        .results
        .iter_mut()
        .find(|x| x.device == 0 && x.dtype == DType::Bf16)
        .unwrap();
    rec.status = Status::VerificationFailed;
    rec.verification.passed = false;
    rec.verification.max_rel_error = 0.5;
    rec.stats = None;
    rec.throughput = None;
    judged_gpu(
        &r,
        0,
        CheckKind::Correctness,
        Verdict::Fail,
        &["correctness", "wrong result", "5.000e-1"],
    );
}

#[test]
fn pcie_card_sold_as_sxm_fails_identity_and_absolute() {
    let r = report_of((0..2).map(h100_pcie).collect(), "h100-pcie", |_| 1.0);
    // Judged as what it is, the PCIe card is healthy.
    let own = judge(&r, &ValidateArgs::default());
    assert_eq!(own.verdict, Verdict::Pass, "{:#?}", own.reasons);
    assert_eq!(gpu(&own, 0).sku.as_deref(), Some("h100-pcie"));
    // Judged as the SXM part that was paid for, it is not.
    let args = ValidateArgs {
        expect: Some("h100-sxm".into()),
        ..ValidateArgs::default()
    };
    let v = judge(&r, &args);
    let g = gpu(&v, 0);
    assert_eq!(v.verdict, Verdict::Fail);
    assert_eq!(g.sku.as_deref(), Some("h100-sxm"));
    assert_eq!(g.detected_sku.as_deref(), Some("h100-pcie"));
    judged(
        g,
        CheckKind::Identity,
        Verdict::Fail,
        &[
            "identity",
            "expected NVIDIA H100 SXM5",
            "reports itself as NVIDIA H100 PCIe",
        ],
    );
    assert!(has_reason(g, &["114 SMs", "has 132"]));
    assert!(has_reason(g, &["power limit 350 W", "700 W"]));
    assert!(has_reason(g, &["no active NVLink"]));
    assert_eq!(check(g, CheckKind::Absolute), Verdict::Fail);
    assert!(v.render(false).contains("h100-sxm (is h100-pcie)"));
}

#[test]
fn power_capped_card_fails_identity() {
    let mut r = healthy_node(2);
    r.devices[1].details.state.power_limit_w = Some(400.0);
    let v = judged_gpu(
        &r,
        1,
        CheckKind::Identity,
        Verdict::Fail,
        &["power limit 400 W", "700 W", "power-capped"],
    );
    assert_eq!(gpu(&v, 0).verdict, Verdict::Pass);
}

#[test]
fn mig_slice_fails_identity() {
    let mut d = h100_sxm(0);
    d.name = "NVIDIA H100 80GB HBM3 MIG 1g.10gb".into();
    d.multiprocessors = Some(16);
    d.memory_bytes = Some(9984 << 20);
    d.details.state.mig_mode = Some(true);
    let r = report_of(vec![d.clone()], "h100-sxm", |_| 16.0 / 132.0);
    // Not recognised as a full H100 ...
    let v = judge(&r, &ValidateArgs::default());
    assert_eq!(gpu(&v, 0).sku, None);
    assert!(
        has_reason(gpu(&v, 0), &["identity", "MIG slice"]),
        "{:#?}",
        gpu(&v, 0).reasons
    );
    assert_eq!(v.verdict, Verdict::Fail);
    // ... and against the H100 that was paid for, every difference is named.
    let args = ValidateArgs {
        expect: Some("h100-sxm".into()),
        ..ValidateArgs::default()
    };
    let g = judge(&r, &args).gpus.remove(0);
    assert!(has_reason(&g, &["16 SMs", "132"]));
    assert!(
        has_reason(&g, &["9.8 GiB of memory", "80 GiB"]),
        "{:#?}",
        g.reasons
    );
    // MIG mode on a whole GPU is also reported.
    let mut whole = healthy_node(1);
    whole.devices[0].details.state.mig_mode = Some(true);
    let g = judge(&whole, &ValidateArgs::default()).gpus.remove(0);
    assert!(has_reason(&g, &["MIG mode is enabled"]));
}

#[test]
fn vgpu_warns() {
    let mut r = healthy_node(1);
    r.devices[0].details.state.virtualization_mode = Some("vgpu".into());
    let v = judge(&r, &ValidateArgs::default());
    assert_eq!(v.verdict, Verdict::Warn);
    assert!(has_reason(gpu(&v, 0), &["virtualised", "shared"]));
}

#[test]
fn unknown_gpu_is_judged_on_computed_peaks_but_never_failed_by_them() {
    let mut d = h100_sxm(0);
    d.name = "NVIDIA H20".into();
    d.multiprocessors = Some(78);
    d.memory_bytes = Some(97871 << 20);
    let mut r = report_of(vec![d], "h100-sxm", |_| 0.3);
    r.results.retain(|x| x.workload.kind() == "matmul");
    let v = judge(&r, &ValidateArgs::default());
    let g = gpu(&v, 0);
    assert!(g.sku.is_none());
    assert!(g.peaks_computed);
    // Held to its computed fp32 peak only: a tensor-core figure has nothing to be held to.
    assert!(g.metrics["matmul.f32"].expected.is_some());
    for d in ["bf16", "f16", "tf32", "fp8_e4m3", "int8"] {
        assert!(g.metrics[&format!("matmul.{d}")].expected.is_none(), "{d}");
    }
    assert_eq!(check(g, CheckKind::Absolute), Verdict::Warn);
    assert_eq!(check(g, CheckKind::Identity), Verdict::Pass);
}

#[test]
fn cpu_run_passes_with_notes() {
    let cpu = DeviceInfo {
        backend: Some(BackendKind::Cpu),
        name: "AMD EPYC 7B13".into(),
        multiprocessors: Some(2),
        ..DeviceInfo::default()
    };
    let mut r = report_of(vec![cpu.clone()], "h100-sxm", |_| 1e-4);
    for x in r.results.iter_mut() {
        x.backend = BackendKind::Cpu;
        x.telemetry_before = None;
        x.telemetry_after = None;
        x.effective_clock_mhz = None;
    }
    let v = judge(&r, &ValidateArgs::default());
    assert_eq!(v.verdict, Verdict::Pass, "{:#?}", v.reasons);
    let g = gpu(&v, 0);
    assert!(g.metrics.contains_key("matmul.f32"));
    assert!(g.metrics.values().all(|m| m.expected.is_none()));
}

#[test]
fn no_device_is_a_tool_error_and_incomplete_runs_warn() {
    let mut r = healthy_node(1);
    r.devices.clear();
    r.results.clear();
    let v = judge(&r, &ValidateArgs::default());
    assert_eq!(v.exit_code, 2);
    let mut r = healthy_node(1);
    r.complete = false;
    let v = judge(&r, &ValidateArgs::default());
    assert_eq!(v.verdict, Verdict::Warn);
    assert!(v.reasons.iter().any(|x| x.contains("did not complete")));
    // A GPU that produced nothing did no work.
    let mut r = healthy_node(2);
    r.results.retain(|x| x.device == 0);
    let v = judge(&r, &ValidateArgs::default());
    assert!(has_reason(gpu(&v, 1), &["did no work"]));
}

#[test]
fn suite_is_valid_for_every_sku() {
    for s in &gpudb::database().unwrap().skus {
        let d = DeviceInfo {
            backend: Some(BackendKind::Cuda),
            name: s.name.clone(),
            compute_capability: Some(s.compute_capability.clone()),
            memory_bytes: Some((s.memory_gib * 0.95 * (1u64 << 30) as f64) as u64),
            ..DeviceInfo::default()
        };
        for quick in [true, false] {
            let ws = suite(&d, quick);
            for w in &ws {
                w.validate().unwrap();
                // Measured and shown without a share: the A10G's int8 rate is published
                // nowhere and is not guessed (data/gpus.toml).
                let unpublished = s.id == "a10g" && w.dtype() == DType::Int8;
                if let (Workload::Matmul(m), false) = (w, unpublished) {
                    assert!(
                        s.peak(m.dtype.name()).is_some(),
                        "{}: {} has no peak",
                        s.id,
                        m.dtype
                    );
                }
                // Inputs and outputs fit comfortably in the card's memory.
                assert!(
                    w.footprint() * 2 < d.memory_bytes.unwrap(),
                    "{}: {}",
                    s.id,
                    w.name()
                );
            }
            assert!(ws
                .iter()
                .any(|w| matches!(w, Workload::Matmul(m) if m.dtype == DType::F16)));
        }
    }
}

#[test]
fn stress_run_feeds_correctness_and_health() {
    use gpuvet::stress::{DeviceStress, Mismatch, StressReport, TimelinePoint};
    let w = suite(&h100_sxm(0), true)
        .into_iter()
        .find(|w| test_key(w) == "matmul.bf16")
        .unwrap();
    let dev = |device: usize, checksum: &str, mismatches: Vec<Mismatch>, hot: bool| DeviceStress {
        device,
        name: "NVIDIA H100 80GB HBM3".into(),
        uuid: None,
        iterations: 6000,
        checks: 600,
        checksum: checksum.into(),
        verified: true,
        mismatches,
        median_throughput: Some(780e12),
        median_power_w: None,
        timeline: vec![TimelinePoint {
            t_s: 1.0,
            throughput: 780e12,
            iterations: 10,
            telemetry: Some(if hot {
                telemetry(1500.0, 93.0, &["hw_slowdown"])
            } else {
                telemetry(1980.0, 70.0, &[])
            }),
        }],
        error: None,
    };
    let planted = Mismatch {
        iteration: 4242,
        check: 424,
        expected: "c0ffee".into(),
        got: "c0ffef".into(),
    };
    let s = StressReport {
        workload: w,
        duration_s: 600.0,
        interrupted: false,
        devices: vec![
            dev(0, "c0ffee", vec![], false),
            dev(1, "c0ffee", vec![planted], false),
            dev(2, "badbad", vec![], false),
            dev(3, "c0ffee", vec![], true),
        ],
        consistent_across_devices: false,
        verdict: gpuvet::stress::StressVerdict::Fail,
        reasons: vec![],
    };
    let v = judge_with(
        &healthy_node(4),
        &ValidateArgs::default(),
        &JudgeInputs::from_stress(&s),
    );
    assert_eq!(
        gpu(&v, 0).verdict,
        Verdict::Pass,
        "{:#?}",
        gpu(&v, 0).reasons
    );
    assert!(has_reason(
        gpu(&v, 1),
        &["silent data corruption", "iteration 4242", "c0ffef"]
    ));
    assert!(
        has_reason(gpu(&v, 2), &["across GPUs", "badbad", "c0ffee"]),
        "{:#?}",
        gpu(&v, 2).reasons
    );
    assert_eq!(check(gpu(&v, 3), CheckKind::Health), Verdict::Fail);
    assert!(has_reason(gpu(&v, 3), &["hardware slowdown", "timeline"]));
}

/// The suite runs through the real runner (mock backend) and the verdict reads its report.
#[test]
fn suite_runs_through_the_runner_and_is_judged() {
    use gpuvet::backend::mock::MockBackend;
    use gpuvet::backend::Backend;
    use gpuvet::measure::MeasureConfig;
    use gpuvet::plan::{self, ImplSelect};

    let backends: Vec<Box<dyn Backend>> = vec![Box::new(MockBackend::new())];
    let workloads = suite(backends[0].device(), true);
    let plan = plan::build(&workloads, &backends, &ImplSelect::Default, false, true).unwrap();
    assert_eq!(
        plan.entries.len(),
        workloads.len(),
        "skipped: {:?}",
        plan.skipped
    );
    let measure = MeasureConfig {
        warmup_s: 0.0,
        min_samples: 3,
        max_samples: 5,
        max_time_s: 0.1,
        ..MeasureConfig::default()
    };
    let report = run_plan(&plan, &backends, "validate", measure);
    let v = judge(&report, &ValidateArgs::default());
    let g = gpu(&v, 0);
    assert_eq!(
        check(g, CheckKind::Correctness),
        Verdict::Pass,
        "{:#?}",
        g.reasons
    );
    for key in [
        "memory.copy",
        "matmul.f32",
        "matmul.bf16",
        "attention.prefill",
        "attention.decode",
    ] {
        assert!(
            g.metrics.contains_key(key),
            "{key} missing: {:?}",
            g.metrics.keys()
        );
    }
    assert_eq!(
        g.uuid.as_deref(),
        Some("GPU-00000000-0000-0000-0000-000000000000")
    );
    assert_ne!(v.exit_code, 2);
}

/// `gpuvet validate` end to end on the mock backend: the verdict JSON on stdout, each test
/// judged in its own unit.
#[test]
fn validate_command_writes_a_verdict() {
    let out = assert_cmd::Command::cargo_bin("gpuvet")
        .unwrap()
        .args([
            "validate",
            "--backend",
            "mock",
            "--allow-cpu",
            "--quiet",
            "--verdict",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = NodeVerdict::from_json(&String::from_utf8_lossy(&out.stdout), "stdout").unwrap();
    assert_eq!(v.exit_code, out.status.code().unwrap());
    let g = gpu(&v, 0);
    assert_eq!(check(g, CheckKind::Correctness), Verdict::Pass);
    assert_eq!(g.metrics["attention.prefill"].unit, "FLOP/s");
    assert_eq!(g.metrics["attention.decode"].unit, "B/s");
    assert_eq!(g.metrics["memory.copy"].unit, "B/s");
    assert_eq!(g.metrics["matmul.bf16"].unit, "FLOP/s");
}

/// A mismatch on a database figure marked unverified is a warning, not a failure: the entry
/// may be what is wrong.
#[test]
fn mismatch_on_an_unverified_figure_only_warns() {
    // The H100 PCIe is sold at 300-350 W; the database's 350 W is marked unverified.
    let mut r = report_of(vec![h100_pcie(0)], "h100-pcie", |_| 1.0);
    r.devices[0].details.state.power_limit_w = Some(300.0);
    judged_gpu(
        &r,
        0,
        CheckKind::Identity,
        Verdict::Warn,
        &["power limit 300 W", "unverified"],
    );
    // The same cap on the SXM part, whose 700 W is from the datasheet, fails.
    let mut r = healthy_node(1);
    r.devices[0].details.state.power_limit_w = Some(600.0);
    assert_eq!(judge(&r, &ValidateArgs::default()).verdict, Verdict::Fail);
}

/// A healthy GPU that could not run part of the suite (no cuBLASLt: no matmul, no attention)
/// is not a PASS: its absolute check WARNs, naming what was not measured and why, once per
/// reason; the GPU beside it that ran everything still passes.
#[test]
fn workloads_a_gpu_could_not_run_are_a_warning_not_a_silent_pass() {
    let mut r = healthy_node(2);
    let why = "cuBLASLt not found: install `pip install nvidia-cublas`";
    r.not_run = ["matmul.bf16.8192x8192x8192.nk", "attention.bf16.b1"]
        .map(|w| NotRun {
            workload: w.into(),
            device: 1.into(),
            why: why.into(),
        })
        .to_vec();
    let v = judge(&r, &ValidateArgs::default());
    assert_eq!(gpu(&v, 0).verdict, Verdict::Pass);
    judged(
        gpu(&v, 1),
        CheckKind::Absolute,
        Verdict::Warn,
        &[
            "not measured, so not covered by this verdict: matmul.bf16.8192x8192x8192.nk, attention.bf16.b1",
            why,
        ],
    );
    assert_eq!(gpu(&v, 1).reasons.len(), 1, "{:#?}", gpu(&v, 1).reasons);
    assert_eq!(v.verdict, Verdict::Warn);
}

/// An all-reduce the node's GPUs could not run together (no NCCL) is the node's gap, not one
/// GPU's: the links check WARNs and names the set; no GPU's absolute check carries it.
#[test]
fn a_collective_no_set_could_run_is_a_links_warning_naming_the_set() {
    let mut r = healthy_node(2);
    let why = "NCCL not found: install `pip install nvidia-nccl-cu12`";
    r.not_run = vec![NotRun {
        workload: "collective.all_reduce.bf16.256MiB.n2".into(),
        device: gpuvet::plan::Placement::set([0, 1]).unwrap(),
        why: why.into(),
    }];
    let v = judge(&r, &ValidateArgs::default());
    for i in 0..2 {
        assert_eq!(
            gpu(&v, i).verdict,
            Verdict::Pass,
            "{:#?}",
            gpu(&v, i).reasons
        );
    }
    let links = v
        .node_checks
        .iter()
        .find(|c| c.check == CheckKind::Links)
        .expect("a links check");
    assert_eq!(links.verdict, Verdict::Warn);
    let warned: Vec<&str> = links
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Warn)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        warned,
        [format!(
            "not measured on GPUs 0,1, so not covered by this verdict: \
             collective.all_reduce.bf16.256MiB.n2 ({why})"
        )]
    );
    assert_eq!(v.verdict, Verdict::Warn);
}

/// A straggler by its median whose own 95% interval reaches back within the threshold is a
/// WARN that says the shortfall rests on noise, not a FAIL; the same shortfall measured
/// tightly still fails. The same holds against an expectation.
#[test]
fn a_shortfall_inside_the_figures_own_noise_warns_instead_of_failing() {
    let mut r = report_of((0..8).map(h100_sxm).collect(), "h100-sxm", |i| {
        if i == 5 {
            0.85
        } else {
            1.0
        }
    });
    let noisy = |r: &mut Report, key: &str| {
        let x = r
            .results
            .iter_mut()
            .find(|x| x.device.lead() == 5 && test_key(&x.workload) == key)
            .unwrap();
        let t = x.stats.as_ref().unwrap().median_s;
        let spread: Vec<f64> = [0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3].map(|f| f * t).to_vec();
        x.stats = Some(Summary::from_samples(&spread, 1));
        assert_eq!(x.stats.as_ref().unwrap().median_s, t);
    };
    noisy(&mut r, "matmul.bf16");
    let v = judge(&r, &ValidateArgs::default());
    let g = gpu(&v, 5);
    let peers = findings_of(g, CheckKind::Peers);
    let bf16 = peers
        .findings
        .iter()
        .find(|f| f.message.starts_with("matmul.bf16"))
        .unwrap();
    assert_eq!(bf16.verdict, Verdict::Warn, "{}", bf16.message);
    assert!(
        bf16.message
            .contains("a straggler; not failed: the fast end of its 95% interval")
            && bf16.message.contains("rests on noise"),
        "{}",
        bf16.message
    );
    // The tightly measured tests of the same GPU still fail it.
    assert_eq!(peers.verdict, Verdict::Fail);
    assert!(peers
        .findings
        .iter()
        .any(|f| f.verdict == Verdict::Fail && f.message.contains("straggler")));
    // Against the datasheet (a published expectation): a card at 60% of it, measured that
    // noisily, is not failed on absolute either; measured tightly it is.
    let mut slow = report_of(vec![h100_sxm(0)], "h100-sxm", |_| 0.6);
    let absolute = |r: &Report| {
        let v = judge(r, &ValidateArgs::default());
        findings_of(gpu(&v, 0), CheckKind::Absolute)
            .findings
            .iter()
            .find(|f| f.message.starts_with("matmul.bf16"))
            .map(|f| f.verdict)
            .unwrap()
    };
    assert_eq!(absolute(&slow), Verdict::Fail);
    let x = slow
        .results
        .iter_mut()
        .find(|x| test_key(&x.workload) == "matmul.bf16")
        .unwrap();
    let t = x.stats.as_ref().unwrap().median_s;
    let spread: Vec<f64> = [0.2, 0.3, 0.5, 1.0, 1.5, 1.7, 1.8].map(|f| f * t).to_vec();
    x.stats = Some(Summary::from_samples(&spread, 1));
    assert_eq!(absolute(&slow), Verdict::Warn);
}

/// A known GPU whose every figure failed its verification has nothing the absolute check can
/// judge, and says that, not that the device is unknown.
#[test]
fn an_absolute_check_without_figures_says_why() {
    let mut r = report_of(vec![h100_sxm(0)], "h100-sxm", |_| 1.0);
    for x in r.results.iter_mut() {
        x.verification.passed = false;
    }
    let v = judge(&r, &ValidateArgs::default());
    let abs = findings_of(gpu(&v, 0), CheckKind::Absolute);
    let why = abs.skipped.as_deref().unwrap_or_default();
    assert!(why.starts_with("no verified figure to judge"), "{abs:?}");
    assert_eq!(v.verdict, Verdict::Fail, "the failed verifications fail it");
}
