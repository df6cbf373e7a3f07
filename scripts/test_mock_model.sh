#!/usr/bin/env bash
# test_mock_model.sh -- checks scripts/mock_model.py.
#
#   1. runs `mock_model.py --self-test` (every endpoint and scenario, via urllib);
#   2. if the Claude Code CLI is installed, starts the mock and runs real
#      `claude --print --input-format stream-json ...` turns against it:
#      plain text, bash tool, write permission prompt (allow), deny, thinking,
#      HTTP 400 and 529 errors, [[slow:3]], session resume + [[recall]], and
#      [[hang]] + interrupt. Everything runs offline with a throw-away HOME.
#
# Usage:  scripts/test_mock_model.sh
#   CLAUDE_BIN=/path/to/claude   which CLI to use (default: `claude` on PATH)
#   SKIP_CLAUDE=1                only run the self-test
#   KEEP_TMP=1                   keep the temp dir (claude output, mock log)
# Exit status 0 when every check passed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mock="$here/mock_model.py"

echo "== mock_model.py --self-test"
python3 "$mock" --self-test

claude_bin=${CLAUDE_BIN:-$(command -v claude || true)}
if [ -n "${SKIP_CLAUDE:-}" ] || [ -z "$claude_bin" ]; then
    echo "== real claude checks skipped (no claude CLI or SKIP_CLAUDE set)"
    exit 0
fi

echo "== real claude checks ($("$claude_bin" --version 2>/dev/null || echo '?'))"
exec python3 - "$mock" "$claude_bin" <<'PY'
import json, os, shutil, subprocess, sys, tempfile, threading, time, urllib.request, uuid

mock, claude = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="mock_model_test.")
home, work = os.path.join(tmp, "home"), os.path.join(tmp, "work")
os.makedirs(home), os.makedirs(work)
server = subprocess.Popen([sys.executable, mock, "--quiet", "--log", os.path.join(tmp, "mock.log")],
                          stdout=subprocess.PIPE, text=True)
port = int(server.stdout.readline().split()[1])
base = "http://127.0.0.1:%d" % port
failures = []


def check(name, ok, detail=""):
    print("%-46s %s" % (name, "ok" if ok else "FAIL  " + str(detail)[:300]), flush=True)
    if not ok:
        failures.append(name)


