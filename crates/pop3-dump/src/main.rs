//! pop3-dump: not built yet.
fn main() {}
