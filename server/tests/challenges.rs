//! Live settings and challenge acceptance (issue 12): concurrent admin
//! changes.

mod common;

use common::TestApp;

const KEY: &str = "test-admin-key-0123456789";

fn app() -> TestApp {
    TestApp::spawn_with(|c| c.admin_key = Some(KEY.into()))
}

fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let agent = app.agent();
    let url = app.url(path);
    let auth = format!("Bearer {KEY}");
    let mut resp = match (method, body) {
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        ("PATCH", Some(b)) => agent
            .patch(&url)
            .header("Authorization", &auth)
            .send_json(b),
        other => panic!("{other:?}"),
    }
    .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap())
}

// ---------------------------------------------------------------------------
// Item 2: concurrent PATCHes, item 4: negative difficulty.

#[test]
fn concurrent_patches_of_different_fields_all_survive() {
    let app = app();
    let fields = [
        "difficulty",
        "challenge_timeout",
        "token_hours",
        "token_max_ips",
        "max_tokens_per_ip",
    ];
    let mut last = 0;
    for round in 0..20 {
        let value = 10 + round;
        std::thread::scope(|s| {
            for field in fields {
                let app = &app;
                s.spawn(move || {
                    let (status, body) = admin(
                        app,
                        "PATCH",
                        "/api/admin/settings",
                        Some(serde_json::json!({ field: value })),
                    );
                    assert_eq!(status, 200, "{body}");
                });
            }
        });
        let (_, view) = admin(&app, "GET", "/api/admin/settings", None);
        for field in fields {
            assert_eq!(
                view["settings"][field], value,
                "round {round}: {field} lost"
            );
        }
        last = value;
    }
    let app = app.restart();
    let (_, view) = admin(&app, "GET", "/api/admin/settings", None);
    for field in fields {
        assert_eq!(view["settings"][field], last, "{field} after a restart");
    }
}

#[test]
fn patch_with_a_negative_difficulty_reports_what_was_sent() {
    let app = app();
    let (status, body) = admin(
        &app,
        "PATCH",
        "/api/admin/settings",
        Some(serde_json::json!({ "difficulty": -7 })),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("-7 is out of range"), "{message}");
}
