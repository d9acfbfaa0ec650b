//! The PostgreSQL server to connect to: the `database = "postgres://…"`
//! URL, checked at start-up, with its TLS policy, and shown everywhere
//! without its password.
//!
//! The URL is libpq's, so the one an operator tests with `psql` works here
//! too. Two of libpq's parameters are read by powgate itself, because
//! tokio-postgres knows neither `verify-full` nor a CA file:
//! - `sslmode`: `disable`, `prefer` (libpq's default: TLS when the server
//!   offers it, unverified), `require` (TLS, unverified) or `verify-full`
//!   (TLS, the certificate chain checked against `sslrootcert` or the
//!   system's roots, and the host name against the certificate);
//! - `sslrootcert`: a PEM file of CA certificates for `verify-full`.
//!
//! Every other parameter goes to tokio-postgres unchanged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// How the connection is encrypted and checked, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-full" => Ok(Self::VerifyFull),
            "allow" | "verify-ca" => Err(format!(
                "sslmode={s} is not supported; use disable, prefer, require or verify-full"
            )),
            _ => Err("sslmode must be disable, prefer, require or verify-full".to_owned()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A checked `postgres://` URL. Its `Debug` and `Display` leave the
/// password out, so it can be logged; only [`Self::connector`] and
/// [`Self::config`] hand the password on, to tokio-postgres.
#[derive(Clone)]
pub struct PostgresUrl {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    ca_file: Option<PathBuf>,
}

/// How long a new connection may take before the store counts as
/// unreachable, unless the URL sets `connect_timeout`: long enough for a
/// TLS handshake across a data centre, short enough that a request waiting
/// for it still gets its 503 quickly.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The session settings every connection starts with, before any
/// `options` of the URL's own (a later `-c` wins, so the operator's own
/// values override these):
/// - `lock_timeout`: how long a statement waits for a lock another session
///   holds (a token's row, an address's advisory lock) before its request
///   gets a 503, like the wait for a pooled connection;
/// - `idle_in_transaction_session_timeout`: how long a transaction may sit
///   idle before the server ends it and frees its locks. powgate's own take
///   milliseconds; one idle for seconds belongs to an instance that stopped
///   mid-transaction (frozen, cut off), and without this every other
///   instance would queue behind its locks until TCP gave up on it, hours
///   later.
const SESSION_OPTIONS: &str = "-c lock_timeout=2s -c idle_in_transaction_session_timeout=10s";

/// How long data sent to the server may go unacknowledged before the
/// kernel gives up on the connection (`TCP_USER_TIMEOUT`), unless the URL
/// sets `tcp_user_timeout`. Without it, a statement sent to a server that
/// vanished from the network (a crashed host, a dropped route: no reset
/// ever comes) waits for TCP's retransmissions, about 15 minutes, and so
/// does the request behind it; with it, the statement fails, the request
/// gets its 503 and the pool opens a new connection.
const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalives, unless the URL sets its own `keepalives_*`: a probe
/// after 10 s of silence, then every 5 s, 3 unanswered ones ending the
/// connection. For a connection that sends nothing, above all the one that
/// listens for the other instances' changes: without the probes, a vanished
/// server would leave it waiting, and this instance's caches unaware of
/// every change, for the two hours of the system's default, where now it
/// learns of it within about 25 s and resyncs (see `listen`).
const KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVES_RETRIES: u32 = 3;

impl PostgresUrl {
    /// Whether `database` names a PostgreSQL server rather than an SQLite
    /// file.
    pub fn is_postgres(database: &str) -> bool {
        database.starts_with("postgres://") || database.starts_with("postgresql://")
    }

    /// Parses and checks a URL.
    ///
    /// # Errors
    /// A message that never repeats the URL (it may hold the password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut ssl_mode = SslMode::Prefer;
        let mut ca_file = None;
        let mut passed_on = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("the URL's {key} is not UTF-8"))?;
            match key {
                "sslmode" => ssl_mode = SslMode::parse(&decoded)?,
                "sslrootcert" => ca_file = Some(PathBuf::from(decoded.into_owned())),
                _ => passed_on.push(pair),
            }
        }
        let rest = if passed_on.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", passed_on.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| format!("not a usable postgres:// URL: {e}"))?;
        if config.get_hosts().is_empty() {
            return Err("the postgres:// URL names no host".to_owned());
        }
        if config.get_user().is_none() {
            return Err("the postgres:// URL names no user".to_owned());
        }
        if ca_file.is_some() && ssl_mode != SslMode::VerifyFull {
            return Err(format!(
                "sslrootcert is only used with sslmode=verify-full, and sslmode is {}",
                ssl_mode.name()
            ));
        }
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEFAULT_TCP_USER_TIMEOUT);
        }
        let sets = |key: &str| passed_on.iter().any(|p| p.split('=').next() == Some(key));
        if !sets("keepalives_idle") {
            config.keepalives_idle(KEEPALIVES_IDLE);
        }
        if !sets("keepalives_interval") {
            config.keepalives_interval(KEEPALIVES_INTERVAL);
        }
        if !sets("keepalives_retries") {
            config.keepalives_retries(KEEPALIVES_RETRIES);
        }
        let options = match config.get_options() {
            Some(own) => format!("{SESSION_OPTIONS} {own}"),
            None => SESSION_OPTIONS.to_owned(),
        };
        config.options(&options);
        // Seen in pg_stat_activity, so an operator can tell powgate's
        // connections apart.
        if config.get_application_name().is_none() {
            config.application_name("powgate");
        }
        Ok(Self {
            config,
            ssl_mode,
            ca_file,
        })
    }

    /// What to warn an operator of at start-up about the URL's TLS, if
    /// anything: `sslmode` `disable` or `prefer` (libpq's default, and so
    /// powgate's) to a server that is not on this machine. With `prefer`,
    /// anyone on the path can answer that TLS is not offered, and read the
    /// password and every token hash; `require` at least encrypts, and
    /// `verify-full` also checks whose server it is.
    pub(crate) fn tls_warning(&self) -> Option<String> {
        use tokio_postgres::config::Host;
        if !matches!(self.ssl_mode, SslMode::Disable | SslMode::Prefer) {
            return None;
        }
        let remote = self.config.get_hosts().iter().any(|h| match h {
            Host::Unix(_) => false,
            Host::Tcp(name) => !is_loopback_host(name),
        });
        remote.then(|| {
            format!(
                "the database connection is sslmode={}: its TLS is not required, so anyone on \
                 the network path can read the password and the token hashes; add \
                 sslmode=verify-full (and sslrootcert, for a private CA) to the URL",
                self.ssl_mode.name()
            )
        })
    }

    /// tokio-postgres's connection settings, password included.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector `sslmode` asks for.
    ///
    /// # Errors
    /// When the CA file cannot be read, or `verify-full` finds no roots.
    pub(crate) fn connector(&self) -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let tls = match self.ssl_mode {
            // `disable` never shakes hands; `prefer` and `require` encrypt
            // without checking whom they talk to, as libpq does.
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            SslMode::VerifyFull => builder
                .with_root_certificates(root_store(self.ca_file.as_deref())?)
                .with_no_client_auth(),
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
    }
}

