//! The GPU database: every entry self-consistent, lookups that tell SKUs apart, computed peaks
//! for GPUs it does not know.

use gpuvet::backend::{BackendKind, DeviceInfo};
use gpuvet::dtype::DType;
use gpuvet::gpudb::{self, Database, ExpectConfidence};
use serde_json::json;

const GIB: u64 = 1 << 30;

fn gpu(name: &str, cc: &str, sms: u32, mem_mib: u64) -> DeviceInfo {
    DeviceInfo {
        backend: Some(BackendKind::Cuda),
        name: name.into(),
        compute_capability: Some(cc.into()),
        multiprocessors: Some(sms),
        memory_bytes: Some(mem_mib << 20),
        ..DeviceInfo::default()
    }
}

fn id_of(info: &DeviceInfo) -> Option<String> {
    gpudb::lookup(info).map(|s| s.id)
}

#[test]
fn database_parses_and_has_every_required_sku() {
    let db = gpudb::database().expect("built-in database parses");
    for id in [
        "h100-sxm",
        "h100-pcie",
        "h100-nvl",
        "h200-sxm",
        "h200-nvl",
        "a100-sxm-40gb",
        "a100-sxm-80gb",
        "a100-pcie-40gb",
        "a100-pcie-80gb",
        "a10",
        "a10g",
        "l4",
        "l40s",
        "rtx-4090",
        "rtx-6000-ada",
        "t4",
        "v100-sxm2-16gb",
        "b200",
    ] {
        assert!(db.by_id(id).is_some(), "missing SKU {id}");
    }
    assert_eq!(gpudb::by_id("H100-SXM").unwrap().sms, 132);
    assert!(gpudb::by_id("h100-sxm5-typo").is_none());
}

