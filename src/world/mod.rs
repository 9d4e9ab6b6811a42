//! The processes one run spans: a property of the run (this process's rank, how many there
//! are, which devices are its own), never of a placement of local devices.
//!
//! A single process is the default. Several come from a launcher: Slurm (`srun` sets
//! `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, the step's node list and ids), or any other
//! (a Kubernetes indexed Job, a shell loop) through `GPUVET_RANK` / `JOB_COMPLETION_INDEX`,
//! `GPUVET_WORLD_SIZE` and `GPUVET_RENDEZVOUS`. gpuvet never starts processes itself.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::path::PathBuf;

pub mod rendezvous;

/// Which launcher to read the world from (`--world`; `auto` for collectives, `single` for
/// everything else and by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorldChoice {
    /// `env` when `GPUVET_WORLD_SIZE` is set, `slurm` inside a Slurm step of several tasks,
    /// otherwise `single`.
    Auto,
    /// One process, whatever the environment says.
    #[default]
    Single,
    /// Slurm's task variables.
    Slurm,
    /// `GPUVET_RANK` (or `JOB_COMPLETION_INDEX`), `GPUVET_WORLD_SIZE`, `GPUVET_RENDEZVOUS`.
    Env,
}

/// Who started the processes of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Launcher {
    Single,
    Slurm,
    Env,
}

impl Launcher {
    /// The name the report gives it.
    pub fn name(self) -> &'static str {
        match self {
            Launcher::Single => "single",
            Launcher::Slurm => "slurm",
            Launcher::Env => "env",
        }
    }
}

/// The processes of a run. `rank` 0 of `size` hands the others the communicator id (the NCCL
/// unique id) through `rendezvous`; NCCL then does all the communication.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub rank: u32,
    pub size: u32,
    /// This process's index among the processes on its node.
    pub local_rank: u32,
    /// Processes on this node: the node's devices are split evenly between them.
    pub local_size: u32,
    pub launcher: Launcher,
    /// Where rank 0 hands out the id; `None` for a single process.
    pub rendezvous: Option<Rendezvous>,
    /// Names the job: a rendezvous refuses processes that bring another key.
    pub key: String,
    /// The communicator id every process agreed on (after [`super::rendezvous::join`]).
    pub id: Option<Vec<u8>>,
    /// Host of every rank, in rank order (after joining; rank 0 knows them all).
    pub hosts: Vec<String>,
}

/// What a report records about the world it was measured in.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldRecord {
    pub rank: u32,
    pub size: u32,
    pub local_rank: u32,
    pub local_size: u32,
    pub launcher: Launcher,
    /// Where the id was handed out (`tcp://gpu001:24242`, `file:/shared/rdv`).
    pub rendezvous: Option<String>,
    /// SHA-256 (first 16 hex digits) of the id every process agreed on: the same in the
    /// report of every rank of one run.
    pub id_sha256: Option<String>,
    /// Host of every rank, as far as this rank knows them (rank 0 knows all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

impl World {
    /// The record of this world for a report; `None` for a single process.
    pub fn record(&self) -> Option<WorldRecord> {
        if self.is_single() {
            return None;
        }
        use sha2::{Digest, Sha256};
        Some(WorldRecord {
            rank: self.rank,
            size: self.size,
            local_rank: self.local_rank,
            local_size: self.local_size,
            launcher: self.launcher,
            rendezvous: self.rendezvous.as_ref().map(|r| r.to_string()),
            id_sha256: self.id.as_ref().map(|id| {
                Sha256::digest(id)[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            }),
            hosts: self.hosts.clone(),
        })
    }
}

impl Default for World {
    fn default() -> Self {
        World::single()
    }
}

/// Default TCP port range of a Slurm rendezvous: a port derived from the job and step ids.
const SLURM_PORT_BASE: u32 = 21_000;
const SLURM_PORT_SPAN: u32 = 20_000;

impl World {
    /// One process: rank 0 of 1.
    pub fn single() -> World {
        World {
            rank: 0,
            size: 1,
            local_rank: 0,
            local_size: 1,
            launcher: Launcher::Single,
            rendezvous: None,
            key: String::new(),
            id: None,
            hosts: Vec::new(),
        }
    }

    pub fn is_single(&self) -> bool {
        self.size <= 1
    }

    /// The world this process is part of, from its environment.
    pub fn from_process(choice: WorldChoice) -> Result<World> {
        World::from_env(choice, &|k| std::env::var(k).ok())
    }

