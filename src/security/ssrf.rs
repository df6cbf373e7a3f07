//! SSRF guard for every outbound TCP connection the gateway itself makes
//! (security.md §8): the OTLP exporter, a configured or gateway-managed
//! OpenCode server, any future fetch.
//!
//! Owns: the strict URL parser (§8.1 step 1), the blocked-range table (§8.2),
//! the allow rules and the managed-endpoint table (§8.3), and the
//! resolve-once-check-all procedure that yields the [`SocketAddr`]s to connect
//! to (§8.1 steps 2–4).
//!
//! Must not: resolve a name on an event loop (the blocking entry points refuse
//! to run on reactor/acceptor threads, [`SsrfError::OnEventLoop`]; reactors use
//! [`spawn_check`]), resolve a name twice (callers connect to
//! [`Checked::addrs`], never to the host name again), read the environment
//! (`HTTP_PROXY` and friends are never honoured), or follow redirects
//! ([`check_status`]). `https` is refused with [`SsrfError::NoTlsClient`]: the
//! crate set has no TLS client.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::Cidr;

#[cfg(test)]
mod tests;

/// Connect deadline for a checked address (§8.1 step 4).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest URL accepted (configured endpoints are short).
pub const MAX_URL_BYTES: usize = 2048;
/// Longest host name (RFC 1035).
pub const MAX_HOST_BYTES: usize = 253;
/// Thread-name prefixes of the event loops (see `gateway.rs`): blocking
/// resolution is refused there.
pub const EVENT_LOOP_THREADS: &[&str] = &["reactor-", "acceptor"];
/// Name of the helper threads [`spawn_check`] starts.
pub const HELPER_THREAD: &str = "ssrf-resolve";

/// Why a URL or a connection was refused. `Display` never echoes the URL (it
/// may come from config with a token in its query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SsrfError {
    /// Malformed URL; the detail names the rule, not the input.
    InvalidUrl(&'static str),
    /// A scheme other than `http`/`https`.
    UnsupportedScheme,
    /// `https`: no TLS client in this build (security.md §8.1 https note).
    NoTlsClient,
    /// `user:pw@`: credentials come from config headers.
    Userinfo,
    /// Empty, non-ASCII, badly formed or non-canonical IPv4 host.
    InvalidHost,
    /// Port missing after `:`, 0, or above 65535.
    InvalidPort,
    /// An IPv6 zone id (`%25eth0`).
    ZoneId,
    /// A blocking call on a reactor or acceptor thread.
    OnEventLoop,
    /// DNS failure or no address: fail closed.
    Resolve,
    /// This resolved address is in a blocked range and no allow rule matches.
    Blocked(SocketAddr),
    /// A 3xx answer: redirects are never followed.
    Redirect(u16),
    /// The TCP connect failed or timed out.
    Connect(io::ErrorKind),
    /// The connected peer is not the checked address.
    PeerMismatch,
}

impl SsrfError {
    /// Machine code for logs and metrics (closed set).
    pub fn reason(&self) -> &'static str {
        match self {
            SsrfError::InvalidUrl(_) => "invalid_url",
            SsrfError::UnsupportedScheme => "unsupported_scheme",
            SsrfError::NoTlsClient => "no_tls_client",
            SsrfError::Userinfo => "userinfo",
            SsrfError::InvalidHost => "invalid_host",
            SsrfError::InvalidPort => "invalid_port",
            SsrfError::ZoneId => "zone_id",
            SsrfError::OnEventLoop => "on_event_loop",
            SsrfError::Resolve => "resolve_failed",
            SsrfError::Blocked(_) => "blocked_address",
            SsrfError::Redirect(_) => "redirect",
            SsrfError::Connect(_) => "connect_failed",
            SsrfError::PeerMismatch => "peer_mismatch",
        }
    }
}

