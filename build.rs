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
    println!("cargo:rerun-if-changed=.git/HEAD");
}
