//! `gpuvet sweep matmul|attention|memory`: one workload kind over axes of shapes.
//!
//! Every axis takes a comma-separated list whose items are single values, arithmetic ranges or
//! powers of two, mixed freely: `1,16,64`, `64..1024:64` (64 to 1024 in steps of 64, both ends
//! included when the step lands on them), `pow2:1..8192` (1, 2, 4, … 8192). Memory sizes take
//! byte units (`pow2:1MiB..1GiB`). The workloads are the cross product of the axes, in the
//! order the flags are listed, so results of one series come out together.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::units::Bytes;
use crate::workload::{AttentionSpec, BLayout, MatmulSpec, MemOp, MemorySpec, Workload};
use std::str::FromStr;

/// Most values one axis may expand to, and most workloads one sweep may make: past these a
/// typo (`1..100000000`) would plan for hours.
pub const MAX_AXIS_VALUES: usize = 4096;
pub const MAX_SWEEP_WORKLOADS: usize = 10_000;

/// The values of one axis, in the order given, duplicates removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis(pub Vec<u64>);

impl Axis {
    /// An axis of one value.
    pub fn one(v: u64) -> Axis {
        Axis(vec![v])
    }

    /// Parses an axis whose values are plain whole numbers.
    pub fn parse_count(s: &str) -> std::result::Result<Axis, String> {
        parse_axis(s, &|t| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{t}` is not a whole number"))
        })
    }

    /// Parses an axis whose values are byte sizes (`4096`, `256MiB`, `1GiB`).
    pub fn parse_bytes(s: &str) -> std::result::Result<Axis, String> {
        parse_axis(s, &|t| Bytes::from_str(t.trim()).map(|b| b.0))
    }
}

impl FromStr for Axis {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Axis, String> {
        Axis::parse_count(s)
    }
}

fn parse_axis(
    s: &str,
    value: &dyn Fn(&str) -> std::result::Result<u64, String>,
) -> std::result::Result<Axis, String> {
    let mut out: Vec<u64> = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("`{s}` has an empty item"));
        }
        let vals = if let Some(rest) = item.strip_prefix("pow2:") {
            let (a, b) = split_range(rest, item)?;
            let (lo, hi) = (value(a)?, value(b)?);
            check_order(lo, hi, item)?;
            let mut p = lo.next_power_of_two();
            let mut v = Vec::new();
            while p <= hi {
                v.push(p);
                match p.checked_mul(2) {
                    Some(n) => p = n,
                    None => break,
                }
            }
            if v.is_empty() {
                return Err(format!("`{item}` holds no power of two"));
            }
            v
        } else if item.contains("..") {
            let (range, step) = match item.split_once(':') {
                Some((r, st)) => (r, value(st)?),
                None => (item, 1),
            };
            if step == 0 {
                return Err(format!("`{item}`: the step must be at least 1"));
            }
            let (a, b) = split_range(range, item)?;
            let (lo, hi) = (value(a)?, value(b)?);
            check_order(lo, hi, item)?;
            let count = (hi - lo) / step + 1;
            if count as usize > MAX_AXIS_VALUES {
                return Err(format!(
                    "`{item}` makes {count} values; at most {MAX_AXIS_VALUES} per axis"
                ));
            }
            (0..count).map(|i| lo + i * step).collect()
        } else {
            vec![value(item)?]
        };
        for v in vals {
            if v == 0 {
                return Err(format!("`{item}`: values must be at least 1"));
            }
            if !out.contains(&v) {
                out.push(v);
            }
        }
        if out.len() > MAX_AXIS_VALUES {
            return Err(format!("`{s}` makes more than {MAX_AXIS_VALUES} values"));
        }
    }
    Ok(Axis(out))
}

fn split_range<'a>(r: &'a str, item: &str) -> std::result::Result<(&'a str, &'a str), String> {
    r.split_once("..")
        .filter(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty())
        .ok_or_else(|| format!("`{item}` is not a range (e.g. 64..1024:64 or pow2:1..8192)"))
}

fn check_order(lo: u64, hi: u64, item: &str) -> std::result::Result<(), String> {
    if lo > hi {
        return Err(format!("`{item}`: the range runs backwards"));
    }
    Ok(())
}

/// Flags of `gpuvet sweep`.
#[derive(clap::Args, Debug, Clone)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub kind: SweepKind,
}

/// What is swept.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum SweepKind {
    /// C = A·B over M, N and K (e.g. --m 1,16,64,256,1024,4096 --n 8192 --k 8192).
    Matmul(MatmulSweep),
    /// Attention over batch, heads, query and KV lengths.
    Attention(AttentionSweep),
    /// Memory bandwidth over array sizes (e.g. --size pow2:1MiB..4GiB).
    Memory(MemorySweep),
}

/// Axes of a matmul sweep. Each takes a list (`1,16,64`), a range (`64..1024:64`) or powers of
/// two (`pow2:1..8192`), or a mix.
#[derive(clap::Args, Debug, Clone)]
pub struct MatmulSweep {
    #[arg(long, value_parser = Axis::parse_count)]
    pub m: Axis,
    #[arg(long, value_parser = Axis::parse_count)]
    pub n: Axis,
    #[arg(long, value_parser = Axis::parse_count)]
    pub k: Axis,
    /// Dtypes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "bf16")]
    pub dtype: Vec<DType>,
    /// How B is stored: nk (N×K, LLM weights) or kn; comma-separated for both.
    #[arg(long, value_delimiter = ',', default_value = "nk")]
    pub layout: Vec<BLayout>,
    /// Implementations: `default` (vendor reference plus the best own kernel), `all`, or names.
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

/// Axes of an attention sweep.
#[derive(clap::Args, Debug, Clone)]
pub struct AttentionSweep {
    #[arg(long, value_parser = Axis::parse_count, default_value = "1")]
    pub batch: Axis,
    /// Query heads.
    #[arg(long, value_parser = Axis::parse_count, default_value = "32")]
    pub heads: Axis,
    /// KV heads (each must divide every --heads value). Default: --heads (no GQA).
    #[arg(long, value_parser = Axis::parse_count)]
    pub kv_heads: Option<Axis>,
    /// Query length (1 is decode).
    #[arg(long, value_parser = Axis::parse_count)]
    pub seq: Axis,
    /// KV length. Default: the query length.
    #[arg(long, value_parser = Axis::parse_count)]
    pub kv_seq: Option<Axis>,
    #[arg(long, value_parser = Axis::parse_count, default_value = "128")]
    pub head_dim: Axis,
    /// Causal mask, queries aligned to the end of the keys.
    #[arg(long)]
    pub causal: bool,
    /// Dtypes, comma-separated: f32, f16, bf16.
    #[arg(long, value_delimiter = ',', default_value = "bf16")]
    pub dtype: Vec<DType>,
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

/// Axes of a memory sweep.
#[derive(clap::Args, Debug, Clone)]
pub struct MemorySweep {
    /// Bytes per array: sizes with units, lists, ranges, `pow2:1MiB..1GiB`.
    #[arg(long, value_parser = Axis::parse_bytes)]
    pub size: Axis,
    /// Operations, comma-separated: copy, read, write, triad.
    #[arg(long, value_delimiter = ',', default_value = "copy")]
    pub op: Vec<MemOp>,
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

impl SweepArgs {
    /// The `--impl` list, for `plan::ImplSelect::parse`.
    pub fn implementations(&self) -> &[String] {
        match &self.kind {
            SweepKind::Matmul(a) => &a.implementation,
            SweepKind::Attention(a) => &a.implementation,
            SweepKind::Memory(a) => &a.implementation,
        }
    }

    /// `sweep matmul` and so on: the command recorded in the report.
    pub fn command(&self) -> &'static str {
        match &self.kind {
            SweepKind::Matmul(_) => "sweep matmul",
            SweepKind::Attention(_) => "sweep attention",
            SweepKind::Memory(_) => "sweep memory",
        }
    }
}

/// The cross product of the axes, validated, at most [`MAX_SWEEP_WORKLOADS`].
pub fn sweep_workloads(args: &SweepArgs) -> Result<Vec<Workload>> {
    let mut v = Vec::new();
    let mut push = |w: Workload| -> Result<()> {
        if v.len() >= MAX_SWEEP_WORKLOADS {
            return Err(Error::invalid(format!(
                "the sweep makes more than {MAX_SWEEP_WORKLOADS} workloads; narrow an axis"
            )));
        }
        w.validate()?;
        v.push(w);
        Ok(())
    };
    match &args.kind {
        SweepKind::Matmul(a) => {
            for &dtype in &a.dtype {
                for &b_layout in &a.layout {
                    for &m in &a.m.0 {
                        for &n in &a.n.0 {
                            for &k in &a.k.0 {
                                push(Workload::Matmul(MatmulSpec {
                                    m,
                                    n,
                                    k,
                                    dtype,
                                    b_layout,
                                }))?;
                            }
                        }
                    }
                }
            }
        }
        SweepKind::Attention(a) => {
            for &dtype in &a.dtype {
                for &batch in &a.batch.0 {
                    for &q_heads in &a.heads.0 {
                        let kvh = a.kv_heads.clone().unwrap_or_else(|| Axis::one(q_heads));
                        for &kv_heads in &kvh.0 {
                            for &q_len in &a.seq.0 {
                                let kvs = a.kv_seq.clone().unwrap_or_else(|| Axis::one(q_len));
                                for &kv_len in &kvs.0 {
                                    for &head_dim in &a.head_dim.0 {
                                        push(Workload::Attention(AttentionSpec {
                                            batch,
                                            q_heads,
                                            kv_heads,
                                            q_len,
                                            kv_len,
                                            head_dim,
                                            causal: a.causal,
                                            dtype,
                                        }))?;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        SweepKind::Memory(a) => {
            for &op in &a.op {
                for &bytes in &a.size.0 {
                    push(Workload::Memory(MemorySpec { op, bytes }))?;
                }
            }
        }
    }
    if v.is_empty() {
        return Err(Error::invalid("the sweep has no workloads"));
    }
    Ok(v)
}

/// The axis the charts put on x: the first one with more than one value (`m`, `seq`, `size`,
/// ...), or `None` when every axis has a single value.
pub fn swept_axis(args: &SweepArgs) -> Option<String> {
    let axes: Vec<(&str, usize)> = match &args.kind {
        SweepKind::Matmul(a) => vec![("m", a.m.0.len()), ("n", a.n.0.len()), ("k", a.k.0.len())],
        SweepKind::Attention(a) => vec![
            ("seq", a.seq.0.len()),
            ("kv_seq", a.kv_seq.as_ref().map_or(1, |x| x.0.len())),
            ("batch", a.batch.0.len()),
            ("heads", a.heads.0.len()),
            ("kv_heads", a.kv_heads.as_ref().map_or(1, |x| x.0.len())),
            ("head_dim", a.head_dim.0.len()),
        ],
        SweepKind::Memory(a) => vec![("size", a.size.0.len())],
    };
    axes.into_iter()
        .find(|(_, n)| *n > 1)
        .map(|(name, _)| name.to_string())
}

/// The named parameters of a workload, as charts label series: (`m`, `1024`), (`dtype`,
/// `bf16`), ... Axis names match [`swept_axis`].
pub fn params(w: &Workload) -> Vec<(&'static str, String)> {
    match w {
        Workload::Matmul(m) => vec![
            ("dtype", m.dtype.name().into()),
            ("layout", m.b_layout.name().into()),
            ("m", m.m.to_string()),
            ("n", m.n.to_string()),
            ("k", m.k.to_string()),
        ],
        Workload::Attention(a) => vec![
            ("dtype", a.dtype.name().into()),
            ("batch", a.batch.to_string()),
            ("heads", a.q_heads.to_string()),
            ("kv_heads", a.kv_heads.to_string()),
            ("seq", a.q_len.to_string()),
            ("kv_seq", a.kv_len.to_string()),
            ("head_dim", a.head_dim.to_string()),
            ("causal", a.causal.to_string()),
        ],
        Workload::Memory(m) => vec![
            ("op", m.op.name().into()),
            ("size", Bytes(m.bytes).to_string()),
        ],
    }
}

/// The value of a swept axis in a workload (`size` in bytes), or `None` when the workload has
/// no such axis.
pub fn axis_value(w: &Workload, axis: &str) -> Option<u64> {
    Some(match (w, axis) {
        (Workload::Matmul(m), "m") => m.m,
        (Workload::Matmul(m), "n") => m.n,
        (Workload::Matmul(m), "k") => m.k,
        (Workload::Attention(a), "batch") => a.batch,
        (Workload::Attention(a), "heads") => a.q_heads,
        (Workload::Attention(a), "kv_heads") => a.kv_heads,
        (Workload::Attention(a), "seq") => a.q_len,
        (Workload::Attention(a), "kv_seq") => a.kv_len,
        (Workload::Attention(a), "head_dim") => a.head_dim,
        (Workload::Memory(m), "size") => m.bytes,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_ranges_and_powers() {
        assert_eq!(Axis::parse_count("1,16,64").unwrap().0, vec![1, 16, 64]);
        assert_eq!(
            Axis::parse_count("64..320:64").unwrap().0,
            vec![64, 128, 192, 256, 320]
        );
        // the end is included only when the step lands on it
        assert_eq!(Axis::parse_count("1..10:4").unwrap().0, vec![1, 5, 9]);
        assert_eq!(Axis::parse_count("3..5").unwrap().0, vec![3, 4, 5]);
        assert_eq!(
            Axis::parse_count("pow2:1..64").unwrap().0,
            vec![1, 2, 4, 8, 16, 32, 64]
        );
        // non-powers at the ends round inwards
        assert_eq!(Axis::parse_count("pow2:3..20").unwrap().0, vec![4, 8, 16]);
        // mixed, deduplicated, order kept
        assert_eq!(
            Axis::parse_count("1, pow2:1..4, 3").unwrap().0,
            vec![1, 2, 4, 3]
        );
        assert_eq!(
            Axis::parse_bytes("pow2:1MiB..4MiB,4096").unwrap().0,
            vec![1 << 20, 2 << 20, 4 << 20, 4096]
        );
        for bad in [
            "",
            "1,,2",
            "0",
            "a",
            "10..1",
            "1..10:0",
            "pow2:5..7",
            "..4",
            "pow2:1..",
            "1..100000",
        ] {
            assert!(Axis::parse_count(bad).is_err(), "{bad}");
        }
    }

    fn matmul(m: &str) -> SweepArgs {
        SweepArgs {
            kind: SweepKind::Matmul(MatmulSweep {
                m: Axis::parse_count(m).unwrap(),
                n: Axis::one(64),
                k: Axis::one(32),
                dtype: vec![DType::Bf16, DType::F16],
                layout: vec![BLayout::Nk],
                implementation: vec![],
            }),
        }
    }

    #[test]
    fn cross_product_in_flag_order() {
        let a = matmul("1,16,64");
        let ws = sweep_workloads(&a).unwrap();
        assert_eq!(ws.len(), 6);
        assert_eq!(ws[0].name(), "matmul.bf16.1x64x32.nk");
        assert_eq!(ws[2].name(), "matmul.bf16.64x64x32.nk");
        assert_eq!(ws[3].name(), "matmul.f16.1x64x32.nk");
        assert_eq!(swept_axis(&a).as_deref(), Some("m"));
        assert_eq!(axis_value(&ws[1], "m"), Some(16));
        assert_eq!(swept_axis(&matmul("8")), None);
    }

    #[test]
    fn attention_and_memory_sweeps() {
        let a = SweepArgs {
            kind: SweepKind::Attention(AttentionSweep {
                batch: Axis::one(2),
                heads: Axis::one(8),
                kv_heads: Some(Axis::one(2)),
                seq: Axis::one(1),
                kv_seq: Some(Axis::parse_count("pow2:128..1024").unwrap()),
                head_dim: Axis::one(64),
                causal: true,
                dtype: vec![DType::Bf16],
                implementation: vec![],
            }),
        };
        let ws = sweep_workloads(&a).unwrap();
        assert_eq!(ws.len(), 4);
        assert_eq!(swept_axis(&a).as_deref(), Some("kv_seq"));
        // an impossible point is refused with the workload's own message
        let mut bad = a.clone();
        if let SweepKind::Attention(x) = &mut bad.kind {
            x.kv_heads = Some(Axis::one(3));
        }
        assert!(sweep_workloads(&bad)
            .unwrap_err()
            .to_string()
            .contains("divide"));
        let m = SweepArgs {
            kind: SweepKind::Memory(MemorySweep {
                size: Axis::parse_bytes("pow2:1MiB..8MiB").unwrap(),
                op: vec![MemOp::Copy, MemOp::Triad],
                implementation: vec![],
            }),
        };
        assert_eq!(sweep_workloads(&m).unwrap().len(), 8);
        assert_eq!(swept_axis(&m).as_deref(), Some("size"));
        assert_eq!(m.command(), "sweep memory");
    }

    #[test]
    fn refuses_huge_sweeps() {
        let a = SweepArgs {
            kind: SweepKind::Matmul(MatmulSweep {
                m: Axis::parse_count("1..4000").unwrap(),
                n: Axis::parse_count("1..4").unwrap(),
                k: Axis::one(1),
                dtype: vec![DType::F32],
                layout: vec![BLayout::Kn],
                implementation: vec![],
            }),
        };
        assert!(sweep_workloads(&a)
            .unwrap_err()
            .to_string()
            .contains("narrow"));
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: SweepArgs,
    }

    #[test]
    fn flags_parse_as_documented() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "t",
            "matmul",
            "--m",
            "1,16,64,256,1024,4096",
            "--n",
            "8192",
            "--k",
            "8192",
            "--dtype",
            "bf16",
        ])
        .unwrap();
        assert_eq!(sweep_workloads(&c.args).unwrap().len(), 6);
        assert_eq!(swept_axis(&c.args).as_deref(), Some("m"));
        let a = Cli::try_parse_from([
            "t",
            "attention",
            "--seq",
            "1",
            "--kv-seq",
            "pow2:512..4096",
            "--kv-heads",
            "8",
            "--causal",
        ])
        .unwrap();
        assert_eq!(sweep_workloads(&a.args).unwrap().len(), 4);
        let m = Cli::try_parse_from([
            "t",
            "memory",
            "--size",
            "pow2:1MiB..1GiB",
            "--op",
            "copy,read",
        ])
        .unwrap();
        assert_eq!(sweep_workloads(&m.args).unwrap().len(), 22);
        assert_eq!(m.args.command(), "sweep memory");
        let e = Cli::try_parse_from(["t", "matmul", "--m", "10..1", "--n", "1", "--k", "1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("runs backwards"), "{e}");
    }
}
