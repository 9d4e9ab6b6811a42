//! User kernels without a GPU: every example in examples/kernels/ compiles with NVRTC for
//! sm_80, sm_89 and sm_90a through the user-kernel path (options, defines, include folders,
//! cache), its launch resolves against the workload it implements (or its own spec), and its
//! arguments match the `.param` list of its PTX. Wrong argument lists, missing entries and
//! compile errors are refused with the reason. Needs NVRTC (scripts/install-nvrtc.sh); skips
//! visibly without it, and fails when GPUVET_REQUIRE_NVRTC=1.

mod common;

use common::{attention, matmul, nvrtc_or_skip, temp_files};
use gpuvet::backend::cuda::nvrtc;
use gpuvet::backend::cuda::user::{self, Program};
use gpuvet::dtype::DType;
use gpuvet::workload::kernel::launch::{Limits, Resolved};
use gpuvet::workload::kernel::spec::{self, KernelRequest};
use gpuvet::workload::kernel::{KernelSpec, UserKernel};
use gpuvet::workload::{BLayout, MemOp, MemorySpec, Workload};
use std::path::{Path, PathBuf};

const ARCHS: [&str; 3] = ["sm_80", "sm_89", "sm_90a"];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kernels")
}

fn request(kernel: &str) -> KernelRequest {
    KernelRequest {
        kernel: examples().join(kernel).display().to_string(),
        ..KernelRequest::default()
    }
}

/// An H100/H200-like device: 227 KiB of shared memory per block with the opt-in.
fn limits() -> Limits {
    Limits::typical(227 << 10)
}

/// Builds `k` for `arch` without a cache, resolves and checks its launch against `w`.
fn check_on(k: &UserKernel, w: &Workload, arch: &str) -> (Program, Resolved) {
    let names = user::names_for(w, k).unwrap();
    let p =
        user::build(k, &names, arch, None).unwrap_or_else(|e| panic!("{} for {arch}: {e}", k.name));
    let r = user::check_launch(k, &p, &names, &limits())
        .unwrap_or_else(|e| panic!("{} for {arch}: {e}", k.name));
    (p, r)
}

fn bf16_nk(m: u64, n: u64, k: u64) -> Workload {
    matmul(m, n, k, DType::Bf16, BLayout::Nk)
}

fn no_spills(p: &Program, what: &str) {
    let r = p
        .resources
        .as_ref()
        .unwrap_or_else(|| panic!("ptxas reported nothing for {what}:\n{}", p.compiled.log));
    assert!(r.registers > 0, "{what}: no register count");
    assert_eq!((r.spill_stores, r.spill_loads), (0, 0), "{what} spills");
}

#[test]
fn every_example_implementation_compiles_and_takes_its_arguments() {
    if !nvrtc_or_skip("every_example_implementation_compiles_and_takes_its_arguments") {
        return;
    }
    let gemm = matmul(4097, 1000, 515, DType::Bf16, BLayout::Nk);
    let attention = attention(2, (8, 2), (100, 160), 80, true, DType::Bf16);
    let copy = Workload::Memory(MemorySpec {
        op: MemOp::Copy,
        bytes: 1 << 30,
    });
    let cases = [
        ("naive_gemm.toml", &gemm),
        ("wrong_gemm.toml", &gemm),
        ("naive_attention.toml", &attention),
        ("copy.toml", &copy),
    ];
    for arch in ARCHS {
        for (file, w) in cases {
            let ks = spec::implementations(&request(file)).unwrap();
            let (p, r) = check_on(&ks[0], w, arch);
            no_spills(&p, &format!("{file} on {arch}"));
            eprintln!(
                "{arch:7} {file:22} {:3} registers  {}",
                p.resources.as_ref().unwrap().registers,
                r.describe()
            );
        }
    }
    // The attention launch: a block of whole warps over head_dim 80, one float per warp.
    let ks = spec::implementations(&request("naive_attention.toml")).unwrap();
    let (_, r) = check_on(&ks[0], &attention, "sm_90a");
    assert_eq!((r.grid, r.block, r.smem), ([100, 8, 2], [96, 1, 1], 12));
}

#[test]
fn every_entry_of_the_gemm_examples_compiles_for_its_dtype_and_layout() {
    if !nvrtc_or_skip("every_entry_of_the_gemm_examples_compiles_for_its_dtype_and_layout") {
        return;
    }
    for dtype in ["f32", "bf16", "f16"] {
        for layout in ["kn", "nk"] {
            let entry = format!("naive_gemm_{dtype}_{layout}");
            let req = KernelRequest {
                kernel: format!("{}:{entry}", examples().join("naive_gemm.cu").display()),
                launch: Some("grid=cdiv(N,16),cdiv(M,16),block=16,16,args=A,B,C,M,N,K".into()),
                ..KernelRequest::default()
            };
            let k = &spec::implementations(&req).unwrap()[0];
            let w = matmul(33, 65, 17, dtype.parse().unwrap(), layout.parse().unwrap());
            let (p, r) = check_on(k, &w, "sm_90a");
            no_spills(&p, &entry);
            assert_eq!(r.grid, [5, 3, 1]);
        }
    }
}

