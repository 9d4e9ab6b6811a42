//! The mock's stand-in for user kernels, so that the whole path (plan, checks, verify, measure,
//! report, compare's "kernel changed") is tested without a GPU, and honestly labelled: nothing is
//! executed. The checks are the CUDA backend's own where they need no device: the kernel is
//! compiled by NVRTC for sm_90a (when NVRTC is here), its entry found and its arguments held
//! against its PTX, its launch against an H100/H200's limits. The output is simulated: the
//! workload's exact reference for an implementation, the expected file for a free-form kernel
//! with one, a constant otherwise; every result says so in its notes and its kernel record.

use crate::backend::cuda::{nvrtc, user};
use crate::backend::ImplInfo;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::workload::kernel::launch::{check_limits, ArgNames, Limits};
use crate::workload::kernel::spec::sha256_16;
use crate::workload::kernel::{KernelRecord, KernelSpec, KernelVerify, UserKernel};
use crate::workload::Workload;

/// The line every simulated result carries where NVRTC compiled the kernel.
pub const SIMULATED: &str =
    "mock backend: the user kernel was checked but not run; its output is simulated";

/// The line it carries where there is no NVRTC: only the launch could be checked.
pub const SIMULATED_UNCOMPILED: &str = "mock backend: the user kernel was neither compiled (no NVRTC) nor run; only its launch was checked; its output is simulated";

/// What the mock does with a user kernel here, for its implementation lists.
fn what_happens() -> &'static str {
    if nvrtc::available().is_ok() {
        "checked, not run"
    } else {
        "not compiled (no NVRTC), not run"
    }
}

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
            compiled: false,
        },
        notes: vec![
            SIMULATED_UNCOMPILED.to_string(),
            "NVRTC is not available: the kernel was not compiled and its arguments were not held against its PTX".into(),
        ],
    })
}

/// The mock's implementation entry for a registered user kernel.
pub fn info(k: &UserKernel) -> ImplInfo {
    ImplInfo::new(
        &k.name,
        &format!(
            "mock: user kernel {} from {} ({})",
            k.entry,
            k.source.display(),
            what_happens()
        ),
        false,
    )
}

/// Checks user kernel `k` as an implementation of `w`.
pub fn check_implementation(w: &Workload, k: &UserKernel) -> Result<Checked> {
    check(k, &user::names_for(w, k)?)
}

/// The mock's one implementation of a free-form kernel.
pub fn free_form_info() -> ImplInfo {
    ImplInfo::new(
        crate::workload::kernel::FREE_FORM_IMPL,
        &format!(
            "mock: the user's kernel, {} (simulated output, fake clock)",
            what_happens()
        ),
        false,
    )
}

/// The simulated output of free-form kernel `spec`: the expected values where the spec has
/// them (rounded to the output type), else a constant pattern. `MockRun` corrupts it where
/// `GPUVET_MOCK_FAULT` names the workload, as for every kind.
pub fn simulated_output(spec: &KernelSpec) -> Tensor {
    let o = spec.output();
    let shape: Vec<usize> = o.shape.iter().map(|&d| d as usize).collect();
    let expected = match (&spec.verify, spec.files.get()) {
        (KernelVerify::Expected { .. }, Some(f)) => f.expected.as_ref(),
        _ => None,
    };
    let values: Vec<f64> = match expected {
        Some(e) => e.to_f64(),
        None => (0..o.elements()).map(|i| (i % 7) as f64).collect(),
    };
    o.dtype.tensor(&o.name, shape, &values)
}
