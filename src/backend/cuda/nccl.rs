//! Collectives through NCCL: one communicator per device, all created at once in one process
//! (`ncclCommInitAll`), or per process from the unique id rank 0 handed out
//! (`ncclCommInitRank`, grouped when a process drives several devices).
//!
//! NCCL is found and loaded like the other CUDA libraries (`libs::load_nccl`: gpuvet's folders,
//! the pip `nvidia-nccl-cu13` wheel, the loader's path) and only when a collective is planned.
//! The types are cudarc's NCCL bindings (`cudarc::nccl::sys`); the functions are read from the
//! library gpuvet loaded, by symbol, and their result codes as plain integers: cudarc's own
//! loader looks only for bare names that the wheel's `libnccl.so.2` does not answer to (and
//! panics when none loads), and a result code its enum lacks (a newer NCCL) would be undefined
//! behaviour. Nothing here panics when NCCL is absent: the collective is then not offered, with
//! the reason.

use super::device::{poisoned_round, DevBuf, Gpu};
use super::libs;
use super::run::{sync_on_drop, tensor_from_bytes};
use super::timing::Timer;
use crate::backend::{CachePolicy, Prepared};
use crate::dtype::ComputeType;
use crate::dtype::{DType, OutType};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::{CollectiveOp, CollectiveSpec};
use cudarc::nccl::sys::{ncclComm_t, ncclDataType_t, ncclRedOp_t, ncclUniqueId};
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, OnceLock};

/// `ncclResult_t`, read as the integer it is.
type Code = c_int;
/// `cudaStream_t` as NCCL takes it: the driver's `CUstream`.
type Stream = *mut c_void;

type GetVersion = unsafe extern "C" fn(*mut c_int) -> Code;
type GetUniqueId = unsafe extern "C" fn(*mut ncclUniqueId) -> Code;
type CommInitAll = unsafe extern "C" fn(*mut ncclComm_t, c_int, *const c_int) -> Code;
type CommInitRank = unsafe extern "C" fn(*mut ncclComm_t, c_int, ncclUniqueId, c_int) -> Code;
type CommDestroy = unsafe extern "C" fn(ncclComm_t) -> Code;
type ErrorString = unsafe extern "C" fn(Code) -> *const c_char;
type Group = unsafe extern "C" fn() -> Code;
/// `(send, recv, count, type, op, comm, stream)`: all-reduce, reduce-scatter.
type Reduce = unsafe extern "C" fn(
    *const c_void,
    *mut c_void,
    usize,
    ncclDataType_t,
    ncclRedOp_t,
    ncclComm_t,
    Stream,
) -> Code;
/// `(send, recv, count, type, comm, stream)`: all-gather.
type Gather = unsafe extern "C" fn(
    *const c_void,
    *mut c_void,
    usize,
    ncclDataType_t,
    ncclComm_t,
    Stream,
) -> Code;
/// `(send, recv, count, type, root, comm, stream)`: broadcast.
type Bcast = unsafe extern "C" fn(
    *const c_void,
    *mut c_void,
    usize,
    ncclDataType_t,
    c_int,
    ncclComm_t,
    Stream,
) -> Code;
type SendFn =
    unsafe extern "C" fn(*const c_void, usize, ncclDataType_t, c_int, ncclComm_t, Stream) -> Code;
type RecvFn =
    unsafe extern "C" fn(*mut c_void, usize, ncclDataType_t, c_int, ncclComm_t, Stream) -> Code;

/// The NCCL entry points gpuvet calls.
struct Api {
    get_version: GetVersion,
    get_unique_id: GetUniqueId,
    comm_init_all: CommInitAll,
    comm_init_rank: CommInitRank,
    comm_destroy: CommDestroy,
    get_error_string: ErrorString,
    group_start: Group,
    group_end: Group,
    all_reduce: Reduce,
    all_gather: Gather,
    reduce_scatter: Reduce,
    broadcast: Bcast,
    send: SendFn,
    recv: RecvFn,
}

/// NCCL, loaded.
pub struct Nccl {
    api: Api,
    pub path: std::path::PathBuf,
    /// `ncclGetVersion`: 23203 for 2.32.3.
    pub version: i32,
}

impl Nccl {
    /// `2.32.3`.
    pub fn version_string(&self) -> String {
        version_string(self.version)
    }

    /// Turns a result code into an error naming what was being done.
    fn check(&self, what: &str, code: Code) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: ncclGetErrorString returns a static NUL-terminated string for any code.
        let text = unsafe {
            let p = (self.api.get_error_string)(code);
            if p.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        Err(Error::backend(
            "nccl",
            format!("{what}: NCCL error {code} ({text}); NCCL_DEBUG=WARN says more"),
        ))
    }

