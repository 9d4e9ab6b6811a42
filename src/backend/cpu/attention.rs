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
//! When every task has at most [`SMALL_ROWS`] query rows (decode; [`small_tasks`]) both
//! products run in small-row kernels instead, reading each K and V element once for all the
//! task's rows: K is stored in tiles of [`TILE`] keys laid out key-minor, so that Q·Kᵀ needs no
//! horizontal sums ([`scores_generic`]), and P·V keeps column strips of the accumulator in
//! registers ([`accumulate_generic`]). With bf16 or f16 inputs those tasks read K and V in
//! their 16 bits, widened in the loops ([`kv_in_16bit`]): half the bytes of f32 copies, the
//! same products.
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

/// Bytes one buffer set occupies: Q widened to f32, K and V widened to f32 (kept in 16 bits
/// where [`kv_in_16bit`]; K padded to whole tiles where [`small_tasks`]), and O in the input dtype.
fn bytes_per_set(s: &AttentionSpec) -> u64 {
    let q = s
        .batch
        .saturating_mul(s.q_heads)
        .saturating_mul(s.q_len)
        .saturating_mul(s.head_dim);
    let heads = s
        .batch
        .saturating_mul(s.kv_heads)
        .saturating_mul(s.head_dim);
    let (k, v) = (
        heads.saturating_mul(stored_keys(s.kv_len as usize, small_tasks(s)) as u64),
        heads.saturating_mul(s.kv_len),
    );
    let kv_size = if kv_in_16bit(s) { 2 } else { 4 };
    q.saturating_mul(4)
        .saturating_add(k.saturating_add(v).saturating_mul(kv_size))
        .saturating_add(q.saturating_mul(s.dtype.size()))
}

/// Query rows per task: about [`BQ`] summed over the query heads of a KV group, never more
/// query rows per head than there are.
fn task_rows(group: usize, lq: usize) -> (usize, usize) {
    let bq = (BQ / group).clamp(1, lq.max(1));
    (bq, bq * group)
}

/// Whether every task has at most [`SMALL_ROWS`] query rows (decode, and short prefills with
/// large GQA groups): then the two block products run as the small-row kernels over K stored
/// in key tiles ([`TILE`]), instead of `gemm` calls over row-major K.
fn small_tasks(s: &AttentionSpec) -> bool {
    let group = (s.q_heads / s.kv_heads.max(1)).max(1) as usize;
    task_rows(group, s.q_len as usize).1 <= SMALL_ROWS
}

/// Keys per head as K is stored: `lkv`, padded with zero keys to whole tiles on the
/// small-row path ([`small_tasks`]).
fn stored_keys(lkv: usize, small: bool) -> usize {
    if small {
        lkv.next_multiple_of(TILE)
    } else {
        lkv
    }
}

