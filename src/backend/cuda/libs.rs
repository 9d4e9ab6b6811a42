//! Finding and loading the CUDA libraries without ever panicking.
//!
//! cudarc (with `dynamic-loading`) dlopens bare library names on first use and panics when none
//! loads. So before any cudarc call we look for each library ourselves, in the places people
//! install them (`GPUVET_CUDA_LIB_DIR`, `LD_LIBRARY_PATH`, `CUDA_HOME`, `/usr/local/cuda*`,
//! conda, pip wheels), pick a version the driver accepts, and dlopen it by absolute path with
//! `RTLD_GLOBAL`. glibc then answers cudarc's later bare-name dlopen (`libnvrtc.so.13`) with
//! the library already loaded, because it matches loaded objects by SONAME.
//!
//! Every missing piece becomes one line saying what is missing, what still works and what to
//! install.

use std::collections::BTreeMap;
use std::ffi::{c_void, CString, OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable naming extra folders (colon-separated) to search first.
pub const LIB_DIR_ENV: &str = "GPUVET_CUDA_LIB_DIR";

/// One library the CUDA backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    Nvrtc,
    CublasLt,
    /// NCCL (collectives): looked for only when a collective is planned.
    Nccl,
}

impl Lib {
    /// File name stem: `libnvrtc` matches `libnvrtc.so`, `libnvrtc.so.13`, `libnvrtc.so.13.0.88`.
    pub fn stem(self) -> &'static str {
        match self {
            Lib::Nvrtc => "libnvrtc",
            Lib::CublasLt => "libcublasLt",
            Lib::Nccl => "libnccl",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Lib::Nvrtc => "NVRTC",
            Lib::CublasLt => "cuBLASLt",
            Lib::Nccl => "NCCL",
        }
    }
}

/// A library file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    /// Major version from the file name (`.so.13`) or from the symlink target of `.so`.
    pub major: Option<u32>,
}

/// An environment variable the search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Var {
    /// Folders searched first, and the only place besides the loader's own path where the
    /// driver is looked for.
    LibDir,
    LdLibraryPath,
    /// A toolkit's root.
    CudaHome,
    /// An active conda environment.
    CondaPrefix,
    /// An active Python virtualenv.
    VirtualEnv,
    /// Each `bin/..` on it may be a Python install (pyenv, venvs) with NVIDIA wheels.
    Path,
}

impl Var {
    pub const ALL: [Var; 6] = [
        Var::LibDir,
        Var::LdLibraryPath,
        Var::CudaHome,
        Var::CondaPrefix,
        Var::VirtualEnv,
        Var::Path,
    ];

    /// The variable's names; the first one set is used.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Var::LibDir => &[LIB_DIR_ENV],
            Var::LdLibraryPath => &["LD_LIBRARY_PATH"],
            Var::CudaHome => &["CUDA_HOME", "CUDA_PATH"],
            Var::CondaPrefix => &["CONDA_PREFIX"],
            Var::VirtualEnv => &["VIRTUAL_ENV"],
            Var::Path => &["PATH"],
        }
    }
}

/// The inputs of the search, so tests can point it at temporary folders.
#[derive(Debug, Clone, Default)]
pub struct SearchEnv {
    /// The variables that are set.
    vars: BTreeMap<Var, OsString>,
    pub home: Option<PathBuf>,
    /// Where `cuda`, `cuda-12.8`, ... and `lib/python3*` live: `/usr/local` and `/usr` normally.
    pub system_roots: Vec<PathBuf>,
}

impl SearchEnv {
    /// The search inputs of this process.
    pub fn from_process() -> Self {
        let set = |v: Var| v.names().iter().find_map(std::env::var_os).map(|x| (v, x));
        SearchEnv {
            vars: Var::ALL.into_iter().filter_map(set).collect(),
            home: dirs::home_dir(),
            system_roots: vec![PathBuf::from("/usr/local"), PathBuf::from("/usr")],
        }
    }

    /// These inputs with `var` set to `value`.
    pub fn with(mut self, var: Var, value: impl Into<OsString>) -> Self {
        self.vars.insert(var, value.into());
        self
    }

    /// The value of `var`, when set.
    pub fn var(&self, var: Var) -> Option<&OsStr> {
        self.vars.get(&var).map(OsString::as_os_str)
    }

    /// The folders `var` lists (colon-separated), without empty entries.
    fn paths(&self, var: Var) -> Vec<PathBuf> {
        let listed = self.var(var).map(std::env::split_paths);
        let paths = listed.into_iter().flatten();
        paths.filter(|p| !p.as_os_str().is_empty()).collect()
    }

