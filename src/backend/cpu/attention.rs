//! Flash-style attention on the CPU: blocked, online softmax, never the full score matrix.
//!
//! Work is split into tasks of (batch, KV head, block of query rows), run in parallel on the
//! pool; a task holds the same query rows of every query head reading that KV head (about [`BQ`]
//! rows in all), so grouped-query attention loads each K and V block once per group. A task walks
//! the keys in blocks of [`BK`]:
//!
//! 1. S = Q_blk · K_blkᵀ with `gemm` (single-threaded inside the task), pre-multiplied by
//!    log2(e)/√D so the softmax can use a base-2 exponential;
//! 2. per row: new running max m', correction 2^(m − m'), P = 2^(S − m'), running sum
//!    l = l·2^(m − m') + ΣP, and the accumulator row rescaled by the same correction;
//! 3. acc += P · V_blk with `gemm`.
//!
//! Tasks of at most [`SMALL_ROWS`] query rows (decode) do both products with vectorised dot
//! products and axpys instead, reading each K and V row once for all their rows. With bf16
//! inputs those tasks read K and V in bf16, widened in the loops ([`kv_in_bf16`]): half the
//! bytes of f32 copies, the same products.
//!
//! At the end each row is acc / l, written in the output dtype. Scratch per task is
//! BQ×BK + BQ×D floats, whatever the sequence lengths.
//!
//! Causal masks are aligned to the end of the keys (query i sees keys 0 ..= i + Lkv − Lq):
//! key blocks past the last visible key of the task's last row are never visited, and only the
//! block that straddles the diagonal is masked element by element. Query head h reads KV head
//! h / (Hq / Hkv), in place.
//!
//! The exponential is a branch-free polynomial (see [`exp2_poly`]) that the compiler vectorises;
//! the softmax loop is compiled for AVX-512 and AVX2 as well as the baseline and picked at run time,
//! so that the exponentials stay a small share next to the two block products.

use super::{rotating, Alloc, CpuBackend, CpuKernel, Run, SetKernel, ATTENTION_IMPL};
use crate::backend::ImplInfo;
use crate::dtype::{ComputeType, DType};
use crate::error::{Error, Result};
use crate::tensor::{Data, Tensor};
use crate::workload::AttentionSpec;
use half::{bf16, f16};
use rayon::prelude::*;

/// Query rows per task (summed over the query heads of a KV group).
const BQ: usize = 128;
/// Keys per block.
const BK: usize = 256;
/// Independent lanes in the row max and row sum loops (any SIMD width divides it).
const LANES: usize = 16;

/// What the CPU attention is.
const ABOUT: &str =
    "blocked online-softmax attention in f32, parallel over batch×heads×query blocks";

impl CpuKernel for AttentionSpec {
    fn implementation(&self) -> Option<ImplInfo> {
        let runs = self.dtype.valid_for_attention();
        runs.then(|| ImplInfo::new(ATTENTION_IMPL, ABOUT, false))
    }

    fn bytes_per_set(&self) -> u64 {
        bytes_per_set(self)
    }

    fn prepare<'a>(&self, cpu: &'a CpuBackend, a: Alloc) -> Run<'a> {
        rotating(PreparedAttention::new(&cpu.pool, self, &a), &a)
    }
}

/// Bytes one buffer set occupies: Q widened to f32, K and V widened to f32 (kept in bf16 where
/// [`kv_in_bf16`]), and O in the input dtype.
fn bytes_per_set(s: &AttentionSpec) -> u64 {
    let q = s
        .batch
        .saturating_mul(s.q_heads)
        .saturating_mul(s.q_len)
        .saturating_mul(s.head_dim);
    let kv = s
        .batch
        .saturating_mul(s.kv_heads)
        .saturating_mul(s.kv_len)
        .saturating_mul(s.head_dim);
    let kv_size = if kv_in_bf16(s) { 2 } else { 4 };
    q.saturating_mul(4)
        .saturating_add(kv.saturating_mul(2).saturating_mul(kv_size))
        .saturating_add(q.saturating_mul(s.dtype.size()))
}

