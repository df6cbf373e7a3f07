//! hotplex: a gateway that gives WebSocket clients one protocol (AEP v1) to
//! drive AI coding agents running as sandboxed worker processes.
//! See docs/architecture.md for the threads and who owns what.

pub mod adapters;
pub mod child;
pub mod protocol;
