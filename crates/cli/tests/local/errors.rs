//! Bad input to `flinkpilot local`: one clear line naming the object and field, a non-zero
//! exit, and nothing written. No Flink needed.

use std::process::{Command, Output};

use api::FlinkDeployment;
use engine::ResourceKey;
use local::{LocalStore, StateDir};

fn flinkpilot(state: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flinkpilot"))
        .arg("local")
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run flinkpilot")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const VALID: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\n\
metadata: {name: app}\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  job:\n    \
jarURI: local:///opt/flink/usrlib/counter.jar\n    parallelism: 1\n";

#[test]
fn an_invalid_manifest_is_refused_naming_the_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, VALID.replace("parallelism: 1", "parallelism: -4")).expect("write");
    let out = flinkpilot(dir.path(), &["apply", "-f", file.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("FlinkDeployment/app: spec.job.parallelism"),
        "{err}"
    );
    let store = LocalStore::new(StateDir::new(dir.path()));
    assert!(
        store
            .get::<FlinkDeployment>(&ResourceKey::new("default", "app"))
            .expect("store")
            .is_none()
    );
}

#[test]
fn an_unknown_deployment_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    for args in [
        vec!["describe", "nope"],
        vec!["suspend", "nope"],
        vec!["savepoint", "nope"],
        vec!["logs", "nope"],
    ] {
        let out = flinkpilot(dir.path(), &args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("FlinkDeployment default/nope not found"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn a_second_controller_on_the_same_state_dir_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = LocalStore::new(StateDir::new(dir.path()));
    let _held = store.lock_controller().expect("lock");
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, VALID).expect("write");
    let out = flinkpilot(dir.path(), &["up", "-f", file.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("another flinkpilot controller"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        store
            .get::<FlinkDeployment>(&ResourceKey::new("default", "app"))
            .expect("store")
            .is_none(),
        "nothing applied when the controller cannot start"
    );
}

#[test]
fn a_change_that_breaks_the_spec_is_refused_by_suspend_and_savepoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, VALID).expect("write");
    assert!(
        flinkpilot(dir.path(), &["apply", "-f", file.to_str().expect("utf-8")])
            .status
            .success()
    );
    // no savepoint directory is configured: a manual savepoint cannot be taken
    let out = flinkpilot(dir.path(), &["savepoint", "app"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("savepoint"), "{}", stderr(&out));
}

#[test]
fn snapshot_commands_refuse_bad_input_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tmp");
    // an invalid FlinkStateSnapshot manifest names the field, and nothing is written
    let file = dir.path().join("snap.yaml");
    std::fs::write(
        &file,
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkStateSnapshot\nmetadata: {name: s}\n\
         spec:\n  backoffLimit: -3\n  savepoint: {}\n  jobReference: {kind: FlinkDeployment, \
         name: app}\n",
    )
    .expect("write");
    let out = flinkpilot(dir.path(), &["apply", "-f", file.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("FlinkStateSnapshot/s: spec.backoffLimit"),
        "{err}"
    );
    let store = LocalStore::new(StateDir::new(dir.path()));
    assert!(
        store
            .get::<api::FlinkStateSnapshot>(&ResourceKey::new("default", "s"))
            .expect("store")
            .is_none()
    );
    for (args, expected) in [
        (
            vec!["checkpoint", "nope"],
            "FlinkDeployment default/nope not found",
        ),
        (
            vec!["get", "snapshots", "nope"],
            "FlinkStateSnapshot default/nope not found",
        ),
        (vec!["get", "widgets", "x"], "unknown kind \"widgets\""),
    ] {
        let out = flinkpilot(dir.path(), &args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
