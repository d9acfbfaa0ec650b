//! Request extractors whose failures are [`ApiError`]s, so every refusal is
//! JSON with a precise status rather than axum's plain-text rejections.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::client_ip::IpKey;
use crate::error::ApiError;
use crate::state::AppState;

/// The client's address after the trusted-proxy rules, and its counting key.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp {
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
        let via_trusted_proxy = state.client_ip.is_trusted(peer);
        let ip = if via_trusted_proxy {
            state.client_ip.forwarded_client(peer, &parts.headers)
        } else {
            crate::client_ip::canonical(peer)
        };
        Ok(Self {
            ip,
            key: IpKey::of(ip),
            via_trusted_proxy,
        })
    }
}

/// A JSON body of type `T`. An empty body is read as `{}` when `T` allows it.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                state
                    .metrics
                    .limited
                    .with_label_values(&["body_size"])
                    .inc();
                ApiError::TooLarge(state.config.limits.max_body_bytes)
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
