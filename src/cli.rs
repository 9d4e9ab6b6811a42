//! Command-line interface: the clap types, their checks, and their conversion into the plain
//! domain options that [`crate::commands`] (and the library) take; the exit code. No clap type
//! goes below this module: domain enums that are flag values (`BackendChoice`, `FailOn`,
//! `FleetFormat`) get their `clap::ValueEnum` impl here.
//!
//! Exit codes: 0 everything verified, 1 a check failed (a wrong result, a regression),
//! 2 a usage or environment error, 130 interrupted. Results go to stdout only when asked
//! (`--json -`); the human table goes to stdout otherwise, and to stderr when stdout carries a
//! machine format. Progress and notices go to stderr.

use crate::backend::BackendChoice;
use crate::commands;
use crate::compare;
use crate::dtype::DType;
use crate::measure::MeasureConfig;
use crate::validate::aggregate::FleetFormat;
use crate::workload::{
    AttentionAxes, Axis, BLayout, CollectiveAxes, CollectiveOp, Direction, HostMemory, KindAxes,
    MatmulAxes, MemOp, MemoryAxes, P2pAxes, P2pOp, TransferAxes, Workload,
};
use crate::world::WorldChoice;
use anyhow::{bail, Context, Result};
use clap::builder::PossibleValue;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::{Path, PathBuf};

/// The default `--seed`: fixed, so two runs see the same inputs unless asked otherwise.
pub const DEFAULT_SEED: u64 = 20261128;

#[derive(Parser, Debug)]
#[command(
    name = "gpuvet",
    version,
    about = "Measures what a GPU really delivers for inference work, verified, and says whether that is what it should be.",
    long_about = "Measures matmul throughput per dtype, attention (prefill and decode) and memory bandwidth, \
each checked against an f64 reference before its time counts, with statistics and a share of the device's \
datasheet peak. Without a subcommand it runs the quick suite on the best backend available (a GPU when one \
is usable, otherwise the CPU).",
    after_help = "Exit status: 0 all verified, 1 a check failed, 2 usage or environment error, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where to run. `auto` uses CUDA when a usable NVIDIA GPU is present and the CPU otherwise;
    /// `cuda` fails (exit 2) when no GPU can be used.
    #[arg(long, global = true, value_enum, default_value_t = BackendChoice::Auto, env = "GPUVET_BACKEND")]
    pub backend: BackendChoice,
    /// Write the full report as JSON to PATH (rewritten as results come in), or to stdout with `-`.
    #[arg(long, global = true, value_name = "PATH|-", value_parser = output_target)]
    pub json: Option<String>,
    /// Write one CSV row per result to PATH, or stdout with `-`.
    #[arg(long, global = true, value_name = "PATH|-", value_parser = output_target)]
    pub csv: Option<String>,
    /// Write a markdown table (for a pull request or a wiki) to PATH, or stdout with `-`.
    #[arg(long, global = true, value_name = "PATH|-", value_parser = output_target)]
    pub markdown: Option<String>,
    /// Seed of the random inputs and of the bootstrap; recorded in the report.
    #[arg(long, global = true, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// No progress bar and no notices; errors and the results table still appear.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Samples always taken per result. Raise it for tighter confidence intervals.
    #[arg(long, global = true, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub min_samples: u64,
    /// Samples never exceeded per result.
    #[arg(long, global = true, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_samples: u64,
    /// Seconds of sampling per result after which no new sample starts (once --min-samples are in).
    #[arg(long, global = true, default_value_t = 3.0, value_name = "SECONDS")]
    pub max_time: f64,
    /// Seconds of warm-up before sampling each result (clocks ramp, caches settle).
    #[arg(long, global = true, default_value_t = 0.3, value_name = "SECONDS")]
    pub warmup: f64,
    /// Stop sampling early once the relative standard deviation is below this many percent.
    #[arg(long, global = true, default_value_t = 0.5, value_name = "PERCENT")]
    pub target_noise: f64,
    /// Shortest sample in milliseconds; shorter iterations are batched to reach it.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "MS")]
    pub min_sample_time: f64,
    /// CPU threads for the CPU backend and for verification (0 = all). At most 1024: more
    /// threads than cores only slow the CPU backend (1024 on 2 cores takes 4x as long).
    #[arg(long, global = true, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub threads: u16,
    /// Keep caches warm: no buffer rotation for small working sets (measures cache, not memory).
    #[arg(long, global = true)]
    pub hot: bool,
    /// Write inputs and output of failed results as .npy files into DIR, to debug in numpy.
    #[arg(long, global = true, value_name = "DIR")]
    pub dump_dir: Option<PathBuf>,
    /// With --dump-dir: dump every result, not only failed ones.
    #[arg(long, global = true, requires = "dump_dir")]
    pub dump_all: bool,
    /// Save this run as baseline NAME in the baseline directory (atomic; a corrupt existing file
    /// is never overwritten).
    #[arg(long, global = true, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// With --save-baseline: keep the newest N runs of the baseline (the one it replaces goes
    /// to NAME.history/ in the baseline directory), so that --baseline NAME judges against the
    /// spread of N runs, not one run's samples. 1 (the default) replaces the baseline and
    /// leaves any earlier runs as they are.
    #[arg(long, global = true, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000), requires = "save_baseline")]
    pub baseline_keep: u32,
    /// After the run, compare it against baseline NAME (as `gpuvet compare` does); exit 1 on a
    /// confirmed regression. Compared before --save-baseline saves, so both may name the same.
    #[arg(long, global = true, value_name = "NAME")]
    pub baseline: Option<String>,
    /// With --baseline: the noise band in percent, as `compare --threshold` (a change counts
    /// only when the whole 95% interval of the ratio lies beyond it).
    #[arg(long, global = true, value_name = "PERCENT", value_parser = parse_threshold,
          requires = "baseline")]
    pub baseline_threshold: Option<f64>,
    /// With --baseline: what else makes the exit status 1, comma-separated, as `compare
    /// --fail-on` (`ambiguous`, `missing`; a confirmed regression always fails).
    #[arg(
        long,
        global = true,
        value_name = "WHAT",
        value_enum,
        value_delimiter = ',',
        requires = "baseline"
    )]
    pub baseline_fail_on: Vec<compare::FailOn>,
    /// Directory of baselines (default: $GPUVET_BASELINE_DIR, else .gpuvet/baselines).
    #[arg(long, global = true, value_name = "DIR")]
    pub baseline_dir: Option<PathBuf>,
    /// Write SVG charts into DIR after the run: a roofline of every result, sweep curves,
    /// stress timelines.
    #[arg(long, global = true, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Also write FORMAT:PATH for CI tools: `github` (github-action-benchmark
    /// customBiggerIsBetter), `github-latency` (customSmallerIsBetter, the median time) or
    /// `bencher` (Bencher Metric Format). Repeatable.
    #[arg(long, global = true, value_name = "FORMAT:PATH")]
    pub export: Vec<String>,
    /// Write Prometheus metrics in the node-exporter textfile-collector format to PATH (atomic
    /// replace; name it `*.prom` in the collector's directory), or stdout with `-`: throughput,
    /// share of peak, clocks, temperature, throttle reasons, and validate's verdicts. For run,
    /// bench, sweep, suite, validate and stress.
    #[arg(long, global = true, value_name = "PATH|-", value_parser = output_target)]
    pub prometheus: Option<String>,
    /// Write JUnit XML to PATH (or stdout with `-`) for CI test reporters: validate (a testcase
    /// per check per GPU), compare and --baseline (a testcase per compared result).
    #[arg(long, global = true, value_name = "PATH|-", value_parser = output_target)]
    pub junit: Option<String>,
    /// Price of one device (GPU) per hour in USD: adds price-performance (TFLOP-hours per
    /// dollar) to results, dollars per million tokens to `suite llm`, and the hourly cost of
    /// the nodes to drain to `aggregate`.
    #[arg(long, global = true, value_name = "USD", conflicts_with = "price_file")]
    pub price_per_hour: Option<f64>,
    /// Prices per SKU from a TOML file: a `[price]` table of `sku-id = USD per GPU-hour`, and
    /// optionally `default = USD` (docs/integrations.md). Used like --price-per-hour.
    #[arg(long, global = true, value_name = "PATH")]
    pub price_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the quick suite: memory bandwidth, matmul per dtype, attention (the default).
    Run,
    /// Show the host, the devices and their state.
    Info,
    /// Measure one kind of workload at shapes you choose.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// List dtypes, workloads, implementations per backend, the quick suite, and kernels.
    List(ListArgs),
    /// Inference suites: a model's GEMMs and attention at per-GPU shapes, with token-rate
    /// estimates from the measured times.
    #[command(subcommand)]
    Suite(SuiteCommand),
    /// Sweep one workload over axes (lists, ranges, powers of two) for curves and rooflines.
    Sweep(SweepArgs),
    /// Turn a results JSON into one self-contained HTML page (inline SVG and CSS).
    Report(ReportFlags),
    /// Sustained matmul load on every GPU with a per-second timeline and silent-data-corruption
    /// checks (the same inputs must give bit-identical outputs every time, on every GPU).
    Stress(StressArgs),
    /// Is this node's GPU what it claims and healthy? Identity, speed against the SKU, peers,
    /// health telemetry and correctness: PASS / WARN / FAIL; exit 0 on PASS or WARN, 1 on FAIL,
    /// 2 when it could not judge.
    Validate(ValidateArgs),
    /// Join per-node verdict files (from `validate --verdict`) into a fleet view.
    Aggregate(AggregateFlags),
    /// Compare two reports: a verdict per result from both runs' samples; exit 1 on a confirmed
    /// regression.
    Compare(CompareArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
pub enum SuiteCommand {
    /// An LLM's layers (QKV, O, gate+up, down, LM head, attention) under tensor parallelism:
    /// time-to-first-token and decode tokens/s estimated from the measured kernels.
    Llm(SuiteLlmArgs),
}

#[derive(Args, Debug)]
pub struct SuiteLlmArgs {
    #[command(flatten)]
    pub suite: SuiteFlags,
    /// Also write the estimate as JSON to PATH (`-` for stdout).
    #[arg(long, value_name = "PATH|-", value_parser = output_target)]
    pub estimate_json: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// C = A·B at given shapes and dtypes.
    Matmul {
        #[command(flatten)]
        args: MatmulArgs,
        #[command(flatten)]
        kernel: KernelFlags,
    },
    /// Attention forward (prefill or decode), with GQA and causal masks.
    Attention {
        #[command(flatten)]
        args: AttentionArgs,
        #[command(flatten)]
        kernel: KernelFlags,
    },
    /// Streaming memory bandwidth: copy, read, write, triad.
    Memory {
        #[command(flatten)]
        args: MemoryArgs,
        #[command(flatten)]
        kernel: KernelFlags,
    },
    /// Host↔device copies (h2d, d2h, both at once), pinned or pageable host memory, copy
    /// engine and SM kernel, verified; as % of the PCIe link's rate.
    Transfer(TransferArgs),
    /// GPU↔GPU copies on every ordered pair (and both ways at once), write and read, copy
    /// engine and SM kernel over peer mappings; prints the topology matrix.
    P2p(P2pArgs),
    /// Collectives (all-reduce, all-gather, reduce-scatter, broadcast, all-to-all) through NCCL
    /// on every GPU of the run, or across processes launched by Slurm; algbw and busbw as
    /// nccl-tests defines them.
    Collective(CollectiveBench),
    /// Your own CUDA kernel from a spec file: its buffers, launch, work per launch and how to
    /// verify it (docs/kernels.md). Needs a GPU.
    Kernel(KernelArgs),
}

/// `--kernel` and its companions on `bench matmul|attention|memory`: the user's CUDA kernel as
/// one more implementation of the workload, on the workload's own inputs, checked by its own
/// verifier (docs/kernels.md). Needs a GPU.
#[derive(Args, Debug, Clone, Default)]
pub struct KernelFlags {
    /// Your CUDA kernel as one more implementation: FILE.cu:ENTRY (with --launch) or a small
    /// spec FILE.toml beside the .cu.
    #[arg(long, value_name = "FILE.cu:ENTRY|SPEC.toml")]
    pub kernel: Option<String>,
    /// grid=X[,Y[,Z]],block=X[,Y[,Z]][,smem=BYTES],args=A,B,…: expressions of the workload's
    /// sizes and --set variables (e.g. grid=cdiv(N,128),cdiv(M,128),block=256,args=A,B,C,M,N,K);
    /// beside a spec, replaces the keys it names.
    #[arg(long, requires = "kernel", value_name = "LAUNCH")]
    pub launch: Option<String>,
    /// A macro for the kernel's compile: NAME=EXPR (an expression of sizes and --set
    /// variables) or NAME. Repeatable.
    #[arg(
        long = "define",
        short = 'D',
        requires = "kernel",
        value_name = "NAME[=EXPR]"
    )]
    pub defines: Vec<String>,
    /// An include folder for the kernel's compile. Repeatable.
    #[arg(long, requires = "kernel", value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// An NVRTC option (--use_fast_math, --maxrregcount=N, --ftz=true, ...; docs/kernels.md
    /// lists those accepted). Repeatable.
    #[arg(
        long = "nvrtc-opt",
        requires = "kernel",
        value_name = "OPT",
        allow_hyphen_values = true
    )]
    pub nvrtc_opts: Vec<String>,
    /// Sweep a kernel variable: NAME=VALUES (a list, a range, pow2:…); each value is its own
    /// implementation, `name[NAME=value]`. Repeatable (the values are crossed).
    #[arg(long = "set", requires = "kernel", value_name = "NAME=VALUES")]
    pub sets: Vec<String>,
    /// The implementation name results show (default: the spec's name, or the entry).
    #[arg(long, requires = "kernel", value_name = "NAME")]
    pub kernel_name: Option<String>,
}

