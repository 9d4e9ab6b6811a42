//! From what the user asked for to a validated list of (workload, placement, implementation).
//!
//! Everything that can be rejected is rejected here, before anything is allocated or timed:
//! impossible shapes, unknown implementations, dtypes a device lacks, and memory needs above
//! what is free (the message says how much).

use crate::backend::{Backend, CachePolicy, MemoryNeeds, RankLayout};
use crate::error::{Error, Result};
use crate::units::Bytes;
use crate::workload::{Placing, RankRange, Workload};
use crate::world::World;

/// How many bytes of buffers to rotate through, as a multiple of the last-level cache.
const ROTATE_CACHE_MULTIPLE: u64 = 3;
/// Never more buffer sets than this.
const MAX_BUFFER_SETS: u64 = 16;

/// Which implementations to run.
#[derive(Debug, Clone, PartialEq)]
pub enum ImplSelect {
    /// Vendor references plus the best own implementation.
    Default,
    /// Every implementation the device has.
    All,
    /// Vendor references only (`--impl reference`): a workload without one on a device is
    /// skipped there, with a note.
    Reference,
    /// Vendor references, or the first implementation where a device has none: what a health
    /// verdict rests on, so that an own kernel under development can never fail a node while
    /// every workload is still judged.
    Judging,
    /// These, by name.
    Named(Vec<String>),
    /// The first implementation each device lists (its best): what a sustained load runs.
    Best,
    /// `Default`, and these by name (a user's kernels beside the references and the best own).
    DefaultAnd(Vec<String>),
}

impl ImplSelect {
    /// The selection an `--impl` list asks for. `all` and `reference` each choose a whole set,
    /// so they stand alone: beside names they once won silently, and `--impl all,gemmm` ran
    /// everything without a word about the typo. `default` combines with names (the defaults
    /// and those).
    pub fn parse(list: &[String]) -> Result<ImplSelect> {
        let named: Vec<String> = list.iter().filter(|s| *s != "default").cloned().collect();
        for set in ["all", "reference"] {
            if list.iter().any(|s| s == set) && list.iter().any(|s| s != set) {
                return Err(Error::invalid(format!(
                    "--impl {set} chooses its own set of implementations: give it alone, not \
                     with {}",
                    list.iter()
                        .filter(|s| *s != set)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(if list.is_empty() || named.is_empty() {
            ImplSelect::Default
        } else if list.iter().any(|s| s == "default") {
            ImplSelect::DefaultAnd(named)
        } else if list.iter().any(|s| s == "all") {
            ImplSelect::All
        } else if list.iter().any(|s| s == "reference") {
            ImplSelect::Reference
        } else {
            ImplSelect::Named(list.to_vec())
        })
    }
}

/// Where one plan entry runs: one device, or a set of devices that work on it together (a
/// collective such as an all-reduce runs on a set). Indices into the opened backends, unique,
/// never empty; sorted, except for an ordered pair ([`Placement::ordered`]: a peer copy from
/// the first device to the second).
///
/// Serialised as a number for one device (what reports have always said: `"device": 0`) and as
/// a list for several (`[0, 1]`, in the order held).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Placement(Vec<usize>);

impl Placement {
    /// One device.
    pub fn one(device: usize) -> Placement {
        Placement(vec![device])
    }

    /// A set of devices; `None` when `devices` is empty.
    pub fn set(devices: impl IntoIterator<Item = usize>) -> Option<Placement> {
        let mut v: Vec<usize> = devices.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        (!v.is_empty()).then_some(Placement(v))
    }

    /// Devices in the order given (duplicates dropped): where the order means something, as
    /// in a peer copy from the first to the second. `None` when `devices` is empty.
    pub fn ordered(devices: impl IntoIterator<Item = usize>) -> Option<Placement> {
        let mut v: Vec<usize> = Vec::new();
        for d in devices {
            if !v.contains(&d) {
                v.push(d);
            }
        }
        (!v.is_empty()).then_some(Placement(v))
    }

    /// The devices, in ascending order (or in the order of an ordered placement).
    pub fn devices(&self) -> &[usize] {
        &self.0
    }

    /// The first device (the lowest, or an ordered pair's source): where a single-device
    /// view (telemetry, peaks, `device` in a record) looks.
    pub fn lead(&self) -> usize {
        self.0[0]
    }

    pub fn is_single(&self) -> bool {
        self.0.len() == 1
    }

    /// True when the two placements share a device (so they cannot run at the same time).
    pub fn overlaps(&self, other: &Placement) -> bool {
        self.0.iter().any(|d| other.0.contains(d))
    }
}

impl From<usize> for Placement {
    fn from(device: usize) -> Placement {
        Placement::one(device)
    }
}

/// `placement == 2` is true for exactly device 2 alone: how readers that look at one device
/// pick its results (a set that includes device 2 is not "device 2").
impl PartialEq<usize> for Placement {
    fn eq(&self, device: &usize) -> bool {
        self.is_single() && self.lead() == *device
    }
}

impl std::fmt::Display for Placement {
    /// `0` for one device, `0,1` for a set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl serde::Serialize for Placement {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.is_single() {
            s.serialize_u64(self.lead() as u64)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Placement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Repr {
            One(usize),
            Set(Vec<usize>),
        }
        match Repr::deserialize(d)? {
            Repr::One(i) => Ok(Placement::one(i)),
            // As written: sets were written sorted, ordered pairs in their order.
            Repr::Set(v) => Placement::ordered(v)
                .ok_or_else(|| serde::de::Error::custom("a placement needs at least one device")),
        }
    }
}

/// One unit of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    pub workload: Workload,
    /// The device (or devices) it runs on.
    pub placement: Placement,
    pub implementation: String,
    pub buffer_sets: usize,
    /// What the plan wants said in every result of the entry (a warning let through).
    pub notes: Vec<String>,
    /// A device of the placement lacks the free memory the entry needs, and the plan was
    /// built to record that as the entry's result ([`build_judging`]) rather than refuse the
    /// run: the runner records it as not run, with this shortfall, and never prepares it.
    pub short_of_memory: Option<MemoryShortfall>,
}

impl PlanEntry {
    /// An entry of `implementation` of `w` on `placement`, one buffer set, nothing to add:
    /// what a hand-made plan (a test's) starts from.
    pub fn new(w: &Workload, placement: Placement, implementation: &str) -> PlanEntry {
        PlanEntry {
            workload: w.clone(),
            placement,
            implementation: implementation.to_string(),
            buffer_sets: 1,
            notes: Vec::new(),
            short_of_memory: None,
        }
    }
}

/// Free device memory below what an entry needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryShortfall {
    /// The short device's position in the run's list of backends (the index of placements,
    /// results and verdicts; not its CUDA ordinal, where a device failed to open): of a pair or
    /// a group, the member that is short.
    pub index: usize,
    pub device: String,
    pub need: Bytes,
    pub have: Bytes,
}

impl MemoryShortfall {
    /// The error a run refused for it would have raised.
    pub fn error(&self) -> Error {
        Error::OutOfMemory {
            device: self.device.clone(),
            need: self.need,
            have: self.have,
        }
    }
}

/// What a device without the free memory an entry needs does to the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortfalls {
    /// The plan is refused (exit 2 before anything runs): the user asked for too much.
    Refuse,
    /// The entry is planned, to be recorded as not run (validate: memory held by another
    /// process is a finding about the node, not a usage error).
    Record,
}

/// A validated plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
    /// What was left out and why: implementations a point of a sweep does not suit, a
    /// placement cannot run together, and repeats planned once ([`Plan::notices`] adds
    /// `not_run`).
    pub skipped: Vec<String>,
    /// Workloads of a suite that a device runs nothing of (a missing library): what a verdict
    /// resting on this plan does not cover.
    pub not_run: Vec<NotRun>,
}

