//! `hallctl demo`: the demo hall, nothing to configure.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::demo::{DemoOptions, run};

/// Arguments of `hallctl demo`.
#[derive(Debug, Args)]
#[command(after_help = "\
The demo hall: 10 printers and 11 laminators simulated on pseudo-terminals (driven through the \
real serial code), 2 QC stations and 1 dispatch station, served like `hallctl serve` serves a \
real hall (the API, and the hall UI when the build has it).

First start (an empty data directory): your accounts (a supervisor, an auditor, an admin, four \
operators) and the simulated crew are created, their PINs printed once; 4 boxes of booklets and \
4 rolls of patches are received into the vault; 150 jobs are submitted. Then jobs keep arriving \
(--jobs-per-hour). A restart on the same directory continues where it stopped and seeds nothing. \
The crew signs in again after a restart, so its PINs are kept in DATA_DIR/demo-crew.json (demo \
only: a real hall stores no PIN).

--autopilot: simulated staff run the line through the API, as people at terminals would \
(separation of duties, two-person counts, sessions with counts, no one choosing work). \
--faults: devices jam, lose their cable or fall silent now and then; the floor supervisor \
clears them. --mqtt URL: publish to a broker as a hall with [mqtt] does (docs/mqtt.md). \
--sim-faults-stdin: fault commands for the simulated devices from standard input, as with \
`hallctl serve` (the chaos run drives the demo this way).

Ctrl-C ends the shift (with --autopilot: every step finished, every session returned and \
closed, within the server's shutdown grace) and stops like `hallctl serve`; a second Ctrl-C \
stops at once. To start over, stop the demo and delete the data directory. See docs/demo.md.")]
pub struct DemoArgs {
    /// The data directory: created on the first start, continued afterwards [default:
    /// ./hallctl-demo-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Hall time runs N times as fast as the clock: devices, staff and due times (50: a
    /// printer's 8 s page takes 0.16 s).
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub speed: f64,
    /// Simulated staff run the line.
    #[arg(long)]
    pub autopilot: bool,
    /// Where the API (and the hall UI) listen [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Jobs the simulated issuance system submits per hour of hall time.
    #[arg(long, value_name = "N", default_value_t = 1200.0)]
    pub jobs_per_hour: f64,
    /// Inject device faults now and then (jam, overheat, pulled cable, silent unit).
    #[arg(long)]
    pub faults: bool,
    /// Publish to this MQTT broker (`mqtt://host[:port]`) as a hall with `[mqtt]` does
    /// (docs/mqtt.md).
    #[arg(long, value_name = "URL", value_parser = parse_broker)]
    pub mqtt: Option<crate::config::BrokerUrl>,
    /// Read fault-injection commands for the simulated devices from standard input, as
    /// `hallctl serve --sim-faults-stdin` does (`unplug PR-01`, `garbage LM-03 on`, ...).
    #[arg(long)]
    pub sim_faults_stdin: bool,
}

fn parse_broker(s: &str) -> Result<crate::config::BrokerUrl, String> {
    let url = crate::config::BrokerUrl::parse(s)?;
    if url.tls {
        return Err(
            "the demo publishes over mqtt:// only (a TLS broker needs a configuration with ca_file: hallctl serve)"
                .into(),
        );
    }
    Ok(url)
}

/// Runs the demo hall until Ctrl-C or SIGTERM.
///
/// # Errors
/// As [`crate::demo::run`].
pub fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    let default = crate::config::HallConfig::demo();
    run(DemoOptions {
        data_dir: args.data_dir.unwrap_or(default.server.data_dir),
        speed: args.speed,
        autopilot: args.autopilot,
        listen: args.listen,
        jobs_per_hour: args.jobs_per_hour,
        faults: args.faults,
        mqtt: args.mqtt,
        sim_faults_stdin: args.sim_faults_stdin,
    })
}
