//! The file store keeps Kubernetes API semantics and never tears or loses a write.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;

use api::{FlinkDeployment, FlinkDeploymentStatus, FlinkSessionJob, JobState};
use engine::ResourceKey;
use flinkpilot_local::store::{ApplyOutcome, DeleteOutcome, Event, EventType, MAX_EVENTS};
use flinkpilot_local::{LocalStore, StateDir, StoreError};
use kube_core::Resource;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(StateDir::new(dir.path()));
    (dir, store)
}

fn key(name: &str) -> ResourceKey {
    ResourceKey::new("default", name)
}

fn rv(object: &impl Resource) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

fn generation(object: &impl Resource) -> i64 {
    object.meta().generation.unwrap()
}

fn status_with(entries: &[(&str, &str)]) -> FlinkDeploymentStatus {
    FlinkDeploymentStatus {
        cluster_info: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

#[test]
fn apply_creates_an_object_with_generation_one_uid_and_creation_time() {
    let (_dir, store) = store();
    let mut incoming = FlinkDeployment::test("app").application();
    incoming.metadata.namespace = None;
    incoming.metadata.generation = Some(7);
    incoming.metadata.uid = Some("client-chosen".into());
    incoming.status = Some(status_with(&[("ignored", "yes")]));

    let (outcome, stored) = store.apply(incoming.clone()).unwrap();

    assert_eq!(outcome, ApplyOutcome::Created);
    assert_eq!(stored.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(generation(&stored), 1);
    assert!(rv(&stored) > 0);
    let uid = stored.metadata.uid.as_deref().unwrap();
    assert_ne!(uid, "client-chosen");
    assert_eq!(uid.len(), 36, "{uid}");
    assert!(stored.metadata.creation_timestamp.is_some());
    assert_eq!(
        stored.status, None,
        "status is the controller's, not the manifest's"
    );
    assert_eq!(stored.spec, incoming.spec);
    assert_eq!(
        store.get::<FlinkDeployment>(&key("app")).unwrap(),
        Some(stored)
    );
    assert!(
        _dir.path()
            .join("resources/default/flinkdeployments/app.yaml")
            .is_file()
    );
}

#[test]
fn applying_the_same_object_again_writes_nothing() {
    let (_dir, store) = store();
    let (_, first) = store
        .apply(FlinkDeployment::test("app").application())
        .unwrap();
    let revision = store.revision().unwrap();

    let (outcome, second) = store
        .apply(FlinkDeployment::test("app").application())
        .unwrap();

    assert_eq!(outcome, ApplyOutcome::Unchanged);
    assert_eq!(second, first);
    assert_eq!(store.revision().unwrap(), revision);
}

#[test]
fn a_spec_change_bumps_generation_and_keeps_status_uid_and_finalizers() {
    let (_dir, store) = store();
    let (_, created) = store
        .apply(FlinkDeployment::test("app").application())
        .unwrap();
    store
        .add_finalizer::<FlinkDeployment>(&key("app"), "flinkpilot/finalizer")
        .unwrap();
    let with_status = store
        .update_status::<FlinkDeployment>(&key("app"), None, status_with(&[("a", "1")]))
        .unwrap();
    assert_eq!(generation(&with_status), 1, "status writes keep generation");

    let (outcome, changed) = store
        .apply(FlinkDeployment::test("app").with_parallelism(3))
        .unwrap();

    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(generation(&changed), 2);
    assert!(rv(&changed) > rv(&with_status));
    assert_eq!(changed.status, with_status.status);
    assert_eq!(changed.metadata.uid, created.metadata.uid);
    assert_eq!(
        changed.metadata.finalizers,
        Some(vec!["flinkpilot/finalizer".to_string()])
    );
    assert_eq!(changed.spec.job.unwrap().parallelism, Some(3));
}

#[test]
fn a_label_change_alone_keeps_generation_but_gets_a_new_resource_version() {
    let (_dir, store) = store();
    let (_, created) = store.apply(FlinkDeployment::test("app")).unwrap();
    let mut labelled = FlinkDeployment::test("app");
    labelled.metadata.labels = Some(BTreeMap::from([("team".into(), "data".into())]));

    let (outcome, stored) = store.apply(labelled).unwrap();

    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(generation(&stored), 1);
    assert!(rv(&stored) > rv(&created));
    assert_eq!(stored.metadata.labels.unwrap()["team"], "data");
}

#[test]
fn a_status_write_with_a_stale_resource_version_is_a_conflict() {
    let (_dir, store) = store();
    let (_, read) = store.apply(FlinkDeployment::test("app")).unwrap();
    let read_version = read.metadata.resource_version.clone().unwrap();
    // someone else writes in between
    store
        .patch_spec::<FlinkDeployment>(&key("app"), |s| s.restart_nonce = Some(1))
        .unwrap();

    let err = store
        .update_status::<FlinkDeployment>(&key("app"), Some(&read_version), status_with(&[]))
        .unwrap_err();

    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("FlinkDeployment default/app"),
        "{err}"
    );
    let current = store.get::<FlinkDeployment>(&key("app")).unwrap().unwrap();
    assert_eq!(
        current.status, None,
        "the conflicting write changed nothing"
    );
    let fresh = current.metadata.resource_version.unwrap();
    store
        .update_status::<FlinkDeployment>(&key("app"), Some(&fresh), status_with(&[]))
        .unwrap();
}

#[test]
fn patch_spec_bumps_generation_only_when_the_spec_changes() {
    let (_dir, store) = store();
    store
        .apply(FlinkDeployment::test("app").application())
        .unwrap();

    let suspended = store
        .patch_spec::<FlinkDeployment>(&key("app"), |s| {
            s.job.as_mut().unwrap().state = Some(JobState::Suspended)
        })
        .unwrap();
    assert_eq!(generation(&suspended), 2);
    let revision = store.revision().unwrap();

    let again = store
        .patch_spec::<FlinkDeployment>(&key("app"), |s| {
            s.job.as_mut().unwrap().state = Some(JobState::Suspended)
        })
        .unwrap();
    assert_eq!(again, suspended);
    assert_eq!(
        store.revision().unwrap(),
        revision,
        "a no-op patch writes nothing"
    );

    let missing = store
        .patch_spec::<FlinkDeployment>(&key("nope"), |_| {})
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
}

#[test]
fn deleting_without_finalizers_removes_the_object_at_once() {
    let (dir, store) = store();
    store.apply(FlinkDeployment::test("app")).unwrap();
    store
        .record_event::<FlinkDeployment>(&key("app"), &Event::new(EventType::Normal, "X", "y"))
        .unwrap();

    let outcome = store.mark_deleted::<FlinkDeployment>(&key("app")).unwrap();

    assert_eq!(outcome, DeleteOutcome::Removed);
    assert_eq!(store.get::<FlinkDeployment>(&key("app")).unwrap(), None);
    assert!(
        store
            .events::<FlinkDeployment>(&key("app"))
            .unwrap()
            .is_empty()
    );
    assert!(
        !dir.path()
            .join("resources/default/flinkdeployments/app.yaml")
            .exists()
    );
    assert_eq!(
        store.mark_deleted::<FlinkDeployment>(&key("app")).unwrap(),
        DeleteOutcome::NotFound
    );
}

#[test]
fn deleting_with_finalizers_marks_the_object_until_the_last_finalizer_goes() {
    let (_dir, store) = store();
    store.apply(FlinkDeployment::test("app")).unwrap();
    store
        .add_finalizer::<FlinkDeployment>(&key("app"), "a")
        .unwrap();
    let before = store
        .add_finalizer::<FlinkDeployment>(&key("app"), "b")
        .unwrap();

    let DeleteOutcome::Terminating(marked) =
        store.mark_deleted::<FlinkDeployment>(&key("app")).unwrap()
    else {
        panic!("an object with finalizers must stay");
    };
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(generation(&marked), generation(&before) + 1);

    // marking again changes nothing
    let DeleteOutcome::Terminating(again) =
        store.mark_deleted::<FlinkDeployment>(&key("app")).unwrap()
    else {
        panic!("still terminating");
    };
    assert_eq!(again, marked);

    let refused = store
        .add_finalizer::<FlinkDeployment>(&key("app"), "c")
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::Terminating { .. }),
        "{refused}"
    );

    let still = store
        .remove_finalizer::<FlinkDeployment>(&key("app"), "a")
        .unwrap()
        .expect("one finalizer left");
    assert_eq!(still.metadata.finalizers, Some(vec!["b".to_string()]));
    // status writes keep working while terminating (the engine records the deletion flow)
    store
        .modify_status::<FlinkDeployment>(&key("app"), |s| {
            *s = Some(status_with(&[("deleting", "yes")]))
        })
        .unwrap();

    let gone = store
        .remove_finalizer::<FlinkDeployment>(&key("app"), "b")
        .unwrap();
    assert_eq!(gone, None);
    assert_eq!(store.get::<FlinkDeployment>(&key("app")).unwrap(), None);
}