    /// The world described by the variables `var` returns (the process environment, or a
    /// table in tests).
    pub fn from_env(choice: WorldChoice, var: &dyn Fn(&str) -> Option<String>) -> Result<World> {
        let choice = match choice {
            WorldChoice::Auto if var("GPUVET_WORLD_SIZE").is_some() => WorldChoice::Env,
            WorldChoice::Auto
                if var("SLURM_PROCID").is_some()
                    && num(var, "SLURM_NTASKS")?.or(num(var, "SLURM_NPROCS")?) > Some(1) =>
            {
                WorldChoice::Slurm
            }
            WorldChoice::Auto => WorldChoice::Single,
            c => c,
        };
        let world = match choice {
            WorldChoice::Single | WorldChoice::Auto => World::single(),
            WorldChoice::Slurm => slurm(var)?,
            WorldChoice::Env => generic(var)?,
        };
        world.check()?;
        Ok(world)
    }

    fn check(&self) -> Result<()> {
        if self.size == 0 {
            return Err(Error::invalid(
                "a world size of 0: a world has at least one process",
            ));
        }
        if self.rank >= self.size {
            return Err(Error::invalid(format!(
                "world rank {} of {}: the rank must be below the world size",
                self.rank, self.size
            )));
        }
        if self.local_size == 0 || self.local_rank >= self.local_size {
            return Err(Error::invalid(format!(
                "local rank {} of {} processes on this node is not possible",
                self.local_rank, self.local_size
            )));
        }
        if self.size > 1 && self.rendezvous.is_none() {
            return Err(Error::invalid(
                "a world of several processes needs a rendezvous: set GPUVET_RENDEZVOUS to \
                 tcp://HOST:PORT (rank 0's host) or file:PATH (a shared filesystem)",
            ));
        }
        Ok(())
    }

    /// The devices of this process among `visible` ones: all of them in a single process; in a
    /// world, an even share per process on the node (one each when there are as many
    /// processes as devices), by local rank.
    pub fn local_devices(&self, visible: usize) -> Result<std::ops::Range<usize>> {
        if self.is_single() {
            return Ok(0..visible);
        }
        let per = visible / self.local_size as usize;
        if per == 0 {
            return Err(Error::invalid(format!(
                "{} processes on this node but only {visible} device(s): one process per \
                 device at most",
                self.local_size
            )));
        }
        let first = self.local_rank as usize * per;
        Ok(first..first + per)
    }
}

/// A whole number from `var(key)`; `None` when unset, an error when unreadable.
fn num(var: &dyn Fn(&str) -> Option<String>, key: &str) -> Result<Option<u32>> {
    match var(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::invalid(format!("{key}={v} is not a whole number"))),
    }
}

fn required(var: &dyn Fn(&str) -> Option<String>, key: &str) -> Result<u32> {
    num(var, key)?.ok_or_else(|| Error::invalid(format!("{key} is not set")))
}

/// A world from Slurm's task variables: rank 0's host is the first of the step's nodes
/// (`srun` places task 0 there), the port follows the job and step ids unless
/// `GPUVET_RENDEZVOUS` names one.
fn slurm(var: &dyn Fn(&str) -> Option<String>) -> Result<World> {
    let rank = required(var, "SLURM_PROCID")?;
    let size = match num(var, "SLURM_NTASKS")? {
        Some(n) => n,
        None => required(var, "SLURM_NPROCS")?,
    };
    let local_rank = num(var, "SLURM_LOCALID")?.unwrap_or(0);
    let local_size = slurm_local_tasks(var)?.unwrap_or(1).max(local_rank + 1);
    let job = var("SLURM_JOB_ID").unwrap_or_default();
    let step = var("SLURM_STEP_ID").unwrap_or_default();
    let key = format!("slurm-{job}.{step}");
    let rendezvous = match var("GPUVET_RENDEZVOUS") {
        Some(r) => Some(r.parse::<Rendezvous>().map_err(Error::invalid)?),
        None if size > 1 => {
            let nodes = var("SLURM_STEP_NODELIST")
                .or_else(|| var("SLURM_JOB_NODELIST"))
                .or_else(|| var("SLURM_NODELIST"))
                .ok_or_else(|| Error::invalid("SLURM_STEP_NODELIST is not set"))?;
            let host = first_host(&nodes)?;
            let ids = job.parse::<u32>().unwrap_or(0).wrapping_mul(7) + step.parse().unwrap_or(0);
            let port = SLURM_PORT_BASE + ids % SLURM_PORT_SPAN;
            Some(Rendezvous::Tcp {
                host,
                port: port as u16,
            })
        }
        None => None,
    };
    Ok(World {
        rank,
        size,
        local_rank,
        local_size,
        launcher: Launcher::Slurm,
        rendezvous,
        key,
        ..World::single()
    })
}