impl fmt::Display for PostgresUrl {
    /// `postgres://user@host:port/dbname?sslmode=…`: what an operator needs
    /// to recognise the server, and never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use tokio_postgres::config::Host;
        write!(f, "postgres://{}@", self.config.get_user().unwrap_or(""))?;
        let ports = self.config.get_ports();
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match host {
                Host::Tcp(name) => f.write_str(name)?,
                Host::Unix(path) => write!(f, "{}", path.display())?,
            }
            if let Some(port) = ports.get(i).or(ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        write!(
            f,
            "/{}?sslmode={}",
            self.config.get_dbname().unwrap_or(""),
            self.ssl_mode.name()
        )?;
        if let Some(ca) = &self.ca_file {
            write!(f, "&sslrootcert={}", ca.display())?;
        }
        Ok(())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// `localhost`, or a loopback address: a connection that never leaves the
/// machine.
fn is_loopback_host(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `sslrootcert`, or the system's roots.
fn root_store(ca_file: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    crate::tls_roots::root_store(
        ca_file,
        &crate::tls_roots::RootsFor {
            file_label: &|file| format!("the database's sslrootcert {}", file.display()),
            no_system_roots: "the database's sslmode=verify-full; install ca-certificates or add sslrootcert to the URL",
        },
    )
}

/// `sslmode=prefer` and `require`: encryption without authentication of the
/// server, as libpq means them. The handshake's signatures are still
/// checked, so the session key is the server's; whose server it is, is not.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_displayed_or_debugged() {
        let url = PostgresUrl::parse(
            "postgres://pg:hunter2secret@db.example:5433/powgate?sslmode=require",
        )
        .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert_eq!(
            url.to_string(),
            "postgres://pg@db.example:5433/powgate?sslmode=require"
        );
        assert_eq!(url.config().get_password(), Some(&b"hunter2secret"[..]));
    }

    #[test]
    fn a_refused_url_is_not_repeated_in_the_error() {
        for bad in [
            "postgres://pg:hunter2secret@db.example/powgate?sslmode=verify-ca",
            "postgres://pg:hunter2secret@db.example/powgate?sslmode=nonsense",
            "postgres://pg:hunter2secret@db.example/powgate?nosuchoption=1",
            "postgres://pg:hunter2secret@db.example:notaport/powgate",
            "postgres://pg:hunter2secret@db.example/powgate?sslrootcert=/ca.pem",
        ] {
            let e = PostgresUrl::parse(bad).unwrap_err();
            assert!(!e.contains("hunter2secret"), "{e}");
        }
    }

    #[test]
    fn sslmode_and_sslrootcert_are_read_by_powgate_and_the_rest_passed_on() {
        let url = PostgresUrl::parse(
            "postgresql://pg@10.0.0.1/powgate?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=2",
        )
        .unwrap();
        assert_eq!(url.ssl_mode, SslMode::VerifyFull);
        assert_eq!(url.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(
            url.config().get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
    }

    #[test]
    fn every_session_bounds_its_lock_waits_and_idle_transactions_unless_the_url_says_otherwise() {
        let url = PostgresUrl::parse("postgres://pg@db/powgate").unwrap();
        assert_eq!(url.config().get_options(), Some(SESSION_OPTIONS));
        let url =
            PostgresUrl::parse("postgres://pg@db/powgate?options=-c%20lock_timeout%3D5s").unwrap();
        assert_eq!(
            url.config().get_options(),
            Some(&*format!("{SESSION_OPTIONS} -c lock_timeout=5s")),
            "the URL's own setting comes last, so it wins"
        );
    }

    #[test]
    fn dead_connections_are_given_up_on_unless_the_url_says_otherwise() {
        let url = PostgresUrl::parse("postgres://pg@db/powgate").unwrap();
        let c = url.config();
        assert_eq!(c.get_tcp_user_timeout(), Some(&DEFAULT_TCP_USER_TIMEOUT));
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(c.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));
        assert_eq!(c.get_keepalives_retries(), Some(KEEPALIVES_RETRIES));
        let own = PostgresUrl::parse(
            "postgres://pg@db/powgate?tcp_user_timeout=30&keepalives_idle=60&keepalives_interval=7&keepalives_retries=9",
        )
        .unwrap();
        let c = own.config();
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(7)));
        assert_eq!(c.get_keepalives_retries(), Some(9));
    }

