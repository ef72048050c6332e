//! `flinkpilot local apply -f FILE…`: validate manifests (`FlinkDeployment`s,
//! `FlinkSessionJob`s and `FlinkStateSnapshot`s), then create or update them in the store.
//! Nothing is written unless every document is valid.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use api::manifest::{Content, Resource, parse_documents};
use api::{FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot};
use local::ApplyOutcome;

use super::Local;
use crate::cmd::validate::{expand, read_input};

/// Arguments of `flinkpilot local apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files or directories (their *.yaml, *.yml and *.json files); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

/// The valid resources of a set of manifests, in the order they were given.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Deployments.
    pub deployments: Vec<FlinkDeployment>,
    /// Session jobs.
    pub session_jobs: Vec<FlinkSessionJob>,
    /// Snapshots.
    pub snapshots: Vec<FlinkStateSnapshot>,
}

/// Reads and validates every deployment and snapshot in `files` (deployments against what the
/// store already holds, so invalid changes are caught too). Fails listing every problem;
/// nothing is written.
pub fn read_valid(local: &Local, files: &[PathBuf]) -> anyhow::Result<Manifests> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut snapshots = Vec::new();
    let mut session_jobs = Vec::new();
    for path in files {
        for file in expand(path)? {
            let input = read_input(&file);
            let text = match input.text {
                Ok(t) => t,
                Err(why) => {
                    problems.push(format!("{}: {why}", input.name));
                    continue;
                }
            };
            for doc in parse_documents(&text) {
                match doc.content {
                    Ok(Content::Resource(r)) => match *r {
                        Resource::Deployment(mut d) => {
                            if d.metadata.namespace.is_none() {
                                d.metadata.namespace = Some(local.namespace.clone());
                            }
                            let key = engine::decide::resource_key(&d);
                            let mut checked = d.clone();
                            checked.status = local
                                .store
                                .get::<FlinkDeployment>(&key)?
                                .and_then(|stored| stored.status);
                            for p in api::validate::deployment(&checked) {
                                problems.push(format!(
                                    "{}: FlinkDeployment/{}: {p}",
                                    input.name,
                                    d.name()
                                ));
                            }
                            out.push(d);
                        }
                        Resource::Snapshot(mut snapshot) => {
                            if snapshot.metadata.namespace.is_none() {
                                snapshot.metadata.namespace = Some(local.namespace.clone());
                            }
                            for p in api::validate::snapshot(&snapshot) {
                                problems.push(format!(
                                    "{}: FlinkStateSnapshot/{}: {p}",
                                    input.name,
                                    snapshot.name()
                                ));
                            }
                            snapshots.push(snapshot);
                        }
                        Resource::SessionJob(mut job) => {
                            if job.metadata.namespace.is_none() {
                                job.metadata.namespace = Some(local.namespace.clone());
                            }
                            session_jobs.push((input.name.clone(), job));
                        }
                    },
                    // Services, ConfigMaps etc. belong to Kubernetes; nothing to do locally.
                    Ok(Content::Other { .. }) => {}
                    Err(e) => problems.push(format!("{}: {e}", input.name)),
                }
            }
        }
    }
    // Session jobs are checked against their session cluster: one in these manifests, else
    // the stored one (when neither exists, the controller waits for it).
    let mut jobs = Vec::new();
    for (file, job) in session_jobs {
        let key = engine::session_job::session_job_key(&job);
        let session = match engine::session_job::deployment_key(&job) {
            Some(d) => match out.iter().find(|o| engine::decide::resource_key(o) == d) {
                Some(given) => Some(given.clone()),
                None => local.store.get::<FlinkDeployment>(&d)?,
            },
            None => None,
        };
        let mut checked = job.clone();
        checked.status = local
            .store
            .get::<FlinkSessionJob>(&key)?
            .and_then(|stored| stored.status);
        for p in api::validate::session_job(&checked, session.as_ref()) {
            problems.push(format!("{file}: FlinkSessionJob/{}: {p}", job.name()));
        }
        jobs.push(job);
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    if out.is_empty() && snapshots.is_empty() && jobs.is_empty() {
        bail!("no FlinkDeployment, FlinkSessionJob or FlinkStateSnapshot found in the given files");
    }
    Ok(Manifests {
        deployments: out,
        session_jobs: jobs,
        snapshots,
    })
}

/// Writes validated resources (deployments first, so a session job or a snapshot finds the
/// deployment it names);
/// returns one line per resource (`flinkdeployment/x created`).
pub fn write(local: &Local, manifests: Manifests) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for d in manifests.deployments {
        let name = d.name().to_string();
        let (outcome, _) = local.store.apply(d)?;
        lines.push(format!("flinkdeployment/{name} {}", said(outcome)));
    }
    for job in manifests.session_jobs {
        let name = job.name().to_string();
        let (outcome, _) = local.store.apply(job)?;
        lines.push(format!("flinksessionjob/{name} {}", said(outcome)));
    }
    for snapshot in manifests.snapshots {
        let name = snapshot.name().to_string();
        let (outcome, _) = local.store.apply(snapshot)?;
        lines.push(format!("flinkstatesnapshot/{name} {}", said(outcome)));
    }
    Ok(lines)
}

fn said(outcome: ApplyOutcome) -> &'static str {
    match outcome {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Configured => "configured",
        ApplyOutcome::Unchanged => "unchanged",
    }
}

/// Runs `flinkpilot local apply`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    let manifests = read_valid(local, &args.files)?;
    for line in write(local, manifests)? {
        println!("{line}");
    }
    if !local.controller_running() {
        eprintln!(
            "note: no controller runs on {}; start it with `flinkpilot local up`",
            local.state.root().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
