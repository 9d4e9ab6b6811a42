//! A user's own CUDA kernel on the GPU: compiled by NVRTC with the user's options through the
//! same disk cache as gpuvet's kernels, checked before anything is allocated (the entry exists,
//! the arguments match the `.param` list of its PTX, the launch fits the device), then run by
//! the one prepared run ([`CudaRun`]) like every built-in implementation.
//!
//! The pieces that need no GPU (finding the headers a source includes, building a kernel and
//! reading its PTX, which buffers a workload hands a kernel) are public so that the mock
//! backend and the tests use the very same code.

use super::device::{DevBuf, Gpu};
use super::error::cu;
use super::kernels::{Source, UserSource};
use super::launch::{launch_function, Args};
use super::nvrtc::{self, KernelResources, UserCompiled};
use super::run::{upload, CudaRun, Exec, Output, Readback};
use crate::backend::Prepared;
use crate::dtype::OutType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::workload::kernel::conventions::{self, WorkloadNames};
use crate::workload::kernel::expr::Names;
use crate::workload::kernel::launch::{
    check_args, check_limits, find_entry, ptx_params, Arg, ArgNames, Limits, Num, PtxParam,
    Resolved, ScalarType,
};
use crate::workload::kernel::{interned, KernelRecord, KernelSpec, UserKernel};
use crate::workload::{MemOp, Workload};
use cudarc::driver::CudaFunction;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Most header files followed from one source, and their total size: past these the source is
/// compiled without the cache rather than hashed for ever.
const MAX_HEADERS: usize = 512;
const MAX_HEADER_BYTES: u64 = 64 << 20;

/// The headers a source pulls in from disk, found the way NVRTC finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderScan {
    /// A hash of every header found (path and contents) and of the names not found; `None`
    /// when an include cannot be followed statically (`#include MACRO`) or there are too
    /// many: such a source is compiled afresh every time.
    pub hash: Option<String>,
    pub files: Vec<PathBuf>,
    /// Names found nowhere (NVRTC's built-in headers, or a compile error to come).
    pub unresolved: Vec<String>,
}

/// Follows the `#include`s of `text` (quoted: the including file's folder first; then the
/// source's folder and `include_dirs`, the include paths `build` passes) recursively and hashes what it finds. gpuvet's own in-memory headers
/// are left to the cache key, which already covers them. Conditional compilation is not
/// evaluated: every include written is followed, a superset of what NVRTC reads.
pub fn scan_headers(text: &str, source_dir: &Path, include_dirs: &[PathBuf]) -> HeaderScan {
    let mut h = Sha256::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut unresolved: Vec<String> = Vec::new();
    let mut todo: Vec<(String, PathBuf)> = vec![(text.to_string(), source_dir.to_path_buf())];
    let mut bytes = 0u64;
    let mut dynamic = false;
    while let Some((t, dir)) = todo.pop() {
        for line in t.lines() {
            let Some(rest) = line.trim_start().strip_prefix('#') else {
                continue;
            };
            let Some(arg) = rest.trim_start().strip_prefix("include") else {
                continue;
            };
            let arg = arg.trim();
            let (name, quoted) = match (arg.chars().next(), arg.get(1..)) {
                (Some('"'), Some(r)) => (r.split('"').next().unwrap_or(""), true),
                (Some('<'), Some(r)) => (r.split('>').next().unwrap_or(""), false),
                _ => {
                    dynamic = true;
                    continue;
                }
            };
            if super::kernels::HEADERS.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let mut dirs: Vec<&Path> = Vec::new();
            if quoted {
                dirs.push(&dir);
            }
            // build() hands NVRTC the source's folder as the first include path.
            dirs.push(source_dir);
            dirs.extend(include_dirs.iter().map(PathBuf::as_path));
            let found = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
            match found {
                Some(p) if files.contains(&p) => {}
                Some(p) => {
                    let content = std::fs::read(&p).unwrap_or_default();
                    bytes += content.len() as u64;
                    h.update(p.display().to_string().as_bytes());
                    h.update([0]);
                    h.update(&content);
                    h.update([0]);
                    let parent = p.parent().unwrap_or(Path::new(".")).to_path_buf();
                    todo.push((String::from_utf8_lossy(&content).into_owned(), parent));
                    files.push(p);
                }
                None if !unresolved.iter().any(|u| u == name) => {
                    h.update(b"unresolved ");
                    h.update(name.as_bytes());
                    h.update([0]);
                    unresolved.push(name.to_string());
                }
                None => {}
            }
            if files.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
                dynamic = true;
                todo.clear();
                break;
            }
        }
    }
    HeaderScan {
        hash: (!dynamic).then(|| super::kernels::hex(&h.finalize()[..8])),
        files,
        unresolved,
    }
}

