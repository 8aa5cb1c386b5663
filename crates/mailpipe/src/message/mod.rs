//! The message library: everything the tools read out of a message's bytes,
//! once. Laid out by layer:
//!
//! - [`decode`]: bytes as written to what they stand for (base64,
//!   quoted-printable, RFC 2047 encoded-words, charsets, UTF-7, transfer
//!   encodings);
//! - [`parse`]: the structure (header block, MIME tree with its limits,
//!   RFC 2231 parameters, addresses, dates);
//! - [`envelope`]: what the tools ask of a header (the sender and date of a
//!   From_ line, the recipients of `smtp-send -t`).
//!
//! Parsing is lenient, as Python's email package is: irregularities become
//! defects (strings, shown by mail2json) on a result that is still returned.

pub mod decode;
pub mod envelope;
pub mod parse;

pub use parse::{Field, HeaderBlock, Mailbox};

/// The header block at the start of `message`, and its defects.
pub fn header_block(message: &[u8]) -> (HeaderBlock<'_>, Vec<String>) {
    let mut defects = Vec::new();
    let block = parse::header::split(message, &mut defects);
    (block, defects)
}
