//! hotplex: a gateway that gives WebSocket clients one protocol (AEP v1) to
//! drive AI coding agents running as sandboxed worker processes.
//! See docs/architecture.md for the threads and who owns what.

pub mod adapters;
pub mod admin;
pub mod child;
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod otel;
pub mod policy;
pub mod protocol;
pub mod rate;
pub mod reactor;
pub mod reload;
pub mod sd_notify;
pub mod security;
pub mod session;
pub mod settings;
pub mod store;
pub mod sys;
pub mod ws;
