//! The store is held by one process at a time, in a rollback journal, and keeps what it
//! was given across holders.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use whatsapp_rust::Jid;
use whatsapp_rust::store::traits::DeviceStore;

/// Short enough to keep the refusals quick; a free file is claimed at once.
const WAIT: Duration = Duration::from_millis(300);

/// What the holder prints once it holds the store.
const HELD: &str = "holding the store";

/// The variable that turns [`hold_a_store_in_a_child_process`] into a holder.
const HOLD: &str = "WA_TEST_HOLD_STORE";

/// Runs `PRAGMA <name>` on the store's connection; each answers one row, one column of
/// that name.
macro_rules! pragma {
    ($store:expr, $name:ident) => {{
        $store
            .shared()
            .run(|conn| {
                #[derive(QueryableByName)]
                struct Row {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    $name: String,
                }
                diesel::sql_query(concat!("PRAGMA ", stringify!($name)))
                    .get_result::<Row>(conn)
                    .map(|row| row.$name)
                    .map_err(|e| StoreError::Database(Box::new(e)))
            })
            .await
            .expect(stringify!($name))
    }};
}

async fn save_pn(store: &SqliteStore, pn: &str) {
    let mut device = whatsapp_rust::wacore::store::Device::new();
    device.pn = Some(Jid::pn(pn));
    store.save(&device).await.expect("save device");
}

async fn stored_pn(store: &SqliteStore) -> Option<String> {
    let device = store.load().await.expect("load")?;
    device.pn.map(|jid| jid.user.to_string())
}

/// A fresh directory (removed when dropped) and the path of a device store in it.
fn device_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("device.db");
    (dir, db)
}

/// Whether a plain connection (no claim, no wait) can start a write on the file.
fn can_write(db: &Path) -> bool {
    let mut conn = SqliteConnection::establish(db.to_str().expect("utf-8")).expect("connect");
    conn.batch_execute("BEGIN IMMEDIATE; ROLLBACK;").is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_is_kept_in_a_rollback_journal_in_exclusive_mode() {
    let (_dir, db) = device_db();
    let store = open(&db, WAIT).await.expect("open");
    save_pn(&store, "15550001111").await;
    assert_eq!(pragma!(store, journal_mode), "truncate");
    assert_eq!(pragma!(store, locking_mode), "exclusive");
    let [_, _, wal, shm] = files(&db);
    assert!(!wal.exists(), "no WAL file after the open");
    assert!(!shm.exists(), "no shared-memory file, ever");
    drop(store);

    let store = open(&db, WAIT).await.expect("reopen");
    assert_eq!(stored_pn(&store).await.as_deref(), Some("15550001111"));
    assert!(!wal.exists() && !shm.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_left_in_wal_by_the_library_default_is_moved_to_the_rollback_journal() {
    let (_dir, db) = device_db();
    let old = SqliteStore::new(db.to_str().expect("utf-8"))
        .await
        .expect("open with the library's defaults");
    save_pn(&old, "15550002222").await;
    drop(old);

    let store = open(&db, WAIT).await.expect("open");
    assert_eq!(pragma!(store, journal_mode), "truncate");
    assert_eq!(stored_pn(&store).await.as_deref(), Some("15550002222"));
    let [_, _, wal, _] = files(&db);
    assert!(!wal.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_on_a_held_file_is_refused_until_the_first_closes() {
    let (_dir, db) = device_db();
    let first = open(&db, WAIT).await.expect("open");
    save_pn(&first, "15550003333").await;

    assert_eq!(open(&db, WAIT).await.err(), Some(OpenError::Locked));
    assert!(
        !can_write(&db),
        "nobody else writes while the store is open"
    );
    // The holder keeps working.
    save_pn(&first, "15550004444").await;

    drop(first);
    let second = open(&db, WAIT).await.expect("free once the first closed");
    assert_eq!(stored_pn(&second).await.as_deref(), Some("15550004444"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_cannot_open_a_held_store_and_gets_it_when_the_holder_dies() {
    let (_dir, db) = device_db();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "whatsapp::store::tests::hold_a_store_in_a_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD, &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the holder");
    let stdout = child.stdout.take().expect("stdout");
    let held = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // The harness starts the line with the test's name.
            .any(|line| line.ends_with(HELD))
    })
    .await
    .expect("reader");
    assert!(held, "the holder did not start");

    assert_eq!(open(&db, WAIT).await.err(), Some(OpenError::Locked));
    assert!(!can_write(&db), "nobody else writes while the holder lives");

    // A crash: the lock goes with the process (on EFS, with its host's NFS lease).
    child.kill().expect("kill the holder");
    child.wait().expect("reap the holder");
    let store = open(&db, WAIT).await.expect("free once the holder died");
    assert_eq!(stored_pn(&store).await.as_deref(), Some("15550005555"));
}

/// Run by the test above in a process of its own (through `--ignored`): opens the store
/// named by `WA_TEST_HOLD_STORE`, writes to it, says [`HELD`], and keeps it until killed or
/// until its stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a holder process started by another test"]
async fn hold_a_store_in_a_child_process() {
    let db = PathBuf::from(std::env::var(HOLD).expect("run by another test"));
    let store = open(&db, WAIT).await.expect("the holder opens the store");
    save_pn(&store, "15550005555").await;
    println!("{HELD}");
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count())
        .await
        .expect("stdin");
    drop(store);
}
