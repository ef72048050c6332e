//! `flinkpilot local get [NAME]`: the status table, or one object as YAML/JSON.

use std::process::ExitCode;

use api::FlinkDeployment;

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
    /// A deployment; all of them when left out.
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

/// Runs `flinkpilot local get`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    let deployments: Vec<FlinkDeployment> = match &args.name {
        Some(name) => vec![local.deployment(name)?],
        None => local.store.list::<FlinkDeployment>()?,
    };
    match args.output {
        Output::Json => {
            let value = match (&args.name, deployments.as_slice()) {
                (Some(_), [one]) => serde_json::to_value(one)?,
                _ => serde_json::to_value(&deployments)?,
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Output::Yaml => {
            for (i, d) in deployments.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", serde_saphyr::to_string(d)?);
            }
        }
        Output::Table => {
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
        }
    }
    Ok(ExitCode::SUCCESS)
}
