//! JSON request and response bodies shared by the server, the CLI and the
//! browser solver. Field names are part of the public API.

use serde::{Deserialize, Serialize};

use crate::params::Argon2Params;

/// `POST /api/challenge` body. Every field is optional; an empty body or
/// `{}` asks for a new-token challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// An expired token to refresh at half difficulty. When absent, the
    /// `powgate_token` cookie is used if it holds a refreshable token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Whether a challenge buys a new token or extends an expired one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengePurpose {
    New,
    Refresh,
}

/// `POST /api/challenge` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// Opaque signed challenge; send it back unchanged with the nonce.
    pub challenge: String,
    pub purpose: ChallengePurpose,
    /// The argon2id salt (16 bytes, hex).
    pub salt: String,
    pub argon2: Argon2Params,
    /// Expected number of hashes to find a solution.
    pub difficulty: u64,
    /// floor((2^256-1)/difficulty), 32 bytes, hex.
    pub target: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Leading zero bits the admission ticket must have
    /// ([`crate::ticket::solve`] over `salt`); 0 when none is asked for.
    #[serde(default)]
    pub ticket_bits: u8,
}

/// Optional numbers a client reports about its search, used for the admin
/// page's solve-time estimates. Never trusted for anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// The device class the client sized its search for. Absent from older
    /// clients; a name this version does not know parses as
    /// [`ReportedClass::Unknown`] rather than failing the solve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ReportedClass>,
}

/// A device class as a client names it in [`Telemetry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedClass {
    Desktop,
    Phone,
    SafariIos,
    /// Any other name: a newer or a lying client.
    #[serde(other)]
    Unknown,
}

/// `POST /api/solve` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolveRequest {
    pub challenge: String,
    pub nonce: u64,
    /// The admission ticket for this challenge ([`crate::ticket`]). Required
    /// whenever the challenge's `ticket_bits` is not 0; optional in the
    /// schema so that a client without one gets `bad_ticket`, which names
    /// the fix, rather than a schema error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<u64>,
    /// For a refresh challenge: the token being refreshed, when it is not in
    /// the `powgate_token` cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
    /// Where the visitor wants to go afterwards (the page's `?redir=`). The
    /// server checks it and answers the result in
    /// [`SolveResponse::redirect`], so the page needs no rule of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redir: Option<String>,
}

/// `POST /api/solve` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SolveResponse {
    /// The user token (a UUIDv4). Also set as the `powgate_token` cookie.
    pub token: String,
    /// True when an existing token was extended rather than a new one issued.
    pub refreshed: bool,
    /// Unix seconds.
    pub expires_at: i64,
    /// The request's `redir` when it passed the server's check (a path on
    /// this site, or a URL on this host or a `redirect_domains` host); else
    /// null, the safe default: stay on the page. Absent from older servers.
    #[serde(default)]
    pub redirect: Option<String>,
}

/// Every error answer: a stable machine-readable `error` code and a
/// sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `queued` (503): how many submissions get their turn before this
    /// one. The answer is not lost: send it again after `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead: Option<u64>,
}

/// `/verify-token` answer body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// `valid`, `missing`, `malformed`, `unknown`, `expired`, `revoked` or `ip_limit`.
    pub status: String,
    /// Whether an expired token can still be refreshed at half difficulty.
    pub refreshable: bool,
    /// Where a client obtains a token, when it has none that works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_url: Option<String>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: the page now reports its device class. Older clients send
    /// none, and a class name this version does not know must not turn a
    /// valid solution into a rejected request.
    #[test]
    fn telemetry_class_is_optional_and_unknown_names_do_not_fail() {
        let parse = |json: &str| serde_json::from_str::<Telemetry>(json).unwrap().class;
        assert_eq!(parse(r#"{"hashes": 3}"#), None);
        assert_eq!(
            parse(r#"{"class": "safari_ios"}"#),
            Some(ReportedClass::SafariIos)
        );
        assert_eq!(
            parse(r#"{"class": "toaster"}"#),
            Some(ReportedClass::Unknown)
        );
    }
}
