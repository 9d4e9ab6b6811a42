//! JUnit XML (`--junit PATH`): validation verdicts and comparison regressions as test results,
//! so that the test reporters of CI systems (Jenkins, GitLab, GitHub Actions reporters, Azure
//! Pipelines) show them beside the unit tests.
//!
//! | source | `<testsuite>` | `<testcase>` | `<failure>` | `<error>` | `<skipped>` |
//! |---|---|---|---|---|---|
//! | `validate` | one per GPU, and the node's (its links, on a node of several GPUs) | one per check (identity, absolute, peers, health, correctness; the node's `links`) | FAIL; WARN under `--fail-on-warn` | the node could not be judged (no device tested) | the check had nothing to judge (no database entry, no peers, no telemetry) |
//! | `compare`, `--baseline` | one per comparison | one per compared result | a confirmed regression (slower, or verified before and wrong now); `ambiguous` under `--fail-on ambiguous` | a backend error in NEW where OLD ran | in one run only, or unusable on both sides |
//!
//! The same rule as the exit status decides a failure, so a red test and exit 1 always agree.
//! WARN findings of a passing check and the figures of a passing comparison are in the
//! testcase's `<system-out>`. The file validates against the Jenkins xUnit plugin's
//! `junit-10.xsd` (tests/fixtures/junit/).

use crate::export::Exporter;
use crate::markup::escape;
use crate::validate::{Check, GpuVerdict, NodeVerdict, Verdict};

/// `validate`'s node verdict as JUnit; `fail_on_warn` as given to `validate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JunitValidate {
    pub fail_on_warn: bool,
}

impl Exporter<NodeVerdict> for JunitValidate {
    fn render(&self, v: &NodeVerdict) -> anyhow::Result<String> {
        let mut suites: Vec<Suite> = v
            .gpus
            .iter()
            .map(|g| gpu_suite(v, g, self.fail_on_warn))
            .collect();
        if let Some(s) = node_suite(v, self.fail_on_warn) {
            suites.push(s);
        }
        Ok(document("gpuvet validate", &suites))
    }
}

/// A command stopped before its judgement (Ctrl-C, SIGTERM, a job's time limit): `validate`
/// before its verdict, a run before its `--baseline` comparison. One errored case, so that a CI
/// job killed by its timeout never reads the previous run's green file.
#[derive(Debug, Clone, Copy)]
pub struct JunitInterrupted<'a> {
    pub host: &'a str,
    /// `validate`, or the run's command (`bench matmul`).
    pub command: &'a str,
    /// What it did not reach: `verdict`, `baseline comparison`.
    pub judgement: &'a str,
}

impl Exporter<()> for JunitInterrupted<'_> {
    fn render(&self, _: &()) -> anyhow::Result<String> {
        let package = format!("gpuvet.{}", self.command.replace(' ', "."));
        let case = Case {
            name: self.judgement.into(),
            classname: package.clone(),
            outcome: Outcome::Error {
                kind: "interrupted".into(),
                message: format!(
                    "{} was interrupted before its {}",
                    self.command, self.judgement
                ),
            },
            detail: format!(
                "the run stopped before every result was in; no {} was made",
                self.judgement
            ),
        };
        let title = format!("gpuvet {}", self.command);
        let suite = Suite {
            name: format!("{title} on {}", self.host),
            package,
            hostname: Some(self.host.to_string()),
            timestamp: None,
            properties: Vec::new(),
            cases: vec![case],
            system_out: String::new(),
        };
        Ok(document(&title, &[suite]))
    }
}

/// What happened to one test case.
pub(crate) enum Outcome {
    Passed,
    Failure { kind: String, message: String },
    Error { kind: String, message: String },
    Skipped { message: String },
}

pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) classname: String,
    pub(crate) outcome: Outcome,
    /// Everything a reader may want beside the outcome (findings, figures).
    pub(crate) detail: String,
}

pub(crate) struct Suite {
    pub(crate) name: String,
    pub(crate) package: String,
    pub(crate) hostname: Option<String>,
    pub(crate) timestamp: Option<String>,
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) cases: Vec<Case>,
    pub(crate) system_out: String,
}

