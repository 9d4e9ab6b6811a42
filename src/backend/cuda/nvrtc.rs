//! NVRTC compile pipeline: source → CUBIN for one exact architecture, cached on disk.
//!
//! CUBIN rather than PTX: PTX carries NVRTC's ISA version and a driver rejects PTX newer than
//! itself, while a CUBIN for the device's own `sm_XY` loads on any driver that knows the GPU.
//! Hopper gets `sm_90a` so that wgmma/setmaxnreg are available to later kernels.
//!
//! The cache key hashes the source, the options, NVRTC's version and the architecture, so a
//! change in any of them compiles afresh; files are written to a temporary name and renamed,
//! so a crash or a concurrent gpuvet never leaves a truncated CUBIN behind.

use super::kernels::{hex, KernelId, Source, BASE_OPTIONS, HEADERS};
use super::libs;
use crate::error::{Error, Result};
use cudarc::nvrtc::sys;
use sha2::{Digest, Sha256};
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

/// Environment variable overriding the kernel cache folder.
pub const CACHE_DIR_ENV: &str = "GPUVET_KERNEL_CACHE";

/// The NVRTC architecture option for a compute capability: the arch-specific `a` target on
/// Hopper (9.0), plain `sm_XY` elsewhere.
pub fn arch_for(major: i32, minor: i32) -> String {
    if major == 9 && minor == 0 {
        "sm_90a".into()
    } else {
        format!("sm_{major}{minor}")
    }
}

/// Full option list for one architecture.
pub fn options(arch: &str) -> Vec<String> {
    let mut o = vec![format!("--gpu-architecture={arch}")];
    o.extend(BASE_OPTIONS.iter().map(|s| s.to_string()));
    o
}

/// A compiled module.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub cubin: Vec<u8>,
    /// NVRTC's log, including ptxas' register and spill report.
    pub log: String,
    pub from_cache: bool,
}

/// Registers, spills and static shared memory of one kernel, from the ptxas report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelResources {
    pub registers: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
    pub stack_bytes: u32,
    /// Bytes of `__shared__` arrays (`..., 2112 bytes smem, ...`): what a launch's dynamic
    /// shared memory comes on top of.
    pub static_smem: u32,
}

impl KernelResources {
    /// The note a result carries: registers (`what` says more about them), spills.
    pub fn note(&self, what: &str) -> String {
        format!(
            "{} registers{what}, {} B spill stores, {} B spill loads",
            self.registers, self.spill_stores, self.spill_loads
        )
    }
}

/// Checks that NVRTC was found and loaded; the one-line reason otherwise.
pub fn available() -> Result<()> {
    match &libs::probe().nvrtc {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::BackendUnavailable {
            backend: "cuda".into(),
            reason: e.clone(),
        }),
    }
}

fn nvrtc_err(what: &str, r: sys::nvrtcResult) -> Error {
    // SAFETY: nvrtcGetErrorString returns a static string for every result code.
    let s = unsafe {
        let p = sys::nvrtcGetErrorString(r);
        if p.is_null() {
            format!("{r:?}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Error::backend("cuda", format!("NVRTC {what}: {s}"))
}

/// Runs `f` (which calls into NVRTC through cudarc) after checking NVRTC is loaded, turning a
/// panic inside cudarc (a missing library or symbol) into an error instead of an abort.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    available()?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::BackendUnavailable {
            backend: "cuda".into(),
            reason: "NVRTC could not be called (a library or symbol is missing); install nvidia-cuda-nvrtc matching the driver's CUDA major".into(),
        })
    })
}

/// NVRTC's version, e.g. (13, 0).
pub fn version() -> Result<(i32, i32)> {
    guarded(|| {
        let (mut a, mut b) = (0, 0);
        // SAFETY: two valid out-pointers.
        let r = unsafe { sys::nvrtcVersion(&mut a, &mut b) };
        if r != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(nvrtc_err("version", r));
        }
        Ok((a, b))
    })
}

/// Compiles `src` for `arch` without touching the cache.
pub fn compile_uncached(src: Source, arch: &str) -> Result<Compiled> {
    let (cubin, log) = compile_with(src, arch, &[], |prog| {
        // SAFETY: called by compile_with on a successfully compiled, live program.
        unsafe { cubin(prog) }
    })?;
    Ok(Compiled {
        cubin,
        log,
        from_cache: false,
    })
}

