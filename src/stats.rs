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
/// holds for any continuous distribution (its ranks come from the normal approximation to the
/// binomial, rounded outwards: at these sizes slightly conservative, not exact).
pub const BOOTSTRAP_MAX_SAMPLES: usize = 10_000;

/// The fewest samples that give a 95% interval of the median. No interval from n independent
/// samples is wider than [min, max], and [min, max] holds the true median with probability
/// 1 − 2^(1−n): 50% at two samples, 75% at three, 88% at four, 94% at five, and 97% at six,
/// the first to reach 95% whatever the distribution. A bootstrap of five samples still prints
/// an interval, just not one that holds the median 95 times in 100 (a simulation of
/// log-normal samples covered it 48% of the time at two samples and 88% at four).
pub const MIN_INTERVAL_SAMPLES: usize = 6;

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
    /// How much the interval was widened because the samples hung together in time: √τ of
    /// [`variance_factor`] ([`median_ci`]). Absent where no dependence was found (the interval
    /// is then the plain bootstrap's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95_widening: Option<f64>,
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
        let ci = median_ci_of(times, &sorted, 0.95, BOOTSTRAP_RESAMPLES, seed);
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
            ci95_low_s: ci.low,
            ci95_high_s: ci.high,
            ci95_widening: (ci.widening > 1.0).then_some(ci.widening),
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

    /// The 95% interval of the median in seconds, where the samples give one: at least
    /// [`MIN_INTERVAL_SAMPLES`]. A single sample (`--max-samples 1`, or a run interrupted after
    /// its first) says nothing about spread, and two to five cannot bound the median at 95%
    /// at all: the JSON keeps its schema and writes what the bootstrap gave, but nothing shown,
    /// exported or judged may present that as a 95% interval.
    pub fn interval(&self) -> Option<(f64, f64)> {
        (self.samples >= MIN_INTERVAL_SAMPLES
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

/// Median of unsorted data: (a + b) / 2 of the middle two for an even count, the one rule of
/// every median gpuvet prints (samples, verdicts, fleets); NaN for none.
pub fn median(data: &[f64]) -> f64 {
    if data.is_empty() {
        return f64::NAN;
    }
    median_in_place(&mut data.to_vec())
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

/// The interval of the median at `level` (e.g. 0.95) of `times`, given **in the order they
/// were taken**: samples that hang together in time (a clock or a neighbour that wanders during
/// the run) carry less information than their count, and only their order shows it.
///
/// Up to [`BOOTSTRAP_MAX_SAMPLES`], the percentile bootstrap of independent draws; past it, the
/// distribution-free order-statistic interval. Either is then widened by √τ, where τ is the
/// samples' [`variance_factor`]: 1 (no change at all) where no dependence in time is found.
/// The bootstrap widens around the median on a log scale when every sample is positive (as
/// times are), so that the low end stays positive; the order statistics widen their ranks.
///
/// Why widen rather than resample in blocks: on simulated AR(1) series of 30 to 300 samples
/// with lag-1 correlation 0.3 to 0.9, widening by the estimated √τ held the true median more
/// often than a circular block bootstrap with the Politis–White block length (at 300 samples:
/// 94% against 91% at ρ = 0.5, 88% against 81% at ρ = 0.9; independent draws alone: 79% and
/// 39%), and on independent samples it leaves the interval as it was, where the block length's
/// own noise sometimes chose blocks of a third of the run (docs/measurement.md).
pub fn median_ci(times: &[f64], level: f64, resamples: usize, seed: u64) -> MedianCi {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    median_ci_of(times, &sorted, level, resamples, seed)
}

/// [`median_ci`] with the samples also at hand sorted (`Summary` sorts them anyway).
fn median_ci_of(
    times: &[f64],
    sorted: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> MedianCi {
    let n = times.len();
    if n < 2 {
        return MedianCi {
            low: times[0],
            high: times[0],
            widening: 1.0,
        };
    }
    let tau = variance_factor(times);
    let widening = tau.sqrt();
    let (low, high) = if n > BOOTSTRAP_MAX_SAMPLES {
        order_statistic_median_ci(sorted, level, tau)
    } else {
        let (lo, hi) = percentile_bootstrap(sorted, level, resamples, seed);
        widen(quantile_sorted(sorted, 0.5), lo, hi, widening)
    };
    MedianCi {
        low,
        high,
        widening,
    }
}

/// An interval of the median ([`median_ci`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianCi {
    pub low: f64,
    pub high: f64,
    /// √τ: how much the interval was widened for dependence in time (1: not at all).
    pub widening: f64,
}

/// `[lo, hi]` around `centre` stretched by `factor`: on a log scale when all three are positive,
/// else on a linear one. A factor of 1 returns the ends untouched, bit for bit.
pub fn widen(centre: f64, lo: f64, hi: f64, factor: f64) -> (f64, f64) {
    if factor == 1.0 {
        return (lo, hi);
    }
    if centre > 0.0 && lo > 0.0 && hi > 0.0 {
        let c = centre.ln();
        (
            (c - factor * (c - lo.ln())).exp(),
            (c + factor * (hi.ln() - c)).exp(),
        )
    } else {
        (
            centre - factor * (centre - lo),
            centre + factor * (hi - centre),
        )
    }
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
/// samples below the true median is a sum of n indicators of mean ½, so the ranks
/// n/2 ∓ z·√(n·τ)/2 (z the normal quantile of the level, a normal approximation that is tight at
/// the sizes this serves) hold it with the asked probability, whatever the distribution. τ is
/// the indicators' long-run variance over their variance: 1 for independent samples, more when
/// neighbours hang together. It is read from the ranks ([`variance_factor`]), whose
/// correlations run above the indicators' (for a Gaussian process, (6/π)·asin(ρ/2) against
/// (2/π)·asin(ρ)), so the widening errs on the safe side.
fn order_statistic_median_ci(sorted: &[f64], level: f64, tau: f64) -> (f64, f64) {
    let n = sorted.len();
    let z = normal_quantile(0.5 + level / 2.0);
    let half = z * (n as f64 * tau.max(1.0)).sqrt() / 2.0;
    let lo = ((n as f64 / 2.0 - half).floor().max(1.0) as usize).min(n);
    let hi = ((n as f64 / 2.0 + half).ceil() as usize + 1).min(n);
    // 1-based ranks.
    (sorted[lo - 1], sorted[hi - 1])
}

/// The most multiply-adds [`variance_factor`] spends on autocovariances.
const MAX_AUTOCOVARIANCE_WORK: usize = 200_000_000;

/// τ, how much the samples of a run hang together in time: the long-run variance of `series`
/// (samples in the order taken) over its variance, at least 1. A statistic of n samples varies
/// as one of n/τ independent ones would: 1 for independent samples, (1+ρ)/(1−ρ) for a series
/// whose neighbours correlate by ρ at lag 1 and fade geometrically.
///
/// It is read from the samples' **ranks**, not their values: one preempted sample ten times
/// slower than the rest would otherwise dominate every autocovariance, and the median depends on
/// the samples only through their order anyway. The lags that count are chosen as Politis and
/// White (2004) choose them for their block length: m is the first lag after which `K`
/// autocorrelations in a row are insignificant (below 2·√(log10 n / n), K = max(5, √log10 n)),
/// and the autocovariances up to M = 2m are summed under a flat-top window (weight 1 to M/2,
/// falling to 0 at M). No significant lag gives exactly 1; so does a sum below the variance
/// (negative dependence, as in alternating samples, only narrows the true interval).
pub fn variance_factor(series: &[f64]) -> f64 {
    let n = series.len();
    if n < 8 {
        return 1.0;
    }
    // Ranks, centred; tied samples share their mean rank (a coarse clock gives many ties, and
    // breaking them by position would read a trend into them).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| series[a].total_cmp(&series[b]));
    let mut x = vec![0.0; n];
    let centre = (n as f64 - 1.0) / 2.0;
    let mut start = 0;
    while start < n {
        let value = series[order[start]];
        let end = start + order[start..].partition_point(|&i| series[i].total_cmp(&value).is_eq());
        let rank = (start + end - 1) as f64 / 2.0 - centre;
        for &i in &order[start..end] {
            x[i] = rank;
        }
        start = end;
    }
    let autocov = |k: usize| x[k..].iter().zip(&x).map(|(a, b)| a * b).sum::<f64>() / n as f64;
    let r0 = autocov(0);
    if r0 <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let log_n = nf.log10();
    let k_run = (log_n.sqrt().ceil() as usize).max(5);
    // At most about 2·10⁸ multiply-adds over all lags (a tenth of a second): a soak's million
    // samples could otherwise ask for a thousand lags of a million each.
    let m_max = ((nf.sqrt().ceil() as usize) + k_run)
        .min(MAX_AUTOCOVARIANCE_WORK / n)
        .max(k_run + 1)
        .min(n - 1);
    let significant = 2.0 * (log_n / nf).sqrt();
    // Lag by lag, only as far as the search needs: independent samples stop after K lags,
    // which matters for the million samples of a long soak.
    let mut r = vec![r0];
    let mut quiet = 0;
    let mut m_hat = None;
    for k in 1..=m_max {
        r.push(autocov(k));
        if (r[k] / r0).abs() < significant {
            quiet += 1;
            if quiet == k_run {
                m_hat = Some(k - k_run);
                break;
            }
        } else {
            quiet = 0;
        }
    }
    let m_hat = m_hat.unwrap_or(m_max);
    if m_hat == 0 {
        return 1.0;
    }
    let big_m = (2 * m_hat).min(m_max);
    while r.len() <= big_m {
        r.push(autocov(r.len()));
    }
    let long_run: f64 = r0
        + (1..=big_m)
            .map(|k| {
                let t = k as f64 / big_m as f64;
                let w = if t <= 0.5 { 1.0 } else { 2.0 * (1.0 - t) };
                2.0 * w * r[k]
            })
            .sum::<f64>();
    (long_run / r0).max(1.0)
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
        // Two to five samples: a spread, but no interval that holds the median 95% of the time.
        let five = Summary::from_samples(&[0.5, 0.6, 0.55, 0.52, 0.58], 1);
        assert!(five.stddev_s > 0.0);
        assert_eq!(five.interval(), None);
        let six = Summary::from_samples(&[0.5, 0.6, 0.55, 0.52, 0.58, 0.54], 1);
        assert!(six.interval().is_some() && six.rel_ci_half_width().unwrap() > 0.0);
    }

    #[test]
    fn bootstrap_is_seeded_and_covers_true_median() {
        // Uniform(1, 2) samples: the true median is 1.5. The interval should usually contain it
        // and always be reproducible.
        let mut covered = 0;
        for trial in 0..200u64 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(trial);
            let data: Vec<f64> = (0..50).map(|_| rng.random_range(1.0..2.0)).collect();
            let a = median_ci(&data, 0.95, 500, 9);
            let b = median_ci(&data, 0.95, 500, 9);
            assert_eq!(a, b);
            if a.low <= 1.5 && 1.5 <= a.high {
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
        let data: Vec<f64> = (0..n)
            .map(|_| {
                let u: f64 = rng.random_range(1e-12..1.0);
                let v: f64 = rng.random();
                let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
                1e-3 * (0.05 * z).exp()
            })
            .collect();
        let MedianCi {
            low: lo, high: hi, ..
        } = median_ci(&data, 0.95, 2000, 3);
        let mut sorted = data.clone();
        sorted.sort_by(f64::total_cmp);
        let m = quantile_sorted(&sorted, 0.5);
        assert!(lo < m && m < hi, "{lo} {m} {hi}");
        // The bootstrap itself, below the switch's reach.
        let (blo, bhi) = percentile_bootstrap(&sorted, 0.95, 2000, 3);
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
            let ci = median_ci(&d, 0.95, 2000, trial);
            if ci.low <= 1e-3 && 1e-3 <= ci.high {
                covered += 1;
            }
        }
        assert!((180..=198).contains(&covered), "coverage {covered}/200");
    }

    /// An AR(1) series: x_t = ρ·x_{t−1} + √(1−ρ²)·e_t, e standard normal, as timings around
    /// 1 ms with a 2% spread. Its median is 1 ms whatever ρ.
    fn ar1(n: usize, rho: f64, seed: u64) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut normal = || {
            let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        };
        let mut x = normal();
        (0..n)
            .map(|_| {
                x = rho * x + (1.0 - rho * rho).sqrt() * normal();
                1e-3 * (1.0 + 0.02 * x)
            })
            .collect()
    }

    #[test]
    fn independent_samples_keep_their_interval() {
        // No dependence: τ is exactly 1 nearly always, and rarely above it by chance (1 in 200
        // reached 2.08 here: an interval ×1.44 wider than it need be, on the safe side).
        let taus: Vec<f64> = (0..200)
            .map(|seed| variance_factor(&ar1(50, 0.0, seed)))
            .collect();
        let ones = taus.iter().filter(|t| **t == 1.0).count();
        assert!(ones >= 190, "{ones}/200 at 1: {taus:?}");
        assert!(taus.iter().all(|t| *t < 2.5), "{taus:?}");
        // Too few samples to tell, samples that never change, and alternating samples
        // (negative dependence): 1.
        assert_eq!(variance_factor(&[1.0, 2.0, 1.0, 2.0]), 1.0);
        assert_eq!(variance_factor(&[1.0; 40]), 1.0);
        let alt: Vec<f64> = (0..60).map(|i| 1.0 + (i % 2) as f64).collect();
        assert_eq!(variance_factor(&alt), 1.0);
        // At 1 the interval is the independent bootstrap's, bit for bit.
        let data = ar1(50, 0.0, 11);
        assert_eq!(variance_factor(&data), 1.0);
        let ci = median_ci(&data, 0.95, 500, 4);
        let mut sorted = data.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(
            (ci.low, ci.high),
            percentile_bootstrap(&sorted, 0.95, 500, 4)
        );
        assert_eq!(ci.widening, 1.0);
    }

    #[test]
    fn dependent_samples_widen_the_interval() {
        let mean_tau = |rho: f64| {
            (0..50)
                .map(|seed| variance_factor(&ar1(200, rho, 1000 + seed)))
                .sum::<f64>()
                / 50.0
        };
        let (t0, t5, t9) = (mean_tau(0.0), mean_tau(0.5), mean_tau(0.9));
        // Ranks of an AR(1) with ρ = 0.5 correlate by about 0.48 at lag 1: τ ≈ 2.8 in the
        // limit, less from 200 samples; ρ = 0.9 about 18.
        assert!(
            t0 < 1.2 && t5 > 1.8 && t5 < 3.5 && t9 > 2.0 * t5,
            "{t0} {t5} {t9}"
        );
        // A slow drift (every sample a little slower than the last) hangs together strongly,
        // and an outlier that dwarfs the rest barely moves τ: only ranks count.
        let drift: Vec<f64> = (0..100).map(|i| 1.0 + i as f64 * 1e-3).collect();
        assert!(variance_factor(&drift) > 5.0);
        let mut spiked = ar1(200, 0.5, 7);
        let before = variance_factor(&spiked);
        spiked[100] *= 1000.0;
        let after = variance_factor(&spiked);
        assert!((before - after).abs() < 0.2 * before, "{before} {after}");
        // Widening keeps a positive interval positive and its median inside.
        let ci = median_ci(&ar1(200, 0.9, 3), 0.95, 500, 1);
        assert!(ci.widening > 1.0 && ci.low > 0.0 && ci.low < 1e-3 * 1.02 && ci.high > ci.low);
        assert_eq!(widen(2.0, 1.0, 4.0, 1.0), (1.0, 4.0));
        let (lo, hi) = widen(2.0, 1.0, 4.0, 2.0);
        assert!(
            (lo - 0.5).abs() < 1e-12 && (hi - 8.0).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(widen(0.0, -1.0, 2.0, 2.0), (-2.0, 4.0));
    }

    /// The point of widening: at lag-1 correlation 0.5 the independent bootstrap's 95% interval
    /// held the true median about 81% of the time; widening by √τ restores most of the rest.
    /// Both are measured here on the same series.
    #[test]
    fn widened_interval_covers_the_median_of_correlated_samples() {
        let (mut widened, mut independent) = (0, 0);
        let trials = 300;
        for trial in 0..trials {
            let data = ar1(100, 0.5, 5000 + trial);
            let ci = median_ci(&data, 0.95, 1000, trial);
            if ci.low <= 1e-3 && 1e-3 <= ci.high {
                widened += 1;
            }
            let mut sorted = data.clone();
            sorted.sort_by(f64::total_cmp);
            let (lo, hi) = percentile_bootstrap(&sorted, 0.95, 1000, trial);
            if lo <= 1e-3 && 1e-3 <= hi {
                independent += 1;
            }
        }
        eprintln!("coverage: widened {widened}/{trials}, independent {independent}/{trials}");
        assert!(
            widened as f64 >= 0.88 * trials as f64 && widened > independent + 15,
            "coverage: widened {widened}/{trials}, independent {independent}/{trials}"
        );
        // Past the switch to order statistics the ranks widen by the same τ.
        let mut covered = 0;
        for trial in 0..40 {
            let data = ar1(BOOTSTRAP_MAX_SAMPLES + 1, 0.5, 9000 + trial);
            let ci = median_ci(&data, 0.95, 2000, trial);
            assert!(ci.widening > 1.2, "{ci:?}");
            if ci.low <= 1e-3 && 1e-3 <= ci.high {
                covered += 1;
            }
        }
        eprintln!("order statistics: {covered}/40");
        assert!(covered >= 35, "order statistics: {covered}/40");
    }

    #[test]
    fn summaries_say_how_much_they_widened() {
        let s = Summary::from_samples(&ar1(200, 0.9, 3), 1);
        let w = s.ci95_widening.unwrap();
        assert!(w > 1.0);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["ci95_widening"], w);
        // Independent samples keep the JSON as it was: no field at all.
        let flat = Summary::from_samples(&[1.0, 3.0, 2.0, 5.0, 4.0], 1);
        assert_eq!(flat.ci95_widening, None);
        assert!(serde_json::to_value(&flat)
            .unwrap()
            .get("ci95_widening")
            .is_none());
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
