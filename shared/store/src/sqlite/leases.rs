//! Device leases, worker membership and fencing in SQLite: one row per lease and per
//! worker. Each change reads the row and writes what `wa_core::lease` decides inside one
//! write transaction, which the single writer (and, across processes, SQLite's write lock)
//! keeps whole: of racing claimants exactly one commits. A fenced view's writes first check
//! the lease row in the same transaction ([`fenced`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;
use wa_core::lease::{self, Claim, Fence, Lease, Member, Owner};
use wa_core::store::{LeaseStore, Page, PageRequest, Store, StoreError};
use wa_core::time::OffsetDateTime;

use super::devices::uuid_col;
use super::{SqliteStore, backend, from_ms, ms};
use crate::page;

/// The schema of leases and workers (one migration).
pub(crate) const MIGRATION: &str = r#"
-- One lease per linked device; `worker_id`/`incarnation` are NULL once released.
CREATE TABLE leases (
    device_id   TEXT PRIMARY KEY,
    worker_id   TEXT,
    incarnation TEXT,
    epoch       INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    ttl_ms      INTEGER NOT NULL,
    version     INTEGER NOT NULL
);
CREATE INDEX leases_by_owner ON leases (worker_id, incarnation, device_id)
    WHERE worker_id IS NOT NULL;
-- One membership record per worker id.
CREATE TABLE workers (
    worker_id   TEXT PRIMARY KEY,
    incarnation TEXT NOT NULL,
    inbox       TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL,
    sessions    INTEGER NOT NULL,
    capacity    INTEGER NOT NULL
);
"#;

const LEASE_COLUMNS: &str = "device_id, worker_id, incarnation, epoch, expires_ms, ttl_ms, version";
const WORKER_COLUMNS: &str = "worker_id, incarnation, inbox, expires_ms, sessions, capacity";

fn lease_from_row(row: &Row<'_>) -> rusqlite::Result<Lease> {
    let worker: Option<String> = row.get(1)?;
    let owner = match worker {
        Some(worker_id) => Some(Owner {
            worker_id,
            incarnation: uuid_col(row, 2)?,
        }),
        None => None,
    };
    Ok(Lease {
        device_id: uuid_col(row, 0)?,
        owner,
        epoch: row.get::<_, i64>(3)? as u64,
        expires_at: from_ms(row.get(4)?),
        ttl: Duration::from_millis(row.get::<_, i64>(5)? as u64),
        version: row.get::<_, i64>(6)? as u64,
    })
}

fn member_from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        owner: Owner {
            worker_id: row.get(0)?,
            incarnation: uuid_col(row, 1)?,
        },
        inbox: row.get(2)?,
        expires_at: from_ms(row.get(3)?),
        sessions: row.get(4)?,
        capacity: row.get(5)?,
    })
}

fn get_lease(conn: &Connection, device_id: Uuid) -> Result<Option<Lease>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {LEASE_COLUMNS} FROM leases WHERE device_id = ?1"
    ))
    .map_err(backend)?
    .query_row([device_id.to_string()], lease_from_row)
    .optional()
    .map_err(backend)
}

fn put_lease(conn: &Connection, l: &Lease) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO leases ({LEASE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))
    .map_err(backend)?
    .execute(params![
        l.device_id.to_string(),
        l.owner.as_ref().map(|o| o.worker_id.as_str()),
        l.owner.as_ref().map(|o| o.incarnation.to_string()),
        l.epoch as i64,
        ms(l.expires_at),
        l.ttl.as_millis() as i64,
        l.version as i64,
    ])
    .map_err(backend)?;
    Ok(())
}

fn get_member(conn: &Connection, worker_id: &str) -> Result<Option<Member>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {WORKER_COLUMNS} FROM workers WHERE worker_id = ?1"
    ))
    .map_err(backend)?
    .query_row([worker_id], member_from_row)
    .optional()
    .map_err(backend)
}

fn put_member(conn: &Connection, m: &Member) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO workers ({WORKER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))
    .map_err(backend)?
    .execute(params![
        m.owner.worker_id,
        m.owner.incarnation.to_string(),
        m.inbox,
        ms(m.expires_at),
        m.sessions,
        m.capacity,
    ])
    .map_err(backend)?;
    Ok(())
}

