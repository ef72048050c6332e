//! Watch streams: newline-delimited JSON events read from the per-type history.
//!
//! A watch only wakes for its own type and reads events after its cursor with a binary
//! search, so a write costs O(watchers of that type), not O(all watchers × objects).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::ApiError;
use super::server::Shared;
use super::store::{EventType, Filter, Obj, StoredEvent};

/// What a watch request asks for.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub ty: usize,
    pub filter: Filter,
    /// `None`: start now, first sending the current objects as ADDED (resourceVersion unset or
    /// "0"). `Some(rv)`: every change after `rv`.
    pub start: Option<u64>,
    /// `sendInitialEvents=true`: end the initial ADDED events with a bookmark annotated
    /// `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub metadata_only: bool,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

/// The `meta.k8s.io/v1` `PartialObjectMetadata` form of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj["metadata"],
    })
}

fn line(kind: &str, obj: &Value, metadata_only: bool) -> Bytes {
    let partial;
    let object = if metadata_only {
        partial = partial_metadata(obj);
        &partial
    } else {
        obj
    };
    let mut buf = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

fn error_line(err: &ApiError) -> Bytes {
    line("ERROR", &err.to_status(), false)
}

struct Cursor {
    shared: Arc<Shared>,
    spec: WatchSpec,
    api_version: String,
    kind: String,
    rv: u64,
    pending: VecDeque<Bytes>,
    changes: watch::Receiver<u64>,
    disconnect: watch::Receiver<u64>,
    deadline: Instant,
    next_bookmark: Instant,
    bookmark_every: Duration,
    bookmark_due: bool,
    done: bool,
}

/// Opens a watch; errors that the real server returns before streaming come back as `Err`.
pub fn open(
    shared: Arc<Shared>,
    spec: WatchSpec,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError> {
    let mut pending = VecDeque::new();
    let (changes, rv, initial, api_version, kind) = {
        let state = shared.lock();
        let rt = state.rt(spec.ty);
        let table = &state.tables[spec.ty];
        let changes = table.notify.subscribe();
        match spec.start {
            None => {
                let objs = state.select(spec.ty, &spec.filter);
                (changes, state.rv, objs, rt.api_version(), rt.kind.clone())
            }
            Some(from) if from < table.compacted_through => {
                pending.push_back(error_line(&ApiError::expired(format!(
                    "too old resource version: {from} ({})",
                    table.compacted_through
                ))));
                (changes, from, Vec::new(), rt.api_version(), rt.kind.clone())
            }
            Some(from) if from > state.rv => {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {from}, current: {}", state.rv),
                ));
            }
            Some(from) => (changes, from, Vec::new(), rt.api_version(), rt.kind.clone()),
        }
    };
    let done = !pending.is_empty();
    for obj in &initial {
        pending.push_back(line("ADDED", obj, spec.metadata_only));
    }
    let now = Instant::now();
    let bookmark_every = shared.bookmark_interval;
    let mut cursor = Cursor {
        disconnect: shared.disconnect.subscribe(),
        shared,
        api_version,
        kind,
        rv,
        pending,
        changes,
        deadline: now + spec.timeout,
        next_bookmark: now + bookmark_every,
        bookmark_every,
        bookmark_due: false,
        done,
        spec,
    };
    if cursor.spec.start.is_none() && cursor.spec.initial_events_end {
        let bookmark = cursor.bookmark(true);
        cursor.pending.push_back(bookmark);
    }
    Ok(futures::stream::unfold(cursor, |mut cursor| async move {
        let chunk = cursor.next_chunk().await?;
        Some((Ok(chunk), cursor))
    }))
}

impl Cursor {
    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut obj = json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {"resourceVersion": self.rv.to_string()},
        });
        if initial_end {
            obj["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line("BOOKMARK", &obj, false)
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if self.done {
                return None;
            }
            self.changes.borrow_and_update();
            let (events, seen_through, gone) = {
                let state = self.shared.lock();
                let table = &state.tables[self.spec.ty];
                if self.rv < table.compacted_through {
                    (Vec::new(), state.rv, Some(table.compacted_through))
                } else {
                    (table.events_after(self.rv), state.rv, None)
                }
            };
            if let Some(compacted) = gone {
                // the history this watcher still needed was dropped (bounded history)
                let err = ApiError::expired(format!(
                    "too old resource version: {} ({compacted})",
                    self.rv
                ));
                self.pending.push_back(error_line(&err));
                self.done = true;
                continue;
            }
            for ev in &events {
                if let Some(chunk) = self.render(ev) {
                    self.pending.push_back(chunk);
                }
            }
            self.rv = self.rv.max(seen_through);
            if self.bookmark_due {
                self.bookmark_due = false;
                if self.spec.bookmarks {
                    let bookmark = self.bookmark(false);
                    self.pending.push_back(bookmark);
                }
            }
            if !self.pending.is_empty() {
                continue;
            }
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        self.done = true;
                    }
                }
                _ = tokio::time::sleep_until(self.next_bookmark) => {
                    self.bookmark_due = true;
                    self.next_bookmark = Instant::now() + self.bookmark_every;
                }
                _ = tokio::time::sleep_until(self.deadline) => self.done = true,
                _ = self.disconnect.changed() => self.done = true,
            }
        }
    }

    /// The event as this watcher sees it, or `None` when its filters hide it.
    fn render(&self, ev: &StoredEvent) -> Option<Bytes> {
        let filter = &self.spec.filter;
        let meta_only = self.spec.metadata_only;
        let now_matches = filter.matches(&ev.object);
        match ev.kind {
            EventType::Added | EventType::Deleted => {
                now_matches.then(|| line(ev.kind.as_str(), &ev.object, meta_only))
            }
            EventType::Modified => {
                let before = ev.prev.as_ref().is_none_or(|p: &Obj| filter.matches(p));
                match (before, now_matches) {
                    (true, true) => Some(line("MODIFIED", &ev.object, meta_only)),
                    (false, true) => Some(line("ADDED", &ev.object, meta_only)),
                    (true, false) => {
                        // it left the selection: DELETED with its last matching content
                        let mut last = ev.prev.as_deref().cloned().unwrap_or(Value::Null);
                        last["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                        Some(line("DELETED", &last, meta_only))
                    }
                    (false, false) => None,
                }
            }
        }
    }
}
