//! Regression tracking: verdict statistics, baselines, renderers and CI exports.

mod common;

use common::assert_any_contains;
use gpuvet::cli::CompareArgs;
use gpuvet::commands;
use gpuvet::compare::{
    self, classify, compare_to_baseline, export, load_baseline, ratio_of_medians_ci, render_json,
    render_markdown, render_table, save_baseline, widening, CompareOptions, FailOn, Verdict,
};
use gpuvet::export::Exporter;
use gpuvet::report::{Report, ResultRecord};
use gpuvet::Error;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn old_report() -> Report {
    Report::load(&fixture("compare_old.json")).expect("old fixture loads")
}

fn new_report() -> Report {
    Report::load(&fixture("compare_new.json")).expect("new fixture loads")
}

/// Standard normal by Box–Muller.
fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let u1: f64 = rng.random_range(1e-12..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Timing-like samples: log-normal noise of relative spread `cv` around `base`, with 3% of the
/// samples hit by a 10–30% delay (a preemption), as real GPU timings are right-skewed.
fn timings(rng: &mut Xoshiro256PlusPlus, base: f64, cv: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let mut t = base * (cv * normal(rng)).exp();
            if rng.random::<f64>() < 0.03 {
                t *= 1.0 + rng.random_range(0.1..0.3);
            }
            t
        })
        .collect()
}

/// Samples per run that make the 95% interval of the ratio about ±0.6% wide at this noise
/// (the median's standard error is ≈1.25·cv/√n; the ratio's is √2 times that).
fn samples_for(cv: f64) -> usize {
    let n = 2.0 * (1.96 * 1.2533 * cv / 0.006).powi(2);
    (n.ceil() as usize).max(30)
}

#[test]
fn known_shifts_get_the_right_verdicts() {
    let opts = CompareOptions {
        resamples: 1000,
        ..CompareOptions::default()
    };
    for (ci, &cv) in [0.005, 0.01, 0.02, 0.05].iter().enumerate() {
        let n = samples_for(cv);
        for (si, &shift) in [0.0, 0.01, -0.01, 0.05, -0.05, 0.20, -0.20]
            .iter()
            .enumerate()
        {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(1000 + (ci * 10 + si) as u64);
            let old = timings(&mut rng, 1e-3, cv, n);
            // A negative shift is a speed-up: throughput up by |shift|.
            let factor = if shift >= 0.0 {
                1.0 + shift
            } else {
                1.0 / (1.0 - shift)
            };
            let new = timings(&mut rng, 1e-3 * factor, cv, n);
            let r = ratio_of_medians_ci(
                &old,
                &new,
                widening(&old, &new),
                opts.confidence,
                opts.resamples,
                7,
            )
            .unwrap();
            let v = classify(&r, opts.threshold_pct);
            let ok = if shift == 0.0 {
                v == Verdict::Same
            } else if shift.abs() < 0.02 {
                // Below the 2% threshold: never a regression or a win, however precise.
                matches!(v, Verdict::Same | Verdict::Ambiguous)
            } else if shift > 0.0 {
                v == Verdict::Slower
            } else {
                v == Verdict::Faster
            };
            assert!(
                ok,
                "noise {cv}, shift {shift}, n {n}: got {v} with ratio {:.4} [{:.4}, {:.4}]",
                r.ratio, r.low, r.high
            );
        }
    }
}

#[test]
fn too_few_samples_for_the_noise_is_ambiguous_not_a_verdict() {
    // 5% noise and 8 samples cannot resolve a 3% change against a 2% threshold.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let old = timings(&mut rng, 1e-3, 0.05, 8);
    let new = timings(&mut rng, 1.03e-3, 0.05, 8);
    let r = ratio_of_medians_ci(&old, &new, widening(&old, &new), 0.95, 1000, 1).unwrap();
    assert_eq!(classify(&r, 2.0), Verdict::Ambiguous, "{r:?}");
}

/// Fraction of 1000 same-distribution pairs (30 samples each, noise 0.5–5%) called slower
/// and faster at `threshold_pct`.
fn false_call_rates(threshold_pct: f64) -> (f64, f64) {
    let pairs = 1000;
    let (mut slower, mut faster) = (0, 0);
    for i in 0..pairs {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xfa15e ^ i);
        let cv = rng.random_range(0.005..0.05);
        let old = timings(&mut rng, 2e-4, cv, 30);
        let new = timings(&mut rng, 2e-4, cv, 30);
        let r = ratio_of_medians_ci(&old, &new, widening(&old, &new), 0.95, 400, i).unwrap();
        match classify(&r, threshold_pct) {
            Verdict::Slower => slower += 1,
            Verdict::Faster => faster += 1,
            _ => {}
        }
    }
    let rates = (slower as f64 / pairs as f64, faster as f64 / pairs as f64);
    eprintln!(
        "threshold {threshold_pct}%: false slower {}, false faster {}",
        rates.0, rates.1
    );
    rates
}

#[test]
fn false_slower_rate_is_at_most_one_percent() {
    let (slower, faster) = false_call_rates(2.0);
    assert!(slower <= 0.01, "false slower rate {slower}");
    assert!(faster <= 0.01, "false faster rate {faster}");
}

#[test]
fn interval_alone_is_roughly_calibrated() {
    // With no noise band, a 95% two-sided interval should exclude 1 on the slow side about
    // 2.5% of the time: far more means the interval is too narrow to trust.
    let (slower, faster) = false_call_rates(0.0);
    assert!(slower <= 0.05, "slower without a band {slower}");
    assert!(faster <= 0.05, "faster without a band {faster}");
}

/// The compared result whose id starts with `id_prefix` (the test fails when there is none).
fn result_of<'a>(cmp: &'a compare::Comparison, id_prefix: &str) -> &'a compare::ResultComparison {
    cmp.results
        .iter()
        .find(|r| r.id.starts_with(id_prefix))
        .unwrap_or_else(|| panic!("no result {id_prefix}"))
}

fn verdict_of(cmp: &compare::Comparison, id_prefix: &str) -> Verdict {
    result_of(cmp, id_prefix).verdict
}

#[test]
fn fixture_pair_gets_expected_verdicts() {
    let cmp = compare::compare(&old_report(), &new_report(), &CompareOptions::default());
    assert_eq!(verdict_of(&cmp, "matmul.bf16"), Verdict::Same);
    assert_eq!(verdict_of(&cmp, "matmul.f16"), Verdict::Slower);
    assert_eq!(verdict_of(&cmp, "matmul.fp8_e4m3"), Verdict::Unverified);
    assert_eq!(verdict_of(&cmp, "matmul.f32"), Verdict::Slower);
    assert_eq!(verdict_of(&cmp, "memory.copy"), Verdict::Ambiguous);
    assert_eq!(verdict_of(&cmp, "memory.write"), Verdict::Faster);
    assert_eq!(verdict_of(&cmp, "memory.read"), Verdict::Missing);
    assert_eq!(verdict_of(&cmp, "memory.triad"), Verdict::New);

    // A result that verified before and fails now is a regression and carries no number.
    let fp8 = result_of(&cmp, "matmul.fp8");
    assert!(fp8.regression && fp8.ratio.is_none());
    assert!(fp8
        .detail
        .as_deref()
        .unwrap()
        .contains("NEW: verification failed"));

    let c = cmp.counts();
    assert_eq!((c.slower, c.same, c.faster, c.ambiguous), (2, 1, 1, 1));
    assert_eq!(cmp.exit_code(FailOn::Regression), 1);

    // Environment differences come from the driver, NVRTC, kernel hash and git sha.
    let fields: Vec<&str> = cmp.environment.iter().map(|d| d.field.as_str()).collect();
    for want in [
        "gpuvet git sha",
        "device 0 driver",
        "device 0 nvrtc_version",
        "kernel hash",
    ] {
        assert!(fields.contains(&want), "{want} missing from {fields:?}");
    }
    assert!(!fields.contains(&"device 0 name"));
}

