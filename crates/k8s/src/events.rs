//! Kubernetes Events for the engine's events, through one `kube::runtime` [`Recorder`]: an
//! event repeated within a few minutes becomes a series (`count` goes up) instead of a new
//! object, as `kubectl describe` users know from the API server's own events.
//!
//! The recorder groups repeats by reason and `action`, not by message; the action therefore
//! carries a short fingerprint of the message, so "Job status changed from RUNNING to FAILED"
//! is never counted as a repeat of "… from CREATED to RUNNING".

use engine::{Event, EventType};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};

use crate::leader::{Fence, NotLeader};

/// `reportingController` of every event (the Apache operator reports as
/// `flink-kubernetes-operator`; ours is told apart by name).
pub const REPORTING_CONTROLLER: &str = "flinkpilot";

/// The API server's limit on an event's `note`.
const MAX_NOTE_BYTES: usize = 1024;

/// Publishing an event failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// This replica may not write.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// The API server refused or could not be reached.
    #[error("could not record an event: {0}")]
    Api(#[from] kube::Error),
}

/// Records events about resources, one recorder for the whole operator.
#[derive(Clone)]
pub struct EventPublisher {
    recorder: Recorder,
    fence: Fence,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher").finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A publisher reporting as `instance` (the pod name) of [`REPORTING_CONTROLLER`].
    pub fn new(client: Client, instance: &str, fence: Fence) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: Some(instance.to_string()),
        };
        EventPublisher {
            recorder: Recorder::new(client, reporter),
            fence,
        }
    }

    /// Publishes `events` about the object `regarding`.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        events: &[Event],
    ) -> Result<(), PublishError> {
        for event in events {
            self.fence.check()?;
            self.recorder.publish(&to_kube(event), regarding).await?;
        }
        Ok(())
    }
}

/// The Kubernetes form of an engine event.
pub fn to_kube(event: &Event) -> KubeEvent {
    let note = truncate(&event.message, MAX_NOTE_BYTES);
    KubeEvent {
        type_: match event.type_ {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: event.reason.as_str().to_string(),
        action: format!("{}/{:08x}", event.reason.as_str(), fingerprint(&note)),
        note: Some(note),
        secondary: None,
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let marker = " …";
    let mut end = max - marker.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// FNV-1a, 32 bit: stable across builds, so a restarted operator aggregates the same way.
fn fingerprint(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::EventReason;

    #[test]
    fn events_keep_their_reason_and_type_and_differ_by_message() {
        let a = to_kube(&Event::normal(
            EventReason::JobStatusChanged,
            "Job status changed from CREATED to RUNNING",
        ));
        let b = to_kube(&Event::warning(
            EventReason::JobStatusChanged,
            "Job status changed from RUNNING to FAILED",
        ));
        assert_eq!(a.reason, "JobStatusChanged");
        assert_eq!(a.type_, KubeEventType::Normal);
        assert_eq!(b.type_, KubeEventType::Warning);
        assert_ne!(a.action, b.action, "different messages are not one series");
        let again = to_kube(&Event::normal(
            EventReason::JobStatusChanged,
            "Job status changed from CREATED to RUNNING",
        ));
        assert_eq!(a.action, again.action, "the same message is");
        assert!(a.action.len() <= 128);
    }

    #[test]
    fn long_messages_are_cut_to_the_api_servers_limit_on_a_character_boundary() {
        let long = "é".repeat(2000);
        let e = to_kube(&Event::warning(EventReason::Error, long));
        let note = e.note.unwrap();
        assert!(note.len() <= MAX_NOTE_BYTES, "{}", note.len());
        assert!(note.ends_with(" …"));
    }
}
