//! The message library: everything the tools read out of a message's bytes,
//! once. Laid out by layer:
//!
//! - [`decode`]: bytes as written to what they stand for (base64,
//!   quoted-printable, RFC 2047 encoded-words, charsets, UTF-7, transfer
//!   encodings);
//! - [`parse`]: the structure (header block, MIME tree with its limits,
//!   RFC 2231 parameters, addresses, dates);
//! - [`body`]: which parts are the text, the HTML and the attachments
//!   (RFC 8621's body model);
//! - [`envelope`]: what the tools ask of a header (the sender and date of a
//!   From_ line, the recipients of `smtp-send -t`);
//! - [`idna`]: internationalized addresses (RFC 6530): the IDNA form of a
//!   domain, and whether an address needs SMTPUTF8.
//! - what a message hides inside its bodies and headers: [`uuencode`] blocks
//!   in text, [`tnef`] (Outlook's winmail.dat) attachments, and
//!   [`auth_results`] (Authentication-Results, DKIM-Signature signers).
//!
//! Parsing is lenient, as Python's email package is: irregularities become
//! defects (strings, shown by mail2json) on a result that is still returned.

pub mod auth_results;
pub mod body;
pub mod decode;
pub mod envelope;
pub mod idna;
pub mod parse;
pub mod tnef;
pub mod uuencode;

pub use parse::{Field, HeaderBlock, Mailbox};

/// The header block at the start of `message`, and its defects.
pub fn header_block(message: &[u8]) -> (HeaderBlock<'_>, Vec<String>) {
    let mut defects = Vec::new();
    let block = parse::header::split(message, &mut defects);
    (block, defects)
}

/// Why a header block is not one a strict reader (smtp-send, mkmime's
/// drafts) accepts: what [`header_block`] would repair or skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Irregular {
    /// The first line is indented: a continuation of no field.
    IndentedFirstLine,
    /// This line (1-based) is neither a field, a continuation nor the blank
    /// line that ends the header block.
    NotAField { line: usize },
}

/// The header block at the start of `message`, refused at its first
/// irregularity instead of repaired.
pub fn strict_header_block(message: &[u8]) -> Result<HeaderBlock<'_>, Irregular> {
    let (block, defects) = header_block(message);
    let Some(defect) = defects.first() else {
        return Ok(block);
    };
    if defect.starts_with("first-header-line-is-continuation") {
        return Err(Irregular::IndentedFirstLine);
    }
    // An mbox `>From ` line is skipped as the first line; anything else
    // ended the block where the body would start.
    let line = if defect.starts_with("unix-from-line") {
        1
    } else {
        line_number(message, block.body_start)
    };
    Err(Irregular::NotAField { line })
}

/// The 1-based line that `offset` is on.
pub fn line_number(data: &[u8], offset: usize) -> usize {
    data[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_refuses_what_lenient_repairs() {
        assert_eq!(
            strict_header_block(b" From: a@b\n\n").err(),
            Some(Irregular::IndentedFirstLine)
        );
        assert_eq!(
            strict_header_block(b"A: 1\nB: 2\nnot a field\n\nbody").err(),
            Some(Irregular::NotAField { line: 3 })
        );
        assert_eq!(
            strict_header_block(b">From a@b Mon Nov 23 11:50:01 2026\nA: 1\n\n").err(),
            Some(Irregular::NotAField { line: 1 })
        );
        let block = strict_header_block(b"A: 1\n  2\n\nbody").expect("valid");
        assert_eq!(block.fields.len(), 1);
        assert_eq!(block.end(), 9);
    }
}
