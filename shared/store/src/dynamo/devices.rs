//! Devices and the presence cache in the table: the device item (listed per App on GSI1
//! and per status on GSI2), its membership item in the App's device partition (the listing
//! that reads its own writes), the guard of its name while it is live, and one presence
//! item per peer in the device's partition.

use async_trait::async_trait;
use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus, DeviceUpdate};
use wa_core::provider::Presence;
use wa_core::store::{DeviceStore, Page, PageRequest, StoreError};
use wa_core::webhooks::Event;

use super::DynamoStore;
use super::codec::{Index, Item, STATUS, SeenPresence, guard, key, list};
use super::ops::{Query, Range, Write, WriteError, until_fresh};
use crate::page;

/// Whether the device holds its name (a destroyed device frees it).
fn is_live(status: DeviceStatus) -> bool {
    status != DeviceStatus::Destroyed
}

fn name_guard(d: &Device) -> Write {
    Write::insert(
        guard(key::device_name(d.app_id, &d.device_name), d.device_id),
        StoreError::Conflict("device_name"),
    )
}

fn decode_page(items: Vec<Item>, limit: u32) -> Result<Page<Device>, StoreError> {
    let devices = items
        .iter()
        .map(Device::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let (items, next) = page::cut(devices, limit, |d| d.device_id);
    Ok(Page { items, next })
}

fn after(page: &PageRequest) -> Range {
    page.after
        .map_or(Range::All, |a| Range::After(a.to_string()))
}

impl DynamoStore {
    async fn device_at_rev(&self, id: Uuid) -> Result<Option<(Device, u64)>, StoreError> {
        match self.get(key::device(id)).await? {
            Some(item) => Ok(Some((Device::try_from(&item)?, item.rev()?))),
            None => Ok(None),
        }
    }

    /// One read-modify-write of a device, with its events.
    async fn try_update_device(
        &self,
        id: Uuid,
        update: &DeviceUpdate,
        expect: &[DeviceStatus],
        events: &[Event],
    ) -> Result<Device, WriteError> {
        let (old, rev) = self.device_at_rev(id).await?.ok_or(StoreError::NotFound)?;
        if !expect.is_empty() && !expect.contains(&old.status) {
            return Err(StoreError::Conflict("status").into());
        }
        let mut d = old.clone();
        update.apply_to(&mut d);
        let mut writes = vec![Write::replace(Item::from(&d), rev)];
        match (is_live(old.status), is_live(d.status)) {
            (true, false) => writes.push(Write::delete(key::device_name(
                old.app_id,
                &old.device_name,
            ))),
            // Only an update that brings a destroyed device back can meet a taken name.
            (false, true) => writes.push(name_guard(&d)),
            _ => {}
        }
        writes.extend(self.event_writes(events).await?);
        self.write(writes).await?;
        Ok(d)
    }
}

#[async_trait]
impl DeviceStore for DynamoStore {
    async fn insert_device(&self, device: &Device) -> Result<(), StoreError> {
        // A closed App refuses first: its deletion is under way.
        let mut writes = vec![
            Write::absent(key::app_closed(device.app_id), StoreError::NotFound),
            Write::insert(
                Item::from(device).with_rev(1),
                StoreError::Conflict("device_id"),
            ),
            Write::put(
                key::app_device(device.app_id, device.device_id)
                    .with_s("kind", "app_device")
                    .with_s("device_id", device.device_id.to_string()),
            ),
        ];
        if is_live(device.status) {
            writes.push(name_guard(device));
        }
        Ok(self.write(writes).await?)
    }

    async fn get_device(&self, device_id: Uuid) -> Result<Option<Device>, StoreError> {
        Ok(self.device_at_rev(device_id).await?.map(|(d, _)| d))
    }

    async fn list_devices(
        &self,
        app_id: Uuid,
        status: Option<DeviceStatus>,
        page: PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        let mut q = Query::new(Index::Gsi1, list::app_devices(app_id)).range(after(&page));
        if let Some(s) = status {
            q = q.filter(STATUS, s.as_str().to_owned());
        }
        let items = self.query(&q, page::fetch(page.limit)).await?;
        decode_page(items, page.limit)
    }

    async fn devices_of_app(&self, app_id: Uuid) -> Result<Vec<Device>, StoreError> {
        // The membership items are read consistently; the index adds devices inserted
        // before they existed (it has long caught up with those).
        let members = Query::new(Index::Table, list::devices_of_app(app_id));
        let listed = Query::new(Index::Gsi1, list::app_devices(app_id));
        let mut ids = Vec::new();
        for item in self.query(&members, usize::MAX).await? {
            ids.push(item.uuid("device_id")?);
        }
        for item in self.query(&listed, usize::MAX).await? {
            ids.push(item.uuid("device_id")?);
        }
        ids.sort();
        ids.dedup();
        let mut devices = self
            .get_many(ids.into_iter().map(key::device).collect())
            .await?
            .iter()
            .map(Device::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        devices.sort_by_key(|d| d.device_id);
        Ok(devices)
    }

    async fn devices_with_status(
        &self,
        statuses: &[DeviceStatus],
        page: PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        let mut wanted = statuses.to_vec();
        wanted.sort_by_key(|s| s.as_str());
        wanted.dedup();
        // One index partition per status: the first `fetch(limit)` of the union are among
        // the first `fetch(limit)` of each.
        let mut items = Vec::new();
        for s in wanted {
            let q =
                Query::new(Index::Gsi2, list::devices_with_status(s.as_str())).range(after(&page));
            items.extend(self.query(&q, page::fetch(page.limit)).await?);
        }
        let mut keyed = items
            .into_iter()
            .map(|i| Ok((i.uuid("device_id")?, i)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        keyed.sort_by_key(|(id, _)| *id);
        keyed.truncate(page::fetch(page.limit));
        decode_page(keyed.into_iter().map(|(_, i)| i).collect(), page.limit)
    }

    async fn update_device(
        &self,
        device_id: Uuid,
        update: &DeviceUpdate,
        expect: &[DeviceStatus],
        events: &[Event],
    ) -> Result<Device, StoreError> {
        until_fresh(move || self.try_update_device(device_id, update, expect, events)).await
    }

    async fn put_presence(
        &self,
        device_id: Uuid,
        presence: &Presence,
        events: &[Event],
    ) -> Result<(), StoreError> {
        // Stale only when the events' order moved on: they are numbered again.
        until_fresh(move || async move {
            let mut writes = vec![Write::put(Item::from(SeenPresence {
                device_id,
                presence,
            }))];
            writes.extend(self.event_writes(events).await?);
            self.write(writes).await
        })
        .await
    }

    async fn get_presence(
        &self,
        device_id: Uuid,
        jid: &str,
    ) -> Result<Option<Presence>, StoreError> {
        self.get(key::presence(device_id, jid))
            .await?
            .as_ref()
            .map(Presence::try_from)
            .transpose()
    }
}
