//! A draft as a person writes it in an editor (`mutt -H`, mblaze's mmime):
//! `Name: value` lines, folded lines continued with leading whitespace, a
//! blank line, then the body. Header text is plain UTF-8, not encoded-words.

use mailpipe::message::{line_number, strict_header_block, Irregular};
use mailpipe::Error;

#[derive(Debug, PartialEq, Eq)]
pub struct Draft {
    /// (line number, name, unfolded value), in order.
    pub headers: Vec<(usize, String, String)>,
    pub body: String,
}

/// Splits a draft into its header fields and body (the message library's
/// strict header split: what it would repair is an error).
/// CRLF or LF line ends.
pub fn parse(input: &str) -> Result<Draft, Error> {
    let data = input.as_bytes();
    let block = strict_header_block(data).map_err(|irregular| {
        Error::data(match irregular {
            Irregular::IndentedFirstLine => {
                "draft line 1: a continuation line before any header".to_string()
            }
            Irregular::NotAField { line } => format!(
                "draft line {line}: expected `Name: value`, or a blank line before the body"
            ),
        })
    })?;
    let headers = block
        .fields
        .iter()
        .map(|f| {
            // RFC 5322 unfolding: the line breaks go, the whitespace stays.
            let value: Vec<u8> = f
                .value
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            (
                line_number(data, f.start),
                String::from_utf8_lossy(f.name).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    Ok(Draft {
        headers,
        body: input[block.body_start..].to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn headers_folding_and_body() {
        let d = parse("To: a@x.org\r\nSubject: one\r\n two\r\n\r\nHello\r\n\r\nBye\r\n").unwrap();
        assert_eq!(
            d.headers,
            vec![
                (1, "To".to_string(), " a@x.org".to_string()),
                (2, "Subject".to_string(), " one two".to_string()),
            ]
        );
        assert_eq!(d.body, "Hello\r\n\r\nBye\r\n");
    }

    #[test]
    fn no_body_and_no_headers() {
        assert_eq!(parse("To: a@x.org\n").unwrap().body, "");
        let d = parse("\nJust a body\n").unwrap();
        assert!(d.headers.is_empty());
        assert_eq!(d.body, "Just a body\n");
    }

    #[test]
    fn junk_is_reported_with_its_line() {
        let e = parse("To: a@x.org\nthis is not a header\n\nbody").unwrap_err();
        assert_eq!(e.exit().code(), 65);
        assert!(e.message().starts_with("draft line 2:"), "{}", e.message());
        assert!(parse(" leading continuation\n").is_err());
    }
}
