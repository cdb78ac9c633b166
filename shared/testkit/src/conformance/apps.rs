//! The App store checks.

use std::sync::Arc;

use uuid::Uuid;
use wa_core::apps::App;
use wa_core::auth;
use wa_core::devices::Device;
use wa_core::store::{AppStore, AppUpdate, PageRequest, Store, StoreError};

use crate::fixtures::{app, device, tenant};

pub async fn app_store(store: Arc<dyn AppStore>) {
    insert_get_round_trip(&*store).await;
    names_are_unique_per_tenant(&*store).await;
    token_hash_lookup(&*store).await;
    listing_pages_in_order(&*store).await;
    updates_are_partial_and_checked(&*store).await;
    delete(&*store).await;
    racing_inserts_have_one_winner(store.clone()).await;
    store.ping().await.expect("ping");
}

async fn insert_get_round_trip(s: &dyn AppStore) {
    let a = app(&tenant(), "round trip");
    s.insert_app(&a).await.expect("insert");
    assert_eq!(
        s.get_app(a.app_id).await.unwrap(),
        Some(a.clone()),
        "get returns what was inserted"
    );
    assert_eq!(s.get_app(Uuid::now_v7()).await.unwrap(), None, "unknown id");
    let mut b = app(&a.tenant_id, "no webhook");
    b.webhook_url = None;
    s.insert_app(&b).await.unwrap();
    assert_eq!(
        s.get_app(b.app_id).await.unwrap().unwrap().webhook_url,
        None
    );
}

async fn names_are_unique_per_tenant(s: &dyn AppStore) {
    let t = tenant();
    s.insert_app(&app(&t, "shop")).await.unwrap();
    assert_eq!(
        s.insert_app(&app(&t, "shop")).await,
        Err(StoreError::Conflict("app_name")),
        "same name in one tenant"
    );
    s.insert_app(&app(&tenant(), "shop"))
        .await
        .expect("same name in another tenant");
    s.insert_app(&app(&t, "Shop"))
        .await
        .expect("names are case-sensitive");
}

async fn token_hash_lookup(s: &dyn AppStore) {
    let a = app(&tenant(), "tokens");
    s.insert_app(&a).await.unwrap();
    let found = s.app_by_token_hash(&a.token_hash).await.unwrap();
    assert_eq!(found.map(|x| x.app_id), Some(a.app_id));
    assert_eq!(
        s.app_by_token_hash(&auth::hash_token("nope"))
            .await
            .unwrap(),
        None
    );
    let mut dup = app(&a.tenant_id, "dup token");
    dup.token_hash = a.token_hash.clone();
    assert_eq!(
        s.insert_app(&dup).await,
        Err(StoreError::Conflict("token_hash"))
    );
}

async fn listing_pages_in_order(s: &dyn AppStore) {
    let t = tenant();
    let mut ids = Vec::new();
    for i in 0..5 {
        let a = app(&t, &format!("list {i}"));
        s.insert_app(&a).await.unwrap();
        ids.push(a.app_id);
    }
    s.insert_app(&app(&tenant(), "other tenant")).await.unwrap();
    // Listings are eventually consistent (DynamoDB reads an index): listing right after
    // writing holds on SQLite and moto only. This checks order, paging and filtering.
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = s
            .list_apps(&t, PageRequest { limit: 2, after })
            .await
            .unwrap();
        assert!(page.items.len() <= 2, "limit respected");
        assert!(
            page.items.iter().all(|a| a.tenant_id == t),
            "only the tenant's apps"
        );
        seen.extend(page.items.iter().map(|a| a.app_id));
        pages += 1;
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 10, "pagination terminates");
    }
    assert_eq!(seen, ids, "every app once, in creation order");
    let empty = s
        .list_apps(
            &tenant(),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(empty.items.is_empty() && empty.next.is_none());
}

