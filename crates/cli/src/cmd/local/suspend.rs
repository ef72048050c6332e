//! `flinkpilot local suspend NAME` / `resume NAME` (`suspend sessionjob NAME` for a
//! `FlinkSessionJob`): set `spec.job.state`, as `kubectl patch` would. The controller stops the job keeping its state (per `upgradeMode`) or resumes it
//! from that state.

use std::process::ExitCode;

use anyhow::bail;
use api::{FlinkDeployment, FlinkSessionJob, JobState};

use super::{Local, validate_change};

/// Arguments of `flinkpilot local suspend` and `resume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment; or `sessionjob` followed by a FlinkSessionJob's name.
    pub name: String,
    /// The session job's name, after `sessionjob`.
    pub session_job: Option<String>,
}

/// Runs `flinkpilot local suspend|resume`.
pub fn run(local: &Local, args: Args, state: JobState) -> anyhow::Result<ExitCode> {
    if let Some(name) = &args.session_job {
        if !super::session_jobs::is_kind(&args.name) {
            bail!(
                "unknown kind {:?}: use `{verb} NAME` or `{verb} sessionjob NAME`",
                args.name,
                verb = verb(state)
            );
        }
        return session_job(local, name, state);
    }
    let mut d = local.deployment(&args.name)?;
    let Some(job) = d.spec.job.as_mut() else {
        bail!(
            "FlinkDeployment {}: spec.job is not set; only application deployments can be \
             suspended or resumed",
            local.key(&args.name)
        );
    };
    if job.state() == state {
        println!("flinkdeployment/{} is already {state}", args.name);
        return Ok(ExitCode::SUCCESS);
    }
    job.state = Some(state);
    validate_change(&d)?;
    local
        .store
        .patch_spec::<FlinkDeployment>(&local.key(&args.name), |spec| {
            if let Some(job) = spec.job.as_mut() {
                job.state = Some(state);
            }
        })?;
    println!("flinkdeployment/{} {}", args.name, done(state));
    if !local.controller_running() {
        eprintln!("note: no controller runs; it takes effect when `flinkpilot local up` runs");
    }
    Ok(ExitCode::SUCCESS)
}

fn verb(state: JobState) -> &'static str {
    match state {
        JobState::Suspended => "suspend",
        JobState::Running => "resume",
    }
}

fn done(state: JobState) -> &'static str {
    match state {
        JobState::Suspended => "suspended",
        JobState::Running => "resumed",
    }
}

/// `suspend|resume sessionjob NAME`.
fn session_job(local: &Local, name: &str, state: JobState) -> anyhow::Result<ExitCode> {
    let mut job = super::session_jobs::get(local, name)?;
    let Some(spec) = job.spec.job.as_mut() else {
        bail!("FlinkSessionJob {}: spec.job is not set", local.key(name));
    };
    if spec.state() == state {
        println!("flinksessionjob/{name} is already {state}");
        return Ok(ExitCode::SUCCESS);
    }
    spec.state = Some(state);
    let session = match engine::session_job::deployment_key(&job) {
        Some(key) => local.store.get::<FlinkDeployment>(&key)?,
        None => None,
    };
    let problems = api::validate::session_job(&job, session.as_ref());
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("FlinkSessionJob/{name}: {p}"))
            .collect();
        bail!("{}", lines.join("\n"));
    }
    local
        .store
        .patch_spec::<FlinkSessionJob>(&local.key(name), |spec| {
            if let Some(job) = spec.job.as_mut() {
                job.state = Some(state);
            }
        })?;
    println!("flinksessionjob/{name} {}", done(state));
    if !local.controller_running() {
        eprintln!("note: no controller runs; it takes effect when `flinkpilot local up` runs");
    }
    Ok(ExitCode::SUCCESS)
}
