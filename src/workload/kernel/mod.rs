//! User kernels: a CUDA kernel of the user's own, measured, verified, baselined and compared like
//! gpuvet's own (docs/kernels.md).
//!
//! Two ways in:
//!
//! * **As an implementation of a known workload** (`bench matmul --kernel my_gemm.cu:my_gemm
//!   --launch 'grid=…,block=…'`): the kernel runs on the workload's own inputs under the
//!   argument conventions of [`conventions`], and the workload's own verifier checks it. A
//!   [`UserKernel`] is all it needs.
//! * **Free-form** (`bench kernel --spec k.toml`): the spec also names the buffers, the work per
//!   launch and how to verify; that is a workload of its own kind, [`KernelSpec`].
//!
//! Everything here is data and pure functions: the spec file ([`spec`]), the expressions
//! ([`expr`]), the launch and its checks against the PTX and the device limits ([`launch`]).
//! The backends compile and run it.

pub mod conventions;
pub mod expr;
pub mod launch;
pub mod spec;
pub mod verify;

use super::axis::Param;
use super::{collect_checked, InputSpec, KindAxes, Metric, Workload, WorkloadKind};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{splitmix, stable_hash, Data, Tensor};
use launch::{ArgNames, LaunchSpec, Num, ScalarType};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The element type of a user kernel's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufType {
    F32,
    F64,
    F16,
    Bf16,
    Fp8E4m3,
    Fp8E5m2,
    I8,
    I32,
}

impl BufType {
    pub const ALL: [BufType; 8] = [
        BufType::F32,
        BufType::F64,
        BufType::F16,
        BufType::Bf16,
        BufType::Fp8E4m3,
        BufType::Fp8E5m2,
        BufType::I8,
        BufType::I32,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BufType::F32 => "f32",
            BufType::F64 => "f64",
            BufType::F16 => "f16",
            BufType::Bf16 => "bf16",
            BufType::Fp8E4m3 => "fp8_e4m3",
            BufType::Fp8E5m2 => "fp8_e5m2",
            BufType::I8 => "i8",
            BufType::I32 => "i32",
        }
    }

    pub fn size(self) -> u64 {
        match self {
            BufType::F64 => 8,
            BufType::F32 | BufType::I32 => 4,
            BufType::F16 | BufType::Bf16 => 2,
            BufType::Fp8E4m3 | BufType::Fp8E5m2 | BufType::I8 => 1,
        }
    }

    pub fn is_float(self) -> bool {
        !matches!(self, BufType::I8 | BufType::I32)
    }

    /// The default relative tolerance against an expected output: about one unit in the last
    /// place of the type (exact for integers).
    pub fn tolerance(self) -> f64 {
        match self {
            BufType::F64 => 1e-12,
            BufType::F32 => 1e-5,
            BufType::F16 | BufType::Bf16 => 1e-2,
            BufType::Fp8E4m3 => 0.0625,
            BufType::Fp8E5m2 => 0.125,
            BufType::I8 | BufType::I32 => 0.0,
        }
    }

    /// The gpuvet dtype stored the same way, where there is one (f64 and i32 have none).
    fn dtype(self) -> Option<DType> {
        Some(match self {
            BufType::F32 => DType::F32,
            BufType::F16 => DType::F16,
            BufType::Bf16 => DType::Bf16,
            BufType::Fp8E4m3 => DType::Fp8E4m3,
            BufType::Fp8E5m2 => DType::Fp8E5m2,
            BufType::I8 => DType::Int8,
            BufType::F64 | BufType::I32 => return None,
        })
    }

    /// A tensor of this type from f64 values (rounded to the type; integers must be exact).
    pub fn tensor(self, name: &str, shape: Vec<usize>, values: &[f64]) -> Tensor {
        let data = match self {
            BufType::F64 => Data::F64(values.to_vec()),
            BufType::I32 => Data::I32(values.iter().map(|&v| v.round() as i32).collect()),
            t => {
                let f: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                let d = t.dtype().expect("every other type has a dtype");
                return Tensor::from_f32(name, shape, d, &f);
            }
        };
        Tensor {
            name: name.to_string(),
            shape,
            data,
        }
    }

    /// Elements of this type read from little-endian device bytes.
    pub fn from_bytes(self, name: &str, shape: Vec<usize>, bytes: &[u8]) -> Tensor {
        use crate::tensor::decode_le;
        let data = match self {
            BufType::F32 => Data::F32(decode_le(bytes, f32::from_le_bytes)),
            BufType::F64 => Data::F64(decode_le(bytes, f64::from_le_bytes)),
            BufType::I32 => Data::I32(decode_le(bytes, i32::from_le_bytes)),
            BufType::F16 => Data::F16(decode_le(bytes, |b| {
                half::f16::from_bits(u16::from_le_bytes(b))
            })),
            BufType::Bf16 => Data::Bf16(decode_le(bytes, |b| {
                half::bf16::from_bits(u16::from_le_bytes(b))
            })),
            BufType::Fp8E4m3 => Data::F8E4M3(decode_le(bytes, |[b]| float8::F8E4M3::from_bits(b))),
            BufType::Fp8E5m2 => Data::F8E5M2(decode_le(bytes, |[b]| float8::F8E5M2::from_bits(b))),
            BufType::I8 => Data::I8(bytes.iter().map(|&b| b as i8).collect()),
        };
        Tensor {
            name: name.to_string(),
            shape,
            data,
        }
    }
}