    /// Folders to search, in priority order, without duplicates and never a `stubs` folder
    /// (its `libcuda.so` stub would shadow the real driver).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        out.extend(self.paths(Var::LibDir));
        out.extend(self.paths(Var::LdLibraryPath));
        for home in self.paths(Var::CudaHome) {
            out.push(home.join("lib64"));
            out.push(home.join("lib"));
            out.push(home.join("targets/x86_64-linux/lib"));
            out.push(home.join("targets/sbsa-linux/lib"));
        }
        for root in &self.system_roots {
            out.push(root.join("cuda/lib64"));
            out.push(root.join("cuda/targets/x86_64-linux/lib"));
            out.push(root.join("cuda/targets/sbsa-linux/lib"));
            // cuda-13.0, cuda-12.8, ...: newest first.
            let mut versioned: Vec<(Vec<u32>, PathBuf)> = read_dir_names(root)
                .into_iter()
                .filter_map(|n| {
                    let v = n.strip_prefix("cuda-")?;
                    let key: Vec<u32> = v
                        .split('.')
                        .map(|p| p.parse().ok())
                        .collect::<Option<_>>()?;
                    Some((key, root.join(&n).join("lib64")))
                })
                .collect();
            versioned.sort_by(|a, b| b.0.cmp(&a.0));
            out.extend(versioned.into_iter().map(|(_, p)| p));
        }
        for prefix in self.paths(Var::CondaPrefix) {
            out.push(prefix.join("lib"));
        }
        for sp in self.site_packages() {
            let nv = sp.join("nvidia");
            // 13.x wheels share one folder; 12.x wheels have one per package.
            out.push(nv.join("cu13/lib"));
            out.push(nv.join("cuda_nvrtc/lib"));
            out.push(nv.join("cublas/lib"));
            out.push(nv.join("cu12/lib"));
            // NCCL's wheels (nvidia-nccl-cu13, -cu12) keep their own folder.
            out.push(nv.join("nccl/lib"));
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| !p.components().any(|c| c.as_os_str() == "stubs") && seen.insert(p.clone()));
        out
    }

    /// Python `site-packages` / `dist-packages` folders: the virtualenv, conda, user, system and
    /// every `bin/..` on PATH (pyenv, venvs), without running Python.
    fn site_packages(&self) -> Vec<PathBuf> {
        let mut prefixes: Vec<PathBuf> = [Var::VirtualEnv, Var::CondaPrefix]
            .into_iter()
            .filter_map(|v| self.var(v).map(PathBuf::from))
            .collect();
        if let Some(h) = &self.home {
            prefixes.push(h.join(".local"));
        }
        if let Some(p) = self.var(Var::Path) {
            for dir in std::env::split_paths(p) {
                if dir.ends_with("bin") {
                    if let Some(parent) = dir.parent() {
                        prefixes.push(parent.to_path_buf());
                    }
                }
            }
        }
        prefixes.extend(self.system_roots.iter().cloned());
        let mut out = Vec::new();
        for prefix in prefixes {
            let lib = prefix.join("lib");
            let mut names = read_dir_names(&lib);
            names.sort();
            names.reverse();
            for n in names.iter().filter(|n| n.starts_with("python3")) {
                out.push(lib.join(n).join("site-packages"));
                out.push(lib.join(n).join("dist-packages"));
            }
            out.push(lib.join("python3/dist-packages"));
        }
        out
    }
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Parses the major version out of `stem.so.13[.0.88]`; `None` for `stem.so` or other names.
pub fn major_from_name(stem: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(stem)?.strip_prefix(".so.")?;
    rest.split('.').next()?.parse().ok()
}

/// Every `stem.so*` in `dir` (not `-builtins`, not `.alt`), with its major version.
pub fn candidates_in(dir: &Path, lib: Lib) -> Vec<Candidate> {
    let stem = lib.stem();
    let mut names: Vec<String> = read_dir_names(dir)
        .into_iter()
        .filter(|n| n == &format!("{stem}.so") || n.starts_with(&format!("{stem}.so.")))
        .collect();
    // Shortest (libnvrtc.so.13) before longest (libnvrtc.so.13.0.88): the SONAME link first.
    names.sort_by_key(|n| (n.len(), n.clone()));
    let mut out: Vec<Candidate> = Vec::new();
    for n in names {
        let path = dir.join(&n);
        let major = major_from_name(stem, &n).or_else(|| {
            // `libnvrtc.so` is a link to the versioned file: read the version from the target.
            let target = std::fs::canonicalize(&path).ok()?;
            major_from_name(stem, target.file_name()?.to_str()?)
        });
        if out.iter().any(|c| c.major == major) {
            continue;
        }
        out.push(Candidate { path, major });
    }
    out
}

