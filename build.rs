//! Build metadata for `hotplex --version` (operations.md §8) and the
//! `hotplex_build_info` metric (§5.2): git sha, rustc version, target,
//! profile, PGO. No crates; every value falls back to "unknown".
//!
//! Overrides: `HOTPLEX_GIT_SHA` (builds without a `.git`, e.g. the Docker
//! build arg); `HOTPLEX_PGO=true` marks a PGO build (also detected from
//! `-Cprofile-use` in the rustflags, as `scripts/pgo-build.sh` passes it).
use std::path::Path;
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok().filter(|o| o.status.success())?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Re-run when HEAD moves: its file and the ref it names (loose or packed),
/// wherever they live (a worktree's `.git` is a file).
fn watch_git() {
    let mut paths: Vec<String> = run("git", &["rev-parse", "--git-path", "HEAD"]).into_iter().collect();
    if let Some(r) = run("git", &["symbolic-ref", "-q", "HEAD"]) {
        paths.extend(run("git", &["rev-parse", "--git-path", &r]));
    }
    paths.extend(run("git", &["rev-parse", "--git-path", "packed-refs"]));
    for p in paths {
        // a path that does not exist would re-run this script on every build
        if Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}

fn main() {
    let sha = std::env::var("HOTPLEX_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| run("git", &["rev-parse", "--short=12", "HEAD"]));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_v = run(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    let pgo_env = std::env::var("HOTPLEX_PGO").is_ok_and(|v| matches!(v.trim(), "1" | "true"));
    let pgo = pgo_env || std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default().contains("-Cprofile-use");
    println!("cargo:rustc-env=HOTPLEX_GIT_SHA={}", sha.unwrap_or_else(|| "unknown".into()));
    println!("cargo:rustc-env=HOTPLEX_RUSTC={rustc_v}");
    println!("cargo:rustc-env=HOTPLEX_TARGET={}", std::env::var("TARGET").unwrap_or_else(|_| "unknown".into()));
    println!("cargo:rustc-env=HOTPLEX_BUILD_PROFILE={profile}");
    let profile = if pgo { format!("{profile}+pgo") } else { profile };
    println!("cargo:rustc-env=HOTPLEX_PROFILE={profile}");
    println!("cargo:rustc-env=HOTPLEX_PGO={pgo}");
    println!("cargo:rerun-if-env-changed=HOTPLEX_GIT_SHA");
    println!("cargo:rerun-if-env-changed=HOTPLEX_PGO");
    println!("cargo:rerun-if-changed=build.rs");
    watch_git();
}