impl std::str::FromStr for BufType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = match s.to_ascii_lowercase().as_str() {
            "f32" | "float" | "float32" => BufType::F32,
            "f64" | "double" | "float64" => BufType::F64,
            "f16" | "half" | "float16" => BufType::F16,
            "bf16" | "bfloat16" => BufType::Bf16,
            "fp8_e4m3" | "e4m3" => BufType::Fp8E4m3,
            "fp8_e5m2" | "e5m2" => BufType::Fp8E5m2,
            "i8" | "int8" => BufType::I8,
            "i32" | "int" | "int32" => BufType::I32,
            _ => {
                return Err(format!(
                    "unknown buffer type `{s}` (f32, f64, f16, bf16, fp8_e4m3, fp8_e5m2, i8, i32)"
                ))
            }
        };
        Ok(t)
    }
}

/// What a buffer holds before the first launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Init {
    /// Uniform in [-1, 1) rounded to the type (integers: i8 in [-127, 127], i32 in
    /// [-1000, 1000]), seeded by the run seed and the buffer's name.
    Random,
    Zeros,
    /// 0, 1, 2, … (rounded to the type).
    Iota,
    /// The elements of a `.npy` file (converted to the buffer's type).
    File {
        path: PathBuf,
        sha256: String,
    },
}

/// One buffer of a free-form kernel, its size evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buffer {
    pub name: String,
    pub dtype: BufType,
    pub shape: Vec<u64>,
    /// Inputs only; the output starts poisoned.
    pub init: Init,
    /// The buffer verification reads (exactly one per kernel).
    pub output: bool,
}

impl Buffer {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> u64 {
        self.elements() * self.dtype.size()
    }

    fn shape_usize(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }
}

/// How a free-form kernel's output is checked. There is no silent "none": an unverified result
/// is asked for by name, labelled as such, and never passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum KernelVerify {
    /// Against an expected output from a `.npy` file: every element within
    /// `atol + rtol·|expected|`.
    Expected {
        path: PathBuf,
        sha256: String,
        rtol: f64,
        atol: f64,
    },
    /// Bit-identical outputs over `runs` runs, across buffer sets and with a different poison
    /// pattern each time (so an element left unwritten shows as a difference). It proves the
    /// kernel repeatable, not right: the result says so.
    Determinism { runs: u32 },
    /// Not checked: the time is shown, labelled unverified, and the result never passes.
    Unverified,
}

