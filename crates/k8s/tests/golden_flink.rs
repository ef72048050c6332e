//! Our native-mode objects compared with what Flink's own native Kubernetes deployer builds from
//! the same configuration — a real Flink distribution (2.3 and 1.20), its
//! `KubernetesClusterDescriptor` run by `tests/flink-native/NativeSpec.java` with a client that
//! records the objects instead of sending them to an API server.
//!
//! For each case, Flink is given our ConfigMap's configuration and log files and the same pod
//! templates; the JobManager Deployment and the Services must come out identical (up to the
//! labels and namespace flinkpilot adds for applying), Flink's deployer must have nothing to add
//! to our configuration, and it must read the job's jar and arguments back exactly.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use api::manifest::{Content, Resource, parse_documents};
use api::{FlinkDeployment, FlinkVersion};
use flinkpilot_k8s::resources::testing::{as_stored, jobmanager_template, plan_for};
use flinkpilot_k8s::resources::{Children, ResourceSettings, native};
use serde_json::{Value, json};
use testkit::{FLINK_1_20, FLINK_2_3, FlinkDist};

/// The compiled harness for one Flink distribution.
fn harness(dist: &FlinkDist) -> PathBuf {
    static DIRS: OnceLock<std::sync::Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let dirs = DIRS.get_or_init(Default::default);
    let mut dirs = dirs.lock().unwrap();
    if let Some((_, dir)) = dirs.iter().find(|(v, _)| *v == dist.version) {
        return dir.clone();
    }
    let dir = tempfile::tempdir().unwrap().keep();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flink-native/NativeSpec.java");
    let out = Command::new("javac")
        .arg("-nowarn")
        .arg("-d")
        .arg(&dir)
        .arg("-cp")
        .arg(format!("{}/*", dist.lib_dir().display()))
        .arg(&source)
        .output()
        .expect("javac must be installed (scripts/setup-flink installs Java)");
    assert!(
        out.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dirs.push((dist.version.clone(), dir.clone()));
    dir
}

/// Flink's answer for the configuration and templates in `conf`.
fn flink_native_spec(dist: &FlinkDist, conf: &Path, application: bool) -> Value {
    let classes = harness(dist);
    let out = Command::new("java")
        .arg("-cp")
        .arg(format!(
            "{}/*:{}",
            dist.lib_dir().display(),
            classes.display()
        ))
        .arg("NativeSpec")
        .arg(conf)
        .arg(if application {
            "application"
        } else {
            "session"
        })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "NativeSpec failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json_line = stdout.lines().rfind(|l| l.starts_with('{')).unwrap();
    serde_json::from_str(json_line).unwrap()
}

fn example(name: &str) -> FlinkDeployment {
    let dir = api::fixtures::compat_dir().join("examples");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in parse_documents(&text) {
            if let Ok(Content::Resource(r)) = doc.content
                && let Resource::Deployment(d) = *r
                && d.metadata.name.as_deref() == Some(name)
            {
                return as_stored(d);
            }
        }
    }
    panic!("no example named {name}");
}

/// Drops what is empty (Flink's model writes `[]`/`{}` for unset lists and maps).
fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for child in m.values_mut() {
                prune(child);
            }
            m.retain(|_, c| !(c.is_null() || c == &json!({}) || c == &json!([])));
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}

