//! The `hallctl` command: parse the command line, set up logging, run the chosen command.
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = hallctl::cli::Cli::parse();
    hallctl::cli::init_tracing();
    hallctl::cli::run(cli)
}
