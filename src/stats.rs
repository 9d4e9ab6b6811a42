//! Summary statistics of timing samples, with a seeded bootstrap confidence interval.
//!
//! Samples are per-iteration seconds. The median is the headline (robust to the occasional
//! preempted sample); the 95% interval of the median comes from a percentile bootstrap with a
//! fixed seed, so the same samples always give the same interval.

use crate::tensor::splitmix;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples for the confidence interval of the median.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Above this many samples the interval of the median comes from order statistics instead of
/// resampling. Resampling costs resamples × samples: a validate soak, whose results sample for
/// minutes with no cap, gathers hundreds of thousands of samples on a GPU (millions on the
/// mock), and 2000 resamples of those took minutes after the run had ended. At this size the
/// two intervals agree to a few percent of their width (tested), and the order-statistic one
/// is exact in coverage for any continuous distribution.
pub const BOOTSTRAP_MAX_SAMPLES: usize = 10_000;

/// What the timing samples of one result look like. Field names are part of the JSON schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub samples: usize,
    pub median_s: f64,
    pub mean_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    /// Sample standard deviation (n − 1).
    pub stddev_s: f64,
    /// Median absolute deviation from the median (unscaled).
    pub mad_s: f64,
    pub p10_s: f64,
    pub p90_s: f64,
    /// Bootstrap 95% confidence interval of the median.
    pub ci95_low_s: f64,
    pub ci95_high_s: f64,
    /// Every sample, in the order taken (seconds per iteration).
    pub times_s: Vec<f64>,
}

