//! The spec of a user kernel: a small TOML file beside the `.cu` (or the same facts from
//! flags), read into [`UserKernel`]s and [`KernelSpec`]s with every name, size and option
//! checked before anything is compiled or allocated. docs/kernels.md documents the format.
//!
//! ```toml
//! name = "vector_add"            # optional; the entry by default
//! source = "vector_add.cu"       # relative to this file
//! entry = "vector_add"           # the extern "C" __global__ function
//! dtype = "f32"                  # optional: whose peak the throughput is held against
//! options = ["--use_fast_math"]  # optional NVRTC options (an allowed list)
//! include = ["include"]          # optional include folders, relative to this file
//!
//! [vars]                         # integers or expressions of each other; `--set` overrides
//! N = "16Mi"
//! BLOCK = 256
//!
//! [defines]                      # -DNAME=value for the compile; values are expressions
//! BLOCK = "BLOCK"
//!
//! [launch]
//! grid = "cdiv(N, BLOCK)"        # x[, y[, z]] as one string or a list
//! block = "BLOCK"
//! smem = 0                       # bytes of dynamic shared memory
//! args = ["a", "b", "c", "u64:N"]
//!
//! [[buffers]]                    # free-form kernels only
//! name = "a"
//! dtype = "f32"
//! count = "N"                    # or shape = ["M", "K"]
//! init = "random"                # random | zeros | iota | file (with file = "a.npy")
//!
//! [[buffers]]
//! name = "c"
//! dtype = "f32"
//! count = "N"
//! output = true
//!
//! [work]                         # per launch; bytes default to every buffer once
//! flops = "N"
//!
//! [verify]                       # expected = "c.npy" (rtol, atol) | method = "determinism" | method = "none"
//! method = "determinism"
//! ```

use super::expr::{self, names_in};
use super::launch::{split_top_level, LaunchSpec};
use super::{BufType, Buffer, Init, KernelSpec, KernelVerify, Loaded, LoadedFiles, UserKernel};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::npy::{Npy, NpyKind};
use crate::tensor::Tensor;
use crate::workload::Metric;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most variables one spec declares.
pub const MAX_VARS: usize = 32;
/// Most buffers of one free-form kernel.
pub const MAX_BUFFERS: usize = 32;
/// Largest spec file read.
const MAX_SPEC_BYTES: u64 = 1 << 20;
/// Largest kernel source read.
const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// A whole number or an expression, as TOML holds it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    untagged,
    expecting = "a whole number or an expression in quotes (`4096`, `\"N * 4\"`)"
)]
pub enum Val {
    Int(i64),
    Text(String),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Int(i) => i.to_string(),
            Val::Text(s) => s.trim().to_string(),
        }
    }
}

/// Launch dimensions: `"cdiv(N,128), 4"`, `256`, or a list of those.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    untagged,
    expecting = "launch dimensions: a whole number, an expression in quotes (`\"cdiv(N, 256), 4\"`) or a list of those"
)]
pub enum Dims {
    List(Vec<Val>),
    One(Val),
}

impl Dims {
    fn exprs(&self) -> Vec<String> {
        match self {
            Dims::List(v) => v.iter().map(Val::text).collect(),
            Dims::One(Val::Text(s)) => split_top_level(s),
            Dims::One(v) => vec![v.text()],
        }
    }
}

/// `[launch]` of a spec file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchFile {
    pub grid: Dims,
    pub block: Dims,
    #[serde(default)]
    pub smem: Option<Val>,
    #[serde(default)]
    pub args: Vec<String>,
}

/// One `[[buffers]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferFile {
    pub name: String,
    pub dtype: String,
    #[serde(default)]
    pub count: Option<Val>,
    #[serde(default)]
    pub shape: Option<Dims>,
    #[serde(default)]
    pub init: Option<String>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub output: bool,
}

/// `[work]`: what one launch does.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WorkFile {
    #[serde(default)]
    pub flops: Option<Val>,
    #[serde(default)]
    pub bytes: Option<Val>,
    /// `flops` or `bytes`: the headline figure (default: flops when there are any).
    #[serde(default)]
    pub metric: Option<String>,
}

/// `[verify]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VerifyFile {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub expected: Option<String>,
    #[serde(default)]
    pub rtol: Option<f64>,
    #[serde(default)]
    pub atol: Option<f64>,
    #[serde(default)]
    pub runs: Option<u32>,
}

/// A spec file as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    #[serde(default)]
    pub name: Option<String>,
    pub source: String,
    pub entry: String,
    #[serde(default)]
    pub dtype: Option<String>,
    /// An implementation spec's B layout (`kn`, `nk`): matmul kernels only.
    #[serde(default)]
    pub layout: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, Val>,
    #[serde(default)]
    pub defines: BTreeMap<String, Val>,
    pub launch: LaunchFile,
    #[serde(default)]
    pub buffers: Vec<BufferFile>,
    #[serde(default)]
    pub work: Option<WorkFile>,
    #[serde(default)]
    pub verify: Option<VerifyFile>,
}

fn invalid(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{}: {msg}", path.display()))
}

/// `e` with the spec file named in front (an invalid-input message keeps a single prefix).
fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::InvalidInput(m) => invalid(path, m),
        other => other,
    }
}

/// Reads and parses a spec file (unknown keys are errors, so a typo never goes unnoticed).
pub fn read(path: &Path) -> Result<SpecFile> {
    if path.extension().is_some_and(|e| e == "cu" || e == "cuh") {
        return Err(invalid(
            path,
            "this is CUDA source, not a spec: `bench kernel --spec` takes a TOML spec naming the source, its buffers, launch and verification (docs/kernels.md); `bench matmul|attention|memory --kernel FILE.cu:ENTRY --launch …` takes a .cu directly",
        ));
    }
    let text = read_limited(path, MAX_SPEC_BYTES, "spec")?;
    toml::from_str(&text).map_err(|e| invalid(path, e.to_string().trim_end()))
}

fn read_limited(path: &Path, limit: u64, what: &str) -> Result<String> {
    crate::files::read_text_bounded(path, limit)
        .map_err(|e| invalid(path, format!("cannot read the {what}: {e}")))
}

/// SHA-256 of `bytes`, 16 hex digits.
pub fn sha256_16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const FUNCTIONS: [&str; 7] = ["ceil", "floor", "cdiv", "div", "align", "min", "max"];

/// A variable, buffer or macro name: a C identifier of at most 64 characters, not a function.
fn check_ident(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::invalid(format!(
            "{what} `{s}` is not a name (letters, digits and _, not starting with a digit, at most 64)"
        )));
    }
    if FUNCTIONS.contains(&s) {
        return Err(Error::invalid(format!(
            "{what} `{s}` is the name of a function of expressions; choose another"
        )));
    }
    Ok(())
}

