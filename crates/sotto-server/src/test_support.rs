//! Helpers shared by the crate's unit tests.

use crate::store::Stores;
use sqlx::Connection;

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub(crate) async fn sqlite_stores() -> (tempfile::TempDir, Stores) {
    let dir = tempfile::tempdir().expect("temp dir");
    let stores = Stores::open_sqlite(dir.path()).await.expect("open sqlite");
    (dir, stores)
}

/// A throwaway PostgreSQL database, created on the server named by
/// `SOTTO_TEST_DATABASE_URL` and dropped by [`PgTestDb::drop`].
pub(crate) struct PgTestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl PgTestDb {
    /// Creates the database. Without `SOTTO_TEST_DATABASE_URL` this returns `None` on a
    /// developer machine (with a note) but fails under CI, so a green CI run has always
    /// exercised PostgreSQL.
    pub(crate) async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("SOTTO_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "SOTTO_TEST_DATABASE_URL is not set; CI must test PostgreSQL (scripts/test sets it)"
            );
            eprintln!("note: SOTTO_TEST_DATABASE_URL unset; PostgreSQL backend not tested");
            return None;
        };
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot connect to PostgreSQL at SOTTO_TEST_DATABASE_URL: {e}")
            });
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).expect("random");
        let name = format!(
            "sotto_test_{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create db");
        conn.close().await.ok();
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// URL of the fresh database.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database (closing any connection still open to it).
    pub(crate) async fn drop(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect");
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await
            .expect("drop db");
        conn.close().await.ok();
    }
}

/// `url` with its database path replaced by `name`, keeping any `?query`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..path_start])
}

#[test]
fn database_is_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u@h:1/test", "x"),
        "postgres://u@h:1/x"
    );
    assert_eq!(
        with_database("postgres://u@h/test?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}