/// The [`Source`] of a user kernel: one per file and text for the whole process (a `Source` is
/// `Copy` and lives for the process; sweeps and repeated checks reuse it).
fn source_of(k: &UserKernel) -> Result<Source> {
    static SOURCES: OnceLock<Mutex<HashMap<(PathBuf, String), &'static UserSource>>> =
        OnceLock::new();
    let text = k.text()?;
    let mut m = SOURCES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let u = m
        .entry((k.source.clone(), k.source_sha256.clone()))
        .or_insert_with(|| UserSource::from_text(&k.source, text.to_string()));
    Ok(Source::User(u))
}

/// A user kernel compiled for one architecture, with what its PTX and ptxas say about it.
#[derive(Debug, Clone)]
pub struct Program {
    pub compiled: UserCompiled,
    /// The entry's `.param` list.
    pub params: Vec<PtxParam>,
    pub resources: Option<KernelResources>,
    /// The user's NVRTC options with the defines, as passed.
    pub options: Vec<String>,
    pub headers: HeaderScan,
}

/// Compiles `k` for `arch` (through the kernel cache in `cache`) with its defines evaluated by
/// `names`, and finds its entry in the PTX. A compile error is the user's: invalid input, with
/// NVRTC's log (which shows each failing source line).
pub fn build(
    k: &UserKernel,
    names: &dyn Names,
    arch: &str,
    cache: Option<&Path>,
) -> Result<Program> {
    let src = source_of(k)?;
    let options = k.nvrtc_options(names)?;
    let dir = k
        .source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let headers = scan_headers(k.text()?, dir, &k.include_dirs);
    let mut extra = options.clone();
    extra.push(format!("--include-path={}", dir.display()));
    extra.extend(
        k.include_dirs
            .iter()
            .map(|d| format!("--include-path={}", d.display())),
    );
    let compiled = nvrtc::compile_user(src, arch, &extra, headers.hash.as_deref(), cache).map_err(
        |e| match e {
            Error::Backend { message, .. } if message.starts_with("NVRTC failed to compile") => {
                Error::invalid(message)
            }
            e => e,
        },
    )?;
    let entries = ptx_params(&compiled.ptx);
    let params = find_entry(&entries, &k.entry, &k.source.display().to_string())?.to_vec();
    let resources = nvrtc::parse_ptxas(&compiled.log)
        .into_iter()
        .find(|(n, _)| *n == k.entry)
        .map(|(_, r)| r);
    Ok(Program {
        compiled,
        params,
        resources,
        options,
        headers,
    })
}

/// The launch of `k` evaluated by `names`, its arguments checked against the PTX of `p` and
/// its dimensions against `limits`.
pub fn check_launch(
    k: &UserKernel,
    p: &Program,
    names: &dyn ArgNames,
    limits: &Limits,
) -> Result<Resolved> {
    let r = k.launch.resolve(names)?;
    check_args(&k.entry, &p.params, &r.args)?;
    check_limits(&k.entry, &r, limits)?;
    Ok(r)
}

/// What a result records about a user kernel (`simulated`: the mock stood in for a GPU).
pub fn record(k: &UserKernel, p: &Program, r: &Resolved, simulated: bool) -> KernelRecord {
    let res = p.resources.as_ref();
    KernelRecord {
        name: k.name.clone(),
        source: k.source.display().to_string(),
        entry: k.entry.clone(),
        source_sha256: k.source_sha256.clone(),
        build_sha256: p.compiled.key[..16].to_string(),
        options: p.options.clone(),
        launch: r.describe(),
        registers: res.map(|r| r.registers),
        spill_stores: res.map(|r| r.spill_stores),
        spill_loads: res.map(|r| r.spill_loads),
        simulated,
    }
}

