//! `hallctl ledger`: record custody events, trace serials, reconcile, export missing serials.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use hallctl_jobs::job::{OperatorId, StationId};

use crate::ledger::query::{Reconciliation, RecordFilter, Scope, SltdRow, Trace};
use crate::ledger::{
    ItemKind, Ledger, LedgerConfig, LedgerError, LedgerEvent, LotId, Serial, SerialRange,
    SessionId, ShiftId,
};
use crate::serve::ServingFile;
use crate::store::{LockHolder, StoreError};

/// The ledger is held by another process: what a console command says instead of sled's lock
/// error. It names the process, and, when it is a running controller (its serving file names
/// the same process), where its API answers and how to do the same online.
#[derive(Debug)]
pub struct LedgerInUse {
    /// The ledger directory.
    pub dir: PathBuf,
    /// Who holds it, when the kernel names a live process.
    pub holder: Option<LockHolder>,
    /// The controller that holds it, when it is one.
    pub controller: Option<ServingFile>,
}

impl std::fmt::Display for LedgerInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self.dir.display();
        match (&self.holder, &self.controller) {
            (Some(h), Some(c)) => write!(
                f,
                "the ledger {dir} is in use by the running controller of hall {} ({h}), serving at {} since {}. \
                 Stop it to use this command offline, or ask the running controller: verify it online with \
                 `hallctl audit verify --online --user <auditor id> --pin-stdin` \
                 (or GET {}/api/v1/ledger/verify as an auditor or admin); traces, reconciliations and \
                 records are at {}/api/v1/ledger/...",
                c.hall,
                c.url,
                c.since.format("%Y-%m-%d %H:%M:%S UTC"),
                c.url,
                c.url
            ),
            (Some(h), None) => write!(
                f,
                "the ledger {dir} is in use by {h}. Wait for it to finish or stop it; if it is a \
                 controller, verify it online with `hallctl audit verify --online --url <its API URL> \
                 --user <auditor id> --pin-stdin`"
            ),
            (None, _) => write!(
                f,
                "the ledger {dir} is in use by another process (the kernel's lock table does not \
                 name it). Stop the controller or console command that uses it, or verify a running \
                 controller online with `hallctl audit verify --online --url <its API URL> --user \
                 <auditor id> --pin-stdin`"
            ),
        }
    }
}

impl std::error::Error for LedgerInUse {}

/// Opens the ledger in `dir` for a console command (`create`: make it on first use). A ledger
/// held by another process is a [`LedgerInUse`] error naming it, never sled's lock message.
///
/// # Errors
/// [`LedgerInUse`]; no ledger at `dir` (without `create`); the ledger cannot be opened.
pub fn open_ledger(dir: &Path, create: bool) -> anyhow::Result<Ledger> {
    open_ledger_with(dir, create, LedgerConfig::default())
}

/// As [`open_ledger`], with a configuration.
///
/// # Errors
/// As [`open_ledger`].
pub fn open_ledger_with(dir: &Path, create: bool, config: LedgerConfig) -> anyhow::Result<Ledger> {
    let opened = if create {
        Ledger::open(dir, config)
    } else {
        Ledger::open_existing(dir)
    };
    match opened {
        Ok(l) => Ok(l),
        Err(LedgerError::Store(StoreError::Locked { holder, .. })) => {
            let controller =
                ServingFile::read(dir).filter(|c| holder.as_ref().is_some_and(|h| h.pid == c.pid));
            Err(LedgerInUse {
                dir: dir.to_path_buf(),
                holder,
                controller,
            }
            .into())
        }
        Err(e) => Err(e).with_context(|| format!("opening the ledger {}", dir.display())),
    }
}

/// Where the ledger lives (shared by `ledger` and `audit`).
#[derive(Debug, Clone, Args)]
pub struct LedgerDir {
    /// The ledger directory (store, checkpoint keys).
    #[arg(
        long = "ledger",
        env = "HALLCTL_LEDGER",
        default_value = "data/ledger",
        global = true
    )]
    pub dir: PathBuf,
}

