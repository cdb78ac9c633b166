//! The conformance suite of the media port (`wa_core::media::MediaStore`).

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use wa_core::media::{Media, MediaPath, MediaStore};

/// Checks a media store: missing files, round trips (empty, replaced, a megabyte), that
/// every path and deletion stays within its App and device, and, where the store hands out
/// URLs, that `fetch` (an HTTP GET answering status and body) downloads the file from one.
pub async fn media_store<F>(store: Arc<dyn MediaStore>, fetch: F)
where
    F: AsyncFn(String) -> (u16, Vec<u8>),
{
    let (app, other_app) = (Uuid::now_v7(), Uuid::now_v7());
    let (dev, dev2) = (Uuid::now_v7(), Uuid::now_v7());
    let p = MediaPath::inbound(app, dev, "3EB0A", "image/png");
    let media = |bytes: &[u8]| {
        Some(Media {
            bytes: bytes.to_vec(),
            content_type: "image/png",
        })
    };

    assert_eq!(store.get(&p).await.unwrap(), None, "nothing stored yet");
    assert_eq!(store.size(&p).await.unwrap(), None, "nothing stored yet");

    store.put(&p, b"first").await.unwrap();
    assert_eq!(store.get(&p).await.unwrap(), media(b"first"));
    assert_eq!(store.size(&p).await.unwrap(), Some(5));
    store.put(&p, b"second!").await.unwrap();
    assert_eq!(store.get(&p).await.unwrap(), media(b"second!"), "replaced");
    assert_eq!(store.size(&p).await.unwrap(), Some(7));

    let empty = MediaPath::inbound(app, dev, "EMPTY", "text/plain");
    store.put(&empty, b"").await.unwrap();
    assert_eq!(store.size(&empty).await.unwrap(), Some(0));
    assert_eq!(store.get(&empty).await.unwrap().unwrap().bytes, b"");
    let big = MediaPath::inbound(app, dev, "BIG", "application/zip");
    let bytes: Vec<u8> = (0..(1 << 20) + 7).map(|i: u32| (i % 251) as u8).collect();
    store.put(&big, &bytes).await.unwrap();
    let got = store.get(&big).await.unwrap().unwrap();
    assert!(got.bytes == bytes, "a megabyte round-trips");
    assert_eq!(got.content_type, "application/zip");

    // The same device and id under another App is another file.
    let other = MediaPath::parse(&format!("media/{other_app}/{dev}-3EB0A.png")).unwrap();
    assert_eq!(store.get(&other).await.unwrap(), None, "not another App's");
    store.put(&other, b"other app").await.unwrap();
    assert_eq!(store.get(&p).await.unwrap(), media(b"second!"));
    assert_eq!(store.get(&other).await.unwrap(), media(b"other app"));
    let p2 = MediaPath::inbound(app, dev2, "3EB0A", "image/png");
    store.put(&p2, b"device two").await.unwrap();

    let url = store.url(&p, Duration::from_secs(300)).await.unwrap();
    assert_eq!(url.is_some(), store.has_urls(), "{url:?}");
    if let Some(url) = url {
        assert_eq!(
            fetch(url).await,
            (200, b"second!".to_vec()),
            "the URL serves it"
        );
        let url = store.url(&other, Duration::from_secs(60)).await.unwrap();
        assert_eq!(fetch(url.unwrap()).await, (200, b"other app".to_vec()));
    }

    store.delete_device(app, dev).await.unwrap();
    for gone in [&p, &empty, &big] {
        assert_eq!(store.get(gone).await.unwrap(), None, "{gone} deleted");
        assert_eq!(store.size(gone).await.unwrap(), None, "{gone} deleted");
    }
    assert_eq!(
        store.get(&p2).await.unwrap(),
        media(b"device two"),
        "other device kept"
    );
    assert_eq!(
        store.get(&other).await.unwrap(),
        media(b"other app"),
        "other App kept"
    );
    store
        .delete_device(app, dev)
        .await
        .expect("nothing left to delete");

    store.delete_app(app).await.unwrap();
    assert_eq!(
        store.get(&p2).await.unwrap(),
        None,
        "the App's files deleted"
    );
    assert_eq!(
        store.get(&other).await.unwrap(),
        media(b"other app"),
        "other App kept"
    );
    store.delete_app(app).await.expect("nothing left to delete");
    store
        .delete_device(app, dev2)
        .await
        .expect("nothing to delete");
    store
        .delete_app(Uuid::now_v7())
        .await
        .expect("an App without media");

    store.delete_app(other_app).await.unwrap();
    assert_eq!(store.get(&other).await.unwrap(), None);
}
