//! mail2json's library: `cli::Args` and `run`, which `main.rs` joins, and the
//! modules behind them, public so that tests and the fuzz targets in `fuzz/`
//! can call the message conversion directly. Parsing and decoding are the
//! shared message library's (`mailpipe::message`); what is here is about JSON
//! records, extraction and batching.

pub mod batch;
pub mod chunked;
pub mod cli;
pub mod convert;
pub mod delivery_status;
pub mod extract;
pub mod hidden;
pub mod input;
mod run;
pub mod schema;

pub use run::run;
