//! Collectives (all-reduce, all-gather, reduce-scatter, broadcast, all-to-all) as nccl-tests
//! measures them: a message size, a dtype and a number of ranks; algorithm bandwidth `S / t`
//! and bus bandwidth `algbw × factor(n)` (nccl-tests' doc/PERFORMANCE.md).
//!
//! The inputs are known per rank: element `i` of rank `r`'s send buffer is one of −2, −1, 1, 2
//! picked by a hash of (seed, rank, i), so any rank's input (a rank in another process too)
//! can be regenerated where the output is checked, and sums over up to 128 ranks stay exact
//! integers even in bf16 whatever order the library adds them in.

use super::axis::{size_only_axes, size_only_params};
use super::{size_label, InputSpec, Placing, Roof, Workload, WorkloadKind};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{splitmix, Tensor};
use crate::units::Bytes;
use crate::verify::{Verification, Verify, VerifyMethod, Worst};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A collective operation (sum for the reducing ones; root 0 for broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectiveOp {
    AllReduce,
    AllGather,
    ReduceScatter,
    Broadcast,
    AllToAll,
}

impl CollectiveOp {
    pub const ALL: [CollectiveOp; 5] = [
        CollectiveOp::AllReduce,
        CollectiveOp::AllGather,
        CollectiveOp::ReduceScatter,
        CollectiveOp::Broadcast,
        CollectiveOp::AllToAll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CollectiveOp::AllReduce => "all_reduce",
            CollectiveOp::AllGather => "all_gather",
            CollectiveOp::ReduceScatter => "reduce_scatter",
            CollectiveOp::Broadcast => "broadcast",
            CollectiveOp::AllToAll => "all_to_all",
        }
    }

    /// nccl-tests' bus-bandwidth factor for `n` ranks: busbw = algbw × factor. All-reduce moves
    /// every element out of and back into each rank (2(n−1)/n); all-gather, reduce-scatter and
    /// all-to-all half of that ((n−1)/n); a broadcast is bound by what leaves the root (1).
    /// One rank moves nothing over a link: 0 for every op but broadcast.
    pub fn bus_factor(self, n: u32) -> f64 {
        let n = n.max(1) as f64;
        match self {
            CollectiveOp::AllReduce => 2.0 * (n - 1.0) / n,
            CollectiveOp::AllGather | CollectiveOp::ReduceScatter | CollectiveOp::AllToAll => {
                (n - 1.0) / n
            }
            CollectiveOp::Broadcast => 1.0,
        }
    }

    /// True for the operations that add the ranks' inputs.
    pub fn reduces(self) -> bool {
        matches!(self, CollectiveOp::AllReduce | CollectiveOp::ReduceScatter)
    }

    /// True where the size is split evenly between the ranks (its element count is rounded
    /// down to a multiple of the rank count, as nccl-tests does).
    fn splits(self) -> bool {
        matches!(
            self,
            CollectiveOp::AllGather | CollectiveOp::ReduceScatter | CollectiveOp::AllToAll
        )
    }
}

crate::label::display_name!(CollectiveOp);

impl std::str::FromStr for CollectiveOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.to_ascii_lowercase().replace(['-', '_'], "");
        CollectiveOp::ALL
            .into_iter()
            .find(|o| o.name().replace('_', "") == t)
            .or(match t.as_str() {
                "allreduce" | "ar" => Some(CollectiveOp::AllReduce),
                "bcast" => Some(CollectiveOp::Broadcast),
                "alltoall" | "a2a" => Some(CollectiveOp::AllToAll),
                _ => None,
            })
            .ok_or_else(|| {
                format!(
                    "unknown collective `{s}` (all_reduce, all_gather, reduce_scatter, broadcast, all_to_all)"
                )
            })
    }
}

/// The ranks a process holds when a collective spans several processes: `first ..
/// first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RankRange {
    pub first: u32,
    pub count: u32,
}

/// Dtypes a collective runs in (NCCL has all three; the CPU backend too).
pub const COLLECTIVE_DTYPES: [DType; 3] = [DType::Bf16, DType::F16, DType::F32];

