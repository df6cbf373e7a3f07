//! `claude_code`: Claude Code CLI in stream-json mode, one persistent process
//! per session (workers.md §2). Placeholder until the adapter lands.

use super::{Adapter, Caps, Launch, LaunchSpec, Out, PermissionReply, WorkerType};

pub struct ClaudeAdapter;

impl ClaudeAdapter {
    pub fn new() -> Self {
        ClaudeAdapter
    }
}

impl Default for ClaudeAdapter {
    fn default() -> Self {
        Self::new()
    }
}

impl Adapter for ClaudeAdapter {
    fn worker_type(&self) -> WorkerType {
        WorkerType::ClaudeCode
    }
    fn caps(&self) -> Caps {
        Caps {
            supports_resume: true,
            supports_permissions: true,
            supports_interrupt: true,
            supports_delta: true,
            supports_tool_call: true,
        }
    }
    fn launch(&mut self, _spec: &LaunchSpec) -> Launch {
        Launch::default()
    }
    fn on_input(&mut self, _text: &str, _out: &mut Out) {}
    fn on_permission(&mut self, _reply: &PermissionReply, _out: &mut Out) {}
    fn on_interrupt(&mut self, _out: &mut Out) {}
    fn on_line(&mut self, _line: &[u8], _out: &mut Out) {}
}
