//! The statistics behind a verdict: a seeded bootstrap interval of the ratio of medians, and the
//! rule that turns that interval into faster / slower / same / ambiguous.
//!
//! Why a ratio of medians: GPU timings are right-skewed (a preempted or throttled sample is slow,
//! never fast), so the median is the stable centre, and a ratio is what people mean by "5% slower".
//! Why a bootstrap of *both* runs: each run has its own noise; resampling each run's samples
//! independently puts both runs' noise into the interval, so a noisy old run cannot make a clean
//! new run look like a regression. What it cannot hold is the variation *between* runs (a run-level
//! offset no sample of one run shows): the threshold band has to (docs/regression.md, "What the
//! interval does not cover", with measured rates).

use crate::stats::quantile_sorted;
use crate::tensor::splitmix;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples used by the CLI: enough for stable 2.5%/97.5% percentiles.
pub const DEFAULT_RESAMPLES: usize = 2000;

/// Two-sided confidence level of the interval.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// The outcome for one matched result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval lies beyond the threshold on the faster side.
    Faster,
    /// The whole interval lies beyond the threshold on the slower side: a confirmed regression.
    Slower,
    /// The whole interval lies inside the noise band.
    Same,
    /// The interval straddles a band edge: more runs, more samples or a quieter machine are
    /// needed.
    Ambiguous,
    /// In OLD only.
    Missing,
    /// In NEW only.
    New,
    /// A side has no trustworthy time (verification failed or no samples): never compared.
    Unverified,
    /// A side errored in the backend: never compared.
    Failed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Same => "same",
            Verdict::Ambiguous => "ambiguous",
            Verdict::Missing => "missing",
            Verdict::New => "new",
            Verdict::Unverified => "unverified",
            Verdict::Failed => "failed",
        }
    }
}

crate::label::display_name!(Verdict, as_str);

/// Ratio of medians NEW/OLD (of time, or of cycles) with its bootstrap interval.
/// Above 1 means NEW takes longer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioCi {
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
}

/// Each side's √τ ([`crate::stats::variance_factor`] of its samples in the order taken): how
/// much [`ratio_of_medians_ci`] widens that side's part of the interval, 1 where the samples
/// show no dependence in time.
pub fn widening(old: &[f64], new: &[f64]) -> [f64; 2] {
    [old, new].map(|t| crate::stats::variance_factor(t).sqrt())
}

