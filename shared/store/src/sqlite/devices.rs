//! Devices and the presence cache in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus, DeviceUpdate};
use wa_core::provider::Presence;
use wa_core::store::{DeviceStore, Page, PageRequest, StoreError};
use wa_core::time;

use super::cache::DEVICES_MARK;
use super::events::insert_events;
use super::{SqliteStore, backend, write_error};
use crate::page;
use wa_core::webhooks::Event;

/// The columns of a device, in `device_from_row`'s order (a macro, so that the statements
/// below are literals).
macro_rules! columns {
    () => {
        "device_id, app_id, tenant_id, device_name, status, qr, pair_code, wa_number, \
         wa_device_jid, linked_at, last_error, created_at, updated_at"
    };
}
const COLUMNS: &str = columns!();

fn conversion(i: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

fn json_col<T: DeserializeOwned>(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<T>> {
    let s: Option<String> = row.get(i)?;
    s.map(|s| serde_json::from_str(&s).map_err(|e| conversion(i, e)))
        .transpose()
}

fn time_col(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<time::OffsetDateTime>> {
    let s: Option<String> = row.get(i)?;
    s.map(|s| time::parse(&s).map_err(|e| conversion(i, e)))
        .transpose()
}

fn uuid_col(row: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    let s: String = row.get(i)?;
    Uuid::parse_str(&s).map_err(|e| conversion(i, e))
}

fn to_json<T: Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref()
        .map(|v| serde_json::to_string(v).expect("records serialize"))
}

#[derive(Debug)]
struct BadStatus(String);

impl std::fmt::Display for BadStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown device status {}", self.0)
    }
}

impl std::error::Error for BadStatus {}

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<Device> {
    let status: String = row.get(4)?;
    Ok(Device {
        device_id: uuid_col(row, 0)?,
        app_id: uuid_col(row, 1)?,
        tenant_id: row.get(2)?,
        device_name: row.get(3)?,
        status: DeviceStatus::parse(&status).ok_or_else(|| conversion(4, BadStatus(status)))?,
        qr: json_col(row, 5)?,
        pair_code: json_col(row, 6)?,
        wa_number: row.get(7)?,
        wa_device_jid: row.get(8)?,
        linked_at: time_col(row, 9)?,
        last_error: json_col(row, 10)?,
        created_at: time_col(row, 11)?.ok_or_else(|| conversion(11, BadStatus("null".into())))?,
        updated_at: time_col(row, 12)?.ok_or_else(|| conversion(12, BadStatus("null".into())))?,
    })
}

const LIST_OF_APP: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM devices WHERE app_id = ?1 AND device_id > ?2 AND (?3 IS NULL OR status = ?3) \
     ORDER BY device_id LIMIT ?4"
);

fn get(conn: &Connection, id: Uuid) -> Result<Option<Device>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        columns!(),
        " FROM devices WHERE device_id = ?1"
    ))
    .map_err(backend)?
    .query_row([id.to_string()], device_from_row)
    .optional()
    .map_err(backend)
}

