//! The one scheduler: walks a plan step by step and hands each entry to a job on the devices of
//! its placement.
//!
//! A *step* is a run of consecutive entries with the same workload: its inputs are generated once
//! and shared by every implementation and device. Within a step, entries with the same placement
//! form a *lane* (run in plan order, one after another). How a step runs is the only thing that
//! differs between the three kinds of run:
//!
//! | run | devices | a step |
//! |---|---|---|
//! | sequential (`run`, `bench`, ...) | [`Devices::Shared`] | entry after entry on this thread |
//! | lock-step (`validate`) | [`Devices::Exclusive`] | at once, a thread per lane, lanes sharing a device in later waves |
//! | sustained (`stress`, the soak) | [`Devices::Exclusive`] | at once, the job keeps its devices busy for the whole duration |
//!
//! Every job receives the backends of its placement in placement order, so a collective on a
//! set of devices is one job holding all of them.

use crate::backend::Backend;
use crate::error::Error;
use crate::inputs;
use crate::plan::{Placement, Plan, PlanEntry};
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Devices lost during a run: a sticky driver error (illegal address, kernel fault) makes
/// every later call on that device fail with misleading messages, so entries placed on a lost
/// device are not run but recorded with the one error that lost it. Other devices go on.
/// Shared by the jobs of every lane (lock-step lanes run on their own threads).
#[derive(Debug, Default)]
pub struct LostDevices(Mutex<BTreeMap<usize, String>>);

impl LostDevices {
    /// Notes that `e`, raised by the entry `id` on `placement`, lost its devices when the
    /// error is sticky; other errors lose nothing.
    pub fn record(&self, placement: &Placement, id: &str, e: &Error) {
        if e.loses_device() {
            let mut lost = self.0.lock().unwrap_or_else(|p| p.into_inner());
            for &d in placement.devices() {
                lost.entry(d).or_insert_with(|| format!("{id}: {e}"));
            }
        }
    }

    /// Why an entry on `placement` must be skipped: one of its devices was lost before.
    pub fn skip_reason(&self, placement: &Placement) -> Option<Error> {
        let lost = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let why = placement.devices().iter().find_map(|d| lost.get(d))?;
        Some(Error::DeviceLost(why.clone()))
    }

    /// Runs the entry `id` on `placement` with `f`, unless one of its devices was lost before
    /// (then [`Error::DeviceLost`] naming what lost it, and `f` never runs). An error of `f`
    /// that loses its devices is recorded against `id`. What every job of the scheduler that
    /// drives devices goes through: measuring, stress, the soak.
    pub fn guard<T>(
        &self,
        placement: &Placement,
        id: &str,
        f: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        if let Some(skipped) = self.skip_reason(placement) {
            return Err(skipped);
        }
        let ran = f();
        if let Err(e) = &ran {
            self.record(placement, id, e);
        }
        ran
    }

    /// The devices lost so far, in ascending order.
    pub fn devices(&self) -> Vec<usize> {
        let lost = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lost.keys().copied().collect()
    }
}

/// The opened backends, as the scheduler may use them.
pub enum Devices<'a> {
    /// Borrowed: every lane runs on the calling thread, one after another.
    Shared(&'a [Box<dyn Backend>]),
    /// Lent out: every lane of a step runs on its own thread at the same time (each backend
    /// binds its own context on every entry point, so any thread may drive it).
    Exclusive(&'a mut [Box<dyn Backend>]),
}

impl Devices<'_> {
    /// How many devices the run has.
    pub(crate) fn len(&self) -> usize {
        match self {
            Devices::Shared(b) => b.len(),
            Devices::Exclusive(b) => b.len(),
        }
    }
}

/// What runs one entry: the entry, the backends of its placement, the step's inputs.
pub type Job<'j, R> = dyn Fn(&PlanEntry, &[&dyn Backend], &[Tensor]) -> R + Sync + 'j;

