//! The test PostgreSQL cluster that `scripts/postgres.sh` starts (and
//! `scripts/test.sh` runs it): a fresh database for each test, dropped
//! after it.
//!
//! Without the cluster these tests cannot mean anything, so they never pass
//! quietly: they say loudly how to get one, and fail when `CI` is set.

use std::time::Duration;

/// The cluster's URL: the role `powgate` with its password, on TCP.
pub const URL_VAR: &str = "POWGATE_TEST_POSTGRES";
/// The CA that signed the cluster's server certificate.
pub const CA_VAR: &str = "POWGATE_TEST_POSTGRES_CA";

/// The cluster, or `None` after a loud skip (a panic in CI).
pub fn cluster() -> Option<Cluster> {
    match (std::env::var(URL_VAR), std::env::var(CA_VAR)) {
        (Ok(url), Ok(ca)) => Some(Cluster { url, ca }),
        _ => {
            let why = format!(
                "{URL_VAR} is not set: this PostgreSQL test did not run. \
                 Start the test cluster with `eval \"$(scripts/postgres.sh)\"` \
                 (or run scripts/test.sh, which does)"
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("\n!!!!! SKIPPED: {why}\n");
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    /// `postgres://powgate:<password>@127.0.0.1:<port>/postgres`
    pub url: String,
    /// The CA file's path.
    pub ca: String,
}

impl Cluster {
    /// The password the cluster's role logs in with.
    pub fn password(&self) -> &str {
        let userinfo = self.url.split('@').next().unwrap();
        userinfo.rsplit(':').next().unwrap()
    }

    /// The URL of database `name` on the cluster, with `query` appended.
    pub fn url_of(&self, name: &str, query: &str) -> String {
        let base = self.url.rsplit_once('/').unwrap().0;
        format!("{base}/{name}?{query}")
    }

    /// Runs `sql` on the cluster's `postgres` database.
    pub async fn execute(&self, sql: &str) {
        let (client, conn) = tokio_postgres::connect(
            &format!("{}?sslmode=disable", self.url),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the test cluster");
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.expect(sql);
        drop(client);
        let _ = task.await;
    }
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub cluster: Cluster,
    pub name: String,
}

impl TestDatabase {
    /// A new, empty database, or `None` after a loud skip.
    pub async fn create() -> Option<Self> {
        let cluster = cluster()?;
        let name = format!("powgate_test_{}", uuid::Uuid::new_v4().simple());
        cluster.execute(&format!("CREATE DATABASE {name}")).await;
        Some(Self { cluster, name })
    }

    /// Its URL, password included, with libpq parameters `query`.
    pub fn url(&self, query: &str) -> String {
        self.cluster.url_of(&self.name, query)
    }

    /// Its URL without TLS: most tests are not about TLS.
    pub fn plain_url(&self) -> String {
        self.url("sslmode=disable")
    }

    /// A plain client, for a test to look at what powgate wrote.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.plain_url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // On a thread of its own: Drop may run inside or outside a runtime.
        let cluster = self.cluster.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), cluster.execute(&sql)).await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// The same from a test without a runtime (the `TestApp` tests).
impl TestDatabase {
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    pub fn create_blocking() -> Option<Self> {
        Self::block_on(Self::create())
    }

    /// One number from the database, on a connection of the test's own.
    pub fn number(&self, sql: &str) -> i64 {
        Self::block_on(async {
            self.client()
                .await
                .query_one(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get(0)
        })
    }

    /// Runs statements on the database, on a connection of the test's own.
    pub fn execute_blocking(&self, sql: &str) {
        Self::block_on(async {
            self.client()
                .await
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    }
}

/// A TCP relay between powgate and the test cluster that the test can cut
/// and restore: to powgate, PostgreSQL then goes away (every connection
/// drops, new ones are refused) and comes back on the same address, as a
/// restarted or partitioned server does, without stopping the cluster the
/// other tests share.
pub struct Relay {
    pub port: u16,
    target: String,
    running: Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<Vec<std::net::TcpStream>>,
    )>,
}

impl Relay {
    /// A relay to the cluster's TCP address.
    pub fn to(cluster: &Cluster) -> Self {
        let target = cluster
            .url
            .split('@')
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Self {
            port,
            target,
            running: None,
        };
        relay.serve(listener);
        relay
    }

    /// `url` (a URL on the cluster) through the relay.
    pub fn url(&self, url: &str) -> String {
        url.replace(&self.target, &format!("127.0.0.1:{}", self.port))
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        use std::sync::atomic::Ordering;
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, target) = (stop.clone(), self.target.clone());
        let thread = std::thread::spawn(move || {
            let mut open = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                open.extend([client, server]);
            }
            open
        });
        self.running = Some((stop, thread));
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&mut self) {
        let (stop, thread) = self.running.take().expect("the relay runs");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in thread.join().unwrap() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Accepts connections again, on the same port.
    pub fn restore(&mut self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.serve(listener);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.running.is_some() {
            self.cut();
        }
    }
}

/// A PostgreSQL cluster of the test's own, for a test that stops or
/// restarts the server: on the shared cluster that would break every other
/// test running at the time. `scripts/postgres.sh` starts it (a few
/// seconds: initdb, TLS keys) with a state file of its own, and stops it and
/// deletes its files when this is dropped.
pub struct PrivateCluster {
    pub cluster: Cluster,
    /// Holds the state file that names the cluster to the script.
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// A new cluster, or `None` after a loud skip where the shared one is
    /// missing too (PostgreSQL is not set up here; a panic in CI).
    pub fn start() -> Option<Self> {
        cluster()?;
        let dir = tempfile::tempdir().unwrap();
        let out = Self::script(dir.path()).arg("start").output().unwrap();
        assert!(
            out.status.success(),
            "scripts/postgres.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let exports = String::from_utf8(out.stdout).unwrap();
        let exported = |var: &str| {
            exports
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {var}=")))
                .unwrap_or_else(|| panic!("{var} not in {exports}"))
                .to_owned()
        };
        let cluster = Cluster {
            url: exported(URL_VAR),
            ca: exported(CA_VAR),
        };
        Some(Self { cluster, dir })
    }

    fn script(dir: &std::path::Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/postgres.sh"
        ));
        cmd.env("POWGATE_TEST_POSTGRES_STATE", dir.join("cluster.env"));
        cmd
    }

    /// Runs `pg_ctl args` on the cluster as the server's owner, waiting
    /// for it to finish (`restart -m fast`, `stop -m fast`, `start`).
    pub fn pg_ctl(&self, args: &[&str]) {
        let out = Self::script(self.dir.path())
            .arg("pg_ctl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new database on it, owned by the test's role, and its URL without
    /// TLS.
    pub fn database(&self, name: &str) -> String {
        TestDatabase::block_on(self.cluster.execute(&format!("CREATE DATABASE {name}")));
        self.cluster.url_of(name, "sslmode=disable")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let stopped = Self::script(self.dir.path()).arg("stop").status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("could not stop the private PostgreSQL cluster: {stopped:?}");
        }
    }
}
