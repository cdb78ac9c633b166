//! HTTP metrics, recorded by the request-id middleware for every request of every router.
//!
//! They go through the `metrics` facade: without an installed recorder (Lambdas, most tests)
//! every call is a no-op. `wa-server` installs a Prometheus recorder and serves `/metrics`.

use std::time::Duration;

use http::Method;

/// Counter `wa_http_requests_total{route, method, status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "wa_http_requests_total";
/// Histogram `wa_http_request_duration_seconds{route, method}`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "wa_http_request_duration_seconds";

/// The `route` label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The `method` label: the standard methods by name, anything else `other` (the label set
/// stays bounded whatever callers send).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records one finished request. `route` is the matched route template
/// (`/devices/{device_id}`), never a raw path, or `None` when no route matched.
pub fn http_request(route: Option<&str>, method: &Method, status: u16, elapsed: Duration) {
    let route = route.unwrap_or(UNMATCHED).to_owned();
    let method = method_label(method);
    metrics::counter!(
        HTTP_REQUESTS_TOTAL,
        "route" => route.clone(),
        "method" => method,
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        "route" => route,
        "method" => method,
    )
    .record(elapsed.as_secs_f64());
}
