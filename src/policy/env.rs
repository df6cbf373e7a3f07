//! Environment names a worker must never receive (security.md §5.3). The
//! config validation (S13) and the worker environment builder both use
//! these lists; nothing here reads the environment.

/// Code-loading variables: refused in config unless listed in
/// `security.env.allow_dangerous`, and never passed from the gateway's env.
pub const CODE_LOADING: &[&str] = &[
    "GLIBC_TUNABLES",
    "GCONV_PATH",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "NODE_OPTIONS",
    "NODE_PATH",
    "BASH_ENV",
    "ENV",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "GIT_EXEC_PATH",
    "SSH_ASKPASS",
    "SSH_AUTH_SOCK",
    "CLAUDECODE",
];

/// Prefixes of code-loading variables (`LD_*`, `DYLD_*`, `GIT_CONFIG_*`).
pub const CODE_LOADING_PREFIXES: &[&str] = &["LD_", "DYLD_", "GIT_CONFIG_"];

/// A parent agent's session markers (workers.md §1.5): always stripped.
pub const AGENT_MARKERS: &[&str] = &[
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_SSE_PORT",
    "OPENCODE_PID",
    "OPENCODE_SERVER_PASSWORD",
];

pub fn is_code_loading(name: &str) -> bool {
    CODE_LOADING.contains(&name) || CODE_LOADING_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_code_loading("LD_PRELOAD"));
        assert!(is_code_loading("NODE_OPTIONS"));
        assert!(is_code_loading("GIT_CONFIG_GLOBAL"));
        assert!(!is_code_loading("ANTHROPIC_API_KEY"));
    }
}