/// Every candidate for `lib` in `dirs`, in search order.
pub fn find_all(dirs: &[PathBuf], lib: Lib) -> Vec<Candidate> {
    dirs.iter().flat_map(|d| candidates_in(d, lib)).collect()
}

/// Picks the library to load: the newest major version not newer than the driver's CUDA major
/// (a newer NVRTC emits code the driver rejects; a newer cuBLASLt refuses to start), first in
/// search order among equals. Without a driver (compiling in CI) the newest wins.
pub fn choose(cands: &[Candidate], driver_major: Option<u32>) -> Option<&Candidate> {
    let ok = |c: &&Candidate| match (c.major, driver_major) {
        (Some(m), Some(d)) => m <= d,
        _ => true,
    };
    let best = cands
        .iter()
        .filter(ok)
        .map(|c| c.major.unwrap_or(0))
        .max()?;
    cands
        .iter()
        .filter(ok)
        .find(|c| c.major.unwrap_or(0) == best)
}

/// Why no candidate was chosen, as one actionable line.
pub fn missing_line(lib: Lib, cands: &[Candidate], driver_major: Option<u32>) -> String {
    let (what_works, install) = match lib {
        Lib::Nvrtc => (
            "cuBLASLt matmul and the driver memcpy still run; gpuvet's own kernels (memory copy/read/write/triad, attention softmax) do not",
            "`pip install nvidia-cuda-nvrtc==13.0.*` (or the CUDA toolkit) and point GPUVET_CUDA_LIB_DIR at the folder holding libnvrtc.so.*",
        ),
        Lib::CublasLt => (
            "memory kernels still run; matmul and attention do not",
            "the CUDA toolkit or `pip install nvidia-cublas` (13.x) and point GPUVET_CUDA_LIB_DIR at the folder holding libcublasLt.so.*",
        ),
        Lib::Nccl => (
            "transfers and peer copies still run; collectives do not",
            "`pip install nvidia-nccl-cu13` (or your distribution's libnccl2) and point GPUVET_CUDA_LIB_DIR at the folder holding libnccl.so.2",
        ),
    };
    if let (Some(d), false) = (driver_major, cands.is_empty()) {
        let found: Vec<String> = cands
            .iter()
            .map(|c| {
                format!(
                    "{} ({})",
                    c.path.display(),
                    c.major
                        .map_or("unknown version".into(), |m| format!("CUDA {m}"))
                )
            })
            .collect();
        return format!(
            "{} found only in versions newer than the driver's CUDA {d}: {}; {what_works}; install {} {d}.x or upgrade the driver",
            lib.label(),
            found.join(", "),
            lib.label(),
        );
    }
    format!(
        "{} not found (searched {LIB_DIR_ENV}, LD_LIBRARY_PATH, CUDA_HOME, /usr/local/cuda*, conda, pip nvidia/*/lib, the loader's path): {what_works}; install {install}",
        lib.label()
    )
}

/// `libnvrtc-builtins.so.13.*` next to a chosen `libnvrtc`: libnvrtc dlopens it by bare name,
/// which fails unless it is already loaded or its folder is on LD_LIBRARY_PATH.
pub fn nvrtc_builtins(dir: &Path, major: Option<u32>) -> Option<PathBuf> {
    let mut names: Vec<String> = read_dir_names(dir)
        .into_iter()
        .filter(|n| {
            let Some(rest) = n.strip_prefix("libnvrtc-builtins.so.") else {
                return false;
            };
            match major {
                None => true,
                Some(m) => rest.split('.').next() == Some(m.to_string().as_str()),
            }
        })
        .collect();
    names.sort();
    names.last().map(|n| dir.join(n))
}

/// A library handle that stays loaded for the life of the process.
#[derive(Debug, Clone, Copy)]
pub struct Handle(*mut c_void);

// SAFETY: a dlopen handle is a process-wide token; dlsym on it is thread-safe.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Handle {
    /// Looks up a symbol; `None` when absent.
    pub fn sym(&self, name: &str) -> Option<*mut c_void> {
        let c = CString::new(name).ok()?;
        // SAFETY: the handle came from a successful dlopen and is never closed.
        let p = unsafe { libc::dlsym(self.0, c.as_ptr()) };
        (!p.is_null()).then_some(p)
    }
}

