//! A hook that sees every HTTP call a [`crate::FlinkClient`] makes: which endpoint (as a path
//! template, never with ids), the method, how it ended and how long it took. The operator turns
//! it into a latency histogram; anything with bounded labels can use it.
//!
//! ```
//! use std::sync::Arc;
//! use flinkpilot_flink::{CallObserver, ClientConfig, ObservedCall};
//!
//! struct Log;
//! impl CallObserver for Log {
//!     fn observe(&self, call: &ObservedCall<'_>) {
//!         println!("{} {} {} {:?}", call.method, call.endpoint, call.outcome.as_str(), call.duration);
//!     }
//! }
//! let config = ClientConfig::new("http://localhost:8081")
//!     .unwrap()
//!     .with_observer(Arc::new(Log));
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::error::Error;

/// How one HTTP call ended, in a closed set of classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// A 2xx answer that decoded as expected.
    Ok,
    /// A 4xx answer (unknown job, bad request, refused credentials, …).
    Http4xx,
    /// A 5xx answer (Flink's own error, or a proxy or gateway in front of it).
    Http5xx,
    /// Another non-2xx answer (e.g. a redirect that was not followed).
    HttpOther,
    /// No answer within the client's timeout.
    Timeout,
    /// No connection (refused, reset, DNS, TLS).
    Unreachable,
    /// A 2xx answer that did not read as what the endpoint returns.
    Decode,
}

impl CallOutcome {
    /// Every class, e.g. to pre-register metric series.
    pub const ALL: &'static [CallOutcome] = &[
        CallOutcome::Ok,
        CallOutcome::Http4xx,
        CallOutcome::Http5xx,
        CallOutcome::HttpOther,
        CallOutcome::Timeout,
        CallOutcome::Unreachable,
        CallOutcome::Decode,
    ];

    /// The label value, e.g. `http_5xx`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Http4xx => "http_4xx",
            CallOutcome::Http5xx => "http_5xx",
            CallOutcome::HttpOther => "http_other",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Unreachable => "unreachable",
            CallOutcome::Decode => "decode",
        }
    }

    /// The class of a non-2xx status.
    pub(crate) fn of_status(status: StatusCode) -> Self {
        if status.is_client_error() {
            CallOutcome::Http4xx
        } else if status.is_server_error() {
            CallOutcome::Http5xx
        } else {
            CallOutcome::HttpOther
        }
    }

    /// The class of a failure before any answer; `None` for failures that sent nothing.
    pub(crate) fn of_transport(err: &Error) -> Option<Self> {
        match err {
            Error::Timeout { .. } => Some(CallOutcome::Timeout),
            Error::Unreachable { .. } => Some(CallOutcome::Unreachable),
            _ => None,
        }
    }
}

/// One HTTP call, as an observer sees it.
#[derive(Clone, Copy, Debug)]
pub struct ObservedCall<'a> {
    /// The endpoint's path template below `/v1`, ids replaced by Flink's placeholders, e.g.
    /// `/jobs/:jobid/savepoints/:triggerid`. Never holds an id, so it is a bounded label.
    pub endpoint: &'a str,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// How it ended.
    pub outcome: CallOutcome,
    /// From sending the request to the end of the answer's body (or the failure).
    pub duration: Duration,
}

/// Sees every HTTP call of the clients it is set on: once per attempt (a retried read is
/// observed once per try). Called on the request's task: keep it cheap and non-blocking.
pub trait CallObserver: Send + Sync {
    /// One call ended.
    fn observe(&self, call: &ObservedCall<'_>);
}

/// A shared [`CallObserver`] in a [`crate::ClientConfig`]. Two are equal when they are the same
/// observer.
#[derive(Clone)]
pub struct Observer(pub Arc<dyn CallObserver>);

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer(..)")
    }
}

impl PartialEq for Observer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Observer {}
