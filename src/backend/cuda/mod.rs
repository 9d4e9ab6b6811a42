//! CUDA backend: cudarc device layer, NVRTC kernel pipeline, cuBLASLt references, NVML
//! telemetry. (Being written: until then it reports itself unavailable.)

use super::Backend;
use crate::error::{Error, Result};

/// Opens every visible CUDA device as a backend, or says why none can be opened (no driver,
/// no GPU, a missing library). Never panics, even when libcuda is absent.
pub fn open_all() -> Result<Vec<Box<dyn Backend>>> {
    Err(Error::BackendUnavailable {
        backend: "cuda".into(),
        reason: "the CUDA backend is not built into this gpuvet yet".into(),
    })
}

/// Hash of the kernel sources and compile options, recorded in every GPU report.
pub fn kernel_hash() -> Option<String> {
    None
}

/// Text for `gpuvet list --kernels [-v]`.
pub fn list_kernels(_verbose: bool) -> Result<String> {
    Ok("no CUDA kernels are built into this gpuvet yet".into())
}
