#!/usr/bin/env python3
"""mock_model.py -- hotplex's offline stand-in for the Anthropic Messages API.

A small, dependency-free (Python 3.9+ standard library) HTTP server that
answers the requests an agent CLI such as Claude Code (`claude`),
`claude-code-acp`, `opencode` or `pi` makes to an Anthropic-compatible
provider. The agents run complete turns against it -- text, thinking, tool
calls and their follow-up rounds, errors, resumed sessions -- with no network
and no API key. It is used by the README's 5-minute tour and by tests.

RUNNING
    python3 scripts/mock_model.py [--host 127.0.0.1] [--port 0]
                                  [--port-file F] [--log F] [--quiet] [--bodies]
    python3 scripts/mock_model.py --self-test

    Once the socket is listening the server prints exactly one line on stdout,
        MOCK_MODEL_LISTENING <port>
    (flushed), and with --port-file also writes the port number to F. --port 0
    (the default) lets the OS pick a free port. SIGTERM or SIGINT shut the
    server down cleanly with exit status 0. Each request is served on its own
    thread, so an agent may hold several connections at once.

      --log F    append one JSON line per request to F (see REQUEST LOG)
      --quiet    no per-request lines on stderr
      --bodies   also keep each request's JSON body in the request log

    Point an agent at it, for example:
        ANTHROPIC_BASE_URL=http://127.0.0.1:<port> ANTHROPIC_API_KEY=sk-mock \\
            claude --print "hello"
    Any API key is accepted; keys are never recorded.

ENDPOINTS
    Paths are matched by their END, so whatever prefix an agent puts in front
    ("/v1/messages", "/v1/v1/messages", "/proxy/anthropic/v1/messages") works.
    A query string ("?beta=true") is ignored.

    POST  .../messages               Messages API. "stream": true answers with
                                     server-sent events: message_start, ping,
                                     content_block_start / _delta / _stop for
                                     each thinking, text and tool_use block,
                                     message_delta (stop_reason, usage) and
                                     message_stop. Otherwise one JSON message.
    POST  .../messages/count_tokens  {"input_tokens": N}
    GET   .../models                 a small model list; .../models/<id> one model
    GET   /_mock/health              {"ok": true, "requests": <count>}
    GET   /_mock/requests            JSON array of the recorded requests
    DELETE /_mock/requests           forget them (also resets [[error:CODE:K]]
                                     counters)
    HEAD  <anything>                 200 with an empty body
    other                            404 with an Anthropic-style error body

SCENARIOS
    The reply is chosen by markers found in the PROMPT: the last non-empty text
    block of the last user message that has one. User messages that only carry
    tool_result blocks are skipped, and <system-reminder>...</system-reminder>
    passages are removed first. (Only the last block counts because claude
    folds several queued user inputs into one message.)

    no marker             "Hello from the hotplex mock model." streamed word
                          by word.
    [[tool:bash]]         call a tool offered in the request's "tools" list.
    [[tool:bash:CMD]]     The name is matched exactly, then case-insensitively,
    [[tool:write]]        then as an MCP suffix ("mcp__acp__Bash" matches
    [[tool:write:PATH]]   "bash"). The tool input is built from the tool's JSON
    [[tool:read]]         schema:
    [[tool:read:PATH]]      bash   command = CMD or "echo mock-tool-output"
    [[tool:edit]]                  (+ description when the schema has one)
    [[tool:edit:PATH]]      write  <path> = PATH or "mock_written.txt",
    [[tool:NAME:JSON]]             content = "hello from the mock model\\n"
                            read   <path>
                            edit   <path>, "hello" -> "HELLO" (old_string /
                                   oldString / oldText or an "edits" list)
                            other  the JSON object given after the name, if any
                          <path> is whichever of file_path, filePath, path,
                          filename the schema declares. A relative PATH is made
                          absolute with the working directory announced in the
                          system prompt ("... working directory: /x"), when
                          there is one. Required properties still missing are
                          filled with type-appropriate placeholders.
                          Several tool markers run in order, one tool call per
                          model round: the round is the number of tool_result
                          messages already in the history after the prompt.
                          After the last result the model answers
                              Tool output: "<result text>"
                          (several results are joined with " | "). If the
                          request offers no such tool the model says so in text.
    [[thinking]]          a thinking block (with a signature) precedes the
                          reply in the first round of the prompt.
    [[slow:S]]            the final answer is streamed over about S seconds
                          (at least 10 pieces; [[slow]] = 5 s).
    [[long:N]]            the final answer is N words "word-1 ... word-N",
                          streamed 8 words per delta.
    [[echo]]              the final answer is "You said: <prompt>".
    [[recall]]            the final answer lists every earlier user prompt in
                          the history: Earlier prompts: 'a' | 'b'
                          (or "Earlier prompts: (none)"). Proves that a resumed
                          session really sent its old conversation. claude's
                          "[Request interrupted by user]" notes are left out.
    [[error:CODE]]        HTTP status CODE with an Anthropic-style JSON error
                          body {"type":"error","error":{"type":...,"message":...}};
                          429, 503 and 529 also carry "retry-after: 0". Every
                          request for the prompt fails.
    [[error:CODE:K]]      only the first K requests for this prompt fail, then
                          the prompt is answered normally (retry tests).
    [[error:stream]]      HTTP 200 and a normal start, then after two text
    [[error:stream:K]]    deltas an in-stream "event: error" (overloaded_error)
                          and the end of the stream, as when the API drops
                          mid-answer. A non-streaming request gets HTTP 500.
                          The :K form only breaks the first K requests.
    [[hang]]              response headers, then silence until the client
                          closes the connection (or the server stops).
    Markers combine, e.g. "[[thinking]][[tool:bash:ls]][[slow:3]] go". A marker
    argument cannot contain "]]".

    Auxiliary requests -- no tools offered AND a system prompt that mentions a
    title or a summary, as agents send in the background -- always get the
    short text "Mock title": they never fail, hang or call tools, so a scenario
    only affects the main conversation. When such a request asks for
    structured output ("output_config": {"format": {"type": "json_schema",
    "schema": ...}}, as claude's session-title request does) the text is a JSON
    value built from the schema instead, e.g. {"title": "Mock title"}.

USAGE NUMBERS
    Deterministic and never zero: input_tokens = max(1, len(JSON of the
    "messages" array) // 4) (count_tokens returns the same number);
    output_tokens = number of words generated (text, thinking and tool input),
    at least 1. Cache token counts are 0.

REQUEST LOG
    Every request is recorded (in memory, newest 5000; with --log also as JSON
    lines) as an object with: ts, method, path, model, stream, n_messages,
    last_user_text (the prompt, up to 500 characters), tools (names offered),
    tool_rounds, scenario (what was answered: "text", "tool_use", "tool_final",
    "tool_missing", "recall", "echo", "long", "thinking", "slow", "error",
    "stream_error", "hang", "auxiliary", "count_tokens", "models", "head",
    "not_found", "bad_request"), status, auth ("x-api-key" | "bearer" | "none"
    -- the kind of credential only, never its value) and, with --bodies, body.
    The /_mock/* endpoints themselves are not recorded.

SELF TEST
    --self-test starts the server on a free port inside this process, exercises
    every endpoint and scenario with urllib (parsing and checking the SSE
    stream), then launches this script as a child process to check the
    listening line, --port-file, --log and clean exit on SIGTERM. It prints one
    line per check and "SELF-TEST OK" (exit 0) or "SELF-TEST FAILED" (exit 1).
    scripts/test_mock_model.sh runs the self-test and then, when the Claude
    Code CLI is installed, real `claude` turns against the mock.
"""

