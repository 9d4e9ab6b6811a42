//! Handing the communicator id from rank 0 to every other process, out of band: over a small
//! TCP exchange with rank 0 (`tcp://HOST:PORT`) or through a file on a filesystem every node
//! sees (`file:PATH`). This is the only thing gpuvet sends between processes: the id is what
//! `ncclCommInitRank` needs, and NCCL does all the communication after it.
//!
//! TCP: rank 0 listens; every other rank connects (retrying until rank 0 is up), says who it
//! is (job key, rank, world size, host) and waits; once all have joined, rank 0 answers each
//! with the id and the host of every rank, so the exchange is also a barrier. A process of
//! another job (another key), a duplicate rank or a different world size is refused with a
//! reason, and a rank that never comes is named when the time runs out.
//!
//! File: the same barrier through one file and an acknowledgement per rank, each run told from
//! earlier ones by a fresh nonce (see [`Published`]).

use super::{Rendezvous, World};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a rendezvous waits for every rank by default (`GPUVET_RENDEZVOUS_TIMEOUT`
/// seconds overrides it): long enough for a slow node to start its process.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// The timeout from `GPUVET_RENDEZVOUS_TIMEOUT`, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Result<Duration> {
    crate::env::seconds_var("GPUVET_RENDEZVOUS_TIMEOUT", DEFAULT_TIMEOUT, 86_400.0)
}

/// Joins `world`: rank 0 makes the id (`make_id`, called on rank 0 only) and hands it out;
/// every rank returns the world with `id` and `hosts` filled in. A single process returns at
/// once with its own id.
pub fn join(
    world: &World,
    make_id: impl FnOnce() -> Result<Vec<u8>>,
    timeout: Duration,
) -> Result<World> {
    let me = hostname();
    if world.is_single() {
        return Ok(World {
            id: Some(make_id()?),
            hosts: vec![me],
            ..world.clone()
        });
    }
    let Some(rdv) = &world.rendezvous else {
        return Err(Error::invalid(
            "a world of several processes needs a rendezvous",
        ));
    };
    let deadline = Instant::now() + timeout;
    let (id, hosts) = match (rdv, world.rank) {
        (Rendezvous::Tcp { host, port }, 0) => {
            tcp_serve(world, host, *port, make_id()?, &me, deadline)?
        }
        (Rendezvous::Tcp { host, port }, _) => tcp_join(world, host, *port, &me, deadline)?,
        (Rendezvous::File(p), 0) => file_publish(world, p, make_id()?, &me, deadline)?,
        (Rendezvous::File(p), _) => file_read(world, p, &me, deadline)?,
    };
    Ok(World {
        id: Some(id),
        hosts,
        ..world.clone()
    })
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

const MAGIC: &str = "gpuvet-rendezvous";
const VERSION: u32 = 1;
/// Largest message either side accepts.
const MAX_FRAME: u32 = 1 << 20;

/// What a joining rank says.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    magic: String,
    version: u32,
    key: String,
    rank: u32,
    size: u32,
    host: String,
}

/// Rank 0's answer: the id and every rank's host, or why the rank was refused.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    error: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    hosts: Vec<String>,
}

fn send(s: &mut TcpStream, v: &impl Serialize) -> std::io::Result<()> {
    let body = serde_json::to_vec(v)?;
    s.write_all(&(body.len() as u32).to_be_bytes())?;
    s.write_all(&body)?;
    s.flush()
}

fn receive<T: for<'de> Deserialize<'de>>(s: &mut TcpStream) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("a {len}-byte message")));
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

fn io(what: String) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::backend("rendezvous", format!("{what}: {e}"))
}

/// Why rank 0 refuses `h`, or `None` when it belongs to this world.
fn refusal(world: &World, h: &Hello, joined: &[Option<String>]) -> Option<String> {
    if h.magic != MAGIC || h.version != VERSION {
        return Some("not a gpuvet rendezvous of this version".into());
    }
    if h.key != world.key {
        return Some(format!(
            "job key `{}` is not this world's `{}` (another job on the same port?)",
            h.key, world.key
        ));
    }
    if h.size != world.size {
        return Some(format!(
            "world size {} differs from rank 0's {}",
            h.size, world.size
        ));
    }
    if h.rank == 0 || h.rank >= world.size {
        return Some(format!(
            "rank {} is not a joining rank of {}",
            h.rank, world.size
        ));
    }
    if joined[h.rank as usize].is_some() {
        return Some(format!("rank {} has joined already", h.rank));
    }
    None
}

