//! Standard process metrics (operations.md §5.1), read from `/proc/self` at
//! scrape time and exposed without the `hotplex_` prefix, as dashboards
//! expect: `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_threads`, `process_start_time_seconds`. A file that cannot be
//! read leaves its metrics out of that scrape (never an error).

use std::fmt;
use std::sync::OnceLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The fields of `/proc/self/stat` we use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub threads: u64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    pub vsize: u64,
}

/// Parse a `/proc/<pid>/stat` line (the command name may hold spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    // fields after the command: state is field 3 of proc(5), so field n is f[n - 3]
    Some(Stat { cpu_ticks: num(11)? + num(12)?, threads: num(17)?, start_ticks: num(19)?, vsize: num(20)? })
}

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes.
pub fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The soft `Max open files` of a `/proc/<pid>/limits` text.
pub fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// `btime` (boot time, Unix seconds) of `/proc/stat`.
pub fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Process start, Unix seconds (from `/proc`, else the first time this is asked).
pub fn start_time() -> f64 {
    static START: OnceLock<f64> = OnceLock::new();
    *START.get_or_init(|| {
        let from_proc = (|| {
            let st = parse_stat(&read("/proc/self/stat")?)?;
            let btime = parse_btime(&read("/proc/stat")?)?;
            Some(btime as f64 + st.start_ticks as f64 / crate::sys::clock_ticks() as f64)
        })();
        from_proc.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
        })
    })
}

#[derive(Debug)]
pub struct ProcessCollector;

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: Option<f64>) -> fmt::Result {
    match v {
        Some(v) => ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?),
        None => Ok(()),
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let stat = read("/proc/self/stat").and_then(|s| parse_stat(&s));
        let tck = crate::sys::clock_ticks() as f64;
        if let Some(st) = stat {
            let m =
                e.encode_descriptor("process_cpu_seconds", "User and system CPU time.", None, MetricType::Counter)?;
            ConstCounter::new(st.cpu_ticks as f64 / tck).encode(m)?;
        }
        let rss = read("/proc/self/status").and_then(|s| parse_rss(&s));
        gauge(&mut e, "process_resident_memory_bytes", "Resident memory.", rss.map(|v| v as f64))?;
        gauge(&mut e, "process_virtual_memory_bytes", "Virtual memory.", stat.map(|s| s.vsize as f64))?;
        let fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
        gauge(&mut e, "process_open_fds", "Open file descriptors.", fds)?;
        let max = read("/proc/self/limits").and_then(|s| parse_max_fds(&s));
        gauge(&mut e, "process_max_fds", "Soft limit of open file descriptors.", max.map(|v| v as f64))?;
        gauge(&mut e, "process_threads", "OS threads.", stat.map(|s| s.threads as f64))?;
        gauge(&mut e, "process_start_time_seconds", "Process start (Unix seconds).", Some(start_time()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 123456 987654 300";
        let st = parse_stat(line).unwrap();
        assert_eq!(st, Stat { cpu_ticks: 300, threads: 7, start_ticks: 123456, vsize: 987654 });
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t   2048 kB\n"), Some(2048 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(parse_btime("cpu 1 2\nbtime 1700000000\n"), Some(1_700_000_000));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn reads_this_process() {
        let st = parse_stat(&read("/proc/self/stat").unwrap()).unwrap();
        assert!(st.threads >= 1);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let start = start_time();
        assert!(start > now - 86_400.0 * 365.0 && start <= now + 1.0, "{start} vs {now}");
    }
}
