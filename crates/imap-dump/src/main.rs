//! imap-dump: not built yet.
fn main() {}
