//! Untrusted inputs never panic: property tests over every parser of user input. Each input
//! either parses or gives a clear error, within a time limit (never hangs); what parses is then
//! fed to what reads it (a report to compare, the exporters and the HTML page; a model to the
//! suite; a database to the lookups), since a panic there is the same crash to the user.
//!
//! | parser | reached through |
//! |---|---|
//! | shape strings `MxNxK` | `bench matmul --shape`, then the workloads they make |
//! | axes (lists, ranges, `pow2:`), counts and byte sizes | `sweep … --m/--size/--seq/…`, then the sweep |
//! | durations | `units::parse_duration`, `stress --duration`, `validate --duration` |
//! | sizes | `units::Bytes`, `bench memory --size` |
//! | percentages, thresholds, SKU ids, fault specs | `validate --tolerance/--straggler-pct/--expect`, `compare --threshold`, `stress --plant-fault` |
//! | dtypes, layouts, memory ops, sweep parameters | `FromStr` of each, `report --axis` |
//! | export specs, baseline names | `compare::export::parse_spec`, `baseline::validate_name` |
//! | reports and baselines (JSON) | `Report::from_json`, then compare, exporters, table, HTML, estimate |
//! | node verdicts (JSON) | `NodeVerdict::from_json`, then aggregate and the HTML page |
//! | model presets (TOML) | `ModelConfig::parse`, then the suite's kernels |
//! | the GPU database (`data/gpus.toml` format) | `gpudb::Database::parse`, then lookups and peaks |
//!
//! Case counts keep the whole file near 30 s of CPU on the CI machine (2 cores, debug build);
//! `PROPTEST_CASES` overrides them all for a longer hunt. Every panic these found has a
//! regression test below named after it.

mod common;

