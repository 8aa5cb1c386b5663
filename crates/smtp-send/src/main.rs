//! smtp-send: not built yet.
fn main() {}
