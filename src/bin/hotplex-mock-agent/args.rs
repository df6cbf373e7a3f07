//! Command-line parsing: the `claude` flags a gateway passes, in both the
//! `--flag value` and `--flag=value` forms. Unknown flags and positionals are
//! ignored (their values cannot be told apart from positionals, so an unknown
//! `--flag value` simply leaves `value` as an ignored positional).

#[derive(Debug, Default)]
pub struct Args {
    pub argv: Vec<String>,
    pub session_id: Option<String>,
    pub resume: Option<String>,
    pub fork_session: bool,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub skip_permissions: bool,
    pub permission_prompt_tool: Option<String>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    pub include_partial: bool,
}

/// Flags that take a value (the value is the next argument unless `=` is used).
const VALUED: &[&str] = &[
    "session-id",
    "resume",
    "model",
    "permission-mode",
    "permission-prompt-tool",
    "allowed-tools",
    "allowedTools",
    "disallowed-tools",
    "disallowedTools",
    "append-system-prompt",
    "system-prompt",
    "max-turns",
    "output-format",
    "input-format",
    "mcp-config",
    "add-dir",
    "fallback-model",
    "settings",
    "setting-sources",
    "agents",
    "betas",
];

fn tool_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

pub fn parse(argv: Vec<String>) -> Args {
    let mut a = Args { argv: argv.clone(), ..Args::default() };
    let mut it = argv.into_iter().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = if let Some(rest) = arg.strip_prefix("--") {
            match rest.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (rest.to_string(), None),
            }
        } else if arg == "-p" {
            ("print".to_string(), None)
        } else if arg == "-r" {
            ("resume".to_string(), None)
        } else {
            continue; // positional (or the value of an unknown flag)
        };
        let value = if VALUED.contains(&name.as_str()) { inline.or_else(|| it.next()) } else { None };
        let v = value.unwrap_or_default();
        match name.as_str() {
            "session-id" => a.session_id = Some(v),
            "resume" => a.resume = Some(v),
            "fork-session" => a.fork_session = true,
            "model" => a.model = Some(v),
            "permission-mode" => a.permission_mode = Some(v),
            "dangerously-skip-permissions" => a.skip_permissions = true,
            "permission-prompt-tool" => a.permission_prompt_tool = Some(v),
            "allowed-tools" | "allowedTools" => a.allowed_tools.extend(tool_list(&v)),
            "disallowed-tools" | "disallowedTools" => a.disallowed_tools.extend(tool_list(&v)),
            "include-partial-messages" => a.include_partial = true,
            _ => {}
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Args {
        parse(std::iter::once("x").chain(args.iter().copied()).map(String::from).collect())
    }

    #[test]
    fn both_forms() {
        let a = p(&["--print", "--session-id", "S", "--model=m", "--allowed-tools=Read,Bash", "--weird", "--resume=R"]);
        assert_eq!(a.session_id.as_deref(), Some("S"));
        assert_eq!(a.resume.as_deref(), Some("R"));
        assert_eq!(a.model.as_deref(), Some("m"));
        assert_eq!(a.allowed_tools, vec!["Read", "Bash"]);
        let a = p(&["--append-system-prompt=-be terse-", "--include-partial-messages"]);
        assert!(a.include_partial);
    }
}
