//! `hallctl sim`: the line simulator's command line.

use clap::Args;

/// Arguments of `hallctl sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Number of passport printers.
    #[arg(long, default_value_t = 10)]
    pub printers: u32,
}

/// Runs the simulator and prints its report.
///
/// # Errors
/// Invalid arguments.
pub fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("the simulator is not built yet")
}
