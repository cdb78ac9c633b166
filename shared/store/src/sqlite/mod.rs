//! The SQLite adapter of the store port.
//!
//! One connection behind a mutex, used from the blocking pool: SQLite serialises writers
//! anyway, and uniqueness rules are table constraints, so racing writers get `Conflict`.

use std::path::Path;

use std::sync::Arc;

use crate::db::{Db, DbError, Marks};
use crate::page;
use async_trait::async_trait;
use cache::{APPS_MARK, Caches};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use uuid::Uuid;
use wa_core::apps::App;
use wa_core::devices::Device;
use wa_core::lease::Fence;
use wa_core::queue::{QueueError, Received};
use wa_core::store::{AppStore, AppUpdate, DeviceStore, Page, PageRequest, StoreError};
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
    r#"
-- Apps closed to new devices (being deleted, or deleted): kept after the App is gone.
CREATE TABLE closed_apps (
    app_id TEXT PRIMARY KEY
);
"#,
    leases::MIGRATION,
    r#"
-- The workers' replies to session requests, each until its expiry.
CREATE TABLE replies (
    ask_id     TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX replies_expiry ON replies (expires_ms);
"#,
];

/// State in one SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
    /// Set by `with_read_caches`.
    caches: Option<Arc<Caches>>,
    /// Set by `with_commands_queue`.
    commands: Option<Arc<dyn InlineQueue>>,
    /// `<database>.lock`, locked for as long as the store is open: shared by every process
    /// using the file, exclusive for the one that caches reads (`with_read_caches`). None for
    /// a private temporary database.
    lock: Option<Arc<std::fs::File>>,
    /// Set by `LeaseStore::fenced`: every write is conditioned on this lease.
    fence: Option<Arc<Fence>>,
}

/// A queue whose messages can be written inside a transaction of the store's database: the
/// local queue, when it keeps its tables in the store's file.
pub trait InlineQueue: Send + Sync {
    /// Writes a message as `Queue::send` does (visible at once), in `conn`'s open
    /// transaction; whether a consumer can receive it at once (not behind its group's head).
    fn insert(
        &self,
        conn: &Connection,
        queue: &str,
        group: Option<&str>,
        body: &str,
    ) -> Result<bool, String>;

    /// Called once the transaction that carried an inserted message a consumer can receive
    /// at once is committed (wakes the queue's consumers).
    fn committed(&self);

    /// Deletes the received message holding `receipt` from `queue` and takes its group's
    /// next message when that is visible now, hidden for `visibility`, as
    /// `Queue::delete_and_take_next` does, in `conn`'s open transaction. On `Err` the caller
    /// rolls back what this wrote (a savepoint).
    fn delete_and_take_next_in(
        &self,
        conn: &Connection,
        queue: &str,
        receipt: &str,
        visibility: std::time::Duration,
    ) -> Result<Option<Received>, QueueError>;

