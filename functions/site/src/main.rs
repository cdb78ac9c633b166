//! `wa-fn-site`: the OpenAPI document, the docs page and the dashboard as a Lambda behind
//! API Gateway, and the `$default` route: every path routed to no other function answers
//! here, with the 404 `not_found` envelope (and 405 for a wrong method on a path it serves).
//! The document describes the sandbox's routes when the workers run it (`WA_PROVIDER`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let doc = wa_fn_site::document(wa_lambda_http::serves_sandbox());
    wa_lambda_http::serve_router(wa_fn_site::router(&doc)).await
}
