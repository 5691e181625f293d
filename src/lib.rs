//! hallctl: the production-hall printing line controller.
//!
//! # Codemap
//! - [`cli`]: the `hallctl` command line, one module per subcommand.
#![deny(missing_docs)]

pub mod cli;