#[test]
fn clock_normalisation_separates_throttling_from_regression() {
    let opts = CompareOptions {
        normalize_clock: true,
        ..CompareOptions::default()
    };
    let cmp = compare::compare(&old_report(), &new_report(), &opts);
    // f32 ran 1980 → 1500 MHz and took 1980/1500 longer: the same number of cycles.
    let f32 = result_of(&cmp, "matmul.f32");
    assert_eq!(f32.verdict, Verdict::Same);
    assert_eq!(f32.quantity, "cycles");
    // No clock recorded for f16: compared by time, and it says so.
    let f16 = result_of(&cmp, "matmul.f16");
    assert_eq!(f16.quantity, "time");
    assert!(f16
        .detail
        .as_deref()
        .unwrap()
        .contains("no effective clock"));
    assert!(cmp.notes.iter().any(|n| n.contains("--normalize-clock")));
    // A bandwidth-bound result is compared by time whatever its clocks: its speed follows the
    // memory clock. With its SM clock cut from 1980 to 1500 MHz at the same time, cycles would
    // call it 24% faster.
    let (mut old, mut new) = (old_report(), new_report());
    for (r, mhz) in [(&mut old, 1980.0), (&mut new, 1500.0)] {
        for x in r
            .results
            .iter_mut()
            .filter(|x| x.id.starts_with("memory.copy"))
        {
            x.effective_clock_mhz = Some(mhz);
        }
    }
    let cmp = compare::compare(&old, &new, &opts);
    let copy = result_of(&cmp, "memory.copy");
    assert_eq!(copy.quantity, "time");
    assert_ne!(copy.verdict, Verdict::Faster);
    assert!(copy.detail.as_deref().unwrap().contains("bandwidth-bound"));
}

#[test]
fn exit_codes_follow_fail_on() {
    // Only the results that cannot regress: same, faster, ambiguous.
    let mut old = old_report();
    let mut new = new_report();
    let keep = |r: &gpuvet::report::ResultRecord| {
        ["matmul.bf16", "memory.write", "memory.copy"]
            .iter()
            .any(|p| r.id.starts_with(p))
    };
    old.results.retain(keep);
    new.results.retain(keep);
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    assert_eq!(cmp.exit_code(FailOn::Regression), 0);
    assert_eq!(cmp.exit_code(FailOn::Ambiguous), 1);
    assert_eq!(cmp.failing(FailOn::Ambiguous).len(), 1);
}

/// Two runs with no result in common compared nothing: exit 2 and say so, never "no
/// regression" (a CI gate against the wrong baseline would otherwise pass every time).
#[test]
fn runs_with_no_result_in_common_exit_2() {
    let mut old = old_report();
    let mut new = new_report();
    old.results.retain(|r| r.id.starts_with("matmul"));
    new.results.retain(|r| r.id.starts_with("memory"));
    for (o, n) in [
        (&old, &new),
        (
            &old,
            &Report {
                results: vec![],
                ..new.clone()
            },
        ),
    ] {
        let cmp = compare::compare(o, n, &CompareOptions::default());
        assert_eq!(cmp.compared(), 0);
        for fail_on in [FailOn::Regression, FailOn::Ambiguous, FailOn::Missing] {
            assert_eq!(cmp.exit_code(fail_on), 2);
        }
        let xml = compare::junit::JunitCompare(FailOn::Regression.into())
            .render(&cmp)
            .unwrap();
        assert!(xml.contains("nothing-compared"), "{xml}");
        let table = compare::render_table(&cmp, FailOn::Regression, false);
        assert!(
            table.contains("nothing compared (exit 2): OLD and NEW share no result"),
            "{table}"
        );
    }
    // One result in common is enough to be a comparison.
    new.results.extend(old.results.iter().take(1).cloned());
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    assert_eq!(cmp.compared(), 1);
    assert_ne!(cmp.exit_code(FailOn::Regression), 2);
}

/// `--fail-on missing`: a result of OLD that NEW lacks fails the comparison (exit 1, the
/// summary line, a JUnit failure); without it the result is listed and passes. A result of NEW
/// alone never fails.
#[test]
fn missing_results_fail_only_under_fail_on_missing() {
    let mut old = old_report();
    // Quiet results only (the 5%-noise copy stays ambiguous even against itself).
    old.results.retain(|r| !r.id.starts_with("memory.copy"));
    assert!(old.results.len() >= 3);
    let mut new = old.clone();
    let gone = new.results.remove(0).id;
    let only_new = old.results.pop().unwrap().id;
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    let verdict_of = |id: &str| cmp.results.iter().find(|r| r.id == id).unwrap().verdict;
    assert_eq!(verdict_of(&gone), Verdict::Missing);
    assert_eq!(verdict_of(&only_new), Verdict::New);

    assert_eq!(cmp.exit_code(FailOn::Regression), 0);
    assert_eq!(cmp.exit_code(FailOn::Ambiguous), 0);
    assert_eq!(cmp.exit_code(FailOn::Missing), 1);
    let failing: Vec<&str> = cmp
        .failing(FailOn::Missing)
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(failing, [gone.as_str()]);

    let gate: compare::Gate = [FailOn::Ambiguous, FailOn::Missing].into_iter().collect();
    assert_eq!(cmp.exit_code(gate), 1);
    assert_eq!(gate.names(), "ambiguous,missing");
    assert_eq!(
        compare::Gate::from(FailOn::Regression).names(),
        "regression"
    );
    let table = render_table(&cmp, gate, false);
    assert!(
        table.contains("1 regression, ambiguous or missing result:"),
        "{table}"
    );
    assert!(
        render_table(&cmp, FailOn::Regression, false).contains("no regression:"),
        "missing results alone pass by default"
    );
    assert!(render_markdown(&cmp, FailOn::Missing).contains("| **missing** |"));
    assert!(!render_markdown(&cmp, FailOn::Regression).contains("**missing**"));

    let xml = compare::junit::JunitCompare(FailOn::Missing.into())
        .render(&cmp)
        .unwrap();
    assert!(
        xml.contains(r#"<property name="fail_on" value="missing""#),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains(r#"type="missing""#), "{xml}");
    let xml = compare::junit::JunitCompare(FailOn::Regression.into())
        .render(&cmp)
        .unwrap();
    assert_eq!(xml.matches("<failure").count(), 0, "{xml}");
}

#[test]
fn same_report_against_itself_never_moves() {
    let r = old_report();
    let cmp = compare::compare(&r, &r, &CompareOptions::default());
    assert!(cmp.environment.is_empty());
    // The same report from one rank of a 16-process Slurm run: the processes differ.
    let mut ranked = r.clone();
    ranked.world = Some(gpuvet::world::WorldRecord {
        rank: 0,
        size: 16,
        local_rank: 0,
        local_size: 8,
        launcher: gpuvet::world::Launcher::Slurm,
        rendezvous: None,
        id_sha256: None,
        hosts: Vec::new(),
    });
    let env = compare::compare(&r, &ranked, &CompareOptions::default()).environment;
    assert_eq!(env.len(), 1, "{env:?}");
    assert_eq!(
        (
            env[0].field.as_str(),
            env[0].old.as_str(),
            env[0].new.as_str()
        ),
        ("processes", "one", "rank 0 of 16 (8 per node, slurm)")
    );
    // Each side's samples are resampled independently, so the 5%-noise copy result stays
    // ambiguous even against itself; everything quiet is `same`, nothing moves.
    for x in &cmp.results {
        let want = if x.id.starts_with("memory.copy") {
            Verdict::Ambiguous
        } else {
            Verdict::Same
        };
        assert_eq!(x.verdict, want, "{}", x.id);
        assert_eq!(x.ratio.unwrap().ratio, 1.0);
    }
    assert_eq!(cmp.exit_code(FailOn::Regression), 0);
}

#[test]
fn a_changed_compute_type_is_named_in_the_row() {
    let old = old_report();
    let mut new = old_report();
    let id = new.results[0].id.clone();
    new.results[0].compute_dtype = "f32".into();
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    let row = cmp.results.iter().find(|x| x.id == id).unwrap();
    let detail = row.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "compute type {} → f32",
            old.results[0].compute_dtype
        )),
        "{detail}"
    );
    // Unchanged compute types say nothing.
    let same = compare::compare(&old, &old, &CompareOptions::default());
    assert!(same.results.iter().all(|x| !x
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("compute type")));
}

