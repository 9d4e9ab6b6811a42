//! GPU-side timing with CUDA events.
//!
//! Events are created with timing enabled (`CU_EVENT_DEFAULT`; cudarc's default disables it).
//! The elapsed time is read through the driver's original `cuEventElapsedTime` symbol, looked
//! up directly: cudarc's cuda-13000 bindings call `cuEventElapsedTime_v2`, which exists only
//! in drivers for CUDA 12.8+ (R570+), and would panic on the R525–R560 drivers still common in
//! clouds. Both symbols measure the same interval.

use super::error::cu;
use super::libs;
use crate::error::{Error, Result};
use cudarc::driver::sys::{CUevent, CUevent_flags};
use cudarc::driver::{CudaContext, CudaEvent, CudaStream};
use std::sync::Arc;

type ElapsedFn = unsafe extern "C" fn(*mut f32, CUevent, CUevent) -> i32;

/// A start/stop event pair on one stream.
pub struct Timer {
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

    /// Records the start event, enqueues `work`, records the stop event, waits, and returns
    /// the seconds between the events.
    pub fn time(&self, stream: &CudaStream, work: impl FnOnce() -> Result<()>) -> Result<f64> {
        self.start(stream)?;
        work()?;
        self.stop(stream)?;
        self.elapsed()
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

    /// Waits for the stop event and returns the seconds since the start event.
    pub fn elapsed(&self) -> Result<f64> {
        cu("wait for the timed work", self.stop.synchronize())?;
        let mut ms = 0f32;
        // SAFETY: both events belong to the current context and have completed.
        let rc = unsafe { (self.elapsed)(&mut ms, self.start.cu_event(), self.stop.cu_event()) };
        if rc != 0 {
            return Err(Error::backend(
                "cuda",
                format!("cuEventElapsedTime failed with CUDA error {rc}"),
            ));
        }
        Ok(ms as f64 / 1e3)
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
        self.time(stream, || {
            for _ in 0..iters {
                enqueue(*next)?;
                *next = (*next + 1) % sets.max(1);
            }
            Ok(())
        })
    }
}