    /// A new unique id (rank 0 of a world hands it to the others).
    pub fn unique_id(&self) -> Result<Vec<u8>> {
        let mut id = ncclUniqueId { internal: [0; 128] };
        // SAFETY: a valid out-pointer to a 128-byte id.
        self.check("ncclGetUniqueId", unsafe {
            (self.api.get_unique_id)(&mut id)
        })?;
        Ok(id.internal.iter().map(|&c| c as u8).collect())
    }
}

/// NCCL's version code as it prints it: 23203 → `2.32.3` (2.9 and later), 2708 → `2.7.8`.
pub fn version_string(v: i32) -> String {
    if v >= 10000 {
        format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100)
    }
}

/// Reads every entry point from `h`; the name of the first one missing otherwise.
fn api(h: &libs::Handle) -> std::result::Result<Api, String> {
    macro_rules! sym {
        ($name:literal, $t:ty) => {{
            let p = h
                .sym($name)
                .ok_or_else(|| format!("the NCCL found has no {} (too old?)", $name))?;
            // SAFETY: the symbol is NCCL's function of that name, whose C signature is `$t`
            // (nccl.h); integer results are read as c_int.
            unsafe { std::mem::transmute::<*mut c_void, $t>(p) }
        }};
    }
    Ok(Api {
        get_version: sym!("ncclGetVersion", GetVersion),
        get_unique_id: sym!("ncclGetUniqueId", GetUniqueId),
        comm_init_all: sym!("ncclCommInitAll", CommInitAll),
        comm_init_rank: sym!("ncclCommInitRank", CommInitRank),
        comm_destroy: sym!("ncclCommDestroy", CommDestroy),
        get_error_string: sym!("ncclGetErrorString", ErrorString),
        group_start: sym!("ncclGroupStart", Group),
        group_end: sym!("ncclGroupEnd", Group),
        all_reduce: sym!("ncclAllReduce", Reduce),
        all_gather: sym!("ncclAllGather", Gather),
        reduce_scatter: sym!("ncclReduceScatter", Reduce),
        broadcast: sym!("ncclBroadcast", Bcast),
        send: sym!("ncclSend", SendFn),
        recv: sym!("ncclRecv", RecvFn),
    })
}

/// Loads NCCL from `dirs` and reads its version. Never panics.
pub fn load(dirs: &[std::path::PathBuf]) -> std::result::Result<Nccl, String> {
    let (loaded, handle) = libs::load_nccl(dirs)?;
    let api = api(&handle)?;
    let mut version = 0;
    // SAFETY: ncclGetVersion(int*) needs no initialisation.
    let rc = unsafe { (api.get_version)(&mut version) };
    if rc != 0 {
        return Err(format!(
            "NCCL at {} did not report its version (error {rc})",
            loaded.path.display()
        ));
    }
    Ok(Nccl {
        api,
        path: loaded.path,
        version,
    })
}

static NCCL: OnceLock<std::result::Result<Nccl, String>> = OnceLock::new();

/// NCCL of this process, found and loaded on first use; the one-line reason when it cannot be.
pub fn nccl() -> std::result::Result<&'static Nccl, String> {
    NCCL.get_or_init(|| load(&libs::SearchEnv::from_process().dirs()))
        .as_ref()
        .map_err(|e| e.clone())
}

fn dtype(d: DType) -> Result<(ncclDataType_t, OutType)> {
    Ok(match d {
        DType::F32 => (ncclDataType_t::ncclFloat32, OutType::F32),
        DType::F16 => (ncclDataType_t::ncclFloat16, OutType::F16),
        DType::Bf16 => (ncclDataType_t::ncclBfloat16, OutType::Bf16),
        other => return Err(Error::unsupported(format!("NCCL collectives in {other}"))),
    })
}

/// One communicator per local device, destroyed with the value.
pub struct Comms {
    nccl: &'static Nccl,
    comms: Vec<ncclComm_t>,
    gpus: Vec<Arc<cudarc::driver::CudaContext>>,
    /// The global rank of the first local device; the world's rank count.
    pub first_rank: u32,
    pub ranks: u32,
}

// SAFETY: an NCCL communicator may be used from any thread as long as calls on it are not
// concurrent; gpuvet drives a group of them from one thread at a time (the scheduler lends a
// placement's backends to one job).
unsafe impl Send for Comms {}
// SAFETY: as above: shared references only ever enqueue from the thread holding the job.
unsafe impl Sync for Comms {}

