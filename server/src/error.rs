//! One error type for every HTTP answer that is not a success.
//!
//! Each variant knows its status and a stable `error` code. An internal
//! cause is replaced by a generic message, so nothing about the server's
//! insides reaches a client; it travels on the response as an
//! [`InternalCause`] extension, which the router's one log hook
//! (`routes::log_internal_errors`) writes to the log.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pow::wire::ErrorBody;

pub(crate) type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Headers every JSON API answer carries, refusals included. `no-store`:
/// an answer is about one client at one moment (a token, a challenge, a
/// refusal), so no shared cache or browser history may keep it. `nosniff`:
/// a browser must never read JSON that echoes request data as HTML or
/// script. Static values, so adding them costs no allocation.
const API_HEADERS: [(HeaderName, HeaderValue); 2] = [
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
];

/// Marks an answer as a JSON API answer (see [`API_HEADERS`]).
pub(crate) fn add_api_headers(headers: &mut HeaderMap) {
    for (name, value) in API_HEADERS {
        headers.insert(name, value);
    }
}

/// The cause of a 500, riding on the response (never in its body) to the
/// router's log hook. An `Arc` because response extensions must be `Clone`.
#[derive(Debug, Clone)]
pub(crate) struct InternalCause(pub Arc<anyhow::Error>);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: the request cannot be understood.
    #[error("{0}")]
    BadRequest(String),
    /// 400: one field of the request is out of range.
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    /// 401: no usable credential.
    #[error("{0}")]
    Unauthorized(String),
    /// 400: the admission ticket is missing or does not meet the
    /// challenge's ticket bits; refused before anything is spent or hashed.
    #[error(
        "the ticket is missing or does not meet this challenge's ticket_bits; compute it with the same salt (see ticket in the protocol) and resubmit"
    )]
    BadTicket {
        /// No ticket at all (a client from before tickets), rather than a
        /// wrong one.
        missing: bool,
    },
    /// 403: the answer is wrong.
    #[error("the nonce does not solve this challenge")]
    WrongAnswer,
    /// 403: the challenge or token belongs to another client address.
    #[error("{0}")]
    WrongIp(String),
    /// 403: refused for another stated reason.
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409: the challenge was already used.
    #[error("this challenge was already used; request a new one")]
    AlreadySpent,
    /// 410: the challenge or token ran out.
    #[error("{0}")]
    Expired(String),
    /// 408: the request took longer than allowed.
    #[error("the request took too long; retry")]
    Timeout,
    /// 413
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// 429
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// 503: the answer got no turn on a verification thread yet (see
    /// [`crate::verifier`]). Its challenge is not spent: the client
    /// resubmits the same answer after `retry_after` seconds and keeps its
    /// place in line. The body carries `ahead`, for an honest "n ahead of
    /// you".
    #[error(
        "your answer is waiting to be verified, {ahead} ahead of it; send it again in {retry_after} s to keep its place"
    )]
    Queued { ahead: usize, retry_after: u64 },
    /// 503: the store cannot be reached now (see
    /// [`crate::store::StoreError::Unavailable`]); retry after the seconds
    /// given.
    #[error("the database is unavailable; retry in {0} s")]
    StoreUnavailable(u64),
    /// 405
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// Any other 4xx produced by the framework before a handler ran (an
    /// extractor's rejection, see `routes::extract`).
    #[error("{}", if message.is_empty() { status.canonical_reason().unwrap_or("rejected") } else { message.as_str() })]
    Rejected { status: StatusCode, message: String },
    /// 502: proxy mode's upstream refused the connection, or broke it
    /// before its response headers.
    #[error("the application behind powgate cannot be reached; retry shortly")]
    UpstreamUnavailable,
    /// 504: proxy mode's upstream sent no response headers in time.
    #[error("the application behind powgate did not answer in time; retry shortly")]
    UpstreamTimeout,
    /// 500: logged (see [`InternalCause`]), never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub(crate) fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::InvalidField { .. } | Self::BadTicket { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::WrongAnswer | Self::WrongIp(_) | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::AlreadySpent => StatusCode::CONFLICT,
            Self::Expired(_) => StatusCode::GONE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Queued { .. } | Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Rejected { status, .. } => *status,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::InvalidField { .. } => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::BadTicket { .. } => "bad_ticket",
            Self::WrongAnswer => "wrong_answer",
            Self::WrongIp(_) => "wrong_ip",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::AlreadySpent => "already_spent",
            Self::Expired(_) => "expired",
            Self::Timeout => "timeout",
            Self::TooLarge(_) => "too_large",
            Self::RateLimited(_) => "rate_limited",
            Self::Queued { .. } => "queued",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Rejected { status, .. } => rejected_code(*status),
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Internal(_) => "internal",
        }
    }

    /// What the client is told: the error's own text, except for an
    /// internal error, whose cause only the log gets.
    pub(crate) fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => {
                "internal error; the operator can find details in the server log".to_owned()
            }
            other => other.to_string(),
        }
    }

    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited(s)
            | Self::Queued { retry_after: s, .. }
            | Self::StoreUnavailable(s) => Some(*s),
            _ => None,
        }
    }
}

