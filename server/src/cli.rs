//! `powgate solve URL`: obtains a token from a powgate instance by solving
//! its challenge natively, for API clients and browsers without JavaScript.
//! Progress goes to stderr; only the token goes to stdout.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use pow::tcp::{Answer, Greeting, Reply};
use pow::wire::{
    ChallengeRequest, ChallengeResponse, ErrorBody, SolveRequest, SolveResponse, Telemetry,
};
use pow::{Argon2Params, Difficulty, Solver, Step};

/// Options of `powgate solve`.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// Base URL of the powgate instance, including any path prefix.
    pub url: String,
    pub threads: usize,
    /// An expired or exhausted token to refresh at half difficulty instead
    /// of a new one.
    pub refresh: Option<String>,
    /// Hide the progress bar.
    pub quiet: bool,
}

/// How many times a spent or expired challenge is replaced before giving up.
const ATTEMPTS: usize = 3;

/// Runs the whole exchange and returns the token.
///
/// # Errors
/// Network failures, refusals by the server (with its message), or a
/// challenge the server should never have sent.
pub fn solve(opts: &SolveOptions) -> anyhow::Result<String> {
    let base = opts.url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("URL must start with http:// or https://, for example http://127.0.0.1:8080");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    for attempt in 1..=ATTEMPTS {
        let challenge = fetch_challenge(&agent, base, opts.refresh.as_deref())?;
        let started = Instant::now();
        let difficulty = Difficulty::new(challenge.difficulty)
            .context("the challenge difficulty is out of range")?;
        let salt = salt_of(&challenge)?;
        let Some((nonce, hashes)) =
            search(challenge.argon2, salt, difficulty, opts.threads, opts.quiet)?
        else {
            bail!(
                "the search space was exhausted without a solution; this should not happen, please report it"
            );
        };
        let req = SolveRequest {
            challenge: challenge.challenge.clone(),
            nonce,
            ticket: admission_ticket(&challenge)?,
            refresh_token: opts.refresh.clone(),
            telemetry: Some(Telemetry {
                hashes: Some(hashes),
                elapsed_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
                workers: u32::try_from(opts.threads).ok(),
                // Not a browser: the server counts it apart from visitors.
                class: None,
            }),
            redir: None,
        };
        match submit(&agent, base, &req)? {
            Submitted::Token(t) => return Ok(t.token),
            Submitted::Retry(why) if attempt < ATTEMPTS => {
                eprintln!("powgate: {why}; fetching a new challenge");
            }
            Submitted::Retry(why) => bail!("{why}"),
        }
    }
    bail!("gave up after {ATTEMPTS} challenges")
}

/// Options of `powgate solve --tcp`.
#[derive(Debug, Clone)]
pub struct TcpOptions {
    /// host:port of the TCP gate.
    pub address: String,
    pub threads: usize,
    /// A token to present instead of solving.
    pub token: Option<String>,
    /// Print the token and close instead of piping stdin and stdout.
    pub print_token: bool,
    /// Hide the progress bar.
    pub quiet: bool,
}