/// Percentile-bootstrap interval of `median(new) / median(old)` at `level` (e.g. 0.95).
///
/// Each resample draws `old.len()` values from `old` and `new.len()` values from `new`, with
/// replacement and independently, and takes the ratio of the two medians. `widening` is each
/// side's √τ (`[old, new]`, from [`widening`]): each side's resampled log medians are stretched by it around the side's own log
/// median before the ratio is taken, so that samples that hang together in time do not count
/// as more evidence than they are (1: untouched, the plain bootstrap). Returns `None` when a side is empty or holds a non-positive or
/// non-finite time (no ratio has a meaning then).
///
/// Swapping OLD and NEW gives the reciprocal interval, so the verdict mirrors (slower becomes
/// faster) whichever file is named first: each side resamples from a stream seeded by `seed`
/// and its own samples (a swap hands each data set the same draws as before), and the
/// percentiles are taken of the log ratios, where a swap only negates every draw.
pub fn ratio_of_medians_ci(
    old: &[f64],
    new: &[f64],
    widening: [f64; 2],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<RatioCi> {
    let usable = |s: &[f64]| !s.is_empty() && s.iter().all(|t| t.is_finite() && *t > 0.0);
    if !usable(old) || !usable(new) {
        return None;
    }
    let (median_old, median_new) = (crate::stats::median(old), crate::stats::median(new));
    let ratio = median_new / median_old;
    let resamples = resamples.max(1);
    let (seed_old, seed_new) = side_seeds(old, new, seed);
    // Each side's resampled log medians, stretched by its widening around its own log median.
    let log_medians = |data: &[f64], median: f64, seed: u64, w: f64| -> Vec<f64> {
        let logs = crate::stats::resampled_medians(data, resamples, seed)
            .into_iter()
            .map(f64::ln);
        if w == 1.0 {
            logs.collect()
        } else {
            let c = median.ln();
            logs.map(|l| c + w * (l - c)).collect()
        }
    };
    let logs_old = log_medians(old, median_old, seed_old, widening[0]);
    let logs_new = log_medians(new, median_new, seed_new, widening[1]);
    let mut logs: Vec<f64> = logs_new.iter().zip(&logs_old).map(|(n, o)| n - o).collect();
    logs.sort_by(f64::total_cmp);
    let alpha = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    Some(RatioCi {
        ratio,
        low: quantile_sorted(&logs, alpha).exp(),
        high: quantile_sorted(&logs, 1.0 - alpha).exp(),
    })
}

/// Student-t interval of the NEW/OLD ratio over runs: `old` and `new` are the medians of
/// several runs (reports) a side, and the interval is that of the difference of their mean
/// logarithms ([`crate::stats::mean_difference_interval`]: Welch's, or pooled when a side is a
/// single run), taken back to the ratio scale. The point estimate is the ratio of the sides'
/// geometric means.
///
/// Each run's median carries its own noise within the run *and* whatever set that run apart
/// (a clock, a placement, another tenant), so the spread of the medians holds both: the
/// variation between runs that a bootstrap of one run's samples cannot see. Working in logs
/// keeps the interval symmetric under a swap, like the bootstrap's. `None` when a median is
/// zero, negative or not finite, or each side is one run (nothing shows the spread between
/// runs).
/// `floor` is the least variance of a log median, per side (`[0.0, 0.0]` for none): runs whose
/// medians agree more closely than each run's own samples allow (a coarse clock, a few runs
/// that happen to agree) would otherwise give an interval of no width. Also says whether the
/// floor was used.
pub fn ratio_of_run_medians_ci(
    old: &[f64],
    new: &[f64],
    level: f64,
    floor: [f64; 2],
) -> Option<(RatioCi, bool)> {
    let logs = |s: &[f64]| -> Option<Vec<f64>> {
        s.iter()
            .map(|m| (m.is_finite() && *m > 0.0).then(|| m.ln()))
            .collect()
    };
    let d = crate::stats::mean_difference_interval(&logs(old)?, &logs(new)?, level, floor)?;
    let ci = RatioCi {
        ratio: d.estimate.exp(),
        low: d.low.exp(),
        high: d.high.exp(),
    };
    Some((ci, d.floored))
}

/// The stream seeds of the two sides: each from `seed` and the side's own samples, so that a
/// data set draws the same resamples whichever side it stands on. Two identical sides would
/// then draw identical resamples (a ratio of exactly 1 every time, an interval of no width), so
/// NEW's seed moves when the samples are the same: the two runs' noise stays independent.
fn side_seeds(old: &[f64], new: &[f64], seed: u64) -> (u64, u64) {
    let of = |s: &[f64]| {
        s.iter()
            .fold(splitmix(seed ^ 0x7261_7469_6f00_0001), |h, t| {
                splitmix(h ^ t.to_bits())
            })
    };
    let (a, b) = (of(old), of(new));
    (a, if a == b { splitmix(b ^ 0x5eed) } else { b })
}

/// The noise band for a threshold in percent: `[1/(1+t), 1+t]` on the ratio scale.
///
/// The band is symmetric in log space, so swapping OLD and NEW swaps faster and slower exactly:
/// "slower" means time grew by more than `t`, "faster" means throughput grew by more than `t`.
pub fn band(threshold_pct: f64) -> (f64, f64) {
    let t = threshold_pct.max(0.0) / 100.0;
    (1.0 / (1.0 + t), 1.0 + t)
}

/// Turns an interval into a verdict against a threshold in percent.
///
/// `slower`/`faster` only when the whole interval lies beyond the band on that side, `same` only
/// when the whole interval lies inside it; anything straddling an edge is `ambiguous`. A change
/// smaller than the threshold is therefore never reported as a regression, however precise.
pub fn classify(ci: &RatioCi, threshold_pct: f64) -> Verdict {
    let (lo, hi) = band(threshold_pct);
    if ci.low > hi {
        Verdict::Slower
    } else if ci.high < lo {
        Verdict::Faster
    } else if ci.low >= lo && ci.high <= hi {
        Verdict::Same
    } else {
        Verdict::Ambiguous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn identical_constant_samples_are_same() {
        let s = vec![1e-3; 20];
        let ci = ratio_of_medians_ci(&s, &s, [1.0, 1.0], 0.95, 200, 1).unwrap();
        assert_eq!((ci.ratio, ci.low, ci.high), (1.0, 1.0, 1.0));
        assert_eq!(classify(&ci, 2.0), Verdict::Same);
    }

    #[test]
    fn interval_is_seeded() {
        let old: Vec<f64> = (0..25).map(|i| 1.0 + (i % 7) as f64 * 0.01).collect();
        let new: Vec<f64> = (0..25).map(|i| 1.05 + (i % 5) as f64 * 0.01).collect();
        let a = ratio_of_medians_ci(&old, &new, [1.0, 1.0], 0.95, 500, 7).unwrap();
        let b = ratio_of_medians_ci(&old, &new, [1.0, 1.0], 0.95, 500, 7).unwrap();
        assert_eq!(a, b);
        assert!(a.low <= a.ratio && a.ratio <= a.high);
    }

    /// Naming the files the other way round gives the reciprocal interval and the mirrored
    /// verdict, including borderline changes near a band edge (one seed per pair, many pairs).
    #[test]
    fn swapping_old_and_new_mirrors_the_interval_and_the_verdict() {
        let mirror = |v: Verdict| match v {
            Verdict::Slower => Verdict::Faster,
            Verdict::Faster => Verdict::Slower,
            v => v,
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let mut verdicts = std::collections::HashSet::new();
        let mut widened = 0;
        for case in 0..300u64 {
            let n_old = rng.random_range(10..21);
            let n_new = rng.random_range(10..21);
            let noise = rng.random_range(0.003..0.02);
            let shift = rng.random_range(0.0..0.06);
            // Every other case drifts during the run, so that its interval is widened.
            let drift = if case % 2 == 1 { 4.0 * noise } else { 0.0 };
            let side = |n: usize, centre: f64, rng: &mut Xoshiro256PlusPlus| -> Vec<f64> {
                (0..n)
                    .map(|i| {
                        let trend = drift * i as f64 / n as f64;
                        centre * (1.0 + trend + noise * rng.random_range(-1.0..1.0))
                    })
                    .collect()
            };
            let old = side(n_old, 1e-3, &mut rng);
            let new = side(n_new, 1e-3 * (1.0 + shift), &mut rng);
            let w = widening(&old, &new);
            widened += usize::from(w != [1.0, 1.0]);
            let ab = ratio_of_medians_ci(&old, &new, w, 0.95, 500, case).unwrap();
            let ba =
                ratio_of_medians_ci(&new, &old, widening(&new, &old), 0.95, 500, case).unwrap();
            for (x, y) in [(ab.low, ba.high), (ab.high, ba.low), (ab.ratio, ba.ratio)] {
                assert!((x * y - 1.0).abs() < 1e-12, "case {case}: {ab:?} vs {ba:?}");
            }
            let v = classify(&ab, 2.0);
            assert_eq!(
                mirror(v),
                classify(&ba, 2.0),
                "case {case}: {ab:?} vs {ba:?}"
            );
            verdicts.insert(v);
        }
        // The cases reach every verdict a ratio can have, borderline ones included, and many
        // were widened.
        for v in [Verdict::Same, Verdict::Slower, Verdict::Ambiguous] {
            assert!(verdicts.contains(&v), "no case gave {v:?}: {verdicts:?}");
        }
        assert!(widened > 30, "{widened} of 300 widened");
    }

    /// Pairs of runs from one distribution whose samples correlate in time (AR(1), ρ = 0.5,
    /// 100 samples): with the band removed the plain bootstrap calls far more of them changed
    /// than the nominal 5%; widening each side by its √τ brings that down.
    #[test]
    fn widening_holds_correlated_samples() {
        let ar1 = |rng: &mut Xoshiro256PlusPlus| -> Vec<f64> {
            let mut normal = || {
                let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
            };
            let mut x = normal();
            (0..100)
                .map(|_| {
                    x = 0.5 * x + 0.75f64.sqrt() * normal();
                    1e-3 * (1.0 + 0.02 * x)
                })
                .collect()
        };
        let (mut plain, mut widened) = (0, 0);
        let pairs = 300;
        for case in 0..pairs {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xa71 ^ case);
            let (old, new) = (ar1(&mut rng), ar1(&mut rng));
            let changed = |ci: RatioCi| classify(&ci, 0.0) != Verdict::Ambiguous;
            let w = widening(&old, &new);
            plain += usize::from(changed(
                ratio_of_medians_ci(&old, &new, [1.0, 1.0], 0.95, 400, case).unwrap(),
            ));
            widened += usize::from(changed(
                ratio_of_medians_ci(&old, &new, w, 0.95, 400, case).unwrap(),
            ));
        }
        eprintln!("called changed: plain {plain}/{pairs}, widened {widened}/{pairs}");
        assert!(
            widened * 2 < plain && (widened as f64) < 0.1 * pairs as f64,
            "called changed: plain {plain}/{pairs}, widened {widened}/{pairs}"
        );
    }

    /// Two runs with the same samples still resample independently: the interval has width.
    #[test]
    fn identical_noisy_samples_give_an_interval_with_width() {
        let s: Vec<f64> = (0..20)
            .map(|i| 1e-3 * (1.0 + (i % 7) as f64 * 0.002))
            .collect();
        let ci = ratio_of_medians_ci(&s, &s, [1.0, 1.0], 0.95, 500, 3).unwrap();
        assert_eq!(ci.ratio, 1.0);
        assert!(ci.low < 1.0 && ci.high > 1.0, "{ci:?}");
        assert_eq!(classify(&ci, 2.0), Verdict::Same);
    }

    /// The interval over runs: each side's geometric mean, the reciprocal under a swap, and no
    /// interval without a spread to go on.
    #[test]
    fn run_medians_interval() {
        let ratio_of_run_medians_ci = |o: &[f64], n: &[f64], level| {
            super::ratio_of_run_medians_ci(o, n, level, [0.0, 0.0]).map(|(ci, _)| ci)
        };
        let old = [1.00, 1.02, 0.98, 1.01, 0.99];
        let new = [1.10, 1.12, 1.08, 1.11, 1.09];
        let ci = ratio_of_run_medians_ci(&old, &new, 0.95).unwrap();
        let gm = |s: &[f64]| (s.iter().map(|x| x.ln()).sum::<f64>() / s.len() as f64).exp();
        assert!((ci.ratio - gm(&new) / gm(&old)).abs() < 1e-12);
        assert!(ci.low > 1.07 && ci.high < 1.13, "{ci:?}");
        assert_eq!(classify(&ci, 2.0), Verdict::Slower);
        let back = ratio_of_run_medians_ci(&new, &old, 0.95).unwrap();
        assert!((back.low * ci.high - 1.0).abs() < 1e-12);
        assert!((back.high * ci.low - 1.0).abs() < 1e-12);
        assert!(ratio_of_run_medians_ci(&[1.0], &[1.1], 0.95).is_none());
        assert!(ratio_of_run_medians_ci(&[1.0, 0.0], &[1.1, 1.2], 0.95).is_none());
        // Two runs a side that disagree by 10%: the interval is wide, the verdict ambiguous.
        let wide = ratio_of_run_medians_ci(&[1.0, 1.1], &[1.05, 1.15], 0.95).unwrap();
        assert_eq!(classify(&wide, 2.0), Verdict::Ambiguous, "{wide:?}");
    }

    #[test]
    fn rejects_unusable_samples() {
        assert!(ratio_of_medians_ci(&[], &[1.0], [1.0, 1.0], 0.95, 10, 0).is_none());
        assert!(ratio_of_medians_ci(&[1.0], &[0.0], [1.0, 1.0], 0.95, 10, 0).is_none());
        assert!(ratio_of_medians_ci(&[f64::NAN], &[1.0], [1.0, 1.0], 0.95, 10, 0).is_none());
    }

    #[test]
    fn classification_edges() {
        let ci = |low, high| RatioCi {
            ratio: (low + high) / 2.0,
            low,
            high,
        };
        assert_eq!(classify(&ci(1.03, 1.08), 2.0), Verdict::Slower);
        assert_eq!(classify(&ci(1.01, 1.08), 2.0), Verdict::Ambiguous);
        assert_eq!(classify(&ci(0.99, 1.01), 2.0), Verdict::Same);
        assert_eq!(classify(&ci(0.90, 0.97), 2.0), Verdict::Faster);
        assert_eq!(classify(&ci(0.90, 0.99), 2.0), Verdict::Ambiguous);
    }
}
