//! f64 references: the ground truth every backend's output is compared with.
//!
//! Written for clarity, not speed; the verifier only calls them on small problems or on
//! sampled rows and columns.

use crate::tensor::Tensor;
use crate::workload::{AttentionSpec, BLayout, MatmulSpec};

/// Accessor for B[k][j] whichever way B is stored.
#[inline]
pub fn b_at(spec: &MatmulSpec, b: &Tensor, k: usize, j: usize) -> f64 {
    match spec.b_layout {
        BLayout::Kn => b.get(k * spec.n as usize + j),
        BLayout::Nk => b.get(j * spec.k as usize + k),
    }
}

/// C[i][j] in f64, and the scale sqrt(Σ_k (a_ik·b_kj)²) the error is measured against.
pub fn matmul_element(spec: &MatmulSpec, a: &[f64], b: &Tensor, i: usize, j: usize) -> (f64, f64) {
    let k = spec.k as usize;
    let row = &a[i * k..(i + 1) * k];
    let mut sum = 0.0;
    let mut sq = 0.0;
    for (kk, &av) in row.iter().enumerate() {
        let t = av * b_at(spec, b, kk, j);
        sum += t;
        sq += t * t;
    }
    (sum, sq.sqrt())
}

/// One attention output row (length D) in f64 for batch `b`, query head `h`, query row `i`.
pub fn attention_row(
    spec: &AttentionSpec,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    b: usize,
    h: usize,
    i: usize,
) -> Vec<f64> {
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
    for (j, w) in weights.iter().enumerate() {
        let off = kv_base + j * d;
        for (x, o) in out.iter_mut().enumerate() {
            *o += w * v.get(off + x);
        }
    }
    out.iter_mut().for_each(|o| *o /= denom);
    out
}

/// Largest |V| of the KV head that query head `h` of batch `b` reads: the natural scale of an
/// attention output, which is a weighted average of V rows.
pub fn v_scale(spec: &AttentionSpec, v: &Tensor, b: usize, h: usize) -> f64 {
    let d = spec.head_dim as usize;
    let lkv = spec.kv_len as usize;
    let hk = h / (spec.q_heads / spec.kv_heads) as usize;
    let base = (b * spec.kv_heads as usize + hk) * lkv * d;
    (base..base + lkv * d)
        .map(|i| v.get(i).abs())
        .fold(0.0, f64::max)
}
