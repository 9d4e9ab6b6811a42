//! `gpuvet report`: a results file (and a verdict) as one HTML page ([`crate::html`]).

use crate::export::Exporter;
use crate::html::{Html, HtmlExtras, HtmlPage};
use crate::report::Report;
use crate::validate::NodeVerdict;
use std::path::PathBuf;

/// What `gpuvet report` does (the CLI's flags, as plain data).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportArgs {
    /// A results file written with `--json`.
    pub results: PathBuf,
    /// Where to write the HTML.
    pub output: PathBuf,
    /// A node verdict to show at the top.
    pub verdict: Option<PathBuf>,
    /// Title of the page; `None` = "gpuvet report — <devices>".
    pub title: Option<String>,
    /// Axis of the sweep curves; `None` = the first axis that varies.
    pub axis: Option<String>,
}

/// Reads the results (and verdict), renders, and writes the page atomically, saying so on
/// stderr unless `quiet`. A corrupt or unreadable file is an error (exit 2 at the CLI).
pub fn run(args: &ReportArgs, quiet: bool) -> anyhow::Result<i32> {
    let to_stdout = args.output.as_os_str() == "-";
    let inputs: Vec<&std::path::Path> = std::iter::once(args.results.as_path())
        .chain(args.verdict.as_deref())
        .collect();
    if let Some(i) = crate::output::overwritten_input(&args.output, &inputs) {
        anyhow::bail!(
            "-o {} is the file the report reads ({}); write the HTML elsewhere",
            args.output.display(),
            i.display()
        );
    }
    if !to_stdout {
        crate::export::check_path(&args.output.to_string_lossy())?;
    }
    let report = Report::load(&args.results)?;
    if let Some(axis) = &args.axis {
        if !report
            .results
            .iter()
            .any(|r| r.workload.axis_value_by_name(axis).is_some())
        {
            let mut known: Vec<&str> = report
                .results
                .iter()
                .flat_map(|r| r.workload.sweep_params().iter().map(|p| p.name()))
                .collect();
            known.sort_unstable();
            known.dedup();
            anyhow::bail!(
                "--axis {axis}: no result of {} has it; its results' axes: {}",
                args.results.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    let verdict = match &args.verdict {
        Some(p) => {
            let text = crate::files::read_text_bounded(p, crate::files::MAX_SMALL_FILE_BYTES)
                .map_err(|e| crate::Error::CorruptFile {
                    path: p.display().to_string(),
                    reason: e.to_string(),
                })?;
            Some(NodeVerdict::from_json(&text, &p.display().to_string())?)
        }
        None => None,
    };
    let page = HtmlPage {
        report: &report,
        extras: HtmlExtras {
            title: args.title.as_deref(),
            verdict: verdict.as_ref(),
            swept_axis: args.axis.as_deref(),
            ..HtmlExtras::default()
        },
    };
    Html.write_to(&args.output, &page)?;
    if !to_stdout && !quiet {
        let (out, n) = (args.output.display(), report.results.len());
        crate::output::write_stderr(&format!("wrote {out} ({n} results)\n"));
    }
    Ok(0)
}
