use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api::FlinkVersion;
use engine::{ClusterMode, ClusterPlan, JobPlan, ProcessPlan, ResourceKey};
use flink::config::FlinkConfig;

use super::*;

const DIST_CONFIG: &str = "\
env:
  java:
    opts:
      all: --add-opens=java.base/java.lang=ALL-UNNAMED
jobmanager:
  rpc:
    address: localhost
    port: 6123
  memory:
    process:
      size: 1600m
taskmanager:
  numberOfTaskSlots: 1
  memory:
    process:
      size: 1728m
parallelism:
  default: 1
rest:
  address: localhost
";

fn home(dir: &Path, version: &str, legacy: bool) -> FlinkHome {
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    if legacy {
        std::fs::write(
            conf.join("flink-conf.yaml"),
            "# comment\njobmanager.memory.process.size: 1600m\nenv.java.opts.all: -Dx=1\n",
        )
        .unwrap();
    } else {
        std::fs::write(conf.join("config.yaml"), DIST_CONFIG).unwrap();
    }
    std::fs::write(conf.join("log4j-console.properties"), "dist").unwrap();
    std::fs::write(conf.join("logback-console.xml"), "dist").unwrap();
    std::fs::write(conf.join("zoo.cfg"), "not a log config").unwrap();
    FlinkHome {
        path: dir.to_path_buf(),
        version: version.to_string(),
    }
}

fn plan() -> ClusterPlan {
    ClusterPlan {
        key: ResourceKey::new("default", "app"),
        owner_uid: None,
        flink_version: FlinkVersion::v2_3,
        mode: ClusterMode::Application,
        config: FlinkConfig::new(),
        job: Some(JobPlan {
            jar_uri: "local:///jobs/a.jar".into(),
            entry_class: Some("a.Main".into()),
            args: vec![],
            parallelism: 3,
            job_id: "00000000000000000000000000000001".into(),
            restore: None,
        }),
        jobmanager: ProcessPlan {
            replicas: 1,
            memory_bytes: None,
            cpu: None,
        },
        taskmanager: ProcessPlan {
            replicas: 2,
            memory_bytes: None,
            cpu: None,
        },
        task_slots: 2,
        log_configuration: BTreeMap::new(),
        spec: Default::default(),
        plan_hash: "h".into(),
    }
}

const PORTS: Ports = Ports {
    rest: 20001,
    rpc: 20002,
    blob: 20003,
};

fn render(plan: &ClusterPlan, home: &FlinkHome) -> FlinkConfig {
    let paths = ClusterPaths::new(PathBuf::from("/state/clusters/default/app"));
    render_config(
        plan,
        home,
        &paths,
        Path::new("/state/data/default/app"),
        PORTS,
    )
    .unwrap()
}

#[test]
fn a_plan_without_settings_gets_small_memory_local_dirs_and_loopback_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path(), "2.3.0", false);

    let c = render(&plan(), &home);

    assert_eq!(
        c.get("jobmanager.memory.process.size"),
        Some(DEFAULT_JOBMANAGER_MEMORY)
    );
    assert_eq!(
        c.get("taskmanager.memory.process.size"),
        Some(DEFAULT_TASKMANAGER_MEMORY)
    );
    assert_eq!(c.get("taskmanager.numberOfTaskSlots"), Some("2"));
    assert_eq!(c.get("parallelism.default"), Some("3"));
    assert_eq!(
        c.get("execution.checkpointing.dir"),
        Some("file:///state/data/default/app/checkpoints")
    );
    assert_eq!(
        c.get("execution.checkpointing.savepoint-dir"),
        Some("file:///state/data/default/app/savepoints")
    );
    for key in ADDRESS_KEYS {
        assert_eq!(c.get(key), Some("127.0.0.1"), "{key}");
    }
    assert_eq!(c.get("rest.port"), Some("20001"));
    assert_eq!(c.get("jobmanager.rpc.port"), Some("20002"));
    assert_eq!(c.get("blob.server.port"), Some("20003"));
    assert_eq!(
        c.get("io.tmp.dirs"),
        Some("/state/clusters/default/app/tmp")
    );
    let opts = c.get("env.java.opts.all").unwrap();
    assert!(
        opts.starts_with("--add-opens=java.base/java.lang=ALL-UNNAMED "),
        "{opts}"
    );
    assert!(
        opts.ends_with("-Djava.io.tmpdir=/state/clusters/default/app/tmp"),
        "{opts}"
    );
}

