//! How a user kernel is launched: grid, block, dynamic shared memory and the argument list, as
//! expressions (`grid=cdiv(N,128),cdiv(M,128)`, `args=A,B,C,i32:M`), and the checks every
//! launch passes before it runs: the arguments against the `.param` list of the compiled PTX,
//! the dimensions against the device's limits.

use super::expr::{self, Names};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The C type of a scalar argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalarType {
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl ScalarType {
    pub const ALL: [ScalarType; 6] = [
        ScalarType::I32,
        ScalarType::U32,
        ScalarType::I64,
        ScalarType::U64,
        ScalarType::F32,
        ScalarType::F64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScalarType::I32 => "i32",
            ScalarType::U32 => "u32",
            ScalarType::I64 => "i64",
            ScalarType::U64 => "u64",
            ScalarType::F32 => "f32",
            ScalarType::F64 => "f64",
        }
    }

    /// The C spelling, for messages.
    pub fn c_name(self) -> &'static str {
        match self {
            ScalarType::I32 => "int",
            ScalarType::U32 => "unsigned int",
            ScalarType::I64 => "long long",
            ScalarType::U64 => "unsigned long long",
            ScalarType::F32 => "float",
            ScalarType::F64 => "double",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, ScalarType::F32 | ScalarType::F64)
    }

    /// Bytes the parameter occupies.
    pub fn size(self) -> usize {
        match self {
            ScalarType::I32 | ScalarType::U32 | ScalarType::F32 => 4,
            _ => 8,
        }
    }

    /// The range a whole-number value must lie in.
    fn range(self) -> (i128, i128) {
        match self {
            ScalarType::I32 => (i32::MIN as i128, i32::MAX as i128),
            ScalarType::U32 => (0, u32::MAX as i128),
            ScalarType::I64 => (i64::MIN as i128, i64::MAX as i128),
            ScalarType::U64 => (0, u64::MAX as i128),
            // Whole numbers up to 2^53 are exact in a double; f32 rounds above 2^24.
            ScalarType::F32 | ScalarType::F64 => (-(1 << 53), 1 << 53),
        }
    }
}

impl std::str::FromStr for ScalarType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = match s {
            "i32" | "int" => ScalarType::I32,
            "u32" | "uint" | "unsigned" => ScalarType::U32,
            "i64" | "long" => ScalarType::I64,
            "u64" | "ulong" | "size_t" => ScalarType::U64,
            "f32" | "float" => ScalarType::F32,
            "f64" | "double" => ScalarType::F64,
            _ => {
                return Err(format!(
                    "unknown scalar type `{s}` (i32, u32, i64, u64, f32, f64)"
                ))
            }
        };
        Ok(t)
    }
}

/// A scalar's value: a whole number (from an expression) or a float literal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i128),
    Float(f64),
}

/// One resolved kernel argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// The device address of the named buffer.
    Buffer(String),
    Scalar(ScalarType, Num),
}

impl Arg {
    /// How the argument is shown in messages: `A`, `i32 4096`, `f32 0.125`.
    pub fn describe(&self) -> String {
        match self {
            Arg::Buffer(b) => format!("pointer `{b}`"),
            Arg::Scalar(t, Num::Int(v)) => format!("{} {v}", t.name()),
            Arg::Scalar(t, Num::Float(v)) => format!("{} {v}", t.name()),
        }
    }

    /// The argument's little-endian bytes, for a launch (pointers are filled in by the backend).
    pub fn scalar_bytes(&self) -> Option<Vec<u8>> {
        let Arg::Scalar(t, n) = self else {
            return None;
        };
        let f = match n {
            Num::Float(f) => *f,
            Num::Int(i) => *i as f64,
        };
        let i = match n {
            Num::Int(i) => *i,
            Num::Float(f) => *f as i128,
        };
        Some(match t {
            ScalarType::I32 => (i as i32).to_le_bytes().to_vec(),
            ScalarType::U32 => (i as u32).to_le_bytes().to_vec(),
            ScalarType::I64 => (i as i64).to_le_bytes().to_vec(),
            ScalarType::U64 => (i as u64).to_le_bytes().to_vec(),
            ScalarType::F32 => (f as f32).to_le_bytes().to_vec(),
            ScalarType::F64 => f.to_le_bytes().to_vec(),
        })
    }
}

