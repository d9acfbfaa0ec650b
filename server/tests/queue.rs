//! The fair verification line through the real server: a flood of wrong
//! answers from one network must not keep a clean visitor's correct answer
//! from being verified, and an answer that gets no turn is never thrown
//! away (issue 14, items 1 and 2).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{TestApp, answer, take_turn, until_waiting, wrong_nonce, wrong_ticket};
use pow::wire::SolveRequest;

/// A network that sent wrong answers just before.
const FLOOD_NET: &str = "2001:db8:bad";
const VISITOR: &str = "203.0.113.5";

/// Status, `Retry-After` and body of one submission.
fn submit(app: &TestApp, ip: &str, req: &SolveRequest) -> (u16, Option<String>, serde_json::Value) {
    let mut r = app
        .agent()
        .post(&app.url("/api/solve"))
        .header("X-Real-IP", ip)
        .send_json(req)
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        r.status().as_u16(),
        retry,
        r.body_mut().read_json().unwrap(),
    )
}

/// The attack of issue 14: garbage from one /48, rotating its /64s, fills
/// the only verification thread's line. The clean visitor's answer, sent
/// last, must be verified first (before the flood's own correct answers,
/// which came earlier), evict the worst waiter from the full line rather
/// than be refused, and the evicted answer must keep its challenge.
#[test]
fn a_clean_visitors_answer_overtakes_a_full_line_from_a_network_that_sent_garbage() {
    let app = TestApp::spawn_with(|c| {
        c.verify_permits = Some(1);
        c.verify_queue = Some(4);
        // A 10 s wait for a turn, so no waiter times out during the test.
        c.request_timeout_secs = 20;
    });
    // The flood: wrong answers from four /64s of one /48.
    for i in 0..4 {
        let ip = format!("{FLOOD_NET}:{i}::1");
        let ch = app.new_challenge(&ip);
        let mut req = answer(&ch);
        req.nonce = wrong_nonce(&ch);
        assert_eq!(submit(&app, &ip, &req).0, 403);
    }
    // Further /64s of that network, with correct answers, and the visitor.
    let flood: Vec<(String, SolveRequest)> = (0..4)
        .map(|i| {
            let ip = format!("{FLOOD_NET}:1{i}::1");
            let req = answer(&app.new_challenge(&ip));
            (ip, req)
        })
        .collect();
    let visitor = answer(&app.new_challenge(VISITOR));

    let held = take_turn(&app, 0, 0xaa, Duration::ZERO).unwrap();
    std::thread::scope(|s| {
        let app = &app;
        let mut waiting = Vec::new();
        for (n, (ip, req)) in flood.iter().enumerate() {
            waiting.push(s.spawn(move || submit(app, ip, req)));
            until_waiting(app, n + 1);
        }
        let visitor_done = s.spawn(|| submit(app, VISITOR, &visitor));
        let evicted = waiting.pop().unwrap().join().unwrap();
        let (status, retry, body) = &evicted;
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"], "queued", "{body}");
        assert_eq!(
            body["ahead"], 4,
            "three earlier flood answers and the visitor"
        );
        assert!(retry.is_some(), "a queued answer says when to come back");
        until_waiting(app, 4);

        // A probe behind the visitor and ahead of the flood (it evicts the
        // next flood answer) shows who went first: once it holds the
        // thread, the visitor must be done while the flood still waits.
        let (turn_came, probe_holds) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let probe = s.spawn(move || {
            let turn = take_turn(app, 0, 0xbb, Duration::from_secs(10)).unwrap();
            turn_came.send(()).unwrap();
            released.recv().unwrap();
            drop(turn);
        });
        let (status, _, body) = waiting.pop().unwrap().join().unwrap();
        assert_eq!((status, body["ahead"].as_u64()), (503, Some(4)), "{body}");
        drop(held);
        probe_holds.recv().unwrap();
        let (status, _, body) = visitor_done.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body["token"].is_string());
        assert_eq!(
            app.state.verifier.waiting(),
            2,
            "the flood is still in line"
        );
        assert!(waiting.iter().all(|w| !w.is_finished()));

        release.send(()).unwrap();
        probe.join().unwrap();
        for w in waiting {
            assert_eq!(w.join().unwrap().0, 200);
        }
    });
    // The evicted answers kept their challenges.
    for (ip, req) in &flood[2..] {
        let (status, _, body) = submit(&app, ip, req);
        assert_eq!(status, 200, "{body}");
    }
}

/// The spend happens after the turn, so the line must not let a solution
/// be spent twice: of 100 concurrent submissions exactly one gets a token.
#[test]
fn a_hundred_concurrent_submissions_of_one_solution_yield_exactly_one_token() {
    let app = TestApp::spawn();
    let ip = "198.51.100.20";
    let req = answer(&app.new_challenge(ip));
    let barrier = std::sync::Barrier::new(100);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let all: Vec<_> = (0..100)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    submit(&app, ip, &req).0
                })
            })
            .collect();
        all.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    assert_eq!((count(200), count(409)), (1, 99), "{statuses:?}");
    assert_eq!(app.sql_number("SELECT count(*) FROM tokens"), 1);
}