/// The code of an extractor's refusal, named after its status so that a
/// client can tell a wrong content type from a malformed request.
fn rejected_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        _ => "bad_request",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry = self.retry_after();
        let field = match &self {
            Self::InvalidField { field, .. } => Some((*field).to_owned()),
            _ => None,
        };
        let ahead = match &self {
            Self::Queued { ahead, .. } => Some(u64::try_from(*ahead).unwrap_or(u64::MAX)),
            _ => None,
        };
        let code = self.code().to_owned();
        let message = self.public_message();
        let cause = match self {
            Self::Internal(cause) => Some(InternalCause(Arc::new(cause))),
            _ => None,
        };
        let body = ErrorBody {
            error: code,
            message,
            field,
            ahead,
        };
        let mut resp = (status, Json(body)).into_response();
        add_api_headers(resp.headers_mut());
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(cause) = cause {
            resp.extensions_mut().insert(cause);
        }
        resp
    }
}

impl From<crate::limits::Limited> for ApiError {
    fn from(l: crate::limits::Limited) -> Self {
        Self::RateLimited(crate::limits::retry_after_secs(l.wait))
    }
}

/// Seconds a client is told to wait when the store is unavailable: long
/// enough for a pool to drain or a database to come back from a restart.
const STORE_RETRY_AFTER_SECS: u64 = 5;

/// At most one "store unavailable" warning per this many seconds: while a
/// shared database is down, every uncached request meets it, and a line
/// per request would bury everything else in the log.
const STORE_WARN_EVERY_SECS: u64 = 10;

/// When the last warning was written (unix seconds), and how many were
/// left out since. Process-wide, as the log is.
static STORE_WARNED_AT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static STORE_WARNINGS_LEFT_OUT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn warn_store_unavailable(cause: &anyhow::Error) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = STORE_WARNED_AT.load(Relaxed);
    if now.saturating_sub(last) >= STORE_WARN_EVERY_SECS
        && STORE_WARNED_AT
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    {
        let left_out = STORE_WARNINGS_LEFT_OUT.swap(0, Relaxed);
        tracing::warn!(
            error = %format!("{cause:#}"),
            left_out,
            "the store is unavailable (at most one warning every {STORE_WARN_EVERY_SECS} s; left_out counts the others)"
        );
    } else {
        STORE_WARNINGS_LEFT_OUT.fetch_add(1, Relaxed);
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(cause) => {
                // Not a 500, so the log hook does not see it: logged here.
                warn_store_unavailable(&cause);
                Self::StoreUnavailable(STORE_RETRY_AFTER_SECS)
            }
            fault @ crate::store::StoreError::Fault(_) => Self::Internal(fault.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts WARN events.
    #[derive(Clone, Default)]
    struct Warnings(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// A database outage under load meets the store on every request; the
    /// log gets a line now and then, not one per request.
    #[test]
    fn an_unavailable_store_is_not_logged_once_per_request() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let warnings = Warnings::default();
        let subscriber = tracing_subscriber::registry().with(warnings.clone());
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..100 {
                let e = crate::store::StoreError::Unavailable(anyhow::anyhow!("refused"));
                assert!(matches!(ApiError::from(e), ApiError::StoreUnavailable(_)));
            }
        });
        assert!(warnings.0.load(std::sync::atomic::Ordering::SeqCst) <= 1);
    }

    #[test]
    fn an_internal_cause_reaches_the_log_hook_but_not_the_client() {
        let resp =
            ApiError::Internal(anyhow::anyhow!("disk /var/lib/powgate is full")).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = resp
            .extensions()
            .get::<InternalCause>()
            .expect("a 500 carries its cause for the log hook");
        assert_eq!(cause.0.to_string(), "disk /var/lib/powgate is full");
        let body = body_text(resp);
        assert!(
            !body.contains("/var/lib"),
            "cause leaked to the client: {body}"
        );
        assert!(body.contains("\"error\":\"internal\""), "{body}");
    }

    /// The route-side half of a rate limit: a `Limited` wait must reach the
    /// client as a 429 whose `Retry-After` is rounded up, never down to a
    /// wait that would be refused again.
    #[test]
    fn a_limited_wait_becomes_a_429_with_retry_after_rounded_up() {
        let limited = crate::limits::Limited {
            wait: std::time::Duration::from_millis(1_200),
        };
        let resp = ApiError::from(limited).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert!(body_text(resp).contains("\"error\":\"rate_limited\""));
    }

    /// The page and `powgate solve` read `ahead` and `Retry-After` to say
    /// "n ahead of you" and to resubmit; without them a queued visitor
    /// would see a bare failure.
    #[test]
    fn a_queued_answer_is_a_503_with_ahead_and_retry_after() {
        let resp = ApiError::Queued {
            ahead: 7,
            retry_after: 1,
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let body: ErrorBody = serde_json::from_str(&body_text(resp)).unwrap();
        assert_eq!((body.error.as_str(), body.ahead), ("queued", Some(7)));
    }

    /// A database that cannot be reached for a moment (a pool timeout, a
    /// restarting PostgreSQL) must tell clients to come back, not answer
    /// with a storm of 500s; a real fault stays a 500 with its cause hidden.
    #[test]
    fn an_unavailable_store_is_a_503_with_retry_after_and_a_fault_a_500() {
        use crate::store::StoreError;

        let resp = ApiError::from(StoreError::Unavailable(anyhow::anyhow!("pool timed out")))
            .into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
        let body = body_text(resp);
        assert!(body.contains("\"error\":\"store_unavailable\""), "{body}");
        assert!(!body.contains("pool timed out"), "{body}");

        let resp =
            ApiError::from(StoreError::Fault(anyhow::anyhow!("no such table"))).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body_text(resp).contains("no such table"));
    }

    fn body_text(resp: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(resp.into_body(), 4096))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
