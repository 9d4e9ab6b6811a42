use super::axis::{axes_of, cross, first_swept, Axis, Param};
use super::{
    checked_product, collect_checked, InputSpec, KindAxes, Metric, Workload, WorkloadKind,
    DECODE_MAX_Q_LEN,
};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{splitmix, Tensor};
use crate::verify::{Verification, Verify, VerifyMethod, Worst, FULL_CHECK_MACS};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Attention rows sampled in the large-size check.
const SAMPLED_ROWS: usize = 48;

/// Q's inputs are uniform in [-Q_RANGE, Q_RANGE) (see `inputs`).
pub const Q_RANGE: f32 = 3.0;

/// Attention forward: O = softmax(Q·Kᵀ/√D [+ causal mask]) · V per (batch, q head).
///
/// Q is [B, Hq, Lq, D], K and V are [B, Hkv, Lkv, D], O is [B, Hq, Lq, D]. Query head h reads
/// KV head h / (Hq / Hkv) (grouped-query attention; Hkv = 1 is multi-query). With `causal`, the
/// query rows are aligned to the end of the keys, as in decode and chunked prefill: query i
/// sees keys 0 ..= i + (Lkv − Lq).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionSpec {
    pub batch: u64,
    pub q_heads: u64,
    pub kv_heads: u64,
    pub q_len: u64,
    pub kv_len: u64,
    pub head_dim: u64,
    pub causal: bool,
    pub dtype: DType,
}

impl AttentionSpec {
    /// Largest accepted error of an output row, measured norm-wise: ‖O − R‖ over ‖|R| + S‖,
    /// where S_x is the root-sum-square of the terms p_j·v_jx that make up R_x. An attention
    /// output averages N rows of V, so it is about 1/√N the size of V; measured against V (as
    /// it once was) a tolerance of 1e-2 let a kernel miss a key, drop a tile or merge split-KV
    /// partials without their log-sum-exp pass in bf16 decode. Per row, the rounding noise of
    /// a correct kernel averages out over D elements while such an error does not. A study
    /// of modelled kernels (P rounded to the dtype before P·V, f32 accumulation, the output
    /// rounded; split-KV with low-precision partials the worst) put correct bf16 kernels at
    /// up to 1.9e-3 and f16 at 2.3e-4; the wrong ones at 4.4e-3 and above in both (the
    /// hardest: one missing key of 32768 in decode). f32 keeps the dtype's 1e-5.
    pub fn tolerance(&self) -> f64 {
        match self.dtype {
            DType::Bf16 => 4e-3,
            DType::F16 => 1e-3,
            d => d.tolerance(),
        }
    }

    pub fn name(&self) -> String {
        format!(
            "attention.{}.b{}.h{}kv{}.q{}.kv{}.d{}{}",
            self.dtype,
            self.batch,
            self.q_heads,
            self.kv_heads,
            self.q_len,
            self.kv_len,
            self.head_dim,
            if self.causal { ".causal" } else { "" }
        )
    }

    /// Number of (query, key) pairs that take part, summed over one head.
    ///
    /// Non-causal: Lq·Lkv. Causal with end alignment: query i sees i + (Lkv − Lq) + 1 keys, so
    /// the sum is Lq·(Lkv − Lq) + Lq·(Lq + 1)/2, exact, not the usual "half".
    pub fn visible_pairs(&self) -> u128 {
        let (lq, lkv) = (self.q_len as u128, self.kv_len as u128);
        if !self.causal {
            return lq * lkv;
        }
        lq * (lkv - lq) + lq * (lq + 1) / 2
    }

    /// 4·B·Hq·D per visible pair: 2 for the Q·Kᵀ dot product and 2 for the P·V product.
    pub fn flops(&self) -> f64 {
        4.0 * self.batch as f64
            * self.q_heads as f64
            * self.head_dim as f64
            * self.visible_pairs() as f64
    }

    /// Q, K, V read once and O written once.
    pub fn bytes(&self) -> u64 {
        self.elem_bytes_q() * 2 + self.elem_bytes_kv() * 2
    }

