//! OTLP/JSON encoding of an `ExportTraceServiceRequest` (operations.md §6.1):
//! lowerCamelCase keys, trace/span ids as lower-case hex, enums as
//! integers, 64-bit integers as decimal strings. Runs on the `otlp` thread.

use serde_json::{Map, Value as J, json};

use super::span::{KeyValue, SpanData, Status, Value};

/// Instrumentation scope name.
pub const SCOPE: &str = "hotplex";

fn any_value(v: &Value) -> J {
    match v {
        Value::Str(s) => json!({ "stringValue": &**s }),
        Value::Static(s) => json!({ "stringValue": s }),
        Value::Int(i) => json!({ "intValue": i.to_string() }),
        Value::Double(d) => json!({ "doubleValue": d }),
        Value::Bool(b) => json!({ "boolValue": b }),
    }
}

fn attributes(kvs: &[KeyValue]) -> J {
    J::Array(kvs.iter().map(|kv| json!({ "key": kv.key, "value": any_value(&kv.value) })).collect())
}

fn span(d: &SpanData) -> J {
    let mut m = Map::new();
    m.insert("traceId".into(), d.context.trace_id.hex().into());
    m.insert("spanId".into(), d.context.span_id.hex().into());
    if let Some(ts) = &d.context.trace_state {
        m.insert("traceState".into(), J::from(&**ts));
    }
    if let Some(p) = &d.parent {
        m.insert("parentSpanId".into(), p.hex().into());
    }
    m.insert("name".into(), d.name.into());
    m.insert("kind".into(), (d.kind as i64).into());
    m.insert("startTimeUnixNano".into(), d.start_ns.to_string().into());
    m.insert("endTimeUnixNano".into(), d.end_ns.to_string().into());
    m.insert("attributes".into(), attributes(&d.attrs));
    if !d.events.is_empty() {
        let events = d
            .events
            .iter()
            .map(|e| json!({"timeUnixNano": e.time_ns.to_string(), "name": e.name, "attributes": attributes(&e.attrs)}))
            .collect();
        m.insert("events".into(), J::Array(events));
    }
    if d.dropped_events > 0 {
        m.insert("droppedEventsCount".into(), d.dropped_events.into());
    }
    if !d.links.is_empty() {
        let links = d
            .links
            .iter()
            .map(|l| {
                let mut o = Map::new();
                o.insert("traceId".into(), l.trace_id.hex().into());
                o.insert("spanId".into(), l.span_id.hex().into());
                if let Some(ts) = &l.trace_state {
                    o.insert("traceState".into(), J::from(&**ts));
                }
                J::Object(o)
            })
            .collect();
        m.insert("links".into(), J::Array(links));
    }
    if let Status::Error(desc) = &d.status {
        m.insert("status".into(), json!({"code": 2, "message": &**desc}));
    }
    J::Object(m)
}

/// The request body for `spans` under `resource`.
pub fn request(resource: &[KeyValue], spans: &[SpanData]) -> Vec<u8> {
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": attributes(resource) },
            "scopeSpans": [{
                "scope": { "name": SCOPE, "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    });
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::ids::{SpanContext, SpanId, TraceId};
    use super::super::span::{Kind, SpanEvent};
    use super::*;

    #[test]
    fn shape_follows_the_otlp_json_rules() {
        let ctx = SpanContext {
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([0x01; 8]),
            sampled: true,
            remote: false,
            trace_state: Some("k=v".into()),
        };
        let d = SpanData {
            name: "hotplex.turn",
            kind: Kind::Server,
            context: ctx.clone(),
            parent: Some(SpanId([0x02; 8])),
            start_ns: 1_700_000_000_000_000_001,
            end_ns: 1_700_000_000_000_000_002,
            attrs: vec![
                KeyValue { key: "hotplex.turn", value: Value::Int(3) },
                KeyValue { key: "hotplex.cost_usd", value: Value::Double(0.5) },
                KeyValue { key: "hotplex.resumed", value: Value::Bool(false) },
                KeyValue { key: "hotplex.session_id", value: Value::Str("s".into()) },
            ],
            events: vec![SpanEvent { name: "first_delta", time_ns: 5, attrs: vec![] }],
            dropped_events: 2,
            links: vec![ctx],
            status: Status::Error("WORKER_CRASH".into()),
        };
        let res = vec![KeyValue { key: "service.name", value: Value::Static("hotplex") }];
        let v: J = serde_json::from_slice(&request(&res, &[d])).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0], json!({"key":"service.name","value":{"stringValue":"hotplex"}}));
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "abababababababababababababababab");
        assert_eq!(s["spanId"], "0101010101010101");
        assert_eq!(s["parentSpanId"], "0202020202020202");
        assert_eq!(s["traceState"], "k=v");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], "1700000000000000001");
        assert_eq!(s["attributes"][0]["value"], json!({"intValue": "3"}));
        assert_eq!(s["attributes"][1]["value"], json!({"doubleValue": 0.5}));
        assert_eq!(s["attributes"][2]["value"], json!({"boolValue": false}));
        assert_eq!(s["events"][0], json!({"timeUnixNano": "5", "name": "first_delta", "attributes": []}));
        assert_eq!(s["droppedEventsCount"], 2);
        assert_eq!(s["links"][0]["spanId"], "0101010101010101");
        assert_eq!(s["status"], json!({"code": 2, "message": "WORKER_CRASH"}));
    }
}