/// The PTX of `src` for a virtual architecture (`compute_90a`, ...): what the tests read the
/// kernels' `.entry` parameter lists from.
pub fn compile_to_ptx(src: Source, virtual_arch: &str) -> Result<String> {
    let (ptx, _log) = compile_with(src, virtual_arch, &[], |prog| {
        // SAFETY: called by compile_with on a successfully compiled, live program.
        unsafe { ptx(prog) }
    })?;
    Ok(ptx)
}

/// A user program compiled for one architecture: the CUBIN to load and the PTX its parameter
/// list is read from.
#[derive(Debug, Clone)]
pub struct UserCompiled {
    pub cubin: Vec<u8>,
    pub ptx: String,
    /// NVRTC's log (warnings, and ptxas' register and spill report).
    pub log: String,
    pub from_cache: bool,
    /// The cache key: what was compiled (source, headers, options, NVRTC, architecture).
    pub key: String,
}

/// Compiles a user source for `arch` with the user's `extra` options, through the on-disk cache
/// in `dir` (`None`: no cache). `headers_hash` stands for the headers the source includes from
/// disk (NVRTC reads them itself), so that an edited header is never served a stale CUBIN;
/// `None` when they could not all be found, which compiles afresh every time.
pub fn compile_user(
    src: Source,
    arch: &str,
    extra: &[String],
    headers_hash: Option<&str>,
    dir: Option<&Path>,
) -> Result<UserCompiled> {
    let ver = version()?;
    let mut key = cache_key(src, arch, ver);
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    for o in extra {
        h.update([0]);
        h.update(o.as_bytes());
    }
    h.update([1]);
    h.update(headers_hash.unwrap_or("").as_bytes());
    key = hex(&h.finalize()[..16]);
    let dir = dir.filter(|_| headers_hash.is_some());
    let base = dir.map(|d| d.join(format!("{}-{arch}-{key}", src.stem())));
    if let Some(hit) = base.as_deref().and_then(|b| user_cache_load(b, &key)) {
        return Ok(hit);
    }
    let ((cubin, ptx), log) = compile_with(src, arch, extra, |prog| {
        // SAFETY: called by compile_with on a successfully compiled, live program.
        unsafe { Ok((cubin(prog)?, ptx(prog)?)) }
    })?;
    let c = UserCompiled {
        cubin,
        ptx,
        log,
        from_cache: false,
        key,
    };
    if let Some(base) = &base {
        let _ = user_cache_store(base, &c);
    }
    Ok(c)
}

/// A user compile stored at `base` (`.cubin`, `.ptx`, `.log`), if there is a whole one.
fn user_cache_load(base: &Path, key: &str) -> Option<UserCompiled> {
    let read = |ext| std::fs::read(base.with_extension(ext)).ok();
    let (cubin, ptx, log) = (read("cubin")?, read("ptx")?, read("log")?);
    (!cubin.is_empty() && !ptx.is_empty()).then(|| UserCompiled {
        cubin,
        ptx: String::from_utf8_lossy(&ptx).into_owned(),
        log: String::from_utf8_lossy(&log).into_owned(),
        from_cache: true,
        key: key.to_string(),
    })
}

/// Stores a user compile at `base`: the log and the PTX first, so a CUBIN on disk always has
/// both beside it; each through the one atomic writer.
fn user_cache_store(base: &Path, c: &UserCompiled) -> std::io::Result<()> {
    std::fs::create_dir_all(base.parent().unwrap_or(Path::new(".")))?;
    crate::output::write_atomic(&base.with_extension("log"), c.log.as_bytes())?;
    crate::output::write_atomic(&base.with_extension("ptx"), c.ptx.as_bytes())?;
    crate::output::write_atomic(&base.with_extension("cubin"), &c.cubin)
}