#[test]
fn a_set_sweep_compiles_each_point_with_its_own_define() {
    if !nvrtc_or_skip("a_set_sweep_compiles_each_point_with_its_own_define") {
        return;
    }
    let req = KernelRequest {
        sets: vec!["TILE=8,16,32".into()],
        ..request("naive_gemm.toml")
    };
    let ks = spec::implementations(&req).unwrap();
    let w = bf16_nk(512, 512, 512);
    let mut keys = Vec::new();
    for k in &ks {
        let (p, r) = check_on(k, &w, "sm_90a");
        let tile = k.vars["TILE"] as u32;
        assert_eq!(r.block, [tile, tile, 1], "{}", k.name);
        assert!(
            p.options.contains(&format!("-DTILE={tile}")),
            "{:?}",
            p.options
        );
        keys.push(p.compiled.key.clone());
    }
    keys.dedup();
    assert_eq!(keys.len(), 3, "each TILE is its own build");
    // TILE=64 needs 4096 threads a block: refused before anything would launch.
    let req = KernelRequest {
        sets: vec!["TILE=64".into()],
        ..request("naive_gemm.toml")
    };
    let k = &spec::implementations(&req).unwrap()[0];
    let names = user::names_for(&w, k).unwrap();
    let p = user::build(k, &names, "sm_90a", None).unwrap();
    let e = user::check_launch(k, &p, &names, &limits()).unwrap_err();
    assert!(e.to_string().contains("4096 threads"), "{e}");
}

#[test]
fn every_free_form_example_compiles_and_takes_its_arguments() {
    if !nvrtc_or_skip("every_free_form_example_compiles_and_takes_its_arguments") {
        return;
    }
    for file in ["vector_add.toml", "saxpy.toml", "faulting.toml"] {
        let specs: Vec<KernelSpec> = spec::free_form(&examples().join(file), &[]).unwrap();
        let s = &specs[0];
        for arch in ARCHS {
            let p = user::build(&s.kernel, &s.names(), arch, None).unwrap();
            let r = user::check_launch(&s.kernel, &p, &s.names(), &limits()).unwrap();
            no_spills(&p, file);
            assert!(r.grid[0] >= 1);
        }
    }
}

/// Writes `text` as `name` in a fresh folder and returns the kernel request for `entry`.
fn scratch(dir: &Path, name: &str, text: &str, entry: &str, launch: &str) -> KernelRequest {
    std::fs::write(dir.join(name), text).unwrap();
    KernelRequest {
        kernel: format!("{}:{entry}", dir.join(name).display()),
        launch: Some(launch.into()),
        ..KernelRequest::default()
    }
}

/// Builds the kernel `entry` of the source `text` (written to a scratch file `name`) for
/// sm_90a as the implementation of a 4 KiB memory `op`.
fn build_scratch(
    name: &str,
    text: &str,
    entry: &str,
    launch: &str,
    op: MemOp,
) -> gpuvet::Result<Program> {
    let dir = tempfile::tempdir().unwrap();
    let req = scratch(dir.path(), name, text, entry, launch);
    let k = &spec::implementations(&req).unwrap()[0];
    let w = Workload::Memory(MemorySpec { op, bytes: 4096 });
    let names = user::names_for(&w, k).unwrap();
    user::build(k, &names, "sm_90a", None)
}