#[test]
fn results_match_across_device_indices_by_name() {
    // The same GPU model enumerated at another index is still the same result.
    let old = old_report();
    let mut new = old_report();
    let mut dev = new.devices[0].clone();
    new.devices[0].name = "Some Other GPU".into();
    dev.index = 1;
    new.devices.push(dev);
    for r in &mut new.results {
        r.device = 1.into();
    }
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    assert_eq!(cmp.results.len(), old.results.len());
    assert!(
        cmp.results
            .iter()
            .all(|x| x.ratio.map(|r| r.ratio) == Some(1.0)),
        "{:?}",
        cmp.results
    );
}

#[test]
fn markdown_snapshot() {
    let cmp = compare::compare(&old_report(), &new_report(), &CompareOptions::default())
        .with_labels("old.json", "new.json");
    insta::assert_snapshot!(
        "compare_markdown",
        render_markdown(&cmp, FailOn::Regression)
    );
}

#[test]
fn markdown_snapshot_clock_normalised_across_gpus() {
    // NEW ran on another GPU model: said once in the header, and cycles where clocks are known.
    let mut new = new_report();
    new.devices[0].name = "NVIDIA H200".into();
    let opts = CompareOptions {
        normalize_clock: true,
        threshold_pct: 3.0,
        ..CompareOptions::default()
    };
    let cmp = compare::compare(&old_report(), &new, &opts).with_labels("old.json", "new.json");
    insta::assert_snapshot!(
        "compare_markdown_normalized",
        render_markdown(&cmp, FailOn::Ambiguous)
    );
}

#[test]
fn table_colours_only_when_asked() {
    let cmp = compare::compare(&old_report(), &new_report(), &CompareOptions::default());
    let plain = render_table(&cmp, FailOn::Regression, false);
    let coloured = render_table(&cmp, FailOn::Regression, true);
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains('\x1b'));
    assert!(plain.contains("Environment differs"));
    // Environment first, results after it.
    assert!(plain.find("Environment differs").unwrap() < plain.find("Verdict").unwrap());
    assert!(plain.contains("3 regressions: 2 slower"), "{plain}");
}

#[test]
fn json_output_round_trips() {
    let cmp = compare::compare(&old_report(), &new_report(), &CompareOptions::default());
    let text = render_json(&cmp);
    let back: compare::Comparison = serde_json::from_str(&text).unwrap();
    assert_eq!(back.environment, cmp.environment);
    assert_eq!(back.results.len(), cmp.results.len());
    for (a, b) in back.results.iter().zip(&cmp.results) {
        assert_eq!(
            (&a.id, a.verdict, a.regression),
            (&b.id, b.verdict, b.regression)
        );
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * y.abs();
        match (a.ratio, b.ratio) {
            (Some(x), Some(y)) => assert!(close(x.low, y.low) && close(x.high, y.high)),
            (x, y) => assert_eq!(x, y),
        }
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["results"][1]["verdict"], "slower");
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn baseline_round_trip_and_compare() {
    let dir = temp_dir();
    let report = old_report();
    let path = save_baseline(&report, "main", dir.path()).unwrap();
    assert_eq!(path, dir.path().join("main.json"));
    assert_eq!(load_baseline("main", dir.path()).unwrap(), report);
    // Saving again replaces a readable baseline.
    save_baseline(&new_report(), "main", dir.path()).unwrap();
    assert_eq!(load_baseline("main", dir.path()).unwrap(), new_report());
    // No temporary files left behind.
    let names = compare::list_baselines(dir.path()).unwrap();
    assert_eq!(names, vec!["main".to_string()]);
    // (the directory's lock file stays, as a lock must)
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, [compare::baseline::DIR_LOCK, "main.json"]);

    save_baseline(&report, "v1.2-old_run", dir.path()).unwrap();
    let cmp = compare_to_baseline(
        &new_report(),
        "v1.2-old_run",
        dir.path(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(cmp.old.label, "baseline v1.2-old_run");
    assert_eq!(cmp.exit_code(FailOn::Regression), 1);
}

#[test]
fn baseline_names_are_validated() {
    let dir = temp_dir();
    for bad in ["", "../escape", "a/b", "a\\b", ".hidden", "sp ace"] {
        let err = save_baseline(&old_report(), bad, dir.path()).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad}: {err}");
    }
    let err = load_baseline("absent", dir.path()).unwrap_err();
    assert!(err.to_string().contains("no baseline `absent`"), "{err}");
}

#[test]
fn default_baseline_dir_honours_env() {
    std::env::set_var("GPUVET_BASELINE_DIR", "/tmp/gpuvet-ci-baselines");
    assert_eq!(
        compare::default_baseline_dir(),
        PathBuf::from("/tmp/gpuvet-ci-baselines")
    );
    std::env::remove_var("GPUVET_BASELINE_DIR");
    assert_eq!(
        compare::default_baseline_dir(),
        PathBuf::from(".gpuvet/baselines")
    );
}

/// Figures no run writes (a negative, zero, endless or infinite time, an absurd clock, a
/// negative rate) make the file corrupt: compare once called such a result unverified and
/// passed, and report drew a median of -1 s.
#[test]
fn impossible_figures_make_a_report_corrupt() {
    let dir = temp_dir();
    let full: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("compare_old.json")).unwrap())
            .unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 9] = [
        ("negative-peak-share", |r| {
            r["peak_fraction"] = (-5.0).into()
        }),
        ("negative-error", |r| {
            r["verification"]["max_rel_error"] = (-1.0).into()
        }),
        ("negative-tolerance", |r| {
            r["verification"]["tolerance"] = (-1.0).into()
        }),
        ("negative-time", |r| {
            r["stats"]["times_s"][0] = (-1e-3).into()
        }),
        ("zero-median", |r| r["stats"]["median_s"] = 0.0.into()),
        ("endless-time", |r| r["stats"]["times_s"][1] = 1e308.into()),
        ("absurd-clock", |r| r["effective_clock_mhz"] = 1e300.into()),
        ("negative-rate", |r| {
            r["throughput"]["value"] = (-5.0).into()
        }),
        // The median shown beside a change computed from other samples.
        ("median-not-its-samples", |r| {
            let m = r["stats"]["median_s"].as_f64().unwrap();
            r["stats"]["median_s"] = (m * 2.0).into()
        }),
    ];
    for (name, edit) in edits {
        let mut doc = full.clone();
        let r = doc["results"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| !r["stats"].is_null() && !r["throughput"].is_null())
            .unwrap();
        edit(r);
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, doc.to_string()).unwrap();
        let err = Report::load(&path).unwrap_err();
        assert!(
            matches!(err, Error::CorruptFile { .. }) && err.to_string().contains("result "),
            "{name}: {err}"
        );
    }
    // A result twice on one device: compare would pair whichever came first.
    let mut doc = full.clone();
    let results = doc["results"].as_array_mut().unwrap();
    let mut twin = results[0].clone();
    twin["stats"]["median_s"] = (twin["stats"]["median_s"].as_f64().unwrap() * 3.0).into();
    results.push(twin);
    let path = dir.path().join("twice.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let err = Report::load(&path).unwrap_err().to_string();
    assert!(err.contains("appears twice"), "{err}");
    // The fixture itself is fine.
    std::fs::write(dir.path().join("ok.json"), full.to_string()).unwrap();
    Report::load(&dir.path().join("ok.json")).unwrap();
}