/// Tasks of this step on this node: `SLURM_STEP_TASKS_PER_NODE` (`2(x3),1`) at this node's
/// index (`SLURM_NODEID`), else `SLURM_NTASKS_PER_NODE`.
fn slurm_local_tasks(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<u32>> {
    if let Some(list) = var("SLURM_STEP_TASKS_PER_NODE").or_else(|| var("SLURM_TASKS_PER_NODE")) {
        let node = num(var, "SLURM_NODEID")?.unwrap_or(0) as usize;
        let counts = expand_counts(&list)?;
        return Ok(counts.get(node).copied());
    }
    num(var, "SLURM_NTASKS_PER_NODE")
}

/// `2(x3),1` → [2, 2, 2, 1].
fn expand_counts(s: &str) -> Result<Vec<u32>> {
    let bad = || Error::invalid(format!("cannot read the task counts `{s}`"));
    let mut out = Vec::new();
    for item in s.split(',') {
        let (n, times) = match item.split_once("(x") {
            Some((n, t)) => (n, t.trim_end_matches(')').parse().map_err(|_| bad())?),
            None => (item, 1usize),
        };
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        out.extend(std::iter::repeat_n(n, times));
    }
    Ok(out)
}

/// A world from gpuvet's own variables (any launcher; a Kubernetes indexed Job gives the rank
/// as `JOB_COMPLETION_INDEX`).
fn generic(var: &dyn Fn(&str) -> Option<String>) -> Result<World> {
    // The size first: it is what chose this world, and a bad one is what to name.
    let size = required(var, "GPUVET_WORLD_SIZE")?;
    let rank = match num(var, "GPUVET_RANK")? {
        Some(r) => r,
        None => num(var, "JOB_COMPLETION_INDEX")?
            .ok_or_else(|| Error::invalid("GPUVET_RANK (or JOB_COMPLETION_INDEX) is not set"))?,
    };
    let rendezvous = match var("GPUVET_RENDEZVOUS") {
        Some(r) => Some(r.parse::<Rendezvous>().map_err(Error::invalid)?),
        None => None,
    };
    Ok(World {
        rank,
        size,
        local_rank: num(var, "GPUVET_LOCAL_RANK")?.unwrap_or(0),
        local_size: num(var, "GPUVET_LOCAL_WORLD_SIZE")?.unwrap_or(1),
        launcher: Launcher::Env,
        rendezvous,
        key: var("GPUVET_JOB_KEY").unwrap_or_else(|| "gpuvet".into()),
        ..World::single()
    })
}

/// The first host of a Slurm host list (`gpu[003-010,012],login1` → `gpu003`).
pub fn first_host(list: &str) -> Result<String> {
    expand_hostlist(list)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::invalid(format!("the host list `{list}` is empty")))
}

/// Every host of a Slurm host list: comma-separated names, each with bracketed ranges
/// (`node[01-03,7]`, `rack[1-2]-n[1-2]`), zero padding kept.
pub fn expand_hostlist(list: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for item in split_top_level(list) {
        out.extend(expand_one(item.trim(), list)?);
    }
    Ok(out.into_iter().filter(|h| !h.is_empty()).collect())
}

/// Splits at commas outside brackets.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn expand_one(item: &str, list: &str) -> Result<Vec<String>> {
    let bad = || Error::invalid(format!("cannot read the host list `{list}`"));
    let Some(open) = item.find('[') else {
        return Ok(vec![item.to_string()]);
    };
    let close = item[open..].find(']').ok_or_else(bad)? + open;
    let (prefix, ranges, rest) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    let tails = expand_one(rest, list)?;
    let mut out = Vec::new();
    for r in ranges.split(',') {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let width = a.len();
        let (lo, hi): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if hi < lo || hi - lo > 100_000 {
            return Err(bad());
        }
        for v in lo..=hi {
            for t in &tails {
                out.push(format!("{prefix}{v:0width$}{t}"));
            }
        }
    }
    Ok(out)
}

/// Where rank 0 hands out the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendezvous {
    /// Rank 0 listens on `port` (all interfaces); the others connect to `host:port`.
    Tcp { host: String, port: u16 },
    /// Rank 0 writes the id to this file; the others read it (a shared filesystem).
    File(PathBuf),
}

