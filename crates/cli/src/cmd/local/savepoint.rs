//! `flinkpilot local savepoint NAME`: a manual savepoint through the (deprecated upstream)
//! `spec.job.savepointTriggerNonce`, then wait for it and print its path.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use api::FlinkDeployment;

use super::{Local, validate_change};

/// Arguments of `flinkpilot local savepoint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment.
    pub name: String,
    /// Return once requested instead of waiting for the savepoint.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest wait, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

fn last_savepoint(d: &FlinkDeployment) -> Option<(Option<i64>, Option<String>)> {
    let sp = d
        .status
        .as_ref()?
        .job_status
        .as_ref()?
        .savepoint_info
        .as_ref()?
        .last_savepoint
        .clone()?;
    Some((sp.trigger_nonce, sp.location))
}

/// Runs `flinkpilot local savepoint`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    let key = local.key(&args.name);
    let mut d = local.deployment(&args.name)?;
    let Some(job) = d.spec.job.as_mut() else {
        bail!("FlinkDeployment {key}: spec.job is not set; a session cluster has no job to save");
    };
    let nonce = job.savepoint_trigger_nonce.unwrap_or(0) + 1;
    job.savepoint_trigger_nonce = Some(nonce);
    validate_change(&d)?;
    local.store.patch_spec::<FlinkDeployment>(&key, |spec| {
        if let Some(job) = spec.job.as_mut() {
            job.savepoint_trigger_nonce = Some(nonce);
        }
    })?;
    if args.no_wait {
        println!("savepoint requested for flinkdeployment/{}", args.name);
        return Ok(ExitCode::SUCCESS);
    }
    if !local.controller_running() {
        println!("savepoint requested for flinkdeployment/{}", args.name);
        eprintln!("note: no controller runs; it is taken when `flinkpilot local up` runs");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "waiting for the savepoint of flinkdeployment/{}…",
        args.name
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let d = local.deployment(&args.name)?;
        if let Some((Some(n), Some(location))) = last_savepoint(&d)
            && n == nonce
        {
            println!("{location}");
            return Ok(ExitCode::SUCCESS);
        }
        // Taken (the recorded nonce is ours), not in flight any more, and not recorded as the
        // last savepoint: it failed.
        let status = d.status.clone().unwrap_or_default();
        let attempted = engine::decide::target_spec(&status)
            .and_then(|t| t.job)
            .and_then(|j| j.savepoint_trigger_nonce)
            == Some(nonce);
        let in_flight = status
            .job_status
            .as_ref()
            .and_then(|j| j.savepoint_info.as_ref())
            .is_some_and(|s| s.trigger_id.is_some());
        if attempted
            && !in_flight
            && let Some(e) = status.error.filter(|e| e.starts_with("Savepoint failed"))
        {
            bail!("FlinkDeployment {key}: {e}");
        }
        if Instant::now() > deadline {
            bail!(
                "FlinkDeployment {key}: no savepoint after {}s; see `flinkpilot local describe {}`",
                args.timeout,
                args.name
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