/// One collective over `ranks` ranks with messages of `bytes` (nccl-tests' size `S`: the
/// largest per-rank buffer, i.e. the all-reduce array, the gathered all-gather output, the
/// reduce-scatter input, the broadcast buffer, one rank's all-to-all send buffer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectiveSpec {
    pub op: CollectiveOp,
    pub dtype: DType,
    /// Size `S` in bytes as asked (see [`CollectiveSpec::bytes`] for the size that runs).
    pub bytes: u64,
    /// Ranks taking part; 0 until the plan resolves it from the devices of the run.
    pub ranks: u32,
    /// The ranks this process holds, when it is one process of several (a Slurm world);
    /// `None` when every rank is here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<RankRange>,
}

impl CollectiveSpec {
    pub fn new(op: CollectiveOp, dtype: DType, bytes: u64, ranks: u32) -> Self {
        CollectiveSpec {
            op,
            dtype,
            bytes,
            ranks,
            local: None,
        }
    }

    fn n(&self) -> u64 {
        self.ranks.max(1) as u64
    }

    /// Elements of `S` that run: the bytes asked for in whole elements, rounded down to a
    /// multiple of the rank count where the op splits them between ranks.
    pub fn elements(&self) -> u64 {
        let e = self.bytes / self.dtype.size();
        if self.op.splits() {
            e / self.n() * self.n()
        } else {
            e
        }
    }

    /// Elements of each rank's send buffer.
    pub fn send_elements(&self) -> u64 {
        match self.op {
            CollectiveOp::AllGather => self.elements() / self.n(),
            _ => self.elements(),
        }
    }

    /// Elements of each rank's receive buffer.
    pub fn recv_elements(&self) -> u64 {
        match self.op {
            CollectiveOp::ReduceScatter => self.elements() / self.n(),
            _ => self.elements(),
        }
    }

    /// The ranks held here (all of them unless [`CollectiveSpec::local`] says otherwise).
    pub fn local_ranks(&self) -> std::ops::Range<u32> {
        match self.local {
            Some(r) => r.first..r.first + r.count,
            None => 0..self.ranks,
        }
    }

    /// `collective.all_reduce.bf16.64MiB.n8`.
    pub fn name(&self) -> String {
        format!(
            "collective.{}.{}.{}.n{}",
            self.op,
            self.dtype,
            size_label(self.bytes),
            self.ranks
        )
    }

    /// `S` of the size that runs: what algbw divides by the time.
    pub fn bytes(&self) -> u64 {
        self.elements() * self.dtype.size()
    }

    /// Reductions are counted as bandwidth, not arithmetic.
    pub fn flops(&self) -> f64 {
        0.0
    }

    /// nccl-tests' bus-bandwidth factor of this op at this rank count.
    pub fn bus_factor(&self) -> f64 {
        self.op.bus_factor(self.ranks)
    }

    pub fn validate(&self) -> Result<()> {
        if !COLLECTIVE_DTYPES.contains(&self.dtype) {
            return Err(Error::invalid(format!(
                "collectives run in bf16, f16 or f32, not {}",
                self.dtype
            )));
        }
        if self.bytes > 1 << 40 {
            return Err(Error::invalid(format!(
                "collective size {} is beyond any device",
                Bytes(self.bytes)
            )));
        }
        if self.ranks > 0 && self.elements() == 0 {
            return Err(Error::invalid(format!(
                "{} of {} over {} ranks leaves no element per rank",
                self.op,
                Bytes(self.bytes),
                self.ranks
            )));
        }
        if self.bytes < self.dtype.size() {
            return Err(Error::invalid(format!(
                "collective size {} is less than one {} element",
                Bytes(self.bytes),
                self.dtype
            )));
        }
        if let Some(r) = self.local {
            if r.count == 0 || r.first as u64 + r.count as u64 > self.ranks as u64 {
                return Err(Error::invalid(format!(
                    "local ranks {}..{} are not within the {} ranks of the collective",
                    r.first,
                    r.first as u64 + r.count as u64,
                    self.ranks
                )));
            }
        }
        Ok(())
    }

    /// The largest |sum| of inputs a reduction can reach is 2 × ranks: exact integers (and so
    /// bit-exact results whatever the order of additions) while that is within the dtype's
    /// exactly representable integers.
    pub fn exact(&self) -> bool {
        !self.op.reduces() || 2 * self.n() <= exact_integers(self.dtype)
    }
}