#[test]
fn malformed_or_truncated_files_are_corrupt_file_errors() {
    let dir = temp_dir();
    let full = std::fs::read_to_string(fixture("compare_old.json")).unwrap();
    let cases = [
        ("truncated", full[..full.len() / 2].to_string()),
        ("garbage", "this is not json".to_string()),
        ("empty", String::new()),
        (
            "other-schema",
            full.replacen("\"schema_version\": 1", "\"schema_version\": 9", 1),
        ),
        ("not-a-report", "{\"schema_version\": 1}".to_string()),
        (
            "a-verdict",
            "{\"schema_version\": 1, \"kind\": \"gpuvet-verdict\"}".to_string(),
        ),
    ];
    for (name, text) in &cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        let err = Report::load(&path).unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "{name}: {err}");
        if *name == "a-verdict" {
            assert!(
                err.to_string()
                    .contains("a `gpuvet-verdict` file, not a measurement report"),
                "{err}"
            );
        }
        let err = load_baseline(name, dir.path()).unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "{name}: {err}");
        // The runner's `--baseline NAME` path reports the same error.
        let err =
            compare_to_baseline(&old_report(), name, dir.path(), &Default::default()).unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "{name}: {err}");
    }
}

/// A path that never ends (a device, a pipe) is read up to a bound, then refused: a report
/// named `/dev/zero` once read until the kernel killed gpuvet.
#[test]
fn a_file_without_end_is_refused_at_a_bound() {
    let err = Report::load(Path::new("/dev/zero")).unwrap_err();
    assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
    assert!(
        err.to_string().contains("the most read from such a file"),
        "{err}"
    );
}

#[test]
fn corrupt_existing_baseline_is_never_overwritten() {
    let dir = temp_dir();
    let path = dir.path().join("main.json");
    let full = std::fs::read_to_string(fixture("compare_old.json")).unwrap();
    let truncated = &full[..full.len() / 3];
    std::fs::write(&path, truncated).unwrap();
    let err = save_baseline(&new_report(), "main", dir.path()).unwrap_err();
    assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), truncated);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: CompareArgs,
}

fn parse(args: &[&str]) -> CompareArgs {
    use clap::Parser;
    Cli::try_parse_from(std::iter::once("compare").chain(args.iter().copied()))
        .expect("arguments parse")
        .args
}

#[test]
fn cli_args_have_the_documented_defaults() {
    let a = parse(&["old.json", "new.json"]);
    assert_eq!(a.threshold, 2.0);
    assert_eq!(a.fail_on, vec![FailOn::Regression]);
    assert!(!a.normalize_clock);
    assert_eq!(a.seed, compare::DEFAULT_SEED);
    let a = parse(&[
        "o",
        "n",
        "--threshold",
        "5%",
        "--fail-on",
        "ambiguous",
        "--normalize-clock",
        "--seed",
        "9",
        "--json",
        "-",
    ]);
    assert_eq!(
        (a.threshold, a.fail_on, a.normalize_clock, a.seed),
        (5.0, vec![FailOn::Ambiguous], true, 9)
    );
    assert_eq!(a.json.as_deref(), Some("-"));
    let a = parse(&["o", "n", "--fail-on", "ambiguous,missing"]);
    assert_eq!(a.fail_on, vec![FailOn::Ambiguous, FailOn::Missing]);
    let request = compare::CompareRequest::from(&a);
    assert_eq!(
        request.fail_on,
        compare::Gate {
            ambiguous: true,
            missing: true
        }
    );
    use clap::Parser;
    assert!(Cli::try_parse_from(["compare", "o", "n", "--fail-on", "new"]).is_err());
    assert!(Cli::try_parse_from(["compare", "o", "n", "--threshold", "-1"]).is_err());
    assert!(Cli::try_parse_from(["compare", "o"]).is_err());
}

#[test]
fn run_writes_outputs_and_returns_the_exit_code() {
    let dir = temp_dir();
    let md = dir.path().join("cmp.md");
    let js = dir.path().join("cmp.json");
    let old = fixture("compare_old.json");
    let new = fixture("compare_new.json");
    let args = parse(&[
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--json",
        js.to_str().unwrap(),
    ]);
    assert_eq!(commands::compare::run(&args, false).unwrap(), 1);
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("## gpuvet comparison"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 8);

    let same = parse(&[old.to_str().unwrap(), old.to_str().unwrap()]);
    assert_eq!(commands::compare::run(&same, false).unwrap(), 0);

    // A truncated NEW is a CorruptFile error (exit 2 at the CLI), not a verdict.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"tool\": {").unwrap();
    let args = parse(&[old.to_str().unwrap(), bad.to_str().unwrap()]);
    let err = commands::compare::run(&args, false).unwrap_err();
    assert!(
        matches!(err.downcast_ref::<Error>(), Some(Error::CorruptFile { .. })),
        "{err}"
    );
}

/// Exports the NEW fixture as `format` to a fresh file named `file` and reads it back.
fn exported(format: &str, file: &str) -> serde_json::Value {
    let dir = temp_dir();
    let path = dir.path().join(file);
    export(&new_report(), &format!("{format}:{}", path.display())).unwrap();
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn github_export_has_the_custom_bigger_is_better_shape() {
    let v = exported("github", "gab.json");
    let arr = v.as_array().expect("an array");
    let report = new_report();
    let exportable: Vec<_> = report.results.iter().filter(|r| r.is_valid()).collect();
    assert_eq!(arr.len(), exportable.len());
    for (e, r) in arr.iter().zip(&exportable) {
        assert_eq!(e["name"], r.id.as_str());
        let tp = r.throughput.as_ref().unwrap();
        let (scale, unit) = if tp.unit == "B/s" {
            (1e9, "GB/s")
        } else {
            (1e12, "TFLOP/s")
        };
        assert_eq!(e["unit"], unit);
        let value = e["value"].as_f64().unwrap();
        assert!((value - tp.value / scale).abs() <= 1e-9 * value.abs());
        assert!(e["range"].as_str().unwrap().starts_with("± "));
        assert!(e["extra"].is_string());
    }
    // The unverified fp8 result is left out.
    assert!(arr
        .iter()
        .all(|e| !e["name"].as_str().unwrap().contains("fp8")));
}

#[test]
fn bencher_export_has_the_metric_format_shape() {
    let v = exported("bencher", "bmf.json");
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.len(), 6);
    let report = new_report();
    for (name, measures) in obj {
        let r = report.results.iter().find(|r| &r.id == name).unwrap();
        // The throughput under the measure of its own unit, the median time under `latency`.
        let slug = match r.throughput.as_ref().unwrap().unit.as_str() {
            "FLOP/s" => "flops",
            "OP/s" => "ops",
            _ => "bandwidth",
        };
        assert_eq!(measures.as_object().unwrap().len(), 2, "{name}");
        for measure in [slug, "latency"] {
            let m = &measures[measure];
            let (lo, val, hi) = (
                m["lower_value"].as_f64().unwrap(),
                m["value"].as_f64().unwrap(),
                m["upper_value"].as_f64().unwrap(),
            );
            assert!(
                lo <= val && val <= hi && lo > 0.0,
                "{name} {measure}: {lo} {val} {hi}"
            );
        }
        let median_ns = r.stats.as_ref().unwrap().median_s * 1e9;
        assert!(
            (measures["latency"]["value"].as_f64().unwrap() - median_ns).abs() < 1e-6 * median_ns
        );
    }
    assert!(!obj.keys().any(|k| k.contains("fp8")));
}