/// Runs NVRTC on `src` for `arch` (with `extra` options after gpuvet's) and hands the compiled
/// program to `take`; returns what it took and the program log.
fn compile_with<T>(
    src: Source,
    arch: &str,
    extra: &[String],
    take: impl FnOnce(sys::nvrtcProgram) -> Result<T>,
) -> Result<(T, String)> {
    let mut opts = options(arch);
    opts.extend(extra.iter().cloned());
    guarded(|| {
        let code = CString::new(src.text())
            .map_err(|_| Error::backend("cuda", "kernel source contains NUL"))?;
        let name = CString::new(src.file())
            .map_err(|_| Error::invalid("the kernel's file name contains a NUL byte"))?;
        let c_opts: Vec<CString> = opts
            .iter()
            .map(|o| CString::new(o.as_str()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::invalid("an NVRTC option contains a NUL byte"))?;
        let ptrs: Vec<*const std::ffi::c_char> = c_opts.iter().map(|c| c.as_ptr()).collect();
        let cstr = |s: &str| CString::new(s).expect("gpuvet's headers have no NUL");
        let h_texts: Vec<CString> = HEADERS.iter().map(|(_, t)| cstr(t)).collect();
        let h_names: Vec<CString> = HEADERS.iter().map(|(n, _)| cstr(n)).collect();
        let h_text_ptrs: Vec<_> = h_texts.iter().map(|c| c.as_ptr()).collect();
        let h_name_ptrs: Vec<_> = h_names.iter().map(|c| c.as_ptr()).collect();
        let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
        // SAFETY: valid C strings; the header arrays hold HEADERS.len() entries each and outlive
        // the program, which is destroyed on every path below.
        unsafe {
            let r = sys::nvrtcCreateProgram(
                &mut prog,
                code.as_ptr(),
                name.as_ptr(),
                HEADERS.len() as i32,
                h_text_ptrs.as_ptr(),
                h_name_ptrs.as_ptr(),
            );
            if r != sys::nvrtcResult::NVRTC_SUCCESS {
                return Err(nvrtc_err("create program", r));
            }
            let compiled = sys::nvrtcCompileProgram(prog, ptrs.len() as i32, ptrs.as_ptr());
            let log = program_log(prog);
            let out = if compiled != sys::nvrtcResult::NVRTC_SUCCESS {
                Err(Error::backend(
                    "cuda",
                    format!(
                        "NVRTC failed to compile {} for {arch} (options: {}):\n{}",
                        src.file(),
                        opts.join(" "),
                        log.trim_end()
                    ),
                ))
            } else {
                take(prog).map(|t| (t, log))
            };
            sys::nvrtcDestroyProgram(&mut prog);
            out
        }
    })
}

/// SAFETY: `prog` must be a successfully compiled program.
unsafe fn ptx(prog: sys::nvrtcProgram) -> Result<String> {
    let mut n = 0usize;
    let r = sys::nvrtcGetPTXSize(prog, &mut n);
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_err("PTX size", r));
    }
    let mut buf = vec![0u8; n];
    let r = sys::nvrtcGetPTX(prog, buf.as_mut_ptr() as *mut _);
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_err("get PTX", r));
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Every `.entry` of a PTX module with the PTX types of its parameters, in order
/// (`.u64`, `.u32`, `.f32`, ...; alignment and state-space qualifiers dropped).
pub fn ptx_entries(ptx: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = ptx;
    while let Some(i) = rest.find(".entry ") {
        rest = &rest[i + ".entry ".len()..];
        let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
            break;
        };
        let name = rest[..open].trim().to_string();
        let types = rest[open + 1..close]
            .split(',')
            .filter_map(|p| {
                let words: Vec<&str> = p.split_whitespace().collect();
                (words.first() == Some(&".param")).then_some(())?;
                let i = words.iter().position(|w| {
                    let b = w.as_bytes();
                    b.len() > 2
                        && b[0] == b'.'
                        && matches!(b[1], b'u' | b's' | b'f' | b'b')
                        && b[2..].iter().all(u8::is_ascii_digit)
                })?;
                // A by-value array (a TMA descriptor: `.b8 name[128]`) keeps its length.
                let array = words
                    .get(i + 1)
                    .and_then(|name| name.find('[').map(|o| &name[o..]))
                    .unwrap_or("");
                Some(format!("{}{array}", words[i]))
            })
            .collect();
        out.push((name, types));
        rest = &rest[close..];
    }
    out
}

