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
    /// Run the Kubernetes operator (in a cluster, or from outside with a kubeconfig).
    Operator(cmd::operator::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd(args) => cmd::crd::run(args),
        Command::Install(args) => cmd::install::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Local(args) => cmd::local::run(args),
        Command::Operator(args) => cmd::operator::run(args),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use k8s::install::{InstallOptions, operator::args};

    #[test]
    fn the_operator_accepts_the_command_line_of_the_install_manifest() {
        for watch_namespaces in [vec![], vec!["team-a".to_string(), "team-b".to_string()]] {
            let opts = InstallOptions {
                watch_namespaces: watch_namespaces.clone(),
                ..InstallOptions::default()
            };
            let line = std::iter::once("flinkpilot".to_string()).chain(args(&opts));
            let cli = Cli::try_parse_from(line).unwrap();
            let Command::Operator(parsed) = cli.command else {
                panic!("not the operator command");
            };
            assert_eq!(parsed.namespaces, watch_namespaces);
            assert_eq!(parsed.http_addr.port(), 8080);
            assert_eq!(parsed.webhook_addr.map(|a| a.port()), Some(9443));
            assert!(parsed.webhook_cert_dir.is_some());
            assert!(
                !parsed.no_leader_election,
                "the installed replicas elect a leader"
            );
        }
    }
}
