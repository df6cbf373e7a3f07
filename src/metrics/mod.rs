//! Prometheus metrics (operations.md §5): owns the registry, the atomics and
//! sharded histograms the rest of the gateway bumps, and the OpenMetrics
//! text rendering. It must not take a lock on the event path nor block a
//! reactor; gauges that mirror state are computed at scrape time.
//!
//! Interface used by the admin listener: [`render`].

/// The full exposition in OpenMetrics text format, ending with `# EOF`.
pub fn render() -> String {
    "# EOF\n".to_string()
}
