//! The shipped nginx snippet (`configs/nginx/hotplex.conf`, operations.md
//! §10.3) in front of the real gateway: a real nginx (Debian package) loads
//! the snippet with only the upstream address, the listen port, the TLS
//! certificate paths (a throwaway self-signed pair made with `openssl`) and
//! the access-log path rewritten, and a WebSocket session runs end to end
//! through it (init → input → done). The test's WebSocket client has no
//! TLS, so a test-only plain-HTTP server block in the same nginx acts as the
//! TLS client: client →(ws)→ front →(wss, TLS 1.2/1.3)→ shipped server block
//! →(ws)→ gateway. The shipped listener's TLS versions are also probed with
//! `openssl s_client`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::*;

fn tool(env: &str, name: &str) -> Option<PathBuf> {
    support::tools::find_tool(env, &[name])
}

use support::tools::free_port;

/// Replace `from` (which must occur exactly once) in the shipped snippet.
fn rewrite(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once in configs/nginx/hotplex.conf");
    text.replace(from, to)
}

struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

fn self_signed(openssl: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    let out = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=gateway.example.com", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl req");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// Start nginx with the shipped snippet proxying to `upstream`; returns it
/// with the front (plain) and TLS ports.
fn start_nginx(dir: &Path, upstream: std::net::SocketAddr) -> (Nginx, u16, u16) {
    let nginx = tool("HOTPLEX_NGINX", "nginx")
        .expect("nginx is missing: install the Debian package nginx-light (scripts/test.sh does)");
    let openssl = tool("HOTPLEX_OPENSSL", "openssl").expect("openssl is missing (Debian package openssl)");
    let (cert, key) = self_signed(&openssl, dir);
    let (front, tls) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/nginx/hotplex.conf"))
        .expect("read configs/nginx/hotplex.conf");
    let mut snippet = rewrite(&shipped, "server 127.0.0.1:8888;", &format!("server {upstream};"));
    snippet = rewrite(&snippet, "listen 443 ssl;", &format!("listen 127.0.0.1:{tls} ssl;"));
    snippet = rewrite(&snippet, "/etc/ssl/hotplex/fullchain.pem", cert.to_str().unwrap());
    snippet = rewrite(&snippet, "/etc/ssl/hotplex/privkey.pem", key.to_str().unwrap());
    snippet = rewrite(&snippet, "/var/log/nginx/hotplex.access.log", dir.join("access.log").to_str().unwrap());
    std::fs::write(dir.join("hotplex.conf"), snippet).unwrap();
    let d = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    access_log off;
    include {d}/hotplex.conf;

    # test only: the TLS client the test's plain WebSocket client lacks
    server {{
        listen 127.0.0.1:{front};
        location / {{
            proxy_pass https://127.0.0.1:{tls};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host gateway.example.com;
            proxy_ssl_server_name on;
            proxy_ssl_name gateway.example.com;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
}}
"#
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let args = |c: &mut Command| {
        c.arg("-p").arg(dir).arg("-c").arg(&conf_path).arg("-e").arg(dir.join("error.log"));
    };
    let mut check = Command::new(&nginx);
    args(&mut check);
    let out = check.arg("-t").output().expect("run nginx -t");
    assert!(out.status.success(), "nginx -t: {}", String::from_utf8_lossy(&out.stderr));
    let mut cmd = Command::new(&nginx);
    args(&mut cmd);
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start nginx");
    let n = Nginx { child, dir: dir.to_path_buf() };
    let up = eventually(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", front)).is_ok() && TcpStream::connect(("127.0.0.1", tls)).is_ok()
    });
    assert!(up, "nginx did not listen; error.log:\n{}", n.error_log());
    (n, front, tls)
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: gateway.example.com\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Whether the shipped TLS listener completes a handshake at this version.
fn tls_handshake(port: u16, version_flag: &str) -> (bool, String) {
    let openssl = tool("HOTPLEX_OPENSSL", "openssl").expect("openssl");
    let out = Command::new(openssl)
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "gateway.example.com"])
        .arg(version_flag)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn websocket_session_through_the_shipped_nginx_snippet() {
    // A proxied gateway needs real authentication (auth mode none refuses proxies, S2).
    let gw = sec::auth_gateway("[api_key]", 100, "gateway:\n  trusted_proxies: [\"127.0.0.1/32\"]\n");
    let tmp = TempDir::new("nginx");
    let (nginx, front, tls) = start_nginx(tmp.path(), gw.addr);

    let canary = format!("QUERY-CANARY-{}", std::process::id());
    let url = format!("ws://127.0.0.1:{front}/ws?sid={canary}");
    let mut c = Client::connect_with(&url, &[("X-API-Key", sec::ALICE_KEY)]).expect("upgrade through nginx");
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": "through-nginx"}));
    assert_eq!(ack["event"]["data"]["state"], "idle", "{ack}");
    let frames = c.turn("say hello through nginx");
    assert_eq!(delta_text(&frames), "hello through nginx");
    let done = frames.iter().find(|f| ev_type(f) == "done").expect("done");
    assert_eq!(done["event"]["data"]["success"], true, "{done}");
    // a ping/pong round trip on the upgraded connection
    c.send("ping", json!({}));
    c.expect("pong");

    // plain HTTP locations of the snippet
    let health = http_get(front, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // TLS: the versions the snippet allows complete a handshake
    let (ok12, out12) = tls_handshake(tls, "-tls1_2");
    assert!(ok12 && out12.contains("TLSv1.2"), "{out12}");
    let (ok13, out13) = tls_handshake(tls, "-tls1_3");
    assert!(ok13 && out13.contains("TLSv1.3"), "{out13}");

    drop(c);
    // the access log uses $uri: the query string never reaches it
    let mut log = String::new();
    let logged = eventually(Duration::from_secs(5), || {
        log = std::fs::read_to_string(tmp.path().join("access.log")).unwrap_or_default();
        log.contains("\"GET /ws\" 101")
    });
    assert!(logged, "no upgrade line in the access log:\n{log}\nerror.log:\n{}", nginx.error_log());
    assert!(!log.contains(&canary), "query string in the access log:\n{log}");
    assert!(log.contains("\"GET /health\" 200"), "{log}");
}
