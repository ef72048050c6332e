//! `flinkpilot local apply -f FILE…`: validate manifests, then create or update them in the
//! store. Nothing is written unless every document is valid.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use api::FlinkDeployment;
use api::manifest::{Content, Resource, parse_documents};
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

/// Reads and validates every deployment in `files` (each against what the store already holds,
/// so invalid changes are caught too). Fails listing every problem; nothing is written.
pub fn read_valid(local: &Local, files: &[PathBuf]) -> anyhow::Result<Vec<FlinkDeployment>> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
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
                        other => problems.push(format!(
                            "{}: {}/{}: flinkpilot local runs FlinkDeployments in application \
                             mode; {} resources are not supported locally yet",
                            input.name,
                            other.kind(),
                            other.name(),
                            other.kind()
                        )),
                    },
                    // Services, ConfigMaps etc. belong to Kubernetes; nothing to do locally.
                    Ok(Content::Other { .. }) => {}
                    Err(e) => problems.push(format!("{}: {e}", input.name)),
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    if out.is_empty() {
        bail!("no FlinkDeployment found in the given files");
    }
    Ok(out)
}

/// Writes validated deployments; returns one line per deployment (`x created`).
pub fn write(local: &Local, deployments: Vec<FlinkDeployment>) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for d in deployments {
        let name = d.name().to_string();
        let (outcome, _) = local.store.apply(d)?;
        let what = match outcome {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Configured => "configured",
            ApplyOutcome::Unchanged => "unchanged",
        };
        lines.push(format!("flinkdeployment/{name} {what}"));
    }
    Ok(lines)
}

/// Runs `flinkpilot local apply`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    let deployments = read_valid(local, &args.files)?;
    for line in write(local, deployments)? {
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