#[test]
fn kinds_and_namespaces_are_kept_apart_and_listed_in_order() {
    let (_dir, store) = store();
    for (ns, name) in [("b", "x"), ("a", "y"), ("a", "x")] {
        store
            .apply(FlinkDeployment::test(name).in_namespace(ns))
            .unwrap();
    }
    let mut job = FlinkSessionJob::test("x", "session");
    job.metadata.namespace = Some("a".into());
    store.apply(job).unwrap();

    let deployments: Vec<String> = store
        .list::<FlinkDeployment>()
        .unwrap()
        .iter()
        .map(|d| format!("{}/{}", d.metadata.namespace.as_deref().unwrap(), d.name()))
        .collect();
    assert_eq!(deployments, ["a/x", "a/y", "b/x"]);
    assert_eq!(store.list::<FlinkSessionJob>().unwrap().len(), 1);
    assert_eq!(
        store.list_namespace::<FlinkDeployment>("a").unwrap().len(),
        2
    );
    assert!(
        store
            .list_namespace::<FlinkDeployment>("zzz")
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .remove::<FlinkSessionJob>(&ResourceKey::new("a", "x"))
            .unwrap()
    );
    assert_eq!(store.list::<FlinkDeployment>().unwrap().len(), 3);
}

#[test]
fn the_revision_grows_with_every_write() {
    let (_dir, store) = store();
    let mut last = store.revision().unwrap();
    assert_eq!(last, 0);
    let mut check = |what: &str| {
        let now = store.revision().unwrap();
        assert!(
            now > last,
            "{what} must raise the revision ({last} -> {now})"
        );
        last = now;
    };
    store.apply(FlinkDeployment::test("app")).unwrap();
    check("create");
    store
        .modify_status::<FlinkDeployment>(&key("app"), |s| *s = Some(Default::default()))
        .unwrap();
    check("status write");
    store
        .patch_spec::<FlinkDeployment>(&key("app"), |s| s.restart_nonce = Some(2))
        .unwrap();
    check("spec patch");
    store.remove::<FlinkDeployment>(&key("app")).unwrap();
    check("removal");
}

