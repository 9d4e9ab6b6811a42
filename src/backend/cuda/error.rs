//! Driver errors kept typed: the crate's [`Error::Driver`] carries a [`DriverErrorKind`], so a
//! caller can tell an out-of-memory (retry smaller, skip the shape) from an illegal address (a
//! broken kernel, a context that is now unusable) from any other driver failure, instead of
//! parsing a message.

use crate::error::{DriverErrorKind, Error, Result};
use cudarc::driver::sys::cudaError_enum as CUresult;
use cudarc::driver::DriverError;

/// The kind of a driver result code.
pub fn kind_of(code: CUresult) -> DriverErrorKind {
    match code {
        CUresult::CUDA_ERROR_OUT_OF_MEMORY => DriverErrorKind::OutOfMemory,
        CUresult::CUDA_ERROR_ILLEGAL_ADDRESS => DriverErrorKind::IllegalAddress,
        CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES => DriverErrorKind::LaunchOutOfResources,
        CUresult::CUDA_ERROR_LAUNCH_FAILED
        | CUresult::CUDA_ERROR_MISALIGNED_ADDRESS
        | CUresult::CUDA_ERROR_ILLEGAL_INSTRUCTION
        | CUresult::CUDA_ERROR_INVALID_PC
        | CUresult::CUDA_ERROR_HARDWARE_STACK_ERROR
        | CUresult::CUDA_ERROR_LAUNCH_TIMEOUT
        | CUresult::CUDA_ERROR_ASSERT
        | CUresult::CUDA_ERROR_ECC_UNCORRECTABLE => DriverErrorKind::LaunchFailed,
        _ => DriverErrorKind::Other,
    }
}

/// `e`, raised while doing `what`, as the crate's error. The message reads as before the
/// errors were typed: `cuda error: {what}: DriverError(CUDA_ERROR_…, "…")`.
pub fn driver(what: &str, e: DriverError) -> Error {
    // DriverError's Debug asks the driver for the error's text; without a loaded driver
    // (a constructed error, in tests) cudarc panics: fall back to the code alone.
    let mut detail = std::panic::catch_unwind(|| format!("{e:?}"))
        .unwrap_or_else(|_| format!("DriverError({:?})", e.0));
    let kind = kind_of(e.0);
    if kind == DriverErrorKind::OutOfMemory {
        // gpuvet checked the free memory before the run: what took it since is most often
        // another process, which the user can see and stop.
        detail.push_str(
            "; the device ran out of memory: another process may hold it (nvidia-smi \
             --query-compute-apps=pid,used_memory --format=csv)",
        );
    }
    Error::Driver {
        what: what.to_string(),
        kind,
        detail,
    }
}

/// Maps a driver error to [`Error::Driver`] with what was being done.
pub fn cu<T>(what: &str, r: std::result::Result<T, DriverError>) -> Result<T> {
    r.map_err(|e| driver(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_and_illegal_address_are_told_apart() {
        let oom = driver("allocate", DriverError(CUresult::CUDA_ERROR_OUT_OF_MEMORY));
        let bad = cu::<()>(
            "synchronize",
            Err(DriverError(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS)),
        )
        .unwrap_err();
        let other = driver("launch", DriverError(CUresult::CUDA_ERROR_INVALID_VALUE));
        assert_eq!(oom.driver_kind(), Some(DriverErrorKind::OutOfMemory));
        assert_eq!(bad.driver_kind(), Some(DriverErrorKind::IllegalAddress));
        assert_eq!(other.driver_kind(), Some(DriverErrorKind::Other));
        assert_eq!(Error::invalid("x").driver_kind(), None);
        // Sticky faults lose the device; out of memory and other errors do not.
        let fault = driver(
            "synchronize",
            DriverError(CUresult::CUDA_ERROR_LAUNCH_FAILED),
        );
        assert_eq!(fault.driver_kind(), Some(DriverErrorKind::LaunchFailed));
        assert!(fault.loses_device() && bad.loses_device());
        // A device-side assert is as sticky as a fault.
        let assert = driver("synchronize", DriverError(CUresult::CUDA_ERROR_ASSERT));
        assert!(assert.loses_device(), "{assert}");
        assert!(!oom.loses_device() && !other.loses_device());
        // Same text as the string errors it replaces.
        let s = bad.to_string();
        assert!(
            s.starts_with("cuda error: synchronize: DriverError(CUDA_ERROR_ILLEGAL_ADDRESS"),
            "{s}"
        );
        assert!(cu("ok", Ok::<_, DriverError>(3)).unwrap() == 3);
        // An out-of-memory says where to look for what holds the memory.
        assert!(
            oom.to_string().contains("nvidia-smi --query-compute-apps"),
            "{oom}"
        );
    }
}