/// What a bare name in an argument list means where it is resolved: the workload's buffers,
/// and the scalars it provides with their default C type.
pub trait ArgNames: Names {
    /// True when `name` is a buffer (passed as a pointer).
    fn is_buffer(&self, name: &str) -> bool;
    /// The default type and value of a scalar passed by bare name (`M`: `i32`), `None` for a
    /// name that needs an explicit type.
    fn scalar(&self, name: &str) -> Option<(ScalarType, Num)>;
    /// Every buffer name, for messages.
    fn buffers(&self) -> Vec<String>;
}

/// The launch of a user kernel, as the user wrote it: expressions still to be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// 1 to 3 expressions (x, y, z); missing ones are 1.
    pub grid: Vec<String>,
    /// 1 to 3 expressions.
    pub block: Vec<String>,
    /// Bytes of dynamic shared memory.
    pub smem: String,
    /// The kernel's arguments in order: a buffer or scalar name, or `TYPE:EXPR`.
    pub args: Vec<String>,
}

/// A launch with every expression evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub smem: u32,
    pub args: Vec<Arg>,
}

impl Resolved {
    pub fn threads_per_block(&self) -> u64 {
        self.block.iter().map(|&b| b as u64).product()
    }

    /// `grid 33×32×1, block 256×1×1, 0 B dynamic shared memory`.
    pub fn describe(&self) -> String {
        let d = |v: &[u32; 3]| format!("{}×{}×{}", v[0], v[1], v[2]);
        format!(
            "grid {}, block {}, {} B dynamic shared memory",
            d(&self.grid),
            d(&self.block),
            self.smem
        )
    }
}

/// Splits `s` at commas outside parentheses (`cdiv(N, 128), 4` is two items).
pub fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim().to_string());
    out
}

impl LaunchSpec {
    /// Parses the `--launch` flag: `grid=X[,Y[,Z]],block=X[,Y[,Z]][,smem=B][,args=A,B,…]`.
    /// An item with `=` starts a key; items without continue the key before it.
    pub fn parse_flag(s: &str) -> Result<LaunchSpec> {
        let l = Self::parse_partial(s)?;
        l.check_shape()?;
        Ok(l)
    }

    /// `--launch` beside a spec file: only the keys it gives (each replaces the spec's).
    pub fn parse_partial(s: &str) -> Result<LaunchSpec> {
        let mut l = LaunchSpec::default();
        let mut key: Option<String> = None;
        let mut seen: Vec<String> = Vec::new();
        for item in split_top_level(s) {
            let value = match item.split_once('=') {
                Some((k, v)) => {
                    let k = k.trim().to_ascii_lowercase();
                    if !["grid", "block", "smem", "args"].contains(&k.as_str()) {
                        return Err(Error::invalid(format!(
                            "--launch: unknown key `{k}` (grid, block, smem, args)"
                        )));
                    }
                    if seen.contains(&k) {
                        return Err(Error::invalid(format!("--launch: `{k}` given twice")));
                    }
                    seen.push(k.clone());
                    key = Some(k);
                    v.trim().to_string()
                }
                None => item,
            };
            if value.is_empty() {
                return Err(Error::invalid(format!("--launch `{s}` has an empty item")));
            }
            match key.as_deref() {
                Some("grid") => l.grid.push(value),
                Some("block") => l.block.push(value),
                Some("args") => l.args.push(value),
                Some(_) if !l.smem.is_empty() => {
                    return Err(Error::invalid(
                        "--launch: smem takes one value (bytes of dynamic shared memory)",
                    ))
                }
                Some(_) => l.smem = value,
                None => {
                    return Err(Error::invalid(format!(
                        "--launch `{s}` must start with a key, e.g. grid=cdiv(N,128),cdiv(M,128),block=256"
                    )))
                }
            }
        }
        Ok(l)
    }

