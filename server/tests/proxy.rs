//! Proxy mode (issue 16): powgate in front of a real upstream that the test
//! starts on loopback (or a unix socket), which records what reaches it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::TestApp;
use powgate::config::StringList;
use tokio::sync::Notify;

/// A request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
}

#[derive(Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Lets the event stream send its next event.
    next_event: Arc<Notify>,
}

/// The application behind powgate: records every request, and answers a
/// few paths specially.
async fn upstream_handler(State(shared): State<Shared>, mut req: Request) -> Response {
    shared.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        headers: req.headers().clone(),
    });
    match req.uri().path() {
        "/status/404" => (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html")],
            "<h1>the app's own 404</h1>",
        )
            .into_response(),
        "/status/500" => (StatusCode::INTERNAL_SERVER_ERROR, "the app's own 500").into_response(),
        "/upload" => {
            let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            format!("received {}", bytes.len()).into_response()
        }
        "/events" => {
            let next = shared.next_event.clone();
            let events = futures_util::stream::unfold(0, move |n| {
                let next = next.clone();
                async move {
                    if n > 1 {
                        return None;
                    }
                    if n == 1 {
                        next.notified().await;
                    }
                    let event = format!("data: event {n}\n\n");
                    Some((Ok::<_, std::io::Error>(event), n + 1))
                }
            });
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(events),
            )
                .into_response()
        }
        "/echo-upgrade" | "/.well-known/echo-upgrade" => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let mut io = hyper_util::rt::TokioIo::new(on.await.unwrap());
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "echo")
                .body(Body::empty())
                .unwrap()
        }
        "/.well-known/slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "too late".into_response()
        }
        _ => "hello from the app".into_response(),
    }
}

/// The upstream, on its own runtime so that the tests can stay blocking.
struct Upstream {
    shared: Shared,
    addr: Option<SocketAddr>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Upstream {
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn app(shared: &Shared) -> Router {
        Router::new()
            .fallback(upstream_handler)
            .with_state(shared.clone())
    }

    /// On `addr`, or a free loopback port.
    fn tcp(addr: Option<SocketAddr>, shared: Shared) -> Self {
        let rt = Self::runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(
                addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()),
            ))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(axum::serve(listener, Self::app(&shared)).into_future());
        Self {
            shared,
            addr: Some(addr),
            rt: Some(rt),
        }
    }

    fn unix(path: &PathBuf) -> Self {
        let shared = Shared::default();
        let rt = Self::runtime();
        let listener = rt
            .block_on(async { tokio::net::UnixListener::bind(path) })
            .unwrap();
        rt.spawn(axum::serve(listener, Self::app(&shared)).into_future());
        Self {
            shared,
            addr: None,
            rt: Some(rt),
        }
    }

    /// Over TLS with `dir`'s `leaf.pem` and `leaf.key` (see [`test_ca`]).
    fn tls(dir: &std::path::Path) -> Self {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let shared = Shared::default();
        let rt = Self::runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let certs = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let app = Self::app(&shared);
        rt.spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(tls),
                            hyper_util::service::TowerToHyperService::new(app),
                        )
                        .await;
                });
            }
        });
        Self {
            shared,
            addr: Some(addr),
            rt: Some(rt),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr.unwrap())
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Takes the upstream down: its listener and connections close.
    fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// powgate in proxy mode in front of `upstream`. Loopback is not a trusted
/// proxy here, so the test client is an ordinary visitor whose forwarding
/// headers are claims.
fn powgate_in_front_of(upstream: &str) -> TestApp {
    powgate_in_front_of_with(upstream, |_| {})
}

/// [`powgate_in_front_of`] with more configuration.
fn powgate_in_front_of_with(
    upstream: &str,
    more: impl FnOnce(&mut powgate::config::RawConfig),
) -> TestApp {
    let upstream = upstream.to_owned();
    TestApp::spawn_with(move |raw| {
        raw.upstream = Some(upstream);
        raw.trusted_proxies = StringList::List(Vec::new());
        raw.proxy_connect_timeout_secs = 2;
        more(raw);
    })
}