/// A workload of a suite left out on a device because nothing there can run it; the report
/// keeps these (`not_run`), so that a report without matmul results says why it has none.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NotRun {
    /// The workload's name (`matmul.bf16.8192x8192x8192.nk`).
    pub workload: String,
    /// Where it was placed: one device (serialised as its index, as reports have always
    /// said), or the set a link copy or collective needed (a list), whose links are then what
    /// the verdict does not cover.
    pub device: Placement,
    /// Why, in the backend's words (`cuBLASLt not found …`), or that its dtype is not one the
    /// device has.
    pub why: String,
}

impl Plan {
    /// Every note on what the plan leaves out, one line each, devices named by `name_of`
    /// (their index in the run): the workloads not run are said once per reason
    /// ([`not_run_lines`]), not once a workload and device.
    pub fn notices(&self, name_of: impl Fn(usize) -> String) -> Vec<String> {
        let mut v = self.skipped.clone();
        v.extend(not_run_lines(&self.not_run, name_of));
        v
    }
}

/// `not_run` grouped by placement and reason, in the order first seen: (placement, reason,
/// workloads).
pub fn grouped<'a>(
    not_run: impl IntoIterator<Item = &'a NotRun>,
) -> Vec<(&'a Placement, &'a str, Vec<&'a str>)> {
    let mut groups: Vec<(&Placement, &str, Vec<&str>)> = Vec::new();
    for n in not_run {
        match groups
            .iter_mut()
            .find(|(d, why, _)| **d == n.device && *why == n.why)
        {
            Some((_, _, ws)) => ws.push(&n.workload),
            None => groups.push((&n.device, &n.why, vec![&n.workload])),
        }
    }
    groups
}

/// One line per reason and set of workloads, the devices that share them together (eight GPUs
/// without cuBLASLt: one line): `H100 (devices 0, 1) cannot run 7 workloads (matmul.f32…, …):
/// cuBLASLt not found …`. `name_of` names a device by its index.
pub fn not_run_lines(not_run: &[NotRun], name_of: impl Fn(usize) -> String) -> Vec<String> {
    let mut lines: Vec<(Vec<&Placement>, &str, Vec<&str>)> = Vec::new();
    for (placement, why, ws) in grouped(not_run) {
        match lines.iter_mut().find(|(_, w, l)| *w == why && *l == ws) {
            Some((places, _, _)) => places.push(placement),
            None => lines.push((vec![placement], why, ws)),
        }
    }
    lines
        .into_iter()
        .map(|(places, why, ws)| {
            let names: Vec<String> = places
                .iter()
                .flat_map(|p| p.devices())
                .map(|&d| name_of(d))
                .collect();
            // A set (a collective's group) could not run it together: `0,1; 2,3`.
            let sets = places.iter().any(|p| !p.is_single());
            let list = places
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(if sets { "; " } else { ", " });
            let together = if sets { " together" } else { "" };
            let who = match &names[..] {
                [one] => one.clone(),
                [first, ..] if names.iter().all(|n| n == first) => {
                    format!("{first} (devices {list}{together})")
                }
                _ => format!("devices {list}{together}"),
            };
            match &ws[..] {
                [one] => format!("{who} cannot run {one}: {why}"),
                _ => format!(
                    "{who} cannot run {} workloads ({}): {why}",
                    ws.len(),
                    ws.join(", ")
                ),
            }
        })
        .collect()
}

/// Builds a plan for a single process. With `skip_unsupported` (suites), workloads a device
/// has no implementation for are listed in `skipped`; otherwise that is an error.
///
/// A workload or implementation asked for twice (`--shape 128x128x128,128x128x128`,
/// `--impl gemm,gemm`) is planned once, and `skipped` says so. Two results with one id would
/// be indistinguishable to everything that reads them (comparisons match on the id, CI
/// charts name series by it); measuring the same thing twice tells nothing more samples would
/// not. Lists that overlap are common (shapes gathered from several layers of a model), so
/// this is a note, not an error.
pub fn build(
    workloads: &[Workload],
    backends: &[Box<dyn Backend>],
    select: &ImplSelect,
    hot: bool,
    skip_unsupported: bool,
) -> Result<Plan> {
    build_without(workloads, backends, select, hot, skip_unsupported, &[])
}

/// [`build`] for every device but those in `left_out` (indices into `backends`), which get no
/// entry and are never asked anything: a device lost earlier in the process (a sticky driver
/// error) would only answer with that error, and end the plan of every other device with it.
pub fn build_without(
    workloads: &[Workload],
    backends: &[Box<dyn Backend>],
    select: &ImplSelect,
    hot: bool,
    skip_unsupported: bool,
    left_out: &[usize],
) -> Result<Plan> {
    let world = World::single();
    build_in(
        workloads,
        backends,
        select,
        hot,
        skip_unsupported,
        &world,
        left_out,
    )
}

/// [`build_without`] for one process of `world`: a collective is placed on this process's
/// devices and sized for the ranks of every process; a placement touching a device in
/// `left_out` is left out.
pub fn build_in(
    workloads: &[Workload],
    backends: &[Box<dyn Backend>],
    select: &ImplSelect,
    hot: bool,
    skip_unsupported: bool,
    world: &World,
    left_out: &[usize],
) -> Result<Plan> {
    let how = Planning {
        select,
        hot,
        skip_unsupported,
        world,
        left_out,
        shortfalls: Shortfalls::Refuse,
    };
    plan_with(workloads, backends, &how)
}

