//! Command-line interface: flags → validated plan → run → outputs, and the exit code.
//!
//! Exit codes: 0 everything verified, 1 a check failed (a wrong result, a regression),
//! 2 a usage or environment error, 130 interrupted. Results go to stdout only when asked
//! (`--json -`); the human table goes to stdout otherwise, and to stderr when stdout carries a
//! machine format. Progress and notices go to stderr.

use crate::backend::{self, BackendChoice, BackendKind};
use crate::dtype::DType;
use crate::export::{Exports, Format};
use crate::measure::MeasureConfig;
use crate::plan::{self, ImplSelect};
use crate::runner::{self, Settings};
use crate::units::Bytes;
use crate::workload::{AttentionSpec, BLayout, MatmulSpec, MemOp, MemorySpec, Workload};
use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// Write the full report as JSON to PATH (rewritten after every result), or to stdout with `-`.
    #[arg(long, global = true, value_name = "PATH|-")]
    pub json: Option<String>,
    /// Write one CSV row per result to PATH, or stdout with `-`.
    #[arg(long, global = true, value_name = "PATH|-")]
    pub csv: Option<String>,
    /// Write a markdown table (for a pull request or a wiki) to PATH, or stdout with `-`.
    #[arg(long, global = true, value_name = "PATH|-")]
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
    /// CPU threads for the CPU backend and for verification (0 = all).
    #[arg(long, global = true, default_value_t = 0)]
    pub threads: usize,
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
    /// After the run, compare it against baseline NAME (as `gpuvet compare` does); exit 1 on a
    /// confirmed regression. Compared before --save-baseline saves, so both may name the same.
    #[arg(long, global = true, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Directory of baselines (default: $GPUVET_BASELINE_DIR, else .gpuvet/baselines).
    #[arg(long, global = true, value_name = "DIR")]
    pub baseline_dir: Option<PathBuf>,
    /// Write SVG charts into DIR after the run: a roofline of every result, sweep curves,
    /// stress timelines.
    #[arg(long, global = true, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Also write FORMAT:PATH for CI tools: `github` (github-action-benchmark
    /// customBiggerIsBetter) or `bencher` (Bencher Metric Format). Repeatable.
    #[arg(long, global = true, value_name = "FORMAT:PATH")]
    pub export: Vec<String>,
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
    Sweep(crate::sweep::SweepArgs),
    /// Turn a results JSON into one self-contained HTML page (inline SVG and CSS).
    Report(crate::html::ReportArgs),
    /// Sustained matmul load on every GPU with a per-second timeline and silent-data-corruption
    /// checks (the same inputs must give bit-identical outputs every time, on every GPU).
    Stress(StressArgs),
    /// Is this node's GPU what it claims and healthy? Identity, speed against the SKU, peers,
    /// health telemetry and correctness: PASS / WARN / FAIL, exit 0 / 1 / 2.
    Validate(crate::validate::ValidateArgs),
    /// Join per-node verdict files (from `validate --verdict`) into a fleet view.
    Aggregate(crate::validate::AggregateArgs),
    /// Compare two reports: a verdict per result from both runs' samples; exit 1 on a confirmed
    /// regression.
    Compare(crate::compare::CompareArgs),
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
    pub suite: crate::suite::SuiteArgs,
    /// Also write the estimate as JSON to PATH (`-` for stdout).
    #[arg(long, value_name = "PATH|-")]
    pub estimate_json: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// C = A·B at given shapes and dtypes.
    Matmul(MatmulArgs),
    /// Attention forward (prefill or decode), with GQA and causal masks.
    Attention(AttentionArgs),
    /// Streaming memory bandwidth: copy, read, write, triad.
    Memory(MemoryArgs),
}

