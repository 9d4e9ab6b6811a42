//! Compiles every CUDA kernel with NVRTC to CUBIN for sm_80 (A100), sm_89 (L4/L40S/4090) and
//! sm_90a (H100/H200), without a GPU. CI installs NVRTC with scripts/install-nvrtc.sh and sets
//! GPUVET_REQUIRE_NVRTC=1 so that a missing NVRTC fails the run instead of skipping it.

use gpuvet::backend::cuda::kernels::{KernelId, Source};
use gpuvet::backend::cuda::{libs, nvrtc};
use std::io::Write;

const ARCHS: [&str; 3] = ["sm_80", "sm_89", "sm_90a"];

/// True when NVRTC can be used; otherwise skips visibly, or fails when it is required.
fn nvrtc_or_skip(test: &str) -> bool {
    match &libs::probe().nvrtc {
        Ok(l) => {
            eprintln!("{test}: using NVRTC {}", l.path.display());
            true
        }
        Err(e) => {
            if std::env::var("GPUVET_REQUIRE_NVRTC").as_deref() == Ok("1") {
                panic!("GPUVET_REQUIRE_NVRTC=1 but NVRTC is unavailable: {e}");
            }
            // Written to the stderr handle, not with eprintln!, so that the test harness does
            // not capture it: a skip must be visible in a normal `cargo test` run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test}: {e} (run scripts/install-nvrtc.sh and set GPUVET_CUDA_LIB_DIR)"
            );
            false
        }
    }
}

#[test]
fn every_kernel_compiles_to_cubin_for_every_target() {
    if !nvrtc_or_skip("every_kernel_compiles_to_cubin_for_every_target") {
        return;
    }
    let (major, minor) = nvrtc::version().expect("NVRTC version");
    eprintln!("NVRTC {major}.{minor}");
    for arch in ARCHS {
        for src in Source::ALL {
            let c = nvrtc::compile_uncached(src, arch)
                .unwrap_or_else(|e| panic!("{} for {arch}: {e}", src.file()));
            assert_eq!(
                &c.cubin[..4],
                b"\x7fELF",
                "{} for {arch} is not a CUBIN",
                src.file()
            );
            for k in KernelId::ALL.iter().filter(|k| k.source() == src) {
                let r = nvrtc::resources_of(&c.log, *k).unwrap_or_else(|| {
                    panic!(
                        "ptxas reported nothing for {} on {arch}:\n{}",
                        k.symbol(),
                        c.log
                    )
                });
                eprintln!(
                    "{arch:7} {:24} {:3} registers, {} B spill stores, {} B spill loads",
                    k.id(),
                    r.registers,
                    r.spill_stores,
                    r.spill_loads
                );
                assert!(r.registers > 0, "{} on {arch}: no register count", k.id());
                assert_eq!(
                    (r.spill_stores, r.spill_loads),
                    (0, 0),
                    "{} spills on {arch}",
                    k.id()
                );
            }
        }
    }
}

#[test]
fn a_broken_kernel_fails_with_its_compile_log() {
    if !nvrtc_or_skip("a_broken_kernel_fails_with_its_compile_log") {
        return;
    }
    // A virtual architecture gives PTX only: the pipeline must say so rather than return
    // an empty CUBIN.
    let e = nvrtc::compile_uncached(Source::Memory, "compute_90").unwrap_err();
    assert!(e.to_string().contains("CUBIN"), "{e}");
    // An unknown architecture is an NVRTC error carrying its log.
    let e = nvrtc::compile_uncached(Source::Memory, "sm_1").unwrap_err();
    assert!(e.to_string().contains("NVRTC"), "{e}");
}

#[test]
fn the_disk_cache_returns_the_same_cubin() {
    if !nvrtc_or_skip("the_disk_cache_returns_the_same_cubin") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = nvrtc::compile_in(Source::Attention, "sm_90a", Some(dir.path())).unwrap();
    let second = nvrtc::compile_in(Source::Attention, "sm_90a", Some(dir.path())).unwrap();
    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(first.cubin, second.cubin);
    assert!(second.log.contains("gv_softmax_bf16"), "{}", second.log);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 2, "a .cubin and its .log");
}

#[test]
fn cudarc_uses_the_nvrtc_gpuvet_chose() {
    if !nvrtc_or_skip("cudarc_uses_the_nvrtc_gpuvet_chose") {
        return;
    }
    nvrtc::version().expect("NVRTC version");
    let chosen = &libs::probe().nvrtc.as_ref().unwrap().path;
    let used = libs::cudarc_nvrtc_file().expect("cudarc loaded NVRTC");
    // Preloading by absolute path makes cudarc's bare-name dlopen resolve to the same file,
    // even when the folder is not on LD_LIBRARY_PATH (GPUVET_CUDA_LIB_DIR alone).
    assert_eq!(
        libs::mismatch_line(libs::Lib::Nvrtc, chosen, &used),
        None,
        "chosen {}, used {}",
        chosen.display(),
        used.display()
    );
}

