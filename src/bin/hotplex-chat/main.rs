//! `hotplex-chat`: a small terminal chat client for the hotplex gateway.
//!
//! It connects to `/ws`, sends `init`, then turns stdin lines into `input`
//! frames (or slash commands) and prints what the agent streams back. One
//! loop serves both sides: the socket is read with a short timeout and stdin
//! lines arrive over a channel from a reader thread (a blocking tungstenite
//! socket cannot be split between threads).
//!
//! Lines are queued while a turn runs and sent when the session is idle again
//! (the gateway answers `SESSION_BUSY` rather than queueing). When stdin is a
//! terminal, slash commands run at once; when it is a pipe or a file, every
//! line waits its turn, except `/interrupt`. After stdin ends, the client
//! waits for the current turn's `done`, closes normally and exits 0.

mod args;
mod chat;
mod conn;
mod input;
mod render;

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use args::{Args, Parsed};
use chat::Chat;
use conn::{Recv, Ws};
use render::Screen;

/// How long the gateway may take to answer `init` (it spawns the worker first).
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    let a = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            let _ = writeln!(std::io::stdout(), "{}", args::USAGE);
            return;
        }
        Ok(Parsed::Version) => {
            let _ = writeln!(std::io::stdout(), "hotplex-chat {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Err(e) => {
            eprintln!("hotplex-chat: {e}\nTry 'hotplex-chat --help'.");
            std::process::exit(2);
        }
    };
    std::process::exit(run(a));
}

fn run(a: Args) -> i32 {
    let mut ws = match conn::connect(&a.url) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("hotplex-chat: {e}");
            return 1;
        }
    };
    if let Err(e) = conn::send(&mut ws, "init", conn::init_data(&a)) {
        eprintln!("hotplex-chat: {e}");
        return 1;
    }
    let mut screen = Screen::new();
    let ack = match wait_ack(&mut ws, &a, &mut screen) {
        Ok(ack) => ack,
        Err(code) => return code,
    };
    let (tx, rx) = mpsc::channel();
    input::spawn_stdin(tx.clone());
    let mut chat = Chat::new(a, ws, screen, tx, rx, &ack);
    match chat.run() {
        Ok(()) => 0,
        Err(code) => code,
    }
}

/// The first frame must be `init_ack`; an `error` ends the program with its code and message.
fn wait_ack(ws: &mut Ws, a: &Args, screen: &mut Screen) -> Result<Value, i32> {
    let deadline = Instant::now() + INIT_TIMEOUT;
    loop {
        match conn::recv(ws) {
            Recv::Frame(t) => {
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    eprintln!("hotplex-chat: the gateway answered init with a frame that is not JSON");
                    return Err(1);
                };
                if a.json {
                    screen.raw(&json_line(&t, &v));
                }
                let d = &v["event"]["data"];
                return match v["event"]["type"].as_str() {
                    Some("init_ack") => Ok(v),
                    Some("error") => {
                        eprintln!(
                            "hotplex-chat: init failed: [{}] {}",
                            d["code"].as_str().unwrap_or("ERROR"),
                            d["message"].as_str().unwrap_or("")
                        );
                        Err(1)
                    }
                    other => {
                        eprintln!("hotplex-chat: expected init_ack, got {}", other.unwrap_or("a frame without a type"));
                        Err(1)
                    }
                };
            }
            Recv::Idle if Instant::now() < deadline => continue,
            Recv::Idle => {
                eprintln!("hotplex-chat: no answer to init within {}s", INIT_TIMEOUT.as_secs());
                return Err(1);
            }
            Recv::Closed(code, reason) => {
                eprintln!("hotplex-chat: the gateway closed the connection during init: {code} {reason}");
                return Err(1);
            }
            Recv::Lost(e) => {
                eprintln!("hotplex-chat: connection lost during init: {e}");
                return Err(1);
            }
        }
    }
}

/// The received text as one line (it is compact JSON already; re-encode if not).
pub fn json_line(text: &str, v: &Value) -> String {
    let t = text.trim();
    if t.contains('\n') { format!("{v}\n") } else { format!("{t}\n") }
}
