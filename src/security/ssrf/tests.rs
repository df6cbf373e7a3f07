//! security.md §8.4 vectors, each against an injected resolver.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Answers from a table; a name may answer differently on each call
/// (rebinding). Counts calls.
#[derive(Default)]
struct FakeDns {
    answers: HashMap<&'static str, Vec<Vec<&'static str>>>,
    calls: AtomicUsize,
    seen: Mutex<Vec<String>>,
}

impl FakeDns {
    fn with(mut self, name: &'static str, answers: &[&[&'static str]]) -> Self {
        self.answers.insert(name, answers.iter().map(|a| a.to_vec()).collect());
        self
    }
}

impl Resolver for FakeDns {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(host.to_owned());
        let Some(list) = self.answers.get(host) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "NXDOMAIN"));
        };
        let answer = &list[n.min(list.len() - 1)];
        Ok(answer.iter().map(|ip| SocketAddr::new(ip.parse().unwrap(), port)).collect())
    }
}

fn dns() -> FakeDns {
    FakeDns::default()
        .with("collector.example", &[&["93.184.216.34"]])
        .with("metadata.google.internal", &[&["169.254.169.254"]])
        .with("mixed.example", &[&["93.184.216.34", "10.0.0.1"]])
        .with("rebind.example", &[&["93.184.216.34"], &["127.0.0.1"]])
        .with("x.example", &[&["93.184.216.34"]])
        .with("local.example", &[&["127.0.0.1", "::1"]])
}

fn check(url: &str) -> Result<Checked, SsrfError> {
    check_blocking(url, &SsrfPolicy::default(), &dns())
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn public_names_and_literals_are_allowed() {
    let c = check("http://collector.example:4318/v1/traces").unwrap();
    assert_eq!(c.addr(), sa("93.184.216.34:4318"));
    assert_eq!(c.url.target, "/v1/traces");
    assert_eq!(c.host_header(), "collector.example:4318");
    let c = check("HTTP://Collector.EXAMPLE:4318/").unwrap();
    assert_eq!(c.addr(), sa("93.184.216.34:4318"));
    assert_eq!(c.url.host, Host::Name("collector.example".into()));
    assert_eq!(check("http://1.1.1.1/").unwrap().addr(), sa("1.1.1.1:80"));
    assert_eq!(check("http://[2606:4700:4700::1111]/").unwrap().addr(), sa("[2606:4700:4700::1111]:80"));
    // embedded public IPv4: normalized, connect goes to the IPv4 address
    assert_eq!(check("http://[::ffff:8.8.8.8]/").unwrap().addr(), sa("8.8.8.8:80"));
    assert_eq!(check("http://x.example?q=1").unwrap().url.target, "/?q=1");
}

#[test]
fn other_schemes_and_userinfo_are_denied() {
    assert_eq!(check("ftp://x.example/"), Err(SsrfError::UnsupportedScheme));
    assert_eq!(check("file:///etc/passwd"), Err(SsrfError::UnsupportedScheme));
    assert_eq!(check("gopher://x/"), Err(SsrfError::UnsupportedScheme));
    assert!(matches!(check("x.example"), Err(SsrfError::InvalidUrl(_))));
    assert_eq!(check("http://user:pw@x.example/"), Err(SsrfError::Userinfo));
    assert_eq!(check("http://@x.example/"), Err(SsrfError::Userinfo));
    assert!(matches!(check("http://x.example/#frag"), Err(SsrfError::InvalidUrl(_))));
    assert_eq!(check("https://collector.example/"), Err(SsrfError::NoTlsClient));
    assert_eq!(parse_url("https://collector.example/").unwrap().port, 443);
}

#[test]
fn loopback_and_unspecified_are_denied() {
    for url in ["http://127.0.0.1/", "http://[::1]/", "http://0.0.0.0/", "http://[::]/"] {
        assert!(matches!(check(url), Err(SsrfError::Blocked(_))), "{url}");
    }
}

#[test]
fn non_canonical_ipv4_is_an_invalid_host() {
    for url in [
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://010.0.0.1/",
        "http://1.2.3.4.5/",
        "http://1.2.3.256/",
        "http://0x7f000001/",
        "http://example.123/",
    ] {
        assert_eq!(check(url), Err(SsrfError::InvalidHost), "{url}");
    }
    // a numeric label elsewhere is just a name
    assert_eq!(parse_url("http://0x7f.example/").unwrap().host, Host::Name("0x7f.example".into()));
}

#[test]
fn mapped_compat_and_transition_ranges_are_denied() {
    for url in [
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b:1::1]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://[2001:0:4136:e378::1]/",
        "http://[100::1]/",
        "http://[2001:db8::1]/",
        "http://[fec0::1]/",
        "http://[ff02::1]/",
    ] {
        assert!(matches!(check(url), Err(SsrfError::Blocked(_))), "{url}");
    }
}

