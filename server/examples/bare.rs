//! The baseline of the load benchmark (`just bench`, part a): the least an
//! axum server can do per request, in its own process.
//!
//! One handler answers `/verify-token` (any method) with 200 "ok". The
//! runtime and the connection handling are powgate's own, so that the ratio
//! powgate / bare is what powgate's middleware, routing and token check
//! cost, and nothing else.
//!
//! It is also the application behind the proxies of part (e): every other
//! path answers 200 "ok" as well, and `POST /upload` reads its body to the
//! end and answers with the number of bytes, so that a 1 GiB upload really
//! streams through the proxy. Its settings are the same for both:
//! - `tokio::runtime::Runtime::new()`, as `serve` in server/src/main.rs:
//!   multi-threaded, one worker per core;
//! - hyper's http1 builder with the same timer, header-read timeout and
//!   header size limits as server/src/server.rs, one task per connection,
//!   keep-alive on.
//!
//! What it leaves out is what powgate adds: the connection caps, graceful
//! shutdown, the connect-info extension, the middleware layers and the
//! handler's work.
//!
//! ```text
//! cargo run --release -p powgate --example bare -- --listen 127.0.0.1:18090
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{any, post};
use clap::Parser;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Serve 200 "ok" at /verify-token (and at any other path), as cheaply as
/// axum and hyper can; `POST /upload` counts and discards its body.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: SocketAddr,
    /// hyper's header-read timeout, as powgate's `header_read_timeout_secs`.
    #[arg(long, default_value_t = 10)]
    header_read_timeout_secs: u64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    tokio::runtime::Runtime::new()?.block_on(serve(args))
}

async fn serve(args: Args) -> std::io::Result<()> {
    let router = Router::new()
        .route("/verify-token", any(|| async { "ok" }))
        .route("/upload", post(count_body))
        .fallback(|| async { "ok" });
    let listener = TcpListener::bind(args.listen).await?;
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(args.header_read_timeout_secs))
        .max_header_size(powgate::server::MAX_HEADER_BYTES)
        .max_buf_size(powgate::server::MAX_HEADER_BYTES);
    eprintln!("bare baseline listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// Reads the body frame by frame, keeping none of it, and answers with its
/// length: the sink of part (e)'s upload through the proxies.
async fn count_body(body: Body) -> String {
    let mut body = body.into_data_stream();
    let mut bytes: u64 = 0;
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        match chunk {
            Ok(chunk) => bytes += chunk.len() as u64,
            Err(e) => return format!("error after {bytes} bytes: {e}"),
        }
    }
    bytes.to_string()
}
