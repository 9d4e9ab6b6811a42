//! What the command-line tests share: fast measurement settings, reading a JSON file back,
//! a command line written as one string.

use std::path::Path;

/// Fast measurement settings for the real CPU backend.
pub const QUICK: [&str; 6] = ["--warmup", "0", "--max-time", "0.05", "--min-samples", "2"];

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A command line written as one string, split at white space (no argument here has any).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}
