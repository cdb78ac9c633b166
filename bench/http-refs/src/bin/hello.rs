//! A bare axum JSON hello endpoint: the reference the benchmark compares `GET /devices` with
//! (`bench/run` builds it with the same release profile).

use axum::{Json, Router, routing::get};

#[tokio::main]
async fn main() {
    let addr = std::env::var("HELLO_LISTEN").unwrap_or_else(|_| "127.0.0.1:0".into());
    let app = Router::new().route(
        "/hello",
        get(|| async { Json(serde_json::json!({"hello": "world"})) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("{}", listener.local_addr().expect("address"));
    axum::serve(listener, app).await.expect("serve");
}
