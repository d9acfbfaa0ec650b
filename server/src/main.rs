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

/// mimalloc rather than glibc's malloc: a token /verify-token has not
/// cached allocates its record, addresses and cache entries on the way,
/// and with a million tokens drawn at random that path answered 30% more
/// requests per second with it (bench part (g)), the cached path the same.
///
/// Built with its `no_thp` feature (the workspace's Cargo.toml): otherwise
/// mimalloc asks for transparent huge pages on its 1 GiB arena, and small
/// allocations scattered over it each hold a zeroed 2 MiB page. That cost
/// 26 MiB of RSS in bench part (c) (213 MiB against a bound of 192; 187
/// without) and the random-token run's p99 (20–58 ms against 5–18 ms, the
/// 2 MiB zeroing in the page faults). The argon2 blocks still get huge
/// pages: `pow`'s `huge_pages::advise` asks for their own range.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// powgate: a proof-of-work gatekeeper for web services.
///
/// Browsers without a valid token solve one argon2id challenge and receive a
/// token; reverse proxies ask `/verify-token` on every request. Or, with
/// `serve --upstream URL` (POW_UPSTREAM), powgate stands in front of the
/// application itself and needs no reverse proxy. With `tcp` (or `[[tcp]]`
/// in the config file), it guards services that do not speak HTTP.
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
    /// Run a TCP gate only (no HTTP): proof of work in front of a service
    /// that does not speak HTTP.
    ///
    /// Each connection is greeted with a challenge line (protocol
    /// POWGATE/1, see the README); a client that answers with a solution or
    /// a powgate token is connected to the upstream and its bytes piped
    /// both ways. `powgate solve --tcp HOST:PORT` is such a client. To run
    /// gates beside the HTTP service instead, use `[[tcp]]` entries in the
    /// config file with `serve`.
    Tcp {
        /// Address:port to listen on, e.g. 0.0.0.0:7000.
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// host:port of the service to protect, e.g. 127.0.0.1:7001.
        #[arg(long, value_name = "HOST:PORT")]
        upstream: String,
        /// Send the upstream a PROXY protocol header (v1 or v2) with the
        /// client's address.
        #[arg(long, value_name = "VERSION", value_parser = ["v1", "v2"])]
        proxy_protocol: Option<String>,
        /// Seconds a client has from connecting to sending its answer
        /// line, solving included [default: 60].
        #[arg(long, value_name = "SECS")]
        handshake_timeout: Option<u64>,
    },
    /// Obtain a token from a powgate by solving its challenge on this
    /// machine's CPU. Prints only the token on stdout.
    ///
    /// Use the token as `Authorization: Bearer TOKEN`, as the `powgate_token`
    /// cookie, or paste it into the form on the challenge page.
    ///
    /// With `--tcp HOST:PORT`, pass a powgate TCP gate instead, then pipe
    /// stdin and stdout through the connection like netcat (or, with
    /// `--print-token`, print the token and close).
    Solve {
        /// Base URL of the powgate, e.g. https://example.com/.powgate/
        #[arg(required_unless_present = "tcp", conflicts_with = "tcp")]
        url: Option<String>,
        /// Pass the TCP gate at HOST:PORT instead of an HTTP powgate.
        #[arg(long, value_name = "HOST:PORT")]
        tcp: Option<String>,
        /// With --tcp: print the token on stdout and close, instead of
        /// piping stdin and stdout.
        #[arg(long, requires = "tcp")]
        print_token: bool,
        /// With --tcp: present this token instead of solving.
        #[arg(
            long,
            value_name = "TOKEN",
            requires = "tcp",
            conflicts_with = "refresh"
        )]
        token: Option<String>,
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
    /// it. On SQLite, restart powgate afterwards; the old key stops working
    /// then. On PostgreSQL, every running instance takes it at once.
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
        Command::Serve { upstream } => serve(
            cli.config.as_deref(),
            Overrides {
                upstream,
                ..Overrides::default()
            },
        ),
        Command::Tcp {
            listen,
            upstream,
            proxy_protocol,
            handshake_timeout,
        } => tcp(
            cli.config.as_deref(),
            Overrides {
                tcp: Some(powgate::tcp::RawTcpGate {
                    listen,
                    upstream,
                    proxy_protocol,
                    handshake_timeout_secs: handshake_timeout,
                }),
                ..Overrides::default()
            },
        ),
        Command::AdminKey {
            action: AdminKeyAction::Reset,
        } => reset_admin_key(cli.config.as_deref()),
        Command::Solve {
            url,
            tcp,
            print_token,
            token,
            threads,
            refresh,
            quiet,
        } => {
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            });
            match tcp {
                Some(address) => cli::solve_tcp(&cli::TcpOptions {
                    address,
                    threads,
                    token,
                    print_token,
                    quiet,
                }),
                None => cli::solve(&cli::SolveOptions {
                    url: url.unwrap_or_default(),
                    threads,
                    refresh,
                    quiet,
                })
                .map(|token| println!("{token}")),
            }
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
    let taken = match config.database {
        powgate::config::Database::Sqlite(_) => "restart powgate to use it",
        powgate::config::Database::Postgres(_) => {
            "every running instance uses it now, and no longer the old one"
        }
    };
    eprintln!("new admin key stored in {}; {taken}", config.database);
    println!("{key}");
    Ok(())
}

fn tcp(config_path: Option<&std::path::Path>, overrides: Overrides) -> anyhow::Result<()> {
    let config = Config::load_with(config_path, overrides)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let state = AppState::new(config, Arc::new(SystemClock)).await?;
        let shutdown = server::shutdown_signal();
        server::serve_tcp(state, shutdown).await
    })
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
