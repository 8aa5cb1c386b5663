//! The bulk `UID FETCH` read by hand. The imap crate re-parses a whole
//! response with nom after every line it reads, which made imap-dump 1.9
//! times slower than a script streaming the same FETCH; here each literal is
//! read by its announced length and only the short lines around it are
//! parsed. The commands go out with their own tags, several in flight
//! (`session.rs`); the responses are read from the stream the imap crate
//! uses, which it has not buffered ahead: both read through one `WireReader`. Reads still
//! go through `ReadBudget`, so the limits are those of the crate's path: a
//! batch reads at most its budget, and the caller writes a batch only once
//! its tagged OK has arrived. Each line must arrive within --timeout, each
//! literal within --timeout plus its size at the wire layer's slowest rate.

use std::io::Read;

use chrono::{DateTime, FixedOffset};
use imap::types::Flag;
use mailpipe::wire::{announced_literal, Deadline, Timed, WireReader};
use mailpipe::Error;

use crate::body::Body;

/// One message of a FETCH response: what dump.rs writes.
#[derive(Debug, Default)]
pub struct Fetched {
    pub uid: Option<u32>,
    pub internal_date: Option<DateTime<FixedOffset>>,
    pub flags: Vec<Flag<'static>>,
    pub body: Option<Body>,
    /// RFC822.SIZE and `BODY[HEADER.FIELDS (...)]`, when asked for (keys.rs).
    pub size: Option<u32>,
    pub header: Option<Vec<u8>>,
}

/// Longest line (outside literals) accepted in a FETCH response.
const MAX_LINE: usize = 1 << 20;

fn bad(what: impl Into<String>) -> Error {
    Error::protocol(what)
}

/// Why a FETCH failed: the stream (cut or timed out: 75, over budget or
/// garbled: 76), or the server's tagged NO or BAD.
#[derive(Debug)]
pub enum FetchError {
    Failed(Error),
    Refused { status: String, text: String },
}

impl From<Error> for FetchError {
    fn from(e: Error) -> FetchError {
        FetchError::Failed(e)
    }
}

/// Reads the responses to a FETCH, up to its tagged reply, with that reply's
/// tag. A literal announced larger than `max_literal` (what the read budget
/// still allows) can never arrive whole: the server broke the protocol.
pub fn read_fetch_response<S: Read + Timed>(
    input: &mut WireReader<S>,
    max_literal: u64,
) -> Result<(Vec<Fetched>, String), FetchError> {
    let mut fetched = Vec::new();
    let tag = read_responses(input, max_literal, |parts| {
        if let Some(f) = parse_fetch(parts)? {
            fetched.push(f);
        }
        Ok(())
    })?;
    Ok((fetched, tag))
}

/// Reads the responses to a command up to its tagged OK, whose tag it
/// returns, handing each untagged one (lines and literals) to `each`.
pub fn read_responses<S: Read + Timed>(
    input: &mut WireReader<S>,
    max_literal: u64,
    mut each: impl FnMut(Vec<Part>) -> Result<(), Error>,
) -> Result<String, FetchError> {
    let mut line = Vec::new();
    loop {
        read_line(input, &mut line)?;
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"* BYE") {
            // The server closes next: no tagged reply is coming.
            let text = String::from_utf8_lossy(&line[5..]);
            return Err(crate::throttle::bye(&text.chars().take(200).collect::<String>()).into());
        }
        if line.starts_with(b"* ") {
            each(read_response(input, &mut line, max_literal)?)?;
            continue;
        }
        if line.starts_with(b"+") {
            return Err(bad("the server asked for a continuation").into());
        }
        // The tagged reply: `aN OK|NO|BAD text`.
        let text = String::from_utf8_lossy(&line);
        let mut words = text.trim_end().splitn(3, ' ');
        let tag = words.next().unwrap_or_default().to_string();
        let status = words.next().unwrap_or_default().to_ascii_uppercase();
        let information = words.next().unwrap_or_default().to_string();
        return match status.as_str() {
            "OK" => Ok(tag),
            "NO" | "BAD" => Err(FetchError::Refused {
                status,
                text: information,
            }),
            _ => Err(bad(format!(
                "unexpected line in a response: {}",
                text.chars().take(200).collect::<String>()
            ))
            .into()),
        };
    }
}

