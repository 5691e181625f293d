//! `hallctl audit`: integrity verification, signed evidence bundles, checkpoint export.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressStyle};

use super::ledger::{LedgerDir, LedgerInUse, open_ledger};
use crate::demo::client::ApiClient;
use crate::ledger::Serial;
use crate::ledger::chain::{Checkpoint, parse_public_key};
use crate::ledger::evidence::EvidenceBundle;
use crate::ledger::verify::{VerifyMode, VerifyOptions, VerifyReport};
use crate::serve::ServingFile;

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
        #[arg(long, conflicts_with = "incremental")]
        since_checkpoint: bool,
        /// Start from the last signed checkpoint that an earlier verification found good (what
        /// the controller's `GET /ledger/verify` does by default).
        #[arg(long)]
        incremental: bool,
        /// Verify through the running controller's API instead of opening the ledger (it is
        /// locked while the controller runs). Needs an auditor's or admin's `--user` and PIN.
        /// Chosen by itself when the ledger is held by a running controller and `--user` is
        /// given.
        #[arg(long)]
        online: bool,
        /// The controller's API (`http://host:port`); by default the address the running
        /// controller left in the ledger directory (`serving.json`). Implies `--online`.
        #[arg(long, env = "HALLCTL_URL")]
        url: Option<String>,
        /// The auditor or admin who verifies online (their PIN is read from stdin with
        /// `--pin-stdin`).
        #[arg(long, env = "HALLCTL_USER")]
        user: Option<String>,
        /// Read the PIN for `--user` from the first line of stdin.
        #[arg(long)]
        pin_stdin: bool,
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

/// Prints a verification report (as text, or as JSON with `json`); an error when the chain
/// failed, naming the first bad record.
fn print_report(report: &VerifyReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    match &report.first_bad {
        None => {
            if !json {
                println!(
                    "ledger OK ({} verification): records {}–{} verified ({} checked), {} checkpoint(s) matched",
                    report.mode.name(),
                    report.from,
                    report.last_good,
                    report.checked,
                    report.checkpoints_checked
                );
            }
            Ok(())
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

/// `hallctl audit verify` through a running controller's `GET /api/v1/ledger/verify`.
struct OnlineVerify<'a> {
    dir: &'a Path,
    url: Option<String>,
    user: Option<String>,
    pin_stdin: bool,
    mode: VerifyMode,
}

impl OnlineVerify<'_> {
    /// Signs in, asks for the verification, signs out; checks the controller's signing key
    /// against `pubkey` (or the ledger directory's `checkpoint.pub`, when it can be read).
    fn run(self, pubkey: Option<&Path>, external: bool) -> anyhow::Result<VerifyReport> {
        if external {
            bail!(
                "--checkpoints (checkpoints held off the machine) can only be checked offline, against the ledger's files: stop the controller, or compare them with GET /api/v1/ledger/checkpoint"
            );
        }
        let url = match self.url {
            Some(u) => u,
            // The file is believed only while the process it names holds the ledger: a file
            // left behind (or planted) would otherwise send the auditor's PIN elsewhere.
            None => match ServingFile::read(self.dir).filter(|f| {
                crate::store::lock::holder_pid(&self.dir.join(crate::ledger::STORE_DIR).join("db"))
                    == Some(f.pid)
            }) {
                Some(f) => f.url,
                None => bail!(
                    "no running controller found for {} (a serving controller holds the ledger and names its address in {}): give its API with --url http://host:port",
                    self.dir.display(),
                    crate::serve::SERVING_FILE
                ),
            },
        };
        let addr = api_addr(&url)?;
        let Some(user) = self.user else {
            bail!(
                "verifying the running controller at {url} needs an auditor's or admin's credentials: --user <id> --pin-stdin (the PIN on stdin)"
            );
        };
        if !self.pin_stdin {
            bail!("give the PIN of {user} on stdin with --pin-stdin (never on the command line)");
        }
        let pin = super::users::read_pin()?;
        let trusted = match pubkey {
            Some(p) => Some(read_key(p)?),
            None => read_key(&self.dir.join(crate::ledger::PUB_FILE)).ok(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client")?;
        let spinner = ProgressBar::new_spinner();
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.set_message(format!(
            "verifying online at {url} ({} verification; progress also on the status stream as ledger_verify)",
            self.mode.name()
        ));
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        let mode = self.mode;
        let answer = rt.block_on(async move {
            // A full verification of a long ledger takes minutes: wait for it.
            let mut api =
                ApiClient::new(addr).with_timeout(std::time::Duration::from_secs(24 * 3600));
            let signin = api
                .post(
                    "/session",
                    None,
                    &serde_json::json!({"user": user, "pin": pin}),
                )
                .await?;
            if !signin.ok() {
                bail!("signing in as {user} at {url}: {}", signin.message());
            }
            let token = signin.body["token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let answer = api
                .get(&format!("/ledger/verify?mode={}", mode.name()), &token)
                .await;
            let _ = api.delete("/session", &token).await;
            let answer = answer?;
            if !answer.ok() {
                bail!("the controller at {url} refused: {}", answer.message());
            }
            Ok(answer.body)
        });
        spinner.finish_and_clear();
        let report: VerifyReport = serde_json::from_value(answer?)
            .context("the controller's answer is not a verification report")?;
        if let Some(k) = trusted
            && report.public_key != hex::encode(k.as_bytes())
        {
            bail!(
                "the controller signs its checkpoints with key {}, not with the trusted key {}: its checkpoints are not the hall's",
                report.public_key,
                hex::encode(k.as_bytes())
            );
        }
        Ok(report)
    }
}

/// The socket address of an `http://host:port` API URL.
fn api_addr(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs as _;
    if url.starts_with("https://") {
        bail!(
            "{url}: the console's online verification speaks plain HTTP on this machine; over HTTPS use GET {url}/api/v1/ledger/verify with an auditor's bearer token (curl -H 'Authorization: Bearer ...')"
        );
    }
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?} is not an http://host:port URL"))?;
    let host = rest.trim_end_matches('/');
    host.to_socket_addrs()
        .with_context(|| format!("{url:?}: cannot resolve {host:?} (expected http://host:port)"))?
        .next()
        .with_context(|| format!("{url:?}: {host:?} resolves to no address"))
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
            incremental,
            online,
            url,
            user,
            pin_stdin,
            pubkey,
            checkpoints,
            json,
        } => {
            let mode = if since_checkpoint {
                VerifyMode::SinceCheckpoint
            } else if incremental {
                VerifyMode::Incremental
            } else {
                VerifyMode::Full
            };
            let online = online || url.is_some();
            let ledger = if online {
                None
            } else {
                match open_ledger(dir, false) {
                    Ok(l) => Some(l),
                    // A running controller holds the ledger: with credentials, ask it.
                    Err(e)
                        if user.is_some()
                            && e.downcast_ref::<LedgerInUse>()
                                .is_some_and(|u| u.controller.is_some()) =>
                    {
                        None
                    }
                    Err(e) => return Err(e),
                }
            };
            let Some(ledger) = ledger else {
                let online = OnlineVerify {
                    dir,
                    url,
                    user,
                    pin_stdin,
                    mode,
                };
                let report = online.run(pubkey.as_deref(), checkpoints.is_some())?;
                return print_report(&report, json);
            };
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
                    mode,
                    trusted_key: trusted,
                    external,
                },
                |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )?;
            bar.finish_and_clear();
            print_report(&report, json)?;
        }
        AuditCommand::Evidence { serial, output } => {
            let ledger = open_ledger(dir, false)?;
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
            let ledger = open_ledger(dir, false)?;
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
