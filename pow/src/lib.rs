//! powgate's proof-of-work scheme, shared by the server, the `powgate solve`
//! CLI and the wasm solver. Pure maths and wire types: no I/O, no async,
//! builds for native targets and `wasm32-unknown-unknown`.
//!
//! # Protocol
//! 1. The client asks `POST /api/challenge`. The server draws a random
//!    16-byte challenge id, fixes the difficulty D in force, the argon2
//!    parameters, the ticket bits B, an expiry and the client's address key,
//!    and signs all of it with HMAC-SHA256
//!    ([`challenge::ChallengeClaims::sign`]).
//! 2. The client searches nonces n = 0, 1, 2, … (split among workers as
//!    `start, start + stride, …`, see [`solve::Solver`]) for one whose hash
//!    meets the target.
//! 3. Alongside, when B > 0, the client finds an admission ticket k: the
//!    first k = 0, 1, 2, … whose SHA-256 starts with B zero bits
//!    ([`ticket::solve`]). B is sized so that this costs about one argon2
//!    hash ([`ticket::bits_for`]): well under 1 % of a visitor's work, but
//!    what a sender of garbage nonces must now pay for each one.
//! 4. The client sends the challenge string, n and k to `POST /api/solve`.
//!    The server checks the signature, expiry and address, then the ticket
//!    (one SHA-256; a missing or wrong ticket is refused with `bad_ticket`
//!    and spends nothing), then that the challenge was never spent, spends
//!    it, and only then recomputes one argon2 hash.
//! 5. When no verification thread is free for it in time, the server answers
//!    503 with [`wire::ErrorBody`] `error: "queued"` and `ahead` (how many
//!    answers are verified before it) *before* spending the challenge. The
//!    client sends the same answer again after `Retry-After`, which keeps its
//!    place in line, for as long as the challenge is valid.
//!
//! # The exact bytes hashed
//! ```text
//! hash = argon2id(
//!     password = n as 8 bytes, unsigned big-endian,
//!     salt     = the 16-byte challenge id (the `salt` field, hex, of the challenge response),
//!     t, m (KiB), p, output length L  = the challenge's parameters,
//!     version  = 0x13, no secret, no associated data)
//! ```
//! n is a solution when the first 32 bytes of `hash`, read as a big-endian
//! unsigned integer, are ≤ floor((2^256 − 1) / D) ([`params::Difficulty::target`]).
//! Each nonce then wins with probability 1/D, so a client needs D hashes on
//! average. L is at least 32 so the comparison always has 256 bits.
//!
//! ```text
//! ticket digest = SHA-256(
//!     "powgate-ticket-v1" (17 ASCII bytes)
//!     ‖ the 16-byte challenge id
//!     ‖ k as 8 bytes, unsigned big-endian)
//! ```
//! k is a valid ticket when the digest, read from its first byte's most
//! significant bit on, starts with at least B zero bits (`ticket_bits` of
//! the challenge response). B = 0 asks for no ticket.
//!
//! # The TCP gate (`POWGATE/1`)
//! In front of a non-HTTP service the same challenge travels as text lines
//! ([`tcp`]), each ending with `\n`, none over [`tcp::MAX_LINE`] bytes:
//! 1. On connect the server sends one greeting: the challenge, bound to the
//!    peer's address, and what the solver needs:
//!    ```text
//!    POWGATE/1 CHALLENGE <challenge> salt=<32 hex> t=<t> m=<KiB> p=<p> len=<L> difficulty=<D> ticket_bits=<B>
//!    ```
//!    or, when the address may not have a challenge now (its challenge rate
//!    is used up), `POWGATE/1 NOCHALLENGE <code> retry_after=<s>`: only a
//!    token can pass on this connection.
//! 2. The client answers with one line: `NONCE <challenge> <n> <k>` (the
//!    challenge string, its solution and admission ticket, as above; k = 0
//!    when B = 0), or `TOKEN <token>` with a token from the HTTP API or an
//!    earlier handshake. The challenge is usually the greeting's; one from
//!    an earlier connection of the same address, still valid and unspent,
//!    is accepted too, so a slow solver may close the connection while it
//!    works and answer on a new one.
//! 3. The server checks it exactly as `POST /api/solve` or
//!    `/verify-token` would, then answers `OK <token>` (the new token for
//!    a nonce, to reuse next time) and from then on passes bytes both ways
//!    between the client and the service; or `ERR <code> <message>` and
//!    closes. A client that sends no line within the gate's handshake
//!    timeout gets `ERR timeout …`.

// As RustCrypto's argon2 does: this code runs on the server's verification
// path and in every browser, so a panic or a silently truncated length is a
// bug to fix, not to risk (clippy.toml allows unwrap inside tests).
#![deny(clippy::unwrap_used, clippy::cast_possible_truncation)]

pub mod argon2id;
pub mod challenge;
mod huge_pages;
pub mod params;
pub mod solve;
pub mod tcp;
pub mod ticket;
pub mod verify;
pub mod wire;

pub use challenge::{ChallengeClaims, ChallengeError, Purpose};
pub use params::{Argon2Params, Difficulty, ParamsError};
pub use solve::{Solver, Step};
pub use verify::{HashError, Hasher, meets_target};
