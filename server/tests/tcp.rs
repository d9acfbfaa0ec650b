//! The TCP gate (issue 20), driven as a client would: the shipped binary
//! on loopback with tiny argon2 parameters, in front of an echo service of
//! this test process that counts the connections it gets, so every refusal
//! can be shown to have reached nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pow::tcp::{Answer, Greeting, Offer, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_powgate");

/// An echo service that counts its connections.
struct Echo {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Echo {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = stream.shutdown(Shutdown::Write);
                });
            }
        });
        Self { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The connections accepted so far, once there are at least `n` (or
    /// after 5 s): the gate connects to the service before it answers
    /// `OK`, but on a loaded machine the accepting thread here may not have
    /// counted that connection yet when the client reads the `OK`.
    fn connections_at_least(&self, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.connections() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.connections()
    }
}

struct Server {
    child: Child,
    http: u16,
    gate: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// `powgate serve` with one `[[tcp]]` gate (its extra TOML lines in
    /// `gate`) in front of `upstream`.
    fn start(upstream: u16, gate: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (http, port) = (free_port(), free_port());
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[[tcp]]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"127.0.0.1:{upstream}\"\n{gate}\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        Self::spawn(cmd, dir, http, port, env)
    }

    fn spawn(
        mut cmd: Command,
        dir: tempfile::TempDir,
        http: u16,
        gate: u16,
        env: &[(&str, &str)],
    ) -> Self {
        cmd.current_dir(dir.path())
            .env_clear()
            .env("POW_LISTEN", format!("127.0.0.1:{http}"))
            .env("POW_DATABASE", dir.path().join("powgate.db"))
            .env("ARGON2_TIME_COST", "1")
            .env("ARGON2_MEMORY_KB", "256")
            .env("POW_DIFFICULTY_LEVEL", "20")
            .env("POW_RATE_CHALLENGES_PER_MINUTE", "0")
            .env("POW_RATE_SOLUTIONS_PER_MINUTE", "0")
            .env("POW_WRONG_ANSWER_BACKOFF_SECS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start powgate");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("tcp gate listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the tcp gate did not start");
        Self {
            child,
            http,
            gate,
            dir,
        }
    }

    fn connect(&self) -> Conn {
        Conn::open(self.gate)
    }

    fn metrics(&self) -> String {
        http_get(self.http, "/metrics")
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// One client connection: its reader keeps whatever it buffered.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Self {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l
    }

    fn greeting(&mut self) -> Offer {
        match Greeting::parse(&self.line()).unwrap() {
            Greeting::Challenge(o) => o,
            other => panic!("no challenge: {other:?}"),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn reply(&mut self) -> Reply {
        let l = self.line();
        Reply::parse(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
    }

    /// Sends `answer` and expects `ERR <code>`, then the end.
    fn expect_refused(&mut self, answer: &[u8], code: &str) {
        self.send(answer);
        self.expect_err(code);
    }

    fn expect_err(&mut self, code: &str) {
        match self.reply() {
            Reply::Err { code: c, .. } => assert_eq!(c, code),
            other => panic!("expected ERR {code}, got {other:?}"),
        }
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        assert!(rest.is_empty(), "nothing follows an ERR line");
    }

    /// Echo round trip of `data` through the pipe.
    fn echo(&mut self, data: &[u8]) {
        let mut w = self.writer.try_clone().unwrap();
        let owned = data.to_vec();
        let sender = std::thread::spawn(move || w.write_all(&owned).unwrap());
        let mut back = vec![0u8; data.len()];
        self.reader.read_exact(&mut back).unwrap();
        sender.join().unwrap();
        assert!(back == data, "the echo differs from what was sent");
    }
}

fn nonce_line(offer: &Offer, nonce: u64) -> Vec<u8> {
    Answer::Nonce {
        challenge: offer.challenge.clone(),
        nonce,
        ticket: pow::ticket::solve(&offer.salt, offer.ticket_bits),
    }
    .to_line()
    .into_bytes()
}

fn solve(offer: &Offer) -> u64 {
    let mut solver = pow::Solver::new(offer.params, offer.salt, offer.difficulty, 0, 1).unwrap();
    loop {
        if let pow::Step::Found { nonce, .. } = solver.step(100).unwrap() {
            return nonce;
        }
    }
}

/// A nonce whose hash misses the target.
fn wrong_nonce(offer: &Offer) -> u64 {
    let mut h = pow::Hasher::new(offer.params).unwrap();
    let mut out = vec![0u8; offer.params.hash_length() as usize];
    let target = offer.difficulty.target();
    (0..)
        .find(|&n| {
            h.hash_into(&offer.salt, n, &mut out).unwrap();
            !pow::meets_target(&out, &target)
        })
        .unwrap()
}

fn passed(conn: &mut Conn) -> String {
    match conn.reply() {
        Reply::Ok(token) => token,
        other => panic!("expected OK, got {other:?}"),
    }
}

#[test]
fn a_valid_solve_reaches_the_upstream_and_echoes_byte_exact() {
    let echo = Echo::start();
    let server = Server::start(echo.port, "", &[]);
    let mut c = server.connect();
    let offer = c.greeting();
    let nonce = solve(&offer);
    // Bytes sent right behind the answer line belong to the service.
    let mut answer = nonce_line(&offer, nonce);
    answer.extend_from_slice(b"early ");
    c.send(&answer);
    let token = passed(&mut c);
    assert!(token.len() > 20, "{token}");
    let mut early = [0u8; 6];
    c.reader.read_exact(&mut early).unwrap();
    assert_eq!(&early, b"early ");
    let data: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    c.echo(&data);
    assert_eq!(echo.connections(), 1);
    drop(c);
    let m = server.metrics();
    assert!(
        m.contains("powgate_tcp_handshakes_total{outcome=\"passed\"} 1"),
        "{m}"
    );
}

/// Every way a handshake can fail ends in its own `ERR` (or the timeout),
/// and none of them reaches the service.
#[test]
fn refused_handshakes_get_their_error_and_never_reach_the_upstream() {
    let echo = Echo::start();
    let server = Server::start(echo.port, "handshake_timeout_secs = 1", &[]);

    let mut c = server.connect();
    let offer = c.greeting();
    c.expect_refused(&nonce_line(&offer, wrong_nonce(&offer)), "wrong_answer");

    // Solved, used once through a pipe that is closed again, then replayed.
    let mut c = server.connect();
    let offer = c.greeting();
    let line = nonce_line(&offer, solve(&offer));
    let mut first = server.connect();
    first.greeting();
    first.send(&line);
    passed(&mut first);
    drop(first);
    let spent_reached = echo.connections_at_least(1);
    c.expect_refused(&line, "already_spent");

    // A challenge issued over HTTP to another address, behind a trusted
    // proxy (loopback is one by default), is not this client's.
    let mut http = TcpStream::connect(("127.0.0.1", server.http)).unwrap();
    write!(
        http,
        "POST /api/challenge HTTP/1.1\r\nHost: x\r\nX-Real-IP: 192.0.2.7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    http.read_to_string(&mut resp).unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    let ch: pow::wire::ChallengeResponse = serde_json::from_str(body).unwrap();
    let foreign = Offer {
        challenge: ch.challenge,
        salt: hex::decode(&ch.salt).unwrap().try_into().unwrap(),
        params: ch.argon2,
        difficulty: pow::Difficulty::new(ch.difficulty).unwrap(),
        ticket_bits: ch.ticket_bits,
    };
    let mut c = server.connect();
    c.greeting();
    c.expect_refused(&nonce_line(&foreign, solve(&foreign)), "wrong_ip");

    let mut c = server.connect();
    c.greeting();
    c.expect_refused(b"GET / HTTP/1.1\r\n", "bad_line");

    let mut c = server.connect();
    c.greeting();
    c.expect_refused(&[b'A'; 5000], "line_too_long");

    let mut c = server.connect();
    c.greeting();
    c.expect_refused(b"TOKEN pg_not-a-real-token\n", "malformed");

    // Silent: the handshake timeout (1 s here) ends it.
    let mut c = server.connect();
    c.greeting();
    let started = Instant::now();
    c.expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    assert_eq!(
        echo.connections(),
        spent_reached,
        "a refused handshake reached the upstream"
    );
    assert_eq!(spent_reached, 1, "only the one valid solve got through");
}

/// A token from a challenge and solution over HTTP.
fn http_token(server: &Server) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", server.http)).unwrap();
    write!(
        s,
        "POST /api/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let ch: pow::wire::ChallengeResponse =
        serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let salt: [u8; 16] = hex::decode(&ch.salt).unwrap().try_into().unwrap();
    let offer = Offer {
        challenge: ch.challenge.clone(),
        salt,
        params: ch.argon2,
        difficulty: pow::Difficulty::new(ch.difficulty).unwrap(),
        ticket_bits: ch.ticket_bits,
    };
    let req = serde_json::to_string(&pow::wire::SolveRequest {
        challenge: ch.challenge,
        nonce: solve(&offer),
        ticket: Some(pow::ticket::solve(&salt, ch.ticket_bits)),
        refresh_token: None,
        telemetry: None,
        redir: None,
    })
    .unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", server.http)).unwrap();
    write!(s, "POST /api/solve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{req}", req.len()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let body: pow::wire::SolveResponse =
        serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    body.token
}

/// A token from the HTTP API opens the TCP gate, and its passes count
/// against the same request budget as `/verify-token`'s.
#[test]
fn a_token_obtained_over_http_opens_the_gate_under_the_same_budget() {
    let echo = Echo::start();
    let server = Server::start(echo.port, "", &[("POW_TOKEN_REQUESTS_TOTAL", "3")]);
    let token = http_token(&server);
    let verify = |token: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", server.http)).unwrap();
        write!(s, "GET /verify-token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp.lines().next().unwrap().to_owned()
    };
    assert!(verify(&token).contains("200"));

    let tcp = |server: &Server| {
        let mut c = server.connect();
        c.greeting();
        c.send(Answer::Token(token.clone()).to_line().as_bytes());
        c
    };
    let mut c = tcp(&server);
    assert_eq!(passed(&mut c), token);
    c.echo(b"hello over a token\n");
    drop(c);
    assert!(verify(&token).contains("200"), "third request of three");
    // The budget of three is spent: one by TCP, two over HTTP.
    tcp(&server).expect_err("exhausted");
    assert_eq!(echo.connections(), 1);
}

/// A connection answered with a token gives back the slot its greeting's
/// challenge took among the address's open challenges: otherwise a client
/// that reconnects with its token would soon be greeted without a
/// challenge, and an honest neighbour behind the same address too.
#[test]
fn token_connections_do_not_use_up_the_open_challenge_slots() {
    let echo = Echo::start();
    let server = Server::start(echo.port, "", &[("POW_MAX_OPEN_CHALLENGES_PER_IP", "2")]);
    let token = http_token(&server);
    for _ in 0..4 {
        let mut c = server.connect();
        c.greeting();
        c.send(Answer::Token(token.clone()).to_line().as_bytes());
        assert_eq!(passed(&mut c), token);
    }
    assert_eq!(echo.connections_at_least(4), 4);
}

/// 1 000 connections at once against a cap of 100: 100 are greeted, the
/// rest told `busy` and closed, and powgate's open files stay within the
/// cap, however many clients hold their end open.
#[test]
fn a_thousand_concurrent_connections_are_held_within_the_caps() {
    let echo = Echo::start();
    let server = Server::start(
        echo.port,
        "",
        &[
            ("POW_MAX_CONNECTIONS", "100"),
            ("POW_RESERVED_PROXY_CONNECTIONS", "0"),
            ("POW_MAX_OPEN_CHALLENGES_PER_IP", "0"),
            ("POW_MAX_OPEN_CHALLENGES_PER_NETWORK", "0"),
        ],
    );
    let idle_fds = server.open_fds();
    let mut conns: Vec<Conn> = (0..1000).map(|_| server.connect()).collect();
    let mut greeted = 0;
    let mut busy = 0;
    for c in &mut conns {
        let l = c.line();
        if l.starts_with("POWGATE/1 CHALLENGE") {
            greeted += 1;
        } else {
            assert!(l.starts_with("ERR busy"), "{l:?}");
            busy += 1;
        }
    }
    assert_eq!((greeted, busy), (100, 900));
    let held = server.open_fds();
    assert!(
        held <= idle_fds + 100 + 20,
        "{held} open files with 100 admitted (idle: {idle_fds})"
    );
    let m = server.metrics();
    assert!(
        m.contains("powgate_tcp_handshakes_total{outcome=\"busy\"} 900\n"),
        "{m}"
    );
    drop(conns);
    // The slots come back: a new client is greeted again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = server.connect();
        if c.line().starts_with("POWGATE/1 CHALLENGE") {
            break;
        }
        assert!(Instant::now() < deadline, "slots never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(echo.connections(), 0);
}

/// SIGTERM stops new connections at once but lets an open pipe go on until
/// its client closes it, within the grace period; then powgate exits 0.
#[test]
fn sigterm_drains_an_open_pipe() {
    let echo = Echo::start();
    let server = Server::start(echo.port, "", &[("POW_SHUTDOWN_GRACE_SECS", "20")]);
    let mut c = server.connect();
    let offer = c.greeting();
    c.send(&nonce_line(&offer, solve(&offer)));
    passed(&mut c);
    c.echo(b"before\n");
    server.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", server.gate)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.echo(b"during the drain\n");
    let mut server = server;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited mid-pipe"
    );
    c.writer.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.reader.read_to_end(&mut rest).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after the drain");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

/// With `proxy_protocol = "v1"` the service learns the client's address
/// before any of its bytes.
#[test]
fn the_upstream_gets_a_proxy_protocol_header_first() {
    let echo = Echo::start();
    let server = Server::start(echo.port, "proxy_protocol = \"v1\"", &[]);
    let mut c = server.connect();
    let offer = c.greeting();
    c.send(&nonce_line(&offer, solve(&offer)));
    passed(&mut c);
    let port = c.writer.local_addr().unwrap().port();
    let expected = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {port} {}\r\n", server.gate);
    let mut header = vec![0u8; expected.len()];
    c.reader.read_exact(&mut header).unwrap();
    assert_eq!(String::from_utf8(header).unwrap(), expected);
}

/// `powgate tcp` alone, and the two clients that are not ours: `powgate
/// solve --tcp` piping stdin, and the standard-library Python reference
/// client (examples/tcp_client.py), which must pass with nothing of ours.
#[test]
fn the_cli_and_the_python_reference_client_pass_the_gate() {
    let echo = Echo::start();
    let dir = tempfile::tempdir().unwrap();
    let (http, gate) = (free_port(), free_port());
    let mut cmd = Command::new(BIN);
    cmd.args([
        "tcp",
        "--listen",
        &format!("127.0.0.1:{gate}"),
        "--upstream",
        &format!("127.0.0.1:{}", echo.port),
    ]);
    let server = Server::spawn(cmd, dir, http, gate, &[]);
    assert!(server.dir.path().join("powgate.db").exists());

    let mut solve = Command::new(BIN)
        .args(["solve", "-q", "--tcp", &format!("127.0.0.1:{gate}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    solve
        .stdin
        .take()
        .unwrap()
        .write_all(b"through powgate solve\n")
        .unwrap();
    let out = solve.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"through powgate solve\n");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tcp_client.py");
    // The first Python with argon2-cffi: a pyenv or venv python3 first on
    // PATH may lack the Debian package that scripts/test.sh installs.
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import argon2"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect(
            "no python3 with argon2-cffi: apt-get install python3-argon2 (scripts/test.sh does)",
        );
    let mut py = Command::new(python)
        .args([script, "127.0.0.1", &gate.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin
        .take()
        .unwrap()
        .write_all(b"through python\n")
        .unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"through python\n");
    assert_eq!(echo.connections(), 2);
}
