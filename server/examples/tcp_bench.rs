//! The client and the upstream of the TCP gate's benchmark (`just bench`,
//! part f), in plain blocking std networking so that neither side of the
//! comparison gets a faster client than the other.
//!
//! ```text
//! tcp_bench echo --listen 127.0.0.1:18093
//! tcp_bench latency --addr 127.0.0.1:18093 [--token TOKEN] --count 500
//! tcp_bench throughput --addr 127.0.0.1:18093 [--token TOKEN] --mib 1024
//! ```
//!
//! - `echo`: the upstream; echoes every byte, a thread per connection.
//! - `latency`: `count` connections one after another, each timed from
//!   `connect` to the echo of one byte; with `--token`, the POWGATE/1
//!   handshake (greeting, `TOKEN`, `OK`) comes in between, so the
//!   difference to a run without it is what the gate adds before the first
//!   byte can flow. Prints `p50_ms p99_ms`.
//! - `throughput`: one connection, `mib` MiB sent and echoed back at once
//!   (a writer thread and this one reading); prints MiB/s of the stream.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn required(name: &str) -> String {
    arg(name).unwrap_or_else(|| panic!("{name} is required"))
}

/// Connects, and passes the gate with `token` when given; returns the
/// stream and a reader over it that may hold early bytes.
fn open(addr: &str, token: Option<&str>) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut writer = s;
    if let Some(token) = token {
        let mut line = String::new();
        reader.read_line(&mut line).expect("greeting");
        assert!(line.starts_with("POWGATE/1 "), "not a gate: {line:?}");
        writer
            .write_all(format!("TOKEN {token}\n").as_bytes())
            .expect("answer");
        line.clear();
        reader.read_line(&mut line).expect("reply");
        assert!(line.starts_with("OK "), "refused: {line:?}");
    }
    (writer, reader)
}

fn echo(listen: &str) {
    let listener = TcpListener::bind(listen).expect("bind");
    for s in listener.incoming() {
        let Ok(mut s) = s else { continue };
        let _ = s.set_nodelay(true);
        std::thread::spawn(move || {
            let mut back = s.try_clone().expect("clone");
            let _ = std::io::copy(&mut s, &mut back);
            let _ = back.shutdown(std::net::Shutdown::Write);
        });
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn latency(addr: &str, token: Option<&str>, count: usize) {
    let mut ms = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let (mut w, mut r) = open(addr, token);
        w.write_all(b"x").expect("write");
        let mut b = [0u8; 1];
        r.read_exact(&mut b).expect("echo");
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    println!("{:.3} {:.3}", percentile(&ms, 0.5), percentile(&ms, 0.99));
}

fn throughput(addr: &str, token: Option<&str>, mib: usize) {
    let (mut w, mut r) = open(addr, token);
    let total = mib * 1024 * 1024;
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let chunk = vec![0x5au8; 256 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            w.write_all(&chunk[..n]).expect("send");
            sent += n;
        }
        w.shutdown(std::net::Shutdown::Write).expect("half-close");
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).expect("receive");
        if n == 0 {
            break;
        }
        got += n;
    }
    writer.join().expect("writer");
    assert_eq!(got, total, "the echo came back short");
    #[allow(clippy::cast_precision_loss)]
    let rate = mib as f64 / started.elapsed().as_secs_f64();
    println!("{rate:.1}");
}

fn main() {
    let token = arg("--token");
    match std::env::args().nth(1).as_deref() {
        Some("echo") => echo(&required("--listen")),
        Some("latency") => latency(
            &required("--addr"),
            token.as_deref(),
            required("--count").parse().expect("--count"),
        ),
        Some("throughput") => throughput(
            &required("--addr"),
            token.as_deref(),
            required("--mib").parse().expect("--mib"),
        ),
        _ => eprintln!("usage: tcp_bench echo|latency|throughput (see the source)"),
    }
}