/// A user's CUDA kernel: the source, how to compile it and how to launch it, with expressions
/// still to be evaluated against the sizes of a workload and the kernel's own variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserKernel {
    /// The implementation name results show (`my_gemm`, `my_gemm[BLOCK=64]`).
    pub name: String,
    pub source: PathBuf,
    /// SHA-256 (16 hex digits) of the source text as read.
    pub source_sha256: String,
    /// The `extern "C" __global__` function to launch.
    pub entry: String,
    /// NVRTC options of the user (checked against an allowed list), before the defines.
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub include_dirs: Vec<PathBuf>,
    /// Macros defined for the compile: name → expression (`BLOCK` → `BLOCK`).
    #[serde(default)]
    pub defines: BTreeMap<String, String>,
    /// The kernel's variables with their values (`--set` applied).
    #[serde(default)]
    pub vars: BTreeMap<String, i64>,
    pub launch: LaunchSpec,
    /// The dtype an implementation kernel was written for (its spec's `dtype`): a workload of
    /// another dtype is refused before anything runs, since nothing in the compiled kernel (its
    /// buffers are bare pointers) says what it reads. `None`: the spec does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_dtype: Option<DType>,
    /// The B layout a matmul kernel was written for (its spec's `layout`), held as `for_dtype`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_layout: Option<crate::workload::BLayout>,
    /// The source text read at load time (not in reports: `source_sha256` identifies it).
    #[serde(skip)]
    pub text: Option<Arc<str>>,
}

impl UserKernel {
    /// The source text, or why it is not there (a kernel read back from a report).
    pub fn text(&self) -> Result<&str> {
        self.text.as_deref().ok_or_else(|| {
            Error::invalid(format!(
                "the source of kernel `{}` was not loaded ({})",
                self.name,
                self.source.display()
            ))
        })
    }

    /// `Ok` when the kernel's spec allows `w`: the dtype and B layout it was written for, where
    /// it names them, are the workload's.
    pub fn check_suits(&self, w: &Workload) -> Result<()> {
        let refuse = |what: &str, written: &str, asked: &str| {
            Err(Error::unsupported(format!(
                "`{}` is written for {what} {written} (its spec's `{what}`), and {} is {asked}: \
                 give it a kernel written for {asked}",
                self.name,
                w.name(),
            )))
        };
        if let Some(d) = self.for_dtype {
            if d != w.dtype() {
                return refuse("dtype", d.name(), w.dtype().name());
            }
        }
        match (self.for_layout, w) {
            (Some(l), Workload::Matmul(m)) if l != m.b_layout => {
                refuse("layout", l.name(), m.b_layout.name())
            }
            (Some(_), Workload::Matmul(_)) | (None, _) => Ok(()),
            (Some(_), _) => Err(Error::invalid(format!(
                "`{}`: `layout` is a key of matmul kernels, and {} is no matmul",
                self.name,
                w.name()
            ))),
        }
    }

    /// The macro definitions evaluated with `names`, as NVRTC options (`-DBLOCK=128`).
    pub fn define_options(&self, names: &dyn expr::Names) -> Result<Vec<String>> {
        self.defines
            .iter()
            .map(|(k, e)| {
                let v = expr::eval(e, names)
                    .map_err(|err| Error::invalid(format!("define {k}: {err}")))?;
                Ok(format!("-D{k}={v}"))
            })
            .collect()
    }

    /// Every NVRTC option of the user for one compile: their options, then the defines.
    pub fn nvrtc_options(&self, names: &dyn expr::Names) -> Result<Vec<String>> {
        let mut o = self.options.clone();
        o.extend(self.define_options(names)?);
        Ok(o)
    }
}

/// What a result records about the user kernel that produced it, so that a comparison can say
/// when the kernel (not the GPU) changed.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelRecord {
    pub name: String,
    pub source: String,
    pub entry: String,
    /// SHA-256 (16 hex digits) of the `.cu` text.
    pub source_sha256: String,
    /// SHA-256 (16 hex digits) of what was compiled: the source, the headers it includes, the
    /// options and defines, NVRTC's version and the architecture.
    pub build_sha256: String,
    /// The user's NVRTC options and defines as passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// `grid 32×33×1, block 256×1×1, 0 B dynamic shared memory`.
    pub launch: String,
    pub registers: Option<u32>,
    pub spill_stores: Option<u32>,
    pub spill_loads: Option<u32>,
    /// True when a test backend (mock) stood in for the GPU: nothing was executed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// False only where the kernel was never compiled (the mock without NVRTC): its entry,
    /// arguments and build were not checked, and the record must not say they were. Written
    /// only when false, so every other record serialises as before.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub compiled: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

