//! The PostgreSQL store against a real server (scripts/postgres.sh):
//! migrations when several instances start at once, TLS, and the password
//! kept out of everything powgate prints.

mod common;

use std::process::{Command, Stdio};

use std::path::PathBuf;
use std::sync::Arc;

use common::postgres::TestDatabase;
use powgate::state::AppState;

/// A powgate instance's state on the database at `url`.
async fn instance(url: &str) -> anyhow::Result<AppState> {
    let config = common::test_config(PathBuf::from(url)).validate()?;
    AppState::new(config, Arc::new(powgate::clock::ManualClock::new())).await
}

/// Eight instances starting at once on an empty database: each one's
/// start-up succeeds, and the schema is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_on_an_empty_database_all_migrate_cleanly() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let url = db.plain_url();
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { instance(&url).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every instance starts");
    }
    let client = db.client().await;
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM powgate_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1], "each migration recorded once");
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables
             WHERE table_schema = 'public'
               AND table_name IN ('secrets', 'spent_challenges', 'tokens', 'token_ips', 'settings')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 5);
}

/// A database migrated by a newer powgate is refused, not misread.
#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_at_start() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let url = db.plain_url();
    drop(instance(&url).await.unwrap());
    db.client()
        .await
        .execute("INSERT INTO powgate_migrations VALUES (99, 0)", &[])
        .await
        .unwrap();
    let e = instance(&url).await.unwrap_err();
    assert!(format!("{e:#}").contains("newer"), "{e:#}");
}

/// Whether an instance's connections are encrypted, as the server sees them.
async fn connection_is_encrypted(db: &TestDatabase, url: &str) -> anyhow::Result<bool> {
    let _instance = instance(url).await?;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false)
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1 AND a.application_name = 'powgate'",
            &[&db.name],
        )
        .await?;
    let connections: i64 = row.get(0);
    assert!(connections > 0, "the instance holds connections");
    Ok(row.get(1))
}

#[tokio::test]
async fn verify_full_with_the_clusters_ca_connects_encrypted() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let url = db.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        db.cluster.ca
    ));
    assert!(connection_is_encrypted(&db, &url).await.unwrap());
    // The certificate names both 127.0.0.1 and localhost.
    let by_name = url.replace("@127.0.0.1:", "@localhost:");
    assert!(connection_is_encrypted(&db, &by_name).await.unwrap());
}

#[tokio::test]
async fn require_encrypts_and_disable_does_not() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    assert!(
        connection_is_encrypted(&db, &db.url("sslmode=require"))
            .await
            .unwrap()
    );
    assert!(
        !connection_is_encrypted(&db, &db.url("sslmode=disable"))
            .await
            .unwrap()
    );
}

/// verify-full against the system's roots, which never signed the test
/// cluster's certificate: an impostor server would be refused the same way.
#[tokio::test]
async fn verify_full_refuses_a_server_whose_certificate_it_cannot_trust() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let e = connection_is_encrypted(&db, &db.url("sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("certificate"), "{e:#}");
}

/// verify-full checks the host name too: the server at 127.0.0.1 (through
/// `hostaddr`), addressed as `db.example`, shows a certificate from the
/// trusted CA that does not name `db.example`.
#[tokio::test]
async fn verify_full_refuses_a_trusted_certificate_for_another_name() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let url = db.url(&format!(
        "sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
        db.cluster.ca
    ));
    let by_name = url.replace("@127.0.0.1:", "@db.example:");
    let e = connection_is_encrypted(&db, &by_name).await.unwrap_err();
    assert!(format!("{e:#}").contains("certificate"), "{e:#}");
    // The same with the name the certificate does carry connects.
    let by_right_name = url.replace("@127.0.0.1:", "@localhost:");
    assert!(connection_is_encrypted(&db, &by_right_name).await.unwrap());
}

/// Starting powgate with a real password in `POW_DATABASE`, once with a
/// wrong one too: neither appears in anything it writes.
#[tokio::test]
async fn the_database_password_never_appears_in_powgates_output() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let password = db.cluster.password().to_owned();
    let wrong = "wrong-password-0123456789";
    for url in [db.plain_url(), db.plain_url().replace(&password, wrong)] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_powgate"))
            .current_dir(dir.path())
            .env_clear()
            .env("POW_LISTEN", "127.0.0.1:0")
            .env("POW_DATABASE", &url)
            .env("RUST_LOG", "trace")
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = tokio::task::spawn_blocking(move || wait_a_little(out))
            .await
            .unwrap();
        assert!(!out.is_empty(), "powgate said nothing");
        assert!(!out.contains(&password), "{out}");
        assert!(!out.contains(wrong), "{out}");
        assert!(out.contains(&db.name), "the database is named: {out}");
    }
}

/// Everything the process writes in its first seconds (it is killed then
/// if it still runs).
fn wait_a_little(mut child: std::process::Child) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