def turn(prompts, policy="allow", args=(), interrupt_after=None, name="turn"):
    """Run one claude process; send prompts one by one, answer permission
    prompts with `policy`, optionally interrupt after N seconds. Returns
    (events, seconds)."""
    env = {"PATH": os.path.dirname(claude) + ":/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8",
           "ANTHROPIC_BASE_URL": base, "ANTHROPIC_API_KEY": "sk-test-not-a-real-key",
           "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "CLAUDE_CODE_MAX_RETRIES": "1"}
    proc = subprocess.Popen([claude, "--print", "--verbose", "--output-format", "stream-json",
                             "--input-format", "stream-json", "--include-partial-messages",
                             "--permission-prompt-tool", "stdio"] + list(args),
                            cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    killer = threading.Timer(120, proc.kill)
    killer.start()
    events, started = [], time.time()
    raw = open(os.path.join(tmp, name + ".jsonl"), "w")

    def send(obj):
        proc.stdin.write(json.dumps(obj) + "\n")
        proc.stdin.flush()

    for prompt in prompts:
        send({"type": "user", "message": {"role": "user",
                                          "content": [{"type": "text", "text": prompt}]}})
        if interrupt_after:
            threading.Timer(interrupt_after, send, [{"type": "control_request",
                                                     "request_id": "int-1",
                                                     "request": {"subtype": "interrupt"}}]).start()
            interrupt_after = None
        for line in proc.stdout:
            raw.write(line)
            event = json.loads(line)
            events.append(event)
            req = event.get("request") or {}
            if event.get("type") == "control_request" and req.get("subtype") == "can_use_tool":
                answer = ({"behavior": "allow", "updatedInput": req.get("input", {})}
                          if policy == "allow" else {"behavior": "deny", "message": "test denies"})
                send({"type": "control_response", "response": {
                    "subtype": "success", "request_id": event["request_id"], "response": answer}})
            if event.get("type") == "result":
                break
    proc.stdin.close()
    for line in proc.stdout:
        raw.write(line)
    proc.wait()
    killer.cancel()
    return events, time.time() - started


def results(events):
    return [e for e in events if e.get("type") == "result"]


def deltas(events, kind):
    return [e["event"]["delta"] for e in events if e.get("type") == "stream_event"
            and e["event"]["type"] == "content_block_delta" and e["event"]["delta"]["type"] == kind]


def tool_results(events):
    return [b for e in events if e.get("type") == "user"
            for b in (e["message"]["content"] if isinstance(e["message"]["content"], list) else [])
            if b.get("type") == "tool_result"]


try:
    ev, _ = turn(["say hello"], name="text")
    r = results(ev)
    check("text turn", r and not r[-1]["is_error"] and
          r[-1]["result"] == "Hello from the hotplex mock model." and
          len(deltas(ev, "text_delta")) == 6 and r[-1]["usage"]["input_tokens"] > 0, r[-1:])

    ev, _ = turn(["run [[tool:bash:echo hi]]"], name="bash")
    r, tr = results(ev), tool_results(ev)
    check("bash tool -> tool_result -> final text", tr and tr[0]["content"] == "hi" and
          r[-1]["result"] == 'Tool output: "hi"' and r[-1]["num_turns"] == 2, r[-1:])

    ev, _ = turn(["write it [[tool:write]]"], policy="allow", name="write")
    asks = [e for e in ev if e.get("type") == "control_request"
            and e["request"].get("subtype") == "can_use_tool"]
    path = os.path.join(work, "mock_written.txt")
    check("write -> can_use_tool prompt, allowed", asks and asks[0]["request"]["tool_name"] ==
          "Write" and os.path.exists(path) and not results(ev)[-1]["is_error"], asks[:1])

    ev, _ = turn(["chain [[tool:read]] [[tool:edit]]"], policy="allow", name="edit")
    check("read then edit (3 rounds)", open(path).read().startswith("HELLO") and
          results(ev)[-1]["num_turns"] == 3, results(ev)[-1:])

    ev, _ = turn(["run [[tool:bash:touch denied.txt]]"], policy="deny", name="deny")
    tr = tool_results(ev)
    check("bash denied -> error tool_result", tr and tr[0].get("is_error") and
          not os.path.exists(os.path.join(work, "denied.txt")), tr[:1])

    ev, _ = turn(["ponder [[thinking]]"], name="thinking")
    check("thinking deltas + signature", deltas(ev, "thinking_delta") and
          deltas(ev, "signature_delta") and not results(ev)[-1]["is_error"])

    ev, _ = turn(["bad [[error:400]]"], name="error400")
    r = results(ev)
    check("error:400 -> is_error result", r and r[-1]["is_error"] and
          r[-1].get("api_error_status") == 400, r[-1:])

    ev, _ = turn(["busy [[error:529]]", "fine now"], name="error529")
    r = results(ev)
    retries = [e for e in ev if e.get("subtype") == "api_retry"]
    check("error:529 -> api_retry, error, then recovers", retries and r[0]["is_error"] and
          r[0].get("api_error_status") == 529 and not r[1]["is_error"], r)

    ev, took = turn(["slowly [[slow:3]]"], name="slow")
    check("slow:3 streams for ~3 s", 2.8 <= took < 20 and len(deltas(ev, "text_delta")) >= 10,
          "%.1fs" % took)

    sid = str(uuid.uuid4())
    turn(["remember PINEAPPLE"], args=["--session-id", sid], name="resume1")
    ev, _ = turn(["what was it [[recall]]"], args=["--resume", sid], name="resume2")
    r = results(ev)
    check("resume -> [[recall]] lists first prompt", r and
          r[-1]["result"] == "Earlier prompts: 'remember PINEAPPLE'", r[-1:])

    ev, took = turn(["wait [[hang]]", "still there? [[echo]]"], interrupt_after=2, name="hang")
    r = results(ev)
    check("hang -> interrupt -> next turn works", len(r) == 2 and r[0]["is_error"] and
          r[1]["result"] == "You said: still there? [[echo]]" and took < 30, r)

    log = urllib.request.urlopen(base + "/_mock/requests").read().decode()
    check("request log has no API key", "sk-test-not-a-real-key" not in log and
          '"auth": "x-api-key"' in log)
finally:
    server.terminate()
    rc = server.wait(timeout=10)
    check("mock exits 0 on SIGTERM", rc == 0, rc)
    if os.environ.get("KEEP_TMP"):
        print("kept", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)

print("CLAUDE CHECKS %s" % ("OK" if not failures else "FAILED: " + ", ".join(failures)))
sys.exit(1 if failures else 0)
PY