/// Notes for a result of a user kernel: where it came from and what ptxas made of it.
pub fn notes(k: &UserKernel, p: &Program, r: &Resolved) -> Vec<String> {
    let mut n = vec![format!(
        "user kernel `{}` from {} (sha256 {}), {}",
        k.entry,
        k.source.display(),
        k.source_sha256,
        r.describe()
    )];
    if let Some(res) = &p.resources {
        n.push(format!(
            "{} registers, {} B spill stores, {} B spill loads, {} B stack",
            res.registers, res.spill_stores, res.spill_loads, res.stack_bytes
        ));
    }
    if !p.options.is_empty() {
        n.push(format!("NVRTC options: {}", p.options.join(" ")));
    }
    if p.headers.hash.is_none() {
        n.push(
            "an #include could not be followed (a macro, or too many headers): compiled without the cache, and the build hash does not cover the headers".into(),
        );
    }
    n
}

/// The names a workload hands kernel `k` (its buffers and sizes, and `k`'s variables).
pub fn names_for(w: &Workload, k: &UserKernel) -> Result<WorkloadNames> {
    conventions::of(w)
        .ok_or_else(|| {
            Error::unsupported(format!(
                "a user kernel cannot implement {} workloads",
                w.kind()
            ))
        })?
        .with_vars(&k.vars)
}

/// One device buffer of a user run: its name, bytes, and the input it is uploaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufPlan {
    pub name: String,
    pub bytes: u64,
    /// Index into the workload's inputs; `None` for the output.
    pub input: Option<usize>,
}

/// The output a user run reads back for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutPlan {
    /// The buffer it lives in.
    pub buffer: String,
    /// The tensor's name, as the reference names it.
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub readback: Readback,
}

/// The buffers a known workload hands a user kernel (the table in `conventions`), sized for
/// launch `r` (memory `read` writes one partial per block).
pub fn workload_buffers(w: &Workload, r: &Resolved) -> Result<(Vec<BufPlan>, OutPlan)> {
    let inp = |name: &str, bytes: u64, i: usize| BufPlan {
        name: name.into(),
        bytes,
        input: Some(i),
    };
    let out = |name: &str, bytes: u64| BufPlan {
        name: name.into(),
        bytes,
        input: None,
    };
    let typed = |buffer: &str, name: &'static str, shape: Vec<u64>, t: OutType| OutPlan {
        buffer: buffer.into(),
        name,
        shape: shape.iter().map(|&d| d as usize).collect(),
        readback: Readback::Typed(t),
    };
    Ok(match w {
        Workload::Matmul(m) => {
            let (e, o) = (m.dtype.size(), m.dtype.matmul_output());
            (
                vec![
                    inp("A", m.m * m.k * e, 0),
                    inp("B", m.k * m.n * e, 1),
                    out("C", m.m * m.n * o.size()),
                ],
                typed("C", "C", vec![m.m, m.n], o),
            )
        }
        Workload::Attention(a) => {
            let o = match a.dtype {
                crate::dtype::DType::F16 => OutType::F16,
                crate::dtype::DType::Bf16 => OutType::Bf16,
                _ => OutType::F32,
            };
            let q = a.elem_bytes_q();
            let kv = a.elem_bytes_kv();
            (
                vec![
                    inp("Q", q, 0),
                    inp("K", kv, 1),
                    inp("V", kv, 2),
                    out("O", q),
                ],
                typed("O", "O", a.q_shape().iter().map(|&d| d as u64).collect(), o),
            )
        }
        Workload::Memory(m) => {
            let b = m.elements() * 4;
            let n = m.elements();
            match m.op {
                MemOp::Copy => (
                    vec![inp("src", b, 0), out("dst", b)],
                    typed("dst", "dst", vec![n], OutType::F32),
                ),
                MemOp::Write => (
                    vec![out("dst", b)],
                    typed("dst", "dst", vec![n], OutType::F32),
                ),
                MemOp::Triad => (
                    vec![inp("b", b, 0), inp("c", b, 1), out("a", b)],
                    typed("a", "a", vec![n], OutType::F32),
                ),
                MemOp::Read => {
                    let blocks: u64 = r.grid.iter().map(|&g| g as u64).product();
                    (
                        vec![inp("src", b, 0), out("partials", blocks * 8)],
                        OutPlan {
                            buffer: "partials".into(),
                            name: "sum",
                            shape: vec![1],
                            readback: Readback::SumF64,
                        },
                    )
                }
            }
        }
        Workload::Kernel(_) => {
            return Err(Error::unsupported(
                "a free-form kernel brings its own buffers",
            ))
        }
    })
}