/// A kernel name: it goes into result ids and file names, and `--impl` lists it, so it cannot
/// be one of that list's keywords (a kernel named `default` made `default,default`, which ran
/// the references alone and dropped the kernel without a word).
fn check_kernel_name(s: &str) -> Result<()> {
    if crate::workload::IMPL_KEYWORDS.contains(&s) {
        return Err(Error::invalid(format!(
            "kernel name `{s}` is a keyword of --impl ({}): choose another",
            crate::workload::IMPL_KEYWORDS.join(", ")
        )));
    }
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "kernel name `{s}`: use 1 to 64 letters, digits, `_`, `-` or `.`"
        )))
    }
}

/// NVRTC options a user may pass: what changes code generation or the preprocessor. Options
/// that choose the architecture (gpuvet compiles for the device's own), write files or link
/// are refused.
const ALLOWED_OPTIONS: [&str; 26] = [
    "-D",
    "--define-macro",
    "-U",
    "--undefine-macro",
    "--use_fast_math",
    "-use_fast_math",
    "--ftz",
    "-ftz",
    "--prec-div",
    "-prec-div",
    "--prec-sqrt",
    "-prec-sqrt",
    "--fmad",
    "-fmad",
    "--maxrregcount",
    "-maxrregcount",
    "--std",
    "-std",
    "-lineinfo",
    "--generate-line-info",
    "--extra-device-vectorization",
    "--restrict",
    "--device-int128",
    "-w",
    "--disable-warnings",
    "--diag-suppress",
];

/// Refuses an NVRTC option outside [`ALLOWED_OPTIONS`].
pub fn check_option(o: &str) -> Result<()> {
    if o.contains('\0') || o.len() > 4096 {
        return Err(Error::invalid(
            "an NVRTC option holds a NUL byte or is over 4096 bytes",
        ));
    }
    let head = o.split('=').next().unwrap_or(o);
    // Include folders go through `include` (or `--include`): the headers found there are
    // hashed into the build, so an edited header is a changed kernel. One named by `-I` was
    // searched by NVRTC but hashed by its name alone: the cached build of the old header ran.
    if o.starts_with("-I") || head == "--include-path" {
        return Err(Error::invalid(format!(
            "NVRTC option `{o}`: name include folders with `include = [\"DIR\"]` in the \
             spec (or --include DIR), whose headers are hashed into the build"
        )));
    }
    let allowed = ALLOWED_OPTIONS
        .iter()
        .any(|a| head == *a || (a.len() == 2 && o.starts_with(a) && o.len() > 2));
    if allowed {
        return Ok(());
    }
    let why = if head.contains("arch") {
        " (gpuvet compiles for the device's own architecture)"
    } else {
        ""
    };
    Err(Error::invalid(format!(
        "NVRTC option `{o}` is not accepted{why}; allowed: {}",
        ALLOWED_OPTIONS.join(" ")
    )))
}

/// The variables of a spec with `overrides` applied, every expression evaluated (variables may
/// refer to each other in any order, not in a circle).
pub fn resolve_vars(
    raw: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, i64>> {
    let mut done: BTreeMap<String, i128> = overrides
        .iter()
        .map(|(k, v)| (k.clone(), *v as i128))
        .collect();
    let mut pending: Vec<(&String, &String)> =
        raw.iter().filter(|(k, _)| !done.contains_key(*k)).collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut i = 0;
        while i < pending.len() {
            let (k, e) = pending[i];
            let ready = names_in(e)
                .iter()
                .all(|n| done.contains_key(n) || !raw.contains_key(n));
            if ready {
                let v = expr::eval(e, &done)
                    .map_err(|err| Error::invalid(format!("variable {k}: {err}")))?;
                let v = i64::try_from(v).map_err(|_| {
                    Error::invalid(format!("variable {k} = {v} does not fit 64 bits"))
                })?;
                done.insert(k.clone(), v as i128);
                pending.remove(i);
            } else {
                i += 1;
            }
        }
        if pending.len() == before {
            let circle: Vec<&str> = pending.iter().map(|(k, _)| k.as_str()).collect();
            return Err(Error::invalid(format!(
                "variables refer to each other in a circle: {}",
                circle.join(", ")
            )));
        }
    }
    Ok(done.into_iter().map(|(k, v)| (k, v as i64)).collect())
}

