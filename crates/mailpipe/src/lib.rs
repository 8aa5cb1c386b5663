//! The shared library of the mailpipe tools. Each module is named after the
//! format or duty it owns; anything two tools need lives here, once.

pub mod account;
pub mod cli;
pub mod durable;
pub mod exec;
pub mod exit;
pub mod follow;
pub mod mbox;
pub mod mbox_split;
pub mod message;
pub mod oauth;
pub mod progress;
pub mod secret;
pub mod size;
pub mod tls;
pub mod transcript;
pub mod url;
pub mod wire;

pub use account::{Endpoint, ServerArgs};
pub use exit::{Error, Exit, Outcome};
pub use secret::Secret;
pub use size::ByteSize;
pub use tls::Stream;
pub use transcript::{Dialect, Transcript, TranscriptStream};
pub use url::{Protocol, Security, ServerUrl};
