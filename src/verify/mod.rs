//! Verification: a result's time counts only after its output matched an f64 reference.
//!
//! Small problems are compared element by element. Large ones use checks that cost O(n²)
//! instead of O(n³): Freivalds' randomized product check for matmul (A·(B·x) against C·x)
//! together with exact rows and columns sampled at the edges and at random (tails are where
//! tiled kernels go wrong), and sampled rows for attention. See docs/verification.md.

pub mod kernel;
pub mod reference;

use crate::dtype::DType;
use crate::inputs::{TRIAD_SCALAR, WRITE_VALUE};
use crate::tensor::{splitmix, Tensor};
use crate::workload::{AttentionSpec, MatmulSpec, MemOp, MemorySpec, Workload};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Multiply-adds up to which a matmul is checked in full.
const FULL_MATMUL_MACS: u128 = 1 << 25;
/// Multiply-adds up to which every attention row is checked.
const FULL_ATTENTION_MACS: u128 = 1 << 25;
/// Rows (and columns) sampled in the large-size checks.
const SAMPLED_LINES: usize = 6;
/// Attention rows sampled in the large-size check.
const SAMPLED_ROWS: usize = 48;

/// How an output was checked, as written in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VerifyMethod {
    /// Every output element against the f64 reference.
    #[serde(rename = "full")]
    Full,
    /// Freivalds' random-vector check of the whole product plus sampled rows and columns.
    #[serde(rename = "freivalds+sampled")]
    FreivaldsSampled,
    /// Sampled attention rows against the reference.
    #[serde(rename = "sampled-rows")]
    SampledRows,
    /// Bit-exact comparison (memory copies).
    #[serde(rename = "exact")]
    Exact,
    /// The output had the wrong number of elements; nothing was compared.
    #[serde(rename = "shape")]
    Shape,
    /// Not verified (the run failed first).
    #[serde(rename = "none")]
    None,
    /// A user kernel's output against the expected output from a file, within atol + rtol.
    #[serde(rename = "expected")]
    Expected,
    /// A user kernel's output bit-identical across runs, buffer sets and poison patterns:
    /// repeatable, not checked against a reference.
    #[serde(rename = "determinism")]
    Determinism,
    /// Not checked, as the user's spec asked: the result is labelled and never passes.
    #[serde(rename = "unverified")]
    Unverified,
}

impl VerifyMethod {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            VerifyMethod::Full => "full",
            VerifyMethod::FreivaldsSampled => "freivalds+sampled",
            VerifyMethod::SampledRows => "sampled-rows",
            VerifyMethod::Exact => "exact",
            VerifyMethod::Shape => "shape",
            VerifyMethod::None => "none",
            VerifyMethod::Expected => "expected",
            VerifyMethod::Determinism => "determinism",
            VerifyMethod::Unverified => "unverified",
        }
    }
}

impl std::fmt::Display for VerifyMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Compared with its report name, so `method == "full"` reads as it always did.
impl PartialEq<&str> for VerifyMethod {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// The outcome of checking one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub passed: bool,
    pub method: VerifyMethod,
    /// Largest relative error seen (see docs/verification.md for each workload's definition).
    /// Infinite (written as JSON `null`) when the output held NaN or nothing was compared.
    #[serde(with = "finite_or_null")]
    pub max_rel_error: f64,
    /// The bound it was held to.
    pub tolerance: f64,
    /// Output elements compared exactly against the reference (Freivalds rows not counted).
    pub checked_elements: u64,
    /// Where it failed, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// JSON has no infinity: write non-finite errors as `null` and read `null` back as infinity.
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// Tracks the worst error and where it was.
struct Worst {
    err: f64,
    at: Option<String>,
    checked: u64,
}

impl Worst {
    fn new() -> Self {
        Worst {
            err: 0.0,
            at: None,
            checked: 0,
        }
    }

