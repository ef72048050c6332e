//! `deploy/crds/` must hold exactly what the code generates, so the CRDs people install match
//! the types the operator reads.

// test helpers outside #[test] functions may unwrap too
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use flinkpilot_api as api;

const REGENERATE: &str =
    "regenerate them with `cargo run -p flinkpilot-cli -- crd --write deploy/crds`";

#[test]
fn deploy_crds_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    let mut expected = BTreeSet::new();
    for crd in api::crd::all() {
        let name = api::crd::file_name(&crd);
        let path = dir.join(&name);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("deploy/crds/{name} is missing ({e}); {REGENERATE}"));
        assert!(
            on_disk == api::crd::to_yaml(&crd).unwrap(),
            "deploy/crds/{name} is stale; {REGENERATE}"
        );
        expected.insert(name);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let extra: Vec<&String> = present.difference(&expected).collect();
    assert!(
        extra.is_empty(),
        "deploy/crds holds files the code does not generate: {extra:?}"
    );
}