/// What receives results, in plan order: after every entry in a sequential run, after every
/// step in a lock-step one. Its error (a failed export, say) ends the run.
pub type Done<'d, R, E> = dyn FnMut(Vec<R>) -> std::result::Result<(), E> + 'd;

/// Entries of one step that share a placement, as (index in the step, entry).
struct Lane<'p> {
    placement: &'p Placement,
    entries: Vec<(usize, &'p PlanEntry)>,
}

/// Runs `plan` on `devices`: `job` for every entry, `done` with the results. `seed` makes the
/// inputs; `stop` (Ctrl-C) is checked before every entry, and no entry starts once it is set.
pub fn schedule<R: Send, E: From<Error>>(
    plan: &Plan,
    mut devices: Devices<'_>,
    seed: u64,
    stop: &AtomicBool,
    job: &Job<'_, R>,
    done: &mut Done<'_, R, E>,
) -> std::result::Result<(), E> {
    let n = devices.len();
    if let Some(e) = plan
        .entries
        .iter()
        .find(|e| e.placement.devices().iter().any(|&d| d >= n))
    {
        return Err(Error::unsupported(format!(
            "{} is placed on device(s) {} but only {n} are open",
            e.workload.name(),
            e.placement
        ))
        .into());
    }
    let mut i = 0;
    while i < plan.entries.len() && !stop.load(Ordering::Relaxed) {
        let name = plan.entries[i].workload.name();
        let end = plan.entries[i..]
            .iter()
            .position(|e| e.workload.name() != name)
            .map_or(plan.entries.len(), |p| i + p);
        let step = &plan.entries[i..end];
        // A step whose every entry is short of memory only records that: no inputs to make.
        let ins = if step.iter().all(|e| e.short_of_memory.is_some()) {
            Vec::new()
        } else {
            inputs::generate(&step[0].workload, seed)
        };
        match &mut devices {
            Devices::Shared(backends) => {
                for entry in step {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    done(vec![job(entry, &lent(backends, &entry.placement), &ins)])?;
                }
            }
            Devices::Exclusive(backends) => {
                let mut got = Vec::with_capacity(step.len());
                for wave in waves(&lanes(step)) {
                    got.extend(run_wave(backends, &wave, &ins, stop, job));
                }
                got.sort_by_key(|(slot, _)| *slot);
                done(got.into_iter().map(|(_, r)| r).collect())?;
            }
        }
        i = end;
    }
    Ok(())
}

/// Groups a step's entries by placement, lanes in order of first appearance.
fn lanes(step: &[PlanEntry]) -> Vec<Lane<'_>> {
    let mut lanes: Vec<Lane> = Vec::new();
    for (slot, e) in step.iter().enumerate() {
        match lanes.iter_mut().find(|l| *l.placement == e.placement) {
            Some(l) => l.entries.push((slot, e)),
            None => lanes.push(Lane {
                placement: &e.placement,
                entries: vec![(slot, e)],
            }),
        }
    }
    lanes
}

/// Splits lanes into waves whose placements share no device: the lanes of one wave can run at
/// the same time. Single-device lanes on distinct devices (the usual case) make one wave.
fn waves<'l, 'p>(lanes: &'l [Lane<'p>]) -> Vec<Vec<&'l Lane<'p>>> {
    let mut waves: Vec<Vec<&Lane>> = Vec::new();
    for lane in lanes {
        let free = waves
            .iter_mut()
            .find(|w| w.iter().all(|l| !l.placement.overlaps(lane.placement)));
        match free {
            Some(w) => w.push(lane),
            None => waves.push(vec![lane]),
        }
    }
    waves
}

/// The backends of `p`, in placement order.
fn lent<'b>(backends: &'b [Box<dyn Backend>], p: &Placement) -> Vec<&'b dyn Backend> {
    p.devices().iter().map(|&d| backends[d].as_ref()).collect()
}

