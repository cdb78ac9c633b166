//! The SQLite adapter of the store port.
//!
//! One connection behind a mutex, used from the blocking pool: SQLite serialises writers
//! anyway, and uniqueness rules are table constraints, so racing writers get `Conflict`.

use std::path::Path;

use crate::db::{Db, DbError};
use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use uuid::Uuid;
use wa_core::apps::App;
use wa_core::store::{AppStore, AppUpdate, Page, PageRequest, StoreError};
use wa_core::time;

/// Schema migrations, applied in order; `user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE apps (
    app_id         TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    name           TEXT NOT NULL,
    webhook_url    TEXT,
    token_hash     TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CONSTRAINT app_name UNIQUE (tenant_id, name),
    CONSTRAINT token_hash UNIQUE (token_hash)
);
"#,
    r#"
CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    device_name   TEXT NOT NULL,
    status        TEXT NOT NULL,
    qr            TEXT,
    pair_code     TEXT,
    wa_number     TEXT,
    wa_device_jid TEXT,
    linked_at     TEXT,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- Names are unique among live devices only: a destroyed device's name may be reused.
CREATE UNIQUE INDEX device_live_name ON devices (app_id, device_name) WHERE status != 'destroyed';
CREATE INDEX devices_by_app ON devices (app_id, device_id);
CREATE INDEX devices_by_status ON devices (status, device_id);
CREATE TABLE presence (
    device_id TEXT NOT NULL,
    jid       TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (device_id, jid)
);
"#,
    r#"
-- One row per message, both directions; `body` is the whole record as JSON.
CREATE TABLE messages (
    device_id  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (device_id, message_id)
);
CREATE INDEX messages_recent ON messages (device_id, created_ms DESC, message_id DESC);
CREATE INDEX messages_pending ON messages (status) WHERE status IN ('queued', 'sending');
CREATE TABLE outbound_media (
    device_id  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    bytes      BLOB NOT NULL,
    PRIMARY KEY (device_id, message_id)
);
CREATE TABLE idempotency (
    app_id          TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    response_status INTEGER,
    response_body   TEXT,
    expires_ms      INTEGER NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE INDEX idempotency_expiry ON idempotency (expires_ms);
"#,
    r#"
-- The event outbox: each event with the state of its webhook delivery.
CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      TEXT NOT NULL UNIQUE,
    app_id          TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX deliveries_pending ON deliveries (device_id, seq) WHERE status = 'pending';
CREATE INDEX deliveries_by_app ON deliveries (app_id, status, seq);
"#,
];

/// State in one SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        StoreError::Backend(e.0)
    }
}

/// Brings the schema up to date.
fn migrate(conn: &mut Connection) -> Result<(), String> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version as usize > MIGRATIONS.len() {
        return Err(format!(
            "database schema version {version} is newer than this build ({})",
            MIGRATIONS.len()
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql).map_err(|e| e.to_string())?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(SqliteStore {
            db: Db::open(path, migrate).map_err(StoreError::Backend)?,
        })
    }

    /// A private database in a temporary directory, removed with the store (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(SqliteStore {
            db: Db::temporary(migrate).map_err(StoreError::Backend)?,
        })
    }

    /// The database, for other tables that should share its commits (the local queue).
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    /// A write, committed with the other writes waiting at the same moment.
    pub(crate) async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.db.write(f).await
    }

    /// A read on this thread's connection.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.read(f)
    }
}

