//! The shipped binary, driven as an operator would: start it with tiny
//! argon2 parameters from the environment, get a token with `powgate solve`,
//! check it with `/verify-token`, restart, check again.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_powgate");

struct Server {
    child: Child,
    port: u16,
    /// Every line the server has written to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &std::path::Path, port: u16, extra: &[(&str, &str)]) -> Self {
        Self::start_from(Command::new(BIN), dir, port, extra)
    }

    /// Starts `cmd`, which runs the binary (directly or through a shell that
    /// prepares the process first), with the test environment.
    fn start_from(
        mut cmd: Command,
        dir: &std::path::Path,
        port: u16,
        extra: &[(&str, &str)],
    ) -> Self {
        cmd.current_dir(dir)
            .env_clear()
            .env("POW_LISTEN", format!("127.0.0.1:{port}"))
            .env("POW_DATABASE", dir.join("powgate.db"))
            .env("ARGON2_TIME_COST", "1")
            .env("ARGON2_MEMORY_KB", "256")
            .env("POW_DIFFICULTY_LEVEL", "20")
            .env("POW_TOKEN_MAX_IPS", "2")
            .env("POW_RATE_CHALLENGES_PER_MINUTE", "0")
            .env("POW_RATE_SOLUTIONS_PER_MINUTE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start powgate");
        // Wait for the "listening" line so the test never races start-up.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
        let lines = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("powgate listening") {
                    let _ = tx.send(());
                }
                lines.lock().unwrap().push(line);
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("powgate did not start");
        Self { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn verify(&self, token: Option<&str>, ip: &str) -> u16 {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .get(&self.url("/verify-token"))
            .header("X-Real-IP", ip);
        if let Some(t) = token {
            r = r.header("Authorization", &format!("Bearer {t}"));
        }
        r.call().unwrap().status().as_u16()
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// SIGTERM, as systemd would send, then wait for a clean exit.
    fn stop(self) {
        self.stop_within(Duration::from_secs(10));
    }

    fn stop_within(mut self, limit: Duration) {
        self.signal("-TERM");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "powgate exited with {status} on SIGTERM");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("powgate did not stop within {limit:?} of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn operator_walkthrough_solve_verify_limit_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(dir.path(), port, &[]);

    let out = Command::new(BIN)
        .args(["solve", &server.url("/"), "--threads", "2"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "solve failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token goes to stdout: {stdout:?}"
    );
    assert_eq!(token.len(), 36);

    // `powgate solve` connects from 127.0.0.1 without X-Real-IP: that is its first address.
    assert_eq!(server.verify(Some(token), "127.0.0.1"), 200);
    assert_eq!(server.verify(None, "127.0.0.1"), 401);
    assert_eq!(
        server.verify(Some(token), "203.0.113.2"),
        200,
        "second address"
    );
    assert_eq!(
        server.verify(Some(token), "203.0.113.3"),
        403,
        "third address over POW_TOKEN_MAX_IPS=2"
    );

    server.stop();
    let server = Server::start(dir.path(), port, &[]);
    assert_eq!(
        server.verify(Some(token), "127.0.0.1"),
        200,
        "valid after a restart"
    );
    assert_eq!(
        server.verify(Some(token), "203.0.113.3"),
        403,
        "limit holds after a restart"
    );
    server.stop();
}

#[test]
fn solve_fails_clearly_when_nothing_listens() {
    let port = free_port();
    let out = Command::new(BIN)
        .args(["solve", &format!("http://127.0.0.1:{port}/"), "-q"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_key() {
    let out = Command::new(BIN)
        .env_clear()
        .env("ARGON2_MEMORY_KB", "4")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ARGON2_MEMORY_KB") && err.contains("8..="),
        "{err}"
    );
}

/// A named configuration file that is missing must stop every command that
/// reads one, before it touches a database: the defaults would put the key
/// or the tokens into ./powgate.db, which is not where the operator looks.
#[test]
fn a_missing_config_file_stops_serve_and_admin_key_reset() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    for args in [&["serve"][..], &["admin-key", "reset"][..]] {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&missing)
            .current_dir(dir.path())
            .env_clear()
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {err}");
        assert!(
            err.contains("missing.toml") && err.contains("does not exist"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed a key");
        assert!(!dir.path().join("powgate.db").exists(), "{args:?}");
    }
}

/// `serve --upstream` is read, and wins over `POW_UPSTREAM`: a value only
/// the flag carries stops start-up with the key and the fix named.
#[test]
fn the_upstream_flag_overrides_the_environment_and_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--upstream", "ftp://app.internal"])
        .current_dir(dir.path())
        .env_clear()
        .env("POW_UPSTREAM", "http://127.0.0.1:9")
        .env("POW_LISTEN", "127.0.0.1:0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("powgate started: --upstream was ignored");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("POW_UPSTREAM")
            && err.contains("ftp://app.internal")
            && err.contains("http://host:port"),
        "{err}"
    );
}

#[test]
fn help_explains_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "solve", "admin-key", "--config"] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// The admission ticket `ch` asks for, so a submission reaches argon2.
fn ticket(ch: &pow::wire::ChallengeResponse) -> Option<u64> {
    let salt: [u8; 16] = hex::decode(&ch.salt).unwrap().try_into().unwrap();
    Some(pow::ticket::solve(&salt, ch.ticket_bits))
}

/// Gets one token as `ip`, or `None` once the server is gone.
fn obtain(server_url: &str, ip: &str) -> Option<String> {
    let agent = agent();
    let mut r = agent
        .post(&format!("{server_url}/api/challenge"))
        .header("X-Real-IP", ip)
        .send_empty()
        .ok()?;
    let ch: pow::wire::ChallengeResponse = r.body_mut().read_json().ok()?;
    let salt: [u8; 16] = hex::decode(&ch.salt).ok()?.try_into().ok()?;
    let mut solver = pow::Solver::new(
        ch.argon2,
        salt,
        pow::Difficulty::new(ch.difficulty).ok()?,
        0,
        1,
    )
    .ok()?;
    let nonce = loop {
        if let pow::Step::Found { nonce, .. } = solver.step(100).ok()? {
            break nonce;
        }
    };
    let req = pow::wire::SolveRequest {
        ticket: Some(pow::ticket::solve(&salt, ch.ticket_bits)),
        challenge: ch.challenge,
        nonce,
        refresh_token: None,
        telemetry: None,
        redir: None,
    };
    let mut r = agent
        .post(&format!("{server_url}/api/solve"))
        .header("X-Real-IP", ip)
        .send_json(&req)
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let body: pow::wire::SolveResponse = r.body_mut().read_json().ok()?;
    Some(body.token)
}

/// Under a flood most submissions get 503 from the full verification queue.
/// That is the server working as designed, counted in /metrics: it must not
/// write an ERROR line per request, which a flood would turn into gigabytes.
#[test]
fn busy_answers_under_a_flood_are_not_logged_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        free_port(),
        &[
            // One slot and no queue, and a hash slow enough (tens of ms)
            // that submissions sent together find the slot taken.
            ("ARGON2_TIME_COST", "4"),
            ("ARGON2_MEMORY_KB", "16384"),
            ("POW_VERIFY_PERMITS", "1"),
            ("POW_VERIFY_QUEUE", "0"),
            // No random nonce is right at this difficulty.
            ("POW_DIFFICULTY_LEVEL", "1000000000"),
        ],
    );
    let url = server.url("");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|t| {
                let url = &url;
                s.spawn(move || {
                    let ip = format!("198.51.100.{}", 50 + t);
                    let agent = agent();
                    let ch: pow::wire::ChallengeResponse = agent
                        .post(&format!("{url}/api/challenge"))
                        .header("X-Real-IP", &ip)
                        .send_empty()
                        .unwrap()
                        .body_mut()
                        .read_json()
                        .unwrap();
                    let req = pow::wire::SolveRequest {
                        ticket: ticket(&ch),
                        challenge: ch.challenge,
                        nonce: 7,
                        refresh_token: None,
                        telemetry: None,
                        redir: None,
                    };
                    (0..5)
                        .map(|_| {
                            agent
                                .post(&format!("{url}/api/solve"))
                                .header("X-Real-IP", &ip)
                                .send_json(&req)
                                .unwrap()
                                .status()
                                .as_u16()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(
        statuses.contains(&503),
        "no submission found the queue full: {statuses:?}"
    );
    let log = server.log.lock().unwrap().clone();
    assert!(
        !log.iter().any(|l| l.contains('\u{1b}')),
        "colour codes in a log that is not a terminal"
    );
    let errors: Vec<_> = log.iter().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "{} ERROR lines, e.g. {:?}",
        errors.len(),
        errors.first()
    );
}

#[test]
fn every_token_answered_with_200_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(dir.path(), port, &[("POW_DIFFICULTY_LEVEL", "2")]);
    let url = server.url("");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let issued: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (url, stop, issued) = (&url, &stop, &issued);
            s.spawn(move || {
                let ip = format!("198.51.100.{}", 10 + t);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(token) = obtain(url, &ip) {
                        issued.lock().unwrap().push((token, ip.clone()));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        // Killed mid-stream: some requests are in flight right now.
        server.signal("-KILL");
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    drop(server);
    let issued = issued.into_inner().unwrap();
    assert!(
        issued.len() >= 10,
        "only {} tokens issued before the kill",
        issued.len()
    );

    let server = Server::start(dir.path(), port, &[]);
    let lost: Vec<_> = issued
        .iter()
        .filter(|(token, ip)| server.verify(Some(token), ip) != 200)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} tokens lost after SIGKILL",
        lost.len(),
        issued.len()
    );
    server.stop();
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A verification that takes a noticeable time, so it is surely in flight.
    let server = Server::start(
        dir.path(),
        port,
        &[
            ("ARGON2_TIME_COST", "4"),
            ("ARGON2_MEMORY_KB", "131072"),
            ("POW_DIFFICULTY_LEVEL", "1000000"),
            ("POW_SHUTDOWN_GRACE_SECS", "20"),
        ],
    );
    let url = server.url("");
    let mut r = agent()
        .post(&format!("{url}/api/challenge"))
        .send_empty()
        .unwrap();
    let ch: pow::wire::ChallengeResponse = r.body_mut().read_json().unwrap();
    let load_stop = std::sync::atomic::AtomicBool::new(false);
    let (status, load) = std::thread::scope(|s| {
        let slow = s.spawn(|| {
            // Difficulty 10^6: nonce 0 is (almost surely) wrong, but the
            // server must hash it to know.
            let req = pow::wire::SolveRequest {
                challenge: ch.challenge.clone(),
                ticket: ticket(&ch),
                nonce: 0,
                refresh_token: None,
                telemetry: None,
                redir: None,
            };
            agent()
                .post(&format!("{url}/api/solve"))
                .send_json(&req)
                .map(|r| r.status().as_u16())
        });
        let load = s.spawn(|| {
            let mut answered = 0u32;
            while !load_stop.load(std::sync::atomic::Ordering::Relaxed) {
                match agent().get(&format!("{url}/verify-token")).call() {
                    Ok(r) => {
                        assert_eq!(
                            r.status(),
                            401,
                            "a request accepted before shutdown got a wrong answer"
                        );
                        answered += 1;
                    }
                    Err(_) => break, // listener closed: expected after SIGTERM
                }
            }
            answered
        });
        // SIGTERM only once the verification is really running.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = agent()
                .get(&format!("{url}/metrics"))
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap();
            if text.lines().any(|l| l == "powgate_verify_queue_depth 1") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the slow verification never started"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let started = Instant::now();
        server.stop_within(Duration::from_secs(20));
        load_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        eprintln!("exited {:?} after SIGTERM", started.elapsed());
        (slow.join().unwrap(), load.join().unwrap())
    });
    assert_eq!(
        status.expect("the in-flight solve got an answer"),
        403,
        "the in-flight verification finished"
    );
    assert!(load > 0);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port is closed after exit"
    );
}

#[test]
fn shutdown_does_not_wait_past_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(
        dir.path(),
        port,
        &[
            ("POW_SHUTDOWN_GRACE_SECS", "1"),
            ("POW_REQUEST_TIMEOUT_SECS", "120"),
        ],
    );
    // A request whose body never arrives holds its connection open.
    let mut hung = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut hung,
        b"POST /api/solve HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    server.stop_within(Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

/// Every ERROR line the server has written so far.
fn error_lines(server: &Server) -> Vec<String> {
    let log = server.log.lock().unwrap();
    log.iter()
        .filter(|l| l.contains("ERROR"))
        .cloned()
        .collect()
}

/// The first start on an empty directory used to log
/// `ERROR r2d2: database is locked`: the pool opened all its connections at
/// once, and each tried to switch the brand-new file to WAL.
#[test]
fn a_first_start_in_an_empty_directory_logs_no_database_locked_error() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        // Many connections make the start-up race all but certain.
        let server = Server::start(dir.path(), free_port(), &[("POW_VERIFY_PERMITS", "16")]);
        assert_eq!(server.verify(None, "127.0.0.1"), 401, "the server answers");
        let errors = error_lines(&server);
        assert!(errors.is_empty(), "{errors:?}");
        server.stop();
    }
}

/// The database holds the challenge HMAC key: it, and the WAL and shared
/// memory files SQLite creates beside it, must be readable by powgate's user
/// only, even under the common umask 022 that makes new files 0644.
#[cfg(unix)]
#[test]
fn the_database_and_its_wal_and_shm_files_are_private_under_umask_022() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 022 && exec \"$0\" serve", BIN]);
    let server = Server::start_from(cmd, dir.path(), free_port(), &[]);
    // A lookup reads the database, so the WAL and SHM files are open.
    assert_eq!(
        server.verify(Some("5b1c4a3e-0000-4000-8000-000000000000"), "127.0.0.1"),
        401
    );
    for name in ["powgate.db", "powgate.db-wal", "powgate.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is {:o}", mode & 0o777);
    }
    server.stop();
}

/// A database created by an older version is 0644: start-up tightens it.
#[cfg(unix)]
#[test]
fn an_existing_world_readable_database_is_made_private_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("powgate.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(dir.path(), free_port(), &[]);
    assert_eq!(server.verify(None, "127.0.0.1"), 401, "the server answers");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{:o}", mode & 0o777);
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|l| l.contains("WARN") && l.contains("0600")),
        "{log:?}"
    );
    server.stop();
}

/// The SIGTERM handler used to be installed only when the accept loop first
/// polled its shutdown future, after "powgate listening" was logged: a
/// SIGTERM in between (systemd stopping a unit that has just started) killed
/// the process instead of shutting it down cleanly.
#[test]
fn sigterm_right_after_the_listening_line_is_a_clean_shutdown() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), free_port(), &[]);
        assert_eq!(server.verify(None, "127.0.0.1"), 401);
        server.stop();
    }
}