fn write(conn: &Connection, d: &Device, insert: bool) -> Result<(), StoreError> {
    let sql = if insert {
        format!(
            "INSERT INTO devices ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        )
    } else {
        "UPDATE devices SET app_id = ?2, tenant_id = ?3, device_name = ?4, status = ?5, qr = ?6, \
         pair_code = ?7, wa_number = ?8, wa_device_jid = ?9, linked_at = ?10, last_error = ?11, \
         created_at = ?12, updated_at = ?13 WHERE device_id = ?1"
            .to_owned()
    };
    conn.prepare_cached(&sql)
        .map_err(backend)?
        .execute(params![
            d.device_id.to_string(),
            d.app_id.to_string(),
            d.tenant_id,
            d.device_name,
            d.status.as_str(),
            to_json(&d.qr),
            to_json(&d.pair_code),
            d.wa_number,
            d.wa_device_jid,
            d.linked_at.map(time::format),
            to_json(&d.last_error),
            time::format(d.created_at),
            time::format(d.updated_at),
        ])
        .map_err(write_error)?;
    Ok(())
}

fn page_of(items: Vec<Device>, limit: u32) -> Page<Device> {
    let (items, next) = page::cut(items, limit, |d| d.device_id);
    Page { items, next }
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn insert_device(&self, device: &Device) -> Result<(), StoreError> {
        let d = device.clone();
        self.with_marked(DEVICES_MARK, move |conn| {
            // One writer: no device can slip in between the check and the insert.
            let tx = conn.savepoint().map_err(backend)?;
            let closed = tx
                .prepare_cached("SELECT 1 FROM closed_apps WHERE app_id = ?1")
                .map_err(backend)?
                .exists([d.app_id.to_string()])
                .map_err(backend)?;
            if closed {
                return Err(StoreError::NotFound);
            }
            write(&tx, &d, true)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_device(&self, device_id: Uuid) -> Result<Option<Device>, StoreError> {
        let load = || self.read(move |conn| get(conn, device_id));
        match &self.caches {
            Some(c) => c.devices.get_or_load(&self.db, &device_id, load),
            None => load(),
        }
    }

    async fn list_devices(
        &self,
        app_id: Uuid,
        status: Option<DeviceStatus>,
        page: PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        let load = || {
            self.read(move |conn| {
                let after = page.after.map(|u| u.to_string()).unwrap_or_default();
                let items = conn
                    .prepare_cached(LIST_OF_APP)
                    .map_err(backend)?
                    .query_map(
                        params![
                            app_id.to_string(),
                            after,
                            status.map(|s| s.as_str()),
                            page::fetch(page.limit) as i64
                        ],
                        device_from_row,
                    )
                    .map_err(backend)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend)?;
                Ok(Some(page_of(items, page.limit)))
            })
        };
        let page = match &self.caches {
            Some(c) => c.device_pages.get_or_load(
                &self.db,
                &(app_id, status, page.after, page.limit),
                load,
            ),
            None => load(),
        }?;
        Ok(page.unwrap_or(Page {
            items: Vec::new(),
            next: None,
        }))
    }

    async fn devices_of_app(&self, app_id: Uuid) -> Result<Vec<Device>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM devices WHERE app_id = ?1 ORDER BY device_id"
            ))
            .map_err(backend)?
            .query_map([app_id.to_string()], device_from_row)
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)
        })
    }

    async fn devices_with_status(
        &self,
        statuses: &[DeviceStatus],
        page: PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        let wanted: Vec<&'static str> = statuses.iter().map(|s| s.as_str()).collect();
        self.read(move |conn| {
            let after = page.after.map(|u| u.to_string()).unwrap_or_default();
            let list = serde_json::to_string(&wanted).expect("strings serialize");
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM devices WHERE device_id > ?1 \
                     AND status IN (SELECT value FROM json_each(?2)) ORDER BY device_id LIMIT ?3"
                ))
                .map_err(backend)?
                .query_map(
                    params![after, list, page::fetch(page.limit) as i64],
                    device_from_row,
                )
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(page_of(items, page.limit))
        })
    }

    async fn update_device(
        &self,
        device_id: Uuid,
        update: &DeviceUpdate,
        expect: &[DeviceStatus],
        events: &[Event],
    ) -> Result<Device, StoreError> {
        let u = update.clone();
        let expect = expect.to_vec();
        let events = events.to_vec();
        self.with_marked(DEVICES_MARK, move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let mut d = get(&tx, device_id)?.ok_or(StoreError::NotFound)?;
            if !expect.is_empty() && !expect.contains(&d.status) {
                return Err(StoreError::Conflict("status"));
            }
            u.apply_to(&mut d);
            write(&tx, &d, false)?;
            insert_events(&tx, &events)?;
            tx.commit().map_err(backend)?;
            Ok(d)
        })
        .await
    }

    async fn put_presence(
        &self,
        device_id: Uuid,
        presence: &Presence,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(presence).expect("records serialize");
        let jid = presence.jid.clone();
        let events = events.to_vec();
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            tx.prepare_cached(
                "INSERT INTO presence (device_id, jid, body) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (device_id, jid) DO UPDATE SET body = excluded.body",
            )
            .map_err(backend)?
            .execute(params![device_id.to_string(), jid, body])
            .map_err(backend)?;
            insert_events(&tx, &events)?;
            tx.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_presence(
        &self,
        device_id: Uuid,
        jid: &str,
    ) -> Result<Option<Presence>, StoreError> {
        let jid = jid.to_owned();
        self.read(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM presence WHERE device_id = ?1 AND jid = ?2")
                .map_err(backend)?
                .query_row(params![device_id.to_string(), jid], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Backend(e.to_string())))
                .transpose()
        })
    }
}