async fn updates_are_partial_and_checked(s: &dyn AppStore) {
    let t = tenant();
    let a = app(&t, "before");
    s.insert_app(&a).await.unwrap();
    s.insert_app(&app(&t, "taken")).await.unwrap();
    let later = a.updated_at + ::time::Duration::seconds(5);
    let renamed = s
        .update_app(
            a.app_id,
            &AppUpdate {
                name: Some("after".into()),
                updated_at: Some(later),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "after");
    assert_eq!(renamed.updated_at, later);
    assert_eq!(renamed.webhook_url, a.webhook_url, "untouched fields stay");
    assert_eq!(renamed.token_hash, a.token_hash);
    assert_eq!(renamed.created_at, a.created_at);
    // the old name is free again
    s.insert_app(&app(&t, "before"))
        .await
        .expect("old name is free after a rename");
    let cleared = s
        .update_app(
            a.app_id,
            &AppUpdate {
                webhook_url: Some(None),
                token_hash: Some("h2".into()),
                webhook_secret: Some("whsec_new".into()),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.webhook_url, None);
    assert_eq!(cleared.webhook_secret, "whsec_new");
    assert_eq!(
        s.app_by_token_hash(&a.token_hash).await.unwrap(),
        None,
        "old token hash is gone"
    );
    assert_eq!(
        s.app_by_token_hash("h2").await.unwrap().map(|x| x.app_id),
        Some(a.app_id)
    );
    assert_eq!(
        s.update_app(
            a.app_id,
            &AppUpdate {
                name: Some("taken".into()),
                ..AppUpdate::default()
            }
        )
        .await,
        Err(StoreError::Conflict("app_name")),
        "rename onto a taken name"
    );
    assert_eq!(s.get_app(a.app_id).await.unwrap().unwrap().name, "after");
    assert_eq!(
        s.update_app(Uuid::now_v7(), &AppUpdate::default()).await,
        Err(StoreError::NotFound)
    );
}

async fn delete(s: &dyn AppStore) {
    let a = app(&tenant(), "doomed");
    s.insert_app(&a).await.unwrap();
    s.delete_app(a.app_id).await.unwrap();
    assert_eq!(s.get_app(a.app_id).await.unwrap(), None);
    assert_eq!(s.app_by_token_hash(&a.token_hash).await.unwrap(), None);
    assert_eq!(s.delete_app(a.app_id).await, Err(StoreError::NotFound));
    s.insert_app(&app(&a.tenant_id, "doomed"))
        .await
        .expect("name free after delete");
}

async fn racing_inserts_have_one_winner(s: Arc<dyn AppStore>) {
    let t = tenant();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            let a = app(&t, "race");
            tokio::spawn(async move { s.insert_app(&a).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict("app_name")) => {}
            Err(e) => panic!("racing insert failed with {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of the racing inserts wins");
}

/// Closing an App to new devices (the first step of its deletion): the devices inserted
/// before are all listed at once by `devices_of_app`, inserts after are refused, before
/// and after the App is deleted; other Apps are not affected.
pub async fn closed_apps(s: Arc<dyn Store>) {
    let a = app(&tenant(), "closing");
    s.insert_app(&a).await.unwrap();
    let before = device(a.app_id, "before");
    s.insert_device(&before).await.unwrap();
    // The App of a token and a device, read together.
    let ids = |(app, device): (Option<App>, Option<Device>)| {
        (app.map(|a| a.app_id), device.map(|d| d.device_id))
    };
    let with = |hash: String, id: Uuid| {
        let s = s.clone();
        async move { ids(s.app_by_token_hash_with_device(&hash, id).await.unwrap()) }
    };
    assert_eq!(
        with(a.token_hash.clone(), before.device_id).await,
        (Some(a.app_id), Some(before.device_id))
    );
    assert_eq!(
        with(auth::hash_token("nope"), before.device_id).await,
        (None, Some(before.device_id)),
        "an unknown token; the device is anyone's"
    );
    assert_eq!(
        with(a.token_hash.clone(), Uuid::now_v7()).await,
        (Some(a.app_id), None),
        "an unknown device"
    );
    s.close_app(a.app_id).await.unwrap();
    s.close_app(a.app_id).await.expect("closing twice is fine");
    assert_eq!(
        s.insert_device(&device(a.app_id, "after")).await,
        Err(StoreError::NotFound),
        "a closed App takes no new device"
    );
    assert_eq!(
        s.devices_of_app(a.app_id).await.unwrap(),
        [before],
        "the device inserted just before the close is there to destroy"
    );
    assert!(
        s.get_app(a.app_id).await.unwrap().is_some(),
        "closed, not deleted"
    );
    s.delete_app(a.app_id).await.unwrap();
    assert_eq!(
        s.insert_device(&device(a.app_id, "later")).await,
        Err(StoreError::NotFound),
        "nor after its deletion"
    );
    let other = app(&a.tenant_id, "open");
    s.insert_app(&other).await.unwrap();
    s.insert_device(&device(other.app_id, "after"))
        .await
        .expect("another App is open");
    s.insert_device(&device(Uuid::now_v7(), "no app"))
        .await
        .expect("devices of Apps never closed are inserted");
}
