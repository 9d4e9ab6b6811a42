//! Timing one prepared workload: warm-up, batching, and the stopping rule.
//!
//! Warm-up runs single iterations for a fixed wall time (clocks ramp, caches and allocators
//! settle), which also estimates the time per iteration. Each sample then runs enough iterations
//! back to back to last at least `min_sample_time`, so timer overhead and launch latency are
//! small beside the work. Sampling stops once `min_samples` are in and either the relative
//! standard deviation is below the target or `max_time` has passed.

use crate::backend::{Pace, Prepared};
use crate::error::{Error, Result};
use crate::stats::Summary;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The knobs of the stopping rule (all exposed as CLI flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureConfig {
    /// Wall seconds of warm-up before the first sample.
    pub warmup_s: f64,
    /// Samples always taken (unless interrupted).
    pub min_samples: usize,
    /// Samples never exceeded.
    pub max_samples: usize,
    /// Wall seconds of sampling after which no new sample starts (once `min_samples` are in).
    pub max_time_s: f64,
    /// Stop early when stddev/mean of the samples falls below this.
    pub target_rel_noise: f64,
    /// Shortest time one sample should take; shorter iterations are batched.
    pub min_sample_time_s: f64,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            warmup_s: 0.3,
            min_samples: 10,
            max_samples: 1000,
            max_time_s: 3.0,
            target_rel_noise: 0.005,
            min_sample_time_s: 0.01,
        }
    }
}

/// Why a result's sampling stopped (or why it never sampled), as written in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The relative noise of the samples reached the target.
    NoiseTarget,
    /// The time budget ran out first.
    MaxTime,
    /// The sample budget ran out first.
    MaxSamples,
    /// Ctrl-C between samples (at least one sample was kept).
    Interrupted,
    /// The output was wrong, so it was never timed.
    VerificationFailed,
    /// The run failed before it could be timed.
    Error,
}

impl StopReason {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::NoiseTarget => "noise-target",
            StopReason::MaxTime => "max-time",
            StopReason::MaxSamples => "max-samples",
            StopReason::Interrupted => "interrupted",
            StopReason::VerificationFailed => "verification-failed",
            StopReason::Error => "error",
        }
    }
}

crate::label::display_name!(StopReason);

/// What the measurement produced.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub summary: Summary,
    pub iterations_per_sample: u64,
    pub stop_reason: StopReason,
}

/// Where the measurement is when it calls its observer: the points at which the device is
/// known to be busy with the workload (telemetry read here shows the clocks under load, never
/// the idle clocks of the host-side verification that came before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Warm-up is over; sampling starts next.
    Warm,
    /// Sample number `n` (from 1) has just been taken.
    Sampled(usize),
    /// The last sample has been taken.
    Done,
}

/// Warms up and samples `p` under `cfg`. `seed` makes the bootstrap reproducible; `stop` is the
/// Ctrl-C flag, checked between samples.
pub fn measure(
    p: &mut dyn Prepared,
    cfg: &MeasureConfig,
    seed: u64,
    stop: &AtomicBool,
) -> Result<Measurement> {
    measure_observed(p, cfg, seed, stop, &mut |_| {})
}

/// [`measure`], calling `observe` after warm-up, after every sample and at the end (outside the
/// timed calls), e.g. to read telemetry while the device is under load.
pub fn measure_observed(
    p: &mut dyn Prepared,
    cfg: &MeasureConfig,
    seed: u64,
    stop: &AtomicBool,
    observe: &mut dyn FnMut(Phase),
) -> Result<Measurement> {
    let start = Instant::now();
    let mut warm_times = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        warm_times.push(p.run(1)?);
        if start.elapsed().as_secs_f64() >= cfg.warmup_s || warm_times.len() >= 10_000 {
            break;
        }
    }
    // The fastest recent iteration is the best guess of steady state (early ones are cold).
    let tail = &warm_times[warm_times.len().saturating_sub(5)..];
    let per_iter = tail.iter().cloned().fold(f64::INFINITY, f64::min).max(1e-9);
    let batch = ((cfg.min_sample_time_s / per_iter).ceil() as u64).clamp(1, 1 << 24);
    observe(Phase::Warm);

    let sampling = Instant::now();
    let mut times = Vec::new();
    let mut spread = Running::default();
    let stop_reason = loop {
        if stop.load(Ordering::Relaxed) {
            if times.is_empty() {
                return Err(Error::Interrupted);
            }
            break StopReason::Interrupted;
        }
        let t = sample(p, batch)?;
        times.push(t);
        spread.push(t);
        let n = times.len();
        observe(Phase::Sampled(n));
        if n >= cfg.max_samples {
            break StopReason::MaxSamples;
        }
        if n >= cfg.min_samples.max(2) {
            if spread.rel_stddev() <= cfg.target_rel_noise {
                break StopReason::NoiseTarget;
            }
            if sampling.elapsed().as_secs_f64() >= cfg.max_time_s {
                break StopReason::MaxTime;
            }
        }
    };
    observe(Phase::Done);
    Ok(Measurement {
        summary: Summary::from_samples(&times, seed),
        iterations_per_sample: batch,
        stop_reason,
    })
}