/// The buffers of a free-form kernel, in spec order; inputs numbered as `inputs()` makes them.
pub fn spec_buffers(spec: &KernelSpec) -> (Vec<BufPlan>, OutPlan) {
    let mut plans = Vec::new();
    let mut next = 0;
    for b in &spec.buffers {
        plans.push(BufPlan {
            name: b.name.clone(),
            bytes: b.bytes(),
            input: (!b.output).then(|| {
                next += 1;
                next - 1
            }),
        });
    }
    let o = spec.output();
    let out = OutPlan {
        buffer: o.name.clone(),
        name: interned(&o.name),
        shape: o.shape.iter().map(|&d| d as usize).collect(),
        readback: Readback::Elements(o.dtype),
    };
    (plans, out)
}

/// The device's limits for `func` (its registers decide how many threads a block may have).
fn device_limits(gpu: &Gpu, func: &CudaFunction) -> Result<Limits> {
    use cudarc::driver::sys::CUdevice_attribute_enum as A;
    use cudarc::driver::sys::CUfunction_attribute_enum as F;
    let fa = |a| cu("read a kernel attribute", func.get_attribute(a));
    let da = |a| cu("read a device attribute", gpu.ctx.attribute(a));
    Ok(Limits {
        max_threads_per_block: fa(F::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)? as u32,
        max_block: [
            da(A::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X)? as u32,
            da(A::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y)? as u32,
            da(A::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z)? as u32,
        ],
        max_grid: [
            da(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)? as u32,
            da(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)? as u32,
            da(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)? as u32,
        ],
        max_smem_optin: gpu.props.smem_per_block_optin,
        static_smem: fa(F::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)? as u64,
        registers: fa(F::CU_FUNC_ATTRIBUTE_NUM_REGS)? as u32,
    })
}

/// A user kernel built, loaded and checked on `gpu`: everything short of allocating.
struct Loaded {
    program: Program,
    func: CudaFunction,
    launch: Resolved,
}

fn load(gpu: &Gpu, k: &UserKernel, names: &dyn ArgNames) -> Result<Loaded> {
    let program = build(k, names, &gpu.props.arch(), nvrtc::cache_dir().as_deref())?;
    gpu.bind()?;
    let module = cu(
        &format!("load {} for {}", k.source.display(), gpu.props.arch()),
        gpu.ctx.load_module(cudarc::nvrtc::Ptx::from_binary(
            program.compiled.cubin.clone(),
        )),
    )?;
    let func = cu(
        &format!("load kernel {}", k.entry),
        module.load_function(&k.entry),
    )?;
    let launch = check_launch(k, &program, names, &device_limits(gpu, &func)?)?;
    if launch.smem > 48 << 10 {
        // Above 48 KiB a block's dynamic shared memory must be asked for explicitly.
        use cudarc::driver::sys::CUfunction_attribute_enum as F;
        cu(
            "allow the kernel's dynamic shared memory",
            func.set_attribute(
                F::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                launch.smem as i32,
            ),
        )?;
    }
    Ok(Loaded {
        program,
        func,
        launch,
    })
}

/// The plan-time check of user kernel `k` implementing `w` on `gpu`: compile, entry, arguments
/// against the PTX, launch against the device.
pub fn check_implementation(gpu: &Gpu, w: &Workload, k: &UserKernel) -> Result<()> {
    load(gpu, k, &names_for(w, k)?).map(|_| ())
}

/// The plan-time check of a free-form kernel on `gpu`.
pub fn check_spec(gpu: &Gpu, spec: &KernelSpec) -> Result<()> {
    load(gpu, &spec.kernel, &spec.names()).map(|_| ())
}

/// Device bytes of one buffer set of `plans`.
pub fn set_bytes(plans: &[BufPlan]) -> u64 {
    plans.iter().map(|p| p.bytes).sum()
}