/// A class name that CI reporters do not split into packages at a host's dots.
pub(crate) fn class_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn gpu_suite(v: &NodeVerdict, g: &GpuVerdict, fail_on_warn: bool) -> Suite {
    let classname = format!("gpuvet.validate.{}.gpu{}", class_part(&v.hostname), g.index);
    let mut properties = vec![
        ("gpu".to_string(), g.index.to_string()),
        ("name".into(), g.name.clone()),
        ("verdict".into(), g.verdict.name().into()),
    ];
    for (k, val) in [
        ("uuid", &g.uuid),
        ("pci_bus_id", &g.pci_bus_id),
        ("serial", &g.serial),
        ("sku", &g.sku),
        ("detected_sku", &g.detected_sku),
    ] {
        if let Some(val) = val {
            properties.push((k.into(), val.clone()));
        }
    }
    for (test, m) in &g.metrics {
        properties.push((format!("metric.{test}"), format!("{} {}", m.value, m.unit)));
    }
    Suite {
        name: format!("{} GPU {} ({})", v.hostname, g.index, g.name),
        package: "gpuvet.validate".into(),
        hostname: Some(v.hostname.clone()),
        timestamp: Some(v.started_at.clone()),
        properties,
        cases: g
            .checks
            .iter()
            .map(|c| check_case(c, &classname, fail_on_warn))
            .collect(),
        system_out: String::new(),
    }
}

fn check_case(c: &Check, classname: &str, fail_on_warn: bool) -> Case {
    let lines: Vec<String> = c
        .findings
        .iter()
        .map(|f| format!("{}: {}", f.verdict.name(), f.message))
        .collect();
    let first_problem = || {
        c.findings
            .iter()
            .find(|f| f.verdict == c.verdict)
            .map(|f| f.message.clone())
            .unwrap_or_default()
    };
    let fails = c.verdict == Verdict::Fail || (c.verdict == Verdict::Warn && fail_on_warn);
    let outcome = match &c.skipped {
        _ if fails => Outcome::Failure {
            kind: c.verdict.name().into(),
            message: first_problem(),
        },
        Some(why) => Outcome::Skipped {
            message: why.clone(),
        },
        None => Outcome::Passed,
    };
    Case {
        name: c.check.name().into(),
        classname: classname.into(),
        outcome,
        detail: lines.join("\n"),
    }
}

/// Node-level outcomes no GPU's checks carry: the node's own checks (its links: a testcase
/// each, as a GPU's checks are), nothing tested (an error), a run that did not complete (a
/// failure where it fails the exit status).
fn node_suite(v: &NodeVerdict, fail_on_warn: bool) -> Option<Suite> {
    let classname = format!("gpuvet.validate.{}", class_part(&v.hostname));
    let mut cases: Vec<Case> = v
        .node_checks
        .iter()
        .map(|c| check_case(c, &format!("{classname}.node"), fail_on_warn))
        .collect();
    let checked: Vec<String> = v
        .node_checks
        .iter()
        .flat_map(|c| c.reasons())
        .map(|r| format!("node: {r}"))
        .collect();
    let node_reasons: Vec<&String> = v
        .reasons
        .iter()
        .filter(|r| !r.starts_with("GPU ") && !checked.contains(r))
        .collect();
    let mut properties = vec![("verdict".to_string(), v.verdict.name().to_string())];
    for (test, m) in &v.node_metrics {
        properties.push((format!("metric.{test}"), format!("{} {}", m.value, m.unit)));
    }
    if node_reasons.is_empty() {
        return (!cases.is_empty()).then(|| node_suite_of(v, properties, cases));
    }
    let message = node_reasons
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let outcome = if v.gpus.is_empty() || v.exit_code == 2 {
        Outcome::Error {
            kind: "could not judge".into(),
            message,
        }
    } else if v.verdict == Verdict::Fail || (v.verdict == Verdict::Warn && fail_on_warn) {
        Outcome::Failure {
            kind: v.verdict.name().into(),
            message,
        }
    } else {
        Outcome::Passed
    };
    cases.push(Case {
        name: "run".into(),
        classname,
        outcome,
        detail: node_reasons
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    });
    Some(node_suite_of(v, properties, cases))
}