    /// Refuses a launch without grid or block, or with more than three dimensions.
    pub fn check_shape(&self) -> Result<()> {
        for (what, v) in [("grid", &self.grid), ("block", &self.block)] {
            if v.is_empty() || v.len() > 3 {
                return Err(Error::invalid(format!(
                    "the launch needs a {what} of 1 to 3 dimensions (x[,y[,z]]), got {}",
                    v.len()
                )));
            }
        }
        if self.args.len() > MAX_ARGS {
            return Err(Error::invalid(format!(
                "{} kernel arguments; at most {MAX_ARGS} are supported",
                self.args.len()
            )));
        }
        Ok(())
    }

    /// Every expression of the launch, evaluated with `names`.
    pub fn resolve(&self, names: &dyn ArgNames) -> Result<Resolved> {
        self.check_shape()?;
        let dims = |what: &str, v: &[String], max: i128| -> Result<[u32; 3]> {
            let mut out = [1u32; 3];
            for (i, e) in v.iter().enumerate() {
                let axis = ["x", "y", "z"][i];
                out[i] = expr::eval_in(e, names, &format!("{what}.{axis}"), 1, max)
                    .map_err(Error::invalid)? as u32;
            }
            Ok(out)
        };
        let grid = dims("grid", &self.grid, u32::MAX as i128)?;
        let block = dims("block", &self.block, u32::MAX as i128)?;
        let smem = if self.smem.trim().is_empty() {
            0
        } else {
            expr::eval_in(&self.smem, names, "smem", 0, u32::MAX as i128).map_err(Error::invalid)?
                as u32
        };
        let args = self
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| resolve_arg(i, a, names))
            .collect::<Result<Vec<Arg>>>()?;
        Ok(Resolved {
            grid,
            block,
            smem,
            args,
        })
    }
}

/// Most arguments a launch may take (CUDA allows 32 KiB of parameters; this is plenty).
pub const MAX_ARGS: usize = 64;

fn resolve_arg(i: usize, text: &str, names: &dyn ArgNames) -> Result<Arg> {
    let t = text.trim();
    let bad = |msg: String| Error::invalid(format!("argument {} `{t}`: {msg}", i + 1));
    if let Some((ty, e)) = t.split_once(':') {
        let ty: ScalarType = ty.trim().parse().map_err(bad)?;
        let e = e.trim();
        if ty.is_float() {
            // A float literal (`f32:0.125`, `f64:-1e-3`), or a float the workload provides
            // (`f32:scale`); anything else is a whole-number expression below.
            if let Ok(v) = e.parse::<f64>() {
                if !v.is_finite() {
                    return Err(bad(format!("`{e}` is not a finite number")));
                }
                // `f32:1e39` would reach the kernel as infinity, which `f32:inf` is refused as.
                if ty == ScalarType::F32 && (v as f32).is_infinite() {
                    return Err(bad(format!(
                        "`{e}` is beyond the largest f32 ({:e})",
                        f32::MAX
                    )));
                }
                return Ok(Arg::Scalar(ty, Num::Float(v)));
            }
            if let Some((_, v @ Num::Float(_))) = names.scalar(e) {
                return Ok(Arg::Scalar(ty, v));
            }
        }
        let (lo, hi) = ty.range();
        let v = expr::eval_in(
            e,
            names,
            &format!("argument {} ({})", i + 1, ty.name()),
            lo,
            hi,
        )
        .map_err(Error::invalid)?;
        return Ok(Arg::Scalar(ty, Num::Int(v)));
    }
    if names.is_buffer(t) {
        return Ok(Arg::Buffer(t.to_string()));
    }
    if let Some((ty, v)) = names.scalar(t) {
        if let Num::Int(x) = v {
            let (lo, hi) = ty.range();
            if x < lo || x > hi {
                return Err(bad(format!(
                    "its value {x} does not fit {}; pass it as `u64:{t}` or `i64:{t}`",
                    ty.name()
                )));
            }
        }
        return Ok(Arg::Scalar(ty, v));
    }
    if names.value(t).is_some() {
        return Err(bad(format!(
            "`{t}` is a variable: give its C type, e.g. `i32:{t}` or `u64:{t}`"
        )));
    }
    Err(bad(format!(
        "not a buffer ({}) nor a known value; scalars are written TYPE:EXPR, e.g. `u64:N`",
        names.buffers().join(", ")
    )))
}

