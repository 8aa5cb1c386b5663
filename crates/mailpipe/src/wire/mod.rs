//! The wire layer every network tool reads its server through: one bounded
//! line reader with one deadline per reply, IMAP literals, the STARTTLS
//! upgrade with its plaintext-injection guard, COMPRESS=DEFLATE, and the one mapping from I/O
//! failures to sysexits codes. Protocol code (SMTP replies, IMAP FETCH, POP3
//! dot-stuffing) sits on top and never reads a socket itself.

mod deadline;
mod deflate;
mod failure;
mod literal;
mod reader;
mod starttls;

pub use deadline::{Deadline, Timed, MIN_BODY_RATE};
pub use deflate::{Deflate, WireBytes};
pub use failure::{peer_error, Failure};
pub use literal::{announced_literal, Literal};
pub use reader::{literal_fits, Chunk, WireReader};
pub use starttls::start_tls;