/// Query rows per task: about [`BQ`] summed over the query heads of a KV group, never more
/// query rows per head than there are.
fn task_rows(group: usize, lq: usize) -> (usize, usize) {
    let bq = (BQ / group).clamp(1, lq.max(1));
    (bq, bq * group)
}

/// Whether K and V stay in bf16 for the run: bf16 inputs whose every task takes the small-row
/// path (decode), which reads each K and V element once per task and is bound by those reads,
/// so that half the bytes is most of the time. Widening bf16 is a 16-bit shift, done in the
/// inner loops; the products are the same f32 products as from widened copies. Larger tasks go
/// through `gemm`, which needs f32 (and f16 has no widening as cheap), so they keep f32 copies.
fn kv_in_bf16(s: &AttentionSpec) -> bool {
    let group = (s.q_heads / s.kv_heads.max(1)).max(1) as usize;
    s.dtype == DType::Bf16 && task_rows(group, s.q_len as usize).1 <= SMALL_ROWS
}

/// An output element type the kernel can write.
trait OutElem: Copy + Send + Sync + 'static {
    fn from_f32(x: f32) -> Self;
    const POISON: Self;
}

impl OutElem for f32 {
    #[inline]
    fn from_f32(x: f32) -> Self {
        x
    }
    const POISON: Self = f32::NAN;
}

impl OutElem for f16 {
    #[inline]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    const POISON: Self = f16::NAN;
}

impl OutElem for bf16 {
    #[inline]
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    const POISON: Self = bf16::NAN;
}

/// The output buffer of one set, in the workload's dtype.
enum OutBuf {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

struct Set {
    q: Vec<f32>,
    k: Kv,
    v: Kv,
    out: OutBuf,
}

/// K or V of one set: widened to f32, or kept in bf16 (see [`kv_in_bf16`]).
#[derive(Clone)]
enum Kv {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
}

impl Kv {
    fn of(t: &Tensor, keep_bf16: bool) -> Kv {
        match &t.data {
            Data::Bf16(v) if keep_bf16 => Kv::Bf16(v.clone()),
            _ => Kv::F32(widen(t)),
        }
    }

    fn all(&self) -> KvRef<'_> {
        match self {
            Kv::F32(v) => KvRef::F32(v),
            Kv::Bf16(v) => KvRef::Bf16(v),
        }
    }
}

/// Rows of K or V as a task reads them.
#[derive(Clone, Copy)]
enum KvRef<'a> {
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
}

impl<'a> KvRef<'a> {
    /// Elements `from .. to`.
    fn part(self, from: usize, to: usize) -> KvRef<'a> {
        match self {
            KvRef::F32(v) => KvRef::F32(&v[from..to]),
            KvRef::Bf16(v) => KvRef::Bf16(&v[from..to]),
        }
    }
}

/// An element of K or V as the inner loops read it: f32, or bf16 widened on the fly.
trait KvElem: Copy {
    fn widen(self) -> f32;
}

impl KvElem for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl KvElem for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        // Exact: a bf16 is the upper half of the f32 with the same value.
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

/// Shape of one run, in `usize`.
#[derive(Debug, Clone, Copy)]
struct Dims {
    hq: usize,
    hkv: usize,
    lq: usize,
    lkv: usize,
    d: usize,
    causal: bool,
    /// log2(e)/√D: turns Q·Kᵀ into base-2 softmax logits.
    logit_scale: f32,
}

/// The softmax step over one block of scores: see [`softmax_block_generic`].
type SoftmaxFn = fn(&mut [f32], usize, usize, &[usize], &mut [f32], &mut [f32], &mut [f32]);
/// S = scale·Q·Kᵀ for a few query rows, K in `T`: see [`scores_generic`].
type ScoresFn<T> = fn(&[f32], &[T], usize, f32, &mut [f32]);
/// acc += P·V for a few query rows, V in `T`: see [`accumulate_generic`].
type AccumulateFn<T> = fn(&[f32], &[T], usize, &mut [f32]);