/// dlopen with RTLD_NOW | RTLD_GLOBAL, returning the loader's message on failure. The handle
/// is never closed: cudarc keeps using the library for the life of the process.
pub fn dlopen_global(name: &str) -> Result<Handle, String> {
    let c = CString::new(name).map_err(|_| format!("library name {name:?} contains NUL"))?;
    // SAFETY: dlopen with a valid C string; dlerror is read right after on this thread.
    unsafe {
        let h = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if h.is_null() {
            let e = libc::dlerror();
            let msg = if e.is_null() {
                format!("cannot load {name}")
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            };
            return Err(msg);
        }
        Ok(Handle(h))
    }
}

/// The file holding the code at `addr` (`dladdr`; the address is only looked up, never read).
pub fn file_of(addr: usize) -> Option<PathBuf> {
    // SAFETY: Dl_info is plain data; all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only searches the loader's tables; info is a valid out-pointer.
    let ok = unsafe { libc::dladdr(addr as *const c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(name.to_string_lossy().into_owned()))
}

/// Which libraries cudarc actually uses. cudarc dlopens bare names (`libnvrtc.so` first), so a
/// different copy reachable through the loader's path can win over the one gpuvet chose and
/// preloaded; this reports the file each one resolved to, to be recorded and compared.
/// Call only after the probe found the library (cudarc panics otherwise; guarded anyway).
pub fn cudarc_nvrtc_file() -> Option<PathBuf> {
    resolved_file(|| {
        // SAFETY: the probe loaded NVRTC, so cudarc's lookup finds it; nvrtcVersion exists in
        // every NVRTC.
        let lib = unsafe { cudarc::nvrtc::sys::culib() };
        let f = unsafe { lib.get::<unsafe extern "C" fn()>(b"nvrtcVersion\0") }.ok()?;
        Some(*f as usize)
    })
}

/// See [`cudarc_nvrtc_file`].
pub fn cudarc_cublaslt_file() -> Option<PathBuf> {
    resolved_file(|| {
        // SAFETY: as above; cublasLtGetVersion exists in every cuBLASLt.
        let lib = unsafe { cudarc::cublaslt::sys::culib() };
        let f = unsafe { lib.get::<unsafe extern "C" fn()>(b"cublasLtGetVersion\0") }.ok()?;
        Some(*f as usize)
    })
}

/// The file holding the symbol `lookup` finds in one of cudarc's libraries; `None` when the
/// lookup fails or panics (cudarc panics when it finds no library).
fn resolved_file(
    lookup: impl FnOnce() -> Option<usize> + std::panic::UnwindSafe,
) -> Option<PathBuf> {
    std::panic::catch_unwind(lookup)
        .ok()
        .flatten()
        .and_then(file_of)
}

/// A line for the notice when cudarc resolved a library to another file than the chosen one.
pub fn mismatch_line(lib: Lib, chosen: &Path, used: &Path) -> Option<String> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    (canon(chosen) != canon(used)).then(|| {
        format!(
            "{} in use is {} (found first by the system loader), not {} chosen by gpuvet; put the chosen folder first in LD_LIBRARY_PATH if they differ in version",
            lib.label(),
            used.display(),
            chosen.display()
        )
    })
}

/// The driver library, loaded.
#[derive(Debug, Clone)]
pub struct Driver {
    pub handle: Handle,
    /// `cuDriverGetVersion`: 13000 for CUDA 13.0.
    pub cuda_version: i32,
}

impl Driver {
    pub fn major(&self) -> u32 {
        (self.cuda_version / 1000) as u32
    }
    pub fn version_string(&self) -> String {
        format!(
            "{}.{}",
            self.cuda_version / 1000,
            (self.cuda_version % 1000) / 10
        )
    }
}

/// A library chosen and loaded by absolute path.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub major: Option<u32>,
}

/// What was found, once per process.
#[derive(Debug)]
pub struct Probe {
    pub driver: Result<Driver, String>,
    pub nvrtc: Result<Loaded, String>,
    pub cublaslt: Result<Loaded, String>,
    pub nvml: Result<(), String>,
}

/// The oldest driver the cuda-13000 bindings work with: CUDA 12.0 (R525). Older drivers lack
/// symbols the bindings resolve (and would panic inside cudarc).
pub const MIN_DRIVER_CUDA: i32 = 12000;

static PROBE: OnceLock<Probe> = OnceLock::new();