#[test]
fn bad_export_specs_are_clear_errors() {
    for spec in ["github", "csv:out.json", "bencher:"] {
        let err = export(&old_report(), spec).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{spec}: {err}");
    }
}

#[test]
fn a_handful_of_samples_never_gives_a_verdict() {
    let mut old = old_report();
    let mut new = new_report();
    for r in old.results.iter_mut().chain(new.results.iter_mut()) {
        if let Some(s) = r.stats.as_mut() {
            s.times_s.truncate(compare::MIN_SAMPLES - 1);
        }
    }
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    let f16 = result_of(&cmp, "matmul.f16");
    // A 10% slowdown, but 4 samples say nothing about the noise.
    assert_eq!(f16.verdict, Verdict::Ambiguous);
    assert!(f16
        .detail
        .as_deref()
        .unwrap()
        .contains("needed for a verdict"));
    assert!(f16.ratio.unwrap().ratio > 1.05);
    // One sample a side: the table says there is no interval, not "[+x, +x]" as if certain.
    for r in old.results.iter_mut().chain(new.results.iter_mut()) {
        if let Some(s) = r.stats.as_mut() {
            s.times_s.truncate(1);
            s.median_s = s.times_s[0];
        }
    }
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    let table = compare::render_table(&cmp, compare::Gate::default(), false);
    assert!(table.contains("% (no interval)"), "{table}");
}

/// The global flags of the real CLI, as the lead's `Global` defines them: `compare` flattens
/// `CompareArgs` under it, and clap lets the subcommand's own `--json`, `--markdown` and
/// `--seed` (same names, same types) stand in for the global ones.
#[derive(clap::Parser, Debug)]
struct WithGlobals {
    #[arg(long, global = true, value_name = "PATH|-")]
    json: Option<String>,
    #[arg(long, global = true, value_name = "PATH|-")]
    markdown: Option<String>,
    #[arg(long, global = true, default_value_t = 20261128)]
    seed: u64,
    #[command(subcommand)]
    command: Sub,
}

// A test harness parsed once: the size of its variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
enum Sub {
    Compare(CompareArgs),
    Run,
}

#[test]
fn compare_args_fit_under_global_output_flags() {
    use clap::{CommandFactory, Parser};
    WithGlobals::command().debug_assert();
    for line in [
        "gpuvet compare o n --json j --seed 5 --markdown m",
        "gpuvet --json j --seed 5 --markdown m compare o n",
    ] {
        let argv: Vec<&str> = line.split_whitespace().collect();
        let cli = WithGlobals::try_parse_from(&argv).unwrap();
        let Sub::Compare(a) = cli.command else {
            panic!("not compare")
        };
        assert_eq!(
            (a.json.as_deref(), a.markdown.as_deref(), a.seed),
            (Some("j"), Some("m"), 5),
            "{argv:?}"
        );
    }
    let cli = WithGlobals::try_parse_from(["gpuvet", "compare", "o", "n"]).unwrap();
    let Sub::Compare(a) = cli.command else {
        panic!("not compare")
    };
    assert_eq!(a.seed, compare::DEFAULT_SEED);
}

#[test]
fn results_of_several_devices_of_one_model_stay_apart() {
    // Two GPUs of one model on both sides: each row names its GPU, and each JUnit case its own
    // class, so neither reads as a duplicate of the other.
    let mut two = old_report();
    let mut dev = two.devices[0].clone();
    dev.index = 1;
    two.devices.push(dev);
    let copies: Vec<_> = two
        .results
        .iter()
        .cloned()
        .map(|mut r| {
            r.device = 1.into();
            r
        })
        .collect();
    two.results.extend(copies);
    let cmp = compare::compare(&two, &two, &CompareOptions::default());
    assert_eq!(cmp.results.len(), two.results.len());
    let name = &two.devices[0].name;
    let (first, second) = cmp.results.split_at(cmp.results.len() / 2);
    assert!(
        first.iter().all(|r| r.device == format!("{name} [0]")),
        "{first:?}"
    );
    assert!(
        second.iter().all(|r| r.device == format!("{name} [1]")),
        "{second:?}"
    );
    let mut seen = std::collections::HashSet::new();
    for r in &cmp.results {
        assert!(
            seen.insert((r.id.clone(), r.device.clone())),
            "{} twice",
            r.id
        );
    }
    // Rows with one side only (missing, new) name their GPU as well.
    let mut fewer = two.clone();
    fewer.results.retain(|r| r.id != two.results[0].id);
    for (cmp, verdict) in [
        (
            compare::compare(&two, &fewer, &CompareOptions::default()),
            "missing",
        ),
        (
            compare::compare(&fewer, &two, &CompareOptions::default()),
            "new",
        ),
    ] {
        let lone: Vec<&str> = cmp
            .results
            .iter()
            .filter(|r| r.verdict.to_string() == verdict)
            .map(|r| r.device.as_str())
            .collect();
        assert_eq!(lone, [format!("{name} [0]"), format!("{name} [1]")]);
    }
}

#[test]
fn a_mixed_node_enumerated_in_another_order_compares_each_model_with_itself() {
    // OLD: model A at index 0, model B (twice as slow) at index 1. NEW: the same two cards,
    // enumerated the other way round. Pairing by index first compared A with B (a 2× "change");
    // a device of the same index and model, then the same model, comes first.
    let (old, new) = (mixed_node(true, 1.0), mixed_node(false, 1.0));
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    assert_eq!(cmp.results.len(), old.results.len());
    for x in &cmp.results {
        let ratio = x.ratio.as_ref().map(|r| r.ratio);
        assert!(
            ratio.is_some_and(|r| (r - 1.0).abs() < 1e-9),
            "{} on {}: {ratio:?}",
            x.id,
            x.device
        );
    }
}

/// A node of model A and model B (B twice as slow), enumerated A, B (`ab`) or B, A, with every
/// time scaled by `scale`: the timed results of the OLD fixture on both cards.
fn mixed_node(ab: bool, scale: f64) -> Report {
    let on = |r: &ResultRecord, device: usize, factor: f64| {
        let mut r = r.clone();
        r.device = device.into();
        let s = r.stats.as_mut().expect("fixture results have timings");
        let times: Vec<f64> = s.times_s.iter().map(|t| t * factor).collect();
        *s = gpuvet::stats::Summary::from_samples(&times, 1);
        r
    };
    let mut node = old_report();
    let timed: Vec<ResultRecord> = node
        .results
        .iter()
        .filter(|r| r.stats.as_ref().is_some_and(|s| !s.times_s.is_empty()))
        .cloned()
        .collect();
    assert!(!timed.is_empty());
    let mut a = node.devices[0].clone();
    a.name = "Model A".into();
    let mut b = a.clone();
    b.name = "Model B".into();
    let (ia, ib) = if ab { (0, 1) } else { (1, 0) };
    (a.index, b.index) = (ia, ib);
    node.devices = if ab { vec![a, b] } else { vec![b, a] };
    node.results = timed.iter().map(|r| on(r, ia, scale)).collect();
    node.results
        .extend(timed.iter().map(|r| on(r, ib, 2.0 * scale)));
    node
}

