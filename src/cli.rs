//! Command-line parsing (operations.md §8). Hand-written: a dozen flags do
//! not justify a crate. Usage errors exit 2.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Run,
    CheckConfig,
    PrintConfig,
    Version,
    Help,
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

  --config PATH   YAML configuration (default: $HOTPLEX_CONFIG, else built-in defaults)
  --dev           development profile: loopback only, auth none, ./data/hotplex.db
";

/// Parse `argv[1..]`.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
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
}
