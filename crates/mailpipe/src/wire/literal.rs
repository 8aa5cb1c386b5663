//! IMAP literals (RFC 9051 4.3): a line that ends in `{N}` (or a client's
//! non-synchronising `{N+}`, or `~{N}` for binary) is followed by exactly N
//! bytes. The one parser of the announcement; `WireReader::read_literal`
//! reads the bytes, and the `-v` transcript uses it to show `{N bytes}`.

use crate::exit::Error;

/// An announced literal: where its `{` is in the line, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal {
    pub open: usize,
    pub size: u64,
}

/// The literal announced at the end of `line` (its CRLF or LF may be there or
/// not), `None` when there is none, and a protocol error (76) when its size
/// does not fit 64 bits.
pub fn announced_literal(line: &[u8]) -> Result<Option<Literal>, Error> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(inner) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = inner.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    let size = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::protocol("the server announced a literal whose size does not fit 64 bits")
        })?;
    Ok(Some(Literal { open, size }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_sizes() {
        let lit = |open, size| Some(Literal { open, size });
        let announced_literal = |line: &[u8]| announced_literal(line).expect("fits");
        assert_eq!(
            announced_literal(b"* 1 FETCH (BODY[] {12}\r\n"),
            lit(18, 12)
        );
        assert_eq!(announced_literal(b"a LOGIN {5+}"), lit(8, 5));
        assert_eq!(announced_literal(b"x ~{0}\n"), lit(3, 0));
        assert_eq!(
            announced_literal(b"{18446744073709551615}"),
            lit(0, u64::MAX)
        );
        for none in [
            &b"* OK done"[..],
            b"{}",
            b"{1 2}",
            b"{-1}",
            b"a {x}\r\n",
            b"}",
        ] {
            assert_eq!(announced_literal(none), None, "{none:?}");
        }
        let e = super::announced_literal(b"{18446744073709551616}").expect_err("too big");
        assert_eq!(e.exit().code(), 76);
    }
}
