//! Measures how long a `SessionCluster` takes to start: from spawning the JVMs until every
//! TaskManager has registered. A benchmark, not a test.
//!
//! ```text
//! cargo run --release -p flinkpilot-testkit --example cluster-startup -- [RUNS] [VERSION…]
//! ```
//! Defaults: 5 runs, every supported version. `FLINKPILOT_BENCH_JAVA_OPTS` adds JVM options.

use std::time::Duration;

use flinkpilot_testkit::{FlinkDist, SUPPORTED_VERSIONS, SessionCluster};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args
        .next()
        .map_or(5, |r| r.parse().expect("RUNS must be a number"));
    let versions: Vec<String> = args.collect();
    let versions = if versions.is_empty() {
        SUPPORTED_VERSIONS.iter().map(ToString::to_string).collect()
    } else {
        versions
    };
    let java_options = std::env::var("FLINKPILOT_BENCH_JAVA_OPTS").unwrap_or_default();

    for version in versions {
        let dist = FlinkDist::get(&version);
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..runs {
            let cluster = SessionCluster::builder(dist)
                .java_options(&java_options)
                .start()
                .await;
            times.push(cluster.startup_time());
        }
        times.sort();
        let shown: Vec<String> = times
            .iter()
            .map(|t| format!("{:.1}", t.as_secs_f64()))
            .collect();
        println!(
            "Flink {}: median {:.1} s over {runs} starts ({} s) java options {java_options:?}",
            dist.version,
            times[times.len() / 2].as_secs_f64(),
            shown.join(", ")
        );
    }
}
