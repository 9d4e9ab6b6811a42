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

use crate::compare::{Comparison, FailOn, ResultComparison, Verdict as CmpVerdict};
use crate::export::Exporter;
use crate::validate::{Check, GpuVerdict, NodeVerdict, Verdict};

/// `validate`'s node verdict as JUnit; `fail_on_warn` as given to `validate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JunitValidate {
    pub fail_on_warn: bool,
}

/// A comparison as JUnit, failing what `fail_on` fails.
#[derive(Debug, Clone, Copy)]
pub struct JunitCompare(pub FailOn);

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

impl Exporter<Comparison> for JunitCompare {
    fn render(&self, c: &Comparison) -> anyhow::Result<String> {
        let cases = c.results.iter().map(|r| compare_case(r, self.0)).collect();
        let suite = Suite {
            name: format!("gpuvet compare: {} against {}", c.new.label, c.old.label),
            package: "gpuvet.compare".into(),
            hostname: None,
            timestamp: Some(c.new.started_at.clone()),
            properties: vec![
                ("old".into(), format!("{} ({})", c.old.label, c.old.gpuvet)),
                ("new".into(), format!("{} ({})", c.new.label, c.new.gpuvet)),
                ("threshold_pct".into(), c.options.threshold_pct.to_string()),
                (
                    "fail_on".into(),
                    format!("{:?}", self.0).to_ascii_lowercase(),
                ),
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

/// What happened to one test case.
enum Outcome {
    Passed,
    Failure { kind: String, message: String },
    Error { kind: String, message: String },
    Skipped { message: String },
}

struct Case {
    name: String,
    classname: String,
    outcome: Outcome,
    /// Everything a reader may want beside the outcome (findings, figures).
    detail: String,
}

struct Suite {
    name: String,
    package: String,
    hostname: Option<String>,
    timestamp: Option<String>,
    properties: Vec<(String, String)>,
    cases: Vec<Case>,
    system_out: String,
}

/// A class name that CI reporters do not split into packages at a host's dots.
fn class_part(s: &str) -> String {
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

fn compare_case(r: &ResultComparison, fail_on: FailOn) -> Case {
    let ratio = r.ratio.as_ref().map(|c| {
        format!(
            "NEW/OLD {} = {:.4} (95% interval {:.4}-{:.4})",
            r.quantity, c.ratio, c.low, c.high
        )
    });
    let mut detail = vec![format!("verdict: {}", r.verdict)];
    detail.extend(ratio.clone());
    if let (Some(o), Some(n)) = (r.old_median_s, r.new_median_s) {
        detail.push(format!(
            "median time: OLD {o:e} s ({} samples), NEW {n:e} s ({} samples)",
            r.old_samples, r.new_samples
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
    } else if r.regression || (fail_on == FailOn::Ambiguous && r.verdict == CmpVerdict::Ambiguous) {
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

/// Text safe in XML 1.0 content and attribute values: markup characters escaped, characters
/// XML cannot carry at all (most control characters) dropped.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Attribute values normalise raw newlines and tabs to spaces: keep them as refs.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
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

fn document(name: &str, suites: &[Suite]) -> String {
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
        xml_escape(name)
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
        xml_escape(&s.name),
        s.cases.len(),
        xml_escape(&s.package)
    ));
    if let Some(h) = &s.hostname {
        x.push_str(&format!(" hostname=\"{}\"", xml_escape(h)));
    }
    if let Some(t) = &s.timestamp {
        x.push_str(&format!(" timestamp=\"{}\"", xml_escape(t)));
    }
    x.push_str(">\n");
    if !s.properties.is_empty() {
        x.push_str("    <properties>\n");
        for (k, v) in &s.properties {
            x.push_str(&format!(
                "      <property name=\"{}\" value=\"{}\"/>\n",
                xml_escape(k),
                xml_escape(v)
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
            xml_escape(&s.system_out)
        ));
    }
    x.push_str("  </testsuite>\n");
}

fn write_case(x: &mut String, c: &Case) {
    x.push_str(&format!(
        "    <testcase name=\"{}\" classname=\"{}\">\n",
        xml_escape(&c.name),
        xml_escape(&c.classname)
    ));
    let element = |tag: &str, kind: Option<&str>, message: &str, body: &str| {
        let kind = kind
            .map(|k| format!(" type=\"{}\"", xml_escape(k)))
            .unwrap_or_default();
        format!(
            "      <{tag} message=\"{}\"{kind}>{}</{tag}>\n",
            xml_escape(message),
            xml_escape(body)
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
            xml_escape(&c.detail)
        ));
    }
    x.push_str("    </testcase>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_never_break_the_document() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#10;"
        );
        assert_eq!(class_part("node-1.example.com"), "node-1_example_com");
    }
}
