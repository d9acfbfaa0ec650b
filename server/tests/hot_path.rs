//! What the routes owe every client whichever middleware they pass: JSON
//! refusals and the request time bound. `/verify-token`
//! and `/healthz` skip the middleware of the other routes (routes/mod.rs),
//! so these tests drive both groups.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestApp;

/// `/verify-token` and `/healthz` no longer pass the plain-text rewriter;
/// their refusals must be JSON by themselves, and the rewriter must still
/// serve the other routes.
#[test]
fn refusals_are_json_on_both_sides_of_the_hot_path_split() {
    let app = TestApp::spawn();
    let agent = app.agent();
    let mut cases = vec![
        (
            "POST /healthz",
            agent.post(&app.url("/healthz")).send_empty(),
        ),
        // A form route sent JSON: axum's Form rejects it in plain text.
        (
            "POST /api/token as JSON",
            agent
                .post(&app.url("/api/token"))
                .header("Content-Type", "application/json")
                .send("{}"),
        ),
    ];
    for (what, r) in cases.drain(..) {
        let mut r = r.unwrap();
        assert!(r.status().is_client_error(), "{what}: {}", r.status());
        let v: serde_json::Value = r
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert!(
            v["error"].is_string() && v["message"].is_string(),
            "{what}: {v}"
        );
    }
}

/// A client that sends its headers and then trickles (or withholds) the
/// body must be cut off by `request_timeout_secs`, not hold the connection:
/// the time bound moved off the hot path, so it is pinned here where
/// bodies are read.
#[test]
fn withheld_request_body_is_cut_off_with_408() {
    let app = TestApp::spawn_with(|c| c.request_timeout_secs = 1);
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.write_all(
        b"POST /api/solve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"challenge\"",
    )
    .unwrap();
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = [0u8; 512];
    let n = s.read(&mut got).unwrap_or(0);
    let answer = String::from_utf8_lossy(&got[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("\"error\":\"timeout\""), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        app.metrics()
            .contains("powgate_limited_total{limit=\"request_timeout\"} 1")
    );
}
