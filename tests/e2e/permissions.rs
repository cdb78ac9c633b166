//! The data directory is private: under a permissive umask (022) the real binary creates
//! its directories 0700 and its files 0600 (the database holds webhook secrets, the session
//! stores WhatsApp keys).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::devices::{call, create_app, linked_device};
use crate::support::{Server, send};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn assert_modes(expected: u32, paths: &[&Path]) {
    for p in paths {
        assert_eq!(
            format!("{:o}", mode(p)),
            format!("{expected:o}"),
            "{}",
            p.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_under_umask_022() {
    let root = tempfile::tempdir().unwrap();
    // Created by the server; no WA_JWT_SECRET, so it generates `jwt_secret` there too.
    let data = root.path().join("data");
    let server = Server::start_with_umask("022", &data, &[("WA_PROVIDER", "sandbox")]);
    let (ok, jwt, err) = server.cli(&["token", "--tenant", "acme"], &[]);
    assert!(ok, "{err}");
    let app = create_app(&server, &jwt, json!({"name": "private"})).await;
    let t = app["app_token"].as_str().unwrap().to_owned();
    let app_id = app["app"]["app_id"].as_str().unwrap().to_owned();
    let id = linked_device(&server, &t, "main").await;
    let jpeg = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [0xFFu8, 0xD8, 0xFF, 0xE0, 0, 0x10],
    );
    let (s, v) = call(
        &server,
        "POST",
        &format!("/sandbox/devices/{id}/inbound"),
        &t,
        Some(json!({"from": "15550004444", "type": "image", "mime_type": "image/jpeg", "data_base64": jpeg})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let media_path = v["data"]["message"]["media_path"]
        .as_str()
        .unwrap_or_else(|| panic!("stored with its media: {v}"))
        .to_owned();

    let media_dir = data.join("media");
    assert_modes(0o700, &[&data, &media_dir, &media_dir.join(&app_id)]);
    let files = [
        "wa.db",
        "wa.db-wal",
        "wa.db-shm",
        "wa.db.lock",
        "jwt_secret",
    ];
    let files: Vec<_> = files.iter().map(|f| data.join(f)).collect();
    let mut paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let media_file = data.join(&media_path);
    paths.push(&media_file);
    assert_modes(0o600, &paths);
    drop(server);

    // The real provider's sessions directory (no device: nothing connects anywhere).
    let real = root.path().join("real");
    let server = Server::start_with_umask(
        "022",
        &real,
        &[("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e")],
    );
    let (s, _, _) = send(server.http.get(server.url("/health"))).await;
    assert_eq!(s, 200);
    let sessions = real.join("sessions");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sessions.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no sessions directory"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_modes(0o700, &[&real, &sessions]);
    assert_modes(0o600, &[&real.join("wa.db"), &real.join("wa.db.lock")]);
}