/// Passes the TCP gate at `opts.address` (protocol `POWGATE/1`, see
/// `pow::tcp`), then either prints the token or pipes stdin to the
/// connection and the connection to stdout until both ends close.
///
/// # Errors
/// Network failures, a refusal by the gate (with its message), or a line
/// that is not the protocol's.
pub fn solve_tcp(opts: &TcpOptions) -> anyhow::Result<()> {
    use std::io::{BufRead as _, BufReader, Write as _};
    let stream = std::net::TcpStream::connect(&opts.address)
        .with_context(|| format!("cannot connect to {}", opts.address))?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let greeting = Greeting::parse(&line)
        .with_context(|| format!("{} is not a powgate TCP gate", opts.address))?;
    let answer = match (&opts.token, greeting) {
        (Some(token), _) => Answer::Token(token.clone()),
        (None, Greeting::NoChallenge { code, retry_after }) => {
            bail!(
                "the gate has no challenge for this address now ({code}); retry in {retry_after} s"
            )
        }
        (None, Greeting::Challenge(offer)) => {
            let Some((nonce, _)) = search(
                offer.params,
                offer.salt,
                offer.difficulty,
                opts.threads,
                opts.quiet,
            )?
            else {
                bail!(
                    "the search space was exhausted without a solution; this should not happen, please report it"
                );
            };
            Answer::Nonce {
                ticket: pow::ticket::solve(&offer.salt, offer.ticket_bits),
                challenge: offer.challenge,
                nonce,
            }
        }
    };
    writer.write_all(answer.to_line().as_bytes())?;
    line.clear();
    reader.read_line(&mut line)?;
    let token = match Reply::parse(&line).context("the gate's answer is not a POWGATE/1 line")? {
        Reply::Ok(token) => token,
        Reply::Err { code, message } => bail!("the gate refused: {message} ({code})"),
    };
    if opts.print_token {
        println!("{token}");
        return Ok(());
    }
    if !opts.quiet {
        eprintln!("powgate: passed; piping stdin and stdout (token {token})");
    }
    let mut to_server = writer.try_clone()?;
    // stdin to the service on its own thread; its end is passed on as a
    // half-close, so a service that answers after EOF still gets to.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_server);
        let _ = to_server.shutdown(std::net::Shutdown::Write);
    });
    let mut stdout = std::io::stdout().lock();
    // Whatever the reader already buffered past the OK line is the
    // service's first bytes.
    std::io::copy(&mut reader, &mut stdout)?;
    stdout.flush()?;
    drop(writer);
    Ok(())
}

fn fetch_challenge(
    agent: &ureq::Agent,
    base: &str,
    refresh: Option<&str>,
) -> anyhow::Result<ChallengeResponse> {
    let url = format!("{base}/api/challenge");
    loop {
        let mut resp = agent
            .post(&url)
            .send_json(ChallengeRequest {
                refresh_token: refresh.map(str::to_owned),
            })
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status().as_u16();
        if let Some(wait) = retry_after(&resp).filter(|_| status == 429 || status == 503) {
            eprintln!("powgate: server busy, retrying in {wait} s");
            std::thread::sleep(Duration::from_secs(wait));
            continue;
        }
        if status != 200 {
            bail!(
                "{url} refused the challenge request: {}",
                error_text(&mut resp)
            );
        }
        return resp.body_mut().read_json().with_context(|| {
            format!("{url} did not answer with a powgate challenge; is the URL right?")
        });
    }
}

enum Submitted {
    Token(SolveResponse),
    Retry(String),
}

fn submit(agent: &ureq::Agent, base: &str, req: &SolveRequest) -> anyhow::Result<Submitted> {
    let url = format!("{base}/api/solve");
    loop {
        let mut resp = agent
            .post(&url)
            .send_json(req)
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status().as_u16();
        match status {
            200 => {
                return Ok(Submitted::Token(
                    resp.body_mut()
                        .read_json()
                        .context("unreadable answer from /api/solve")?,
                ));
            }
            409 | 410 => return Ok(Submitted::Retry(error_text(&mut resp))),
            // Queued (503 `queued`): the same answer is sent again, and
            // keeps its place in line, until its turn comes or the server
            // says the challenge expired (410).
            429 | 503 => {
                let wait = retry_after(&resp).unwrap_or(2);
                let body = resp.body_mut().read_json::<ErrorBody>().ok();
                eprintln!("powgate: {}", wait_note(body.as_ref(), wait));
                std::thread::sleep(Duration::from_secs(wait));
            }
            _ => bail!("the server refused the solution: {}", error_text(&mut resp)),
        }
    }
}

/// What the user reads while `/api/solve` asks to come back in `wait` s:
/// for an answer waiting to be verified, honestly how many are ahead.
fn wait_note(body: Option<&ErrorBody>, wait: u64) -> String {
    match body {
        Some(b) if b.error == "queued" => format!(
            "verifying your answer: {} ahead of you",
            b.ahead.unwrap_or(0)
        ),
        _ => format!("server busy, retrying in {wait} s"),
    }
}

fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(|s: u64| s.min(60))
}

fn error_text(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    let status = resp.status();
    match resp.body_mut().read_json::<ErrorBody>() {
        Ok(e) => format!("{} ({status})", e.message),
        Err(_) => format!("HTTP {status}"),
    }
}

