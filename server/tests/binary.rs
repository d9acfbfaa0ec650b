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
}

impl Server {
    fn start(dir: &std::path::Path, port: u16, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir)
            .env_clear()
            .env("POW_LISTEN", format!("127.0.0.1:{port}"))
            .env("POW_DATABASE", dir.join("powgate.db"))
            .env("ARGON2_TIME_COST", "1")
            .env("ARGON2_MEMORY_KB", "256")
            .env("POW_DIFFICULTY_LEVEL", "20")
            .env("POW_TOKEN_MAX_IPS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start powgate");
        // Wait for the "listening" line so the test never races start-up.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("powgate listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("powgate did not start");
        Self { child, port }
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

    /// SIGTERM, as systemd would send, then wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "powgate exited with {status} on SIGTERM");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("powgate did not stop within 10 s of SIGTERM");
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

#[test]
fn help_explains_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "solve", "admin-key", "--config"] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
}
