//! Apps in the table: the App item, the guard items of its name (per tenant) and of its
//! token hash (global, also the lookup by token), the tenant's listing (GSI1), and the
//! mark of an App closed to new devices.

use async_trait::async_trait;
use uuid::Uuid;
use wa_core::apps::App;
use wa_core::devices::Device;
use wa_core::store::{AppStore, AppUpdate, Page, PageRequest, StoreError};

use super::DynamoStore;
use super::codec::{Index, Item, guard, guard_owner, key, list, token_guard};
use super::ops::{Query, Range, Write, WriteError, until_fresh};
use crate::page;

/// The writes that create an App: guards first, so a taken name or token is reported as
/// such (the first failed condition decides).
fn insert_writes(app: &App) -> Vec<Write> {
    vec![
        Write::insert(
            guard(key::app_name(&app.tenant_id, &app.name), app.app_id),
            StoreError::Conflict("app_name"),
        ),
        Write::insert(token_guard(app), StoreError::Conflict("token_hash")),
        Write::insert(Item::from(app).with_rev(1), StoreError::Conflict("app_id")),
    ]
}

impl DynamoStore {
    async fn app_at_rev(&self, app_id: Uuid) -> Result<Option<(App, u64)>, StoreError> {
        match self.get(key::app(app_id)).await? {
            Some(item) => Ok(Some((App::try_from(&item)?, item.rev()?))),
            None => Ok(None),
        }
    }

    /// One read-modify-write of an App; `Stale` when it changed after the read.
    async fn try_update_app(&self, app_id: Uuid, u: &AppUpdate) -> Result<App, WriteError> {
        let (old, rev) = self.app_at_rev(app_id).await?.ok_or(StoreError::NotFound)?;
        let mut app = old.clone();
        if let Some(name) = &u.name {
            app.name = name.clone();
        }
        if let Some(url) = &u.webhook_url {
            app.webhook_url = url.clone();
        }
        if let Some(h) = &u.token_hash {
            app.token_hash = h.clone();
        }
        if let Some(s) = &u.webhook_secret {
            app.webhook_secret = s.clone();
        }
        if let Some(t) = u.updated_at {
            app.updated_at = t;
        }
        // The App first: if it changed meanwhile, that is what the caller must learn.
        let mut writes = vec![Write::replace(Item::from(&app), rev)];
        if app.name != old.name {
            writes.push(Write::delete(key::app_name(&old.tenant_id, &old.name)));
            writes.push(Write::insert(
                guard(key::app_name(&app.tenant_id, &app.name), app_id),
                StoreError::Conflict("app_name"),
            ));
        }
        if app.token_hash != old.token_hash {
            writes.push(Write::delete(key::app_token(&old.token_hash)));
            writes.push(Write::insert(
                token_guard(&app),
                StoreError::Conflict("token_hash"),
            ));
        } else {
            // The token's guard carries a copy of the App: it changes with it (the App's
            // revision check above covers both).
            writes.push(Write::put(token_guard(&app)));
        }
        self.write(writes).await?;
        Ok(app)
    }

    async fn try_delete_app(&self, app_id: Uuid) -> Result<(), WriteError> {
        let (app, rev) = self.app_at_rev(app_id).await?.ok_or(StoreError::NotFound)?;
        // Conditioned on the revision read: the guards deleted are the App's current ones.
        let delete_app = Write::delete(key::app(app_id)).at_rev(rev);
        self.write(vec![
            delete_app,
            Write::delete(key::app_name(&app.tenant_id, &app.name)),
            Write::delete(key::app_token(&app.token_hash)),
        ])
        .await
    }
}

#[async_trait]
impl AppStore for DynamoStore {
    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        Ok(self.write(insert_writes(app)).await?)
    }

    async fn get_app(&self, app_id: Uuid) -> Result<Option<App>, StoreError> {
        Ok(self.app_at_rev(app_id).await?.map(|(app, _)| app))
    }

    async fn app_by_token_hash(&self, token_hash: &str) -> Result<Option<App>, StoreError> {
        match self.get(key::app_token(token_hash)).await? {
            Some(g) => self.app_of_token_guard(&g, token_hash).await,
            None => Ok(None),
        }
    }

    async fn app_by_token_hash_with_device(
        &self,
        token_hash: &str,
        device_id: Uuid,
    ) -> Result<(Option<App>, Option<Device>), StoreError> {
        let (token, device) = (key::app_token(token_hash), key::device(device_id));
        let items = self.get_many(vec![token.clone(), device.clone()]).await?;
        let find = |k: &Item| items.iter().find(|i| i.primary_key() == *k);
        let app = match find(&token) {
            Some(g) => self.app_of_token_guard(g, token_hash).await?,
            None => None,
        };
        let device = find(&device).map(Device::try_from).transpose()?;
        Ok((app, device))
    }

    async fn list_apps(&self, tenant_id: &str, page: PageRequest) -> Result<Page<App>, StoreError> {
        let mut q = Query::new(Index::Gsi1, list::tenant_apps(tenant_id));
        if let Some(after) = page.after {
            q = q.range(Range::After(after.to_string()));
        }
        let items = self.query(&q, page::fetch(page.limit)).await?;
        let apps = items
            .iter()
            .map(App::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let (items, next) = page::cut(apps, page.limit, |a| a.app_id);
        Ok(Page { items, next })
    }

    async fn update_app(&self, app_id: Uuid, update: &AppUpdate) -> Result<App, StoreError> {
        until_fresh(move || self.try_update_app(app_id, update)).await
    }

    async fn delete_app(&self, app_id: Uuid) -> Result<(), StoreError> {
        until_fresh(move || self.try_delete_app(app_id)).await
    }

    async fn close_app(&self, app_id: Uuid) -> Result<(), StoreError> {
        // Device inserts check this mark in their transaction (`DeviceStore::insert_device`).
        let mark = key::app_closed(app_id).with_s("kind", "app_closed");
        Ok(self.write(vec![Write::put(mark)]).await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A point read of an item that never exists: the cheapest round trip to the table.
        self.get(key::counter("ping")).await.map(|_| ())
    }
}

impl DynamoStore {
    /// The App of `g`, the token guard of `token_hash`.
    async fn app_of_token_guard(
        &self,
        g: &Item,
        token_hash: &str,
    ) -> Result<Option<App>, StoreError> {
        // The copy of the App in the guard, written with the App.
        if g.opt_s("app_id")?.is_some() {
            return Ok(Some(App::try_from(g)?).filter(|a| a.token_hash == token_hash));
        }
        // A guard written before it carried the copy: the App itself.
        // The guard and the App are written together; the check covers a token rotated
        // between the two reads.
        Ok(self
            .get_app(guard_owner(g)?)
            .await?
            .filter(|a| a.token_hash == token_hash))
    }
}
