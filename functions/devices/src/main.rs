//! `wa-fn-devices`: the device routes, inbound media, webhook deliveries and /health as a
//! Lambda behind API Gateway, and the sandbox's control routes when the workers run the
//! sandbox (`WA_PROVIDER=sandbox`). What only a live session answers is asked of the
//! device's worker (`wa_core::session::QueuedSessions`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let routes = wa_fn_devices::router()
        .merge(wa_fn_devices::media_router())
        .merge(wa_fn_devices::webhooks_router())
        .merge(wa_api::health_router());
    let routes = if wa_lambda_http::serves_sandbox() {
        routes.merge(wa_fn_devices::sandbox_router())
    } else {
        routes
    };
    wa_lambda_http::serve(routes).await
}