impl KernelRecord {
    /// One line for the terminal: what ran (and how it was built and launched), its registers
    /// and spills, and a loud word when nothing ran at all.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} ({}:{}, source sha256 {}, build {}): {}",
            self.name, self.source, self.entry, self.source_sha256, self.build_sha256, self.launch
        );
        if let Some(r) = self.registers {
            s.push_str(&format!(
                "; {r} registers, {} B spill stores, {} B spill loads",
                self.spill_stores.unwrap_or(0),
                self.spill_loads.unwrap_or(0)
            ));
        }
        match (self.simulated, self.compiled) {
            (true, true) => s.push_str("; SIMULATED: checked, not run (mock backend)"),
            (true, false) => s.push_str(
                "; SIMULATED: not compiled (no NVRTC) and not run; only the launch was checked (mock backend)",
            ),
            (false, _) => {}
        }
        s
    }
}

/// Arrays read from `.npy` files at load time: the inputs by buffer name, and the expected
/// output. Not serialised (the files' SHA-256 are in the spec); always equal, since the
/// spec's hashes already say whether two specs read the same files.
#[derive(Clone, Default)]
pub struct Loaded(Option<Arc<LoadedFiles>>);

#[derive(Default)]
pub struct LoadedFiles {
    pub inputs: BTreeMap<String, Tensor>,
    pub expected: Option<Tensor>,
}

impl Loaded {
    pub fn new(files: LoadedFiles) -> Loaded {
        Loaded(Some(Arc::new(files)))
    }

    pub fn get(&self) -> Option<&LoadedFiles> {
        self.0.as_deref()
    }
}

impl PartialEq for Loaded {
    fn eq(&self, _: &Loaded) -> bool {
        true
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Loaded(..)"
        } else {
            "Loaded(none)"
        })
    }
}

/// A free-form user kernel as a workload: the kernel, its buffers, the work one launch does and
/// how its output is checked, every size evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelSpec {
    pub kernel: UserKernel,
    /// The dtype whose peak the throughput is held against.
    pub dtype: DType,
    pub buffers: Vec<Buffer>,
    /// Operations one launch performs (the user's expression, evaluated).
    pub flops: f64,
    /// Bytes one launch moves (the user's expression, or every buffer once).
    pub bytes: u64,
    pub metric: Metric,
    pub verify: KernelVerify,
    #[serde(skip)]
    pub files: Loaded,
}

impl KernelSpec {
    /// The files the run reads for this kernel: its source, the `.npy` inputs and the expected
    /// output (an output named as one of them would replace it).
    pub fn files_read(&self) -> Vec<&Path> {
        let inputs = self.buffers.iter().filter_map(|b| match &b.init {
            Init::File { path, .. } => Some(path.as_path()),
            _ => None,
        });
        let expected = match &self.verify {
            KernelVerify::Expected { path, .. } => Some(path.as_path()),
            _ => None,
        };
        std::iter::once(self.kernel.source.as_path())
            .chain(inputs)
            .chain(expected)
            .collect()
    }

    /// `kernel.<name>.<VAR>=<value>…`: the variables are part of the id, so each point of a
    /// `--set` sweep is its own result.
    pub fn name(&self) -> String {
        let mut s = format!("kernel.{}", self.kernel.name);
        for (k, v) in &self.kernel.vars {
            s.push_str(&format!(".{k}={v}"));
        }
        s
    }

    pub fn flops(&self) -> f64 {
        self.flops
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn output(&self) -> &Buffer {
        self.buffers
            .iter()
            .find(|b| b.output)
            .expect("a validated spec has one output")
    }

    /// The names launch and define expressions see: the kernel's variables and its buffers.
    pub fn names(&self) -> FreeNames<'_> {
        FreeNames(self)
    }

    pub fn validate(&self) -> Result<()> {
        let outputs = self.buffers.iter().filter(|b| b.output).count();
        if outputs != 1 {
            return Err(Error::invalid(format!(
                "kernel `{}`: exactly one buffer must be the output, {outputs} are",
                self.kernel.name
            )));
        }
        for b in &self.buffers {
            super::checked_product(&format!("buffer `{}`", b.name), &b.shape)?;
        }
        self.kernel.launch.resolve(&self.names()).map(|_| ())
    }

