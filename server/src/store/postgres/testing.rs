//! A fresh database on the test cluster (`scripts/postgres.sh`, started by
//! `scripts/test.sh`) for each unit test of this backend, dropped after.
//! Without the cluster a test says so loudly and passes, except under CI,
//! where it fails: a PostgreSQL test that did not run must not look green.
//! (The integration tests have the same helper in `tests/common/postgres.rs`.)

use std::sync::Arc;

use super::{PostgresStore, PostgresUrl};
use crate::store::Store;

/// Drops its database when dropped.
#[derive(Debug)]
pub(crate) struct TestDatabase {
    admin_url: String,
    pub(crate) name: String,
}

/// The cluster's URL, or `None` after a loud skip (a panic under CI).
pub(crate) fn cluster_url() -> Option<String> {
    if let Ok(url) = std::env::var("POWGATE_TEST_POSTGRES") {
        return Some(url);
    }
    let why = "POWGATE_TEST_POSTGRES is not set: this PostgreSQL test did not run. \
               Start the test cluster with `eval \"$(scripts/postgres.sh)\"` \
               (or run scripts/test.sh, which does)";
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("\n!!!!! SKIPPED: {why}\n");
    None
}

async fn execute(admin_url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(
        &format!("{admin_url}?sslmode=disable"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect to the test cluster");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

impl TestDatabase {
    pub(crate) async fn create() -> Option<Self> {
        let admin_url = cluster_url()?;
        let name = format!("powgate_test_{}", uuid::Uuid::new_v4().simple());
        execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
        Some(Self { admin_url, name })
    }

    pub(crate) fn url(&self) -> PostgresUrl {
        let base = self.admin_url.rsplit_once('/').unwrap().0;
        PostgresUrl::parse(&format!("{base}/{}?sslmode=disable", self.name)).unwrap()
    }

    pub(crate) async fn store(&self) -> PostgresStore {
        PostgresStore::open(&self.url(), 8).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // A thread of its own: drop may run inside a runtime or outside one.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(execute(&admin_url, &sql));
        })
        .join();
    }
}

/// The conformance suite's factory.
pub(crate) async fn fresh_store() -> Option<(TestDatabase, Arc<dyn Store>)> {
    let db = TestDatabase::create().await?;
    let store = db.store().await;
    Some((db, Arc::new(store)))
}