/// Up to this many query rows per task, the block products run as dot products and axpys
/// streaming K and V once instead of `gemm` calls, whose packing costs more than the
/// arithmetic of so few rows (decode: one query row per head).
const SMALL_ROWS: usize = 16;

/// The inner loops of a task, compiled for the widest SIMD the CPU has.
#[derive(Clone, Copy)]
struct Kernels {
    softmax: SoftmaxFn,
    scores: ScoresFn<f32>,
    accumulate: AccumulateFn<f32>,
    scores_bf16: ScoresFn<bf16>,
    accumulate_bf16: AccumulateFn<bf16>,
}

struct PreparedAttention<'a> {
    pool: &'a rayon::ThreadPool,
    spec: AttentionSpec,
    dims: Dims,
    sets: Vec<Set>,
    kernels: Kernels,
    simd: &'static str,
}

impl<'a> PreparedAttention<'a> {
    fn new(pool: &'a rayon::ThreadPool, spec: &AttentionSpec, a: &Alloc) -> Result<Self> {
        let (inputs, sets) = (a.inputs, a.count());
        let q_elems = spec.q_shape().iter().product::<usize>();
        let out = || match spec.dtype {
            DType::F32 => Ok(OutBuf::F32(vec![0.0; q_elems])),
            DType::F16 => Ok(OutBuf::F16(vec![f16::ZERO; q_elems])),
            DType::Bf16 => Ok(OutBuf::Bf16(vec![bf16::ZERO; q_elems])),
            d => Err(Error::unsupported(format!(
                "cpu flash attention runs f32, f16 or bf16, not {d}"
            ))),
        };
        out()?;
        let keep_bf16 = kv_in_bf16(spec);
        let sets = pool.install(|| -> Result<Vec<Set>> {
            let q = widen(&inputs[0]);
            let (k, v) = (Kv::of(&inputs[1], keep_bf16), Kv::of(&inputs[2], keep_bf16));
            let mut all = Vec::with_capacity(sets);
            for _ in 0..sets {
                all.push(Set {
                    q: q.clone(),
                    k: k.clone(),
                    v: v.clone(),
                    out: out()?,
                });
            }
            Ok(all)
        })?;
        let dims = Dims {
            hq: spec.q_heads as usize,
            hkv: spec.kv_heads as usize,
            lq: spec.q_len as usize,
            lkv: spec.kv_len as usize,
            d: spec.head_dim as usize,
            causal: spec.causal,
            logit_scale: (std::f64::consts::LOG2_E / (spec.head_dim as f64).sqrt()) as f32,
        };
        let (softmax, simd) = pick_softmax();
        let kernels = Kernels {
            softmax,
            scores: pick_scores().0,
            accumulate: pick_accumulate().0,
            scores_bf16: pick_scores_bf16().0,
            accumulate_bf16: pick_accumulate_bf16().0,
        };
        Ok(PreparedAttention {
            pool,
            spec: spec.clone(),
            dims,
            sets,
            kernels,
            simd,
        })
    }
}

/// Input values widened to f32 (exact for f16 and bf16).
fn widen(t: &Tensor) -> Vec<f32> {
    match &t.data {
        Data::F32(v) => v.clone(),
        Data::F16(v) => v.par_iter().map(|x| x.to_f32()).collect(),
        Data::Bf16(v) => v.par_iter().map(|x| x.to_f32()).collect(),
        _ => t.to_f32(),
    }
}

