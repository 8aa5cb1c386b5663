//! The shared library of the mailpipe tools. Each module is named after the
//! format or duty it owns; anything two tools need lives here, once.

pub mod cli;
pub mod exit;
pub mod mbox;

pub use exit::{Error, Exit, Outcome};
