//! Racing tasks in tests: how many of them succeeded.

use tokio::task::JoinHandle;

/// How many of `tasks` answered `Ok` (a task that panicked fails the test).
pub async fn successes<T, E>(tasks: Vec<JoinHandle<Result<T, E>>>) -> usize {
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    ok
}