impl fmt::Display for SsrfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SsrfError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            SsrfError::UnsupportedScheme => f.write_str("only http URLs are supported"),
            SsrfError::NoTlsClient => f.write_str("https is not supported: no TLS client"),
            SsrfError::Userinfo => f.write_str("credentials in the URL are not allowed (use configured headers)"),
            SsrfError::InvalidHost => f.write_str("invalid host (ASCII names, canonical dotted-quad IPv4, [IPv6])"),
            SsrfError::InvalidPort => f.write_str("invalid port (1-65535)"),
            SsrfError::ZoneId => f.write_str("IPv6 zone ids are not allowed"),
            SsrfError::OnEventLoop => f.write_str("blocking resolution refused on an event-loop thread"),
            SsrfError::Resolve => f.write_str("name resolution failed"),
            SsrfError::Blocked(a) => write!(f, "{a} is in a blocked range and not allowed by security.ssrf.allow"),
            SsrfError::Redirect(s) => write!(f, "redirect ({s}) not followed"),
            SsrfError::Connect(k) => write!(f, "connect failed: {k}"),
            SsrfError::PeerMismatch => f.write_str("connected peer differs from the checked address"),
        }
    }
}

impl std::error::Error for SsrfError {}

// ---------------------------------------------------------------------------
// URL parsing (§8.1 step 1)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A URL host: a lowercase ASCII name (punycode for IDN) or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

/// A strictly parsed `http(s)://host[:port][/path][?query]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
    /// Request target (`/path?query`), printable ASCII, starting with `/`.
    pub target: String,
}

impl Url {
    /// The `Host` header value: the original name (never the resolved address).
    pub fn host_header(&self) -> String {
        let host = match &self.host {
            Host::Name(n) => n.clone(),
            Host::Ip(IpAddr::V4(v4)) => v4.to_string(),
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        };
        if self.port == self.scheme.default_port() { host } else { format!("{host}:{}", self.port) }
    }
}

/// Parse `input` by the rules of security.md §8.1 step 1. `https` parses (so
/// config validation can name it); [`check_blocking`] refuses it.
pub fn parse_url(input: &str) -> Result<Url, SsrfError> {
    if input.len() > MAX_URL_BYTES {
        return Err(SsrfError::InvalidUrl("longer than 2048 bytes"));
    }
    if input.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(SsrfError::InvalidUrl("space or control character"));
    }
    let (scheme, rest) = input.split_once("://").ok_or(SsrfError::InvalidUrl("missing scheme"))?;
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else {
        return Err(SsrfError::UnsupportedScheme);
    };
    if rest.contains('#') {
        return Err(SsrfError::InvalidUrl("fragment"));
    }
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    if authority.contains('@') {
        return Err(SsrfError::Userinfo);
    }
    let (host, port_text) = split_authority(authority)?;
    let port = match port_text {
        None => scheme.default_port(),
        Some(p) => parse_port(p)?,
    };
    if !tail.is_ascii() {
        return Err(SsrfError::InvalidUrl("non-ASCII path (percent-encode it)"));
    }
    let target = if tail.is_empty() {
        "/".to_owned()
    } else if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_owned()
    };
    Ok(Url { scheme, host, port, target })
}

/// `host[:port]` or `[v6][:port]` → host and the port text (if any).
fn split_authority(authority: &str) -> Result<(Host, Option<&str>), SsrfError> {
    if let Some(inner) = authority.strip_prefix('[') {
        let close = inner.find(']').ok_or(SsrfError::InvalidHost)?;
        let literal = &inner[..close];
        if literal.contains('%') {
            return Err(SsrfError::ZoneId);
        }
        let ip: Ipv6Addr = literal.parse().map_err(|_| SsrfError::InvalidHost)?;
        let after = &inner[close + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(SsrfError::InvalidHost)?),
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if port.is_some_and(|p| p.contains(':')) {
        return Err(SsrfError::InvalidHost); // unbracketed IPv6 or a stray colon
    }
    Ok((parse_host(host)?, port))
}

fn parse_port(p: &str) -> Result<u16, SsrfError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SsrfError::InvalidPort);
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(SsrfError::InvalidPort),
    }
}

