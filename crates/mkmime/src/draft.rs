//! A draft as a person writes it in an editor (`mutt -H`, mblaze's mmime):
//! `Name: value` lines, folded lines continued with leading whitespace, a
//! blank line, then the body. Header text is plain UTF-8, not encoded-words.

use mailpipe::Error;

#[derive(Debug, PartialEq, Eq)]
pub struct Draft {
    /// (line number, name, unfolded value), in order.
    pub headers: Vec<(usize, String, String)>,
    pub body: String,
}

/// Splits a draft into its header fields and body. CRLF or LF line ends.
pub fn parse(input: &str) -> Result<Draft, Error> {
    let mut headers: Vec<(usize, String, String)> = Vec::new();
    let mut rest = input;
    let mut number = 0;
    loop {
        if rest.is_empty() {
            return Ok(Draft {
                headers,
                body: String::new(),
            });
        }
        let (line, after) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        number += 1;
        if line.is_empty() {
            return Ok(Draft {
                headers,
                body: after.to_string(),
            });
        }
        if line.starts_with([' ', '\t']) {
            let Some(last) = headers.last_mut() else {
                return Err(Error::data(format!(
                    "draft line {number}: a continuation line before any header"
                )));
            };
            // RFC 5322 unfolding: the line break goes, the whitespace stays.
            last.2.push_str(line);
        } else {
            let Some((name, value)) = line.split_once(':') else {
                return Err(Error::data(format!(
                    "draft line {number}: expected `Name: value`, or a blank line before the body"
                )));
            };
            headers.push((number, name.to_string(), value.to_string()));
        }
        rest = after;
    }
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
