//! hallctl: the production-hall printing line controller.
//!
//! # Codemap
//! - [`cli`]: the `hallctl` command line, one module per subcommand.
//! - [`config`]: `hall.toml`, the controller's configuration: the hall, its stations and devices,
//!   policies and limits, validated at load with errors that name the file, line and key.
//! - Devices: the `hallctl-drivers` crate (frames, links, printer and laminator drivers, vendor
//!   bridge, simulators); `hallctl devices sim` ([`cli::devices`]) runs its simulators standalone.
//! - [`ledger`]: the patch and booklet ledger: custody of accountable items, hash-chained
//!   durable journal, signed checkpoints, forensic queries. Every item state change is one
//!   ledger record, checked against the custody rules before it is written.
//! - [`store`]: the only module that knows sled; the ledger's durability point.
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod ledger;
pub mod store;
