//! `wa-fn-apps`: the /apps routes (tenant JWT) as a Lambda behind API Gateway.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    wa_lambda_http::serve(wa_fn_apps::router()).await
}