    /// The database the queue's tables are in.
    fn db(&self) -> &Db;
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
    ///
    /// Fails when a process that caches its reads of the file (`with_read_caches`) has it
    /// open: its caches would miss this process's writes.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        wa_core::private_fs::file(Path::new(&lock_path))
            .map_err(|e| StoreError::Backend(format!("cannot create {lock_path:?}: {e}")))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Backend(format!("cannot open {lock_path:?}: {e}")))?;
        lock.try_lock_shared().map_err(|e| {
            StoreError::Backend(match e {
                std::fs::TryLockError::WouldBlock => format!(
                    "{} is in use by a wa-server that runs its own worker and caches its reads; \
                     to share a data directory, run every server with WA_WORKER=0 and one \
                     wa-worker",
                    path.display()
                ),
                std::fs::TryLockError::Error(e) => format!("cannot lock {lock_path:?}: {e}"),
            })
        })?;
        Ok(SqliteStore {
            db: Db::open(path, migrate).map_err(StoreError::Backend)?,
            caches: None,
            commands: None,
            lock: Some(Arc::new(lock)),
            fence: None,
        })
    }

    /// A private database in a temporary directory, removed with the store (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(SqliteStore {
            db: Db::temporary(migrate).map_err(StoreError::Backend)?,
            caches: None,
            commands: None,
            lock: None,
            fence: None,
        })
    }

    /// The same store, with in-process caches of its hottest reads (App by token, App,
    /// device, page of devices), when this process is the only one using the file: writes
    /// of another process would not invalidate them. The file stays locked against other
    /// processes (`open` refuses them) while the store is open. When another process has
    /// it open already, the store is returned without caches (logged).
    pub fn with_read_caches(mut self) -> Self {
        if let Some(lock) = &self.lock
            && let Err(e) = lock.try_lock()
        {
            tracing::warn!(error = %e, "another process uses the database: reads are not cached");
            return self;
        }
        self.caches = Some(Arc::new(Caches::new()));
        self
    }

    /// Whether reads are cached (`with_read_caches`).
    pub fn caches_reads(&self) -> bool {
        self.caches.is_some()
    }

    /// The same store, writing the commands of `create_message_and_enqueue` to `queue` in
    /// the message's own commit (whatever queue the caller names: it must be this one).
    /// Fails unless the queue's tables are in this store's database.
    pub fn with_commands_queue(mut self, queue: Arc<dyn InlineQueue>) -> Result<Self, StoreError> {
        if !queue.db().same(&self.db) {
            return Err(StoreError::Backend(
                "the commands queue is not in the store's database".into(),
            ));
        }
        self.commands = Some(queue);
        Ok(self)
    }

    /// The database, for other tables that should share its commits (the local queue).
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    /// A write, committed with the other writes waiting at the same moment; in a fenced
    /// view, only while its lease holds.
    pub(crate) async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.db.write(leases::fenced(self.fence.clone(), f)).await
    }

    /// A write that changes the tables of `marks` (whose cached reads it invalidates); in
    /// a fenced view, only while its lease holds.
    pub(crate) async fn with_marked<T, F>(&self, marks: Marks, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.db
            .write_marked(marks, leases::fenced(self.fence.clone(), f))
            .await
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

/// The columns of an App, in `app_from_row`'s order (a macro, so that the statements below
/// are literals).
macro_rules! app_columns {
    () => {
        "app_id, tenant_id, name, webhook_url, token_hash, webhook_secret, created_at, updated_at"
    };
}
const APP_COLUMNS: &str = app_columns!();

const APP_BY_TOKEN_HASH: &str = concat!(
    "SELECT ",
    app_columns!(),
    " FROM apps WHERE token_hash = ?1"
);

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
    conn.prepare_cached(concat!(
        "SELECT ",
        app_columns!(),
        " FROM apps WHERE app_id = ?1"
    ))
    .map_err(backend)?
    .query_row([app_id.to_string()], app_from_row)
    .optional()
    .map_err(backend)
}