/// Largest integer up to which every integer is exact in `dtype`.
fn exact_integers(dtype: DType) -> u64 {
    match dtype {
        DType::Bf16 => 256,
        DType::F16 => 2048,
        _ => 1 << 24,
    }
}

/// Input values, two bits of a hash each: never zero, so a rank that does not contribute
/// changes every element it should have.
const VALUES: [f32; 4] = [-2.0, -1.0, 1.0, 2.0];

/// The seed of rank `rank`'s inputs.
fn rank_seed(seed: u64, rank: u32) -> u64 {
    splitmix(seed ^ (rank as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03))
}

/// Element `i` of rank `rank`'s send buffer, from the workload seed.
#[inline]
pub fn rank_value(seed: u64, rank: u32, i: u64) -> f32 {
    let h = splitmix(rank_seed(seed, rank) ^ (i / 32));
    VALUES[((h >> (2 * (i % 32))) & 3) as usize]
}

/// The send buffer of rank `rank`, in the spec's dtype.
pub fn rank_input(spec: &CollectiveSpec, seed: u64, rank: u32) -> Tensor {
    let n = spec.send_elements() as usize;
    let rs = rank_seed(seed, rank);
    let mut values = vec![0f32; n];
    use rayon::prelude::*;
    values.par_chunks_mut(32).enumerate().for_each(|(c, out)| {
        let h = splitmix(rs ^ c as u64);
        for (j, x) in out.iter_mut().enumerate() {
            *x = VALUES[((h >> (2 * j)) & 3) as usize];
        }
    });
    Tensor::from_f32(&format!("send.r{rank}"), vec![n], spec.dtype, &values)
}

/// Where rank `r`'s inputs come from when an output is checked: the tensors held here (the
/// send buffers of the spec's local ranks, in rank order), else regenerated from the workload
/// seed (ranks held by other processes).
pub struct RankValues<'a> {
    pub spec: &'a CollectiveSpec,
    pub inputs: &'a [Tensor],
    pub seed: u64,
}

impl RankValues<'_> {
    /// Element `i` of rank `r`'s send buffer.
    pub fn get(&self, r: u32, i: u64) -> f64 {
        let local = self.spec.local_ranks();
        if local.contains(&r) && self.inputs.len() == local.len() {
            self.inputs[(r - local.start) as usize].get(i as usize)
        } else {
            rank_value(self.seed, r, i) as f64
        }
    }

    /// What element `j` of rank `rank`'s receive buffer must hold (sum for the reductions,
    /// rank 0's data for broadcast), in f64.
    pub fn expected(&self, rank: u32, j: u64) -> f64 {
        let spec = self.spec;
        let n = spec.ranks.max(1);
        let v = |r: u32, i: u64| self.get(r, i);
        let chunk = spec.elements() / n as u64;
        match spec.op {
            CollectiveOp::AllReduce => (0..n).map(|r| v(r, j)).sum(),
            CollectiveOp::ReduceScatter => (0..n).map(|r| v(r, rank as u64 * chunk + j)).sum(),
            CollectiveOp::AllGather => v((j / chunk) as u32, j % chunk),
            CollectiveOp::Broadcast => v(0, j),
            CollectiveOp::AllToAll => v((j / chunk) as u32, rank as u64 * chunk + j % chunk),
        }
    }
}

/// What element `j` of rank `rank`'s receive buffer must hold, every rank's input regenerated
/// from the workload seed.
pub fn expected(spec: &CollectiveSpec, seed: u64, rank: u32, j: u64) -> f64 {
    let values = RankValues {
        spec,
        inputs: &[],
        seed,
    };
    values.expected(rank, j)
}