    /// The value of variable `name` (for sweep charts over `--set` variables).
    pub fn var(&self, name: &str) -> Option<u64> {
        self.kernel
            .vars
            .get(name)
            .and_then(|&v| u64::try_from(v).ok())
    }
}

/// Names of a free-form kernel: its variables as values, its buffers as pointers. Scalars are
/// always written with their type (`u64:N`): a bare variable has no C type.
pub struct FreeNames<'a>(&'a KernelSpec);

impl expr::Names for FreeNames<'_> {
    fn value(&self, name: &str) -> Option<i128> {
        self.0.kernel.vars.get(name).map(|&v| v as i128)
    }
    fn known(&self) -> Vec<String> {
        self.0.kernel.vars.keys().cloned().collect()
    }
}

impl ArgNames for FreeNames<'_> {
    fn is_buffer(&self, name: &str) -> bool {
        self.0.buffers.iter().any(|b| b.name == name)
    }
    fn scalar(&self, _: &str) -> Option<(ScalarType, Num)> {
        None
    }
    fn buffers(&self) -> Vec<String> {
        self.0.buffers.iter().map(|b| b.name.clone()).collect()
    }
}

/// Names with a `'static` lifetime for [`WorkloadKind::params`]: variable names are few (a spec
/// has at most [`spec::MAX_VARS`]), so each distinct one is kept once for the process.
pub(crate) fn interned(name: &str) -> &'static str {
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<std::collections::BTreeSet<&'static str>>> = OnceLock::new();
    let mut set = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = set.get(name) {
        return s;
    }
    let s: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(s);
    s
}

/// The one implementation of a free-form kernel (`bench kernel --spec`): the user's kernel as
/// its spec describes it.
pub const FREE_FORM_IMPL: &str = "user";

impl WorkloadKind for KernelSpec {
    const KIND: &'static str = "kernel";
    fn buffer_bytes(&self) -> u64 {
        self.buffers.iter().map(Buffer::bytes).sum()
    }
    fn result_dtype(&self) -> DType {
        self.dtype
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn test_key(&self) -> String {
        format!("kernel.{}", self.kernel.name)
    }
    /// None as gpuvet dtypes: a buffer may be f64 or i32, which have none, and only the CUDA
    /// backend (and the mock) takes a user kernel, checking each input against its buffer.
    fn input_specs(&self) -> Vec<InputSpec> {
        Vec::new()
    }
    /// Every input buffer, in spec order, named as the spec names it, filled as its `init`
    /// says (random from `seed` and the buffer's name, zeros, iota, or its `.npy` file).
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        self.buffers
            .iter()
            .filter(|b| !b.output)
            .map(|b| input(b, &self.files, seed))
            .collect()
    }
    fn output_len(&self) -> usize {
        self.output().elements() as usize
    }
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("kernel", self.kernel.name.clone())];
        p.extend(
            self.kernel
                .vars
                .iter()
                .map(|(k, v)| (interned(k), v.to_string())),
        );
        p
    }
    /// A user kernel has none of gpuvet's parameters: its axes are its `--set` variables.
    fn axis_value(&self, _: Param) -> Option<u64> {
        None
    }
    fn axis_value_by_name(&self, name: &str) -> Option<u64> {
        self.var(name)
    }
    fn sweep_params(&self) -> &'static [Param] {
        &[]
    }
}

/// `bench kernel --spec FILE --set NAME=VALUES…` as a kind's axes: one workload per
/// combination of the `--set` values, the first variable with several values on the charts' x.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelAxes {
    pub spec: PathBuf,
    /// `--set NAME=VALUES`, crossed in the order given.
    pub sets: Vec<String>,
    /// Implementations to run at every point: the one free-form implementation.
    pub implementation: Vec<String>,
}

impl KernelAxes {
    pub fn new(spec: PathBuf, sets: Vec<String>) -> KernelAxes {
        KernelAxes {
            spec,
            sets,
            implementation: vec![FREE_FORM_IMPL.into()],
        }
    }
}