/// `f` in a savepoint of its own, rolled back when `f` fails. Inside the batch's
/// transaction it only scopes `f`; when the batch could not open its transaction (the
/// writer then commits each write on its own) it is `f`'s transaction: what `f` read cannot
/// change before it writes (another process's commit in between makes the write fail),
/// so a check and the write it guards stay one.
fn atomic<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT lease_check")
        .map_err(backend)?;
    let done = f(conn).and_then(|v| {
        conn.execute_batch("RELEASE lease_check")
            .map_err(backend)
            .map(|()| v)
    });
    if done.is_err() {
        // Best effort: a failed rollback leaves the savepoint to the batch's own rollback.
        let _ = conn.execute_batch("ROLLBACK TO lease_check; RELEASE lease_check");
    }
    done
}

/// `f`, run only while `fence` holds (checked in the same transaction, before `f`
/// writes); `Fenced` otherwise, having written nothing. Without a fence, `f` itself.
pub(crate) fn fenced<T, F>(
    fence: Option<Arc<Fence>>,
    f: F,
) -> impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static
where
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
{
    move |conn| match fence {
        None => f(conn),
        Some(fence) => atomic(conn, |conn| {
            if !lease::fence_holds(get_lease(conn, fence.device_id)?.as_ref(), &fence) {
                return Err(StoreError::Fenced);
            }
            f(conn)
        }),
    }
}