    fn see(&mut self, err: f64, at: impl FnOnce() -> String) {
        self.checked += 1;
        // NaN compares false with everything: record it as infinite error explicitly.
        let e = if err.is_nan() { f64::INFINITY } else { err };
        if e > self.err {
            self.err = e;
            self.at = Some(at());
        }
    }

    fn merge(mut self, o: Worst) -> Worst {
        self.checked += o.checked;
        if o.err > self.err {
            self.err = o.err;
            self.at = o.at;
        }
        self
    }

    fn finish(self, method: VerifyMethod, tol: f64) -> Verification {
        let passed = self.err <= tol && self.err.is_finite();
        Verification {
            passed,
            method,
            max_rel_error: self.err,
            tolerance: tol,
            checked_elements: self.checked,
            detail: if passed {
                None
            } else {
                self.at
                    .map(|a| format!("worst error {:.3e} at {a}", self.err))
            },
        }
    }
}

/// Checks `out` (the backend's output of `w` on `inputs`). `seed` picks the random vectors and
/// sampled rows, so a failure reproduces.
pub fn verify(w: &Workload, inputs: &[Tensor], out: &Tensor, seed: u64) -> Verification {
    if let Some(v) = shape_mismatch(w, out) {
        return v;
    }
    crate::workload::each_kind!(w, s => s.verify_output(inputs, out, seed))
}

/// Checks the outputs of [`kernel::runs`]`(w)` verification runs: held against each other for
/// a determinism check, else the one output as [`verify`] does.
pub fn verify_runs(w: &Workload, inputs: &[Tensor], outs: &[Tensor], seed: u64) -> Verification {
    if let Some(v) = outs.iter().find_map(|o| shape_mismatch(w, o)) {
        return v;
    }
    if outs.len() > 1 {
        return kernel::determinism(outs);
    }
    verify(w, inputs, &outs[0], seed)
}

/// A workload kind's verification entry. It lives here rather than in the kind's module so
/// that `workload` stays below `verify` (no import cycle); `verify` only dispatches to it.
pub trait Verify {
    /// Checks `out` against the f64 reference of this spec on `inputs` (in the order
    /// `WorkloadKind::inputs` makes them).
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, seed: u64) -> Verification;
}

impl Verify for MatmulSpec {
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, seed: u64) -> Verification {
        verify_matmul(self, &inputs[0], &inputs[1], out, seed)
    }
}

impl Verify for AttentionSpec {
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, seed: u64) -> Verification {
        verify_attention(self, inputs, out, seed)
    }
}

impl Verify for MemorySpec {
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, _seed: u64) -> Verification {
        verify_memory(self, inputs, out)
    }
}

fn shape_mismatch(w: &Workload, out: &Tensor) -> Option<Verification> {
    let expected = w.output_len();
    (out.len() != expected).then(|| Verification {
        passed: false,
        method: VerifyMethod::Shape,
        max_rel_error: f64::INFINITY,
        tolerance: 0.0,
        checked_elements: 0,
        detail: Some(format!(
            "output has {} elements, expected {expected}",
            out.len()
        )),
    })
}

fn verify_matmul(spec: &MatmulSpec, a: &Tensor, b: &Tensor, c: &Tensor, seed: u64) -> Verification {
    let (m, n) = (spec.m as usize, spec.n as usize);
    let tol = spec.dtype.tolerance();
    let a64 = a.to_f64();
    // Element-wise error: |C − R| / (|R| + sqrt(Σ_k (a·b)²)). The second term keeps the measure
    // meaningful where R happens to be near zero through cancellation.
    let check = |i: usize, j: usize| -> f64 {
        let (r, s) = reference::matmul_element(spec, &a64, b, i, j);
        relative_error(spec.dtype, c.get(i * n + j) - r, r.abs() + s)
    };
    let macs = spec.m as u128 * spec.n as u128 * spec.k as u128;
    if macs <= FULL_MATMUL_MACS {
        let worst = (0..m)
            .into_par_iter()
            .map(|i| {
                let mut w = Worst::new();
                for j in 0..n {
                    w.see(check(i, j), || format!("C[{i}][{j}]"));
                }
                w
            })
            .reduce(Worst::new, Worst::merge);
        return worst.finish(VerifyMethod::Full, tol);
    }
    let sampled = sampled_cells(m, n, seed)
        .par_chunks(256)
        .map(|chunk| {
            let mut w = Worst::new();
            for &(i, j) in chunk {
                w.see(check(i, j), || format!("C[{i}][{j}]"));
            }
            w
        })
        .reduce(Worst::new, Worst::merge);
    sampled
        .merge(freivalds(spec, &a64, b, c, seed))
        .finish(VerifyMethod::FreivaldsSampled, tol)
}

