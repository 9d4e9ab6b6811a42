//! `gpuvet aggregate`: node verdicts summarised into one fleet view ([`crate::validate::aggregate`]).

use crate::export::Exporter;
use crate::validate::aggregate::{self, render, AggregateArgs, Fleet, FleetFormat};
use crate::validate::NodeVerdict;
use std::path::Path;

/// `gpuvet aggregate`: checks the outputs, loads, summarises, writes. Exit status 0 when no
/// node is to be drained, 1 when some are (so a fleet check can gate on it); errors (a corrupt
/// file, a bad output path, two formats on stdout) are the caller's 2.
pub fn run(args: &AggregateArgs, color: bool) -> anyhow::Result<i32> {
    // `-o -` is stdout, as `-` is for every other output.
    let output = args.output.as_deref().filter(|p| p.as_os_str() != "-");
    let view_to_stdout = output.is_none();
    let also_to_stdout: Vec<&str> = args
        .also
        .iter()
        .filter(|(_, t)| t == "-")
        .map(|(f, _)| f.flag())
        .collect();
    let machine_view = args.format != FleetFormat::Table;
    if also_to_stdout.len() > 1 || (view_to_stdout && machine_view && !also_to_stdout.is_empty()) {
        let mut both = also_to_stdout.clone();
        if view_to_stdout && machine_view {
            both.insert(0, "--format");
        }
        anyhow::bail!(
            "{} all ask for stdout; send all but one of them to a file",
            both.join(" and ")
        );
    }
    for (f, t) in args.also.iter().filter(|(_, t)| t != "-") {
        crate::export::check_path(t).map_err(|e| anyhow::anyhow!("{}: {e:#}", f.flag()))?;
    }
    if let Some(p) = output {
        crate::export::check_path(&p.to_string_lossy())?;
    }
    let loaded = aggregate::load_verdicts(&args.paths)?;
    let inputs: Vec<&Path> = loaded.iter().map(|(p, _)| p.as_path()).collect();
    let targets = output.into_iter().map(|p| ("-o", p)).chain(
        args.also
            .iter()
            .filter(|(_, t)| t != "-")
            .map(|(f, t)| (f.flag(), Path::new(t))),
    );
    for (flag, t) in targets {
        if let Some(i) = crate::output::overwritten_input(t, &inputs) {
            anyhow::bail!(
                "{flag} {} is one of the verdicts read ({}); write the fleet view elsewhere",
                t.display(),
                i.display()
            );
        }
        if let Some(d) = aggregate::scanned_dir_of(t, &args.paths) {
            anyhow::bail!(
                "{flag} {} would land among the verdicts of {} (every *.json there is read as \
                 one, so the next `gpuvet aggregate {}` would refuse it); write the fleet view \
                 elsewhere",
                t.display(),
                d.display(),
                d.display()
            );
        }
    }
    let verdicts: Vec<NodeVerdict> = loaded.into_iter().map(|(_, v)| v).collect();
    let mut summary = aggregate::summarize(&verdicts, args.outlier_pct);
    summary.lost_capacity = args
        .price
        .as_ref()
        .map(|p| aggregate::lost_capacity(&verdicts, p));
    // The table moves to stderr when a machine format takes stdout.
    let table_to_stderr = view_to_stdout && !also_to_stdout.is_empty();
    let view_color = match (output, table_to_stderr) {
        (Some(_), _) => false,
        (None, true) => crate::term::stderr_color(),
        (None, false) => color,
    };
    let fleet = Fleet {
        verdicts: &verdicts,
        summary: &summary,
    };
    let write = |format: FleetFormat, target: &Path| {
        format
            .write_to(target, &fleet)
            .map_err(|e| anyhow::anyhow!("cannot write the fleet view: {e:#}"))
    };
    match output {
        Some(p) => write(args.format, p)?,
        None => {
            let text = render(&verdicts, &summary, args.format, view_color)?;
            crate::output::Output::new(table_to_stderr).human(&text)?;
        }
    }
    for (format, target) in &args.also {
        write(*format, Path::new(target))?;
    }
    Ok(if summary.drain.is_empty() { 0 } else { 1 })
}