import argparse
import base64
import hashlib
import itertools
import json
import os
import re
import select
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETING = "Hello from the hotplex mock model."
AUX_REPLY = "Mock title"
WRITE_CONTENT = "hello from the mock model\n"
DEFAULT_FILE = "mock_written.txt"
DEFAULT_COMMAND = "echo mock-tool-output"
MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "mock-model")

MARKER = re.compile(r"\[\[\s*([A-Za-z_]+)\s*(?::((?:[^\]]|\](?!\]))*))?\]\]")
REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
INTERRUPTED = re.compile(r"^\[Request interrupted by user[^\]]*\]$")  # claude's own note
CWD_HINT = re.compile(r"working directory:\s*(/[^\s`'\"]*)", re.I)

PATH_KEYS = ("file_path", "filePath", "path", "filename")
OLD_KEYS = ("old_string", "oldString", "oldText", "old_text")
NEW_KEYS = ("new_string", "newString", "newText", "new_text")

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 503: "api_error", 529: "overloaded_error",
}
RETRY_NOW = (429, 503, 529)


class State:
    """Everything shared between request threads."""

    def __init__(self, log_path=None, quiet=False, keep_bodies=False):
        self.lock = threading.Lock()
        self.records = []
        self.failures = {}          # (code, prompt) -> failures already served
        self.ids = itertools.count(1)
        self.stopping = threading.Event()
        self.quiet = quiet
        self.keep_bodies = keep_bodies
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def new_id(self, prefix):
        with self.lock:
            n = next(self.ids)
        return "%s_mock_%05d%s" % (prefix, n, os.urandom(4).hex())

    def record(self, entry):
        line = json.dumps(entry, ensure_ascii=False)
        with self.lock:
            self.records.append(entry)
            if len(self.records) > 5000:
                del self.records[0]
            if self.log_file:
                self.log_file.write(line + "\n")
                self.log_file.flush()

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def reset(self):
        with self.lock:
            self.records.clear()
            self.failures.clear()

    def should_fail(self, code, limit, prompt):
        """True when this request must get the error; counts limited errors."""
        if limit is None:
            return True
        key = (code, prompt)
        with self.lock:
            served = self.failures.get(key, 0)
            if served >= limit:
                return False
            self.failures[key] = served + 1
            return True


# ---------------------------------------------------------------- reading the request

def clean_text(text):
    return REMINDER.sub("", text).strip()


def text_pieces(content):
    """Non-empty text blocks of a message content, reminders removed."""
    if isinstance(content, str):
        items = [content]
    elif isinstance(content, list):
        items = [b.get("text") for b in content
                 if isinstance(b, dict) and b.get("type") == "text"]
    else:
        items = []
    out = []
    for item in items:
        if isinstance(item, str):
            t = clean_text(item)
            if t:
                out.append(t)
    return out