/// The whole attention forward, parallel over (batch, KV head, query block).
///
/// The query heads that share a KV head (grouped-query attention) are processed together: a task
/// takes the same block of query rows from each head of the group, so every K and V block it
/// loads serves all of them, and the block products are taller.
fn attention<O: OutElem>(
    dims: Dims,
    q: &[f32],
    k: KvRef,
    v: KvRef,
    out: &mut [O],
    kernels: Kernels,
) {
    let Dims {
        hq,
        hkv,
        lq,
        lkv,
        d,
        ..
    } = dims;
    let group = hq / hkv;
    // About BQ rows per task whatever the group size, so task count and gemm shapes stay sane.
    let (bq, _) = task_rows(group, lq);
    let blocks = lq.div_ceil(bq);
    // Query heads h·G .. (h+1)·G of one batch are adjacent in Q and O, so a group is one
    // contiguous chunk of G·Lq rows.
    out.par_chunks_mut(group * lq * d)
        .enumerate()
        .for_each(|(g, o_group)| {
            let q_group = &q[g * group * lq * d..(g + 1) * group * lq * d];
            let kv = g * lkv * d;
            let (k_head, v_head) = (k.part(kv, kv + lkv * d), v.part(kv, kv + lkv * d));
            // tasks[block][head]: that head's output rows of the query block.
            let mut tasks: Vec<Vec<&mut [O]>> =
                (0..blocks).map(|_| Vec::with_capacity(group)).collect();
            for head in o_group.chunks_mut(lq * d) {
                for (b, rows) in head.chunks_mut(bq * d).enumerate() {
                    tasks[b].push(rows);
                }
            }
            tasks.into_par_iter().enumerate().for_each(|(b, outs)| {
                query_block(dims, q_group, k_head, v_head, b * bq, outs, kernels);
            });
        });
}

