//! Build metadata for `hotplex --version` (operations.md §8).
use std::process::Command;

fn main() {
    let sha = std::env::var("HOTPLEX_GIT_SHA").ok().filter(|s| !s.is_empty()).or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_v = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).unwrap_or("unknown").to_string())
        .unwrap_or_else(|| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    let pgo = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default().contains("-Cprofile-use");
    let profile = if pgo { format!("{profile}+pgo") } else { profile };
    println!("cargo:rustc-env=HOTPLEX_GIT_SHA={}", sha.unwrap_or_else(|| "unknown".into()));
    println!("cargo:rustc-env=HOTPLEX_RUSTC={rustc_v}");
    println!("cargo:rustc-env=HOTPLEX_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rustc-env=HOTPLEX_PROFILE={profile}");
    println!("cargo:rerun-if-env-changed=HOTPLEX_GIT_SHA");
    // `.git` is a file in a worktree: ask git where HEAD (and the branch ref)
    // live; a path that does not exist would make every build dirty.
    let head = git(&["rev-parse", "--git-path", "HEAD"]);
    let branch =
        git(&["rev-parse", "--symbolic-full-name", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r]));
    let mut watched = false;
    for p in [head, branch].into_iter().flatten().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={p}");
        watched = true;
    }
    if !watched {
        println!("cargo:rerun-if-changed=build.rs");
    }
}

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}
