//! `gpuvet compare`: two sets of runs, compared (the statistics are in [`crate::compare`]).

use crate::compare::{self, CompareRequest};
use crate::report::Report;
use std::path::{Path, PathBuf};

/// `gpuvet compare OLD NEW`: checks the output paths, loads both reports, prints the table,
/// writes the requested files, and returns the exit status (1 when anything fails under
/// `--fail-on`, else 0).
///
/// A malformed or truncated report is `gpuvet::Error::CorruptFile` inside the `anyhow::Error`
/// (exit 2 at the CLI); so is a bad output path or two outputs on stdout, before any report
/// is read.
pub fn run(req: impl Into<CompareRequest>, color: bool) -> anyhow::Result<i32> {
    let args: CompareRequest = req.into();
    let inputs: Vec<&Path> = args
        .old
        .iter()
        .chain(&args.new)
        .map(PathBuf::as_path)
        .collect();
    let outputs = compare::Outputs::check(
        [
            args.markdown.as_deref(),
            args.json.as_deref(),
            args.csv.as_deref(),
            args.junit.as_deref(),
        ],
        &inputs,
    )?;
    let old = compare::load_side("OLD", &args.old)?;
    let new = compare::load_side("NEW", &args.new)?;
    let labels = |paths: &[PathBuf]| -> Vec<String> {
        paths.iter().map(|p| p.display().to_string()).collect()
    };
    let (old_refs, new_refs): (Vec<&Report>, Vec<&Report>) =
        (old.iter().collect(), new.iter().collect());
    let cmp = compare::compare_runs(&old_refs, &new_refs, &args.options)
        .with_run_labels(&labels(&args.old), &labels(&args.new));
    outputs.emit(&cmp, args.fail_on, color)?;
    Ok(cmp.exit_code(args.fail_on))
}
