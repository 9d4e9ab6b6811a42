//! The mock's stand-in for user kernels, so that the whole path (plan, checks, verify, measure,
//! report, compare's "kernel changed") is tested without a GPU, and honestly labelled: nothing is
//! executed. The checks are the CUDA backend's own where they need no device: the kernel is
//! compiled by NVRTC for sm_90a (when NVRTC is here), its entry found and its arguments held
//! against its PTX, its launch against an H100/H200's limits. The output is simulated: the
//! workload's exact reference for an implementation, the expected file for a free-form kernel
//! with one, a constant otherwise; every result says so in its notes and its kernel record.

use super::{corrupt, MockRun, FAKE_BANDWIDTH, FAKE_FLOPS};
use crate::backend::cuda::{nvrtc, user};
use crate::backend::{CachePolicy, ImplInfo, Prepared};
use crate::error::Result;
use crate::tensor::Tensor;
use crate::workload::kernel::launch::{check_limits, ArgNames, Limits};
use crate::workload::kernel::spec::sha256_16;
use crate::workload::kernel::{KernelRecord, KernelSpec, KernelVerify, UserKernel};
use crate::workload::Workload;
use std::sync::atomic::{AtomicBool, Ordering};

/// The line every simulated result carries.
pub const SIMULATED: &str =
    "mock backend: the user kernel was checked but not run; its output is simulated";

/// Shared memory per block of an H100/H200 with the opt-in: the mock's device limit.
const MOCK_SMEM_OPTIN: u64 = 227 << 10;

/// What a check of a user kernel leaves for its results.
#[derive(Debug, Clone)]
pub struct Checked {
    pub record: KernelRecord,
    pub notes: Vec<String>,
}

/// Checks `k` (with `names` for its expressions) as far as possible without a device.
pub fn check(k: &UserKernel, names: &dyn ArgNames) -> Result<Checked> {
    let limits = Limits::typical(MOCK_SMEM_OPTIN);
    if nvrtc::available().is_ok() {
        let p = user::build(k, names, "sm_90a", nvrtc::cache_dir().as_deref())?;
        let r = user::check_launch(k, &p, names, &limits)?;
        let mut notes = vec![SIMULATED.to_string()];
        notes.extend(user::notes(k, &p, &r));
        return Ok(Checked {
            record: user::record(k, &p, &r, true),
            notes,
        });
    }
    let r = k.launch.resolve(names)?;
    check_limits(&k.entry, &r, &limits)?;
    let options = k.nvrtc_options(names)?;
    Ok(Checked {
        record: KernelRecord {
            name: k.name.clone(),
            source: k.source.display().to_string(),
            entry: k.entry.clone(),
            source_sha256: k.source_sha256.clone(),
            build_sha256: sha256_16(format!("{}\0{}", k.source_sha256, options.join("\0")).as_bytes()),
            options,
            launch: r.describe(),
            registers: None,
            spill_stores: None,
            spill_loads: None,
            simulated: true,
        },
        notes: vec![
            SIMULATED.to_string(),
            "NVRTC is not available: the kernel was not compiled and its arguments were not held against its PTX".into(),
        ],
    })
}

/// The mock's implementation entry for a registered user kernel.
pub fn info(k: &UserKernel) -> ImplInfo {
    ImplInfo::new(
        &k.name,
        &format!(
            "mock: user kernel {} from {} (checked, not run)",
            k.entry,
            k.source.display()
        ),
        false,
    )
}

/// Checks user kernel `k` as an implementation of `w`.
pub fn check_implementation(w: &Workload, k: &UserKernel) -> Result<Checked> {
    check(k, &user::names_for(w, k)?)
}

/// A registered user kernel "run" on `w`: the reference output, as the mock gives for every
/// implementation, with the kernel's record and notes.
pub fn implementation_run<'a>(mut run: MockRun<'a>, checked: Checked) -> MockRun<'a> {
    run.kernel = Some(checked);
    run
}

/// A free-form kernel, simulated.
pub struct KernelRun<'a> {
    pub busy: &'a AtomicBool,
    pub spec: KernelSpec,
    pub checked: Checked,
    pub per_iter: f64,
    pub calls: u64,
    pub sets: usize,
}

impl<'a> KernelRun<'a> {
    pub fn new(busy: &'a AtomicBool, spec: &KernelSpec, sets: usize) -> Result<KernelRun<'a>> {
        let checked = check(&spec.kernel, &spec.names())?;
        Ok(KernelRun {
            busy,
            spec: spec.clone(),
            checked,
            per_iter: spec.flops / FAKE_FLOPS + spec.bytes as f64 / FAKE_BANDWIDTH + 2e-6,
            calls: 0,
            sets,
        })
    }

    /// The simulated output: the expected values where the spec has them (rounded to the output
    /// type), else a constant pattern. With `GPUVET_MOCK_FAULT` naming the workload, `run`
    /// differs from run 0 (a determinism check fails) or element 0 is wrong.
    fn output(&self, run: usize) -> Tensor {
        let o = self.spec.output();
        let shape: Vec<usize> = o.shape.iter().map(|&d| d as usize).collect();
        let values: Vec<f64> = match (&self.spec.verify, self.spec.files.get()) {
            (KernelVerify::Expected { .. }, Some(f)) if f.expected.is_some() => {
                f.expected.as_ref().expect("checked").to_f64()
            }
            _ => (0..o.elements()).map(|i| (i % 7) as f64).collect(),
        };
        let mut t = o.dtype.tensor(&o.name, shape, &values);
        let faulty = std::env::var("GPUVET_MOCK_FAULT")
            .is_ok_and(|p| !p.is_empty() && self.spec.name().contains(&p));
        let differs = match self.spec.verify {
            KernelVerify::Determinism { .. } => run > 0,
            _ => true,
        };
        if faulty && differs {
            corrupt(&mut t);
        }
        t
    }
}

impl Prepared for KernelRun<'_> {
    fn compute_dtype(&self) -> crate::dtype::ComputeType {
        crate::dtype::ComputeType::Mock
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        self.busy.store(false, Ordering::Relaxed);
        Ok(self.output(0))
    }

    fn run_verify_repeated(&mut self, runs: usize) -> Result<Vec<Tensor>> {
        self.busy.store(false, Ordering::Relaxed);
        Ok((0..runs).map(|r| self.output(r)).collect())
    }

    fn run(&mut self, iters: u64) -> Result<f64> {
        self.busy.store(true, Ordering::Relaxed);
        self.calls += 1;
        let wobble = ((self.calls * 7919) % 11) as f64 - 5.0;
        Ok(iters as f64 * self.per_iter * (1.0 + wobble * 2e-4))
    }

    fn cache_policy(&self) -> CachePolicy {
        if self.sets > 1 {
            CachePolicy::Rotate(self.sets)
        } else {
            CachePolicy::Single
        }
    }

    fn notes(&self) -> Vec<String> {
        self.checked.notes.clone()
    }

    fn kernel_record(&self) -> Option<KernelRecord> {
        Some(self.checked.record.clone())
    }
}

impl Drop for KernelRun<'_> {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Relaxed);
    }
}
