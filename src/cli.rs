//! Command-line parsing (operations.md §8). Hand-written: a dozen flags do
//! not justify a crate. Usage errors exit 2.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Run,
    CheckConfig,
    PrintConfig,
    Version,
    Help,
    /// `hotplex token --key FILE --sub SUBJECT …`: mint a JWT (security/mint.rs).
    Token(TokenArgs),
    /// `hotplex token keygen --out FILE`.
    TokenKeygen {
        out: PathBuf,
    },
}

/// Arguments of `hotplex token` (operations.md §8). `--config` goes to [`Args::config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenArgs {
    pub key: PathBuf,
    pub sub: String,
    pub ttl: Duration,
    pub aud: Vec<String>,
    pub iss: Option<String>,
    pub bot_id: Option<String>,
    pub scopes: Vec<String>,
    pub kid: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub config: Option<PathBuf>,
    pub dev: bool,
}

pub const USAGE: &str = "\
usage:
  hotplex [run] [--config PATH] [--dev]     run the gateway (default command)
  hotplex --check-config [--config PATH] [--dev]
  hotplex --print-config [--config PATH] [--dev]
  hotplex --version | -V
  hotplex --help | -h
  hotplex token --key FILE --sub SUBJECT [--ttl 1h] [--aud AUD]… [--iss ISS] [--bot-id ID]
                [--scope S]… [--kid KID] [--config PATH]
                                            mint an ES256 JWT (dev/tests; ttl at most 24h)
  hotplex token keygen --out FILE           write FILE (PKCS#8 PEM, 0600) and FILE.pub (SPKI PEM)

  --config PATH   YAML configuration (default: $HOTPLEX_CONFIG, else built-in defaults)
  --dev           development profile: loopback only, auth none, ./data/hotplex.db
";

/// Parse `argv[1..]`.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let args: Vec<String> = args.into_iter().collect();
    if args.first().map(String::as_str) == Some("token") {
        return parse_token(&args[1..]);
    }
    let mut out = Args { command: Command::Run, config: None, dev: false };
    let mut command_set = false;
    let mut set = |out: &mut Args, c: Command| -> Result<(), String> {
        if command_set && out.command != c {
            return Err("only one command may be given".into());
        }
        command_set = true;
        out.command = c;
        Ok(())
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "run" => set(&mut out, Command::Run)?,
            "--check-config" => set(&mut out, Command::CheckConfig)?,
            "--print-config" => set(&mut out, Command::PrintConfig)?,
            "--version" | "-V" => set(&mut out, Command::Version)?,
            "--help" | "-h" => set(&mut out, Command::Help)?,
            "--dev" => out.dev = true,
            "--config" => {
                let v = it.next().ok_or("--config needs a path")?;
                out.config = Some(PathBuf::from(v));
            }
            s if s.starts_with("--config=") => out.config = Some(PathBuf::from(&s["--config=".len()..])),
            s => return Err(format!("unknown argument `{s}`")),
        }
    }
    Ok(out)
}

/// `hotplex token …` and `hotplex token keygen …`.
fn parse_token(args: &[String]) -> Result<Args, String> {
    let mut config = None;
    let mut it = args.iter();
    let value = |flag: &str, it: &mut std::slice::Iter<String>| -> Result<String, String> {
        it.next().cloned().ok_or_else(|| format!("{flag} needs a value"))
    };
    if args.first().map(String::as_str) == Some("keygen") {
        it.next();
        let mut out = None;
        while let Some(a) = it.next() {
            match a.as_str() {
                "--out" => out = Some(PathBuf::from(value("--out", &mut it)?)),
                s => return Err(format!("unknown argument `{s}` for token keygen")),
            }
        }
        let out = out.ok_or("token keygen needs --out FILE")?;
        return Ok(Args { command: Command::TokenKeygen { out }, config: None, dev: false });
    }
    let mut t = TokenArgs {
        key: PathBuf::new(),
        sub: String::new(),
        ttl: Duration::from_secs(3600),
        aud: Vec::new(),
        iss: None,
        bot_id: None,
        scopes: Vec::new(),
        kid: None,
    };
    let (mut key, mut sub) = (None, None);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--key" => key = Some(PathBuf::from(value("--key", &mut it)?)),
            "--sub" => sub = Some(value("--sub", &mut it)?),
            "--ttl" => {
                let v = value("--ttl", &mut it)?;
                t.ttl = crate::config::parse_duration(&v).map_err(|e| format!("--ttl: {e}"))?;
            }
            "--aud" => t.aud.push(value("--aud", &mut it)?),
            "--iss" => t.iss = Some(value("--iss", &mut it)?),
            "--bot-id" => t.bot_id = Some(value("--bot-id", &mut it)?),
            "--scope" => t.scopes.push(value("--scope", &mut it)?),
            "--kid" => t.kid = Some(value("--kid", &mut it)?),
            "--config" => config = Some(PathBuf::from(value("--config", &mut it)?)),
            s if s.starts_with("--config=") => config = Some(PathBuf::from(&s["--config=".len()..])),
            s => return Err(format!("unknown argument `{s}` for token")),
        }
    }
    t.key = key.ok_or("token needs --key FILE")?;
    t.sub = sub.ok_or("token needs --sub SUBJECT")?;
    Ok(Args { command: Command::Token(t), config, dev: false })
}

/// `hotplex 0.1.0 (git <sha>, rustc <v>, <target>, <profile>)`.
pub fn version_line() -> String {
    format!(
        "hotplex {} (git {}, rustc {}, {}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("HOTPLEX_GIT_SHA"),
        env!("HOTPLEX_RUSTC"),
        env!("HOTPLEX_TARGET"),
        env!("HOTPLEX_PROFILE"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Args, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses() {
        assert_eq!(p(&[]).unwrap().command, Command::Run);
        let a = p(&["run", "--config", "x.yaml", "--dev"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("x.yaml")));
        assert!(a.dev);
        assert_eq!(p(&["--check-config", "--config=y"]).unwrap().command, Command::CheckConfig);
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["--config"]).is_err());
        assert!(p(&["--version", "--help"]).is_err());
    }

    #[test]
    fn parses_token() {
        let a =
            p(&["token", "--key", "k.pem", "--sub", "alice", "--ttl", "2h", "--scope", "a", "--scope", "b"]).unwrap();
        let Command::Token(t) = a.command else { panic!() };
        assert_eq!((t.key, t.sub.as_str(), t.ttl), (PathBuf::from("k.pem"), "alice", Duration::from_secs(7200)));
        assert_eq!(t.scopes, vec!["a".to_string(), "b".to_string()]);
        let a = p(&["token", "--key", "k", "--sub", "s", "--aud", "x", "--iss", "i", "--config", "c.yaml"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("c.yaml")));
        assert!(p(&["token", "--sub", "alice"]).is_err(), "--key required");
        assert!(p(&["token", "--key", "k", "--sub", "a", "--ttl", "60"]).is_err(), "unit required");
        assert!(p(&["token", "--key", "k", "--sub", "a", "--dev"]).is_err());
        let a = p(&["token", "keygen", "--out", "dev.pem"]).unwrap();
        assert_eq!(a.command, Command::TokenKeygen { out: PathBuf::from("dev.pem") });
        assert!(p(&["token", "keygen"]).is_err());
    }
}