/// A token obtained through the prefixed API, as the page does.
fn token_via_prefix(app: &TestApp) -> String {
    let agent = app.agent();
    let mut r = agent
        .post(&app.url("/.powgate/api/challenge"))
        .send_json(serde_json::json!({}))
        .unwrap();
    assert_eq!(r.status(), 200);
    let ch: pow::wire::ChallengeResponse = r.body_mut().read_json().unwrap();
    let mut r = agent
        .post(&app.url("/.powgate/api/solve"))
        .send_json(common::answer(&ch))
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Sends `head` (a request without its final blank line) on a raw
/// connection and returns the connection and the response head.
fn raw_request(addr: SocketAddr, head: &str) -> (BufReader<TcpStream>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut response = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        response.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    (reader, response)
}

#[test]
fn a_valid_token_passes_and_the_upstream_never_sees_powgate_credentials_or_claimed_forwarding() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let token = token_via_prefix(&app);
    let mut r = app
        .agent()
        .get(&app.url("/private"))
        .header(
            "cookie",
            &format!("theme=dark; powgate_token={token}; session=\"a b\""),
        )
        .header("x-powgate-status", "valid")
        .header("x-powgate-anything", "forged")
        .header("x-forwarded-for", "10.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "10.6.6.6")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_mut().read_to_string().unwrap(), "hello from the app");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let h = &seen[0].headers;
    assert_eq!(h["cookie"], "theme=dark; session=\"a b\"");
    assert_eq!(h.get_all("x-powgate-status").iter().count(), 1);
    assert_eq!(h["x-powgate-status"], "valid", "powgate's own verdict");
    assert!(h.get("x-powgate-anything").is_none(), "{h:?}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
}

/// The claim `X-Powgate-Status: valid` neither lets a request through nor
/// reaches the application beside powgate's own verdict.
#[test]
fn a_client_claiming_x_powgate_status_valid_is_neither_believed_nor_passed_on() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let r = app
        .agent()
        .get(&app.url("/private"))
        .header("x-powgate-status", "valid")
        .call()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(upstream.seen().is_empty());
    // An allowlisted path passes without a token, with powgate's label.
    let r = app
        .agent()
        .get(&app.url("/robots.txt"))
        .header("x-powgate-status", "valid")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen[0].headers["x-powgate-status"], "allowlisted");
}

#[test]
fn the_raw_path_and_query_reach_the_upstream_byte_for_byte() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let token = token_via_prefix(&app);
    let raw = "/a;b/%2F//c?x=%2F&y=a%20b;c";
    let (_, head) = raw_request(
        app.addr,
        &format!(
            "GET {raw} HTTP/1.1\r\nHost: site.example\r\nAuthorization: Bearer {token}\r\nConnection: close"
        ),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = upstream.seen();
    assert_eq!(seen[0].uri, raw);
    assert_eq!(seen[0].headers["host"], "site.example");
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "the powgate token that passed stays with powgate"
    );
}

#[test]
fn a_post_without_a_token_gets_401_json_and_never_reaches_the_upstream() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let mut r = app
        .agent()
        .post(&app.url("/comments"))
        .header("accept", "text/html")
        .send("body that must not be lost to a redirect")
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-powgate-status"], "missing");
    assert!(r.headers().get("location").is_none());
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["status"], "missing");
    assert_eq!(body["challenge_url"], "/.powgate/");
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
}

#[test]
fn a_browser_navigation_without_a_token_is_redirected_to_the_prefixed_page() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let r = agent
        .get(&app.url("/docs?page=2"))
        .header("accept", "text/html,application/xhtml+xml")
        .call()
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let expected_redir = format!("http%3A%2F%2F{}%2Fdocs%3Fpage%3D2", app.addr).replace(':', "%3A");
    assert_eq!(location, format!("/.powgate/?redir={expected_redir}"));
    assert!(upstream.seen().is_empty());
    // The page is there, and its relative URLs resolve under the prefix.
    let mut page = agent.get(&app.url(&location)).call().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.body_mut().read_to_string().unwrap().contains("app.js"));
    assert_eq!(
        agent
            .get(&app.url("/.powgate/app.js"))
            .call()
            .unwrap()
            .status(),
        200
    );
    let r = agent.get(&app.url("/.powgate")).call().unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/.powgate/");
    assert!(
        upstream.seen().is_empty(),
        "powgate's own routes stay its own"
    );
}

