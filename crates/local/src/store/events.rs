//! Recent events of one object (`<state-dir>/events/<namespace>/<plural>/<name>.jsonl`): what
//! `describe` shows, like Kubernetes Events. Bounded: only the newest [`MAX_EVENTS`] are kept.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use engine::ResourceKey;
use serde::{Deserialize, Serialize};

use super::{LocalStore, StoreError, StoredObject, lock::StoreLock};
use crate::fsutil;

/// How many events of one object are kept.
pub const MAX_EVENTS: usize = 100;

/// `Normal` or `Warning`, as in Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Something expected happened (a deploy, a savepoint).
    Normal,
    /// Something needs attention (an error, a failed job).
    Warning,
}

/// One event. The message must hold no secrets: it is stored and shown as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, RFC 3339.
    pub time: String,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// A short CamelCase reason (`Submit`, `SpecChanged`, `SavepointError`, …).
    pub reason: String,
    /// A sentence for people.
    pub message: String,
}

impl Event {
    /// An event happening now.
    pub fn new(
        event_type: EventType,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Event {
            time: k8s_openapi::jiff::Timestamp::now().to_string(),
            event_type,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

impl LocalStore {
    /// Appends an event to the object's log, dropping the oldest beyond [`MAX_EVENTS`].
    pub fn record_event<K: StoredObject>(
        &self,
        key: &ResourceKey,
        event: &Event,
    ) -> Result<(), StoreError> {
        let path = self.events_path::<K>(key)?;
        let mut line = serde_json::to_string(event).map_err(|e| StoreError::Serialize {
            kind: K::kind(&()).into_owned(),
            key: key.clone(),
            message: e.to_string(),
        })?;
        line.push('\n');
        let _lock = StoreLock::acquire(&self.dir)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
        }
        let append = || -> io::Result<()> {
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(line.as_bytes())
        };
        append().map_err(StoreError::io("append to", &path))?;
        // Compact only now and then, so appending stays cheap.
        let text = fs::read_to_string(&path).map_err(StoreError::io("read", &path))?;
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > 2 * MAX_EVENTS {
            let mut kept = lines[lines.len() - MAX_EVENTS..].join("\n");
            kept.push('\n');
            fsutil::write_atomic(&path, kept.as_bytes()).map_err(StoreError::io("write", &path))?;
        }
        Ok(())
    }

    /// The object's recent events, oldest first (at most [`MAX_EVENTS`]). Lines that do not
    /// parse (a write cut short by a crash) are skipped.
    pub fn events<K: StoredObject>(&self, key: &ResourceKey) -> Result<Vec<Event>, StoreError> {
        let path = self.events_path::<K>(key)?;
        let Some(bytes) = fsutil::read_optional(&path).map_err(StoreError::io("read", &path))?
        else {
            return Ok(Vec::new());
        };
        let text = String::from_utf8_lossy(&bytes);
        let events: Vec<Event> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let skip = events.len().saturating_sub(MAX_EVENTS);
        Ok(events.into_iter().skip(skip).collect())
    }

    pub(super) fn events_path<K: StoredObject>(
        &self,
        key: &ResourceKey,
    ) -> Result<PathBuf, StoreError> {
        // Validates the key like every other access.
        self.path::<K>(key)?;
        Ok(self
            .state
            .events()
            .join(&key.namespace)
            .join(K::plural(&()).as_ref())
            .join(format!("{}.jsonl", key.name)))
    }
}