#[derive(Args, Debug)]
pub struct MatmulArgs {
    /// Shapes as MxNxK, comma-separated (e.g. 4096x4096x4096,16x28672x4096).
    #[arg(long, value_delimiter = ',', required = true, value_parser = parse_shape)]
    pub shape: Vec<(u64, u64, u64)>,
    /// Dtypes, comma-separated: f32, tf32, f16, bf16, fp8_e4m3, fp8_e5m2, int8.
    #[arg(long, value_delimiter = ',', default_value = "bf16")]
    pub dtype: Vec<DType>,
    /// How B is stored: kn (K×N) or nk (N×K, the layout of LLM weights); comma-separated for both.
    #[arg(long, value_delimiter = ',', default_value = "kn")]
    pub layout: Vec<BLayout>,
    /// Implementations: `default` (vendor reference plus the best own kernel), `all`, or names.
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttentionArgs {
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Query heads.
    #[arg(long, default_value_t = 32)]
    pub heads: u64,
    /// Key/value heads (must divide --heads; fewer than --heads is GQA, 1 is MQA). Default: --heads.
    #[arg(long)]
    pub kv_heads: Option<u64>,
    /// Query length (1 for decode).
    #[arg(long)]
    pub seq: u64,
    /// Key/value length. Default: --seq.
    #[arg(long)]
    pub kv_seq: Option<u64>,
    #[arg(long, default_value_t = 128)]
    pub head_dim: u64,
    /// Causal mask, queries aligned to the end of the keys (as in decode).
    #[arg(long)]
    pub causal: bool,
    /// Dtypes, comma-separated: f32, f16, bf16.
    #[arg(long, value_delimiter = ',', default_value = "bf16")]
    pub dtype: Vec<DType>,
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Bytes per array, comma-separated (e.g. 256MiB,1GiB).
    #[arg(long, value_delimiter = ',', default_value = "1GiB")]
    pub size: Vec<Bytes>,
    /// Operations, comma-separated: copy, read, write, triad.
    #[arg(long, value_delimiter = ',', default_value = "copy")]
    pub op: Vec<MemOp>,
    #[arg(long = "impl", value_delimiter = ',')]
    pub implementation: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StressArgs {
    /// How long to load every device (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "60s", value_parser = crate::units::parse_duration)]
    pub duration: std::time::Duration,
    /// Matmul dtype (tensor-core load by default).
    #[arg(long, default_value = "bf16")]
    pub dtype: DType,
    /// Square matmul size (default 8192 on a GPU, 1024 on the CPU).
    #[arg(long)]
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

fn parse_shape(s: &str) -> Result<(u64, u64, u64), String> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    if parts.len() != 3 {
        return Err(format!("`{s}` is not a shape MxNxK (e.g. 4096x4096x4096)"));
    }
    let p = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{t}` in shape `{s}` is not a whole number"))
    };
    Ok((p(parts[0])?, p(parts[1])?, p(parts[2])?))
}

/// Entry point used by main: parses, runs, maps every outcome to an exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            crate::term::error(&format!("{e:#}"));
            2
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let g = cli.global;
    check_numbers(&g)?;
    if g.threads > 0 {
        // Verification and input generation use the global pool; size it as asked.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(g.threads)
            .build_global();
    }
    match cli.command {
        None | Some(Command::Run) => Ok(measure_workloads(&g, None, &[], "run", None)?.code),
        Some(Command::Bench(b)) => {
            let (workloads, imps, what) = bench_workloads(b)?;
            Ok(measure_workloads(&g, Some(workloads), &imps, what, None)?.code)
        }
        Some(Command::Sweep(a)) => {
            let workloads = crate::sweep::sweep_workloads(&a)?;
            let axis = crate::sweep::swept_axis(&a);
            Ok(measure_workloads(
                &g,
                Some(workloads),
                a.implementations(),
                a.command(),
                axis.as_deref(),
            )?
            .code)
        }
        Some(Command::Suite(SuiteCommand::Llm(a))) => suite_llm(&g, &a),
        Some(Command::Report(a)) => crate::html::run_report(&a),
        Some(Command::Info) => info(&g),
        Some(Command::Stress(a)) => stress(&g, &a),
        Some(Command::Validate(a)) => validate(&g, &a),
        Some(Command::Aggregate(a)) => {
            crate::validate::run_aggregate(&a, crate::term::stdout_color())
        }
        Some(Command::Compare(a)) => crate::compare::run(&a, crate::term::stdout_color()),
        Some(Command::List(a)) => list(&g, &a),
        Some(Command::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "gpuvet", &mut out);
            print_stdout(&String::from_utf8_lossy(&out))?;
            Ok(0)
        }
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
            bail!("{name} {v} is out of range ({lo} to {hi})");
        }
    }
    if g.min_samples > g.max_samples {
        bail!(
            "--min-samples {} is above --max-samples {}",
            g.min_samples,
            g.max_samples
        );
    }
    Ok(())
}

fn bench_workloads(b: BenchCommand) -> Result<(Vec<Workload>, Vec<String>, &'static str)> {
    Ok(match b {
        BenchCommand::Matmul(a) => {
            let mut v = Vec::new();
            for &(m, n, k) in &a.shape {
                for &dtype in &a.dtype {
                    for &b_layout in &a.layout {
                        v.push(Workload::Matmul(MatmulSpec {
                            m,
                            n,
                            k,
                            dtype,
                            b_layout,
                        }));
                    }
                }
            }
            (v, a.implementation, "bench matmul")
        }
        BenchCommand::Attention(a) => {
            let v = a
                .dtype
                .iter()
                .map(|&dtype| {
                    Workload::Attention(AttentionSpec {
                        batch: a.batch,
                        q_heads: a.heads,
                        kv_heads: a.kv_heads.unwrap_or(a.heads),
                        q_len: a.seq,
                        kv_len: a.kv_seq.unwrap_or(a.seq),
                        head_dim: a.head_dim,
                        causal: a.causal,
                        dtype,
                    })
                })
                .collect();
            (v, a.implementation, "bench attention")
        }
        BenchCommand::Memory(a) => {
            let mut v = Vec::new();
            for s in &a.size {
                for &op in &a.op {
                    v.push(Workload::Memory(MemorySpec { op, bytes: s.0 }));
                }
            }
            (v, a.implementation, "bench memory")
        }
    })
}

fn open_exports(g: &Global) -> Result<Exports> {
    let mut req = Vec::new();
    if let Some(p) = &g.json {
        req.push((Format::Json, p.as_str()));
    }
    if let Some(p) = &g.csv {
        req.push((Format::Csv, p.as_str()));
    }
    if let Some(p) = &g.markdown {
        req.push((Format::Markdown, p.as_str()));
    }
    Exports::open(&req)
}

fn settings(g: &Global, command: &str) -> Settings {
    Settings {
        measure: MeasureConfig {
            warmup_s: g.warmup,
            min_samples: g.min_samples as usize,
            max_samples: g.max_samples as usize,
            max_time_s: g.max_time,
            target_rel_noise: g.target_noise / 100.0,
            min_sample_time_s: g.min_sample_time / 1000.0,
        },
        seed: g.seed,
        hot: g.hot,
        threads: g.threads,
        dump_dir: g.dump_dir.clone(),
        dump_all: g.dump_all,
        quiet: g.quiet,
        command: command.into(),
        backend: String::new(),
        fixed_environment: g.backend == BackendChoice::Mock,
    }
}

/// What a measuring command leaves for its caller.
struct Outcome {
    code: i32,
    report: crate::report::Report,
    /// Human text goes to stderr because stdout carries a machine format.
    to_stderr: bool,
}

/// The run/bench/sweep/suite path. `workloads` None = the quick suite of the backend that
/// opened. `axis` names the swept parameter for charts.
fn measure_workloads(
    g: &Global,
    workloads: Option<Vec<Workload>>,
    imps: &[String],
    command: &str,
    axis: Option<&str>,
) -> Result<Outcome> {
    let exports = open_exports(g)?;
    let baseline_dir = check_baseline_flags(g)?;
    let opened = backend::open(g.backend, g.threads)?;
    if let Some(n) = &opened.notice {
        crate::term::notice(g.quiet, n);
    }
    let kind = opened.backends[0].kind();
    let suite = workloads.is_none();
    let workloads = workloads.unwrap_or_else(|| plan::quick_suite(kind));
    let plan = plan::build(
        &workloads,
        &opened.backends,
        &ImplSelect::parse(imps),
        g.hot,
        suite,
    )?;
    for s in &plan.skipped {
        crate::term::notice(g.quiet, &format!("skipped: {s}"));
    }
    let mut settings = settings(g, command);
    settings.backend = kind.name().into();
    let stop = Arc::new(AtomicBool::new(false));
    install_ctrlc(stop.clone());
    let mut report = runner::new_report(&opened.backends, &settings);
    runner::execute(
        &plan,
        &opened.backends,
        &settings,
        &exports,
        &mut report,
        &stop,
    )?;

    let table_to_stderr = exports.uses_stdout();
    let color = if table_to_stderr {
        crate::term::stderr_color()
    } else {
        crate::term::stdout_color()
    };
    let table = crate::term::results_table(&report, color);
    if table_to_stderr {
        eprint!("{table}");
    } else {
        print_stdout(&table)?;
    }
    exports.write_stdout(&report)?;

    if let Some(dir) = &g.plot {
        write_plots(g, dir, || crate::plot::write_plots(&report, dir, axis))?;
    }
    let outcome = |code| Outcome {
        code,
        report: report.clone(),
        to_stderr: table_to_stderr,
    };
    if stop.load(Ordering::Relaxed) {
        crate::term::warn(
            "interrupted: the files hold the results that finished (no baseline saved)",
        );
        return Ok(outcome(130));
    }
    let mut code = exit_code(&report);
    code = code.max(after_run(
        g,
        &report,
        &baseline_dir,
        table_to_stderr,
        color,
    )?);
    Ok(outcome(code))
}

/// Creates DIR and runs a chart writer into it, listing what it wrote.
fn write_plots(
    g: &Global,
    dir: &std::path::Path,
    f: impl FnOnce() -> crate::Result<Vec<PathBuf>>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for p in f()? {
        crate::term::notice(g.quiet, &format!("wrote {}", p.display()));
    }
    Ok(())
}

fn suite_llm(g: &Global, a: &SuiteLlmArgs) -> Result<i32> {
    if a.estimate_json.as_deref() == Some("-")
        && [&g.json, &g.csv, &g.markdown]
            .iter()
            .any(|o| o.as_deref() == Some("-"))
    {
        bail!("only one output can go to stdout (`-`)");
    }
    if let Some(p) = a.estimate_json.as_deref().filter(|p| *p != "-") {
        Exports::open(&[(Format::Json, p)])?;
    }
    let workloads = crate::suite::suite_workloads(&a.suite)?;
    let out = measure_workloads(g, Some(workloads), &[], "suite llm", None)?;
    let est = crate::suite::estimate(&a.suite, &out.report);
    let text = format!("\n{}", est.render());
    if out.to_stderr || a.estimate_json.as_deref() == Some("-") {
        eprint!("{text}");
    } else {
        print_stdout(&text)?;
    }
    match a.estimate_json.as_deref() {
        Some("-") => print_stdout(&est.to_json())?,
        Some(p) => crate::export::write_atomic(std::path::Path::new(p), est.to_json().as_bytes())
            .with_context(|| format!("writing {p}"))?,
        None => {}
    }
    Ok(out.code)
}

/// Checks baseline names and export specs before anything runs; returns the baseline directory.
fn check_baseline_flags(g: &Global) -> Result<PathBuf> {
    use crate::compare;
    for name in g.baseline.iter().chain(g.save_baseline.iter()) {
        compare::baseline::validate_name(name)?;
    }
    for spec in &g.export {
        compare::export::parse_spec(spec)?;
    }
    let dir = g
        .baseline_dir
        .clone()
        .unwrap_or_else(compare::default_baseline_dir);
    if let Some(name) = &g.baseline {
        // A missing or corrupt baseline stops the run before it starts.
        compare::load_baseline(name, &dir)?;
    }
    Ok(dir)
}

/// Exports for CI tools, the baseline comparison, and saving the baseline. Returns 1 on a
/// confirmed regression, else 0.
fn after_run(
    g: &Global,
    report: &crate::report::Report,
    dir: &std::path::Path,
    to_stderr: bool,
    color: bool,
) -> Result<i32> {
    use crate::compare;
    for spec in &g.export {
        compare::export(report, spec)?;
    }
    let mut code = 0;
    if let Some(name) = &g.baseline {
        let opts = compare::CompareOptions {
            seed: g.seed,
            ..Default::default()
        };
        let cmp = compare::compare_to_baseline(report, name, dir, &opts)?;
        let table = compare::render_table(&cmp, compare::FailOn::Regression, color);
        if to_stderr {
            eprint!("{table}");
        } else {
            print_stdout(&table)?;
        }
        code = cmp.exit_code(compare::FailOn::Regression);
    }
    if let Some(name) = &g.save_baseline {
        let p = compare::save_baseline(report, name, dir)?;
        crate::term::notice(g.quiet, &format!("saved baseline {name}: {}", p.display()));
    }
    Ok(code)
}

/// 2 when a result could not be run at all, 1 when one was wrong, 0 otherwise.
pub fn exit_code(report: &crate::report::Report) -> i32 {
    use crate::report::Status;
    if report.results.iter().any(|r| r.status == Status::Error) {
        2
    } else if report.results.iter().any(|r| !r.is_valid()) {
        1
    } else {
        0
    }
}

fn install_ctrlc(stop: Arc<AtomicBool>) {
    // A second Ctrl-C leaves at once; the first lets the current sample finish and the files
    // be written.
    let _ = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: finishing the current sample (Ctrl-C again to quit now)");
    });
}

/// Prints to stdout; a closed pipe (`gpuvet | head`) is not an error.
fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn info(g: &Global) -> Result<i32> {
    let exports = open_exports(g)?;
    let opened = backend::open(g.backend, g.threads)?;
    if let Some(n) = &opened.notice {
        crate::term::notice(g.quiet, n);
    }
    let mut s = settings(g, "info");
    s.backend = opened.backends[0].kind().name().into();
    let mut report = runner::new_report(&opened.backends, &s);
    report.complete = true;
    let mut text = String::new();
    let h = &report.host;
    text.push_str(&format!(
        "host      {} — {} ({} logical CPUs{}), {} RAM, {} (kernel {})\n",
        h.hostname,
        h.cpu_model,
        h.logical_cpus,
        h.cpu_cores
            .map(|c| format!(", {c} cores"))
            .unwrap_or_default(),
        Bytes(h.memory_bytes),
        h.os,
        h.kernel
    ));
    text.push_str(&format!(
        "gpuvet    {} ({})\n",
        report.tool.version, report.tool.git_sha
    ));
    for (b, d) in opened.backends.iter().zip(&report.devices) {
        text.push_str(&format!(
            "\ndevice {}  [{}] {}\n",
            d.index,
            b.kind().name(),
            d.name
        ));
        let mut row = |k: &str, v: String| text.push_str(&format!("  {k:<22} {v}\n"));
        if let Some(v) = &d.uuid {
            row("uuid", v.clone());
        }
        if let Some(v) = &d.pci_bus_id {
            row("pci bus id", v.clone());
        }
        if let Some(v) = &d.compute_capability {
            row("compute capability", v.clone());
        }
        if let Some(v) = d.multiprocessors {
            if b.kind() != BackendKind::Cpu {
                row("multiprocessors", v.to_string());
            } else if !d.details.contains_key("threads") {
                row("threads", v.to_string());
            }
        }
        if let Some(v) = d.memory_bytes {
            row("memory", Bytes(v).to_string());
        }
        if let Some(v) = d.last_level_cache_bytes {
            row("last-level cache", Bytes(v).to_string());
        }
        if let Some(v) = &d.driver_version {
            row("driver", v.clone());
        }
        for (k, v) in &d.details {
            let shown = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            row(k, shown);
        }
        if let Some(p) = &d.peaks {
            let mut parts: Vec<String> = crate::dtype::by_name::entries(&p.flops)
                .into_iter()
                .map(|(k, v)| format!("{k} {}", crate::units::si(v, "FLOP/s")))
                .collect();
            if let Some(bw) = p.memory_bandwidth {
                parts.push(format!("memory {}", crate::units::si(bw, "B/s")));
            }
            row(
                "datasheet peaks",
                format!("{} ({})", parts.join(", "), p.source),
            );
        }
        if let Some(t) = b.telemetry() {
            row("telemetry", serde_json::to_string(&t)?);
        }
    }
    if exports.uses_stdout() {
        eprint!("{text}");
    } else {
        print_stdout(&text)?;
    }
    exports.write_files(&report)?;
    exports.write_stdout(&report)?;
    Ok(0)
}

fn list(g: &Global, a: &ListArgs) -> Result<i32> {
    if a.kernels {
        print_stdout(&format!("{}\n", backend::cuda::list_kernels(a.verbose)?))?;
        return Ok(0);
    }
    if a.skus {
        let db = crate::gpudb::database()?;
        let mut text = format!(
            "{:<18} {:<32} {:>4} {:>5} {:>9} {:>10} {:>13}\n",
            "id", "name", "cc", "SMs", "memory", "bandwidth", "16-bit dense"
        );
        for id in crate::gpudb::ids() {
            if let Some(s) = db.by_id(&id) {
                text.push_str(&format!(
                    "{:<18} {:<32} {:>4} {:>5} {:>5} GiB {:>10} {:>13}\n",
                    s.id,
                    s.name,
                    s.compute_capability,
                    s.sms,
                    s.memory_gib,
                    crate::units::si(s.memory_bandwidth(), "B/s"),
                    s.peak("bf16")
                        .or_else(|| s.peak("f16"))
                        .map(|p| crate::units::si(p, "FLOP/s"))
                        .unwrap_or_else(|| "—".into())
                ));
            }
        }
        print_stdout(&text)?;
        return Ok(0);
    }
    let mut text = String::new();
    text.push_str("dtypes:     ");
    text.push_str(
        &DType::ALL
            .iter()
            .map(|d| format!("{d} (tol {:.0e})", d.tolerance()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    text.push_str("\nworkloads:  matmul (bench matmul), attention (bench attention), memory copy/read/write/triad (bench memory)\n");
    let opened = backend::open(g.backend, g.threads)?;
    if let Some(n) = &opened.notice {
        crate::term::notice(g.quiet, n);
    }
    for b in &opened.backends {
        let kind = b.kind();
        text.push_str(&format!(
            "\n{} device {}: {}\n",
            kind.name(),
            b.device().index,
            b.device().name
        ));
        text.push_str("  quick suite (implementations):\n");
        for w in plan::quick_suite(kind) {
            let imps: Vec<String> = b
                .implementations(&w)
                .iter()
                .map(|i| {
                    if i.reference {
                        format!("{} (reference)", i.name)
                    } else {
                        i.name.clone()
                    }
                })
                .collect();
            text.push_str(&format!(
                "    {:<44} {}\n",
                w.name(),
                if imps.is_empty() {
                    "— not supported here".into()
                } else {
                    imps.join(", ")
                }
            ));
        }
    }
    print_stdout(&text)?;
    Ok(0)
}

fn stress(g: &Global, a: &StressArgs) -> Result<i32> {
    let exports = open_exports(g)?;
    if exports.uses_stdout() && g.json.as_deref() != Some("-") {
        bail!("stress writes JSON only (--json PATH|-)");
    }
    if !a.check_interval.is_finite() || a.check_interval <= 0.0 {
        bail!("--check-interval must be a positive number of seconds");
    }
    let opened = if g.backend == BackendChoice::Auto {
        // Stress is about GPUs: no silent fallback to the CPU here.
        let backends = backend::cuda::open_all().map_err(|e| {
            anyhow::anyhow!(
                "stress needs an NVIDIA GPU: {e}. Use --backend cpu to exercise it on the CPU"
            )
        })?;
        backend::Opened {
            backends,
            notice: None,
        }
    } else {
        backend::open(g.backend, g.threads)?
    };
    let kind = opened.backends[0].kind();
    let size = a.size.unwrap_or(match kind {
        BackendKind::Cuda => 8192,
        BackendKind::Cpu => 1024,
        BackendKind::Mock => 64,
    });
    let mut cfg = crate::stress::StressConfig::matmul(size, a.dtype, a.duration, g.seed);
    cfg.check_interval_s = a.check_interval;
    cfg.plant_fault = a.plant_fault;
    plan::build(
        std::slice::from_ref(&cfg.workload),
        &opened.backends,
        &ImplSelect::Default,
        true,
        false,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    install_ctrlc(stop.clone());
    if !g.quiet {
        eprintln!(
            "stressing {} device(s) with {} for {} (Ctrl-C to stop)",
            opened.backends.len(),
            cfg.workload.name(),
            humantime::format_duration(a.duration)
        );
    }
    let report = crate::stress::run(opened.backends, &cfg, &stop)?;
    let mut text = String::new();
    for d in &report.devices {
        text.push_str(&format!(
            "device {} {}: {} iterations, {} checksums, median {}, {}\n",
            d.device,
            d.name,
            d.iterations,
            d.checks,
            crate::units::si(d.median_throughput, "FLOP/s"),
            match (&d.error, d.mismatches.len()) {
                (Some(e), _) => format!("ERROR: {e}"),
                (None, 0) if d.verified => "outputs identical".to_string(),
                (None, 0) => "first output WRONG".to_string(),
                (None, n) => format!("{n} MISMATCHES"),
            }
        ));
    }
    text.push_str(&format!("verdict: {}\n", report.verdict));
    for r in &report.reasons {
        text.push_str(&format!("  - {r}\n"));
    }
    let json = serde_json::to_string_pretty(&report)? + "\n";
    match g.json.as_deref() {
        Some("-") => {
            eprint!("{text}");
            print_stdout(&json)?;
        }
        Some(path) => {
            print_stdout(&text)?;
            crate::export::write_atomic(std::path::Path::new(path), json.as_bytes())?;
        }
        None => print_stdout(&text)?,
    }
    if let Some(dir) = &g.plot {
        write_plots(g, dir, || {
            crate::plot::write_timelines(&crate::plot::stress_timelines(&report), dir)
        })?;
    }
    if report.interrupted {
        return Ok(130);
    }
    Ok(report.exit_code())
}

fn validate(g: &Global, a: &crate::validate::ValidateArgs) -> Result<i32> {
    let exports = open_exports(g)?;
    if exports.uses_stdout() && a.verdict.as_deref() == Some("-") {
        bail!("only one output can go to stdout (`-`)");
    }
    if let Some(p) = a.verdict.as_deref().filter(|p| *p != "-") {
        Exports::open(&[(Format::Json, p)])?;
    }
    let cpu_allowed = a.allow_cpu && matches!(g.backend, BackendChoice::Cpu | BackendChoice::Mock);
    let backends = if cpu_allowed {
        backend::open(g.backend, g.threads)?.backends
    } else {
        if matches!(g.backend, BackendChoice::Cpu | BackendChoice::Mock) {
            bail!(
                "validate judges NVIDIA GPUs; --backend {:?} is only for testing, with --allow-cpu",
                g.backend
            );
        }
        backend::cuda::open_all()
            .map_err(|e| anyhow::anyhow!("validate needs an NVIDIA GPU: {e}"))?
    };
    // The union of every device's suite, in order; devices skip what they cannot run.
    let mut workloads: Vec<Workload> = Vec::new();
    for b in &backends {
        for w in crate::validate::suite(b.device(), a.is_quick()) {
            if !workloads.contains(&w) {
                workloads.push(w);
            }
        }
    }
    // Verdicts rest on the vendor libraries, never on gpuvet's own kernels under development.
    let plan = plan::build(&workloads, &backends, &ImplSelect::Reference, false, true)?;
    for s in &plan.skipped {
        crate::term::notice(g.quiet, &format!("skipped: {s}"));
    }
    let mut settings = settings(g, "validate");
    settings.backend = backends[0].kind().name().into();
    let per_device = plan.entries.len().div_ceil(backends.len());
    // A soak spends half its time on the suite (spread over the results; noise never ends a
    // result early) and half on a stress run with checksums and per-second telemetry.
    let soak = a.duration.map(|d| d / 2);
    if let Some(half) = soak {
        settings.measure.max_time_s = half.as_secs_f64() / per_device.max(1) as f64;
        settings.measure.target_rel_noise = 0.0;
        settings.measure.max_samples = usize::MAX;
    }
    let stop = Arc::new(AtomicBool::new(false));
    install_ctrlc(stop.clone());
    let mut report = runner::new_report(&backends, &settings);
    if !g.quiet {
        eprintln!(
            "validating {} device(s): {} results each{}",
            backends.len(),
            per_device,
            a.duration
                .map(|d| format!(
                    ", soak of {} (half suite, half stress)",
                    humantime::format_duration(d)
                ))
                .unwrap_or_default()
        );
    }
    let backends =
        runner::execute_parallel(&plan, backends, &settings, &exports, &mut report, &stop)?;
    let (mut inputs, backends) = match soak {
        Some(half) if !stop.load(Ordering::Relaxed) => {
            let size = match backends[0].kind() {
                BackendKind::Cuda => 8192,
                BackendKind::Cpu => 512,
                BackendKind::Mock => 64,
            };
            let dtype =
                if crate::validate::supported_dtypes(backends[0].device()).contains(&DType::Bf16) {
                    DType::Bf16
                } else {
                    DType::F16
                };
            let cfg = crate::stress::StressConfig::matmul(size, dtype, half, g.seed);
            let (s, b) = crate::stress::run_keeping(backends, &cfg, &stop)?;
            if let Some(dir) = &g.plot {
                write_plots(g, dir, || {
                    crate::plot::write_timelines(&crate::plot::stress_timelines(&s), dir)
                })?;
            }
            (crate::validate::JudgeInputs::from_stress(&s), b)
        }
        _ => (crate::validate::JudgeInputs::default(), backends),
    };
    if stop.load(Ordering::Relaxed) {
        crate::term::warn("interrupted: no verdict");
        return Ok(130);
    }
    // ECC counters, remapped rows and the PCIe link are judged as they are after the load.
    inputs.details_after = backends
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.current_details().map(|d| (i, d)))
        .collect();
    let verdict = crate::validate::judge_with(&report, a, &inputs);
    let color = if a.verdict.as_deref() == Some("-") || exports.uses_stdout() {
        crate::term::stderr_color()
    } else {
        crate::term::stdout_color()
    };
    let table = crate::term::results_table(&report, color);
    let text = format!("{table}\n{}", verdict.render(color));
    if a.verdict.as_deref() == Some("-") || exports.uses_stdout() {
        eprint!("{text}");
    } else {
        print_stdout(&text)?;
    }
    exports.write_stdout(&report)?;
    match a.verdict.as_deref() {
        Some("-") => print_stdout(&verdict.to_json())?,
        Some(p) => verdict
            .write(p)
            .with_context(|| format!("writing the verdict to {p}"))?,
        None => {}
    }
    Ok(verdict.exit_code)
}
