//! Records the git commit gpuvet was built from, for the `tool` block of every report, with
//! `-dirty` when tracked files differ from that commit: two builds of one commit with different
//! code must not look the same in a comparison.
fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            // `git status` would otherwise refresh .git/index, which this script watches: one
            // spurious rerun (and rebuild) after every status.
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let sha = git(&["rev-parse", "--short=12", "HEAD"])
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|o| !o.stdout.is_empty());
    let sha = match (sha, dirty) {
        (Some(s), true) => format!("{s}-dirty"),
        (Some(s), false) => s,
        (None, _) => "unknown".into(),
    };
    println!("cargo:rustc-env=GPUVET_GIT_SHA={sha}");
    // A commit moves HEAD or a branch; an edit or `git add` changes the sources or the index.
    for path in [
        ".git/HEAD",
        ".git/refs/heads",
        ".git/index",
        "src",
        "kernels",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