/// Parses `--set NAME=VALUES` (VALUES: a list, range or powers of two, as sweep axes take).
pub fn parse_set(s: &str) -> Result<(String, Vec<i64>)> {
    let (name, values) = s.split_once('=').ok_or_else(|| {
        Error::invalid(format!(
            "--set `{s}`: expected NAME=VALUES (e.g. BLOCK=64,128,256)"
        ))
    })?;
    let name = name.trim();
    check_ident("--set variable", name)?;
    // Each value as a spec's variable is written: a whole number, with a binary suffix (`64Mi`).
    let value = |t: &str| -> std::result::Result<u64, String> {
        let v =
            expr::eval(t.trim(), &BTreeMap::<String, i128>::new()).map_err(|e| e.to_string())?;
        if v < 0 {
            return Err(format!("`{t}` is not a whole number"));
        }
        i64::try_from(v)
            .map(|v| v as u64)
            .map_err(|_| format!("`{t}` = {v} does not fit 63 bits"))
    };
    let axis = crate::workload::axis::Axis::parse_with(values, &value)
        .map_err(|e| Error::invalid(format!("--set {name}: {e}")))?
        .0;
    let v = axis
        .into_iter()
        .map(|x| {
            i64::try_from(x).map_err(|_| Error::invalid(format!("--set {name}: {x} is too large")))
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok((name.to_string(), v))
}

/// Every combination of the `--set` values (the first flag outermost), each as the overrides
/// of one kernel; one empty combination without flags.
pub fn combinations(sets: &[(String, Vec<i64>)]) -> Result<Vec<BTreeMap<String, i64>>> {
    let mut seen = Vec::new();
    for (n, _) in sets {
        if seen.contains(n) {
            return Err(Error::invalid(format!("--set {n} is given twice")));
        }
        seen.push(n.clone());
    }
    let lens: Vec<usize> = sets.iter().map(|(_, v)| v.len()).collect();
    let mut out = Vec::new();
    for ix in crate::workload::axis::cross(&lens) {
        if out.len() >= crate::workload::axis::MAX_SWEEP_WORKLOADS {
            return Err(Error::invalid(format!(
                "--set makes more than {} combinations; narrow it",
                crate::workload::axis::MAX_SWEEP_WORKLOADS
            )));
        }
        out.push(
            sets.iter()
                .zip(ix)
                .map(|((n, v), i)| (n.clone(), v[i]))
                .collect(),
        );
    }
    Ok(out)
}

/// The pieces of a kernel every spec shares, read and checked once.
#[derive(Debug, Clone)]
struct Base {
    kernel: UserKernel,
    /// The variables as written (expressions).
    raw_vars: BTreeMap<String, String>,
}

impl Base {
    /// The kernel of one `--set` combination: variables resolved, the swept ones in its name
    /// when `tag` (implementation mode: each point is its own implementation).
    fn with(&self, set: &BTreeMap<String, i64>, tag: bool) -> Result<UserKernel> {
        let mut k = self.kernel.clone();
        k.vars = resolve_vars(&self.raw_vars, set)?;
        if tag && !set.is_empty() {
            let parts: Vec<String> = set.iter().map(|(n, v)| format!("{n}={v}")).collect();
            k.name = format!("{}[{}]", k.name, parts.join(","));
        }
        Ok(k)
    }

    /// Refuses `--set` variables that no expression uses (a typo would sweep nothing).
    fn check_sets_used(&self, sets: &[(String, Vec<i64>)], more: &[String]) -> Result<()> {
        let k = &self.kernel;
        let mut exprs: Vec<&String> = k.defines.values().collect();
        exprs.extend(&k.launch.grid);
        exprs.extend(&k.launch.block);
        exprs.push(&k.launch.smem);
        exprs.extend(self.raw_vars.values());
        exprs.extend(more);
        // An argument's type prefix (`u64:N`) is no name: `--set u64=3` swept nothing.
        let args = k.launch.args.iter().map(|a| match a.split_once(':') {
            Some((_, e)) => e,
            None => a.as_str(),
        });
        let mut texts: Vec<&str> = exprs.iter().map(|e| e.as_str()).collect();
        texts.extend(args);
        for (n, _) in sets {
            if !texts.iter().any(|e| names_in(e).contains(n)) {
                return Err(Error::invalid(format!(
                    "--set {n}: no define, launch, variable or buffer expression uses `{n}`"
                )));
            }
        }
        Ok(())
    }
}

/// Reads the source and checks everything about the kernel part of a spec.
fn base(f: &SpecFile, dir: &Path) -> Result<Base> {
    let name = f.name.clone().unwrap_or_else(|| f.entry.clone());
    check_kernel_name(&name)?;
    check_ident("entry", &f.entry)?;
    let source = dir.join(&f.source);
    let text = read_limited(&source, MAX_SOURCE_BYTES, "kernel source")?;
    for o in &f.options {
        check_option(o)?;
    }
    let mut include_dirs = Vec::new();
    for i in &f.include {
        let d = dir.join(i);
        if !d.is_dir() {
            return Err(Error::invalid(format!(
                "include folder {} does not exist",
                d.display()
            )));
        }
        include_dirs.push(d);
    }
    if f.vars.len() > MAX_VARS {
        return Err(Error::invalid(format!(
            "{} variables; at most {MAX_VARS}",
            f.vars.len()
        )));
    }
    for k in f.vars.keys() {
        check_ident("variable", k)?;
    }
    for k in f.defines.keys() {
        check_ident("define", k)?;
    }
    let launch = LaunchSpec {
        grid: f.launch.grid.exprs(),
        block: f.launch.block.exprs(),
        smem: f.launch.smem.as_ref().map(Val::text).unwrap_or_default(),
        args: f.launch.args.clone(),
    };
    launch.check_shape()?;
    Ok(Base {
        kernel: UserKernel {
            name,
            source_sha256: sha256_16(text.as_bytes()),
            source,
            entry: f.entry.clone(),
            options: f.options.clone(),
            include_dirs,
            defines: f
                .defines
                .iter()
                .map(|(k, v)| (k.clone(), v.text()))
                .collect(),
            vars: BTreeMap::new(),
            launch,
            for_dtype: None,
            for_layout: None,
            text: Some(Arc::from(text)),
        },
        raw_vars: f.vars.iter().map(|(k, v)| (k.clone(), v.text())).collect(),
    })
}

/// What `bench matmul|attention|memory --kernel …` asks for, as plain options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelRequest {
    /// `FILE.cu:ENTRY` or a spec `FILE.toml`.
    pub kernel: String,
    /// `--launch`: overrides the keys it names.
    pub launch: Option<String>,
    /// `--kernel-name`.
    pub name: Option<String>,
    /// `--define NAME=EXPR`.
    pub defines: Vec<String>,
    pub include: Vec<PathBuf>,
    /// `--nvrtc-opt`.
    pub options: Vec<String>,
    /// `--set NAME=VALUES`.
    pub sets: Vec<String>,
}

/// The user kernels of a request: one per `--set` combination, named `name[VAR=value]`.
pub fn implementations(req: &KernelRequest) -> Result<Vec<UserKernel>> {
    let (file, dir) = if req.kernel.ends_with(".toml") {
        let p = PathBuf::from(&req.kernel);
        let f = read(&p)?;
        if !f.buffers.is_empty() || f.work.is_some() || f.verify.is_some() {
            return Err(invalid(
                &p,
                "this spec describes a free-form kernel (buffers, work, verify): run it with `gpuvet bench kernel --spec`",
            ));
        }
        let dir = p.parent().unwrap_or(Path::new(".")).to_path_buf();
        (f, dir)
    } else {
        let (src, entry) = req.kernel.rsplit_once(':').ok_or_else(|| {
            Error::invalid(format!(
                "--kernel `{}`: expected FILE.cu:ENTRY or a spec FILE.toml",
                req.kernel
            ))
        })?;
        let launch = req.launch.as_deref().ok_or_else(|| {
            Error::invalid(
                "--kernel FILE.cu:ENTRY needs --launch 'grid=…,block=…,args=…' (or a spec FILE.toml)",
            )
        })?;
        let l = LaunchSpec::parse_flag(launch)?;
        let one = |v: &[String]| Dims::List(v.iter().map(|s| Val::Text(s.clone())).collect());
        let f = SpecFile {
            name: None,
            source: src.to_string(),
            entry: entry.to_string(),
            dtype: None,
            layout: None,
            options: Vec::new(),
            include: Vec::new(),
            vars: BTreeMap::new(),
            defines: BTreeMap::new(),
            launch: LaunchFile {
                grid: one(&l.grid),
                block: one(&l.block),
                smem: (!l.smem.is_empty()).then(|| Val::Text(l.smem.clone())),
                args: l.args.clone(),
            },
            buffers: Vec::new(),
            work: None,
            verify: None,
        };
        (f, PathBuf::from("."))
    };
    let mut f = file;
    if let Some(n) = &req.name {
        f.name = Some(n.clone());
    }
    f.options.extend(req.options.iter().cloned());
    for d in &req.defines {
        let (k, v) = d.split_once('=').unwrap_or((d.as_str(), "1"));
        f.defines
            .insert(k.trim().to_string(), Val::Text(v.to_string()));
    }
    let mut b = base(&f, &dir)?;
    let at = |e: String| Error::invalid(format!("{}: {e}", req.kernel));
    b.kernel.for_dtype = f.dtype.as_deref().map(str::parse).transpose().map_err(at)?;
    b.kernel.for_layout = f
        .layout
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(at)?;
    for i in &req.include {
        if !i.is_dir() {
            return Err(Error::invalid(format!(
                "--include {} is not a folder",
                i.display()
            )));
        }
        b.kernel.include_dirs.push(i.clone());
    }
    if let (Some(flag), true) = (&req.launch, req.kernel.ends_with(".toml")) {
        override_launch(&mut b.kernel.launch, &LaunchSpec::parse_partial(flag)?);
    }
    let sets = req
        .sets
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<Vec<_>>>()?;
    b.check_sets_used(&sets, &[])?;
    combinations(&sets)?
        .iter()
        .map(|set| b.with(set, true))
        .collect()
}

/// Replaces the keys of `l` that `flag` gives.
fn override_launch(l: &mut LaunchSpec, flag: &LaunchSpec) {
    if !flag.grid.is_empty() {
        l.grid = flag.grid.clone();
    }
    if !flag.block.is_empty() {
        l.block = flag.block.clone();
    }
    if !flag.smem.is_empty() {
        l.smem = flag.smem.clone();
    }
    if !flag.args.is_empty() {
        l.args = flag.args.clone();
    }
}

/// The free-form kernels of `path`: one per `--set` combination.
pub fn free_form(path: &Path, sets: &[String]) -> Result<Vec<KernelSpec>> {
    let f = read(path)?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if f.buffers.is_empty() {
        return Err(invalid(
            path,
            "no [[buffers]]: a free-form kernel names its buffers (a spec for `bench matmul --kernel` has none)",
        ));
    }
    if f.layout.is_some() {
        return Err(invalid(
            path,
            "`layout` says which B layout a matmul implementation is written for; a free-form kernel's buffers say their own shapes",
        ));
    }
    if f.buffers.len() > MAX_BUFFERS {
        return Err(invalid(path, format!("at most {MAX_BUFFERS} buffers")));
    }
    let b = base(&f, &dir).map_err(|e| in_file(path, e))?;
    let dtype: DType = f
        .dtype
        .as_deref()
        .unwrap_or("f32")
        .parse()
        .map_err(|e: String| invalid(path, e))?;
    let files = read_files(&f, &dir)?;
    let sets = sets
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<Vec<_>>>()?;
    let mut more: Vec<String> = Vec::new();
    for buf in &f.buffers {
        more.extend(buf.count.iter().map(Val::text));
        more.extend(buf.shape.iter().flat_map(Dims::exprs));
    }
    let work = f.work.clone().unwrap_or_default();
    more.extend(work.flops.iter().chain(&work.bytes).map(Val::text));
    b.check_sets_used(&sets, &more)?;
    combinations(&sets)?
        .iter()
        .map(|set| {
            let kernel = b.with(set, false)?;
            one_spec(&f, kernel, dtype, &files).map_err(|e| in_file(path, e))
        })
        .collect()
}

/// The `.npy` files a spec names, read once: inputs by buffer name, and the expected output.
struct Files {
    inputs: BTreeMap<String, (PathBuf, String, Npy)>,
    expected: Option<(PathBuf, String, Npy)>,
}

fn read_files(f: &SpecFile, dir: &Path) -> Result<Files> {
    let load = |rel: &str| -> Result<(PathBuf, String, Npy)> {
        let p = dir.join(rel);
        let (n, bytes) = crate::npy::read_with_bytes(&p)?;
        let sha = sha256_16(&bytes);
        Ok((p, sha, n))
    };
    let mut inputs = BTreeMap::new();
    for b in &f.buffers {
        if let Some(file) = &b.file {
            inputs.insert(b.name.clone(), load(file)?);
        }
    }
    let expected = match f.verify.as_ref().and_then(|v| v.expected.as_deref()) {
        Some(e) => Some(load(e)?),
        None => None,
    };
    Ok(Files { inputs, expected })
}

/// One free-form kernel with its variables fixed: buffers sized, work and verification set.
fn one_spec(f: &SpecFile, kernel: UserKernel, dtype: DType, files: &Files) -> Result<KernelSpec> {
    let vars: BTreeMap<String, i128> = kernel
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), *v as i128))
        .collect();
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut loaded = LoadedFiles::default();
    for bf in &f.buffers {
        let mut buf = buffer(bf, &vars)?;
        if buffers.iter().any(|b| b.name == buf.name) || vars.contains_key(&buf.name) {
            return Err(Error::invalid(format!(
                "buffer `{}` is named twice (or like a variable)",
                buf.name
            )));
        }
        if let Some((path, sha, npy)) = files.inputs.get(&buf.name) {
            buf.init = Init::File {
                path: path.clone(),
                sha256: sha.clone(),
            };
            loaded
                .inputs
                .insert(buf.name.clone(), tensor_from_npy(npy, &buf)?);
        }
        buffers.push(buf);
    }
    let work = f.work.clone().unwrap_or_default();
    let total: u64 = buffers.iter().map(Buffer::bytes).sum();
    let flops = match &work.flops {
        Some(v) => expr::eval_in(&v.text(), &vars, "work.flops", 0, u64::MAX as i128)
            .map_err(Error::invalid)? as f64,
        None => 0.0,
    };
    let bytes = match &work.bytes {
        Some(v) => expr::eval_in(&v.text(), &vars, "work.bytes", 0, u64::MAX as i128)
            .map_err(Error::invalid)? as u64,
        None => total,
    };
    let metric = match work.metric.as_deref() {
        None if flops > 0.0 => Metric::Flops,
        None | Some("bytes") => Metric::Bytes,
        Some("flops") if flops > 0.0 => Metric::Flops,
        Some("flops") => {
            return Err(Error::invalid(
                "work.metric = \"flops\" but work.flops is 0 or missing",
            ))
        }
        Some(m) => return Err(Error::invalid(format!("work.metric `{m}`: flops or bytes"))),
    };
    if metric == Metric::Bytes && bytes == 0 {
        // A rate of nothing moved would print 0 B/s and 0% of the peak as if measured.
        return Err(Error::invalid(
            "work.bytes is 0: the figure is bytes moved per second, so give the bytes the \
             kernel reads and writes (or work.flops with metric = \"flops\")",
        ));
    }
    let output = buffers
        .iter()
        .find(|b| b.output)
        .cloned()
        .ok_or_else(|| Error::invalid("no buffer is the output (`output = true`)"))?;
    let verify = verification(f.verify.as_ref(), &output, files, &mut loaded)?;
    let spec = KernelSpec {
        kernel,
        dtype,
        buffers,
        flops,
        bytes,
        metric,
        verify,
        files: Loaded::new(loaded),
    };
    spec.validate()?;
    Ok(spec)
}

