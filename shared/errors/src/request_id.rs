//! Request ids: the id of the request being handled, carried by a task-local so that every
//! log line and every envelope of that request (and the work it queues) names it. Choosing
//! the id of an HTTP request and echoing it in `x-request-id` is the HTTP crate's part.

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, or an empty string outside of one.
pub fn current() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

/// Runs `fut` with `id` as the current request id (for work that is not an HTTP request,
/// such as a queued command carrying the id of the request that caused it).
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Whether a caller-supplied id is acceptable: 1-128 chars of `[A-Za-z0-9._:-]`.
pub fn is_valid(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new random (v4) UUID. Its bytes come from the thread's CSPRNG (seeded from the
/// system): `Uuid::new_v4` asks the kernel for them, a system call on every request.
pub fn new_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_rule() {
        assert!(is_valid("abc-DEF_1.2:3"));
        assert!(is_valid(&"a".repeat(128)));
        assert!(!is_valid(""));
        assert!(!is_valid(&"a".repeat(129)));
        assert!(!is_valid("has space"));
        assert!(!is_valid("slash/no"));
        assert!(!is_valid("ünïcode"));
    }

    #[tokio::test]
    async fn scope_sets_the_current_id() {
        assert_eq!(current(), "");
        assert_eq!(scope("req-1".into(), async { current() }).await, "req-1");
        let id = new_id();
        assert!(is_valid(&id));
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    }
}