/// The runs of one side are matched to each other as the sides are: a mixed node enumerated
/// A, B in one run and B, A in the others compares each model with itself (matched by index
/// alone, B's times stood in A's rows: a 74% "regression").
#[test]
fn runs_of_a_mixed_node_enumerated_in_other_orders_keep_each_model_apart() {
    let old = [
        mixed_node(true, 1.0),
        mixed_node(false, 1.01),
        mixed_node(false, 0.99),
    ];
    let new = [
        mixed_node(false, 1.0),
        mixed_node(false, 1.005),
        mixed_node(true, 0.995),
    ];
    let cmp = compare::compare_runs(&refs(&old), &refs(&new), &CompareOptions::default());
    assert_eq!(cmp.results.len(), old[0].results.len());
    for x in &cmp.results {
        let ratio = x.ratio.as_ref().expect("a ratio").ratio;
        assert!(
            (ratio - 1.0).abs() < 0.02,
            "{} on {}: {ratio}",
            x.id,
            x.device
        );
        assert_eq!((x.old_runs, x.new_runs), (3, 3));
        assert_ne!(x.verdict, Verdict::Slower, "{x:?}");
        assert_ne!(x.verdict, Verdict::Faster, "{x:?}");
    }
}

/// Runs whose medians agree exactly (a deterministic timer) do not give an interval of no
/// width: the noise within the runs is its floor, and the row says so.
#[test]
fn runs_that_agree_exactly_keep_the_noise_within_them() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(17);
    let run = one_result_run(&mut rng, 1e-3, 0.02, 30);
    let mut later = run.clone();
    later.started_at = "2026-12-07T00:00:00Z".into();
    let new = {
        let mut r = one_result_run(&mut rng, 1.025e-3, 0.02, 30);
        r.started_at = "2026-12-08T00:00:00Z".into();
        r
    };
    let old = [run.clone(), later, run];
    let cmp = compare::compare_runs(&refs(&old), &[&new], &CompareOptions::default());
    let r = &cmp.results[0];
    let ci = r.ratio.expect("a ratio");
    assert!(ci.high - ci.low > 0.01, "{ci:?}");
    assert_eq!(r.verdict, Verdict::Ambiguous, "{r:?}");
    assert_detail(r, "agree more closely than each run's own samples allow");
}

// ---- several runs a side -------------------------------------------------------------------

/// One result of the OLD fixture (a matmul) as a run of its own: `samples` timings with
/// within-run noise `cv` around `centre`.
fn one_result_run(rng: &mut Xoshiro256PlusPlus, centre: f64, cv: f64, samples: usize) -> Report {
    let mut r = old_report();
    r.results.retain(|x| x.id.starts_with("matmul.bf16"));
    r.results.truncate(1);
    let times = timings(rng, centre, cv, samples);
    r.results[0].stats = Some(gpuvet::stats::Summary::from_samples(&times, 1));
    r
}

/// `k` runs whose centres scatter from run to run by `between` (log-normal sd) around
/// `centre`, each with within-run noise `cv`.
fn runs(rng: &mut Xoshiro256PlusPlus, k: usize, centre: f64, between: f64, cv: f64) -> Vec<Report> {
    (0..k)
        .map(|_| {
            let c = centre * (between * normal(rng)).exp();
            one_result_run(rng, c, cv, 30)
        })
        .collect()
}

/// Fails unless the row's detail says `what`.
fn assert_detail(r: &compare::ResultComparison, what: &str) {
    let detail = r.detail.as_deref().unwrap_or_default();
    assert!(detail.contains(what), "{what:?} not in {r:?}");
}

fn refs(runs: &[Report]) -> Vec<&Report> {
    runs.iter().collect()
}

/// How often `trials` comparisons of runs of one build (run-to-run spread `between`, quiet
/// runs within) are called slower at `threshold_pct`: with one run a side, and with `k` runs a
/// side.
fn false_slower_with_runs(
    trials: u64,
    k: usize,
    between: f64,
    threshold_pct: f64,
) -> (usize, usize) {
    let opts = CompareOptions {
        resamples: 400,
        threshold_pct,
        ..CompareOptions::default()
    };
    let (mut single, mut several) = (0, 0);
    for i in 0..trials {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x5eed_0000 ^ i ^ threshold_pct.to_bits());
        let old = runs(&mut rng, k, 1e-3, between, 0.003);
        let new = runs(&mut rng, k, 1e-3, between, 0.003);
        if compare::compare(&old[0], &new[0], &opts).results[0].verdict == Verdict::Slower {
            single += 1;
        }
        let cmp = compare::compare_runs(&refs(&old), &refs(&new), &opts);
        if cmp.results[0].verdict == Verdict::Slower {
            several += 1;
        }
    }
    (single, several)
}

/// The reason several runs exist: runs of one build that differ by 3% from run to run (quiet
/// within each run) are called `slower` by a one-run comparison a good share of the time, and
/// almost never by the interval over five runs a side (at most the 2.5% a 95% interval allows,
/// before the threshold band takes its share).
#[test]
fn run_to_run_spread_is_not_a_regression_over_several_runs() {
    let (single, several) = false_slower_with_runs(400, 5, 0.03, 2.0);
    eprintln!("false slower in 400: one run a side {single}, five runs a side {several}");
    assert!(
        single >= 80,
        "one run a side should be fooled: {single}/400"
    );
    assert!(
        several <= 10,
        "five runs a side: {several}/400 false slower"
    );
    // With the band removed the interval alone is near its nominal 2.5% a side.
    let (_, alone) = false_slower_with_runs(400, 5, 0.03, 0.0);
    eprintln!("band removed, five runs a side: {alone}/400 slower");
    assert!(
        (2..=22).contains(&alone),
        "interval alone: {alone}/400 slower"
    );
}

/// A real 10% regression stands out of a 1% run-to-run spread with five runs a side; one OLD
/// run against five NEW ones borrows NEW's spread and still finds it, and says so.
#[test]
fn a_regression_is_found_over_runs() {
    let opts = CompareOptions::default();
    let mut found = 0;
    for i in 0..200u64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xbad ^ i);
        let old = runs(&mut rng, 5, 1e-3, 0.01, 0.003);
        let new = runs(&mut rng, 5, 1.1e-3, 0.01, 0.003);
        let cmp = compare::compare_runs(&refs(&old), &refs(&new), &opts);
        let r = &cmp.results[0];
        assert_eq!((r.old_runs, r.new_runs, r.old_samples), (5, 5, 150));
        if r.verdict == Verdict::Slower {
            found += 1;
        }
    }
    assert!(found >= 190, "found {found}/200");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let old = runs(&mut rng, 1, 1e-3, 0.01, 0.003);
    let new = runs(&mut rng, 5, 1.1e-3, 0.01, 0.003);
    let cmp = compare::compare_runs(&refs(&old), &refs(&new), &opts);
    let r = &cmp.results[0];
    assert_eq!(r.verdict, Verdict::Slower, "{r:?}");
    assert_detail(r, "one OLD run: its spread between runs taken to be NEW's");
    // The row's medians are the geometric means of the runs' medians.
    let gm = (new
        .iter()
        .map(|n| n.results[0].stats.as_ref().unwrap().median_s.ln())
        .sum::<f64>()
        / 5.0)
        .exp();
    assert!((r.new_median_s.unwrap() / gm - 1.0).abs() < 1e-12);
    assert!(cmp.over_runs());
    let table = compare::render_table(&cmp, FailOn::Regression, false);
    assert!(table.contains("Student-t interval"), "{table}");
    assert!(table.contains("5 runs)"), "{table}");
}

