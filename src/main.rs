//! `hotplex` binary: argv, config, then hand over to [`hotplex::gateway`].

use hotplex::cli::{self, Command};
use hotplex::config::{self, LoadOptions};
use hotplex::{gateway, logging, settings::Settings};

fn main() {
    std::process::exit(real_main());
}

/// `hotplex token`: print only the compact token on stdout.
fn token(t: &cli::TokenArgs, config_flag: Option<std::path::PathBuf>) -> i32 {
    use hotplex::security::{UnixTime, mint};
    let key = match mint::SigningKey::read(&t.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("hotplex token: {e}");
            return e.exit_code();
        }
    };
    let mut opts = mint::MintOptions {
        sub: t.sub.clone(),
        ttl: t.ttl,
        aud: t.aud.clone(),
        iss: t.iss.clone(),
        scopes: t.scopes.clone(),
        bot_id: t.bot_id.clone(),
        kid: t.kid.clone(),
    };
    let opts_env = LoadOptions::from_process(config_flag, false);
    if opts_env.path.is_some() {
        match config::load(&opts_env) {
            Ok(l) => opts.defaults_from(&l.config, &key.public_point()),
            Err(errors) => {
                eprintln!("{errors}");
                return config::ConfigErrors::EXIT_CODE;
            }
        }
    }
    match mint::mint(&key, &opts, UnixTime::now()) {
        Ok(token) => {
            println!("{token}");
            0
        }
        Err(e) => {
            eprintln!("hotplex token: {e}");
            e.exit_code()
        }
    }
}

fn real_main() -> i32 {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hotplex: {e}\n\n{}", cli::USAGE);
            return 2;
        }
    };
    match &args.command {
        Command::Version => {
            println!("{}", cli::version_line());
            return 0;
        }
        Command::Help => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Command::Token(t) => return token(t, args.config.clone()),
        Command::TokenKeygen { out } => {
            return match hotplex::security::mint::write_keypair(out) {
                Ok(public) => {
                    eprintln!("wrote {} and {}", out.display(), public.display());
                    0
                }
                Err(e) => {
                    eprintln!("hotplex token keygen: {e}");
                    e.exit_code()
                }
            };
        }
        _ => {}
    }
    let opts = LoadOptions::from_process(args.config.clone(), args.dev);
    let env = opts.env.clone();
    let loaded = match config::load(&opts) {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            return config::ConfigErrors::EXIT_CODE;
        }
    };
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    let file = loaded.file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(built-in defaults)".into());
    match args.command {
        Command::CheckConfig => {
            println!("config OK: {file}");
            return 0;
        }
        Command::PrintConfig => {
            println!("{}", config::print_json(&loaded.config));
            return 0;
        }
        _ => {}
    }
    hotplex::sd_notify::init(&env);
    let reloader = std::sync::Arc::new(hotplex::reload::Reloader::from_loaded(opts.clone(), &loaded));
    let config_sha256 = loaded.file.as_deref().and_then(file_sha256);
    let cfg = loaded.config;
    let level = logging::level_of(cfg.log.level);
    let format = logging::format_of(cfg.log.format);
    // Before the first thread starts (threads inherit the signal mask).
    if let Err(e) = gateway::block_signals() {
        eprintln!("hotplex: cannot block signals: {e}");
        return gateway::EXIT_STARTUP;
    }
    let _log_thread = logging::init(level, format);
    if cfg.dev() {
        log::warn!("dev mode: authentication disabled, listeners on loopback");
    }
    log::info!("hotplex {} starting config={file} store={}", env!("CARGO_PKG_VERSION"), cfg.store.path.display());
    for w in cfg.enabled_workers() {
        log::info!("worker enabled worker_type={} program={}", w.worker_type.as_str(), w.program.display());
    }
    hotplex::metrics::configure(&cfg);
    let settings = Settings::from_config(&cfg, &env);
    let revocations = std::sync::Arc::new(hotplex::security::RevocationTable::new());
    let auth = match hotplex::security::Authenticator::from_config(&cfg, revocations.clone()) {
        Ok(a) => a,
        Err(e) => {
            log::error!("cannot set up authentication: {e:?}");
            return gateway::EXIT_STARTUP;
        }
    };
    let security = gateway::SecurityState {
        auth,
        lockout: hotplex::security::Lockout::new(hotplex::security::LockoutPolicy::from_limits(&cfg.limits)),
        revocations,
        config_sha256,
    };
    let admin = hotplex::admin::AdminSetup {
        listen: cfg.admin.listen,
        settings: hotplex::admin::AdminSettings::from_config(&cfg),
        workers: hotplex::admin::probe::specs(&cfg),
    };
    gateway::run(settings, security, cfg.gateway.listen, admin, reloader)
}

/// Hex SHA-256 of a file's bytes (the startup audit row names the config it ran with).
fn file_sha256(path: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Some(d.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}