/// Rank 0: accepts every other rank, then answers all of them.
/// Whether the ranks reach rank 0 at `host` over IPv6 only (`[::1]`, a name with no IPv4
/// address): rank 0 then listens on IPv6, else on IPv4 (IPv6's any-address does not take IPv4
/// where the system sets it v6-only).
fn ipv6_only(host: &str, port: u16) -> bool {
    let addrs: Vec<std::net::SocketAddr> = (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default();
    !addrs.is_empty() && addrs.iter().all(|a| a.is_ipv6())
}

/// Drops the ranks whose connection closed after they joined (a process killed while it
/// waited), so that they count as missing, and names them in `left`: the answer to a closed
/// connection failed with "Broken pipe", naming no rank.
fn drop_departed(
    streams: &mut Vec<(u32, TcpStream)>,
    hosts: &mut [Option<String>],
    left: &mut Vec<u32>,
) {
    streams.retain(|(rank, s)| {
        let mut byte = [0u8; 1];
        let gone = s.set_nonblocking(true).is_ok() && matches!(s.peek(&mut byte), Ok(0));
        let _ = s.set_nonblocking(false);
        if gone {
            hosts[*rank as usize] = None;
            if !left.contains(rank) {
                left.push(*rank);
            }
        }
        !gone
    });
}

fn tcp_serve(
    world: &World,
    host: &str,
    port: u16,
    id: Vec<u8>,
    me: &str,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<String>)> {
    let any = if ipv6_only(host, port) {
        "::"
    } else {
        "0.0.0.0"
    };
    let listener = TcpListener::bind((any, port)).map_err(|e| {
        Error::backend(
            "rendezvous",
            format!(
                "rank 0 cannot listen on port {port}: {e} (another job on this host? set \
                 GPUVET_RENDEZVOUS=tcp://HOST:PORT with a free port)"
            ),
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(io("rendezvous listener".into()))?;
    let mut hosts: Vec<Option<String>> = vec![None; world.size as usize];
    hosts[0] = Some(me.to_string());
    let mut streams: Vec<(u32, TcpStream)> = Vec::new();
    let mut left: Vec<u32> = Vec::new();
    loop {
        drop_departed(&mut streams, &mut hosts, &mut left);
        if hosts.iter().all(Option::is_some) {
            break;
        }
        if Instant::now() >= deadline {
            let missing: Vec<String> = (0..world.size)
                .filter(|&r| hosts[r as usize].is_none())
                .map(|r| match left.contains(&r) {
                    true => format!("{r} (joined, then its connection closed)"),
                    false => r.to_string(),
                })
                .collect();
            let why = format!(
                "rank(s) {} of {} never joined the rendezvous on port {port}",
                missing.join(", "),
                world.size
            );
            for (_, mut s) in streams {
                let _ = send(&mut s, &refused(&why));
            }
            return Err(Error::backend("rendezvous", why));
        }
        match listener.accept() {
            Ok((mut s, _)) => {
                if let Some(rank) = admit(world, &mut s, &hosts) {
                    hosts[rank.0 as usize] = Some(rank.1);
                    streams.push((rank.0, s));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(io("accepting a rank".into())(e)),
        }
    }
    let hosts: Vec<String> = hosts.into_iter().flatten().collect();
    let reply = Reply {
        ok: true,
        error: String::new(),
        id: hex(&id),
        hosts: hosts.clone(),
    };
    // Once an answer fails (a rank that died as the answers went out), the ranks not yet
    // answered are refused with its name rather than told to go on without it.
    let mut failed: Option<Error> = None;
    for (rank, mut s) in streams {
        match &failed {
            Some(e) => {
                let _ = send(&mut s, &refused(&e.to_string()));
            }
            None => {
                if let Err(e) = send(&mut s, &reply) {
                    failed = Some(io(format!("rank {rank} left as rank 0 answered"))(e));
                }
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok((id, hosts)),
    }
}

fn refused(why: &str) -> Reply {
    Reply {
        ok: false,
        error: why.to_string(),
        id: String::new(),
        hosts: Vec::new(),
    }
}

/// Reads one hello; returns (rank, host) of a rank that belongs, refuses anything else.
fn admit(world: &World, s: &mut TcpStream, joined: &[Option<String>]) -> Option<(u32, String)> {
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let h: Hello = receive(s).ok()?;
    match refusal(world, &h, joined) {
        Some(why) => {
            let _ = send(s, &refused(&why));
            None
        }
        None => Some((h.rank, h.host)),
    }
}

/// Any other rank: connects to rank 0 (retrying until it is up) and waits for the answer.
fn tcp_join(
    world: &World,
    host: &str,
    port: u16,
    me: &str,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<String>)> {
    let hello = Hello {
        magic: MAGIC.into(),
        version: VERSION,
        key: world.key.clone(),
        rank: world.rank,
        size: world.size,
        host: me.to_string(),
    };
    let mut s = loop {
        // Every address of the host in turn (IPv6 and IPv4 alike), not only the first.
        let addrs: Vec<std::net::SocketAddr> = (host, port)
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        let connected = addrs
            .iter()
            .find_map(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).ok());
        if let Some(s) = connected {
            break s;
        }
        if Instant::now() >= deadline {
            return Err(Error::backend(
                "rendezvous",
                format!(
                    "rank {} could not reach rank 0 at {host}:{port} in time",
                    world.rank
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let what = format!("rank {} talking to rank 0 at {host}:{port}", world.rank);
    send(&mut s, &hello).map_err(io(what.clone()))?;
    let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
    s.set_read_timeout(Some(left)).map_err(io(what.clone()))?;
    let reply: Reply = receive(&mut s).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
                "no answer from rank 0 within this rank's timeout (rank 0 was still waiting \
                 for other ranks; give every rank the same GPUVET_RENDEZVOUS_TIMEOUT, long \
                 enough for the slowest to start): {e}"
            ),
            std::io::ErrorKind::UnexpectedEof => {
                "rank 0 closed the connection without an answer (it stopped: its own \
                 message says why)"
                    .to_string()
            }
            _ => e.to_string(),
        };
        Error::backend("rendezvous", format!("{what}: {why}"))
    })?;
    if !reply.ok {
        return Err(Error::backend(
            "rendezvous",
            format!("rank 0 refused rank {}: {}", world.rank, reply.error),
        ));
    }
    Ok((unhex(&reply.id)?, reply.hosts))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::backend("rendezvous", "the id is not hex");
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

/// What rank 0 writes to a file rendezvous: first open (`closed` false) for the ranks to
/// acknowledge, then, once every rank has, closed with the hosts and the process each rank's
/// acknowledgement came from. `nonce` is new each run: an acknowledgement or a closed file of
/// another run (a file left on the shared filesystem, a rank that read it before this run's
/// rank 0 replaced it) never counts for this one. The fields after `host` are absent in files of
/// earlier versions, which still parse (and are replaced).
#[derive(Debug, Serialize, Deserialize)]
struct Published {
    key: String,
    size: u32,
    id: String,
    host: String,
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    closed: bool,
    /// Every rank's host, by rank (closed files only).
    #[serde(default)]
    hosts: Vec<String>,
    /// The token of the process whose acknowledgement rank 0 took, by rank (closed files only):
    /// a second process that acknowledged as the same rank finds another token and stops.
    #[serde(default)]
    tokens: Vec<String>,
}

/// What a rank other than 0 writes to `PATH.<rank>`: the nonce of the run it acknowledges, a
/// token of its own process, and, once it has read rank 0's closed file, `closed`.
#[derive(Debug, Serialize, Deserialize)]
struct Ack {
    key: String,
    nonce: String,
    token: String,
    host: String,
    #[serde(default)]
    closed: bool,
}

/// A value no other run or process draws: 128 random bits, as hex.
fn fresh_token() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// Reads the file at `path` as `T`, `None` while it is absent, partial or something else.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = crate::files::read_bounded(path, 1 << 20).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_json<T: Serialize>(path: &Path, value: &T, what: &str) -> Result<()> {
    let text =
        serde_json::to_vec(value).map_err(|e| Error::backend("rendezvous", e.to_string()))?;
    crate::output::write_atomic(path, &text).map_err(io(format!("{what} {}", path.display())))
}

/// How long past its own deadline a rank that has acknowledged still waits for rank 0 to
/// close (rank 0 may have started later, with the same timeout), as a TCP joiner waits for
/// its answer.
const GRACE: Duration = Duration::from_secs(5);

/// Rank 0: drops earlier runs' acknowledgements, writes the id (atomically) with a new nonce,
/// waits for every rank's acknowledgement of that nonce (`PATH.<rank>`), then closes the file
/// with every rank's host and waits for every rank to confirm it read the close. So the
/// exchange is a barrier, as over TCP: a rank that gave up (and took its acknowledgement back)
/// is missing, and a second process started as rank 0, whose close the others never confirm,
/// does not pass. Every missing rank is named at once.
fn file_publish(
    world: &World,
    path: &Path,
    id: Vec<u8>,
    me: &str,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<String>)> {
    // An earlier run's rendezvous file is replaced; any other file (a report, a baseline named
    // by mistake) is someone's data. An empty file (`mktemp`, `touch`) is a place made for it.
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
        && read_json::<Published>(path).is_none()
    {
        return Err(Error::invalid(format!(
            "GPUVET_RENDEZVOUS=file:{}: that file exists and is no rendezvous file; name \
             a path of its own (rank 0 replaces it)",
            path.display()
        )));
    }
    for rank in 1..world.size {
        // Absent is the usual case; any other failure shows when the rank's own write fails.
        let _ = std::fs::remove_file(ack_path(path, rank));
    }
    let mut p = Published {
        key: world.key.clone(),
        size: world.size,
        id: hex(&id),
        host: me.to_string(),
        nonce: fresh_token(),
        closed: false,
        hosts: Vec::new(),
        tokens: Vec::new(),
    };
    write_json(path, &p, "writing")?;
    let acks = wait_for_acks(world, path, &p.nonce, false, deadline)?;
    p.hosts = std::iter::once(me.to_string())
        .chain(acks.iter().map(|a| a.host.clone()))
        .collect();
    p.tokens = std::iter::once(String::new())
        .chain(acks.iter().map(|a| a.token.clone()))
        .collect();
    p.closed = true;
    write_json(path, &p, "closing")?;
    wait_for_acks(world, path, &p.nonce, true, deadline + GRACE)?;
    for rank in 1..world.size {
        let _ = std::fs::remove_file(ack_path(path, rank));
    }
    Ok((id, p.hosts))
}

/// Rank 0 waits until every other rank's acknowledgement of run `nonce` is in place (with
/// `closed`: its confirmation of the close), read afresh each pass (one taken back is missing
/// again), or `deadline` passes: then every rank still missing is named. Returns ranks 1.. in
/// order.
fn wait_for_acks(
    world: &World,
    path: &Path,
    nonce: &str,
    closed: bool,
    deadline: Instant,
) -> Result<Vec<Ack>> {
    loop {
        let acks: Vec<Option<Ack>> = (1..world.size)
            .map(|rank| {
                read_json::<Ack>(&ack_path(path, rank))
                    .filter(|a| a.key == world.key && a.nonce == nonce && a.closed == closed)
            })
            .collect();
        let gone: Vec<String> = (1..world.size)
            .zip(&acks)
            .filter(|(_, a)| a.is_none())
            .map(|(r, _)| r.to_string())
            .collect();
        if gone.is_empty() {
            return Ok(acks.into_iter().flatten().collect());
        }
        if Instant::now() >= deadline {
            let file = path.display();
            let why = if closed {
                format!(
                    "never confirmed the close of {file} (gave up, or another process of rank 0 \
                     replaced it)"
                )
            } else {
                format!(
                    "never acknowledged {file} (not started, another world size or job key, \
                     gave up, or not seeing the same file)"
                )
            };
            let (gone, size) = (gone.join(", "), world.size);
            return Err(Error::backend(
                "rendezvous",
                format!("rank(s) {gone} of {size} {why}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ack_path(path: &Path, rank: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{rank}"));
    PathBuf::from(s)
}

/// Any other rank: acknowledges each open file of this job (again when rank 0 of a new run
/// replaces it); once rank 0 has closed the file it acknowledged, taking its own
/// acknowledgement, it confirms and returns. A closed file of another run (left from an earlier
/// run) is passed over. A rank that gives up takes its acknowledgement back.
fn file_read(
    world: &World,
    path: &Path,
    me: &str,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<String>)> {
    let token = fresh_token();
    let ack_file = ack_path(path, world.rank);
    let ack = |nonce: &str, closed: bool| Ack {
        key: world.key.clone(),
        nonce: nonce.to_string(),
        token: token.clone(),
        host: me.to_string(),
        closed,
    };
    let mut acked: Option<String> = None;
    let mut other_size: Option<u32> = None;
    loop {
        match read_json::<Published>(path).filter(|p| p.key == world.key) {
            Some(p) if p.size != world.size => other_size = Some(p.size),
            Some(p) if !p.closed && !p.nonce.is_empty() && acked.as_ref() != Some(&p.nonce) => {
                other_size = None;
                write_json(&ack_file, &ack(&p.nonce, false), "acknowledging")?;
                acked = Some(p.nonce);
            }
            Some(p) if p.closed && acked.as_ref() == Some(&p.nonce) => {
                if p.tokens.get(world.rank as usize) != Some(&token) {
                    return Err(Error::invalid(format!(
                        "rank {}: another process acknowledged {} as rank {} too; give every \
                         process its own GPUVET_RANK",
                        world.rank,
                        path.display(),
                        world.rank
                    )));
                }
                write_json(&ack_file, &ack(&p.nonce, true), "confirming")?;
                return Ok((unhex(&p.id)?, p.hosts));
            }
            Some(_) => other_size = None,
            None => {}
        }
        let give_up = match acked {
            Some(_) => deadline + GRACE,
            None => deadline,
        };
        if Instant::now() >= give_up {
            if acked.is_some() {
                // Taken back, so that rank 0 does not close for a world this rank has left.
                let _ = std::fs::remove_file(&ack_file);
            }
            let why = match other_size {
                Some(size) => format!(
                    "rank 0 of this job published a world of {size} processes, this one has {}",
                    world.size
                ),
                None if acked.is_some() => {
                    "rank 0 never closed it (another rank never acknowledged)".to_string()
                }
                None => "no id from rank 0 in time".to_string(),
            };
            return Err(Error::backend(
                "rendezvous",
                format!("rank {}: {}: {why}", world.rank, path.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(rank: u32, size: u32, rdv: Rendezvous, key: &str) -> World {
        World {
            rank,
            size,
            rendezvous: Some(rdv),
            key: key.into(),
            launcher: super::super::Launcher::Env,
            ..World::single()
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Runs `size` ranks on threads; returns each one's result.
    fn run_world(size: u32, rdv: Rendezvous, key_of: impl Fn(u32) -> String) -> Vec<Result<World>> {
        let id = vec![7u8; 128];
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..size)
                .map(|r| {
                    let w = world(r, size, rdv.clone(), &key_of(r));
                    let id = id.clone();
                    s.spawn(move || join(&w, || Ok(id), Duration::from_secs(10)))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "tcp://gpu001:29400".parse::<Rendezvous>(),
            Ok(Rendezvous::Tcp {
                host: "gpu001".into(),
                port: 29400
            })
        );
        assert_eq!(
            "[::1]:80".parse::<Rendezvous>().unwrap().to_string(),
            "tcp://::1:80"
        );
        assert_eq!(
            "file:/shared/x.json".parse::<Rendezvous>(),
            Ok(Rendezvous::File("/shared/x.json".into()))
        );
        for bad in ["gpu001", "tcp://:1", "h:0", "h:99999", "file:"] {
            assert!(bad.parse::<Rendezvous>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_rank_gets_rank_zeros_id_over_tcp() {
        let rdv = Rendezvous::Tcp {
            host: "127.0.0.1".into(),
            port: free_port(),
        };
        let got = run_world(4, rdv, |_| "job-1".into());
        for w in got {
            let w = w.unwrap();
            assert_eq!(w.id.as_deref(), Some(&[7u8; 128][..]));
            assert_eq!(w.hosts.len(), 4);
        }
    }

    #[test]
    fn a_rank_of_another_job_is_refused_and_rank_zero_names_who_is_missing() {
        let rdv = Rendezvous::Tcp {
            host: "127.0.0.1".into(),
            port: free_port(),
        };
        let id = vec![1u8; 128];
        let (zero, stray) = std::thread::scope(|s| {
            let z = s.spawn(|| {
                join(
                    &world(0, 2, rdv.clone(), "a"),
                    || Ok(id),
                    Duration::from_secs(3),
                )
            });
            let x = s.spawn(|| {
                join(
                    &world(1, 2, rdv.clone(), "b"),
                    || unreachable!(),
                    Duration::from_secs(3),
                )
            });
            (z.join().unwrap(), x.join().unwrap())
        });
        let e = stray.unwrap_err().to_string();
        assert!(e.contains("job key `b`"), "{e}");
        let e = zero.unwrap_err().to_string();
        assert!(e.contains("rank(s) 1 of 2 never joined"), "{e}");
    }

    /// A rank that joins and then dies (killed while it waited) is named as such when the
    /// time runs out: rank 0 once answered it with "Broken pipe" and no rank.
    #[test]
    fn a_rank_that_joins_and_leaves_is_named() {
        let port = free_port();
        let rdv = Rendezvous::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let zero = std::thread::scope(|s| {
            let z = s.spawn(|| {
                join(
                    &world(0, 3, rdv.clone(), "k"),
                    || Ok(vec![1u8; 128]),
                    Duration::from_secs(3),
                )
            });
            // Rank 1 says hello, then its process is gone.
            let mut c = loop {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(c) => break c,
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            let hello = Hello {
                magic: MAGIC.into(),
                version: VERSION,
                key: "k".into(),
                rank: 1,
                size: 3,
                host: "h1".into(),
            };
            send(&mut c, &hello).unwrap();
            std::thread::sleep(Duration::from_millis(500));
            drop(c);
            z.join().unwrap()
        });
        let e = zero.unwrap_err().to_string();
        assert!(
            e.contains("rank(s) 1 (joined, then its connection closed), 2 of 3 never joined"),
            "{e}"
        );
    }

    /// Ranks meet over IPv6 too (`tcp://[::1]:PORT`): rank 0 listened on IPv4 alone.
    #[test]
    fn ranks_meet_over_ipv6() {
        let Ok(probe) = TcpListener::bind("[::1]:0") else {
            crate::output::say_skip("ranks_meet_over_ipv6", "no IPv6 loopback here");
            return;
        };
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let rdv = Rendezvous::Tcp {
            host: "::1".into(),
            port,
        };
        for w in run_world(2, rdv, |_| "job-6".into()) {
            assert_eq!(w.unwrap().id.unwrap(), vec![7u8; 128]);
        }
    }

    #[test]
    fn a_file_on_a_shared_filesystem_works_too() {
        let dir = tempfile::tempdir().unwrap();
        let rdv = Rendezvous::File(dir.path().join("rdv.json"));
        let got = run_world(3, rdv, |_| "job-2".into());
        for w in got {
            let w = w.unwrap();
            assert_eq!(w.id.unwrap(), vec![7u8; 128]);
            assert_eq!(w.hosts.len(), 3, "every rank learns every rank's host");
        }
        assert_eq!(unhex("00ff10").unwrap(), vec![0, 255, 16]);
        assert!(unhex("0").is_err());
    }

    /// `join` of one rank on a thread of its own, with its own id and timeout.
    fn one_rank<'s>(
        s: &'s std::thread::Scope<'s, '_>,
        rank: u32,
        size: u32,
        rdv: &Rendezvous,
        id: u8,
        secs: f64,
    ) -> std::thread::ScopedJoinHandle<'s, Result<World>> {
        let w = world(rank, size, rdv.clone(), "job-9");
        s.spawn(move || join(&w, || Ok(vec![id; 128]), Duration::from_secs_f64(secs)))
    }

    /// What an earlier run leaves (the closed file, acknowledgements) never stands in for this
    /// run's ranks: rank 0 alone does not pass, and a rank that starts before rank 0 takes the
    /// new run's id, not the old one.
    #[test]
    fn an_earlier_runs_file_never_counts_for_this_run() {
        let dir = tempfile::tempdir().unwrap();
        let rdv = Rendezvous::File(dir.path().join("rdv.json"));
        for w in run_world(2, rdv.clone(), |_| "job-9".into()) {
            w.unwrap();
        }
        // Acknowledgements as an earlier version left them, and the closed file.
        std::fs::write(
            ack_path(&dir.path().join("rdv.json"), 1),
            "job-9\nold-host\n",
        )
        .unwrap();
        let alone = std::thread::scope(|s| one_rank(s, 0, 2, &rdv, 1, 0.5).join().unwrap());
        let e = alone.unwrap_err().to_string();
        assert!(e.contains("rank(s) 1 of 2 never acknowledged"), "{e}");
        // Rank 1 first (it finds rank 0's file of the run that just failed), rank 0 later.
        let (zero, one) = std::thread::scope(|s| {
            let one = one_rank(s, 1, 2, &rdv, 0, 10.0);
            std::thread::sleep(Duration::from_millis(300));
            let zero = one_rank(s, 0, 2, &rdv, 2, 10.0);
            (zero.join().unwrap(), one.join().unwrap())
        });
        assert_eq!(zero.unwrap().id.unwrap(), vec![2u8; 128]);
        assert_eq!(one.unwrap().id.unwrap(), vec![2u8; 128]);
    }

    /// Rank 0 and one other rank (`rank`, `size`) meeting at `rdv`, a second each at most.
    fn zero_and(rank: u32, sizes: (u32, u32), rdv: &Rendezvous) -> (Result<World>, Result<World>) {
        std::thread::scope(|s| {
            let zero = one_rank(s, 0, sizes.0, rdv, 1, 1.0);
            let other = one_rank(s, rank, sizes.1, rdv, 0, 1.0);
            (zero.join().unwrap(), other.join().unwrap())
        })
    }

    /// The file exchange is a barrier: no rank passes while another is missing; two processes
    /// given the same rank never both pass; another world size is named as such.
    #[test]
    fn a_file_world_passes_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let rdv = Rendezvous::File(dir.path().join("rdv.json"));
        let (zero, one) = zero_and(1, (3, 3), &rdv);
        let e = zero.unwrap_err().to_string();
        assert!(e.contains("rank(s) 2 of 3 never acknowledged"), "{e}");
        let e = one.unwrap_err().to_string();
        assert!(e.contains("never closed"), "{e}");

        let rdv = Rendezvous::File(dir.path().join("twice.json"));
        let got = std::thread::scope(|s| {
            let hs: Vec<_> = [0, 1, 1]
                .iter()
                .map(|&r| one_rank(s, r, 2, &rdv, 3, 2.0))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert!(got[0].is_ok());
        let passed = got[1..].iter().filter(|r| r.is_ok()).count();
        assert_eq!(passed, 1, "{got:?}");

        let rdv = Rendezvous::File(dir.path().join("sizes.json"));
        let (_, other) = zero_and(1, (2, 3), &rdv);
        let e = other.unwrap_err().to_string();
        assert!(e.contains("a world of 2 processes, this one has 3"), "{e}");
    }

    /// A rank that gave up takes its acknowledgement back: rank 0 once counted it, closed,
    /// and the ranks left went on as a world of three with one of them gone.
    #[test]
    fn a_rank_that_gave_up_is_missing_for_rank_zero() {
        let dir = tempfile::tempdir().unwrap();
        let rdv = Rendezvous::File(dir.path().join("rdv.json"));
        let (zero, one, two) = std::thread::scope(|s| {
            let zero = one_rank(s, 0, 3, &rdv, 1, 8.0);
            std::thread::sleep(Duration::from_millis(100));
            let one = one_rank(s, 1, 3, &rdv, 0, 0.3);
            std::thread::sleep(GRACE + Duration::from_millis(700));
            let two = one_rank(s, 2, 3, &rdv, 0, 1.0);
            (
                zero.join().unwrap(),
                one.join().unwrap(),
                two.join().unwrap(),
            )
        });
        assert!(one.is_err());
        let e = zero.unwrap_err().to_string();
        assert!(e.contains("rank(s) 1 of 3 never acknowledged"), "{e}");
        assert!(two.is_err(), "rank 2 passed without rank 1");
    }

    /// A rerun replaces the last run's rendezvous file; a file that is none (a report named by
    /// mistake) is refused and kept.
    #[test]
    fn rank_zero_replaces_only_a_rendezvous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rdv.json");
        for _ in 0..2 {
            for w in run_world(2, Rendezvous::File(path.clone()), |_| "job-3".into()) {
                w.unwrap();
            }
        }
        let empty = dir.path().join("made-by-mktemp");
        std::fs::write(&empty, "").unwrap();
        for w in run_world(2, Rendezvous::File(empty), |_| "job-5".into()) {
            w.unwrap();
        }
        let report = dir.path().join("r.json");
        std::fs::write(&report, "{\"schema_version\": 1}").unwrap();
        let e = join(
            &world(0, 2, Rendezvous::File(report.clone()), "job-4"),
            || Ok(vec![1u8; 128]),
            Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("that file exists and is no rendezvous file"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&report).unwrap(),
            "{\"schema_version\": 1}"
        );
    }
}
