//! mkmime's library: the modules behind `main.rs`, public so that the fuzz
//! targets in `fuzz/` can call the draft and JSON parsers and the builder.

pub mod attach;
pub mod build;
pub mod draft;
pub mod header_encode;
pub mod headers;
pub mod json_input;
pub mod reproducible;
