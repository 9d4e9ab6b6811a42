//! Verification of free-form user kernels: against an expected output file, by determinism
//! across runs, or explicitly not at all (labelled, never a pass).

use super::{KernelSpec, KernelVerify};
use crate::tensor::Tensor;
use crate::verify::{Verification, Verify, VerifyMethod, Worst};
use rayon::prelude::*;

impl Verify for KernelSpec {
    fn verify_output(&self, _inputs: &[Tensor], out: &Tensor, _seed: u64) -> Verification {
        match &self.verify {
            KernelVerify::Expected { rtol, atol, .. } => {
                match self.files.get().and_then(|f| f.expected.as_ref()) {
                    Some(expected) => against_expected(out, expected, *rtol, *atol),
                    None => not_loaded(),
                }
            }
            KernelVerify::Determinism { .. } => determinism(std::slice::from_ref(out)),
            KernelVerify::Unverified => unverified(),
        }
    }

    /// Its determinism runs; two for an expected output (the second run's output is poisoned
    /// with another pattern, so an element the kernel never writes cannot pass by reading back
    /// as the poison when the expected value happens to be it: 0xFF bytes are -1 as an integer
    /// and NaN as a float, and NaN matches NaN); one when nothing is checked.
    fn verify_runs(&self) -> usize {
        match self.verify {
            KernelVerify::Determinism { runs } => runs as usize,
            KernelVerify::Expected { .. } => 2,
            KernelVerify::Unverified => 1,
        }
    }

    /// Determinism holds the runs against each other; an expected output checks every run
    /// against it and reports the first that fails (else the last).
    fn verify_outputs(&self, inputs: &[Tensor], outs: &[Tensor], seed: u64) -> Verification {
        if outs.len() > 1 && matches!(self.verify, KernelVerify::Determinism { .. }) {
            return determinism(outs);
        }
        let mut last = None;
        for out in outs {
            let v = self.verify_output(inputs, out, seed);
            if !v.passed {
                return v;
            }
            last = Some(v);
        }
        last.unwrap_or_else(not_loaded)
    }
}

fn not_loaded() -> Verification {
    Verification {
        passed: false,
        method: VerifyMethod::Expected,
        max_rel_error: f64::INFINITY,
        tolerance: 0.0,
        checked_elements: 0,
        detail: Some("the expected output was not loaded with the spec".into()),
    }
}

/// Every element within `atol + rtol·|expected|`. The error reported is
/// `|out − expected| / (|expected| + atol/rtol)`, which is at most `rtol` exactly when the
/// element passes (with `rtol = 0`: 0 within `atol`, its plain relative error otherwise).
/// NaN matches NaN; anything else against NaN is infinitely wrong.
pub fn against_expected(out: &Tensor, expected: &Tensor, rtol: f64, atol: f64) -> Verification {
    let n = expected.len();
    let worst = Worst::over((0..n).into_par_iter(), |w, i| {
        let (o, e) = (out.get(i), expected.get(i));
        let diff = (o - e).abs();
        let err = if o == e || (o.is_nan() && e.is_nan()) {
            0.0
        } else if o.is_nan() || e.is_nan() || diff.is_infinite() {
            f64::INFINITY
        } else if rtol > 0.0 {
            diff / (e.abs() + atol / rtol)
        } else if diff <= atol {
            0.0
        } else {
            diff / e.abs().max(f64::MIN_POSITIVE)
        };
        w.see(err, || format!("element {i}: {o} against {e}"));
    });
    worst.finish(VerifyMethod::Expected, rtol)
}

/// Bit-identical outputs over every run. The runs poison the output with patterns that differ
/// (see `Prepared::run_verify_repeated`), so an element left unwritten, a race or an
/// order-dependent reduction shows as a difference. Proves repeatability, not correctness.
pub fn determinism(outs: &[Tensor]) -> Verification {
    let first = &outs[0];
    let n = first.len() as u64;
    for (r, o) in outs.iter().enumerate().skip(1) {
        if o.as_bytes() == first.as_bytes() && o.shape == first.shape {
            continue;
        }
        let at = (0..first.len().min(o.len()))
            .find(|&i| o.get(i).to_bits() != first.get(i).to_bits())
            .unwrap_or(0);
        return Verification {
            passed: false,
            method: VerifyMethod::Determinism,
            max_rel_error: f64::INFINITY,
            tolerance: 0.0,
            checked_elements: n * r as u64,
            detail: Some(format!(
                "run {} differs from run 1 at element {at}: {} against {} (an element the kernel does not write reads back as the poison of that run; or a race, or an order-dependent reduction)",
                r + 1,
                o.get(at),
                first.get(at)
            )),
        };
    }
    Verification {
        passed: true,
        method: VerifyMethod::Determinism,
        max_rel_error: 0.0,
        tolerance: 0.0,
        checked_elements: n * outs.len() as u64,
        detail: None,
    }
}

/// What an explicitly unverified result records: never a pass.
pub fn unverified() -> Verification {
    Verification {
        passed: false,
        method: VerifyMethod::Unverified,
        max_rel_error: f64::INFINITY,
        tolerance: 0.0,
        checked_elements: 0,
        detail: Some(
            "not verified (the spec says verify.method = \"none\"): the time is shown, the result never passes"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Data;

    fn t(v: &[f64]) -> Tensor {
        Tensor {
            name: "out".into(),
            shape: vec![v.len()],
            data: Data::F64(v.to_vec()),
        }
    }

    #[test]
    fn expected_outputs_pass_within_atol_plus_rtol() {
        let e = t(&[1.0, -2.0, 0.0, f64::NAN]);
        let ok = against_expected(&t(&[1.0 + 1e-7, -2.0, 1e-9, f64::NAN]), &e, 1e-6, 1e-8);
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.method, VerifyMethod::Expected);
        assert_eq!(ok.checked_elements, 4);
        let bad = against_expected(&t(&[1.0, -2.0, 1e-6, f64::NAN]), &e, 1e-6, 1e-8);
        assert!(!bad.passed);
        assert!(bad.detail.unwrap().contains("element 2"));
        let nan = against_expected(&t(&[f64::NAN, -2.0, 0.0, f64::NAN]), &e, 1e-2, 0.0);
        assert!(!nan.passed && nan.max_rel_error.is_infinite());
        // exact comparison with rtol 0
        assert!(against_expected(&e, &e, 0.0, 0.0).passed);
        assert!(!against_expected(&t(&[1.5, -2.0, 0.0, f64::NAN]), &e, 0.0, 0.1).passed);
        assert!(against_expected(&t(&[1.05, -2.0, 0.0, f64::NAN]), &e, 0.0, 0.1).passed);
    }

    #[test]
    fn determinism_needs_identical_bits_in_every_run() {
        let a = t(&[1.0, 2.0, 3.0]);
        let v = determinism(&[a.clone(), a.clone(), a.clone()]);
        assert!(v.passed && v.checked_elements == 9);
        let mut b = a.clone();
        b.data = Data::F64(vec![1.0, f64::from_bits(0x5a5a_5a5a_5a5a_5a5a), 3.0]);
        let v = determinism(&[a.clone(), b]);
        assert!(!v.passed);
        let d = v.detail.unwrap();
        assert!(
            d.starts_with("run 2 differs from run 1 at element 1"),
            "{d}"
        );
        // -0.0 and 0.0 compare equal as numbers but not as bits
        let z = determinism(&[t(&[0.0]), t(&[-0.0])]);
        assert!(!z.passed);
        let u = unverified();
        assert!(!u.passed && u.method == VerifyMethod::Unverified);
    }
}
