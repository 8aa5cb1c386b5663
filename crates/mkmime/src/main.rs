//! mkmime: not built yet.
fn main() {}
