//! Inbound media in S3: `wa-server` on moto's DynamoDB with `WA_MEDIA_BUCKET` stores a
//! sandbox device's inbound images in the bucket (nothing under the data directory);
//! `GET /media` answers a small one with its bytes and one over 4 MiB with 302 Found to a
//! presigned URL that moto serves; destroying the device deletes its objects.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::devices::{app_token, call, linked_device};
use crate::support::Server;
use crate::webhooks::SECRET;

/// `len` bytes that start like a JPEG file (what the sandbox checks an image by).
pub fn jpeg(len: usize) -> Vec<u8> {
    let mut b = vec![0xFFu8, 0xD8, 0xFF, 0xE0, 0, 0x10];
    b.extend((b.len()..len).map(|i| (i % 251) as u8));
    b
}

/// Receives `bytes` as an inbound image of `device`; answers its `media_path`.
async fn inbound_image(server: &Server, token: &str, device: &str, bytes: &[u8]) -> String {
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let (s, v) = call(
        server,
        "POST",
        &format!("/sandbox/devices/{device}/inbound"),
        token,
        Some(json!({"from": "15550004444", "type": "image", "mime_type": "image/jpeg", "data_base64": data})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["data"]["message"]["media_path"]
        .as_str()
        .unwrap_or_else(|| panic!("stored with its media: {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_media_in_s3_are_served_or_redirected_and_deleted_with_their_device() {
    let endpoint = wa_testkit::moto::endpoint();
    let prefix = crate::aws::moto_prefix("e2e");
    let (table, bucket) = (format!("{prefix}-state"), format!("{prefix}-media"));
    let mut aws_env = crate::aws::moto_env(endpoint, &table);
    aws_env.push(("WA_MEDIA_BUCKET", bucket.as_str()));
    let stdout = crate::aws::aws_init(&aws_env);
    assert!(stdout.contains(&format!("bucket {bucket}")), "{stdout}");

    let mut env = aws_env.clone();
    env.extend([SECRET, ("WA_PROVIDER", "sandbox")]);
    let server = Server::start(&env);
    let token = app_token(&server).await;
    let device = linked_device(&server, &token, "media").await;
    // Redirects are checked here, not followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let get_media = |path: &str| {
        http.get(server.url("/media"))
            .query(&[("path", path)])
            .bearer_auth(&token)
            .send()
    };

    let small = jpeg(6);
    let path = inbound_image(&server, &token, &device, &small).await;
    let res = get_media(&path).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().as_ref(), small.as_slice());

    let large = jpeg(4 * 1024 * 1024 + 300_000);
    let path = inbound_image(&server, &token, &device, &large).await;
    let res = get_media(&path).await.unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(endpoint), "a URL of moto: {location}");
    assert!(location.contains("X-Amz-Expires=300"), "{location}");
    let res = http.get(&location).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().as_ref() == large.as_slice());
    assert!(
        !server.data_dir.join("media").exists(),
        "nothing under the data directory"
    );

    // Another App sees none of it.
    let other = app_token(&server).await;
    let res = http
        .get(server.url("/media"))
        .query(&[("path", &path)])
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let s3 = wa_media::S3Media::emulator_client(endpoint, wa_testkit::moto::REGION);
    let keys = async || {
        let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
        listed.contents().len()
    };
    assert_eq!(keys().await, 2);
    let (s, v) = call(
        &server,
        "DELETE",
        &format!("/devices/{device}"),
        &token,
        None,
    )
    .await;
    assert!(s < 300, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while keys().await > 0 {
        assert!(
            Instant::now() < deadline,
            "the device's media objects are deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = get_media(&path).await.unwrap();
    let v: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}