/// The receive buffers of every rank, laid end to end, computed naively from the send
/// buffers of every rank (`inputs`, ranks 0..n): what a correct collective hands back. Sums are
/// taken in f64.
pub fn reference(spec: &CollectiveSpec, inputs: &[Tensor]) -> Vec<f32> {
    let n = inputs.len();
    let e = spec.elements() as usize;
    let chunk = e / n.max(1);
    let get = |r: usize, i: usize| inputs[r].get(i);
    let sum = |i: usize| (0..n).map(|r| get(r, i)).sum::<f64>();
    let mut out = Vec::with_capacity(n * spec.recv_elements() as usize);
    for rank in 0..n {
        for j in 0..spec.recv_elements() as usize {
            out.push(match spec.op {
                CollectiveOp::AllReduce => sum(j),
                CollectiveOp::ReduceScatter => sum(rank * chunk + j),
                CollectiveOp::AllGather => get(j / chunk, j % chunk),
                CollectiveOp::Broadcast => get(0, j),
                CollectiveOp::AllToAll => get(j / chunk, rank * chunk + j % chunk),
            } as f32);
        }
    }
    out
}

/// Reference work (elements × ranks summed) up to which every output element of a collective
/// is checked; above it, a sample.
const FULL_COLLECTIVE_WORK: u64 = 1 << 27;
/// Random elements checked per rank in a sampled collective check (on top of every chunk's
/// first and last elements).
const SAMPLED_PER_RANK: usize = 1 << 16;

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
                        crate::verify::mismatch_error(got, want, scale)
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
    if v.passed && !exact && spec.op.reduces() {
        if let Some(why) = missing_share(spec, &values, out, &ranks, full, seed) {
            v.passed = false;
            v.detail = Some(why);
        }
    }
    if !v.passed && spec.op == CollectiveOp::Broadcast {
        v.detail = v.detail.map(|d| format!("{d} (root 0's data expected)"));
    }
    v
}

/// How far a rank's share of a reduction may stray (as a fraction of the rank's input) before
/// it counts as missing or doubled: a lost rank gives −1, a rank added twice +1.
const SHARE_LIMIT: f64 = 0.5;

/// Standard errors a share must stand out by before it is called missing or doubled.
const SHARE_SIGMAS: f64 = 6.0;

/// A rank whose input a non-exact reduction left out (or added twice), found across elements.
///
/// Past the exact range ([`CollectiveSpec::exact`]) the element check allows rounding of the
/// order of the ranks' count, and one missing ±1 or ±2 hides in it: a bf16 all-reduce over 256
/// ranks that dropped a rank passed. Across elements it cannot hide: the residual `got − sum`
/// of a correct reduction is rounding, not aligned with any rank's input, while a reduction
/// without rank `r` leaves `−x_r` in it. So for every rank the share
/// `c_r = Σ d·x_r / Σ x_r²` (the least-squares fit of the residual on the rank's input) must be
/// near 0; −1 is a missing rank, +1 a doubled one. A share counts only where it also stands
/// [`SHARE_SIGMAS`] standard errors from 0 (the spread of what the fit leaves), so rounding
/// noise alone never fails a run.
fn missing_share(
    spec: &CollectiveSpec,
    values: &RankValues,
    out: &Tensor,
    slots: &[u32],
    full: bool,
    seed: u64,
) -> Option<String> {
    let n = spec.ranks.max(1);
    let recv = spec.recv_elements();
    let chunk = spec.elements() / n as u64;
    slots.par_iter().enumerate().find_map_any(|(slot, &rank)| {
        let elements = checked_elements(spec, full, rank, seed);
        let source = |j: u64| match spec.op {
            CollectiveOp::ReduceScatter => rank as u64 * chunk + j,
            _ => j,
        };
        // One pass: per rank, the sums the fit and its spread need. With c = Σd·x / Σx², the
        // spread Σ(d − c·x)²·x² is Σd²x² − 2c·Σd·x³ + c²·Σx⁴.
        let mut x = vec![0f64; n as usize];
        let mut sums = vec![[0f64; 5]; n as usize];
        for &j in &elements {
            let i = source(j);
            for (r, xr) in x.iter_mut().enumerate() {
                *xr = values.get(r as u32, i);
            }
            let d = out.get(slot * recv as usize + j as usize) - x.iter().sum::<f64>();
            for (s, &xr) in sums.iter_mut().zip(&x) {
                let x2 = xr * xr;
                s[0] += d * xr;
                s[1] += x2;
                s[2] += d * d * x2;
                s[3] += d * xr * x2;
                s[4] += x2 * x2;
            }
        }
        sums.iter().enumerate().find_map(|(r, s)| {
            let c = s[0] / s[1].max(1.0);
            let spread = (s[2] - 2.0 * c * s[3] + c * c * s[4]).max(0.0);
            let sigma = spread.sqrt() / s[1].max(1.0);
            (c.abs() >= SHARE_LIMIT && c.abs() >= SHARE_SIGMAS * sigma).then(|| {
                format!(
                    "rank {rank}: the input of rank {r} is {} ({:+.2} of it across {} elements, \
                     ±{sigma:.2}); one rank is within rounding of each element at {n} ranks in {}",
                    if c < 0.0 { "missing" } else { "added twice" },
                    c,
                    elements.len(),
                    spec.dtype
                )
            })
        })
    })
}

