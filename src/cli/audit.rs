//! `hallctl audit`: integrity verification, signed evidence bundles, checkpoint export.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressStyle};

use super::ledger::LedgerDir;
use crate::ledger::chain::{Checkpoint, parse_public_key};
use crate::ledger::evidence::EvidenceBundle;
use crate::ledger::verify::VerifyOptions;
use crate::ledger::{Ledger, Serial};

/// Arguments of `hallctl audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Where the ledger is.
    #[command(flatten)]
    pub dir: LedgerDir,
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `hallctl audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole chain (or its tail) and every checkpoint; exits non-zero on the first
    /// bad record, naming its sequence number and what is wrong.
    Verify {
        /// Start from the last checkpoint (a fast tail check).
        #[arg(long)]
        since_checkpoint: bool,
        /// The trusted public key file (hex); by default the ledger's own `checkpoint.pub`.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// Checkpoints exported earlier (held off the machine), checked as well.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a signed evidence bundle for a serial.
    Evidence {
        /// The serial.
        serial: String,
        /// The bundle file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Check an evidence bundle offline (no ledger needed).
    CheckBundle {
        /// The bundle file.
        bundle: PathBuf,
        /// The trusted public key file (hex); without it, the key in the bundle is used and
        /// printed so it can be compared with the hall's published key.
        #[arg(long)]
        pubkey: Option<PathBuf>,
    },
    /// Export every signed checkpoint (and the public key) to a file, to keep off the machine.
    ExportCheckpoints {
        /// The output file (JSON).
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// An exported checkpoint file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CheckpointFile {
    /// The public key (hex).
    pub public_key: String,
    /// The checkpoints, oldest first.
    pub checkpoints: Vec<Checkpoint>,
}

fn read_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_public_key(&text)
        .with_context(|| format!("{} does not hold a hex Ed25519 public key", path.display()))
}

/// Runs `hallctl audit`.
///
/// # Errors
/// Verification failures, unreadable files, ledger errors.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let dir = &args.dir.dir;
    match args.command {
        AuditCommand::Verify {
            since_checkpoint,
            pubkey,
            checkpoints,
            json,
        } => {
            let ledger = Ledger::open_existing(dir)?;
            let trusted = match pubkey {
                Some(p) => Some(read_key(&p)?),
                None => {
                    let p = dir.join(crate::ledger::PUB_FILE);
                    if p.exists() {
                        Some(read_key(&p)?)
                    } else {
                        None
                    }
                }
            };
            let external = match checkpoints {
                Some(p) => {
                    let f: CheckpointFile = serde_json::from_slice(
                        &std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
                    )
                    .with_context(|| format!("{} is not a checkpoint file", p.display()))?;
                    f.checkpoints
                }
                None => Vec::new(),
            };
            let bar = ProgressBar::new(ledger.head().max(1));
            bar.set_style(
                ProgressStyle::with_template(
                    "verifying {bar:40} {pos}/{len} records ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let report = ledger.verify(
                &VerifyOptions {
                    since_checkpoint,
                    trusted_key: trusted,
                    external,
                },
                |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            match &report.first_bad {
                None => {
                    if !json {
                        println!(
                            "ledger OK: records {}–{} verified ({} checked), {} checkpoint(s) matched",
                            report.from,
                            report.last_good,
                            report.checked,
                            report.checkpoints_checked
                        );
                    }
                }
                Some(b) => bail!(
                    "ledger FAILED verification at record {}: {} (records {}–{} verified before it)",
                    b.seq,
                    b.problem,
                    report.from,
                    report.last_good
                ),
            }
        }
        AuditCommand::Evidence { serial, output } => {
            let ledger = Ledger::open_existing(dir)?;
            let serial = Serial::new(serial);
            let Some(bundle) = ledger.evidence(&serial)? else {
                bail!("{serial} was never received into the vault: the ledger does not know it");
            };
            std::fs::write(&output, serde_json::to_vec_pretty(&bundle)?)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "evidence bundle for {serial}: {} record(s), {} checkpoint(s), written to {}",
                bundle.records.len(),
                bundle.segments.len(),
                output.display()
            );
        }
        AuditCommand::CheckBundle { bundle, pubkey } => {
            let b: EvidenceBundle = serde_json::from_slice(
                &std::fs::read(&bundle).with_context(|| format!("reading {}", bundle.display()))?,
            )
            .with_context(|| format!("{} is not an evidence bundle", bundle.display()))?;
            let trusted = pubkey.as_deref().map(read_key).transpose()?;
            match b.check(trusted.as_ref()) {
                Ok(c) => {
                    println!(
                        "bundle OK: {} record(s) about {} are in the chain signed by checkpoint(s) {:?}",
                        c.records, c.serial, c.checkpoints
                    );
                    if trusted.is_none() {
                        println!(
                            "signing key {} (taken from the bundle: compare it with the hall's published key, or pass --pubkey)",
                            b.public_key
                        );
                    }
                    for r in &c.decoded {
                        println!(
                            "  #{:<8} {}  {:<10} {}",
                            r.seq,
                            r.at.format("%Y-%m-%d %H:%M:%S"),
                            r.actor,
                            serde_json::to_string(&r.event)?
                        );
                    }
                }
                Err(e) => bail!("bundle FAILED: {e}"),
            }
        }
        AuditCommand::ExportCheckpoints { output } => {
            let ledger = Ledger::open_existing(dir)?;
            ledger.checkpoint_now()?;
            let f = CheckpointFile {
                public_key: hex::encode(ledger.public_key().as_bytes()),
                checkpoints: ledger.checkpoints()?,
            };
            std::fs::write(&output, serde_json::to_vec_pretty(&f)?)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "{} checkpoint(s) written to {}",
                f.checkpoints.len(),
                output.display()
            );
        }
    }
    Ok(())
}
