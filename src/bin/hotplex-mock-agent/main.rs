//! `hotplex-mock-agent`: a stand-in for the `claude` CLI in stream-json mode
//! (workers.md §2) with scripted behaviours, for deterministic fault, process
//! supervision and load tests of the gateway. Output lines have the shapes of
//! the real CLI's (fixtures `shared/fixtures/claude_code/`); numbers (tokens,
//! cost, durations) are made up but consistent.
//!
//! # Scripts
//!
//! The first word of a turn's input text selects the behaviour:
//!
//! | input | behaviour |
//! |---|---|
//! | anything else | `echo`: replies `echo: <input>`, streamed as word deltas (≥ 3 deltas) |
//! | `say TEXT` | replies exactly `TEXT` (everything after `say` and one whitespace char), ≥ 3 deltas |
//! | `stream N [B] [R]` | one message of N text deltas; delta i is `tok-000i ` (B = 0/absent) or exactly B ASCII bytes; R deltas/s (0/absent = as fast as stdout takes them); interruptible |
//! | `slow S` | 10 deltas `slow-01 ` … `slow-10`, delta k at k·S/10 s, turn ends at S s; interruptible |
//! | `hang` | `system/init`, `system/status` and nothing more until interrupted (or killed) |
//! | `tool [N]` | text, `tool_use` Bash `{"command":"echo mock",…}`, `user` tool_result (`mock`, or N bytes), text `Tool finished.` (2 API calls) |
//! | `permission [Tool]` | text, `tool_use`, `control_request can_use_tool` (Tool default `Write`), waits; allow → tool_result ok, text `allowed`; deny → tool_result is_error = message, text `denied: <message>`; malformed answer (allow without `updatedInput`, deny without `message`) → tool_result is_error ZodError text, text `permission error: invalid permission response`; interrupt → `control_cancel_request` + interrupt sequence |
//! | `permissions N [Tool]` | N `tool_use` blocks (Tool default `Bash`) and N `can_use_tool` requests sent back to back without waiting, then all answers collected in any order; replies `allowed=A denied=D invalid=I <deny messages joined by "; ">`; interrupt → one `control_cancel_request` per unanswered request + interrupt sequence |
//! | `crash code N` / `crash signal N` | init, message_start, one delta, then `exit(N)` / dies by signal N (no core dump); N defaults to 1 / 11 |
//! | `giant N` | one `assistant` line of exactly N bytes (huge text block), then a short text `giant line sent` |
//! | `garbage` | a non-JSON line, a line of unknown `type`, a `system` line of unknown subtype, then `garbage done` |
//! | `ignore-sigterm` | SIGTERM → SIG_IGN, then a normal reply |
//! | `grandchild` | spawns `sleep 1000` in the agent's process group and `sleep 1000` after `setsid()`; replies `{"group_child":P1,"setsid_child":P2}` in one delta; never waits for them |
//! | `env` | replies the process environment as a JSON object (sorted keys), one delta |
//! | `whoami [dir]` | replies a JSON object, one delta: `uid`/`gid`/`groups` and `Cap*` lines of `/proc/self/status`, `setuid0` (whether `setuid(0)` succeeded), `write_home`/`write_tmpdir`/`write_cwd` (`ok` or the error creating a file there), `read` (listing `dir`: `ok` or the error) |
//! | `error [CODE]` | API failure like fixture 04: (`system/api_retry` if retryable), `<synthetic>` assistant with `error`, `result{subtype:"success", is_error:true, api_error_status:CODE}`; CODE default 400; `error stream` = 500 after two deltas |
//! | `recall` | replies `Earlier prompts: 'a' \| 'b'` (each cut to 80 chars; `(none)`) from the session transcript, so it works across `--resume` |
//! | `exit` | replies `bye`, ends the turn, exits 0 |
//! | `stderr N` | writes N bytes to stderr, then a normal reply |
//! | `all-events` | thinking block, text, tool_use + ok tool_result, tool_use + is_error tool_result, text (3 API calls) |
//!
//! # Protocol behaviour
//!
//! * `--version` as the first argument prints `2.1.197 (Claude Code)` and exits 0.
//! * Nothing is printed before the first input (exception: `--resume` of an
//!   unknown session prints its error result at the first input or after 0.5 s).
//! * Every turn: `system/init` first, exactly one `result` last (unless the
//!   script crashes or hangs). Text is streamed as `stream_event`s only with
//!   `--include-partial-messages` (otherwise only `assistant` lines, like the CLI).
//! * `usage` in a result is per turn; `total_cost_usd` and `modelUsage` are
//!   cumulative per process.
//! * Stdin `control_request` subtypes: `interrupt` (during a turn: the fixture-03
//!   sequence; idle: just `control_response success`), `initialize`,
//!   `set_permission_mode`, `set_model`; others get a `control_response` error.
//! * A `user` line arriving during a turn is queued and runs after it. Stdin
//!   EOF while idle exits 0; during a turn the turn finishes first (a turn
//!   waiting for the gateway — `hang`, a pending permission — gives up and
//!   exits 0 60 s after EOF).
//! * Permission modes: `bypassPermissions` and `--allowed-tools Tool` allow
//!   without asking, `acceptEdits` allows Write/Edit, `dontAsk` and a missing
//!   `--permission-prompt-tool stdio` deny without asking (CLI wording, fixture
//!   verified only for the missing flag), `--disallowed-tools Tool` fails the
//!   tool ("No such tool available", unverified wording). An allow whose
//!   `updatedPermissions` has a session `setMode` switches the mode
//!   (`system/status{permissionMode}`). Bypass as root needs `IS_SANDBOX=1`.
//!
//! # Sessions and journal
//!
//! `$HOME/.mock-agent/<session id>.jsonl` is the transcript and journal:
//! records `{"kind":"start",pid,resumed,forked_from,cwd,model,permission_mode,argv}`,
//! `{"kind":"user",text}`, `{"kind":"permission",request_id,tool_name,decision:"allow"|"deny"|"invalid"|"cancelled",message}`,
//! `{"kind":"interrupt",request_id,during:"turn"|"idle"}`, `{"kind":"result",subtype,is_error}`,
//! `{"kind":"crash",how,n}` (all with `ts_ms`). A new session's file is created
//! at its first input. `--session-id A` (must be a UUID) fails if the file
//! exists; `--resume A` fails like the real CLI (result line, exit 1) if it
//! does not or was made in another cwd; `--resume A --fork-session
//! [--session-id B]` copies A's history into B (or a fresh id).

