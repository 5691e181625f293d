//! hallctl: the production-hall printing line controller.
//!
//! # Codemap
//! - [`api`]: the HTTP API under `/api/v1` (axum), one router per resource, the OpenAPI
//!   document generated from the handlers; the only module that names axum types. It also
//!   serves the hall UI (the `hallctl-ui` crate's embedded pages: hall view at `/`, station
//!   terminal at `/station`, auditor view at `/audit`), which uses nothing but the API and the
//!   stream.
//! - [`auth`]: users and access: accounts (stored with the ledger record of each change), PINs
//!   hashed with Argon2id, lockout, session and service tokens, and [`auth::require`], the role
//!   check every API route makes.
//! - [`central`]: `hallctl central`: every hall's MQTT topics folded into a national overview
//!   (page and `/api/halls` served by [`api::central`]).
//! - [`cli`]: the `hallctl` command line, one module per subcommand.
//! - [`config`]: `hall.toml`, the controller's configuration: the hall, its stations and devices,
//!   policies and limits, validated at load with errors that name the file, line and key.
//! - [`demo`]: `hallctl demo`: the demo hall (the embedded configuration served by [`serve`]),
//!   seeded staff, vault and jobs, and simulated staff who run the line over the API.
//! - Devices: the `hallctl-drivers` crate (frames, links, printer and laminator drivers, vendor
//!   bridge, simulators); `hallctl devices sim` ([`cli::devices`]) runs its simulators standalone.
//! - [`https`]: HTTPS for the API and the hall UI (rustls), when `[server]` names a certificate
//!   and key.
//! - [`ledger`]: the patch and booklet ledger: custody of accountable items, hash-chained
//!   durable journal, signed checkpoints, forensic queries. Every item state change is one
//!   ledger record, checked against the custody rules before it is written.
//! - [`line`](mod@line): the dispatcher actor: intake, the scheduler's assignments, station steps on the
//!   devices, custody through the ledger, dispatch bags, recovery after a crash. A job flows:
//!   `POST /jobs` → [`line::Line::submit`] (durable, queued) → the scheduler assigns print to a
//!   station whose operator scans a booklet → the printer prints → lamination at another
//!   operator's station with a patch from that station's session → QC by a third → dispatch.
//!   The actor also keeps what monitoring reads ([`line::monitor`]: queues by class and age,
//!   throughput, on time), raises and clears alerts ([`line::alerts`], ledger records) and
//!   measures staff and machine performance ([`line::perf`], OEE).
//! - [`mqtt`]: MQTT for central monitoring: the hall's publisher (state, devices, every ledger
//!   record in order from a cursor into the journal, checkpoints, a last will) and the payloads
//!   `hallctl central` ([`central`]) reads.
//! - [`serve`]: `hallctl serve`: builds the hall from its configuration and serves the API;
//!   graceful shutdown on SIGTERM.
//! - [`status`]: the status fan-out: a broadcast of typed events from the line's actor (one per
//!   ledger record, one per device readiness change, one per device step finished) plus the
//!   latest snapshot, and the
//!   Prometheus metrics; served as SSE at `/api/v1/stream` and as `/metrics`.
//! - [`store`]: the only module that knows sled; the ledger's durability point.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod central;
pub mod cli;
pub mod config;
pub mod demo;
pub mod https;
pub mod ledger;
pub mod line;
pub mod mqtt;
pub mod roster;
pub mod serve;
pub mod status;
pub mod store;
