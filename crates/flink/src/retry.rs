//! When a failed call is tried again.
//!
//! Only idempotent reads (`GET`) are retried, and only after transient failures (connection
//! refused or reset, timeout, HTTP 502/503/504). A trigger (savepoint, stop, checkpoint,
//! jar run, cancel) is never repeated silently: a repeat could take a second savepoint or
//! start a second job, so the caller decides.

use std::time::Duration;

use reqwest::Method;

use crate::error::Error;

/// Retry policy for idempotent reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included; 1 means no retry.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further retry.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, waiting 200 ms then 400 ms: enough to ride over a JobManager leader
    /// change or a dropped keep-alive connection without hiding a real outage.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// How long to wait before trying again after `attempts_made` attempts of a `method`
    /// call failed with `error`, or `None` when the call must not be repeated.
    pub fn delay_before_retry(
        &self,
        method: &Method,
        error: &Error,
        attempts_made: u32,
    ) -> Option<Duration> {
        if *method != Method::GET || !error.is_transient() || attempts_made >= self.max_attempts {
            return None;
        }
        let factor = 2u32.saturating_pow(attempts_made.saturating_sub(1));
        Some(
            self.initial_backoff
                .saturating_mul(factor)
                .min(self.max_backoff),
        )
    }

    /// The longest a read can spend waiting between attempts under this policy (not
    /// counting the attempts themselves).
    pub fn total_backoff(&self) -> Duration {
        (1..self.max_attempts)
            .map(|n| {
                self.initial_backoff
                    .saturating_mul(2u32.saturating_pow(n - 1))
                    .min(self.max_backoff)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CallSite;

    fn refused() -> Error {
        Error::Unreachable {
            at: CallSite {
                endpoint: "GET /v1/jobs".into(),
                jobmanager: "http://jm:8081/".into(),
            },
            detail: "connection refused".into(),
        }
    }

    #[test]
    fn transient_get_failures_are_retried_with_doubling_backoff() {
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
        };
        let delays: Vec<_> = (1..=4)
            .map(|n| policy.delay_before_retry(&Method::GET, &refused(), n))
            .collect();
        assert_eq!(
            delays,
            vec![
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(250)),
                None
            ]
        );
        assert_eq!(policy.total_backoff(), Duration::from_millis(550));
    }

    #[test]
    fn triggers_and_other_writes_are_never_retried() {
        let policy = RetryPolicy::default();
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(policy.delay_before_retry(&method, &refused(), 1), None);
        }
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let not_found = Error::NotFound {
            at: CallSite {
                endpoint: "GET /v1/jobs/x".into(),
                jobmanager: "http://jm:8081/".into(),
            },
            message: "Job x not found".into(),
        };
        assert_eq!(
            RetryPolicy::default().delay_before_retry(&Method::GET, &not_found, 1),
            None
        );
        assert_eq!(
            RetryPolicy::none().delay_before_retry(&Method::GET, &refused(), 1),
            None
        );
    }
}