impl KernelFlags {
    /// The user kernels asked for (one per --set combination), none without --kernel.
    fn kernels(&self) -> Result<Vec<crate::workload::kernel::UserKernel>> {
        let Some(kernel) = &self.kernel else {
            return Ok(Vec::new());
        };
        let req = crate::workload::kernel::spec::KernelRequest {
            kernel: kernel.clone(),
            launch: self.launch.clone(),
            name: self.kernel_name.clone(),
            defines: self.defines.clone(),
            include: self.include.clone(),
            options: self.nvrtc_opts.clone(),
            sets: self.sets.clone(),
        };
        Ok(crate::workload::kernel::spec::implementations(&req)?)
    }
}

/// Flags of `bench kernel`.
#[derive(Args, Debug, Clone)]
pub struct KernelArgs {
    /// The kernel's spec (TOML): source, entry, buffers, launch, work and verification.
    #[arg(long, value_name = "SPEC.toml")]
    pub spec: PathBuf,
    /// Sweep a spec variable: NAME=VALUES (a list, a range, pow2:…); each value is its own
    /// result. Repeatable (the values are crossed).
    #[arg(long = "set", value_name = "NAME=VALUES")]
    pub sets: Vec<String>,
}

impl KernelArgs {
    fn axes(&self) -> crate::workload::kernel::KernelAxes {
        crate::workload::kernel::KernelAxes::new(self.spec.clone(), self.sets.clone())
    }
}

/// The flags of `bench matmul` and of `sweep matmul`: one argument set, whose sizes are either
/// a list of shapes or axes crossed with each other.
///
/// `--shape` is required unless `--m` is given (which brings `--n` and `--k`): so that
/// `--m` alone is told it lacks `--n` and `--k`, not also a `--shape` it did not mean.
#[derive(Args, Debug, Clone)]
pub struct MatmulArgs {
    /// Shapes as MxNxK, comma-separated (e.g. 4096x4096x4096,16x28672x4096); or --m, --n, --k.
    #[arg(long, value_delimiter = ',', value_parser = parse_shape,
          required_unless_present = "m", conflicts_with_all = ["m", "n", "k"])]
    pub shape: Vec<(u64, u64, u64)>,
    /// M values, crossed with --n and --k: a list (`1,16,64`), a range (`64..1024:64`), powers
    /// of two (`pow2:1..8192`), or a mix.
    #[arg(long, value_parser = Axis::parse_count, requires_all = ["n", "k"])]
    pub m: Option<Axis>,
    /// N values (as --m).
    #[arg(long, value_parser = Axis::parse_count, requires_all = ["m", "k"])]
    pub n: Option<Axis>,
    /// K values (as --m).
    #[arg(long, value_parser = Axis::parse_count, requires_all = ["m", "n"])]
    pub k: Option<Axis>,
    /// Dtypes, comma-separated: f32, tf32, f16, bf16, fp8_e4m3, fp8_e5m2, int8.
    #[arg(long, value_delimiter = ',', default_value = "bf16")]
    pub dtype: Vec<DType>,
    /// How B is stored: kn (K×N) or nk (N×K, the layout of LLM weights); comma-separated for
    /// both. Default: kn for bench, nk for sweep.
    #[arg(long, value_delimiter = ',')]
    pub layout: Vec<BLayout>,
    /// Implementations: `default` (vendor reference plus the best own kernel), `all`, or names.
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

impl MatmulArgs {
    /// One set of axes per listed shape (so shapes stay the outer loop, as a bench has always
    /// run them), or one over the --m, --n, --k axes.
    fn axes(self, default_layout: BLayout) -> Vec<MatmulAxes> {
        let layout = if self.layout.is_empty() {
            vec![default_layout]
        } else {
            self.layout
        };
        let point = |m, n, k| MatmulAxes {
            m,
            n,
            k,
            dtype: self.dtype.clone(),
            layout: layout.clone(),
            implementation: self.implementation.clone(),
        };
        match (self.m, self.n, self.k) {
            (Some(m), Some(n), Some(k)) => vec![point(m, n, k)],
            _ => self
                .shape
                .iter()
                .map(|&(m, n, k)| point(Axis::one(m), Axis::one(n), Axis::one(k)))
                .collect(),
        }
    }

    fn sweep_axes(self) -> Result<MatmulAxes, clap::Error> {
        let mut all = self.axes(BLayout::Nk);
        if all.len() != 1 {
            return Err(usage_error(
                "a sweep crosses --m, --n and --k; several --shape values are a bench",
            ));
        }
        Ok(all.remove(0))
    }
}

