//! Migrations compiled into the binary, one list per backend, so an installed `sotto`
//! needs no files beside it.

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;

/// (version, description, SQL) in order.
type Embedded = &'static [(i64, &'static str, &'static str)];

pub(super) const SQLITE: Embedded = &[
    (
        1,
        "accounts",
        include_str!("../../migrations/sqlite/0001_accounts.sql"),
    ),
    (
        2,
        "rooms",
        include_str!("../../migrations/sqlite/0002_rooms.sql"),
    ),
    (
        3,
        "files",
        include_str!("../../migrations/sqlite/0003_files.sql"),
    ),
    (
        4,
        "events",
        include_str!("../../migrations/sqlite/0004_events.sql"),
    ),
    (
        5,
        "search",
        include_str!("../../migrations/sqlite/0005_search.sql"),
    ),
    (
        6,
        "keys",
        include_str!("../../migrations/sqlite/0006_keys.sql"),
    ),
    (
        8,
        "room e2ee",
        include_str!("../../migrations/sqlite/0008_room_e2ee.sql"),
    ),
    (
        9,
        "read markers",
        include_str!("../../migrations/sqlite/0009_read_markers.sql"),
    ),
    (
        10,
        "forced members",
        include_str!("../../migrations/sqlite/0010_forced_members.sql"),
    ),
];

pub(super) const POSTGRES: Embedded = &[
    (
        1,
        "accounts",
        include_str!("../../migrations/postgres/0001_accounts.sql"),
    ),
    (
        2,
        "rooms",
        include_str!("../../migrations/postgres/0002_rooms.sql"),
    ),
    (
        3,
        "files",
        include_str!("../../migrations/postgres/0003_files.sql"),
    ),
    (
        4,
        "events",
        include_str!("../../migrations/postgres/0004_events.sql"),
    ),
    (
        5,
        "search",
        include_str!("../../migrations/postgres/0005_search.sql"),
    ),
    (
        6,
        "keys",
        include_str!("../../migrations/postgres/0006_keys.sql"),
    ),
    (
        8,
        "room e2ee",
        include_str!("../../migrations/postgres/0008_room_e2ee.sql"),
    ),
    (
        9,
        "read markers",
        include_str!("../../migrations/postgres/0009_read_markers.sql"),
    ),
    (
        10,
        "forced members",
        include_str!("../../migrations/postgres/0010_forced_members.sql"),
    ),
];

#[derive(Debug)]
struct Source(Embedded);

impl MigrationSource<'static> for Source {
    fn resolve(
        self,
    ) -> futures_core_compat::BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator for one backend's list.
pub(super) async fn migrator(list: Embedded) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Source(list)).await
}

mod futures_core_compat {
    pub(crate) type BoxFuture<'a, T> =
        std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}
