//! mail2json: not built yet.
fn main() {}
