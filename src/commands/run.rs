//! The measuring path of `run`, `bench`, `sweep` and `suite`: open the exports and the
//! backend, plan, run, print the table, then the CI exports, the baseline comparison and the
//! saved baseline.

use super::{stop_on_ctrlc, write_plots, Options};
use crate::backend;
use crate::export::{Exporter, Exports, PrettyJson};
use crate::output::Output;
use crate::plan::{self, ImplSelect};
use crate::report::Report;
use crate::runner;
use crate::verify::VerifyMethod;
use crate::workload::Workload;
use crate::world::{rendezvous, World, WorldChoice};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// What to measure, beyond the common options.
#[derive(Debug, Clone, Default)]
pub struct MeasureRequest {
    /// `None` = the quick suite of the backend that opened.
    pub workloads: Option<Vec<Workload>>,
    /// Implementation names (`default`, `all`, or names); empty = default.
    pub implementations: Vec<String>,
    /// The command recorded in the report (`run`, `bench matmul`, ...).
    pub command: String,
    /// The swept parameter, for charts.
    pub axis: Option<String>,
    /// Where the processes of the run come from (collectives; `Single` for everything else).
    pub world: WorldChoice,
    /// User kernels registered on every backend before planning, with the workload kind each
    /// implements (`bench matmul --kernel …`).
    pub user_kernels: Vec<(&'static str, crate::workload::kernel::UserKernel)>,
    /// Files the command reads besides the baselines, with the flag that named them
    /// (`--model-file`): no output may be written over one.
    pub reads: Vec<(&'static str, PathBuf)>,
    /// A suite of named workloads (`suite llm`): what the devices cannot run (a missing
    /// library, too little memory) is recorded as not run and the rest runs, as the quick run
    /// (`workloads: None`) does, instead of refusing the whole plan.
    pub suite: bool,
    /// The command's own output goes to stdout (`suite llm --estimate-json -`): the human
    /// tables then go to stderr, as they do for `--json -`.
    pub own_stdout: bool,
}

/// What a measuring command leaves for its caller.
pub struct Outcome {
    pub code: i32,
    pub report: Report,
    /// Where the caller's own human text goes.
    pub output: Output,
}

/// Runs `req` and writes every requested output.
pub fn measure(opts: &Options, req: &MeasureRequest) -> Result<Outcome> {
    let world = World::from_process(req.world)?;
    check_highest_rank_baselines(opts, &world)?;
    let per_rank;
    let opts = if world.rank > 0 {
        per_rank = opts.for_rank(world.rank);
        &per_rank
    } else {
        opts
    };
    let exports = opts.open_exports()?;
    let extra_stdout = opts.check_fleet_targets(&exports, &[])?;
    let mut reads = reads_of(opts, req);
    // A file rendezvous is rewritten by rank 0 and read by the others while they meet.
    if let Some(crate::world::Rendezvous::File(p)) = &world.rendezvous {
        reads.push(("GPUVET_RENDEZVOUS", p.as_path()));
    }
    refuse_over_reads(opts.output_files(&exports), &reads)?;
    let price = opts.price_table()?;
    let baseline_dir = check_baseline_flags(opts, &exports)?;
    let mut opened = backend::open(opts.backend, opts.threads)?;
    if let Some(n) = &opened.notice {
        opts.notice(n);
    }
    let world = join_world(opts, world, opened.backends[0].as_ref())?;
    for b in opened.backends.iter_mut() {
        for (kind, k) in &req.user_kernels {
            b.register_user_kernel(kind, k)?;
        }
    }
    let suite = req.workloads.is_none() || req.suite;
    let workloads = req
        .workloads
        .clone()
        .unwrap_or_else(|| opened.backends[0].quick_suite());
    let plan = plan::build_in(
        &workloads,
        &opened.backends,
        &ImplSelect::parse(&req.implementations)?,
        opts.hot,
        suite,
        &world,
        &[],
    )?;
    for s in &plan.skipped {
        opts.notice(&format!("skipped: {s}"));
    }
    // Workloads a device cannot run at all are a finding about the machine (no cuBLASLt, too
    // little memory): said even under --quiet.
    let name_of = |i: usize| opened.backends[i].device().name.clone();
    for s in crate::plan::not_run_lines(&plan.not_run, name_of) {
        crate::term::warn(&format!("skipped: {s}"));
    }
    let mut settings = opts.settings(&req.command, opened.backends[0].kind());
    settings.world = world;
    let stop = stop_on_ctrlc();
    let mut report = runner::new_report(&opened.backends, &settings);
    report.config.price = price.map(|p| p.for_devices(&report.devices));
    report.not_run = plan.not_run.clone();
    runner::execute(
        &plan,
        &opened.backends,
        &settings,
        &exports,
        &mut report,
        &stop,
    )?;

    let output = Output::new(exports.uses_stdout() || extra_stdout || req.own_stdout);
    let on_sets = plan.entries.iter().any(|e| e.placement.devices().len() > 1);
    let mut unwritten = write_outputs(opts, req, &report, &exports, output, on_sets)?;
    // Interrupted is what the report says (the stop flag as the runner read it for
    // `complete`): read again here, a signal between the two gave exit 130 and no baseline for
    // a run whose files say it completed.
    let code = if !report.complete {
        interrupted(opts, &report, &mut unwritten)
    } else {
        nothing_ran(&report).max(exit_code(&report)).max(after_run(
            opts,
            &report,
            &baseline_dir,
            output,
            &mut unwritten,
        )?)
    };
    Ok(Outcome {
        code: fail_unwritten(code, &unwritten),
        report,
        output,
    })
}

/// `gpuvet run` (or no command): the quick suite of the backend that opens; its exit code.
pub fn quick_run(opts: &Options) -> Result<i32> {
    let req = MeasureRequest {
        command: "run".into(),
        ..MeasureRequest::default()
    };
    Ok(measure(opts, &req)?.code)
}

/// Every rank refuses a baseline name its highest rank cannot take (`NAME.rank15` over the
/// length limit), before the rendezvous: refused on that rank alone, the others waited the whole
/// rendezvous timeout and then blamed it for not joining.
fn check_highest_rank_baselines(opts: &Options, world: &World) -> Result<()> {
    if world.size <= 1 {
        return Ok(());
    }
    let last = opts.for_rank(world.size - 1);
    for name in [&last.baseline, &last.save_baseline].into_iter().flatten() {
        crate::compare::baseline::validate_name(name).with_context(|| {
            format!(
                "in a world of {} processes, rank {} keeps its baseline as `{name}`",
                world.size,
                world.size - 1
            )
        })?;
    }
    Ok(())
}

/// The human tables (and, after a run on device sets, the link summary), then every output's
/// last write (stdout's only one), the Prometheus file and the charts. Returns what could not
/// be written: that fails the run after the baselines, which do not depend on it.
fn write_outputs(
    opts: &Options,
    req: &MeasureRequest,
    report: &Report,
    exports: &Exports,
    output: Output,
    on_sets: bool,
) -> Result<Vec<String>> {
    let color = output.human_color();
    output
        .human(&crate::term::results_table(report, color))
        .context("writing to stdout")?;
    if on_sets {
        output
            .human(&crate::interconnect::summary(report, color))
            .context("writing to stdout")?;
    }
    let mut unwritten = exports.finish(report, opts.quiet);
    if let Some(target) = &opts.prometheus {
        if let Err(e) = crate::prometheus::Prometheus.write(target, report) {
            unwritten.push(format!("--prometheus {target}: {e:#}"));
        }
    }
    if let Some(dir) = &opts.plot {
        write_plots(opts, dir, || {
            crate::plot::write_plots(report, dir, req.axis.as_deref())
        })?;
    }
    Ok(unwritten)
}

/// What a run stopped by Ctrl-C still writes (no baseline is saved), and its exit code, 130.
fn interrupted(opts: &Options, report: &Report, unwritten: &mut Vec<String>) -> i32 {
    crate::term::warn("interrupted: the files hold the results that finished (no baseline saved)");
    // The JUnit file is the baseline comparison's, which never came: left alone, the previous
    // run's green file would stand for this one.
    if let (Some(target), Some(_)) = (&opts.junit, &opts.baseline) {
        let junit = crate::junit::JunitInterrupted {
            host: &report.host.hostname,
            command: &report.config.command,
            judgement: "baseline comparison",
        };
        if let Err(e) = junit.write(target, &()) {
            unwritten.push(format!("--junit {target}: {e:#}"));
        }
    }
    130
}

/// Joins the other processes of `world` (rank 0 hands out the lead backend's id); a single
/// process is returned as it is.
fn join_world(opts: &Options, world: World, lead: &dyn crate::backend::Backend) -> Result<World> {
    if world.is_single() {
        return Ok(world);
    }
    let at = world
        .rendezvous
        .as_ref()
        .map_or_else(String::new, |r| r.to_string());
    opts.notice(&format!(
        "rank {} of {}: joining the other processes through {at}",
        world.rank, world.size
    ));
    let joined = rendezvous::join(&world, || lead.world_id(), rendezvous::timeout_from_env()?)
        .context("joining the world of processes")?;
    opts.notice(&format!(
        "rank {} of {}: joined ({} hosts known)",
        joined.rank,
        joined.size,
        joined.hosts.len()
    ));
    Ok(joined)
}

/// Says what could not be written, one error line each, and makes sure the exit status says
/// so too: a run that was otherwise fine exits 2; one that already failed keeps its status.
pub fn fail_unwritten(code: i32, unwritten: &[String]) -> i32 {
    for u in unwritten {
        crate::term::error(u);
    }
    if unwritten.is_empty() || code != 0 {
        code
    } else {
        2
    }
}

/// `suite llm`: the measured layers, then the token-rate estimate (text, and JSON where asked).
pub fn suite_llm(
    opts: &Options,
    suite: &crate::suite::SuiteArgs,
    estimate_json: Option<&str>,
) -> Result<i32> {
    let own_stdout = opts.check_fleet_targets(&opts.open_exports()?, &[estimate_json])?
        && estimate_json == Some("-");
    let reads: Vec<(&'static str, PathBuf)> = (suite.model_file.iter())
        .map(|p| ("--model-file", p.clone()))
        .collect();
    // The estimate is this command's own output; `measure` checks the run's.
    let estimate = estimate_json
        .filter(|t| *t != "-")
        .map(|t| (format!("--estimate-json {t}"), Path::new(t)));
    let model: Vec<(&str, &Path)> = reads.iter().map(|(f, p)| (*f, p.as_path())).collect();
    refuse_over_reads(estimate, &model)?;
    let req = MeasureRequest {
        workloads: Some(crate::suite::suite_workloads(suite)?),
        command: "suite llm".into(),
        reads,
        suite: true,
        own_stdout,
        ..MeasureRequest::default()
    };
    let out = measure(opts, &req)?;
    let est = crate::suite::estimate(suite, &out.report);
    Output::new(out.output.human_to_stderr())
        .human(&format!("\n{}", est.render()))
        .context("writing to stdout")?;
    if let Some(target) = estimate_json {
        PrettyJson.write(target, &est)?;
    }
    Ok(out.code)
}

/// The files a run reads besides its baselines, each with the flag that named it: the price
/// table, the request's own (`--model-file`) and the user kernels' sources.
fn reads_of<'a>(opts: &'a Options, req: &'a MeasureRequest) -> Vec<(&'static str, &'a Path)> {
    let kernels = req
        .user_kernels
        .iter()
        .map(|(_, k)| ("--kernel", k.source.as_path()));
    // A free-form kernel's source, `.npy` inputs and expected output (`bench`/`sweep kernel`).
    let spec_files = (req.workloads.iter().flatten()).flat_map(|w| match w {
        crate::workload::Workload::Kernel(spec) => spec.files_read(),
        _ => Vec::new(),
    });
    (opts
        .price_file
        .iter()
        .map(|p| ("--price-file", p.as_path())))
    .chain(req.reads.iter().map(|(f, p)| (*f, p.as_path())))
    .chain(kernels)
    .chain(spec_files.map(|p| ("--spec", p)))
    .collect()
}

/// Refuses an output named as a file the run reads (`--price-file p.toml --json p.toml`
/// replaced the price table with the report, and `suite llm --model-file m.toml --json
/// m.toml` the model): the input is gone once the run has written, whatever it measured.
fn refuse_over_reads<'p>(
    outputs: impl IntoIterator<Item = (String, &'p Path)>,
    reads: &[(&str, &Path)],
) -> Result<()> {
    for (label, out) in outputs {
        if let Some((flag, p)) = crate::output::already_written(out, reads.iter().map(|r| (r, r.1)))
        {
            anyhow::bail!(
                "`{label}` would overwrite {flag} {}, which this run reads; write it elsewhere",
                p.display()
            );
        }
    }
    Ok(())
}

/// Checks baseline names before anything runs (export specs were checked when the exports
/// were opened); returns the baseline directory.
fn check_baseline_flags(opts: &Options, exports: &Exports) -> Result<PathBuf> {
    use crate::compare;
    for name in opts.baseline.iter().chain(opts.save_baseline.iter()) {
        compare::baseline::validate_name(name)?;
    }
    let dir = opts
        .baseline_dir
        .clone()
        .unwrap_or_else(compare::default_baseline_dir);
    if dir.exists() && !dir.is_dir() && (opts.baseline.is_some() || opts.save_baseline.is_some()) {
        anyhow::bail!(
            "--baseline-dir {}: a file is in the way; give a directory (the baseline \
             directory is --baseline-dir, else $GPUVET_BASELINE_DIR, else .gpuvet/baselines)",
            dir.display()
        );
    }
    if let Some(name) = &opts.baseline {
        // A missing or corrupt baseline (or earlier run of it) stops the run before it starts.
        compare::baseline::load_baseline_runs(name, &dir)?;
    }
    if let Some(name) = &opts.save_baseline {
        // So does a place the baseline could not be saved to.
        crate::export::check_dir("--baseline-dir", &dir)?;
        compare::baseline::check_overwrite(name, &dir)?;
        // And a lock the save could not take (a lock file left unreadable): taken and let go.
        if dir.is_dir() {
            drop(compare::baseline::lock_dir(&dir, true)?);
        }
        if opts.baseline_keep > 1 {
            let hist = compare::baseline::history_dir(name, &dir)?;
            crate::export::check_dir("--baseline-keep", &hist)?;
            // Read above already when it is also the baseline compared with.
            if opts.baseline.as_ref() != Some(name) {
                compare::baseline::load_history(name, &dir)?;
            }
        }
    }
    // And an output written over a baseline's file: before the comparison it would be compared
    // with itself; before the save it would stand in the file whether or not the run may be
    // saved (a failed run, refused as a baseline, would still have replaced the good one).
    let outputs = opts.output_files(exports);
    for (name, when) in [
        (&opts.baseline, "before the run is compared with it"),
        (&opts.save_baseline, "whether or not the run may be saved"),
    ] {
        let Some(name) = name else { continue };
        let path = compare::baseline::baseline_path(name, &dir)?;
        let claimed = outputs.iter().map(|(label, p)| (label.as_str(), *p));
        if let Some(label) = crate::output::already_written(&path, claimed) {
            anyhow::bail!(
                "`{label}` would overwrite baseline {name} ({}) {when}; write it elsewhere \
                 (--save-baseline {name} replaces the baseline when the run may be saved)",
                path.display()
            );
        }
        // Nor into its history: an earlier run there would be lost, or this run counted as
        // one of them.
        let hist = compare::baseline::history_dir(name, &dir)?;
        if let Some((label, _)) = outputs
            .iter()
            .find(|(_, p)| crate::output::lands_in(p, &hist))
        {
            anyhow::bail!(
                "`{label}` would land in the history of baseline {name} ({}), whose files are \
                 its earlier runs; write it elsewhere",
                hist.display()
            );
        }
    }
    Ok(dir)
}

/// The baseline comparison and saving the baseline. Returns 1 on a confirmed regression,
/// else 0.
/// A comparison's JUnit file that cannot be written goes into `unwritten` with the other
/// outputs: returned early, it stopped the baseline save and hid their errors.
fn after_run(
    opts: &Options,
    report: &Report,
    dir: &Path,
    output: Output,
    unwritten: &mut Vec<String>,
) -> Result<i32> {
    use crate::compare;
    let mut code = 0;
    if let Some(name) = &opts.baseline {
        let cmp_opts = compare::CompareOptions {
            seed: opts.seed,
            threshold_pct: opts.baseline_gate.threshold_pct,
            ..Default::default()
        };
        let cmp = compare::compare_to_baseline(report, name, dir, &cmp_opts)?;
        // Confirmed regressions, and what --baseline-fail-on adds.
        let gate = opts.baseline_gate.fail_on;
        let table = compare::render_table(&cmp, gate, output.human_color());
        output.human(&table).context("writing to stdout")?;
        if let Some(target) = &opts.junit {
            if let Err(e) = compare::junit::JunitCompare(gate).write(target, &cmp) {
                unwritten.push(format!("--junit {target}: {e:#}"));
            }
        }
        code = cmp.exit_code(gate);
    }
    if let Some(name) = &opts.save_baseline {
        // Saving over the baseline just compared against after the gate failed would hide
        // the regression: the next run would be judged against the slower figures and pass.
        let gate_failed = (code != 0 && opts.baseline.as_ref() == Some(name)).then(|| {
            if code == 2 {
                format!("it shares no result with baseline {name}: nothing was compared")
            } else {
                let history = compare::baseline::history_seqs(name, dir)
                    .map(|h| h.len())
                    .unwrap_or(0);
                let drop_history = match compare::baseline::history_dir(name, dir) {
                    Ok(h) if history > 0 => format!(
                        "; its {history} earlier run(s) in {} stay in the interval until you \
                         delete that directory",
                        h.display()
                    ),
                    _ => String::new(),
                };
                format!(
                    "it failed the comparison with baseline {name} (to accept these figures, \
                     run with --save-baseline {name} alone, without --baseline-keep, or the \
                     baseline it failed against joins the earlier runs{drop_history})"
                )
            }
        });
        match gate_failed.or_else(|| unfit_for_baseline(report)) {
            // A baseline is what later runs are judged against: a run with a wrong or failed
            // result would replace a good one and hide every later failure of those results.
            // The run already exits non-zero; the saved baseline is left as it was.
            Some(why) => crate::term::warn(&format!(
                "baseline {name} not saved: {why}; {}",
                match compare::baseline::baseline_path(name, dir) {
                    Ok(p) if p.exists() => format!("{} is kept as it was", p.display()),
                    _ => "no baseline of that name exists yet".to_string(),
                }
            )),
            None => {
                let p = compare::baseline::save_baseline_keeping(
                    report,
                    name,
                    dir,
                    opts.baseline_keep,
                )?;
                let earlier = match opts.baseline_keep {
                    1 => String::new(),
                    _ => format!(
                        " ({} earlier run(s) kept in {})",
                        compare::baseline::history_seqs(name, dir)?.len(),
                        compare::baseline::history_dir(name, dir)?.display()
                    ),
                };
                opts.notice(&format!("saved baseline {name}: {}{earlier}", p.display()));
            }
        }
    }
    Ok(code)
}

/// Why `report` may not become a baseline: results that were wrong, unchecked or could not run.
fn unfit_for_baseline(report: &Report) -> Option<String> {
    use crate::report::Status;
    let count = |s: Status| report.results.iter().filter(|r| r.status == s).count();
    let (wrong, failed) = (count(Status::VerificationFailed), count(Status::Error));
    // A result whose output was not checked (`verify.method = "none"`) never passes: it is no
    // reference either.
    let unchecked = report
        .results
        .iter()
        .filter(|r| r.status == Status::Ok && r.verification.method == VerifyMethod::Unverified)
        .count();
    let mut why = Vec::new();
    if report.results.is_empty() {
        why.push("it measured nothing".to_string());
    }
    if wrong > 0 {
        why.push(format!("{wrong} result(s) failed verification"));
    }
    if unchecked > 0 {
        why.push(format!("{unchecked} result(s) were not verified"));
    }
    if failed > 0 {
        why.push(format!("{failed} result(s) could not run"));
    }
    (!why.is_empty()).then(|| why.join(" and "))
}

/// 2 (with an error) for a suite that measured nothing because its devices could run none of
/// its workloads: an empty table is no pass. Else 0.
fn nothing_ran(report: &Report) -> i32 {
    if report.results.is_empty() && !report.not_run.is_empty() {
        crate::term::error(
            "nothing was measured: the devices could run none of the workloads (see above)",
        );
        2
    } else {
        0
    }
}

/// 1 when a result was wrong (or unverified), else 2 when one could not be run at all, else 0.
/// A wrong result wins over one that could not run: 2 reads as "the tool could not judge",
/// which a CI retries, and the wrong result beside it must not be retried away.
pub fn exit_code(report: &Report) -> i32 {
    use crate::report::Status;
    let wrong = |r: &&crate::report::ResultRecord| r.status != Status::Error && !r.is_valid();
    if report.results.iter().any(|r| wrong(&r)) {
        1
    } else if report.results.iter().any(|r| r.status == Status::Error) {
        2
    } else {
        0
    }
}
