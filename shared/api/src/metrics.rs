//! HTTP metrics, recorded by the request-id middleware for every request of every router
//! (their names are in `wa_core::metrics`, with the others).
//!
//! They go through the `metrics` facade: without an installed recorder (Lambdas, most tests)
//! every call is a no-op. `wa-server` installs a Prometheus recorder and serves `/metrics`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::Method;
use wa_core::metrics::{HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, UNMATCHED};

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
    let route = route.unwrap_or(UNMATCHED);
    let method = method_label(method);
    if !CACHING.load(Ordering::Relaxed) {
        counter(route, method, status).increment(1);
        histogram(route, method).record(elapsed.as_secs_f64());
        return;
    }
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        let of_route = match handles.get_mut(route) {
            Some(h) => h,
            None => handles.entry(route.to_owned()).or_default(),
        };
        match of_route
            .counts
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            Some((_, _, c)) => c.increment(1),
            None => {
                let c = counter(route, method, status);
                c.increment(1);
                of_route.counts.push((method, status, c));
            }
        }
        match of_route.durations.iter().find(|(m, _)| *m == method) {
            Some((_, h)) => h.record(elapsed.as_secs_f64()),
            None => {
                let h = histogram(route, method);
                h.record(elapsed.as_secs_f64());
                of_route.durations.push((method, h));
            }
        }
    });
}

fn counter(route: &str, method: &'static str, status: u16) -> metrics::Counter {
    metrics::counter!(
        HTTP_REQUESTS_TOTAL,
        "route" => route.to_owned(),
        "method" => method,
        "status" => status.to_string(),
    )
}

fn histogram(route: &str, method: &'static str) -> metrics::Histogram {
    metrics::histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        "route" => route.to_owned(),
        "method" => method,
    )
}

/// Whether `http_request` keeps the handles it registers (`cache_handles`).
static CACHING: AtomicBool = AtomicBool::new(false);

/// The handles of one route: per method its duration histogram, per method and status its
/// counter (a handful each).
#[derive(Default)]
struct RouteHandles {
    durations: Vec<(&'static str, metrics::Histogram)>,
    counts: Vec<(&'static str, u16, metrics::Counter)>,
}

thread_local! {
    /// Per thread, so that recording takes no lock of its own. Routes are templates, so the
    /// map stays as small as the router.
    static HANDLES: RefCell<HashMap<String, RouteHandles>> = RefCell::new(HashMap::new());
}

/// From now on `http_request` keeps the handles it registers with the global recorder
/// instead of looking them up (building their labels) on every request. Call it once the
/// process's recorder is installed: handles registered before would be no-ops for good.
pub fn cache_handles() {
    CACHING.store(true, Ordering::Relaxed);
}