/// An ASCII host name, or a canonical dotted-quad IPv4 literal. A host whose
/// last label is a number (decimal or `0x…`) is what resolvers treat as an
/// IPv4 literal: it must then be canonical (`127.1`, `2130706433`,
/// `0x7f.0.0.1`, `0177.0.0.1` are refused).
fn parse_host(h: &str) -> Result<Host, SsrfError> {
    if h.is_empty() || h.len() > MAX_HOST_BYTES {
        return Err(SsrfError::InvalidHost);
    }
    if !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
        return Err(SsrfError::InvalidHost);
    }
    let labels: Vec<&str> = h.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-')) {
        return Err(SsrfError::InvalidHost);
    }
    if labels.last().is_some_and(|l| looks_numeric(l)) {
        return canonical_ipv4(&labels).map(|v4| Host::Ip(IpAddr::V4(v4))).ok_or(SsrfError::InvalidHost);
    }
    Ok(Host::Name(h.to_ascii_lowercase()))
}

fn looks_numeric(label: &str) -> bool {
    let b = label.as_bytes();
    b.iter().all(u8::is_ascii_digit)
        || (b.len() >= 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2..].iter().all(u8::is_ascii_hexdigit))
}

/// Exactly four decimal parts 0–255 without leading zeros.
fn canonical_ipv4(labels: &[&str]) -> Option<Ipv4Addr> {
    if labels.len() != 4 {
        return None;
    }
    let mut o = [0u8; 4];
    for (i, l) in labels.iter().enumerate() {
        if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) || (l.len() > 1 && l.starts_with('0'))
        {
            return None;
        }
        o[i] = l.parse().ok()?;
    }
    Some(Ipv4Addr::from(o))
}

// ---------------------------------------------------------------------------
// Blocked ranges (§8.2)
// ---------------------------------------------------------------------------

/// IPv4 ranges: (network, prefix, name).
const BLOCKED_V4: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "this network"),
    ([10, 0, 0, 0], 8, "private"),
    ([100, 64, 0, 0], 10, "CGNAT"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private"),
    ([192, 0, 0, 0], 24, "IETF assignments"),
    ([192, 0, 2, 0], 24, "documentation"),
    ([192, 88, 99, 0], 24, "6to4 relay"),
    ([192, 168, 0, 0], 16, "private"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation"),
    ([203, 0, 113, 0], 24, "documentation"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved"),
    ([255, 255, 255, 255], 32, "broadcast"),
];

/// IPv6 ranges: (network, prefix, name). IPv4-mapped addresses
/// (`::ffff:0:0/96`) never reach this table: [`normalize`] turns them into
/// IPv4 first.
const BLOCKED_V6: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified"),
    (1, 128, "loopback"),
    (0, 96, "IPv4-compatible"),
    (0xffff_0000_0000_0000, 96, "IPv4-translated"),
    (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96, "NAT64"),
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48, "NAT64 local"),
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64, "discard"),
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23, "IETF (Teredo)"),
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32, "documentation"),
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16, "6to4"),
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, "unique local"),
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10, "link-local"),
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10, "site-local"),
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8, "multicast"),
];

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) → the IPv4 address; others unchanged.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The §8.2 range `ip` falls in (after [`normalize`]), if any.
pub fn blocked_range(ip: IpAddr) -> Option<&'static str> {
    match normalize(ip) {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            BLOCKED_V4
                .iter()
                .find(|(net, p, _)| prefix_eq(u32::from_be_bytes(*net).into(), a.into(), *p, 32))
                .map(|r| r.2)
        }
        IpAddr::V6(v6) => {
            let a = u128::from(v6);
            BLOCKED_V6.iter().find(|(net, p, _)| prefix_eq(*net, a, *p, 128)).map(|r| r.2)
        }
    }
}

fn prefix_eq(net: u128, addr: u128, prefix: u8, bits: u8) -> bool {
    let shift = u32::from(bits.saturating_sub(prefix));
    if shift >= 128 {
        return true;
    }
    (net >> shift) == (addr >> shift)
}

// ---------------------------------------------------------------------------
// Allow rules and managed endpoints (§8.3)
// ---------------------------------------------------------------------------

/// One `security.ssrf.allow` entry. It only lifts the range block for that
/// exact port; parsing, single resolution and pinned connect still apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowRule {
    /// `host:port`: every address the URL host `host` resolves to.
    Host { name: String, port: u16 },
    /// `ip:port`, `[v6]:port` or `cidr:port`.
    Net { net: Cidr, port: u16 },
}

