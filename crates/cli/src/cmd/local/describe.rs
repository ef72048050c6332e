//! `flinkpilot local describe NAME`: the spec in short, the status, the Flink web UI, the error,
//! the recent events (transitions) and the newest `FlinkStateSnapshot`s of one deployment.

use std::fmt::Write as _;
use std::process::ExitCode;

use api::config::is_sensitive_key;
use api::{FlinkDeployment, FlinkDeploymentSpec, FlinkSessionJob, FlinkStateSnapshot};

use super::{Local, table};

/// How many recent events are shown.
const EVENTS_SHOWN: usize = 20;

/// Arguments of `flinkpilot local describe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment; or `sessionjob` followed by a FlinkSessionJob's name.
    pub name: String,
    /// The session job's name, after `sessionjob`.
    pub session_job: Option<String>,
}

/// Runs `flinkpilot local describe`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(name) = &args.session_job {
        if !super::session_jobs::is_kind(&args.name) {
            anyhow::bail!(
                "unknown kind {:?}: use `describe NAME` or `describe sessionjob NAME`",
                args.name
            );
        }
        let job = super::session_jobs::get(local, name)?;
        let session = match engine::session_job::deployment_key(&job) {
            Some(key) => local.store.get::<FlinkDeployment>(&key)?,
            None => None,
        };
        let events = local.store.events::<FlinkSessionJob>(&local.key(name))?;
        print!(
            "{}",
            super::session_jobs::describe(&job, session.as_ref(), &events)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let d = local.deployment(&args.name)?;
    let key = local.key(&args.name);
    let events = local.store.events::<FlinkDeployment>(&key)?;
    let url = super::up::ui_url(local, &d);
    let now = engine::controller::now_ms();
    print!("{}", describe(&d, url.as_deref(), &events, now));
    let mut snapshots: Vec<FlinkStateSnapshot> = local
        .store
        .list_namespace::<FlinkStateSnapshot>(&key.namespace)?
        .into_iter()
        .filter(|s| engine::snapshot::refers_to(s, &key))
        .collect();
    if !snapshots.is_empty() {
        snapshots.sort_by_key(|s| std::cmp::Reverse(engine::snapshot::created_ms(s)));
        println!(
            "Snapshots ({}, newest first; all: `flinkpilot local get snapshots`):",
            snapshots.len()
        );
        for s in snapshots.iter().take(SNAPSHOTS_SHOWN) {
            let kind = engine::snapshot::SnapshotKind::of(s).as_str();
            println!(
                "  {} {} {} {} ago {}",
                s.name(),
                kind,
                engine::snapshot::state(s).as_str(),
                table::duration(now - engine::snapshot::created_ms(s)),
                engine::snapshot::snapshot_path(s).unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many of the deployment's snapshots are shown.
const SNAPSHOTS_SHOWN: usize = 5;

fn spec_summary(out: &mut String, spec: &FlinkDeploymentSpec) {
    let v = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "Flink version:   {}",
        v(spec.flink_version.map(|f| f.to_string()))
    );
    if let Some(job) = &spec.job {
        write_job(out, job);
    }
    let tms = engine::plan_builder::taskmanager_count(spec);
    let _ = writeln!(out, "TaskManagers:    {tms}");
    let config = spec.flink_config().flatten();
    if !config.is_empty() {
        let _ = writeln!(out, "Flink configuration:");
        for (k, val) in config {
            let shown = if is_sensitive_key(&k) {
                "<hidden>".to_string()
            } else {
                val
            };
            let _ = writeln!(out, "  {k}: {shown}");
        }
    }
}

/// The description as text.
pub fn describe(
    d: &FlinkDeployment,
    ui_url: Option<&str>,
    events: &[local::Event],
    now_ms: i64,
) -> String {
    let mut out = String::new();
    let status = d.status.clone().unwrap_or_default();
    let job = status.job_status.clone().unwrap_or_default();
    let dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "Name:            {}", d.name());
    let _ = writeln!(
        out,
        "Namespace:       {}",
        d.metadata.namespace.as_deref().unwrap_or("default")
    );
    let _ = writeln!(
        out,
        "Generation:      {} (observed: {})",
        dash(d.metadata.generation.map(|g| g.to_string())),
        dash(status.observed_generation.map(|g| g.to_string()))
    );
    if d.metadata.deletion_timestamp.is_some() {
        let _ = writeln!(out, "Deletion:        requested");
    }
    spec_summary(&mut out, &d.spec);
    let _ = writeln!(out, "Status:");
    let _ = writeln!(
        out,
        "  Lifecycle:     {}",
        dash(status.lifecycle_state.map(|s| s.to_string()))
    );
    let started = job
        .start_time
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|t| *t > 0)
        .map(|t| format!(", started {} ago", table::duration(now_ms - t)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  Job:           {} (id {}{started})",
        dash(job.state.map(|s| s.to_string())),
        dash(job.job_id.clone())
    );
    let _ = writeln!(
        out,
        "  JobManager:    {}",
        dash(status.job_manager_deployment_status.map(|s| s.to_string()))
    );
    let recon = status.reconciliation_status.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "  Reconciliation: {}{}",
        dash(recon.state.map(|s| s.to_string())),
        if recon.is_last_reconciled_spec_stable() {
            " (stable)"
        } else {
            ""
        }
    );
    if let Some(tm) = status.task_manager.as_ref().and_then(|t| t.replicas) {
        let _ = writeln!(out, "  TaskManagers:  {tm} running");
    }
    if let Some(path) = &job.upgrade_savepoint_path {
        let _ = writeln!(out, "  Restore path:  {path}");
    }
    if let Some(info) = &job.savepoint_info {
        if let Some(last) = &info.last_savepoint {
            let age = last
                .time_stamp
                .map(|t| format!(", {} ago", table::duration(now_ms - t)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  Last savepoint: {} ({}{age})",
                dash(last.location.clone()),
                dash(last.trigger_type.map(|t| t.to_string()))
            );
        }
        if let Some(trigger) = &info.trigger_id {
            let _ = writeln!(
                out,
                "  Savepoint in progress: {trigger} ({})",
                dash(info.trigger_type.map(|t| t.to_string()))
            );
        }
        let n = info.savepoint_history.as_ref().map_or(0, Vec::len);
        if n > 0 {
            let _ = writeln!(out, "  Savepoints:    {n} recorded");
        }
    }
    if let Some(url) = ui_url {
        let _ = writeln!(out, "Flink web UI:    {url}");
    }
    if let Some(error) = &status.error {
        let _ = writeln!(out, "Error:           {error}");
    }
    write_events(&mut out, events);
    out
}

/// The `Job:` section of a spec.
pub(super) fn write_job(out: &mut String, job: &api::JobSpec) {
    let _ = writeln!(out, "Job:");
    let jar = job.jar_uri.as_deref().unwrap_or("-");
    let _ = writeln!(out, "  Jar:           {jar}");
    if let Some(entry) = &job.entry_class {
        let _ = writeln!(out, "  Entry class:   {entry}");
    }
    if !job.args().is_empty() {
        let _ = writeln!(out, "  Args:          {}", job.args().join(" "));
    }
    let _ = writeln!(out, "  Parallelism:   {}", job.parallelism());
    let _ = writeln!(out, "  Upgrade mode:  {}", job.upgrade_mode());
    let _ = writeln!(out, "  State:         {}", job.state());
    if let Some(p) = &job.initial_savepoint_path {
        let _ = writeln!(out, "  Initial savepoint: {p}");
    }
}

/// The `Events:` section: the newest [`EVENTS_SHOWN`] events, oldest first.
pub(super) fn write_events(out: &mut String, events: &[local::Event]) {
    let _ = writeln!(out, "Events:");
    if events.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    let skip = events.len().saturating_sub(EVENTS_SHOWN);
    for e in &events[skip..] {
        let kind = match e.event_type {
            local::EventType::Normal => "Normal",
            local::EventType::Warning => "Warning",
        };
        let _ = writeln!(
            out,
            "  {}  {kind:<7}  {:<16}  {}",
            e.time, e.reason, e.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_hides_secrets_and_shows_the_error_and_events() {
        let mut d = FlinkDeployment::test("counter")
            .application()
            .with_config("s3.secret-key", "hunter2");
        d.status = Some(api::FlinkDeploymentStatus {
            error: Some("Job failed: boom".into()),
            ..Default::default()
        });
        let events = vec![local::Event::new(
            local::EventType::Warning,
            "JobStatusChanged",
            "Job status changed from RUNNING to FAILED: boom",
        )];
        let text = describe(&d, Some("http://localhost:8081"), &events, 0);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("s3.secret-key: <hidden>"), "{text}");
        assert!(text.contains("Error:           Job failed: boom"), "{text}");
        assert!(
            text.contains("Flink web UI:    http://localhost:8081"),
            "{text}"
        );
        assert!(text.contains("JobStatusChanged"), "{text}");
    }
}
