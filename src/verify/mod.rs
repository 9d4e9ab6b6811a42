//! Verification: a result's time counts only after its output matched an f64 reference.
//!
//! This module is the record of a check ([`Verification`], [`VerifyMethod`]) and the tools every
//! check is built from (the worst-error tracker, relative and bit-exact comparisons); each
//! workload kind checks its own output with them in its module (`workload::matmul`, ...), through
//! the [`Verify`] trait, and its f64 reference lives there too (`workload::reference`). Small
//! problems are compared element by element; large ones with checks that cost O(n²) instead of
//! O(n³) (Freivalds' product check and sampled rows and columns for matmul, sampled rows for
//! attention, exact or sampled elements for transfers and collectives). See
//! docs/verification.md.
//!
//! Nothing here knows a workload kind, so the kinds sit above it and `verify` never imports
//! `workload`: [`verify`] takes anything that implements [`Verify`] (a `Workload` does).

use crate::dtype::DType;
use crate::tensor::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Multiply-adds up to which an output is checked in full (every element of a matmul, every row
/// of attention); larger problems get the sampled checks of their kind.
pub(crate) const FULL_CHECK_MACS: u128 = 1 << 25;

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
    /// Bit-exact comparison (memory copies, transfers, collectives up to a size).
    #[serde(rename = "exact")]
    Exact,
    /// Bit-exact comparison of sampled elements: every chunk's edges and a seeded random
    /// sample (large collectives, whose full reference costs ranks × elements).
    #[serde(rename = "sampled")]
    Sampled,
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
            VerifyMethod::Sampled => "sampled",
            VerifyMethod::Shape => "shape",
            VerifyMethod::None => "none",
            VerifyMethod::Expected => "expected",
            VerifyMethod::Determinism => "determinism",
            VerifyMethod::Unverified => "unverified",
        }
    }
}

crate::label::display_name!(VerifyMethod);

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

impl Verification {
    /// The figures a file may carry: an error and a bound are never negative (a hand-edited
    /// `-1` would print as a passing error). Whether `passed` agrees with them is the method's
    /// own rule (an absolute tolerance passes some relative errors above the bound), so it is
    /// not judged here.
    pub fn check_figures(&self) -> Result<(), String> {
        if self.max_rel_error < 0.0 {
            return Err(format!("a relative error of {}", self.max_rel_error));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(format!("a tolerance of {}", self.tolerance));
        }
        Ok(())
    }
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
pub(crate) struct Worst {
    pub(crate) err: f64,
    pub(crate) at: Option<String>,
    /// Output elements compared; a check whose rows are not outputs (Freivalds) resets it.
    pub(crate) checked: u64,
    /// The worst error is a NaN: most often an output the kernel never wrote, which still
    /// holds the NaN poison the backends fill outputs with before each run.
    pub(crate) nan: bool,
}

impl Worst {
    pub(crate) fn new() -> Self {
        Worst {
            err: 0.0,
            at: None,
            checked: 0,
            nan: false,
        }
    }

    pub(crate) fn see(&mut self, err: f64, at: impl FnOnce() -> String) {
        self.checked += 1;
        // NaN compares false with everything: record it as infinite error explicitly.
        let e = if err.is_nan() { f64::INFINITY } else { err };
        if e > self.err {
            self.err = e;
            self.at = Some(at());
            self.nan = err.is_nan();
        }
    }

    /// The worst over `items`, checked in parallel: `look` sees each item's errors into a
    /// tracker. On a tie the first place is kept, as a sequential pass would keep it.
    pub(crate) fn over<I: ParallelIterator>(
        items: I,
        look: impl Fn(&mut Worst, I::Item) + Sync + Send,
    ) -> Worst {
        items
            .fold(Worst::new, |mut w, x| {
                look(&mut w, x);
                w
            })
            .reduce(Worst::new, Worst::merge)
    }

    pub(crate) fn merge(mut self, o: Worst) -> Worst {
        self.checked += o.checked;
        if o.err > self.err {
            self.err = o.err;
            self.at = o.at;
            self.nan = o.nan;
        }
        self
    }

    pub(crate) fn finish(self, method: VerifyMethod, tol: f64) -> Verification {
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
                self.at.map(|a| {
                    let why = if self.nan {
                        ": NaN, either an output the kernel never wrote (outputs are filled \
                         with NaN before each run) or a NaN it computed"
                    } else {
                        ""
                    };
                    format!("worst error {:.3e} at {a}{why}", self.err)
                })
            },
        }
    }
}

