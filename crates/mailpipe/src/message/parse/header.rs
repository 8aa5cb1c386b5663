//! The header block of a message or MIME part, split into fields without
//! copying, with the repairs real mail needs.
//!
//! mailparse refuses a block whose first line is a continuation ("Header
//! cannot start with a space"); here such a line is dropped with a defect, as
//! Python's email package does. A line that is neither a field nor a
//! continuation ends the header block (the body starts there), with a defect,
//! again as Python does, instead of becoming a field with an empty value.
//! Tools that must refuse such a message (smtp-send) read the defects.

use std::borrow::Cow;

/// One header field: name and raw value (folded, as in the message).
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    /// Where the whole field is in the input, continuation lines and the
    /// last line end included (to cut it out byte-exactly).
    pub start: usize,
    pub end: usize,
}

impl<'a> Field<'a> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value with line breaks of folding removed and outer whitespace trimmed.
    pub fn unfolded(&self) -> Cow<'a, [u8]> {
        unfold(self.value)
    }
}

pub fn unfold(value: &[u8]) -> Cow<'_, [u8]> {
    let value = value.trim_ascii();
    if !value.contains(&b'\n') && !value.contains(&b'\r') {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect(),
    )
}

/// A split header block.
#[derive(Debug, Default)]
pub struct HeaderBlock<'a> {
    pub fields: Vec<Field<'a>>,
    /// Where the body starts in the input.
    pub body_start: usize,
}

impl<'a> HeaderBlock<'a> {
    pub fn first(&self, name: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.is(name))
    }

    /// Where the fields end: the start of the blank line (or of the line
    /// that is not a field) after them, or the end of the input. New fields
    /// go here.
    pub fn end(&self) -> usize {
        self.fields.last().map_or(0, |f| f.end)
    }

    /// The fields called `name`, in order.
    pub fn named<'b>(&'b self, name: &'b str) -> impl Iterator<Item = &'b Field<'a>> + 'b {
        self.fields.iter().filter(move |f| f.is(name))
    }

    /// The fields called any of `names`, in message order.
    pub fn any_of<'b>(&'b self, names: &'b [&str]) -> impl Iterator<Item = &'b Field<'a>> + 'b {
        self.fields
            .iter()
            .filter(move |f| names.iter().any(|n| f.is(n)))
    }
}

/// Whether the first line of `data` ends in CRLF: the line end of fields a
/// tool adds, so that a message keeps one style.
pub fn uses_crlf(data: &[u8]) -> bool {
    memchr::memchr(b'\n', data).is_some_and(|i| i > 0 && data[i - 1] == b'\r')
}

/// A field name: printable ASCII except the colon (RFC 5322 ftext); trailing
/// whitespace before the colon is tolerated (`Subject : x`).
fn field_name(line: &[u8]) -> Option<usize> {
    let colon = memchr::memchr(b':', line)?;
    let name = &line[..colon];
    let trimmed = name
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |e| e + 1);
    if trimmed == 0 || !name[..trimmed].iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    Some(colon)
}