/// [`build_without`] for `validate`: a suite (unsupported workloads skipped, reference
/// implementations, caches cold) in which a device short of free memory gets its entries
/// recorded as not run ([`PlanEntry::short_of_memory`]) instead of refusing the whole run, so
/// that the node is judged (a process holding GPU memory fails that GPU) rather than left
/// without a verdict.
pub fn build_judging(
    workloads: &[Workload],
    backends: &[Box<dyn Backend>],
    left_out: &[usize],
) -> Result<Plan> {
    let world = World::single();
    let how = Planning {
        select: &ImplSelect::Judging,
        hot: false,
        skip_unsupported: true,
        world: &world,
        left_out,
        shortfalls: Shortfalls::Record,
    };
    plan_with(workloads, backends, &how)
}

/// How a plan is built: the arguments of [`build_in`] and what a memory shortfall does.
struct Planning<'a> {
    select: &'a ImplSelect,
    hot: bool,
    skip_unsupported: bool,
    world: &'a World,
    left_out: &'a [usize],
    shortfalls: Shortfalls,
}

fn plan_with(
    workloads: &[Workload],
    backends: &[Box<dyn Backend>],
    how: &Planning,
) -> Result<Plan> {
    let Planning {
        select: _,
        hot,
        skip_unsupported,
        world,
        left_out,
        shortfalls: _,
    } = *how;
    let mut plan = Plan::default();
    let mut refused: Vec<Refusal> = Vec::new();
    let host = HostMemoryCheck::from_env()?;
    let workloads = unique_workloads(workloads, &mut plan.skipped);
    for w in &workloads {
        w.validate()?;
        let targets = match targets(w, backends, world) {
            Ok(t) => t,
            Err(Error::Unsupported(why)) if skip_unsupported => {
                plan.skipped.push(why);
                continue;
            }
            Err(e) => return Err(e),
        };
        let usable = targets
            .into_iter()
            .filter(|(_, p)| !p.devices().iter().any(|d| left_out.contains(d)));
        for (w, placement) in usable {
            let lead = backends[placement.lead()].as_ref();
            let members: Vec<&dyn Backend> = placement
                .devices()
                .iter()
                .map(|&d| backends[d].as_ref())
                .collect();
            let found = implementations_for(
                how,
                &w,
                &placement,
                &members,
                &mut plan.skipped,
                &mut plan.not_run,
                &mut refused,
            )?;
            let Some(chosen) = found else {
                continue;
            };
            for b in &members[1..] {
                for imp in &chosen {
                    b.check(&w, imp)?;
                }
            }
            // Group work runs on one buffer set: a link copy or a collective moves its bytes
            // over the link whatever the cache holds.
            let sets = match w.placing() {
                Placing::EachDevice => buffer_sets(&w, lead, hot),
                _ => 1,
            };
            let at = Point {
                w: &w,
                placement: &placement,
                members: &members,
                sets,
                host,
            };
            place_each(&mut plan, &mut refused, &at, chosen, how)?;
        }
    }
    if !skip_unsupported {
        refusal_left(&plan, how.select, &refused)?;
    }
    Ok(plan)
}

/// One (workload, placement) of the plan as [`place_each`] takes it.
struct Point<'p, 'b> {
    w: &'p Workload,
    placement: &'p Placement,
    members: &'p [&'b dyn Backend],
    sets: usize,
    host: HostMemoryCheck,
}

/// The entries of `chosen` at one point of the plan, each implementation held to its own
/// memory: a fused attention fits where the unfused one's score matrix does not. Each one that
/// does not fit is left out with its reason while another runs; where none fits, a suite
/// records the workload as not run and a workload asked for by name is refused.
fn place_each(
    plan: &mut Plan,
    refused: &mut Vec<Refusal>,
    at: &Point<'_, '_>,
    chosen: Vec<String>,
    how: &Planning,
) -> Result<()> {
    let mut too_big: Vec<(String, Error)> = Vec::new();
    let mut placed = false;
    for imp in unique_names(chosen, &at.w.name(), &mut plan.skipped) {
        let (notes, short_of_memory) = match fit_on(at, &imp, how) {
            Ok(fits) => fits,
            Err(e @ Error::OutOfMemory { .. }) => {
                refused.push(Refusal {
                    name: imp.clone(),
                    why: format!("`{imp}` on {}: {e}", at.w.name()),
                });
                too_big.push((imp, e));
                continue;
            }
            Err(e) => return Err(e),
        };
        placed = true;
        plan.entries.push(PlanEntry {
            workload: at.w.clone(),
            placement: at.placement.clone(),
            implementation: imp,
            buffer_sets: at.sets,
            notes,
            short_of_memory,
        });
    }
    if placed {
        for (imp, e) in too_big {
            let w = at.w.name();
            plan.skipped.push(format!("`{imp}` left out of {w}: {e}"));
        }
        return Ok(());
    }
    match too_big.into_iter().next() {
        None => Ok(()),
        // A suite runs what fits and says what did not (a small card, a MIG slice).
        Some((_, e)) if how.skip_unsupported => {
            plan.not_run.push(NotRun {
                workload: at.w.name(),
                device: at.placement.clone(),
                why: e.to_string(),
            });
            Ok(())
        }
        // A workload asked for by name that nothing fits is refused, as before.
        Some((_, e)) => Err(e),
    }
}

