//! Limits against floods and slow clients, through the real server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{TestApp, answer, wrong_nonce};

const IP: &str = "198.51.100.40";

#[test]
fn challenge_rate_is_limited_per_address_with_retry_after() {
    let app = TestApp::spawn_with(|c| c.rate_challenges_per_minute = 8);
    // A burst of a quarter minute's worth (2) passes, then 429.
    let statuses: Vec<u16> = (0..4)
        .map(|_| app.challenge_as(IP, serde_json::json!({})).0)
        .collect();
    assert_eq!(statuses, [200, 200, 429, 429]);
    let r = app
        .agent()
        .post(&app.url("/api/challenge"))
        .header("X-Real-IP", IP)
        .send_empty()
        .unwrap();
    let wait: u64 = r
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=8).contains(&wait), "{wait}");
    // Another address, and another /64, have their own budget; the same /64 does not.
    assert_eq!(
        app.challenge_as("198.51.100.41", serde_json::json!({})).0,
        200
    );
    assert_eq!(
        app.challenge_as("2001:db8:0:1::1", serde_json::json!({})).0,
        200
    );
    assert_eq!(
        app.challenge_as("2001:db8:0:1::2", serde_json::json!({})).0,
        200
    );
    assert_eq!(
        app.challenge_as("2001:db8:0:1::3", serde_json::json!({})).0,
        429
    );
}

#[test]
fn a_wrong_answer_puts_the_address_into_back_off() {
    let app = TestApp::spawn_with(|c| c.wrong_answer_backoff_secs = 30);
    let ch = app.new_challenge(IP);
    let mut bad = answer(&ch);
    bad.nonce = wrong_nonce(&ch);
    assert_eq!(app.submit(IP, &bad).0, 403);
    let ch2 = app.new_challenge(IP);
    let good = answer(&ch2);
    let mut r = app
        .agent()
        .post(&app.url("/api/solve"))
        .header("X-Real-IP", IP)
        .send_json(&good)
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&wait), "{wait}");
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["error"], "rate_limited");
    // The back-off did not spend the challenge, and other addresses are unaffected.
    let ch3 = app.new_challenge("198.51.100.42");
    let other = answer(&ch3);
    assert_eq!(app.submit("198.51.100.42", &other).0, 200);
}

#[test]
fn solution_rate_is_limited() {
    let app = TestApp::spawn_with(|c| c.rate_solutions_per_minute = 4);
    let bad = serde_json::json!({"challenge": "a.b", "nonce": 1});
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            app.agent()
                .post(&app.url("/api/solve"))
                .header("X-Real-IP", IP)
                .send_json(&bad)
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses, [400, 429, 429]);
    let metrics = app.metrics();
    assert!(
        metrics.contains("powgate_limited_total{limit=\"solution_rate\"} 2"),
        "{metrics}"
    );
}

const ADMIN_KEY: &str = "limits-admin-key-0123456789";

/// `n` challenges, one from each address `addr(i)`: their statuses.
fn challenges_from(app: &TestApp, n: u32, addr: impl Fn(u32) -> String) -> Vec<u16> {
    (0..n)
        .map(|i| app.challenge_as(&addr(i), serde_json::json!({})).0)
        .collect()
}

/// Issue 14: the per-address rate never binds on a client that rotates
/// through the 65 536 /64s of its /48. The /48 budget does, through the
/// real server, with `Retry-After` and its own label, while another /48
/// still passes.
#[test]
fn rotating_the_64s_of_one_48_hits_the_48_budget_while_another_48_passes() {
    let app = TestApp::spawn_with(|c| {
        c.rate_challenges_per_minute = 60;
        c.set_live("challenges_per_minute_per_48", 8);
    });
    // Each request from a fresh /56 and /64: a burst of 2, then 429.
    let statuses = challenges_from(&app, 5, |i| format!("2001:db8:5:{i:x}00::1"));
    assert_eq!(statuses, [200, 200, 429, 429, 429]);
    let r = app
        .agent()
        .post(&app.url("/api/challenge"))
        .header("X-Real-IP", "2001:db8:5:ff00::1")
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=8).contains(&wait), "{wait}");
    assert_eq!(
        app.challenge_as("2001:db8:6::1", serde_json::json!({})).0,
        200
    );
    assert_eq!(limited(&app.metrics(), "challenge_rate_per_48"), 4);
}

