//! The `hallctl` command: parse the command line, set up logging, run the chosen command.
use std::process::ExitCode;

use clap::Parser;

// mimalloc rather than glibc malloc: the ledger's append path (sled's copy-on-write nodes, JSON)
// allocates heavily, and glibc's malloc was a quarter of the bulk-load time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = hallctl::cli::Cli::parse();
    hallctl::cli::init_tracing();
    match hallctl::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`hallctl sim | head`): not an error of ours.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The message and its causes, for a person: no backtrace, whatever RUST_BACKTRACE says.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