/// A measurement whose every call is decided before it starts, from the settings, the work per
/// iteration and the backend's assumed pace ([`Pace`]) alone, never from a timing.
///
/// The processes of a world each drive their own share of a collective, and NCCL pairs the
/// calls of every rank in order: if one rank stopped sampling at its noise target while another
/// took one more sample, or warmed up for more iterations because its clock read differently,
/// the rank with the extra call would wait for its peers forever. So a world measures every
/// result with this schedule, the same on every rank; `--target-noise` and `--max-time` do not
/// apply there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedSchedule {
    pub warmup_iterations: u64,
    /// Iterations per sample.
    pub batch: u64,
    pub samples: usize,
}

impl FixedSchedule {
    /// The schedule for a workload moving `bytes` per iteration under `cfg`, at the assumed
    /// `pace`: warm-up for about `warmup`, samples of about `min_sample_time`, exactly
    /// `min_samples` of them (at least 2, for a spread, unless `max_samples` is 1: it is never
    /// exceeded).
    pub fn new(cfg: &MeasureConfig, bytes: u64, pace: Pace) -> FixedSchedule {
        let per_iter = (bytes.max(1) as f64 / pace.bytes_per_s).max(pace.latency_s);
        let batch = ((cfg.min_sample_time_s / per_iter).ceil() as u64).clamp(1, 1 << 20);
        let warmup = ((cfg.warmup_s / per_iter).ceil() as u64).min(1 << 24);
        FixedSchedule {
            warmup_iterations: warmup,
            batch,
            samples: cfg.min_samples.max(2).min(cfg.max_samples).max(1),
        }
    }

    /// Said in each result it measured.
    pub fn note(&self) -> String {
        format!(
            "fixed schedule, the same on every rank of the world: {} warm-up iterations, {} samples of {} iterations (--target-noise and --max-time do not apply)",
            self.warmup_iterations, self.samples, self.batch
        )
    }
}

/// [`measure_observed`] under a [`FixedSchedule`]. `stop` is read once, before the warm-up:
/// a rank that stopped between samples would leave its peers waiting in a collective, so once
/// started the schedule runs to its end (it is short: about `warmup` plus `min_samples` ×
/// `min_sample_time`).
pub fn measure_fixed(
    p: &mut dyn Prepared,
    sched: &FixedSchedule,
    seed: u64,
    stop: &AtomicBool,
    observe: &mut dyn FnMut(Phase),
) -> Result<Measurement> {
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    if sched.warmup_iterations > 0 {
        p.run(sched.warmup_iterations)?;
    }
    observe(Phase::Warm);
    let mut times = Vec::with_capacity(sched.samples);
    for n in 1..=sched.samples {
        times.push(sample(p, sched.batch)?);
        observe(Phase::Sampled(n));
    }
    observe(Phase::Done);
    Ok(Measurement {
        summary: Summary::from_samples(&times, seed),
        iterations_per_sample: sched.batch,
        stop_reason: StopReason::MaxSamples,
    })
}

/// One sample: seconds per iteration over a batch of `batch`, refused when the backend's
/// clock returned something no run can take.
fn sample(p: &mut dyn Prepared, batch: u64) -> Result<f64> {
    let t = p.run(batch)? / batch as f64;
    if !t.is_finite() || t <= 0.0 {
        return Err(Error::backend(
            "timer",
            format!("the backend clock returned {t} s for {batch} iterations"),
        ));
    }
    Ok(t)
}

/// The relative standard deviation of the samples so far, kept up to date one sample at a
/// time (Welford's update): the stopping rule asks after every sample, and a pass over all of
/// them each time made a run of 10⁶ samples quadratic (minutes of host time between samples).
#[derive(Debug, Default)]
struct Running {
    n: f64,
    mean: f64,
    /// Sum of squared deviations from the running mean.
    m2: f64,
}