/// A piece of one response: text between literals, or a literal.
pub enum Part {
    Text(Vec<u8>),
    Literal(Body),
}

/// One line without its line end, at most `MAX_LINE` bytes, within --timeout.
fn read_line<S: Read + Timed>(input: &mut WireReader<S>, line: &mut Vec<u8>) -> Result<(), Error> {
    let deadline = input.deadline();
    input.read_line(line, MAX_LINE, &deadline, "the server's response")
}

/// The rest of an untagged response that starts with `line`: lines and the
/// literals they announce.
fn read_response<S: Read + Timed>(
    input: &mut WireReader<S>,
    line: &mut Vec<u8>,
    max_literal: u64,
) -> Result<Vec<Part>, Error> {
    let mut parts = Vec::new();
    while let Some(literal) = announced_literal(line)? {
        parts.push(Part::Text(line[..literal.open].to_vec()));
        let deadline = Deadline::for_body(input.timeout(), literal.size);
        let bytes = Body::read(
            input,
            literal.size,
            max_literal,
            &deadline,
            "the server's response",
        )?;
        parts.push(Part::Literal(bytes));
        read_line(input, line)?;
    }
    parts.push(Part::Text(std::mem::take(line)));
    Ok(parts)
}

/// A value in a response: an atom, a string (quoted, escapes undone, or a
/// literal), a parenthesized list, NIL.
pub enum Value {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Value>),
    Nil,
}

struct Cursor<'a> {
    parts: &'a [Part],
    part: usize,
    pos: usize,
    /// The part of the literal the last value read was, if it was one.
    last_literal: Option<usize>,
}

impl<'a> Cursor<'a> {
    fn text(&self) -> Option<&'a [u8]> {
        match self.parts.get(self.part)? {
            Part::Text(t) => Some(&t[self.pos.min(t.len())..]),
            Part::Literal(_) => None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text().and_then(|t| t.first().copied())
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// At the end of a text part that a literal follows.
    fn literal(&mut self) -> Option<Vec<u8>> {
        if self.text().is_some_and(|t| t.is_empty()) {
            if let Some(Part::Literal(l)) = self.parts.get(self.part + 1) {
                self.last_literal = Some(self.part + 1);
                self.part += 2;
                self.pos = 0;
                return Some(l.to_vec());
            }
        }
        None
    }

    fn expect(&mut self, b: u8) -> Result<(), Error> {
        self.skip_spaces();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(bad(format!("expected {:?} in a FETCH response", b as char)))
        }
    }

    /// An item name or atom: up to a space, `(` or `)`, with `[...]` kept whole.
    fn atom(&mut self) -> Result<String, Error> {
        let t = self.text().unwrap_or_default();
        let mut i = 0;
        let mut depth = 0;
        while i < t.len() {
            match t[i] {
                b'[' => depth += 1,
                b']' => depth -= 1,
                b' ' | b'(' | b')' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        if i == 0 {
            return Err(bad("expected an atom in a FETCH response"));
        }
        self.pos += i;
        Ok(String::from_utf8_lossy(&t[..i]).into_owned())
    }

    fn value(&mut self) -> Result<Value, Error> {
        self.skip_spaces();
        if let Some(l) = self.literal() {
            return Ok(Value::Str(l));
        }
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                let t = self.text().unwrap_or_default();
                let mut out = Vec::new();
                let mut i = 0;
                while i < t.len() {
                    match t[i] {
                        b'"' => {
                            self.pos += i + 1;
                            return Ok(Value::Str(out));
                        }
                        b'\\' if i + 1 < t.len() => {
                            out.push(t[i + 1]);
                            i += 2;
                        }
                        c => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                Err(bad("unterminated quoted string in a FETCH response"))
            }
            Some(b'(') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    if self.peek() == Some(b')') {
                        self.pos += 1;
                        return Ok(Value::List(items));
                    }
                    if self.peek().is_none() && self.text().is_none_or(|t| t.is_empty()) {
                        if self.literal().map(|l| items.push(Value::Str(l))).is_some() {
                            continue;
                        }
                        return Err(bad("unterminated list in a FETCH response"));
                    }
                    items.push(self.value()?);
                }
            }
            Some(_) => {
                let a = self.atom()?;
                if a.eq_ignore_ascii_case("NIL") {
                    Ok(Value::Nil)
                } else {
                    Ok(Value::Atom(a))
                }
            }
            None => Err(bad("a FETCH response ends early")),
        }
    }
}