impl Summary {
    /// Summarises `times` (must be non-empty and finite). `seed` drives the bootstrap.
    pub fn from_samples(times: &[f64], seed: u64) -> Summary {
        assert!(!times.is_empty(), "no samples to summarise");
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            sorted.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let median = quantile_sorted(&sorted, 0.5);
        let mut dev: Vec<f64> = sorted.iter().map(|t| (t - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let (lo, hi) = bootstrap_median_ci(&sorted, 0.95, BOOTSTRAP_RESAMPLES, seed);
        Summary {
            samples: n,
            median_s: median,
            mean_s: mean,
            min_s: sorted[0],
            max_s: sorted[n - 1],
            stddev_s: var.sqrt(),
            mad_s: quantile_sorted(&dev, 0.5),
            p10_s: quantile_sorted(&sorted, 0.1),
            p90_s: quantile_sorted(&sorted, 0.9),
            ci95_low_s: lo,
            ci95_high_s: hi,
            times_s: times.to_vec(),
        }
    }

    /// Relative standard deviation (coefficient of variation).
    pub fn rel_stddev(&self) -> f64 {
        if self.mean_s > 0.0 {
            self.stddev_s / self.mean_s
        } else {
            0.0
        }
    }

    /// The 95% interval of the median in seconds, where the samples give one. A single sample
    /// (`--max-samples 1`, or a run interrupted after its first) says nothing about spread: the
    /// JSON keeps its schema and writes the sample as both ends, but nothing shown or exported
    /// may present that as an interval of width zero.
    pub fn interval(&self) -> Option<(f64, f64)> {
        (self.samples >= 2
            && self.ci95_low_s.is_finite()
            && self.ci95_low_s > 0.0
            && self.ci95_high_s >= self.ci95_low_s)
            .then_some((self.ci95_low_s, self.ci95_high_s))
    }

    /// Half-width of the CI95 of the median, relative to the median; `None` without an
    /// [`interval`](Summary::interval).
    pub fn rel_ci_half_width(&self) -> Option<f64> {
        let (lo, hi) = self.interval()?;
        (self.median_s > 0.0).then(|| (hi - lo) / 2.0 / self.median_s)
    }
}

/// Linear-interpolated quantile of sorted data (the "type 7" definition of R and numpy).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Median of unsorted data.
pub fn median(data: &[f64]) -> f64 {
    let mut v = data.to_vec();
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, 0.5)
}

/// Median by selection, O(n): reorders `buf`.
fn median_in_place(buf: &mut [f64]) -> f64 {
    let n = buf.len();
    let (left, hi, _) = buf.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        hi
    } else {
        let lo = left.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

/// Percentile bootstrap interval of the median at `level` (e.g. 0.95); past
/// [`BOOTSTRAP_MAX_SAMPLES`] the distribution-free order-statistic interval instead.
pub fn bootstrap_median_ci(data: &[f64], level: f64, resamples: usize, seed: u64) -> (f64, f64) {
    let n = data.len();
    if n < 2 {
        return (data[0], data[0]);
    }
    if n > BOOTSTRAP_MAX_SAMPLES {
        // `Summary::from_samples` hands its samples over sorted already.
        if data.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
            return order_statistic_median_ci(data, level);
        }
        let mut sorted = data.to_vec();
        sorted.sort_by(f64::total_cmp);
        return order_statistic_median_ci(&sorted, level);
    }
    percentile_bootstrap(data, level, resamples, seed)
}

/// The percentile bootstrap of the median: `resamples` resamples of `data` (at least two
/// values), the medians' `level` interval.
fn percentile_bootstrap(data: &[f64], level: f64, resamples: usize, seed: u64) -> (f64, f64) {
    let mut medians = resampled_medians(data, resamples, splitmix(seed ^ 0x5eed_b007));
    medians.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    (
        quantile_sorted(&medians, alpha),
        quantile_sorted(&medians, 1.0 - alpha),
    )
}

/// The medians of `resamples` bootstrap resamples of `data` (each `data.len()` draws with
/// replacement), from a stream seeded by `stream_seed`: the one resampling loop behind this
/// module's interval of a median and `compare`'s interval of a ratio of medians.
pub fn resampled_medians(data: &[f64], resamples: usize, stream_seed: u64) -> Vec<f64> {
    let n = data.len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(stream_seed);
    let mut buf = vec![0.0; n];
    (0..resamples)
        .map(|_| {
            for b in buf.iter_mut() {
                *b = data[rng.random_range(0..n)];
            }
            median_in_place(&mut buf)
        })
        .collect()
}

/// The interval of the median between two order statistics of sorted data: the number of
/// samples below the true median is Binomial(n, ½), so the ranks n/2 ∓ z·√n/2 (z the normal
/// quantile of the level, a normal approximation that is tight at the sizes this serves) hold
/// it with the asked probability, whatever the distribution.
fn order_statistic_median_ci(sorted: &[f64], level: f64) -> (f64, f64) {
    let n = sorted.len();
    let z = normal_quantile(0.5 + level / 2.0);
    let half = z * (n as f64).sqrt() / 2.0;
    let lo = ((n as f64 / 2.0 - half).floor().max(1.0) as usize).min(n);
    let hi = ((n as f64 / 2.0 + half).ceil() as usize + 1).min(n);
    // 1-based ranks.
    (sorted[lo - 1], sorted[hi - 1])
}

/// The standard normal quantile at `p` in (0, 1): the z of a confidence level.
pub fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON))
}

/// Student's t quantile at `p` in (0, 1) with `df` degrees of freedom (fractional for Welch);
/// the normal quantile when `df` is infinite or beyond any table.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) if df.is_finite() && df < 1e7 => {
            t.inverse_cdf(p.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON))
        }
        _ => normal_quantile(p),
    }
}