/// The flags of `bench attention` and of `sweep attention`.
#[derive(Args, Debug, Clone)]
pub struct AttentionArgs {
    #[arg(long, value_parser = Axis::parse_count, default_value = "1")]
    pub batch: Axis,
    /// Query heads.
    #[arg(long, value_parser = Axis::parse_count, default_value = "32")]
    pub heads: Axis,
    /// Key/value heads (each must divide every --heads value; fewer than --heads is GQA, 1 is
    /// MQA). Default: --heads.
    #[arg(long, value_parser = Axis::parse_count)]
    pub kv_heads: Option<Axis>,
    /// Query length (1 for decode).
    #[arg(long, value_parser = Axis::parse_count)]
    pub seq: Axis,
    /// Key/value length. Default: --seq.
    #[arg(long, value_parser = Axis::parse_count)]
    pub kv_seq: Option<Axis>,
    #[arg(long, value_parser = Axis::parse_count, default_value = "128")]
    pub head_dim: Axis,
    /// Causal mask, queries aligned to the end of the keys (as in decode).
    #[arg(long)]
    pub causal: bool,
    /// Dtypes, comma-separated: f32, f16, bf16.
    #[arg(long, value_delimiter = ',', default_value = "bf16")]
    pub dtype: Vec<DType>,
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

impl AttentionArgs {
    fn sweep_axes(self) -> Result<AttentionAxes, clap::Error> {
        Ok(AttentionAxes {
            batch: self.batch,
            heads: self.heads,
            kv_heads: self.kv_heads,
            seq: self.seq,
            kv_seq: self.kv_seq,
            head_dim: self.head_dim,
            causal: self.causal,
            dtype: self.dtype,
            implementation: self.implementation,
        })
    }
}

/// The flags of `bench memory` and of `sweep memory`.
#[derive(Args, Debug, Clone)]
pub struct MemoryArgs {
    /// Bytes per array: sizes with units, lists, ranges, `pow2:1MiB..1GiB` (e.g. 256MiB,1GiB);
    /// repeatable. Default for bench: 1GiB.
    #[arg(long, value_parser = Axis::parse_bytes)]
    pub size: Vec<Axis>,
    /// Operations, comma-separated: copy, read, write, triad.
    #[arg(long, value_delimiter = ',', default_value = "copy")]
    pub op: Vec<MemOp>,
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

/// Every value of repeated `--size` axes, in order, duplicates removed; `default` when none
/// is given.
fn merged_sizes(axes: &[Axis], default: Option<u64>) -> Axis {
    let mut v: Vec<u64> = Vec::new();
    for x in axes.iter().flat_map(|a| &a.0) {
        if !v.contains(x) {
            v.push(*x);
        }
    }
    match (v.is_empty(), default) {
        (true, Some(d)) => Axis::one(d),
        _ => Axis(v),
    }
}

impl MemoryArgs {
    /// Every --size value, in order, duplicates removed.
    fn sizes(&self) -> Axis {
        merged_sizes(&self.size, None)
    }

    /// One set of axes per size (sizes are a bench's outer loop), 1 GiB when none is given.
    fn bench_axes(&self) -> Vec<MemoryAxes> {
        let sizes = if self.size.is_empty() {
            Axis::one(1 << 30)
        } else {
            self.sizes()
        };
        sizes
            .0
            .into_iter()
            .map(|b| MemoryAxes {
                size: Axis::one(b),
                op: self.op.clone(),
                implementation: self.implementation.clone(),
            })
            .collect()
    }

    /// `--size` is required for a sweep (see `axes_parse_as!`).
    fn sweep_axes(self) -> Result<MemoryAxes, clap::Error> {
        Ok(MemoryAxes {
            size: self.sizes(),
            op: self.op,
            implementation: self.implementation,
        })
    }
}

/// The flags of `bench transfer` and of `sweep transfer`.
#[derive(Args, Debug, Clone)]
pub struct TransferArgs {
    /// Bytes each way: sizes with units, lists, ranges, `pow2:4KiB..1GiB` (a curve from
    /// latency-bound to bandwidth-bound); repeatable. Default for bench: 256MiB.
    #[arg(long, value_parser = Axis::parse_bytes)]
    pub size: Vec<Axis>,
    /// Directions, comma-separated: h2d, d2h, bidir (both at once).
    #[arg(long, value_delimiter = ',', default_value = "h2d,d2h")]
    pub direction: Vec<Direction>,
    /// Host memory, comma-separated: pinned (page-locked), pageable.
    #[arg(long, value_delimiter = ',', default_value = "pinned")]
    pub memory: Vec<HostMemory>,
    /// Implementations: `default` (the copy engine and the SM kernel), `all`, or names
    /// (memcpy, kernel).
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

impl SizedKind for TransferArgs {
    type Axes = TransferAxes;
    const BENCH_SIZE: u64 = 256 * MIB;

    fn axes(self, default_size: Option<u64>) -> TransferAxes {
        TransferAxes {
            size: merged_sizes(&self.size, default_size),
            direction: self.direction,
            memory: self.memory,
            implementation: self.implementation,
        }
    }
}

const MIB: u64 = 1 << 20;

/// The kinds whose `--size` has a default for a bench but not for a sweep (which must name
/// its sizes): their axes with the repeated `--size` values merged.
trait SizedKind: Sized {
    type Axes;
    /// Bytes a bench measures at when no `--size` is given.
    const BENCH_SIZE: u64;

    fn axes(self, default_size: Option<u64>) -> Self::Axes;

    fn bench_axes(self) -> Self::Axes {
        self.axes(Some(Self::BENCH_SIZE))
    }

    /// `--size` is required for a sweep (see `axes_parse_as!`).
    fn sweep_axes(self) -> Result<Self::Axes, clap::Error> {
        Ok(self.axes(None))
    }
}

/// `uni` or `bidir` (one way, or both devices copying to each other at once), or `both` for
/// the two: as bidirectional's alias, `both` ran the bidirectional copies alone.
fn parse_way(s: &str) -> Result<Vec<bool>, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "uni" | "one-way" | "unidirectional" => Ok(vec![false]),
        "bidir" | "bidirectional" => Ok(vec![true]),
        "both" => Ok(vec![false, true]),
        _ => Err(format!("`{s}` is not a direction (uni, bidir, both)")),
    }
}

/// The flags of `bench p2p` and of `sweep p2p`.
#[derive(Args, Debug, Clone)]
pub struct P2pArgs {
    /// Bytes each way (as `bench transfer --size`). Default for bench: 256MiB.
    #[arg(long, value_parser = Axis::parse_bytes)]
    pub size: Vec<Axis>,
    /// Who drives the copy, comma-separated: write (the source pushes), read (the destination
    /// pulls).
    #[arg(long, value_delimiter = ',', default_value = "write")]
    pub op: Vec<P2pOp>,
    /// uni (every ordered pair), bidir (every pair, both ways at once), or both.
    #[arg(long, value_delimiter = ',', default_value = "uni", value_parser = parse_way)]
    pub direction: Vec<Vec<bool>>,
    /// Implementations: `default` (copy engine and SM kernel), `all`, or names (memcpy,
    /// kernel).
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

impl SizedKind for P2pArgs {
    type Axes = P2pAxes;
    const BENCH_SIZE: u64 = 256 * MIB;

    fn axes(self, default_size: Option<u64>) -> P2pAxes {
        P2pAxes {
            size: merged_sizes(&self.size, default_size),
            op: self.op,
            bidirectional: {
                let mut ways: Vec<bool> = self.direction.into_iter().flatten().collect();
                ways.sort_unstable();
                ways.dedup();
                ways
            },
            implementation: self.implementation,
        }
    }
}

/// The flags of `bench collective` and of `sweep collective`.
#[derive(Args, Debug, Clone)]
pub struct CollectiveArgs {
    /// Message sizes as nccl-tests counts them (the all-reduce buffer, the gathered output,
    /// ...): units, lists, `pow2:8KiB..4GiB`. Default for bench: 64MiB.
    #[arg(long, value_parser = Axis::parse_bytes)]
    pub size: Vec<Axis>,
    /// Collectives, comma-separated: all_reduce, all_gather, reduce_scatter, broadcast,
    /// all_to_all.
    #[arg(long, value_delimiter = ',', default_value = "all_reduce")]
    pub op: Vec<CollectiveOp>,
    /// Dtypes, comma-separated: bf16, f16, f32.
    #[arg(long, value_delimiter = ',', default_value = "bf16")]
    pub dtype: Vec<DType>,
    /// Ranks, 2 to 8192. Default: one per GPU of the run (× the processes of a world); on the
    /// CPU backend, threads of one process.
    #[arg(long, default_value_t = 0, hide_default_value = true, value_parser = parse_ranks)]
    pub ranks: u32,
    /// Implementations: `default` (nccl on GPUs), `all`, or names.
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

impl SizedKind for CollectiveArgs {
    type Axes = CollectiveAxes;
    const BENCH_SIZE: u64 = 64 * MIB;