/// Runs the lanes of one wave at once, a scoped thread each, lending every thread exclusive use
/// of the backends of its placement. Returns (index in the step, result) for what ran.
fn run_wave<R: Send>(
    backends: &mut [Box<dyn Backend>],
    wave: &[&Lane<'_>],
    ins: &[Tensor],
    stop: &AtomicBool,
    job: &Job<'_, R>,
) -> Vec<(usize, R)> {
    let mut free: Vec<Option<&mut Box<dyn Backend>>> = backends.iter_mut().map(Some).collect();
    let mut lent: Vec<Vec<&mut Box<dyn Backend>>> = Vec::with_capacity(wave.len());
    for lane in wave {
        let mine = lane.placement.devices().iter();
        lent.push(
            mine.map(|&d| free[d].take().expect("placements of a wave are disjoint"))
                .collect(),
        );
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = wave
            .iter()
            .zip(lent)
            .map(|(lane, mine)| {
                s.spawn(move || {
                    let bs: Vec<&dyn Backend> = mine.iter().map(|b| b.as_ref()).collect();
                    let mut out = Vec::with_capacity(lane.entries.len());
                    for (slot, entry) in &lane.entries {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        out.push((*slot, job(entry, &bs, ins)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("device worker panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mock::MockBackend;
    use crate::dtype::DType;
    use crate::workload::{MatmulSpec, Workload};

    fn entry(w: &Workload, p: Placement) -> PlanEntry {
        PlanEntry::new(w, p, "mock")
    }

    #[test]
    fn sets_get_all_their_devices_and_overlapping_placements_wait() {
        let w = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let set = Placement::set([0, 1]).unwrap();
        let plan = Plan {
            entries: vec![
                entry(&w, set.clone()),
                entry(&w, Placement::one(2)),
                entry(&w, Placement::one(0)),
            ],
            ..Plan::default()
        };
        let steps = lanes(&plan.entries);
        let w2: Vec<Vec<String>> = waves(&steps)
            .iter()
            .map(|w| w.iter().map(|l| l.placement.to_string()).collect())
            .collect();
        assert_eq!(w2, [vec!["0,1", "2"], vec!["0"]]);

        let mut backends: Vec<Box<dyn Backend>> = (0..3)
            .map(|_| Box::new(MockBackend::new()) as Box<dyn Backend>)
            .collect();
        let job =
            |e: &PlanEntry, bs: &[&dyn Backend], _: &[Tensor]| (e.placement.clone(), bs.len());
        let mut got = Vec::new();
        let stop = AtomicBool::new(false);
        let devices = Devices::Exclusive(&mut backends);
        schedule(&plan, devices, 1, &stop, &job, &mut |r| {
            got.push(r);
            Ok::<(), Error>(())
        })
        .unwrap();
        // One step (one workload): its results in plan order, all at once.
        assert_eq!(
            got,
            [vec![
                (set.clone(), 2),
                (Placement::one(2), 1),
                (Placement::one(0), 1)
            ]]
        );
        let mut got = Vec::new();
        let stop = AtomicBool::new(false);
        schedule(
            &plan,
            Devices::Shared(&backends),
            1,
            &stop,
            &job,
            &mut |r| {
                got.extend(r);
                Ok::<(), Error>(())
            },
        )
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (set, 2));
    }

    #[test]
    fn a_placement_beyond_the_open_devices_is_an_error() {
        let w = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let plan = Plan {
            entries: vec![entry(&w, Placement::set([0, 4]).unwrap())],
            ..Plan::default()
        };
        let backends: Vec<Box<dyn Backend>> = vec![Box::new(MockBackend::new())];
        let job = |_: &PlanEntry, _: &[&dyn Backend], _: &[Tensor]| ();
        let e = schedule(
            &plan,
            Devices::Shared(&backends),
            1,
            &AtomicBool::new(false),
            &job,
            &mut |_| Ok::<(), Error>(()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("0,4"), "{e}");
    }
}