fn buffer(bf: &BufferFile, vars: &BTreeMap<String, i128>) -> Result<Buffer> {
    check_ident("buffer", &bf.name)?;
    let at = |e: String| Error::invalid(format!("buffer `{}`: {e}", bf.name));
    let dtype: BufType = bf.dtype.parse().map_err(at)?;
    let dims: Vec<String> = match (&bf.count, &bf.shape) {
        (Some(c), None) => vec![c.text()],
        (None, Some(s)) => s.exprs(),
        _ => return Err(at("give either `count` or `shape`".into())),
    };
    if dims.is_empty() || dims.len() > 8 {
        return Err(at(format!(
            "a shape of 1 to 8 dimensions, not {}",
            dims.len()
        )));
    }
    let mut shape = Vec::new();
    for d in &dims {
        let v =
            expr::eval_in(d, vars, "size", 1, crate::workload::MAX_ELEMENTS as i128).map_err(at)?;
        shape.push(v as u64);
    }
    crate::workload::checked_product(&format!("buffer `{}`", bf.name), &shape)?;
    let elems: u128 = shape.iter().map(|&d| d as u128).product();
    if elems * dtype.size() as u128 > crate::workload::MAX_ELEMENTS {
        return Err(at(format!(
            "{elems} elements of {} bytes is far beyond any device memory",
            dtype.size()
        )));
    }
    let init = match (bf.init.as_deref(), &bf.file, bf.output) {
        (Some(_), _, true) | (None, Some(_), true) => {
            return Err(at(
                "an output starts poisoned (NaN or 0xFF bytes) so that an element left unwritten is caught; it takes no `init` (a kernel that updates a buffer in place needs a separate output)".into(),
            ))
        }
        (None, None, true) => Init::Zeros,
        (None | Some("random"), None, false) => Init::Random,
        (Some("zeros"), None, false) => Init::Zeros,
        (Some("iota"), None, false) => Init::Iota,
        (None | Some("file"), Some(file), false) => Init::File {
            path: PathBuf::from(file),
            sha256: String::new(),
        },
        (Some("file"), None, false) => return Err(at("init = \"file\" needs `file = \"x.npy\"`".into())),
        (Some(i), _, false) => {
            return Err(at(format!(
                "init `{i}`: random, zeros, iota or file (with `file = \"x.npy\"`)"
            )))
        }
    };
    Ok(Buffer {
        name: bf.name.clone(),
        dtype,
        shape,
        init,
        output: bf.output,
    })
}

