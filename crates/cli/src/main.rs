//! `flinkpilot`: wiring only. Each subcommand lives in its own module.

use clap::Parser;

/// A control plane for Apache Flink.
#[derive(Debug, Parser)]
#[command(name = "flinkpilot", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