#[async_trait]
impl AppStore for SqliteStore {
    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        self.with_marked(APPS_MARK, move |conn| {
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
        let load = || self.read(move |conn| get_app(conn, app_id));
        match &self.caches {
            Some(c) => c.apps.get_or_load(&self.db, &app_id, load),
            None => load(),
        }
    }

    async fn app_by_token_hash(&self, token_hash: &str) -> Result<Option<App>, StoreError> {
        let load = || {
            self.read(|conn| {
                conn.prepare_cached(APP_BY_TOKEN_HASH)
                    .map_err(backend)?
                    .query_row([token_hash], app_from_row)
                    .optional()
                    .map_err(backend)
            })
        };
        match &self.caches {
            Some(c) => c.apps_by_token.get_or_load(&self.db, token_hash, load),
            None => load(),
        }
    }

    async fn app_by_token_hash_with_device(
        &self,
        token_hash: &str,
        device_id: Uuid,
    ) -> Result<(Option<App>, Option<Device>), StoreError> {
        // Both are point reads of the local file (and cached where the process may).
        let app = self.app_by_token_hash(token_hash).await?;
        Ok((app, self.get_device(device_id).await?))
    }

    async fn list_apps(&self, tenant_id: &str, page: PageRequest) -> Result<Page<App>, StoreError> {
        let tenant = tenant_id.to_owned();
        self.read(move |conn| {
            let after = page.after.map(|u| u.to_string()).unwrap_or_default();
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {APP_COLUMNS} FROM apps WHERE tenant_id = ?1 AND app_id > ?2 \
                     ORDER BY app_id LIMIT ?3"
                ))
                .map_err(backend)?
                .query_map(
                    params![tenant, after, page::fetch(page.limit) as i64],
                    app_from_row,
                )
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let (items, next) = page::cut(items, page.limit, |a| a.app_id);
            Ok(Page { items, next })
        })
    }

    async fn update_app(&self, app_id: Uuid, update: &AppUpdate) -> Result<App, StoreError> {
        let u = update.clone();
        self.with_marked(APPS_MARK, move |conn| {
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
        self.with_marked(APPS_MARK, move |conn| {
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

    async fn close_app(&self, app_id: Uuid) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO closed_apps (app_id) VALUES (?1)",
                [app_id.to_string()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
    }
}

mod cache;
mod devices;
mod events;
mod leases;
mod messages;
mod replies;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Every conformance suite of the store port, on `store`.
    async fn conformance(store: Arc<SqliteStore>) {
        wa_testkit::conformance::app_store(store.clone()).await;
        wa_testkit::conformance::device_store(store.clone()).await;
        wa_testkit::conformance::message_store(store.clone()).await;
        wa_testkit::conformance::closed_apps(store.clone()).await;
        wa_testkit::conformance::reply_store(store.clone()).await;
        wa_testkit::conformance::event_store(store.clone()).await;
        wa_testkit::conformance::lease_store(store.clone()).await;
        wa_testkit::conformance::fenced_writes(store.clone()).await;
        wa_testkit::conformance::worker_membership(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_in_memory() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        conformance(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_with_read_caches() {
        let store = Arc::new(SqliteStore::in_memory().unwrap().with_read_caches());
        conformance(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_on_disk_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.db");
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        conformance(store.clone()).await;
        let kept = wa_testkit::fixtures::app(&wa_testkit::fixtures::tenant(), "kept");
        store.insert_app(&kept).await.unwrap();
        let device = wa_testkit::fixtures::device(kept.app_id, "kept");
        wa_core::store::DeviceStore::insert_device(&*store, &device)
            .await
            .unwrap();
        let page = PageRequest {
            limit: 200,
            after: None,
        };
        drop(store);
        // Reopening runs no migration twice and keeps the data.
        let again = SqliteStore::open(&path).unwrap();
        again.ping().await.unwrap();
        assert_eq!(
            again.list_apps(&kept.tenant_id, page).await.unwrap().items,
            [kept],
            "the App written before the reopen is listed"
        );
        assert_eq!(
            wa_core::store::DeviceStore::get_device(&again, device.device_id)
                .await
                .unwrap(),
            Some(device),
            "the device written before the reopen is read back"
        );
    }

    /// Every write of an App is seen by the cached reads as soon as it is answered: token
    /// rotation, other changes, deletion.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn app_caches_follow_every_write() {
        let s = SqliteStore::in_memory().unwrap().with_read_caches();
        let a = App {
            webhook_url: None,
            ..wa_testkit::fixtures::app("t", "cached")
        };
        s.insert_app(&a).await.unwrap();
        // Read twice: the second read is served from the cache.
        for _ in 0..2 {
            assert_eq!(
                s.app_by_token_hash(&a.token_hash).await.unwrap(),
                Some(a.clone())
            );
            assert_eq!(s.get_app(a.app_id).await.unwrap(), Some(a.clone()));
        }
        let rotated = AppUpdate {
            token_hash: Some("new-hash".into()),
            ..AppUpdate::default()
        };
        s.update_app(a.app_id, &rotated).await.unwrap();
        assert_eq!(
            s.app_by_token_hash(&a.token_hash).await.unwrap(),
            None,
            "a rotated token is refused at once"
        );
        let b = s.app_by_token_hash("new-hash").await.unwrap().unwrap();
        assert_eq!(b.app_id, a.app_id);
        assert_eq!(
            s.get_app(a.app_id).await.unwrap().unwrap().token_hash,
            "new-hash"
        );
        let hooked = AppUpdate {
            webhook_url: Some(Some("https://example.com/h".into())),
            ..AppUpdate::default()
        };
        s.update_app(a.app_id, &hooked).await.unwrap();
        let by_token = s.app_by_token_hash("new-hash").await.unwrap().unwrap();
        let by_id = s.get_app(a.app_id).await.unwrap().unwrap();
        for app in [by_token, by_id] {
            assert_eq!(app.webhook_url.as_deref(), Some("https://example.com/h"));
        }
        s.delete_app(a.app_id).await.unwrap();
        assert_eq!(
            s.app_by_token_hash("new-hash").await.unwrap(),
            None,
            "deleted App"
        );
        assert_eq!(s.get_app(a.app_id).await.unwrap(), None);
    }

    /// Every write of a device is seen by the cached reads as soon as it is answered: a new
    /// device in the App's pages, a status change in the device and in the pages.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn device_caches_follow_every_write() {
        use wa_core::devices::{DeviceStatus, DeviceUpdate};
        use wa_core::store::DeviceStore;
        let s = SqliteStore::in_memory().unwrap().with_read_caches();
        let app_id = Uuid::now_v7();
        let device = |name: &str| wa_testkit::fixtures::device(app_id, name);
        let page = PageRequest {
            limit: 50,
            after: None,
        };
        let one = device("one");
        s.insert_device(&one).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                s.list_devices(app_id, None, page).await.unwrap().items,
                std::slice::from_ref(&one)
            );
            assert_eq!(
                s.get_device(one.device_id).await.unwrap(),
                Some(one.clone())
            );
        }
        let two = device("two");
        s.insert_device(&two).await.unwrap();
        assert_eq!(
            s.list_devices(app_id, None, page)
                .await
                .unwrap()
                .items
                .len(),
            2,
            "a new device is listed at once"
        );
        let connected = s
            .update_device(
                one.device_id,
                &DeviceUpdate::status(DeviceStatus::Connected),
                &[],
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            s.get_device(one.device_id).await.unwrap(),
            Some(connected.clone())
        );
        let only = s
            .list_devices(app_id, Some(DeviceStatus::Connected), page)
            .await
            .unwrap();
        assert_eq!(only.items, [connected]);
        assert_eq!(
            s.list_devices(app_id, None, page).await.unwrap().items[0].status,
            DeviceStatus::Connected
        );
        // A write that fails changes nothing, and the caches still answer.
        assert!(
            s.update_device(
                one.device_id,
                &DeviceUpdate::status(DeviceStatus::Destroyed),
                &[DeviceStatus::Initializing],
                &[],
            )
            .await
            .is_err()
        );
        assert_eq!(
            s.get_device(one.device_id).await.unwrap().unwrap().status,
            DeviceStatus::Connected
        );
    }

    /// Readers racing a writer: once a write is answered, no read that starts afterwards
    /// sees anything older (the cache is never behind a committed write).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cached_reads_never_lag_behind_answered_writes() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use wa_core::devices::{Device, DeviceStatus, DeviceUpdate};
        use wa_core::store::DeviceStore;
        let s = Arc::new(SqliteStore::in_memory().unwrap().with_read_caches());
        let app_id = Uuid::now_v7();
        let d = Device {
            status: DeviceStatus::Connected,
            wa_number: Some("0".into()),
            ..wa_testkit::fixtures::device(app_id, "raced")
        };
        s.insert_device(&d).await.unwrap();
        let answered = Arc::new(AtomicU64::new(0));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (s, answered, done) = (s.clone(), answered.clone(), done.clone());
                tokio::spawn(async move {
                    let page = PageRequest {
                        limit: 10,
                        after: None,
                    };
                    let mut reads = 0u64;
                    while !done.load(Ordering::SeqCst) {
                        let floor = answered.load(Ordering::SeqCst);
                        let got = s.get_device(d.device_id).await.unwrap().unwrap();
                        let n: u64 = got.wa_number.unwrap().parse().unwrap();
                        assert!(
                            n >= floor,
                            "device read {n} after write {floor} was answered"
                        );
                        let listed = s.list_devices(app_id, None, page).await.unwrap();
                        let n: u64 = listed.items[0]
                            .wa_number
                            .as_deref()
                            .unwrap()
                            .parse()
                            .unwrap();
                        assert!(n >= floor, "page read {n} after write {floor} was answered");
                        reads += 1;
                        tokio::task::yield_now().await;
                    }
                    reads
                })
            })
            .collect();
        for i in 1..=300u64 {
            let u = DeviceUpdate {
                wa_number: Some(Some(i.to_string())),
                ..DeviceUpdate::default()
            };
            s.update_device(d.device_id, &u, &[], &[]).await.unwrap();
            answered.store(i, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            assert!(r.await.unwrap() > 0);
        }
    }

    /// The process caching its reads has the file to itself: others cannot open it while
    /// it does, and it does not cache while others have it open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_a_sole_process_caches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.db");
        let cached = SqliteStore::open(&path).unwrap().with_read_caches();
        assert!(cached.caches_reads());
        let refused = SqliteStore::open(&path).err().expect("refused");
        assert!(refused.to_string().contains("WA_WORKER=0"), "{refused}");
        drop(cached);
        let first = SqliteStore::open(&path).unwrap();
        let second = SqliteStore::open(&path).unwrap();
        assert!(
            !second.with_read_caches().caches_reads(),
            "another store has the file open"
        );
        drop(first);
        assert!(
            SqliteStore::open(&path)
                .unwrap()
                .with_read_caches()
                .caches_reads()
        );
    }
}