/// Arguments of `hallctl ledger`.
#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// Where the ledger is.
    #[command(flatten)]
    pub dir: LedgerDir,
    /// What to do.
    #[command(subcommand)]
    pub command: LedgerCommand,
}

/// Output formats of reports.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// JSON.
    Json,
}

/// Formats of the missing-serial export.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MissingFormat {
    /// CSV with INTERPOL SLTD fields.
    Sltd,
    /// JSON (SLTD fields plus custody details).
    Json,
}

/// `hallctl ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Trace a patch or booklet serial forward and backward.
    Trace {
        /// The serial.
        serial: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Reconcile a session, a shift or a roll/box, serial by serial.
    Reconcile {
        /// A shift id.
        #[arg(long, group = "scope")]
        shift: Option<String>,
        /// A session id.
        #[arg(long, group = "scope")]
        session: Option<String>,
        /// A lot (roll or box) id.
        #[arg(long, alias = "lot", group = "scope")]
        roll: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Export missing serials in the fields of INTERPOL's SLTD database.
    ExportMissing {
        /// Output format.
        #[arg(long, value_enum, default_value_t = MissingFormat::Sltd)]
        format: MissingFormat,
        /// ISO 3166-1 alpha-3 code of the issuing state.
        #[arg(long, default_value = "PAK")]
        issuing_state: String,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Records by operator, station and/or time range.
    Records {
        /// Operator id.
        #[arg(long)]
        operator: Option<String>,
        /// Station id.
        #[arg(long)]
        station: Option<String>,
        /// From (RFC 3339, inclusive).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// To (RFC 3339, exclusive).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// At most this many records.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// The destruction register.
    Destroyed,
    /// Record events: one JSON event per line on stdin (or `--event`), as `--actor`.
    /// Each line is checked and acknowledged (durable) before the next; a refusal stops with its
    /// reason and a non-zero exit.
    Append {
        /// Who records (the authenticated operator or supervisor).
        #[arg(long)]
        actor: String,
        /// One event as JSON (otherwise JSON lines are read from stdin).
        #[arg(long)]
        event: Option<String>,
        /// Record time (RFC 3339); now when absent.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
    },
    /// Receive a lot into the vault (a shortcut for an `append` of `lot_received`).
    Receive {
        /// Who receives it.
        #[arg(long)]
        actor: String,
        /// The lot id (`R-77`).
        #[arg(long)]
        lot: String,
        /// `booklet` or `patch`.
        #[arg(long)]
        kind: String,
        /// The serial range, `0041200-0041349`.
        #[arg(long)]
        range: String,
        /// The supplier.
        #[arg(long, default_value = "unknown")]
        supplier: String,
    },
    /// Moves an existing ledger to this release's layout: verifies it whole, seals its history
    /// into signed files and merges them by period, then verifies it whole again. A ledger that
    /// does not verify is refused before anything is sealed or merged. Run it with the
    /// controller stopped (the
    /// controller does the same in the background after its first start).
    Migrate {
        /// Records per sealed file window (the hall's `[server] ledger_seal_window`).
        #[arg(long, default_value_t = LedgerConfig::default().seal_window)]
        seal_window: u64,
        /// The period sealed files are merged by: day, week or month (the hall's
        /// `[server] ledger_period`).
        #[arg(long, default_value = "month")]
        period: crate::ledger::Period,
    },
    /// Crash-test workload: appends from several threads forever, printing `ack <seq>` once
    /// each record is durable. Used by the crash-loop test, which kill -9s it.
    #[command(hide = true)]
    Soak {
        /// Concurrent appenders.
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Checkpoint every this many records.
        #[arg(long, default_value_t = 50)]
        checkpoint_every: u64,
        /// Seal history into segment files this many records at a time (0: never).
        #[arg(long, default_value_t = 0)]
        seal_window: u64,
        /// Merge this many sealed files of one size into one (below 2: never).
        #[arg(long, default_value_t = LedgerConfig::default().merge_fanout)]
        merge_fanout: u64,
    },
}

/// Runs `hallctl ledger`.
///
/// # Errors
/// Ledger errors, refusals, unknown serials.
pub fn run(args: LedgerArgs) -> anyhow::Result<()> {
    let dir = &args.dir.dir;
    match args.command {
        LedgerCommand::Trace { serial, format } => {
            let ledger = open_ledger(dir, false)?;
            let serial = Serial::new(serial);
            let Some(trace) = ledger.trace(&serial)? else {
                bail!("{serial} was never received into the vault: the ledger does not know it");
            };
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&trace)?),
                Format::Text => print!("{}", render_trace(&trace)),
            }
        }
        LedgerCommand::Reconcile {
            shift,
            session,
            roll,
            format,
        } => {
            let scope = match (shift, session, roll) {
                (Some(s), _, _) => Scope::Shift(ShiftId::new(s)),
                (_, Some(s), _) => Scope::Session(SessionId::new(s)),
                (_, _, Some(r)) => Scope::Lot(LotId::new(r)),
                _ => bail!("name what to reconcile: --shift, --session or --roll"),
            };
            let ledger = open_ledger(dir, false)?;
            let rec = ledger.reconcile(&scope)?;
            if rec.sessions.is_empty() && rec.lots.is_empty() {
                bail!("nothing recorded for {}", rec.scope);
            }
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rec)?),
                Format::Text => print!("{}", render_reconciliation(&rec)),
            }
        }
        LedgerCommand::ExportMissing {
            format,
            issuing_state,
            output,
        } => {
            let ledger = open_ledger(dir, false)?;
            let missing = ledger.missing()?;
            let text = match format {
                MissingFormat::Sltd => {
                    let mut t = String::from(SltdRow::CSV_HEADER);
                    t.push('\n');
                    for m in &missing {
                        t.push_str(&SltdRow::of(m, &issuing_state).csv());
                        t.push('\n');
                    }
                    t
                }
                MissingFormat::Json => {
                    let rows: Vec<serde_json::Value> = missing
                        .iter()
                        .map(|m| {
                            serde_json::json!({
                                "sltd": SltdRow::of(m, &issuing_state),
                                "lot": m.item.lot,
                                "kind": m.item.kind,
                                "seq": m.seq,
                                "last_custody": m.last_custody,
                            })
                        })
                        .collect();
                    serde_json::to_string_pretty(&rows)? + "\n"
                }
            };
            match output {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{text}"),
            }
        }
        LedgerCommand::Records {
            operator,
            station,
            from,
            to,
            limit,
        } => {
            let ledger = open_ledger(dir, false)?;
            let filter = RecordFilter {
                operator: operator.map(OperatorId::new),
                station: station.map(StationId::new),
                from,
                to,
                ..RecordFilter::default()
            };
            for r in ledger.records(&filter, limit)? {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
        LedgerCommand::Destroyed => {
            let ledger = open_ledger(dir, false)?;
            for r in ledger.destruction_register()? {
                if let LedgerEvent::ItemsDestroyed {
                    batch,
                    serials,
                    witnesses,
                    method,
                    certificate,
                } = &r.event
                {
                    println!(
                        "#{} {} batch {batch}: {} item(s), {method}, certificate {certificate}, witnesses {} and {}, recorded by {}",
                        r.seq,
                        r.at.format("%Y-%m-%d %H:%M UTC"),
                        serials.len(),
                        witnesses[0],
                        witnesses[1],
                        r.actor
                    );
                    println!("   {}", compress(serials));
                }
            }
        }
        LedgerCommand::Append { actor, event, at } => {
            let ledger = open_ledger(dir, true)?;
            let actor = OperatorId::new(actor);
            let lines: Vec<String> = match event {
                Some(e) => vec![e],
                None => std::io::stdin().lock().lines().collect::<Result<_, _>>()?,
            };
            // Every line is read before the first is recorded: a malformed one, anywhere, names
            // its line and records nothing.
            let mut events = Vec::with_capacity(lines.len());
            for (n, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let ev: LedgerEvent = serde_json::from_str(line).with_context(|| {
                    format!(
                        "event {} is not a valid ledger event (nothing was recorded)",
                        n + 1
                    )
                })?;
                events.push((n, ev));
            }
            for (n, ev) in events {
                let receipt = ledger
                    .append_at(at.unwrap_or_else(Utc::now), actor.clone(), ev)
                    .map_err(|e| {
                        anyhow::anyhow!("event {}: {e} (earlier events are recorded)", n + 1)
                    })?;
                println!("{}", serde_json::to_string(&receipt)?);
            }
        }
        LedgerCommand::Receive {
            actor,
            lot,
            kind,
            range,
            supplier,
        } => {
            let kind = match kind.as_str() {
                "booklet" => ItemKind::Booklet,
                "patch" => ItemKind::Patch,
                other => bail!("--kind must be booklet or patch, not {other:?}"),
            };
            let range = SerialRange::parse(&range)
                .with_context(|| format!("{range:?} is not a serial range like 0041200-0041349"))?;
            let ledger = open_ledger(dir, true)?;
            let r = ledger.append(
                OperatorId::new(actor),
                LedgerEvent::LotReceived {
                    lot: LotId::new(lot),
                    kind,
                    supplier,
                    range,
                },
            )?;
            println!("{}", serde_json::to_string(&r)?);
        }
        LedgerCommand::Migrate {
            seal_window,
            period,
        } => migrate(dir, seal_window, period)?,
        LedgerCommand::Soak {
            threads,
            checkpoint_every,
            seal_window,
            merge_fanout,
        } => soak(
            dir,
            threads,
            LedgerConfig {
                checkpoint_every,
                seal_window,
                merge_fanout,
                ..LedgerConfig::default()
            },
        )?,
    }
    Ok(())
}