/// Milliseconds since the Unix epoch, the form times take in sortable columns.
pub(crate) fn ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(v: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(v as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Maps a constraint violation to `Conflict` naming the constraint; everything else to Backend.
pub(crate) fn write_error(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, Some(msg)) = &e
        && f.code == ErrorCode::ConstraintViolation
    {
        if msg.contains("apps.tenant_id, apps.name") {
            return StoreError::Conflict("app_name");
        }
        if msg.contains("apps.token_hash") {
            return StoreError::Conflict("token_hash");
        }
        if msg.contains("devices.app_id, devices.device_name") {
            return StoreError::Conflict("device_name");
        }
        if msg.contains("messages.device_id, messages.message_id") {
            return StoreError::Conflict("message_id");
        }
    }
    backend(e)
}

const APP_COLUMNS: &str =
    "app_id, tenant_id, name, webhook_url, token_hash, webhook_secret, created_at, updated_at";

fn app_from_row(row: &Row<'_>) -> rusqlite::Result<App> {
    let id: String = row.get(0)?;
    let parse_time = |i: usize| -> rusqlite::Result<time::OffsetDateTime> {
        let s: String = row.get(i)?;
        time::parse(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok(App {
        app_id: Uuid::parse_str(&id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?,
        tenant_id: row.get(1)?,
        name: row.get(2)?,
        webhook_url: row.get(3)?,
        token_hash: row.get(4)?,
        webhook_secret: row.get(5)?,
        created_at: parse_time(6)?,
        updated_at: parse_time(7)?,
    })
}

fn get_app(conn: &Connection, app_id: Uuid) -> Result<Option<App>, StoreError> {
    conn.prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE app_id = ?1"))
        .map_err(backend)?
        .query_row([app_id.to_string()], app_from_row)
        .optional()
        .map_err(backend)
}

#[async_trait]
impl AppStore for SqliteStore {
    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        self.with(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO apps ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))
            .map_err(backend)?
            .execute(params![
                app.app_id.to_string(),
                app.tenant_id,
                app.name,
                app.webhook_url,
                app.token_hash,
                app.webhook_secret,
                time::format(app.created_at),
                time::format(app.updated_at),
            ])
            .map_err(write_error)?;
            Ok(())
        })
        .await
    }

    async fn get_app(&self, app_id: Uuid) -> Result<Option<App>, StoreError> {
        self.read(move |conn| get_app(conn, app_id))
    }

    async fn app_by_token_hash(&self, token_hash: &str) -> Result<Option<App>, StoreError> {
        let hash = token_hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {APP_COLUMNS} FROM apps WHERE token_hash = ?1"
            ))
            .map_err(backend)?
            .query_row([hash], app_from_row)
            .optional()
            .map_err(backend)
        })
    }

    async fn list_apps(&self, tenant_id: &str, page: PageRequest) -> Result<Page<App>, StoreError> {
        let tenant = tenant_id.to_owned();
        self.read(move |conn| {
            let after = page.after.map(|u| u.to_string()).unwrap_or_default();
            // One extra row tells whether another page exists.
            let mut items = conn
                .prepare_cached(&format!(
                    "SELECT {APP_COLUMNS} FROM apps WHERE tenant_id = ?1 AND app_id > ?2 \
                     ORDER BY app_id LIMIT ?3"
                ))
                .map_err(backend)?
                .query_map(params![tenant, after, page.limit as i64 + 1], app_from_row)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let next = if items.len() > page.limit as usize {
                items.truncate(page.limit as usize);
                items.last().map(|a| a.app_id)
            } else {
                None
            };
            Ok(Page { items, next })
        })
    }

    async fn update_app(&self, app_id: Uuid, update: &AppUpdate) -> Result<App, StoreError> {
        let u = update.clone();
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let mut app = get_app(&tx, app_id)?.ok_or(StoreError::NotFound)?;
            if let Some(name) = u.name {
                app.name = name;
            }
            if let Some(url) = u.webhook_url {
                app.webhook_url = url;
            }
            if let Some(h) = u.token_hash {
                app.token_hash = h;
            }
            if let Some(s) = u.webhook_secret {
                app.webhook_secret = s;
            }
            if let Some(t) = u.updated_at {
                app.updated_at = t;
            }
            tx.execute(
                "UPDATE apps SET name = ?2, webhook_url = ?3, token_hash = ?4, \
                 webhook_secret = ?5, updated_at = ?6 WHERE app_id = ?1",
                params![
                    app_id.to_string(),
                    app.name,
                    app.webhook_url,
                    app.token_hash,
                    app.webhook_secret,
                    time::format(app.updated_at),
                ],
            )
            .map_err(write_error)?;
            tx.commit().map_err(backend)?;
            Ok(app)
        })
        .await
    }

    async fn delete_app(&self, app_id: Uuid) -> Result<(), StoreError> {
        self.with(move |conn| {
            let n = conn
                .execute("DELETE FROM apps WHERE app_id = ?1", [app_id.to_string()])
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
    }
}

mod devices;
mod events;
mod messages;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_in_memory() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        wa_core::conformance::app_store(store.clone()).await;
        wa_core::conformance::device_store(store.clone()).await;
        wa_core::conformance::message_store(store.clone()).await;
        wa_core::conformance::event_store(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_on_disk_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.db");
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        wa_core::conformance::app_store(store.clone()).await;
        wa_core::conformance::device_store(store.clone()).await;
        wa_core::conformance::message_store(store.clone()).await;
        wa_core::conformance::event_store(store.clone()).await;
        let page = PageRequest {
            limit: 200,
            after: None,
        };
        drop(store);
        // Reopening runs no migration twice and keeps the data.
        let again = SqliteStore::open(&path).unwrap();
        again.ping().await.unwrap();
        assert!(
            again
                .list_apps("nobody", page)
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}
