//! smtp-send's library: the modules behind `main.rs`, public so that the fuzz
//! targets in `fuzz/` can drive the SMTP reply reader over hostile bytes.

pub mod batch;
pub mod deliver;
pub mod envelope;
pub mod message;
pub mod reply;
pub mod report;
pub mod session;