    fn axes(self, default_size: Option<u64>) -> CollectiveAxes {
        CollectiveAxes {
            size: merged_sizes(&self.size, default_size),
            op: self.op,
            dtype: self.dtype,
            ranks: self.ranks,
            implementation: self.implementation,
        }
    }
}

/// `bench collective` with where its processes come from.
#[derive(Args, Debug, Clone)]
pub struct CollectiveBench {
    #[command(flatten)]
    pub args: CollectiveArgs,
    #[command(flatten)]
    pub world: WorldFlag,
}

/// `--world`: which launcher the processes of a run come from.
#[derive(Args, Debug, Clone)]
pub struct WorldFlag {
    /// For collectives, the processes of the run: `auto` (a Slurm step of several tasks, or
    /// GPUVET_WORLD_SIZE), `single`, `slurm` or `env` (GPUVET_RANK / JOB_COMPLETION_INDEX,
    /// GPUVET_WORLD_SIZE, GPUVET_RENDEZVOUS).
    #[arg(long, value_enum, default_value_t = WorldChoice::Auto, env = "GPUVET_WORLD")]
    pub world: WorldChoice,
}

/// `--world`: the domain enum gets its flag values here.
impl clap::ValueEnum for WorldChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            WorldChoice::Auto,
            WorldChoice::Single,
            WorldChoice::Slurm,
            WorldChoice::Env,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            WorldChoice::Auto => "auto",
            WorldChoice::Single => "single",
            WorldChoice::Slurm => "slurm",
            WorldChoice::Env => "env",
        }))
    }
}

fn usage_error(msg: &str) -> clap::Error {
    clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, msg)
}

/// `sweep <kind>` parses its kind's bench flags into the kind's typed axes: the one argument
/// set per kind, with clap kept in this layer. `$sweep_only` adjusts a flag for sweeps (a
/// sweep has no default memory size).
macro_rules! axes_parse_as {
    ($axes:ty, $args:ty, $sweep_only:expr) => {
        impl clap::FromArgMatches for $axes {
            fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
                <$args as clap::FromArgMatches>::from_arg_matches(m)?.sweep_axes()
            }
            fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
                *self = <Self as clap::FromArgMatches>::from_arg_matches(m)?;
                Ok(())
            }
        }
        impl clap::Args for $axes {
            fn augment_args(cmd: clap::Command) -> clap::Command {
                $sweep_only(<$args as clap::Args>::augment_args(cmd))
            }
            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                $sweep_only(<$args as clap::Args>::augment_args_for_update(cmd))
            }
        }
    };
}
axes_parse_as!(MatmulAxes, MatmulArgs, std::convert::identity);
axes_parse_as!(AttentionAxes, AttentionArgs, std::convert::identity);
axes_parse_as!(MemoryAxes, MemoryArgs, |c: clap::Command| c
    .mut_arg("size", |a| a.required(true)));
axes_parse_as!(TransferAxes, TransferArgs, |c: clap::Command| c
    .mut_arg("size", |a| a.required(true)));
axes_parse_as!(P2pAxes, P2pArgs, |c: clap::Command| c
    .mut_arg("size", |a| a.required(true)));
axes_parse_as!(CollectiveAxes, CollectiveArgs, |c: clap::Command| c
    .mut_arg("size", |a| a.required(true)));

#[derive(Args, Debug)]
pub struct StressArgs {
    /// How long to load every device (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "60s", value_parser = crate::units::parse_duration)]
    pub duration: std::time::Duration,
    /// Matmul dtype (tensor-core load by default).
    #[arg(long, default_value = "bf16")]
    pub dtype: DType,
    /// Square matmul size (default 8192 on a GPU, 1024 on the CPU).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub size: Option<u64>,
    /// Seconds between output checksums.
    #[arg(long, default_value_t = 1.0)]
    pub check_interval: f64,
    /// Testing only: flip a bit in the output of device D at checksum number N (`D:N`).
    #[arg(long, hide = true, value_parser = parse_fault)]
    pub plant_fault: Option<(usize, u64)>,
}

fn parse_fault(s: &str) -> Result<(usize, u64), String> {
    let (d, n) = s.split_once(':').ok_or("expected DEVICE:CHECK")?;
    Ok((
        d.parse().map_err(|_| "bad device index")?,
        n.parse().map_err(|_| "bad check number")?,
    ))
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// List the GPU kernels (compiled with NVRTC when a GPU is present).
    #[arg(long)]
    pub kernels: bool,
    /// With --kernels: registers and spills of each kernel.
    #[arg(short, long)]
    pub verbose: bool,
    /// List the GPU models in the database (ids for `validate --expect`) with their peaks.
    #[arg(long, conflicts_with = "kernels")]
    pub skus: bool,
}

/// Flags of `gpuvet validate`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ValidateArgs {
    /// Judge every GPU against this SKU instead of the one it reports (what you paid for, e.g.
    /// h100-sxm). An unknown id is refused with the list of known ones.
    #[arg(long, value_name = "SKU", value_parser = parse_sku)]
    pub expect: Option<String>,
    /// Quick suite, one pass, under 2 minutes per node (the default).
    #[arg(long, conflicts_with = "duration")]
    pub quick: bool,
    /// Soak: run the suite (with larger shapes) for this long, e.g. `30m`, to catch GPUs that
    /// degrade as they heat up.
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// A figure this many percent below the SKU's achievable expectation is a WARN; twice as
    /// far, a FAIL (so under 50).
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0, value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// A GPU this many percent below the median of its peers on the node is a straggler (FAIL).
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0, value_parser = parse_pct)]
    pub straggler_pct: f64,
    /// Write the node verdict as JSON to PATH (`-` for stdout): what a scheduler or
    /// `gpuvet aggregate` reads.
    #[arg(long, value_name = "PATH|-", value_parser = output_target)]
    pub verdict: Option<String>,
    /// Exit 1 on WARN too, not only on FAIL.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Validate on the CPU backend (for testing the pipeline, e.g. a Slurm setup, without a GPU).
    #[arg(long, hide = true)]
    pub allow_cpu: bool,
}

impl Default for ValidateArgs {
    fn default() -> Self {
        ValidateArgs {
            expect: None,
            quick: false,
            duration: None,
            tolerance: 10.0,
            straggler_pct: 10.0,
            verdict: None,
            fail_on_warn: false,
            allow_cpu: false,
        }
    }
}

impl ValidateArgs {
    /// Quick mode unless a soak duration was given.
    pub fn is_quick(&self) -> bool {
        self.duration.is_none()
    }
}

/// An output target as given, with stdout under another name (`/dev/stdout`, `/proc/self/fd/1`,
/// or the file stdout is redirected to) spelled `-`: every rule about stdout (one output there,
/// the table moved to stderr, nothing renamed over it, nothing removed after an interruption)
/// then holds for it too.
fn output_target(s: &str) -> Result<String, String> {
    Ok(if crate::output::is_stdout(Path::new(s)) {
        "-".into()
    } else {
        s.to_string()
    })
}

/// [`output_target`] for a path flag.
fn output_path(s: &str) -> Result<PathBuf, String> {
    output_target(s).map(PathBuf::from)
}

fn parse_sku(s: &str) -> Result<String, String> {
    match crate::gpudb::by_id(s) {
        Some(sku) => Ok(sku.id),
        None => Err(format!(
            "unknown SKU `{s}`; known: {}",
            crate::gpudb::ids().join(", ")
        )),
    }
}

/// A FAIL is twice the tolerance below the expectation: at 50% or more no figure, however
/// short, could fail, and an estimate's WARN band reaches 0 too, so such a tolerance would
/// pass anything while looking like a setting.
fn parse_tolerance(s: &str) -> Result<f64, String> {
    let v = parse_pct(s)?;
    if v >= 50.0 {
        return Err(format!(
            "{v} leaves nothing to fail: a FAIL is twice the tolerance below expectation, so \
             the tolerance must be under 50"
        ));
    }
    Ok(v)
}

fn parse_pct(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage"))?;
    if !(v > 0.0 && v < 100.0) {
        return Err(format!("{v} is not a percentage between 0 and 100"));
    }
    Ok(v)
}

impl From<&ValidateArgs> for crate::validate::JudgeOptions {
    fn from(a: &ValidateArgs) -> Self {
        crate::validate::JudgeOptions {
            expect: a.expect.clone(),
            duration: a.duration,
            tolerance_pct: a.tolerance,
            straggler_pct: a.straggler_pct,
            fail_on_warn: a.fail_on_warn,
        }
    }
}

/// Flags of `gpuvet report`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ReportFlags {
    /// A results file written with `--json`.
    #[arg(value_name = "RESULTS.json")]
    pub results: PathBuf,
    /// Where to write the HTML (`-`: stdout).
    #[arg(short, long, value_name = "PATH|-", default_value = "report.html", value_parser = output_path)]
    pub output: PathBuf,
    /// A node verdict (`gpuvet validate --verdict PATH`) to show at the top.
    #[arg(long, value_name = "PATH")]
    pub verdict: Option<PathBuf>,
    /// Title of the page. Default: "gpuvet report — <devices>".
    #[arg(long)]
    pub title: Option<String>,
    /// Axis of the sweep curves (m, n, k, seq, kv_seq, batch, heads, size, ...). Default: the
    /// first axis that varies, for `sweep` and `bench` runs.
    #[arg(long)]
    pub axis: Option<String>,
}

/// Flags of `gpuvet aggregate`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct AggregateFlags {
    /// Verdict files (from `gpuvet validate --verdict`) or directories holding them (every
    /// `*.json` directly inside).
    #[arg(required = true, value_name = "FILES|DIR")]
    pub paths: Vec<PathBuf>,
    /// table (terminal), markdown, json or csv (one row per GPU and figure).
    #[arg(long, value_enum, default_value_t = FleetFormat::Table)]
    pub format: FleetFormat,
    /// Write to PATH instead of stdout.
    #[arg(long, short = 'o', value_name = "PATH", value_parser = output_path)]
    pub output: Option<PathBuf>,
    /// A GPU this many percent below its SKU's fleet median on any figure is an outlier
    /// (0 to 100).
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0, value_parser = parse_threshold)]
    pub outlier_pct: f64,
}