impl WorkloadKind for CollectiveSpec {
    const KIND: &'static str = "collective";
    /// Send and receive buffers of every rank held here.
    fn buffer_bytes(&self) -> u64 {
        let local = self.local_ranks().len().max(1) as u64;
        local * (self.send_elements() + self.recv_elements()) * self.dtype.size()
    }
    fn result_dtype(&self) -> DType {
        self.dtype
    }
    fn roof(&self) -> Roof {
        Roof::GroupLink
    }
    /// busbw is the headline, as nccl-tests prints it.
    fn rate_factor(&self) -> f64 {
        self.bus_factor()
    }
    fn placing(&self) -> Placing {
        Placing::Group
    }
    fn ranks(&self) -> Option<u32> {
        Some(self.ranks)
    }
    fn with_ranks(&self, ranks: u32, local: Option<RankRange>) -> Option<Workload> {
        Some(Workload::Collective(CollectiveSpec {
            ranks,
            local,
            ..self.clone()
        }))
    }
    fn notes(&self) -> Vec<String> {
        let runs = self.bytes();
        if runs == self.bytes {
            return Vec::new();
        }
        vec![format!(
            "{} runs {runs} B, not the {} B asked for: whole {} elements{}",
            self.op,
            self.bytes,
            self.dtype,
            if self.op.splits() {
                format!(", split evenly over {} ranks", self.ranks)
            } else {
                String::new()
            }
        )]
    }

    fn test_key(&self) -> String {
        format!("collective.{}", self.op)
    }
    /// The send buffer of every rank held here, in rank order.
    fn input_specs(&self) -> Vec<InputSpec> {
        let n = vec![self.send_elements() as usize];
        vec![InputSpec::new("send", n, self.dtype); self.local_ranks().len()]
    }
    /// Known values rather than random ones ([`rank_input`]): any rank's input can be
    /// regenerated where an output is checked, and sums stay exact.
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        self.local_ranks()
            .map(|r| rank_input(self, seed, r))
            .collect()
    }
    /// The receive buffers of the ranks held here, one after another.
    fn output_len(&self) -> usize {
        self.local_ranks().len() * self.recv_elements() as usize
    }
    size_only_params!(
        |s| ("op", s.op.name().into()),
        ("dtype", s.dtype.name().into()),
        ("ranks", s.ranks.to_string())
    );
}

