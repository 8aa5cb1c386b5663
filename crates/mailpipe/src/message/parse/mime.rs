//! The MIME tree of a message, parsed without copying the input, with limits.
//!
//! The tools walk the tree here rather than call `mailparse::parse_mail`
//! (0.18): mailparse refuses a whole message at its first irregular header
//! block (20 of the 1,209 messages of the shared corpus, all for a header
//! block, the message's or a part's, whose first line starts with a space),
//! and a message nested deeper than its recursion limit of 100 is refused too. Here depth and part count are
//! bounded, and every irregularity becomes a defect on a tree that is still
//! returned. Over that corpus this walk is also faster (figures in
//! docs/mail2json-oracles.md).
//!
//! Boundary lines follow RFC 2046: `--boundary` at the start of a line, then
//! optionally `--`, then only whitespace, or whitespace and text that is
//! ignored (the RFC's note; Python's email package stops at the text).

use super::header::{self as headers, HeaderBlock};
use super::params::{self, ParamValue};
use crate::message::decode::HeaderDecoder;

/// Multiparts nested deeper than this are kept as opaque leaves.
pub const MAX_DEPTH: usize = 40;
/// Parts beyond this many in one message are not parsed.
pub const MAX_PARTS: usize = 5000;

#[derive(Debug)]
pub struct Part<'a> {
    pub header: HeaderBlock<'a>,
    /// Content-Type as given, or the default (`text/plain`, or
    /// `message/rfc822` inside multipart/digest).
    pub content_type: ParamValue,
    /// The body, still transfer-encoded.
    pub body: &'a [u8],
    /// Parts of a multipart, or the one message inside message/rfc822 (only
    /// when embedded messages are parsed).
    pub children: Vec<Part<'a>>,
}

impl Part<'_> {
    pub fn mime_type(&self) -> &str {
        &self.content_type.value
    }

    pub fn is_multipart(&self) -> bool {
        self.content_type.value.starts_with("multipart/") && !self.children.is_empty()
    }
}

/// Parsing state shared by all parts of one message.
pub struct Walker<'d> {
    pub defects: &'d mut Vec<String>,
    /// Parse message/rfc822 bodies into a child (for `--parts`).
    pub embedded: bool,
    parts: usize,
    too_many: bool,
}

impl<'d> Walker<'d> {
    pub fn new(defects: &'d mut Vec<String>, embedded: bool) -> Walker<'d> {
        Walker {
            defects,
            embedded,
            parts: 0,
            too_many: false,
        }
    }

    pub fn parse<'a>(&mut self, data: &'a [u8]) -> Part<'a> {
        self.part(data, 0, false)
    }

    fn part<'a>(&mut self, data: &'a [u8], depth: usize, in_digest: bool) -> Part<'a> {
        self.parts += 1;
        let header = headers::split(data, self.defects);
        let body = &data[header.body_start..];
        let content_type = match header.first("content-type") {
            Some(f) => {
                let mut decoder = HeaderDecoder {
                    hint: None,
                    defects: self.defects,
                };
                let mut ct = params::parse(&f.unfolded(), &mut decoder);
                if !valid_mime_type(&ct.value) {
                    self.defects
                        .push(format!("invalid-content-type: {}", short(&ct.value)));
                    ct.value = "text/plain".to_string();
                }
                ct
            }
            None => ParamValue {
                value: if in_digest {
                    "message/rfc822"
                } else {
                    "text/plain"
                }
                .to_string(),
                params: Vec::new(),
            },
        };
        let mut part = Part {
            header,
            content_type,
            body,
            children: Vec::new(),
        };
        if part.mime_type().starts_with("multipart/") {
            self.split_multipart(&mut part, depth);
        } else if self.embedded && is_message(part.mime_type()) && identity_encoded(&part) {
            if depth + 1 >= MAX_DEPTH {
                self.defects.push("nesting-too-deep".to_string());
            } else if self.room() {
                let child = self.part(part.body, depth + 1, false);
                part.children.push(child);
            }
        }
        part
    }

    fn room(&mut self) -> bool {
        if self.parts < MAX_PARTS {
            return true;
        }
        if !self.too_many {
            self.too_many = true;
            self.defects
                .push(format!("too-many-parts: only the first {MAX_PARTS} parsed"));
        }
        false
    }

    fn split_multipart<'a>(&mut self, part: &mut Part<'a>, depth: usize) {
        let Some(boundary) = part
            .content_type
            .get("boundary")
            .map(|b| b.as_bytes().to_vec())
        else {
            self.defects.push("multipart-without-boundary".to_string());
            return;
        };
        if depth + 1 >= MAX_DEPTH {
            self.defects.push("nesting-too-deep".to_string());
            return;
        }
        let Some((bodies, closed)) = split_body(part.body, &boundary) else {
            self.defects
                .push("multipart-boundary-not-found".to_string());
            return;
        };
        if !closed {
            self.defects
                .push("multipart-close-boundary-missing".to_string());
        }
        let digest = part.mime_type() == "multipart/digest";
        for body in bodies {
            if !self.room() {
                break;
            }
            let child = self.part(body, depth + 1, digest);
            part.children.push(child);
        }
    }
}

fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(60).collect()
}

fn valid_mime_type(t: &str) -> bool {
    match t.split_once('/') {
        Some((a, b)) => !a.is_empty() && !b.is_empty() && !t.contains(char::is_whitespace),
        None => false,
    }
}

pub fn is_message(t: &str) -> bool {
    t == "message/rfc822" || t == "message/global"
}

fn identity_encoded(part: &Part<'_>) -> bool {
    part.header
        .first("content-transfer-encoding")
        .is_none_or(|f| {
            let v = String::from_utf8_lossy(&f.unfolded()).to_ascii_lowercase();
            matches!(v.as_str(), "7bit" | "8bit" | "binary" | "")
        })
}

/// The bodies between boundary lines, and whether the close delimiter was
/// seen; `None` when no boundary line is found at all.
fn split_body<'a>(body: &'a [u8], boundary: &[u8]) -> Option<(Vec<&'a [u8]>, bool)> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 2);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delimiter);
    let mut parts = Vec::new();
    // Start of the current part's content, once the first delimiter is seen.
    let mut content_start: Option<usize> = None;
    let mut search = 0;
    while let Some(found) = finder.find(&body[search..]) {
        let at = search + found;
        search = at + 1;
        if at > 0 && body[at - 1] != b'\n' {
            continue;
        }
        let mut after = at + delimiter.len();
        let close = body[after..].starts_with(b"--");
        if close {
            after += 2;
        }
        let line_end = match memchr::memchr(b'\n', &body[after..]) {
            Some(i) => after + i + 1,
            None => body.len(),
        };
        if !delimiter_line_rest(&body[after..line_end]) {
            continue;
        }
        if let Some(start) = content_start.filter(|&s| s < at) {
            // Two delimiter lines in a row make no part (Python skips it too).
            let mut end = at;
            if end > start && body[end - 1] == b'\n' {
                end -= 1;
                if end > start && body[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            parts.push(&body[start..end.max(start)]);
        }
        if close {
            // A close delimiter before any other: the boundary was not found.
            content_start?;
            return Some((parts, true));
        }
        content_start = Some(line_end);
        search = line_end;
    }
    let start = content_start?;
    parts.push(&body[start..]);
    Some((parts, false))
}

/// Whether what follows `--boundary` (or `--boundary--`) on its line
/// leaves it a delimiter line: only whitespace, or whitespace and then
/// anything. RFC 2046 section 5.1.1's note: "An exact match of the entire
/// candidate line is not required; it is sufficient that the boundary
/// appear in its entirety following the CRLF". Any other character could
/// continue a longer boundary (an inner multipart's `b-1` under `b`), so
/// such a line is text.
fn delimiter_line_rest(rest: &[u8]) -> bool {
    match rest.first() {
        None | Some(b' ' | b'\t') => true,
        Some(_) => rest.iter().all(|b| matches!(b, b'\r' | b'\n')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let body =
            b"preamble\r\n--b\r\nA: 1\r\n\r\none\r\n--bb\r\n--b  \r\n\r\ntwo\r\n--b--\r\nepilogue";
        let (parts, closed) = split_body(body, b"b").expect("found");
        assert!(closed);
        assert_eq!(parts, [&b"A: 1\r\n\r\none\r\n--bb"[..], &b"\r\ntwo"[..]]);
        let (parts, closed) = split_body(b"--b\nx\n", b"b").expect("found");
        assert!(!closed);
        assert_eq!(parts, [&b"x\n"[..]]);
        assert!(split_body(b"no parts", b"b").is_none());
    }

    #[test]
    fn text_after_a_boundary_and_a_space_is_ignored() {
        // mime4j's ending-boundaries.msg, after RFC 2046's note on boundaries.
        let body = b"--b This should be ignored\r\nContent-Type: text/plain\r\n\r\n\
                     first part\r\n--b-- and this too\r\nepilogue\r\n--b--\r\n";
        let (parts, closed) = split_body(body, b"b").expect("found");
        assert!(closed);
        assert_eq!(parts, [&b"Content-Type: text/plain\r\n\r\nfirst part"[..]]);
        // A boundary character right after it may be a longer boundary.
        let (parts, _) = split_body(b"--b\n--b-1\nx\n--b--\n", b"b").expect("found");
        assert_eq!(parts, [&b"--b-1\nx"[..]]);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut msg = Vec::new();
        for i in 0..10_000 {
            msg.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=x{i}\n\n--x{i}\n").as_bytes(),
            );
        }
        let mut defects = Vec::new();
        let part = Walker::new(&mut defects, true).parse(&msg);
        let mut depth = 0;
        let mut node = &part;
        while let Some(child) = node.children.first() {
            assert_eq!(node.children.len(), 1);
            node = child;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH - 1);
        assert!(defects.contains(&"nesting-too-deep".to_string()));
    }
}
