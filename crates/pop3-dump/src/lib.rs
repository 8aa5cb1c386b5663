//! pop3-dump's library: the modules behind `main.rs`, public so that the fuzz
//! targets in `fuzz/` can drive the POP3 client and its reply parser.

pub mod envelope;
pub mod export;
pub mod maildrop;
pub mod protocol;
pub mod response;
pub mod session;
pub mod state;
