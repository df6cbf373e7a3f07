#!/usr/bin/env python3
"""A fake OpenTelemetry collector for tests (operations.md §6.4).

Listens on 127.0.0.1, takes OTLP/HTTP JSON POSTs on /v1/traces, converts the
hex trace/span ids hotplex sends into the base64 that proto3 JSON mapping
expects for `bytes`, parses the body with `google.protobuf.json_format.Parse`
into an `ExportTraceServiceRequest` (so anything that is not valid OTLP fails
loudly), and appends what it saw to --out as JSON lines:

  {"kind":"request","n":1,"status":200,"path":"/v1/traces","headers":{...},"body":"<raw text>"}
  {"kind":"span","name":...,"trace_id":hex,"trace_id_len":16,"span_id":...,"parent_span_id":...,
   "attributes":{...},"events":[...],"links":[...],"status":{...},"resource":{...}}

The first --fail-first requests are answered --fail-status with
`Retry-After: --retry-after` (retry tests). Prints
"OTLP_RECEIVER_LISTENING <port>" once listening. Needs the pinned packages of
scripts/install-py-tools.sh.
"""

import argparse
import base64
import binascii
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

LOCK = threading.Lock()
STATE = {"n": 0}


def hex_to_b64(v):
    if not isinstance(v, str) or len(v) % 2 or v.lower() != v:
        return v  # left as is: Parse then rejects it or the length check fails
    try:
        return base64.b64encode(binascii.unhexlify(v)).decode()
    except (binascii.Error, ValueError):
        return v


def convert_ids(doc):
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in sp:
                        sp[k] = hex_to_b64(sp[k])
                for link in sp.get("links", []):
                    for k in ("traceId", "spanId"):
                        if k in link:
                            link[k] = hex_to_b64(link[k])
    return doc


def any_value(v):
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def span_records(req):
    out = []
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append({
                    "kind": "span",
                    "scope": ss.scope.name,
                    "name": sp.name,
                    "span_kind": sp.kind,
                    "trace_id": sp.trace_id.hex(),
                    "trace_id_len": len(sp.trace_id),
                    "span_id": sp.span_id.hex(),
                    "span_id_len": len(sp.span_id),
                    "parent_span_id": sp.parent_span_id.hex(),
                    "parent_span_id_len": len(sp.parent_span_id),
                    "trace_state": sp.trace_state,
                    "start_ns": sp.start_time_unix_nano,
                    "end_ns": sp.end_time_unix_nano,
                    "attributes": attrs(sp.attributes),
                    "events": [{"name": e.name, "attributes": attrs(e.attributes)} for e in sp.events],
                    "dropped_events": sp.dropped_events_count,
                    "links": [{
                        "trace_id": l.trace_id.hex(),
                        "trace_id_len": len(l.trace_id),
                        "span_id": l.span_id.hex(),
                        "span_id_len": len(l.span_id),
                    } for l in sp.links],
                    "status": {"code": sp.status.code, "message": sp.status.message},
                    "resource": resource,
                })
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    args = None
    out = None

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"{}", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def record(self, rows):
        with LOCK:
            for r in rows:
                self.out.write(json.dumps(r) + "\n")
            self.out.flush()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        with LOCK:
            STATE["n"] += 1
            n = STATE["n"]
        headers = {k.lower(): v for k, v in self.headers.items()}
        base = {"kind": "request", "n": n, "path": self.path, "headers": headers}
        if n <= self.args.fail_first:
            self.record([dict(base, status=self.args.fail_status, body=raw.decode("utf-8", "replace"))])
            return self.reply(self.args.fail_status, extra=[("Retry-After", str(self.args.retry_after))])
        if self.path != "/v1/traces" or headers.get("content-type") != "application/json":
            self.record([dict(base, status=404)])
            return self.reply(404)
        try:
            text = raw.decode("utf-8")
            req = json_format.Parse(json.dumps(convert_ids(json.loads(text))), ExportTraceServiceRequest())
        except Exception as e:  # any parse failure is a test failure, reported as 400
            self.record([dict(base, status=400, error=repr(e), body=raw.decode("utf-8", "replace"))])
            return self.reply(400, json.dumps({"error": repr(e)}).encode())
        self.record([dict(base, status=200, body=text)] + span_records(req))
        self.reply(200)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=503)
    p.add_argument("--retry-after", type=int, default=0)
    args = p.parse_args()
    Handler.args = args
    Handler.out = open(args.out, "a", encoding="utf-8")
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"OTLP_RECEIVER_LISTENING {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
