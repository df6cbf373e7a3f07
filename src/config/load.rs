//! The loading pipeline of operations.md §1.1: built-in defaults → `--dev`
//! profile → YAML file → `HOTPLEX__…` overrides → typed deserialisation →
//! path resolution → validation. Either a fully valid [`Loaded`] or every
//! error ([`ConfigErrors`]); nothing partial.
//!
//! Owns: the order of the layers and error collection across them (after a
//! type error the offending node is dropped and deserialisation retried, so
//! one run reports all of them). Must not: read anything but the config file
//! and secret files, write anything, or log (the caller prints warnings).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::de::{DeError, from_node};
use super::env::apply_overrides;
use super::error::{ConfigError, ConfigErrors, ConfigWarning, did_you_mean};
use super::resolve::absolutize;
use super::secret::SecretValue;
use super::tree::{MAX_CONFIG_BYTES, Node, Seg, Src, Val, parse_yaml, render_path};
use super::types::Config;
use super::validate::{Ctx, validate};

/// The `--dev` profile (layer 2), identical to `configs/config-dev.yaml`.
pub const DEV_PROFILE: &str = include_str!("../../configs/config-dev.yaml");

/// Environment variable naming the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "HOTPLEX_CONFIG";

/// What to load. `Debug` shows variable names only (values may be secrets).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The YAML file (`--config`, or `HOTPLEX_CONFIG` via [`config_path`]); `None` = no file.
    pub path: Option<PathBuf>,
    /// `--dev`: insert the dev profile and require loopback listeners (§1.7).
    pub dev: bool,
    /// Snapshot of the process environment (read once at startup, re-used on reload).
    pub env: Vec<(String, String)>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("path", &self.path)
            .field("dev", &self.dev)
            .field("env", &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl LoadOptions {
    /// Options for this process: the environment snapshot is taken now (variables that are
    /// not UTF-8 are skipped), and `path` falls back to `HOTPLEX_CONFIG`.
    pub fn from_process(path: Option<PathBuf>, dev: bool) -> LoadOptions {
        let env: Vec<(String, String)> =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        LoadOptions { path: config_path(path, &env), dev, env }
    }
}

/// The config file to read: the `--config` flag, else a non-empty `HOTPLEX_CONFIG`, else none.
pub fn config_path(flag: Option<PathBuf>, env: &[(String, String)]) -> Option<PathBuf> {
    flag.or_else(|| {
        env.iter().rev().find(|(k, _)| k == CONFIG_ENV).filter(|(_, v)| !v.is_empty()).map(|(_, v)| PathBuf::from(v))
    })
}

/// A valid configuration and what loading it had to say.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub config: Config,
    /// Print these (`config warning: …`) and carry on.
    pub warnings: Vec<ConfigWarning>,
    /// Absolute path of the file that was read, if any (for the reload poll).
    pub file: Option<PathBuf>,
}

/// Load and validate. Relative paths resolve against the current working directory.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    let cwd = std::env::current_dir()
        .map_err(|e| ConfigErrors::single("", format!("cannot determine the working directory ({e})"), None))?;
    load_in(opts, &cwd)
}

/// [`load`] with an explicit working directory.
pub fn load_in(opts: &LoadOptions, cwd: &Path) -> Result<Loaded, ConfigErrors> {
    load_adjusted_in(opts, cwd, &|_| {})
}

/// [`load`], with `adjust` applied to the typed config before validation, so
/// the adjusted result is what gets validated (a reload keeps the running
/// values of restart-class keys and must validate that combination).
pub fn load_adjusted(opts: &LoadOptions, adjust: &dyn Fn(&mut Config)) -> Result<Loaded, ConfigErrors> {
    let cwd = std::env::current_dir()
        .map_err(|e| ConfigErrors::single("", format!("cannot determine the working directory ({e})"), None))?;
    load_adjusted_in(opts, &cwd, adjust)
}

