//! In-process caches of the store's hottest reads: the App of a token hash (every request
//! with an App token), an App by id, a device (every send), a page of an App's devices.
//!
//! Only for a process that is the only writer of its database file
//! (`SqliteStore::with_read_caches`): each cache belongs to a table generation
//! (`Db::generation`), which every write of that table through this process moves around
//! its commit. An entry is served only at the generation it was read at, so a rotated
//! token, a deleted App or a changed device is never served once its write is committed.
//! Writes of another process (a separate `wa-worker` on the same file) are not seen: such
//! processes do not cache.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use uuid::Uuid;
use wa_core::apps::App;
use wa_core::devices::{Device, DeviceStatus};
use wa_core::store::Page;

use crate::db::{Db, Marks};

/// The generation of the `apps` table.
pub(crate) const APPS: u8 = 0;
/// The generation of the `devices` table.
pub(crate) const DEVICES: u8 = 1;

pub(crate) const APPS_MARK: Marks = Marks::table(APPS);
pub(crate) const DEVICES_MARK: Marks = Marks::table(DEVICES);

/// Entries one cache holds at most; a full cache starts over (they are cheap to read again).
const MAX_ENTRIES: usize = 10_000;

/// A page of devices: the App, the status filter, the cursor and the page size.
pub(crate) type DevicePageKey = (Uuid, Option<DeviceStatus>, Option<Uuid>, u32);

/// The caches of one store.
pub(crate) struct Caches {
    pub apps_by_token: Cache<String, App>,
    pub apps: Cache<Uuid, App>,
    pub devices: Cache<Uuid, Device>,
    pub device_pages: Cache<DevicePageKey, Page<Device>>,
}

impl Caches {
    pub fn new() -> Caches {
        Caches {
            apps_by_token: Cache::new(APPS),
            apps: Cache::new(APPS),
            devices: Cache::new(DEVICES),
            device_pages: Cache::new(DEVICES),
        }
    }
}

/// Values of one table's reads, all read at `generation`.
struct Entries<K, V> {
    generation: u64,
    map: HashMap<K, Arc<V>>,
}

/// Found values (absent ones are not cached: unknown tokens must not fill memory).
pub(crate) struct Cache<K, V> {
    table: u8,
    entries: Mutex<Entries<K, V>>,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn new(table: u8) -> Self {
        Cache {
            table,
            entries: Mutex::new(Entries {
                generation: 0,
                map: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key`: cached, or `load`ed (and cached when no write of the table was
    /// under way or committed while it ran).
    pub fn get_or_load<Q, E>(
        &self,
        db: &Db,
        key: &Q,
        load: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let generation = db.generation(self.table);
        // Odd: a commit of the table is under way, and whatever is read now may be
        // overwritten by it without a later generation to tell.
        let stable = generation.is_multiple_of(2);
        if stable {
            let hit = {
                let entries = self.lock();
                (entries.generation == generation)
                    .then(|| entries.map.get(key).cloned())
                    .flatten()
            };
            if let Some(v) = hit {
                return Ok(Some((*v).clone()));
            }
        }
        let value = load()?;
        if let Some(v) = &value
            && stable
            && db.generation(self.table) == generation
        {
            let mut entries = self.lock();
            if entries.generation != generation {
                if entries.generation > generation {
                    // Entries of a later generation are there already.
                    return Ok(value);
                }
                entries.map.clear();
                entries.generation = generation;
            }
            if entries.map.len() >= MAX_ENTRIES {
                entries.map.clear();
            }
            entries.map.insert(key.to_owned(), Arc::new(v.clone()));
        }
        Ok(value)
    }
}
