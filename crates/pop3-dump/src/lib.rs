//! pop3-dump's library: `cli::Args` and `run`, which `main.rs` joins, and the
//! modules behind them, public so that tests and the fuzz targets in `fuzz/`
//! can drive the POP3 client and its reply parser.

pub mod cli;
pub mod envelope;
pub mod export;
pub mod follow;
pub mod maildrop;
pub mod protocol;
pub mod response;
mod run;
pub mod session;
pub mod sink;
pub mod state;

pub use run::run;
