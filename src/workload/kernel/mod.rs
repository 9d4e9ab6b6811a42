//! User kernels: a CUDA kernel of the user's own, described by a spec, measured like gpuvet's.

pub mod expr;
pub mod launch;