/// One `.param` of a kernel entry in PTX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtxParam {
    /// `.u64`, `.u32`, `.f32`, `.b8`, ...
    pub ty: String,
    /// Declared with `.ptr` (a pointer NVRTC annotated).
    pub ptr: bool,
    /// `Some(bytes)` for an aggregate passed by value (`.b8 p[16]`: a struct).
    pub array: Option<usize>,
}

/// The `.param` list of every `.entry` in `ptx`, by entry name.
pub fn ptx_params(ptx: &str) -> Vec<(String, Vec<PtxParam>)> {
    let mut out = Vec::new();
    let mut rest = ptx;
    while let Some(i) = rest.find(".entry ") {
        rest = &rest[i + ".entry ".len()..];
        let name_end = rest
            .find(|c: char| c == '(' || c == '{' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..name_end].trim().to_string();
        let after = rest[name_end..].trim_start();
        let mut params = Vec::new();
        if let Some(body) = after.strip_prefix('(') {
            let close = body.find(')').unwrap_or(body.len());
            for p in body[..close].split(',') {
                let words: Vec<&str> = p.split_whitespace().collect();
                if words.first() != Some(&".param") {
                    continue;
                }
                let ty = words
                    .iter()
                    .skip(1)
                    .find(|w| {
                        let b = w.as_bytes();
                        b.len() > 2
                            && b[0] == b'.'
                            && matches!(b[1], b'u' | b's' | b'f' | b'b')
                            && b[2..].iter().all(u8::is_ascii_digit)
                    })
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let last = words.last().copied().unwrap_or("");
                let array = last
                    .split_once('[')
                    .and_then(|(_, n)| n.trim_end_matches(']').parse().ok());
                params.push(PtxParam {
                    ty,
                    ptr: words.contains(&".ptr"),
                    array,
                });
            }
        }
        out.push((name, params));
    }
    out
}