/// The verification a spec asks for; never a silent none.
fn verification(
    v: Option<&VerifyFile>,
    output: &Buffer,
    files: &Files,
    loaded: &mut LoadedFiles,
) -> Result<KernelVerify> {
    let v = v.ok_or_else(|| {
        Error::invalid(
            "no [verify]: give `expected = \"out.npy\"` (with rtol, atol), `method = \"determinism\"`, or `method = \"none\"` (an unverified result never passes)",
        )
    })?;
    let method = v
        .method
        .as_deref()
        .unwrap_or(if v.expected.is_some() { "expected" } else { "" });
    let stray = |what: &str| {
        Error::invalid(format!(
            "verify: `{what}` does not apply to method `{method}`"
        ))
    };
    match method {
        "expected" => {
            let (path, sha, npy) = files
                .expected
                .as_ref()
                .ok_or_else(|| Error::invalid("verify: method expected needs `expected = \"out.npy\"`"))?;
            if v.runs.is_some() {
                return Err(stray("runs"));
            }
            if npy.len() as u64 != output.elements() {
                return Err(Error::invalid(format!(
                    "verify: {} holds {} elements, the output `{}` {}",
                    path.display(),
                    npy.len(),
                    output.name,
                    output.elements()
                )));
            }
            let rtol = v.rtol.unwrap_or(output.dtype.tolerance());
            let atol = v.atol.unwrap_or(0.0);
            for (n, x) in [("rtol", rtol), ("atol", atol)] {
                if !x.is_finite() || x < 0.0 {
                    return Err(Error::invalid(format!("verify: {n} = {x} must be ≥ 0")));
                }
            }
            // Read as an input of the output's type would be (`uint16` into f16/bf16 as raw
            // bits, floats refused for an integer output, integers checked against its range):
            // a bf16 1.0 stored as 0x3F80 was compared as 16256. Floats keep their precision.
            let as_output = tensor_from_npy(npy, output)
                .map_err(|e| Error::invalid(format!("verify: {}: {e}", path.display())))?;
            let raw16 = npy.kind == NpyKind::UInt && npy.size == 2;
            let values: Vec<f64> = if raw16 || !output.dtype.is_float() {
                (0..as_output.len()).map(|i| as_output.get(i)).collect()
            } else {
                (0..npy.len()).map(|i| npy.get(i)).collect()
            };
            loaded.expected = Some(BufType::F64.tensor(&output.name, vec![values.len()], &values));
            Ok(KernelVerify::Expected {
                path: path.clone(),
                sha256: sha.clone(),
                rtol,
                atol,
            })
        }
        "determinism" => {
            if v.expected.is_some() || v.rtol.is_some() || v.atol.is_some() {
                return Err(stray("expected/rtol/atol"));
            }
            let runs = v.runs.unwrap_or(3);
            if !(2..=16).contains(&runs) {
                return Err(Error::invalid(format!("verify: runs = {runs}, 2 to 16")));
            }
            Ok(KernelVerify::Determinism { runs })
        }
        "none" => {
            if v.expected.is_some() || v.runs.is_some() || v.rtol.is_some() || v.atol.is_some() {
                return Err(stray("expected/runs/rtol/atol"));
            }
            Ok(KernelVerify::Unverified)
        }
        "" => Err(Error::invalid(
            "verify: say how: `expected = \"out.npy\"`, `method = \"determinism\"` or `method = \"none\"`",
        )),
        m => Err(Error::invalid(format!(
            "verify: method `{m}`: expected, determinism or none"
        ))),
    }
}

