//! Benchmark: this client versus the `flink` CLI on one running counter job.
//!
//! Starts a real Flink session cluster (testkit), runs the counter job, then alternates, for
//! `--runs N` rounds: a savepoint round trip (trigger and wait for the path) through a new
//! `FlinkClient`, through one kept for the whole run (as the operator does), and through
//! `$FLINK_HOME/bin/flink savepoint <job> <dir> -m host:port`; and listing jobs through each
//! (`jobs_overview` vs `flink list -m host:port`, which reads the same endpoint). Prints
//! medians, the ratios and the machine, as Markdown.
//!
//! Run it with `scripts/bench-flink-client [--runs N] [--version 2.3.0|1.20.5]`.

use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flinkpilot_flink::jobs::JobState;
use flinkpilot_flink::{ClientConfig, FlinkClient, PollOptions, RunJarRequest, SavepointRequest};
use testkit::{CounterArgs, FlinkDist, SessionCluster, TestJob};

type BoxResult<T> = Result<T, Box<dyn Error>>;

struct Options {
    runs: usize,
    version: String,
}

fn parse_args() -> BoxResult<Options> {
    let mut options = Options {
        runs: 10,
        version: FlinkDist::default_version(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                options.runs = args.next().ok_or("--runs needs a number")?.parse()?;
            }
            "--version" => options.version = args.next().ok_or("--version needs a version")?,
            other => {
                return Err(
                    format!("unknown argument {other}; usage: [--runs N] [--version V]").into(),
                );
            }
        }
    }
    if options.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(options)
}

fn client(url: &str) -> BoxResult<FlinkClient> {
    Ok(FlinkClient::new(ClientConfig::new(url)?)?)
}

/// `bin/flink <args>` against the cluster; fails unless it exits 0. Returns stdout.
fn flink_cli(dist: &FlinkDist, cluster: &SessionCluster, args: &[&str]) -> BoxResult<String> {
    let out = Command::new(dist.bin("flink"))
        .args(args)
        .env("FLINK_CONF_DIR", cluster.conf_dir())
        .env("FLINK_LOG_DIR", cluster.log_dir())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "flink {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2
    } else {
        samples[mid]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB RAM")
}

fn remove_savepoint(location: &str) -> BoxResult<()> {
    let path = location
        .strip_prefix("file:")
        .map(|p| p.trim_start_matches("//"))
        .ok_or_else(|| format!("not a local savepoint: {location}"))?;
    std::fs::remove_dir_all(Path::new(path))?;
    Ok(())
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let options = parse_args()?;
    let dist = FlinkDist::get(&options.version);
    let job = TestJob::build_for("counter", dist);
    let cluster = SessionCluster::builder(dist).start().await;
    let url = cluster.rest_url();
    let address = format!("127.0.0.1:{}", cluster.rest_port());
    let setup = client(&url)?;

    let jar = setup.upload_jar(&job.jar).await?;
    let request = RunJarRequest {
        entry_class: Some(job.entry_class.clone()),
        program_args: CounterArgs::default().to_args(),
        parallelism: Some(1),
        ..RunJarRequest::default()
    };
    let job_id = setup.run_jar(&jar, &request).await?.job_id;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let details = setup.job(&job_id).await?;
        if details.state == JobState::Running
            && details.vertices.iter().all(|v| v.status == "RUNNING")
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("job {job_id} did not start running").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let target = tempfile::tempdir()?;
    let target_uri = format!("file://{}", target.path().display());
    let poll = PollOptions::new(Duration::from_secs(120), Duration::from_millis(500));
    // The operator keeps one client per JobManager; a one-shot command builds a new one.
    let reused = client(&url)?;
    let (mut sp_client, mut sp_reused, mut sp_cli) = (Vec::new(), Vec::new(), Vec::new());
    let (mut list_client, mut list_reused, mut list_cli) = (Vec::new(), Vec::new(), Vec::new());
    eprintln!(
        "bench: {} rounds on Flink {} ...",
        options.runs, dist.version
    );
    for round in 0..options.runs {
        // A fresh client each time: no connection is reused from the previous round.
        let started = Instant::now();
        let c = client(&url)?;
        let sp_request = SavepointRequest {
            target_directory: Some(target_uri.clone()),
            ..SavepointRequest::default()
        };
        let location = c.savepoint(&job_id, &sp_request, poll).await?;
        sp_client.push(started.elapsed());
        remove_savepoint(&location)?;

        let started = Instant::now();
        let location = reused.savepoint(&job_id, &sp_request, poll).await?;
        sp_reused.push(started.elapsed());
        remove_savepoint(&location)?;

        let started = Instant::now();
        let out = flink_cli(
            dist,
            &cluster,
            &["savepoint", job_id.as_str(), &target_uri, "-m", &address],
        )?;
        sp_cli.push(started.elapsed());
        let location = out
            .lines()
            .find_map(|l| l.split("Savepoint completed. Path: ").nth(1))
            .ok_or_else(|| format!("no savepoint path in the CLI output: {out}"))?;
        remove_savepoint(location.trim())?;

        let started = Instant::now();
        let jobs = client(&url)?.jobs_overview().await?;
        list_client.push(started.elapsed());
        if !jobs.iter().any(|j| j.jid == job_id) {
            return Err("the client did not list the job".into());
        }

        let started = Instant::now();
        let jobs = reused.jobs_overview().await?;
        list_reused.push(started.elapsed());
        if !jobs.iter().any(|j| j.jid == job_id) {
            return Err("the client did not list the job".into());
        }

        let started = Instant::now();
        let out = flink_cli(dist, &cluster, &["list", "-m", &address])?;
        list_cli.push(started.elapsed());
        if !out.contains(job_id.as_str()) {
            return Err(format!("the CLI did not list the job: {out}").into());
        }
        eprintln!("bench: round {} of {} done", round + 1, options.runs);
    }

    let rows = [
        (
            "savepoint round trip",
            median(&mut sp_client),
            median(&mut sp_reused),
            median(&mut sp_cli),
        ),
        (
            "list jobs",
            median(&mut list_client),
            median(&mut list_reused),
            median(&mut list_cli),
        ),
    ];
    println!(
        "Flink {}, {} runs each, medians; machine: {}",
        dist.version,
        options.runs,
        machine()
    );
    println!();
    println!(
        "| operation | client, new per call | client, reused | `flink` CLI | CLI / new client | CLI / reused client |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, fresh, kept, cli) in rows {
        println!(
            "| {name} | {} | {} | {} | {:.0}x | {:.0}x |",
            ms(fresh),
            ms(kept),
            ms(cli),
            cli.as_secs_f64() / fresh.as_secs_f64(),
            cli.as_secs_f64() / kept.as_secs_f64()
        );
    }
    Ok(())
}