/// Probes (once) and returns what is available. Never panics.
pub fn probe() -> &'static Probe {
    PROBE.get_or_init(|| {
        let env = SearchEnv::from_process();
        let dirs = env.dirs();
        let driver = load_driver(&env);
        let driver_major = driver.as_ref().ok().map(|d| d.major());
        let nvrtc = load_nvrtc(&dirs, driver_major);
        let cublaslt = load_lib(&dirs, Lib::CublasLt, driver_major);
        let nvml_names = driver_names(None, "libnvidia-ml.so.1", Path::is_file);
        let nvml = nvml_names.iter().find_map(|n| dlopen_global(n).ok()).map(|_| ()).ok_or_else(|| {
            "NVML (libnvidia-ml.so.1) not found: measurements still run, but clocks, temperature, power, throttling, ECC and PCIe state are not recorded; it ships with the NVIDIA driver".to_string()
        });
        Probe {
            driver,
            nvrtc,
            cublaslt,
            nvml,
        }
    })
}

/// Where container images mount the driver's user-space libraries (the NVIDIA container
/// toolkit's `/usr/local/nvidia`), tried after the loader's path: an image whose ld.so.cache
/// does not list them still finds the driver and NVML.
pub const DRIVER_MOUNT_DIRS: [&str; 2] = ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib"];

/// The names to dlopen for the driver library `soname` (`libcuda.so.1`, `libnvidia-ml.so.1`),
/// in order: `GPUVET_CUDA_LIB_DIR` folders, the SONAME through the loader's path, then the
/// driver mount folders; `exists` says which files are there. Stub copies never qualify.
pub fn driver_names(
    lib_dir: Option<&OsStr>,
    soname: &str,
    exists: impl Fn(&Path) -> bool,
) -> Vec<String> {
    let usable = |p: &Path| exists(p) && !p.components().any(|c| c.as_os_str() == "stubs");
    let mut names: Vec<String> = Vec::new();
    for d in lib_dir.map(std::env::split_paths).into_iter().flatten() {
        let p = d.join(soname);
        if usable(&p) {
            names.push(p.to_string_lossy().into_owned());
        }
    }
    names.push(soname.into());
    for d in DRIVER_MOUNT_DIRS {
        let p = Path::new(d).join(soname);
        if usable(&p) {
            names.push(p.to_string_lossy().into_owned());
        }
    }
    names
}

