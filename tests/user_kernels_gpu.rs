//! GPU tests of user kernels (examples/kernels/): each example runs on the GPU through the same
//! path as gpuvet's own kernels and verifies (the GEMM and attention beside the references, the
//! copy, the free-form vector add and saxpy, a --set sweep); the planted wrong GEMM is reported
//! FAILED with no figure; the faulting kernel is a failed result carrying the CUDA error, and
//! the device is then marked lost (in a child process, so the fault cannot take the other tests'
//! context down).
//!
//! They need an NVIDIA GPU and NVRTC. Elsewhere each test prints a visible SKIP line and passes;
//! GPUVET_REQUIRE_GPU=1 (scripts/gpu-check.sh sets it) makes a missing GPU a failure.
//! GPUVET_EXAMPLES names the examples folder where the test binary runs away from its source
//! tree (the GPU machine); otherwise ./examples/kernels, then the source tree's.

mod common;

use common::{attention, matmul};
use gpuvet::backend::{cuda, Backend, PrepareOptions};
use gpuvet::dtype::DType;
use gpuvet::export::Exports;
use gpuvet::inputs;
use gpuvet::plan::{self, ImplSelect};
use gpuvet::report::{Report, Status};
use gpuvet::runner::{self, Settings};
use gpuvet::verify::{verify, VerifyMethod};
use gpuvet::workload::kernel::spec::{self, KernelRequest};
use gpuvet::workload::{BLayout, MatmulSpec, MemOp, MemorySpec, Workload};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

fn skip<T>(test: &str, why: &str) -> Option<T> {
    common::skip_unless_required("GPUVET_REQUIRE_GPU", test, why)
}

/// The CUDA backends with NVRTC, or `None` after printing why the test is skipped.
fn gpus(test: &str) -> Option<Vec<Box<dyn Backend>>> {
    if let Err(e) = cuda::nvrtc::available() {
        return skip(test, &e.to_string());
    }
    match cuda::open_all() {
        Ok(b) if !b.is_empty() => Some(b),
        Ok(_) => skip(test, "no CUDA device"),
        Err(e) => skip(test, &e.to_string()),
    }
}

fn examples() -> PathBuf {
    if let Some(d) = std::env::var_os("GPUVET_EXAMPLES") {
        return PathBuf::from(d);
    }
    let here = PathBuf::from("examples/kernels");
    if here.is_dir() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/kernels")
}

fn kernels(file: &str, sets: &[&str]) -> Vec<gpuvet::workload::kernel::UserKernel> {
    spec::implementations(&KernelRequest {
        kernel: examples().join(file).display().to_string(),
        sets: sets.iter().map(|s| s.to_string()).collect(),
        ..KernelRequest::default()
    })
    .unwrap()
}

/// Prepares, verifies (twice, across two buffer sets) and times `w` with `imp` on `b`.
fn check(b: &dyn Backend, w: &Workload, imp: &str) {
    let ins = inputs::generate(w, 42);
    let opts = PrepareOptions {
        buffer_sets: 2,
        hot: false,
    };
    let mut p = b
        .prepare(w, imp, &ins, opts)
        .unwrap_or_else(|e| panic!("prepare {} / {imp}: {e}", w.name()));
    let out = p.run_verify().unwrap_or_else(|e| panic!("run {imp}: {e}"));
    let v = verify(w, &ins, &out, 7);
    assert!(v.passed, "{} / {imp} failed verification: {v:?}", w.name());
    let t = p.run(3).unwrap();
    assert!(t.is_finite() && t > 0.0, "{imp}: {t} s");
    assert!(verify(w, &ins, &p.run_verify().unwrap(), 8).passed);
    let rec = p.kernel_record().expect("a user kernel records itself");
    assert!(
        !rec.simulated && rec.registers.is_some_and(|r| r > 0),
        "{rec:?}"
    );
    eprintln!(
        "ok {} / {imp}: {} max rel err {:.2e}, {:.3} ms/iter, {}",
        w.name(),
        v.method,
        v.max_rel_error,
        t / 3.0 * 1e3,
        rec.launch
    );
}

#[test]
fn example_implementations_verify_beside_the_references() {
    let Some(mut gpus) = gpus("example_implementations_verify_beside_the_references") else {
        return;
    };
    let b = gpus[0].as_mut();
    let gemm = matmul(1000, 777, 515, DType::Bf16, BLayout::Nk);
    let f32_kn = Workload::Matmul(MatmulSpec::new(129, 65, 33, DType::F32));
    let attention = attention(2, (8, 2), (100, 160), 80, true, DType::Bf16);
    let copy = Workload::Memory(MemorySpec {
        op: MemOp::Copy,
        bytes: (1 << 20) + 12,
    });
    let f32_entry = spec::implementations(&KernelRequest {
        kernel: format!(
            "{}:naive_gemm_f32_kn",
            examples().join("naive_gemm.cu").display()
        ),
        launch: Some("grid=cdiv(N,16),cdiv(M,16),block=16,16,args=A,B,C,M,N,K".into()),
        name: Some("naive_f32".into()),
        ..KernelRequest::default()
    })
    .unwrap();
    let mut cases: Vec<(&Workload, String)> = Vec::new();
    for k in kernels("naive_gemm.toml", &["TILE=8,16,32"]) {
        b.register_user_kernel("matmul", &k).unwrap();
        cases.push((&gemm, k.name.clone()));
    }
    for (file, kind, w) in [
        ("naive_attention.toml", "attention", &attention),
        ("copy.toml", "memory", &copy),
    ] {
        let k = &kernels(file, &[])[0];
        b.register_user_kernel(kind, k).unwrap();
        cases.push((w, k.name.clone()));
    }
    b.register_user_kernel("matmul", &f32_entry[0]).unwrap();
    cases.push((&f32_kn, "naive_f32".into()));
    for (w, imp) in &cases {
        // listed beside the built-in implementations, after them
        let names: Vec<String> = b.implementations(w).into_iter().map(|i| i.name).collect();
        assert!(names.contains(imp), "{imp} not in {names:?}");
        assert_ne!(names[0], *imp, "the reference comes first");
        check(&*b, w, imp);
    }
}