/// SAFETY: `prog` must be a live program.
unsafe fn program_log(prog: sys::nvrtcProgram) -> String {
    let mut n = 0usize;
    if sys::nvrtcGetProgramLogSize(prog, &mut n) != sys::nvrtcResult::NVRTC_SUCCESS || n == 0 {
        return String::new();
    }
    let mut buf = vec![0u8; n];
    if sys::nvrtcGetProgramLog(prog, buf.as_mut_ptr() as *mut _) != sys::nvrtcResult::NVRTC_SUCCESS
    {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// SAFETY: `prog` must be a successfully compiled program.
unsafe fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>> {
    let mut n = 0usize;
    let r = sys::nvrtcGetCUBINSize(prog, &mut n);
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_err("CUBIN size", r));
    }
    if n == 0 {
        return Err(Error::backend(
            "cuda",
            "NVRTC produced no CUBIN (was a virtual compute_XY architecture given?)",
        ));
    }
    let mut buf = vec![0u8; n];
    let r = sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut _);
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_err("get CUBIN", r));
    }
    Ok(buf)
}

/// The cache folder: `$GPUVET_KERNEL_CACHE`, else `<user cache dir>/gpuvet/kernels`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(CACHE_DIR_ENV) {
        return Some(PathBuf::from(d));
    }
    dirs::cache_dir().map(|d| d.join("gpuvet").join("kernels"))
}

/// The cache key of one compilation.
pub fn cache_key(src: Source, arch: &str, nvrtc_version: (i32, i32)) -> String {
    let mut h = Sha256::new();
    h.update(src.text().as_bytes());
    h.update([0]);
    // A changed header must not hit a CUBIN compiled with the old one.
    for (_, text) in HEADERS {
        h.update(text.as_bytes());
        h.update([0]);
    }
    for o in options(arch) {
        h.update(o.as_bytes());
        h.update([0]);
    }
    h.update(format!("nvrtc {}.{}", nvrtc_version.0, nvrtc_version.1).as_bytes());
    h.update([0]);
    h.update(arch.as_bytes());
    hex(&h.finalize()[..16])
}

/// Compiles through the on-disk cache. A cache that cannot be read or written is not an
/// error: the kernel is compiled and the run goes on.
pub fn compile(src: Source, arch: &str) -> Result<Compiled> {
    compile_in(src, arch, cache_dir().as_deref())
}

/// [`compile`] with an explicit cache folder (`None`: no cache).
pub fn compile_in(src: Source, arch: &str, dir: Option<&Path>) -> Result<Compiled> {
    let ver = version()?;
    let base = dir.map(|d| {
        d.join(format!(
            "{}-{arch}-{}",
            src.stem(),
            cache_key(src, arch, ver)
        ))
    });
    if let Some(hit) = base.as_deref().and_then(cache_load) {
        return Ok(hit);
    }
    let c = compile_uncached(src, arch)?;
    if let Some(base) = &base {
        let _ = cache_store(base, &c);
    }
    Ok(c)
}

/// The compile stored at `base` (`.cubin` and `.log`), if there is a non-empty one.
fn cache_load(base: &Path) -> Option<Compiled> {
    let cubin = std::fs::read(base.with_extension("cubin")).ok()?;
    if cubin.is_empty() {
        return None;
    }
    Some(Compiled {
        cubin,
        log: std::fs::read_to_string(base.with_extension("log")).unwrap_or_default(),
        from_cache: true,
    })
}

/// Stores `c` at `base`, creating the cache folder: the log first, so a CUBIN on disk always
/// has its log beside it. Each file is written through the one atomic writer
/// ([`crate::output::write_atomic`]).
fn cache_store(base: &Path, c: &Compiled) -> std::io::Result<()> {
    std::fs::create_dir_all(base.parent().unwrap_or(Path::new(".")))?;
    crate::output::write_atomic(&base.with_extension("log"), c.log.as_bytes())?;
    crate::output::write_atomic(&base.with_extension("cubin"), &c.cubin)
}

