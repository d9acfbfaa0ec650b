//! powgate: a proof-of-work gatekeeper.
//!
//! A browser without a valid token pays one argon2id proof of work
//! (see the `pow` crate for the scheme) and receives a token kept in SQLite.
//! Reverse proxies then ask `/verify-token` on every request.
//!
//! Module map:
//! - [`config`]: layered, validated configuration.
//! - [`state`]: the shared [`state::AppState`].
//! - [`routes`]: HTTP handlers; [`routes::app`] builds the router.
//! - [`gate`]: may this request pass (allowlist, then token).
//! - [`store`]: the storage seam (one `Store` trait, the conformance suite)
//!   and its backends; SQLite's pool, migrations and queries in `store::sqlite`.
//! - [`token_store`]: tokens with an in-memory cache in front of the database.
//! - [`token_usage`]: requests each token passed, its rate and lifetime budgets.
//! - [`challenge_ledger`]: spent challenges, so each is used once.
//! - [`verifier`]: bounded, fair, off-runtime argon2 verification.
//! - [`reputation`]: recent wrong answers per address and network, which
//!   order the verifier's turns.
//! - [`acceptance`]: which signed challenges are still worth an argon2 run.
//! - [`open_challenges`]: the bounded ledger of issued, unspent challenges.
//! - [`client_ip`]: trusted-proxy rules and address keys.
//! - [`proxy`]: proxy mode, powgate in front of the application.
//! - [`tcp`]: the TCP gate, powgate in front of a non-HTTP service.
//! - [`server`]: start-up, background jobs and graceful shutdown.
//! - [`cli`]: the `powgate solve` client.
//!
//! Only what the binary, the integration tests, the examples and the fuzz
//! targets use is `pub`; everything else is `pub(crate)`, and the
//! workspace's `unreachable_pub` lint keeps it that way, so dead code shows
//! up as dead instead of hiding behind an export nobody calls.

pub(crate) mod acceptance;
pub(crate) mod adaptive;
pub mod admin_auth;
pub mod allowlist;
pub(crate) mod challenge_ledger;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod cookies;

pub(crate) mod error;
pub(crate) mod forwarded;
pub(crate) mod gate;
pub(crate) mod limits;
pub(crate) mod linger;
pub(crate) mod locale;
pub(crate) mod metrics;
pub(crate) mod open_challenges;
pub(crate) mod origin;
pub(crate) mod proxy;
pub(crate) mod redirect;
pub(crate) mod reputation;
pub(crate) mod routes;
pub(crate) mod secret;
pub mod server;
pub(crate) mod settings;
pub mod state;
pub(crate) mod stats;
pub(crate) mod store;
pub mod tcp;
pub(crate) mod tls_roots;
pub mod token;
pub(crate) mod token_store;
pub(crate) mod token_usage;
pub mod verifier;