/// The memory check of `imp` on every member of the point's placement: the workload's notes with what
/// the checks add (each once), and the first member's shortfall where `how` records shortfalls
/// rather than refusing them. A member without the memory is an [`Error::OutOfMemory`].
fn fit_on(
    at: &Point<'_, '_>,
    imp: &str,
    how: &Planning,
) -> Result<(Vec<String>, Option<MemoryShortfall>)> {
    let mut notes = at.w.notes();
    let mut short_of_memory = None;
    for (b, &d) in at.members.iter().zip(at.placement.devices()) {
        let need = b.memory_needs(at.w, imp, at.sets);
        let (checked, short) = check_memory(need, *b, d, at.host, how.shortfalls)?;
        short_of_memory = short_of_memory.or(short);
        for n in checked {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
    }
    Ok((notes, short_of_memory))
}

/// An implementation left out of one (workload, placement) of the plan, and why.
struct Refusal {
    name: String,
    why: String,
}

/// The error of a plan whose refusals left a user without what they asked for: an
/// implementation named (`--impl`, `--kernel`) that runs at no point of the plan, or a plan left
/// with nothing at all. A name refused at some points of a sweep and run at others is not one:
/// the points it does not suit are in `skipped`.
fn refusal_left(plan: &Plan, select: &ImplSelect, refused: &[Refusal]) -> Result<()> {
    let named: &[String] = match select {
        ImplSelect::Named(n) | ImplSelect::DefaultAnd(n) => n,
        _ => &[],
    };
    let runs = |name: &str| plan.entries.iter().any(|e| e.implementation == name);
    let unplaced = refused
        .iter()
        .find(|r| named.contains(&r.name) && !runs(&r.name));
    match (unplaced, refused.first()) {
        (Some(r), _) => Err(Error::unsupported(r.why.clone())),
        (None, Some(r)) if plan.entries.is_empty() => Err(Error::unsupported(r.why.clone())),
        // Nothing refused and nothing left (`--impl reference` where no workload has one).
        (None, None) if plan.entries.is_empty() && !plan.skipped.is_empty() => {
            // A whole sweep left out says so in a line, not one sentence per point.
            const SHOWN: usize = 3;
            let mut why = plan.skipped[..plan.skipped.len().min(SHOWN)].join("; ");
            if plan.skipped.len() > SHOWN {
                why += &format!("; and {} more like these", plan.skipped.len() - SHOWN);
            }
            Err(Error::unsupported(format!("nothing to run: {why}")))
        }
        _ => Ok(()),
    }
}

/// The implementations the plan runs `w` with on `placement` (`members`, the lead first), or
/// `None` when it runs none there and `skipped` says why; an error when nothing asked for can
/// run, with the backend's reason where it knows one. An implementation the lead refuses for
/// this workload (a user kernel written for another dtype, at one point of a `--dtype` sweep),
/// or the devices cannot run together ([`Backend::check_group`]: two GPUs without a peer
/// mapping), is left out of this point with a note, whether picked by default or by name;
/// `refused` collects why, so that [`refusal_left`] can say it when nothing asked for is left.
fn implementations_for(
    how: &Planning,
    w: &Workload,
    placement: &Placement,
    members: &[&dyn Backend],
    skipped: &mut Vec<String>,
    not_run: &mut Vec<NotRun>,
    refused: &mut Vec<Refusal>,
) -> Result<Option<Vec<String>>> {
    let (select, lead) = (how.select, members[0]);
    let avail = lead.implementations(w);
    if let (true, ImplSelect::Named(names)) = (avail.is_empty(), select) {
        // The backend's own reason (a user kernel on a CPU needs a GPU) beats a guess.
        for n in names {
            lead.check(w, n)?;
        }
    }
    if avail.is_empty() {
        // A backend that knows why (a missing library) says so.
        let reason = lead
            .check(w, "")
            .err()
            .map(|e| e.reason())
            .filter(|m| !m.contains("has no implementation"))
            .unwrap_or_else(|| format!("dtype {} unsupported here", w.dtype()));
        if how.skip_unsupported {
            not_run.push(NotRun {
                workload: w.name(),
                device: placement.clone(),
                why: reason,
            });
            return Ok(None);
        }
        return Err(Error::Unsupported(format!(
            "{} cannot run {}: {reason}",
            lead.device().name,
            w.name()
        )));
    }
    let mut leave_out = |name: &str, why: String, note: String| {
        if !skipped.contains(&note) {
            skipped.push(note);
        }
        refused.push(Refusal {
            name: name.to_string(),
            why,
        });
    };
    let picked = choose(select, &avail);
    if picked.is_empty() && *select == ImplSelect::Reference {
        let note = format!(
            "{}: {} has no vendor reference for it (`--impl reference` runs only those)",
            w.name(),
            lead.device().name
        );
        if !skipped.contains(&note) {
            skipped.push(note);
        }
        return Ok(None);
    }
    let mut chosen = Vec::new();
    for name in picked {
        if !is_named(select, &name) {
            chosen.push(name);
            continue;
        }
        match lead.check(w, &name) {
            Ok(()) => chosen.push(name),
            Err(e @ Error::Unsupported(_)) => {
                let why = e.reason();
                let note = format!("{}/{name}: {why}", w.name());
                leave_out(&name, why, note);
            }
            Err(e) => return Err(e),
        }
    }
    if members.len() > 1 {
        chosen.retain(|name| match lead.check_group(members, w, name) {
            Ok(()) => true,
            Err(e) => {
                let why = e.reason();
                let note = format!("{}/{name} on devices {placement}: {why}", w.name());
                leave_out(name, why, note);
                false
            }
        });
    }
    Ok((!chosen.is_empty()).then_some(chosen))
}

/// Whether `select` names `name` (rather than picking it from the device's list).
fn is_named(select: &ImplSelect, name: &str) -> bool {
    matches!(select, ImplSelect::Named(n) | ImplSelect::DefaultAnd(n) if n.iter().any(|x| x == name))
}

/// The implementations `select` picks from `avail` (the lead device's list); the named ones
/// are checked by the caller.
fn choose(select: &ImplSelect, avail: &[crate::backend::ImplInfo]) -> Vec<String> {
    let refs = || -> Vec<String> {
        avail
            .iter()
            .filter(|i| i.reference)
            .map(|i| i.name.clone())
            .collect()
    };
    match select {
        ImplSelect::All => avail.iter().map(|i| i.name.clone()).collect(),
        ImplSelect::Best => vec![avail[0].name.clone()],
        // The vendor ones only: a workload without one runs nothing (the caller says so).
        ImplSelect::Reference => refs(),
        ImplSelect::Judging => {
            let r = refs();
            if r.is_empty() {
                vec![avail[0].name.clone()]
            } else {
                r
            }
        }
        ImplSelect::Default => default_choice(avail),
        ImplSelect::DefaultAnd(names) => {
            let mut v = default_choice(avail);
            for n in names {
                if !v.contains(n) {
                    v.push(n.clone());
                }
            }
            v
        }
        ImplSelect::Named(names) => names.clone(),
    }
}

/// The (workload, placement) pairs of `w`: every device alone, every (ordered) pair, or the
/// group of this process's devices with the workload sized for the world's ranks.
fn targets(
    w: &Workload,
    backends: &[Box<dyn Backend>],
    world: &World,
) -> Result<Vec<(Workload, Placement)>> {
    let n = backends.len();
    let pairs = |ordered: bool| -> Result<Vec<(Workload, Placement)>> {
        if n < 2 {
            return Err(Error::unsupported(format!(
                "{} needs two devices; this run has {n}",
                w.name()
            )));
        }
        Ok((0..n)
            .flat_map(|a| (0..n).map(move |b| (a, b)))
            .filter(|&(a, b)| if ordered { a != b } else { a < b })
            .filter_map(|(a, b)| Placement::ordered([a, b]))
            .map(|p| (w.clone(), p))
            .collect())
    };
    match w.placing() {
        Placing::EachDevice => Ok((0..n).map(|d| (w.clone(), Placement::one(d))).collect()),
        Placing::OrderedPairs => pairs(true),
        Placing::Pairs => pairs(false),
        Placing::Group => Ok(vec![group(w, backends, world)?]),
    }
}

/// A group workload on this process's devices, sized for the world: one rank per device
/// (every process holding as many), or, on a backend whose ranks are threads, its ranks on one
/// device.
fn group(
    w: &Workload,
    backends: &[Box<dyn Backend>],
    world: &World,
) -> Result<(Workload, Placement)> {
    let asked = w.ranks().unwrap_or(0);
    let first = backends
        .first()
        .ok_or_else(|| Error::unsupported(format!("{} has no device to run on", w.name())))?;
    let (ranks, local, placement) = match first.rank_layout() {
        // Thread ranks stay inside the process: every process runs its own on its one device.
        RankLayout::Threads { default } => {
            let ranks = if asked == 0 { default } else { asked };
            (ranks, None, Placement::one(0))
        }
        RankLayout::OnePerDevice => {
            let devices = world.local_devices(backends.len())?;
            let lead = &backends[devices.start];
            let here = devices.len() as u32;
            let total = here * world.size;
            if total < 2 {
                // As `--ranks 1` is: one rank exchanges nothing, and its 0 B/s read "ok".
                return Err(Error::invalid(format!(
                    "{} needs two ranks or more: {} runs one rank per device, and there is \
                     one device in one process (run a world of several processes, or on a \
                     node with more devices)",
                    w.name().trim_end_matches(".n0"),
                    lead.kind().name()
                )));
            }
            if asked != 0 && asked != total {
                return Err(Error::invalid(format!(
                    "--ranks {asked}, but {} runs one rank per device: {here} device(s) × {} \
                     process(es) = {total}",
                    lead.kind().name(),
                    world.size
                )));
            }
            let local = (!world.is_single()).then_some(RankRange {
                first: world.rank * here,
                count: here,
            });
            let p = Placement::set(devices.clone())
                .ok_or_else(|| Error::unsupported(format!("{} has no device", w.name())))?;
            (total, local, p)
        }
    };
    let sized = w.with_ranks(ranks, local).unwrap_or_else(|| w.clone());
    sized.validate()?;
    Ok((sized, placement))
}

/// The vendor references plus the best own implementation (the first that is not one).
fn default_choice(avail: &[crate::backend::ImplInfo]) -> Vec<String> {
    let mut v: Vec<String> = avail
        .iter()
        .filter(|i| i.reference)
        .map(|i| i.name.clone())
        .collect();
    if let Some(own) = avail.iter().find(|i| !i.reference) {
        v.push(own.name.clone());
    }
    v
}

/// `workloads` with repeats (same id) removed, first occurrence kept; each repeat noted.
fn unique_workloads(workloads: &[Workload], notes: &mut Vec<String>) -> Vec<Workload> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut out = Vec::new();
    for w in workloads {
        let count = seen.entry(w.name()).or_insert(0);
        *count += 1;
        if *count == 1 {
            out.push(w.clone());
        }
    }
    for w in &out {
        let n = seen[&w.name()];
        if n > 1 {
            notes.push(format!(
                "{} was asked for {n} times; measured once (one id, one result)",
                w.name()
            ));
        }
    }
    out
}