/// `|diff| / denom`, with the denominator floored at 1 for int8 (exact integer results: an
/// error below one unit is none) and at the least positive float otherwise.
fn relative_error(dtype: DType, diff: f64, denom: f64) -> f64 {
    let floor = if dtype == DType::Int8 {
        1.0
    } else {
        f64::MIN_POSITIVE
    };
    diff.abs() / denom.max(floor)
}

/// Sampled lines of an `m × n` output: first, last and random rows and columns (every cell of
/// each), to be checked exactly.
fn sampled_cells(m: usize, n: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(splitmix(seed));
    let mut rows = vec![0, m - 1];
    let mut cols = vec![0, n - 1];
    while rows.len() < SAMPLED_LINES.min(m) {
        rows.push(rng.random_range(0..m));
    }
    while cols.len() < SAMPLED_LINES.min(n) {
        cols.push(rng.random_range(0..n));
    }
    rows.sort_unstable();
    rows.dedup();
    cols.sort_unstable();
    cols.dedup();
    let mut cells: Vec<(usize, usize)> = rows
        .iter()
        .flat_map(|&i| (0..n).map(move |j| (i, j)))
        .collect();
    cells.extend(cols.iter().flat_map(|&j| (0..m).map(move |i| (i, j))));
    cells
}

/// Freivalds: for random x, C·x must equal A·(B·x), two rounds. Integer x for int8 keeps it
/// exact. Its rows count as no checked elements (they are not outputs).
fn freivalds(spec: &MatmulSpec, a64: &[f64], b: &Tensor, c: &Tensor, seed: u64) -> Worst {
    let (m, n, k) = (spec.m as usize, spec.n as usize, spec.k as usize);
    let mut frei = Worst::new();
    for round in 0..2u64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(splitmix(seed ^ (round + 1)));
        let x: Vec<f64> = (0..n)
            .map(|_| {
                if spec.dtype == DType::Int8 {
                    rng.random_range(-8i32..=8) as f64
                } else {
                    rng.random_range(-1.0..1.0)
                }
            })
            .collect();
        let bx: Vec<f64> = (0..k)
            .into_par_iter()
            .map(|kk| (0..n).map(|j| reference::b_at(spec, b, kk, j) * x[j]).sum())
            .collect();
        let w = (0..m)
            .into_par_iter()
            .map(|i| {
                let r: f64 = (0..k).map(|kk| a64[i * k + kk] * bx[kk]).sum();
                let (mut cx, mut scale) = (0.0, 0.0);
                for (j, xj) in x.iter().enumerate() {
                    let t = c.get(i * n + j) * xj;
                    cx += t;
                    scale += t * t;
                }
                // Error of a sum of n independently rounded terms grows like its root-sum-square.
                let e = relative_error(spec.dtype, cx - r, scale.sqrt() + r.abs());
                let mut w = Worst::new();
                w.see(e, || format!("row {i} of C·x (Freivalds round {round})"));
                w.checked = 0;
                w
            })
            .reduce(Worst::new, Worst::merge);
        frei = frei.merge(w);
    }
    frei
}

