//! The admission ticket (issue 14): a garbage submission must cost its
//! sender a ticket, and one without a valid ticket must cost powgate
//! neither an argon2 hash nor the challenge.

mod common;

use common::{TestApp, answer, salt, wrong_ticket};
use pow::ChallengeClaims;
use pow::wire::{ChallengeResponse, SolveRequest};

const IP: &str = "198.51.100.40";

fn argon2_runs(app: &TestApp) -> u64 {
    app.state.metrics.argon2_seconds.get_sample_count()
}

/// `powgate_solutions_total{result="rejected",reason="bad_ticket"}`, as
/// /metrics shows it (0 before the first one).
fn bad_ticket_count(app: &TestApp) -> u64 {
    app.metrics()
        .lines()
        .find(|l| {
            l.starts_with("powgate_solutions_total{")
                && l.contains("reason=\"bad_ticket\"")
                && l.contains("result=\"rejected\"")
        })
        .map_or(0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

/// A challenge that really asks for a ticket (the test argon2 parameters
/// give `auto` a few bits).
fn ticketed_challenge(app: &TestApp) -> ChallengeResponse {
    let ch = app.new_challenge(IP);
    assert!(ch.ticket_bits > 0, "auto gave no ticket bits: {ch:?}");
    ch
}

/// Submits `garbage`, checks the 400 `bad_ticket` cost no argon2 hash and
/// left the challenge solvable, then solves it with the right ticket.
fn refused_as_bad_ticket_then_solvable(
    app: &TestApp,
    ch: &ChallengeResponse,
    garbage: &SolveRequest,
) {
    let (runs, refused) = (argon2_runs(app), bad_ticket_count(app));
    let (status, body, _) = app.submit(IP, garbage);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_ticket", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("ticket"),
        "the message names the fix: {body}"
    );
    assert_eq!(argon2_runs(app), runs, "a bad ticket was hashed");
    assert_eq!(bad_ticket_count(app), refused + 1, "not counted");
    let (status, body, _) = app.submit(IP, &answer(ch));
    assert_eq!(status, 200, "the challenge was spent by garbage: {body}");
    assert_eq!(argon2_runs(app), runs + 1);
}

#[test]
fn garbage_without_a_ticket_is_refused_before_argon2_and_before_the_spend() {
    let app = TestApp::spawn();
    let ch = ticketed_challenge(&app);
    let mut garbage = answer(&ch);
    garbage.ticket = None;
    refused_as_bad_ticket_then_solvable(&app, &ch, &garbage);
}

#[test]
fn garbage_with_a_wrong_ticket_is_refused_before_argon2_and_before_the_spend() {
    let app = TestApp::spawn();
    let ch = ticketed_challenge(&app);
    let mut garbage = answer(&ch);
    garbage.ticket = Some(wrong_ticket(&ch));
    refused_as_bad_ticket_then_solvable(&app, &ch, &garbage);
}

/// A ticket bought for one challenge must not admit a submission for
/// another: one ticket buys one submission.
#[test]
fn a_ticket_for_another_challenge_is_refused() {
    let app = TestApp::spawn();
    let ch = ticketed_challenge(&app);
    // Another challenge's ticket also passes for this one with probability
    // 2^-bits, and then proves nothing: take one that does not.
    let others = (0..20).map(|_| answer(&ticketed_challenge(&app)).ticket.unwrap());
    let mut garbage = answer(&ch);
    garbage.ticket = Some(
        others
            .into_iter()
            .find(|t| !pow::ticket::check(&salt(&ch), *t, ch.ticket_bits))
            .expect("20 other challenges' tickets all pass for this one"),
    );
    refused_as_bad_ticket_then_solvable(&app, &ch, &garbage);
}

/// The ticket bits are signed: a client cannot lower them to 0 and skip
/// the ticket. Splices the claims of the same challenge with the bits
/// zeroed onto the server's signature.
#[test]
fn ticket_bits_lowered_by_the_client_fail_the_signature() {
    let app = TestApp::spawn();
    let ch = ticketed_challenge(&app);
    let mut claims: ChallengeClaims =
        pow::challenge::verify(&app.state.challenge_key, &ch.challenge).unwrap();
    claims.ticket_bits = 0;
    let (zeroed_payload, _) = claims
        .sign(b"any key")
        .split_once('.')
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
        .unwrap();
    let (_, server_tag) = ch.challenge.split_once('.').unwrap();
    let forged = SolveRequest {
        challenge: format!("{zeroed_payload}.{server_tag}"),
        ticket: None,
        ..answer(&ch)
    };
    let runs = argon2_runs(&app);
    let (status, body, _) = app.submit(IP, &forged);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("signature"),
        "{body}"
    );
    assert_eq!(argon2_runs(&app), runs);
}

#[test]
fn ticket_bits_zero_asks_for_no_ticket() {
    let app = TestApp::spawn_with(|c| {
        c.ticket_bits = powgate::config::TicketBitsValue::Number(0);
    });
    let ch = app.new_challenge(IP);
    assert_eq!(ch.ticket_bits, 0);
    let mut req = answer(&ch);
    req.ticket = None;
    let (status, body, _) = app.submit(IP, &req);
    assert_eq!(status, 200, "{body}");
}

/// Challenges issued while the ticket was off must not stay good for free
/// garbage after the operator turns it on, which is what an operator does
/// under attack.
#[test]
fn a_challenge_issued_with_the_ticket_off_is_refused_once_it_is_on() {
    let mut app = TestApp::spawn_with(|c| {
        c.ticket_bits = powgate::config::TicketBitsValue::Number(0);
    });
    let ch = app.new_challenge(IP);
    assert_eq!(ch.ticket_bits, 0);
    app.raw.ticket_bits = powgate::config::TicketBitsValue::Name("auto".into());
    let app = app.restart();
    let runs = argon2_runs(&app);
    let mut req = answer(&ch);
    req.ticket = None;
    let (status, body, _) = app.submit(IP, &req);
    assert_eq!(status, 410, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("ticket"),
        "{body}"
    );
    assert_eq!(argon2_runs(&app), runs, "refused before argon2");
}

/// HMAC-SHA256 (RFC 2104), written out so this test signs a challenge in
/// the old layout exactly as a server before tickets did.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// A challenge issued before the upgrade (claims version 1, no ticket
/// bits), validly signed and still in time, must not slip through without
/// a ticket; its holder is told to fetch a new one.
#[test]
fn a_challenge_issued_before_tickets_asks_for_a_new_one() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let app = TestApp::spawn();
    let ch = ticketed_challenge(&app);
    let claims = pow::challenge::verify(&app.state.challenge_key, &ch.challenge).unwrap();
    let mut old = claims.to_bytes()[..82].to_vec();
    old[0] = 1;
    let tag = hmac_sha256(&app.state.challenge_key, &old);
    let req = SolveRequest {
        challenge: format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&old),
            URL_SAFE_NO_PAD.encode(tag)
        ),
        ticket: None,
        ..answer(&ch)
    };
    let runs = argon2_runs(&app);
    let (status, body, _) = app.submit(IP, &req);
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("version 1") && message.contains("request a new challenge"),
        "{message}"
    );
    assert_eq!(argon2_runs(&app), runs);

    // The HMAC above is the server's: the current layout signed with it passes.
    let current = claims.to_bytes();
    let resigned = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(current),
        URL_SAFE_NO_PAD.encode(hmac_sha256(&app.state.challenge_key, &current))
    );
    assert_eq!(resigned, ch.challenge);
}
