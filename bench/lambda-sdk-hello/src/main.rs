//! The lambda_http hello (`bench/lambda-hello`) plus what any function that talks to
//! DynamoDB and SQS through the AWS SDK carries: clients built from the environment by
//! aws-config, one GetItem (`WA_TABLE_NAME`) and one SendMessage (`WA_SENDS_QUEUE_URL`, a
//! standard queue) per request to `/hello`; other paths are answered 404 without a call, as
//! the functions answer unauthenticated requests. The footprint benchmark (`bench/lambda`)
//! measures it beside the hello, to show the share of a function's size and init time that
//! the SDK alone accounts for.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Error, Request, Response, service_fn};

struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    table: String,
    queue_url: String,
}

async fn hello(clients: &Clients, request: Request) -> Result<Response<Body>, Error> {
    if request.uri().path() != "/hello" {
        return Ok(Response::builder().status(404).body(Body::Empty)?);
    }
    let item = clients
        .dynamodb
        .get_item()
        .table_name(&clients.table)
        .key("pk", AttributeValue::S("hello".into()))
        .key("sk", AttributeValue::S("hello".into()))
        .send()
        .await?;
    clients
        .sqs
        .send_message()
        .queue_url(&clients.queue_url)
        .message_body("hello")
        .send()
        .await?;
    let found = item.item().is_some();
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"hello":"world","found":{found}}}"#
        )))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
        table: std::env::var("WA_TABLE_NAME").unwrap_or_default(),
        queue_url: std::env::var("WA_SENDS_QUEUE_URL").unwrap_or_default(),
    };
    let clients = &clients;
    lambda_http::run(service_fn(move |request| hello(clients, request))).await
}