impl Comms {
    /// Communicators for `gpus`: all ranks here (`id` = `None`, ncclCommInitAll), or ranks
    /// `first..first + gpus.len()` of `ranks` in a world with the unique id rank 0 handed out.
    pub fn new(gpus: &[&Gpu], id: Option<&[u8]>, first: u32, ranks: u32) -> Result<Comms> {
        let nccl = nccl().map_err(Error::unsupported)?;
        let mut comms: Vec<ncclComm_t> = vec![std::ptr::null_mut(); gpus.len()];
        match id {
            None => {
                let ordinals: Vec<c_int> = gpus.iter().map(|g| g.props.ordinal as c_int).collect();
                // SAFETY: one out-slot per device ordinal.
                let rc = unsafe {
                    (nccl.api.comm_init_all)(
                        comms.as_mut_ptr(),
                        gpus.len() as c_int,
                        ordinals.as_ptr(),
                    )
                };
                nccl.check("ncclCommInitAll", rc)?;
            }
            Some(bytes) => {
                let mut uid = ncclUniqueId { internal: [0; 128] };
                for (d, s) in uid.internal.iter_mut().zip(bytes) {
                    *d = *s as c_char;
                }
                // Bound once before the group opens (see `enqueue`: a bind that fails inside
                // the group returns without closing it, rather than start half a set-up).
                for g in gpus {
                    g.bind()?;
                }
                // SAFETY: NCCL's group calls take no arguments.
                nccl.check("ncclGroupStart", unsafe { (nccl.api.group_start)() })?;
                for (j, g) in gpus.iter().enumerate() {
                    g.bind()?;
                    let rank = (first as usize + j) as c_int;
                    // SAFETY: a valid out-slot; the id came from rank 0's ncclGetUniqueId.
                    let rc = unsafe {
                        (nccl.api.comm_init_rank)(&mut comms[j], ranks as c_int, uid, rank)
                    };
                    nccl.check(&format!("ncclCommInitRank (rank {rank} of {ranks})"), rc)?;
                }
                // SAFETY: closes the group opened above.
                nccl.check("ncclGroupEnd (communicator set-up)", unsafe {
                    (nccl.api.group_end)()
                })?;
            }
        }
        Ok(Comms {
            nccl,
            comms,
            gpus: gpus.iter().map(|g| g.ctx.clone()).collect(),
            first_rank: first,
            ranks,
        })
    }
}

impl Drop for Comms {
    fn drop(&mut self) {
        // A communicator whose work hung would wait in its destroy: leave it to the exit.
        if self.gpus.iter().any(|ctx| super::timing::is_hung(ctx)) {
            return;
        }
        for (c, ctx) in self.comms.iter().zip(&self.gpus) {
            if !c.is_null() {
                let _ = ctx.bind_to_thread();
                // SAFETY: a communicator created above, destroyed once.
                let _ = unsafe { (self.nccl.api.comm_destroy)(*c) };
            }
        }
    }
}

/// One rank's buffers.
struct Rank<'a> {
    gpu: &'a Gpu,
    send: DevBuf,
    recv: DevBuf,
    timer: Timer,
}

/// A prepared collective over the communicators of a group.
pub struct CollectiveRun<'a> {
    comms: Arc<Comms>,
    ranks: Vec<Rank<'a>>,
    spec: CollectiveSpec,
    dt: ncclDataType_t,
    out: OutType,
}