/// peak ≈ SMs × per-SM rate × clock within 5%, wherever the rate of the architecture is known;
/// a peak that is not checkable must say why.
#[test]
fn every_peak_is_self_consistent() {
    let db = gpudb::database().unwrap();
    let mut checked = 0;
    for s in &db.skus {
        let arch = db
            .arch(&s.compute_capability, s.class)
            .unwrap_or_else(|| panic!("{}: no arch table for cc {}", s.id, s.compute_capability));
        assert!(!s.peaks.is_empty(), "{}: no peaks", s.id);
        for (dtype, peak) in &s.peaks {
            if let Some(why) = &peak.exception {
                assert!(
                    why.len() > 10,
                    "{} {dtype}: exception without a reason",
                    s.id
                );
                continue;
            }
            let rate = arch.rates.get(dtype).unwrap_or_else(|| {
                panic!(
                    "{} {dtype}: no per-SM rate and no documented exception",
                    s.id
                )
            });
            let computed = s.sms as f64 * rate * s.clock_for(peak) * 1e6;
            let listed = peak.tflops * 1e12;
            let err = (computed - listed).abs() / listed;
            assert!(
                err <= 0.05,
                "{} {dtype}: datasheet {:.1} vs {} SMs × {rate} × {} MHz = {:.1} TFLOP/s ({:.1}% off)",
                s.id,
                peak.tflops,
                s.sms,
                s.clock_for(peak),
                computed / 1e12,
                err * 100.0
            );
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} peaks checked");
}

#[test]
fn every_sku_has_identity_and_expectations() {
    let db = gpudb::database().unwrap();
    for s in &db.skus {
        assert!(!s.name_patterns.is_empty(), "{}", s.id);
        assert!(
            s.memory_bandwidth_gbs > 0.0 && s.power_limit_w > 0.0,
            "{}",
            s.id
        );
        assert!(s.max_sm_clock_mhz >= s.peak_clock_mhz, "{}", s.id);
        assert!(!s.source.is_empty(), "{}", s.id);
        for key in db.default_achievable.keys() {
            let e = s.expectation(key).unwrap();
            assert!(e.share > 0.0 && e.share <= 1.0);
            assert!(
                !e.basis.is_empty(),
                "{} {key}: expectation without a basis",
                s.id
            );
        }
        for f in &s.unverified {
            assert!(
                [
                    "sms",
                    "memory_gib",
                    "power_limit_w",
                    "max_sm_clock_mhz",
                    "nvlink_links",
                    "pcie_gen"
                ]
                .contains(&f.as_str()),
                "{}: unverified names unknown field {f}",
                s.id
            );
        }
    }
    // Hopper bf16 matmul: 0.78–0.82 of peak on a healthy card (gpu-facts.md).
    for id in ["h100-sxm", "h200-sxm"] {
        let e = db.by_id(id).unwrap().expectation("matmul.bf16").unwrap();
        assert!((0.78..=0.82).contains(&e.share), "{id}: {}", e.share);
        assert_ne!(e.confidence, ExpectConfidence::Estimate);
    }
}

/// Each `(name, compute capability, SMs, memory MiB)` is looked up as the SKU `want`.
fn assert_lookups(cases: &[(&str, &str, u32, u64, &str)]) {
    for &(name, cc, sms, mib, want) in cases {
        assert_eq!(
            id_of(&gpu(name, cc, sms, mib)).as_deref(),
            Some(want),
            "{name}"
        );
    }
}

#[test]
fn lookup_tells_h100_pcie_from_sxm_and_nvl() {
    assert_lookups(&[
        ("NVIDIA H100 80GB HBM3", "9.0", 132, 81559, "h100-sxm"),
        ("NVIDIA H100 PCIe", "9.0", 114, 81559, "h100-pcie"),
        ("NVIDIA H100 NVL", "9.0", 132, 95830, "h100-nvl"),
        ("NVIDIA H200", "9.0", 132, 143771, "h200-sxm"),
        ("NVIDIA H200 NVL", "9.0", 132, 143771, "h200-nvl"),
    ]);
}

#[test]
fn lookup_tells_close_names_apart() {
    let cases = [
        ("NVIDIA A100-SXM4-80GB", "8.0", 108, 81920, "a100-sxm-80gb"),
        ("NVIDIA A100-SXM4-40GB", "8.0", 108, 40960, "a100-sxm-40gb"),
        ("NVIDIA A100-PCIE-40GB", "8.0", 108, 40960, "a100-pcie-40gb"),
        ("NVIDIA A100 80GB PCIe", "8.0", 108, 81920, "a100-pcie-80gb"),
        ("NVIDIA A10", "8.6", 72, 23028, "a10"),
        ("NVIDIA A10G", "8.6", 80, 23028, "a10g"),
        ("NVIDIA L4", "8.9", 58, 23034, "l4"),
        ("NVIDIA L40S", "8.9", 142, 46068, "l40s"),
        ("NVIDIA GeForce RTX 4090", "8.9", 128, 24564, "rtx-4090"),
        (
            "NVIDIA RTX 6000 Ada Generation",
            "8.9",
            142,
            49140,
            "rtx-6000-ada",
        ),
        ("Tesla T4", "7.5", 40, 15360, "t4"),
        ("Tesla V100-SXM2-16GB", "7.0", 80, 16160, "v100-sxm2-16gb"),
        ("Tesla V100-PCIE-32GB", "7.0", 80, 32510, "v100-pcie"),
        ("NVIDIA B200", "10.0", 148, 183359, "b200"),
    ];
    assert_lookups(&cases);
    // A name that matches but a compute capability that cannot: not that SKU.
    assert_eq!(id_of(&gpu("NVIDIA A10", "9.0", 72, 23028)), None);
}

#[test]
fn lookup_recognises_a_renamed_card_only_when_unique() {
    // Unknown name, but cc/SMs/memory fit exactly one SKU.
    assert_eq!(
        id_of(&gpu("GRID H100-PCIE-80C", "9.0", 114, 81559)).as_deref(),
        Some("h100-pcie")
    );
    // A GH200 has an H100 NVL's SMs and memory, but it is not one.
    assert_eq!(id_of(&gpu("NVIDIA GH200 480GB", "9.0", 132, 97871)), None);
    // Nor is a GB200 a B200 because its name holds `b200` inside a longer word: it has a
    // B200's SMs and memory and other peaks.
    assert_eq!(id_of(&gpu("NVIDIA GB200", "10.0", 148, 189471)), None);
    assert_eq!(id_of(&gpu("NVIDIA GB200", "10.0", 148, 183359)), None);
    // The model number at the start of a word of a relabelled name still counts, with a vGPU
    // suffix run into it too.
    assert_eq!(
        id_of(&gpu("NVIDIA H100XM-80C", "9.0", 132, 81559)).as_deref(),
        Some("h100-sxm")
    );
    assert_eq!(
        id_of(&gpu("GRID B200-180C", "10.0", 148, 183359)).as_deref(),
        Some("b200")
    );
    // 132 SMs with 141 GiB fits both H200 SXM and H200 NVL: refuse to guess.
    assert_eq!(id_of(&gpu("NVIDIA H200 Custom", "9.0", 132, 143771)), None);
    // A CPU is never a GPU SKU.
    let cpu = DeviceInfo {
        backend: Some(BackendKind::Cpu),
        name: "AMD EPYC 9654".into(),
        ..DeviceInfo::default()
    };
    assert_eq!(id_of(&cpu), None);
    assert!(gpudb::peaks_for(&cpu).is_none());
}

#[test]
fn known_gpu_gets_datasheet_peaks() {
    let (p, computed) = gpudb::peaks_for(&gpu("NVIDIA H100 80GB HBM3", "9.0", 132, 81559)).unwrap();
    assert!(!computed);
    assert_eq!(p.flops[&DType::Bf16], 989.4e12);
    assert_eq!(p.memory_bandwidth, Some(3350e9));
    assert!(p.source.contains("datasheet"));
}

#[test]
fn unknown_gpu_gets_computed_peaks_with_a_notice() {
    let mut h20 = gpu("NVIDIA H20", "9.0", 78, 97871);
    h20.details.state.sm_clock_max_mhz = Some(1980);
    h20.details.state.memory_bus_width_bits = Some(6144);
    h20.details.state.memory_clock_max_mhz = Some(2619);
    assert!(gpudb::lookup(&h20).is_none());
    let (p, computed) = gpudb::peaks_for(&h20).unwrap();
    assert!(computed);
    assert!(p.source.starts_with("computed"), "{}", p.source);
    assert!(p.source.contains("H20"));
    // fp32 from the CUDA cores' rate; no tensor-core guess: Hopper's bf16 rate over the H20's
    // 78 SMs would be 632 TFLOP/s where its published dense figure is 148.
    let fp32 = 78.0 * 256.0 * 1980e6;
    assert!((p.flops[&DType::F32] - fp32).abs() / fp32 < 1e-12);
    assert_eq!(
        p.flops.keys().collect::<Vec<_>>(),
        [&DType::F32],
        "{:?}",
        p.flops
    );
    assert!(p.source.contains("not guessed"), "{}", p.source);
    let bw = 6144.0 / 8.0 * 2619e6 * 2.0;
    assert!((p.memory_bandwidth.unwrap() - bw).abs() / bw < 1e-12);

    // A GeForce part: its fp32 rate, read from a clock a report spells as a string.
    let mut g = gpu("NVIDIA GeForce RTX 4080", "8.9", 76, 16376);
    g.details = serde_json::from_value(json!({"sm_clock_max_mhz_driver": "2505"})).unwrap();
    let (p, _) = gpudb::peaks_for(&g).unwrap();
    assert_eq!(p.flops[&DType::F32], 76.0 * 256.0 * 2505e6);
    assert!(!p.flops.contains_key(&DType::Bf16));

    // Nothing to compute from: no peaks rather than invented ones.
    assert!(gpudb::peaks_for(&gpu("NVIDIA Future", "13.0", 200, GIB >> 20)).is_none());
}

#[test]
fn corrupt_database_text_is_a_clear_error() {
    let err = Database::parse("schema_version = 1\n[[sku]]\nid = 3\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("data/gpus.toml"), "{msg}");
    let mut text = gpudb::DATA.replace("schema_version = 1", "schema_version = 9");
    assert!(Database::parse(&text)
        .unwrap_err()
        .to_string()
        .contains("version"));
    text = gpudb::DATA.replace(
        "peaks.f32 = { tflops = 8.1 }",
        "peaks.fp7 = { tflops = 8.1 }",
    );
    assert!(Database::parse(&text)
        .unwrap_err()
        .to_string()
        .contains("fp7"));
}

#[test]
fn sku_table_lists_every_sku() {
    let t = gpudb::skus_table(false).unwrap();
    for id in gpudb::ids() {
        assert!(t.contains(&id), "{id} missing");
    }
    assert!(t.contains("989 T"), "{t}");
}