impl From<ReportFlags> for commands::report::ReportArgs {
    fn from(f: ReportFlags) -> Self {
        commands::report::ReportArgs {
            results: f.results,
            output: f.output,
            verdict: f.verdict,
            title: f.title,
            axis: f.axis,
        }
    }
}

impl From<AggregateFlags> for crate::validate::AggregateArgs {
    fn from(f: AggregateFlags) -> Self {
        crate::validate::AggregateArgs {
            paths: f.paths,
            format: f.format,
            output: f.output,
            outlier_pct: f.outlier_pct,
            price: None,
            also: Vec::new(),
        }
    }
}

/// `--format` of `aggregate`: the domain enum gets its flag values here, not in the library.
impl clap::ValueEnum for FleetFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            FleetFormat::Table,
            FleetFormat::Markdown,
            FleetFormat::Json,
            FleetFormat::Csv,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            FleetFormat::Table => "table",
            FleetFormat::Markdown => "markdown",
            FleetFormat::Json => "json",
            FleetFormat::Csv => "csv",
        }))
    }
}

/// Flags of `gpuvet sweep`.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub kind: SweepCommand,
    #[command(flatten)]
    pub world: WorldFlag,
}

/// What is swept. Each kind's flags are its `bench` flags (`MatmulArgs`, ...).
#[derive(Subcommand, Debug, Clone)]
pub enum SweepCommand {
    /// C = A·B over M, N and K (e.g. --m 1,16,64,256,1024,4096 --n 8192 --k 8192).
    Matmul(MatmulAxes),
    /// Attention over batch, heads, query and KV lengths.
    Attention(AttentionAxes),
    /// Memory bandwidth over array sizes (e.g. --size pow2:1MiB..4GiB).
    Memory(MemoryAxes),
    /// Host↔device bandwidth over sizes (e.g. --size pow2:4KiB..1GiB).
    Transfer(TransferAxes),
    /// GPU↔GPU bandwidth over sizes, every pair.
    P2p(P2pAxes),
    /// Collective bus bandwidth over message sizes (e.g. --size pow2:1MiB..4GiB).
    Collective(CollectiveAxes),
    /// Your own CUDA kernel over its spec's variables (e.g. --set BLOCK=64,128,256), as
    /// `bench kernel` runs it (docs/kernels.md). Needs a GPU.
    Kernel(KernelArgs),
}

impl From<SweepArgs> for crate::sweep::SweepKind {
    fn from(a: SweepArgs) -> Self {
        use crate::sweep::SweepKind as K;
        match a.kind {
            SweepCommand::Matmul(x) => K::new(x),
            SweepCommand::Attention(x) => K::new(x),
            SweepCommand::Kernel(x) => K::new(x.axes()),
            SweepCommand::Memory(x) => K::new(x),
            SweepCommand::Transfer(x) => K::new(x),
            SweepCommand::P2p(x) => K::new(x),
            SweepCommand::Collective(x) => K::new(x),
        }
    }
}

/// `gpuvet compare OLD NEW`: did anything get slower between two reports?
///
/// Each side is one report (OLD, NEW) or several runs (`--old`, `--new`): a side must be given
/// one way, and once only.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("old_side").args(["old", "old_runs"]).required(true)))]
#[command(group(clap::ArgGroup::new("new_side").args(["new", "new_runs"]).required(true)))]
pub struct CompareArgs {
    /// The earlier report (the baseline): a JSON file written by `gpuvet ... --json`.
    #[arg(value_name = "OLD")]
    pub old: Option<PathBuf>,

    /// The later report, compared against OLD.
    #[arg(value_name = "NEW")]
    pub new: Option<PathBuf>,

    /// Several runs of the earlier build (reports of repeated `gpuvet ... --json`), in place
    /// of OLD: the interval is then over the runs, and holds the variation between runs that
    /// one run's samples cannot show. Give 3 or more a side; a shell glob works
    /// (`--old base/*.json`). Every file after `--old` is an OLD run, so name the other side
    /// with `--new` (one file or several).
    #[arg(long = "old", value_name = "REPORT", num_args = 1..)]
    pub old_runs: Vec<PathBuf>,

    /// Several runs of the later build, in place of NEW (see `--old`).
    #[arg(long = "new", value_name = "REPORT", num_args = 1..)]
    pub new_runs: Vec<PathBuf>,

    /// Noise band in percent. A change counts only when the whole 95% interval of the
    /// ratio of medians lies beyond it. The interval holds the noise within each run, not the
    /// variation between runs: set this at or above the change seen between repeated runs of
    /// one build on this machine.
    #[arg(long, value_name = "PERCENT", default_value_t = compare::DEFAULT_THRESHOLD_PCT,
          value_parser = parse_threshold)]
    pub threshold: f64,

    /// Compare cycles (time × effective SM clock) instead of time. Use it when one run may
    /// have been throttled or ran at other clocks, to tell a slow clock from a slow kernel;
    /// results without a recorded clock are compared by time, and the output says so.
    #[arg(long)]
    pub normalize_clock: bool,

    /// What makes the exit status 1, comma-separated: `regression` (confirmed slower, or
    /// newly failing verification; always), `ambiguous` (also intervals that straddle the
    /// threshold: for gates that prefer a re-run to a missed regression), `missing` (also
    /// results of OLD that NEW lacks: for gates that must notice a benchmark that stopped
    /// running).
    #[arg(
        long,
        value_enum,
        value_name = "WHAT",
        value_delimiter = ',',
        default_value = "regression"
    )]
    pub fail_on: Vec<compare::FailOn>,

    /// Also write the comparison as markdown to PATH, e.g. for a pull-request comment; `-`
    /// writes it to stdout (the table then goes to stderr).
    #[arg(long, value_name = "PATH|-", value_parser = output_target)]
    pub markdown: Option<String>,

    /// Also write the comparison as JSON to PATH; `-` writes it to stdout (the table then
    /// goes to stderr), for scripts.
    #[arg(long, value_name = "PATH|-", value_parser = output_target)]
    pub json: Option<String>,

    /// Also write the comparison as CSV (one row per result) to PATH; `-` writes it to
    /// stdout (the table then goes to stderr), for spreadsheets.
    #[arg(long, value_name = "PATH|-", value_parser = output_target)]
    pub csv: Option<String>,

    /// Seed of the bootstrap resampling. The default is fixed, so verdicts are reproducible;
    /// change it only to check that a verdict does not hinge on the resampling.
    #[arg(long, value_name = "N", default_value_t = compare::DEFAULT_SEED)]
    pub seed: u64,
}

/// The most ranks a collective may name: far beyond one job's GPUs, and a bound on the
/// reference check, whose cost grows with the square of the rank count.
pub const MAX_RANKS: u32 = 8192;

/// `--ranks`: 0 (the default: the run's devices) or 2 to [`MAX_RANKS`]. One rank exchanges
/// nothing, and its bus bandwidth is zero.
fn parse_ranks(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of ranks"))?;
    match n {
        1 => Err("a collective needs at least 2 ranks (one exchanges nothing)".into()),
        n if n > MAX_RANKS => Err(format!("at most {MAX_RANKS} ranks")),
        n => Ok(n),
    }
}

/// A percentage from 0 to 100 (`2`, `0.5`, `2%`): `compare --threshold`, `aggregate
/// --outlier-pct`.
fn parse_threshold(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage (try 2 or 0.5)"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{v}% is outside 0–100%"));
    }
    Ok(v)
}

impl From<&CompareArgs> for compare::CompareRequest {
    fn from(a: &CompareArgs) -> Self {
        let side = |one: &Option<PathBuf>, runs: &Vec<PathBuf>| match one {
            Some(p) => vec![p.clone()],
            None => runs.clone(),
        };
        compare::CompareRequest {
            old: side(&a.old, &a.old_runs),
            new: side(&a.new, &a.new_runs),
            options: compare::CompareOptions {
                threshold_pct: a.threshold,
                normalize_clock: a.normalize_clock,
                seed: a.seed,
                ..compare::CompareOptions::default()
            },
            fail_on: a.fail_on.iter().copied().collect(),
            markdown: a.markdown.clone(),
            json: a.json.clone(),
            junit: None,
            csv: a.csv.clone(),
        }
    }
}

/// `--fail-on` of `compare`: the domain enum gets its flag values (and their help) here.
impl clap::ValueEnum for compare::FailOn {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            compare::FailOn::Regression,
            compare::FailOn::Ambiguous,
            compare::FailOn::Missing,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            compare::FailOn::Regression => PossibleValue::new("regression").help(
                "Confirmed regressions only: `slower`, or a result that verified in OLD and not in NEW",
            ),
            compare::FailOn::Ambiguous => PossibleValue::new("ambiguous").help(
                "Also `ambiguous`: for gates that would rather re-run than let a possible regression in",
            ),
            compare::FailOn::Missing => PossibleValue::new("missing").help(
                "Also `missing` (in OLD, not in NEW): for gates that must notice a benchmark that stopped running",
            ),
        })
    }
}

