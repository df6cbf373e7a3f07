//! Locating the external tools deployment tests drive (Debian packages such
//! as nginx and prometheus, the project's Python venv) and picking free ports
//! for them.

use std::net::TcpListener;
use std::path::PathBuf;

/// `$env` if it names an existing file, else the first of `names` found on
/// PATH, in the sbin directories Debian packages use, or in `.tools/py/bin`.
pub fn find_tool(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from).filter(|p| p.exists()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/py/bin"));
    names.iter().flat_map(|n| dirs.iter().map(move |d| d.join(n))).find(|p| p.is_file())
}

/// A loopback port that was free just now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