/// An input buffer's contents from a `.npy` file: floats rounded to the buffer's type, whole
/// numbers exact (refused when out of its range); `uint16` into f16/bf16 as raw bits.
pub fn tensor_from_npy(npy: &Npy, b: &Buffer) -> Result<Tensor> {
    let at = |msg: String| Error::invalid(format!("buffer `{}` from .npy: {msg}", b.name));
    if npy.len() as u64 != b.elements() {
        return Err(at(format!(
            "the file holds {} elements ({:?}), the buffer {} ({:?})",
            npy.len(),
            npy.shape,
            b.elements(),
            b.shape
        )));
    }
    let shape: Vec<usize> = b.shape.iter().map(|&d| d as usize).collect();
    let raw16 = npy.kind == NpyKind::UInt && npy.size == 2;
    if raw16 && matches!(b.dtype, BufType::F16 | BufType::Bf16) {
        return Ok(b.dtype.from_bytes(&b.name, shape, &npy.data));
    }
    let values: Vec<f64> = (0..npy.len()).map(|i| npy.get(i)).collect();
    if !b.dtype.is_float() {
        if npy.kind == NpyKind::Float {
            return Err(at(format!(
                "{} holds floats; an integer buffer takes an integer array",
                npy.descr
            )));
        }
        let (lo, hi) = match b.dtype {
            BufType::I8 => (i8::MIN as f64, i8::MAX as f64),
            _ => (i32::MIN as f64, i32::MAX as f64),
        };
        if let Some(v) = values.iter().find(|v| **v < lo || **v > hi) {
            return Err(at(format!("{v} does not fit {}", b.dtype.name())));
        }
    }
    Ok(b.dtype.tensor(&b.name, shape, &values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WorkloadKind;

    const VADD: &str = r#"
name = "vadd"
source = "vadd.cu"
entry = "vadd"
options = ["--use_fast_math"]

[vars]
N = "4Ki"
BLOCK = 256
GRID = "cdiv(N, BLOCK)"

[defines]
BLOCK = "BLOCK"

[launch]
grid = "GRID"
block = "BLOCK"
args = ["a", "b", "c", "u64:N"]

[[buffers]]
name = "a"
dtype = "f32"
count = "N"
file = "a.npy"

[[buffers]]
name = "b"
dtype = "bf16"
shape = ["N / 64", 64]
init = "iota"

[[buffers]]
name = "c"
dtype = "f32"
count = "N"
output = true

[work]
flops = "N"

[verify]
expected = "c.npy"
rtol = 1e-6
"#;

    /// A folder with the vadd spec (`spec` replaces the text), its source and its arrays.
    fn folder(spec: &str) -> tempfile::TempDir {
        let d = crate::output::tests::folder_with(&[
            ("vadd.cu", "extern \"C\" __global__ void vadd() {}"),
            ("k.toml", spec),
        ]);
        let t = crate::tensor::Tensor::random("a", vec![4096], DType::F32, 1);
        crate::npy::write(&t, &d.path().join("a.npy")).unwrap();
        crate::npy::write(&t, &d.path().join("c.npy")).unwrap();
        let small = crate::tensor::Tensor::random("s", vec![7], DType::F32, 1);
        crate::npy::write(&small, &d.path().join("small.npy")).unwrap();
        d
    }

    fn load(spec: &str, sets: &[&str]) -> Result<Vec<KernelSpec>> {
        let d = folder(spec);
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        free_form(&d.path().join("k.toml"), &sets)
    }

    fn fails(spec: &str, sets: &[&str], want: &str) {
        let e = load(spec, sets).expect_err(want).to_string();
        assert!(e.contains(want), "wanted `{want}` in: {e}");
    }

    #[test]
    fn a_free_form_spec_reads_into_a_workload() {
        let v = load(VADD, &[]).unwrap();
        let [k] = &v[..] else { panic!("{v:?}") };
        assert_eq!(k.name(), "kernel.vadd.BLOCK=256.GRID=16.N=4096");
        assert_eq!(k.kernel.vars["GRID"], 16);
        assert_eq!(k.kernel.options, ["--use_fast_math"]);
        assert_eq!(k.buffers[1].shape, vec![64, 64]);
        assert_eq!(k.flops, 4096.0);
        assert_eq!(k.bytes, 4096 * 4 + 4096 * 2 + 4096 * 4);
        assert_eq!(k.metric, Metric::Flops);
        assert!(matches!(&k.buffers[0].init, Init::File { sha256, .. } if sha256.len() == 16));
        assert!(matches!(k.verify, KernelVerify::Expected { rtol, .. } if rtol == 1e-6));
        let ins = k.inputs(7);
        assert_eq!(ins.len(), 2, "the output is not an input");
        assert_eq!((ins[0].name.as_str(), ins[0].len()), ("a", 4096));
        assert_eq!(ins[1].get(100), 100.0);
        assert_eq!(k.output_len(), 4096);
        assert_eq!(k.kernel.source_sha256.len(), 16);
        let opts = k.kernel.nvrtc_options(&k.names()).unwrap();
        assert_eq!(opts, ["--use_fast_math", "-DBLOCK=256"]);
        let r = k.kernel.launch.resolve(&k.names()).unwrap();
        assert_eq!((r.grid, r.block[0]), ([16, 1, 1], 256));
        // the workload round-trips through a report (without its loaded arrays)
        let json = serde_json::to_string(k).unwrap();
        let back: KernelSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.name(), k.name());
        assert!(back.kernel.text.is_none());
    }

    #[test]
    fn set_sweeps_the_variables_and_recomputes_what_depends_on_them() {
        let v = load(VADD, &["BLOCK=64,128", "N=pow2:4096..8192"]);
        // N is both swept and used by the expected file's size: 8Ki does not match c.npy
        let e = v.unwrap_err().to_string();
        assert!(
            e.contains("the file holds 4096 elements ([4096]), the buffer 8192"),
            "{e}"
        );
        assert_eq!(e.matches("invalid input").count(), 1, "{e}");
        let dets = VADD
            .replace(
                "expected = \"c.npy\"\nrtol = 1e-6",
                "method = \"determinism\"",
            )
            .replace("file = \"a.npy\"", "init = \"random\"");
        let v = load(&dets, &["BLOCK=64,128", "N=4096,8192"]).unwrap();
        let names: Vec<String> = v.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), 4);
        assert_eq!(names[0], "kernel.vadd.BLOCK=64.GRID=64.N=4096");
        assert_eq!(names[3], "kernel.vadd.BLOCK=128.GRID=64.N=8192");
        assert!(matches!(v[0].verify, KernelVerify::Determinism { runs: 3 }));
    }

    #[test]
    fn set_values_are_written_as_spec_variables_are() {
        let (name, v) = parse_set("N=4Ki, 1Mi, pow2:1Ki..4Ki, 64..192:64").unwrap();
        assert_eq!(name, "N");
        assert_eq!(v, [4096, 1 << 20, 1024, 2048, 64, 128, 192]);
        for (bad, why) in [
            ("N=-5", "`-5` is not a whole number"),
            ("N=1.5", "not a whole number"),
            ("N=4Qi", "not a whole number"),
            ("N=0", "at least 1"),
            ("N=2**70", "does not fit 63 bits"),
            ("N", "expected NAME=VALUES"),
        ] {
            let e = parse_set(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    /// Each case: the text replaced in the vector-add spec, what replaces it, and what the
    /// error must say.
    const BAD_SPECS: &[(&str, &str, &str)] = &[
        (
            "entry = ",
            "entyr = \"x\"\nentry = ",
            "unknown field `entyr`",
        ),
        (
            "[verify]\nexpected = \"c.npy\"\nrtol = 1e-6",
            "",
            "no [verify]",
        ),
        (
            "expected = \"c.npy\"",
            "method = \"magic\"",
            "method `magic`",
        ),
        (
            "rtol = 1e-6",
            "rtol = 1e-6\nruns = 4",
            "`runs` does not apply",
        ),
        ("rtol = 1e-6", "rtol = -1.0", "rtol = -1 must be ≥ 0"),
        (
            "expected = \"c.npy\"",
            "expected = \"small.npy\"",
            "holds 7 elements",
        ),
        (
            "expected = \"c.npy\"",
            "expected = \"missing.npy\"",
            "missing.npy",
        ),
        (
            "output = true",
            "output = true\ninit = \"zeros\"",
            "takes no `init`",
        ),
        ("output = true", "output = false", "no buffer is the output"),
        (
            "init = \"iota\"",
            "init = \"iota\"\noutput = true",
            "takes no `init`",
        ),
        ("init = \"iota\"", "init = \"ones\"", "init `ones`"),
        (
            "shape = [\"N / 64\", 64]",
            "count = 1\nshape = [1]",
            "either `count` or `shape`",
        ),
        (
            "shape = [\"N / 64\", 64]",
            "count = \"2**62\"",
            "outside the allowed 1..=",
        ),
        (
            "shape = [\"N / 64\", 64]",
            "shape = [\"2**30\", \"2**30\"]",
            "far beyond",
        ),
        (
            "shape = [\"N / 64\", 64]",
            "count = \"N / 3\"",
            "not a whole number",
        ),
        ("name = \"b\"", "name = \"a\"", "named twice"),
        ("name = \"b\"", "name = \"N\"", "named twice"),
        (
            "dtype = \"bf16\"",
            "dtype = \"u16\"",
            "unknown buffer type `u16`",
        ),
        (
            "GRID = \"cdiv(N, BLOCK)\"",
            "GRID = \"cdiv(N, BLOCK) + X\"\nX = \"GRID\"",
            "in a circle: GRID, X",
        ),
        (
            "GRID = \"cdiv(N, BLOCK)\"",
            "GRID = \"cdiv(N, Q)\"",
            "unknown name `Q`",
        ),
        ("BLOCK = 256", "BLOCK = 0", "by zero"),
        ("BLOCK = 256", "min = 256", "name of a function"),
        ("BLOCK = 256", "2x = 256", "is not a name"),
        (
            "--use_fast_math",
            "--gpu-architecture=sm_80",
            "device's own architecture",
        ),
        ("--use_fast_math", "--create-pch=x", "not accepted"),
        (
            "--use_fast_math",
            "-I/usr/include",
            "name include folders with",
        ),
        (
            "--use_fast_math",
            "--include-path=inc",
            "whose headers are hashed",
        ),
        (
            "options = [",
            "include = [\"nowhere\"]\noptions = [",
            "does not exist",
        ),
        (
            "source = \"vadd.cu\"",
            "source = \"none.cu\"",
            "cannot read the kernel source",
        ),
        ("name = \"vadd\"", "name = \"a/b\"", "kernel name `a/b`"),
        ("entry = \"vadd\"", "entry = \"v add\"", "entry `v add`"),
        (
            "grid = \"GRID\"",
            "grid = \"GRID, 1, 1, 1\"",
            "grid of 1 to 3",
        ),
        ("grid = \"GRID\"", "grid = \"N * 2**20\"", "grid.x"),
        ("\"u64:N\"", "\"N\"", "is a variable: give its C type"),
        ("flops = \"N\"", "flops = \"-N\"", "work.flops"),
        ("flops = \"N\"", "metric = \"flops\"", "work.flops is 0"),
        (
            "grid = \"GRID\"",
            "grid = 1.5",
            "launch dimensions: a whole number",
        ),
        (
            "flops = \"N\"",
            "flops = true",
            "a whole number or an expression in quotes",
        ),
        ("flops = \"N\"", "bytes = \"N - N\"", "work.bytes is 0"),
        ("init = \"iota\"", "init = \"file\"", "needs `file = "),
        (
            "expected = \"c.npy\"",
            "method = \"none\"",
            "`expected/runs/rtol/atol` does not apply to method `none`",
        ),
        (
            "\"u64:N\"]",
            "\"u64:N\", \"f32:1e39\"]",
            "beyond the largest f32",
        ),
    ];

    #[test]
    fn bad_specs_are_refused_before_anything_runs() {
        for (from, to, why) in BAD_SPECS {
            assert!(VADD.contains(from), "{from}");
            fails(&VADD.replace(from, to), &[], why);
        }
        fails(
            VADD,
            &["BLOK=1,2"],
            "no define, launch, variable or buffer expression uses `BLOK`",
        );
        // The largest f32 itself is a float, as numpy prints it.
        load(
            &VADD.replace("\"u64:N\"]", "\"u64:N\", \"f32:3.4028235e38\"]"),
            &[],
        )
        .unwrap();
        // A type prefix is no variable.
        fails(VADD, &["u64=3"], "expression uses `u64`");
        fails(VADD, &["BLOCK=1", "BLOCK=2"], "given twice");
        fails(VADD, &["BLOCK"], "expected NAME=VALUES");
        fails(VADD, &["BLOCK=0"], "at least 1");
        fails(VADD, &["BLOCK=1..100000"], "at most 4096");
        fails("source = 1", &[], "invalid type");
        fails("not toml [", &[], "k.toml");
        let no_buffers = VADD.split("[[buffers]]").next().unwrap().to_string();
        fails(&no_buffers, &[], "no [[buffers]]");
    }

    #[test]
    fn npy_inputs_convert_to_the_buffer_type_or_say_why_not() {
        let b = |dtype| Buffer {
            name: "x".into(),
            dtype,
            shape: vec![2],
            init: Init::Zeros,
            output: false,
        };
        let ints = crate::npy::parse(&npy_bytes(
            "<i4",
            &[7i32.to_le_bytes(), 300i32.to_le_bytes()].concat(),
        ))
        .unwrap();
        assert_eq!(
            tensor_from_npy(&ints, &b(BufType::I32)).unwrap().to_f64(),
            vec![7.0, 300.0]
        );
        assert_eq!(
            tensor_from_npy(&ints, &b(BufType::F16)).unwrap().to_f64(),
            vec![7.0, 300.0]
        );
        let e = tensor_from_npy(&ints, &b(BufType::I8))
            .unwrap_err()
            .to_string();
        assert!(e.contains("300 does not fit i8"), "{e}");
        let floats = crate::npy::parse(&npy_bytes(
            "<f4",
            &[1.5f32.to_le_bytes(), 2f32.to_le_bytes()].concat(),
        ))
        .unwrap();
        let e = tensor_from_npy(&floats, &b(BufType::I32))
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds floats"), "{e}");
        let bits = crate::npy::parse(&npy_bytes(
            "<u2",
            &[0x3f80u16.to_le_bytes(), 0xc000u16.to_le_bytes()].concat(),
        ))
        .unwrap();
        assert_eq!(
            tensor_from_npy(&bits, &b(BufType::Bf16)).unwrap().to_f64(),
            vec![1.0, -2.0]
        );
        let mut three = b(BufType::F32);
        three.shape = vec![3];
        assert!(tensor_from_npy(&floats, &three)
            .unwrap_err()
            .to_string()
            .contains("holds 2 elements"));
    }

    fn npy_bytes(descr: &str, data: &[u8]) -> Vec<u8> {
        let n = data.len() / descr[2..].parse::<usize>().unwrap();
        let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({n},), }}");
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend((h.len() as u16).to_le_bytes());
        v.extend(h.as_bytes());
        v.extend(data);
        v
    }

    /// An expected output is read as an input of the output's type would be: `uint16` bits
    /// into a bf16 output (0x3F80 is 1.0, not 16256), no floats for an integer output.
    #[test]
    fn an_expected_npy_converts_to_the_output_type_as_inputs_do() {
        let bf16_out = VADD.replace(
            "name = \"c\"\ndtype = \"f32\"",
            "name = \"c\"\ndtype = \"bf16\"",
        );
        assert_ne!(bf16_out, VADD);
        let d = folder(&bf16_out);
        let ones: Vec<u8> = (0..4096).flat_map(|_| 0x3F80u16.to_le_bytes()).collect();
        std::fs::write(d.path().join("c.npy"), npy_bytes("<u2", &ones)).unwrap();
        let specs = free_form(&d.path().join("k.toml"), &[]).unwrap();
        let expected = specs[0].files.get().unwrap().expected.as_ref().unwrap();
        assert_eq!((expected.get(0), expected.get(4095)), (1.0, 1.0));

        let i32_out = VADD.replace(
            "name = \"c\"\ndtype = \"f32\"",
            "name = \"c\"\ndtype = \"i32\"",
        );
        let d = folder(&i32_out);
        let e = free_form(&d.path().join("k.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("an integer buffer takes an integer array"),
            "{e}"
        );
    }

    #[test]
    fn an_implementation_comes_from_flags_or_a_small_spec() {
        let d = folder(VADD);
        let cu = d.path().join("vadd.cu").display().to_string();
        let req = KernelRequest {
            kernel: format!("{cu}:vadd"),
            launch: Some("grid=cdiv(N,TILE),cdiv(M,TILE),block=TILE,TILE,args=A,B,C,M,N,K".into()),
            defines: vec!["TILE=TILE".into(), "FAST".into()],
            sets: vec!["TILE=8,16".into()],
            ..KernelRequest::default()
        };
        let ks = implementations(&req).unwrap();
        let names: Vec<&str> = ks.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["vadd[TILE=8]", "vadd[TILE=16]"]);
        assert_eq!(ks[1].vars["TILE"], 16);
        assert_eq!(ks[0].defines["FAST"], "1");
        assert_eq!(ks[0].launch.grid.len(), 2);
        // a spec with buffers is a free-form kernel, not an implementation
        let spec = d.path().join("k.toml").display().to_string();
        let e = implementations(&KernelRequest {
            kernel: spec,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("bench kernel --spec"), "{e}");
        // a small spec, its launch partly replaced by the flag
        let small = "source = \"vadd.cu\"\nentry = \"vadd\"\n[launch]\ngrid = [\"cdiv(M, 16)\"]\nblock = 256\nargs = [\"A\"]\n";
        std::fs::write(d.path().join("s.toml"), small).unwrap();
        let ks = implementations(&KernelRequest {
            kernel: d.path().join("s.toml").display().to_string(),
            launch: Some("block=128,smem=1Ki".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ks[0].launch.grid, ["cdiv(M, 16)"]);
        assert_eq!(
            (ks[0].launch.block[0].as_str(), ks[0].launch.smem.as_str()),
            ("128", "1Ki")
        );
        for (kernel, launch, want) in [
            (cu.clone(), Some("grid=1,block=1"), "FILE.cu:ENTRY"),
            (format!("{cu}:vadd"), None, "needs --launch"),
            (format!("{cu}:vadd"), Some("block=1"), "grid of 1 to 3"),
        ] {
            let e = implementations(&KernelRequest {
                kernel,
                launch: launch.map(String::from),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn options_outside_the_allowed_list_are_refused() {
        for ok in [
            "-DX=1",
            "-D",
            "--define-macro=X",
            "--use_fast_math",
            "--fmad=false",
            "--maxrregcount=64",
            "--std=c++20",
            "-lineinfo",
        ] {
            assert!(check_option(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-I/usr/include",
            "-arch=sm_80",
            "--gpu-architecture=sm_90",
            "-rdc=true",
            "--dlink-time-opt",
            "-G",
            "--pch",
            "-Dx\0",
        ] {
            assert!(check_option(bad).is_err(), "{bad}");
        }
    }
}