/// The verification CPU spent on garbage is what the attack simulator
/// reports; the turns by bucket show who got the threads.
#[test]
fn verification_seconds_are_counted_by_verdict_and_turns_by_bucket() {
    let app = TestApp::spawn();
    let ip = "198.51.100.30";
    let ch = app.new_challenge(ip);
    let mut wrong = answer(&ch);
    wrong.nonce = wrong_nonce(&ch);
    assert_eq!(submit(&app, ip, &wrong).0, 403);
    assert_eq!(submit(&app, ip, &answer(&app.new_challenge(ip))).0, 200);
    let metrics = app.metrics();
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(value("powgate_verify_seconds_total{verdict=\"wrong\"}") > 0.0);
    assert!(value("powgate_verify_seconds_total{verdict=\"valid\"}") > 0.0);
    // The first answer came from a clean address, the second after its
    // wrong answer.
    assert_eq!(app.turns_by_bucket(), (1.0, 1.0));
    assert_eq!(value("powgate_verify_waiting"), 0.0);
}

/// `powgate solve` told `queued` must send the same answer again (its
/// challenge is still good) rather than give up or start over.
#[test]
fn powgate_solve_resubmits_a_queued_answer_until_its_turn_comes() {
    let app = TestApp::spawn_with(|c| {
        c.verify_permits = Some(1);
        c.verify_queue = Some(0);
    });
    let held = take_turn(&app, 0, 0xaa, Duration::ZERO).unwrap();
    let opts = powgate::cli::SolveOptions {
        url: app.url(""),
        threads: 1,
        refresh: None,
        quiet: true,
    };
    std::thread::scope(|s| {
        let cli = s.spawn(|| powgate::cli::solve(&opts));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !app
            .metrics()
            .contains("powgate_limited_total{limit=\"verify_queue\"} 1")
        {
            assert!(std::time::Instant::now() < deadline, "never queued");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(held);
        let token = cli.join().unwrap().expect("a token after the queue");
        assert_eq!(app.verify(Some(&token), "127.0.0.1").0, 200);
    });
    assert!(
        app.metrics()
            .contains("powgate_challenges_issued_total{purpose=\"new\"} 1"),
        "the queued answer was sent again, not replaced by a new challenge"
    );
}

/// The admin page's failed solves are answers that were refused; a queued
/// answer is sent again and succeeds, so it must not count as one.
#[test]
fn a_queued_answer_is_not_counted_as_a_failed_solve() {
    const KEY: &str = "an-admin-key-for-the-queue-tests";
    let app = TestApp::spawn_with(|c| {
        c.verify_permits = Some(1);
        c.verify_queue = Some(0);
        c.admin_key = Some(KEY.into());
    });
    let ip = "198.51.100.40";
    let req = answer(&app.new_challenge(ip));
    let held = take_turn(&app, 0, 0xaa, Duration::ZERO).unwrap();
    assert_eq!(submit(&app, ip, &req).0, 503);
    drop(held);
    assert_eq!(submit(&app, ip, &req).0, 200);
    let (status, stats) = app.admin_call(KEY, "GET", "/api/admin/stats", None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["challenges"]["solved"]["hour"], 1);
    assert_eq!(stats["challenges"]["failed"]["hour"], 0);
}

/// A wrong ticket is refused before the line, but it is garbage all the
/// same: it must count against the sender's networks, so the flooder who
/// skips paying for tickets cannot keep its /48 clean for the submissions
/// it does pay for.
#[test]
fn a_wrong_ticket_counts_against_its_networks_reputation() {
    let app = TestApp::spawn();
    let flooder = "2001:db8:bad:1::1";
    let ch = app.new_challenge(flooder);
    let mut bogus = answer(&ch);
    bogus.ticket = Some(wrong_ticket(&ch));
    let (status, _, body) = submit(&app, flooder, &bogus);
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_ticket")));
    // Another /64 of the same /48, with a correct answer and ticket.
    let neighbour = "2001:db8:bad:2::1";
    assert_eq!(
        submit(&app, neighbour, &answer(&app.new_challenge(neighbour))).0,
        200
    );
    assert_eq!(
        app.turns_by_bucket(),
        (0.0, 1.0),
        "the /48 sent a wrong ticket, so its next answer is not in bucket 0"
    );
}

/// A missing ticket is what a page cached from before the ticket sends: it
/// is refused, but counts against nobody.
#[test]
fn a_missing_ticket_counts_against_nobody() {
    // With the back-off on, which a missing ticket must not start.
    let app = TestApp::spawn_with(|c| c.wrong_answer_backoff_secs = 5);
    let stale = "2001:db8:01d:1::1";
    let ch = app.new_challenge(stale);
    let mut old_page = answer(&ch);
    old_page.ticket = None;
    let (status, _, body) = submit(&app, stale, &old_page);
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_ticket")));
    // At once (no back-off) and from the same address: bucket 0.
    assert_eq!(submit(&app, stale, &answer(&ch)).0, 200);
    assert_eq!(app.turns_by_bucket(), (1.0, 0.0));
}
