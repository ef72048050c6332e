//! Polling with a deadline: the way tests wait for a condition, instead of sleeping.

use std::time::{Duration, Instant};

/// How long to pause between two checks: short, so a test never waits much longer than needed.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Checks `cond` until it holds. Blocks the thread between checks; in async tests use
/// [`wait_until_async`].
///
/// # Panics
/// When `cond` still does not hold after `timeout`, naming `what` was awaited.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Awaits `cond` until it holds.
///
/// # Panics
/// When `cond` still does not hold after `timeout`, naming `what` was awaited.
pub async fn wait_until_async(timeout: Duration, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    wait_for(timeout, what, async || cond().await.then_some(())).await;
}

/// Awaits `f` until it returns `Some`, and returns that value (e.g. a job id once it exists).
///
/// # Panics
/// When `f` still returns `None` after `timeout`, naming `what` was awaited.
pub async fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until(Duration::from_secs(5), "the third call", || {
            calls += 1;
            calls == 3
        });
        assert_eq!(calls, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for something that never happens")]
    fn wait_until_panics_at_the_deadline_naming_what_it_waited_for() {
        wait_until(
            Duration::from_millis(250),
            "something that never happens",
            || false,
        );
    }

    #[tokio::test]
    async fn wait_for_returns_the_first_value() {
        let mut calls = 0;
        let value = wait_for(Duration::from_secs(5), "a value", async || {
            calls += 1;
            (calls == 2).then_some(calls * 10)
        })
        .await;
        assert_eq!(value, 20);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after")]
    async fn wait_until_async_panics_at_the_deadline() {
        wait_until_async(Duration::from_millis(250), "never", async || false).await;
    }
}
