//! Test jobs: the Java sources under `jobs/<name>`, compiled into a jar by `scripts/build-job`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use crate::{FlinkDist, repo_root};

/// A compiled job: a jar for one Flink version and the class that runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestJob {
    /// The directory name under `jobs/`, e.g. `counter`.
    pub name: String,
    /// The jar, in the shared cache; never modify it.
    pub jar: PathBuf,
    /// The entry class, e.g. `flinkpilot.jobs.Counter` (also the jar's `Main-Class`).
    pub entry_class: String,
    /// The Flink version the jar was compiled against.
    pub flink_version: String,
}

impl TestJob {
    /// Builds `jobs/<name>` for the default Flink version ([`FlinkDist::get_default`]).
    pub fn build(name: &str) -> TestJob {
        Self::build_for(name, FlinkDist::get_default())
    }

    /// Builds `jobs/<name>` against `dist`. The jar is cached on disk by a hash of the sources
    /// and the Flink version (so concurrent test processes share it), and in memory per process.
    ///
    /// # Panics
    /// When the job does not exist or does not compile, with the compiler's output.
    pub fn build_for(name: &str, dist: &FlinkDist) -> TestJob {
        static BUILT: Mutex<Option<HashMap<(String, String), TestJob>>> = Mutex::new(None);
        let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
        let built = built.get_or_insert_with(HashMap::new);
        let key = (name.to_string(), dist.version.clone());
        if let Some(job) = built.get(&key) {
            return job.clone();
        }

        let script = repo_root().join("scripts/build-job");
        let out = Command::new(&script)
            .arg(name)
            .arg(&dist.home)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "scripts/build-job {name} failed for Flink {} ({}):\n{}",
            dist.version,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let jar = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let main_class = repo_root().join("jobs").join(name).join("main-class");
        let entry_class = std::fs::read_to_string(&main_class)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", main_class.display()))
            .trim()
            .to_string();
        let job = TestJob {
            name: name.to_string(),
            jar,
            entry_class,
            flink_version: dist.version.clone(),
        };
        built.insert(key, job.clone());
        job
    }
}