/// powgate's 8 KiB body limit and JSON error rewriting are for its own API:
/// the application's uploads and error pages pass as they are.
#[test]
fn a_large_upload_and_the_applications_own_error_pages_pass_untouched() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let token = token_via_prefix(&app);
    let auth = format!("Bearer {token}");
    let upload = vec![b'x'; 5 * 1024 * 1024];
    let mut r = app
        .agent()
        .post(&app.url("/upload"))
        .header("authorization", &auth)
        .send(&upload[..])
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.body_mut().read_to_string().unwrap(),
        format!("received {}", upload.len())
    );
    let mut r = app
        .agent()
        .get(&app.url("/status/404"))
        .header("authorization", &auth)
        .call()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(
        r.body_mut().read_to_string().unwrap(),
        "<h1>the app's own 404</h1>"
    );
    let mut r = app
        .agent()
        .get(&app.url("/status/500"))
        .header("authorization", &auth)
        .call()
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.body_mut().read_to_string().unwrap(), "the app's own 500");
}

#[test]
fn a_connection_upgrade_is_tunnelled_as_raw_bytes_after_the_101() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let token = token_via_prefix(&app);
    let (mut conn, head) = raw_request(
        app.addr,
        &format!(
            "GET /echo-upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nAuthorization: Bearer {token}"
        ),
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("upgrade: echo"), "{head}");
    for message in ["hello", "raw \x00 bytes"] {
        conn.get_mut().write_all(message.as_bytes()).unwrap();
        let mut back = vec![0; message.len()];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(back, message.as_bytes());
    }
    assert_eq!(upstream.seen()[0].headers["upgrade"], "echo");
}

/// The second event is sent only once the test has read the first, so a
/// proxy that buffered the stream would never deliver either.
#[test]
fn server_sent_events_arrive_one_by_one() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let token = token_via_prefix(&app);
    let (mut conn, head) = raw_request(
        app.addr,
        &format!(
            "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}"
        ),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut read_until = |needle: &str| {
        let mut got = String::new();
        while !got.contains(needle) {
            let mut line = String::new();
            let n = conn
                .read_line(&mut line)
                .expect("the event arrives in time");
            assert!(n > 0, "stream ended before {needle:?}: {got}");
            got.push_str(&line);
        }
    };
    read_until("data: event 0");
    upstream.shared.next_event.notify_one();
    read_until("data: event 1");
}

#[test]
fn an_upstream_that_is_down_gets_502_quickly_and_traffic_flows_again_when_it_returns() {
    let shared = Shared::default();
    let mut upstream = Upstream::tcp(None, shared.clone());
    let addr = upstream.addr.unwrap();
    let app = powgate_in_front_of(&upstream.url());
    let token = token_via_prefix(&app);
    let auth = format!("Bearer {token}");
    let get = |accept: &str| {
        app.agent()
            .get(&app.url("/page"))
            .header("authorization", &auth)
            .header("accept", accept)
            .call()
            .unwrap()
    };
    let health = || {
        app.agent()
            .get(&app.url("/.powgate/healthz"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    assert_eq!(get("*/*").status(), 200);
    assert_eq!(health(), "ok\nupstream: reachable\n");

    upstream.stop();
    let started = Instant::now();
    let mut r = get("application/json");
    assert_eq!(r.status(), 502);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the connect timeout"
    );
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["error"], "upstream_unavailable");
    let mut r = get("text/html");
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        r.body_mut()
            .read_to_string()
            .unwrap()
            .contains("cannot be reached")
    );
    assert_eq!(health(), "ok\nupstream: unreachable\n");

    let _back = Upstream::tcp(Some(addr), shared);
    assert_eq!(get("*/*").status(), 200);
    assert_eq!(health(), "ok\nupstream: reachable\n");
}

