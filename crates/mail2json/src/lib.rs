//! mail2json's library: the modules behind `main.rs`, public so that the fuzz
//! targets in `fuzz/` can call the message conversion directly. Parsing and
//! decoding are the shared message library's (`mailpipe::message`); what is
//! here is about JSON records, extraction and batching.

pub mod batch;
pub mod convert;
pub mod extract;
pub mod input;
pub mod schema;
