//! `flinkpilot crd`: print the three CRDs as one multi-document YAML stream, or write one file
//! per CRD into a directory (`--write deploy/crds`, which is how `deploy/crds/` is regenerated).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `flinkpilot crd`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write one `<name>.yaml` per CRD into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
}

/// Runs `flinkpilot crd`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.write {
        None => print!("{}", api::crd::all_to_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("could not create directory {}", dir.display()))?;
            for crd in api::crd::all() {
                let path = dir.join(api::crd::file_name(&crd));
                std::fs::write(&path, api::crd::to_yaml(&crd)?)
                    .with_context(|| format!("could not write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
