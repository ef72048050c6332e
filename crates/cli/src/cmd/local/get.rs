//! `flinkpilot local get [NAME]` / `get sessionjobs [NAME]` / `get snapshots [NAME]`: the status
//! table of deployments, `FlinkSessionJob`s or `FlinkStateSnapshot`s, or objects as YAML/JSON.

use std::process::ExitCode;

use anyhow::{Context, bail};
use api::{FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot};
use serde::Serialize;

use super::{Local, table};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The status table.
    Table,
    /// The whole object(s) as YAML.
    Yaml,
    /// The whole object(s) as JSON.
    Json,
}

/// Arguments of `flinkpilot local get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A deployment's name; or a kind: `deployments` (the default), `sessionjobs`
    /// (FlinkSessionJobs), `snapshots` (FlinkStateSnapshots), followed by a name.
    pub what: Option<String>,
    /// The name, after a kind.
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

const DEPLOYMENTS: &[&str] = &[
    "deployments",
    "deployment",
    "flinkdeployments",
    "flinkdeployment",
    "fdep",
];
const SNAPSHOTS: &[&str] = &[
    "snapshots",
    "snapshot",
    "flinkstatesnapshots",
    "flinkstatesnapshot",
    "fss",
];

/// Runs `flinkpilot local get`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    let kind = args.what.as_deref().map(str::to_ascii_lowercase);
    match (kind.as_deref(), args.name) {
        (Some(k), name) if SNAPSHOTS.contains(&k) => snapshots(local, name, args.output),
        (Some(k), name) if super::session_jobs::is_kind(k) => {
            session_jobs(local, name, args.output)
        }
        (Some(k), name) if DEPLOYMENTS.contains(&k) => deployments(local, name, args.output),
        (Some(k), Some(_)) => {
            bail!(
                "unknown kind {k:?}: use `get deployments [NAME]`, `get sessionjobs [NAME]` or \
                 `get snapshots [NAME]`"
            )
        }
        // a deployment's name, or nothing
        _ => deployments(local, args.what, args.output),
    }
}

fn deployments(local: &Local, name: Option<String>, output: Output) -> anyhow::Result<ExitCode> {
    let deployments: Vec<FlinkDeployment> = match &name {
        Some(name) => vec![local.deployment(name)?],
        None => local.store.list::<FlinkDeployment>()?,
    };
    if output != Output::Table {
        return print_objects(&deployments, name.is_some(), output);
    }
    if deployments.is_empty() {
        eprintln!(
            "no FlinkDeployments in {}; create one with `flinkpilot local apply -f FILE`",
            local.state.root().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = engine::controller::now_ms();
    let rows: Vec<table::Row> = deployments.iter().map(|d| table::row(d, now)).collect();
    for line in table::render(&rows) {
        println!("{line}");
    }
    for r in rows.iter().filter(|r| r.error.is_some()) {
        let error = r.error.as_deref().unwrap_or_default();
        println!("{}: {}", r.name, table::short_error(error));
    }
    Ok(ExitCode::SUCCESS)
}

fn session_jobs(local: &Local, name: Option<String>, output: Output) -> anyhow::Result<ExitCode> {
    let jobs: Vec<FlinkSessionJob> = match &name {
        Some(name) => vec![super::session_jobs::get(local, name)?],
        None => local
            .store
            .list_namespace::<FlinkSessionJob>(&local.namespace)?,
    };
    if output != Output::Table {
        return print_objects(&jobs, name.is_some(), output);
    }
    if jobs.is_empty() {
        eprintln!(
            "no FlinkSessionJobs in namespace {}; create one with `flinkpilot local apply -f FILE`",
            local.namespace
        );
        return Ok(ExitCode::SUCCESS);
    }
    super::session_jobs::print_table(&jobs, engine::controller::now_ms());
    Ok(ExitCode::SUCCESS)
}

fn snapshots(local: &Local, name: Option<String>, output: Output) -> anyhow::Result<ExitCode> {
    let snapshots: Vec<FlinkStateSnapshot> = match &name {
        Some(name) => {
            let key = local.key(name);
            vec![
                local
                    .store
                    .get::<FlinkStateSnapshot>(&key)?
                    .with_context(|| {
                        format!(
                            "FlinkStateSnapshot {key} not found; see `flinkpilot local get \
                             snapshots`"
                        )
                    })?,
            ]
        }
        None => local
            .store
            .list_namespace::<FlinkStateSnapshot>(&local.namespace)?,
    };
    if output != Output::Table {
        return print_objects(&snapshots, name.is_some(), output);
    }
    if snapshots.is_empty() {
        eprintln!(
            "no FlinkStateSnapshots in namespace {}; take one with `flinkpilot local savepoint \
             NAME`",
            local.namespace
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = engine::controller::now_ms();
    let rows: Vec<Vec<String>> = snapshots.iter().map(|s| snapshot_row(s, now)).collect();
    let cells: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    for line in table::render_cells(&SNAPSHOT_HEADERS, &cells) {
        println!("{line}");
    }
    for s in &snapshots {
        if let Some(e) = s.status.as_ref().and_then(|s| s.error.as_deref()) {
            println!("{}: {}", s.name(), table::short_error(e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

const SNAPSHOT_HEADERS: [&str; 7] = [
    "NAME",
    "TYPE",
    "TRIGGER",
    "DEPLOYMENT",
    "STATE",
    "AGE",
    "PATH",
];

/// One row of the snapshot table.
fn snapshot_row(s: &FlinkStateSnapshot, now_ms: i64) -> Vec<String> {
    let dash = || "-".to_string();
    let kind = match engine::snapshot::SnapshotKind::of(s) {
        engine::snapshot::SnapshotKind::Savepoint => "SAVEPOINT",
        engine::snapshot::SnapshotKind::Checkpoint => "CHECKPOINT",
    };
    let mut state = engine::snapshot::state(s).as_str().to_string();
    if s.metadata.deletion_timestamp.is_some() {
        state.push_str(" (deleting)");
    }
    vec![
        s.name().to_string(),
        kind.to_string(),
        engine::snapshot::trigger_type(s).as_str().to_string(),
        s.spec
            .job_reference
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_else(dash),
        state,
        table::duration(now_ms - engine::snapshot::created_ms(s)),
        engine::snapshot::snapshot_path(s).unwrap_or_else(dash),
    ]
}

fn print_objects<T: Serialize>(
    objects: &[T],
    one: bool,
    output: Output,
) -> anyhow::Result<ExitCode> {
    match output {
        Output::Json => {
            let value = match (one, objects) {
                (true, [only]) => serde_json::to_value(only)?,
                _ => serde_json::to_value(objects)?,
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Output::Yaml | Output::Table => {
            for (i, o) in objects.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", serde_saphyr::to_string(o)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
