//! Fresh databases for tests: a SQLite file in a temporary folder, or a new PostgreSQL or
//! MariaDB database dropped afterwards.
//!
//! PostgreSQL is found at `CUTOVER_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! MariaDB at `CUTOVER_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306/mysql`). When one cannot
//! be reached, tests skip with a printed reason, except under CI (`CI` set), where a missing
//! server is a failure: CI must test every backend.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

/// The server URL used to create and drop test databases.
pub fn pg_admin_url() -> String {
    std::env::var("CUTOVER_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), nanos)
}

/// The MariaDB server URL used to create and drop test databases.
pub fn mysql_admin_url() -> String {
    std::env::var("CUTOVER_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into())
}

/// `admin`'s URL with another database name.
fn with_database(admin: &str, name: &str) -> String {
    match admin.rfind('/') {
        Some(i) if admin[..i].ends_with(|c: char| c != '/') => format!("{}/{name}", &admin[..i]),
        _ => format!("{admin}/{name}"),
    }
}

/// Whether tests run under CI, where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A database that exists for the life of the value.
#[derive(Debug)]
pub struct TestDb {
    /// URL to connect to it.
    pub url: String,
    /// For SQLite, the folder holding the file.
    pub dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
    mysql_name: Option<String>,
}

impl TestDb {
    /// A new SQLite file.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = dir.path().join("cutover.db").display().to_string();
        TestDb { url, dir: Some(dir), pg_name: None, mysql_name: None }
    }

    /// A new PostgreSQL database, or `None` (with the reason printed) when PostgreSQL is not
    /// reachable outside CI. Under CI an unreachable PostgreSQL panics.
    pub fn postgres() -> Option<TestDb> {
        let admin = pg_admin_url();
        let name = unique_name("cutover_t");
        let (a, n) = (admin.clone(), name.clone());
        let created = block_on(async move {
            let mut c = sqlx::PgConnection::connect(&a).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {n}"))).execute(&mut c).await?;
            c.close().await
        });
        match created {
            Ok(()) => {
                Some(TestDb { url: with_database(&admin, &name), dir: None, pg_name: Some(name), mysql_name: None })
            }
            Err(e) if in_ci() => panic!("PostgreSQL at {admin} is required under CI: {e}"),
            Err(e) => {
                eprintln!("skipping PostgreSQL test: cannot reach {admin}: {e}");
                None
            }
        }
    }

    /// A new MariaDB (or MySQL) database, or `None` (with the reason printed) when the server is
    /// not reachable outside CI. Under CI an unreachable server panics.
    pub fn mysql() -> Option<TestDb> {
        let admin = mysql_admin_url();
        let name = unique_name("cutover_t");
        let (a, n) = (admin.clone(), name.clone());
        let created = block_on(async move {
            let mut c = sqlx::MySqlConnection::connect(&a).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {n} CHARACTER SET utf8mb4")))
                .execute(&mut c)
                .await?;
            c.close().await
        });
        match created {
            Ok(()) => {
                Some(TestDb { url: with_database(&admin, &name), dir: None, pg_name: None, mysql_name: Some(name) })
            }
            Err(e) if in_ci() => panic!("MariaDB at {admin} is required under CI: {e}"),
            Err(e) => {
                eprintln!("skipping MariaDB test: cannot reach {admin}: {e}");
                None
            }
        }
    }

    /// Both backends: SQLite always, PostgreSQL when reachable.
    pub fn all() -> Vec<TestDb> {
        let mut v = vec![TestDb::sqlite()];
        v.extend(TestDb::postgres());
        v
    }

    /// `sqlite`, `postgres` or `mysql`, for messages.
    pub fn backend(&self) -> &'static str {
        match (&self.pg_name, &self.mysql_name) {
            (Some(_), _) => "postgres",
            (_, Some(_)) => "mysql",
            _ => "sqlite",
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = pg_admin_url();
            let _ = block_on(async move {
                let mut c = sqlx::PgConnection::connect(&admin).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut c)
                    .await?;
                c.close().await
            });
        }
        if let Some(name) = self.mysql_name.take() {
            let admin = mysql_admin_url();
            let _ = block_on(async move {
                let mut c = sqlx::MySqlConnection::connect(&admin).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&mut c).await?;
                c.close().await
            });
        }
    }
}

/// Runs a future to completion on a fresh runtime in its own thread, so it works from sync and async tests alike.
pub fn block_on<F, T>(f: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
    })
    .join()
    .expect("test database thread")
}

/// Runs SQL on a database of a test, a SQLite file path, a PostgreSQL or a MariaDB URL. On a
/// server the statements (separated by `;`) run one after the other on one connection.
pub fn exec(url: &str, sql: &str) -> Result<u64, String> {
    if url.starts_with("postgres") || url.starts_with("mysql") {
        // On a thread of its own, so that async tests can call it too.
        let (url, sql) = (url.to_owned(), sql.to_owned());
        std::thread::spawn(move || Session::open(&url)?.exec(&sql)).join().expect("test database thread")
    } else {
        let c = rusqlite::Connection::open(url).map_err(|e| e.to_string())?;
        c.execute_batch(sql).map_err(|e| e.to_string())?;
        Ok(c.changes())
    }
}

/// A connection to a PostgreSQL or MariaDB test database kept open between statements: a
/// transaction left in progress while the test does other work, then committed.
#[derive(Debug)]
pub struct Session {
    rt: tokio::runtime::Runtime,
    conn: Option<sqlx::AnyConnection>,
}

impl Session {
    /// Connects to the server database at `url`.
    pub fn open(url: &str) -> Result<Self, String> {
        sqlx::any::install_default_drivers();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let conn = rt.block_on(sqlx::AnyConnection::connect(url)).map_err(|e| e.to_string())?;
        Ok(Self { rt, conn: Some(conn) })
    }

    /// Runs the statements of `sql` (separated by `;`) on this connection, and returns the rows
    /// they changed.
    pub fn exec(&mut self, sql: &str) -> Result<u64, String> {
        let conn = self.conn.as_mut().ok_or("the session is closed")?;
        let mut n = 0;
        for stmt in sql.split(';').filter(|s| !s.trim().is_empty()) {
            let done = self.rt.block_on(sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.to_owned())).execute(&mut *conn));
            n += done.map_err(|e| e.to_string())?.rows_affected();
        }
        Ok(n)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.rt.block_on(conn.close());
        }
    }
}

/// SQL that types a contact into an Omikai v2 by hand, as a customer does in the parallel
/// phase: id `id`, legacy reference `legacy_ref`, named `first` `last`, under the customer
/// whose legacy reference is `customer_ref`.
pub fn typed_in_contact(
    url: &str,
    id: &str,
    legacy_ref: &str,
    (first, last): (&str, &str),
    customer_ref: &str,
) -> String {
    let primary = if url.starts_with("postgres") { "false" } else { "0" };
    format!(
        "INSERT INTO contact (id, account_id, legacy_ref, customer_id, first_name, last_name, email, phone, is_primary) \
         SELECT '{id}', account_id, '{legacy_ref}', id, '{first}', '{last}', NULL, NULL, {primary} FROM customer \
         WHERE legacy_ref = '{customer_ref}'"
    )
}
