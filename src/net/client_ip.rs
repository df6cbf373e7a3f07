//! The client IP of a request (security.md §11): the TCP peer, or — only
//! when the peer is a trusted proxy — the rightmost untrusted entry of the
//! configured forwarding header. It feeds per-IP limits and logs; it never
//! authenticates anyone.

use std::net::IpAddr;

use crate::config::Cidr;

/// Entries of the header examined at most.
const MAX_ENTRIES: usize = 20;

/// IPv4-mapped IPv6 → IPv4.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

pub fn is_trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// Parse one header entry: an IP, optionally with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse().ok();
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

/// A forwarding header entry that is not an IP address (→ HTTP 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedEntry;

/// The client IP, or `Err` (→ HTTP 400) when a malformed entry is reached.
/// `header_values` are all instances of the configured header, in order.
pub fn client_ip<'a>(
    peer: IpAddr,
    proxies: &[Cidr],
    header_values: impl Iterator<Item = &'a [u8]>,
) -> Result<IpAddr, MalformedEntry> {
    let peer = normalize(peer);
    if !is_trusted(peer, proxies) {
        return Ok(peer);
    }
    let mut entries: Vec<&str> = Vec::new();
    for v in header_values {
        let Ok(text) = std::str::from_utf8(v) else { return Err(MalformedEntry) };
        entries.extend(text.split(',').map(str::trim).filter(|e| !e.is_empty()));
    }
    let start = entries.len().saturating_sub(MAX_ENTRIES);
    let examined = &entries[start..];
    let mut leftmost = None;
    for e in examined.iter().rev() {
        let ip = normalize(parse_entry(e).ok_or(MalformedEntry)?);
        if !is_trusted(ip, proxies) {
            return Ok(ip);
        }
        leftmost = Some(ip);
    }
    Ok(leftmost.unwrap_or(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| serde_json::from_value(serde_json::json!(s)).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_ignores_the_header() {
        let p = cidrs(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("203.0.113.9"), &p, [b"1.2.3.4".as_slice()].into_iter()), Ok(ip("203.0.113.9")));
    }

    #[test]
    fn walks_from_the_right_skipping_trusted() {
        let p = cidrs(&["10.0.0.0/8"]);
        let h = [b"7.7.7.7, 8.8.8.8:443".as_slice(), b"10.1.1.1".as_slice()];
        assert_eq!(client_ip(ip("10.0.0.2"), &p, h.into_iter()), Ok(ip("8.8.8.8")));
        assert_eq!(client_ip(ip("10.0.0.2"), &p, [b"10.2.2.2, 10.3.3.3".as_slice()].into_iter()), Ok(ip("10.2.2.2")));
        assert_eq!(client_ip(ip("10.0.0.2"), &p, [b"nonsense".as_slice()].into_iter()), Err(MalformedEntry));
        assert_eq!(client_ip(ip("10.0.0.2"), &p, [b"[2001:db8::1]:80".as_slice()].into_iter()), Ok(ip("2001:db8::1")));
        assert_eq!(client_ip(ip("::ffff:10.0.0.2"), &p, std::iter::empty()), Ok(ip("10.0.0.2")));
    }
}