impl KindAxes for KernelAxes {
    crate::workload::axis::axes_of!(KernelSpec);

    fn expand(&self) -> Result<Vec<Workload>> {
        let specs = spec::free_form(&self.spec, &self.sets)?;
        collect_checked(specs.into_iter().map(|s| Workload::Kernel(Box::new(s))))
    }

    fn swept(&self) -> Option<Param> {
        None
    }

    fn swept_name(&self) -> Option<String> {
        self.sets.iter().find_map(|s| {
            let (name, values) = spec::parse_set(s).ok()?;
            (values.len() > 1).then_some(name)
        })
    }
}

/// The host contents of input buffer `b`.
fn input(b: &Buffer, files: &Loaded, seed: u64) -> Tensor {
    let n = b.elements() as usize;
    let shape = b.shape_usize();
    match &b.init {
        Init::Random => random(b, shape, splitmix(seed ^ stable_hash(&b.name))),
        Init::Zeros => b.dtype.tensor(&b.name, shape, &vec![0.0; n]),
        Init::Iota => {
            let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
            b.dtype.tensor(&b.name, shape, &v)
        }
        Init::File { path, .. } => match files.get().and_then(|f| f.inputs.get(&b.name)) {
            Some(t) => t.clone(),
            // Only a spec read back from a report lacks its files, and those are never run.
            None => panic!(
                "input `{}` ({}) was not loaded with its spec",
                b.name,
                path.display()
            ),
        },
    }
}

fn random(b: &Buffer, shape: Vec<usize>, seed: u64) -> Tensor {
    if let Some(d) = b.dtype.dtype() {
        return Tensor::random(&b.name, shape, d, seed);
    }
    use rand::{Rng, SeedableRng};
    let n: usize = shape.iter().product();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let v: Vec<f64> = match b.dtype {
        BufType::I32 => (0..n)
            .map(|_| rng.random_range(-1000i32..=1000) as f64)
            .collect(),
        _ => (0..n).map(|_| rng.random_range(-1.0f64..1.0)).collect(),
    };
    b.dtype.tensor(&b.name, shape, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_types_round_trip_through_device_bytes() {
        for t in BufType::ALL {
            assert_eq!(t.name().parse::<BufType>(), Ok(t));
            let v = [1.0, -2.0, 0.5, 3.0];
            let x = t.tensor("x", vec![4], &v);
            assert_eq!(x.as_bytes().len() as u64, 4 * t.size(), "{}", t.name());
            let back = t.from_bytes("x", vec![4], x.as_bytes());
            assert_eq!(back, x, "{}", t.name());
            let want: Vec<f64> = if t.is_float() {
                v.to_vec()
            } else {
                vec![1.0, -2.0, 1.0, 3.0]
            };
            assert_eq!(back.to_f64(), want, "{}", t.name());
        }
        assert!("u16".parse::<BufType>().unwrap_err().contains("f32, f64"));
    }

    #[test]
    fn inputs_follow_their_init_and_seed() {
        let buf = |name: &str, dtype, init| Buffer {
            name: name.into(),
            dtype,
            shape: vec![3, 4],
            init,
            output: false,
        };
        let files = Loaded::default();
        let a = input(&buf("a", BufType::F64, Init::Random), &files, 1);
        let a2 = input(&buf("a", BufType::F64, Init::Random), &files, 1);
        let b = input(&buf("b", BufType::F64, Init::Random), &files, 1);
        assert_eq!(a, a2);
        assert_ne!(a, b, "each buffer has its own stream");
        assert!(a.to_f64().iter().all(|x| (-1.0..1.0).contains(x)));
        let i = input(&buf("i", BufType::I32, Init::Random), &files, 1);
        assert!(i
            .to_f64()
            .iter()
            .all(|x| x.fract() == 0.0 && x.abs() <= 1000.0));
        let z = input(&buf("z", BufType::Bf16, Init::Zeros), &files, 1);
        assert!(z.to_f64().iter().all(|&x| x == 0.0));
        let io = input(&buf("k", BufType::I8, Init::Iota), &files, 1);
        assert_eq!(io.to_f64()[11], 11.0);
        assert_eq!(io.shape, vec![3, 4]);
    }
}