#[test]
fn wrong_argument_lists_and_missing_entries_are_refused_with_the_ptx() {
    if !nvrtc_or_skip("wrong_argument_lists_and_missing_entries_are_refused_with_the_ptx") {
        return;
    }
    let w = bf16_nk(64, 64, 64);
    let cu = examples().join("naive_gemm.cu").display().to_string();
    let try_launch = |entry: &str, args: &str| -> String {
        let req = KernelRequest {
            kernel: format!("{cu}:{entry}"),
            launch: Some(format!("grid=4,4,block=16,16,args={args}")),
            ..KernelRequest::default()
        };
        let k = &spec::implementations(&req).unwrap()[0];
        let names = user::names_for(&w, k).unwrap();
        let r = user::build(k, &names, "sm_90a", None)
            .and_then(|p| user::check_launch(k, &p, &names, &limits()));
        r.map(|_| "ok".to_string())
            .unwrap_or_else(|e| e.to_string())
    };
    assert_eq!(try_launch("naive_gemm_bf16_nk", "A,B,C,M,N,K"), "ok");
    // (entry, launch arguments, what the refusal says)
    let refused: [(&str, &str, &[&str]); 5] = [
        (
            "naive_gemm_bf16_nk",
            "A,B,C,M,N",
            &["takes 6 parameter(s) (u64, u64, u64, u32, u32, u32) but the launch passes 5"],
        ),
        (
            "naive_gemm_bf16_nk",
            "A,B,C,M,N,u64:K",
            &["parameter 6 is `.u32`"],
        ),
        (
            "naive_gemm_bf16_nk",
            "A,B,C,M,N,f32:alpha",
            &["parameter 6 is `.u32`", "f32"],
        ),
        (
            "naive_gemm_bf16_nk",
            "A,M,C,M,N,K",
            &["parameter 2 is `.u64`"],
        ),
        (
            "naive_gemm",
            "A,B,C,M,N,K",
            &["no kernel `naive_gemm`", "naive_gemm_bf16_nk"],
        ),
    ];
    for (entry, args, says) in refused {
        let e = try_launch(entry, args);
        assert!(says.iter().all(|s| e.contains(s)), "{entry}({args}): {e}");
    }
    // a kernel without extern "C" is found only by its mangled name
    let e = build_scratch(
        "mangled.cu",
        "__global__ void scale(float* x) { x[threadIdx.x] *= 2.0f; }\n",
        "scale",
        "grid=1,block=32,args=dst",
        MemOp::Copy,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("extern \"C\""), "{e}");
}

#[test]
fn a_compile_error_shows_the_failing_source_line() {
    if !nvrtc_or_skip("a_compile_error_shows_the_failing_source_line") {
        return;
    }
    let e = build_scratch(
        "broken.cu",
        "extern \"C\" __global__ void broken(float* dst, unsigned long long n) {\n    float y = undefined_name + 1.0f;\n    dst[0] = y;\n}\n",
        "broken",
        "grid=1,block=1,args=dst,n",
        MemOp::Write,
    )
    .unwrap_err();
    assert!(
        matches!(e, gpuvet::Error::InvalidInput(_)),
        "a user's error: {e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("broken.cu(2): error"), "{msg}");
    assert!(msg.contains("float y = undefined_name + 1.0f;"), "{msg}");
}

#[test]
fn the_cache_follows_the_source_its_headers_and_its_options() {
    if !nvrtc_or_skip("the_cache_follows_the_source_its_headers_and_its_options") {
        return;
    }
    let (dir, [cache, inc]) = temp_files(["cache", "inc"]);
    std::fs::create_dir(&inc).unwrap();
    std::fs::write(inc.join("scale.cuh"), "#define SCALE 2.0f\n").unwrap();
    let mut req = scratch(
        dir.path(),
        "k.cu",
        "#include <scale.cuh>\nextern \"C\" __global__ void k(float* dst, unsigned long long n) { dst[threadIdx.x] = SCALE * n; }\n",
        "k",
        "grid=1,block=32,args=dst,n",
    );
    req.include = vec![inc.clone()];
    let w = Workload::Memory(MemorySpec {
        op: MemOp::Write,
        bytes: 4096,
    });
    let build = |req: &KernelRequest| {
        let k = &spec::implementations(req).unwrap()[0];
        let names = user::names_for(&w, k).unwrap();
        user::build(k, &names, "sm_90a", Some(&cache))
            .unwrap()
            .compiled
    };
    let first = build(&req);
    let again = build(&req);
    assert!(!first.from_cache && again.from_cache);
    assert_eq!(first.cubin, again.cubin);
    assert_eq!(first.key, again.key);
    // an edited header, another define, another option: each a new build
    std::fs::write(inc.join("scale.cuh"), "#define SCALE 3.0f\n").unwrap();
    let edited = build(&req);
    assert!(!edited.from_cache && edited.key != first.key);
    req.defines = vec!["EXTRA=1".into()];
    let defined = build(&req);
    assert!(!defined.from_cache && defined.key != edited.key);
    req.options = vec!["--use_fast_math".into()];
    let fast = build(&req);
    assert!(!fast.from_cache && fast.key != defined.key);
    assert!(build(&req).from_cache);
    // the build hash of a record is the cache key's
    let files = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(files, 4 * 3, "a .cubin, .ptx and .log per build");
    let _ = nvrtc::version().unwrap();
}

/// The lane-level numpy models of the example kernels (examples/kernels/model.py): the GEMM
/// and attention index arithmetic against f64 references, every output written once, and the
/// planted wrong GEMM failing. Needs python3 with numpy; skips visibly without.
#[test]
fn the_example_kernels_pass_their_lane_level_models() {
    let numpy = std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .output();
    if !numpy.is_ok_and(|o| o.status.success()) {
        common::say_skip(
            "the_example_kernels_pass_their_lane_level_models",
            "python3 with numpy is not available",
        );
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(examples().join("model.py"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("wrong_gemm fails verification"), "{text}");
}
