//! SQLite access shared by the store and the local queue: reads on a connection of the
//! calling thread (WAL readers never wait for the writer), writes on one writer thread that
//! commits every write waiting at that moment in a single transaction (group commit): many
//! concurrent writes share one fsync, and each is answered only after its commit.
//!
//! Writes may also name the tables they change (`Marks`): each named table has a generation
//! counter that is odd while a commit changing it is under way, so that reads of this
//! process can be cached and validated without asking SQLite (`Db::generation`).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use thread_local::ThreadLocal;

/// A write waiting for the writer: it runs in the shared transaction and returns what to do
/// once the commit is known (`None` = committed).
type Run = Box<dyn FnOnce(&mut Connection) -> Box<dyn FnOnce(Option<String>) + Send> + Send>;

/// A write, whether its commit must be on disk before it is answered, and the tables it
/// changes.
struct Job {
    run: Run,
    durable: bool,
    marks: Marks,
}

/// How many tables can carry a generation.
const GENERATIONS: usize = 8;

/// A set of tables (bit `i` = table `i`, `i < 8`) whose generations a write moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks(pub u8);

impl Marks {
    pub const NONE: Marks = Marks(0);

    /// Table `i` alone.
    pub const fn table(i: u8) -> Marks {
        Marks(1 << i)
    }
}

/// The generation counters, shared by the handles and the writer thread.
struct Generations([AtomicU64; GENERATIONS]);

impl Generations {
    /// Every marked counter moves by one: to odd before a commit becomes visible, back to
    /// even once it is (or failed).
    fn bump(&self, marks: Marks) {
        for (i, g) in self.0.iter().enumerate() {
            if marks.0 & (1 << i) != 0 {
                g.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// A failure of the database machinery itself (connections, the writer thread).
#[derive(Debug, Clone)]
pub struct DbError(pub String);

impl From<DbError> for String {
    fn from(e: DbError) -> String {
        e.0
    }
}

/// How many waiting writes one commit takes at most.
const MAX_BATCH: usize = 512;

/// A database file with its reader connections and its writer thread.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: ThreadLocal<RefCell<Connection>>,
    writer: std::sync::Mutex<mpsc::Sender<Job>>,
    generations: Arc<Generations>,
    /// A temporary directory to remove when the database goes away (`Db::temporary`).
    temp_dir: Option<PathBuf>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Opens a connection with the settings every connection of the file uses.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A batch's writes each run in a savepoint, whose statement journal would otherwise
    // spill to a temporary file beyond 64 KiB: a write to disk per page, per savepoint.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Every statement of the store and the queue stays prepared (the default keeps 16, fewer
    // than the store uses, and re-preparing costs more than running a point query).
    conn.set_prepared_statement_cache_capacity(256);
    // Without the query planner stability guarantee, SQLite marks a statement to be
    // re-prepared whenever a parameter its plan looked at is bound again (`LIMIT ?` and
    // range bounds are), so most cached statements were parsed and planned anew on every
    // run. Every plan here is fine for any parameter value.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

impl Db {
    /// Opens `path`; `init` runs first on the writer connection (schema migrations).
    pub fn open(
        path: &Path,
        init: impl FnOnce(&mut Connection) -> Result<(), String>,
    ) -> Result<Db, String> {
        Self::open_inner(path, init, None)
    }

    /// A database in a new temporary directory, removed when the last handle is dropped
    /// (tests).
    pub fn temporary(
        init: impl FnOnce(&mut Connection) -> Result<(), String>,
    ) -> Result<Db, String> {
        let dir = std::env::temp_dir().join(format!("wa-db-{}", uuid::Uuid::new_v4()));
        wa_core::private_fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Self::open_inner(&dir.join("db.sqlite"), init, Some(dir))
    }

    fn open_inner(
        path: &Path,
        init: impl FnOnce(&mut Connection) -> Result<(), String>,
        temp_dir: Option<PathBuf>,
    ) -> Result<Db, String> {
        wa_core::private_fs::sqlite_database(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut conn = connect(path).map_err(|e| e.to_string())?;
        init(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let generations = Arc::new(Generations(Default::default()));
        let for_writer = generations.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(conn, rx, &for_writer))
            .map_err(|e| e.to_string())?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                readers: ThreadLocal::new(),
                writer: std::sync::Mutex::new(tx),
                generations,
                temp_dir,
            }),
        })
    }

    /// Whether both handles are of the same open database.
    pub fn same(&self, other: &Db) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The generation of table `i` (`i < 8`) as writes through this handle's writer moved
    /// it: odd while a commit changing the table is under way. A read that saw the same even
    /// value before and after it read what was committed at that generation; writes of
    /// other processes on the same file are not counted.
    pub fn generation(&self, i: u8) -> u64 {
        self.inner.generations.0[i as usize].load(Ordering::SeqCst)
    }

    /// Runs a read on this thread's connection. Reads see every committed write.
    pub fn read<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let cell = self
            .inner
            .readers
            .get_or_try(|| connect(&self.inner.path).map(RefCell::new))
            .map_err(|e| DbError(e.to_string()))?;
        // A read never calls back into the store, so the cell is never borrowed twice.
        let conn = cell
            .try_borrow()
            .map_err(|_| DbError("reader connection busy".to_owned()))?;
        f(&conn)
    }

