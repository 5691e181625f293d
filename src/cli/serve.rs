//! `hallctl serve --config hall.toml`: the controller service.

use std::path::PathBuf;

use clap::Args;

use crate::config::HallConfig;
use crate::serve::{ServeOptions, run, signal};

/// Arguments of `hallctl serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The hall's configuration (see docs/config.md; `hallctl config demo` prints an example).
    #[arg(long)]
    pub config: PathBuf,
    /// Simulated devices run this many times as long as reality (0.01: a hundred times
    /// faster). Real devices are not affected.
    #[arg(long, default_value_t = 1.0)]
    pub sim_time_scale: f64,
    /// Read fault-injection commands for the simulated devices from standard input, one per
    /// line: `jam PR-01`, `unplug LM-03`, `silent PR-02 on` (for drills, tests and the demo).
    #[arg(long)]
    pub sim_faults_stdin: bool,
}

/// Runs the service until SIGTERM or Ctrl-C.
///
/// # Errors
/// The configuration is invalid (every error is printed), or the hall cannot start.
pub fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = match HallConfig::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            anyhow::bail!("{} is not a valid configuration", args.config.display());
        }
    };
    if !(args.sim_time_scale > 0.0 && args.sim_time_scale <= 100.0) {
        anyhow::bail!("--sim-time-scale must be above 0 and at most 100");
    }
    super::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(
        config,
        ServeOptions {
            sim_time_scale: args.sim_time_scale,
            sim_faults_stdin: args.sim_faults_stdin,
        },
        signal(),
    ));
    // Everything durable is done by now; a blocking read of stdin (fault commands) cannot be
    // cancelled and must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
