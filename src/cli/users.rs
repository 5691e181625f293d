//! `hallctl users`: manage accounts from the console, as [`CONSOLE`]: someone with shell access
//! to the data directory. This is how the first admin is created; later changes are made on the
//! API by an admin (or a supervisor, for operators). Every change is a ledger record naming
//! `CONSOLE` as its actor.
//!
//! The controller holds the data directory open while it runs (sled locks it), so these commands
//! work only while it is stopped.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Args, Subcommand, ValueEnum};
use hallctl_jobs::job::OperatorId;

use crate::auth::{AuthPolicy, CONSOLE, User, Users, generate_pin};
use crate::ledger::{LedgerError, Role};

/// Arguments of `hallctl users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    /// The controller's data directory (the ledger is in `<data-dir>/ledger`).
    #[arg(
        long = "data-dir",
        env = "HALLCTL_DATA_DIR",
        default_value = "data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// Output formats of `list`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A table.
    Text,
    /// JSON (no PIN hashes).
    Json,
}

/// `hallctl users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add an account. A person gets a PIN (read from stdin with `--pin-stdin`, or generated and
    /// printed once); a monitor service gets a service token, printed once.
    Add {
        /// The user id (staff number): 2 to 32 characters A-Z, 0-9, '-'.
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// operator, supervisor, auditor, admin or monitor (a service account).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the PIN from the first line of stdin instead of generating one.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Disable an account: it can no longer sign in, and its tokens are revoked.
    Disable {
        /// The user id.
        id: String,
    },
    /// Enable a disabled account (a service account then needs `reset-token`).
    Enable {
        /// The user id.
        id: String,
    },
    /// Set a new PIN (from stdin with `--pin-stdin`, or generated and printed once); clears a
    /// lockout.
    ResetPin {
        /// The user id.
        id: String,
        /// Read the PIN from the first line of stdin instead of generating one.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Replace a monitor service's token; the new one is printed once.
    ResetToken {
        /// The user id.
        id: String,
    },
    /// List the accounts (never their PIN hashes).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        let names: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
        format!("unknown role {s:?}: use one of {}", names.join(", "))
    })
}

/// Opens the accounts of the data directory; `create` makes the ledger on first use.
fn open(data_dir: &Path, create: bool) -> anyhow::Result<Users> {
    let ledger = super::ledger::open_ledger(&data_dir.join("ledger"), create)?;
    Ok(Users::open(Arc::new(ledger), AuthPolicy::default())?)
}

pub(super) fn read_pin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the PIN from stdin")?;
    let pin = line.trim();
    if pin.is_empty() {
        bail!("no PIN on stdin (--pin-stdin reads its first line)");
    }
    Ok(pin.to_string())
}

fn pin_or_generated(id: &str, from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        Ok((read_pin()?, false))
    } else {
        Ok((generate_pin(&OperatorId::new(id))?, true))
    }
}

fn status(u: &User) -> String {
    let now = Utc::now();
    match (u.disabled, u.locked_until.filter(|t| *t > now)) {
        (true, _) => "disabled".into(),
        (false, Some(t)) => format!("locked until {} UTC", t.format("%Y-%m-%d %H:%M")),
        (false, None) => "active".into(),
    }
}

/// Runs `hallctl users`.
///
/// # Errors
/// The refusal of the change (existing id, weak PIN, unknown user, ...), a data directory in use
/// by the controller, storage errors.
pub fn run(args: UsersArgs) -> anyhow::Result<()> {
    let data_dir = &args.data_dir;
    let console = OperatorId::new(CONSOLE);
    match args.command {
        UsersCommand::Add {
            id,
            name,
            role,
            pin_stdin,
        } => {
            if role == Role::Monitor {
                if pin_stdin {
                    bail!("a monitor account has a service token, not a PIN: drop --pin-stdin");
                }
                let users = open(data_dir, true)?;
                let (u, token) = users.add_service(&console, &id, &name)?;
                println!("added {} (monitor service, {})", u.id, u.name);
                println!(
                    "service token (shown once; put it in the monitoring service's configuration):"
                );
                println!("{token}");
            } else {
                let users = open(data_dir, true)?;
                let (pin, generated) = pin_or_generated(&id, pin_stdin)?;
                let u = users.add(&console, &id, &name, role, &pin)?;
                println!("added {} ({}, {})", u.id, u.role, u.name);
                if generated {
                    println!("PIN (shown once; hand it over in person): {pin}");
                }
            }
        }
        UsersCommand::Disable { id } => {
            let users = open(data_dir, false)?;
            let u = users.disable(&console, &OperatorId::new(id))?;
            println!("disabled {}", u.id);
        }
        UsersCommand::Enable { id } => {
            let users = open(data_dir, false)?;
            let u = users.enable(&console, &OperatorId::new(id))?;
            println!("enabled {}", u.id);
            if u.is_service() {
                println!(
                    "its service token was revoked when it was disabled: issue one with `hallctl users reset-token {}`",
                    u.id
                );
            }
        }
        UsersCommand::ResetPin { id, pin_stdin } => {
            let users = open(data_dir, false)?;
            let (pin, generated) = pin_or_generated(&id, pin_stdin)?;
            let u = users.reset_pin(&console, &OperatorId::new(id), &pin)?;
            println!("PIN of {} reset", u.id);
            if generated {
                println!("PIN (shown once; hand it over in person): {pin}");
            }
        }
        UsersCommand::ResetToken { id } => {
            let users = open(data_dir, false)?;
            let token = users.reset_service_token(&console, &OperatorId::new(&id))?;
            println!("new service token of {id} (shown once; the old one no longer works):");
            println!("{token}");
        }
        UsersCommand::List { format } => {
            let users = match open(data_dir, false) {
                Ok(u) => u.list(),
                Err(e)
                    if e.downcast_ref::<LedgerError>()
                        .is_some_and(|l| matches!(l, LedgerError::NotFound(_))) =>
                {
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            match format {
                Format::Json => {
                    let list: Vec<_> = users.iter().map(User::summary).collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Format::Text => {
                    if users.is_empty() {
                        eprintln!(
                            "no users yet: add the first admin with `hallctl users add ID --name NAME --role admin`"
                        );
                    }
                    for u in &users {
                        println!(
                            "{:<16} {:<10} {:<30} {}",
                            u.id.as_str(),
                            u.role.name(),
                            status(u),
                            u.name
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