    /// Runs a write on the writer thread, inside the transaction of its batch; answers once
    /// the batch is committed. `f` must leave nothing half-written when it fails: use a
    /// savepoint (`conn.savepoint()`) for more than one statement.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        self.submit(f, true, Marks::NONE).await
    }

    /// Like `write`, for a write that changes the tables of `marks`: their generations move
    /// around its commit.
    pub async fn write_marked<T, E, F>(&self, marks: Marks, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        self.submit(f, true, marks).await
    }

    /// A durable write from outside the async runtime (set-up work such as creating tables).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, String> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Result<T, String>>();
        let run: Run = Box::new(move |conn| {
            let result = f(conn);
            Box::new(move |commit_error: Option<String>| {
                let _ = tx.send(match commit_error {
                    None => result,
                    Some(e) => Err(format!("commit failed: {e}")),
                });
            })
        });
        self.inner
            .writer
            .lock()
            .map_err(|_| "writer lock poisoned".to_owned())?
            .send(Job {
                run,
                durable: true,
                marks: Marks::NONE,
            })
            .map_err(|_| "the database writer stopped".to_owned())?;
        rx.recv()
            .map_err(|_| "the database writer dropped a write".to_owned())?
    }

    /// Like `write`, but answered once committed to the WAL without waiting for the disk
    /// (`synchronous=NORMAL`): a crash may lose it, never corrupt it; the next durable commit
    /// makes it durable too. For bookkeeping whose loss is harmless (queue receipts).
    pub async fn write_relaxed<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        self.submit(f, false, Marks::NONE).await
    }

    async fn submit<T, E, F>(&self, f: F, durable: bool, marks: Marks) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let run: Run = Box::new(move |conn| {
            let result = f(conn);
            Box::new(move |commit_error: Option<String>| {
                let result = match commit_error {
                    None => result,
                    Some(e) => Err(E::from(DbError(format!("commit failed: {e}")))),
                };
                let _ = tx.send(result);
            })
        });
        let job = Job {
            run,
            durable,
            marks,
        };
        self.inner
            .writer
            .lock()
            .map_err(|_| DbError("writer lock poisoned".to_owned()))?
            .send(job)
            .map_err(|_| DbError("the database writer stopped".to_owned()))?;
        rx.await
            .map_err(|_| DbError("the database writer dropped a write".to_owned()))?
    }
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Job>, generations: &Generations) {
    // The connection's current mode: switched only when a batch needs the other one (each
    // switch is a PRAGMA parsed anew).
    let mut relaxed = false;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // One durable write makes the whole batch durable; a batch of relaxed writes only
        // skips the fsync.
        let durable = jobs.iter().any(|j| j.durable);
        if durable && relaxed {
            if let Err(e) = conn.pragma_update(None, "synchronous", "FULL") {
                // Never commit a durable write without the fsync: its caller gets an error
                // (a dropped job answers "the database writer dropped a write").
                tracing::error!(error = %e, "could not switch back to synchronous=FULL");
                drop(jobs);
                continue;
            }
            relaxed = false;
        } else if !durable && !relaxed {
            // On failure the batch is simply durable too.
            relaxed = conn.pragma_update(None, "synchronous", "NORMAL").is_ok();
        }
        commit_batch(&mut conn, jobs, generations);
    }
}

fn commit_batch(conn: &mut Connection, jobs: Vec<Job>, generations: &Generations) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Could not open the shared transaction: each write commits on its own.
        tracing::warn!(error = %e, "group commit unavailable for this batch");
        for job in jobs {
            generations.bump(job.marks);
            let finish = (job.run)(conn);
            generations.bump(job.marks);
            finish(None);
        }
        return;
    }
    let marks = Marks(jobs.iter().fold(0, |m, j| m | j.marks.0));
    let finishers: Vec<_> = jobs.into_iter().map(|job| (job.run)(conn)).collect();
    // The batch's changes are invisible to readers until COMMIT: the marked generations are
    // odd from just before it until just after it.
    generations.bump(marks);
    let commit_error = conn.execute_batch("COMMIT").err().map(|e| e.to_string());
    if commit_error.is_some() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    generations.bump(marks);
    for finish in finishers {
        finish(commit_error.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_commit_and_fail_alone() {
        let db = Db::temporary(|c| {
            c.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
                .map_err(|e| e.to_string())
        })
        .unwrap();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |c| -> Result<(), String> {
                        // Every tenth write fails half-way: its savepoint rolls it back alone.
                        let sp = c.savepoint().map_err(|e| e.to_string())?;
                        sp.execute("INSERT INTO t (k) VALUES (?1)", [format!("k{i}")])
                            .map_err(|e| e.to_string())?;
                        if i % 10 == 0 {
                            return Err("refused".into());
                        }
                        sp.commit().map_err(|e| e.to_string())
                    })
                    .await
                })
            })
            .collect();
        assert_eq!(wa_testkit::races::successes(tasks).await, 90);
        let n: i64 = db
            .read(|c| -> Result<i64, String> {
                c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                    .map_err(|e| e.to_string())
            })
            .unwrap();
        assert_eq!(n, 90, "exactly the successful writes are visible");
    }
}