impl Running {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    /// Sample standard deviation (n − 1) over the mean; asked only from two samples on.
    fn rel_stddev(&self) -> f64 {
        (self.m2 / (self.n - 1.0)).sqrt() / self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    /// The running spread is the two-pass one, to rounding.
    #[test]
    fn running_spread_matches_the_two_pass_formula() {
        let t: Vec<f64> = (0..1000)
            .map(|i| 1e-3 * (1.0 + 0.01 * ((i * 7919) % 101) as f64 / 101.0))
            .collect();
        let mut r = Running::default();
        for (i, &x) in t.iter().enumerate() {
            r.push(x);
            if i >= 1 {
                let s = &t[..=i];
                let n = s.len() as f64;
                let mean = s.iter().sum::<f64>() / n;
                let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
                let want = var.sqrt() / mean;
                assert!(
                    (r.rel_stddev() - want).abs() <= 1e-9 * want.max(1e-12),
                    "{i}"
                );
            }
        }
    }

    /// A fake run whose iterations take `per_iter` seconds, with optional alternating noise.
    struct Fake {
        per_iter: f64,
        noise: f64,
        calls: u64,
    }

    impl Fake {
        fn new(per_iter: f64, noise: f64) -> Fake {
            Fake {
                per_iter,
                noise,
                calls: 0,
            }
        }
    }

    /// The measurement of a fake run (`per_iter` seconds an iteration, ± `noise`) under `cfg`
    /// without its warm-up.
    fn measure_fake(per_iter: f64, noise: f64, cfg: MeasureConfig) -> Measurement {
        let cfg = MeasureConfig {
            warmup_s: 0.0,
            ..cfg
        };
        let stop = AtomicBool::new(false);
        measure(&mut Fake::new(per_iter, noise), &cfg, 1, &stop).unwrap()
    }

    impl Prepared for Fake {
        fn compute_dtype(&self) -> crate::dtype::ComputeType {
            crate::dtype::ComputeType::uniform(crate::dtype::DType::F32)
        }
        fn run_verify(&mut self) -> Result<Tensor> {
            unreachable!()
        }
        fn run(&mut self, iters: u64) -> Result<f64> {
            self.calls += 1;
            let sign = if self.calls % 2 == 0 { 1.0 } else { -1.0 };
            Ok(iters as f64 * self.per_iter * (1.0 + sign * self.noise))
        }
        fn cache_policy(&self) -> crate::backend::CachePolicy {
            crate::backend::CachePolicy::Hot
        }
    }

    /// The schedule of a world comes from the settings and the bytes alone: ranks whose
    /// clocks read differently still make exactly the same calls.
    #[test]
    fn a_fixed_schedule_makes_the_same_calls_whatever_the_timings() {
        let cfg = MeasureConfig::default();
        let stop = AtomicBool::new(false);
        let sched = FixedSchedule::new(&cfg, 1 << 20, Pace::FABRIC);
        let mut calls = Vec::new();
        for (per_iter, noise) in [(1e-6, 0.0), (3e-4, 0.2)] {
            let mut f = Fake::new(per_iter, noise);
            let mut phases = 0;
            let m = measure_fixed(&mut f, &sched, 1, &stop, &mut |_| phases += 1).unwrap();
            assert_eq!(m.summary.samples, 10);
            assert_eq!(m.iterations_per_sample, sched.batch);
            assert_eq!(m.stop_reason, StopReason::MaxSamples);
            assert_eq!(phases, 12, "warm, ten samples, done");
            calls.push(f.calls);
        }
        assert_eq!(
            calls,
            [11, 11],
            "one warm-up call and ten samples, on every rank"
        );
        // 1 MiB at the assumed 100 GB/s: about 10 ms in 954 iterations.
        assert_eq!(sched.batch, 954);
        // 1 GiB: one iteration a sample; 8 bytes: bounded by latency, not by the tiny size.
        assert_eq!(FixedSchedule::new(&cfg, 1 << 30, Pace::FABRIC).batch, 1);
        assert_eq!(FixedSchedule::new(&cfg, 8, Pace::FABRIC).batch, 2000);
        // A stop asked for before the start is honoured; after it, the schedule runs out.
        stop.store(true, Ordering::Relaxed);
        let interrupted = measure_fixed(&mut Fake::new(1e-6, 0.0), &sched, 1, &stop, &mut |_| {});
        assert!(matches!(interrupted, Err(Error::Interrupted)));
    }

    #[test]
    fn batches_short_iterations_and_stops_on_noise() {
        let m = measure_fake(1e-5, 0.0, MeasureConfig::default());
        assert_eq!(m.iterations_per_sample, 1000);
        assert_eq!(m.stop_reason, StopReason::NoiseTarget);
        assert_eq!(m.summary.samples, 10);
        assert!((m.summary.median_s - 1e-5).abs() < 1e-12);
    }

    #[test]
    fn noisy_runs_go_on_until_max_samples() {
        let cfg = MeasureConfig {
            max_samples: 25,
            max_time_s: 1e9,
            ..Default::default()
        };
        let m = measure_fake(1e-3, 0.05, cfg);
        assert_eq!(m.stop_reason, StopReason::MaxSamples);
        assert_eq!(m.summary.samples, 25);
    }

    #[test]
    fn the_observer_sees_warm_every_sample_and_done() {
        // Noise-free: stops on the noise target after `min_samples`.
        let mut f = Fake::new(2e-4, 0.0);
        let mut cfg = MeasureConfig::default();
        (cfg.warmup_s, cfg.min_samples) = (0.0, 4);
        let mut seen = Vec::new();
        let stop = AtomicBool::new(false);
        measure_observed(&mut f, &cfg, 1, &stop, &mut |ph| seen.push(ph)).unwrap();
        let want: Vec<Phase> = std::iter::once(Phase::Warm)
            .chain((1..=4).map(Phase::Sampled))
            .chain(std::iter::once(Phase::Done))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn interrupted_before_any_sample_is_an_error() {
        let mut f = Fake::new(1e-3, 0.0);
        let r = measure(&mut f, &MeasureConfig::default(), 1, &AtomicBool::new(true));
        assert!(matches!(r, Err(Error::Interrupted)));
    }
}
