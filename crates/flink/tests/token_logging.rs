//! The bearer token reaches the server and never a log line. In its own test binary: a
//! thread-scoped log subscriber only sees every event when no other test thread uses the
//! same log call sites at the same time (tracing caches their interest globally).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use flinkpilot_flink::{ClientConfig, Error, FlinkClient, RetryPolicy};
use tokio::net::TcpListener;

#[tokio::test]
async fn bearer_token_is_sent_but_never_logged() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    let app = Router::new().fallback(any(move |headers: HeaderMap| {
        let s = s.clone();
        async move {
            if let Some(v) = headers.get("authorization") {
                s.lock().unwrap().push(v.to_str().unwrap().to_string());
            }
            (StatusCode::UNAUTHORIZED, "Unauthorized")
        }
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Capture everything the client logs, at the most verbose level.
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || LogSink(sink.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let c = FlinkClient::new(
        ClientConfig::new(&url)
            .unwrap()
            .with_bearer_token("tok-very-secret")
            .with_retry(RetryPolicy::none()),
    )
    .unwrap();
    let err = c.jobs().await.unwrap_err();

    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["Bearer tok-very-secret".to_string()]
    );
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("calling Flink"), "nothing logged: {logged}");
    assert!(!logged.contains("tok-very-secret"), "{logged}");
    assert!(!err.to_string().contains("tok-very-secret"));
    assert!(!format!("{err:?}").contains("tok-very-secret"));
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
