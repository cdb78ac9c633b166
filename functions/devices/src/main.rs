//! `wa-fn-devices`: the device routes, inbound media, webhook deliveries and /health as a
//! Lambda behind API Gateway. The sandbox's control routes are not served here: the sandbox
//! lives in the worker's process (run `wa-server` with `WA_PROVIDER=sandbox` to use it).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    wa_lambda_http::serve(
        wa_fn_devices::router()
            .merge(wa_fn_devices::media_router())
            .merge(wa_fn_devices::webhooks_router())
            .merge(wa_api::health_router()),
    )
    .await
}