use clap::Parser;
use common::temp_files;
use gpuvet::cli::Cli;
use gpuvet::compare::{self, CompareOptions};
use gpuvet::export::Exporter;
use gpuvet::report::Report;
use proptest::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest any one input may take: far above what a parse needs even on a loaded CI machine,
/// far below what a user would call a hang.
const TIME_LIMIT: Duration = Duration::from_secs(5);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cases` cases unless `PROPTEST_CASES` asks for another number; no regression files are
/// written into the tree (found failures become named tests instead).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `f`, failing when it takes longer than [`TIME_LIMIT`].
fn timed<T>(what: &str, input: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = f();
    let took = t0.elapsed();
    assert!(took < TIME_LIMIT, "{what} took {took:?} on {input:?}");
    out
}

/// An error message a user can act on: not empty, one paragraph.
fn assert_clear(what: &str, input: &str, msg: &str) {
    assert!(!msg.trim().is_empty(), "{what}: empty error for {input:?}");
}

// ---------------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------------

/// Numbers as users and typos write them: edge values, signs, exponents, blanks, overflow.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|v| v.to_string()),
        (0u64..5000).prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "0",
            "1",
            "-1",
            "+1",
            " 7 ",
            "",
            "1e3",
            "1.5",
            ".5",
            "5.",
            "NaN",
            "inf",
            "-0",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "0x10",
            "4096",
            "1_000",
            "١٢",
            "𝟙",
        ])
        .prop_map(str::to_string),
    ]
}

/// A size: a number and a unit, or anything.
fn size_text() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec![
        "", "B", "K", "k", "KiB", "Ki", "M", "MiB", "G", "GiB", "T", "TiB", "kB", "KB", "MB", "GB",
        "TB", "PB", "XiB", " GiB", "gib",
    ]);
    prop_oneof![
        (number_text(), unit).prop_map(|(n, u)| format!("{n}{u}")),
        "[0-9.]{0,25}[A-Za-z]{0,4}",
        any::<String>(),
    ]
}

/// An axis: items of values, ranges with steps, powers of two, joined by commas; or anything.
fn axis_text(value: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    let item = prop_oneof![
        value.clone(),
        (value.clone(), value.clone()).prop_map(|(a, b)| format!("{a}..{b}")),
        (value.clone(), value.clone(), value.clone()).prop_map(|(a, b, s)| format!("{a}..{b}:{s}")),
        (value.clone(), value).prop_map(|(a, b)| format!("pow2:{a}..{b}")),
        prop::sample::select(vec![
            "..", "pow2:", "pow2:..", "1..", "..1", ":", "1..2:", "1..2:0"
        ])
        .prop_map(str::to_string),
    ];
    prop_oneof![
        prop::collection::vec(item, 1..5).prop_map(|v| v.join(",")),
        "[0-9.,:a-z ]{0,30}",
        any::<String>(),
    ]
}

fn duration_text() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec![
        "", "s", "ms", "m", "min", "h", "d", "w", "y", "us", "ns", "sec", " s", "months",
    ]);
    prop_oneof![
        (number_text(), unit).prop_map(|(n, u)| format!("{n}{u}")),
        (number_text(), number_text()).prop_map(|(a, b)| format!("{a}h {b}m")),
        "[0-9a-z ]{0,20}",
        any::<String>(),
    ]
}

/// One of gpuvet's argument sets parsed on its own, as its subcommand parses it: far cheaper
/// than building the whole command line for every case, with the same value parsers.
#[derive(clap::Parser, Debug)]
struct Flags<A: clap::Args> {
    #[command(flatten)]
    args: A,
}

/// A parse of `args` by argument set `A`; `Err` is a usage error (exit 2), never a panic.
fn parse<A: clap::Args>(args: &[&str]) -> Result<A, clap::Error> {
    let mut argv = vec!["gpuvet"];
    argv.extend_from_slice(args);
    Flags::<A>::try_parse_from(argv).map(|f| f.args)
}

/// `parse`, then the error (if any) is checked to be clear.
fn flag<A: clap::Args>(what: &str, args: &[&str]) -> Option<A> {
    match parse::<A>(args) {
        Ok(a) => Some(a),
        Err(e) => {
            assert_clear(what, &args.join(" "), &e.to_string());
            None
        }
    }
}

/// The workloads a sweep makes (or the error that refuses them).
fn expand(kind: gpuvet::sweep::SweepKind, input: &str) {
    if let Err(e) = gpuvet::sweep::sweep_workloads(&kind) {
        assert_clear("sweep", input, &e.to_string());
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn shape_strings_parse_or_are_refused(
        parts in prop::collection::vec(number_text(), 0..5),
        sep in prop::sample::select(vec!["x", "X", "×", "*", ",", " x "]),
        junk in any::<String>(),
    ) {
        use gpuvet::cli::MatmulArgs;
        for s in [parts.join(sep), junk] {
            timed("--shape", &s, || flag::<MatmulArgs>("--shape", &["--shape", &s]));
        }
        // Whatever three numbers make, the workloads made from them are checked.
        if let [m, n, k] = &parts[..] {
            timed("matmul workload", m, || {
                if let Some(a) = flag::<gpuvet::workload::MatmulAxes>(
                    "--m", &["--m", m, "--n", n, "--k", k],
                ) {
                    expand(gpuvet::sweep::SweepKind::new(a), m);
                }
            });
        }
    }

    #[test]
    fn count_axes_parse_or_are_refused(s in axis_text(number_text().boxed())) {
        timed("axis", &s, || match gpuvet::workload::Axis::parse_count(&s) {
            Ok(a) => {
                assert!(!a.0.is_empty() && a.0.len() <= gpuvet::workload::axis::MAX_AXIS_VALUES);
                assert!(a.0.iter().all(|&v| v >= 1));
            }
            Err(e) => assert_clear("axis", &s, &e),
        });
    }

    #[test]
    fn byte_axes_and_sizes_parse_or_are_refused(
        s in axis_text(size_text().boxed()),
        size in size_text(),
    ) {
        timed("size axis", &s, || match gpuvet::workload::Axis::parse_bytes(&s) {
            Ok(a) => assert!(a.0.iter().all(|&v| v >= 1)),
            Err(e) => assert_clear("size axis", &s, &e),
        });
        timed("size", &size, || match size.parse::<gpuvet::units::Bytes>() {
            Ok(b) => assert!(b.0 >= 1 && b.0 <= 1_000_000_000_000_000_000),
            Err(e) => assert_clear("size", &size, &e),
        });
        timed("bench memory --size", &size, || {
            flag::<gpuvet::cli::MemoryArgs>("--size", &["--size", &size])
        });
    }

    #[test]
    fn durations_parse_or_are_refused(s in duration_text()) {
        timed("duration", &s, || match gpuvet::units::parse_duration(&s) {
            Ok(d) => assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(7 * 86_400)),
            Err(e) => assert_clear("duration", &s, &e),
        });
        timed("--duration", &s, || {
            flag::<gpuvet::cli::StressArgs>("stress --duration", &["--duration", &s]);
            flag::<gpuvet::cli::ValidateArgs>("validate --duration", &["--duration", &s]);
        });
    }

    #[test]
    fn flag_values_parse_or_are_refused(
        pct in prop_oneof![number_text(), number_text().prop_map(|n| format!("{n}%")), any::<String>()],
        fault in prop_oneof![
            (number_text(), number_text()).prop_map(|(a, b)| format!("{a}:{b}")),
            any::<String>(),
        ],
        word in prop_oneof!["[a-z0-9_.:-]{0,20}", any::<String>()],
    ) {
        use gpuvet::cli::{CompareArgs, MatmulArgs, MemoryArgs, StressArgs, SuiteFlags, ValidateArgs};
        let input = format!("{pct} | {fault} | {word}");
        timed("flags", &input, || {
            flag::<ValidateArgs>("--tolerance", &["--tolerance", &pct]);
            flag::<ValidateArgs>("--straggler-pct", &["--straggler-pct", &pct]);
            flag::<ValidateArgs>("--expect", &["--expect", &word]);
            flag::<CompareArgs>("--threshold", &["a", "b", "--threshold", &pct]);
            flag::<StressArgs>("--plant-fault", &["--plant-fault", &fault]);
            flag::<StressArgs>("--check-interval", &["--size", &pct, "--check-interval", &pct]);
            flag::<MatmulArgs>("--dtype", &["--shape", "1x1x1", "--dtype", &word, "--layout", &word]);
            flag::<MemoryArgs>("--op", &["--op", &word]);
            flag::<SuiteFlags>("--model", &["--model", &word, "--batch", &pct, "--tp", &pct]);
            for r in [
                word.parse::<gpuvet::dtype::DType>().err(),
                word.parse::<gpuvet::workload::BLayout>().err(),
                word.parse::<gpuvet::workload::MemOp>().err(),
                word.parse::<gpuvet::workload::Param>().err(),
            ].into_iter().flatten() {
                assert_clear("FromStr", &word, &r);
            }
        });
    }

    #[test]
    fn export_specs_and_baseline_names_parse_or_are_refused(
        fmt in prop_oneof![
            prop::sample::select(vec!["github", "GitHub", "github-latency", "bencher", "bmf", "csv", ""])
                .prop_map(str::to_string),
            any::<String>(),
        ],
        path in any::<String>(),
        name in prop_oneof!["[A-Za-z0-9._/-]{0,110}", any::<String>()],
    ) {
        let spec = format!("{fmt}:{path}");
        for s in [spec.as_str(), fmt.as_str()] {
            timed("--export", s, || {
                if let Err(e) = compare::export::parse_spec(s) {
                    assert_clear("--export", s, &e.to_string());
                }
            });
        }
        timed("baseline name", &name, || match compare::baseline::validate_name(&name) {
            Ok(()) => {
                assert!(!name.contains('/') && !name.starts_with('.') && !name.is_empty());
                let p = compare::baseline::baseline_path(&name, std::path::Path::new("b")).unwrap();
                assert_eq!(p.parent(), Some(std::path::Path::new("b")));
            }
            Err(e) => assert_clear("baseline", &name, &e.to_string()),
        });
    }
}

proptest! {
    #![proptest_config(config(800))]

    #[test]
    fn sweeps_over_any_axes_make_workloads_or_are_refused(
        m in axis_text(number_text().boxed()),
        seq in axis_text(number_text().boxed()),
        heads in axis_text(number_text().boxed()),
        size in axis_text(size_text().boxed()),
    ) {
        use gpuvet::sweep::SweepKind;
        use gpuvet::workload::{AttentionAxes, MatmulAxes, MemoryAxes};
        let input = format!("{m} | {seq} | {heads} | {size}");
        timed("sweeps", &input, || {
            if let Some(a) = flag::<MatmulAxes>("sweep matmul", &["--m", &m, "--n", &seq, "--k", &heads]) {
                expand(SweepKind::new(a), &input);
            }
            for args in [
                vec!["--seq", &seq, "--heads", &heads, "--kv-seq", &m],
                vec!["--seq", "1", "--heads", &heads, "--kv-heads", &m, "--head-dim", &seq,
                     "--batch", &m],
            ] {
                if let Some(a) = flag::<AttentionAxes>("sweep attention", &args) {
                    expand(SweepKind::new(a), &input);
                }
            }
            if let Some(a) = flag::<MemoryAxes>("sweep memory", &["--size", &size, "--op", "copy,triad"]) {
                expand(SweepKind::new(a), &input);
            }
        });
    }

    /// The whole command line, for the flags of every subcommand together (global flags,
    /// subcommand names, a report's `--axis`).
    #[test]
    fn whole_command_lines_parse_or_are_refused(
        words in prop::collection::vec(prop_oneof![
            prop::sample::select(vec![
                "run", "bench", "matmul", "memory", "attention", "sweep", "suite", "llm", "report",
                "stress", "validate", "aggregate", "compare", "list", "info", "completions", "bash",
                "--json", "--csv", "--markdown", "--export", "--seed", "--max-time", "--min-samples",
                "--backend", "--axis", "--shape", "--size", "--m", "-", "--", "-q", "--help",
                "--version", "github:-", "x.json",
            ]).prop_map(str::to_string),
            number_text(),
            any::<String>(),
        ], 0..8),
    ) {
        let mut argv = vec!["gpuvet".to_string()];
        argv.extend(words.iter().cloned());
        timed("command line", &words.join(" "), || {
            if let Err(e) = Cli::try_parse_from(&argv) {
                assert_clear("command line", &words.join(" "), &e.to_string());
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Structured files: reports, verdicts, models, the GPU database
// ---------------------------------------------------------------------------------------------

/// Values a mutation puts where another value was: huge, tiny, negative, wrong type.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            Value::Null,
            Value::Bool(true),
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(u64::MAX),
            serde_json::json!(i64::MIN),
            serde_json::json!(1e308),
            serde_json::json!(-1e308),
            serde_json::json!(5e-324),
            serde_json::json!(0.5),
            serde_json::json!(""),
            serde_json::json!("x"),
            serde_json::json!([]),
            serde_json::json!([0, 1]),
            serde_json::json!({}),
            serde_json::json!(["bf16"]),
        ]),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        any::<String>().prop_map(Value::String),
    ]
}

/// Numbers of the same JSON type as the one they replace, so the document still parses
/// and the odd value reaches what reads it: zero, huge, tiny, negative where allowed.
fn same_kind_number() -> impl Strategy<Value = (u64, f64)> {
    (
        prop_oneof![
            Just(0u64),
            Just(1u64),
            Just(u64::MAX),
            Just(u32::MAX as u64 + 1),
            any::<u64>()
        ],
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(-1.0),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
            Just(5e-324),
            Just(1e-300),
            Just(-1e308),
            any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()),
        ],
    )
}

/// One change to a JSON document, steered by `path` (child picks, one per level).
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Vec<usize>, Value),
    /// A leaf changed within its type: a number to another, a string to another, a bool
    /// flipped, an array emptied.
    Tweak(Vec<usize>, (u64, f64), String),
    Remove(Vec<usize>),
    /// Repeats an array element (two results with one id, two devices with one index).
    Duplicate(Vec<usize>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let path = prop::collection::vec(any::<usize>(), 1..7);
    prop_oneof![
        3 => (path.clone(), replacement()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        6 => (path.clone(), same_kind_number(), prop_oneof![
            Just(String::new()),
            "[a-z0-9_./()-]{0,12}",
            any::<String>(),
        ]).prop_map(|(p, n, s)| Mutation::Tweak(p, n, s)),
        1 => path.clone().prop_map(Mutation::Remove),
        1 => path.prop_map(Mutation::Duplicate),
    ]
}

/// `v` changed within its type (see [`Mutation::Tweak`]).
fn tweak(v: &Value, (u, f): (u64, f64), s: &str) -> Value {
    match v {
        Value::Number(n) if n.is_u64() => serde_json::json!(u),
        Value::Number(_) => serde_json::json!(f),
        Value::String(_) => Value::String(s.to_string()),
        Value::Bool(b) => Value::Bool(!b),
        Value::Array(_) => Value::Array(Vec::new()),
        other => other.clone(),
    }
}

/// The container `path` leads to (stopping early at a leaf) and the chosen child's key.
fn apply(doc: &mut Value, m: &Mutation) {
    let (path, op) = match m {
        Mutation::Replace(p, _)
        | Mutation::Tweak(p, _, _)
        | Mutation::Remove(p)
        | Mutation::Duplicate(p) => (p, m),
    };
    let mut cur = doc;
    for (depth, &pick) in path.iter().enumerate() {
        let last = depth + 1 == path.len();
        let next_is_leaf = |v: &Value| !(v.is_object() || v.is_array());
        match cur {
            Value::Object(o) if !o.is_empty() => {
                let key = o.keys().nth(pick % o.len()).unwrap().clone();
                if last || next_is_leaf(&o[&key]) {
                    match op {
                        Mutation::Replace(_, v) => {
                            o.insert(key, v.clone());
                        }
                        Mutation::Tweak(_, n, t) => {
                            let v = tweak(&o[&key], *n, t);
                            o.insert(key, v);
                        }
                        Mutation::Remove(_) => {
                            o.remove(&key);
                        }
                        Mutation::Duplicate(_) => {}
                    }
                    return;
                }
                cur = o.get_mut(&key).unwrap();
            }
            Value::Array(a) if !a.is_empty() => {
                let i = pick % a.len();
                if last || next_is_leaf(&a[i]) {
                    match op {
                        Mutation::Replace(_, v) => a[i] = v.clone(),
                        Mutation::Tweak(_, n, t) => a[i] = tweak(&a[i], *n, t),
                        Mutation::Remove(_) => {
                            a.remove(i);
                        }
                        Mutation::Duplicate(_) => {
                            let x = a[i].clone();
                            a.insert(i, x);
                        }
                    }
                    return;
                }
                cur = &mut a[i];
            }
            _ => return,
        }
    }
}

/// How the text of a mutated document is damaged further: not at all, cut short, bytes
/// overwritten, or a number token made unrepresentable.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Bytes(usize, Vec<u8>),
    Number(usize, &'static str),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Damage::Bytes(i, b)),
        1 => (any::<usize>(), prop::sample::select(vec!["1e400", "-1e400", "NaN", "Infinity", "18446744073709551616", "-0", "1e-400"]))
            .prop_map(|(i, n)| Damage::Number(i, n)),
    ]
}

/// The text of `doc` after `damage`; may not be UTF-8.
fn damaged(doc: &Value, d: &Damage) -> Vec<u8> {
    let mut text = serde_json::to_vec(doc).unwrap();
    match d {
        Damage::None => {}
        Damage::Truncate(i) => text.truncate(i % (text.len() + 1)),
        Damage::Bytes(i, b) => {
            let at = i % text.len();
            for (k, byte) in b.iter().enumerate() {
                if at + k < text.len() {
                    text[at + k] = *byte;
                }
            }
        }
        Damage::Number(i, n) => {
            // The i-th digit run (mod how many there are) becomes `n`.
            let s = String::from_utf8(text.clone()).unwrap();
            let runs: Vec<(usize, usize)> = s
                .char_indices()
                .filter(|(_, c)| c.is_ascii_digit())
                .fold(Vec::new(), |mut v: Vec<(usize, usize)>, (at, _)| {
                    match v.last_mut() {
                        Some(last) if last.1 == at => last.1 = at + 1,
                        _ => v.push((at, at + 1)),
                    }
                    v
                });
            if !runs.is_empty() {
                let (a, b) = runs[i % runs.len()];
                text = format!("{}{n}{}", &s[..a], &s[b..]).into_bytes();
            }
        }
    }
    text
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The reports mutations start from: the comparison fixtures and the mock snapshot.
fn base_reports() -> &'static [Value] {
    static BASES: OnceLock<Vec<Value>> = OnceLock::new();
    BASES.get_or_init(|| {
        let snap =
            std::fs::read_to_string(root().join("tests/snapshots/cli__mock_quick_suite.snap"))
                .unwrap();
        let mock: Value = serde_json::from_str(snap.splitn(3, "---").nth(2).unwrap()).unwrap();
        vec![
            fixture("compare_old.json"),
            fixture("compare_new.json"),
            mock,
        ]
    })
}

/// Everything that reads a loaded report, on `r` (and against `good`): none may panic.
fn consume_report(r: &Report, good: &Report, html: bool) {
    let opts = CompareOptions {
        resamples: 40,
        ..CompareOptions::default()
    };
    // One run a side, then several (a damaged run among good ones, on either side).
    let sides: [(&[&Report], &[&Report]); 5] = [
        (&[good], &[r]),
        (&[r], &[good]),
        (&[r], &[r]),
        (&[good, r], &[r, good, r]),
        (&[r], &[good, good]),
    ];
    for (a, b) in sides {
        let cmp = compare::compare_runs(a, b, &opts);
        let _ = cmp.exit_code(compare::FailOn::Ambiguous);
        let _ = compare::render_table(&cmp, compare::FailOn::Regression, false);
        let _ = compare::render_markdown(&cmp, compare::FailOn::Regression);
        let _ = compare::render_json(&cmp);
        let _ = compare::render_csv(&cmp);
    }
    for f in [
        gpuvet::export::Format::Json,
        gpuvet::export::Format::Csv,
        gpuvet::export::Format::Markdown,
    ] {
        let _ = f.render(r);
    }
    for f in [
        compare::export::ExportFormat::Github,
        compare::export::ExportFormat::GithubLatency,
        compare::export::ExportFormat::Bencher,
    ] {
        let _ = f.render(r);
        let _ = f.empty_reason(r);
        let _ = f.remarks(r);
    }
    let _ = gpuvet::term::results_table(r, false);
    let _ = gpuvet::suite::estimate(&gpuvet::suite::SuiteArgs::default(), r);
    if html {
        let _ = gpuvet::html::render_html(r);
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn reports_parse_or_are_refused_and_what_parses_is_safe_to_read(
        base in 0usize..3,
        mutations in prop::collection::vec(mutation(), 0..4),
        damage in damage(),
        page in 0u8..8,
    ) {
        let good_doc = &base_reports()[base];
        let mut doc = good_doc.clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        let bytes = damaged(&doc, &damage);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let input = format!("{mutations:?} {damage:?}");
        timed("report", &input, || match Report::from_json(&text, "fuzz.json") {
            Ok(r) => {
                let good = Report::from_json(&good_doc.to_string(), "good.json").unwrap();
                // The HTML page (charts included) on one case in eight: it is the slowest reader.
                consume_report(&r, &good, page == 0);
            }
            Err(e) => {
                let msg = e.to_string();
                assert_clear("report", &input, &msg);
                assert!(msg.contains("fuzz.json"), "the error names the file: {msg}");
            }
        });
    }
}

/// A node verdict from the mock's validate, made once.
fn base_verdict() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| {
        let out = assert_cmd::Command::cargo_bin("gpuvet")
            .unwrap()
            .env_remove("GPUVET_MOCK_FAULT")
            .env_remove("GPUVET_MOCK_DEVICES")
            .args([
                "--backend",
                "mock",
                "-q",
                "validate",
                "--allow-cpu",
                "--verdict",
                "-",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn verdicts_parse_or_are_refused_and_what_parses_aggregates(
        mutations in prop::collection::vec(mutation(), 0..4),
        damage in damage(),
        page in 0u8..8,
    ) {
        use gpuvet::validate::{aggregate, NodeVerdict};
        let good_doc = base_verdict();
        let mut doc = good_doc.clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        let text = String::from_utf8_lossy(&damaged(&doc, &damage)).into_owned();
        let input = format!("{mutations:?} {damage:?}");
        timed("verdict", &input, || match NodeVerdict::from_json(&text, "node.json") {
            Ok(v) => {
                let good = NodeVerdict::from_json(&good_doc.to_string(), "good.json").unwrap();
                let nodes = [good, v.clone()];
                let s = aggregate::summarize(&nodes, 10.0);
                for f in [
                    aggregate::FleetFormat::Table,
                    aggregate::FleetFormat::Markdown,
                    aggregate::FleetFormat::Json,
                    aggregate::FleetFormat::Csv,
                ] {
                    let _ = aggregate::render(&nodes, &s, f, false);
                }
                let _ = v.render(false);
                if page == 0 {
                    let report = Report::from_json(&base_reports()[2].to_string(), "r").unwrap();
                    let x = gpuvet::html::HtmlExtras { verdict: Some(&v), ..Default::default() };
                    let _ = gpuvet::html::render_html_with(&report, &x);
                }
            }
            Err(e) => assert_clear("verdict", &input, &e.to_string()),
        });
    }
}

/// TOML edits: a number replaced, a line dropped or repeated, a value made a string.
#[derive(Debug, Clone)]
enum TomlEdit {
    Number(usize, String),
    DropLine(usize),
    RepeatLine(usize),
    Quote(usize),
}

fn toml_edit() -> impl Strategy<Value = TomlEdit> {
    prop_oneof![
        4 => (any::<usize>(), prop_oneof![
            number_text(),
            Just("-5".to_string()),
            Just("1e400".to_string()),
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("9223372036854775807".to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
        ]).prop_map(|(i, n)| TomlEdit::Number(i, n)),
        1 => any::<usize>().prop_map(TomlEdit::DropLine),
        1 => any::<usize>().prop_map(TomlEdit::RepeatLine),
        1 => any::<usize>().prop_map(TomlEdit::Quote),
    ]
}

/// Applies `edits` to TOML text line by line (comments kept as they are).
fn edited_toml(text: &str, edits: &[TomlEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let value_lines = |lines: &[String]| -> Vec<usize> {
        (0..lines.len())
            .filter(|&i| lines[i].contains(" = ") && !lines[i].trim_start().starts_with('#'))
            .collect()
    };
    for e in edits {
        let vl = value_lines(&lines);
        if vl.is_empty() {
            break;
        }
        match e {
            TomlEdit::Number(i, n) => {
                // The first number on a value line becomes `n`.
                let l = &mut lines[vl[i % vl.len()]];
                if let Some(a) = l.find(|c: char| c.is_ascii_digit()) {
                    let b = l[a..]
                        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
                        .map_or(l.len(), |k| a + k);
                    l.replace_range(a..b, n);
                }
            }
            TomlEdit::DropLine(i) => {
                lines.remove(vl[i % vl.len()]);
            }
            TomlEdit::RepeatLine(i) => {
                let l = lines[vl[i % vl.len()]].clone();
                lines.insert(vl[i % vl.len()], l);
            }
            TomlEdit::Quote(i) => {
                let l = &mut lines[vl[i % vl.len()]];
                if let Some((k, v)) = l.split_once(" = ") {
                    *l = format!("{k} = \"{}\"", v.replace('"', ""));
                }
            }
        }
    }
    lines.join("\n")
}

/// The mock snapshot's report without its results.
fn empty_report() -> Report {
    let mut r = Report::from_json(&base_reports()[2].to_string(), "r").unwrap();
    r.results.clear();
    r
}

fn model_presets() -> &'static [String] {
    static M: OnceLock<Vec<String>> = OnceLock::new();
    M.get_or_init(|| {
        let mut v: Vec<String> = std::fs::read_dir(root().join("data/models"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        v.sort();
        v
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn models_parse_or_are_refused_and_what_parses_plans_or_is_refused(
        base in 0usize..5,
        edits in prop::collection::vec(toml_edit(), 0..4),
        damage in damage(),
        tp in prop::sample::select(vec![1u64, 2, 3, 8, 1024]),
        batch in prop::sample::select(vec![1u64, 64, 1_000_000]),
        tokens in prop::sample::select(vec![(1u64, 1u64), (2048, 256), (10_000_000, 10_000_000)]),
        junk in prop::option::weighted(0.05, any::<String>()),
    ) {
        let presets = model_presets();
        let mut text = edited_toml(&presets[base % presets.len()], &edits);
        if let Damage::Truncate(i) = damage {
            let mut cut = i % (text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        if let Some(j) = junk {
            text = j;
        }
        let input = format!("{edits:?} {damage:?}");
        timed("model", &input, || match gpuvet::suite::models::ModelConfig::parse(&text, "m.toml") {
            Ok(m) => {
                let args = gpuvet::suite::SuiteArgs {
                    tp,
                    batch: vec![batch],
                    prompt: tokens.0,
                    gen: tokens.1,
                    ..Default::default()
                };
                match gpuvet::suite::kernels_for(&m, &args) {
                    Ok(k) => {
                        assert!(!k.is_empty());
                        // The estimate (from `--model-file`) of a run that measured none
                        // of the kernels says what is missing.
                        let (_dir, [path]) = temp_files(["m.toml"]);
                        std::fs::write(&path, &text).unwrap();
                        let file_args = gpuvet::suite::SuiteArgs {
                            model: None,
                            model_file: Some(path),
                            ..args.clone()
                        };
                        let est = gpuvet::suite::estimate(&file_args, &empty_report());
                        let _ = est.render();
                    }
                    Err(e) => assert_clear("suite", &input, &e.to_string()),
                }
            }
            Err(e) => {
                let msg = e.to_string();
                assert_clear("model", &input, &msg);
                assert!(msg.contains("m.toml"), "the error names the file: {msg}");
            }
        });
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn gpu_databases_parse_or_are_refused_and_what_parses_answers_lookups(
        edits in prop::collection::vec(toml_edit(), 0..5),
        truncate in prop::option::weighted(0.1, any::<usize>()),
    ) {
        let mut text = edited_toml(gpuvet::gpudb::DATA, &edits);
        if let Some(i) = truncate {
            let mut cut = i % (text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let input = format!("{edits:?} {truncate:?}");
        timed("gpu database", &input, || match gpuvet::gpudb::Database::parse(&text) {
            Ok(db) => {
                for s in &db.skus {
                    let _ = s.peaks();
                    let _ = s.memory_bandwidth();
                    let _ = db.by_id(&s.id);
                    let info = gpuvet::backend::DeviceInfo {
                        index: 0,
                        backend: Some(gpuvet::backend::BackendKind::Cuda),
                        name: s.name.clone(),
                        uuid: None,
                        pci_bus_id: None,
                        compute_capability: Some(s.compute_capability.clone()),
                        multiprocessors: Some(s.sms),
                        memory_bytes: Some((s.memory_gib.clamp(0.0, 1e6) * (1u64 << 30) as f64) as u64),
                        last_level_cache_bytes: None,
                        driver_version: None,
                        details: Default::default(),
                        peaks: None,
                    };
                    let _ = db.lookup(&info);
                }
            }
            Err(e) => assert_clear("gpu database", &input, &e.to_string()),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Regression tests: one per panic the properties above found, named after it.
// ---------------------------------------------------------------------------------------------

/// `pow2:LO..HI` with LO above 2^63: `next_power_of_two` overflowed (a panic in debug builds,
/// an endless loop pushing zeros in release builds).
#[test]
fn regression_pow2_axis_above_2_pow_63_overflowed() {
    for s in [
        "pow2:9223372036854775809..18446744073709551615",
        "pow2:18446744073709551615..18446744073709551615",
    ] {
        let e = gpuvet::workload::Axis::parse_count(s).unwrap_err();
        assert!(e.contains("no power of two"), "{e}");
    }
    let a = gpuvet::workload::Axis::parse_count("pow2:9223372036854775808..18446744073709551615")
        .unwrap();
    assert_eq!(a.0, vec![1 << 63]);
}

/// `0..18446744073709551615`: counting the values as (hi - lo) / step + 1 overflowed.
#[test]
fn regression_range_axis_spanning_all_of_u64_overflowed() {
    let e = gpuvet::workload::Axis::parse_count("0..18446744073709551615").unwrap_err();
    assert!(e.contains("at most"), "{e}");
    let e = gpuvet::workload::Axis::parse_bytes("0..18446744073709551615:1").unwrap_err();
    assert!(!e.is_empty());
}
