//! Every `$ gpuvet …` example in README.md and docs/*.md still parses with today's flags, so a
//! renamed or removed option cannot leave a documented command that fails.

use clap::Parser;
use gpuvet::cli::Cli;
use std::path::PathBuf;

fn documented_commands() -> Vec<(PathBuf, usize, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if let Some(cmd) = line.trim_start().strip_prefix("$ gpuvet") {
                out.push((f.clone(), i + 1, format!("gpuvet{cmd}")));
            }
        }
    }
    out
}

#[test]
fn every_documented_command_parses() {
    let cmds = documented_commands();
    assert!(cmds.len() >= 10, "only {} examples found", cmds.len());
    for (file, line, cmd) in cmds {
        // The examples use no quoting; a pipe or redirection ends the command.
        let words: Vec<&str> = cmd
            .split_whitespace()
            .take_while(|w| !["|", ">", "2>", "&&", "#"].contains(w))
            .collect();
        if let Err(e) = Cli::try_parse_from(&words) {
            panic!("{}:{line}: `{cmd}` no longer parses:\n{e}", file.display());
        }
    }
}