/// One task: query rows `q0 ..` of every head of a group (`outs[head]`, each holding the same
/// number of rows), against that group's K and V (`k`, `v`: Lkv×D each).
fn query_block<O: OutElem>(
    dims: Dims,
    q_group: &[f32],
    k: KvRef,
    v: KvRef,
    q0: usize,
    mut outs: Vec<&mut [O]>,
    kernels: Kernels,
) {
    let Dims {
        lq, lkv, d, causal, ..
    } = dims;
    let per_head = outs.first().map_or(0, |o| o.len() / d);
    let rows = per_head * outs.len();
    if rows == 0 {
        return;
    }
    // Gather the block's query rows of every head into one rows×D matrix (head-major).
    let mut q = Vec::with_capacity(rows * d);
    for head in 0..outs.len() {
        let start = (head * lq + q0) * d;
        q.extend_from_slice(&q_group[start..start + per_head * d]);
    }
    // Query row r of the block is query q0 + r % per_head of its head. Keys beyond the last
    // visible key of the block's last query are never looked at.
    let offset = lkv - lq.min(lkv);
    let kv_end = if causal {
        (q0 + per_head + offset).min(lkv)
    } else {
        lkv
    };
    let mut s = vec![0.0f32; rows * BK];
    let mut acc = vec![0.0f32; rows * d];
    let mut m = vec![f32::NEG_INFINITY; rows];
    let mut l = vec![0.0f32; rows];
    let mut alpha = vec![1.0f32; rows];
    let mut visible = vec![0usize; rows];
    let mut k0 = 0;
    while k0 < kv_end {
        let kn = BK.min(kv_end - k0);
        let (kb, vb) = (k.part(k0 * d, (k0 + kn) * d), v.part(k0 * d, (k0 + kn) * d));
        // bf16 K and V only come with small tasks (`kv_in_bf16`); their kernels take any count.
        match (kb, rows <= SMALL_ROWS) {
            (KvRef::Bf16(kb), _) => (kernels.scores_bf16)(&q, kb, d, dims.logit_scale, &mut s),
            (KvRef::F32(kb), true) => (kernels.scores)(&q, kb, d, dims.logit_scale, &mut s),
            (KvRef::F32(kb), false) => {
                // S = logit_scale · Q·Kᵀ, rows×kn with row stride BK.
                // SAFETY: Q is rows×D (stride D), the key block kn×D is read transposed through its
                // strides, S holds rows×BK floats and is exclusively borrowed; all in bounds.
                unsafe {
                    gemm::gemm(
                        rows,
                        kn,
                        d,
                        s.as_mut_ptr(),
                        1,
                        BK as isize,
                        false,
                        q.as_ptr(),
                        1,
                        d as isize,
                        kb.as_ptr(),
                        d as isize,
                        1,
                        0.0f32,
                        dims.logit_scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        }
        for (r, vis) in visible.iter_mut().enumerate() {
            *vis = if causal {
                (q0 + r % per_head + offset + 1).saturating_sub(k0).min(kn)
            } else {
                kn
            };
        }
        (kernels.softmax)(&mut s, kn, d, &visible, &mut m, &mut l, &mut alpha);
        for (row, &a) in acc.chunks_exact_mut(d).zip(&alpha) {
            if a != 1.0 {
                row.iter_mut().for_each(|x| *x *= a);
            }
        }
        match (vb, rows <= SMALL_ROWS) {
            (KvRef::Bf16(vb), _) => (kernels.accumulate_bf16)(&s, vb, d, &mut acc),
            (KvRef::F32(vb), true) => (kernels.accumulate)(&s, vb, d, &mut acc),
            (KvRef::F32(vb), false) => {
                // acc += P·V_blk.
                // SAFETY: P is rows×kn (stride BK) inside S, V's block is kn×D rows inside `v`, the
                // accumulator rows×D is exclusively borrowed; all in bounds.
                unsafe {
                    gemm::gemm(
                        rows,
                        d,
                        kn,
                        acc.as_mut_ptr(),
                        1,
                        d as isize,
                        true,
                        s.as_ptr(),
                        1,
                        BK as isize,
                        vb.as_ptr(),
                        1,
                        d as isize,
                        1.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        }
        k0 += kn;
    }
    let out_rows = outs.iter_mut().flat_map(|o| o.chunks_exact_mut(d));
    for ((orow, arow), &sum) in out_rows.zip(acc.chunks_exact(d)).zip(&l) {
        let inv = 1.0 / sum;
        for (o, a) in orow.iter_mut().zip(arow) {
            *o = O::from_f32(a * inv);
        }
    }
}

/// 2^x for x ≤ 0 (softmax logits minus their max), branch-free so it vectorises.
///
/// x = n + f with n = round(x) and f in [−½, ½]; 2^f is a degree-6 Taylor polynomial in f·ln 2
/// (relative error below 2e-7), and 2^n is added straight into the exponent bits. Inputs below
/// −125 are clamped there: 2^−125 is 1e-38, nothing next to the row's largest weight, which is 1.
#[inline(always)]
fn exp2_poly(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer in the low bits
    const C1: f32 = std::f32::consts::LN_2;
    const C2: f32 = 0.240_226_5;
    const C3: f32 = 0.055_504_11;
    const C4: f32 = 0.009_618_129;
    const C5: f32 = 0.001_333_355_8;
    const C6: f32 = 0.000_154_035_3;
    let x = if x < -125.0 { -125.0 } else { x };
    let shifted = x + MAGIC;
    let n = shifted - MAGIC;
    let f = x - n;
    let p = 1.0 + f * (C1 + f * (C2 + f * (C3 + f * (C4 + f * (C5 + f * C6)))));
    // The low bits of `shifted` hold n in two's complement; shifted by 23 they are n·2^23,
    // which added to p's bits multiplies p by 2^n (the exponent stays in range for n ≥ −125).
    f32::from_bits(p.to_bits().wrapping_add(shifted.to_bits() << 23))
}

/// The online-softmax update of one block: for each row `r` of `s` (row stride [`BK`], `kn`
/// scores of which the first `visible[r]` count), updates the running max `m` and sum `l`,
/// overwrites the scores with their weights (0 where masked) and stores the factor the
/// row's accumulator must be multiplied by in `alpha`.
#[inline(always)]
fn softmax_block_generic(
    s: &mut [f32],
    kn: usize,
    _d: usize,
    visible: &[usize],
    m: &mut [f32],
    l: &mut [f32],
    alpha: &mut [f32],
) {
    for (r, &vis) in visible.iter().enumerate() {
        let row = &mut s[r * BK..r * BK + kn];
        if vis == 0 {
            row.fill(0.0);
            alpha[r] = 1.0;
            continue;
        }
        let (live, masked) = row.split_at_mut(vis);
        masked.fill(0.0);
        let mut mx = [f32::NEG_INFINITY; LANES];
        let mut chunks = live.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &x) in mx.iter_mut().zip(c) {
                *a = if x > *a { x } else { *a };
            }
        }
        let mut row_max =
            chunks
                .remainder()
                .iter()
                .fold(f32::NEG_INFINITY, |a, &x| if x > a { x } else { a });
        for &a in &mx {
            row_max = if a > row_max { a } else { row_max };
        }
        let new_m = if row_max > m[r] { row_max } else { m[r] };
        // m[r] is −∞ before the first block: 2^−∞ would be 0, which is what the empty
        // accumulator needs anyway.
        alpha[r] = if m[r] == f32::NEG_INFINITY {
            0.0
        } else {
            exp2_poly(m[r] - new_m)
        };
        m[r] = new_m;
        let mut sums = [0.0f32; LANES];
        let mut chunks = live.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for (a, x) in sums.iter_mut().zip(c.iter_mut()) {
                *x = exp2_poly(*x - new_m);
                *a += *x;
            }
        }
        let mut total = 0.0f32;
        for x in chunks.into_remainder() {
            *x = exp2_poly(*x - new_m);
            total += *x;
        }
        total += sums.iter().sum::<f32>();
        l[r] = l[r] * alpha[r] + total;
    }
}

/// Partial sums of [`dot`]: four 16-lane (two 8-lane) vectors, so that four independent
/// chains of adds keep the SIMD units busy.
const DOT_LANES: usize = 64;

/// Dot product with [`DOT_LANES`] independent partial sums, so it vectorises, added up as a
/// tree: halves added lane by lane, which stays in vector registers, instead of one lane after
/// another (in order, as f32 addition must be unless asked otherwise), which is a chain of
/// extracts and scalar adds longer than the products themselves at D = 128.
#[inline(always)]
fn dot<T: KvElem>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0.0f32; DOT_LANES];
    let (ac, bc) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y.widen())
        .sum();
    for (x, y) in ac.zip(bc) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y.widen();
        }
    }
    let mut width = DOT_LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (l, h) in low.iter_mut().zip(&high[..width]) {
            *l += h;
        }
    }
    acc[0] + tail
}

