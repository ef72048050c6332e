//! `flinkpilot local delete NAME [--wait]`: delete a deployment the way Kubernetes does: it is
//! marked for deletion, the controller removes its cluster (with a savepoint first when
//! `kubernetes.operator.job.savepoint-on-deletion` is set), then the resource disappears.
//! `delete sessionjob NAME` deletes a `FlinkSessionJob` (its job is cancelled, or stopped with a
//! savepoint with `savepoint-on-deletion`; the session cluster stays); a session cluster is
//! refused while session jobs name it. `delete snapshot NAME` deletes a `FlinkStateSnapshot`
//! likewise (its files are disposed first when it says `disposeOnDelete`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use api::{FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot};
use local::DeleteOutcome;

use super::Local;

/// Arguments of `flinkpilot local delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment; or `sessionjob` / `snapshot` followed by a FlinkSessionJob's /
    /// FlinkStateSnapshot's name.
    pub name: String,
    /// The session job's or snapshot's name, after its kind.
    pub snapshot: Option<String>,
    /// Wait until the cluster and the resource are gone.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with --wait, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Runs `flinkpilot local delete`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    match (args.name.as_str(), &args.snapshot) {
        ("snapshot" | "snapshots" | "flinkstatesnapshot" | "fss", Some(name)) => {
            delete::<FlinkStateSnapshot>(local, name, "flinkstatesnapshot", &args)
        }
        (kind, Some(name)) if super::session_jobs::is_kind(kind) => {
            delete::<FlinkSessionJob>(local, name, "flinksessionjob", &args)
        }
        (kind, Some(_)) => bail!(
            "unknown kind {kind:?}: use `delete NAME`, `delete sessionjob NAME` or `delete \
             snapshot NAME`"
        ),
        (name, None) => {
            // As the Apache operator: a session cluster stays while jobs run in it.
            let jobs = super::session_jobs::jobs_of(local, &local.key(name))?;
            if !jobs.is_empty() {
                bail!(
                    "FlinkDeployment {} is the session cluster of FlinkSessionJob(s) {}; delete \
                     them first (`flinkpilot local delete sessionjob NAME`)",
                    local.key(name),
                    jobs.join(", ")
                );
            }
            delete::<FlinkDeployment>(local, name, "flinkdeployment", &args)
        }
    }
}

fn delete<K: local::StoredObject>(
    local: &Local,
    name: &str,
    what: &str,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let key = local.key(name);
    let kind = K::kind(&());
    match local.store.mark_deleted::<K>(&key)? {
        DeleteOutcome::NotFound => bail!("{kind} {key} not found"),
        DeleteOutcome::Removed => {
            println!("{what}/{name} deleted");
            return Ok(ExitCode::SUCCESS);
        }
        DeleteOutcome::Terminating(_) => {}
    }
    let running = local.controller_running();
    if !args.wait || !running {
        println!("{what}/{name} marked for deletion");
        if !running {
            eprintln!("note: no controller runs; it is cleaned up when `flinkpilot local up` runs");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while local.store.get::<K>(&key)?.is_some() {
        if Instant::now() > deadline {
            bail!(
                "{kind} {key} is still being deleted after {}s; see its status and events \
                 (`flinkpilot local describe {name}` / `get snapshots {name} -o yaml`)",
                args.timeout,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("{what}/{name} deleted");
    Ok(ExitCode::SUCCESS)
}