#[macro_use]
mod json;
mod agent;
mod args;
mod io;
mod scripts;
mod store;

use std::time::Duration;

use agent::{Agent, Config};
use io::Out;
use json::{J, NULL};
use store::{Transcript, is_uuid, now_ms, read_records, session_path, uuid};

const DEFAULT_MODEL: &str = "claude-opus-4-8[1m]";

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(1)
}

/// `--resume` of an unknown session (fixture 07): the error `result` ~0.5 s
/// after start (sooner if input arrives first), stderr note, exit 1.
fn unknown_resume(mut out: Out, id: &str) -> ! {
    let rx = io::spawn_reader();
    let _ = rx.recv_timeout(Duration::from_millis(500));
    let zero = o! {"input_tokens" => 0u64, "cache_creation_input_tokens" => 0u64, "cache_read_input_tokens" => 0u64,
    "output_tokens" => 0u64, "server_tool_use" => o!{"web_search_requests" => 0u64, "web_fetch_requests" => 0u64},
    "service_tier" => "standard",
    "cache_creation" => o!{"ephemeral_1h_input_tokens" => 0u64, "ephemeral_5m_input_tokens" => 0u64},
    "inference_geo" => "", "iterations" => a![], "speed" => "standard"};
    out.line(&o! {
        "type" => "result", "subtype" => "error_during_execution", "duration_ms" => 0u64, "duration_api_ms" => 0u64,
        "is_error" => true, "num_turns" => 0u64, "stop_reason" => NULL, "session_id" => id, "total_cost_usd" => 0u64,
        "usage" => zero, "modelUsage" => o!{}, "permission_denials" => a![], "uuid" => uuid(),
        "errors" => a![format!("No conversation found with session ID: {id}")],
    });
    eprintln!("No conversation found with session ID: {id}");
    std::process::exit(1)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        // `claude --version` (the gateway's startup version probe)
        println!("2.1.197 (Claude Code)");
        return;
    }
    let args = args::parse(std::env::args().collect());
    let out = Out::new();
    let cwd = std::env::current_dir().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let perm_mode = args.permission_mode.clone().unwrap_or_else(|| "default".into());

    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if (args.skip_permissions || perm_mode == "bypassPermissions")
        && root
        && std::env::var("IS_SANDBOX").as_deref() != Ok("1")
    {
        fail("--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons");
    }
    if args.resume.is_some() && args.session_id.is_some() && !args.fork_session {
        fail("Error: --session-id can only be used with --continue or --resume if --fork-session is also specified.");
    }
    if let Some(id) = &args.session_id {
        if !is_uuid(id) {
            fail("Error: Invalid session ID. Must be a valid UUID.");
        }
    }

    let (sid, resumed, forked_from) = match &args.resume {
        Some(old) => {
            let old_path = session_path(old);
            let records = read_records(&old_path);
            let first_cwd = records.iter().find(|r| r["kind"] == "start").and_then(|r| r["cwd"].as_str());
            if !old_path.exists() || first_cwd.is_some_and(|c| c != cwd) {
                unknown_resume(out, old);
            }
            if args.fork_session {
                let new = args.session_id.clone().unwrap_or_else(uuid);
                let new_path = session_path(&new);
                if new_path.exists() {
                    fail(&format!("Error: Session ID {new} is already in use."));
                }
                if let Err(e) = std::fs::copy(&old_path, &new_path) {
                    fail(&format!("mock-agent: cannot fork {}: {e}", old_path.display()));
                }
                (new, true, Some(old.clone()))
            } else {
                (old.clone(), true, None)
            }
        }
        None => {
            let id = args.session_id.clone().unwrap_or_else(uuid);
            if session_path(&id).exists() {
                fail(&format!("Error: Session ID {id} is already in use."));
            }
            (id, false, None)
        }
    };

    let model = args.model.clone().or_else(|| std::env::var("ANTHROPIC_MODEL").ok()).unwrap_or(DEFAULT_MODEL.into());
    let path = session_path(&sid);
    let mut transcript = Transcript::new(path, resumed);
    let start = o! {"kind" => "start", "ts_ms" => now_ms(), "pid" => std::process::id(), "resumed" => resumed,
    "forked_from" => forked_from, "cwd" => &cwd, "model" => &model, "permission_mode" => &perm_mode,
    "argv" => J::A(args.argv.iter().map(J::from).collect())};
    // Written now for a resumed session, with the first input for a new one.
    transcript.record(&start, !resumed);

    let cfg = Config {
        sid,
        model,
        perm_mode,
        prompt_tool: args.permission_prompt_tool.as_deref() == Some("stdio"),
        partial: args.include_partial,
        allowed: args.allowed_tools,
        disallowed: args.disallowed_tools,
        cwd,
    };
    let rx = io::spawn_reader();
    Agent::new(out, rx, cfg, transcript).run()
}
