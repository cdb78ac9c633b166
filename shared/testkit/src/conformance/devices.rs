//! The device store checks.

use std::sync::Arc;

use uuid::Uuid;
use wa_core::devices::{DeviceStatus as S, DeviceUpdate, LastError, Qr};
use wa_core::provider::Presence;
use wa_core::store::{DeviceStore, PageRequest, StoreError};
use wa_core::time;

use crate::fixtures::device;

/// Runs every device store check.
pub async fn device_store(s: Arc<dyn DeviceStore>) {
    let app = Uuid::now_v7();
    // round trip, with every optional field set
    let mut d = device(app, "main");
    d.qr = Some(Qr::new("2@abc".into(), time::now()));
    assert!(
        d.qr.as_ref()
            .unwrap()
            .image
            .starts_with("data:image/png;base64,")
    );
    d.last_error = Some(LastError {
        code: wa_errors::ErrorCode::TooManyDevices,
        message: "m".into(),
        at: time::now(),
    });
    d.status = S::QrGenerated;
    s.insert_device(&d).await.unwrap();
    assert_eq!(s.get_device(d.device_id).await.unwrap(), Some(d.clone()));
    assert_eq!(s.get_device(Uuid::now_v7()).await.unwrap(), None);

    // live names are unique per App; another App may reuse one
    assert_eq!(
        s.insert_device(&device(app, "main")).await,
        Err(StoreError::Conflict("device_name"))
    );
    s.insert_device(&device(Uuid::now_v7(), "main"))
        .await
        .unwrap();

    // conditional updates
    let u = DeviceUpdate {
        status: Some(S::Connected),
        qr: Some(None),
        wa_number: Some(Some("15551230001".into())),
        linked_at: Some(Some(time::now())),
        ..DeviceUpdate::default()
    };
    assert_eq!(
        s.update_device(d.device_id, &u, &[S::Expired], &[]).await,
        Err(StoreError::Conflict("status"))
    );
    let c = s
        .update_device(d.device_id, &u, &[S::QrGenerated], &[])
        .await
        .unwrap();
    assert_eq!(c.status, S::Connected);
    assert_eq!(c.qr, None);
    assert_eq!(c.wa_number.as_deref(), Some("15551230001"));
    assert_eq!(c.last_error, d.last_error, "untouched fields stay");
    assert_eq!(s.get_device(d.device_id).await.unwrap(), Some(c.clone()));
    assert_eq!(
        s.update_device(Uuid::now_v7(), &u, &[], &[]).await,
        Err(StoreError::NotFound)
    );

    // a destroyed device frees its name, keeps its record
    s.update_device(d.device_id, &DeviceUpdate::status(S::Destroyed), &[], &[])
        .await
        .unwrap();
    let again = device(app, "main");
    s.insert_device(&again)
        .await
        .expect("name reusable after destroy");
    assert_eq!(
        s.get_device(d.device_id).await.unwrap().unwrap().status,
        S::Destroyed
    );

    // listing: per App, status filter, pages in order.
    // Listings are eventually consistent (DynamoDB reads an index): listing right after
    // writing holds on SQLite and moto only. This checks order, paging and filtering.
    let app2 = Uuid::now_v7();
    let mut ids = Vec::new();
    for i in 0..5 {
        let x = device(app2, &format!("d{i}"));
        s.insert_device(&x).await.unwrap();
        ids.push(x.device_id);
    }
    s.update_device(ids[1], &DeviceUpdate::status(S::Connected), &[], &[])
        .await
        .unwrap();
    s.update_device(ids[3], &DeviceUpdate::status(S::Connected), &[], &[])
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = s
            .list_devices(app2, None, PageRequest { limit: 2, after })
            .await
            .unwrap();
        seen.extend(p.items.iter().map(|x| x.device_id));
        match p.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let connected = s
        .list_devices(
            app2,
            Some(S::Connected),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        connected
            .items
            .iter()
            .map(|x| x.device_id)
            .collect::<Vec<_>>(),
        vec![ids[1], ids[3]]
    );
    // every device of an App, destroyed ones too, read right after the writes
    let all = s.devices_of_app(app2).await.unwrap();
    assert_eq!(all.iter().map(|x| x.device_id).collect::<Vec<_>>(), ids);
    assert_eq!(
        all[1],
        s.get_device(ids[1]).await.unwrap().unwrap(),
        "the records as they are now"
    );
    let first_app: Vec<_> = s
        .devices_of_app(app)
        .await
        .unwrap()
        .into_iter()
        .map(|x| (x.device_id, x.status))
        .collect();
    assert_eq!(
        first_app,
        [
            (d.device_id, S::Destroyed),
            (again.device_id, S::Initializing)
        ]
    );
    assert!(s.devices_of_app(Uuid::now_v7()).await.unwrap().is_empty());
    let across = s
        .devices_with_status(
            &[S::Connected],
            PageRequest {
                limit: 200,
                after: None,
            },
        )
        .await
        .unwrap();
    let found: Vec<_> = across.items.iter().map(|x| x.device_id).collect();
    assert!(found.contains(&ids[1]) && found.contains(&ids[3]) && !found.contains(&ids[0]));

    // presence cache
    let p = Presence {
        jid: "15550001111@s.whatsapp.net".into(),
        presence: "available".into(),
        chat_state: Some("composing".into()),
        last_seen: None,
        updated_at: time::now(),
    };
    s.put_presence(ids[0], &p, &[]).await.unwrap();
    assert_eq!(
        s.get_presence(ids[0], &p.jid).await.unwrap(),
        Some(p.clone())
    );
    let p2 = Presence {
        presence: "unavailable".into(),
        chat_state: None,
        ..p.clone()
    };
    s.put_presence(ids[0], &p2, &[]).await.unwrap();
    assert_eq!(s.get_presence(ids[0], &p.jid).await.unwrap(), Some(p2));
    assert_eq!(s.get_presence(ids[1], &p.jid).await.unwrap(), None);

    // racing inserts of one live name: one winner
    let app3 = Uuid::now_v7();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let s = s.clone();
            let x = device(app3, "race");
            tokio::spawn(async move { s.insert_device(&x).await })
        })
        .collect();
    assert_eq!(crate::races::successes(tasks).await, 1, "one winner");
}