fn load_adjusted_in(opts: &LoadOptions, cwd: &Path, adjust: &dyn Fn(&mut Config)) -> Result<Loaded, ConfigErrors> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut warnings: Vec<ConfigWarning> = Vec::new();
    let internal = |what: &str| ConfigErrors::single("", format!("internal error: {what}"), None);

    let defaults = serde_json::to_value(Config::default()).map_err(|_| internal("defaults do not serialise"))?;
    let mut tree = Node::from_json(&defaults, &Src::Default);

    if opts.dev {
        let dev =
            parse_yaml(DEV_PROFILE, &|l, c| Src::Dev(l, c)).map_err(|_| internal("the dev profile is invalid"))?;
        tree.merge(dev);
    }

    let file = opts.path.as_ref().map(|p| absolutize(p, cwd));
    if let Some(path) = &file {
        let source = |l: u64, c: u64| Some(format!("{}:{l}:{c}", path.display()));
        let text = read_config_file(path, &mut warnings)?;
        match parse_yaml(&text, &|l, c| Src::File(l, c)) {
            Err(e) => {
                return Err(ConfigErrors {
                    errors: vec![ConfigError { key: String::new(), message: e.message, source: source(e.line, e.col) }],
                    warnings,
                });
            }
            Ok(Node { v: Val::Null, .. }) => {}
            Ok(node @ Node { v: Val::Map(_), .. }) => tree.merge(node),
            Ok(node) => {
                let (l, c) = match node.src {
                    Src::File(l, c) => (l, c),
                    _ => (1, 1),
                };
                let msg = format!("the file must be a mapping of sections, not {}", node.kind());
                return Err(ConfigErrors {
                    errors: vec![ConfigError { key: String::new(), message: msg, source: source(l, c) }],
                    warnings,
                });
            }
        }
    }

    errors.extend(apply_overrides(&mut tree, &opts.env));

    // Typed pass: on each error, record it, drop the offending node (its default then
    // applies) and retry, so that one run reports every type error.
    let mut removed: Vec<Vec<Seg>> = Vec::new();
    let mut config: Option<Config> = None;
    for _ in 0..500 {
        match from_node::<Config>(&tree) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                let path = e.path.clone().unwrap_or_default();
                // A required field we removed ourselves is not a second error.
                let cascade = e.message.starts_with("missing field")
                    && removed.iter().any(|r| r.len() > path.len() && r.starts_with(&path));
                if !cascade {
                    errors.push(de_error(&e, &path, file.as_deref()));
                }
                removed.push(path.clone());
                if path.is_empty() || !tree.remove(&path) {
                    break;
                }
            }
        }
    }
    let Some(mut config) = config else {
        return Err(ConfigErrors { errors, warnings });
    };

    resolve_paths(&mut config, cwd);
    adjust(&mut config);
    let mut ctx = Ctx::new(&tree, file.as_deref(), &opts.env, opts.dev);
    ctx.skip = &removed;
    validate(&mut config, &mut ctx);
    errors.append(&mut ctx.errors);
    warnings.append(&mut ctx.warnings);
    if errors.is_empty() { Ok(Loaded { config, warnings, file }) } else { Err(ConfigErrors { errors, warnings }) }
}

fn read_config_file(path: &Path, warnings: &mut Vec<ConfigWarning>) -> Result<String, ConfigErrors> {
    let shown = path.display().to_string();
    let fail = |m: String| ConfigErrors::single("", m, Some(shown.clone()));
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read the config file ({e})")))?;
    if !meta.is_file() {
        return Err(fail("the config file is not a regular file".to_string()));
    }
    if meta.len() > MAX_CONFIG_BYTES as u64 {
        return Err(fail(format!("the config file is larger than {MAX_CONFIG_BYTES} bytes")));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        warnings.push(ConfigWarning {
            key: String::new(),
            message: format!("the config file is group- or world-writable (mode {:04o})", mode & 0o7777),
            source: Some(shown.clone()),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(format!("cannot read the config file ({e})")))?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!("the config file is larger than {MAX_CONFIG_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| fail("the config file is not UTF-8".to_string()))
}

fn de_error(e: &DeError, path: &[Seg], file: Option<&Path>) -> ConfigError {
    let mut message = e.message.clone();
    if let Some((found, expected)) = &e.unknown {
        if let Some(s) = did_you_mean(found, expected.iter().copied()) {
            message.push_str(&format!(" (did you mean `{s}`?)"));
        }
    }
    ConfigError { key: render_path(path), message, source: e.src.as_ref().map(|s| s.render(file)) }
}

/// Make every path-valued key absolute against `cwd` (empty = unset stays empty).
fn resolve_paths(cfg: &mut Config, cwd: &Path) {
    let fix = |p: &mut PathBuf| {
        if !p.as_os_str().is_empty() {
            *p = absolutize(p, cwd);
        }
    };
    // `:memory:` names a temp database (operations.md §3.1), not a file here.
    if cfg.store.path.as_os_str() != crate::store::MEMORY {
        fix(&mut cfg.store.path);
    }
    cfg.worker.work_dir_roots.iter_mut().for_each(fix);
    fix(&mut cfg.worker.default_work_dir);
    fix(&mut cfg.workers.claude_code.mcp_config);
    fix(&mut cfg.workers.claude_code.config_dir);
    fix(&mut cfg.workers.pi.agent_dir);
    fix(&mut cfg.security.worker.home_root);
    fix(&mut cfg.security.worker.cgroup_root);
    fix(&mut cfg.security.jwt.jwks_file);
    cfg.security.jwt.public_keys.iter_mut().for_each(|k| fix(&mut k.file));
    cfg.admin.tokens.iter_mut().filter_map(|t| t.file.as_mut()).for_each(fix);
    cfg.security.api_keys.iter_mut().filter_map(|k| k.file.as_mut()).for_each(fix);
    let w = &mut cfg.workers;
    for map in [
        &mut w.claude_code.env,
        &mut w.opencode_cli.env,
        &mut w.opencode_server.env,
        &mut w.acpx.env,
        &mut w.pi.env,
        &mut cfg.tracing.headers,
    ] {
        for v in map.values_mut() {
            if let SecretValue::File { file, .. } = v {
                fix(file);
            }
        }
    }
}
