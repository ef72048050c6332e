//! One module per subcommand. Each has an `Args` (clap) and a `run(args) -> Result<ExitCode>`.

pub mod crd;
pub mod install;
pub mod local;
pub mod operator;
pub mod validate;