/// The interval of `mean(b) − mean(a)` at `level` (e.g. 0.95), from Student's t.
///
/// Both sides of two or more values: Welch's interval (each side its own variance, the
/// Welch–Satterthwaite degrees of freedom). One side of a single value: that side's variance is
/// taken to be the other side's (pooled, `k − 1` degrees of freedom), since a single value
/// shows none. `floor` is a least variance per value of each side (`floor[0]` for `a`,
/// `floor[1]` for `b`; `[0.0, 0.0]` for none): what each value is known to carry whatever their
/// scatter shows. A side's variance is raised to its floor, a single value's borrowed variance
/// to the larger floor, and `floored` says whether a floor was used. `None` when either side is
/// empty, both hold one value (no variance to go on), or a value is not finite. A spread (and
/// floor) of zero on both sides gives an interval of no width.
pub fn mean_difference_interval(
    a: &[f64],
    b: &[f64],
    level: f64,
    floor: [f64; 2],
) -> Option<MeanDifference> {
    if a.is_empty() || b.is_empty() || a.len() + b.len() < 3 {
        return None;
    }
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return None;
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let var = |s: &[f64], m: f64| {
        if s.len() < 2 {
            0.0
        } else {
            s.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (s.len() - 1) as f64
        }
    };
    let (ka, kb) = (a.len() as f64, b.len() as f64);
    let (ma, mb) = (mean(a), mean(b));
    let floor = floor.map(|f| if f.is_finite() { f.max(0.0) } else { 0.0 });
    let (va0, vb0) = (var(a, ma), var(b, mb));
    let (va, vb) = (va0.max(floor[0]), vb0.max(floor[1]));
    let estimate = mb - ma;
    let mut floored = (a.len() >= 2 && va > va0) || (b.len() >= 2 && vb > vb0);
    let (se, df) = if a.len() >= 2 && b.len() >= 2 {
        let (qa, qb) = (va / ka, vb / kb);
        let se2 = qa + qb;
        let df = se2 * se2 / (qa * qa / (ka - 1.0) + qb * qb / (kb - 1.0));
        (se2.sqrt(), df)
    } else {
        // One side is a single value: the other side's variance stands for both, at least
        // the larger floor.
        let (v0, df) = if a.len() >= 2 {
            (va0, ka - 1.0)
        } else {
            (vb0, kb - 1.0)
        };
        let v = v0.max(floor[0]).max(floor[1]);
        floored |= v > v0;
        ((v * (1.0 / ka + 1.0 / kb)).sqrt(), df)
    };
    let half = if se > 0.0 {
        t_quantile(0.5 + level.clamp(0.0, 1.0) / 2.0, df) * se
    } else {
        0.0
    };
    Some(MeanDifference {
        estimate,
        low: estimate - half,
        high: estimate + half,
        df: if se > 0.0 { df } else { f64::INFINITY },
        floored,
    })
}

