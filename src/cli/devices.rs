//! `hallctl devices sim`: run simulated printers and laminators on pseudo-terminals, standalone.

use std::time::Duration;

use clap::{Args, Subcommand};
use hallctl_drivers::sim::TimeScale;
use hallctl_drivers::sim::command;
use hallctl_drivers::sim::inject::SimSet;
use hallctl_drivers::sim::laminator::{LaminatorTiming, spawn_laminator_bus};
use hallctl_drivers::sim::printer::{PrinterTiming, spawn_printer_sim};
use tokio::io::AsyncBufReadExt;

/// Arguments of `hallctl devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// What to do with devices.
    #[command(subcommand)]
    pub command: DevicesCommand,
}

/// `hallctl devices` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Run simulated devices on pseudo-terminals and print their port paths until Ctrl-C.
    ///
    /// Fault-injection commands are read from standard input, one per line (`help` lists them):
    /// e.g. `jam PRN-1`, `silent LAM-2 on`, `unplug PRN-1`, `plug PRN-1`.
    Sim(SimDevicesArgs),
}

/// Arguments of `hallctl devices sim`.
#[derive(Debug, Args)]
pub struct SimDevicesArgs {
    /// Number of simulated printers (one port each).
    #[arg(long, default_value_t = 2)]
    pub printers: u8,
    /// Number of simulated laminators (units 1..=N on one RS-485 bus port).
    #[arg(long, default_value_t = 2)]
    pub laminators: u8,
    /// Directory for the port symlinks (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Time scale: 1 is realistic, 0.1 runs ten times faster.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
}

/// Runs a `hallctl devices` command.
///
/// # Errors
/// When a pseudo-terminal or the port directory cannot be created.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    match args.command {
        DevicesCommand::Sim(a) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(sim(a)),
    }
}

async fn sim(a: SimDevicesArgs) -> anyhow::Result<()> {
    let (dir, _guard) = match a.dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            (d, None)
        }
        None => {
            let t = tempfile_dir()?;
            (t.clone(), Some(RemoveOnDrop(t)))
        }
    };
    let scale = TimeScale::new(a.time_scale);
    let mut printers = Vec::new();
    for i in 1..=a.printers {
        let sim = spawn_printer_sim(
            dir.join(format!("prn-{i}")),
            9_000_000 + u64::from(i) * 100_000,
            PrinterTiming {
                scale,
                ..PrinterTiming::default()
            },
        )?;
        println!("printer   PRN-{i}  {}", sim.control.path().display());
        printers.push(sim);
    }
    let bus = if a.laminators > 0 {
        let ids: Vec<u8> = (1..=a.laminators).collect();
        let bus = spawn_laminator_bus(
            dir.join("rs485-1"),
            &ids,
            41_200,
            LaminatorTiming {
                scale,
                ..LaminatorTiming::default()
            },
        )?;
        for id in &ids {
            println!(
                "laminator LAM-{id}  {}  (Modbus RTU unit {id}, 115200 8N1)",
                bus.path().display()
            );
        }
        Some(bus)
    } else {
        None
    };
    println!("ready");
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let deadline = a
        .seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut stdin_open = true;
    loop {
        let stop = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tokio::select! {
            () = stop => break,
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) if line.trim() == "help" => println!("{}", command::HELP),
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => match command::parse(&line) {
                    Ok(cmd) => match SimSet::of(&printers, bus.as_ref()).apply(&cmd).await {
                        Ok(()) => println!("ok: {}", line.trim()),
                        Err(e) => println!("error: {e}"),
                    },
                    Err(e) => println!("error: {e} (try help)"),
                },
                // No (more) standard input, e.g. run in the background: keep simulating.
                Ok(None) | Err(_) => stdin_open = false,
            },
        }
    }
    Ok(())
}

struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("hallctl-devices-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
