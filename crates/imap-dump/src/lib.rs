//! imap-dump's library: the modules behind `main.rs`, public so that the fuzz
//! targets in `fuzz/` can drive the FETCH reader over hostile bytes.

pub mod criteria;
pub mod dump;
pub mod fetch;
pub mod list;
pub mod message;
pub mod mutf7;
pub mod output;
pub mod session;
pub mod state;
