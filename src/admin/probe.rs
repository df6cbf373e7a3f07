//! Worker version probes (operations.md §4.3 `GET /admin/workers`):
//! `<path> <version_args>` with stdin closed and a minimal environment, the
//! first line of stdout trimmed to 200 characters, within 5 s. A failure
//! (cannot start, non-zero exit, no output, timeout) is reported, never
//! fatal. Probes run at startup on their own short-lived threads, before
//! the spawner (which reaps every child of the process) starts; a probe
//! whose exit status was taken by someone else is judged by its output.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::adapters::WorkerType;

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest version string kept.
const MAX_VERSION_CHARS: usize = 200;
/// Stdout read at most.
const MAX_OUTPUT: usize = 64 * 1024;

/// One worker type as configured.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    pub worker_type: WorkerType,
    /// Resolved and enabled (`enabled: true`, or `auto` and found).
    pub enabled: bool,
    /// `true`, `false` or `auto`.
    pub enabled_setting: String,
    pub command: String,
    /// The resolved program (`None` when not enabled).
    pub path: Option<PathBuf>,
    pub version_args: Vec<String>,
}

/// A probe's result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeResult {
    pub version: Option<String>,
    pub probed_at: Option<u64>,
    pub probe_error: Option<String>,
}

/// What `/admin/workers` knows about a worker type apart from live counts.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub spec: WorkerSpec,
    pub probe: ProbeResult,
}

/// Every worker type of the config, in `WorkerType::ALL` order.
pub fn specs(cfg: &crate::config::Config) -> Vec<WorkerSpec> {
    WorkerType::ALL
        .iter()
        .map(|&t| {
            let resolved = cfg.worker(t);
            let command = match t {
                WorkerType::Acpx => {
                    let a = &cfg.workers.acpx;
                    a.agents.get(&a.agent).map(|x| x.command.clone()).unwrap_or_default()
                }
                _ => cfg.workers.commands(t).into_iter().next().map(|(_, c)| c).unwrap_or_default(),
            };
            let setting = match cfg.workers.enabled(t) {
                crate::config::Enabled::True => "true",
                crate::config::Enabled::False => "false",
                crate::config::Enabled::Auto => "auto",
            };
            WorkerSpec {
                worker_type: t,
                enabled: resolved.is_some(),
                enabled_setting: setting.to_owned(),
                command,
                path: resolved.map(|r| r.program.clone()),
                version_args: cfg.workers.version_args(t).to_vec(),
            }
        })
        .collect()
}

/// Probe every enabled worker type in parallel (each bounded by
/// [`PROBE_TIMEOUT`]); `env` is the environment the probes get.
pub fn probe_all(specs: Vec<WorkerSpec>, env: &[(String, String)]) -> Vec<WorkerInfo> {
    let handles: Vec<_> = specs
        .into_iter()
        .map(|spec| {
            let env = env.to_vec();
            let h = spec.path.clone().map(|path| {
                let args = spec.version_args.clone();
                std::thread::Builder::new().name("probe".into()).spawn(move || probe(&path, &args, &env, PROBE_TIMEOUT))
            });
            (spec, h)
        })
        .collect();
    handles
        .into_iter()
        .map(|(spec, h)| {
            let probe = match h {
                None => ProbeResult::default(),
                Some(Ok(h)) => h.join().unwrap_or_else(|_| failed("the probe failed")),
                Some(Err(_)) => failed("the probe could not be started"),
            };
            WorkerInfo { spec, probe }
        })
        .collect()
}

fn failed(msg: &str) -> ProbeResult {
    ProbeResult { version: None, probed_at: Some(crate::protocol::now_ms()), probe_error: Some(msg.to_owned()) }
}

/// Run one probe.
pub fn probe(path: &std::path::Path, args: &[String], env: &[(String, String)], timeout: Duration) -> ProbeResult {
    let at = crate::protocol::now_ms();
    let done = |version: Option<String>, err: Option<&str>| ProbeResult {
        version,
        probed_at: Some(at),
        probe_error: err.map(str::to_owned),
    };
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(_) => return done(None, Some("the command could not be started")),
    };
    let Some(mut stdout) = child.stdout.take() else { return done(None, Some("no stdout")) };
    // Read on a helper thread so the deadline holds even if the probe never closes stdout.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::Builder::new().name("probe-read".into()).spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(MAX_OUTPUT as u64).read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let deadline = Instant::now() + timeout;
    let output = match reader {
        Ok(_) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok(),
        Err(_) => None,
    };
    // Exit status: waited for until the deadline (another thread may have reaped it).
    let mut status = None;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(s)) => {
                status = Some(Some(s));
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => {
                status = Some(None); // reaped elsewhere: judge by the output
                break;
            }
        }
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        return done(None, Some("timed out"));
    }
    let Some(output) = output else { return done(None, Some("timed out")) };
    if let Some(Some(s)) = status {
        if !s.success() {
            return done(None, Some(&format!("exited with {s}")));
        }
    }
    let text = String::from_utf8_lossy(&output);
    let line: String =
        text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").chars().take(MAX_VERSION_CHARS).collect();
    if line.is_empty() { done(None, Some("no output")) } else { done(Some(line), None) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> ProbeResult {
        let env = vec![("PATH".to_string(), "/usr/bin:/bin".to_string())];
        probe(std::path::Path::new("/bin/sh"), &["-c".into(), script.into()], &env, timeout)
    }

    #[test]
    fn first_line_trimmed() {
        let r = sh("printf '  2.0.31 (Claude Code)  \\nmore\\n'", PROBE_TIMEOUT);
        assert_eq!(r.version.as_deref(), Some("2.0.31 (Claude Code)"));
        assert!(r.probe_error.is_none() && r.probed_at.is_some());
        let long = sh("head -c 500 /dev/zero | tr '\\0' v", PROBE_TIMEOUT);
        assert_eq!(long.version.map(|v| v.len()), Some(200));
    }

    #[test]
    fn failures_are_reported() {
        assert_eq!(sh("exit 3", PROBE_TIMEOUT).probe_error.as_deref(), Some("exited with exit status: 3"));
        assert_eq!(sh("true", PROBE_TIMEOUT).probe_error.as_deref(), Some("no output"));
        let t0 = Instant::now();
        assert_eq!(sh("sleep 30", Duration::from_millis(300)).probe_error.as_deref(), Some("timed out"));
        assert!(t0.elapsed() < Duration::from_secs(5));
        let r = probe(std::path::Path::new("/nonexistent/x"), &[], &[], PROBE_TIMEOUT);
        assert!(r.version.is_none() && r.probe_error.is_some());
    }
}