/// A run that lacks a result, a run where it failed verification, and runs of one side that
/// differ among themselves are each said: in the row, the verdict, and the notes.
#[test]
fn what_differs_among_the_runs_of_a_side_is_said() {
    let opts = CompareOptions::default();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let old = runs(&mut rng, 3, 1e-3, 0.01, 0.003);
    let mut new = runs(&mut rng, 3, 1e-3, 0.01, 0.003);
    new[1].results.clear();
    new[2].host.hostname = "other-node".into();
    let cmp = compare::compare_runs(&refs(&old), &refs(&new), &opts);
    let r = &cmp.results[0];
    assert_eq!(r.new_runs, 2);
    assert_detail(r, "in 2 of 3 NEW runs");
    assert_any_contains(&cmp.notes, "NEW's 3 runs differ among themselves in: host");
    // A wrong result in any run makes the side unverified, and names the run.
    let mut bad = old.clone();
    bad[1].results[0].status = gpuvet::report::Status::VerificationFailed;
    bad[1].results[0].verification.passed = false;
    let cmp = compare::compare_runs(&refs(&old), &refs(&bad), &opts);
    let r = &cmp.results[0];
    assert_eq!(r.verdict, Verdict::Unverified);
    assert!(r.regression);
    assert_detail(r, "NEW: run 2: verification failed");
}

