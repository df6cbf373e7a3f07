//! `hotplex` binary: argv, config, then hand over to [`hotplex::gateway`].

use hotplex::cli::{self, Command};
use hotplex::config::{self, LoadOptions};
use hotplex::{gateway, logging, settings::Settings};

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hotplex: {e}\n\n{}", cli::USAGE);
            return 2;
        }
    };
    match args.command {
        Command::Version => {
            println!("{}", cli::version_line());
            return 0;
        }
        Command::Help => {
            print!("{}", cli::USAGE);
            return 0;
        }
        _ => {}
    }
    let opts = LoadOptions::from_process(args.config.clone(), args.dev);
    let env = opts.env.clone();
    let loaded = match config::load(&opts) {
        Ok(l) => l,
        Err(errors) => {
            eprint!("{errors}");
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
    let cfg = loaded.config;
    let level = match cfg.log.level {
        config::LogLevel::Error => log::LevelFilter::Error,
        config::LogLevel::Warn => log::LevelFilter::Warn,
        config::LogLevel::Info => log::LevelFilter::Info,
        config::LogLevel::Debug => log::LevelFilter::Debug,
        config::LogLevel::Trace => log::LevelFilter::Trace,
    };
    let format = match cfg.log.format {
        config::LogFormat::Text => logging::Format::Text,
        config::LogFormat::Json => logging::Format::Json,
    };
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
    let settings = Settings::from_config(&cfg, &env);
    let shutdown = cfg.gateway.shutdown_timeout;
    gateway::run(settings, cfg.gateway.listen, shutdown)
}
