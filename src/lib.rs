//! hallctl: the production-hall printing line controller.
#![deny(missing_docs)]
