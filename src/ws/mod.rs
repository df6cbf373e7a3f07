//! WebSocket connections: upgrade decision, frames (tungstenite codec), the
//! bounded outbound queue, and the per-connection socket state.

pub mod conn;
pub mod frame;
pub mod handshake;
pub mod outq;