/// s[r·BK + j] = scale · (q row r · k row j) for every query row r of `q` (rows×D) and key row
/// j of `k` (kn×D): each key row is loaded once for all query rows.
#[inline(always)]
fn scores_generic<T: KvElem>(q: &[f32], k: &[T], d: usize, scale: f32, s: &mut [f32]) {
    for (j, krow) in k.chunks_exact(d).enumerate() {
        for (r, qrow) in q.chunks_exact(d).enumerate() {
            s[r * BK + j] = scale * dot(qrow, krow);
        }
    }
}

/// acc row r += Σ_j p[r·BK + j] · v row j, for every accumulator row r (rows×D) and value row
/// j of `v` (kn×D): each value row is loaded once for all query rows; zero weights (masked
/// keys) are skipped.
#[inline(always)]
fn accumulate_generic<T: KvElem>(p: &[f32], v: &[T], d: usize, acc: &mut [f32]) {
    for (j, vrow) in v.chunks_exact(d).enumerate() {
        for (r, arow) in acc.chunks_exact_mut(d).enumerate() {
            let w = p[r * BK + j];
            if w != 0.0 {
                for (a, x) in arow.iter_mut().zip(vrow) {
                    *a += w * x.widen();
                }
            }
        }
    }
}

/// Defines `$pick() -> ($ty, name)`: `$generic` compiled for AVX-512, for AVX2+FMA and for the
/// baseline, the widest one the CPU supports chosen at run time, with its name for the notes.
macro_rules! multiversion {
    ($pick:ident, $ty:ty, $generic:ident, ($($arg:ident: $argty:ty),*)) => {
        fn $pick() -> ($ty, &'static str) {
            fn baseline($($arg: $argty),*) {
                $generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $argty),*) {
                $generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512($($arg: $argty),*) {
                $generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: only chosen after the CPU reported AVX-512F support.
                    return (|$($arg),*| unsafe { avx512($($arg),*) }, "avx512");
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: only chosen after the CPU reported AVX2 and FMA support.
                    return (|$($arg),*| unsafe { avx2($($arg),*) }, "avx2");
                }
            }
            (baseline, "baseline")
        }
    };
}

