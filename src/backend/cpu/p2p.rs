//! Peer copies on the CPU backend: none. The CPU is one device, so there is no pair to copy
//! between; the plan sees no implementation and says so.

use super::{Alloc, CpuBackend, CpuKernel, Run};
use crate::backend::ImplInfo;
use crate::error::Error;
use crate::workload::{P2pSpec, WorkloadKind};

impl CpuKernel for P2pSpec {
    fn implementation(&self) -> Option<ImplInfo> {
        None
    }

    fn bytes_per_set(&self) -> u64 {
        self.buffer_bytes()
    }

    fn prepare<'a>(&self, _cpu: &'a CpuBackend, _a: Alloc) -> Run<'a> {
        Err(Error::unsupported(format!(
            "the CPU backend is one device: {} needs two",
            self.name()
        )))
    }
}