def flatten(content):
    """Plain text of a tool_result / system content (string or blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content
                         if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def tool_results(message):
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [flatten(b.get("content")) for b in content
            if isinstance(b, dict) and b.get("type") == "tool_result"]


class Conversation:
    """What the mock needs to know about one Messages request."""

    def __init__(self, body):
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        self.n_messages = len(body.get("messages") or [])
        self.prompt = ""
        self.earlier = []
        self.results = []       # tool results after the prompt, in order
        self.rounds = 0         # tool_result messages after the prompt
        at = None
        for i in range(len(messages) - 1, -1, -1):
            if messages[i].get("role") == "user":
                pieces = text_pieces(messages[i].get("content"))
                if pieces:
                    at, self.prompt = i, pieces[-1]
                    break
        if at is not None:
            for m in messages[:at]:
                if m.get("role") == "user":
                    self.earlier.extend(text_pieces(m.get("content")))
            self.earlier.extend(text_pieces(messages[at].get("content"))[:-1])
            self.earlier = [t for t in self.earlier if not INTERRUPTED.match(t)]
            for m in messages[at + 1:]:
                if m.get("role") == "user":
                    found = tool_results(m)
                    if found:
                        self.rounds += 1
                        self.results.extend(found)
        self.tools = []
        for t in body.get("tools") or []:
            if isinstance(t, dict) and isinstance(t.get("name"), str):
                schema = t.get("input_schema")
                self.tools.append((t["name"], schema if isinstance(schema, dict) else {}))
        system = body.get("system")
        self.system = system if isinstance(system, str) else flatten(system)
        hint = CWD_HINT.search(self.system)
        self.cwd = hint.group(1) if hint else None

    def is_auxiliary(self):
        low = self.system.lower()
        return not self.tools and ("title" in low or "summar" in low)


class Markers:
    def __init__(self, prompt):
        self.tools = []         # [(name, argument-or-None)]
        self.thinking = False
        self.slow = None
        self.long = None
        self.echo = False
        self.recall = False
        self.hang = False
        self.error = None       # (code, limit-or-None)
        self.stream_error = None  # ("stream", limit-or-None) for [[error:stream[:K]]]
        for name, arg in MARKER.findall(prompt):
            name = name.lower()
            arg = arg.strip() if arg else ""
            if name == "tool" and arg:
                tool, _, rest = arg.partition(":")
                self.tools.append((tool.strip(), rest.strip() or None))
            elif name == "thinking":
                self.thinking = True
            elif name == "slow":
                self.slow = max(0.0, _number(arg, float, 5.0))
            elif name == "long":
                self.long = max(1, _number(arg, int, 100))
            elif name == "echo":
                self.echo = True
            elif name == "recall":
                self.recall = True
            elif name == "hang":
                self.hang = True
            elif name == "error":
                code, _, limit = arg.partition(":")
                limit = _number(limit, int, None) if limit else None
                if code.strip().lower() == "stream":
                    self.stream_error = ("stream", limit)
                else:
                    self.error = (_number(code, int, 500), limit)


def _number(text, kind, default):
    try:
        return kind(text)
    except (TypeError, ValueError):
        return default


# ---------------------------------------------------------------- building tool calls

def find_tool(tools, wanted):
    low = wanted.lower()
    for test in (lambda n: n == wanted, lambda n: n.lower() == low,
                 lambda n: n.lower().endswith("__" + low)):
        for name, schema in tools:
            if test(name):
                return name, schema
    return None, None


def placeholder(spec):
    if not isinstance(spec, dict):
        return "mock"
    if isinstance(spec.get("enum"), list) and spec["enum"]:
        return spec["enum"][0]
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return {"integer": 1, "number": 1, "boolean": False, "array": [],
            "object": {}}.get(kind, "mock")


def tool_input(kind, argument, schema, cwd):
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    first = lambda keys: next((k for k in keys if k in props), None)  # noqa: E731
    args = {}
    if kind in ("write", "read", "edit"):
        path = argument or DEFAULT_FILE
        if cwd and not os.path.isabs(path):
            path = os.path.join(cwd, path)
        args[first(PATH_KEYS) or "file_path"] = path
        if kind == "write":
            args["content"] = WRITE_CONTENT
        elif kind == "edit":
            old, new = first(OLD_KEYS), first(NEW_KEYS)
            if old and new:
                args[old], args[new] = "hello", "HELLO"
            elif "edits" in props:
                args["edits"] = [{"oldText": "hello", "newText": "HELLO"}]
            else:
                args["old_string"], args["new_string"] = "hello", "HELLO"
    elif kind == "bash" or ("command" in props and not argument):
        args["command"] = argument or DEFAULT_COMMAND
        if "description" in props:
            args["description"] = "Mock model command"
    elif argument:
        try:
            parsed = json.loads(argument)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            args = parsed
    for key in schema.get("required") or []:
        if key not in args:
            args[key] = placeholder(props.get(key))
    return args


# ---------------------------------------------------------------- deciding the reply

class Reply:
    """The planned answer: blocks plus pacing, or an error / hang outcome."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.blocks = []        # ("thinking", text) | ("text", text) | ("tool_use", name, input)
        self.status = 200
        self.hang = False
        self.delay = 0.0        # seconds before each text delta of the final answer
        self.break_after = None  # [[error:stream]]: text deltas sent before the error event
        self.words_per_delta = 1

    @property
    def stop_reason(self):
        return "tool_use" if any(b[0] == "tool_use" for b in self.blocks) else "end_turn"

    def output_tokens(self):
        words = 0
        for block in self.blocks:
            if block[0] == "tool_use":
                words += len(json.dumps(block[2]).split())
            else:
                words += len(block[1].split())
        return max(1, words)