impl std::str::FromStr for Rendezvous {
    type Err = String;
    /// `tcp://HOST:PORT`, `HOST:PORT`, or `file:PATH`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(p) = s.strip_prefix("file:") {
            let p = p.strip_prefix("//").unwrap_or(p);
            if p.is_empty() {
                return Err(format!("`{s}` names no file"));
            }
            return Ok(Rendezvous::File(PathBuf::from(p)));
        }
        let hp = s.strip_prefix("tcp://").unwrap_or(s);
        let (host, port) = hp
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not tcp://HOST:PORT or file:PATH"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("`{s}`: `{port}` is not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{s}` names no host"));
        }
        Ok(Rendezvous::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Rendezvous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rendezvous::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Rendezvous::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn host_lists_expand_like_slurm() {
        assert_eq!(
            expand_hostlist("gpu[003-005,012],login1").unwrap(),
            ["gpu003", "gpu004", "gpu005", "gpu012", "login1"]
        );
        assert_eq!(
            expand_hostlist("rack[1-2]-n[08-09]").unwrap(),
            ["rack1-n08", "rack1-n09", "rack2-n08", "rack2-n09"]
        );
        assert_eq!(first_host("node7").unwrap(), "node7");
        assert!(expand_hostlist("gpu[3-1]").is_err());
        assert!(expand_hostlist("gpu[x]").is_err());
        assert_eq!(expand_counts("2(x3),1").unwrap(), [2, 2, 2, 1]);
    }

    #[test]
    fn a_slurm_step_of_several_tasks_is_a_world() {
        let v = env(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "3"),
            ("SLURM_NODEID", "0"),
            ("SLURM_STEP_TASKS_PER_NODE", "8(x2)"),
            ("SLURM_STEP_NODELIST", "gpu[007-008]"),
            ("SLURM_JOB_ID", "4242"),
            ("SLURM_STEP_ID", "0"),
        ]);
        let w = World::from_env(WorldChoice::Auto, &v).unwrap();
        assert_eq!((w.rank, w.size, w.local_rank, w.local_size), (3, 16, 3, 8));
        assert_eq!(w.launcher, Launcher::Slurm);
        let port = (SLURM_PORT_BASE + (4242 * 7) % SLURM_PORT_SPAN) as u16;
        assert_eq!(
            w.rendezvous,
            Some(Rendezvous::Tcp {
                host: "gpu007".into(),
                port
            })
        );
        assert_eq!(w.key, "slurm-4242.0");
        // 8 tasks on a node of 8 GPUs: one each; of 16 GPUs: two each.
        assert_eq!(w.local_devices(8).unwrap(), 3..4);
        assert_eq!(w.local_devices(16).unwrap(), 6..8);
        assert!(w.local_devices(4).is_err());
    }

    #[test]
    fn one_task_or_no_launcher_is_a_single_process() {
        let one = env(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")]);
        assert!(World::from_env(WorldChoice::Auto, &one)
            .unwrap()
            .is_single());
        let none = env(&[]);
        let w = World::from_env(WorldChoice::Auto, &none).unwrap();
        assert_eq!(w, World::single());
        assert_eq!(w.local_devices(4).unwrap(), 0..4);
        assert!(World::from_env(WorldChoice::Slurm, &none).is_err());
    }

    #[test]
    fn the_generic_world_reads_gpuvet_variables_and_indexed_jobs() {
        let v = env(&[
            ("JOB_COMPLETION_INDEX", "1"),
            ("GPUVET_WORLD_SIZE", "2"),
            ("GPUVET_RENDEZVOUS", "tcp://job-0.gpuvet:29400"),
        ]);
        let w = World::from_env(WorldChoice::Auto, &v).unwrap();
        assert_eq!((w.rank, w.size, w.launcher), (1, 2, Launcher::Env));
        assert_eq!(w.key, "gpuvet");
        let no_rdv = env(&[("GPUVET_RANK", "0"), ("GPUVET_WORLD_SIZE", "2")]);
        let e = World::from_env(WorldChoice::Auto, &no_rdv).unwrap_err();
        assert!(e.to_string().contains("GPUVET_RENDEZVOUS"), "{e}");
        let bad = env(&[
            ("GPUVET_RANK", "2"),
            ("GPUVET_WORLD_SIZE", "2"),
            ("GPUVET_RENDEZVOUS", "file:/tmp/x"),
        ]);
        assert!(World::from_env(WorldChoice::Env, &bad).is_err());
        // A bad size is named as the size, not as a missing rank; a size of 0 as what it is.
        let e =
            World::from_env(WorldChoice::Auto, &env(&[("GPUVET_WORLD_SIZE", "abc")])).unwrap_err();
        assert!(e.to_string().contains("GPUVET_WORLD_SIZE"), "{e}");
        let zero = env(&[
            ("GPUVET_RANK", "0"),
            ("GPUVET_WORLD_SIZE", "0"),
            ("GPUVET_RENDEZVOUS", "file:/tmp/x"),
        ]);
        let e = World::from_env(WorldChoice::Env, &zero).unwrap_err();
        assert!(e.to_string().contains("a world size of 0"), "{e}");
    }
}