/// Parses ptxas' `-v` report into per-kernel resources.
pub fn parse_ptxas(log: &str) -> Vec<(String, KernelResources)> {
    let mut out: Vec<(String, KernelResources)> = Vec::new();
    let num_before = |line: &str, word: &str| -> Option<u32> {
        let at = line.find(word)?;
        line[..at].split_whitespace().last()?.parse().ok()
    };
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            if let Some(name) = rest.split('\'').next() {
                out.push((name.to_string(), KernelResources::default()));
            }
            continue;
        }
        let Some((_, r)) = out.last_mut() else {
            continue;
        };
        if line.contains("spill stores") {
            r.stack_bytes = num_before(line, "bytes stack frame").unwrap_or(r.stack_bytes);
            r.spill_stores = num_before(line, "bytes spill stores").unwrap_or(0);
            r.spill_loads = num_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("registers") {
            if let Some(n) = num_before(line, "registers") {
                r.registers = n;
            }
            r.static_smem = num_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}

/// The resources of `k` found in a compile log.
pub fn resources_of(log: &str, k: KernelId) -> Option<KernelResources> {
    resources_named(log, k.symbol())
}

/// The resources of the entry named `entry` (an own kernel's symbol, a user kernel's entry)
/// found in a compile log.
pub fn resources_named(log: &str, entry: &str) -> Option<KernelResources> {
    parse_ptxas(log)
        .into_iter()
        .find(|(n, _)| n == entry)
        .map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        assert_eq!(arch_for(9, 0), "sm_90a");
        assert_eq!(arch_for(8, 9), "sm_89");
        assert_eq!(arch_for(8, 0), "sm_80");
        assert_eq!(arch_for(10, 0), "sm_100");
        assert!(options("sm_90a")[0].ends_with("sm_90a"));
    }

    #[test]
    fn cache_key_changes_with_every_input() {
        let k = cache_key(Source::Memory, "sm_90a", (13, 0));
        assert_eq!(k, cache_key(Source::Memory, "sm_90a", (13, 0)));
        assert_ne!(k, cache_key(Source::Memory, "sm_80", (13, 0)));
        assert_ne!(k, cache_key(Source::Memory, "sm_90a", (13, 1)));
        assert_ne!(k, cache_key(Source::Attention, "sm_90a", (13, 0)));
    }

    #[test]
    fn the_cache_gives_back_what_it_stored_and_nothing_empty() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("new/folder/memory-sm_90a-0123");
        assert!(cache_load(&base).is_none());
        let c = Compiled {
            cubin: b"ELF".to_vec(),
            log: "ptxas info: Used 18 registers".into(),
            from_cache: false,
        };
        cache_store(&base, &c).unwrap();
        let hit = cache_load(&base).unwrap();
        assert_eq!((hit.cubin, hit.log.as_str()), (c.cubin, c.log.as_str()));
        assert!(hit.from_cache);
        // an empty CUBIN (a write cut short) is compiled again, not loaded
        std::fs::write(base.with_extension("cubin"), b"").unwrap();
        assert!(cache_load(&base).is_none());
    }

    #[test]
    fn reads_entry_parameter_types_from_ptx() {
        let ptx = ".version 8.8\n.visible .entry gv_copy(\n\t.param .u64 .ptr .global .align 16 gv_copy_param_0,\n\t.param .u64 gv_copy_param_1,\n\t.param .f32 gv_copy_param_2\n)\n{\n}\n.visible .entry empty()\n{\n}\n.entry gv_s(\n\t.param .u32 gv_s_param_0\n)";
        let e = ptx_entries(ptx);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            (
                "gv_copy".to_string(),
                vec![".u64".to_string(), ".u64".into(), ".f32".into()]
            )
        );
        assert_eq!(e[1], ("empty".to_string(), vec![]));
        assert_eq!(e[2].1, vec![".u32".to_string()]);
        // a TMA descriptor passed by value keeps its array length
        let tma = ".entry k(\n\t.param .align 64 .b8 k_param_0[128],\n\t.param .u32 k_param_1\n)";
        assert_eq!(
            ptx_entries(tma)[0].1,
            vec![".b8[128]".to_string(), ".u32".into()]
        );
    }

    #[test]
    fn parses_ptxas_report() {
        let log = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'gv_copy' for 'sm_90a'\n\
ptxas info    : Function properties for gv_copy\n\
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
ptxas info    : Used 18 registers, used 0 barriers, 376 bytes cmem[0]\n\
ptxas info    : Compiling entry function 'gv_read' for 'sm_90a'\n\
ptxas info    : Function properties for gv_read\n\
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
ptxas info    : Used 32 registers, used 1 barriers, 256 bytes smem, 376 bytes cmem[0]\n";
        let r = parse_ptxas(log);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0, "gv_copy");
        assert_eq!(r[0].1.registers, 18);
        assert_eq!(r[0].1.static_smem, 0, "no `bytes smem` on the line: none");
        assert_eq!(
            resources_of(log, KernelId::MemRead),
            Some(KernelResources {
                registers: 32,
                spill_stores: 4,
                spill_loads: 12,
                stack_bytes: 8,
                static_smem: 256,
            })
        );
        assert_eq!(resources_of(log, KernelId::MemWrite), None);
    }
}