multiversion!(
    pick_softmax,
    SoftmaxFn,
    softmax_block_generic,
    (s: &mut [f32], kn: usize, d: usize, visible: &[usize], m: &mut [f32], l: &mut [f32], alpha: &mut [f32])
);
multiversion!(
    pick_scores,
    ScoresFn<f32>,
    scores_generic,
    (q: &[f32], k: &[f32], d: usize, scale: f32, s: &mut [f32])
);
multiversion!(
    pick_accumulate,
    AccumulateFn<f32>,
    accumulate_generic,
    (p: &[f32], v: &[f32], d: usize, acc: &mut [f32])
);
multiversion!(
    pick_scores_bf16,
    ScoresFn<bf16>,
    scores_generic,
    (q: &[f32], k: &[bf16], d: usize, scale: f32, s: &mut [f32])
);
multiversion!(
    pick_accumulate_bf16,
    AccumulateFn<bf16>,
    accumulate_generic,
    (p: &[f32], v: &[bf16], d: usize, acc: &mut [f32])
);

impl SetKernel for PreparedAttention<'_> {
    fn run_set(&mut self, i: usize) {
        let dims = self.dims;
        let kernels = self.kernels;
        let set = &mut self.sets[i];
        let (q, k, v) = (&set.q[..], set.k.all(), set.v.all());
        self.pool.install(|| match &mut set.out {
            OutBuf::F32(o) => attention(dims, q, k, v, o, kernels),
            OutBuf::F16(o) => attention(dims, q, k, v, o, kernels),
            OutBuf::Bf16(o) => attention(dims, q, k, v, o, kernels),
        });
    }

    fn compute_dtype(&self) -> ComputeType {
        ComputeType::uniform(DType::F32)
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        match &mut self.sets[0].out {
            OutBuf::F32(o) => o.fill(f32::POISON),
            OutBuf::F16(o) => o.fill(f16::POISON),
            OutBuf::Bf16(o) => o.fill(bf16::POISON),
        }
        self.run_set(0);
        let data = match &self.sets[0].out {
            OutBuf::F32(o) => Data::F32(o.clone()),
            OutBuf::F16(o) => Data::F16(o.clone()),
            OutBuf::Bf16(o) => Data::Bf16(o.clone()),
        };
        Ok(Tensor {
            name: "O".into(),
            shape: self.spec.q_shape(),
            data,
        })
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![format!(
            "flash-style blocks of about {BQ} query rows (all heads of a KV group) × {BK} keys, inner loops: {}",
            self.simd
        )];
        if kv_in_bf16(&self.spec) {
            notes.push(
                "Q converted to f32 once before timing, K and V read in bf16 and widened in the kernel; computed in f32, output rounded to bf16 in the kernel"
                    .into(),
            );
        } else if self.spec.dtype != DType::F32 {
            notes.push(format!(
                "{} inputs converted to f32 once before timing; computed in f32, output rounded to {} in the kernel",
                self.spec.dtype, self.spec.dtype
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_poly_is_accurate() {
        let mut x = -130.0f32;
        while x <= 0.0 {
            let want = (x as f64).exp2();
            let got = exp2_poly(x) as f64;
            if x >= -120.0 {
                assert!(((got - want) / want).abs() < 3e-7, "2^{x}: {got} vs {want}");
            } else {
                assert!(got <= 1e-36, "2^{x}: {got}");
            }
            x += 0.0137;
        }
        assert_eq!(exp2_poly(0.0), 1.0);
        assert_eq!(exp2_poly(f32::NEG_INFINITY), exp2_poly(-125.0));
    }
}