/// Whether K and V stay in their 16 bits for the run: bf16 or f16 inputs on the small-row
/// path, which reads each K and V element once per task and mostly waits on those reads: half
/// the bytes. The inner loops widen them ([`KvElem::widen`]: a shift for bf16, a few integer
/// and one multiply for f16, both exact and vectorised), so the products are the same f32
/// products as from widened copies. `gemm` needs f32, so its tasks keep f32 copies.
fn kv_in_16bit(s: &AttentionSpec) -> bool {
    matches!(s.dtype, DType::Bf16 | DType::F16) && small_tasks(s)
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

/// K or V of one set: widened to f32, or kept in bf16 or f16 (see [`kv_in_16bit`]).
#[derive(Clone)]
enum Kv {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

impl Kv {
    /// V (and K for `gemm` tasks): row-major, each head Lkv×D.
    fn of(t: &Tensor, keep_16bit: bool) -> Kv {
        match &t.data {
            Data::Bf16(v) if keep_16bit => Kv::Bf16(v.clone()),
            Data::F16(v) if keep_16bit => Kv::F16(v.clone()),
            _ => Kv::F32(widen(t)),
        }
    }

    /// K for the small-row kernels: each head's keys in tiles of [`TILE`] keys stored
    /// key-minor (D×TILE: element c of keys 16t .. 16t+15 side by side), the last tile padded
    /// with zero keys, so that one vector holds one product term of TILE scores.
    fn tiled(t: &Tensor, keep_16bit: bool, lkv: usize, d: usize) -> Kv {
        match Kv::of(t, keep_16bit) {
            Kv::F32(k) => Kv::F32(tile_keys(&k, lkv, d)),
            Kv::Bf16(k) => Kv::Bf16(tile_keys(&k, lkv, d)),
            Kv::F16(k) => Kv::F16(tile_keys(&k, lkv, d)),
        }
    }

    fn all(&self) -> KvRef<'_> {
        match self {
            Kv::F32(v) => KvRef::F32(v),
            Kv::Bf16(v) => KvRef::Bf16(v),
            Kv::F16(v) => KvRef::F16(v),
        }
    }
}

/// Rows of K or V as a task reads them.
#[derive(Clone, Copy)]
enum KvRef<'a> {
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
    F16(&'a [f16]),
}

impl<'a> KvRef<'a> {
    /// Elements `from .. to`.
    fn part(self, from: usize, to: usize) -> KvRef<'a> {
        match self {
            KvRef::F32(v) => KvRef::F32(&v[from..to]),
            KvRef::Bf16(v) => KvRef::Bf16(&v[from..to]),
            KvRef::F16(v) => KvRef::F16(&v[from..to]),
        }
    }
}

/// Row-major heads of `lkv`×`d` in key tiles (see [`Kv::tiled`]).
fn tile_keys<T: KvElem>(k: &[T], lkv: usize, d: usize) -> Vec<T> {
    if lkv == 0 || d == 0 {
        return Vec::new();
    }
    let padded = lkv.next_multiple_of(TILE);
    let heads = k.len() / (lkv * d);
    let mut out = vec![T::ZERO; heads * padded * d];
    for (h, head) in k.chunks_exact(lkv * d).enumerate() {
        let tiles = &mut out[h * padded * d..(h + 1) * padded * d];
        for (j, key) in head.chunks_exact(d).enumerate() {
            let tile = &mut tiles[(j / TILE) * TILE * d..][..TILE * d];
            for (c, &x) in key.iter().enumerate() {
                tile[c * TILE + j % TILE] = x;
            }
        }
    }
    out
}

/// An element of K or V as the inner loops read it: f32, or bf16 or f16 widened on the fly.
trait KvElem: Copy {
    const ZERO: Self;
    fn widen(self) -> f32;
}