/// The same for solutions, rotating the addresses of one IPv4 /24; the
/// IPv4-mapped form of an address counts in that /24.
#[test]
fn rotating_the_addresses_of_one_24_hits_the_24_solution_budget() {
    let app = TestApp::spawn_with(|c| {
        c.rate_solutions_per_minute = 30;
        c.set_live("solutions_per_minute_per_24", 8);
    });
    let bad = serde_json::json!({"challenge": "a.b", "nonce": 1});
    let submit = |ip: &str| {
        app.agent()
            .post(&app.url("/api/solve"))
            .header("X-Real-IP", ip)
            .send_json(&bad)
            .unwrap()
            .status()
            .as_u16()
    };
    let statuses: Vec<u16> = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "::ffff:192.0.2.4"]
        .into_iter()
        .map(submit)
        .collect();
    assert_eq!(statuses, [400, 400, 429, 429]);
    assert_eq!(submit("192.0.3.1"), 400);
    assert_eq!(limited(&app.metrics(), "solution_rate_per_24"), 2);
}

/// A network budget is a live setting: a PATCH applies to the very next
/// request, 0 turns the level off again, and the change survives a restart.
#[test]
fn a_patch_of_a_network_budget_takes_effect_at_once_and_persists() {
    let app = TestApp::spawn_with(|c| c.admin_key = Some(ADMIN_KEY.into()));
    let v4 = |i: u32| format!("198.51.100.{}", i + 1);
    assert!(challenges_from(&app, 6, v4).iter().all(|&s| s == 200));
    let patch = |v: u32| {
        let body = serde_json::json!({ "challenges_per_minute_per_24": v });
        let (status, view) = app.admin_call(ADMIN_KEY, "PATCH", "/api/admin/settings", Some(body));
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["settings"]["challenges_per_minute_per_24"], v);
    };
    patch(4);
    let v4_next = |i: u32| format!("198.51.100.{}", i + 100);
    assert_eq!(challenges_from(&app, 3, v4_next), [200, 429, 429]);
    patch(0);
    assert!(challenges_from(&app, 6, v4_next).iter().all(|&s| s == 200));
    patch(4);
    let app = app.restart();
    let (_, view) = app.admin_call(ADMIN_KEY, "GET", "/api/admin/settings", None);
    assert_eq!(view["settings"]["challenges_per_minute_per_24"], 4);
    assert_eq!(challenges_from(&app, 2, v4), [200, 429]);
}

#[test]
fn body_size_limit_is_configurable() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 1024);
    let body = format!("{{\"challenge\": \"{}\", \"nonce\": 1}}", "a".repeat(2000));
    let mut r = app
        .agent()
        .post(&app.url("/api/solve"))
        .send(body.as_str())
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.body_mut().read_json().unwrap();
    assert!(v["message"].as_str().unwrap().contains("1024"));
}

/// Reads until the server closes the connection; returns what it sent.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<String> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(String::from_utf8_lossy(&out).into_owned())
        }
        Err(_) => None,
    }
}

#[test]
fn slow_headers_are_cut_off() {
    let app = TestApp::spawn_with(|c| c.header_read_timeout_secs = 1);
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    let got = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(got.is_some(), "the server kept a slowloris connection open");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The server keeps serving, and counted the cut.
    assert_eq!(
        app.agent()
            .get(&app.url("/healthz"))
            .call()
            .unwrap()
            .status(),
        200
    );
    let metrics = app.metrics();
    assert!(
        metrics.contains("powgate_limited_total{limit=\"header_read_timeout\"} 1"),
        "{metrics}"
    );
}