/// `--backend`: the domain enum gets its flag values (and their help) here; `mock` is hidden.
impl clap::ValueEnum for BackendChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            BackendChoice::Auto,
            BackendChoice::Cpu,
            BackendChoice::Cuda,
            BackendChoice::Mock,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let value = PossibleValue::new(self.name());
        Some(match self {
            BackendChoice::Auto => value.help(
                "CUDA when a usable NVIDIA GPU is present, otherwise the CPU (with a notice)",
            ),
            BackendChoice::Cpu => value.help("The host CPU"),
            BackendChoice::Cuda => {
                value.help("NVIDIA GPUs through CUDA; an error when none can be used")
            }
            BackendChoice::Mock => value
                .help("Fake clock, exact outputs: for testing gpuvet itself")
                .hide(true),
        })
    }
}

/// Flags of `gpuvet suite llm`: the model and the serving shape.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct SuiteFlags {
    /// Model preset: llama3.1-8b, llama3.1-70b, llama3.1-405b, mixtral-8x7b, qwen2.5-72b.
    #[arg(
        long,
        required_unless_present = "model_file",
        conflicts_with = "model_file"
    )]
    pub model: Option<String>,
    /// Your own model as a TOML file with the fields of data/models/*.toml (see docs/suites.md).
    #[arg(long, value_name = "PATH")]
    pub model_file: Option<PathBuf>,
    /// Tensor-parallel degree: GPUs one copy of the model is split across (must divide the
    /// query heads, the FFN size, and the KV heads or be a multiple of them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub tp: u64,
    /// Concurrent sequences, comma-separated (e.g. 1,8,64): one estimate per batch size.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: Vec<u64>,
    /// Prompt tokens per sequence (prefill length).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub prompt: u64,
    /// Generated tokens per sequence (decode steps).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub gen: u64,
    /// GEMM dtype: bf16, f16 or fp8 (fp8 GEMMs keep attention in bf16, as fp8 serving stacks do).
    #[arg(long, default_value = "bf16")]
    pub dtype: DType,
}

impl From<&SuiteFlags> for crate::suite::SuiteArgs {
    fn from(f: &SuiteFlags) -> Self {
        crate::suite::SuiteArgs {
            model: f.model.clone(),
            model_file: f.model_file.clone(),
            tp: f.tp,
            batch: f.batch.clone(),
            prompt: f.prompt,
            gen: f.gen,
            dtype: f.dtype,
        }
    }
}

fn parse_shape(s: &str) -> Result<(u64, u64, u64), String> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    if parts.len() != 3 {
        return Err(format!("`{s}` is not a shape MxNxK (e.g. 4096x4096x4096)"));
    }
    let p = |t: &str| {
        t.trim().parse::<u64>().map_err(|e| match e.kind() {
            std::num::IntErrorKind::PosOverflow => {
                format!("`{t}` in shape `{s}` is too large")
            }
            _ => format!("`{t}` in shape `{s}` is not a whole number"),
        })
    };
    Ok((p(parts[0])?, p(parts[1])?, p(parts[2])?))
}

/// Entry point used by main: parses, runs, maps every outcome to an exit code.
pub fn main() -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, sampling_flags_typed(&m))));
    let (cli, sampling) = match parsed {
        Ok(c) => c,
        Err(e) => {
            if let Some(why) = bad_environment(&e) {
                crate::term::error(&why);
                return 2;
            }
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
    };
    match refuse_unused_sampling(cli.command.as_ref(), &sampling).and_then(|()| run(cli)) {
        Ok(code) => code,
        Err(e) => {
            crate::term::error(&format!("{e:#}"));
            2
        }
    }
}

/// The flags that fall back on an environment variable.
const FLAG_ENV: [(&str, &str); 2] = [("--backend", "GPUVET_BACKEND"), ("--world", "GPUVET_WORLD")];

/// Names the variable when clap refuses the value of an environment variable: with
/// `GPUVET_BACKEND=gpu` clap says "invalid value 'gpu' for '--backend'" (even when a valid
/// `--backend` was typed), which sends the user looking in the wrong place.
fn bad_environment(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidValue {
        return None;
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) else {
        return None;
    };
    let (flag, var) = FLAG_ENV
        .into_iter()
        .find(|(flag, _)| arg.split_whitespace().next() == Some(*flag))?;
    if std::env::var_os(var)?.to_str() != Some(value.as_str()) {
        return None;
    }
    let allowed = match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(v)) => format!(" ({})", v.join(", ")),
        _ => String::new(),
    };
    Some(format!(
        "{var}={value} is not a valid {flag} value{allowed}; set it to one or unset it"
    ))
}

fn run(cli: Cli) -> Result<i32> {
    let g = cli.global;
    check_numbers(&g)?;
    crate::backend::check_env()?;
    check_fleet_flags(&g, cli.command.as_ref())?;
    if g.threads > 0 {
        // Verification and input generation use the global pool; size it as asked.
        rayon::ThreadPoolBuilder::new()
            .num_threads(usize::from(g.threads))
            .build_global()
            .context("sizing the thread pool")?;
    }
    refuse_unused_outputs(&g, cli.command.as_ref())?;
    for (flag, dir) in [("--plot", &g.plot), ("--dump-dir", &g.dump_dir)] {
        if let Some(d) = dir {
            crate::export::check_dir(flag, d)?;
        }
    }
    let opts = g.options();
    match cli.command {
        None | Some(Command::Run) => commands::run::quick_run(&opts),
        Some(Command::Bench(b)) => {
            let world = match &b {
                BenchCommand::Collective(c) => c.world.world,
                _ => WorldChoice::Single,
            };
            let bench = bench_workloads(b)?;
            let req = commands::run::MeasureRequest {
                workloads: Some(bench.workloads),
                implementations: bench.implementations,
                command: bench.command,
                axis: bench.axis,
                world,
                user_kernels: bench.user_kernels,
                reads: bench.reads,
                ..Default::default()
            };
            Ok(commands::run::measure(&opts, &req)?.code)
        }
        Some(Command::Sweep(a)) => {
            // Only a collective spans the processes of a world.
            let world = match a.kind {
                SweepCommand::Collective(_) => a.world.world,
                _ => WorldChoice::Single,
            };
            let reads = match &a.kind {
                SweepCommand::Kernel(k) => vec![("--spec", k.spec.clone())],
                _ => Vec::new(),
            };
            let a = crate::sweep::SweepKind::from(a);
            let workloads = crate::sweep::sweep_workloads(&a)?;
            let axis = crate::sweep::swept_axis(&a);
            let req = commands::run::MeasureRequest {
                workloads: Some(workloads),
                implementations: a.implementations().to_vec(),
                command: a.command(),
                axis,
                world,
                reads,
                ..Default::default()
            };
            Ok(commands::run::measure(&opts, &req)?.code)
        }
        Some(Command::Suite(SuiteCommand::Llm(a))) => {
            commands::run::suite_llm(&opts, &(&a.suite).into(), a.estimate_json.as_deref())
        }
        Some(Command::Report(a)) => commands::report::run(&a.into(), g.quiet),
        Some(Command::Info) => commands::info::info(&opts),
        Some(Command::Stress(a)) => commands::stress::stress(&opts, &a.options()),
        Some(Command::Validate(a)) => commands::validate::validate(&opts, &a.options()),
        Some(Command::Aggregate(a)) => {
            let mut args: crate::validate::AggregateArgs = a.into();
            args.price = opts.price_table()?;
            args.also = [
                (FleetFormat::Json, &opts.json),
                (FleetFormat::Csv, &opts.csv),
                (FleetFormat::Markdown, &opts.markdown),
            ]
            .into_iter()
            .filter_map(|(f, t)| t.clone().map(|t| (f, t)))
            .collect();
            commands::aggregate::run(&args, crate::term::stdout_color())
        }
        Some(Command::Compare(a)) => {
            let mut req = compare::CompareRequest::from(&a);
            req.junit = g.junit.clone();
            commands::compare::run(req, crate::term::stdout_color())
        }
        Some(Command::List(a)) => commands::list::list(&opts, a.options()),
        Some(Command::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "gpuvet", &mut out);
            commands::print_stdout(&String::from_utf8_lossy(&out))?;
            Ok(0)
        }
    }
}

impl Global {
    /// The domain options every command takes.
    pub fn options(&self) -> commands::Options {
        commands::Options {
            backend: self.backend,
            json: self.json.clone(),
            csv: self.csv.clone(),
            markdown: self.markdown.clone(),
            seed: self.seed,
            quiet: self.quiet,
            measure: MeasureConfig {
                warmup_s: self.warmup,
                min_samples: self.min_samples as usize,
                max_samples: self.max_samples as usize,
                max_time_s: self.max_time,
                target_rel_noise: self.target_noise / 100.0,
                min_sample_time_s: self.min_sample_time / 1000.0,
            },
            threads: usize::from(self.threads),
            hot: self.hot,
            dump_dir: self.dump_dir.clone(),
            dump_all: self.dump_all,
            save_baseline: self.save_baseline.clone(),
            baseline_keep: self.baseline_keep as usize,
            baseline: self.baseline.clone(),
            baseline_gate: crate::commands::BaselineGate {
                threshold_pct: self
                    .baseline_threshold
                    .unwrap_or(compare::DEFAULT_THRESHOLD_PCT),
                fail_on: self.baseline_fail_on.iter().copied().collect(),
            },
            baseline_dir: self.baseline_dir.clone(),
            plot: self.plot.clone(),
            export: self.export.clone(),
            prometheus: self.prometheus.clone(),
            junit: self.junit.clone(),
            price_per_hour: self.price_per_hour,
            price_file: self.price_file.clone(),
        }
    }
}

