//! The host inputs of each workload, generated from the run's seed.

use crate::dtype::DType;
use crate::tensor::{splitmix, stable_hash, Tensor};
use crate::workload::{MemOp, Workload};

/// The value the memory `write` operation stores.
pub const WRITE_VALUE: f32 = 1.5;
/// The scalar of the memory `triad` (a = b + s·c).
pub const TRIAD_SCALAR: f32 = 3.0;

/// The seed of one workload's inputs: the run seed mixed with the workload's stable name, so
/// reordering or filtering workloads never changes another workload's inputs.
pub fn workload_seed(run_seed: u64, w: &Workload) -> u64 {
    splitmix(run_seed ^ stable_hash(&w.name()))
}

/// Inputs in the order backends expect them:
/// matmul `[A (M×K), B (K×N or N×K)]`, attention `[Q, K, V]`, memory copy/read `[src]`,
/// write `[]`, triad `[b, c]`.
pub fn generate(w: &Workload, run_seed: u64) -> Vec<Tensor> {
    let seed = workload_seed(run_seed, w);
    match w {
        Workload::Matmul(m) => {
            let a = Tensor::random("A", vec![m.m as usize, m.k as usize], m.dtype, seed);
            let b = Tensor::random("B", m.b_shape().to_vec(), m.dtype, splitmix(seed));
            vec![a, b]
        }
        Workload::Attention(a) => {
            let q = Tensor::random("Q", a.q_shape(), a.dtype, seed);
            let k = Tensor::random("K", a.kv_shape(), a.dtype, splitmix(seed));
            let v = Tensor::random("V", a.kv_shape(), a.dtype, splitmix(splitmix(seed)));
            vec![q, k, v]
        }
        Workload::Memory(m) => {
            let n = m.elements() as usize;
            match m.op {
                MemOp::Copy | MemOp::Read => vec![Tensor::random("src", vec![n], DType::F32, seed)],
                MemOp::Write => vec![],
                MemOp::Triad => vec![
                    Tensor::random("b", vec![n], DType::F32, seed),
                    Tensor::random("c", vec![n], DType::F32, splitmix(seed)),
                ],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
