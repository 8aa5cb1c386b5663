//! mail2json's library: the modules behind `main.rs`, public so that the fuzz
//! targets in `fuzz/` can call the message conversion directly.

pub mod address;
pub mod batch;
pub mod body;
pub mod convert;
pub mod date;
pub mod decode;
pub mod extract;
pub mod headers;
pub mod input;
pub mod mime;
pub mod params;
pub mod rfc2047;
pub mod schema;
