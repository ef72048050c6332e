//! Reading and validating never panics, whatever the input: arbitrary text, and valid manifests
//! with random bytes cut out or spliced in.

// test helpers outside #[test] functions may unwrap too
#![allow(clippy::unwrap_used)]

use flinkpilot_api as api;

use api::manifest::{Content, Resource, parse_documents};
use proptest::prelude::*;

const MANIFEST: &str = "apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: counter
spec:
  image: flink:2.3
  flinkVersion: v2_3
  serviceAccount: flink
  flinkConfiguration:
    state:
      savepoints.dir: file:///sp
    taskmanager.numberOfTaskSlots: 2
  jobManager:
    resource: {memory: 1024m, cpu: 1}
    podTemplate:
      spec:
        initContainers: [{name: fetch, image: busybox}]
  taskManager:
    replicas: 2
  job:
    jarURI: local:///opt/flink/usrlib/counter.jar
    parallelism: 2
    upgradeMode: savepoint
---
apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata: {name: j}
spec: {deploymentName: counter, job: {jarURI: 'https://x/j.jar', parallelism: 1}}
";

fn read_and_validate(text: &str) {
    let resources: Vec<Resource> = parse_documents(text)
        .into_iter()
        .filter_map(|d| match d.content {
            Ok(Content::Resource(r)) => Some(*r),
            _ => None,
        })
        .collect();
    let set: Vec<&Resource> = resources.iter().collect();
    for r in &resources {
        let _ = api::validate::resource(r, &set);
        if let Resource::Deployment(d) = r {
            let _ = api::diff(&d.spec, &api::FlinkDeploymentSpec::default());
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        read_and_validate(&text);
    }

    #[test]
    fn damaged_manifests_never_panic(cut in 0..MANIFEST.len(), len in 0usize..40, insert in "[ -~\n\t]{0,12}") {
        let mut bytes = MANIFEST.as_bytes().to_vec();
        let end = (cut + len).min(bytes.len());
        bytes.splice(cut..end, insert.bytes());
        read_and_validate(&String::from_utf8_lossy(&bytes));
    }
}