#[test]
fn a_unix_socket_upstream_is_proxied() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("app.sock");
    let upstream = Upstream::unix(&socket);
    let app = powgate_in_front_of(&format!("unix:{}", socket.display()));
    let token = token_via_prefix(&app);
    let mut r = app
        .agent()
        .get(&app.url("/over-unix?q=1"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_mut().read_to_string().unwrap(), "hello from the app");
    let seen = upstream.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.as_str()),
        ("GET", "/over-unix?q=1")
    );
    let health = app
        .agent()
        .get(&app.url("/.powgate/healthz"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(health, "ok\nupstream: reachable\n");
}

/// hyper lets go of a connection once it is upgraded; the connection's
/// slot went with it, so open WebSockets escaped the connection caps.
#[test]
fn an_open_tunnel_keeps_holding_its_connection_slot() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of_with(&upstream.url(), |raw| raw.max_connections_per_ip = 1);
    // Allowlisted, so no earlier connection is needed for a token.
    let (mut tunnel, head) = raw_request(
        app.addr,
        "GET /.well-known/echo-upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tunnel.get_mut().write_all(b"ping").unwrap();
    let mut back = [0; 4];
    tunnel.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    let health = "GET /.powgate/healthz HTTP/1.1\r\nHost: x\r\nConnection: close";
    let (_, head) = raw_request(app.addr, health);
    assert!(
        head.starts_with("HTTP/1.1 503"),
        "the tunnel holds the only slot: {head}"
    );
    drop(tunnel);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, head) = raw_request(app.addr, health);
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot is released: {head}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A response-header timeout, not a body timeout: an upstream that takes
/// too long to answer gets a 504, and nothing hangs.
#[test]
fn an_upstream_slow_to_answer_gets_504_after_the_response_timeout() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of_with(&upstream.url(), |raw| {
        raw.proxy_response_timeout_secs = 1;
    });
    let started = Instant::now();
    let mut r = app
        .agent()
        .get(&app.url("/.well-known/slow"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["error"], "upstream_timeout");
}

#[test]
fn a_proxied_body_over_proxy_max_body_bytes_is_refused_with_413_before_the_upstream() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of_with(&upstream.url(), |raw| raw.proxy_max_body_bytes = 1000);
    let mut r = app
        .agent()
        .post(&app.url("/.well-known/upload"))
        .send(&[b'x'; 1001][..])
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["error"], "too_large");
    assert!(upstream.seen().is_empty());
    let r = app
        .agent()
        .post(&app.url("/.well-known/upload"))
        .send(&[b'x'; 1000][..])
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A CA (`ca.pem`) and a server certificate it signed for `upstream.test`
/// only (`leaf.pem`, `leaf.key`), made with the openssl command.
fn test_ca(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command makes the test certificates");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=powgate test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=upstream.test",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:upstream.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
    ]);
}

/// An https upstream is reached over TLS and its certificate is checked:
/// against `upstream_ca_file` and for `upstream_sni`, so a wrong name or
/// an unknown CA is a 502, never a silent plain-text or unchecked hop.
#[test]
fn an_https_upstream_is_checked_against_the_configured_ca_and_name() {
    let dir = tempfile::tempdir().unwrap();
    test_ca(dir.path());
    let upstream = Upstream::tls(dir.path());
    let url = format!("https://{}", upstream.addr.unwrap());
    let ca = dir.path().join("ca.pem");
    let app = powgate_in_front_of_with(&url, |raw| {
        raw.upstream_ca_file = Some(ca.clone());
        raw.upstream_sni = Some("upstream.test".into());
        raw.upstream_host = Some("app.internal".into());
    });
    let mut r = app.agent().get(&app.url("/robots.txt")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_mut().read_to_string().unwrap(), "hello from the app");
    let seen = upstream.seen();
    assert_eq!(seen[0].headers["host"], "app.internal");
    assert_eq!(
        seen[0].headers["x-forwarded-host"],
        app.addr.to_string().as_str(),
        "the visitor's host stays known"
    );

    // The certificate does not name 127.0.0.1.
    let wrong_name = powgate_in_front_of_with(&url, |raw| raw.upstream_ca_file = Some(ca));
    let r = wrong_name
        .agent()
        .get(&wrong_name.url("/robots.txt"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 502);
    // The system's roots do not know the test CA.
    let unknown_ca = powgate_in_front_of_with(&url, |raw| {
        raw.upstream_sni = Some("upstream.test".into());
    });
    let r = unknown_ca
        .agent()
        .get(&unknown_ca.url("/robots.txt"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(upstream.seen().len(), 1, "no request went out unchecked");
}

/// hyper wrote the status line in the upstream's version, so a visitor
/// speaking HTTP/1.1 to powgate got `HTTP/1.0` back from an HTTP/1.0
/// application (Python's http.server) and lost its keep-alive.
#[test]
fn an_http_1_0_upstream_is_answered_to_the_visitor_in_http_1_1() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi");
        }
    });
    let app = powgate_in_front_of(&format!("http://{addr}"));
    let (mut conn, head) = raw_request(app.addr, "GET /robots.txt HTTP/1.1\r\nHost: x");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = [0; 2];
    conn.read_exact(&mut body).unwrap();
    assert_eq!(&body, b"hi");
}