impl AllowRule {
    /// Parse `host:port`, `ip:port`, `[v6]:port`, `cidr:port`, `[v6cidr]:port`.
    /// No wildcards, no port 0.
    pub fn parse(entry: &str) -> Result<AllowRule, String> {
        let bad = || format!("{entry:?}: expected host:port, ip:port or cidr:port");
        let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
        let port = parse_port(port).map_err(|_| format!("{entry:?}: port must be 1-65535 (no wildcard ports)"))?;
        let host = match host.strip_prefix('[') {
            Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') && !host.contains('/') => return Err(bad()), // unbracketed IPv6
            None => host,
        };
        if host.contains('%') {
            return Err(format!("{entry:?}: zone ids are not allowed"));
        }
        if host.contains('/') || host.parse::<IpAddr>().is_ok() {
            let net: Cidr = host.parse()?;
            return Ok(AllowRule::Net { net, port });
        }
        match parse_host(host) {
            Ok(Host::Name(name)) => Ok(AllowRule::Host { name, port }),
            Ok(Host::Ip(ip)) => Ok(AllowRule::Net { net: Cidr::from(ip), port }),
            Err(_) => Err(format!("{entry:?}: invalid host name")),
        }
    }

    fn matches(&self, host: &Host, addr: SocketAddr) -> bool {
        match self {
            AllowRule::Host { name, port } => *port == addr.port() && matches!(host, Host::Name(n) if n == name),
            AllowRule::Net { net, port } => *port == addr.port() && net.contains(addr.ip()),
        }
    }
}

/// Gateway-managed local servers: (address, port) pairs that may be reached
/// although their range is blocked (loopback). Filled when the gateway spawns
/// a server, emptied when it exits. Cheap to clone; shared across threads.
#[derive(Clone, Debug, Default)]
pub struct ManagedEndpoints {
    inner: Arc<RwLock<HashSet<SocketAddr>>>,
}

impl ManagedEndpoints {
    pub fn new() -> ManagedEndpoints {
        ManagedEndpoints::default()
    }

    /// The server listening on `addr` is ours from now on.
    pub fn register(&self, addr: SocketAddr) {
        let addr = SocketAddr::new(normalize(addr.ip()), addr.port());
        self.inner.write().unwrap_or_else(|e| e.into_inner()).insert(addr);
    }

    /// The server on `addr` exited: loopback to it is blocked again.
    pub fn unregister(&self, addr: SocketAddr) -> bool {
        let addr = SocketAddr::new(normalize(addr.ip()), addr.port());
        self.inner.write().unwrap_or_else(|e| e.into_inner()).remove(&addr)
    }

