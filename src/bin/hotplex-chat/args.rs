//! Command-line parsing: `--flag value` and `--flag=value` forms.

pub const USAGE: &str = "\
hotplex-chat — talk to an AI coding agent through a hotplex gateway (AEP v1)

Usage: hotplex-chat [OPTIONS]

Options:
  --url URL          gateway WebSocket endpoint [default: ws://127.0.0.1:8888/ws]
  --worker TYPE      worker type: claude_code, opencode_cli, opencode_server, acpx, pi
                     [default: claude_code]
  --session KEY      resume or create the session KEY (a client key or a server session id)
  --observe          attach read-only to an existing session (needs --session)
  --last-seq N       on resume, replay the session's events after seq N first
  --model M          ask the worker to use model M (init config)
  --work-dir DIR     the worker's working directory (init config, checked by the gateway)
  -y, --yes          allow every permission request without asking
  --json             print each received envelope as one JSON line (for scripts)
  -h, --help         print this help
  -V, --version      print the version

Prompts are read line by line from stdin; each line is one turn. When stdin is a
pipe or a file, lines run one after another (each waits for the previous turn's
`done`; only /interrupt goes at once), and the client exits 0 once stdin is
exhausted and the last turn is done. Commands:
  /interrupt  stop the current turn      /terminate  stop the worker (resumable)
  /reset      forget the conversation    /delete     delete the session and exit
  /ping       ask the gateway for the session state
  /help       show the commands          /quit       disconnect (the session keeps running)
  //text      send the prompt \"/text\"

Permission requests are asked on the terminal (/dev/tty when stdin is a pipe);
without a terminal they are denied unless --yes is given.

Exit status: 0 on success, 1 on connection, init or server-close errors, 2 on usage errors.";

#[derive(Debug, Clone)]
pub struct Args {
    pub url: String,
    pub worker: String,
    pub session: Option<String>,
    pub observe: bool,
    pub last_seq: Option<u64>,
    pub model: Option<String>,
    pub work_dir: Option<String>,
    pub yes: bool,
    pub json: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            url: "ws://127.0.0.1:8888/ws".into(),
            worker: "claude_code".into(),
            session: None,
            observe: false,
            last_seq: None,
            model: None,
            work_dir: None,
            yes: false,
            json: false,
        }
    }
}

pub enum Parsed {
    Run(Args),
    Help,
    Version,
}

/// Parse the arguments after the program name.
pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut a = Args::default();
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.strip_prefix("--") {
            Some(rest) => match rest.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (rest.to_string(), None),
            },
            None => match arg.as_str() {
                "-h" => ("help".to_string(), None),
                "-y" => ("yes".to_string(), None),
                "-V" => ("version".to_string(), None),
                _ => return Err(format!("unexpected argument '{arg}'")),
            },
        };
        let mut value = |flag: &str| -> Result<String, String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("--{flag} needs a value")),
            }
        };
        let switch = |flag: &str| -> Result<(), String> {
            match &inline {
                Some(_) => Err(format!("--{flag} takes no value")),
                None => Ok(()),
            }
        };
        match name.as_str() {
            "help" => return Ok(Parsed::Help),
            "version" => return Ok(Parsed::Version),
            "url" => a.url = value("url")?,
            "worker" => a.worker = value("worker")?,
            "session" => a.session = Some(value("session")?),
            "model" => a.model = Some(value("model")?),
            "work-dir" => a.work_dir = Some(value("work-dir")?),
            "last-seq" => {
                let v = value("last-seq")?;
                let n =
                    v.parse::<u64>().map_err(|_| format!("--last-seq expects a non-negative integer, got '{v}'"))?;
                a.last_seq = Some(n);
            }
            "observe" => {
                switch("observe")?;
                a.observe = true;
            }
            "yes" => {
                switch("yes")?;
                a.yes = true;
            }
            "json" => {
                switch("json")?;
                a.json = true;
            }
            _ => return Err(format!("unknown option '--{name}'")),
        }
    }
    if a.observe && a.session.is_none() {
        return Err("--observe attaches to an existing session: give its key or id with --session".into());
    }
    if a.observe && (a.model.is_some() || a.work_dir.is_some()) {
        return Err("--model and --work-dir cannot be used with --observe".into());
    }
    Ok(Parsed::Run(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Args, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(a) => Ok(a),
            _ => Err("not run".into()),
        }
    }

    #[test]
    fn both_forms_and_defaults() {
        let a = run(&["--url=ws://h:1/ws", "--session", "k", "--last-seq", "7", "--yes", "--json"]).unwrap();
        assert_eq!(a.url, "ws://h:1/ws");
        assert_eq!(a.worker, "claude_code");
        assert_eq!(a.session.as_deref(), Some("k"));
        assert_eq!(a.last_seq, Some(7));
        assert!(a.yes && a.json && !a.observe);
    }

    #[test]
    fn errors_are_clear() {
        assert!(run(&["--last-seq", "x"]).unwrap_err().contains("non-negative integer"));
        assert!(run(&["--model"]).unwrap_err().contains("needs a value"));
        assert!(run(&["--frob"]).unwrap_err().contains("unknown option"));
        assert!(run(&["--observe"]).unwrap_err().contains("--session"));
        assert!(run(&["--json=1"]).unwrap_err().contains("takes no value"));
        assert!(run(&["stray"]).unwrap_err().contains("unexpected argument"));
    }
}