/// The commands each of `--prometheus`, `--junit` and the price flags means something for: a
/// flag given where it would be ignored is a usage error, not silence.
fn check_fleet_flags(g: &Global, command: Option<&Command>) -> Result<()> {
    use Command as C;
    let measuring = matches!(
        command,
        None | Some(C::Run | C::Bench(_) | C::Sweep(_) | C::Suite(_))
    );
    let name = command.map_or("run", command_name);
    if g.prometheus.is_some()
        && !(measuring || matches!(command, Some(C::Validate(_) | C::Stress(_))))
    {
        bail!("--prometheus applies to run, bench, sweep, suite, validate and stress, not {name}");
    }
    if g.junit.is_some() {
        let ok = matches!(command, Some(C::Validate(_) | C::Compare(_)))
            || (measuring && g.baseline.is_some());
        if !ok {
            bail!("--junit applies to validate, compare, and runs compared with --baseline, not {name}{}",
                if measuring { " without --baseline" } else { "" });
        }
    }
    let priced = g.price_per_hour.is_some() || g.price_file.is_some();
    if priced && !(measuring || matches!(command, Some(C::Validate(_) | C::Aggregate(_)))) {
        bail!("--price-per-hour and --price-file apply to run, bench, sweep, suite, validate and aggregate, not {name}");
    }
    Ok(())
}

/// A subcommand's name, for messages.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Run => "run",
        Command::Info => "info",
        Command::Bench(_) => "bench",
        Command::List(_) => "list",
        Command::Suite(_) => "suite",
        Command::Sweep(_) => "sweep",
        Command::Report(_) => "report",
        Command::Stress(_) => "stress",
        Command::Validate(_) => "validate",
        Command::Aggregate(_) => "aggregate",
        Command::Compare(_) => "compare",
        Command::Completions { .. } => "completions",
    }
}

impl StressArgs {
    pub fn options(&self) -> commands::stress::StressOptions {
        commands::stress::StressOptions {
            duration: self.duration,
            dtype: self.dtype,
            size: self.size,
            check_interval: self.check_interval,
            plant_fault: self.plant_fault,
        }
    }
}

impl ListArgs {
    pub fn options(&self) -> commands::list::ListOptions {
        commands::list::ListOptions {
            kernels: self.kernels,
            verbose: self.verbose,
            skus: self.skus,
        }
    }
}

impl ValidateArgs {
    pub fn options(&self) -> commands::validate::ValidateOptions {
        commands::validate::ValidateOptions {
            judge: self.into(),
            verdict: self.verdict.clone(),
            allow_cpu: self.allow_cpu,
        }
    }
}

/// Refuses a global output flag the command would not honour (exit 2) instead of ignoring it
/// silently: `gpuvet stress --export github:x` that wrote nothing would pass a CI job that
/// then charts nothing. The measuring commands (run, bench, sweep, suite) take them all.
fn refuse_unused_outputs(g: &Global, command: Option<&Command>) -> Result<()> {
    const REPORT: &[&str] = &["--json", "--csv", "--markdown"];
    let (name, takes, hint): (&str, &[&str], &str) = match command {
        None | Some(Command::Run | Command::Bench(_) | Command::Sweep(_) | Command::Suite(_)) => {
            return Ok(())
        }
        Some(Command::Validate(_)) => (
            "validate",
            &[
                "--json",
                "--csv",
                "--markdown",
                "--export",
                "--plot",
                "--dump-dir",
            ],
            "a node verdict is not a baseline; the verdict goes to --verdict, and \
             `gpuvet run --baseline NAME` compares runs",
        ),
        Some(Command::Stress(_)) => (
            "stress",
            &["--json", "--plot"],
            "it writes its timeline with --json and its charts with --plot",
        ),
        // Its --csv and --markdown were result tables with no rows.
        Some(Command::Info) => (
            "info",
            &["--json"],
            "it has devices, not results; --json writes them, with the host",
        ),
        Some(Command::Aggregate(_)) => (
            "aggregate",
            REPORT,
            "it writes the fleet view (--format, -o, --json, --csv, --markdown)",
        ),
        // Its own --json, --csv and --markdown stand in for the global ones (clap fills both).
        Some(Command::Compare(_)) => (
            "compare",
            REPORT,
            "it writes its own --json, --csv and --markdown; export a run's results for \
             CI charts with `gpuvet run --export FORMAT:PATH` and gate on `gpuvet compare`",
        ),
        Some(Command::List(_)) => ("list", &[], "it writes no report"),
        Some(Command::Report(_)) => ("report", &[], "it reads a report and writes HTML (-o)"),
        Some(Command::Completions { .. }) => ("completions", &[], "it writes a script"),
    };
    let given = [
        ("--json", g.json.is_some()),
        ("--csv", g.csv.is_some()),
        ("--markdown", g.markdown.is_some()),
        ("--export", !g.export.is_empty()),
        ("--baseline", g.baseline.is_some()),
        ("--save-baseline", g.save_baseline.is_some()),
        ("--plot", g.plot.is_some()),
        ("--dump-dir", g.dump_dir.is_some()),
    ];
    for (flag, set) in given {
        if set && !takes.contains(&flag) {
            bail!("`gpuvet {name}` does not take {flag}: {hint}");
        }
    }
    if let Some(Command::Validate(v)) = command {
        if g.plot.is_some() && v.duration.is_none() {
            // Its charts are the soak's timelines: without one, --plot drew nothing, silently.
            bail!(
                "`gpuvet validate --plot` draws the soak's timelines, and a validation without \
                 --duration has no soak; give --duration, or leave --plot out"
            );
        }
    }
    Ok(())
}

/// The measurement flags, by clap id and as typed.
const SAMPLING_FLAGS: [(&str, &str); 8] = [
    ("min_samples", "--min-samples"),
    ("max_samples", "--max-samples"),
    ("max_time", "--max-time"),
    ("warmup", "--warmup"),
    ("target_noise", "--target-noise"),
    ("min_sample_time", "--min-sample-time"),
    ("threads", "--threads"),
    ("hot", "--hot"),
];

/// The measurement flags typed on the command line. They all have defaults, so the parsed
/// values cannot tell a typed flag from an untyped one; the matches can.
fn sampling_flags_typed(m: &clap::ArgMatches) -> Vec<&'static str> {
    SAMPLING_FLAGS
        .iter()
        .filter(|(id, _)| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|(_, flag)| *flag)
        .collect()
}

/// Refuses a measurement flag on a command that takes no samples (`compare --min-samples 50`
/// took it silently, as if the comparison had been resampled), as unused outputs are refused.
fn refuse_unused_sampling(command: Option<&Command>, typed: &[&str]) -> Result<()> {
    let name = match command {
        Some(Command::Compare(_)) => "compare",
        Some(Command::Aggregate(_)) => "aggregate",
        Some(Command::Report(_)) => "report",
        Some(Command::List(_)) => "list",
        Some(Command::Info) => "info",
        Some(Command::Completions { .. }) => "completions",
        // Stress loads the GPUs for --duration; only its thread count is taken.
        Some(Command::Stress(_)) => "stress",
        _ => return Ok(()),
    };
    // `info` opens the backend, and the CPU backend's threads are what it reports; stress
    // runs on that backend too.
    let used = |flag: &str| matches!(name, "info" | "stress") && flag == "--threads";
    match typed.iter().find(|f| !used(f)) {
        Some(flag) => bail!(
            "`gpuvet {name}` does not take {flag}: it takes no samples (the measurement flags \
             shape `run`, `bench`, `sweep`, `suite` and `validate`)"
        ),
        None => Ok(()),
    }
}

fn check_numbers(g: &Global) -> Result<()> {
    let checks = [
        ("--max-time", g.max_time, 0.0, 86_400.0),
        ("--warmup", g.warmup, 0.0, 3_600.0),
        ("--target-noise", g.target_noise, 0.0, 100.0),
        ("--min-sample-time", g.min_sample_time, 0.0, 60_000.0),
    ];
    for (name, v, lo, hi) in checks {
        if !v.is_finite() || v < lo || v > hi {
            // `{v:e}` past the range: 1e300 is not worth three hundred digits.
            let v = if v.abs() > hi {
                format!("{v:e}")
            } else {
                v.to_string()
            };
            bail!("{name} {v} is out of range ({lo} to {hi})");
        }
    }
    if g.min_samples > g.max_samples {
        // `--max-samples 1` alone meets the default minimum, which the user never typed.
        let default = crate::measure::MeasureConfig::default().min_samples as u64;
        bail!(
            "--min-samples {}{} is above --max-samples {}: lower --min-samples too",
            g.min_samples,
            if g.min_samples == default {
                " (the default)"
            } else {
                ""
            },
            g.max_samples
        );
    }
    Ok(())
}

