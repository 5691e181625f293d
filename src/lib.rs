//! hallctl: the production-hall printing line controller.
//!
//! # Codemap
//! - [`cli`]: the `hallctl` command line, one module per subcommand.
//! - Devices: the `hallctl-drivers` crate (frames, links, printer and laminator drivers, vendor
//!   bridge, simulators); `hallctl devices sim` ([`cli::devices`]) runs its simulators standalone.
#![deny(missing_docs)]

pub mod cli;
