//! imap-dump's library: `cli::Args` and `run`, which `main.rs` joins, and the
//! modules behind them, public so that tests and the fuzz targets in `fuzz/`
//! can drive the FETCH reader over hostile bytes.

mod auth;
pub mod body;
pub mod cap;
pub mod cli;
pub mod compress;
pub mod criteria;
pub mod dump;
pub mod fetch;
pub mod follow;
pub mod id;
pub mod keys;
pub mod lanes;
pub mod lineend;
pub mod list;
pub mod message;
pub mod mutf7;
pub mod output;
pub mod renumbered;
mod run;
pub mod session;
pub mod sink;
pub mod state;
pub mod throttle;
pub mod when;

pub use run::run;
