//! `flinkpilot`: wiring only. Each subcommand lives in its own module under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// A control plane for Apache Flink.
#[derive(Debug, Parser)]
#[command(name = "flinkpilot", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (or write them to a directory).
    Crd(cmd::crd::Args),
    /// Print the manifest that installs the operator (CRDs, RBAC, Deployment, webhook).
    Install(cmd::install::Args),
    /// Check manifests for problems without a cluster.
    Validate(cmd::validate::Args),
    /// Run FlinkDeployments on this machine, with Flink as local processes.
    Local(cmd::local::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd(args) => cmd::crd::run(args),
        Command::Install(args) => cmd::install::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Local(args) => cmd::local::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // one line: what failed and why, with the whole cause chain
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