/// Prepares user kernel `k` as an implementation of `w`.
pub fn prepare_implementation<'a>(
    gpu: &'a Gpu,
    w: &Workload,
    k: &UserKernel,
    inputs: &[Tensor],
    sets: usize,
    policy: String,
) -> Result<Box<dyn Prepared + 'a>> {
    let names = names_for(w, k)?;
    let l = load(gpu, k, &names)?;
    let (plans, out) = workload_buffers(w, &l.launch)?;
    let compute = format!("{} (user kernel)", w.dtype());
    prepare(gpu, k, l, plans, out, compute, inputs, sets, policy)
}

/// Prepares a free-form kernel.
pub fn prepare_spec<'a>(
    gpu: &'a Gpu,
    spec: &KernelSpec,
    inputs: &[Tensor],
    sets: usize,
    policy: String,
) -> Result<Box<dyn Prepared + 'a>> {
    let l = load(gpu, &spec.kernel, &spec.names())?;
    let (plans, out) = spec_buffers(spec);
    let compute = format!("{} out (user kernel)", spec.output().dtype.name());
    prepare(
        gpu,
        &spec.kernel,
        l,
        plans,
        out,
        compute,
        inputs,
        sets,
        policy,
    )
}

#[allow(clippy::too_many_arguments)]
fn prepare<'a>(
    gpu: &'a Gpu,
    k: &UserKernel,
    l: Loaded,
    plans: Vec<BufPlan>,
    out: OutPlan,
    compute: String,
    inputs: &[Tensor],
    sets: usize,
    policy: String,
) -> Result<Box<dyn Prepared + 'a>> {
    let sets = sets.max(1);
    gpu.ensure_fits(set_bytes(&plans).saturating_mul(sets as u64))?;
    let mut all = Vec::with_capacity(sets);
    for _ in 0..sets {
        let mut bufs = Vec::with_capacity(plans.len());
        for p in &plans {
            let b = match p.input {
                Some(i) => {
                    let t = inputs.get(i).ok_or_else(|| {
                        Error::invalid(format!("no input for buffer `{}`", p.name))
                    })?;
                    if t.as_bytes().len() as u64 != p.bytes {
                        return Err(Error::invalid(format!(
                            "input `{}` holds {} bytes, its buffer {}",
                            p.name,
                            t.as_bytes().len(),
                            p.bytes
                        )));
                    }
                    upload(gpu, t.as_bytes())?
                }
                None => gpu.alloc(p.bytes as usize)?,
            };
            bufs.push((p.name.clone(), b));
        }
        all.push(UserSet(bufs));
    }
    let record = record(k, &l.program, &l.launch, false);
    let notes = notes(k, &l.program, &l.launch);
    let exec = UserExec {
        gpu,
        func: l.func,
        launch: l.launch,
        out,
        compute,
        record,
        notes,
    };
    Ok(Box::new(CudaRun::new(gpu, exec, all, policy)?))
}

/// The buffers of one set, by name.
pub struct UserSet(Vec<(String, DevBuf)>);

impl UserSet {
    fn get(&self, name: &str) -> &DevBuf {
        &self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .expect("every launch argument names a planned buffer (checked when resolved)")
            .1
    }
}

/// What a user kernel adds to [`CudaRun`]: its launch on one buffer set.
pub struct UserExec<'a> {
    gpu: &'a Gpu,
    func: CudaFunction,
    launch: Resolved,
    out: OutPlan,
    compute: String,
    record: KernelRecord,
    notes: Vec<String>,
}

/// The launch arguments of `r` on buffer set `s`.
fn args(r: &Resolved, s: &UserSet) -> Args {
    let mut a = Args::new();
    for arg in &r.args {
        a = match *arg {
            Arg::Buffer(ref b) => a.buf(s.get(b)),
            Arg::Scalar(t, n) => {
                let (i, f) = match n {
                    Num::Int(i) => (i, i as f64),
                    Num::Float(f) => (f as i128, f),
                };
                // In range: checked when the launch was resolved.
                match t {
                    ScalarType::I32 => a.i32(i as i32),
                    ScalarType::U32 => a.u32(i as u32),
                    ScalarType::I64 => a.i64(i as i64),
                    ScalarType::U64 => a.u64(i as u64),
                    ScalarType::F32 => a.f32(f as f32),
                    ScalarType::F64 => a.f64(f),
                }
            }
        };
    }
    a
}