/// The values of an untagged response after its `* `: for
/// `* LIST (\Noselect) "/" "a\\b"` the atom `LIST`, a list, and the
/// strings `/` and `a\b`.
pub fn values(parts: &[Part]) -> Result<Vec<Value>, Error> {
    let mut cursor = Cursor {
        parts,
        part: 0,
        pos: 2,
        last_literal: None,
    };
    let mut values = Vec::new();
    loop {
        cursor.skip_spaces();
        let at_end = cursor.text().is_none_or(|t| t.is_empty())
            && !matches!(parts.get(cursor.part + 1), Some(Part::Literal(_)));
        if at_end {
            return Ok(values);
        }
        values.push(cursor.value()?);
    }
}

/// `* n FETCH (items)`, or `None` for any other untagged response. The
/// literals are moved out first and into the values they are, so a body is
/// never copied (a 7 MB message cost 14 MB at once, in each connection's thread).
fn parse_fetch(mut parts: Vec<Part>) -> Result<Option<Fetched>, Error> {
    let mut literals: Vec<Option<Body>> = parts
        .iter_mut()
        .map(|p| match p {
            Part::Literal(l) => Some(std::mem::take(l)),
            Part::Text(_) => None,
        })
        .collect();
    let parts = &parts[..];
    let Some(Part::Text(first)) = parts.first() else {
        return Ok(None);
    };
    let mut words = first.splitn(4, |&b| b == b' ');
    let (_star, number, kind) = (words.next(), words.next(), words.next());
    let is_fetch = number.is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
        && kind.is_some_and(|k| k.eq_ignore_ascii_case(b"FETCH"));
    if !is_fetch {
        return Ok(None);
    }
    let start = first
        .iter()
        .position(|&b| b == b'(')
        .ok_or_else(|| bad("a FETCH response without its list"))?;
    let mut cursor = Cursor {
        parts,
        part: 0,
        pos: start,
        last_literal: None,
    };
    cursor.expect(b'(')?;
    let mut fetched = Fetched::default();
    loop {
        cursor.skip_spaces();
        if cursor.peek() == Some(b')') {
            return Ok(Some(fetched));
        }
        let name = cursor.atom()?.to_ascii_uppercase();
        cursor.last_literal = None;
        // A string that was a literal: the literal itself, moved out whole.
        let (value, literal) = match (cursor.value()?, cursor.last_literal.take()) {
            (Value::Str(_), Some(i)) => {
                let literal = literals.get_mut(i).and_then(Option::take);
                (Value::Str(Vec::new()), Some(literal.unwrap_or_default()))
            }
            (value, _) => (value, None),
        };
        match (name.as_str(), value) {
            ("UID", Value::Atom(a)) => {
                fetched.uid = Some(a.parse().map_err(|_| bad("a UID that is not a number"))?);
            }
            ("INTERNALDATE", Value::Str(s)) => {
                let s = String::from_utf8_lossy(literal.as_deref().unwrap_or(&s));
                fetched.internal_date =
                    DateTime::parse_from_str(s.trim_start(), "%d-%b-%Y %H:%M:%S %z").ok();
            }
            ("FLAGS", Value::List(items)) => {
                fetched.flags = items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::Atom(a) => Some(Flag::from(a)),
                        _ => None,
                    })
                    .collect();
            }
            ("RFC822.SIZE", Value::Atom(a)) => {
                fetched.size = Some(a.parse().map_err(|_| bad("a size that is not a number"))?);
            }
            (n, Value::Str(h)) if n.starts_with("BODY[HEADER.FIELDS") => {
                fetched.header = Some(literal.map_or(h, |l| l.to_vec()));
            }
            (n, Value::Str(body)) if n.starts_with("BODY[]") => {
                fetched.body = Some(literal.unwrap_or_else(|| body.into()));
            }
            (n, Value::Nil) if n.starts_with("BODY[]") => fetched.body = None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailpipe::Exit;
    use std::time::Duration;

    fn read(wire: &[u8], max_literal: u64) -> Result<Vec<Fetched>, FetchError> {
        read_fetch_response(
            &mut WireReader::new(wire, Duration::from_secs(5)),
            max_literal,
        )
        .map(|(fetched, _tag)| fetched)
    }

    fn exit(e: FetchError) -> Exit {
        match e {
            FetchError::Failed(e) => e.exit(),
            FetchError::Refused { .. } => Exit::Software,
        }
    }

    /// Peak resident memory of this process so far, in KiB.
    fn peak_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// A literal announced far larger than what follows (the fuzzer's 9 GB
    /// announcement with 5 bytes behind it) is an error, and its memory is
    /// not taken before its bytes arrive: 1 GiB announced, the peak grows
    /// by far less.
    #[test]
    fn a_huge_literal_announced_and_not_sent_takes_no_memory_first() {
        let before = peak_kib();
        let wire = b"* 1 FETCH (UID 2 BODY[] {1073741824}\r\nshort";
        let err = read(&wire[..], u64::MAX).expect_err("cut in the literal");
        assert!(matches!(exit(err), Exit::TempFail | Exit::Protocol));
        let grown = peak_kib().saturating_sub(before);
        assert!(grown < 256 * 1024, "the peak grew by {grown} KiB");
    }

    #[test]
    fn fetch_responses_with_literals_and_unsolicited_lines() {
        let wire = b"* 3 EXISTS\r\n\
            * 1 FETCH (UID 7 INTERNALDATE \" 1-Nov-2026 09:00:00 +0800\" FLAGS (\\Seen $Work) BODY[] {12}\r\nSubject: a\r\n)\r\n\
            * 2 FETCH (FLAGS (\\Flagged))\r\n\
            * 2 FETCH (BODY[] {5}\r\nx\r\n}\r UID 8)\r\n\
            a4 OK Fetch completed.\r\nnext";
        let got = read(&wire[..], u64::MAX).expect("parses");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].uid, Some(7));
        assert_eq!(got[0].body.as_deref(), Some(&b"Subject: a\r\n"[..]));
        assert_eq!(
            got[0].flags,
            vec![Flag::Seen, Flag::from("$Work".to_string())]
        );
        assert_eq!(
            got[0].internal_date.map(|d| d.to_rfc3339()),
            Some("2026-11-01T09:00:00+08:00".to_string())
        );
        assert!(got[1].body.is_none());
        assert_eq!(got[2].uid, Some(8));
        assert_eq!(got[2].body.as_deref(), Some(&b"x\r\n}\r"[..]));
    }

    #[test]
    fn no_bad_cut_and_garbage() {
        let e = read(&b"a1 NO [SERVERBUG] oops\r\n"[..], u64::MAX).expect_err("no");
        assert!(matches!(e, FetchError::Refused { ref status, .. } if status == "NO"));
        let e = read(&b"* 1 FETCH (UID 1 BODY[] {100}\r\nshort"[..], 1000).expect_err("cut");
        assert_eq!(exit(e), Exit::TempFail);
        let e =
            read(&b"* 1 FETCH (UID 1 BODY[] {1001}\r\nshort"[..], 1000).expect_err("over budget");
        assert_eq!(exit(e), Exit::Protocol);
        let e = read(
            &b"* 1 FETCH (UID 1 BODY[] {99999999999999999999999}\r\n"[..],
            u64::MAX,
        )
        .expect_err("huge");
        assert_eq!(exit(e), Exit::Protocol);
        let e = read(&b"* 1 FETCH (UID x)\r\na1 OK\r\n"[..], u64::MAX).expect_err("garbage");
        assert_eq!(exit(e), Exit::Protocol);
    }

    /// Regression: the bulk FETCH had no deadline, so a server dripping a
    /// byte well within each read's timeout held imap-dump for as long as it
    /// liked. Now each line must arrive within --timeout.
    #[test]
    fn a_fetch_dripped_a_byte_at_a_time_times_out() {
        use std::io::Write;
        use std::net::{TcpListener, TcpStream};
        use std::time::Instant;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                for &b in b"* 1 FETCH (UID 1 FLAGS (\\Seen) BODY[] NIL)\r\na1 OK done\r\n" {
                    if s.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let timeout = Duration::from_secs(1);
        tcp.set_read_timeout(Some(timeout)).expect("timeout");
        let started = Instant::now();
        let e =
            read_fetch_response(&mut WireReader::new(tcp, timeout), u64::MAX).expect_err("drip");
        let took = started.elapsed();
        assert_eq!(exit(e), Exit::TempFail);
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }
}
