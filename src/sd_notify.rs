//! systemd's readiness protocol (`sd_notify(3)`): one datagram per state
//! change to the unix socket named by `$NOTIFY_SOCKET` (a path, or an
//! abstract name written `@name`). Without the variable every call is a
//! no-op. Owns only the wire format; never blocks (a datagram send to a
//! local socket) and never fails the caller — systemd is told, or not.
//!
//! The variable is read when the process starts ([`init`]); it is not passed
//! on to workers (their environment is built from an allow-list).

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

static SOCKET: OnceLock<Option<String>> = OnceLock::new();

/// Remember `$NOTIFY_SOCKET` from the startup environment snapshot.
pub fn init(env: &[(String, String)]) {
    let path = env.iter().rev().find(|(k, _)| k == "NOTIFY_SOCKET").map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let _ = SOCKET.set(path);
}

/// Send `state` (e.g. `"READY=1"`); false when not under systemd or the send failed.
pub fn notify(state: &str) -> bool {
    let Some(Some(path)) = SOCKET.get() else { return false };
    let Ok(sock) = UnixDatagram::unbound() else { return false };
    let sent = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            match std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
                Ok(addr) => sock.send_to_addr(state.as_bytes(), &addr),
                Err(e) => Err(e),
            }
        }
        None => sock.send_to(state.as_bytes(), path),
    };
    if let Err(e) = &sent {
        log::debug!("sd_notify failed: {e}");
    }
    sent.is_ok()
}

/// `RELOADING=1` with the monotonic timestamp `Type=notify-reload` wants.
pub fn reloading() -> bool {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", crate::sys::monotonic_usec()))
}