#[test]
fn connections_are_capped_per_address_and_in_total() {
    // No trusted proxies here, so 127.0.0.1 is an ordinary client.
    let app = TestApp::spawn_with(|c| {
        c.trusted_proxies = powgate::config::StringList::List(vec![]);
        c.max_connections_per_ip = 2;
    });
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(app.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = TcpStream::connect(app.addr).unwrap();
    let answer = read_until_closed(&mut third, Duration::from_secs(5)).expect("closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        app.agent()
            .get(&app.url("/healthz"))
            .call()
            .unwrap()
            .status(),
        200
    );

    let app = TestApp::spawn_with(|c| c.max_connections = 1);
    let _held = TcpStream::connect(app.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut second = TcpStream::connect(app.addr).unwrap();
    let answer = read_until_closed(&mut second, Duration::from_secs(5)).expect("closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}

/// A connection from `local`, one of the many loopback addresses, as a
/// separate client host would make.
fn connect_from(local: std::net::IpAddr, server: std::net::SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((local, 0).into()).unwrap();
        socket.connect(server).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// The sum of the `powgate_limited_total` counters whose label starts
/// with `prefix`.
fn limited(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("powgate_limited_total{{limit=\"{prefix}")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// `powgate_open_connections`: the HTTP connection slots held now.
fn open_connections(metrics: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("powgate_open_connections "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

#[test]
fn half_sent_requests_from_many_addresses_cannot_starve_the_trusted_proxy() {
    // Metrics on a listener of their own, so that reading them takes none
    // of the slots counted here.
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let app = TestApp::spawn_with(|c| {
        c.metrics_listen = Some(format!("127.0.0.1:{metrics_port}"));
        c.trusted_proxies = powgate::config::StringList::List(vec!["127.0.0.1/32".into()]);
        c.max_connections = 40;
        c.reserved_proxy_connections = Some(10);
        c.max_connections_per_ip = 2;
        c.max_connections_per_network = 20;
    });
    // Two /24s of attackers, 58 addresses, try two half-sent requests each:
    // far more than the 30 slots open to them.
    let attackers: Vec<std::net::IpAddr> = (0..=1)
        .flat_map(|net| (2..=30).map(move |host| format!("127.0.{net}.{host}").parse().unwrap()))
        .collect();
    let mut held = Vec::new();
    for &a in &attackers {
        for _ in 0..2 {
            let mut s = connect_from(a, app.addr);
            // Refused ones are closed already; that write may fail.
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ");
            held.push(s);
        }
    }
    // Wait until the server has taken or refused every one of them.
    let metrics = || {
        let mut r = None;
        for _ in 0..50 {
            match app.agent().get(&metrics_url).call() {
                Ok(mut resp) => {
                    r = Some(resp.body_mut().read_to_string().unwrap());
                    break;
                }
                // The metrics listener starts beside the main one.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        r.expect("the metrics listener answers")
    };
    let refused = (attackers.len() * 2 - 30) as u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = metrics();
        if limited(&metrics, "connections_") >= refused && open_connections(&metrics) == 30 {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The proxy opens all ten reserved slots at once, and each is served.
    let mut proxy: Vec<TcpStream> = (0..10)
        .map(|_| connect_from("127.0.0.1".parse().unwrap(), app.addr))
        .collect();
    for s in &mut proxy {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Real-IP: 198.51.100.7\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    for s in &mut proxy {
        let answer = read_until_closed(s, Duration::from_secs(5)).expect("closed");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // The attackers did fill every slot open to them, by address and by
    // network.
    drop(proxy);
    let metrics = metrics();
    assert_eq!(limited(&metrics, "connections_"), refused, "{metrics}");
    assert!(
        limited(&metrics, "connections_per_network") > 0,
        "{metrics}"
    );
    assert!(limited(&metrics, "connections_total") > 0, "{metrics}");
    drop(held);
}

#[test]
fn an_oversized_header_block_gets_431_and_a_close() {
    let app = TestApp::spawn();
    let ask = |header_bytes: usize| {
        let mut s = TcpStream::connect(app.addr).unwrap();
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: a={}\r\n\r\n",
            "b".repeat(header_bytes)
        );
        s.write_all(request.as_bytes()).unwrap();
        read_until_closed(&mut s, Duration::from_secs(5)).expect("closed")
    };
    // Headers as large as a real site's cookies pass...
    let answer = ask(24 * 1024);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // ...and a block over the buffer is refused, not buffered.
    let answer = ask(40 * 1024);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[test]
fn a_client_that_sends_a_2mb_body_before_reading_gets_the_413_not_a_reset() {
    let app = TestApp::spawn();
    let body = vec![b'x'; 2_000_000];
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/solve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // At a network's pace rather than loopback's, so that the answer comes
    // while the body is still on its way, as it does for a real client.
    for chunk in body.chunks(64 * 1024) {
        s.write_all(chunk)
            .expect("powgate reset the connection while the body was being sent");
        std::thread::sleep(Duration::from_millis(2));
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .expect("powgate reset the connection instead of closing it");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let json = &answer[answer.find("\r\n\r\n").expect("a body") + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["error"], "too_large", "{v}");
}
