//! `flinkpilot crd`, run as the real binary.

// test helpers outside #[test] functions may unwrap too
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn flinkpilot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flinkpilot"))
}

#[test]
fn crd_prints_all_three_crds_as_one_yaml_stream() {
    let out = flinkpilot().arg("crd").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, api::crd::all_to_yaml().unwrap());
    assert_eq!(
        text.matches("\nkind: CustomResourceDefinition\n").count(),
        3
    );
}

#[test]
fn crd_write_produces_the_committed_deploy_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = flinkpilot()
        .args(["crd", "--write"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    let mut written: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    assert_eq!(written.len(), 3);
    for path in written {
        let name = path.file_name().unwrap();
        let committed = std::fs::read_to_string(deploy.join(name)).unwrap_or_default();
        assert!(
            std::fs::read_to_string(&path).unwrap() == committed,
            "deploy/crds/{} differs from `flinkpilot crd --write`; regenerate with \
             `cargo run -p flinkpilot-cli -- crd --write deploy/crds`",
            name.to_string_lossy()
        );
    }
}

#[test]
fn crd_write_to_an_unwritable_place_fails_with_one_line() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = flinkpilot()
        .args(["crd", "--write"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: could not create directory"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