impl<'a> CollectiveRun<'a> {
    /// Buffers on each of `gpus` (local rank j holds `inputs[j]`), over `comms`.
    pub fn new(
        gpus: &[&'a Gpu],
        comms: Arc<Comms>,
        spec: &CollectiveSpec,
        inputs: &[Tensor],
    ) -> Result<Self> {
        let (dt, out) = dtype(spec.dtype)?;
        Error::expect_count(
            spec.name(),
            "inputs (one per device)",
            gpus.len(),
            inputs.len(),
        )?;
        let size = spec.dtype.size();
        let mut ranks = Vec::with_capacity(gpus.len());
        for (g, t) in gpus.iter().zip(inputs) {
            g.ensure_fits((spec.send_elements() + spec.recv_elements()) * size)?;
            let send = g.alloc((spec.send_elements() * size) as usize)?;
            send.upload(g, t.as_bytes())?;
            ranks.push(Rank {
                gpu: g,
                send,
                recv: g.alloc((spec.recv_elements() * size) as usize)?,
                timer: Timer::new(&g.ctx)?.patient(super::timing::GROUP_PATIENCE),
            });
        }
        Ok(CollectiveRun {
            comms,
            ranks,
            spec: spec.clone(),
            dt,
            out,
        })
    }

    /// One collective: every local rank's call inside one NCCL group.
    fn enqueue(&self) -> Result<()> {
        let n = &self.comms.nccl;
        // Every rank's context is bound once before the group opens, so that a context that
        // cannot be bound fails here. Inside the group a failed bind still returns at once,
        // leaving the group open: closing it would launch the other ranks' halves of a
        // collective that can never complete (they would wait on the GPU for ever), which is
        // worse than an open group in a process that reports the device lost. A failed NCCL
        // call, by contrast, is recorded by NCCL, whose ncclGroupEnd then launches nothing.
        for r in &self.ranks {
            r.gpu.bind()?;
        }
        // SAFETY: NCCL's group calls take no arguments.
        n.check("ncclGroupStart", unsafe { (n.api.group_start)() })?;
        let mut first_err = Ok(());
        for (r, comm) in self.ranks.iter().zip(&self.comms.comms) {
            r.gpu.bind()?;
            let res = self.call(r, *comm);
            if first_err.is_ok() {
                first_err = res;
            }
        }
        // SAFETY: closes the group opened above (also after an error, as NCCL requires).
        let end = n.check("ncclGroupEnd", unsafe { (n.api.group_end)() });
        first_err.and(end)
    }

    /// The collective call of one rank.
    fn call(&self, r: &Rank, comm: ncclComm_t) -> Result<()> {
        let (api, s) = (&self.comms.nccl.api, r.gpu.stream.cu_stream() as Stream);
        let (send, recv) = (r.send.ptr as *const c_void, r.recv.ptr as *mut c_void);
        let e = self.spec.elements() as usize;
        let nranks = self.spec.ranks.max(1) as usize;
        let (what, rc) = match self.spec.op {
            // SAFETY (every call): the buffers hold the counts NCCL reads and writes for this
            // op (send_elements / recv_elements of the spec) and live until the run
            // synchronises; `comm` is this rank's communicator and `s` its device's stream.
            CollectiveOp::AllReduce => ("ncclAllReduce", unsafe {
                (api.all_reduce)(send, recv, e, self.dt, ncclRedOp_t::ncclSum, comm, s)
            }),
            CollectiveOp::AllGather => ("ncclAllGather", unsafe {
                (api.all_gather)(send, recv, e / nranks, self.dt, comm, s)
            }),
            CollectiveOp::ReduceScatter => ("ncclReduceScatter", unsafe {
                (api.reduce_scatter)(
                    send,
                    recv,
                    e / nranks,
                    self.dt,
                    ncclRedOp_t::ncclSum,
                    comm,
                    s,
                )
            }),
            CollectiveOp::Broadcast => ("ncclBroadcast", unsafe {
                (api.broadcast)(send, recv, e, self.dt, 0, comm, s)
            }),
            CollectiveOp::AllToAll => return self.all_to_all(r, comm),
        };
        self.comms.nccl.check(what, rc)
    }

    /// All-to-all as NCCL spells it: a send and a receive of one chunk per peer (inside the
    /// caller's group).
    fn all_to_all(&self, r: &Rank, comm: ncclComm_t) -> Result<()> {
        let (api, s) = (&self.comms.nccl.api, r.gpu.stream.cu_stream() as Stream);
        let n = self.spec.ranks.max(1) as usize;
        let chunk = self.spec.elements() as usize / n;
        let step = (chunk as u64 * self.spec.dtype.size()) as usize;
        let nccl = &self.comms.nccl;
        for peer in 0..n {
            let at = |base: u64| (base as usize + peer * step) as *mut c_void;
            // SAFETY: chunk `peer` of each buffer holds `chunk` elements; the buffers live until
            // the run synchronises; the calls are inside the caller's group.
            let (sent, got) = unsafe {
                (
                    (api.send)(at(r.send.ptr), chunk, self.dt, peer as c_int, comm, s),
                    (api.recv)(at(r.recv.ptr), chunk, self.dt, peer as c_int, comm, s),
                )
            };
            nccl.check("ncclSend", sent)?;
            nccl.check("ncclRecv", got)?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let r = self.ranks.iter().try_for_each(|r| r.gpu.sync());
        super::timing::hung_together(r, self.ranks.iter().map(|r| &*r.gpu.ctx))
    }
}

sync_on_drop!(CollectiveRun);

impl Prepared for CollectiveRun<'_> {
    fn compute_dtype(&self) -> ComputeType {
        ComputeType::uniform(self.spec.dtype)
    }

    fn run_verify(&mut self) -> Result<Tensor> {
        let outs: Vec<_> = self.ranks.iter().map(|r| (&r.recv, r.gpu)).collect();
        let bytes = poisoned_round(&outs, || self.sync(), || self.enqueue())?;
        let n = bytes.len() / self.spec.dtype.size() as usize;
        Ok(tensor_from_bytes("recv", vec![n], self.out, &bytes))
    }

    /// Events on every device's stream around the whole batch; the slowest device's time.
    fn run(&mut self, iters: u64) -> Result<f64> {
        for r in &self.ranks {
            r.gpu.bind()?;
            r.timer.start(&r.gpu.stream)?;
        }
        for _ in 0..iters {
            self.enqueue()?;
        }
        for r in &self.ranks {
            r.gpu.bind()?;
            r.timer.stop(&r.gpu.stream)?;
        }
        let slowest = self.ranks.iter().try_fold(0f64, |slowest, r| {
            r.gpu.bind()?;
            Ok(slowest.max(r.timer.elapsed(iters)?))
        });
        super::timing::hung_together(slowest, self.ranks.iter().map(|r| &*r.gpu.ctx))
    }

    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Single
    }