    /// Bytes of Q (and of O, which has the same shape).
    pub fn elem_bytes_q(&self) -> u64 {
        self.batch * self.q_heads * self.q_len * self.head_dim * self.dtype.size()
    }

    /// Bytes of K (and of V).
    pub fn elem_bytes_kv(&self) -> u64 {
        self.batch * self.kv_heads * self.kv_len * self.head_dim * self.dtype.size()
    }

    pub fn q_shape(&self) -> Vec<usize> {
        [self.batch, self.q_heads, self.q_len, self.head_dim]
            .iter()
            .map(|&x| x as usize)
            .collect()
    }

    pub fn kv_shape(&self) -> Vec<usize> {
        [self.batch, self.kv_heads, self.kv_len, self.head_dim]
            .iter()
            .map(|&x| x as usize)
            .collect()
    }

    /// Softmax scale 1/√D.
    pub fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("batch", self.batch),
            ("heads", self.q_heads),
            ("kv heads", self.kv_heads),
            ("q length", self.q_len),
            ("kv length", self.kv_len),
            ("head dim", self.head_dim),
        ];
        super::require_nonzero("attention", fields)?;
        if !self.dtype.valid_for_attention() {
            return Err(Error::invalid(format!(
                "attention runs in f32, f16 or bf16, not {}",
                self.dtype
            )));
        }
        super::require_head_groups(
            "attention",
            ("q heads", self.q_heads),
            ("kv heads", self.kv_heads),
        )?;
        if self.head_dim > 1024 {
            return Err(Error::invalid(format!(
                "attention: head dim {} is above 1024",
                self.head_dim
            )));
        }
        if self.causal && self.q_len > self.kv_len {
            return Err(Error::invalid(format!(
                "attention: causal needs q length ({}) ≤ kv length ({}); queries are aligned to the end of the keys",
                self.q_len, self.kv_len
            )));
        }
        let what = "attention shape";
        checked_product(what, &[self.batch, self.q_heads, self.q_len, self.head_dim])?;
        checked_product(
            what,
            &[self.batch, self.kv_heads, self.kv_len, self.head_dim],
        )?;
        checked_product(what, &[self.batch, self.q_heads, self.q_len, self.kv_len])?;
        Ok(())
    }
}

/// The sweep parameters of attention, in the order charts look at them: query length first,
/// then KV length, then the rest.
const ATTENTION_PARAMS: [Param; 6] = [
    Param::Seq,
    Param::KvSeq,
    Param::Batch,
    Param::Heads,
    Param::KvHeads,
    Param::HeadDim,
];

