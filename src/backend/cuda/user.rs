//! A user's own CUDA kernel on the GPU: compiled by NVRTC with the user's options through the
//! same disk cache as gpuvet's kernels, checked before anything is allocated (the entry exists,
//! the arguments match the `.param` list of its PTX, the launch fits the device), then run by
//! the one prepared run ([`CudaRun`]) like every built-in implementation.
//!
//! The pieces that need no GPU (finding the headers a source includes, building a kernel and
//! reading its PTX, which buffers a workload hands a kernel) are public so that the mock
//! backend and the tests use the very same code.

use super::device::Props;
use super::kernels::{Source, UserSource};
use super::libs::Lib;
use super::nvrtc::{self, KernelResources, UserCompiled};
use super::row::Target;
use crate::error::{Error, Result};
use crate::workload::kernel::conventions::{self, WorkloadNames};
use crate::workload::kernel::expr::Names;
use crate::workload::kernel::launch::{
    check_args, check_limits, find_entry, ptx_params, ArgNames, Limits, PtxParam, Resolved,
};
use crate::workload::kernel::{KernelRecord, KernelSpec, UserKernel};
use crate::workload::Workload;
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
                    let content =
                        crate::files::read_bounded(&p, crate::files::MAX_SMALL_FILE_BYTES)
                            .unwrap_or_default();
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
    let resources = nvrtc::resources_named(&compiled.log, &k.entry);
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
        compiled: true,
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
    k.check_suits(w)?;
    conventions::of(w)
        .ok_or_else(|| {
            Error::unsupported(format!(
                "a user kernel cannot implement {} workloads",
                w.kind()
            ))
        })?
        .with_vars(&k.vars)
}

/// The limits a launch of `p` is held to before it is loaded on a device: the device's shared
/// memory, the static shared memory and registers ptxas reported, and the limits every GPU since
/// Volta shares (a block of at most 1024 threads and 64 Ki registers, allocated 256 per warp).
/// Loading the kernel (`user_run`) checks again with the driver's own numbers.
pub fn planned_limits(props: &Props, p: &Program) -> Limits {
    let (regs, static_smem) = p
        .resources
        .as_ref()
        .map_or((0, 0), |r| (r.registers, r.static_smem));
    let max_threads = if regs == 0 {
        1024
    } else {
        let per_warp = (regs * 32).div_ceil(256) * 256;
        ((65_536 / per_warp) * 32).min(1024)
    };
    Limits {
        max_threads_per_block: max_threads,
        static_smem: static_smem as u64,
        registers: regs,
        ..Limits::typical(props.sm.smem_per_block_optin)
    }
}

/// The plan-time check of user kernel `k` implementing `w` on `t`: compiled for its
/// architecture, the entry found, the arguments against the PTX, the launch against its limits.
pub fn check_implementation(t: &Target, w: &Workload, k: &UserKernel) -> Result<()> {
    t.has(Lib::Nvrtc)?;
    let names = names_for(w, k)?;
    let p = build(k, &names, &t.props.arch(), nvrtc::cache_dir().as_deref())?;
    check_launch(k, &p, &names, &planned_limits(t.props, &p)).map(|_| ())
}

/// The plan-time check of a free-form kernel on `t`.
pub fn check_spec(t: &Target, spec: &KernelSpec) -> Result<()> {
    t.has(Lib::Nvrtc)?;
    let k = &spec.kernel;
    let names = spec.names();
    let p = build(k, &names, &t.props.arch(), nvrtc::cache_dir().as_deref())?;
    check_launch(k, &p, &names, &planned_limits(t.props, &p)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::folder_with;

    #[test]
    fn headers_are_followed_and_hashed_by_content() {
        let d = folder_with(&[
            ("local.cuh", "#include <deep.cuh>\n"),
            ("inc/deep.cuh", "#define X 1\n#include \"local.cuh\"\n"),
        ]);
        let inc = d.path().join("inc");
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

    #[test]
    fn limits_before_loading_follow_registers_and_static_shared_memory() {
        let log = "ptxas info    : Compiling entry function 'other' for 'sm_90a'\n\
ptxas info    : Used 8 registers, used 0 barriers, 64 bytes smem\n\
ptxas info    : Compiling entry function 'k' for 'sm_90a'\n\
ptxas info    : Function properties for k\n\
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
ptxas info    : Used 255 registers, used 1 barriers, 33024 bytes smem, 400 bytes cmem[0]\n";
        let of = |e: &str| nvrtc::resources_named(log, e);
        let k = of("k").unwrap();
        assert_eq!((k.registers, k.static_smem), (255, 33024));
        assert_eq!(of("other").unwrap().static_smem, 64);
        assert!(of("none").is_none());
    }
}