/// What a `bench` subcommand measures.
struct Bench {
    workloads: Vec<Workload>,
    implementations: Vec<String>,
    command: String,
    axis: Option<String>,
    /// User kernels to register as implementations, with the workload kind they implement.
    user_kernels: Vec<(&'static str, crate::workload::kernel::UserKernel)>,
    /// The files the bench reads (specs, kernel sources, `.npy` inputs), with the flag that
    /// named them, so that no output of the run replaces one.
    reads: Vec<(&'static str, PathBuf)>,
}

/// A bench is a sweep whose axes hold single values: each kind's axes expanded in turn (for
/// `bench kernel`, one workload per `--set` combination, its first variable with several
/// values the charts' axis).
fn bench_workloads(b: BenchCommand) -> Result<Bench> {
    let mut reads = Vec::new();
    let (axes, kernel, axis): (Vec<Box<dyn KindAxes>>, _, _) = match b {
        BenchCommand::Matmul { args, kernel } => (boxed(args.axes(BLayout::Kn)), kernel, None),
        BenchCommand::Attention { args, kernel } => (boxed(vec![args.sweep_axes()?]), kernel, None),
        BenchCommand::Memory { args, kernel } => (boxed(args.bench_axes()), kernel, None),
        BenchCommand::Transfer(a) => (boxed(vec![a.bench_axes()]), KernelFlags::default(), None),
        BenchCommand::P2p(a) => (boxed(vec![a.bench_axes()]), KernelFlags::default(), None),
        BenchCommand::Collective(c) => (
            boxed(vec![c.args.bench_axes()]),
            KernelFlags::default(),
            None,
        ),
        BenchCommand::Kernel(k) => {
            reads.push(("--spec", k.spec.clone()));
            let axes = k.axes();
            let axis = axes.swept_name();
            (boxed(vec![axes]), KernelFlags::default(), axis)
        }
    };
    let mut workloads = Vec::new();
    for a in &axes {
        workloads.extend(a.expand()?);
    }
    let first = axes.first();
    let mut imps = first
        .map(|a| a.implementations().to_vec())
        .unwrap_or_default();
    // The axis of the curves: a user kernel's swept variable, else the one swept axis of a
    // single kind (the interconnect benches, given several sizes, draw bandwidth against size).
    let axis = axis.or_else(|| match &axes[..] {
        [one] => one.swept().map(|p| p.name().to_string()),
        _ => None,
    });
    // (The kernels' sources and `.npy` files the measuring path protects, from the workloads.)
    // `--kernel SPEC.toml` (a `FILE.cu:ENTRY`'s source is read as the kernel's source).
    if let Some(spec) = kernel.kernel.as_deref().filter(|k| k.ends_with(".toml")) {
        reads.push(("--kernel", PathBuf::from(spec)));
    }
    let kind = first.map_or("", |a| a.kind());
    let user_kernels: Vec<_> = kernel.kernels()?.into_iter().map(|k| (kind, k)).collect();
    // Without --impl, a user kernel runs beside the references and the best own kernel.
    if imps.is_empty() && !user_kernels.is_empty() {
        imps.push("default".into());
        imps.extend(user_kernels.iter().map(|(_, k)| k.name.clone()));
    }
    Ok(Bench {
        workloads,
        implementations: imps,
        command: format!("bench {kind}"),
        axis,
        user_kernels,
        reads,
    })
}

fn boxed<A: KindAxes + 'static>(v: Vec<A>) -> Vec<Box<dyn KindAxes>> {
    v.into_iter()
        .map(|a| Box::new(a) as Box<dyn KindAxes>)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_flags_parse() {
        assert_eq!(parse_sku("H100-SXM").unwrap(), "h100-sxm");
        assert!(parse_sku("h100-sxm6").unwrap_err().contains("h200-sxm"));
        assert_eq!(parse_pct("12.5%").unwrap(), 12.5);
        assert!(parse_pct("0").is_err() && parse_pct("x").is_err());
    }

    /// A number too large for 64 bits is called that, not "not a whole number"; an empty
    /// output path is named as one.
    #[test]
    fn overflowing_numbers_and_empty_paths_say_so() {
        assert_eq!(parse_shape("4x4x4").unwrap(), (4, 4, 4));
        let e = parse_shape("18446744073709551616x2x2").unwrap_err();
        assert!(e.contains("is too large"), "{e}");
        assert!(parse_shape("4.5x2x2")
            .unwrap_err()
            .contains("not a whole number"));
        let e = crate::workload::Axis::parse_count("99999999999999999999").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        let e = crate::export::check_path("").unwrap_err().to_string();
        assert!(e.contains("an empty path"), "{e}");
        assert_eq!(parse_ranks("0").unwrap(), 0);
        assert_eq!(parse_ranks("8192").unwrap(), 8192);
        assert!(parse_ranks("1").is_err() && parse_ranks("8193").is_err());
    }

    /// One flag struct parsed on its own, as its subcommand would parse it.
    #[derive(Parser, Debug)]
    struct Flags<A: Args> {
        #[command(flatten)]
        args: A,
    }

    /// `--direction both` is both ways of measuring a pair, not a name for `bidir` (it ran the
    /// bidirectional copies alone); a way given twice is one.
    #[test]
    fn p2p_direction_both_means_uni_and_bidir() {
        let ways = |d: &str| {
            let f = Flags::<P2pArgs>::try_parse_from(["t", "--size", "1MiB", "--direction", d])
                .unwrap();
            f.args.bench_axes().bidirectional
        };
        assert_eq!(ways("both"), [false, true]);
        assert_eq!(ways("bidir"), [true]);
        assert_eq!(ways("uni,both,bidir"), [false, true]);
        assert!(Flags::<P2pArgs>::try_parse_from(["t", "--direction", "sideways"]).is_err());
    }

    #[test]
    fn report_flags_parse_as_documented() {
        Flags::<ReportFlags>::command().debug_assert();
        let c =
            Flags::<ReportFlags>::try_parse_from(["t", "results.json", "-o", "out.html"]).unwrap();
        assert_eq!(c.args.results, PathBuf::from("results.json"));
        assert_eq!(c.args.output, PathBuf::from("out.html"));
        let d = Flags::<ReportFlags>::try_parse_from(["t", "r.json", "--axis", "m"]).unwrap();
        assert_eq!(d.args.output, PathBuf::from("report.html"));
        assert_eq!(d.args.axis.as_deref(), Some("m"));
        assert!(Flags::<ReportFlags>::try_parse_from(["t"]).is_err());
    }

    #[test]
    fn whole_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `debug_assert()` checks only where clap_builder has debug assertions (Cargo.toml turns
    /// them on in the tests' `checked` profile): a command that defines `-q` twice must fail it,
    /// or the consistency tests above pass without checking anything.
    #[test]
    fn clap_consistency_checks_are_on() {
        let twice = || {
            clap::Command::new("t")
                .arg(
                    clap::Arg::new("a")
                        .short('q')
                        .action(clap::ArgAction::SetTrue),
                )
                .arg(
                    clap::Arg::new("b")
                        .short('q')
                        .action(clap::ArgAction::SetTrue),
                )
                .debug_assert()
        };
        assert!(
            std::panic::catch_unwind(twice).is_err(),
            "clap_builder is built without debug assertions: its consistency checks are off"
        );
    }

    #[test]
    fn suite_flags_parse_as_documented() {
        Flags::<SuiteFlags>::command().debug_assert();
        let c = Flags::<SuiteFlags>::try_parse_from([
            "t",
            "--model",
            "llama3.1-70b",
            "--tp",
            "8",
            "--batch",
            "1,8,64",
            "--prompt",
            "2048",
            "--gen",
            "256",
            "--dtype",
            "fp8",
        ])
        .unwrap();
        assert_eq!(c.args.batch, vec![1, 8, 64]);
        assert_eq!(c.args.dtype, DType::Fp8E4m3);
        assert_eq!(c.args.tp, 8);
        let f = Flags::<SuiteFlags>::try_parse_from(["t", "--model-file", "m.toml"]).unwrap();
        assert_eq!(f.args.model_file, Some(PathBuf::from("m.toml")));
        // one of --model / --model-file, not both, not neither
        assert!(Flags::<SuiteFlags>::try_parse_from(["t"]).is_err());
        assert!(Flags::<SuiteFlags>::try_parse_from([
            "t",
            "--model",
            "x",
            "--model-file",
            "m.toml"
        ])
        .is_err());
        assert!(Flags::<SuiteFlags>::try_parse_from(["t", "--model", "x", "--tp", "0"]).is_err());
        assert!(
            Flags::<SuiteFlags>::try_parse_from(["t", "--model", "x", "--batch", "0"]).is_err()
        );
    }

    use crate::sweep::{sweep_workloads, swept_axis};

    #[test]
    fn sweep_flags_parse_as_documented() {
        Flags::<SweepArgs>::command().debug_assert();
        let c = Flags::<SweepArgs>::try_parse_from([
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
        assert_eq!(sweep_workloads(&c.args.clone().into()).unwrap().len(), 6);
        assert_eq!(swept_axis(&c.args.clone().into()).as_deref(), Some("m"));
        let a = Flags::<SweepArgs>::try_parse_from([
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
        assert_eq!(sweep_workloads(&a.args.into()).unwrap().len(), 4);
        let m = Flags::<SweepArgs>::try_parse_from([
            "t",
            "memory",
            "--size",
            "pow2:1MiB..1GiB",
            "--op",
            "copy,read",
        ])
        .unwrap();
        assert_eq!(sweep_workloads(&m.args.clone().into()).unwrap().len(), 22);
        assert_eq!(
            crate::sweep::SweepKind::from(m.args).command(),
            "sweep memory"
        );
        let e = Flags::<SweepArgs>::try_parse_from([
            "t", "matmul", "--m", "10..1", "--n", "1", "--k", "1",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("runs backwards"), "{e}");
    }
}
