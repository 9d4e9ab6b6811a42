//! GPU-side timing with CUDA events.
//!
//! Events are created with timing enabled (`CU_EVENT_DEFAULT`; cudarc's default disables it).
//! The elapsed time is read through the driver's original `cuEventElapsedTime` symbol, looked
//! up directly: cudarc's cuda-13000 bindings call `cuEventElapsedTime_v2`, which exists only
//! in drivers for CUDA 12.8+ (R570+), and would panic on the R525–R560 drivers still common in
//! clouds. Both symbols measure the same interval.

use super::error::cu;
use super::libs;
use crate::error::{DriverErrorKind, Error, Result};
use cudarc::driver::sys::{self, CUevent, CUevent_flags};
use cudarc::driver::{CudaContext, CudaEvent, CudaStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long gpuvet waits for queued work before it calls the device hung: far beyond any
/// sample or verification launch (milliseconds to a second), short enough that a kernel which
/// never ends (a deadlocked pipeline) or a GPU that stopped answering is a result, not a run
/// that blocks until its scheduler kills it. `GPUVET_HANG_TIMEOUT` (seconds) sets it.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(60);

/// The variable that sets the hang limit, in seconds (at most a day).
pub const HANG_TIMEOUT_VAR: &str = "GPUVET_HANG_TIMEOUT";

/// `GPUVET_HANG_TIMEOUT` as a duration, or why it is not one: the command line checks this
/// before anything runs, so that a typo is an error rather than the default.
pub fn hang_timeout_from_env() -> crate::error::Result<Duration> {
    crate::env::seconds_var(HANG_TIMEOUT_VAR, HANG_TIMEOUT, 86_400.0)
}

/// The wait before a device is called hung: `GPUVET_HANG_TIMEOUT` seconds, else
/// [`HANG_TIMEOUT`] (also where the variable is not valid seconds, for a library caller that
/// skipped [`hang_timeout_from_env`]). Read once: every wait of every sample asks.
pub fn hang_timeout() -> Duration {
    static LIMIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| hang_timeout_from_env().unwrap_or(HANG_TIMEOUT))
}

/// How many times what its iterations took before a batch may take before it is called hung
/// (when that is longer than the hang limit): a card that throttles runs a few times slower,
/// never ten.
pub const BATCH_SLACK: f64 = 10.0;

/// How many times one device's hang limit a group run (a peer copy, a collective) waits: its
/// batches wait on their peers.
pub const GROUP_PATIENCE: u32 = 4;

/// `r`, having marked every context of a group run hung when it is a hang: the work of each
/// may wait on the stuck one, so none of them may free or release anything from here on. The
/// contexts are only walked on a hang.
pub fn hung_together<'c, T>(
    r: Result<T>,
    group: impl IntoIterator<Item = &'c CudaContext>,
) -> Result<T> {
    if let Err(e) = &r {
        if e.driver_kind() == Some(DriverErrorKind::Hung) {
            group.into_iter().for_each(mark_hung);
        }
    }
    r
}

/// The contexts (by handle) whose work hung: their memory is never freed and they are never
/// released, since either would wait in the driver for the work that does not end, and the run
/// could then never finish writing what it measured.
static HUNG: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

fn key(ctx: &CudaContext) -> usize {
    ctx.cu_ctx() as usize
}

/// Whether work queued in `ctx` hung ([`wait_for`] gave up on it).
pub fn is_hung(ctx: &CudaContext) -> bool {
    HUNG.lock().is_ok_and(|h| h.contains(&key(ctx)))
}

/// Waits until `event` (of `ctx`) has completed, doing `what`; a typed
/// [`DriverErrorKind::Hung`] error after [`hang_timeout`], and `ctx` marked hung. Polls instead
/// of blocking in the driver, which could wait forever: yielding for the first 10 ms (as the
/// driver's own spin-wait would, so a sample's wait adds no latency), then sleeping up to 1 ms
/// between looks.
pub fn wait_for(ctx: &CudaContext, event: &CudaEvent, what: &str) -> Result<()> {
    wait_within(ctx, event, what, hang_timeout())
}

/// Marks `ctx` hung (see [`is_hung`]): a group run whose wait on one device gave up marks
/// every device of the group, since each may hold work that waits on the stuck one.
pub fn mark_hung(ctx: &CudaContext) {
    if let Ok(mut h) = HUNG.lock() {
        if !h.contains(&key(ctx)) {
            h.push(key(ctx));
        }
    }
}

/// The typed error of work that did not finish within `limit`.
fn hung(what: &str, limit: Duration) -> Error {
    Error::Driver {
        what: what.to_string(),
        kind: DriverErrorKind::Hung,
        detail: format!(
            "the GPU work did not finish within {:.0} s: a kernel that never ends (a \
             deadlock), or a GPU that stopped answering; nothing more runs on this device in \
             this run (GPUVET_HANG_TIMEOUT sets the wait)",
            limit.as_secs_f64()
        ),
    }
}

/// [`wait_for`] with its own limit. A context already hung fails at once: a second wait (the
/// drop of the run that hung) would only wait out the limit again.
pub fn wait_within(
    ctx: &CudaContext,
    event: &CudaEvent,
    what: &str,
    limit: Duration,
) -> Result<()> {
    if is_hung(ctx) {
        return Err(hung(what, limit));
    }
    cu("bind context", ctx.bind_to_thread())?;
    let start = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        // SAFETY: a live event of the current context.
        match unsafe { sys::cuEventQuery(event.cu_event()) } {
            sys::CUresult::CUDA_SUCCESS => return Ok(()),
            sys::CUresult::CUDA_ERROR_NOT_READY => {}
            other => return cu(what, other.result()),
        }
        let waited = start.elapsed();
        if waited >= limit {
            mark_hung(ctx);
            return Err(hung(what, limit));
        }
        if waited < Duration::from_millis(10) {
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }
}

