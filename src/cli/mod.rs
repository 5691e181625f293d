//! The command line: one subcommand per module, each a thin shell over the library.

use clap::{Parser, Subcommand};

pub mod audit;
pub mod central;
pub mod config;
pub mod demo;
pub mod devices;
pub mod ledger;
pub mod serve;
pub mod sim;
pub mod users;

/// hallctl: the production-hall printing line controller.
#[derive(Debug, Parser)]
#[command(name = "hallctl", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Play a day (or a surge, or a laminator outage) of the line in the discrete-event simulator,
    /// our scheduler side by side with a FIFO baseline.
    Sim(sim::SimArgs),
    /// Device tools: `hallctl devices sim` runs simulated printers and laminators on
    /// pseudo-terminals and prints their port paths.
    Devices(devices::DevicesArgs),
    /// The patch and booklet ledger: trace, reconcile, export missing serials, record events.
    Ledger(ledger::LedgerArgs),
    /// Ledger integrity: verify the chain, signed evidence bundles, checkpoint export.
    Audit(audit::AuditArgs),
    /// The national overview: `hallctl central --mqtt mqtt://broker` follows every hall that
    /// publishes to the broker and serves a live page (and `/api/halls`).
    Central(central::CentralArgs),
    /// Run the controller: `hallctl serve --config hall.toml`.
    Serve(serve::ServeArgs),
    /// The demo hall, nothing to configure: simulated devices, seeded staff, vault and jobs;
    /// `--autopilot` runs the line by itself.
    Demo(demo::DemoArgs),
    /// The configuration: `hallctl config check hall.toml`, `hallctl config demo`.
    Config(config::ConfigArgs),
    /// Accounts from the console (while the controller is stopped): add, disable, enable,
    /// reset a PIN or a service token, list.
    Users(users::UsersArgs),
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the command reports; `main` prints it and exits non-zero.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sim(args) => sim::run(args),
        Command::Devices(args) => devices::run(args),
        Command::Ledger(args) => ledger::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Serve(args) => serve::run_serve(args),
        Command::Demo(args) => demo::run_demo(args),
        Command::Central(args) => central::run(args),
        Command::Config(args) => config::run(args),
        Command::Users(args) => users::run(args),
    }
}