def requested_schema(body):
    """The JSON schema of a structured-output request, or None."""
    fmt = (body.get("output_config") or {}).get("format") if isinstance(
        body.get("output_config"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and \
            isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    return None


def sample_of(schema, depth=0):
    """A small value that satisfies a (simple) JSON schema."""
    if not isinstance(schema, dict) or depth > 8:
        return AUX_REPLY
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        return {k: sample_of(v, depth + 1) for k, v in props.items()}
    if kind == "array":
        return [sample_of(schema.get("items"), depth + 1)]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    return AUX_REPLY


def thinking_text(prompt):
    return ("The user wrote %d words. This is the hotplex mock model thinking "
            "before it answers." % len(prompt.split()))


def decide(body, state):
    conv = Conversation(body)
    if conv.is_auxiliary():
        reply = Reply("auxiliary")
        schema = requested_schema(body)
        text = json.dumps(sample_of(schema)) if schema is not None else AUX_REPLY
        reply.blocks.append(("text", text))
        return conv, reply
    marks = Markers(conv.prompt)
    if marks.error and state.should_fail(marks.error[0], marks.error[1], conv.prompt):
        reply = Reply("error")
        reply.status = marks.error[0]
        return conv, reply
    if marks.stream_error and state.should_fail("stream", marks.stream_error[1], conv.prompt):
        reply = Reply("stream_error")
        reply.break_after = 2
        reply.blocks.append(("text", GREETING))
        return conv, reply
    if marks.hang:
        reply = Reply("hang")
        reply.hang = True
        return conv, reply

    reply = Reply("text")
    if marks.thinking and conv.rounds == 0:
        reply.blocks.append(("thinking", thinking_text(conv.prompt)))
        reply.scenario = "thinking"
    if conv.rounds < len(marks.tools):
        wanted, argument = marks.tools[conv.rounds]
        name, schema = find_tool(conv.tools, wanted)
        if name is None:
            reply.scenario = "tool_missing"
            reply.blocks.append(("text", "The mock model cannot call %r: the request offers "
                                 "no such tool." % wanted))
            return conv, reply
        reply.scenario = "tool_use"
        reply.blocks.append(("text", "Calling %s." % name))
        reply.blocks.append(("tool_use", name, tool_input(wanted.lower(), argument, schema,
                                                          conv.cwd)))
        return conv, reply

    if marks.tools:
        reply.scenario = "tool_final"
        quoted = " | ".join('"%s"' % r.strip()[:300] for r in conv.results) or '"(no output)"'
        text = "Tool output: " + quoted
    elif marks.recall:
        reply.scenario = "recall"
        text = "Earlier prompts: " + (" | ".join("'%s'" % p[:120] for p in conv.earlier)
                                      or "(none)")
    elif marks.echo:
        reply.scenario = "echo"
        text = "You said: " + conv.prompt
    elif marks.long:
        reply.scenario = "long"
        text = " ".join("word-%d" % i for i in range(1, marks.long + 1))
        reply.words_per_delta = 8
    else:
        text = GREETING
    if marks.slow is not None:
        words = text.split(" ")
        pad = 10 - (len(words) + reply.words_per_delta - 1) // reply.words_per_delta
        if pad > 0:
            text += "".join(" tick-%d" % i for i in range(1, pad + 1))
        pieces = (len(text.split(" ")) + reply.words_per_delta - 1) // reply.words_per_delta
        reply.delay = marks.slow / pieces
        if reply.scenario == "text":
            reply.scenario = "slow"
    reply.blocks.append(("text", text))
    return conv, reply


def input_tokens(body):
    return max(1, len(json.dumps(body.get("messages") or [])) // 4)


def signature_for(text):
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def pieces_of(text, words_per_piece):
    """Split text into deltas of N words; joined they give back the text."""
    words = text.split(" ")
    out = []
    for i in range(0, len(words), words_per_piece):
        chunk = " ".join(words[i:i + words_per_piece])
        out.append(chunk if i + words_per_piece >= len(words) else chunk + " ")
    return out


# ---------------------------------------------------------------- HTTP

class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, state):
        self.state = state
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class ClientGone(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hotplex-mock-model/1"

    # -- plumbing
    @property
    def state(self):
        return self.server.state

    def log_message(self, fmt, *args):
        if not self.state.quiet:
            sys.stderr.write("mock_model: %s\n" % (fmt % args))

    def route(self):
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def auth_kind(self):
        if self.headers.get("x-api-key"):
            return "x-api-key"
        if (self.headers.get("authorization") or "").lower().startswith("bearer"):
            return "bearer"
        return "none"

    def note(self, scenario, status, body=None, conv=None):
        body = body if isinstance(body, dict) else {}
        entry = {
            "ts": round(time.time(), 3), "method": self.command, "path": self.path,
            "model": body.get("model"), "stream": bool(body.get("stream")),
            "n_messages": conv.n_messages if conv else len(body.get("messages") or []),
            "last_user_text": conv.prompt[:500] if conv else "",
            "tools": [name for name, _ in conv.tools] if conv else [],
            "tool_rounds": conv.rounds if conv else 0,
            "scenario": scenario, "status": status, "auth": self.auth_kind(),
        }
        if self.state.keep_bodies and body:
            entry["body"] = body
        self.state.record(entry)

    def send_json(self, status, obj, extra_headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in extra_headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def error_json(self, status, message, extra_headers=()):
        self.send_json(status, {"type": "error", "error": {
            "type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": self.state.new_id("req")}, extra_headers)

    def begin_chunked(self, content_type):
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", self.state.new_id("req"))
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data):
        if not data:
            return
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError as exc:
            raise ClientGone() from exc

    def end_chunked(self):
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as exc:
            raise ClientGone() from exc

    def read_body(self):
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            raw = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        else:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            return None

    # -- verbs
    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        self.note("head", 200)

    def do_GET(self):
        route = self.route()
        if route == "/_mock/health":
            self.send_json(200, {"ok": True, "requests": len(self.state.snapshot())})
            return
        if route == "/_mock/requests":
            self.send_json(200, self.state.snapshot())
            return
        if route.endswith("/models"):
            self.send_json(200, {"data": [model_info(m) for m in MODELS], "has_more": False,
                                 "first_id": MODELS[0], "last_id": MODELS[-1]})
            self.note("models", 200)
            return
        head, _, model = route.rpartition("/")
        if head.endswith("/models") and model:
            self.send_json(200, model_info(model))
            self.note("models", 200)
            return
        self.error_json(404, "mock model: no GET %s" % route)
        self.note("not_found", 404)

    def do_DELETE(self):
        if self.route() == "/_mock/requests":
            self.state.reset()
            self.send_json(200, {"ok": True})
            return
        self.error_json(404, "mock model: no DELETE %s" % self.route())

    def do_POST(self):
        route = self.route()
        body = self.read_body()
        if not isinstance(body, dict):
            self.error_json(400, "mock model: the request body is not a JSON object")
            self.note("bad_request", 400)
            return
        if route.endswith("/messages/count_tokens"):
            self.send_json(200, {"input_tokens": input_tokens(body)})
            self.note("count_tokens", 200, body, Conversation(body))
            return
        if route.endswith("/messages"):
            conv, reply = decide(body, self.state)
            self.note(reply.scenario, reply.status, body, conv)
            try:
                self.answer(body, reply)
            except ClientGone:
                self.close_connection = True
            return
        self.error_json(404, "mock model: no POST %s" % route)
        self.note("not_found", 404, body)

    # -- the Messages answer
    def answer(self, body, reply):
        if reply.status != 200:
            headers = [("retry-after", "0")] if reply.status in RETRY_NOW else []
            self.error_json(reply.status, "mock model: simulated HTTP %d" % reply.status,
                            headers)
            return
        stream = bool(body.get("stream"))
        if reply.break_after is not None and not stream:
            self.error_json(500, "mock model: simulated failure in the middle of a stream")
            return
        if reply.hang:
            self.begin_chunked("text/event-stream" if stream else "application/json")
            self.wait_for_client_to_leave()
            self.close_connection = True
            return
        model = body.get("model") or MODELS[0]
        usage = {"input_tokens": input_tokens(body), "output_tokens": reply.output_tokens(),
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        message_id = self.state.new_id("msg")
        content = []
        for block in reply.blocks:
            if block[0] == "thinking":
                content.append({"type": "thinking", "thinking": block[1],
                                "signature": signature_for(block[1])})
            elif block[0] == "text":
                content.append({"type": "text", "text": block[1]})
            else:
                content.append({"type": "tool_use", "id": self.state.new_id("toolu"),
                                "name": block[1], "input": block[2]})
        if not stream:
            if reply.delay:
                time.sleep(reply.delay * len(pieces_of(content[-1].get("text", ""),
                                                        reply.words_per_delta)))
            self.send_json(200, {"id": message_id, "type": "message", "role": "assistant",
                                 "model": model, "content": content,
                                 "stop_reason": reply.stop_reason, "stop_sequence": None,
                                 "usage": usage})
            return
        self.begin_chunked("text/event-stream")
        send = self.sse
        send("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": dict(usage, output_tokens=1)}})
        send("ping", {"type": "ping"})
        for index, block in enumerate(content):
            kind = block["type"]
            if kind == "thinking":
                send("content_block_start", {"type": "content_block_start", "index": index,
                                             "content_block": {"type": "thinking",
                                                               "thinking": "",
                                                               "signature": ""}})
                for piece in pieces_of(block["thinking"], 3):
                    self.delta(index, {"type": "thinking_delta", "thinking": piece})
                self.delta(index, {"type": "signature_delta", "signature": block["signature"]})
            elif kind == "text":
                send("content_block_start", {"type": "content_block_start", "index": index,
                                             "content_block": {"type": "text", "text": ""}})
                final = index == len(content) - 1
                for n, piece in enumerate(pieces_of(block["text"], reply.words_per_delta)):
                    if n == reply.break_after:
                        send("error", {"type": "error", "error": {
                            "type": "overloaded_error",
                            "message": "mock model: simulated failure in the middle of a stream"}})
                        self.end_chunked()
                        self.close_connection = True
                        return
                    if final and reply.delay:
                        self.pause(reply.delay)
                    self.delta(index, {"type": "text_delta", "text": piece})
            else:
                send("content_block_start", {"type": "content_block_start", "index": index,
                                             "content_block": {"type": "tool_use",
                                                               "id": block["id"],
                                                               "name": block["name"],
                                                               "input": {}}})
                encoded = json.dumps(block["input"])
                cut = [0, len(encoded) // 3, 2 * len(encoded) // 3, len(encoded)]
                for a, b in zip(cut, cut[1:]):
                    if b > a:
                        self.delta(index, {"type": "input_json_delta",
                                           "partial_json": encoded[a:b]})
            send("content_block_stop", {"type": "content_block_stop", "index": index})
        send("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": reply.stop_reason,
                                         "stop_sequence": None},
                               "usage": usage})
        send("message_stop", {"type": "message_stop"})
        self.end_chunked()

    def sse(self, event, data):
        self.chunk(("event: %s\ndata: %s\n\n" % (event, json.dumps(data))).encode())

    def delta(self, index, delta):
        self.sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                         "delta": delta})

    def pause(self, seconds):
        if self.state.stopping.wait(seconds):
            raise ClientGone()

    def wait_for_client_to_leave(self):
        sock = self.connection
        while not self.state.stopping.is_set():
            readable, _, _ = select.select([sock], [], [], 0.25)
            if not readable:
                continue
            try:
                if not sock.recv(1, socket.MSG_PEEK):
                    return
            except OSError:
                return
            time.sleep(0.25)  # unexpected bytes: keep waiting, do not spin