/// `names` with repeats removed, first occurrence kept; each repeat noted.
fn unique_names(names: Vec<String>, workload: &str, notes: &mut Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if out.contains(&n) {
            let note =
                format!("{workload}/{n}: implementation `{n}` was asked for twice; measured once");
            if !notes.contains(&note) {
                notes.push(note);
            }
        } else {
            out.push(n);
        }
    }
    out
}

/// Buffer sets so that the rotated working set is a few times the last-level cache.
pub fn buffer_sets(w: &Workload, b: &dyn Backend, hot: bool) -> usize {
    if hot {
        return 1;
    }
    let llc = b.device().last_level_cache_bytes.unwrap_or(32 << 20);
    let ws = w.footprint().max(1);
    let want = (ROTATE_CACHE_MULTIPLE * llc).div_ceil(ws);
    want.clamp(1, MAX_BUFFER_SETS) as usize
}

/// The cache label a result really earned: a rotation through buffer sets that add up to less
/// than twice the cache its timings feel is `warm(N)`, with a note saying why (the number of
/// sets is capped at [`MAX_BUFFER_SETS`], so a small footprint cannot outgrow a large L2).
pub fn honest_cache(
    policy: CachePolicy,
    w: &Workload,
    b: &dyn Backend,
) -> (CachePolicy, Option<String>) {
    let (CachePolicy::Rotate(sets), Some(cache)) = (&policy, b.timed_cache_bytes()) else {
        return (policy, None);
    };
    let footprint = w.footprint();
    match CachePolicy::rotating(*sets, footprint, cache) {
        CachePolicy::Warm(n) => {
            let note = format!(
                "warm({n}): {n} buffer sets × {} = {} is less than twice the {} last-level \
                 cache, so part of each iteration's data is served from cache",
                Bytes(footprint),
                Bytes(footprint.saturating_mul(n as u64)),
                Bytes(cache)
            );
            (CachePolicy::Warm(n), Some(note))
        }
        _ => (policy, None),
    }
}

/// The environment variable that turns a host-memory shortfall into a note.
pub const HOST_MEMORY_CHECK_VAR: &str = "GPUVET_HOST_MEMORY_CHECK";

/// What to do when a run needs more host RAM than `MemAvailable` says is free. On a VM whose
/// memory grows on demand, `MemAvailable` can be far below what it will give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostMemoryCheck {
    /// Refuse the run (the default).
    #[default]
    Strict,
    /// Run anyway and say so in the result's notes.
    Warn,
}

