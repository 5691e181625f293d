//! `hallctl config`: check a `hall.toml`, or print the embedded demo hall's.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::{DEMO_TOML, HallConfig};

/// Arguments of `hallctl config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file: print a one-line summary, or every error (file:line: key:
    /// message) and exit 1.
    Check {
        /// The file, e.g. hall.toml.
        file: PathBuf,
    },
    /// Print the embedded demo hall's configuration (a starting point for a real hall.toml).
    Demo,
}

/// Runs `hallctl config`.
///
/// # Errors
/// When the file is not a valid configuration (its errors are printed to stderr first), or
/// stdout cannot be written.
pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        ConfigCommand::Check { file } => match HallConfig::load(&file) {
            Ok(config) => writeln!(out, "ok: {}", config.summary())?,
            Err(errors) => {
                let mut err = std::io::stderr().lock();
                writeln!(err, "{errors}")?;
                let n = errors.0.len();
                anyhow::bail!(
                    "{} is not a valid configuration: {n} error{}",
                    file.display(),
                    if n == 1 { "" } else { "s" }
                );
            }
        },
        ConfigCommand::Demo => out.write_all(DEMO_TOML.as_bytes())?,
    }
    Ok(())
}