/// The node's suite of `cases`.
fn node_suite_of(v: &NodeVerdict, properties: Vec<(String, String)>, cases: Vec<Case>) -> Suite {
    Suite {
        name: format!("{} node", v.hostname),
        package: "gpuvet.validate".into(),
        hostname: Some(v.hostname.clone()),
        timestamp: Some(v.started_at.clone()),
        properties,
        cases,
        system_out: String::new(),
    }
}

fn counts(cases: &[Case]) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for case in cases {
        match case.outcome {
            Outcome::Failure { .. } => c.0 += 1,
            Outcome::Error { .. } => c.1 += 1,
            Outcome::Skipped { .. } => c.2 += 1,
            Outcome::Passed => {}
        }
    }
    c
}

pub(crate) fn document(name: &str, suites: &[Suite]) -> String {
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for s in suites {
        let (f, e, _) = counts(&s.cases);
        tests += s.cases.len();
        failures += f;
        errors += e;
    }
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">\n",
        escape(name)
    ));
    for (i, s) in suites.iter().enumerate() {
        write_suite(&mut x, i, s);
    }
    x.push_str("</testsuites>\n");
    x
}

fn write_suite(x: &mut String, id: usize, s: &Suite) {
    let (failures, errors, skipped) = counts(&s.cases);
    x.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" id=\"{id}\" package=\"{}\"",
        escape(&s.name),
        s.cases.len(),
        escape(&s.package)
    ));
    if let Some(h) = &s.hostname {
        x.push_str(&format!(" hostname=\"{}\"", escape(h)));
    }
    if let Some(t) = &s.timestamp {
        x.push_str(&format!(" timestamp=\"{}\"", escape(t)));
    }
    x.push_str(">\n");
    if !s.properties.is_empty() {
        x.push_str("    <properties>\n");
        for (k, v) in &s.properties {
            x.push_str(&format!(
                "      <property name=\"{}\" value=\"{}\"/>\n",
                escape(k),
                escape(v)
            ));
        }
        x.push_str("    </properties>\n");
    }
    for c in &s.cases {
        write_case(x, c);
    }
    if !s.system_out.is_empty() {
        x.push_str(&format!(
            "    <system-out>{}</system-out>\n",
            escape(&s.system_out)
        ));
    }
    x.push_str("  </testsuite>\n");
}

fn write_case(x: &mut String, c: &Case) {
    x.push_str(&format!(
        "    <testcase name=\"{}\" classname=\"{}\">\n",
        escape(&c.name),
        escape(&c.classname)
    ));
    let element = |tag: &str, kind: Option<&str>, message: &str, body: &str| {
        let kind = kind
            .map(|k| format!(" type=\"{}\"", escape(k)))
            .unwrap_or_default();
        format!(
            "      <{tag} message=\"{}\"{kind}>{}</{tag}>\n",
            escape(message),
            escape(body)
        )
    };
    match &c.outcome {
        Outcome::Failure { kind, message } => {
            x.push_str(&element("failure", Some(kind), message, &c.detail))
        }
        Outcome::Error { kind, message } => {
            x.push_str(&element("error", Some(kind), message, &c.detail))
        }
        Outcome::Skipped { message } => x.push_str(&element("skipped", None, message, "")),
        Outcome::Passed => {}
    }
    if !c.detail.is_empty() && matches!(c.outcome, Outcome::Passed | Outcome::Skipped { .. }) {
        x.push_str(&format!(
            "      <system-out>{}</system-out>\n",
            escape(&c.detail)
        ));
    }
    x.push_str("    </testcase>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_keep_dots_out_of_the_package_path() {
        assert_eq!(class_part("node-1.example.com"), "node-1_example_com");
    }
}
