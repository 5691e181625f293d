//! hallctl: the production-hall printing line controller.
//!
//! # Codemap
//! - [`auth`]: users and access: accounts (stored with the ledger record of each change), PINs
//!   hashed with Argon2id, lockout, session and service tokens, and [`auth::require`], the role
//!   check every API route makes.
//! - [`cli`]: the `hallctl` command line, one module per subcommand.
//! - Devices: the `hallctl-drivers` crate (frames, links, printer and laminator drivers, vendor
//!   bridge, simulators); `hallctl devices sim` ([`cli::devices`]) runs its simulators standalone.
//! - [`ledger`]: the patch and booklet ledger: custody of accountable items, hash-chained
//!   durable journal, signed checkpoints, forensic queries. Every item state change is one
//!   ledger record, checked against the custody rules before it is written.
//! - [`store`]: the only module that knows sled; the ledger's durability point.
#![deny(missing_docs)]

pub mod auth;
pub mod cli;
pub mod ledger;
pub mod store;