/// The driver is never searched for in toolkit folders (those hold only the stub); only the
/// loader's own path, plus `GPUVET_CUDA_LIB_DIR` for unusual installs (WSL, containers) and the
/// container mount folders ([`DRIVER_MOUNT_DIRS`]).
fn load_driver(env: &SearchEnv) -> Result<Driver, String> {
    let mut names = driver_names(env.var(Var::LibDir), "libcuda.so.1", Path::is_file);
    names.push("libcuda.so".into());
    // Report the loader's message for the SONAME (libcuda.so.1), the name that matters.
    let mut first: Option<String> = None;
    for n in &names {
        match dlopen_global(n) {
            Ok(handle) => return driver_from(handle),
            Err(e) if n == "libcuda.so.1" => first = Some(e),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(no_driver_line(first.as_deref().unwrap_or("")))
}

/// The line shown when there is no driver at all.
pub fn no_driver_line(loader_msg: &str) -> String {
    let why = if loader_msg.is_empty() {
        String::new()
    } else {
        format!(" ({loader_msg})")
    };
    format!(
        "no NVIDIA driver found: libcuda.so.1 is not loadable{why}; the CPU backend still works; install the NVIDIA driver (R580+ for CUDA 13, R525+ at the least) to measure a GPU"
    )
}

fn driver_from(handle: Handle) -> Result<Driver, String> {
    let Some(f) = handle.sym("cuDriverGetVersion") else {
        return Err("libcuda.so.1 loaded but has no cuDriverGetVersion: it is not a real NVIDIA driver (a stub?); the CPU backend still works; install the NVIDIA driver".into());
    };
    // SAFETY: cuDriverGetVersion(int*) -> CUresult, callable before cuInit.
    let get: unsafe extern "C" fn(*mut i32) -> i32 = unsafe { std::mem::transmute(f) };
    let mut v = 0i32;
    let rc = unsafe { get(&mut v) };
    if rc == 34 {
        return Err("the libcuda.so found is the toolkit's stub (CUDA_ERROR_STUB_LIBRARY), not a driver: remove lib64/stubs from LD_LIBRARY_PATH; the CPU backend still works".into());
    }
    if rc != 0 {
        return Err(format!(
            "the NVIDIA driver did not report its version (error {rc}); the CPU backend still works; check the driver installation (nvidia-smi)"
        ));
    }
    if v < MIN_DRIVER_CUDA {
        return Err(driver_too_old_line(v));
    }
    Ok(Driver {
        handle,
        cuda_version: v,
    })
}

/// The line shown for a driver older than the bindings support.
pub fn driver_too_old_line(cuda_version: i32) -> String {
    format!(
        "the NVIDIA driver supports CUDA {}.{} but gpuvet needs CUDA 12.0 or newer (driver R525+; R580+ recommended); the CPU backend still works; upgrade the driver",
        cuda_version / 1000,
        (cuda_version % 1000) / 10
    )
}

fn load_lib(dirs: &[PathBuf], lib: Lib, driver_major: Option<u32>) -> Result<Loaded, String> {
    let cands = find_all(dirs, lib);
    if let Some(c) = choose(&cands, driver_major) {
        let path = c.path.to_string_lossy().into_owned();
        return dlopen_global(&path)
            .map(|_| Loaded {
                path: c.path.clone(),
                major: c.major,
            })
            .map_err(|e| format!("{} at {path} failed to load: {e}", lib.label()));
    }
    if !cands.is_empty() {
        return Err(missing_line(lib, &cands, driver_major));
    }
    // Last resort: the loader's own path (ld.so.cache), by SONAME, newest allowed first.
    let top = driver_major.unwrap_or(13);
    for m in (11..=top).rev() {
        let name = format!("{}.so.{m}", lib.stem());
        if dlopen_global(&name).is_ok() {
            return Ok(Loaded {
                path: PathBuf::from(name),
                major: Some(m),
            });
        }
    }
    Err(missing_line(lib, &cands, driver_major))
}

/// Finds and loads NCCL (`libnccl.so.2`): the first in search order, else the loader's own
/// path (a distribution's libnccl2). Its file version is NCCL's (2), not CUDA's, so the driver
/// does not choose among copies; NCCL itself says at initialisation when it needs a newer
/// driver. Returns the handle its symbols are read from.
pub fn load_nccl(dirs: &[PathBuf]) -> Result<(Loaded, Handle), String> {
    let cands = find_all(dirs, Lib::Nccl);
    if let Some(c) = choose(&cands, None) {
        let path = c.path.to_string_lossy().into_owned();
        return dlopen_global(&path)
            .map(|h| {
                let l = Loaded {
                    path: c.path.clone(),
                    major: c.major,
                };
                (l, h)
            })
            .map_err(|e| format!("NCCL at {path} failed to load: {e}"));
    }
    for name in ["libnccl.so.2", "libnccl.so"] {
        if let Ok(h) = dlopen_global(name) {
            let l = Loaded {
                path: PathBuf::from(name),
                major: Some(2),
            };
            return Ok((l, h));
        }
    }
    Err(missing_line(Lib::Nccl, &[], None))
}

fn load_nvrtc(dirs: &[PathBuf], driver_major: Option<u32>) -> Result<Loaded, String> {
    let cands = find_all(dirs, Lib::Nvrtc);
    if let Some(c) = choose(&cands, driver_major) {
        if let Some(dir) = c.path.parent() {
            if let Some(b) = nvrtc_builtins(dir, c.major) {
                dlopen_global(&b.to_string_lossy()).map_err(|e| {
                    format!(
                        "NVRTC's builtins library {} failed to load: {e}",
                        b.display()
                    )
                })?;
            }
        }
    }
    load_lib(dirs, Lib::Nvrtc, driver_major)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"not a real library").unwrap();
    }

    /// A temporary folder holding `files` (paths relative to it).
    fn tree(files: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for f in files {
            touch(&t.path().join(f));
        }
        t
    }

    /// The major versions of what a search found, in order.
    fn majors(found: &[Candidate]) -> Vec<Option<u32>> {
        found.iter().map(|c| c.major).collect()
    }

    fn env_with(root: &Path) -> SearchEnv {
        SearchEnv {
            system_roots: vec![root.join("usr_local")],
            ..Default::default()
        }
    }

    #[test]
    fn the_driver_is_also_looked_for_where_containers_mount_it() {
        let have = |p: &Path| {
            p == Path::new("/usr/local/nvidia/lib64/libcuda.so.1")
                || p == Path::new("/opt/drv/libcuda.so.1")
                || p == Path::new("/opt/stubs/libcuda.so.1")
        };
        let dirs = std::ffi::OsString::from("/opt/drv:/opt/stubs");
        let n = driver_names(Some(&dirs), "libcuda.so.1", have);
        assert_eq!(
            n,
            [
                "/opt/drv/libcuda.so.1",
                "libcuda.so.1",
                "/usr/local/nvidia/lib64/libcuda.so.1"
            ]
        );
        assert_eq!(
            driver_names(None, "libnvidia-ml.so.1", |_| false),
            ["libnvidia-ml.so.1"]
        );
    }

    #[test]
    fn parses_major_versions() {
        assert_eq!(major_from_name("libnvrtc", "libnvrtc.so.13"), Some(13));
        assert_eq!(major_from_name("libnvrtc", "libnvrtc.so.12.8.93"), Some(12));
        assert_eq!(major_from_name("libnvrtc", "libnvrtc.so"), None);
        assert_eq!(
            major_from_name("libnvrtc", "libnvrtc-builtins.so.13.0"),
            None
        );
        assert_eq!(
            major_from_name("libcublasLt", "libcublasLt.so.13"),
            Some(13)
        );
    }

    #[test]
    fn finds_libraries_in_every_usual_place_in_order() {
        let t = tree(&[
            "explicit/libnvrtc.so.12",
            "cudahome/lib64/libnvrtc.so.13",
            "usr_local/cuda-12.8/lib64/libnvrtc.so.12",
            "usr_local/cuda-13.0/lib64/libnvrtc.so.13",
            "conda/lib/libcublasLt.so.13",
            "venv/lib/python3.11/site-packages/nvidia/cu13/lib/libnvrtc.so.13",
            "usr_local/cuda/lib64/stubs/libnvrtc.so.13",
        ]);
        let r = t.path();
        let [explicit, home, conda, venv] =
            ["explicit", "cudahome", "conda", "venv"].map(|d| r.join(d));
        let env = env_with(r)
            .with(Var::LibDir, &explicit)
            .with(Var::CudaHome, &home)
            .with(Var::CondaPrefix, &conda)
            .with(Var::VirtualEnv, &venv);
        let dirs = env.dirs();
        assert!(dirs.iter().all(|d| !d.ends_with("stubs")));
        let found = find_all(&dirs, Lib::Nvrtc);
        let paths: Vec<&Path> = found.iter().map(|c| c.path.as_path()).collect();
        assert_eq!(
            paths,
            vec![
                explicit.join("libnvrtc.so.12").as_path(),
                home.join("lib64/libnvrtc.so.13").as_path(),
                r.join("usr_local/cuda-13.0/lib64/libnvrtc.so.13").as_path(),
                r.join("usr_local/cuda-12.8/lib64/libnvrtc.so.12").as_path(),
                venv.join("lib/python3.11/site-packages/nvidia/cu13/lib/libnvrtc.so.13")
                    .as_path(),
            ]
        );
        assert_eq!(majors(&find_all(&dirs, Lib::CublasLt)), [Some(13)]);
    }

    #[test]
    fn finds_the_nccl_wheel_and_says_what_is_missing() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let venv = r.join("venv");
        touch(&venv.join("lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2"));
        let env = env_with(r).with(Var::VirtualEnv, &venv);
        let found = find_all(&env.dirs(), Lib::Nccl);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].major, Some(2));
        // A file that is not a library fails to load with the loader's reason, no panic.
        let e = load_nccl(&env.dirs()).unwrap_err();
        assert!(
            e.starts_with("NCCL at ") && e.contains("failed to load"),
            "{e}"
        );
        let none = missing_line(Lib::Nccl, &[], None);
        assert!(
            none.contains("collectives do not") && none.contains("nvidia-nccl-cu13"),
            "{none}"
        );
    }

    #[test]
    fn finds_pip_wheels_through_path() {
        let py = "pyenv/versions/3.11.7";
        let t = tree(&[&format!(
            "{py}/lib/python3.11/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
        )]);
        let bin = t.path().join(py).join("bin");
        let env = env_with(t.path()).with(Var::Path, std::env::join_paths([bin]).unwrap());
        assert_eq!(majors(&find_all(&env.dirs(), Lib::Nvrtc)), [Some(12)]);
    }

    #[test]
    fn reads_version_of_unversioned_link_and_skips_builtins() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        touch(&d.join("libnvrtc.so.13.0.88"));
        std::os::unix::fs::symlink(d.join("libnvrtc.so.13.0.88"), d.join("libnvrtc.so")).unwrap();
        touch(&d.join("libnvrtc-builtins.so.13.0"));
        touch(&d.join("libnvrtc.alt.so.13"));
        let c = candidates_in(d, Lib::Nvrtc);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].major, Some(13));
        assert_eq!(
            nvrtc_builtins(d, Some(13)),
            Some(d.join("libnvrtc-builtins.so.13.0"))
        );
        assert_eq!(nvrtc_builtins(d, Some(12)), None);
    }

    #[test]
    fn never_picks_a_version_newer_than_the_driver() {
        let c = |p: &str, m: u32| Candidate {
            path: PathBuf::from(p),
            major: Some(m),
        };
        let cands = vec![
            c("/a/libnvrtc.so.12", 12),
            c("/b/libnvrtc.so.13", 13),
            c("/c/libnvrtc.so.13", 13),
        ];
        assert_eq!(
            choose(&cands, Some(13)).unwrap().path,
            PathBuf::from("/b/libnvrtc.so.13")
        );
        assert_eq!(
            choose(&cands, Some(12)).unwrap().path,
            PathBuf::from("/a/libnvrtc.so.12")
        );
        assert_eq!(choose(&cands, None).unwrap().major, Some(13));
        assert!(choose(&cands, Some(11)).is_none());
        assert!(choose(&[], Some(13)).is_none());
    }

    #[test]
    fn messages_say_what_is_missing_what_works_and_what_to_install() {
        let none = missing_line(Lib::Nvrtc, &[], Some(13));
        assert!(none.starts_with("NVRTC not found"), "{none}");
        assert!(none.contains("cuBLASLt matmul") && none.contains("pip install nvidia-cuda-nvrtc"));
        assert!(!none.contains('\n'));
        let newer = missing_line(
            Lib::CublasLt,
            &[Candidate {
                path: PathBuf::from("/x/libcublasLt.so.13"),
                major: Some(13),
            }],
            Some(12),
        );
        assert!(newer.contains("newer than the driver's CUDA 12"), "{newer}");
        assert!(newer.contains("memory kernels still run"));
        let d = no_driver_line("libcuda.so.1: cannot open shared object file");
        assert!(d.contains("CPU backend still works") && d.contains("install the NVIDIA driver"));
        let old = driver_too_old_line(11080);
        assert!(old.contains("CUDA 11.8") && old.contains("12.0"), "{old}");
    }

    /// Builds a fake `libcuda.so.1` (no SONAME, so it never answers a bare-name dlopen made
    /// elsewhere in this process) whose cuDriverGetVersion reports `version` and returns `rc`.
    fn fake_driver(dir: &Path, version: i32, rc: i32) -> Option<PathBuf> {
        let src = dir.join("fake.c");
        fs::write(
            &src,
            format!("int cuDriverGetVersion(int* v) {{ *v = {version}; return {rc}; }}\n"),
        )
        .unwrap();
        let lib = dir.join("libcuda.so.1");
        compile_stub(&src, &lib, "driver probing with a fake libcuda").then_some(lib)
    }

    /// Compiles the C stand-in `src` into the shared library `out` with `cc`; false, with a
    /// `SKIP <what>` line, where there is no C compiler.
    pub(crate) fn compile_stub(src: &Path, out: &Path, what: &str) -> bool {
        let ok = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(out)
            .arg(src)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            crate::output::say_skip(what, "no C compiler (cc)");
        }
        ok
    }

    #[test]
    fn driver_version_is_read_and_old_or_stub_drivers_are_refused() {
        let cases = [
            (13000, 0, Ok(13)),
            (12040, 0, Ok(12)),
            (11080, 0, Err("CUDA 11.8")),
            (13000, 34, Err("stub")),
            (0, 3, Err("did not report its version")),
        ];
        for (version, rc, want) in cases {
            let t = tempfile::tempdir().unwrap();
            let Some(_) = fake_driver(t.path(), version, rc) else {
                return;
            };
            let env = SearchEnv::default().with(Var::LibDir, t.path());
            match (load_driver(&env), want) {
                (Ok(d), Ok(major)) => assert_eq!(d.major(), major),
                (Err(e), Err(text)) => {
                    assert!(e.contains(text), "{version}/{rc}: {e}");
                    assert!(e.contains("CPU backend still works"), "{e}");
                }
                (got, want) => panic!("{version}/{rc}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn finds_the_file_a_symbol_lives_in() {
        let f = file_of(libc::malloc as *const () as usize).unwrap();
        assert!(f.to_string_lossy().contains("libc"), "{}", f.display());
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("libnvrtc.so.13");
        touch(&a);
        std::os::unix::fs::symlink(&a, t.path().join("libnvrtc.so")).unwrap();
        assert!(mismatch_line(Lib::Nvrtc, &a, &t.path().join("libnvrtc.so")).is_none());
        let other = mismatch_line(Lib::Nvrtc, &a, Path::new("/usr/lib/libnvrtc.so.12")).unwrap();
        assert!(other.contains("/usr/lib/libnvrtc.so.12"), "{other}");
    }

    #[test]
    fn a_fake_library_fails_to_load_with_the_loader_message() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("libnvrtc.so.13");
        touch(&p);
        let e = dlopen_global(&p.to_string_lossy()).unwrap_err();
        assert!(!e.is_empty());
    }
}