#[test]
fn metadata_endpoints_are_denied() {
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://metadata.google.internal/",
    ] {
        assert!(matches!(check(url), Err(SsrfError::Blocked(_))), "{url}");
    }
    assert_eq!(check("http://[fe80::1%25eth0]/"), Err(SsrfError::ZoneId));
    assert_eq!(check("http://[fe80::1%eth0]/"), Err(SsrfError::ZoneId));
}

#[test]
fn any_blocked_address_denies_and_dns_failure_denies() {
    assert_eq!(check("http://mixed.example/"), Err(SsrfError::Blocked(sa("10.0.0.1:80"))));
    assert_eq!(check("http://nx.example/"), Err(SsrfError::Resolve));
    let empty = FakeDns::default().with("empty.example", &[&[]]);
    assert_eq!(check_blocking("http://empty.example/", &SsrfPolicy::default(), &empty), Err(SsrfError::Resolve));
}

#[test]
fn resolution_happens_once() {
    let dns = dns();
    let c = check_blocking("http://rebind.example/", &SsrfPolicy::default(), &dns).unwrap();
    assert_eq!(c.addrs(), &[sa("93.184.216.34:80")]);
    assert_eq!(dns.calls.load(Ordering::SeqCst), 1);
    // IP literals never reach the resolver
    let dns2 = FakeDns::default();
    check_blocking("http://1.1.1.1:8080/", &SsrfPolicy::default(), &dns2).unwrap();
    assert_eq!(dns2.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn reserved_ranges_are_denied() {
    for ip in ["240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.1", "224.0.0.1", "100.64.0.1", "192.88.99.1"] {
        assert!(matches!(check(&format!("http://{ip}/")), Err(SsrfError::Blocked(_))), "{ip}");
    }
    for ip in ["100.63.255.255", "100.128.0.0", "198.20.0.1", "172.32.0.1", "11.0.0.1"] {
        assert!(check(&format!("http://{ip}/")).is_ok(), "{ip}");
    }
}

#[test]
fn bad_ports_and_hosts_are_denied() {
    assert_eq!(check("http://x.example:0/"), Err(SsrfError::InvalidPort));
    assert_eq!(check("http://x.example:65536/"), Err(SsrfError::InvalidPort));
    assert_eq!(check("http://x.example:/"), Err(SsrfError::InvalidPort));
    assert_eq!(check("http://x.example:+80/"), Err(SsrfError::InvalidPort));
    assert!(check("http://exa mple.com/").is_err());
    assert_eq!(check("http://bücher.example/"), Err(SsrfError::InvalidHost));
    assert_eq!(check("http:///path"), Err(SsrfError::InvalidHost));
    assert_eq!(check("http://a..b/"), Err(SsrfError::InvalidHost));
    assert_eq!(check("http://::1/"), Err(SsrfError::InvalidHost));
    assert_eq!(check("http://[::1/"), Err(SsrfError::InvalidHost));
    assert_eq!(check("http://[1.2.3.4]/"), Err(SsrfError::InvalidHost));
    assert_eq!(check("http://x\\@y.example/"), Err(SsrfError::Userinfo));
    assert!(check("http://x.example/\r\nHost: evil").is_err());
    assert!(check("http://x.example/ä").is_err());
    // punycode is the way to name an IDN host
    assert!(parse_url("http://xn--bcher-kva.example/").is_ok());
}

#[test]
fn allow_rules_lift_only_their_port() {
    let policy = SsrfPolicy::from_config(&["127.0.0.1:4318".into()], ManagedEndpoints::new()).unwrap();
    assert_eq!(check_blocking("http://127.0.0.1:4318/", &policy, &dns()).unwrap().addr(), sa("127.0.0.1:4318"));
    assert!(matches!(check_blocking("http://127.0.0.1:4319/", &policy, &dns()), Err(SsrfError::Blocked(_))));
    // mapped form of an allowed address is the same address
    assert!(check_blocking("http://[::ffff:127.0.0.1]:4318/", &policy, &dns()).is_ok());

    let policy =
        SsrfPolicy::from_config(&["10.0.0.0/8:9000".into(), "[fd00::/8]:9000".into()], ManagedEndpoints::new())
            .unwrap();
    assert!(check_blocking("http://10.1.2.3:9000/", &policy, &dns()).is_ok());
    assert!(check_blocking("http://[fd12::1]:9000/", &policy, &dns()).is_ok());
    assert!(check_blocking("http://[fd12::1]:9001/", &policy, &dns()).is_err());

    // a host rule covers every address of that name, not other names
    let policy = SsrfPolicy::from_config(&["local.example:4318".into()], ManagedEndpoints::new()).unwrap();
    let c = check_blocking("http://local.example:4318/", &policy, &dns()).unwrap();
    assert_eq!(c.addrs(), &[sa("127.0.0.1:4318"), sa("[::1]:4318")]);
    assert!(check_blocking("http://127.0.0.1:4318/", &policy, &dns()).is_err());
}

#[test]
fn allow_rule_syntax() {
    for bad in [
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:*",
        "*:80",
        "::1:80",
        "[::1:80",
        "x y:80",
        "127.1:80",
        "[fe80::1%eth0]:80",
    ] {
        assert!(AllowRule::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        AllowRule::parse("Collector.Local:4318").unwrap(),
        AllowRule::Host { name: "collector.local".into(), port: 4318 }
    );
    assert!(matches!(AllowRule::parse("[::1]:80").unwrap(), AllowRule::Net { port: 80, .. }));
}

#[test]
fn managed_endpoints_allow_while_registered() {
    let managed = ManagedEndpoints::new();
    let policy = SsrfPolicy::new(Vec::new(), managed.clone());
    let url = "http://127.0.0.1:41234/session";
    assert!(check_blocking(url, &policy, &dns()).is_err());
    managed.register(sa("127.0.0.1:41234"));
    assert_eq!(check_blocking(url, &policy, &dns()).unwrap().addr(), sa("127.0.0.1:41234"));
    // another port on loopback stays blocked
    assert!(check_blocking("http://127.0.0.1:41235/", &policy, &dns()).is_err());
    // shared across threads
    let m2 = managed.clone();
    std::thread::spawn(move || assert!(m2.unregister(sa("127.0.0.1:41234")))).join().unwrap();
    assert!(matches!(check_blocking(url, &policy, &dns()), Err(SsrfError::Blocked(_))));
    assert!(managed.is_empty());
}

#[test]
fn refused_on_event_loop_threads() {
    let dns = Arc::new(dns());
    let d2 = dns.clone();
    let r = std::thread::Builder::new()
        .name("reactor-0".into())
        .spawn(move || check_blocking("http://collector.example/", &SsrfPolicy::default(), d2.as_ref()))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(r, Err(SsrfError::OnEventLoop));
    assert_eq!(dns.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn spawn_check_answers_from_a_helper_thread() {
    let (tx, rx) = std::sync::mpsc::channel();
    let resolver: Arc<dyn Resolver> = Arc::new(dns());
    spawn_check("http://collector.example:4318/".into(), SsrfPolicy::default(), resolver, move |r| {
        let name = std::thread::current().name().map(str::to_owned);
        let _ = tx.send((r, name));
    })
    .unwrap();
    let (r, name) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(r.unwrap().addr(), sa("93.184.216.34:4318"));
    assert_eq!(name.as_deref(), Some(HELPER_THREAD));
}

#[test]
fn redirects_are_errors_and_connect_is_pinned() {
    // a local server answering 302 to 10.0.0.1: reached through an allow rule,
    // the redirect is an error and nothing else is contacted
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n").unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let policy = SsrfPolicy::from_config(&[format!("127.0.0.1:{port}")], ManagedEndpoints::new()).unwrap();
    let checked = check_blocking(&format!("http://127.0.0.1:{port}/x"), &policy, &FakeDns::default()).unwrap();
    let mut s = connect_blocking(&checked, CONNECT_TIMEOUT).unwrap();
    write!(s, "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", checked.url.target, checked.host_header()).unwrap();
    let mut resp = Vec::new();
    let mut buf = [0u8; 512];
    while !resp.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        resp.extend_from_slice(&buf[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(&resp).unwrap();
    assert_eq!(check_status(parsed.code.unwrap()), Err(SsrfError::Redirect(302)));
    assert!(check_status(200).is_ok());
    let request = server.join().unwrap();
    assert!(request.starts_with("GET /x HTTP/1.1\r\nHost: 127.0.0.1:"));
    assert_eq!(verify_peer(sa("[::ffff:127.0.0.1]:80"), sa("127.0.0.1:80")), Ok(()));
    assert_eq!(verify_peer(sa("127.0.0.2:80"), sa("127.0.0.1:80")), Err(SsrfError::PeerMismatch));
}

#[test]
fn the_module_never_reads_proxy_variables() {
    // HTTP_PROXY=http://evil:8080 is ignored because nothing here reads the
    // environment; keep it that way.
    let src = include_str!("../ssrf.rs");
    for needle in [["env", "::", "var"].concat(), ["var", "_os("].concat()] {
        assert!(!src.contains(&needle), "ssrf.rs must not read {needle}");
    }
}

#[test]
fn range_table_edges() {
    let b = |s: &str| blocked_range(s.parse().unwrap());
    assert_eq!(b("172.31.255.255"), Some("private"));
    assert_eq!(b("172.15.255.255"), None);
    assert_eq!(b("::ffff:169.254.169.254"), Some("link-local"));
    assert_eq!(b("::ffff:0:a9fe:a9fe"), Some("IPv4-translated"));
    assert_eq!(b("2001:200::1"), None); // just past 2001::/23
    assert_eq!(b("2001:1ff::1"), Some("IETF (Teredo)"));
    assert_eq!(b("100::1:0:0:0:1"), None); // past 100::/64
    assert_eq!(b("fbff::1"), None);
    assert_eq!(b("2606:4700::1"), None);
}