impl WorkloadKind for AttentionSpec {
    const KIND: &'static str = "attention";
    fn result_dtype(&self) -> DType {
        self.dtype
    }
    fn buffer_bytes(&self) -> u64 {
        self.bytes()
    }
    /// Decode (a handful of query rows) reads the whole KV cache for few FLOPs: bandwidth-bound.
    fn metric(&self) -> Metric {
        if self.q_len <= DECODE_MAX_Q_LEN {
            Metric::Bytes
        } else {
            Metric::Flops
        }
    }
    fn test_key(&self) -> String {
        // A few query rows is decode (speculative decoding verifies several at once).
        if self.q_len <= DECODE_MAX_Q_LEN {
            "attention.decode".into()
        } else {
            "attention.prefill".into()
        }
    }
    /// `[Q, K, V]`.
    fn input_specs(&self) -> Vec<InputSpec> {
        vec![
            InputSpec::new("Q", self.q_shape(), self.dtype),
            InputSpec::new("K", self.kv_shape(), self.dtype),
            InputSpec::new("V", self.kv_shape(), self.dtype),
        ]
    }
    /// K and V uniform in [-1, 1) as every kind's inputs; Q in [-3, 3) ([`Q_RANGE`]), so
    /// that the scores Q·Kᵀ/√D spread by about 1 (their standard deviation is Q_RANGE / 3
    /// whatever D): the softmax then weighs keys unevenly and the output depends on every
    /// score. With Q in [-1, 1) the weights are nearly uniform and a kernel that ignores the
    /// scores, or scales them wrongly, comes close to the right answer.
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        // Q from the seed, K and V from it mixed once and twice, as `random_inputs` chains
        // them; Q is drawn once, widened, then rounded to the dtype.
        let q = Tensor::random("Q", self.q_shape(), DType::F32, seed).to_f32();
        let wide: Vec<f32> = q.iter().map(|x| x * Q_RANGE).collect();
        let mut ins = vec![Tensor::from_f32("Q", self.q_shape(), self.dtype, &wide)];
        let kv = self.input_specs().split_off(1);
        ins.extend(super::random_inputs(kv, crate::tensor::splitmix(seed)));
        ins
    }
    fn output_len(&self) -> usize {
        (self.batch * self.q_heads * self.q_len * self.head_dim) as usize
    }
    fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dtype", self.dtype.name().into()),
            ("batch", self.batch.to_string()),
            ("heads", self.q_heads.to_string()),
            ("kv_heads", self.kv_heads.to_string()),
            ("seq", self.q_len.to_string()),
            ("kv_seq", self.kv_len.to_string()),
            ("head_dim", self.head_dim.to_string()),
            ("causal", self.causal.to_string()),
        ]
    }
    fn axis_value(&self, axis: Param) -> Option<u64> {
        Some(match axis {
            Param::Batch => self.batch,
            Param::Heads => self.q_heads,
            Param::KvHeads => self.kv_heads,
            Param::Seq => self.q_len,
            Param::KvSeq => self.kv_len,
            Param::HeadDim => self.head_dim,
            _ => return None,
        })
    }
    fn sweep_params(&self) -> &'static [Param] {
        &ATTENTION_PARAMS
    }
}

/// The axes of an attention sweep, expanded in field order (dtype outermost, head dim
/// fastest). KV heads and KV length default, point by point, to the query's.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionAxes {
    pub batch: Axis,
    /// Query heads.
    pub heads: Axis,
    /// `None`: as many as the query heads (no GQA).
    pub kv_heads: Option<Axis>,
    /// Query length (1 is decode).
    pub seq: Axis,
    /// `None`: the query length.
    pub kv_seq: Option<Axis>,
    pub head_dim: Axis,
    pub causal: bool,
    pub dtype: Vec<DType>,
    /// Implementations to run at every point (empty = default).
    pub implementation: Vec<String>,
}

impl KindAxes for AttentionAxes {
    axes_of!(AttentionSpec);

    fn expand(&self) -> Result<Vec<Workload>> {
        let len = |a: &Option<Axis>| a.as_ref().map_or(1, |a| a.0.len());
        // Defaulted axes take their value from the axis they follow.
        let pick =
            |a: &Option<Axis>, i: usize, default: u64| a.as_ref().map_or(default, |a| a.0[i]);
        let lens = [
            self.dtype.len(),
            self.batch.0.len(),
            self.heads.0.len(),
            len(&self.kv_heads),
            self.seq.0.len(),
            len(&self.kv_seq),
            self.head_dim.0.len(),
        ];
        collect_checked(cross(&lens).map(|ix| {
            let (q_heads, q_len) = (self.heads.0[ix[2]], self.seq.0[ix[4]]);
            Workload::Attention(AttentionSpec {
                dtype: self.dtype[ix[0]],
                batch: self.batch.0[ix[1]],
                q_heads,
                kv_heads: pick(&self.kv_heads, ix[3], q_heads),
                q_len,
                kv_len: pick(&self.kv_seq, ix[5], q_len),
                head_dim: self.head_dim.0[ix[6]],
                causal: self.causal,
            })
        }))
    }

    fn swept(&self) -> Option<Param> {
        let len = |a: &Option<Axis>| a.as_ref().map_or(1, |a| a.0.len());
        first_swept(&ATTENTION_PARAMS, |p| match p {
            Param::Seq => self.seq.0.len(),
            Param::KvSeq => len(&self.kv_seq),
            Param::Batch => self.batch.0.len(),
            Param::Heads => self.heads.0.len(),
            Param::KvHeads => len(&self.kv_heads),
            _ => self.head_dim.0.len(),
        })
    }
}