/// A full verification with a progress bar on stderr; an error naming the first bad record
/// (the caller says what was left undone) unless it passes.
fn verify_whole(
    ledger: &Ledger,
    when: &str,
) -> anyhow::Result<crate::ledger::verify::VerifyReport> {
    use crate::ledger::verify::{VerifyMode, VerifyOptions};
    let bar = indicatif::ProgressBar::new(ledger.head().max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "verifying {when} {{bar:40}} {{pos}}/{{len}} records ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = ledger.verify(
        &VerifyOptions {
            mode: VerifyMode::Full,
            ..VerifyOptions::default()
        },
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    if let Some(bad) = &report.first_bad {
        bail!(
            "the ledger does not verify {when} migrating: record {}: {} (see docs/operations.md, \"When hallctl audit verify fails\")",
            bad.seq,
            bad.problem
        );
    }
    Ok(report)
}

/// `hallctl ledger migrate` (see [`LedgerCommand::Migrate`]).
fn migrate(dir: &Path, seal_window: u64, period: crate::ledger::Period) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let t0 = std::time::Instant::now();
    if !(1000..=10_000_000).contains(&seal_window) {
        bail!(
            "--seal-window {seal_window} is out of range 1000..=10000000 (pass the hall's [server] ledger_seal_window)"
        );
    }
    // Files written by another user than the controller's would stop its sealing later.
    let owner = std::fs::metadata(dir)
        .with_context(|| format!("no ledger in {}", dir.display()))?
        .uid();
    let me = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let uids = s.lines().find_map(|l| l.strip_prefix("Uid:"))?.to_string();
            uids.split_whitespace().nth(1)?.parse::<u32>().ok()
        });
    if me.is_some_and(|me| me != owner) {
        bail!(
            "{} belongs to uid {owner} and this command runs as uid {}: the files it writes would not be the controller's. Run it as the ledger's owner (e.g. sudo -u hallctl HALLCTL_LEDGER={} hallctl ledger migrate ...)",
            dir.display(),
            me.unwrap_or_default(),
            dir.display()
        );
    }
    if !dir.join(crate::ledger::KEY_FILE).exists() {
        bail!(
            "{} has no {}: not a ledger this command can migrate (nothing was changed)",
            dir.display(),
            crate::ledger::KEY_FILE
        );
    }
    let (head, link, files_before, before) = {
        // Opened as an audit opens it: nothing sealed or merged yet.
        let ledger = open_ledger(dir, false)?;
        let before = verify_whole(&ledger, "before").context("nothing was sealed or merged")?;
        (
            ledger.head(),
            ledger.head_link(),
            ledger.store().segment_files().len(),
            before,
        )
    };
    let ledger = open_ledger_with(
        dir,
        true,
        LedgerConfig {
            seal_window,
            period,
            ..LedgerConfig::default()
        },
    )?;
    if ledger.head() != head || ledger.head_link() != link {
        bail!(
            "the ledger changed between its verification and its migration (is a controller running on it?); nothing was sealed or merged"
        );
    }
    eprintln!("sealing and merging {head} records ...");
    // A checkpoint at the head vouches for the last full window.
    ledger.checkpoint_now()?;
    ledger.store().seal_due()?;
    ledger.store().merge_due()?;
    if ledger.store().segment_due(head) || ledger.store().merge_pending() {
        bail!(
            "sealing or merging stopped before the end (the log says why: a record unfit for a file, or too little free disk space); the ledger is whole and readable as it is"
        );
    }
    let files = ledger.store().segment_files();
    let after = verify_whole(&ledger, "after")?;
    if after.checked != before.checked || after.last_good != before.last_good {
        bail!(
            "the migrated ledger verifies {} records to {}, before it verified {} to {}",
            after.checked,
            after.last_good,
            before.checked,
            before.last_good
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "records": head,
            "verified_before": before.checked,
            "verified_after": after.checked,
            "sealed_files_before": files_before,
            "sealed_files_after": files.len(),
            "sealed_through": files.last().map_or(0, |f| f.last),
            "seconds": t0.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// The crash-test workload: every record is valid, and unique across restarts (the process id
/// is part of every id), so each cycle can append to the same ledger.
fn soak(dir: &std::path::Path, threads: usize, config: LedgerConfig) -> anyhow::Result<()> {
    let ledger = open_ledger_with(dir, true, config)?;
    let pid = std::process::id();
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ledger, out) = (&ledger, &out);
            s.spawn(move || -> anyhow::Result<()> {
                for n in 0u64.. {
                    let event = if n % 2 == 0 {
                        LedgerEvent::LotReceived {
                            lot: LotId::new(format!("L-{pid}-{t}-{n}")),
                            kind: ItemKind::Patch,
                            supplier: "soak".into(),
                            range: SerialRange {
                                prefix: format!("P{pid}x{t}x{n}-"),
                                first: 1,
                                last: 3,
                                width: 2,
                            },
                        }
                    } else {
                        LedgerEvent::SessionOpened {
                            session: SessionId::new(format!("S-{pid}-{t}-{n}")),
                            station: StationId::new(format!("ST-{pid}-{t}-{n}")),
                            operator: OperatorId::new(format!("OP-{pid}-{t}-{n}")),
                            shift: ShiftId::new("soak"),
                        }
                    };
                    let r = ledger.append(OperatorId::new(format!("soak-{t}")), event)?;
                    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                    writeln!(o, "ack {}", r.seq)?;
                    o.flush()?;
                }
                Ok(())
            });
        }
    });
    Ok(())
}

