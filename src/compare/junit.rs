//! A comparison as JUnit XML (`compare --junit`, `run --baseline … --junit`): a testcase per
//! compared result, in the same document shape as `validate`'s (crate::junit writes both).

use super::{Comparison, Gate, ResultComparison, Verdict as CmpVerdict};
use crate::export::Exporter;
use crate::junit::{class_part, document, Case, Outcome, Suite};

/// A comparison as JUnit, failing what the gate fails.
#[derive(Debug, Clone, Copy)]
pub struct JunitCompare(pub Gate);

impl Exporter<Comparison> for JunitCompare {
    fn render(&self, c: &Comparison) -> anyhow::Result<String> {
        let mut cases: Vec<Case> = c.results.iter().map(|r| compare_case(r, self.0)).collect();
        if c.compared() == 0 {
            // The exit status is 2; a reporter that counts testcases must not see a pass.
            cases.push(Case {
                name: "comparison".into(),
                classname: "gpuvet.compare".into(),
                outcome: Outcome::Error {
                    kind: "nothing-compared".into(),
                    message: "OLD and NEW share no result: nothing was compared".into(),
                },
                detail: {
                    let n = c.counts();
                    format!("{} result(s) in OLD only, {} in NEW only", n.missing, n.new)
                },
            });
        }
        let suite = Suite {
            name: format!("gpuvet compare: {} against {}", c.new.label, c.old.label),
            package: "gpuvet.compare".into(),
            hostname: None,
            timestamp: Some(c.new.started_at.clone()),
            properties: vec![
                ("old".into(), format!("{} ({})", c.old.label, c.old.gpuvet)),
                ("new".into(), format!("{} ({})", c.new.label, c.new.gpuvet)),
                ("threshold_pct".into(), c.options.threshold_pct.to_string()),
                ("fail_on".into(), self.0.names()),
            ]
            .into_iter()
            .chain(c.environment.iter().map(|e| {
                (
                    format!("changed.{}", e.field),
                    format!("{} → {}", e.old, e.new),
                )
            }))
            .collect(),
            cases,
            system_out: c.notes.join("\n"),
        };
        Ok(document("gpuvet compare", &[suite]))
    }
}

fn compare_case(r: &ResultComparison, gate: Gate) -> Case {
    let ratio = r.ratio.as_ref().map(|c| {
        format!(
            "NEW/OLD {} = {:.4} (95% interval {:.4}-{:.4})",
            r.quantity, c.ratio, c.low, c.high
        )
    });
    let mut detail = vec![format!("verdict: {}", r.verdict)];
    detail.extend(ratio.clone());
    if let (Some(o), Some(n)) = (r.old_median_s, r.new_median_s) {
        let runs = |k: usize| {
            if k > 1 {
                format!(" over {k} runs")
            } else {
                String::new()
            }
        };
        detail.push(format!(
            "median time: OLD {o:e} s ({} samples{}), NEW {n:e} s ({} samples{})",
            r.old_samples,
            runs(r.old_runs),
            r.new_samples,
            runs(r.new_runs)
        ));
    }
    detail.extend(r.detail.clone());
    let why = || {
        ratio
            .clone()
            .or_else(|| r.detail.clone())
            .unwrap_or_default()
    };
    let outcome = if r.regression && r.verdict == CmpVerdict::Failed {
        Outcome::Error {
            kind: r.verdict.to_string(),
            message: why(),
        }
    } else if gate.fails(r) {
        Outcome::Failure {
            kind: r.verdict.to_string(),
            message: format!("{}: {}", r.verdict, why()),
        }
    } else if r.ratio.is_none() {
        Outcome::Skipped {
            message: format!("{}: {}", r.verdict, r.detail.clone().unwrap_or_default()),
        }
    } else {
        Outcome::Passed
    };
    Case {
        name: r.id.clone(),
        classname: format!("gpuvet.compare.{}", class_part(&r.device)),
        outcome,
        detail: detail.join("\n"),
    }
}
