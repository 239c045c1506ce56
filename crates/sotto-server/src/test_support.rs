//! Helpers shared by the crate's unit tests.

use crate::store::Stores;

pub(crate) use crate::testing::PgTestDb;

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub(crate) async fn sqlite_stores() -> (tempfile::TempDir, Stores) {
    let dir = tempfile::tempdir().expect("temp dir");
    let stores = Stores::open_sqlite(dir.path()).await.expect("open sqlite");
    (dir, stores)
}