/// Splits the header block at the start of `data`; defects are appended.
pub fn split<'a>(data: &'a [u8], defects: &mut Vec<String>) -> HeaderBlock<'a> {
    let mut block = HeaderBlock::default();
    let mut pos = 0;
    let mut first_line = true;
    // (name, field start, value start, end) of the field being read; it
    // ends where the next line that is not a continuation starts.
    let mut current: Option<(&'a [u8], usize, usize, usize)> = None;
    while pos < data.len() {
        let line_end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..line_end];
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if content.is_empty() {
            pos = line_end;
            block.body_start = pos;
            finish(&mut block, current.take(), data);
            return block;
        }
        if content[0] == b' ' || content[0] == b'\t' {
            match current.as_mut() {
                Some((_, _, _, end)) => *end = line_end,
                None => {
                    let indent = content
                        .iter()
                        .take_while(|&&b| b == b' ' || b == b'\t')
                        .count();
                    if let (true, Some(colon)) = (first_line, field_name(&content[indent..])) {
                        // ` From: a@b` on the first line (mailparse refuses the
                        // message): read it as the field it plainly is.
                        defects.push("first-header-line-is-continuation: repaired".to_string());
                        let start = pos + indent;
                        let name_end = content[indent..indent + colon]
                            .iter()
                            .rposition(|&b| b != b' ' && b != b'\t')
                            .map_or(0, |e| e + 1);
                        let name = &data[start..start + name_end];
                        current = Some((name, pos, start + colon + 1, line_end));
                    } else if first_line {
                        defects.push("first-header-line-is-continuation".to_string());
                    } else {
                        defects.push("header-continuation-without-field".to_string());
                    }
                }
            }
            pos = line_end;
            first_line = false;
            continue;
        }
        if let Some(colon) = field_name(content) {
            finish(&mut block, current.take(), data);
            let name_end = content[..colon]
                .iter()
                .rposition(|&b| b != b' ' && b != b'\t')
                .map_or(0, |e| e + 1);
            current = Some((&content[..name_end], pos, pos + colon + 1, line_end));
            pos = line_end;
            first_line = false;
            continue;
        }
        if first_line && (content.starts_with(b"From ") || content.starts_with(b">From ")) {
            defects.push("unix-from-line-in-message".to_string());
            pos = line_end;
            first_line = false;
            continue;
        }
        // Not a header line: the body starts here.
        finish(&mut block, current.take(), data);
        defects.push("missing-header-body-separator".to_string());
        block.body_start = pos;
        return block;
    }
    finish(&mut block, current.take(), data);
    block.body_start = data.len();
    block
}

fn finish<'a>(
    block: &mut HeaderBlock<'a>,
    current: Option<(&'a [u8], usize, usize, usize)>,
    data: &'a [u8],
) {
    if let Some((name, start, value_start, end)) = current {
        let value = &data[value_start..end];
        let value = value.strip_suffix(b"\n").unwrap_or(value);
        let value = value.strip_suffix(b"\r").unwrap_or(value);
        block.fields.push(Field {
            name,
            value,
            start,
            end,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_and_body() {
        let mut d = Vec::new();
        let data = b"Subject: a\r\n  b\r\nTo : x@y\r\n\r\nbody\r\n";
        let h = split(data, &mut d);
        assert_eq!(h.fields.len(), 2);
        assert_eq!(&*h.fields[0].unfolded(), b"a  b");
        assert_eq!(h.fields[1].name, b"To");
        assert_eq!(
            &data[h.fields[0].start..h.fields[0].end],
            b"Subject: a\r\n  b\r\n"
        );
        assert_eq!(&data[h.fields[1].start..h.fields[1].end], b"To : x@y\r\n");
        assert_eq!(&data[h.body_start..], b"body\r\n");
        assert!(d.is_empty());
        assert!(uses_crlf(data) && !uses_crlf(b"A: 1\n\r\n") && !uses_crlf(b"\r"));
    }

    #[test]
    fn repairs() {
        let mut d = Vec::new();
        let h = split(b" From: a@b\nSubject: s\n\n", &mut d);
        assert_eq!(h.fields.len(), 2);
        assert_eq!(h.fields[0].name, b"From");
        assert_eq!(&*h.fields[0].unfolded(), b"a@b");
        assert_eq!(d, ["first-header-line-is-continuation: repaired"]);
        d.clear();
        let data = b" stray continuation\nSubject: s\nnot a header line\nmore\n";
        let h = split(data, &mut d);
        assert_eq!(h.fields.len(), 1);
        assert_eq!(&data[h.body_start..], b"not a header line\nmore\n");
        assert_eq!(
            d,
            [
                "first-header-line-is-continuation",
                "missing-header-body-separator"
            ]
        );
        let h = split(b"Subject: only headers", &mut d);
        assert_eq!(&*h.fields[0].unfolded(), b"only headers");
    }
}