#[test]
fn the_plan_wins_over_defaults_and_the_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path(), "2.3.0", false);
    let mut p = plan();
    p.config.set("taskmanager.numberOfTaskSlots", "4");
    p.config.set("parallelism.default", "8");
    p.config.set("jobmanager.memory.flink.size", "900m");
    p.config.set("state.checkpoints.dir", "file:///mine/chk");
    p.config.set("env.java.opts.all", "-Dmine=1");
    p.taskmanager.memory_bytes = Some(2048 * 1024 * 1024);

    let c = render(&p, &home);

    assert_eq!(c.get("taskmanager.numberOfTaskSlots"), Some("4"));
    assert_eq!(c.get("parallelism.default"), Some("8"));
    assert_eq!(c.get("jobmanager.memory.flink.size"), Some("900m"));
    assert_eq!(
        c.get("jobmanager.memory.process.size"),
        None,
        "the distribution's size would conflict with the plan's"
    );
    assert_eq!(c.get("taskmanager.memory.process.size"), Some("2048m"));
    assert_eq!(c.get("state.checkpoints.dir"), Some("file:///mine/chk"));
    assert_eq!(c.get("execution.checkpointing.dir"), None);
    let opts = c.get("env.java.opts.all").unwrap();
    assert!(
        opts.contains("ALL-UNNAMED -Dmine=1 -XX:-UsePerfData"),
        "{opts}"
    );
}

#[test]
fn ports_and_addresses_are_always_local() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path(), "2.3.0", false);
    let mut p = plan();
    p.config.set("rest.port", "8081");
    p.config.set("jobmanager.rpc.address", "flink-jobmanager");

    let c = render(&p, &home);

    assert_eq!(c.get("rest.port"), Some("20001"));
    assert_eq!(c.get("jobmanager.rpc.address"), Some("127.0.0.1"));
}

#[test]
fn flink_before_1_19_gets_a_legacy_flink_conf_yaml_with_state_keys() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path(), "1.18.1", true);
    let mut p = plan();
    p.flink_version = FlinkVersion::v1_18;

    let c = render(&p, &home);
    assert_eq!(
        c.get("state.checkpoints.dir"),
        Some("file:///state/data/default/app/checkpoints")
    );
    assert!(c.get("env.java.opts.all").unwrap().starts_with("-Dx=1 "));

    let conf = dir.path().join("out");
    write_conf_dir(&p, &home, &conf, &c).unwrap();
    let text = std::fs::read_to_string(conf.join("flink-conf.yaml")).unwrap();
    assert!(text.contains("rest.port: 20001\n"), "{text}");
    assert!(!conf.join("config.yaml").exists());
}

#[test]
fn the_conf_dir_holds_log_configs_the_plans_own_and_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path(), "2.3.0", false);
    let mut p = plan();
    p.log_configuration
        .insert("log4j-console.properties".into(), "mine".into());
    let conf = dir.path().join("cluster/conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("stale"), "from an earlier run").unwrap();
    let c = render(&p, &home);

    write_conf_dir(&p, &home, &conf, &c).unwrap();

    let read = |f: &str| std::fs::read_to_string(conf.join(f)).unwrap();
    assert_eq!(read("log4j-console.properties"), "mine");
    assert_eq!(read("logback-console.xml"), "dist");
    assert!(!conf.join("zoo.cfg").exists());
    assert!(!conf.join("stale").exists());
    assert_eq!(read_config(&conf), c);
    let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn memory_sizes_use_mebibytes_when_whole() {
    assert_eq!(memory_size(1024 * 1024 * 1024), "1024m");
    assert_eq!(memory_size(1000), "1000b");
}

#[test]
fn kubernetes_high_availability_is_left_out_locally() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path(), "2.3.0", false);
    let mut p = plan();
    p.config.set("high-availability.type", "kubernetes");
    p.config
        .set("high-availability.storageDir", "file:///flink-data/ha");
    p.config.set("high-availability.cluster-id", "x");

    let c = render(&p, &home);

    assert!(
        c.iter().all(|(k, _)| !k.starts_with("high-availability")),
        "{c:?}"
    );

    let mut zk = plan();
    zk.config.set("high-availability.type", "zookeeper");
    assert_eq!(
        render(&zk, &home).get("high-availability.type"),
        Some("zookeeper")
    );
}
