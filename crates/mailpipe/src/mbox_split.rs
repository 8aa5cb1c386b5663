//! mbox messages found in a block of bytes already in memory, for readers of
//! regular files that read big blocks and hand each message out as a range
//! of its block instead of copying it line by line ([`crate::mbox::MboxReader`]
//! copies every line and allocates every message: most of a fast consumer's
//! reading time).
//!
//! The rules are the reader's, to the byte: a message ends at a `From ` line
//! that follows a blank line or looks like a real From_ line; `>From ` lines
//! lose one `>`; the blank separator line is removed. A From_ line with live
//! framing (`mailpipe-length=N`) is left to `MboxReader`, which alone
//! handles it ([`Rest::Framed`]).

use std::ops::Range;

use memchr::memmem;

use crate::mbox::unquote_into;
use crate::mbox::{framed_length, looks_like_from_line, strip_separator, trim_line_end};

/// One whole message of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where its From_ line starts in the block.
    pub offset: usize,
    /// Its bytes in the block: the separator line already left out when
    /// `quoted` is false; otherwise pass them to [`unquote`].
    pub data: Range<usize>,
    /// Some line is a quoted `>From ` line: the message is not a plain range.
    pub quoted: bool,
}

/// Where [`split`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// The block (the end of the input) is all read.
    Done,
    /// The message whose From_ line starts here is not whole yet: keep these
    /// bytes and split them again with more input after them.
    More(usize),
    /// A From_ line with live framing starts here: read from here on with
    /// `MboxReader`.
    Framed(usize),
}

/// Appends the whole messages of `block` to `entries`. The block starts with
/// a From_ line; `end` says that nothing follows it in the input.
pub fn split(block: &[u8], end: bool, entries: &mut Vec<Entry>) -> Rest {
    let finder = memmem::Finder::new(b"From ");
    let mut from = 0;
    loop {
        let Some(nl) = memchr::memchr(b'\n', &block[from..]) else {
            if !end {
                return Rest::More(from);
            }
            if framed_length(trim_line_end(&block[from..])).is_some() {
                return Rest::Framed(from);
            }
            // A last From_ line without a line end: a message with no bytes.
            entries.push(entry(block, from, block.len(), block.len(), false));
            return Rest::Done;
        };
        if framed_length(trim_line_end(&block[from..from + nl])).is_some() {
            return Rest::Framed(from);
        }
        let start = from + nl + 1;
        let mut quoted = false;
        let mut pos = start;
        let next = loop {
            let Some(hit) = finder.find(&block[pos..]).map(|i| pos + i) else {
                break None;
            };
            pos = hit + 1;
            if hit == start || block[hit - 1] == b'\n' {
                let line_end = match memchr::memchr(b'\n', &block[hit..]) {
                    Some(i) => hit + i + 1,
                    None if end => block.len(),
                    None => return Rest::More(from),
                };
                // The line before is "\n" or "\r\n" (the From_ line's own
                // line end precedes `start`, so the look-back stays inside).
                let blank = hit == start
                    || block[hit - 2] == b'\n'
                    || (block[hit - 2] == b'\r' && block[hit - 3] == b'\n');
                if blank || looks_like_from_line(&block[hit..line_end]) {
                    break Some(hit);
                }
            } else if block[hit - 1] == b'>' {
                let mut first = hit - 1;
                while first > start && block[first - 1] == b'>' {
                    first -= 1;
                }
                quoted |= first == start || block[first - 1] == b'\n';
            }
        };
        match next {
            Some(next) => {
                entries.push(entry(block, from, start, next, quoted));
                from = next;
            }
            None if end => {
                entries.push(entry(block, from, start, block.len(), quoted));
                return Rest::Done;
            }
            None => return Rest::More(from),
        }
    }
}

fn entry(block: &[u8], offset: usize, start: usize, end: usize, quoted: bool) -> Entry {
    let data = &block[start..end];
    let len = if quoted {
        data.len()
    } else if data.ends_with(b"\r\n\r\n") {
        data.len() - 2
    } else if data.ends_with(b"\n\n") {
        data.len() - 1
    } else if data == b"\n" || data == b"\r\n" {
        0
    } else {
        data.len()
    };
    Entry {
        offset,
        data: start..start + len,
        quoted,
    }
}

/// The message of a `quoted` entry's bytes: one `>` off each quoted From_
/// line, the separator line removed.
pub fn unquote(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    unquote_into(data, &mut out);
    strip_separator(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mbox::MboxReader;

    /// (offset, data) of each message, as MboxReader reads them.
    fn by_reader(input: &[u8]) -> Vec<(u64, Vec<u8>)> {
        MboxReader::new(input)
            .map(|m| m.map(|m| (m.offset, m.data)).expect("read"))
            .collect()
    }

    /// The same through `split`, the input cut into blocks of `step` bytes
    /// the way a reader of a file does (unfinished messages carried over).
    fn by_split(input: &[u8], step: usize) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut block = Vec::new();
        let mut base = 0;
        let mut read = 0;
        loop {
            let more = (input.len() - read).min(step);
            block.extend_from_slice(&input[read..read + more]);
            read += more;
            let end = read == input.len();
            let mut entries = Vec::new();
            let rest = split(&block, end, &mut entries);
            for e in entries {
                let data = if e.quoted {
                    unquote(&block[e.data])
                } else {
                    block[e.data].to_vec()
                };
                out.push(((base + e.offset) as u64, data));
            }
            match rest {
                Rest::Done => return out,
                Rest::Framed(at) => panic!("framed at {at}"),
                Rest::More(at) => {
                    block.drain(..at);
                    base += at;
                }
            }
        }
    }

    const CASES: &[&[u8]] = &[
        b"From a Thu Jan  1 00:00:00 2026\nSubject: x\n\nbody\n\nFrom b Thu Jan  1 00:00:00 2026\nSubject: y\n\nmore\n",
        b"From a Thu Jan  1 00:00:00 2026\r\nSubject: x\r\n\r\nbody\r\n\r\nFrom b\r\nS: y\r\n\r\n",
        b"From a\n\nFrom b\nFrom c Thu Jan  1 00:00:00 2026\nFrom the desk of\n>From quoted\n>>From twice\n>not quoted\n\n",
        b"From a\nFrom b\n\n\nFrom c",
        b"From a\nx\n\n>From y\n",
        b"From a\n>From y\n\n",
        b"From a\n\n",
        b"From a\n",
        b"From a",
        b"From a\r\n\r\n",
        b"From a\nbody From b\n text\nFrom c no date\n\n\r\nFrom d\n",
        b"From a\nx\n\r\nFrom b\nFrom x 12:00:00 2026 a b c\n>>>From \n",
    ];

    #[test]
    fn splits_as_the_reader_reads_at_every_block_size() {
        for case in CASES {
            let expected = by_reader(case);
            for step in 1..=case.len() {
                assert_eq!(
                    by_split(case, step),
                    expected,
                    "{:?} in blocks of {step}",
                    String::from_utf8_lossy(case)
                );
            }
        }
    }

    #[test]
    fn leaves_live_framing_to_the_reader() {
        let input = b"From a\nx\n\nFrom b Thu Jan  1 00:00:00 2026 mailpipe-length=3\ny\n\n";
        let mut entries = Vec::new();
        assert_eq!(split(input, true, &mut entries), Rest::Framed(10));
        assert_eq!(entries.len(), 1);
    }
}
