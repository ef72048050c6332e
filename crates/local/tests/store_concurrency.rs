//! The file store under concurrency: readers never see a partial write, and writers in
//! threads and in separate processes never lose each other's updates.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use api::{FlinkDeployment, FlinkDeploymentStatus};
use engine::ResourceKey;
use flinkpilot_local::{LocalStore, StateDir};
use kube_core::Resource;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(StateDir::new(dir.path()));
    (dir, store)
}

fn key(name: &str) -> ResourceKey {
    ResourceKey::new("default", name)
}

fn generation(object: &impl Resource) -> i64 {
    object.meta().generation.unwrap()
}

/// Readers racing a writer always see a complete object: the old one or the new one. The
/// readers check the raw file in a tight loop (a torn write would lack the last status entry,
/// which comes last in the file) and parse it through the store now and then.
#[test]
fn readers_never_see_a_partial_write() {
    let (dir, store) = store();
    store.apply(FlinkDeployment::test("app")).unwrap();
    let path = dir
        .path()
        .join("resources/default/flinkdeployments/app.yaml");
    let entries = 400;
    let last_key = format!("key-{:05}", entries - 1);
    let big = |tag: &str| -> FlinkDeploymentStatus {
        let entries: Vec<(String, String)> = (0..entries)
            .map(|i| (format!("key-{i:05}"), format!("{tag}-{i}")))
            .collect();
        FlinkDeploymentStatus {
            cluster_info: Some(entries.into_iter().collect()),
            ..Default::default()
        }
    };
    let (a, b) = (big("a"), big("b"));
    store
        .update_status::<FlinkDeployment>(&key("app"), None, a.clone())
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done, path, last_key) =
                (store.clone(), done.clone(), path.clone(), last_key.clone());
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert!(text.contains(&last_key), "a read saw a partial file");
                    reads += 1;
                    if reads.is_multiple_of(200) {
                        let read = store.get::<FlinkDeployment>(&key("app")).unwrap().unwrap();
                        let status = read.status.unwrap();
                        assert!(status == a || status == b, "a read saw a mixed status");
                    }
                }
                reads
            })
        })
        .collect();
    for i in 0..40 {
        let status = if i % 2 == 0 { b.clone() } else { a.clone() };
        store
            .update_status::<FlinkDeployment>(&key("app"), None, status)
            .unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
}

/// Each writer adds its own entries to the status while spec patches run in between; every
/// entry and every patch must survive.
#[test]
fn concurrent_writers_in_threads_never_lose_an_update() {
    let (_dir, store) = store();
    store.apply(FlinkDeployment::test("app")).unwrap();
    let writers = 6;
    let each = 20;
    let barrier = Arc::new(Barrier::new(writers + 1));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..each {
                    insert_entry(&store, &format!("t{w}-{i}"));
                }
            })
        })
        .collect();
    barrier.wait();
    for n in 1..=each {
        store
            .patch_spec::<FlinkDeployment>(&key("app"), |s| s.restart_nonce = Some(n as i64))
            .unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }

    let app = store.get::<FlinkDeployment>(&key("app")).unwrap().unwrap();
    let entries = app.status.clone().unwrap().cluster_info.unwrap();
    assert_eq!(entries.len(), writers * each);
    assert_eq!(generation(&app), 1 + each as i64);
}

fn insert_entry(store: &LocalStore, entry: &str) {
    store
        .modify_status::<FlinkDeployment>(&key("app"), |s| {
            s.get_or_insert_with(Default::default)
                .cluster_info
                .get_or_insert_with(Default::default)
                .insert(entry.to_string(), "1".to_string());
        })
        .unwrap();
}

const WORKER_ENV: &str = "FLINKPILOT_STORE_TEST_WORKER";

/// Not a test on its own (hence ignored): the body of one writer process of
/// `concurrent_writer_processes_never_lose_an_update`, which runs this test binary again
/// filtered to this function, with the store and worker id in the environment.
#[test]
#[ignore = "a helper process of concurrent_writer_processes_never_lose_an_update"]
fn store_writer_process() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let (dir, id) = spec.split_once('|').unwrap();
    let store = LocalStore::new(StateDir::new(dir));
    for i in 0..25 {
        insert_entry(&store, &format!("p{id}-{i}"));
    }
}

#[test]
fn concurrent_writer_processes_never_lose_an_update() {
    let (dir, store) = store();
    store.apply(FlinkDeployment::test("app")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "store_writer_process", "--ignored", "--quiet"])
                .env(WORKER_ENV, format!("{}|{id}", dir.path().display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for i in 0..25 {
        insert_entry(&store, &format!("parent-{i}"));
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }

    let app = store.get::<FlinkDeployment>(&key("app")).unwrap().unwrap();
    let entries = app.status.unwrap().cluster_info.unwrap();
    assert_eq!(
        entries.len(),
        4 * 25,
        "{:?}",
        entries.keys().collect::<Vec<_>>()
    );
}
