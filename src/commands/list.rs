//! `gpuvet list`: dtypes, workloads, implementations per backend, kernels, the SKU database.

use super::{print_stdout, Options};
use crate::backend::{self, Backend};
use crate::dtype::DType;
use anyhow::Result;

/// What `list` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// The GPU kernels (compiled with NVRTC when a GPU is present).
    pub kernels: bool,
    /// With `kernels`: registers and spills.
    pub verbose: bool,
    /// The SKU database.
    pub skus: bool,
}

pub fn list(opts: &Options, what: ListOptions) -> Result<i32> {
    if what.kernels {
        print_stdout(&format!("{}\n", backend::list_kernels(what.verbose)?))?;
        return Ok(0);
    }
    if what.skus {
        print_stdout(&crate::gpudb::skus_table(crate::term::stdout_color())?)?;
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
    text.push_str(
        "\nworkloads:  matmul (bench matmul), attention (bench attention), memory copy/read/write/triad (bench memory),\n            host↔device transfers (bench transfer), GPU↔GPU copies (bench p2p), NCCL collectives (bench collective)\n",
    );
    let opened = backend::open(opts.backend, opts.threads)?;
    if let Some(n) = &opened.notice {
        opts.notice(n);
    }
    for b in &opened.backends {
        text.push_str(&backend_text(b.as_ref()));
    }
    print_stdout(&text)?;
    Ok(0)
}

/// One backend's device and the implementations of each quick-suite workload on it.
fn backend_text(b: &dyn Backend) -> String {
    let kind = b.kind();
    let mut text = format!(
        "\n{} device {}: {}\n  quick suite (implementations):\n",
        kind.name(),
        b.device().index,
        b.device().name
    );
    let suite = b.quick_suite();
    // The names' column is as wide as the longest name, so that every implementation lines up.
    let width = suite.iter().map(|w| w.name().len()).max().unwrap_or(0);
    for w in suite {
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
            "    {:<width$}  {}\n",
            w.name(),
            if imps.is_empty() {
                "— not supported here".into()
            } else {
                imps.join(", ")
            }
        ));
    }
    text
}
