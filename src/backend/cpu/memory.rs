//! STREAM-style memory operations over f32 arrays, split into chunks across the pool.
//!
//! The inner loops are plain slice loops (or `copy_from_slice` / `fill`) that the compiler turns
//! into vector loads and stores; the read reduction keeps many independent partial sums so it is
//! bound by memory, not by the latency of one add chain.

use super::{
    chunk_len, par_copy, rotating, Alloc, CpuBackend, CpuKernel, Run, SetKernel, MEMORY_IMPL,
};
use crate::backend::ImplInfo;
use crate::dtype::{ComputeType, DType};
use crate::error::Result;
use crate::inputs::{TRIAD_SCALAR, WRITE_VALUE};
use crate::tensor::{Data, Tensor};
use crate::workload::{MemOp, MemorySpec};
use rayon::prelude::*;

/// Smallest chunk handed to a worker (elements): 64 KiB of f32.
const MIN_CHUNK: usize = 16 << 10;
/// Elements summed in f32 before the partial sum joins the f64 total. Small enough that f32
/// rounding cannot approach the 1e-5 tolerance of the read check (at most 64 adds per lane).
const SUM_BLOCK: usize = 1024;
/// Independent f32 accumulators in the reduction: wide enough for any SIMD width.
const LANES: usize = 16;

/// One buffer set: the source arrays (empty for `write`) and the destination (empty for
/// `read`, whose result is a single number).
struct Set {
    src: Vec<f32>,
    src2: Vec<f32>,
    dst: Vec<f32>,
    sum: f64,
}

/// What the CPU memory operations are.
const ABOUT: &str = "multithreaded streaming loops over f32 arrays";

impl CpuKernel for MemorySpec {
    fn implementation(&self) -> Option<ImplInfo> {
        Some(ImplInfo::new(MEMORY_IMPL, ABOUT, false))
    }

    fn bytes_per_set(&self) -> u64 {
        self.footprint()
    }

    fn prepare<'a>(&self, cpu: &'a CpuBackend, a: Alloc) -> Run<'a> {
        rotating(PreparedMemory::new(&cpu.pool, self, &a), &a)
    }
}

struct PreparedMemory<'a> {
    pool: &'a rayon::ThreadPool,
    op: MemOp,
    n: usize,
    chunk: usize,
    sets: Vec<Set>,
}

impl<'a> PreparedMemory<'a> {
    fn new(pool: &'a rayon::ThreadPool, spec: &MemorySpec, a: &Alloc) -> Result<Self> {
        let (inputs, sets) = (a.inputs, a.count());
        let n = spec.elements() as usize;
        let chunk = chunk_len(n, pool.current_num_threads(), MIN_CHUNK);
        let src_of = |i: usize| -> Vec<f32> {
            match inputs.get(i).map(|t| &t.data) {
                Some(Data::F32(v)) => v.clone(),
                _ => Vec::new(),
            }
        };
        let sets = pool.install(|| {
            (0..sets)
                .map(|_| {
                    let (src, src2) = match spec.op {
                        MemOp::Copy | MemOp::Read => (src_of(0), Vec::new()),
                        MemOp::Write => (Vec::new(), Vec::new()),
                        MemOp::Triad => (src_of(0), src_of(1)),
                    };
                    // Written now, by the threads that will run over it (chunk by chunk):
                    // a zeroed allocation is mapped lazily, and its page faults would be
                    // timed in the first samples when there is no warm-up.
                    let dst = match spec.op {
                        MemOp::Read => Vec::new(),
                        _ => {
                            let mut d = vec![0.0f32; n];
                            d.par_chunks_mut(chunk).for_each(|c| c.fill(f32::NAN));
                            d
                        }
                    };
                    Set {
                        src,
                        src2,
                        dst,
                        sum: 0.0,
                    }
                })
                .collect()
        });
        Ok(PreparedMemory {
            pool,
            op: spec.op,
            n,
            chunk,
            sets,
        })
    }
}

/// a = b + s·c.
#[inline]
fn triad(a: &mut [f32], b: &[f32], c: &[f32]) {
    for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
        *a = b + TRIAD_SCALAR * c;
    }
}

/// Sum of `x`: f32 lanes within blocks of [`SUM_BLOCK`], blocks added in f64.
fn sum(x: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for block in x.chunks(SUM_BLOCK) {
        let mut acc = [0.0f32; LANES];
        let mut it = block.chunks_exact(LANES);
        for c in &mut it {
            for (a, v) in acc.iter_mut().zip(c) {
                *a += v;
            }
        }
        let tail: f32 = it.remainder().iter().sum();
        total += acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64;
    }
    total
}

impl SetKernel for PreparedMemory<'_> {
    fn run_set(&mut self, i: usize) {
        let ch = self.chunk;
        let op = self.op;
        let set = &mut self.sets[i];
        self.pool.install(|| match op {
            MemOp::Copy => par_copy(&mut set.dst, &set.src, ch),
            MemOp::Write => set.dst.par_chunks_mut(ch).for_each(|d| d.fill(WRITE_VALUE)),
            MemOp::Triad => set
                .dst
                .par_chunks_mut(ch)
                .zip(set.src.par_chunks(ch))
                .zip(set.src2.par_chunks(ch))
                .for_each(|((a, b), c)| triad(a, b, c)),
            MemOp::Read => set.sum = set.src.par_chunks(ch).map(sum).sum::<f64>(),
        });
    }

    fn compute_dtype(&self) -> ComputeType {
        ComputeType::uniform(DType::F32)
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        let set = &mut self.sets[0];
        set.dst.fill(f32::NAN);
        set.sum = f64::NAN;
        self.run_set(0);
        let set = &self.sets[0];
        Ok(match self.op {
            MemOp::Read => Tensor {
                name: "sum".into(),
                shape: vec![1],
                data: Data::F64(vec![set.sum]),
            },
            _ => Tensor {
                name: "dst".into(),
                shape: vec![self.n],
                data: Data::F32(set.dst.clone()),
            },
        })
    }

    /// Keeps the reduction's result observable so the loop cannot be optimised away.
    fn after_runs(&self) {
        std::hint::black_box(self.sets.iter().map(|s| s.sum).sum::<f64>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_sum_matches_f64() {
        let x: Vec<f32> = (0..10_007)
            .map(|i| ((i * 37 % 101) as f32) * 0.01 - 0.5)
            .collect();
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum(&x) - want).abs() < 1e-6 * x.len() as f64);
        assert_eq!(sum(&[]), 0.0);
    }
}
