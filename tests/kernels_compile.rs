//! Compiles every CUDA kernel with NVRTC to CUBIN for each architecture its source lists
//! (`Source::archs`: sm_80 A100, sm_89 L4/L40S/4090, sm_90a H100/H200; the Hopper kernels
//! sm_90a only), without a GPU. CI installs NVRTC with scripts/install-nvrtc.sh and sets
//! GPUVET_REQUIRE_NVRTC=1 so that a missing NVRTC fails the run instead of skipping it; it
//! installs cuobjdump and nvdisasm with scripts/install-cuda-tools.sh and sets
//! GPUVET_REQUIRE_SASS=1 for the SASS checks.

mod common;

use common::nvrtc_or_skip;
use gpuvet::backend::cuda::kernels::{KernelId, Source, ALL_ARCHS};
use gpuvet::backend::cuda::nvrtc::Compiled;
use gpuvet::backend::cuda::{libs, nvrtc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Every (source, architecture) pair CI builds: the per-source lists, nothing else.
fn targets() -> Vec<(Source, &'static str)> {
    Source::ALL
        .into_iter()
        .flat_map(|s| s.archs().iter().map(move |a| (s, *a)))
        .collect()
}

/// One target's build: its source, architecture and the CUBIN or NVRTC's error.
type Build = (Source, &'static str, Result<Compiled, String>);

/// Every target compiled once for the whole test binary, on as many threads as there are cores
/// (NVRTC compiles separate programs in parallel): the CUBIN test and the SASS test read the same
/// builds, which each used to make for itself, one at a time (two thirds of CI's test time).
fn compiled() -> &'static [Build] {
    static BUILDS: OnceLock<Vec<Build>> = OnceLock::new();
    BUILDS.get_or_init(|| {
        let targets = targets();
        let next = AtomicUsize::new(0);
        let done = Mutex::new(Vec::new());
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            for _ in 0..workers.min(targets.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(src, arch)) = targets.get(i) else {
                        break;
                    };
                    let c = nvrtc::compile_uncached(src, arch).map_err(|e| e.to_string());
                    done.lock().unwrap().push((i, c));
                });
            }
        });
        let mut done = done.into_inner().unwrap();
        done.sort_by_key(|(i, _)| *i);
        assert_eq!(done.len(), targets.len(), "a compile thread died");
        (targets.into_iter().zip(done))
            .map(|((src, arch), (_, c))| (src, arch, c))
            .collect()
    })
}

#[test]
fn every_kernel_compiles_to_cubin_for_every_target() {
    if !nvrtc_or_skip("every_kernel_compiles_to_cubin_for_every_target") {
        return;
    }
    let (major, minor) = nvrtc::version().expect("NVRTC version");
    eprintln!("NVRTC {major}.{minor}");
    for (src, arch, c) in compiled() {
        let (src, arch) = (*src, *arch);
        let c = c
            .as_ref()
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
            // The static shared memory is read off the same report (a user kernel's launch is
            // checked against it): memory.read's block sum keeps 32 doubles, the copy none.
            match k {
                KernelId::MemRead => assert_eq!(r.static_smem, 32 * 8, "{arch}:\n{}", c.log),
                KernelId::MemCopy => assert_eq!(r.static_smem, 0, "{arch}:\n{}", c.log),
                _ => {}
            }
            assert_eq!(
                (r.spill_stores, r.spill_loads),
                (0, 0),
                "{} spills on {arch}",
                k.id()
            );
        }
    }
    // The portable sources build everywhere; the Hopper ones only where they are meant to.
    assert!(Source::MatmulMma.archs() == ALL_ARCHS);
    assert_eq!(Source::MatmulWgmma.archs(), ["sm_90a"]);
    assert_eq!(Source::FlashFwdSm90.archs(), ["sm_90a"]);
}