impl Exec for UserExec<'_> {
    type Set = UserSet;

    fn enqueue(&self, s: &UserSet) -> Result<()> {
        let r = &self.launch;
        let t = |v: [u32; 3]| (v[0], v[1], v[2]);
        // SAFETY: the arguments were checked against the kernel's PTX `.param` list (count,
        // order, width, pointer or value) and every buffer they name is allocated at the size
        // the workload or spec declares; the buffers live as long as the run. A kernel that
        // reads beyond them faults, which the driver reports as a sticky error (the run records
        // it and stops using the device).
        unsafe {
            launch_function(
                self.gpu,
                &self.func,
                t(r.grid),
                t(r.block),
                r.smem,
                args(r, s),
            )
        }
    }

    fn output<'s>(&'s self, set: &'s UserSet) -> Output<'s> {
        Output {
            buf: set.get(&self.out.buffer),
            name: self.out.name,
            shape: self.out.shape.clone(),
            readback: self.out.readback,
        }
    }

    fn compute_dtype(&self) -> String {
        self.compute.clone()
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn kernel_record(&self) -> Option<KernelRecord> {
        Some(self.record.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::workload::{MatmulSpec, MemorySpec};

    #[test]
    fn headers_are_followed_and_hashed_by_content() {
        let d = tempfile::tempdir().unwrap();
        let inc = d.path().join("inc");
        std::fs::create_dir(&inc).unwrap();
        std::fs::write(d.path().join("local.cuh"), "#include <deep.cuh>\n").unwrap();
        std::fs::write(
            inc.join("deep.cuh"),
            "#define X 1\n#include \"local.cuh\"\n",
        )
        .unwrap();
        let src =
            "#include \"local.cuh\"\n  #  include <cuda_fp16.h>\n#include \"gpuvet_ptx.cuh\"\n";
        let scan = || scan_headers(src, d.path(), std::slice::from_ref(&inc));
        let a = scan();
        assert_eq!(a.files.len(), 2, "{a:?}");
        assert_eq!(a.unresolved, ["cuda_fp16.h"]);
        assert!(a.hash.is_some());
        assert_eq!(scan(), a, "the same files hash the same");
        std::fs::write(inc.join("deep.cuh"), "#define X 2\n").unwrap();
        assert_ne!(scan().hash, a.hash, "an edited header changes the hash");
        // an include the scan cannot follow turns the cache off
        let m = scan_headers("#include HEADER_FROM_A_MACRO\n", d.path(), &[]);
        assert_eq!(m.hash, None);
    }

    fn one_block() -> Resolved {
        Resolved {
            grid: [3, 2, 1],
            block: [128, 1, 1],
            smem: 0,
            args: vec![],
        }
    }

    #[test]
    fn workloads_hand_kernels_their_conventional_buffers() {
        let m = Workload::Matmul(MatmulSpec::new(5, 7, 9, DType::Bf16));
        let (p, o) = workload_buffers(&m, &one_block()).unwrap();
        let names: Vec<&str> = p.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!((p[0].bytes, p[1].bytes, p[2].bytes), (90, 126, 70));
        assert_eq!((p[0].input, p[2].input), (Some(0), None));
        assert_eq!((o.buffer.as_str(), o.shape.clone()), ("C", vec![5, 7]));
        let r = Workload::Memory(MemorySpec {
            op: MemOp::Read,
            bytes: 1 << 20,
        });
        let (p, o) = workload_buffers(&r, &one_block()).unwrap();
        assert_eq!(p[1].bytes, 6 * 8, "one f64 partial per block");
        assert_eq!(o.readback, Readback::SumF64);
        let t = Workload::Memory(MemorySpec {
            op: MemOp::Triad,
            bytes: 1 << 20,
        });
        let (p, o) = workload_buffers(&t, &one_block()).unwrap();
        assert_eq!(
            p.iter().map(|b| b.input).collect::<Vec<_>>(),
            [Some(0), Some(1), None]
        );
        assert_eq!(o.name, "a");
    }
}
