//! The challenge page and the no-JavaScript result pages in the visitor's
//! language, through the real router: chosen from `?lang=` or
//! `Accept-Language`, and never broken by a hostile header.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestApp;

const IP: &str = "198.51.100.70";

/// `GET path` with `accept_language` (raw bytes, so that a test can send
/// what no HTTP client would): status, headers and body.
fn page(app: &TestApp, path: &str, accept_language: Option<&[u8]>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(
        app.url("/")
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: shop.example\r\nX-Real-IP: {IP}\r\nConnection: close\r\n"
    )
    .into_bytes();
    if let Some(value) = accept_language {
        request.extend_from_slice(b"Accept-Language: ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn html_lang(body: &str) -> &str {
    body.split("<html lang=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
}

#[test]
fn the_page_speaks_the_language_the_browser_asks_for() {
    let app = TestApp::spawn();
    let (status, head, body) = page(&app, "/", Some(b"de-AT,de;q=0.9,en;q=0.5"));
    assert_eq!(status, 200);
    assert_eq!(html_lang(&body), "de");
    assert!(head.contains("vary: accept-language"), "{head}");
    assert!(body.contains("<h1 id=\"title\" tabindex=\"-1\">Ihr Browser wird geprüft</h1>"));
    // The no-JavaScript form in German, with this site's real address.
    assert!(body.contains("Die Berechnung braucht JavaScript"));
    assert!(body.contains("<code>powgate solve http://shop.example/</code>"));

    let (_, _, body) = page(&app, "/index.html?lang=ja", Some(b"de"));
    assert_eq!(html_lang(&body), "ja", "?lang= wins");
    assert!(body.contains("<input type=\"hidden\" name=\"lang\" value=\"ja\">"));

    let (_, _, body) = page(&app, "/", Some(b"zh-SG, en;q=0.1"));
    assert_eq!(html_lang(&body), "zh-CN");
    let (_, _, body) = page(&app, "/", None);
    assert_eq!(html_lang(&body), "en");
}

/// An attacker's headers: huge, not UTF-8, full of separators, NaN q-values.
/// Each gets the English page, at once, never an error.
#[test]
fn hostile_accept_language_headers_get_the_english_page_quickly() {
    let app = TestApp::spawn();
    let huge = format!("de,{}", "x-abcdefgh;q=0.5,".repeat(400));
    let separators = ",;".repeat(3000);
    let many = "de;q=NaN,".repeat(700);
    let hostile: [&[u8]; 5] = [
        huge.as_bytes(),
        b"\xff\xfe\xc3\x28 de",
        separators.as_bytes(),
        many.as_bytes(),
        b"*;q=1, ;q=, q=0.5",
    ];
    for value in hostile {
        let started = Instant::now();
        let (status, _, body) = page(&app, "/", Some(value));
        assert_eq!(
            status,
            200,
            "{:?}",
            String::from_utf8_lossy(&value[..value.len().min(40)])
        );
        assert_eq!(html_lang(&body), "en");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // A `lang` that is markup is neither used nor reflected as markup.
    let (status, _, body) = page(&app, "/?lang=%22%3E%3Cscript%3Ex%3C/script%3E", Some(b"it"));
    assert_eq!(status, 200);
    assert_eq!(html_lang(&body), "it");
    assert!(!body.contains("<script>x"));
}

#[test]
fn the_token_form_answers_in_the_language_of_its_page() {
    let app = TestApp::spawn();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let paste = |agent: &ureq::Agent, form: &[(&str, &str)], accept_language: &str| {
        let mut r = agent
            .post(&app.url("/api/token"))
            .header("X-Real-IP", IP)
            .header("Accept-Language", accept_language)
            .send_form(form.iter().copied())
            .unwrap();
        let vary = r
            .headers()
            .get("vary")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            r.status().as_u16(),
            vary,
            r.body_mut().read_to_string().unwrap(),
        )
    };

    let (status, vary, body) = paste(
        &agent,
        &[("token", "not-a-token"), ("redir", "/docs")],
        "pl",
    );
    assert_eq!(status, 401);
    assert_eq!(vary, "Accept-Language");
    assert_eq!(html_lang(&body), "pl");
    assert!(body.contains("<h1>Ten token nie zadziałał</h1>"), "{body}");
    assert!(body.contains("href=\"../?redir=%2Fdocs\""));

    // The page's ?lang=, kept by the form, wins over the browser's language
    // and is kept on the way back.
    let (_, _, body) = paste(
        &agent,
        &[("token", "not-a-token"), ("redir", ""), ("lang", "fr")],
        "pl",
    );
    assert_eq!(html_lang(&body), "fr");
    assert!(body.contains("href=\"../?lang=fr\""));

    let token = app.obtain_token(IP);
    let (status, _, body) = paste(
        &agent,
        &[("token", token.as_str()), ("redir", "")],
        "uk-UA,uk;q=0.9",
    );
    assert_eq!(status, 200);
    assert_eq!(html_lang(&body), "uk");
    assert!(body.contains("<h1>Можна продовжити</h1>"), "{body}");
}