impl HostMemoryCheck {
    /// From [`HOST_MEMORY_CHECK_VAR`]: unset or `strict` is strict, `warn` warns.
    pub fn from_env() -> Result<HostMemoryCheck> {
        Self::parse(std::env::var(HOST_MEMORY_CHECK_VAR).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Result<HostMemoryCheck> {
        match value {
            None | Some("") | Some("strict") => Ok(HostMemoryCheck::Strict),
            Some("warn") => Ok(HostMemoryCheck::Warn),
            Some(other) => Err(Error::invalid(format!(
                "{HOST_MEMORY_CHECK_VAR}={other}: expected `strict` or `warn`"
            ))),
        }
    }

    /// `Ok(None)` when `need` fits in `have`; otherwise an error (strict) or the note to
    /// record (warn).
    pub fn judge(self, need: u64, have: u64) -> Result<Option<String>> {
        if need <= have {
            return Ok(None);
        }
        match self {
            HostMemoryCheck::Strict => Err(Error::OutOfMemory {
                device: format!(
                    "host (free RAM by MemAvailable; where RAM grows on demand, set \
                     {HOST_MEMORY_CHECK_VAR}=warn to go on)"
                ),
                need: Bytes(need),
                have: Bytes(have),
            }),
            HostMemoryCheck::Warn => Ok(Some(format!(
                "host memory: this run needs {}, MemAvailable said {} ({HOST_MEMORY_CHECK_VAR}=warn)",
                Bytes(need),
                Bytes(have)
            ))),
        }
    }
}

/// Refuses a workload whose buffers do not fit, before anything is allocated. Returns the
/// notes to record with its results (a host shortfall let through by
/// [`HostMemoryCheck::Warn`]).
fn check_memory(
    need: MemoryNeeds,
    b: &dyn Backend,
    position: usize,
    host: HostMemoryCheck,
    shortfalls: Shortfalls,
) -> Result<(Vec<String>, Option<MemoryShortfall>)> {
    let need_on_device = need.device;
    // The host's shortfall is always the run's (it is no finding about a GPU).
    let notes: Vec<String> = host
        .judge(need.host, crate::env::available_memory())?
        .into_iter()
        .collect();
    if need_on_device == 0 {
        return Ok((notes, None));
    }
    let free = b.free_memory()?;
    let short = device_shortfall(position, &b.device().name, need_on_device, free, shortfalls)?;
    Ok((notes, short))
}

/// `need` bytes against `free` on `device` (the backend at `position` of the run's list, which
/// is not its CUDA ordinal where a device failed to open): nothing when they fit; else an
/// error, or the shortfall to record.
fn device_shortfall(
    position: usize,
    device: &str,
    need: u64,
    free: u64,
    shortfalls: Shortfalls,
) -> Result<Option<MemoryShortfall>> {
    if need <= free {
        return Ok(None);
    }
    let short = MemoryShortfall {
        index: position,
        device: device.to_string(),
        need: Bytes(need),
        have: Bytes(free),
    };
    match shortfalls {
        Shortfalls::Refuse => Err(short.error()),
        Shortfalls::Record => Ok(Some(short)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mock::MockBackend;
    use crate::dtype::DType;
    use crate::workload::{AttentionSpec, MatmulSpec, MemOp, MemorySpec};

    fn mock() -> Vec<Box<dyn Backend>> {
        vec![Box::new(MockBackend::new())]
    }

    /// `all` and `reference` stand alone (beside a name, the name was dropped without a
    /// word); `default` combines with names.
    #[test]
    fn impl_lists_parse_to_one_selection_or_an_error() {
        let p =
            |l: &[&str]| ImplSelect::parse(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&[]).unwrap(), ImplSelect::Default);
        assert_eq!(p(&["default"]).unwrap(), ImplSelect::Default);
        assert_eq!(p(&["all"]).unwrap(), ImplSelect::All);
        assert_eq!(p(&["all", "all"]).unwrap(), ImplSelect::All);
        assert_eq!(p(&["reference"]).unwrap(), ImplSelect::Reference);
        assert_eq!(
            p(&["default", "mine"]).unwrap(),
            ImplSelect::DefaultAnd(vec!["mine".into()])
        );
        assert_eq!(
            p(&["gemm"]).unwrap(),
            ImplSelect::Named(vec!["gemm".into()])
        );
        for bad in [
            &["all", "gemmm"][..],
            &["reference", "nosuch"],
            &["default", "all"],
        ] {
            let e = p(bad).unwrap_err().to_string();
            assert!(e.contains("give it alone"), "{bad:?}: {e}");
        }
    }

    /// The mock with two implementations of everything: `fused`, whose device bytes are the
    /// workload's own, and `scratch`, which needs more memory than any device has (the unfused
    /// attention's score matrix at a long context).
    struct TwoSizes(MockBackend);

    impl Backend for TwoSizes {
        fn device(&self) -> &crate::backend::DeviceInfo {
            self.0.device()
        }
        fn implementations(&self, _: &Workload) -> Vec<crate::backend::ImplInfo> {
            ["scratch", "fused"]
                .map(|n| crate::backend::ImplInfo::new(n, n, n == "scratch"))
                .to_vec()
        }
        fn free_memory(&self) -> Result<u64> {
            self.0.free_memory()
        }
        fn memory_needs(&self, w: &Workload, imp: &str, sets: usize) -> MemoryNeeds {
            let device = match imp {
                "scratch" => 1 << 50,
                _ => w.footprint() * sets as u64,
            };
            MemoryNeeds { host: 0, device }
        }
        fn stress_size(&self, purpose: crate::backend::Sustained) -> u64 {
            self.0.stress_size(purpose)
        }
        fn quick_suite(&self) -> Vec<Workload> {
            self.0.quick_suite()
        }
        fn prepare_checked<'a>(
            &'a self,
            r: crate::backend::Request<'_>,
        ) -> Result<Box<dyn crate::backend::Prepared + 'a>> {
            self.0.prepare_checked(r)
        }
    }

    /// Each implementation is held to its own memory: the one that does not fit is left out
    /// with its reason while the other runs; asked for alone, it is refused; a suite where
    /// nothing fits says so in `not_run`.
    #[test]
    fn memory_is_checked_per_implementation() {
        let b: Vec<Box<dyn Backend>> = vec![Box::new(TwoSizes(MockBackend::new()))];
        let w = Workload::Matmul(MatmulSpec::new(64, 64, 64, DType::F32));
        let one = std::slice::from_ref(&w);
        let p = build(one, &b, &ImplSelect::All, false, false).unwrap();
        let ran: Vec<&str> = p
            .entries
            .iter()
            .map(|e| e.implementation.as_str())
            .collect();
        assert_eq!(ran, ["fused"]);
        assert!(
            p.skipped.iter().any(
                |s| s.starts_with("`scratch` left out of matmul.f32.64x64x64")
                    && s.contains("not enough memory")
            ),
            "{:?}",
            p.skipped
        );
        let named = |n: &[&str]| ImplSelect::Named(n.iter().map(|s| s.to_string()).collect());
        for alone in [named(&["scratch"]), named(&["scratch", "fused"])] {
            let e = build(one, &b, &alone, false, false)
                .unwrap_err()
                .to_string();
            assert!(e.contains("not enough memory"), "{alone:?}: {e}");
        }
        let p = build(one, &b, &named(&["scratch"]), false, true).unwrap();
        assert!(p.entries.is_empty());
        assert_eq!(p.not_run.len(), 1);
        assert!(p.not_run[0].why.contains("not enough memory"), "{p:?}");
    }

    #[test]
    fn rejects_bad_shapes_and_impls() {
        let b = mock();
        let bad = Workload::Matmul(MatmulSpec::new(0, 1, 1, DType::F32));
        assert!(build(&[bad], &b, &ImplSelect::Default, false, false).is_err());
        let ok = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let e = build(
            std::slice::from_ref(&ok),
            &b,
            &ImplSelect::Named(vec!["nope".into()]),
            false,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("available: mock"), "{e}");
        let p = build(&[ok], &b, &ImplSelect::Default, false, false).unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].implementation, "mock");
    }

    #[test]
    fn reference_selection_keeps_vendor_implementations() {
        let b: Vec<Box<dyn Backend>> =
            vec![Box::new(crate::backend::cpu::CpuBackend::new(1).unwrap())];
        let mm = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let att = Workload::Attention(AttentionSpec {
            batch: 1,
            q_heads: 2,
            kv_heads: 1,
            q_len: 4,
            kv_len: 4,
            head_dim: 8,
            causal: false,
            dtype: DType::F32,
        });
        let names = |select: &ImplSelect| -> Vec<String> {
            let p = build(&[mm.clone(), att.clone()], &b, select, false, false).unwrap();
            p.entries.into_iter().map(|e| e.implementation).collect()
        };
        // gemm is the CPU's vendor-library reference; attention has none, so a verdict runs
        // its first impl...
        assert_eq!(names(&ImplSelect::Judging), ["gemm", "flash"]);
        // ... and `--impl reference` leaves it out.
        assert_eq!(names(&ImplSelect::Reference), ["gemm"]);
    }

    #[test]
    fn rotation_follows_cache_size() {
        let b = MockBackend::new(); // 1 MiB "L2"
        let small = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        assert_eq!(buffer_sets(&small, &b, false), 16);
        assert_eq!(buffer_sets(&small, &b, true), 1);
        let big = Workload::Memory(MemorySpec {
            op: MemOp::Copy,
            bytes: 64 << 20,
        });
        assert_eq!(buffer_sets(&big, &b, false), 1);
    }

    #[test]
    fn placements_serialise_as_a_number_or_a_list() {
        let one = Placement::one(3);
        assert_eq!(serde_json::to_string(&one).unwrap(), "3");
        let set = Placement::set([2, 0, 2]).unwrap();
        assert_eq!(set.devices(), [0, 2]);
        assert_eq!(serde_json::to_string(&set).unwrap(), "[0,2]");
        for p in [one, set] {
            let back: Placement =
                serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(back, p);
        }
        assert!(Placement::set([]).is_none());
        assert!(serde_json::from_str::<Placement>("[]").is_err());
        assert!(Placement::one(1).overlaps(&Placement::set([0, 1]).unwrap()));
        assert!(!Placement::one(2).overlaps(&Placement::set([0, 1]).unwrap()));
    }

    #[test]
    fn best_selects_the_first_implementation() {
        let b: Vec<Box<dyn Backend>> =
            vec![Box::new(crate::backend::cpu::CpuBackend::new(1).unwrap())];
        let mm = Workload::Matmul(MatmulSpec::new(8, 8, 8, DType::F32));
        let p = build(&[mm], &b, &ImplSelect::Best, true, false).unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].implementation, "gemm");
        assert_eq!(p.entries[0].buffer_sets, 1);
    }

    #[test]
    fn a_rotation_through_less_than_twice_the_cache_is_labelled_warm() {
        let timed = MockBackend::with_timed_cache(); // 1 MiB "L2" its timings feel
        let small = Workload::Matmul(MatmulSpec::new(64, 64, 64, DType::F32)); // 48 KiB
        let sets = buffer_sets(&small, &timed, false);
        assert_eq!(sets, MAX_BUFFER_SETS as usize);
        let (p, note) = honest_cache(CachePolicy::Rotate(sets), &small, &timed);
        assert_eq!(p, "warm(16)");
        let note = note.unwrap();
        assert!(note.contains("less than twice the 1.00 MiB"), "{note}");
        // The plain mock's clock feels no cache: its label stays what it did.
        let plain = MockBackend::new();
        assert_eq!(
            honest_cache(CachePolicy::Rotate(16), &small, &plain),
            (CachePolicy::Rotate(16), None)
        );
        // Two 2 MiB sets outgrow twice the 1 MiB cache: cold, as labelled.
        let copy = Workload::Memory(MemorySpec {
            op: MemOp::Copy,
            bytes: 1 << 20,
        });
        assert_eq!(buffer_sets(&copy, &timed, false), 2);
        let (p, note) = honest_cache(CachePolicy::Rotate(2), &copy, &timed);
        assert_eq!((p, note), (CachePolicy::Rotate(2), None));
        assert_eq!(
            honest_cache(CachePolicy::Hot, &small, &timed).0,
            CachePolicy::Hot
        );
    }

    #[test]
    fn the_host_memory_check_is_strict_unless_told_to_warn() {
        assert_eq!(
            HostMemoryCheck::parse(None).unwrap(),
            HostMemoryCheck::Strict
        );
        assert_eq!(
            HostMemoryCheck::parse(Some("strict")).unwrap(),
            HostMemoryCheck::Strict
        );
        assert_eq!(
            HostMemoryCheck::parse(Some("warn")).unwrap(),
            HostMemoryCheck::Warn
        );
        let e = HostMemoryCheck::parse(Some("loose")).unwrap_err();
        assert!(e.to_string().contains("`strict` or `warn`"), "{e}");

        let (need, have) = (8u64 << 30, 2u64 << 30);
        assert_eq!(HostMemoryCheck::Strict.judge(have, need).unwrap(), None);
        let e = HostMemoryCheck::Strict.judge(need, have).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("GPUVET_HOST_MEMORY_CHECK=warn to go on"),
            "{e}"
        );
        let note = HostMemoryCheck::Warn.judge(need, have).unwrap().unwrap();
        assert!(note.contains("needs 8.00 GiB"), "{note}");

        // Through the plan's check: 8 TiB on the mock (its host copies in RAM) is refused, or
        // let through with the note on every entry it makes; the mock's device (16 GiB free, as
        // a GPU's) is then short too.
        let b = MockBackend::new();
        let huge = Workload::Memory(MemorySpec {
            op: MemOp::Copy,
            bytes: 1 << 42,
        });
        let refuse = Shortfalls::Refuse;
        let need = || b.memory_needs(&huge, "mock", 1);
        assert!(check_memory(need(), &b, 0, HostMemoryCheck::Strict, refuse).is_err());
        // Recording shortfalls is for the device's memory, never the host's.
        let record = Shortfalls::Record;
        assert!(check_memory(need(), &b, 0, HostMemoryCheck::Strict, record).is_err());
        assert!(check_memory(need(), &b, 0, HostMemoryCheck::Warn, refuse).is_err());
        let (notes, short) = check_memory(need(), &b, 0, HostMemoryCheck::Warn, record).unwrap();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with("host memory:"), "{notes:?}");
        assert_eq!(short.unwrap().have, Bytes(16 << 30));
    }

    /// Identical devices missing the same workloads for the same reason are one line (three
    /// mock GPUs without an attention library once read "Mock GPU cannot run 3 workloads"
    /// with one workload named three times); a device missing others, or another model, has
    /// its own.
    #[test]
    fn not_run_lines_say_each_reason_once_for_the_devices_it_hits() {
        let nr = |workload: &str, device: usize, why: &str| NotRun {
            workload: workload.into(),
            device: device.into(),
            why: why.into(),
        };
        let not_run = [
            nr("attention.a", 0, "no library"),
            nr("attention.b", 0, "no library"),
            nr("attention.a", 1, "no library"),
            nr("attention.b", 1, "no library"),
            nr("attention.a", 2, "no library"),
            nr("matmul.big", 2, "not enough memory"),
        ];
        let names = ["H100", "H100", "A100"];
        let lines = not_run_lines(&not_run, |i| names[i].to_string());
        assert_eq!(
            lines,
            [
                "H100 (devices 0, 1) cannot run 2 workloads (attention.a, attention.b): no library",
                "A100 cannot run attention.a: no library",
                "A100 cannot run matmul.big: not enough memory",
            ]
        );
        let two_models = [nr("x", 1, "w"), nr("x", 2, "w")];
        assert_eq!(
            not_run_lines(&two_models, |i| names[i].to_string()),
            ["devices 1, 2 cannot run x: w"]
        );
        let together = [NotRun {
            workload: "collective.all_reduce.bf16.1MiB.n2".into(),
            device: Placement::set([0, 1]).unwrap(),
            why: "NCCL not found".into(),
        }];
        assert_eq!(
            not_run_lines(&together, |i| names[i].to_string()),
            ["H100 (devices 0,1 together) cannot run collective.all_reduce.bf16.1MiB.n2: NCCL not found"]
        );
    }

    /// A suite runs what fits: a device without the memory for a workload has it recorded as
    /// not run, with the shortfall as the reason, and the others run it; asked for by name
    /// (not a suite), the same shortfall refuses the plan.
    #[test]
    fn a_suite_skips_what_does_not_fit_and_says_so() {
        use crate::backend::mock::HELD_MEMORY_LEFT;
        let backends: Vec<Box<dyn Backend>> = vec![
            Box::new(MockBackend::numbered(0, 2)),
            Box::new(MockBackend::numbered(1, 2).with_free_memory(HELD_MEMORY_LEFT)),
        ];
        let w = [Workload::Matmul(MatmulSpec::new(256, 256, 256, DType::F32))];
        let world = World::single();
        let plan = |suite| {
            build_in(
                &w,
                &backends,
                &ImplSelect::Default,
                false,
                suite,
                &world,
                &[],
            )
        };
        let suite = plan(true).unwrap();
        assert!(suite.entries.iter().all(|e| e.placement.lead() == 0));
        assert!(!suite.entries.is_empty());
        assert_eq!(suite.not_run.len(), 1, "{:?}", suite.not_run);
        let n = &suite.not_run[0];
        assert_eq!(
            (n.device.clone(), n.workload.as_str()),
            (Placement::one(1), "matmul.f32.256x256x256.kn")
        );
        assert!(n.why.starts_with("not enough memory on "), "{}", n.why);
        let named = plan(false);
        assert!(matches!(named, Err(Error::OutOfMemory { .. })), "{named:?}");
    }

    /// A shortfall names the short member by its position in the run's list (what placements,
    /// results and verdicts count by), not by its CUDA ordinal: they differ where a device
    /// failed to open (ordinals 0 and 2 at positions 0 and 1 here).
    #[test]
    fn a_shortfall_names_the_position_of_the_short_member() {
        use crate::backend::mock::HELD_MEMORY_LEFT;
        let backends: Vec<Box<dyn Backend>> = vec![
            Box::new(MockBackend::numbered(0, 3)),
            Box::new(MockBackend::numbered(2, 3).with_free_memory(HELD_MEMORY_LEFT)),
        ];
        let w = Workload::Matmul(MatmulSpec::new(64, 64, 64, DType::F32));
        let plan = build_judging(&[w], &backends, &[]).unwrap();
        let short: Vec<(usize, usize)> = plan
            .entries
            .iter()
            .filter_map(|e| Some((e.placement.lead(), e.short_of_memory.as_ref()?.index)))
            .collect();
        assert!(
            !short.is_empty() && short.iter().all(|&(at, i)| at == 1 && i == 1),
            "{short:?}"
        );
    }

    #[test]
    fn a_device_shortfall_is_recorded_where_asked() {
        // 32 GiB asked of a GPU with 16 GiB free: refused, or (validate) kept as the shortfall
        // the entry's result will carry.
        let (need, free) = (32 << 30, 16 << 30);
        assert!(device_shortfall(3, "H100", need, free, Shortfalls::Refuse).is_err());
        let short = device_shortfall(3, "H100", need, free, Shortfalls::Record)
            .unwrap()
            .expect("a shortfall");
        assert_eq!((short.need, short.have), (Bytes(need), Bytes(free)));
        assert_eq!(short.index, 3);
        assert!(short.error().to_string().contains("H100"));
        for how in [Shortfalls::Refuse, Shortfalls::Record] {
            assert_eq!(device_shortfall(3, "H100", free, free, how).unwrap(), None);
        }
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let b = mock();
        let huge = Workload::Memory(MemorySpec {
            op: MemOp::Copy,
            bytes: 1 << 43,
        });
        let e = build(&[huge], &b, &ImplSelect::Default, false, false).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { .. }), "{e}");
        assert!(e.to_string().contains("needs"), "{e}");
    }
}
