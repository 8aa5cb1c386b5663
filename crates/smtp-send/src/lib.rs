//! smtp-send's library: `cli::Args` and `run`, which `main.rs` joins, and the
//! modules behind them, public so that tests and the fuzz targets in `fuzz/`
//! can drive the SMTP reply reader over hostile bytes.

pub mod batch;
pub mod cli;
pub mod deliver;
pub mod dsn;
pub mod envelope;
pub mod flush;
pub mod message;
pub mod queue;
pub mod reply;
pub mod report;
mod run;
pub mod session;

pub use run::run;
