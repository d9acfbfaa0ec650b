//! The `powgate` binary: the server (default) and the `solve` client.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use powgate::clock::SystemClock;
use powgate::config::{Config, Overrides};
use powgate::state::AppState;
use powgate::{cli, server};
use tracing_subscriber::EnvFilter;

/// powgate: a proof-of-work gatekeeper for web services.
///
/// Browsers without a valid token solve one argon2id challenge and receive a
/// token; reverse proxies ask `/verify-token` on every request. Or, with
/// `serve --upstream URL` (POW_UPSTREAM), powgate stands in front of the
/// application itself and needs no reverse proxy.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file of `serve` and `admin-key`; it must exist.
    /// Without this option, ./config.toml is read if it is there. POW_* and
    /// ARGON2_* environment variables override its settings.
    #[arg(long, global = true, env = "POW_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve {
        /// Proxy mode: stand in front of this application and pass it the
        /// requests the gate lets through, so no nginx is needed.
        /// `http://host:port`, `https://host[:port]` or `unix:/path/to.sock`.
        /// powgate's own page and
        /// API then live under `proxy_prefix` (/.powgate/ by default).
        /// Overrides POW_UPSTREAM and `upstream` in the config file.
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
    },
    /// Obtain a token from a powgate by solving its challenge on this
    /// machine's CPU. Prints only the token on stdout.
    ///
    /// Use the token as `Authorization: Bearer TOKEN`, as the `powgate_token`
    /// cookie, or paste it into the form on the challenge page.
    Solve {
        /// Base URL of the powgate, e.g. https://example.com/.powgate/
        url: String,
        /// Solver threads [default: all cores]
        #[arg(long, short = 't')]
        threads: Option<usize>,
        /// Refresh this expired or exhausted token at half difficulty instead of getting a new one.
        #[arg(long, value_name = "TOKEN")]
        refresh: Option<String>,
        /// Do not show the progress bar.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Manage the generated admin key (ignored when POW_ADMIN_KEY is set).
    AdminKey {
        #[command(subcommand)]
        action: AdminKeyAction,
    },
}

#[derive(Debug, Subcommand)]
enum AdminKeyAction {
    /// Generate a new admin key, store its hash in the database, and print
    /// it. Restart powgate afterwards; the old key stops working then.
    Reset,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in journald or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command.unwrap_or(Command::Serve { upstream: None }) {
        Command::Serve { upstream } => serve(cli.config.as_deref(), Overrides { upstream }),
        Command::AdminKey {
            action: AdminKeyAction::Reset,
        } => reset_admin_key(cli.config.as_deref()),
        Command::Solve {
            url,
            threads,
            refresh,
            quiet,
        } => {
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            });
            cli::solve(&cli::SolveOptions {
                url,
                threads,
                refresh,
                quiet,
            })
            .map(|token| println!("{token}"))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("powgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn reset_admin_key(config_path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    if config.admin_key.is_some() {
        anyhow::bail!(
            "POW_ADMIN_KEY (admin_key in the config file) is set, so it is the admin key; change it there instead"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let key = runtime.block_on(powgate::admin_auth::reset_stored_key(
        &config,
        powgate::clock::Clock::now(&SystemClock),
    ))?;
    eprintln!(
        "new admin key stored in {}; restart powgate to use it",
        config.database
    );
    println!("{key}");
    Ok(())
}

fn serve(config_path: Option<&std::path::Path>, overrides: Overrides) -> anyhow::Result<()> {
    let config = Config::load_with(config_path, overrides)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        let state = AppState::new(config, Arc::new(SystemClock)).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!("cannot listen on {listen}; set POW_LISTEN to a free address:port")
            })?;
        let shutdown = server::shutdown_signal();
        tracing::info!(
            address = %listener.local_addr()?,
            difficulty = %state.settings.get().difficulty,
            database = %state.config.database,
            "powgate listening"
        );
        server::serve(state, listener, shutdown).await
    })
}
