//! The `hallctl` command.
fn main() {}