/// Why `args` cannot be passed to a kernel whose PTX declares `params`: the count, or the
/// first argument whose kind differs. `entry` names the kernel in the message.
pub fn check_args(entry: &str, params: &[PtxParam], args: &[Arg]) -> Result<()> {
    let list = |ps: &[PtxParam]| {
        ps.iter()
            .map(|p| match p.array {
                Some(n) => format!("{n}-byte struct"),
                None => p.ty.trim_start_matches('.').to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if params.len() != args.len() {
        return Err(Error::invalid(format!(
            "kernel `{entry}` takes {} parameter(s) ({}) but the launch passes {} ({})",
            params.len(),
            list(params),
            args.len(),
            args.iter()
                .map(Arg::describe)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for (i, (p, a)) in params.iter().zip(args).enumerate() {
        let wrong = |why: String| {
            Error::invalid(format!(
                "kernel `{entry}` parameter {} is {} but argument {} is {}: {why}",
                i + 1,
                p.array
                    .map(|n| format!("a {n}-byte struct"))
                    .unwrap_or_else(|| format!("`{}`", p.ty)),
                i + 1,
                a.describe()
            ))
        };
        if let Some(n) = p.array {
            return Err(wrong(format!(
                "structs passed by value ({n} bytes) are not supported; pass a pointer or scalars"
            )));
        }
        let width: usize = p.ty[2..].parse().unwrap_or(0) / 8;
        let class = p.ty.as_bytes().get(1).copied().unwrap_or(b'?');
        match a {
            Arg::Buffer(_) if width == 8 && class != b'f' => {}
            Arg::Buffer(_) => {
                return Err(wrong(
                    "a pointer is a 64-bit parameter (`.u64`); check the parameter's C type".into(),
                ))
            }
            Arg::Scalar(t, _) => {
                if p.ptr {
                    return Err(wrong(format!(
                        "the kernel declares a pointer here; pass a buffer, not a {}",
                        t.name()
                    )));
                }
                let float_param = class == b'f';
                if width != t.size() || float_param != t.is_float() {
                    let hint = match (width, class) {
                        (1, _) | (2, b'u' | b's' | b'b') => {
                            " (8- and 16-bit parameters such as char, bool, short, half are not supported: widen them to int)".to_string()
                        }
                        (8, b'u' | b's' | b'b') => " (a 64-bit integer or a pointer: u64/i64, or a buffer)".to_string(),
                        _ => String::new(),
                    };
                    return Err(wrong(format!(
                        "a {} ({}) does not match{hint}",
                        t.name(),
                        t.c_name()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Finds `entry` among the entries of the PTX, or says what is there (and when the name is
/// there only C++-mangled, that `extern "C"` is missing).
pub fn find_entry<'p>(
    entries: &'p [(String, Vec<PtxParam>)],
    entry: &str,
    source: &str,
) -> Result<&'p [PtxParam]> {
    if let Some((_, p)) = entries.iter().find(|(n, _)| n == entry) {
        return Ok(p);
    }
    let mangled = entries
        .iter()
        .find(|(n, _)| n.starts_with("_Z") && n.contains(entry));
    if let Some((m, _)) = mangled {
        return Err(Error::invalid(format!(
            "{source} has no kernel `{entry}`, only the C++ name `{m}`: declare it `extern \"C\" __global__` so its name is not mangled"
        )));
    }
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    Err(Error::invalid(format!(
        "{source} has no kernel `{entry}` ({})",
        if names.is_empty() {
            "it defines no __global__ function at all".to_string()
        } else {
            format!("its kernels: {}", names.join(", "))
        }
    )))
}

/// What the device (and the compiled function) allow one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Threads per block this function can be launched with (its registers decide; at most
    /// the device's 1024).
    pub max_threads_per_block: u32,
    pub max_block: [u32; 3],
    pub max_grid: [u32; 3],
    /// Dynamic + static shared memory a block may use with the opt-in attribute set.
    pub max_smem_optin: u64,
    /// Static shared memory the function declares.
    pub static_smem: u64,
    /// Registers per thread, for the message.
    pub registers: u32,
}

impl Limits {
    /// The limits of every GPU since Volta (sm_70) for a function of `registers` registers
    /// and `static_smem` bytes, with `optin` bytes of shared memory per block.
    pub fn typical(optin: u64) -> Limits {
        Limits {
            max_threads_per_block: 1024,
            max_block: [1024, 1024, 64],
            max_grid: [i32::MAX as u32, 65_535, 65_535],
            max_smem_optin: optin,
            static_smem: 0,
            registers: 0,
        }
    }
}

/// Refuses a launch the device would reject (or one that could not start at all), with the
/// limit it breaks.
pub fn check_limits(entry: &str, l: &Resolved, lim: &Limits) -> Result<()> {
    let axes = ["x", "y", "z"];
    for (i, axis) in axes.iter().enumerate() {
        if l.block[i] > lim.max_block[i] {
            return Err(Error::invalid(format!(
                "kernel `{entry}`: block.{} = {} is above the device's {}",
                axis, l.block[i], lim.max_block[i]
            )));
        }
        if l.grid[i] > lim.max_grid[i] {
            return Err(Error::invalid(format!(
                "kernel `{entry}`: grid.{} = {} is above the device's {}",
                axis, l.grid[i], lim.max_grid[i]
            )));
        }
    }
    let threads = l.threads_per_block();
    if threads > lim.max_threads_per_block as u64 {
        let why = if lim.max_threads_per_block < 1024 && lim.registers > 0 {
            format!(
                " (with {} registers per thread this kernel can run at most {} threads per block)",
                lim.registers, lim.max_threads_per_block
            )
        } else {
            String::new()
        };
        return Err(Error::invalid(format!(
            "kernel `{entry}`: a block of {threads} threads is above the limit of {}{why}",
            lim.max_threads_per_block
        )));
    }
    let smem = l.smem as u64 + lim.static_smem;
    if smem > lim.max_smem_optin {
        return Err(Error::invalid(format!(
            "kernel `{entry}`: {} B of shared memory per block ({} dynamic + {} static) is above the device's {} B",
            smem, l.smem, lim.static_smem, lim.max_smem_optin
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Buffers A, B, C; scalars M, N, K as i32 and `scale` as f32; variable BLOCK.
    struct Gemm(BTreeMap<String, i128>);

    fn gemm() -> Gemm {
        Gemm(
            [("M", 4097), ("N", 4096), ("K", 1000), ("BLOCK", 128)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    impl Names for Gemm {
        fn value(&self, n: &str) -> Option<i128> {
            self.0.get(n).copied()
        }
        fn known(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    impl ArgNames for Gemm {
        fn is_buffer(&self, n: &str) -> bool {
            ["A", "B", "C"].contains(&n)
        }
        fn scalar(&self, n: &str) -> Option<(ScalarType, Num)> {
            match n {
                "M" | "N" | "K" => Some((ScalarType::I32, Num::Int(self.0[n]))),
                "scale" => Some((ScalarType::F32, Num::Float(0.125))),
                _ => None,
            }
        }
        fn buffers(&self) -> Vec<String> {
            vec!["A".into(), "B".into(), "C".into()]
        }
    }

    #[test]
    fn the_launch_flag_parses_keys_and_lists() {
        let l = LaunchSpec::parse_flag(
            "grid=ceil(N/128),cdiv(M, 128),block=256,smem=2*16Ki,args=A,B,C,M,N,K,f32:scale",
        )
        .unwrap();
        assert_eq!(l.grid, vec!["ceil(N/128)", "cdiv(M, 128)"]);
        assert_eq!(l.block, vec!["256"]);
        assert_eq!(l.smem, "2*16Ki");
        assert_eq!(l.args.len(), 7);
        let r = l.resolve(&gemm()).unwrap();
        assert_eq!(r.grid, [32, 33, 1]);
        assert_eq!(r.block, [256, 1, 1]);
        assert_eq!(r.smem, 32768);
        assert_eq!(r.args[0], Arg::Buffer("A".into()));
        assert_eq!(r.args[3], Arg::Scalar(ScalarType::I32, Num::Int(4097)));
        assert_eq!(r.args[6], Arg::Scalar(ScalarType::F32, Num::Float(0.125)));
        assert!(r.describe().starts_with("grid 32×33×1, block 256×1×1"));
        for (bad, want) in [
            ("", "empty item"),
            ("128,block=1", "must start with a key"),
            ("grid=1,grid=2,block=1", "given twice"),
            ("grid=1,threads=2", "unknown key `threads`"),
            ("grid=1", "block of 1 to 3"),
            ("grid=1,2,3,4,block=1", "grid of 1 to 3"),
            ("grid=1,block=1,smem=1,2", "smem takes one value"),
            ("grid=1,,block=1", "empty item"),
        ] {
            let e = LaunchSpec::parse_flag(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn arguments_resolve_by_name_and_type() {
        let l = |args: &[&str]| LaunchSpec {
            grid: vec!["1".into()],
            block: vec!["1".into()],
            smem: String::new(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        let r = l(&["u64:M*N", "f32:0.5", "f64:-1e-3", "f32:2", "i32:BLOCK"])
            .resolve(&gemm())
            .unwrap();
        assert_eq!(
            r.args[0],
            Arg::Scalar(ScalarType::U64, Num::Int(4097 * 4096))
        );
        assert_eq!(r.args[1], Arg::Scalar(ScalarType::F32, Num::Float(0.5)));
        assert_eq!(r.args[2], Arg::Scalar(ScalarType::F64, Num::Float(-1e-3)));
        assert_eq!(r.args[3], Arg::Scalar(ScalarType::F32, Num::Float(2.0)));
        assert_eq!(r.args[4].scalar_bytes().unwrap(), 128i32.to_le_bytes());
        assert_eq!(r.args[3].scalar_bytes().unwrap(), 2f32.to_le_bytes());
        for (args, want) in [
            (vec!["D"], "not a buffer (A, B, C)"),
            (vec!["BLOCK"], "is a variable: give its C type"),
            (vec!["i32:M*N*K"], "outside the allowed"),
            (vec!["u32:-1"], "outside the allowed"),
            (vec!["i8:M"], "unknown scalar type `i8`"),
            (vec!["f32:1.2.3"], "not a whole number"),
            (vec!["f32:inf"], "not a finite number"),
            (vec!["i32:Q"], "unknown name `Q`"),
        ] {
            let e = l(&args).resolve(&gemm()).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        // dimensions are at least 1 and fit 32 bits
        let mut z = l(&[]);
        z.grid = vec!["M - M".into()];
        let e = z.resolve(&gemm()).unwrap_err().to_string();
        assert!(
            e.contains("grid.x") && e.contains("outside the allowed 1..="),
            "{e}"
        );
    }

    const PTX: &str = ".visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .u64 .ptr .global .align 16 k_param_1,\n\t.param .u32 k_param_2,\n\t.param .f32 k_param_3,\n\t.param .f64 k_param_4,\n\t.param .u8 k_param_5,\n\t.param .u64 k_param_6\n)\n{\n}\n.visible .entry e()\n{\n}\n.visible .entry _Z7mangledPf(\n\t.param .u64 _Z7mangledPf_param_0\n)\n.visible .entry st(\n\t.param .align 4 .b8 st_param_0[8],\n\t.param .u64 st_param_1\n)\n";

    #[test]
    fn ptx_parameter_lists_are_read_with_pointers_and_structs() {
        let e = ptx_params(PTX);
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["k", "e", "_Z7mangledPf", "st"]);
        let k = &e[0].1;
        assert_eq!(k.len(), 7);
        assert_eq!((k[1].ty.as_str(), k[1].ptr), (".u64", true));
        assert_eq!((k[0].ty.as_str(), k[0].ptr), (".u64", false));
        assert_eq!(k[5].ty, ".u8");
        assert!(e[1].1.is_empty());
        assert_eq!(e[3].1[0].array, Some(8));
        assert_eq!(e[3].1[0].ty, ".b8");
    }

    #[test]
    fn arguments_are_checked_against_the_ptx() {
        let e = ptx_params(PTX);
        let k = find_entry(&e, "k", "t.cu").unwrap();
        let buf = |n: &str| Arg::Buffer(n.into());
        let int = |t, v| Arg::Scalar(t, Num::Int(v));
        let good = vec![
            buf("A"),
            buf("B"),
            int(ScalarType::I32, 1),
            Arg::Scalar(ScalarType::F32, Num::Float(1.0)),
            Arg::Scalar(ScalarType::F64, Num::Float(1.0)),
        ];
        let mut seven = good.clone();
        seven.extend([int(ScalarType::I32, 0), int(ScalarType::U64, 3)]);
        // the count
        let msg = check_args("k", k, &good).unwrap_err().to_string();
        assert!(
            msg.contains(
                "takes 7 parameter(s) (u64, u64, u32, f32, f64, u8, u64) but the launch passes 5"
            ),
            "{msg}"
        );
        // an 8-bit parameter
        let msg = check_args("k", k, &seven).unwrap_err().to_string();
        assert!(
            msg.contains("parameter 6 is `.u8`") && msg.contains("widen them to int"),
            "{msg}"
        );
        // a pointer where the kernel wants a 32-bit int; a scalar where PTX says pointer
        let mut wrong = seven.clone();
        wrong[5] = int(ScalarType::U32, 0);
        wrong[2] = buf("C");
        let msg = check_args("k", k, &wrong).unwrap_err().to_string();
        assert!(
            msg.contains("parameter 3 is `.u32`") && msg.contains("64-bit"),
            "{msg}"
        );
        wrong[2] = int(ScalarType::I32, 1);
        wrong[1] = int(ScalarType::U64, 1);
        let msg = check_args("k", k, &wrong).unwrap_err().to_string();
        assert!(msg.contains("declares a pointer"), "{msg}");
        // float vs integer of the same width
        wrong[1] = buf("B");
        wrong[3] = int(ScalarType::I32, 1);
        let msg = check_args("k", k, &wrong).unwrap_err().to_string();
        assert!(msg.contains("parameter 4 is `.f32`"), "{msg}");
        // past the first five, only the 8-bit parameter is left to refuse
        wrong[3] = Arg::Scalar(ScalarType::F32, Num::Float(2.0));
        let msg = check_args("k", k, &wrong).unwrap_err().to_string();
        assert!(msg.contains("parameter 6"), "{msg}");
        // a 64-bit parameter without `.ptr` takes a buffer or a 64-bit integer
        let m = &e[2].1;
        assert!(check_args("m", m, &[buf("A")]).is_ok());
        assert!(check_args("m", m, &[int(ScalarType::U64, 1)]).is_ok());
        assert!(check_args("m", m, &[int(ScalarType::I32, 1)]).is_err());
        // structs by value
        let st = find_entry(&e, "st", "t.cu").unwrap();
        let msg = check_args("st", st, &[buf("A"), buf("B")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("8-byte struct"), "{msg}");
        // missing entries: mangled, absent
        let msg = find_entry(&e, "mangled", "t.cu").unwrap_err().to_string();
        assert!(msg.contains("extern \"C\""), "{msg}");
        let msg = find_entry(&e, "gemm", "t.cu").unwrap_err().to_string();
        assert!(
            msg.contains("no kernel `gemm` (its kernels: k, e, _Z7mangledPf, st)"),
            "{msg}"
        );
        let msg = find_entry(&[], "gemm", "t.cu").unwrap_err().to_string();
        assert!(msg.contains("no __global__ function"), "{msg}");
    }

    #[test]
    fn launches_over_the_device_limits_are_refused() {
        let r = |grid: [u32; 3], block: [u32; 3], smem| Resolved {
            grid,
            block,
            smem,
            args: vec![],
        };
        let lim = Limits {
            static_smem: 16 << 10,
            ..Limits::typical(227 << 10)
        };
        assert!(check_limits("k", &r([1 << 20, 1, 1], [256, 1, 1], 0), &lim).is_ok());
        for (l, want) in [
            (r([1, 1, 1], [2048, 1, 1], 0), "block.x = 2048"),
            (r([1, 1, 1], [32, 32, 2], 0), "2048 threads"),
            (r([1, 1, 1], [1, 1, 65], 0), "block.z = 65"),
            (r([1, 70_000, 1], [1, 1, 1], 0), "grid.y = 70000"),
            (
                r([1, 1, 1], [1, 1, 1], 220 << 10),
                "(225280 dynamic + 16384 static)",
            ),
        ] {
            let e = check_limits("k", &l, &lim).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // a register-heavy kernel cannot run 1024 threads
        let heavy = Limits {
            max_threads_per_block: 256,
            registers: 255,
            ..lim
        };
        let e = check_limits("k", &r([1, 1, 1], [512, 1, 1], 0), &heavy)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("255 registers") && e.contains("at most 256 threads"),
            "{e}"
        );
    }

    #[test]
    fn top_level_commas_split_outside_calls_only() {
        assert_eq!(
            split_top_level("cdiv(N, 128), max(1, 2),3"),
            vec!["cdiv(N, 128)", "max(1, 2)", "3"]
        );
        assert_eq!(split_top_level("x"), vec!["x"]);
    }
}
