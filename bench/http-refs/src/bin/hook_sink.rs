//! A fast webhook receiver for `bench/run`: answers 204, counts deliveries, and checks that
//! each device's events arrive in order (the benchmark numbers them per device).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Json, Router, extract::State, http::StatusCode, routing::get, routing::post};
use serde_json::{Value, json};

#[derive(Default)]
struct Stats {
    count: u64,
    first_ms: u128,
    last_ms: u128,
    out_of_order: u64,
    last_n: HashMap<String, i64>,
}

type Shared = Arc<Mutex<Stats>>;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

async fn hook(State(s): State<Shared>, Json(body): Json<Value>) -> StatusCode {
    let device = body["device_id"].as_str().unwrap_or_default().to_owned();
    let n = body["payload"]["n"].as_i64().unwrap_or(-1);
    let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
    let t = now_ms();
    if st.count == 0 {
        st.first_ms = t;
    }
    st.count += 1;
    st.last_ms = t;
    let last = st.last_n.insert(device, n).unwrap_or(-1);
    if n <= last {
        st.out_of_order += 1;
    }
    StatusCode::NO_CONTENT
}

async fn stats(State(s): State<Shared>) -> Json<Value> {
    let st = s.lock().unwrap_or_else(|p| p.into_inner());
    Json(
        json!({"count": st.count, "first_ms": st.first_ms as u64, "last_ms": st.last_ms as u64, "out_of_order": st.out_of_order}),
    )
}

#[tokio::main]
async fn main() {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/stats", get(stats))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("address"));
    axum::serve(listener, app).await.expect("serve");
}
