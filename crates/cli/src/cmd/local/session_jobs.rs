//! `FlinkSessionJob`s on the command line: `get sessionjobs [NAME]`, `describe sessionjob NAME`,
//! and the kind names every verb accepts before a session job's name.

use std::fmt::Write as _;

use anyhow::Context;
use api::config::is_sensitive_key;
use api::{FlinkDeployment, FlinkJobState, FlinkSessionJob};
use engine::ResourceKey;

use super::{Local, table};

/// The names of the kind, as `kubectl` accepts them (`sessionjob` is the CRD's short name).
pub const KINDS: &[&str] = &[
    "sessionjobs",
    "sessionjob",
    "flinksessionjobs",
    "flinksessionjob",
];

/// Whether `word` names the `FlinkSessionJob` kind.
pub fn is_kind(word: &str) -> bool {
    KINDS.contains(&word.to_ascii_lowercase().as_str())
}

/// The session job `name`, or an error saying it does not exist.
pub fn get(local: &Local, name: &str) -> anyhow::Result<FlinkSessionJob> {
    let key = local.key(name);
    local.store.get::<FlinkSessionJob>(&key)?.with_context(|| {
        format!("FlinkSessionJob {key} not found; see `flinkpilot local get sessionjobs`")
    })
}

/// The session jobs that run in the session cluster `deployment`.
pub fn jobs_of(local: &Local, deployment: &ResourceKey) -> anyhow::Result<Vec<String>> {
    let jobs = local
        .store
        .list_namespace::<FlinkSessionJob>(&deployment.namespace)?;
    Ok(engine::session_job::jobs_of(&jobs, deployment)
        .map(|j| j.name().to_string())
        .collect())
}

/// Table headers.
pub const HEADERS: [&str; 6] = [
    "NAME",
    "DEPLOYMENT",
    "JOB STATUS",
    "LIFECYCLE",
    "LAST SAVEPOINT",
    "UPTIME",
];

/// One row of the session job table.
pub fn row(j: &FlinkSessionJob, now_ms: i64) -> Vec<String> {
    let dash = || "-".to_string();
    let status = j.status.clone().unwrap_or_default();
    let job = status.job_status.clone().unwrap_or_default();
    let mut lifecycle = status.lifecycle_state.map_or_else(dash, |s| s.to_string());
    if j.metadata.deletion_timestamp.is_some() && lifecycle != "DELETING" {
        lifecycle.push_str(" (deleting)");
    }
    let savepoint = job
        .savepoint_info
        .as_ref()
        .and_then(|s| s.last_savepoint.as_ref())
        .and_then(|s| s.location.clone())
        .and_then(|l| {
            l.trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(dash);
    let uptime = match (
        job.state,
        job.start_time
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok()),
    ) {
        (Some(FlinkJobState::Running), Some(start)) if start > 0 => table::duration(now_ms - start),
        _ => dash(),
    };
    vec![
        j.name().to_string(),
        j.spec.deployment_name.clone().unwrap_or_else(dash),
        job.state.map_or_else(dash, |s| s.to_string()),
        lifecycle,
        savepoint,
        uptime,
    ]
}

/// Prints the table of `jobs` and their errors.
pub fn print_table(jobs: &[FlinkSessionJob], now_ms: i64) {
    let rows: Vec<Vec<String>> = jobs.iter().map(|j| row(j, now_ms)).collect();
    let cells: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    for line in table::render_cells(&HEADERS, &cells) {
        println!("{line}");
    }
    for j in jobs {
        if let Some(e) = j.status.as_ref().and_then(|s| s.error.as_deref()) {
            println!("{}: {}", j.name(), table::short_error(e));
        }
    }
}

/// `describe sessionjob NAME` as text: the spec in short, the status, the error, the events.
pub fn describe(
    j: &FlinkSessionJob,
    session: Option<&FlinkDeployment>,
    events: &[local::Event],
) -> String {
    let mut out = String::new();
    let dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    let status = j.status.clone().unwrap_or_default();
    let job = status.job_status.clone().unwrap_or_default();
    let _ = writeln!(out, "Name:            {}", j.name());
    let _ = writeln!(
        out,
        "Namespace:       {}",
        j.metadata.namespace.as_deref().unwrap_or("default")
    );
    let kind = match session {
        None => " (not found)",
        Some(d) if d.spec.job.is_some() => " (an application deployment)",
        Some(_) => "",
    };
    let _ = writeln!(
        out,
        "Session cluster: {}{kind}",
        dash(j.spec.deployment_name.clone())
    );
    let _ = writeln!(
        out,
        "Generation:      {} (observed: {})",
        dash(j.metadata.generation.map(|g| g.to_string())),
        dash(status.observed_generation.map(|g| g.to_string()))
    );
    if j.metadata.deletion_timestamp.is_some() {
        let _ = writeln!(out, "Deletion:        requested");
    }
    if let Some(job) = &j.spec.job {
        super::describe::write_job(&mut out, job);
    }
    for (k, v) in j.spec.flink_config().flatten() {
        let shown = if is_sensitive_key(&k) {
            "<hidden>".into()
        } else {
            v
        };
        let _ = writeln!(out, "  {k}: {shown}");
    }
    let _ = writeln!(out, "Status:");
    let _ = writeln!(
        out,
        "  Lifecycle:     {}",
        dash(status.lifecycle_state.map(|s| s.to_string()))
    );
    let _ = writeln!(
        out,
        "  Job:           {} (id {})",
        dash(job.state.map(|s| s.to_string())),
        dash(job.job_id.clone())
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
    if let Some(path) = &job.upgrade_savepoint_path {
        let _ = writeln!(out, "  Restore path:  {path}");
    }
    if let Some(last) = job
        .savepoint_info
        .as_ref()
        .and_then(|s| s.last_savepoint.as_ref())
    {
        let _ = writeln!(out, "  Last savepoint: {}", dash(last.location.clone()));
    }
    if let Some(error) = &status.error {
        let _ = writeln!(out, "Error:           {error}");
    }
    super::describe::write_events(&mut out, events);
    out
}