/// Waits for everything queued on `stream` so far, as [`wait_for`] does.
pub fn wait_stream(ctx: &Arc<CudaContext>, stream: &CudaStream, what: &str) -> Result<()> {
    let e = cu(
        what,
        ctx.new_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING)),
    )?;
    cu(what, e.record(stream))?;
    wait_for(ctx, &e, what)
}

type ElapsedFn = unsafe extern "C" fn(*mut f32, CUevent, CUevent) -> i32;

/// A start/stop event pair on one stream.
pub struct Timer {
    ctx: Arc<CudaContext>,
    /// How long [`Timer::elapsed`] waits before calling the work hung, at the least.
    limit: Duration,
    /// The longest time of one iteration this timer has measured (f64 bits; 0 before the
    /// first): a batch is given [`BATCH_SLACK`] times what its iterations took before, so
    /// that a long batch (`--min-sample-time 120`) is not called hung for its length alone.
    per_iter: AtomicU64,
    start: CudaEvent,
    stop: CudaEvent,
    elapsed: ElapsedFn,
}

impl Timer {
    pub fn new(ctx: &Arc<CudaContext>) -> Result<Timer> {
        let driver = libs::probe()
            .driver
            .as_ref()
            .map_err(|e| Error::BackendUnavailable {
                backend: "cuda".into(),
                reason: e.clone(),
            })?;
        let sym = driver
            .handle
            .sym("cuEventElapsedTime")
            .ok_or_else(|| Error::backend("cuda", "the driver has no cuEventElapsedTime"))?;
        // SAFETY: cuEventElapsedTime(float*, CUevent, CUevent) -> CUresult in every driver.
        let elapsed: ElapsedFn = unsafe { std::mem::transmute(sym) };
        Ok(Timer {
            ctx: ctx.clone(),
            limit: hang_timeout(),
            per_iter: AtomicU64::new(0),
            start: cu(
                "create start event",
                ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)),
            )?,
            stop: cu(
                "create stop event",
                ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)),
            )?,
            elapsed,
        })
    }

    /// Records the start event, enqueues `work` (`iters` iterations), records the stop event,
    /// waits, and returns the seconds between the events.
    pub fn time(
        &self,
        stream: &CudaStream,
        iters: u64,
        work: impl FnOnce() -> Result<()>,
    ) -> Result<f64> {
        self.start(stream)?;
        work()?;
        self.stop(stream)?;
        self.elapsed(iters)
    }

    /// This timer waiting `factor` times the usual limit: a group run's first batch may wait
    /// on its peers (another process still compiling, a slow link) far longer than one
    /// device's work ever takes.
    pub fn patient(mut self, factor: u32) -> Timer {
        self.limit *= factor;
        self
    }

    /// Records the start event on `stream` (timing work spread over several streams or
    /// devices: [`Timer::start`] on each, the work, [`Timer::stop`] on each, then
    /// [`Timer::elapsed`] of each).
    pub fn start(&self, stream: &CudaStream) -> Result<()> {
        cu("record start event", self.start.record(stream))
    }

    /// Records the stop event on `stream`.
    pub fn stop(&self, stream: &CudaStream) -> Result<()> {
        cu("record stop event", self.stop.record(stream))
    }

    /// How long a batch of `iters` iterations may take before it is called hung: the hang
    /// limit, or [`BATCH_SLACK`] times what `iters` of the slowest iteration so far took,
    /// whichever is longer.
    fn limit_for(&self, iters: u64) -> Duration {
        let per_iter = f64::from_bits(self.per_iter.load(Ordering::Relaxed));
        let expected = per_iter * iters as f64 * BATCH_SLACK;
        Duration::try_from_secs_f64(expected).map_or(self.limit, |e| e.max(self.limit))
    }

    /// Waits for the stop event of a batch of `iters` iterations (at most
    /// [`Timer::limit_for`]) and returns the seconds since the start event.
    pub fn elapsed(&self, iters: u64) -> Result<f64> {
        let limit = self.limit_for(iters);
        wait_within(&self.ctx, &self.stop, "wait for the timed work", limit)?;
        let mut ms = 0f32;
        // SAFETY: both events belong to the current context and have completed.
        let rc = unsafe { (self.elapsed)(&mut ms, self.start.cu_event(), self.stop.cu_event()) };
        if rc != 0 {
            return Err(Error::backend(
                "cuda",
                format!("cuEventElapsedTime failed with CUDA error {rc}"),
            ));
        }
        let s = ms as f64 / 1e3;
        let per_iter = s / iters.max(1) as f64;
        // Bits of non-negative floats order as the floats do.
        if per_iter.is_finite() && per_iter >= 0.0 {
            self.per_iter
                .fetch_max(per_iter.to_bits(), Ordering::Relaxed);
        }
        Ok(s)
    }

    /// Times `iters` iterations back to back, iteration after iteration moving to the next of
    /// `sets` buffer sets (starting at `*next`), and leaves `*next` where the following call
    /// continues: what every prepared run's `Prepared::run` does.
    pub fn time_rotating(
        &self,
        stream: &CudaStream,
        next: &mut usize,
        sets: usize,
        iters: u64,
        mut enqueue: impl FnMut(usize) -> Result<()>,
    ) -> Result<f64> {
        self.time(stream, iters, || {
            for _ in 0..iters {
                enqueue(*next)?;
                *next = (*next + 1) % sets.max(1);
            }
            Ok(())
        })
    }
}
