//! `wa-fn-messages`: the message routes as a Lambda behind API Gateway. A send waits for
//! the worker's outcome by polling the message record (up to `WA_SEND_WAIT_MS`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    wa_lambda_http::serve(wa_fn_messages::router()).await
}