/// Serial lists as ranges: `0041200–0041342, 0041345`.
pub fn compress(serials: &[Serial]) -> String {
    let mut sorted: Vec<&Serial> = serials.iter().collect();
    sorted.sort_by(|a, b| (a.as_str().len(), a.as_str()).cmp(&(b.as_str().len(), b.as_str())));
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(&Serial, &Serial)> = None;
    let prefix_of = |s: &Serial| {
        let p = s.position().map_or(0, |_| {
            s.as_str()
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .len()
        });
        s.as_str()[..p].to_string()
    };
    for s in sorted {
        run = match run {
            Some((a, b))
                if prefix_of(a) == prefix_of(s)
                    && b.position()
                        .zip(s.position())
                        .is_some_and(|(x, y)| y == x + 1) =>
            {
                Some((a, s))
            }
            Some((a, b)) => {
                parts.push(if a == b {
                    a.to_string()
                } else {
                    format!("{a}–{b}")
                });
                Some((s, s))
            }
            None => Some((s, s)),
        };
    }
    if let Some((a, b)) = run {
        parts.push(if a == b {
            a.to_string()
        } else {
            format!("{a}–{b}")
        });
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// A trace as text for the auditor.
pub fn render_trace(t: &Trace) -> String {
    let mut o = String::new();
    let kind = t
        .kind
        .map_or_else(|| "serial".to_string(), |k| k.to_string());
    o.push_str(&format!("{kind} {}: {}\n", t.serial, t.state));
    if let Some(l) = &t.lot {
        o.push_str(&format!(
            "  lot        {} ({}), received {} by {} from {}\n",
            l.id,
            l.range,
            l.received_at.format("%Y-%m-%d %H:%M UTC"),
            l.received_by,
            l.supplier
        ));
    }
    if let (Some(p), Some(kind)) = (&t.partner, t.kind) {
        let what = match kind {
            ItemKind::Patch => "booklet",
            ItemKind::Booklet => "patch",
        };
        o.push_str(&format!("  {what:<10} {p}\n"));
    }
    if let Some(j) = &t.job {
        o.push_str(&format!("  job        {j}\n"));
    }
    if let Some(d) = &t.document_number {
        o.push_str(&format!("  document   {d}\n"));
    }
    o.push_str("  history:\n");
    for s in &t.steps {
        o.push_str(&format!(
            "  #{:<8} {}  {:<10} {:<8} {}{}\n",
            s.seq,
            s.at.format("%Y-%m-%d %H:%M:%S"),
            s.actor,
            s.station.as_ref().map_or("-", |s| s.as_str()),
            s.detail,
            s.reversed_by
                .map(|r| format!("  [reversed by #{r}]"))
                .unwrap_or_default()
        ));
    }
    o
}

/// A reconciliation as text.
pub fn render_reconciliation(r: &Reconciliation) -> String {
    let mut o = format!("reconciliation of {}\n", r.scope);
    for s in &r.sessions {
        let x = &s.session;
        o.push_str(&format!(
            "session {} at {} ({}), shift {}: {}\n",
            x.id,
            x.station,
            x.operator,
            x.shift,
            match (s.open, s.balanced) {
                (true, _) => "OPEN",
                (false, true) => "closed, balanced",
                (false, false) => "closed WITH DISCREPANCY",
            }
        ));
        o.push_str(&format!(
            "  issued {}  applied {}  spoiled {}  returned {}  missing {}  unaccounted {}\n",
            x.counts.issued,
            s.applied.len(),
            s.spoiled.len(),
            s.returned.len(),
            s.missing.len(),
            s.unaccounted.len()
        ));
        for (name, list) in [
            ("spoiled", &s.spoiled),
            ("  pending", &s.spoiled_pending),
            ("  approved", &s.spoiled_approved),
            ("  destroyed", &s.destroyed),
            ("returned", &s.returned),
            ("missing", &s.missing),
            ("suspect", &s.suspect),
            ("set aside", &s.set_aside),
            ("unaccounted", &s.unaccounted),
        ] {
            if !list.is_empty() {
                o.push_str(&format!("  {name:<12} {}\n", compress(list)));
            }
        }
    }
    for l in &r.lots {
        o.push_str(&format!(
            "{} lot {} ({}): {} items\n",
            l.lot.kind,
            l.lot.id,
            l.lot.range,
            l.lot.range.len()
        ));
        o.push_str(&format!(
            "  in vault {}  issued {}  applied {}  spoiled {}  destroyed {}  missing {}\n",
            l.in_vault.len(),
            l.issued.len(),
            l.applied,
            l.spoiled.len(),
            l.destroyed.len(),
            l.missing.len()
        ));
        for (name, list) in [
            ("issued", &l.issued),
            ("spoiled", &l.spoiled),
            ("  pending", &l.spoiled_pending),
            ("  approved", &l.spoiled_approved),
            ("destroyed", &l.destroyed),
            ("missing", &l.missing),
            ("suspect", &l.suspect),
        ] {
            if !list.is_empty() {
                o.push_str(&format!("  {name:<12} {}\n", compress(list)));
            }
        }
    }
    o
}
