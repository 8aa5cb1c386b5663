//! mkmime's library: `cli::Args` and `run`, which `main.rs` joins, and the
//! modules behind them, public so that tests and the fuzz targets in `fuzz/`
//! can call the draft and JSON parsers and the builder.

pub mod attach;
pub mod build;
pub mod cli;
pub mod draft;
pub mod encode;
pub mod header_encode;
pub mod headers;
pub mod json_input;
pub mod reproducible;
mod run;
pub mod scan;
pub mod source;
pub mod spool;
pub mod text;

pub use run::run;