#[test]
fn names_that_could_escape_the_state_dir_are_refused() {
    let (_dir, store) = store();
    for (ns, name) in [
        ("default", "../evil"),
        ("..", "x"),
        ("default", ""),
        ("a/b", "x"),
    ] {
        let err = store
            .get::<FlinkDeployment>(&ResourceKey::new(ns, name))
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidName { .. }), "{err}");
    }
    let err = store.apply(FlinkDeployment::test("Bad_Name")).unwrap_err();
    assert!(err.to_string().contains("not a valid name"), "{err}");
}

#[test]
fn a_full_status_round_trips_through_the_file() {
    let (_dir, store) = store();
    let deployed = FlinkDeployment::test("app").application().deployed();
    store.apply(deployed.clone()).unwrap();
    let status = deployed.status.clone().unwrap();

    let written = store
        .update_status::<FlinkDeployment>(&key("app"), None, status.clone())
        .unwrap();

    let read = store.get::<FlinkDeployment>(&key("app")).unwrap().unwrap();
    assert_eq!(read, written);
    assert_eq!(read.status, Some(status));
}

#[test]
fn a_leftover_temp_file_from_a_crash_is_never_read() {
    let (dir, store) = store();
    let (_, stored) = store.apply(FlinkDeployment::test("app")).unwrap();
    let objects = dir.path().join("resources/default/flinkdeployments");
    // what a crash in the middle of a write leaves behind: a half-written temp file
    std::fs::write(objects.join(".tmp-app.yaml-999-0"), "apiVersion: flink.apa").unwrap();
    std::fs::write(objects.join(".hidden.yaml"), "{{{{").unwrap();

    assert_eq!(
        store.get::<FlinkDeployment>(&key("app")).unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.list::<FlinkDeployment>().unwrap(), vec![stored]);
    store
        .patch_spec::<FlinkDeployment>(&key("app"), |s| s.restart_nonce = Some(3))
        .unwrap();
}