/// A difference of means with its Student-t interval ([`mean_difference_interval`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanDifference {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// Degrees of freedom of the t quantile (infinite when the spread was zero).
    pub df: f64,
    /// Whether a floor raised a variance (see [`mean_difference_interval`]).
    pub floored: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let s = Summary::from_samples(&[1.0, 2.0, 3.0, 4.0, 100.0], 1);
        assert_eq!(s.median_s, 3.0);
        assert_eq!(s.mean_s, 22.0);
        assert_eq!(s.min_s, 1.0);
        assert_eq!(s.max_s, 100.0);
        assert_eq!(s.mad_s, 1.0);
        assert!((s.p10_s - 1.4).abs() < 1e-12);
        assert!((s.p90_s - 61.6).abs() < 1e-12);
        let var: f64 = [21.0f64, 20.0, 19.0, 18.0, 78.0]
            .iter()
            .map(|d| d * d)
            .sum::<f64>()
            / 4.0;
        assert!((s.stddev_s - var.sqrt()).abs() < 1e-12);
        assert!(s.ci95_low_s <= s.median_s && s.median_s <= s.ci95_high_s);
    }

    #[test]
    fn single_sample() {
        let s = Summary::from_samples(&[0.5], 1);
        assert_eq!(s.stddev_s, 0.0);
        assert_eq!(s.ci95_low_s, 0.5);
        assert_eq!(s.ci95_high_s, 0.5);
        // The schema keeps the fields; nothing may read them as a measured spread.
        assert_eq!(s.interval(), None);
        assert_eq!(s.rel_ci_half_width(), None);
        let two = Summary::from_samples(&[0.5, 0.6], 1);
        assert!(two.interval().is_some() && two.rel_ci_half_width().unwrap() > 0.0);
    }

    #[test]
    fn bootstrap_is_seeded_and_covers_true_median() {
        // Uniform(1, 2) samples: the true median is 1.5. The interval should usually contain it
        // and always be reproducible.
        let mut covered = 0;
        for trial in 0..200u64 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(trial);
            let data: Vec<f64> = (0..50).map(|_| rng.random_range(1.0..2.0)).collect();
            let a = bootstrap_median_ci(&data, 0.95, 500, 9);
            let b = bootstrap_median_ci(&data, 0.95, 500, 9);
            assert_eq!(a, b);
            if a.0 <= 1.5 && 1.5 <= a.1 {
                covered += 1;
            }
        }
        // nominal 95%; percentile bootstrap of a median on n=50 is close to that
        assert!(covered >= 175, "coverage {covered}/200");
    }

    #[test]
    fn normal_quantiles() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.995, 2.575_829_303_548_901),
            (0.001, -3.090_232_306_167_813),
            (0.9, 1.281_551_565_544_6),
        ] {
            assert!(
                (normal_quantile(p) - z).abs() < 1e-8,
                "{p}: {}",
                normal_quantile(p)
            );
        }
    }

    /// Student's t quantiles against published table values, fractional df included
    /// (R: qt(0.975, 4.5) = 2.6490...).
    #[test]
    fn t_quantiles() {
        for (p, df, t) in [
            (0.975, 1.0, 12.706_204_736_174_7),
            (0.975, 2.0, 4.302_652_729_749_46),
            (0.975, 4.0, 2.776_445_105_197_8),
            (0.975, 10.0, 2.228_138_851_986_27),
            (0.995, 8.0, 3.355_387_331_324_45),
            (0.025, 4.0, -2.776_445_105_197_8),
        ] {
            assert!((t_quantile(p, df) - t).abs() < 1e-6, "{p} {df}");
        }
        let frac = t_quantile(0.975, 4.5);
        assert!(frac < 2.776_445 && frac > 2.570_582, "{frac}");
        assert!((t_quantile(0.975, f64::INFINITY) - 1.959_964).abs() < 1e-6);
    }

    /// Welch's interval against a hand computation; pooled when one side has one value;
    /// swapping the sides negates it; no interval from two single values.
    const NO_FLOOR: [f64; 2] = [0.0, 0.0];

    #[test]
    fn mean_difference_intervals() {
        let a = [1.0, 2.0, 3.0];
        let b = [2.0, 4.0, 6.0, 8.0];
        let d = mean_difference_interval(&a, &b, 0.95, NO_FLOOR).unwrap();
        // va = 1, vb = 20/3; qa = 1/3, qb = 5/3; se² = 2; df = 4 / (1/18 + 25/27).
        let df = 4.0 / (1.0 / 18.0 + 25.0 / 27.0);
        let half = t_quantile(0.975, df) * 2f64.sqrt();
        assert!((d.estimate - 3.0).abs() < 1e-12);
        assert!((d.df - df).abs() < 1e-12);
        assert!((d.high - d.estimate - half).abs() < 1e-9, "{d:?}");
        let r = mean_difference_interval(&b, &a, 0.95, NO_FLOOR).unwrap();
        assert!((r.low + d.high).abs() < 1e-12 && (r.high + d.low).abs() < 1e-12);
        // One value against three: the three's variance (1) for both, 2 degrees of freedom.
        let p = mean_difference_interval(&[5.0], &a, 0.95, NO_FLOOR).unwrap();
        let half = t_quantile(0.975, 2.0) * (1.0f64 * (1.0 + 1.0 / 3.0)).sqrt();
        assert!((p.estimate + 3.0).abs() < 1e-12 && (p.high - p.estimate - half).abs() < 1e-9);
        assert!(mean_difference_interval(&[1.0], &[2.0], 0.95, NO_FLOOR).is_none());
        assert!(mean_difference_interval(&[], &a, 0.95, NO_FLOOR).is_none());
        assert!(mean_difference_interval(&[f64::NAN, 1.0], &a, 0.95, NO_FLOOR).is_none());
        let z = mean_difference_interval(&[1.0, 1.0], &[2.0, 2.0], 0.95, NO_FLOOR).unwrap();
        assert_eq!((z.low, z.estimate, z.high), (1.0, 1.0, 1.0));
        assert!(!z.floored);
        // A floor gives values that agree exactly the spread each is known to carry.
        let f = mean_difference_interval(&[1.0, 1.0], &[2.0, 2.0], 0.95, [0.01, 0.01]).unwrap();
        let half = t_quantile(0.975, 2.0) * (0.01f64 / 2.0 + 0.01 / 2.0).sqrt();
        assert!(f.floored && (f.high - 1.0 - half).abs() < 1e-12, "{f:?}");
        // A floor below the scatter changes nothing.
        let g = mean_difference_interval(&a, &b, 0.95, [1e-6, 1e-6]).unwrap();
        assert_eq!((g.low, g.high, g.floored), (d.low, d.high, false));
        // One run against three that agree exactly: the larger floor stands for both.
        let p = mean_difference_interval(&[1.0, 1.0, 1.0], &[1.1], 0.95, [0.0, 0.04]).unwrap();
        let half = t_quantile(0.975, 2.0) * (0.04f64 * (1.0 / 3.0 + 1.0)).sqrt();
        assert!(
            p.floored && (p.high - p.estimate - half).abs() < 1e-12,
            "{p:?}"
        );
    }

    #[test]
    fn many_samples_take_the_order_statistic_interval() {
        // Log-normal timings just past the switch: the order-statistic interval covers the
        // median and matches the bootstrap's (taken directly) to a small share of its width.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let n = BOOTSTRAP_MAX_SAMPLES + 1;
        let mut data: Vec<f64> = (0..n)
            .map(|_| {
                let u: f64 = rng.random_range(1e-12..1.0);
                let v: f64 = rng.random();
                let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
                1e-3 * (0.05 * z).exp()
            })
            .collect();
        data.sort_by(f64::total_cmp);
        let (lo, hi) = bootstrap_median_ci(&data, 0.95, 2000, 3);
        let m = quantile_sorted(&data, 0.5);
        assert!(lo < m && m < hi, "{lo} {m} {hi}");
        // The bootstrap itself, below the switch's reach.
        let (blo, bhi) = percentile_bootstrap(&data, 0.95, 2000, 3);
        let width = bhi - blo;
        assert!(
            (lo - blo).abs() < 0.15 * width && (hi - bhi).abs() < 0.15 * width,
            "order statistics [{lo}, {hi}] vs bootstrap [{blo}, {bhi}]"
        );
        // Coverage of the true median (1e-3) over repeated draws: close to 95%.
        let mut covered = 0;
        for trial in 0..200u64 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(100 + trial);
            let d: Vec<f64> = (0..20_001)
                .map(|_| rng.random_range(0.5e-3..1.5e-3))
                .collect();
            let (lo, hi) = bootstrap_median_ci(&d, 0.95, 2000, trial);
            if lo <= 1e-3 && 1e-3 <= hi {
                covered += 1;
            }
        }
        assert!((180..=198).contains(&covered), "coverage {covered}/200");
    }

    #[test]
    fn normal_samples_have_expected_spread() {
        // Box–Muller normal(10, 0.5): stddev ≈ 0.5, MAD ≈ 0.674·0.5.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
        let data: Vec<f64> = (0..20000)
            .map(|_| {
                let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                10.0 + 0.5 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect();
        let s = Summary::from_samples(&data, 3);
        assert!((s.mean_s - 10.0).abs() < 0.02);
        assert!((s.median_s - 10.0).abs() < 0.02);
        assert!((s.stddev_s - 0.5).abs() < 0.02);
        assert!((s.mad_s - 0.6745 * 0.5).abs() < 0.02);
        assert!((s.p90_s - (10.0 + 1.2816 * 0.5)).abs() < 0.03);
        assert!(s.rel_ci_half_width().unwrap() < 0.002);
    }
}