    fn notes(&self) -> Vec<String> {
        let c = &self.comms;
        let mut v = vec![format!(
            "NCCL {}: ranks {}..{} of {} here; busbw = algbw × {:.4} (nccl-tests)",
            c.nccl.version_string(),
            c.first_rank,
            c.first_rank as usize + self.ranks.len(),
            c.ranks,
            self.spec.bus_factor()
        )];
        if c.ranks == 1 {
            v.push("one rank: nothing crosses a link (busbw 0)".into());
        }
        v
    }
}

/// The unique id rank 0 hands to the other processes of a world.
pub fn unique_id() -> Result<Vec<u8>> {
    nccl().map_err(Error::unsupported)?.unique_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_like_nccl_prints_them() {
        for (code, text) in [(23203, "2.32.3"), (21805, "2.18.5"), (2708, "2.7.8")] {
            assert_eq!(version_string(code), text);
        }
    }

    /// A stand-in `libnccl.so.2` exporting every entry point gpuvet reads (compiled with cc):
    /// the wheel's folder layout is found, every symbol resolved, the version read, an id made,
    /// an error code turned into NCCL's text. `None` (with a SKIP line) without a C compiler.
    fn fake_nccl(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        let lib = dir.join("nvidia/nccl/lib");
        std::fs::create_dir_all(&lib).ok()?;
        let src = dir.join("fake_nccl.c");
        let mut c = String::from(
            "int ncclGetVersion(int* v) { *v = 23203; return 0; }\n\
             int ncclGetUniqueId(char* id) { for (int i = 0; i < 128; i++) id[i] = (char)i; return 0; }\n\
             const char* ncclGetErrorString(int c) { return c == 5 ? \"invalid usage\" : \"other\"; }\n",
        );
        for f in [
            "ncclCommInitAll",
            "ncclCommInitRank",
            "ncclCommDestroy",
            "ncclGroupStart",
            "ncclGroupEnd",
            "ncclAllReduce",
            "ncclAllGather",
            "ncclReduceScatter",
            "ncclBroadcast",
            "ncclSend",
            "ncclRecv",
        ] {
            c.push_str(&format!("int {f}() {{ return 5; }}\n"));
        }
        std::fs::write(&src, c).ok()?;
        let out = lib.join("libnccl.so.2");
        libs::tests::compile_stub(&src, &out, "fake_nccl").then_some(lib)
    }

    #[test]
    fn a_wheel_layout_nccl_is_found_loaded_and_read() {
        let t = tempfile::tempdir().unwrap();
        let Some(lib) = fake_nccl(t.path()) else {
            return;
        };
        let env = libs::SearchEnv::default().with(libs::Var::LibDir, lib);
        let n = load(&env.dirs()).unwrap();
        assert_eq!(n.version_string(), "2.32.3");
        assert!(
            n.path.ends_with("nvidia/nccl/lib/libnccl.so.2"),
            "{}",
            n.path.display()
        );
        let id = n.unique_id().unwrap();
        assert_eq!((id.len(), id[5]), (128, 5));
        let e = n.check("ncclAllReduce", 5).unwrap_err().to_string();
        assert!(e.contains("NCCL error 5 (invalid usage)"), "{e}");
    }

    #[test]
    fn nccl_missing_or_present_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(&[dir.path().to_path_buf()]);
        // Without NCCL anywhere the reason is one line; with a real one, its version.
        match e {
            Err(why) => assert!(!why.contains('\n'), "{why}"),
            Ok(n) => assert!(n.version >= 20700, "{}", n.version),
        }
    }
}