/// `path` joined to the directory of `page` as a browser resolves a relative
/// reference: `.` and `..` segments folded, never above `/`. A reference
/// starting with `/` is kept as it is (and so fails the prefix check).
fn resolve(page: &str, reference: &str) -> String {
    let reference = reference.split(['?', '#']).next().unwrap_or_default();
    if reference.starts_with('/') {
        return reference.to_owned();
    }
    let dir = &page[..=page.rfind('/').unwrap()];
    let mut segments: Vec<&str> = Vec::new();
    let joined = format!("{dir}{reference}");
    let parts: Vec<&str> = joined.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        match *part {
            "." => {}
            ".." => {
                segments.pop();
            }
            p => segments.push(p),
        }
        // A trailing "." or ".." names a directory.
        if i + 1 == parts.len() && (*part == "." || *part == "..") {
            segments.push("");
        }
    }
    format!("/{}", segments.join("/"))
}

/// The pages use relative URLs only, so that they work under a prefix. This
/// loads both pages under `/.powgate/` and follows every stylesheet, script,
/// module import (shared ones included) and worker they name, as a browser
/// would: each must stay under the prefix and be served by powgate.
#[test]
fn every_file_the_pages_load_is_served_under_the_proxy_prefix() {
    let upstream = Upstream::tcp(None, Shared::default());
    let app = powgate_in_front_of(&upstream.url());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let html_ref = regex::Regex::new(r#"(?:href|src)="([^"]*)""#).unwrap();
    let js_ref =
        regex::Regex::new(r#"(?:\bfrom\s*|\bimport\s*\(\s*|new URL\(\s*)['"]([^'"]+)['"]"#)
            .unwrap();
    let mut queue = vec!["/.powgate/".to_owned(), "/.powgate/admin/".to_owned()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        assert!(
            path.starts_with("/.powgate/"),
            "{path} leaves the prefix: a page refers outside /.powgate/"
        );
        let mut r = agent.get(&app.url(&path)).call().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body = r.body_mut().read_to_string().unwrap();
        let refs = if path.ends_with('/') || path.ends_with(".html") {
            &html_ref
        } else if path.ends_with(".js") {
            &js_ref
        } else {
            continue;
        };
        for c in refs.captures_iter(&body) {
            let reference = &c[1];
            if reference.starts_with("data:") || reference.starts_with('#') {
                continue;
            }
            queue.push(resolve(&path, reference));
        }
    }
    for expected in [
        "/.powgate/shared/base.css",
        "/.powgate/shared/http.js",
        "/.powgate/shared/format.js",
        "/.powgate/worker.js",
        "/.powgate/admin/app.js",
    ] {
        assert!(seen.contains(expected), "{expected} not reached: {seen:?}");
    }
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
}

#[test]
fn resolve_folds_dot_segments_like_a_browser() {
    assert_eq!(resolve("/.powgate/", "app.js"), "/.powgate/app.js");
    assert_eq!(
        resolve("/.powgate/admin/", "../shared/x.js"),
        "/.powgate/shared/x.js"
    );
    assert_eq!(resolve("/.powgate/app.js", "./"), "/.powgate/");
    assert_eq!(resolve("/app.js", "../../shared/x.js"), "/shared/x.js");
    assert_eq!(
        resolve("/.powgate/app.js", "../shared/x.js?v=1"),
        "/shared/x.js"
    );
}