fn verify_attention(
    spec: &AttentionSpec,
    inputs: &[Tensor],
    o: &Tensor,
    seed: u64,
) -> Verification {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (bn, hn, lq, d) = (
        spec.batch as usize,
        spec.q_heads as usize,
        spec.q_len as usize,
        spec.head_dim as usize,
    );
    let total_rows = bn * hn * lq;
    let macs = total_rows as u128 * spec.kv_len as u128 * d as u128;
    let (rows, method): (Vec<(usize, usize, usize)>, VerifyMethod) = if macs <= FULL_ATTENTION_MACS
    {
        let all = (0..bn)
            .flat_map(|b| (0..hn).flat_map(move |h| (0..lq).map(move |i| (b, h, i))))
            .collect();
        (all, VerifyMethod::Full)
    } else {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(splitmix(seed));
        // Always the first and last query row (tails) of the first and last head.
        let mut rows = vec![(0, 0, 0), (bn - 1, hn - 1, lq - 1), (0, hn - 1, lq - 1)];
        while rows.len() < SAMPLED_ROWS {
            rows.push((
                rng.random_range(0..bn),
                rng.random_range(0..hn),
                rng.random_range(0..lq),
            ));
        }
        (rows, VerifyMethod::SampledRows)
    };
    let tol = spec.dtype.tolerance();
    let worst = rows
        .par_iter()
        .map(|&(b, h, i)| {
            let r = reference::attention_row(spec, q, k, v, b, h, i);
            let scale = reference::v_scale(spec, v, b, h).max(f64::MIN_POSITIVE);
            let off = ((b * hn + h) * lq + i) * d;
            let mut w = Worst::new();
            for (x, rv) in r.iter().enumerate() {
                let e = (o.get(off + x) - rv).abs() / scale;
                w.see(e, || format!("O[b{b}][h{h}][q{i}][{x}]"));
            }
            w
        })
        .reduce(Worst::new, Worst::merge);
    worst.finish(method, tol)
}

fn verify_memory(spec: &MemorySpec, inputs: &[Tensor], out: &Tensor) -> Verification {
    let n = spec.elements() as usize;
    match spec.op {
        MemOp::Copy => exact_elements(n, |i| (inputs[0].get(i), out.get(i))),
        MemOp::Write => exact_elements(n, |i| (WRITE_VALUE as f64, out.get(i))),
        MemOp::Triad => {
            let (b, c) = (&inputs[0], &inputs[1]);
            let s = TRIAD_SCALAR as f64;
            let worst = (0..n)
                .into_par_iter()
                .fold(Worst::new, |mut w, i| {
                    let (bv, cv) = (b.get(i), c.get(i));
                    let r = bv + s * cv;
                    let e = (out.get(i) - r).abs() / (bv.abs() + (s * cv).abs()).max(1e-30);
                    w.see(e, || format!("a[{i}]"));
                    w
                })
                .reduce(Worst::new, Worst::merge);
            // f32 rounding of b + s·c, with or without a fused multiply-add: two ulps.
            worst.finish(VerifyMethod::Full, 2.5e-7)
        }
        MemOp::Read => {
            let src = &inputs[0];
            let (sum, abs): (f64, f64) = (0..n)
                .into_par_iter()
                .map(|i| {
                    let x = src.get(i);
                    (x, x.abs())
                })
                .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            let mut w = Worst::new();
            w.see((out.get(0) - sum).abs() / abs.max(1e-30), || "sum".into());
            w.finish(VerifyMethod::Full, 1e-5)
        }
    }
}

/// Bit-exact comparison, reported as relative error so the field means the same everywhere.
fn exact_elements(n: usize, pair: impl Fn(usize) -> (f64, f64) + Sync) -> Verification {
    let worst = (0..n)
        .into_par_iter()
        .fold(Worst::new, |mut w, i| {
            let (want, got) = pair(i);
            let e = if got.to_bits() == want.to_bits() {
                0.0
            } else {
                ((got - want).abs() / want.abs().max(1e-30)).max(f64::MIN_POSITIVE)
            };
            w.see(e, || format!("element {i}"));
            w
        })
        .reduce(Worst::new, Worst::merge);
    worst.finish(VerifyMethod::Exact, 0.0)
}