    #[test]
    fn unrequired_tls_to_another_machine_is_warned_of() {
        let warns = |u: &str| PostgresUrl::parse(u).unwrap().tls_warning();
        let w = warns("postgres://pg:hunter2secret@db.example/powgate").unwrap();
        assert!(
            w.contains("sslmode=prefer") && w.contains("verify-full"),
            "{w}"
        );
        assert!(!w.contains("hunter2secret"), "{w}");
        assert!(warns("postgres://pg@10.0.0.5/powgate?sslmode=disable").is_some());
        for quiet in [
            "postgres://pg@db.example/powgate?sslmode=require",
            "postgres://pg@db.example/powgate?sslmode=verify-full",
            "postgres://pg@localhost/powgate",
            "postgres://pg@127.0.0.1:5433/powgate?sslmode=disable",
            "postgres://pg@[::1]/powgate",
            "postgres://pg@%2Frun%2Fpostgresql/powgate",
        ] {
            assert_eq!(warns(quiet), None, "{quiet}");
        }
    }

    #[test]
    fn without_sslmode_tls_is_preferred_as_in_libpq() {
        let url = PostgresUrl::parse("postgres://pg@db/powgate").unwrap();
        assert_eq!(url.ssl_mode, SslMode::Prefer);
        assert_eq!(
            url.config().get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
    }
}
