//! Implementations added to a workload kind from outside the built-in table: the way a later
//! `bench kernel` registers a user's own kernel (a [`Source::User`](super::kernels::Source)
//! module with an [`Exec`](super::run::Exec)) as one more implementation of an existing
//! workload, measured and verified like every other.
//!
//! `CudaBackend::implementations`, `check` and `prepare` consult the registry after the
//! built-in implementations, so a registered name is listed, accepted and prepared without
//! any string dispatch of its own.

use super::device::Gpu;
use crate::backend::{ImplInfo, Prepared};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::Workload;

/// What a factory is given: the device, the workload, its inputs, the number of buffer sets
/// and the cache policy to report.
pub struct PrepareCtx<'a, 'w> {
    pub gpu: &'a Gpu,
    pub workload: &'w Workload,
    pub inputs: &'w [Tensor],
    pub sets: usize,
    pub policy: String,
}

/// Builds the prepared run of one registered implementation (typically
/// `run::CudaRun::new(ctx.gpu, exec, sets, ctx.policy)` boxed).
pub type Factory =
    Box<dyn for<'a, 'w> Fn(PrepareCtx<'a, 'w>) -> Result<Box<dyn Prepared + 'a>> + Send + Sync>;

/// Says, while the plan is checked, why a registered implementation cannot run a workload on
/// this device (a user kernel: compile errors, arguments against its PTX, launch limits).
pub type Checker = Box<dyn Fn(&Gpu, &Workload) -> Result<()> + Send + Sync>;

/// One registered implementation of one workload kind.
pub struct Registered {
    /// The workload kind it implements (`Workload::kind()`: matmul, attention, memory).
    pub workload: &'static str,
    pub info: ImplInfo,
    pub factory: Factory,
    /// Checks run by `Backend::check` before anything is allocated.
    pub check: Option<Checker>,
}

/// The implementations registered on one backend.
#[derive(Default)]
pub struct Registry {
    entries: Vec<Registered>,
}

impl Registry {
    /// Adds `info` as an implementation of `workload` kind. `builtin` are the names the
    /// backend already has for that kind: a registration may not shadow them or another
    /// registration.
    pub fn register(
        &mut self,
        workload: &'static str,
        info: ImplInfo,
        factory: Factory,
        builtin: &[&str],
    ) -> Result<()> {
        self.register_checked(workload, info, factory, None, builtin)
    }

    /// [`Registry::register`] with a check the plan runs before anything is allocated.
    pub fn register_checked(
        &mut self,
        workload: &'static str,
        info: ImplInfo,
        factory: Factory,
        check: Option<Checker>,
        builtin: &[&str],
    ) -> Result<()> {
        let taken =
            builtin.contains(&info.name.as_str()) || self.find(workload, &info.name).is_some();
        if taken {
            return Err(Error::invalid(format!(
                "an implementation `{}` of {workload} already exists",
                info.name
            )));
        }
        self.entries.push(Registered {
            workload,
            info,
            factory,
            check,
        });
        Ok(())
    }

    /// The registered implementation `name` of `workload` kind.
    pub fn find(&self, workload: &str, name: &str) -> Option<&Registered> {
        self.entries
            .iter()
            .find(|r| r.workload == workload && r.info.name == name)
    }

    /// Every registered implementation of `w`'s kind, in registration order.
    pub fn implementations(&self, w: &Workload) -> Vec<ImplInfo> {
        self.entries
            .iter()
            .filter(|r| r.workload == w.kind())
            .map(|r| r.info.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::workload::{BLayout, MatmulSpec};

    fn matmul() -> Workload {
        Workload::Matmul(MatmulSpec {
            m: 8,
            n: 8,
            k: 8,
            dtype: DType::Bf16,
            b_layout: BLayout::Nk,
        })
    }

    fn refuse() -> Factory {
        Box::new(|_ctx| Err(Error::unsupported("test factory")))
    }

    #[test]
    fn registered_implementations_are_found_by_workload_kind_and_name() {
        let mut r = Registry::default();
        let info = ImplInfo::new("my-gemm", "a user kernel", false);
        r.register("matmul", info, refuse(), &["cublaslt", "mma"])
            .unwrap();
        let w = matmul();
        assert_eq!(r.implementations(&w)[0].name, "my-gemm");
        assert!(r.find("matmul", "my-gemm").is_some());
        assert!(r.find("attention", "my-gemm").is_none());
        assert!(r.find("matmul", "other").is_none());
        // neither a built-in name nor a second registration of the same name
        let dup = |name| ImplInfo::new(name, "", false);
        let e = r
            .register("matmul", dup("mma"), refuse(), &["cublaslt", "mma"])
            .unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert!(r.register("matmul", dup("my-gemm"), refuse(), &[]).is_err());
        // the same name on another workload kind is another implementation
        r.register("attention", dup("my-gemm"), refuse(), &[])
            .unwrap();
        assert_eq!(r.implementations(&w).len(), 1);
    }
}