/// `compare --old A B C --new D E F`: the runs are read, the JSON says how many, a run given
/// twice is refused (it would narrow the interval with no new evidence), and `--old` cannot
/// stand beside a positional OLD.
#[test]
fn cli_takes_several_runs_a_side() {
    use clap::Parser;
    let dir = temp_dir();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(21);
    let mut second = 0;
    let mut write = |name: &str, centre: f64| {
        let p = dir.path().join(name);
        let mut r = one_result_run(&mut rng, centre, 0.003, 30);
        second += 1;
        r.started_at = format!("2026-12-06T00:00:{second:02}Z");
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let old: Vec<String> = ["o1.json", "o2.json", "o3.json"]
        .iter()
        .zip([1.0e-3, 1.01e-3, 0.99e-3])
        .map(|(n, c)| write(n, c))
        .collect();
    let new: Vec<String> = ["n1.json", "n2.json", "n3.json"]
        .iter()
        .zip([1.3e-3, 1.31e-3, 1.29e-3])
        .map(|(n, c)| write(n, c))
        .collect();
    let js = dir.path().join("cmp.json");
    let mut argv: Vec<&str> = vec!["--old"];
    argv.extend(old.iter().map(String::as_str));
    argv.push("--new");
    argv.extend(new.iter().map(String::as_str));
    argv.extend(["--json", js.to_str().unwrap()]);
    assert_eq!(commands::compare::run(&parse(&argv), false).unwrap(), 1);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    assert_eq!(v["old"]["runs"], 3);
    assert_eq!(v["new"]["files"].as_array().unwrap().len(), 3);
    assert!(v["old"]["label"]
        .as_str()
        .unwrap()
        .ends_with("+ 2 more (3 runs)"));
    assert_eq!(v["results"][0]["verdict"], "slower");
    assert_eq!(v["results"][0]["old_runs"], 3);

    // The same file twice on a side, or a copy of a run: refused.
    for twice in [old[0].clone(), {
        let copy = dir.path().join("copy.json");
        std::fs::copy(&old[0], &copy).unwrap();
        copy.to_str().unwrap().to_string()
    }] {
        let args = parse(&["--old", &old[0], &twice, "--new", &new[0], &new[1]]);
        let err = commands::compare::run(&args, false).unwrap_err();
        assert!(format!("{err:#}").contains("are the same run"), "{err:#}");
    }
    // One file each way still works as before, mixed with runs on the other side too.
    assert_eq!(
        commands::compare::run(&parse(&[&old[0], &new[0]]), false).unwrap(),
        1
    );
    assert_eq!(
        commands::compare::run(
            &parse(&[&old[0], "--new", &new[0], &new[1], &new[2]]),
            false
        )
        .unwrap(),
        1
    );
    assert!(Cli::try_parse_from(["compare", "a.json", "b.json", "--old", "c.json"]).is_err());
    // Every file after --old is an OLD run: the error says how to name NEW.
    let Err(err) = Cli::try_parse_from(["compare", "--old", "a.json", "b.json"]) else {
        panic!("--old with no NEW parsed")
    };
    assert!(err.to_string().contains("<NEW|--new <REPORT>...>"), "{err}");
}

/// A run of the OLD fixture started at `second`, so that runs can be told apart.
fn fixture_run(second: u32) -> Report {
    let mut r = old_report();
    r.started_at = format!("2026-12-06T10:00:{second:02}Z");
    r
}

/// A save cut short never counts a run twice and loses none: a stage that is the saved
/// baseline itself (cut before the baseline was replaced) is dropped; one that differs (cut
/// after) joins the history at the next save. The history keeps the newest `keep − 1`.
#[test]
fn baseline_history_survives_a_save_cut_short() {
    use compare::baseline::{load_baseline_runs, load_history, save_baseline_keeping};
    let dir = temp_dir();
    let d = dir.path();
    let seqs = || -> Vec<u64> {
        load_history("main", d)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    save_baseline_keeping(&fixture_run(1), "main", d, 4).unwrap();
    save_baseline_keeping(&fixture_run(2), "main", d, 4).unwrap();
    assert_eq!(seqs(), [1]);
    let staged = d.join("main.history/saving.tmp");
    // Cut before the baseline was replaced: the stage is main.json's own bytes.
    std::fs::copy(d.join("main.json"), &staged).unwrap();
    assert_eq!(
        load_baseline_runs("main", d).unwrap().len(),
        2,
        "not counted"
    );
    save_baseline_keeping(&fixture_run(3), "main", d, 4).unwrap();
    assert_eq!(seqs(), [1, 2]);
    assert!(!staged.exists());
    // Cut after: the stage holds the run that save replaced (here run 9), which is kept.
    std::fs::write(&staged, serde_json::to_string(&fixture_run(9)).unwrap()).unwrap();
    save_baseline_keeping(&fixture_run(4), "main", d, 4).unwrap();
    let runs = load_baseline_runs("main", d).unwrap();
    let started: Vec<&str> = runs.iter().map(|(_, r)| r.started_at.as_str()).collect();
    // Keep 4: three earlier runs (the oldest, run 1, cut: run 2, the settled run 9, run 3),
    // then the baseline (run 4).
    let at = |s: u32| format!("2026-12-06T10:00:{s:02}Z");
    assert_eq!(started, [at(2), at(9), at(3), at(4)]);
    assert_eq!(seqs(), [2, 3, 4]);
    assert_eq!(runs[0].0, "baseline main run 000002");
    assert_eq!(runs[3].0, "baseline main");
    // Compared against the baseline, the four runs are OLD.
    let cmp = compare_to_baseline(&new_report(), "main", d, &Default::default()).unwrap();
    assert_eq!(cmp.old.runs, 4);
    assert_eq!(cmp.old.files.len(), 4);
    // A damaged stage is no run: it is refused, never promoted over a good one.
    std::fs::write(&staged, "garbage").unwrap();
    let e = save_baseline_keeping(&fixture_run(5), "main", d, 4).unwrap_err();
    assert!(e.to_string().contains("cut short left it"), "{e}");
    assert!(load_history("main", d).is_err());
    assert_eq!(seqs_unchecked(d), [2, 3, 4]);
}

/// The history's sequence numbers as files, without reading them.
fn seqs_unchecked(d: &std::path::Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(d.join("main.history"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// Only the names a save writes are earlier runs (a hand-made `2.json` beside `000002.json`
/// would count one run twice), and saves of one baseline at once take turns: every save lands,
/// and the history keeps exactly the newest `keep − 1`.
#[test]
fn baseline_history_reads_its_own_names_and_saves_take_turns() {
    use compare::baseline::{load_baseline_runs, load_history, save_baseline_keeping};
    let dir = temp_dir();
    let d = dir.path().to_path_buf();
    for s in 1..=3 {
        save_baseline_keeping(&fixture_run(s), "v1.2", &d, 5).unwrap();
    }
    let hist = d.join("v1.2.history");
    std::fs::copy(hist.join("000002.json"), hist.join("2.json")).unwrap();
    std::fs::copy(hist.join("000002.json"), hist.join("0000002.json")).unwrap();
    std::fs::write(hist.join("notes.txt"), "mine").unwrap();
    assert_eq!(load_baseline_runs("v1.2", &d).unwrap().len(), 3);
    // Eight saves at once (threads: the lock is per open file, as between processes).
    let threads: Vec<_> = (10..18)
        .map(|s| {
            let d = d.clone();
            std::thread::spawn(move || save_baseline_keeping(&fixture_run(s), "v1.2", &d, 5))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let seqs: Vec<u64> = load_history("v1.2", &d)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, [7, 8, 9, 10]);
    assert!(!hist.join("saving.tmp").exists());
    // What is not a run of the baseline stays.
    assert!(hist.join("notes.txt").exists() && hist.join("2.json").exists());
}

/// `--normalize-clock` over runs: each run is normalised by its own clock, so runs throttled
/// to 1500 MHz compare `same` with runs at 1980 MHz; one run without a clock puts the row back
/// on time, and the row says which side lacks it.
#[test]
fn clock_normalisation_over_runs_uses_each_runs_clock() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(33);
    let at = |rng: &mut Xoshiro256PlusPlus, mhz: f64, k: usize| -> Vec<Report> {
        (0..k)
            .map(|i| {
                let slow = 1980.0 / mhz;
                let mut r = one_result_run(rng, 1e-3 * slow * (1.0 + 0.002 * i as f64), 0.003, 30);
                r.results[0].effective_clock_mhz = Some(mhz);
                r.started_at = format!("2026-12-06T0{i}:00:00Z");
                r
            })
            .collect()
    };
    let old = at(&mut rng, 1980.0, 3);
    let mut new = at(&mut rng, 1500.0, 3);
    let opts = CompareOptions {
        normalize_clock: true,
        ..CompareOptions::default()
    };
    let r = compare::compare_runs(&refs(&old), &refs(&new), &opts).results[0].clone();
    assert_eq!(
        (r.quantity.as_str(), r.verdict),
        ("cycles", Verdict::Same),
        "{r:?}"
    );
    new[1].results[0].effective_clock_mhz = None;
    let r = compare::compare_runs(&refs(&old), &refs(&new), &opts).results[0].clone();
    assert_eq!(
        (r.quantity.as_str(), r.verdict),
        ("time", Verdict::Slower),
        "{r:?}"
    );
    assert!(r.detail.unwrap().contains("no effective clock in NEW"));
}

/// A side shows its newest run: the latest start, and of runs started in the same second the
/// last given (a baseline's saved run after its earlier ones), in the header, the label and the
/// environment table; what its runs differ in is a note.
#[test]
fn a_side_shows_its_newest_run_and_the_last_given_of_a_tie() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(41);
    let mut old = runs(&mut rng, 3, 1e-3, 0.01, 0.003);
    for r in &mut old[..2] {
        r.tool.version = "0.0.9".into();
    }
    for r in &mut old {
        r.started_at = "2026-12-06T00:00:00Z".into();
    }
    let new = runs(&mut rng, 1, 1e-3, 0.01, 0.003);
    let cmp = compare::compare_runs(&refs(&old), &refs(&new), &CompareOptions::default())
        .with_run_labels(
            &["h1".into(), "h2".into(), "saved".into()],
            &["this run".into()],
        );
    assert_eq!(cmp.old.label, "saved + 2 more (3 runs)");
    assert!(
        cmp.old.gpuvet.starts_with(&new[0].tool.version),
        "{:?}",
        cmp.old
    );
    assert!(
        !cmp.environment.iter().any(|d| d.field == "gpuvet version"),
        "{:?}",
        cmp.environment
    );
    assert!(cmp
        .notes
        .iter()
        .any(|n| n.contains("OLD's 3 runs differ among themselves in: gpuvet version")));
}

/// A result OLD has and NEW lacks because NEW's machine could not run it (its report's
/// `not_run`) says so in its row, with NEW's reason, instead of a bare "in OLD only".
#[test]
fn a_missing_result_says_why_the_new_run_lacks_it() {
    let old = old_report();
    let mut new = old.clone();
    new.devices[0].name = "H100".into();
    let gone = new.results.remove(0);
    let name = gone.workload.name();
    new.not_run = vec![gpuvet::plan::NotRun {
        workload: name.clone(),
        device: 0.into(),
        why: "cuBLASLt not found: install nvidia-cublas".into(),
    }];
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    let row = result_of(&cmp, &gone.id);
    assert_eq!(row.verdict, Verdict::Missing);
    assert_eq!(
        row.detail.as_deref(),
        Some(
            "in OLD only; NEW could not run it on H100: cuBLASLt not found: install nvidia-cublas"
        )
    );
    // Without the reason, the row is as before.
    new.not_run.clear();
    let cmp = compare::compare(&old, &new, &CompareOptions::default());
    assert_eq!(
        result_of(&cmp, &gone.id).detail.as_deref(),
        Some("in OLD only")
    );
}

/// Every save takes the baseline directory's lock, a plain save (no history) too: one that
/// did not could replace the baseline between a first keeping save's staging and its write,
/// and that run was lost. Readers share the lock, so one waits for a save and not for another
/// reader.
#[test]
fn every_save_waits_for_the_baseline_directorys_lock() {
    use compare::baseline::{load_baseline_runs, lock_dir, save_baseline, DIR_LOCK};
    let dir = temp_dir();
    let d = dir.path().to_path_buf();
    save_baseline(&fixture_run(1), "b", &d).unwrap();
    assert!(d.join(DIR_LOCK).exists());
    // Writable by every user of a shared cache, whoever made it first.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join(DIR_LOCK))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o666, 0o666, "{mode:o}");
    }
    assert_eq!(compare::list_baselines(&d).unwrap(), ["b"]);
    let before = std::fs::read(d.join("b.json")).unwrap();
    let held = lock_dir(&d, true).unwrap();
    let saving = {
        let d = d.clone();
        std::thread::spawn(move || save_baseline(&fixture_run(2), "b", &d))
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        std::fs::read(d.join("b.json")).unwrap(),
        before,
        "saved under the lock"
    );
    drop(held);
    saving.join().unwrap().unwrap();
    assert_ne!(std::fs::read(d.join("b.json")).unwrap(), before);
    // Two readers at once: the second does not wait for the first.
    let reading = lock_dir(&d, false).unwrap();
    assert!(reading.is_some());
    assert_eq!(load_baseline_runs("b", &d).unwrap().len(), 1);
    drop(reading);
    // A reader makes no lock file where there is none (a baseline of an earlier version).
    std::fs::remove_file(d.join(DIR_LOCK)).unwrap();
    assert_eq!(load_baseline_runs("b", &d).unwrap().len(), 1);
    assert!(!d.join(DIR_LOCK).exists());
}

/// A result on a device the report does not have (a hand-edited or merged file) is refused on
/// load: its rows said "device 5" of a one-device run.
#[test]
fn a_result_on_a_device_the_report_lacks_is_refused() {
    let dir = temp_dir();
    let mut r = old_report();
    let n = r.devices.len();
    r.results[0].device = gpuvet::plan::Placement::one(n + 4);
    let path = dir.path().join("r.json");
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    let e = Report::load(&path).unwrap_err().to_string();
    assert!(e.contains(&format!("names device {}", n + 4)), "{e}");
}
