//! Network plumbing shared by the listeners: the acceptor thread and HTTP
//! request-head parsing. No protocol decisions beyond HTTP itself.

pub mod acceptor;
pub mod client_ip;
pub mod http;