impl Verify for AttentionSpec {
    /// Every row of small problems; the first and last rows and random ones of large problems.
    fn verify_output(&self, inputs: &[Tensor], o: &Tensor, seed: u64) -> Verification {
        let spec = self;
        let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
        let (bn, hn, lq, d) = (
            spec.batch as usize,
            spec.q_heads as usize,
            spec.q_len as usize,
            spec.head_dim as usize,
        );
        let total_rows = bn * hn * lq;
        let macs = total_rows as u128 * spec.kv_len as u128 * d as u128;
        // A problem of few rows (one long decode row per head) has them all checked: that is
        // a full check, however many MACs it takes.
        let few = total_rows <= SAMPLED_ROWS;
        let (rows, method): (Vec<(usize, usize, usize)>, VerifyMethod) =
            if macs <= FULL_CHECK_MACS || few {
                let all = (0..bn)
                    .flat_map(|b| (0..hn).flat_map(move |h| (0..lq).map(move |i| (b, h, i))))
                    .collect();
                (all, VerifyMethod::Full)
            } else {
                (sampled_rows(bn, hn, lq, seed), VerifyMethod::SampledRows)
            };
        let worst = Worst::over(rows.par_iter(), |w, &(b, h, i)| {
            let (r, terms) = attention_row(spec, q, k, v, b, h, i);
            let off = ((b * hn + h) * lq + i) * d;
            let (mut err, mut scale) = (0.0, 0.0);
            for (x, (rv, s)) in r.iter().zip(&terms).enumerate() {
                err += (o.get(off + x) - rv).powi(2);
                scale += (rv.abs() + s).powi(2);
            }
            w.see(err.sqrt() / scale.sqrt().max(f64::MIN_POSITIVE), || {
                format!("O[b{b}][h{h}][q{i}]")
            });
            // The row's elements were all checked.
            w.checked += d as u64 - 1;
        });
        worst.finish(method, spec.tolerance())
    }
}

/// [`SAMPLED_ROWS`] distinct rows (b, h, i), or all there are: the first and last query row of
/// the first and last head among them, the rest random, so that each counts once in what was
/// checked.
fn sampled_rows(bn: usize, hn: usize, lq: usize, seed: u64) -> Vec<(usize, usize, usize)> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(splitmix(seed));
    let mut rows = std::collections::BTreeSet::from([
        (0, 0, 0),
        (bn - 1, hn - 1, lq - 1),
        (0, hn - 1, lq - 1),
    ]);
    while rows.len() < SAMPLED_ROWS.min(bn * hn * lq) {
        rows.insert((
            rng.random_range(0..bn),
            rng.random_range(0..hn),
            rng.random_range(0..lq),
        ));
    }
    rows.into_iter().collect()
}

// The f64 reference, for the verifier (and the mock backend's exact outputs).

