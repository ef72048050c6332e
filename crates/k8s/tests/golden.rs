//! Golden manifests: the children generated for every `FlinkDeployment` of the Apache operator's
//! examples, in native and in standalone mode, snapshot-tested (`tests/snapshots/`). Review a
//! changed snapshot like code: `cargo insta review -p flinkpilot-k8s`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use api::manifest::{Content, Resource, parse_documents};
use api::{DeploymentMode, FlinkDeployment};
use flinkpilot_k8s::resources::testing::{as_stored, plan_for};
use flinkpilot_k8s::resources::{ResourceSettings, native, standalone};
use serde_json::Value;

/// Every `FlinkDeployment` in the examples, with the file it came from, canaries left out:
/// the Apache operator never deploys a canary (it only checks the operator is alive).
fn example_deployments() -> Vec<(String, FlinkDeployment)> {
    let dir = api::fixtures::compat_dir().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in parse_documents(&text) {
            let content = doc
                .content
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if let Content::Resource(r) = content
                && let Resource::Deployment(d) = *r
                && !d.is_canary()
            {
                out.push((d.metadata.name.clone().unwrap(), as_stored(d)));
            }
        }
    }
    out
}

fn render(d: &FlinkDeployment, mode: DeploymentMode) -> Vec<Value> {
    let mut d = d.clone();
    d.spec.mode = Some(mode);
    let plan = plan_for(&d);
    let settings = ResourceSettings::default();
    let children = match mode {
        DeploymentMode::Native => native(&d, &plan, &settings),
        DeploymentMode::Standalone => standalone(&d, &plan, &settings),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", d.metadata.name.as_deref().unwrap_or("?")));
    children.iter().map(|c| c.to_value()).collect()
}

#[test]
fn examples_hold_the_expected_deployments() {
    let names: Vec<String> = example_deployments().into_iter().map(|(n, _)| n).collect();
    // a new or renamed example must show up here (and get its snapshots) on purpose
    assert_eq!(
        names,
        [
            "advanced-ingress",
            "autoscaling-dynamic",
            "autoscaling-example",
            "basic-checkpoint-ha-example",
            "basic-ingress",
            "basic-reactive-example",
            "basic-session-deployment-example",
            "basic-session-deployment-only-example",
            "basic-example",
            "custom-logging-example",
            "beam-example",
            "python-example",
            "sql-example",
            "basic-secure-deployment-only",
            "basic-secure",
            "pod-template-example",
            "example-deployment",
        ]
    );
}

#[test]
fn native_children_of_every_example() {
    for (name, d) in example_deployments() {
        insta::with_settings!({sort_maps => true, snapshot_suffix => "native", omit_expression => true}, {
            insta::assert_yaml_snapshot!(name, render(&d, DeploymentMode::Native));
        });
    }
}

#[test]
fn standalone_children_of_every_example() {
    for (name, d) in example_deployments() {
        insta::with_settings!({sort_maps => true, snapshot_suffix => "standalone", omit_expression => true}, {
            insta::assert_yaml_snapshot!(name, render(&d, DeploymentMode::Standalone));
        });
    }
}