/// Checks `out` (the backend's output of `w` on `inputs`). `seed` picks the random vectors and
/// sampled rows, so a failure reproduces.
pub fn verify(w: &impl Verify, inputs: &[Tensor], out: &Tensor, seed: u64) -> Verification {
    w.verify_output(inputs, out, seed)
}

/// How a workload checks its output: each kind implements it in its module, and `Workload`
/// dispatches to its kind after checking the output's length.
pub trait Verify {
    /// Checks `out` against the f64 reference on `inputs` (in the order the workload's
    /// `input_specs` lists them).
    fn verify_output(&self, inputs: &[Tensor], out: &Tensor, seed: u64) -> Verification;

    /// Verification runs the check needs: one, or several for a check that holds runs against
    /// each other (a user kernel's determinism check, see `Prepared::run_verify_repeated`).
    fn verify_runs(&self) -> usize {
        1
    }

    /// Checks the outputs of [`Verify::verify_runs`] runs (at least one). The default checks
    /// the first as [`Verify::verify_output`] does.
    fn verify_outputs(&self, inputs: &[Tensor], outs: &[Tensor], seed: u64) -> Verification {
        self.verify_output(inputs, &outs[0], seed)
    }
}

/// A failed check when `out` does not hold the `expected` number of elements (nothing else is
/// compared then); `None` when it does.
pub(crate) fn wrong_length(expected: usize, out: &Tensor) -> Option<Verification> {
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

/// `|diff| / denom`, with the denominator floored at 1 for int8 (exact integer results: an
/// error below one unit is none) and at the least positive float otherwise.
pub(crate) fn relative_error(dtype: DType, diff: f64, denom: f64) -> f64 {
    let floor = if dtype == DType::Int8 {
        1.0
    } else {
        f64::MIN_POSITIVE
    };
    diff.abs() / denom.max(floor)
}

/// The error of two values whose bits differ, relative to `scale`: never zero (a `-0` for a
/// `0` is a mismatch too), and NaN where either is NaN (`f64::max` would have turned a NaN
/// into the smallest positive number, which reads as a near miss); [`Worst::see`] records a
/// NaN as an infinite error, and says it was a NaN.
pub(crate) fn mismatch_error(got: f64, want: f64, scale: f64) -> f64 {
    let e = (got - want).abs() / scale;
    if e.is_nan() {
        e
    } else {
        e.max(f64::MIN_POSITIVE)
    }
}

/// Bit-exact comparison, reported as relative error so the field means the same everywhere.
pub(crate) fn exact_elements(n: usize, pair: impl Fn(usize) -> (f64, f64) + Sync) -> Verification {
    let worst = Worst::over((0..n).into_par_iter(), |w, i| {
        let (want, got) = pair(i);
        let e = if got.to_bits() == want.to_bits() {
            0.0
        } else {
            mismatch_error(got, want, want.abs().max(1e-30))
        };
        w.see(e, || format!("element {i}"));
    });
    worst.finish(VerifyMethod::Exact, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NaN where a value belongs is an infinite error (JSON `null`), never the smallest
    /// positive number; other mismatches are their relative error, and never zero.
    #[test]
    fn exact_comparison_reports_nan_as_infinite() {
        let want = [1.0, 2.0, 0.0];
        let check = |got: [f64; 3]| exact_elements(3, |i| (want[i], got[i]));
        let ok = check(want);
        assert!(ok.passed && ok.max_rel_error == 0.0, "{ok:?}");
        let nan = check([1.0, f64::NAN, 0.0]);
        assert!(!nan.passed);
        assert_eq!(nan.max_rel_error, f64::INFINITY);
        // ... and the detail says it was a NaN, the mark of an output left unwritten.
        let detail = nan.detail.unwrap();
        assert!(
            detail.starts_with("worst error inf at element 1: NaN, either"),
            "{detail}"
        );
        let off = check([1.0, 2.5, 0.0]);
        assert!(
            !off.passed && (off.max_rel_error - 0.25).abs() < 1e-15,
            "{off:?}"
        );
        assert!(!off.detail.unwrap().contains("NaN"));
        let signed_zero = check([1.0, 2.0, -0.0]);
        assert!(!signed_zero.passed && signed_zero.max_rel_error > 0.0);
    }
}