    pub fn contains(&self, addr: SocketAddr) -> bool {
        let addr = SocketAddr::new(normalize(addr.ip()), addr.port());
        self.inner.read().unwrap_or_else(|e| e.into_inner()).contains(&addr)
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What may be reached despite §8.2: the allow list and the managed table.
#[derive(Clone, Debug, Default)]
pub struct SsrfPolicy {
    allow: Vec<AllowRule>,
    managed: ManagedEndpoints,
}

impl SsrfPolicy {
    pub fn new(allow: Vec<AllowRule>, managed: ManagedEndpoints) -> SsrfPolicy {
        SsrfPolicy { allow, managed }
    }

    /// From `security.ssrf.allow` (entries already validated at startup).
    pub fn from_config(entries: &[String], managed: ManagedEndpoints) -> Result<SsrfPolicy, String> {
        let allow = entries.iter().map(|e| AllowRule::parse(e)).collect::<Result<_, _>>()?;
        Ok(SsrfPolicy { allow, managed })
    }

    pub fn managed(&self) -> &ManagedEndpoints {
        &self.managed
    }

    /// `addr` (normalized) may be connected to for a URL naming `host`.
    pub fn permits(&self, host: &Host, addr: SocketAddr) -> bool {
        blocked_range(addr.ip()).is_none()
            || self.managed.contains(addr)
            || self.allow.iter().any(|r| r.matches(host, addr))
    }
}

// ---------------------------------------------------------------------------
// Resolution and the check (§8.1 steps 2–3)
// ---------------------------------------------------------------------------

/// A blocking name resolver. Called at most once per check, and only from a
/// helper thread (never a reactor). Tests inject their own.
pub trait Resolver: Send + Sync {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// Production resolver: `getaddrinfo` through [`ToSocketAddrs`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// A URL that passed the check, with every address it resolved to (all
/// checked). Connect to these, never to the name again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub url: Url,
    /// Non-empty, de-duplicated, in resolver order, IPv4-mapped normalized.
    addrs: Vec<SocketAddr>,
}

impl Checked {
    /// The address to connect to first.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every checked address, in resolver order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `Host` header value: the original name.
    pub fn host_header(&self) -> String {
        self.url.host_header()
    }
}

/// True on a reactor or the acceptor.
pub fn on_event_loop() -> bool {
    std::thread::current().name().is_some_and(|n| EVENT_LOOP_THREADS.iter().any(|p| n.starts_with(p)))
}

/// Parse, resolve once, check every address (§8.1 steps 1–3). **Blocking**:
/// helper threads only (the OTLP exporter thread, [`spawn_check`]); on a
/// reactor or the acceptor it fails with [`SsrfError::OnEventLoop`] without
/// resolving.
pub fn check_blocking(url: &str, policy: &SsrfPolicy, resolver: &dyn Resolver) -> Result<Checked, SsrfError> {
    if on_event_loop() {
        return Err(SsrfError::OnEventLoop);
    }
    let url = parse_url(url)?;
    if url.scheme == Scheme::Https {
        return Err(SsrfError::NoTlsClient);
    }
    let resolved = match &url.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, url.port)],
        Host::Name(name) => resolver.resolve(name, url.port).map_err(|_| SsrfError::Resolve)?,
    };
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(resolved.len());
    for a in resolved {
        // the resolver's port is ignored: the URL's is the one checked and used
        let a = SocketAddr::new(normalize(a.ip()), url.port);
        if !policy.permits(&url.host, a) {
            return Err(SsrfError::Blocked(a));
        }
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(SsrfError::Resolve);
    }
    Ok(Checked { url, addrs })
}

/// For reactors: run [`check_blocking`] on a new helper thread and hand the
/// result to `done` there (which typically sends it over a channel and wakes
/// the reactor). The reactor then connects with `mio::net::TcpStream::connect`
/// to [`Checked::addr`] and calls [`verify_peer`] once writable.
pub fn spawn_check<F>(url: String, policy: SsrfPolicy, resolver: Arc<dyn Resolver>, done: F) -> io::Result<()>
where
    F: FnOnce(Result<Checked, SsrfError>) + Send + 'static,
{
    std::thread::Builder::new()
        .name(HELPER_THREAD.into())
        .spawn(move || done(check_blocking(&url, &policy, resolver.as_ref())))
        .map(drop)
}

// ---------------------------------------------------------------------------
// Connect and response rules (§8.1 steps 4–5)
// ---------------------------------------------------------------------------

/// The socket's peer must be the checked address.
pub fn verify_peer(peer: SocketAddr, checked: SocketAddr) -> Result<(), SsrfError> {
    let peer = SocketAddr::new(normalize(peer.ip()), peer.port());
    if peer == checked { Ok(()) } else { Err(SsrfError::PeerMismatch) }
}

/// **Blocking**, helper threads only: connect to the checked addresses in
/// order, each with `timeout` ([`CONNECT_TIMEOUT`] normally), and verify the
/// peer. No proxy, no second resolution.
pub fn connect_blocking(checked: &Checked, timeout: Duration) -> Result<TcpStream, SsrfError> {
    if on_event_loop() {
        return Err(SsrfError::OnEventLoop);
    }
    let mut last = io::ErrorKind::NotFound;
    for &addr in checked.addrs() {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let peer = s.peer_addr().map_err(|e| SsrfError::Connect(e.kind()))?;
                verify_peer(peer, addr)?;
                return Ok(s);
            }
            Err(e) => last = e.kind(),
        }
    }
    Err(SsrfError::Connect(last))
}

/// Response status rule: a 3xx is an error, never followed.
pub fn check_status(status: u16) -> Result<(), SsrfError> {
    if (300..400).contains(&status) { Err(SsrfError::Redirect(status)) } else { Ok(()) }
}
