//! `/verify-token` as reverse proxies call it: original URI and method in
//! forwarded headers, redirects for browsers, JSON for everything else, and
//! the allowlist.

mod common;

use common::TestApp;

fn ask(
    app: &TestApp,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Option<String>, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut req = agent.get(&app.url("/verify-token"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.call().unwrap();
    let get = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (location, x_location) = (get("location"), get("x-powgate-location"));
    (
        r.status().as_u16(),
        location,
        x_location,
        r.body_mut().read_json().unwrap(),
    )
}

const HTML: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

#[test]
fn caddy_style_browser_navigation_is_redirected_with_the_original_url() {
    let app = TestApp::spawn();
    let (status, location, _, body) = ask(
        &app,
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/docs/a?b=1&c=2"),
            ("X-Forwarded-Host", "app.example"),
            ("X-Forwarded-Proto", "https"),
            ("Accept", HTML),
        ],
    );
    assert_eq!(status, 302, "{body}");
    assert_eq!(
        location.as_deref(),
        Some("/?redir=https%3A%2F%2Fapp.example%2Fdocs%2Fa%3Fb%3D1%26c%3D2")
    );
    assert_eq!(body["status"], "missing");
}

#[test]
fn nginx_style_gets_401_with_the_location_in_a_header() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://site.example/.powgate".into()));
    let (status, location, x_location, _) = ask(
        &app,
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/page"),
            ("Host", "site.example"),
            ("X-Forwarded-Proto", "https"),
            ("Accept", HTML),
        ],
    );
    assert_eq!(status, 401);
    assert_eq!(location, None);
    assert_eq!(
        x_location.as_deref(),
        Some("https://site.example/.powgate/?redir=https%3A%2F%2Fsite.example%2Fpage")
    );
}

#[test]
fn api_and_non_get_requests_get_401_json_saying_where_to_get_a_token() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://site.example/.powgate".into()));
    for headers in [
        vec![
            ("X-Forwarded-Method", "POST"),
            ("X-Forwarded-Uri", "/form"),
            ("Accept", HTML),
        ],
        vec![
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/api/x"),
            ("Accept", "application/json"),
        ],
        vec![
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/api/x"),
            ("Accept", HTML),
            ("X-Requested-With", "XMLHttpRequest"),
        ],
    ] {
        let (status, location, x_location, body) = ask(&app, &headers);
        assert_eq!(
            (status, location, x_location),
            (401, None, None),
            "{headers:?}"
        );
        assert_eq!(body["challenge_url"], "https://site.example/.powgate/");
        assert!(
            body["message"].as_str().unwrap().contains("powgate solve"),
            "{body}"
        );
    }
}

#[test]
fn a_valid_token_passes_whatever_the_request() {
    let app = TestApp::spawn();
    let token = app.obtain_token("127.0.0.1");
    let auth = format!("Bearer {token}");
    let (status, _, _, body) = ask(
        &app,
        &[
            ("Authorization", &auth),
            ("X-Forwarded-Method", "POST"),
            ("Accept", HTML),
        ],
    );
    assert_eq!((status, body["status"].as_str()), (200, Some("valid")));
}

#[test]
fn allowlisted_paths_pass_only_when_a_trusted_proxy_says_so() {
    let app = TestApp::spawn();
    let (status, _, _, body) = ask(
        &app,
        &[("X-Forwarded-Uri", "/.well-known/acme-challenge/abc")],
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("allowlisted"))
    );
    let (status, _, _, _) = ask(&app, &[("X-Original-URI", "/robots.txt")]);
    assert_eq!(status, 200);
    let (status, _, _, _) = ask(&app, &[("X-Forwarded-Uri", "/.well-known/../secret")]);
    assert_eq!(status, 401);
    let metrics = app.metrics();
    assert!(
        metrics.contains("powgate_allowlist_matches_total{rule=\"well-known\"} 1"),
        "{metrics}"
    );

    let untrusted =
        TestApp::spawn_with(|c| c.trusted_proxies = powgate::config::StringList::List(vec![]));
    let (status, _, _, _) = ask(
        &untrusted,
        &[("X-Forwarded-Uri", "/.well-known/acme-challenge/abc")],
    );
    assert_eq!(status, 401, "a client cannot claim an allowlisted path");
}

#[test]
fn user_agent_and_cidr_rules() {
    let app = TestApp::spawn_with(|c| {
        c.allowlist = vec![
            powgate::allowlist::RawRule {
                name: "git".into(),
                cidr: None,
                user_agent: Some("^git/".into()),
                path: None,
                path_prefix: None,
            },
            powgate::allowlist::RawRule {
                name: "office".into(),
                cidr: Some("10.0.0.0/8".into()),
                user_agent: None,
                path: None,
                path_prefix: None,
            },
        ];
    });
    assert_eq!(ask(&app, &[("User-Agent", "git/2.43.0")]).0, 200);
    assert_eq!(ask(&app, &[("User-Agent", "curl/8")]).0, 401);
    assert_eq!(ask(&app, &[("X-Real-IP", "10.9.8.7")]).0, 200);
    assert_eq!(ask(&app, &[("X-Real-IP", "11.9.8.7")]).0, 401);
    assert_eq!(
        ask(&app, &[("X-Forwarded-Uri", "/robots.txt")]).0,
        401,
        "configured rules replace the defaults"
    );
}

/// Sites behind HTTP Basic, or with their own Bearer tokens, could not be
/// protected: any `Authorization` header voided a valid `powgate_token`
/// cookie, and `/verify-token` answered 401. Only a credential shaped like
/// a powgate token speaks for powgate; one that is shaped so but invalid is
/// still refused as malformed, cookie or not.
#[test]
fn basic_auth_or_a_foreign_bearer_does_not_void_a_valid_token_cookie() {
    let app = TestApp::spawn();
    let ip = "198.51.100.20";
    let token = app.obtain_token(ip);
    let cookie = format!("powgate_token={token}");
    let jwt = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    for authorization in ["Basic dXNlcjpwYXNzd29yZA==", jwt, "Bearer app-api-key-123"] {
        let (status, _, _, body) = ask(
            &app,
            &[
                ("X-Real-IP", ip),
                ("Authorization", authorization),
                ("Cookie", &cookie),
            ],
        );
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("valid")),
            "{authorization}"
        );
        // Without the cookie, the request simply has no powgate token.
        let (status, _, _, body) =
            ask(&app, &[("X-Real-IP", ip), ("Authorization", authorization)]);
        assert_eq!(
            (status, body["status"].as_str()),
            (401, Some("missing")),
            "{authorization}"
        );
    }

    // A token-shaped Bearer that is not a valid powgate token is judged on
    // its own (malformed, unknown), but it may be the application's own
    // UUID credential, so a valid cookie beside it still passes.
    let malformed = "Bearer zzzzzzzz-0e5c-4f7e-9d2a-111111111111";
    let app_uuid = "Bearer 3f2b8c1e-0e5c-4f7e-9d2a-111111111111";
    for (authorization, alone) in [(malformed, "malformed"), (app_uuid, "unknown")] {
        let (status, _, _, body) =
            ask(&app, &[("X-Real-IP", ip), ("Authorization", authorization)]);
        assert_eq!(
            (status, body["status"].as_str()),
            (401, Some(alone)),
            "{authorization}"
        );
        let (status, _, _, body) = ask(
            &app,
            &[
                ("X-Real-IP", ip),
                ("Authorization", authorization),
                ("Cookie", &cookie),
            ],
        );
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("valid")),
            "{authorization} beside a valid cookie"
        );
    }
}
