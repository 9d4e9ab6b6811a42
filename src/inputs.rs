//! The host inputs of each workload, generated from the run's seed. Each kind generates its
//! own (`WorkloadKind::inputs`); this module owns only the seeding rule.

use crate::tensor::{splitmix, stable_hash, Tensor};
use crate::workload::Workload;

pub use crate::workload::{TRIAD_SCALAR, WRITE_VALUE};

/// The seed of one workload's inputs: the run seed mixed with the workload's stable name, so
/// reordering or filtering workloads never changes another workload's inputs.
pub fn workload_seed(run_seed: u64, w: &Workload) -> u64 {
    splitmix(run_seed ^ stable_hash(&w.name()))
}

/// Inputs in the order backends expect them:
/// matmul `[A (M×K), B (K×N or N×K)]`, attention `[Q, K, V]`, memory copy/read `[src]`,
/// write `[]`, triad `[b, c]`.
pub fn generate(w: &Workload, run_seed: u64) -> Vec<Tensor> {
    w.inputs(workload_seed(run_seed, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::workload::MatmulSpec;

    #[test]
    fn seeds_depend_on_workload_not_order() {
        let a = Workload::Matmul(MatmulSpec::new(4, 5, 6, DType::F16));
        let b = Workload::Matmul(MatmulSpec::new(4, 5, 7, DType::F16));
        assert_ne!(workload_seed(1, &a), workload_seed(1, &b));
        assert_eq!(generate(&a, 3), generate(&a, 3));
        let ins = generate(&a, 3);
        assert_eq!(ins[0].shape, vec![4, 6]);
        assert_eq!(ins[1].shape, vec![6, 5]);
        assert_ne!(ins[0].to_f64()[..4], ins[1].to_f64()[..4]);
    }
}