def model_info(model_id):
    return {"type": "model", "id": model_id, "display_name": model_id,
            "created_at": "2025-01-01T00:00:00Z"}


# ---------------------------------------------------------------- self test

def self_test():
    import subprocess
    import urllib.error
    import urllib.request

    state = State(quiet=True)
    server = Server(("127.0.0.1", 0), state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        sys.stdout.write("%-44s %s%s\n" % (name, "ok" if ok else "FAIL",
                                           "" if ok or not detail else "  (%s)" % detail))
        sys.stdout.flush()

    def call(method, path, body=None, timeout=15, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method,
                                     headers=dict({"content-type": "application/json"},
                                                  **(headers or {})))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, lower(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, lower(err.headers), err.read().decode()

    def lower(headers):
        return {k.lower(): v for k, v in headers.items()}

    def events(raw):
        out = []
        for frame in raw.split("\n\n"):
            lines = dict(l.split(": ", 1) for l in frame.splitlines() if ": " in l)
            if "event" in lines:
                out.append((lines["event"], json.loads(lines["data"])))
        return out

    def stream_shape_ok(evs):
        """message_start first, message_stop last, blocks properly opened/closed."""
        names = [e for e, _ in evs]
        if not names or names[0] != "message_start" or names[-1] != "message_stop":
            return False
        if names[-2] != "message_delta":
            return False
        open_idx = None
        for name, data in evs:
            if name == "content_block_start":
                if open_idx is not None:
                    return False
                open_idx = data["index"]
            elif name == "content_block_delta" and data["index"] != open_idx:
                return False
            elif name == "content_block_stop":
                if data["index"] != open_idx:
                    return False
                open_idx = None
        return open_idx is None

    def assemble(evs):
        """Rebuild the content blocks from a stream, like a client does."""
        blocks = {}
        for name, data in evs:
            if name == "content_block_start":
                blocks[data["index"]] = dict(data["content_block"])
                blocks[data["index"]]["_json"] = ""
            elif name == "content_block_delta":
                b, d = blocks[data["index"]], data["delta"]
                if d["type"] == "text_delta":
                    b["text"] += d["text"]
                elif d["type"] == "thinking_delta":
                    b["thinking"] += d["thinking"]
                elif d["type"] == "signature_delta":
                    b["signature"] += d["signature"]
                elif d["type"] == "input_json_delta":
                    b["_json"] += d["partial_json"]
        out = []
        for i in sorted(blocks):
            b = blocks[i]
            if b["type"] == "tool_use":
                b["input"] = json.loads(b["_json"] or "{}")
            b.pop("_json")
            out.append(b)
        return out

    def user(text):
        return {"role": "user", "content": [{"type": "text", "text": text}]}

    claude_tools = [
        {"name": "Bash", "input_schema": {"type": "object", "required": ["command"],
                                          "properties": {"command": {"type": "string"},
                                                         "description": {"type": "string"},
                                                         "timeout": {"type": "number"}}}},
        {"name": "Write", "input_schema": {"type": "object",
                                           "required": ["file_path", "content"],
                                           "properties": {"file_path": {"type": "string"},
                                                          "content": {"type": "string"}}}},
        {"name": "Read", "input_schema": {"type": "object", "required": ["file_path"],
                                          "properties": {"file_path": {"type": "string"},
                                                         "limit": {"type": "number"}}}},
        {"name": "Edit", "input_schema": {"type": "object",
                                          "required": ["file_path", "old_string",
                                                       "new_string"],
                                          "properties": {"file_path": {"type": "string"},
                                                         "old_string": {"type": "string"},
                                                         "new_string": {"type": "string"},
                                                         "replace_all": {"type": "boolean"}}}},
    ]
    opencode_tools = [
        {"name": "edit", "input_schema": {"type": "object",
                                          "required": ["filePath", "oldString", "newString"],
                                          "properties": {"filePath": {"type": "string"},
                                                         "oldString": {"type": "string"},
                                                         "newString": {"type": "string"}}}},
        {"name": "mcp__acp__Write", "input_schema": {"type": "object",
                                                     "required": ["path", "content", "mode"],
                                                     "properties": {
                                                         "path": {"type": "string"},
                                                         "content": {"type": "string"},
                                                         "mode": {"type": "string",
                                                                  "enum": ["create", "x"]}}}},
        {"name": "todo", "input_schema": {"type": "object", "required": ["items"],
                                          "properties": {"items": {"type": "array"}}}},
    ]
    system_cwd = [{"type": "text", "text": "You are an agent.\n - Primary working directory: "
                                           "/srv/proj\n"}]

    def messages(body_messages, stream=False, **extra):
        body = dict({"model": "claude-sonnet-4-5", "max_tokens": 100,
                     "messages": body_messages, "stream": stream}, **extra)
        return call("POST", "/v1/messages", body)

    try:
        # --- housekeeping endpoints
        st, _, raw = call("GET", "/_mock/health")
        check("GET /_mock/health", st == 200 and json.loads(raw)["ok"] is True)
        st, hdr, raw = call("HEAD", "/anything/at/all")
        check("HEAD anything -> 200", st == 200 and raw == "")
        st, _, raw = call("GET", "/v1/models?limit=5")
        check("GET .../models", st == 200 and
              [m["id"] for m in json.loads(raw)["data"]] == list(MODELS))
        st, _, raw = call("GET", "/prefix/v1/models/claude-x")
        check("GET .../models/<id>", st == 200 and json.loads(raw)["id"] == "claude-x")
        st, _, raw = call("POST", "/v1/messages/count_tokens",
                          {"model": "m", "messages": [user("hello there")]})
        expected = max(1, len(json.dumps([user("hello there")])) // 4)
        check("POST .../messages/count_tokens", st == 200 and
              json.loads(raw) == {"input_tokens": expected})
        st, _, raw = call("GET", "/nope")
        check("unknown GET -> 404 error body", st == 404 and
              json.loads(raw)["error"]["type"] == "not_found_error")
        st, _, raw = call("POST", "/v1/other", {"x": 1})
        check("unknown POST -> 404", st == 404)

        # --- plain text, JSON and stream, with usage
        msgs = [user("hi")]
        st, _, raw = messages(msgs)
        msg = json.loads(raw)
        check("text (JSON)", st == 200 and msg["content"] == [{"type": "text",
                                                              "text": GREETING}]
              and msg["stop_reason"] == "end_turn")
        check("usage deterministic and non-zero",
              msg["usage"]["input_tokens"] == max(1, len(json.dumps(msgs)) // 4)
              and msg["usage"]["output_tokens"] == len(GREETING.split()))
        st, hdr, raw = messages(msgs, stream=True)
        evs = events(raw)
        check("text (SSE) stream shape", st == 200 and stream_shape_ok(evs)
              and "text/event-stream" in hdr.get("content-type", ""))
        deltas = [d["delta"]["text"] for e, d in evs if e == "content_block_delta"]
        check("text streamed word by word", len(deltas) == len(GREETING.split())
              and "".join(deltas) == GREETING)
        md = [d for e, d in evs if e == "message_delta"][0]
        check("message_delta stop_reason + usage", md["delta"]["stop_reason"] == "end_turn"
              and md["usage"]["output_tokens"] == len(GREETING.split()))
        st, _, raw = call("POST", "/x/v1/v1/messages", {"model": "m", "messages": msgs})
        check("path suffix /x/v1/v1/messages", st == 200 and GREETING in raw)

        # --- prompt selection: reminders, tool_result-only messages, merged blocks
        tricky = [user("old question"),
                  {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
                  {"role": "user", "content": [
                      {"type": "text", "text": "<system-reminder>[[error:500]]</system-reminder>"},
                      {"type": "text", "text": "queued first"},
                      {"type": "text", "text": "the prompt [[echo]]"}]}]
        st, _, raw = messages(tricky)
        check("prompt = last text block, reminders skipped", st == 200 and
              json.loads(raw)["content"][0]["text"] == "You said: the prompt [[echo]]")

        # --- tools: claude schemas, several markers, rounds
        prompt = "go [[tool:bash:echo hi]] [[tool:write]] [[tool:read:/abs/f]] [[tool:edit]]"
        hist = [user(prompt)]
        calls = []
        for round_no in range(4):
            st, _, raw = messages(hist, stream=True, tools=claude_tools, system=system_cwd)
            evs = events(raw)
            blocks = assemble(evs)
            tool = [b for b in blocks if b["type"] == "tool_use"]
            ok = st == 200 and stream_shape_ok(evs) and len(tool) == 1 and \
                [d for e, d in evs if e == "message_delta"][0]["delta"]["stop_reason"] == "tool_use"
            check("tool round %d streams one tool_use" % round_no, ok)
            if not tool:
                break
            calls.append((tool[0]["name"], tool[0]["input"]))
            hist.append({"role": "assistant", "content": blocks})
            hist.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool[0]["id"],
                 "content": [{"type": "text", "text": "result-%d" % round_no}]}]})
        check("bash input", calls and calls[0] == ("Bash", {
            "command": "echo hi", "description": "Mock model command"}), calls[:1])
        check("write input (cwd from system prompt)", len(calls) > 1 and calls[1] == (
            "Write", {"file_path": "/srv/proj/" + DEFAULT_FILE, "content": WRITE_CONTENT}),
            calls[1:2])
        check("read input (absolute PATH kept)", len(calls) > 2 and
              calls[2] == ("Read", {"file_path": "/abs/f"}), calls[2:3])
        check("edit input", len(calls) > 3 and calls[3] == ("Edit", {
            "file_path": "/srv/proj/" + DEFAULT_FILE, "old_string": "hello",
            "new_string": "HELLO"}), calls[3:4])
        st, _, raw = messages(hist, tools=claude_tools)
        text = json.loads(raw)["content"][0]["text"]
        check("final text quotes tool output", text ==
              'Tool output: "result-0" | "result-1" | "result-2" | "result-3"', text)

        # --- other schemas: opencode camelCase, MCP suffix, enums, JSON argument, missing
        st, _, raw = messages([user("[[tool:EDIT:a.txt]]")], tools=opencode_tools)
        block = json.loads(raw)["content"][-1]
        check("opencode edit (camelCase, case-insensitive)", block["name"] == "edit" and
              block["input"] == {"filePath": "a.txt", "oldString": "hello",
                                 "newString": "HELLO"}, block)
        st, _, raw = messages([user("[[tool:write]]")], tools=opencode_tools)
        block = json.loads(raw)["content"][-1]
        check("MCP suffix + required enum filled", block["name"] == "mcp__acp__Write" and
              block["input"] == {"path": DEFAULT_FILE, "content": WRITE_CONTENT,
                                 "mode": "create"}, block)
        st, _, raw = messages([user('[[tool:todo:{"items": ["a"]}]]')], tools=opencode_tools)
        block = json.loads(raw)["content"][-1]
        check("any tool with JSON argument", block.get("input") == {"items": ["a"]}, block)
        st, _, raw = messages([user("[[tool:bash]]")], tools=opencode_tools)
        msg = json.loads(raw)
        check("missing tool -> explanatory text", msg["stop_reason"] == "end_turn" and
              "no such tool" in msg["content"][0]["text"])

        # --- thinking
        st, _, raw = messages([user("[[thinking]] ponder")], stream=True)
        evs = events(raw)
        blocks = assemble(evs)
        kinds = [d["delta"]["type"] for e, d in evs if e == "content_block_delta"]
        check("thinking block streamed before text", stream_shape_ok(evs) and
              [b["type"] for b in blocks] == ["thinking", "text"] and
              "thinking_delta" in kinds and "signature_delta" in kinds and
              blocks[0]["signature"] and blocks[0]["thinking"])
        st, _, raw = messages([user("[[thinking]][[tool:bash]]")], tools=claude_tools)
        check("thinking + tool_use in one message", [b["type"] for b in json.loads(raw)[
            "content"]] == ["thinking", "text", "tool_use"])

        # --- slow / long / echo / recall
        started = time.time()
        st, _, raw = messages([user("[[slow:1.5]]")], stream=True)
        took = time.time() - started
        text_deltas = [d for e, d in events(raw) if e == "content_block_delta"]
        check("slow:1.5 spreads >=10 deltas over ~1.5 s", 1.4 <= took < 4 and
              len(text_deltas) >= 10, "%.2fs" % took)
        st, _, raw = messages([user("[[long:50]]")], stream=True)
        blocks = assemble(events(raw))
        words = blocks[0]["text"].split()
        check("long:50 -> 50 words in 8-word deltas", len(words) == 50 and
              words[-1] == "word-50" and len([1 for e, _ in events(raw)
                                               if e == "content_block_delta"]) == 7)
        recall_hist = [user("remember PINEAPPLE"),
                       {"role": "assistant", "content": "ok"},
                       user("second"), {"role": "assistant", "content": "ok"},
                       user("[Request interrupted by user]"),
                       {"role": "assistant", "content": "ok"},
                       {"role": "user", "content": "what was it [[recall]]"}]
        st, _, raw = messages(recall_hist)
        check("recall lists earlier prompts", json.loads(raw)["content"][0]["text"] ==
              "Earlier prompts: 'remember PINEAPPLE' | 'second'")
        st, _, raw = messages([user("[[recall]]")])
        check("recall with no history", "(none)" in raw)

        # --- errors
        for code, etype in ((400, "invalid_request_error"), (429, "rate_limit_error"),
                            (500, "api_error"), (529, "overloaded_error")):
            st, hdr, raw = messages([user("[[error:%d]]" % code)], stream=True)
            err = json.loads(raw)
            retry = hdr.get("retry-after")
            check("error:%d body + headers" % code, st == code and err["type"] == "error"
                  and err["error"]["type"] == etype and
                  retry == ("0" if code in RETRY_NOW else None))
        codes = [messages([user("[[error:503:2]] retry me")])[0] for _ in range(3)]
        check("error:503:2 fails twice then answers", codes == [503, 503, 200], codes)
        st, _, raw = messages([user("[[error:stream]]")], stream=True)
        evs = events(raw)
        check("error:stream -> 200, 2 deltas, error event", st == 200 and
              [e for e, _ in evs][-1] == "error" and
              evs[-1][1]["error"]["type"] == "overloaded_error" and
              len([1 for e, _ in evs if e == "content_block_delta"]) == 2)
        st, _, raw = messages([user("[[error:stream]]")])
        check("error:stream non-streaming -> 500", st == 500)
        st1 = messages([user("[[error:stream:1]] once")], stream=True)[2]
        st2 = messages([user("[[error:stream:1]] once")], stream=True)[2]
        check("error:stream:1 breaks only once", "event: error" in st1 and
              "event: error" not in st2 and "message_stop" in st2)

        # --- auxiliary requests never fail
        st, _, raw = messages([user("[[error:500]] [[hang]] [[tool:bash]]")],
                              system="Generate a concise title for this conversation")
        check("auxiliary (title) request -> Mock title", st == 200 and
              json.loads(raw)["content"][0]["text"] == AUX_REPLY)
        title_schema = {"type": "json_schema", "schema": {
            "type": "object", "required": ["title"], "additionalProperties": False,
            "properties": {"title": {"type": "string"}}}}
        st, _, raw = messages([user("<session>x [[hang]]</session>")], stream=True,
                              system=[{"type": "text", "text": "Generate a concise title"}],
                              output_config={"format": title_schema})
        text = assemble(events(raw))[0]["text"]
        check("auxiliary with json_schema -> JSON title", st == 200 and
              json.loads(text) == {"title": AUX_REPLY}, text)

        # --- hang: headers, then silence until the client leaves
        sock = socket.create_connection(server.server_address, timeout=5)
        payload = json.dumps({"model": "m", "stream": True, "messages": [user("[[hang]]")]})
        sock.sendall(("POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: "
                      "application/json\r\ncontent-length: %d\r\n\r\n%s"
                      % (len(payload), payload)).encode())
        sock.settimeout(3)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        sock.settimeout(1.0)
        try:
            extra = sock.recv(4096)
        except socket.timeout:
            extra = None
        check("hang: 200 headers then silence", head.startswith(b"HTTP/1.1 200") and
              extra is None)
        sock.close()
        time.sleep(0.6)
        check("server still serves after hang client left",
              call("GET", "/_mock/health", timeout=3)[0] == 200)

        # --- request log
        st, _, raw = call("GET", "/_mock/requests")
        log = json.loads(raw)
        secret = "sk-ant-secret-value-123"
        call("POST", "/v1/messages", {"model": "mock-x", "messages": [user("log me")],
                                      "tools": claude_tools},
             headers={"x-api-key": secret})
        entry = json.loads(call("GET", "/_mock/requests")[2])[-1]
        check("request log fields", entry["method"] == "POST" and
              entry["path"] == "/v1/messages" and entry["model"] == "mock-x" and
              entry["last_user_text"] == "log me" and entry["n_messages"] == 1 and
              entry["tools"] == ["Bash", "Write", "Read", "Edit"] and
              entry["scenario"] == "text" and entry["auth"] == "x-api-key", entry)
        check("request log never holds the API key", secret not in call(
            "GET", "/_mock/requests")[2] and len(log) > 30)
        scen = {e["scenario"] for e in log}
        check("request log scenarios", {"tool_use", "tool_final", "thinking", "recall",
                                        "echo", "long", "slow", "error", "hang",
                                        "stream_error",
                                        "auxiliary"} <= scen, sorted(scen))
        st, _, _ = call("DELETE", "/_mock/requests")
        check("DELETE /_mock/requests clears", st == 200 and
              json.loads(call("GET", "/_mock/requests")[2]) == [])
    finally:
        state.stopping.set()
        server.shutdown()
        server.server_close()

    # --- the command line: listening line, port file, log file, SIGTERM -> exit 0
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        log_file = os.path.join(tmp, "log.jsonl")
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--port", "0",
                                  "--port-file", port_file, "--log", log_file, "--quiet"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = child.stdout.readline().strip()
            port = int(line.split()[1]) if line.startswith("MOCK_MODEL_LISTENING ") else 0
            check("CLI prints MOCK_MODEL_LISTENING <port>", port > 0, line)
            with open(port_file) as f:
                check("CLI --port-file", f.read().strip() == str(port))
            base = "http://127.0.0.1:%d" % port
            st, _, raw = call("POST", "/v1/messages", {"model": "m", "messages": [user("hi")]})
            check("CLI serves a message", st == 200 and GREETING in raw)
            with open(log_file) as f:
                check("CLI --log writes JSON lines",
                      json.loads(f.readline())["last_user_text"] == "hi")
            # a hanging client must not block shutdown
            def hung_client():
                try:
                    call("POST", "/v1/messages", {"model": "m", "stream": True,
                                                  "messages": [user("[[hang]]")]}, timeout=30)
                except Exception:   # the server goes away underneath it: expected
                    pass
            threading.Thread(target=hung_client, daemon=True).start()
            time.sleep(0.5)
            child.send_signal(signal.SIGTERM)
            rc = child.wait(timeout=10)
            check("CLI SIGTERM -> exit 0 (with a hung client)", rc == 0, rc)
            child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--quiet"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            child.stdout.readline()
            child.send_signal(signal.SIGINT)
            rc = child.wait(timeout=10)
            check("CLI SIGINT -> exit 0", rc == 0, rc)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    good = all(results)
    sys.stdout.write("SELF-TEST %s (%d checks)\n" % ("OK" if good else "FAILED", len(results)))
    return 0 if good else 1


# ---------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Offline mock of the Anthropic Messages API for agent CLIs "
                    "(see the module docstring for scenarios).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--port-file", help="write the chosen port to this file")
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--quiet", action="store_true", help="no request lines on stderr")
    parser.add_argument("--bodies", action="store_true",
                        help="keep request bodies in the request log")
    parser.add_argument("--self-test", action="store_true",
                        help="exercise every endpoint and scenario, then exit")
    opts = parser.parse_args(argv)
    if opts.self_test:
        return self_test()

    state = State(log_path=opts.log, quiet=opts.quiet, keep_bodies=opts.bodies)
    server = Server((opts.host, opts.port), state)
    port = server.server_address[1]

    def stop(signum, frame):
        state.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    # handlers first: whoever reads the listening line may signal us at once
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if opts.port_file:
        with open(opts.port_file, "w") as f:
            f.write("%d\n" % port)
    sys.stdout.write("MOCK_MODEL_LISTENING %d\n" % port)
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if state.log_file:
            state.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