#[test]
fn a_hand_broken_file_is_reported_with_its_path() {
    let (dir, store) = store();
    store.apply(FlinkDeployment::test("app")).unwrap();
    let path = dir
        .path()
        .join("resources/default/flinkdeployments/app.yaml");
    std::fs::write(&path, "spec: [not, a, spec").unwrap();

    let err = store.get::<FlinkDeployment>(&key("app")).unwrap_err();

    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn events_are_kept_in_order_and_bounded() {
    let (_dir, store) = store();
    store.apply(FlinkDeployment::test("app")).unwrap();
    for i in 0..(2 * MAX_EVENTS + 5) {
        let kind = if i % 10 == 0 {
            EventType::Warning
        } else {
            EventType::Normal
        };
        store
            .record_event::<FlinkDeployment>(&key("app"), &Event::new(kind, "Step", format!("{i}")))
            .unwrap();
    }
    let events = store.events::<FlinkDeployment>(&key("app")).unwrap();
    assert_eq!(events.len(), MAX_EVENTS);
    assert_eq!(
        events.last().unwrap().message,
        format!("{}", 2 * MAX_EVENTS + 4)
    );
    assert_eq!(
        events.first().unwrap().message,
        format!("{}", MAX_EVENTS + 5)
    );
    assert!(events.iter().any(|e| e.event_type == EventType::Warning));
    // another kind with the same name has its own log
    assert!(
        store
            .events::<FlinkSessionJob>(&key("app"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_second_controller_on_the_same_state_dir_is_refused() {
    let (_dir, store) = store();
    let first = store.lock_controller().unwrap();

    let err = store.lock_controller().unwrap_err();

    assert!(
        matches!(err, StoreError::ControllerRunning { pid: Some(p), .. } if p == std::process::id()),
        "{err}"
    );
    drop(first);
    store.lock_controller().unwrap();
}

#[test]
fn create_leaves_an_existing_object_exactly_as_it_is() {
    let (_dir, store) = store();
    let snapshot = api::FlinkStateSnapshot::test_savepoint(
        "counter-savepoint-periodic-1",
        api::JobKind::FlinkDeployment,
        "counter",
    );
    assert!(store.create(snapshot.clone()).unwrap());
    let first: api::FlinkStateSnapshot = store
        .get(&key("counter-savepoint-periodic-1"))
        .unwrap()
        .unwrap();
    assert_eq!(generation(&first), 1);
    assert!(first.metadata.uid.is_some());

    // a second create (a crash between recording and creating) changes nothing
    let mut other = snapshot;
    other.spec.backoff_limit = Some(5);
    assert!(!store.create(other).unwrap());
    let again: api::FlinkStateSnapshot = store
        .get(&key("counter-savepoint-periodic-1"))
        .unwrap()
        .unwrap();
    assert_eq!(again, first);
}

#[test]
fn set_labels_changes_labels_only() {
    let (_dir, store) = store();
    store
        .apply(api::FlinkStateSnapshot::test_savepoint(
            "s",
            api::JobKind::FlinkDeployment,
            "counter",
        ))
        .unwrap();
    let labels = BTreeMap::from([("snapshot.state".to_string(), "COMPLETED".to_string())]);
    let labelled: api::FlinkStateSnapshot = store.set_labels(&key("s"), labels.clone()).unwrap();
    assert_eq!(labelled.metadata.labels, Some(labels.clone()));
    assert_eq!(generation(&labelled), 1, "labels are not the spec");
    let before = rv(&labelled);
    let same: api::FlinkStateSnapshot = store.set_labels(&key("s"), labels).unwrap();
    assert_eq!(rv(&same), before, "unchanged labels are not written");
}
