//! The device's session store: one whatsapp-rust `SqliteStore` file per device
//! (`<sessions_dir>/<device_id>.db`), opened so that one process at a time holds it and so
//! that it works on a file system shared by several hosts (EFS, NFS).
//!
//! SQLite's WAL keeps its index in a memory-mapped `-shm` file, which hosts sharing a
//! network file system do not share: WAL on EFS would let two hosts corrupt one file. So
//! every store is opened in exclusive locking mode with a rollback journal:
//! - Every connection of the store starts with [`claim`]: `locking_mode = EXCLUSIVE`,
//!   `journal_mode = TRUNCATE`, then an empty `BEGIN EXCLUSIVE` transaction, which takes
//!   the file's exclusive lock; in exclusive locking mode SQLite keeps it until the
//!   connection closes. Anyone else (another process, or a second store in this one)
//!   waits [`LOCK_WAIT`] for it and is then refused. On EFS the lock is an NFSv4 lock: it
//!   dies with the holder's NFS lease when the holder's host dies.
//! - whatsapp-rust-sqlite-storage 0.7 runs `PRAGMA journal_mode = WAL` itself while it
//!   opens a store (after its connection hook, which is where [`claim`] runs, and before
//!   its migrations), and offers no setting against it. In exclusive locking mode SQLite
//!   never maps the `-shm` file (the WAL index lives in the process's heap), so that
//!   moment is safe, and as soon as the store is open [`open`] switches the file back to
//!   `TRUNCATE` through the store's own connection (`SqliteStore::shared`), which
//!   checkpoints and removes the `-wal` file.
//! - One connection (`pool_size = 1`, no reader pool: readers beside the writer are what
//!   WAL would have bought). The library's pool replaces that connection after 10 minutes
//!   idle or 30 minutes of life; the replacement runs [`claim`] again (with the file
//!   already in `TRUNCATE`).
//! - Before the library's pool touches the file, a probe connection makes the same claim
//!   and lets go, so a held file is refused after [`LOCK_WAIT`] with
//!   [`OpenError::Locked`], not after the pool's own 30 s connection timeout with its
//!   retries occupying the library's two shared connection threads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use wa_core::provider::ProviderFailure;
use wa_errors::ErrorCode;
use whatsapp_rust::store::{SqliteStore, SqliteStoreConfig};
use whatsapp_rust::wacore::store::error::StoreError;

/// How long opening a store waits for another holder to let go of the file before it is
/// refused. Long enough for a session of this process that was just stopped to drop its
/// store; another process holding a device's file is refused after it.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The files of a device's store `db`: the database, its rollback journal, and the WAL
/// files of the moment the library opens it in WAL (or of stores written before).
pub(super) fn files(db: &Path) -> [PathBuf; 4] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [
        db.to_path_buf(),
        with("-journal"),
        with("-wal"),
        with("-shm"),
    ]
}

/// Why a store could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OpenError {
    /// Another process (or another store of this one) holds the file.
    Locked,
    /// Anything else: the path, the disk, the library.
    Failed(String),
}

impl OpenError {
    /// The failure reported for a session that could not open its store.
    pub(super) fn into_failure(self) -> ProviderFailure {
        match self {
            OpenError::Locked => ProviderFailure::new(
                ErrorCode::InternalError,
                "the session store is in use by another process",
            ),
            OpenError::Failed(e) => ProviderFailure::new(
                ErrorCode::InternalError,
                format!("could not open the session store: {e}"),
            ),
        }
    }
}

/// Opens the store at `db` for this process alone (see the module's notes), waiting at
/// most `lock_wait` for the file's lock. `Locked` when another holder keeps it longer.
pub(super) async fn open(db: &Path, lock_wait: Duration) -> Result<SqliteStore, OpenError> {
    let url = db
        .to_str()
        .ok_or_else(|| OpenError::Failed("the path is not valid UTF-8".into()))?
        .to_string();
    let probe_url = url.clone();
    tokio::task::spawn_blocking(move || probe(&probe_url, lock_wait))
        .await
        .map_err(|e| OpenError::Failed(e.to_string()))??;
    let config = SqliteStoreConfig {
        pool_size: 1,
        read_pool_size: 0,
        busy_timeout: lock_wait,
        ..SqliteStoreConfig::default()
    }
    .with_connection_init(move |conn| claim(conn, lock_wait).map_err(Into::into));
    let store = SqliteStore::with_config(&url, config)
        .await
        .map_err(|e| classify(&e.to_string()))?;
    let mode = store
        .shared()
        .run(|conn| {
            #[derive(QueryableByName)]
            struct Mode {
                #[diesel(sql_type = diesel::sql_types::Text)]
                journal_mode: String,
            }
            diesel::sql_query("PRAGMA journal_mode = TRUNCATE;")
                .get_result::<Mode>(conn)
                .map(|m| m.journal_mode)
                .map_err(|e| StoreError::Database(Box::new(e)))
        })
        .await
        .map_err(|e| OpenError::Failed(e.to_string()))?;
    if !mode.eq_ignore_ascii_case("truncate") {
        return Err(OpenError::Failed(format!(
            "the store stayed in journal mode {mode}"
        )));
    }
    Ok(store)
}

/// Makes `conn` the file's only holder for as long as it is open (see the module's
/// notes). Fails when the lock is not free within `lock_wait`.
fn claim(conn: &mut SqliteConnection, lock_wait: Duration) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; \
         PRAGMA locking_mode = EXCLUSIVE; \
         PRAGMA journal_mode = TRUNCATE; \
         BEGIN EXCLUSIVE; COMMIT;",
        lock_wait.as_millis().clamp(1, i32::MAX as u128)
    ))
}

/// Claims the file on a connection of its own and lets go: `Locked` when it is held.
fn probe(url: &str, lock_wait: Duration) -> Result<(), OpenError> {
    let mut conn =
        SqliteConnection::establish(url).map_err(|e| OpenError::Failed(e.to_string()))?;
    claim(&mut conn, lock_wait).map_err(|e| classify(&e.to_string()))
}

/// SQLite reports a lock it could not get (`SQLITE_BUSY`) as "database is locked"; the
/// drivers between it and here only pass the message on.
fn classify(message: &str) -> OpenError {
    if message.contains("database is locked") {
        OpenError::Locked
    } else {
        OpenError::Failed(message.to_string())
    }
}

#[cfg(test)]
mod tests;