/// Our object as Flink would have built it: without what flinkpilot adds for applying.
fn ours_comparable(mut v: Value) -> Value {
    if let Some(meta) = v["metadata"].as_object_mut() {
        meta.remove("namespace");
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove("app.kubernetes.io/managed-by");
        }
    }
    prune(&mut v);
    v
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn check_against_flink(d: &FlinkDeployment, dist: &FlinkDist) {
    let name = d.metadata.name.clone().unwrap();
    let plan = plan_for(d);
    let settings = ResourceSettings::default();
    let children: Children = native(d, &plan, &settings).unwrap();
    let ours: Vec<Value> = children
        .iter()
        .map(|c| ours_comparable(c.to_value()))
        .collect();

    // Flink gets our configuration, our log files and the same templates
    let conf = tempfile::tempdir().unwrap();
    let cm = children
        .config_map(&format!("flink-config-{name}"))
        .unwrap();
    for (file, text) in cm.data.as_ref().unwrap() {
        std::fs::write(conf.path().join(file), text).unwrap();
    }
    let config_file = flinkpilot_k8s::resources::config_file_name(plan.flink_version);
    let mut config = std::fs::read_to_string(conf.path().join(config_file)).unwrap();
    let jm_template = conf.path().join("jm.json");
    std::fs::write(
        &jm_template,
        jobmanager_template(&plan, &settings).to_string(),
    )
    .unwrap();
    config.push_str(&format!(
        "kubernetes.pod-template-file.jobmanager: {}\n",
        jm_template.display()
    ));
    if let Some(tm) = children.config_map(&format!("pod-template-{name}")) {
        let tm_template = conf.path().join("tm.yaml");
        std::fs::write(
            &tm_template,
            &tm.data.as_ref().unwrap()["taskmanager-pod-template.yaml"],
        )
        .unwrap();
        config.push_str(&format!(
            "kubernetes.pod-template-file.taskmanager: {}\n",
            tm_template.display()
        ));
    }
    std::fs::write(conf.path().join(config_file), config).unwrap();

    let flink = flink_native_spec(dist, conf.path(), plan.job.is_some());
    let context = format!("{name} on Flink {}", dist.version);

    // Flink's deployer finds nothing to add to or change in our configuration (it rewrites the
    // program arguments in its own list syntax; their parsed value is compared below)
    let mut before = flink["before"].clone();
    let mut after = flink["after"].clone();
    for config in [&mut before, &mut after] {
        config
            .as_object_mut()
            .unwrap()
            .remove("$internal.application.program-args");
    }
    assert_eq!(before, after, "{context}: Flink changed the configuration");
    if let Some(job) = &plan.job {
        assert_eq!(flink["jars"], json!([job.jar_uri]), "{context}");
        assert_eq!(flink["args"], json!(job.args), "{context}");
    }

    let mut theirs: Vec<Value> = flink["objects"].as_array().unwrap().clone();
    theirs.iter_mut().for_each(prune);

    // the JobManager Deployment, whole (Flink puts the owner reference from our config on it)
    let our_jm = find(&ours, "Deployment", &name).unwrap();
    let their_jm = find(&theirs, "Deployment", &name).unwrap();
    assert_eq!(our_jm, their_jm, "{context}: JobManager Deployment differs");

    // Services: same spec and labels (Flink's client adds owner references when creating them)
    for svc in [name.clone(), format!("{name}-rest")] {
        let theirs = find(&theirs, "Service", &svc);
        let ours = find(&ours, "Service", &svc);
        assert_eq!(
            theirs.is_some(),
            ours.is_some(),
            "{context}: Service {svc} presence"
        );
        if let (Some(t), Some(o)) = (theirs, ours) {
            assert_eq!(t["spec"], o["spec"], "{context}: Service {svc}");
            assert_eq!(
                t["metadata"]["labels"], o["metadata"]["labels"],
                "{context}: {svc} labels"
            );
        }
    }

    // ConfigMaps: the same names, labels and log files; the pod template shipped verbatim
    for cm in theirs.iter().filter(|o| o["kind"] == "ConfigMap") {
        let cm_name = cm["metadata"]["name"].as_str().unwrap();
        let ours = find(&ours, "ConfigMap", cm_name)
            .unwrap_or_else(|| panic!("{context}: Flink creates ConfigMap {cm_name}, we do not"));
        assert_eq!(
            cm["metadata"]["labels"], ours["metadata"]["labels"],
            "{context}: {cm_name}"
        );
        for (file, text) in cm["data"].as_object().unwrap() {
            if file != config_file {
                assert_eq!(text, &ours["data"][file], "{context}: {cm_name}/{file}");
            }
        }
    }
    let their_cms = theirs.iter().filter(|o| o["kind"] == "ConfigMap").count();
    let our_cms = ours.iter().filter(|o| o["kind"] == "ConfigMap").count();
    assert_eq!(their_cms, our_cms, "{context}: number of ConfigMaps");
}

fn cases(version: FlinkVersion) -> Vec<FlinkDeployment> {
    let mut custom = example("basic-example")
        .with_config("kubernetes.rest-service.exposed.type", "NodePort")
        .with_config(
            "kubernetes.env.secretKeyRef",
            "env:PASSWORD,secret:creds,key:pw",
        )
        .with_config("containerized.master.env.TZ", "UTC")
        .with_config("kubernetes.jobmanager.labels", "team:data")
        .with_config("kubernetes.jobmanager.annotations", "owner:me")
        .with_config("kubernetes.container.image.pull-secrets", "registry")
        .with_config("kubernetes.jobmanager.node-selector", "disk:ssd")
        .with_config(
            "kubernetes.jobmanager.tolerations",
            "key:dedicated,operator:Equal,value:flink,effect:NoSchedule",
        );
    custom.metadata.name = Some("custom".into());
    custom.spec.job.as_mut().unwrap().entry_class = Some("org.example.Main".into());
    custom.spec.job.as_mut().unwrap().args = Some(vec![
        "a;b".into(),
        "c'd".into(),
        "x y".into(),
        String::new(),
        "--q=\"1\"".into(),
    ]);
    [
        example("basic-example"),
        example("pod-template-example"),
        example("basic-checkpoint-ha-example"),
        example("basic-session-deployment-only-example"),
        example("basic-secure"),
        example("autoscaling-dynamic"),
        example("custom-logging-example"),
        custom,
    ]
    .into_iter()
    .map(|d| d.with_version(version))
    .collect()
}

#[test]
fn native_objects_match_flink_2_3s_own_deployer() {
    let dist = FlinkDist::get(FLINK_2_3);
    for d in cases(FlinkVersion::v2_3) {
        check_against_flink(&d, dist);
    }
}

#[test]
fn native_objects_match_flink_1_20s_own_deployer() {
    let dist = FlinkDist::get(FLINK_1_20);
    for d in cases(FlinkVersion::v1_20) {
        check_against_flink(&d, dist);
    }
}