/// One attention output row (length D) in f64 for batch `b`, query head `h`, query row `i`,
/// and, per element x, the root-sum-square of the terms it sums, `sqrt(Σ_j (p_j·v_jx)²)` with
/// p the softmax weights: how large the rounding of those terms (a kernel rounds p to bf16
/// before P·V) can make the error, as matmul's check does.
pub fn attention_row(
    spec: &AttentionSpec,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    b: usize,
    h: usize,
    i: usize,
) -> (Vec<f64>, Vec<f64>) {
    let d = spec.head_dim as usize;
    let (lq, lkv) = (spec.q_len as usize, spec.kv_len as usize);
    let group = (spec.q_heads / spec.kv_heads) as usize;
    let hk = h / group;
    let q_off = ((b * spec.q_heads as usize + h) * lq + i) * d;
    let kv_base = (b * spec.kv_heads as usize + hk) * lkv * d;
    let visible = if spec.causal { i + (lkv - lq) + 1 } else { lkv };
    let scale = spec.scale();
    let qrow: Vec<f64> = (0..d).map(|x| q.get(q_off + x)).collect();
    let scores: Vec<f64> = (0..visible)
        .map(|j| {
            let off = kv_base + j * d;
            (0..d).map(|x| qrow[x] * k.get(off + x)).sum::<f64>() * scale
        })
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let denom: f64 = weights.iter().sum();
    let mut out = vec![0.0; d];
    let mut squares = vec![0.0; d];
    for (j, w) in weights.iter().enumerate() {
        let off = kv_base + j * d;
        for x in 0..d {
            let t = w * v.get(off + x);
            out[x] += t;
            squares[x] += t * t;
        }
    }
    out.iter_mut().for_each(|o| *o /= denom);
    let terms = squares.iter().map(|s| s.sqrt() / denom).collect();
    (out, terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sampled rows are distinct (48 rows of D elements), and a problem of no more rows than
    /// that has them all checked, as a full check, however long its context.
    #[test]
    fn sampled_rows_are_counted_once() {
        let spec = |q_heads, q_len, kv_len| AttentionSpec {
            batch: 1,
            q_heads,
            kv_heads: 1,
            q_len,
            kv_len,
            head_dim: 64,
            causal: false,
            dtype: DType::F32,
        };
        // 60 rows: 48 draws with replacement would repeat some (the birthday bound).
        for seed in 0..20 {
            let rows = sampled_rows(1, 2, 30, seed);
            let distinct: std::collections::BTreeSet<_> = rows.iter().collect();
            assert_eq!((rows.len(), distinct.len()), (SAMPLED_ROWS, SAMPLED_ROWS));
            assert!(rows.contains(&(0, 0, 0)) && rows.contains(&(0, 1, 29)));
        }
        for (s, method, rows) in [
            (spec(64, 64, 8192), VerifyMethod::SampledRows, SAMPLED_ROWS),
            (spec(2, 1, 300_000), VerifyMethod::Full, 2),
        ] {
            let ins = s.inputs(7);
            let n = (s.q_heads * s.q_len * s.head_dim) as usize;
            let zeros = Tensor::from_f32("O", vec![n], DType::F32, &vec![0.0; n]);
            let v = s.verify_output(&ins, &zeros, 3);
            assert!(!v.passed, "zeros are wrong");
            assert_eq!(v.method, method);
            assert_eq!(v.checked_elements, (rows * 64) as u64);
        }
    }

    /// A flash kernel as GPUs run it in bf16 (f32 scores and softmax, P rounded to bf16 before
    /// P·V with f32 accumulation, the output rounded to bf16), over the first `keys(visible)`
    /// keys of each row, or with the scores ignored (every weight 1).
    fn modelled_kernel(
        spec: &AttentionSpec,
        ins: &[Tensor],
        keys: impl Fn(usize) -> usize,
        use_scores: bool,
    ) -> Tensor {
        let (q, k, v) = (ins[0].to_f32(), ins[1].to_f32(), ins[2].to_f32());
        let (hn, lq, lkv, d) = (
            spec.q_heads as usize,
            spec.q_len as usize,
            spec.kv_len as usize,
            spec.head_dim as usize,
        );
        let group = hn / spec.kv_heads as usize;
        let mut out = vec![0f32; spec.batch as usize * hn * lq * d];
        for b in 0..spec.batch as usize {
            for h in 0..hn {
                let kv = (b * spec.kv_heads as usize + h / group) * lkv * d;
                for i in 0..lq {
                    let qo = ((b * hn + h) * lq + i) * d;
                    let visible = keys(if spec.causal { i + lkv - lq + 1 } else { lkv });
                    let s: Vec<f32> = (0..visible)
                        .map(|j| {
                            let dot: f32 = (0..d).map(|x| q[qo + x] * k[kv + j * d + x]).sum();
                            if use_scores {
                                dot * spec.scale() as f32
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let p: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
                    let l: f32 = p.iter().sum();
                    for x in 0..d {
                        let acc: f32 = p
                            .iter()
                            .enumerate()
                            .map(|(j, pj)| DType::Bf16.quantize(*pj) * v[kv + j * d + x])
                            .sum();
                        out[qo + x] = acc / l;
                    }
                }
            }
        }
        Tensor::from_f32("O", vec![out.len()], DType::Bf16, &out)
    }

    /// bf16 decode over 4159 keys: a modelled correct kernel passes with room to spare; one
    /// that misses the newest key, drops the last partial tile of 64 keys or ignores the
    /// scores fails. Measured against max|V| (the old rule), all three passed.
    #[test]
    fn the_check_tells_a_missed_key_from_bf16_rounding() {
        let spec = AttentionSpec {
            batch: 1,
            q_heads: 32,
            kv_heads: 8,
            q_len: 1,
            kv_len: 4159,
            head_dim: 128,
            causal: true,
            dtype: DType::Bf16,
        };
        let ins = spec.inputs(20261206);
        let check = |o: &Tensor| spec.verify_output(&ins, o, 1);
        let ok = check(&modelled_kernel(&spec, &ins, |n| n, true));
        assert!(
            ok.passed && ok.max_rel_error < spec.tolerance() / 1.5,
            "{ok:?}"
        );
        assert_eq!(ok.checked_elements, 32 * 128);
        assert_eq!(ok.method, VerifyMethod::Full, "32 rows: all of them");
        for (what, o) in [
            (
                "newest key missed",
                modelled_kernel(&spec, &ins, |n| n - 1, true),
            ),
            (
                "last partial tile dropped",
                modelled_kernel(&spec, &ins, |n| n / 64 * 64, true),
            ),
            ("scores ignored", modelled_kernel(&spec, &ins, |n| n, false)),
        ] {
            let v = check(&o);
            assert!(!v.passed, "{what}: {v:?}");
        }
    }

    fn spec(lq: u64, lkv: u64, causal: bool) -> AttentionSpec {
        AttentionSpec {
            batch: 2,
            q_heads: 8,
            kv_heads: 2,
            q_len: lq,
            kv_len: lkv,
            head_dim: 64,
            causal,
            dtype: DType::Bf16,
        }
    }

    #[test]
    fn causal_pairs_are_exact() {
        // brute force count
        for (lq, lkv) in [(1, 1), (1, 9), (5, 5), (3, 10), (17, 17), (16, 1000)] {
            let s = spec(lq, lkv, true);
            let mut n = 0u128;
            for i in 0..lq {
                for j in 0..lkv {
                    if j <= i + (lkv - lq) {
                        n += 1;
                    }
                }
            }
            assert_eq!(s.visible_pairs(), n, "{lq} {lkv}");
        }
        assert_eq!(spec(7, 9, false).visible_pairs(), 63);
    }

    #[test]
    fn flops_and_bytes() {
        let s = spec(128, 128, false);
        assert_eq!(s.flops(), 4.0 * 2.0 * 8.0 * 128.0 * 128.0 * 64.0);
        let causal = spec(128, 128, true);
        assert_eq!(
            causal.flops(),
            4.0 * 2.0 * 8.0 * 64.0 * (128.0 * 129.0 / 2.0)
        );
        // decode: one query sees every key
        assert_eq!(spec(1, 4096, true).flops(), spec(1, 4096, false).flops());
        let q = 2 * 8 * 128 * 64 * 2;
        let kv = 2 * 2 * 128 * 64 * 2;
        assert_eq!(s.bytes(), 2 * q + 2 * kv);
    }

    #[test]
    fn rejects_bad_specs() {
        let mut s = spec(4, 4, false);
        s.kv_heads = 3;
        assert!(s.validate().is_err());
        let mut s = spec(4, 4, false);
        s.dtype = DType::Int8;
        assert!(s.validate().is_err());
        assert!(spec(8, 4, true).validate().is_err());
        assert!(spec(8, 4, false).validate().is_ok());
        let mut s = spec(4, 4, false);
        s.batch = 0;
        assert!(s.validate().is_err());
    }
}