fn quick_settings() -> Settings {
    let mut s = Settings {
        quiet: true,
        ..Settings::default()
    };
    s.measure.warmup_s = 0.0;
    s.measure.min_samples = 3;
    s.measure.max_samples = 5;
    s
}

/// Plans `workloads` with `select` on `backends` (device 0 only) and runs them.
fn run(backends: &[Box<dyn Backend>], workloads: &[Workload], select: ImplSelect) -> Report {
    let backends = &backends[..1];
    let p = plan::build(workloads, backends, &select, false, false).unwrap();
    let s = quick_settings();
    let mut report = runner::new_report(backends, &s);
    let stop = AtomicBool::new(false);
    runner::execute(&p, backends, &s, &Exports::default(), &mut report, &stop).unwrap();
    report
}

#[test]
fn the_planted_wrong_kernel_is_failed_never_a_figure() {
    let Some(mut gpus) = gpus("the_planted_wrong_kernel_is_failed_never_a_figure") else {
        return;
    };
    let k = &kernels("wrong_gemm.toml", &[])[0];
    gpus[0].register_user_kernel("matmul", k).unwrap();
    let w = matmul(512, 512, 512, DType::Bf16, BLayout::Nk);
    let report = run(
        &gpus,
        &[w],
        ImplSelect::parse(&["default".into(), k.name.clone()]).unwrap(),
    );
    let wrong = report
        .results
        .iter()
        .find(|r| r.implementation == k.name)
        .expect("the wrong kernel ran");
    assert_eq!(wrong.status, Status::VerificationFailed, "{wrong:?}");
    assert!(wrong.throughput.is_none() && wrong.stats.is_none());
    assert!(!wrong.is_valid());
    // the reference beside it is fine
    assert!(report
        .results
        .iter()
        .any(|r| r.implementation == "cublaslt" && r.is_valid()));
    eprintln!("wrong_gemm: {:?}", wrong.verification.detail);
}

#[test]
fn free_form_examples_verify() {
    let Some(gpus) = gpus("free_form_examples_verify") else {
        return;
    };
    let mut workloads = Vec::new();
    for s in spec::free_form(
        &examples().join("vector_add.toml"),
        &["N=1048579".into(), "BLOCK=128,256".into()],
    )
    .unwrap()
    {
        workloads.push(Workload::Kernel(Box::new(s)));
    }
    let saxpy = spec::free_form(&examples().join("saxpy.toml"), &[]).unwrap();
    workloads.push(Workload::Kernel(Box::new(
        saxpy.into_iter().next().unwrap(),
    )));
    let report = run(
        &gpus,
        &workloads,
        ImplSelect::parse(&["user".into()]).unwrap(),
    );
    assert_eq!(report.results.len(), 3);
    for r in &report.results {
        assert!(r.is_valid(), "{} {:?} {:?}", r.id, r.error, r.verification);
        assert!(r.kernel.as_ref().is_some_and(|k| !k.simulated));
    }
    assert_eq!(
        report.results[0].verification.method,
        VerifyMethod::Determinism
    );
    assert_eq!(
        report.results[2].verification.method,
        VerifyMethod::Expected
    );
}

/// The faulting kernel in a child process (a fault loses the context of the whole process):
/// its result is a failure carrying the CUDA error, and the next entry on the device is
/// skipped as lost, not run into misleading errors.
#[test]
fn a_faulting_kernel_is_a_failed_result_with_the_cuda_error() {
    let Some(_) = gpus("a_faulting_kernel_is_a_failed_result_with_the_cuda_error") else {
        return;
    };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "faulting_kernel_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("GPUVET_FAULT_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child did not run:\n{text}");
}

#[test]
#[ignore = "run by a_faulting_kernel_is_a_failed_result_with_the_cuda_error in a child process"]
fn faulting_kernel_child() {
    if std::env::var("GPUVET_FAULT_CHILD").as_deref() != Ok("1") {
        return;
    }
    let gpus = cuda::open_all().unwrap();
    let fault = spec::free_form(&examples().join("faulting.toml"), &[]).unwrap();
    let after = spec::free_form(&examples().join("vector_add.toml"), &["N=4096".into()]).unwrap();
    let workloads: Vec<Workload> = fault
        .into_iter()
        .chain(after)
        .map(|s| Workload::Kernel(Box::new(s)))
        .collect();
    let report = run(
        &gpus,
        &workloads,
        ImplSelect::parse(&["user".into()]).unwrap(),
    );
    let [f, a] = &report.results[..] else {
        panic!("{:?}", report.results)
    };
    assert_eq!(f.status, Status::Error, "{f:?}");
    let e = f.error.as_deref().unwrap();
    assert!(e.contains("CUDA_ERROR_"), "{e}");
    assert!(f.throughput.is_none());
    let skipped = a.error.as_deref().unwrap_or("");
    assert!(
        skipped.starts_with("skipped: the device was lost"),
        "{skipped}"
    );
    eprintln!("faulting: {e}\nnext: {skipped}");
}
