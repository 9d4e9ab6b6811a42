//! Errors that calling code has to branch on.
//!
//! Everything else travels as `anyhow::Error` at the CLI edge. The split matters for exit codes:
//! a failed verification is exit 1 (the GPU or kernel is wrong), while every variant here is a
//! problem with the request or the environment (exit 2).

use thiserror::Error;

/// Library error: bad requests and missing capabilities, each with a message a user can act on.
#[derive(Debug, Error)]
pub enum Error {
    /// A shape, size or option that cannot describe a real workload.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A dtype, implementation or operation that this backend or device does not provide.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// The workload needs more memory than the backend has free; checked before allocating.
    #[error("not enough memory on {device}: this run needs {need}, {have} is available")]
    OutOfMemory {
        device: String,
        need: crate::units::Bytes,
        have: crate::units::Bytes,
    },

    /// The requested backend cannot run here (no driver, no GPU, a missing library).
    #[error("backend {backend} is unavailable: {reason}")]
    BackendUnavailable { backend: String, reason: String },

    /// A file gpuvet reads that does not parse as what it should be: a report or baseline, a
    /// verdict, a model or SKU file. The reason says which.
    #[error("corrupt or unreadable file {path}: {reason}")]
    CorruptFile { path: String, reason: String },

    /// A failure reported by the backend runtime (CUDA call, library, kernel launch).
    #[error("{backend} error: {message}")]
    Backend { backend: String, message: String },

    /// A GPU driver call failed. `kind` is what calling code branches on; `detail` is the
    /// driver's own code and text. Displays like `Backend` did for these errors.
    #[error("cuda error: {what}: {detail}")]
    Driver {
        what: String,
        kind: DriverErrorKind,
        detail: String,
    },

    /// Not run: an earlier entry on its device raised a sticky driver error (the text names
    /// that entry and its error), so the device can run nothing more in this process.
    #[error("skipped: the device was lost after {0}")]
    DeviceLost(String),

    /// The run was interrupted (Ctrl-C) before this piece of work finished.
    #[error("interrupted")]
    Interrupted,

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The driver failures callers handle differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverErrorKind {
    /// The device ran out of memory (an allocation or a library workspace).
    OutOfMemory,
    /// A kernel touched an address it must not: the context is unusable from here on.
    IllegalAddress,
    /// A launch asked for more registers, threads or shared memory than the device has.
    LaunchOutOfResources,
    /// A kernel faulted (launch failure, misaligned address, illegal instruction, timeout,
    /// uncorrectable ECC): like an illegal address, the context is unusable from here on.
    LaunchFailed,
    /// Queued work did not finish within gpuvet's wait (a kernel that never ends, or a GPU
    /// that stopped answering): the work may still be running, so nothing more can be queued
    /// behind it on the device.
    Hung,
    Other,
}

impl DriverErrorKind {
    /// Whether the error is sticky: the driver reports it on every later call in this context,
    /// so nothing more can run on the device in this process ("device lost").
    pub fn is_sticky(self) -> bool {
        matches!(
            self,
            DriverErrorKind::IllegalAddress | DriverErrorKind::LaunchFailed | DriverErrorKind::Hung
        )
    }
}

/// Convenience alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
    /// The reason an `Unsupported` error gives, without its `unsupported: ` heading, for a
    /// caller that puts it after its own (`X cannot run Y: <reason>`); any other error whole.
    pub fn reason(&self) -> String {
        match self {
            Error::Unsupported(m) => m.clone(),
            other => other.to_string(),
        }
    }
    /// `Ok` where a caller passed the `want` `items` that `what` takes; otherwise an invalid
    /// input naming both counts, so that a mismatch never becomes an out-of-bounds read.
    pub fn expect_count(
        what: impl std::fmt::Display,
        items: &str,
        want: usize,
        got: usize,
    ) -> Result<()> {
        if want == got {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{what} takes {want} {items}, got {got}"
            )))
        }
    }
    /// Whether this error left its device unusable for the rest of the process (a sticky
    /// driver error): later work on that device would only fail with misleading messages.
    pub fn loses_device(&self) -> bool {
        self.driver_kind().is_some_and(DriverErrorKind::is_sticky)
    }
    /// The kind of a driver error; `None` for every other error.
    pub fn driver_kind(&self) -> Option<DriverErrorKind> {
        match self {
            Error::Driver { kind, .. } => Some(*kind),
            _ => None,
        }
    }
    pub fn backend(backend: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Backend {
            backend: backend.into(),
            message: message.into(),
        }
    }
}
