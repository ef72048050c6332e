//! `flinkpilot local suspend NAME` / `resume NAME`: set `spec.job.state`, as `kubectl patch`
//! would. The controller stops the job keeping its state (per `upgradeMode`) or resumes it
//! from that state.

use std::process::ExitCode;

use anyhow::bail;
use api::{FlinkDeployment, JobState};

use super::{Local, validate_change};

/// Arguments of `flinkpilot local suspend` and `resume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment.
    pub name: String,
}

/// Runs `flinkpilot local suspend|resume`.
pub fn run(local: &Local, args: Args, state: JobState) -> anyhow::Result<ExitCode> {
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
    let verb = match state {
        JobState::Suspended => "suspended",
        JobState::Running => "resumed",
    };
    println!("flinkdeployment/{} {verb}", args.name);
    if !local.controller_running() {
        eprintln!("note: no controller runs; it takes effect when `flinkpilot local up` runs");
    }
    Ok(ExitCode::SUCCESS)
}
