//! A first end-to-end check of the harness and the gateway.
mod support;

use serde_json::json;
use support::*;

#[test]
fn echo_turn_through_the_mock_agent() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    let ack = c.init(json!({"worker_type": "claude_code"}));
    assert_eq!(ack["seq"], 0);
    assert_eq!(ack["priority"], "control");
    assert_eq!(ack["event"]["data"]["state"], "idle");
    let frames = c.turn("hello world");
    assert_eq!(delta_text(&frames), "echo: hello world");
    assert_eq!(frames.iter().filter(|f| ev_type(f) == "done").count(), 1);
}
