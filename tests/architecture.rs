//! The layering docs/architecture.md describes, checked from the source: the top-level modules
//! of `src/` (a file `src/x.rs` or a folder `src/x/`) import one another without a circle, and
//! the modules the old tree tangled stay apart (`backend` reads neither `validate`, `gpudb` nor
//! `report`). Read as text: every `crate::NAME` path and every `use crate::{NAME, …}` group
//! outside comments counts, tests inside the files included. And no function of `src/`,
//! `tests/` or `benches/` runs past [`LONGEST_FN`] lines, the length the redesign set (read from
//! rustfmt's layout: a body ends at the first `}` back at its `fn`'s indentation).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the other top-level modules it names, with one file that names each.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifier at the start of `s` (letters, digits, `_`).
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules one file's text names through `crate::`.
fn named_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before_ok = rest[..at]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        rest = &rest[at + "crate::".len()..];
        if !before_ok {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            out.insert(name.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graph::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let entry = g.entry(module.clone()).or_default();
        for name in named_modules(&text) {
            if name != module {
                entry
                    .entry(name)
                    .or_insert_with(|| rel.display().to_string());
            }
        }
    }
    // Only edges between modules of this crate (not `crate::Result` re-exports and the like).
    let modules: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|name, _| modules.contains(name));
    }
    g
}

/// The first circle a depth-first walk meets, if the graph has one, as the modules along it
/// (the first repeated at the end).
fn circle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        g: &Graph,
        m: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(m.to_string(), Mark::Open);
        path.push(m.to_string());
        for next in g[m].keys() {
            match marks[next] {
                Mark::Open => {
                    let from = path.iter().position(|p| p == next).unwrap();
                    let mut c = path[from..].to_vec();
                    c.push(next.clone());
                    return Some(c);
                }
                Mark::New => {
                    if let Some(c) = visit(g, next, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(m.to_string(), Mark::Done);
        None
    }
    let mut marks: BTreeMap<String, Mark> = g.keys().map(|k| (k.clone(), Mark::New)).collect();
    for m in g.keys() {
        if marks[m] == Mark::New {
            if let Some(c) = visit(g, m, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_without_a_circle() {
    let g = graph();
    assert!(
        g.len() >= 20,
        "read only {} modules: {:?}",
        g.len(),
        g.keys()
    );
    if let Some(c) = circle(&g) {
        let steps: Vec<String> = c
            .windows(2)
            .map(|w| format!("{} -> {} (in src/{})", w[0], w[1], g[&w[0]][&w[1]]))
            .collect();
        panic!("import circle between modules:\n  {}", steps.join("\n  "));
    }
}

#[test]
fn backend_reads_no_judging_or_reporting_module() {
    let g = graph();
    for above in ["validate", "gpudb", "report", "runner", "commands", "cli"] {
        assert!(
            !g["backend"].contains_key(above),
            "backend names {above} (in src/{})",
            g["backend"][above]
        );
    }
}

#[test]
fn the_reader_sees_use_groups_and_paths_but_not_comments() {
    let text =
        "use crate::{a::B, c, d::{e, f}};\nlet x = crate::g::h();\n// crate::zz\nnotcrate::y";
    let got: Vec<String> = named_modules(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g"]);
    let mut g = Graph::new();
    for (m, deps) in [("p", vec!["q"]), ("q", vec!["r"]), ("r", vec!["p"])] {
        g.insert(
            m.into(),
            deps.into_iter()
                .map(|d| (d.into(), String::new()))
                .collect(),
        );
    }
    assert_eq!(circle(&g).unwrap(), ["p", "q", "r", "p"]);
    g.get_mut("r").unwrap().clear();
    assert!(circle(&g).is_none());
}

/// The most lines a function may take, signature and closing brace included.
const LONGEST_FN: usize = 100;

/// Every function with a body in `text`: (name, first line (1-based), lines). rustfmt puts a
/// body's closing brace alone at the indentation of its `fn`, which is where it is taken to end.
fn function_lengths(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = line.len() - code.len();
        let mut words = code.split_whitespace().peekable();
        // Qualifiers before `fn`: visibility, const, async, unsafe, extern "C".
        while let Some(w) = words.peek() {
            if w.starts_with("pub") || ["const", "async", "unsafe", "extern", "\"C\""].contains(w) {
                words.next();
            } else {
                break;
            }
        }
        if words.next() != Some("fn") {
            continue;
        }
        let Some(name) = words.next().map(ident).filter(|n| !n.is_empty()) else {
            continue;
        };
        // A declaration without a body (a trait's) ends in `;` before any `{`.
        let opens = lines[i..]
            .iter()
            .position(|l| l.contains('{') || l.trim_end().ends_with(';'));
        if opens.is_none_or(|o| !lines[i + o].contains('{')) {
            continue;
        }
        let closing = " ".repeat(indent) + "}";
        // A one-line body (`fn f() -> u32 { 1 }`) closes on its own line.
        let end = if line.trim_end().ends_with('}') {
            Some(0)
        } else {
            lines[i + 1..]
                .iter()
                .position(|l| {
                    l.starts_with(&closing) && {
                        let rest = &l[closing.len()..];
                        rest.is_empty() || rest.starts_with([')', ',', ';'])
                    }
                })
                .map(|p| p + 1)
        };
        let end = end.unwrap_or_else(|| panic!("no end found for fn {name} at line {}", i + 1));
        found.push((name.to_string(), i + 1, end + 1));
    }
    found
}

#[test]
fn no_function_runs_past_the_limit() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut files);
    }
    let mut seen = 0;
    let mut long = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (name, line, n) in function_lengths(&text) {
            seen += 1;
            if n > LONGEST_FN {
                long.push(format!("{}:{line} {name}: {n} lines", f.display()));
            }
        }
    }
    // The reader found the crate's functions (well over a thousand), not a handful.
    assert!(seen > 1000, "read only {seen} functions");
    assert!(
        long.is_empty(),
        "functions over {LONGEST_FN} lines (split them):\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_length_reader_measures_bodies_and_skips_declarations() {
    let text = "\
pub fn a(x: u32) -> u32 {
    let y = x;
    y
}
    fn required(&self) -> u32;
    pub(crate) const fn b() -> u32 { 1 }
    fn c(
        x: u32,
    ) -> Result<()>
    where
        X: Y,
    {
        match x {
            _ => {}
        }
    }
";
    let got = function_lengths(text);
    assert_eq!(
        got,
        [
            ("a".to_string(), 1, 4),
            ("b".to_string(), 6, 1),
            ("c".to_string(), 7, 10),
        ]
    );
}