impl SqliteStore {
    /// A read-modify-write of one lease, never fenced: `change` decides from the stored
    /// record.
    async fn change_lease(
        &self,
        device_id: Uuid,
        change: impl FnOnce(Option<&Lease>) -> Result<Lease, StoreError> + Send + 'static,
    ) -> Result<Lease, StoreError> {
        self.db
            .write(move |conn| {
                atomic(conn, |conn| {
                    let new = change(get_lease(conn, device_id)?.as_ref())?;
                    put_lease(conn, &new)?;
                    Ok(new)
                })
            })
            .await
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(&self, claim: &Claim) -> Result<Lease, StoreError> {
        let claim = claim.clone();
        self.change_lease(claim.device_id, move |seen| lease::acquire(seen, &claim))
            .await
    }

    async fn renew_lease(
        &self,
        device_id: Uuid,
        owner: &Owner,
        epoch: u64,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        let owner = owner.clone();
        self.change_lease(device_id, move |seen| {
            lease::renew(seen, &owner, epoch, now, ttl)
        })
        .await
    }

    async fn release_lease(
        &self,
        device_id: Uuid,
        owner: &Owner,
        epoch: u64,
    ) -> Result<Lease, StoreError> {
        let owner = owner.clone();
        self.change_lease(device_id, move |seen| lease::release(seen, &owner, epoch))
            .await
    }

    async fn get_lease(&self, device_id: Uuid) -> Result<Option<Lease>, StoreError> {
        self.read(move |conn| get_lease(conn, device_id))
    }

    async fn list_leases(
        &self,
        owner: Option<&Owner>,
        page: PageRequest,
    ) -> Result<Page<Lease>, StoreError> {
        let owner = owner.cloned();
        self.read(move |conn| {
            let after = page.after.map(|u| u.to_string()).unwrap_or_default();
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {LEASE_COLUMNS} FROM leases WHERE device_id > ?1 \
                     AND (?2 IS NULL OR (worker_id = ?2 AND incarnation = ?3)) \
                     ORDER BY device_id LIMIT ?4"
                ))
                .map_err(backend)?
                .query_map(
                    params![
                        after,
                        owner.as_ref().map(|o| o.worker_id.as_str()),
                        owner.as_ref().map(|o| o.incarnation.to_string()),
                        page::fetch(page.limit) as i64
                    ],
                    lease_from_row,
                )
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let (items, next) = page::cut(items, page.limit, |l| l.device_id);
            Ok(Page { items, next })
        })
    }

    async fn register_worker(&self, member: &Member) -> Result<(), StoreError> {
        let m = member.clone();
        self.db.write(move |conn| put_member(conn, &m)).await
    }

    async fn heartbeat_worker(&self, member: &Member) -> Result<(), StoreError> {
        let m = member.clone();
        self.db
            .write(move |conn| {
                atomic(conn, |conn| {
                    lease::heartbeat(get_member(conn, &m.owner.worker_id)?.as_ref(), &m)?;
                    put_member(conn, &m)
                })
            })
            .await
    }

    async fn deregister_worker(&self, owner: &Owner) -> Result<(), StoreError> {
        let owner = owner.clone();
        self.db
            .write(move |conn| {
                atomic(conn, |conn| {
                    if lease::deregister(get_member(conn, &owner.worker_id)?.as_ref(), &owner)? {
                        conn.execute(
                            "DELETE FROM workers WHERE worker_id = ?1",
                            [&owner.worker_id],
                        )
                        .map_err(backend)?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn live_workers(&self, now: OffsetDateTime) -> Result<Vec<Member>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {WORKER_COLUMNS} FROM workers WHERE expires_ms > ?1 ORDER BY worker_id"
            ))
            .map_err(backend)?
            .query_map([ms(now)], member_from_row)
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)
        })
    }

    fn fenced(&self, fence: Fence) -> Arc<dyn Store> {
        Arc::new(SqliteStore {
            fence: Some(Arc::new(fence)),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_core::store::DeviceStore;
    use wa_core::time;

    fn test_lease(device_id: Uuid, owner: &Owner, epoch: u64) -> Lease {
        Lease {
            device_id,
            owner: Some(owner.clone()),
            epoch,
            expires_at: time::now(),
            ttl: Duration::from_secs(30),
            version: epoch,
        }
    }

    /// Without the batch's transaction (the writer's fallback), a takeover committed by
    /// another process between the fence check and the write still refuses the write.
    #[test]
    fn a_fenced_write_is_one_transaction_with_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(MIGRATION).unwrap();
        conn.execute_batch("CREATE TABLE written (n INTEGER)")
            .unwrap();
        let (d, a, b) = (Uuid::now_v7(), Owner::new("a"), Owner::new("b"));
        put_lease(&conn, &test_lease(d, &a, 1)).unwrap();
        let fence = Fence::of(&test_lease(d, &a, 1)).unwrap();
        let other = Connection::open(&path).unwrap();
        let taker = b.clone();
        let write = fenced(Some(Arc::new(fence)), move |conn: &mut Connection| {
            put_lease(&other, &test_lease(d, &taker, 2))?;
            conn.execute("INSERT INTO written (n) VALUES (1)", [])
                .map_err(backend)?;
            Ok(())
        });
        assert!(conn.is_autocommit());
        assert!(write(&mut conn).is_err(), "the stale write is refused");
        let written: i64 = conn
            .query_row("SELECT COUNT(*) FROM written", [], |r| r.get(0))
            .unwrap();
        assert_eq!(written, 0, "nothing of the stale write was committed");
        assert!(conn.is_autocommit(), "its transaction is closed");
        assert_eq!(get_lease(&conn, d).unwrap().unwrap().owner, Some(b));
    }

    /// Workers sharing one data directory are processes with a store each on one file:
    /// claims race across them, and a fence is checked against the other's writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_hold_across_stores_of_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.db");
        let stores = [
            Arc::new(SqliteStore::open(&path).unwrap()),
            Arc::new(SqliteStore::open(&path).unwrap()),
        ];
        let (d, t0, ttl) = (Uuid::now_v7(), time::now(), Duration::from_secs(30));
        let claim = |owner: &Owner, now| Claim {
            device_id: d,
            owner: owner.clone(),
            ttl,
            now,
            unchanged: None,
        };
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let s = stores[i % 2].clone();
                let c = claim(&Owner::new(format!("w{i}")), t0);
                tokio::spawn(async move { s.acquire_lease(&c).await })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(l) => winners.push(l),
                Err(e) => assert_eq!(e, StoreError::Conflict("lease")),
            }
        }
        assert_eq!(winners.len(), 1, "one winner across both stores");
        let first = winners.remove(0);
        let device = wa_testkit::fixtures::device(Uuid::now_v7(), "shared");
        stores[0].insert_device(&device).await.unwrap();
        let stale = stores[0].fenced(Fence::of(&first).unwrap());
        let watched = Claim {
            unchanged: Some(first.version),
            ..claim(&Owner::new("other"), t0 + ttl)
        };
        let next = stores[1].acquire_lease(&watched).await.unwrap();
        assert_eq!(next.epoch, 2);
        assert_eq!(
            stale
                .update_device(device.device_id, &Default::default(), &[], &[])
                .await
                .map(|_| ()),
            Err(StoreError::Fenced),
            "the other store's takeover fences this one's writes"
        );
        let current = stores[0].fenced(Fence::of(&next).unwrap());
        current
            .update_device(device.device_id, &Default::default(), &[], &[])
            .await
            .expect("the new owner writes through either store");
    }
}
