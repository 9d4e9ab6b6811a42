//! Verification of what moved: host↔device transfers and peer copies bit for bit against what
//! was sent, collectives element by element against the known per-rank inputs (regenerated
//! here from the seed, for ranks held by other processes too).

use super::{exact_elements, Verification, Verify, VerifyMethod, Worst};
use crate::tensor::{splitmix, Tensor};
use crate::workload::collective::RankValues;
use crate::workload::{CollectiveOp, CollectiveSpec, P2pSpec, TransferSpec};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

/// Reference work (elements × ranks summed) up to which every output element of a collective
/// is checked; above it, a sample.
const FULL_COLLECTIVE_WORK: u64 = 1 << 27;
/// Random elements checked per rank in a sampled collective check (on top of every chunk's
/// first and last elements).
const SAMPLED_PER_RANK: usize = 1 << 16;

/// The sent payloads laid end to end, in the order the output holds what landed.
fn sent_in_output_order(inputs: &[Tensor]) -> impl Fn(usize) -> f64 + Sync + '_ {
    let len = inputs.first().map_or(0, |t| t.len());
    move |i| inputs[i / len.max(1)].get(i % len.max(1))
}

impl Verify for TransferSpec {
    /// Every word that landed against every word sent.
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, _seed: u64) -> Verification {
        let sent = sent_in_output_order(inputs);
        exact_elements(out.len(), |i| (sent(i), out.get(i)))
    }
}

impl Verify for P2pSpec {
    /// Every word that landed on the peer against every word sent.
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, _seed: u64) -> Verification {
        let sent = sent_in_output_order(inputs);
        exact_elements(out.len(), |i| (sent(i), out.get(i)))
    }
}

impl Verify for CollectiveSpec {
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, seed: u64) -> Verification {
        verify_collective(self, inputs, out, seed)
    }
}