fn salt_of(ch: &ChallengeResponse) -> anyhow::Result<[u8; 16]> {
    hex::decode(&ch.salt)
        .ok()
        .and_then(|v| v.try_into().ok())
        .context("the challenge salt is not 16 hex bytes")
}

/// The admission ticket the challenge asks for (`pow::ticket`), none when
/// its `ticket_bits` is 0. About one argon2 hash of SHA-256 work, so it is
/// computed on this thread after the search rather than raced beside it.
fn admission_ticket(ch: &ChallengeResponse) -> anyhow::Result<Option<u64>> {
    if ch.ticket_bits == 0 {
        return Ok(None);
    }
    Ok(Some(pow::ticket::solve(&salt_of(ch)?, ch.ticket_bits)))
}

/// Searches on `threads` threads; returns the winning nonce and the hashes
/// tried by all threads.
fn search(
    params: Argon2Params,
    salt: [u8; 16],
    difficulty: Difficulty,
    threads: usize,
    quiet: bool,
) -> anyhow::Result<Option<(u64, u64)>> {
    let threads = threads.max(1);
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let found: Mutex<Option<anyhow::Result<Option<u64>>>> = Mutex::new(None);
    let bar = progress_bar(quiet, difficulty);
    let started = Instant::now();

    std::thread::scope(|s| {
        for i in 0..threads {
            let (stop, total, found) = (&stop, &total, &found);
            s.spawn(move || {
                let record = |r| {
                    let mut f = found
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    f.get_or_insert(r);
                    stop.store(true, Ordering::SeqCst);
                };
                let mut solver =
                    match Solver::new(params, salt, difficulty, i as u64, threads as u64) {
                        Ok(s) => s,
                        Err(e) => {
                            return record(Err(anyhow::anyhow!(
                                "cannot start a solver thread: {e}"
                            )));
                        }
                    };
                while !stop.load(Ordering::Relaxed) {
                    match solver.step(1) {
                        Ok(Step::Progress { .. }) => {
                            total.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Step::Found { nonce, .. }) => {
                            total.fetch_add(1, Ordering::Relaxed);
                            return record(Ok(Some(nonce)));
                        }
                        Ok(Step::Exhausted { .. }) => return record(Ok(None)),
                        Err(e) => return record(Err(e.into())),
                    }
                }
            });
        }
        while !stop.load(Ordering::Relaxed) {
            update_bar(&bar, total.load(Ordering::Relaxed), difficulty, started);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let hashes = total.load(Ordering::Relaxed);
    update_bar(&bar, hashes, difficulty, started);
    bar.finish_and_clear();
    let result = found
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match result {
        Some(Ok(Some(nonce))) => Ok(Some((nonce, hashes))),
        Some(Ok(None)) | None => Ok(None),
        Some(Err(e)) => Err(e),
    }
}

fn progress_bar(quiet: bool, d: Difficulty) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} solving [{bar:30}] {percent:>3}% likely found · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("difficulty {}", d.get()));
    bar
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn update_bar(bar: &ProgressBar, hashes: u64, d: Difficulty, started: Instant) {
    let p = 1.0 - (1.0 - 1.0 / d.get() as f64).powf(hashes as f64);
    bar.set_position((p * 1000.0) as u64);
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let rate = hashes as f64 / secs;
    let eta = if rate > 0.0 {
        format!("~{:.0} s to go on average", d.get() as f64 / rate)
    } else {
        "warming up".into()
    };
    bar.set_message(format!("{hashes} hashes, {rate:.1} H/s, {eta}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(error: &str, ahead: Option<u64>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            message: String::new(),
            field: None,
            ahead,
        }
    }

    /// A queued answer is being verified, not refused: "server busy" would
    /// tell the user the opposite of what happens.
    #[test]
    fn a_queued_answer_is_reported_with_how_many_are_ahead() {
        assert_eq!(
            wait_note(Some(&body("queued", Some(12))), 1),
            "verifying your answer: 12 ahead of you"
        );
        assert_eq!(
            wait_note(Some(&body("rate_limited", None)), 3),
            "server busy, retrying in 3 s"
        );
        assert_eq!(wait_note(None, 2), "server busy, retrying in 2 s");
    }
}