impl KvElem for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl KvElem for bf16 {
    const ZERO: Self = bf16::ZERO;
    #[inline(always)]
    fn widen(self) -> f32 {
        // Exact: a bf16 is the upper half of the f32 with the same value.
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

impl KvElem for f16 {
    const ZERO: Self = f16::ZERO;
    /// Exact, and plain integer and float arithmetic, so that the loops around it vectorise
    /// (`f16::to_f32` asks the CPU for F16C per call). The exponent and mantissa moved into
    /// f32 position read as 2^-112 times the value (a subnormal f16 lands on an f32 subnormal
    /// of the same significand), and a multiply by 2^112 scales them back exactly; infinities
    /// and NaNs take the f32 all-ones exponent instead.
    #[inline(always)]
    fn widen(self) -> f32 {
        let h = self.to_bits() as u32;
        let sign = (h & 0x8000) << 16;
        let magnitude = (h & 0x7fff) << 13;
        let bits = if magnitude >= 0x7c00 << 13 {
            magnitude | 0x7f80_0000
        } else {
            (f32::from_bits(magnitude) * f32::from_bits(0x7780_0000)).to_bits()
        };
        f32::from_bits(bits | sign)
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
    /// K in key tiles and both products in the small-row kernels ([`small_tasks`]).
    small: bool,
    /// log2(e)/√D: turns Q·Kᵀ into base-2 softmax logits.
    logit_scale: f32,
}

/// The softmax step over one block of scores: see [`softmax_block_generic`].
type SoftmaxFn = fn(&mut [f32], usize, &[usize], &mut [f32], &mut [f32], &mut [f32]);
/// S = scale·Q·Kᵀ for a few query rows, K in `T`: see [`scores_generic`].
type ScoresFn<T> = fn(&[f32], &[T], usize, f32, &mut [f32]);
/// acc += P·V for a few query rows, V in `T`: see [`accumulate_generic`].
type AccumulateFn<T> = fn(&[f32], &[T], usize, &mut [f32]);

/// Up to this many query rows per task, the block products run as the small-row kernels,
/// streaming K and V once, instead of `gemm` calls, whose packing costs more than the
/// arithmetic of so few rows (decode: one query row per head).
const SMALL_ROWS: usize = 16;
/// Keys per K tile of the small-row path: one 16-lane vector of f32.
const TILE: usize = 16;

/// The inner loops of a task, compiled for the widest SIMD the CPU has.
#[derive(Clone, Copy)]
struct Kernels {
    softmax: SoftmaxFn,
    scores: ScoresFn<f32>,
    accumulate: AccumulateFn<f32>,
    scores_bf16: ScoresFn<bf16>,
    accumulate_bf16: AccumulateFn<bf16>,
    scores_f16: ScoresFn<f16>,
    accumulate_f16: AccumulateFn<f16>,
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
        let (keep_16bit, small) = (kv_in_16bit(spec), small_tasks(spec));
        let (lkv, d) = (spec.kv_len as usize, spec.head_dim as usize);
        let sets = pool.install(|| -> Result<Vec<Set>> {
            let q = widen(&inputs[0]);
            let k = if small {
                Kv::tiled(&inputs[1], keep_16bit, lkv, d)
            } else {
                Kv::of(&inputs[1], keep_16bit)
            };
            let v = Kv::of(&inputs[2], keep_16bit);
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
            lkv,
            d,
            causal: spec.causal,
            small,
            logit_scale: (std::f64::consts::LOG2_E / (spec.head_dim as f64).sqrt()) as f32,
        };
        let (softmax, simd) = pick_softmax();
        let kernels = Kernels {
            softmax,
            scores: pick_scores().0,
            accumulate: pick_accumulate().0,
            scores_bf16: pick_scores_bf16().0,
            accumulate_bf16: pick_accumulate_bf16().0,
            scores_f16: pick_scores_f16().0,
            accumulate_f16: pick_accumulate_f16().0,
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
        small,
        ..
    } = dims;
    let k_len = stored_keys(lkv, small);
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
            let (k_head, v_head) = (
                k.part(g * k_len * d, (g + 1) * k_len * d),
                v.part(g * lkv * d, (g + 1) * lkv * d),
            );
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
        // K in tiles: the block's whole tiles (block starts are multiples of TILE, and the
        // scores of the padding past `kn` are never read).
        let k_end = if dims.small {
            (k0 + kn).next_multiple_of(TILE)
        } else {
            k0 + kn
        };
        let (kb, vb) = (k.part(k0 * d, k_end * d), v.part(k0 * d, (k0 + kn) * d));
        // 16-bit K and V only come with small tasks (`kv_in_16bit`).
        match (kb, dims.small) {
            (KvRef::Bf16(kb), _) => (kernels.scores_bf16)(&q, kb, d, dims.logit_scale, &mut s),
            (KvRef::F16(kb), _) => (kernels.scores_f16)(&q, kb, d, dims.logit_scale, &mut s),
            (KvRef::F32(kb), true) => (kernels.scores)(&q, kb, d, dims.logit_scale, &mut s),
            // S = logit_scale · Q·Kᵀ, rows×kn with row stride BK; K read transposed in place.
            (KvRef::F32(kb), false) => block_gemm(
                (rows, kn, d),
                (&mut s, BK),
                false,
                (&q, d),
                (kb, 1, d),
                dims.logit_scale,
            ),
        }
        for (r, vis) in visible.iter_mut().enumerate() {
            *vis = if causal {
                (q0 + r % per_head + offset + 1).saturating_sub(k0).min(kn)
            } else {
                kn
            };
        }
        (kernels.softmax)(&mut s, kn, &visible, &mut m, &mut l, &mut alpha);
        for (row, &a) in acc.chunks_exact_mut(d).zip(&alpha) {
            if a != 1.0 {
                row.iter_mut().for_each(|x| *x *= a);
            }
        }
        match (vb, dims.small) {
            (KvRef::Bf16(vb), _) => (kernels.accumulate_bf16)(&s, vb, d, &mut acc),
            (KvRef::F16(vb), _) => (kernels.accumulate_f16)(&s, vb, d, &mut acc),
            (KvRef::F32(vb), true) => (kernels.accumulate)(&s, vb, d, &mut acc),
            // acc += P·V_blk.
            (KvRef::F32(vb), false) => block_gemm(
                (rows, d, kn),
                (&mut acc, d),
                true,
                (&s, BK),
                (vb, d, 1),
                1.0,
            ),
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

/// One block product through `gemm`, single-threaded inside the task: dst (m×n, row stride
/// `ld`) = (dst, where `add`) + `scale` · lhs (m×k, row stride `ld_lhs`) · rhs (k×n), the
/// right-hand side read through its (row, column) strides so that Kᵀ needs no copy. The slices
/// are checked to hold every element the strides reach, which is what makes the call sound.
fn block_gemm(
    (m, n, k): (usize, usize, usize),
    (dst, ld): (&mut [f32], usize),
    add: bool,
    (lhs, ld_lhs): (&[f32], usize),
    (rhs, rs, cs): (&[f32], usize, usize),
    scale: f32,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        last(m, n, ld, 1) < dst.len()
            && last(m, k, ld_lhs, 1) < lhs.len()
            && last(k, n, rs, cs) < rhs.len(),
        "block product {m}×{n}×{k} outside its buffers"
    );
    // SAFETY: every element the strides address lies inside its slice (asserted above), `dst`
    // is borrowed mutably so nothing else reads or writes it, and f32 is a type `gemm`
    // implements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            add,
            lhs.as_ptr(),
            1,
            ld_lhs as isize,
            rhs.as_ptr(),
            cs as isize,
            rs as isize,
            if add { 1.0 } else { 0.0 },
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
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
    _fused: bool,
    s: &mut [f32],
    kn: usize,
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

/// s[r·BK + j] = scale · (q row r · key j) for every query row r of `q` (rows×D) and every key
/// j of `kt`, whole tiles of [`TILE`] keys stored key-minor ([`Kv::tiled`]): one vector holds a
/// product term of TILE scores, so there is no horizontal sum, and each tile (D×TILE, a few
/// KiB) stays in L1 while the rows pass over it four at a time.
#[inline(always)]
fn scores_generic<T: KvElem>(
    fused: bool,
    q: &[f32],
    kt: &[T],
    d: usize,
    scale: f32,
    s: &mut [f32],
) {
    let rows = q.len() / d;
    for (t, tile) in kt.chunks_exact(d * TILE).enumerate() {
        let mut r = 0;
        while r < rows {
            let take = if rows - r >= 4 { 4 } else { 1 };
            let qs = &q[r * d..(r + take) * d];
            let mut put = |i: usize, acc: &[f32; TILE]| {
                let out = &mut s[(r + i) * BK + t * TILE..][..TILE];
                for (o, a) in out.iter_mut().zip(acc) {
                    *o = scale * a;
                }
            };
            if take == 4 {
                tile_scores::<T, 4>(fused, qs, tile, d)
                    .iter()
                    .enumerate()
                    .for_each(|(i, a)| put(i, a));
            } else {
                put(0, &tile_scores::<T, 1>(fused, qs, tile, d)[0]);
            }
            r += take;
        }
    }
}

/// The scores of `R` query rows (`q`: R×D) against one key tile (D×TILE): R·TILE partial sums
/// held in registers, one multiply-add per row for each element c of the tile.
#[inline(always)]
fn tile_scores<T: KvElem, const R: usize>(
    fused: bool,
    q: &[f32],
    tile: &[T],
    d: usize,
) -> [[f32; TILE]; R] {
    let rows: [&[f32]; R] = std::array::from_fn(|r| &q[r * d..(r + 1) * d]);
    let mut acc = [[0.0f32; TILE]; R];
    for (c, keys) in tile.chunks_exact(TILE).enumerate() {
        let k = widened(keys);
        for (a, row) in acc.iter_mut().zip(&rows) {
            axpy(fused, a, row[c], &k);
        }
    }
    acc
}

/// acc row r += Σ_j p[r·BK + j] · v row j, for every accumulator row r (rows×D) and value row j
/// of `v` (kn×D, row-major): D in strips of [`TILE`] columns, four rows at a time, the strip's
/// sums held in registers while every value row of the block passes (a strip of the block is a
/// few KiB, in L1 for the next rows).
#[inline(always)]
fn accumulate_generic<T: KvElem>(fused: bool, p: &[f32], v: &[T], d: usize, acc: &mut [f32]) {
    let kn = v.len() / d;
    for j0 in (0..kn).step_by(SUB_KEYS) {
        let part = &v[j0 * d..(j0 + SUB_KEYS).min(kn) * d];
        accumulate_part(fused, p, part, d, j0, acc);
    }
}

/// Value rows per pass of [`accumulate_generic`]: 32 rows of D = 128 are 8–16 KiB, in L1 while
/// every column strip passes over them.
const SUB_KEYS: usize = 32;

/// [`accumulate_generic`] for the value rows `v` (keys `j0 ..` of the block).
#[inline(always)]
fn accumulate_part<T: KvElem>(
    fused: bool,
    p: &[f32],
    v: &[T],
    d: usize,
    j0: usize,
    acc: &mut [f32],
) {
    let (rows, kn) = (acc.len() / d, v.len() / d);
    let mut r = 0;
    while r < rows {
        let take = if rows - r >= 4 { 4 } else { 1 };
        let mut c = 0;
        while c + TILE <= d {
            let mut add = |sums: &[[f32; TILE]]| {
                for (i, sum) in sums.iter().enumerate() {
                    let out = &mut acc[(r + i) * d + c..][..TILE];
                    for (o, x) in out.iter_mut().zip(sum) {
                        *o += x;
                    }
                }
            };
            if take == 4 {
                add(&strip_sums::<T, 4>(fused, p, v, d, (j0, kn), r, c));
            } else {
                add(&strip_sums::<T, 1>(fused, p, v, d, (j0, kn), r, c));
            }
            c += TILE;
        }
        // Columns past the last whole strip (D not a multiple of TILE).
        for i in r..r + take {
            for col in c..d {
                let w = &p[i * BK + j0..i * BK + j0 + kn];
                let sum: f32 = (0..kn).map(|j| w[j] * v[j * d + col].widen()).sum();
                acc[i * d + col] += sum;
            }
        }
        r += take;
    }
}

/// Σ_j p[(r0 + r)·BK + j] · v[j][c0 .. c0 + TILE] for `R` rows from `r0`: one strip of the
/// value block, R·TILE sums in registers.
#[inline(always)]
fn strip_sums<T: KvElem, const R: usize>(
    fused: bool,
    p: &[f32],
    v: &[T],
    d: usize,
    (j0, kn): (usize, usize),
    r0: usize,
    c0: usize,
) -> [[f32; TILE]; R] {
    let weights: [&[f32]; R] =
        std::array::from_fn(|r| &p[(r0 + r) * BK + j0..(r0 + r) * BK + j0 + kn]);
    let mut sums = [[0.0f32; TILE]; R];
    for (j, row) in v.chunks_exact(d).enumerate() {
        let x = widened(&row[c0..c0 + TILE]);
        for (sum, w) in sums.iter_mut().zip(&weights) {
            axpy(fused, sum, w[j], &x);
        }
    }
    sums
}

/// The first [`TILE`] elements of `x` in f32: one vector.
#[inline(always)]
fn widened<T: KvElem>(x: &[T]) -> [f32; TILE] {
    let x: &[T; TILE] = x[..TILE].try_into().expect("TILE elements");
    x.map(KvElem::widen)
}

/// acc += a · x, lane by lane over one vector of [`TILE`] sums.
#[inline(always)]
fn axpy(fused: bool, acc: &mut [f32; TILE], a: f32, x: &[f32; TILE]) {
    for (s, x) in acc.iter_mut().zip(x) {
        *s = madd(fused, a, *x, *s);
    }
}

/// a·b + c: one fused multiply-add (one rounding) where `fused`, which the builds for CPUs with
/// FMA pass; elsewhere `mul_add` would be a library call per element, so a multiply and an add.
#[inline(always)]
fn madd(fused: bool, a: f32, b: f32, c: f32) -> f32 {
    if fused {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Defines, for each `$pick: $ty = $generic(args);`, `$pick() -> ($ty, name)`: `$generic`
/// compiled for AVX-512, for AVX2+FMA and for the baseline, the widest one the CPU supports
/// chosen at run time, with its name for the notes. `$generic` takes a first argument more,
/// whether to fuse multiply-adds ([`madd`]): true in the two builds with FMA.
macro_rules! multiversion {
    ($($pick:ident: $ty:ty = $generic:ident($($arg:ident: $argty:ty),*);)+) => {$(
        fn $pick() -> ($ty, &'static str) {
            fn baseline($($arg: $argty),*) {
                $generic(false, $($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $argty),*) {
                $generic(true, $($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512($($arg: $argty),*) {
                $generic(true, $($arg),*)
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
    )+};
}

// The inner loops of a task: the softmax step, and the two block products for each type K
// and V are read in.
multiversion! {
    pick_softmax: SoftmaxFn = softmax_block_generic(
        s: &mut [f32], kn: usize, visible: &[usize],
        m: &mut [f32], l: &mut [f32], alpha: &mut [f32]
    );
    pick_scores: ScoresFn<f32> = scores_generic(q: &[f32], k: &[f32], d: usize, scale: f32, s: &mut [f32]);
    pick_scores_bf16: ScoresFn<bf16> = scores_generic(q: &[f32], k: &[bf16], d: usize, scale: f32, s: &mut [f32]);
    pick_scores_f16: ScoresFn<f16> = scores_generic(q: &[f32], k: &[f16], d: usize, scale: f32, s: &mut [f32]);
    pick_accumulate: AccumulateFn<f32> = accumulate_generic(p: &[f32], v: &[f32], d: usize, acc: &mut [f32]);
    pick_accumulate_bf16: AccumulateFn<bf16> = accumulate_generic(p: &[f32], v: &[bf16], d: usize, acc: &mut [f32]);
    pick_accumulate_f16: AccumulateFn<f16> = accumulate_generic(p: &[f32], v: &[f16], d: usize, acc: &mut [f32]);
}

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
        if kv_in_16bit(&self.spec) {
            notes.push(format!(
                "Q converted to f32 once before timing, K and V read in {0} and widened in the kernel; computed in f32, output rounded to {0} in the kernel",
                self.spec.dtype
            ));
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

    /// The vectorisable f16 widening against `half`'s, on every one of the 65 536 values.
    #[test]
    fn f16_widening_is_exact_for_every_value() {
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            let (got, want) = (h.widen(), h.to_f32());
            if want.is_nan() {
                assert!(got.is_nan(), "{bits:#06x}: {got}");
            } else {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{bits:#06x}: {got} vs {want}"
                );
            }
        }
    }

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