/// Which receive elements of one rank are checked: all, or the first and last of every
/// per-rank chunk plus a seeded random sample.
fn checked_elements(spec: &CollectiveSpec, full: bool, rank: u32, seed: u64) -> Vec<u64> {
    let recv = spec.recv_elements();
    if full {
        return (0..recv).collect();
    }
    let chunk = (spec.elements() / spec.ranks.max(1) as u64).max(1);
    let mut v: Vec<u64> = Vec::new();
    let mut start = 0;
    while start < recv {
        let end = (start + chunk).min(recv);
        v.extend(start..(start + 64).min(end));
        v.extend(end.saturating_sub(64).max(start)..end);
        start = end;
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(splitmix(seed ^ rank as u64));
    v.extend((0..SAMPLED_PER_RANK).map(|_| rng.random_range(0..recv)));
    v.sort_unstable();
    v.dedup();
    v
}

/// Each receive buffer held here against the reduction or copy of the known inputs (those held
/// here as given, the others regenerated from the seed). Exact (bit for bit, in the output
/// dtype) while sums of the inputs are exact integers in it (`CollectiveSpec::exact`); beyond
/// that, within the dtype's tolerance of the largest sum.
fn verify_collective(
    spec: &CollectiveSpec,
    inputs: &[Tensor],
    out: &Tensor,
    seed: u64,
) -> Verification {
    let values = RankValues { spec, inputs, seed };
    let recv = spec.recv_elements();
    let ranks: Vec<u32> = spec.local_ranks().collect();
    let per_element = if spec.op.reduces() {
        spec.ranks.max(1) as u64
    } else {
        1
    };
    let full = ranks.len() as u64 * recv * per_element <= FULL_COLLECTIVE_WORK;
    let exact = spec.exact();
    let tol = if exact { 0.0 } else { spec.dtype.tolerance() };
    let scale = 2.0 * spec.ranks.max(1) as f64;
    let worst = ranks
        .par_iter()
        .enumerate()
        .map(|(slot, &rank)| {
            let mut w = Worst::new();
            for j in checked_elements(spec, full, rank, seed) {
                let want = spec.dtype.quantize(values.expected(rank, j) as f32) as f64;
                let got = out.get(slot * recv as usize + j as usize);
                let e = if exact {
                    if got.to_bits() == want.to_bits() {
                        0.0
                    } else {
                        ((got - want).abs() / scale).max(f64::MIN_POSITIVE)
                    }
                } else {
                    (got - want).abs() / scale
                };
                w.see(e, || {
                    format!("rank {rank} element {j} (want {want}, got {got})")
                });
            }
            w
        })
        .reduce(Worst::new, Worst::merge);
    let method = if full {
        VerifyMethod::Exact
    } else {
        VerifyMethod::Sampled
    };
    let mut v = worst.finish(method, tol);
    if !v.passed && spec.op == CollectiveOp::Broadcast {
        v.detail = v.detail.map(|d| format!("{d} (root 0's data expected)"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::workload::collective::rank_input;
    use crate::workload::{CollectiveOp, RankRange, WorkloadKind};

    /// The reference collective computed naively from the rank inputs, every rank's output
    /// laid end to end: what any correct implementation must hand back.
    fn reference(spec: &CollectiveSpec, seed: u64) -> Tensor {
        let mut vals = Vec::new();
        for r in spec.local_ranks() {
            for j in 0..spec.recv_elements() {
                vals.push(crate::workload::collective::expected(spec, seed, r, j) as f32);
            }
        }
        Tensor::from_f32("recv", vec![vals.len()], spec.dtype, &vals)
    }

    #[test]
    fn every_op_checks_what_it_must_and_catches_a_missing_rank() {
        for op in CollectiveOp::ALL {
            for dtype in [DType::Bf16, DType::F16, DType::F32] {
                let s = CollectiveSpec::new(op, dtype, 3 * 1024, 3);
                let good = reference(&s, 5);
                assert_eq!(good.len(), s.output_len());
                let v = verify_collective(&s, &[], &good, 5);
                assert!(v.passed, "{op} {dtype}: {v:?}");
                assert_eq!(v.checked_elements as usize, s.output_len());
                // Rank 1's contribution dropped (or its data lost) in element 7 of rank 2.
                let mut vals = good.to_f32();
                let at = 2 * s.recv_elements() as usize + 7;
                vals[at] = if op.reduces() {
                    vals[at] - rank_input(&s, 5, 1).get(7) as f32
                } else {
                    -vals[at]
                };
                let bad = Tensor::from_f32("recv", vec![vals.len()], dtype, &vals);
                let v = verify_collective(&s, &[], &bad, 5);
                assert!(!v.passed, "{op} {dtype}");
                assert!(v.detail.unwrap().contains("rank 2 element 7"), "{op}");
            }
        }
    }

    #[test]
    fn ranks_held_elsewhere_are_regenerated_from_the_seed() {
        let mut s = CollectiveSpec::new(CollectiveOp::AllReduce, DType::Bf16, 512, 8);
        s.local = Some(RankRange { first: 6, count: 2 });
        let out = reference(&s, 11);
        assert_eq!(out.len(), 2 * 256);
        assert!(verify_collective(&s, &[], &out, 11).passed);
        // The output of another pair of ranks is not this one's.
        let mut other = s.clone();
        other.local = Some(RankRange { first: 0, count: 2 });
        assert!(!verify_collective(&s, &[], &reference(&other, 12), 11).passed);
    }

    #[test]
    fn large_collectives_are_sampled() {
        let s = CollectiveSpec::new(CollectiveOp::AllGather, DType::F32, 1 << 30, 2);
        let recv = s.recv_elements();
        let picked = checked_elements(&s, false, 0, 3);
        assert!(picked.contains(&0) && picked.contains(&(recv - 1)));
        let mid = s.elements() / 2;
        assert!(picked.contains(&mid) && picked.contains(&(mid - 1)));
        assert!(picked.len() < 200_000);
    }

    #[test]
    fn transfers_compare_every_word() {
        let t = TransferSpec::new(
            crate::workload::Direction::Bidir,
            crate::workload::HostMemory::Pinned,
            4096,
        );
        let ins = t.inputs(1);
        let mut landed: Vec<f32> = ins.iter().flat_map(|x| x.to_f32()).collect();
        let ok = Tensor::from_f32("dst", vec![landed.len()], DType::F32, &landed);
        assert!(t.verify_output(&ins, &ok, 0).passed);
        landed[1500] = 0.0;
        let bad = Tensor::from_f32("dst", vec![landed.len()], DType::F32, &landed);
        let v = t.verify_output(&ins, &bad, 0);
        assert!(!v.passed && v.detail.unwrap().contains("element 1500"));
    }
}