#[test]
fn a_hopper_kernel_refuses_other_architectures_with_a_reason() {
    if !nvrtc_or_skip("a_hopper_kernel_refuses_other_architectures_with_a_reason") {
        return;
    }
    for arch in ["sm_80", "sm_89"] {
        for src in [Source::MatmulWgmma, Source::FlashFwdSm90] {
            let e = nvrtc::compile_uncached(src, arch).unwrap_err();
            assert!(e.to_string().contains("sm_90a only"), "{arch}: {e}");
            assert!(!src.builds_for(arch));
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

/// The SASS instructions each kernel must contain on `arch`: tensor-core instructions where
/// they belong (HMMA for bf16/f16/tf32 mma.sync, IMMA for int8, QMMA for fp8 on sm_89 — on
/// sm_90a ptxas emulates fp8 mma.sync with conversions and HMMA —, HGMMA/QGMMA and UTMALDG
/// for the wgmma + TMA kernels), or nothing beyond "no local memory".
fn expected_sass(k: KernelId, arch: &str) -> Vec<&'static str> {
    let sym = k.symbol();
    if sym.starts_with("matmul_simt") {
        vec!["FFMA"]
    } else if sym.starts_with("gv_flash_fwd_sm90") {
        vec!["HGMMA", "UTMALDG", "SYNCS"]
    } else if sym.starts_with("matmul_wgmma") {
        let mma = if sym.contains("_e4m3_") {
            "QGMMA"
        } else {
            "HGMMA"
        };
        vec![mma, "UTMALDG", "SYNCS"]
    } else if sym.starts_with("matmul_mma") {
        let mma = if sym.contains("_s8_") {
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
        let mut v = vec![mma, "LDGSTS"];
        if arch != "sm_80" || !sym.contains("_e4m3_") {
            v.push("LDSM");
        }
        v
    } else if sym.starts_with("gv_flash_decode_combine") {
        vec![]
    } else if sym.starts_with("gv_flash") {
        vec!["HMMA"]
    } else {
        vec![]
    }
}

/// cuobjdump from GPUVET_CUOBJDUMP (nvdisasm on PATH or in NVDISASM_PATH), or why the SASS
/// checks cannot run here; GPUVET_REQUIRE_SASS=1 (CI) turns that into a failure.
fn cuobjdump_or_skip(test: &str) -> Option<std::ffi::OsString> {
    if let Some(c) = std::env::var_os("GPUVET_CUOBJDUMP") {
        return Some(c);
    }
    let why = "set GPUVET_CUOBJDUMP to a cuobjdump binary (scripts/install-cuda-tools.sh)";
    common::skip_unless_required("GPUVET_REQUIRE_SASS", test, why)
}

/// The SASS of every kernel on every architecture it is built for: the instructions
/// [`expected_sass`] names, and no local memory (LDL/STL: spills or stack arrays) anywhere.
#[test]
fn sass_has_the_expected_instructions_and_no_local_memory() {
    let test = "sass_has_the_expected_instructions_and_no_local_memory";
    if !nvrtc_or_skip(test) {
        return;
    }
    let Some(cuobjdump) = cuobjdump_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (src, arch, c) in compiled() {
        let (src, arch) = (*src, *arch);
        let c = c.as_ref().unwrap();
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
        if let Some(keep) = std::env::var_os("GPUVET_SASS_DUMP") {
            // A kernel-source change that should not change the code (a helper moved into a
            // header) is checked by diffing two dumps (docs/cuda.md).
            std::fs::create_dir_all(&keep).unwrap();
            let name = format!("{}-{arch}.sass", src.stem());
            std::fs::write(std::path::Path::new(&keep).join(name), sass.as_bytes()).unwrap();
        }
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
            let want = expected_sass(*k, arch);
            for w in &want {
                assert!(n(w) > 0, "{} on {arch}: no {w} in {o:?}", k.id());
            }
            let shown: Vec<String> = want.iter().map(|w| format!("{w} {}", n(w))).collect();
            eprintln!("{arch:7} {:34} {}", k.id(), shown.join("  "));
            checked += 1;
        }
    }
    let expected: usize = KernelId::ALL.iter().map(|k| k.source().archs().len()).sum();
    assert_eq!(checked, expected);
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
