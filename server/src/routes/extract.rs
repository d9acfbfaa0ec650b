//! Request extractors whose failures are [`ApiError`]s, so every refusal is
//! JSON with a precise status rather than axum's plain-text rejections.
//!
//! Handlers use these instead of axum's `Query`, `Form` and `Path`: a
//! rejection becomes an [`ApiError`] where it happens, so no middleware has
//! to find and rewrite plain-text answers afterwards.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::client_ip::IpKey;
use crate::error::ApiError;
use crate::state::AppState;

/// The client's address after the trusted-proxy rules, and its counting key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp {
    pub ip: IpAddr,
    pub key: IpKey,
    /// Whether the TCP peer is a trusted proxy, whose forwarded headers count.
    pub via_trusted_proxy: bool,
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip())
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("no peer address: serve with connect info"))
            })?;
        let ip = state.client_ip.resolve(peer, &parts.headers);
        Ok(Self {
            ip,
            key: IpKey::of(ip),
            via_trusted_proxy: state.client_ip.is_trusted(peer),
        })
    }
}

/// A JSON body of type `T`. An empty body is read as `{}` when `T` allows it.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(state)
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {e}"))
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// A body over `max_body_bytes`, whichever extractor read it: counted in
/// `powgate_limited_total{limit="body_size"}` and answered 413 `too_large`.
fn too_large(state: &AppState) -> ApiError {
    state
        .metrics
        .limited
        .with_label_values(&["body_size"])
        .inc();
    ApiError::TooLarge(state.config.limits.max_body_bytes)
}

// Each rejection keeps the status axum chose for it (400 for a query string
// that does not parse, 415 for a form without the form content type, 422 for
// a form missing a field, 413 for a form over the body limit) and its text.

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::Rejected {
            status: e.status(),
            message: e.body_text(),
        }
    }
}

impl From<FormRejection> for ApiError {
    fn from(e: FormRejection) -> Self {
        Self::Rejected {
            status: e.status(),
            message: e.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::Rejected {
            status: e.status(),
            message: e.body_text(),
        }
    }
}

/// A query string deserialized into `T`.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// A URL-encoded form body deserialized into `T`.
#[derive(Debug)]
pub(crate) struct FormBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for FormBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match Form::from_request(req, state).await {
            Ok(Form(value)) => Ok(Self(value)),
            // The same answer and count as an oversized JSON body, not a
            // generic rejection that the body-size metric would miss.
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large(state)),
            Err(e) => Err(e.into()),
        }
    }
}

/// The route's path parameters deserialized into `T`.
#[derive(Debug)]
pub(crate) struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}