size_only_axes! {
    /// The axes of a collective sweep, op outermost, size fastest.
    pub struct CollectiveAxes for CollectiveSpec as Collective {
        op: CollectiveOp,
        dtype: DType,
    }
    fixed {
        /// Ranks (0 = one per device of the run, or the CPU backend's default thread count).
        ranks: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A size that is not whole elements per rank runs rounded down, and the result says so
    /// (its id keeps the size asked for; `bytes` and the rate use the size that ran).
    #[test]
    fn a_rounded_size_is_a_note() {
        let s = CollectiveSpec::new(CollectiveOp::AllToAll, DType::F32, 4098, 4);
        assert_eq!(s.bytes(), 4096);
        assert_eq!(
            s.notes(),
            ["all_to_all runs 4096 B, not the 4098 B asked for: whole f32 elements, split evenly over 4 ranks"]
        );
        let whole = CollectiveSpec::new(CollectiveOp::AllReduce, DType::Bf16, 1 << 20, 3);
        assert!(whole.notes().is_empty());
    }

    /// The factors of nccl-tests' doc/PERFORMANCE.md ("Summary"), at several rank counts.
    #[test]
    fn bus_factors_are_nccl_tests_definitions() {
        for n in [1u32, 2, 3, 4, 8, 16, 64] {
            let nf = n as f64;
            let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
            assert!(close(
                CollectiveOp::AllReduce.bus_factor(n),
                2.0 * (nf - 1.0) / nf
            ));
            for op in [
                CollectiveOp::AllGather,
                CollectiveOp::ReduceScatter,
                CollectiveOp::AllToAll,
            ] {
                assert!(close(op.bus_factor(n), (nf - 1.0) / nf), "{op} n={n}");
            }
            assert_eq!(CollectiveOp::Broadcast.bus_factor(n), 1.0);
        }
        // Worked example: 8 ranks, 1 GiB all-reduce in 10 ms.
        let s = CollectiveSpec::new(CollectiveOp::AllReduce, DType::Bf16, 1 << 30, 8);
        let t = 0.01;
        let algbw = s.bytes() as f64 / t;
        assert!((algbw - 107.374_182_4e9).abs() < 1.0);
        assert!((algbw * s.bus_factor() - 187.904_819_2e9).abs() < 1.0);
    }

    #[test]
    fn sizes_follow_nccl_tests() {
        let ag = CollectiveSpec::new(CollectiveOp::AllGather, DType::F32, 1000, 3);
        // 250 elements rounded down to 249 = 3 × 83; each rank sends 83, receives 249.
        assert_eq!(ag.elements(), 249);
        assert_eq!((ag.send_elements(), ag.recv_elements()), (83, 249));
        assert_eq!(ag.bytes(), 996);
        let rs = CollectiveSpec::new(CollectiveOp::ReduceScatter, DType::Bf16, 64, 4);
        assert_eq!((rs.send_elements(), rs.recv_elements()), (32, 8));
        let ar = CollectiveSpec::new(CollectiveOp::AllReduce, DType::F16, 1 << 20, 8);
        assert_eq!(ar.name(), "collective.all_reduce.f16.1MiB.n8");
        assert_eq!(ar.buffer_bytes(), 8 * 2 * (1 << 20));
        let mut remote = ar.clone();
        remote.local = Some(RankRange { first: 4, count: 2 });
        assert_eq!(remote.local_ranks(), 4..6);
        assert_eq!(remote.inputs(1).len(), 2);
        assert_eq!(remote.inputs(1)[1].name, "send.r5");
        assert!(remote.validate().is_ok());
        remote.local = Some(RankRange { first: 7, count: 2 });
        assert!(remote.validate().is_err());
        let i8 = CollectiveSpec::new(CollectiveOp::AllReduce, DType::Int8, 64, 2);
        assert!(i8.validate().is_err());
        let tiny = CollectiveSpec::new(CollectiveOp::AllToAll, DType::F32, 8, 4);
        assert!(tiny.validate().is_err());
        assert_eq!(
            "allreduce".parse::<CollectiveOp>(),
            Ok(CollectiveOp::AllReduce)
        );
        assert_eq!(
            "all-to-all".parse::<CollectiveOp>(),
            Ok(CollectiveOp::AllToAll)
        );
        assert!("gather".parse::<CollectiveOp>().is_err());
    }

    #[test]
    fn inputs_are_known_per_rank_and_sums_exact() {
        let s = CollectiveSpec::new(CollectiveOp::AllReduce, DType::Bf16, 4096, 4);
        let ins = s.inputs(9);
        assert_eq!(ins.len(), 4);
        for (r, t) in ins.iter().enumerate() {
            for i in [0u64, 1, 31, 32, 33, 2047] {
                assert_eq!(t.get(i as usize), rank_value(9, r as u32, i) as f64);
                assert!(t.get(i as usize) != 0.0);
            }
        }
        assert_ne!(ins[0], ins[1]);
        let want: f64 = (0..4).map(|r| ins[r].get(5)).sum();
        assert_eq!(expected(&s, 9, 2, 5), want);
        assert!(s.exact());
        let big = CollectiveSpec::new(CollectiveOp::AllReduce, DType::Bf16, 4096, 200);
        assert!(!big.exact());
        // All-to-all: chunk k of rank r's output is chunk r of rank k's input.
        let a = CollectiveSpec::new(CollectiveOp::AllToAll, DType::F32, 4 * 12, 3);
        let chunk = 4;
        assert_eq!(
            expected(&a, 9, 1, 2 * chunk + 3),
            rank_value(9, 2, chunk + 3) as f64
        );
    }

    /// The reference collective computed naively from the rank inputs, every rank's output
    /// laid end to end: what any correct implementation must hand back.
    fn reference_output(spec: &CollectiveSpec, seed: u64) -> Tensor {
        let mut vals = Vec::new();
        for r in spec.local_ranks() {
            for j in 0..spec.recv_elements() {
                vals.push(expected(spec, seed, r, j) as f32);
            }
        }
        Tensor::from_f32("recv", vec![vals.len()], spec.dtype, &vals)
    }

    #[test]
    fn every_op_checks_what_it_must_and_catches_a_missing_rank() {
        for op in CollectiveOp::ALL {
            for dtype in [DType::Bf16, DType::F16, DType::F32] {
                let s = CollectiveSpec::new(op, dtype, 3 * 1024, 3);
                let good = reference_output(&s, 5);
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

    /// A bf16 all-reduce over 512 ranks, summed as a ring does (one bf16 rounding per hop,
    /// each element's ring starting at another rank): the element check cannot see one rank
    /// left out (±1 or ±2 within rounding of a sum of hundreds); the share check does, and
    /// passes the correct ring.
    #[test]
    fn a_rank_missing_from_a_large_bf16_reduction_is_found() {
        for op in [CollectiveOp::AllReduce, CollectiveOp::ReduceScatter] {
            let n = 512u32;
            // 8192 elements a rank receives for the all-reduce, 4096 for reduce-scatter.
            let bytes = match op {
                CollectiveOp::ReduceScatter => 2 * 4096 * n as u64,
                _ => 2 * 8192,
            };
            let s = CollectiveSpec::new(op, DType::Bf16, bytes, n);
            assert!(!s.exact());
            let slots = 2u32;
            let mut local = s.clone();
            local.local = Some(RankRange {
                first: 3,
                count: slots,
            });
            let recv = s.recv_elements();
            let chunk = s.elements() / n as u64;
            let ring = |skip: Option<u32>, twice: Option<u32>| {
                let mut vals = Vec::new();
                for rank in 3..3 + slots {
                    for j in 0..recv {
                        let i = match op {
                            CollectiveOp::ReduceScatter => rank as u64 * chunk + j,
                            _ => j,
                        };
                        let start = (i % n as u64) as u32;
                        let mut acc = half::bf16::from_f32(0.0);
                        for k in 0..n {
                            let r = (start + k) % n;
                            let times = if Some(r) == skip {
                                0
                            } else if Some(r) == twice {
                                2
                            } else {
                                1
                            };
                            for _ in 0..times {
                                acc = half::bf16::from_f32(acc.to_f32() + rank_value(7, r, i));
                            }
                        }
                        vals.push(acc.to_f32());
                    }
                }
                Tensor::from_f32("recv", vec![vals.len()], DType::Bf16, &vals)
            };
            let v = verify_collective(&local, &[], &ring(None, None), 7);
            assert!(v.passed, "{op}: a correct ring fails: {v:?}");
            for (skip, twice, word) in [
                (Some(300), None, "rank 300 is missing"),
                (None, Some(17), "rank 17 is added twice"),
            ] {
                let v = verify_collective(&local, &[], &ring(skip, twice), 7);
                assert!(!v.passed, "{op}: {word} passed: {v:?}");
                // Every element is within the element check's bound: only the shares tell.
                assert!(v.max_rel_error <= v.tolerance, "{v:?}");
                assert!(v.detail.as_deref().unwrap().contains(word), "{v:?}");
            }
        }
    }

    #[test]
    fn ranks_held_elsewhere_are_regenerated_from_the_seed() {
        let mut s = CollectiveSpec::new(CollectiveOp::AllReduce, DType::Bf16, 512, 8);
        s.local = Some(RankRange { first: 6, count: 2 });
        let out = reference_output(&s, 11);
        assert_eq!(out.len(), 2 * 256);
        assert!(verify_collective(&s, &[], &out, 11).passed);
        // The output of another pair of ranks is not this one's.
        let mut other = s.clone();
        other.local = Some(RankRange { first: 0, count: 2 });
        assert!(!verify_collective(&s, &[], &reference_output(&other, 12), 11).passed);
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
}