/// Opcode counts per kernel from `cuobjdump -sass` output: the first word after each `/*addr*/`,
/// predicate skipped, suffixes dropped (`HMMA.16816.F32.BF16` counts as `HMMA`).
fn sass_opcodes(
    sass: &str,
) -> std::collections::HashMap<String, std::collections::HashMap<String, usize>> {
    let mut out: std::collections::HashMap<String, std::collections::HashMap<String, usize>> =
        std::collections::HashMap::new();
    let mut func: Option<String> = None;
    for line in sass.lines() {
        if let Some(rest) = line.split("Function : ").nth(1) {
            func = Some(rest.trim().to_string());
            continue;
        }
        let (Some(f), Some(rest)) = (&func, line.split("*/").nth(1)) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(mut w) = words.next() else { continue };
        if w.starts_with('@') {
            let Some(next) = words.next() else { continue };
            w = next;
        }
        let op = w.split('.').next().unwrap_or(w).trim_end_matches(';');
        if !op.is_empty()
            && op
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            *out.entry(f.clone())
                .or_default()
                .entry(op.to_string())
                .or_default() += 1;
        }
    }
    out
}

/// The SASS of the own matmul kernels: tensor-core instructions where they should be (HMMA for
/// bf16/f16, IMMA for int8, QMMA for fp8 on sm_89; on sm_90a ptxas emulates fp8 mma.sync with
/// conversions and HMMA) and no local memory (LDL/STL) anywhere. Needs `cuobjdump` and
/// `nvdisasm` (pip nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm): GPUVET_CUOBJDUMP names the
/// cuobjdump binary, nvdisasm must be on PATH or in NVDISASM_PATH; skipped visibly otherwise.
#[test]
fn matmul_sass_uses_tensor_cores_and_no_local_memory() {
    if !nvrtc_or_skip("matmul_sass_uses_tensor_cores_and_no_local_memory") {
        return;
    }
    let Some(cuobjdump) = std::env::var_os("GPUVET_CUOBJDUMP") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP matmul_sass_uses_tensor_cores_and_no_local_memory: set GPUVET_CUOBJDUMP to a cuobjdump binary (pip nvidia-cuda-cuobjdump)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for arch in ARCHS {
        for src in [Source::MatmulSimt, Source::MatmulMma] {
            let c = nvrtc::compile_uncached(src, arch).unwrap();
            let path = dir.path().join(format!("{}-{arch}.cubin", src.stem()));
            std::fs::write(&path, &c.cubin).unwrap();
            let out = std::process::Command::new(&cuobjdump)
                .arg("-sass")
                .arg(&path)
                .output()
                .expect("run cuobjdump");
            let sass = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && sass.contains("Function :"),
                "cuobjdump failed on {} for {arch} (is nvdisasm on PATH?): {}",
                src.file(),
                String::from_utf8_lossy(&out.stderr)
            );
            let ops = sass_opcodes(&sass);
            for k in KernelId::ALL.iter().filter(|k| k.source() == src) {
                let o = ops
                    .get(k.symbol())
                    .unwrap_or_else(|| panic!("{} missing from the SASS for {arch}", k.symbol()));
                let n = |op: &str| o.get(op).copied().unwrap_or(0);
                assert_eq!(
                    (n("LDL"), n("STL")),
                    (0, 0),
                    "{} uses local memory on {arch}",
                    k.id()
                );
                let sym = k.symbol();
                let want = if sym.starts_with("matmul_simt") {
                    "FFMA"
                } else if sym.contains("_s8_") {
                    "IMMA"
                } else if sym.contains("_e4m3_") {
                    match arch {
                        "sm_89" => "QMMA",
                        "sm_90a" => "HMMA",
                        // sm_80 has no fp8 mma: the kernel traps and is never launched there
                        _ => "LDGSTS",
                    }
                } else {
                    "HMMA"
                };
                assert!(n(want) > 0, "{} on {arch}: no {want} in {o:?}", k.id());
                if sym.starts_with("matmul_mma") {
                    assert!(n("LDGSTS") > 0, "{} on {arch}: no cp.async", k.id());
                    if arch != "sm_80" || !sym.contains("_e4m3_") {
                        assert!(n("LDSM") > 0, "{} on {arch}: no ldmatrix", k.id());
                    }
                }
                eprintln!(
                    "{arch:7} {:28} {want} {:3}  LDSM {:2}  LDGSTS {:2}",
                    k.id(),
                    n(want),
                    n("LDSM"),
                    n("LDGSTS")
                );
            }
        }
    }
}

#[test]
fn every_kernel_takes_the_parameters_its_table_row_declares() {
    if !nvrtc_or_skip("every_kernel_takes_the_parameters_its_table_row_declares") {
        return;
    }
    let mut checked = 0;
    for src in Source::ALL {
        let ptx = nvrtc::compile_to_ptx(src, "compute_90a")
            .unwrap_or_else(|e| panic!("{} to PTX: {e}", src.file()));
        let entries = nvrtc::ptx_entries(&ptx);
        for k in KernelId::ALL.iter().filter(|k| k.source() == src) {
            let (_, types) = entries
                .iter()
                .find(|(name, _)| name == k.symbol())
                .unwrap_or_else(|| panic!("no .entry {} in the PTX of {}", k.symbol(), src.file()));
            let declared: Vec<&str> = k.params().iter().map(|p| p.ptx_type()).collect();
            assert_eq!(
                types,
                &declared,
                "{}: PTX parameters vs the kernel table's",
                k.symbol()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, KernelId::ALL.len());
}
