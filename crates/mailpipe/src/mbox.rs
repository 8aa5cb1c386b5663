//! mbox, read and written: the one reader and the one writer of the workspace.
//!
//! Writing is mboxrd: a `From ` line, the message with every line matching
//! `>*From ` given one more `>`, and a blank separator line. Reading undoes
//! exactly that, tolerates mboxo files (an unquoted `From ` in a body only splits
//! a message when it follows a blank line or looks like a real From_ line), and
//! keeps CRLF line ends as they are. Messages stream: memory holds one message.
//!
//! Live framing (`imap-dump --follow`, `pop3-dump --follow`): a plain mbox
//! message ends only at the next From_ line, so a reader on a pipe would see
//! each message one message late. In follow mode the writer appends
//! ` mailpipe-length=N` to the From_ line, N being the bytes of the entry
//! after the From_ line's line end (the quoted message and its blank
//! separator line). The reader then takes exactly N bytes and returns the
//! message without waiting for more input. Other mbox readers see an ordinary
//! From_ line with one more word after the date. A length that does not fit
//! the bytes (no separator at the end, or an unquoted From_ line inside) is a
//! defect: those bytes are read again as plain mboxrd, so nothing is lost.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::Path;

use chrono::{DateTime, Utc};

/// One message read from an mbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxMessage {
    /// The From_ line without its line end, e.g. `From a@b.c Mon Nov 23 11:50:01 2026`.
    pub from_line: Vec<u8>,
    /// Byte offset of the From_ line in the stream, for `source` fields and errors.
    pub offset: u64,
    /// The message bytes with mboxrd quoting undone and the separator line removed.
    pub data: Vec<u8>,
    /// What was wrong with the live framing of this entry, if anything: the
    /// message was then read as plain mboxrd (see the module's doc).
    pub defect: Option<&'static str>,
}

/// The word a live-framed From_ line ends with, before the entry's length.
pub const LENGTH_TOKEN: &str = "mailpipe-length=";

/// A framed entry whose length did not match its bytes.
pub const DEFECT_LENGTH: &str =
    "mbox-framing: the From_ line's mailpipe-length does not match the entry; read as plain mboxrd";
/// Bytes after a framed entry that do not start with a From_ line.
pub const DEFECT_ORPHAN: &str =
    "mbox-framing: bytes after a framed entry without a From_ line of their own";

/// Reads messages one at a time from any `BufRead`.
pub struct MboxReader<R> {
    input: R,
    /// The From_ line that starts the next message, once it has been seen.
    next_from: Option<(Vec<u8>, u64)>,
    /// Bytes consumed so far.
    position: u64,
    started: bool,
    /// A framed entry just ended: the next line should be a From_ line,
    /// read only when the next message is asked for (never waited for).
    after_frame: bool,
    /// Bytes of a framed entry whose length proved wrong, read again
    /// line by line before `input`.
    pending: Vec<u8>,
    pending_at: usize,
    /// The separator taken off the last framed entry: given back to bytes
    /// that follow it without a From_ line, so that none is lost.
    frame_separator: Vec<u8>,
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(input: R) -> MboxReader<R> {
        MboxReader {
            input,
            next_from: None,
            position: 0,
            started: false,
            after_frame: false,
            pending: Vec::new(),
            pending_at: 0,
            frame_separator: Vec::new(),
        }
    }

    /// One line (through its LF) from the bytes put back, else from the input.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if self.pending_at < self.pending.len() {
            let rest = &self.pending[self.pending_at..];
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            buf.extend_from_slice(&rest[..end]);
            self.pending_at += end;
            if self.pending_at == self.pending.len() {
                self.pending.clear();
                self.pending_at = 0;
            }
            // A put-back line cut short (the length ended mid-line) goes on
            // in the input.
            if !buf.ends_with(b"\n") {
                return Ok(end + self.input.read_until(b'\n', buf)?);
            }
            return Ok(end);
        }
        self.input.read_until(b'\n', buf)
    }

    /// After a framed entry: the From_ line of the next one, or the start of
    /// bytes that have none (a length too short), returned as a message of
    /// their own with a defect.
    fn read_after_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.after_frame = false;
        let mut line = Vec::new();
        let n = self.read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.position;
        self.position += n as u64;
        if line.starts_with(b"From ") {
            self.next_from = Some((trim_line_end(&line).to_vec(), offset));
            return Ok(None);
        }
        self.next_from = Some((Vec::new(), offset));
        Ok(Some(line))
    }

    /// Reads the `length` bytes of a framed entry; `None` (the bytes put
    /// back for a plain read) when they do not end in the separator or hold
    /// an unquoted From_ line, which the writer never leaves.
    fn read_frame(&mut self, length: u64) -> io::Result<Option<Vec<u8>>> {
        let mut entry = Vec::new();
        // Put-back bytes first (a frame right after a wrong one), then input.
        let from_pending = (self.pending.len() - self.pending_at).min(length as usize);
        entry.extend_from_slice(&self.pending[self.pending_at..self.pending_at + from_pending]);
        self.pending_at += from_pending;
        if self.pending_at == self.pending.len() {
            self.pending.clear();
            self.pending_at = 0;
        }
        (&mut self.input)
            .take(length - from_pending as u64)
            .read_to_end(&mut entry)?;
        let ends = entry == b"\n"
            || entry == b"\r\n"
            || entry.ends_with(b"\n\n")
            || entry.ends_with(b"\n\r\n");
        let whole = entry.len() as u64 == length
            && ends
            && !entry
                .split_inclusive(|&b| b == b'\n')
                .any(|line| line.starts_with(b"From "));
        if whole {
            self.position += length;
            return Ok(Some(entry));
        }
        // Back in front of what is left, for the plain reader.
        let mut rest = entry;
        rest.extend_from_slice(&self.pending[self.pending_at..]);
        self.pending = rest;
        self.pending_at = 0;
        Ok(None)
    }

    /// The next message, `Ok(None)` at the end. Input that does not start with a
    /// From_ line is an `InvalidData` error (it is not an mbox).
    pub fn next_message(&mut self) -> io::Result<Option<MboxMessage>> {
        if !self.started {
            self.started = true;
            let mut first = Vec::new();
            let n = self.input.read_until(b'\n', &mut first)?;
            if n == 0 {
                return Ok(None);
            }
            if !first.starts_with(b"From ") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not an mbox: the first line does not start with \"From \"",
                ));
            }
            self.position = n as u64;
            self.next_from = Some((trim_line_end(&first).to_vec(), 0));
        }
        let mut data = Vec::new();
        let mut defect = None;
        // Whether the line before the one being read was empty, i.e. whether a
        // `From ` line here is preceded by the blank separator.
        let mut previous_blank = true;
        if self.after_frame {
            if let Some(mut first) = self.read_after_frame()? {
                previous_blank = trim_line_end(&first).is_empty();
                if first.first() == Some(&b'>') && is_quoted_from(&first) {
                    first.remove(0);
                }
                data = std::mem::take(&mut self.frame_separator);
                data.extend_from_slice(&first);
                defect = Some(DEFECT_ORPHAN);
            }
        }
        let Some((mut from_line, offset)) = self.next_from.take() else {
            return Ok(None);
        };
        if let Some((plain, length)) = framed_length(&from_line) {
            let plain = plain.len();
            match self.read_frame(length)? {
                Some(mut entry) => {
                    from_line.truncate(plain);
                    unquote(&mut entry);
                    let whole = entry.len();
                    strip_separator(&mut entry);
                    self.frame_separator = b"\r\n"[2 - (whole - entry.len())..].to_vec();
                    self.after_frame = true;
                    return Ok(Some(MboxMessage {
                        from_line,
                        offset,
                        data: entry,
                        defect: None,
                    }));
                }
                None => {
                    from_line.truncate(plain);
                    defect = Some(DEFECT_LENGTH);
                }
            }
        }
        loop {
            let line_start = data.len();
            let n = self.read_line(&mut data)?;
            if n == 0 {
                break;
            }
            let line_offset = self.position;
            self.position += n as u64;
            let line = &data[line_start..];
            if line.starts_with(b"From ") && (previous_blank || looks_like_from_line(line)) {
                self.next_from = Some((trim_line_end(line).to_vec(), line_offset));
                data.truncate(line_start);
                break;
            }
            previous_blank = trim_line_end(line).is_empty();
            if line.first() == Some(&b'>') && is_quoted_from(line) {
                data.remove(line_start);
            }
        }
        strip_separator(&mut data);
        Ok(Some(MboxMessage {
            from_line,
            offset,
            data,
            defect,
        }))
    }
}

/// The From_ line without a trailing ` mailpipe-length=N`, and N, if it has one.
pub fn framed_length(from_line: &[u8]) -> Option<(&[u8], u64)> {
    let space = from_line.iter().rposition(|&b| b == b' ')?;
    let digits = from_line[space + 1..].strip_prefix(LENGTH_TOKEN.as_bytes())?;
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((&from_line[..space], length))
}

/// Undoes mboxrd quoting on every line of an entry.
fn unquote(entry: &mut Vec<u8>) {
    if !entry.windows(5).any(|w| w == b"From ") {
        return;
    }
    let mut out = Vec::with_capacity(entry.len());
    unquote_into(entry, &mut out);
    *entry = out;
}

/// Appends `entry` to `out` with one `>` off each quoted From_ line.
pub(crate) fn unquote_into(entry: &[u8], out: &mut Vec<u8>) {
    for line in entry.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'>') && is_quoted_from(line) {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = io::Result<MboxMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_message().transpose()
    }
}

pub(crate) fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `>From `, `>>From `, ...: a line the writer quoted.
fn is_quoted_from(line: &[u8]) -> bool {
    let unquoted = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
    line[unquoted..].starts_with(b"From ")
}

/// A From_ line has a sender and an asctime date: `From sender Www Mmm dd hh:mm:ss yyyy`.
/// Checked where no blank line precedes, so that body text starting with
/// "From " in an mboxo file does not split a message.
pub(crate) fn looks_like_from_line(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(trim_line_end(line));
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 6 {
        return false;
    }
    let has_time = words.iter().any(|w| {
        let b = w.as_bytes();
        b.len() >= 5 && b[2] == b':' && b[..2].iter().all(u8::is_ascii_digit)
    });
    let has_year = words
        .iter()
        .any(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()));
    has_time && has_year
}

/// Removes the one blank line the writer put between messages.
pub(crate) fn strip_separator(data: &mut Vec<u8>) {
    if data.ends_with(b"\r\n\r\n") {
        data.truncate(data.len() - 2);
    } else if data.ends_with(b"\n\n") {
        data.truncate(data.len() - 1);
    } else if data == b"\n" || data == b"\r\n" {
        data.clear();
    }
}

/// The From_ line for a message: `From sender Mon Nov 23 11:50:01 2026`
/// (asctime, UTC). A sender that is empty or has spaces or control characters
/// becomes `MAILER-DAEMON`, as in mboxes written by MTAs.
pub fn from_line(sender: &str, time: DateTime<Utc>) -> String {
    let usable = !sender.is_empty()
        && sender
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control());
    let sender = if usable { sender } else { "MAILER-DAEMON" };
    format!("From {sender} {}", time.format("%a %b %e %H:%M:%S %Y"))
}

/// Writes mboxrd. Each message is quoted into one buffer and handed to the
/// output in a single `write_all`, so that an error leaves no half-quoted
/// message behind in the writer's own buffering.
pub struct MboxWriter<W: Write> {
    output: W,
    entry: Vec<u8>,
    /// Live framing: each From_ line carries the entry's length.
    framed: bool,
}

impl<W: Write> MboxWriter<W> {
    pub fn new(output: W) -> MboxWriter<W> {
        MboxWriter {
            output,
            entry: Vec::new(),
            framed: false,
        }
    }

    /// From now on, write each From_ line with ` mailpipe-length=N` (the
    /// live framing of the module's doc), so a reader on a pipe knows where
    /// the message ends without waiting for the next one.
    pub fn set_framed(&mut self, framed: bool) {
        self.framed = framed;
    }

    /// Appends one message. Its line ends are kept as they are (CRLF stays
    /// CRLF); a message that does not end in a line end gets one, in the style
    /// of its first line, and then the blank separator line follows, in the
    /// style of its last line end.
    pub fn write_message(
        &mut self,
        sender: &str,
        time: DateTime<Utc>,
        message: &[u8],
    ) -> io::Result<()> {
        self.entry.clear();
        if self.framed {
            encode_framed_entry(&mut self.entry, sender, time, message);
        } else {
            encode_entry(&mut self.entry, sender, time, message);
        }
        self.output.write_all(&self.entry)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.output
    }

    pub fn into_inner(self) -> W {
        self.output
    }
}

/// One mbox entry (From_ line, quoted message, separator) appended to `entry`.
pub fn encode_entry(entry: &mut Vec<u8>, sender: &str, time: DateTime<Utc>, message: &[u8]) {
    let eol = line_end(message);
    entry.reserve(message.len() + 128);
    entry.extend_from_slice(from_line(sender, time).as_bytes());
    entry.extend_from_slice(eol);
    encode_body(entry, message);
}

/// The same entry with ` mailpipe-length=N` at the end of its From_ line:
/// N bytes of quoted message and separator follow the From_ line's line end.
pub fn encode_framed_entry(entry: &mut Vec<u8>, sender: &str, time: DateTime<Utc>, message: &[u8]) {
    let mut body = Vec::with_capacity(message.len() + 16);
    encode_body(&mut body, message);
    entry.reserve(body.len() + 160);
    entry.extend_from_slice(from_line(sender, time).as_bytes());
    entry.extend_from_slice(format!(" {LENGTH_TOKEN}{}", body.len()).as_bytes());
    entry.extend_from_slice(line_end(message));
    entry.extend_from_slice(&body);
}

/// The line end of a message's first line, used for the lines we add.
fn line_end(message: &[u8]) -> &'static [u8] {
    let crlf = message
        .iter()
        .position(|&b| b == b'\n')
        .is_some_and(|i| i > 0 && message[i - 1] == b'\r');
    if crlf {
        b"\r\n"
    } else {
        b"\n"
    }
}

/// The quoted message and its separator, appended to `entry`.
fn encode_body(entry: &mut Vec<u8>, message: &[u8]) {
    let eol = line_end(message);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if (line.first() == Some(&b'>') || line.first() == Some(&b'F')) && is_quoted_from(line) {
            entry.push(b'>');
        }
        entry.extend_from_slice(line);
    }
    if !message.is_empty() && !message.ends_with(b"\n") {
        entry.extend_from_slice(eol);
    }
    // The separator follows the message's last line end, not its first: the
    // reader removes `\r\n` only after `\r\n`, so a CRLF message ending in a
    // bare LF would otherwise read back with a stray `\r\n` (found by fuzzing).
    let separator: &[u8] = if entry.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    entry.extend_from_slice(separator);
}

/// Appends one message to an mbox file (a dead-letter file, an archive) whole
/// or not at all: the file is locked against other mailpipe writers, a failed
/// write is cut back to the old length, and the data is synced before return.
/// A file that an earlier, killed append left ending mid-line (or without the
/// blank separator) is fenced off first, so that the new From_ line starts a
/// line after a blank line and every mbox reader sees the new message.
pub fn append_to_file(
    path: &Path,
    sender: &str,
    time: DateTime<Utc>,
    message: &[u8],
) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    lock_exclusive(&file)?;
    let old_len = file.seek(SeekFrom::End(0))?;
    let mut entry = Vec::new();
    entry.extend_from_slice(fence(&mut file, old_len)?);
    encode_entry(&mut entry, sender, time, message);
    let written = file.write_all(&entry).and_then(|()| file.sync_data());
    if let Err(e) = written {
        let _ = file.set_len(old_len);
        return Err(e);
    }
    Ok(())
}

/// What goes before a new entry so that its From_ line follows a blank line:
/// nothing after a blank line (or in an empty file), a blank line after a
/// complete line, and a line end plus a blank line after a cut-off line.
fn fence(file: &mut File, len: u64) -> io::Result<&'static [u8]> {
    if len == 0 {
        return Ok(b"");
    }
    let tail_len = len.min(3);
    let mut tail = [0u8; 3];
    let tail = &mut tail[..tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len))?;
    file.read_exact(tail)?;
    file.seek(SeekFrom::End(0))?;
    let tail: &[u8] = tail;
    Ok(
        if tail.ends_with(b"\n\n") || tail.ends_with(b"\n\r\n") || tail == b"\n" {
            b""
        } else if tail.ends_with(b"\n") {
            b"\n"
        } else {
            b"\n\n"
        },
    )
}

fn lock_exclusive(file: &File) -> io::Result<()> {
    file.lock()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 3, 9, 5, 7)
            .single()
            .expect("valid date")
    }

    fn read_all(bytes: &[u8]) -> Vec<MboxMessage> {
        MboxReader::new(bytes)
            .collect::<io::Result<Vec<_>>>()
            .expect("reads")
    }

    #[test]
    fn from_line_is_asctime_in_utc() {
        assert_eq!(
            from_line("a@b.c", t0()),
            "From a@b.c Tue Nov  3 09:05:07 2026"
        );
        assert_eq!(
            from_line("", t0()),
            "From MAILER-DAEMON Tue Nov  3 09:05:07 2026"
        );
        assert_eq!(
            from_line("a b@c", t0()),
            "From MAILER-DAEMON Tue Nov  3 09:05:07 2026"
        );
    }

    #[test]
    fn writer_quotes_and_reader_unquotes() {
        let msg = b"Subject: x\n\nFrom here\n>From there\n>>From far\nFromage\n".to_vec();
        let mut w = MboxWriter::new(Vec::new());
        w.write_message("a@b.c", t0(), &msg).expect("write");
        w.write_message("d@e.f", t0(), b"Subject: y\n\nbody\n")
            .expect("write");
        let out = w.into_inner();
        let text = String::from_utf8(out.clone()).expect("utf8");
        assert!(text.contains("\n>From here\n>>From there\n>>>From far\nFromage\n\nFrom d@e.f"));
        let back = read_all(&out);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].data, msg);
        assert_eq!(back[0].offset, 0);
        assert_eq!(back[1].data, b"Subject: y\n\nbody\n");
        assert_eq!(back[1].from_line, b"From d@e.f Tue Nov  3 09:05:07 2026");
        assert_eq!(&out[back[1].offset as usize..][..7], b"From d@");
    }

    #[test]
    fn crlf_messages_round_trip_byte_for_byte() {
        let msg = b"Subject: x\r\n\r\nFrom me\r\n\r\nlast\r\n".to_vec();
        let mut w = MboxWriter::new(Vec::new());
        w.write_message("a@b.c", t0(), &msg).expect("write");
        w.write_message("a@b.c", t0(), &msg).expect("write");
        let out = w.into_inner();
        let back = read_all(&out);
        assert_eq!(back.len(), 2);
        assert!(back.iter().all(|m| m.data == msg));
    }

    #[test]
    fn crlf_message_ending_in_bare_lf_round_trips() {
        // Found by fuzz/fuzz_targets/mbox_roundtrip.rs: the separator was CRLF
        // (the first line's style) and the reader left it in the message.
        let msg = b"Subject: x\r\nX: y\n\nbody\n\n".to_vec();
        let mut w = MboxWriter::new(Vec::new());
        w.write_message("a@b.c", t0(), &msg).expect("write");
        w.write_message("a@b.c", t0(), b"Subject: z\r\n\r\nlast\r\n")
            .expect("write");
        let back = read_all(&w.into_inner());
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].data, msg);
        assert_eq!(back[1].data, b"Subject: z\r\n\r\nlast\r\n");
    }

    #[test]
    fn message_without_final_newline_gets_one() {
        let mut w = MboxWriter::new(Vec::new());
        w.write_message("a@b.c", t0(), b"Subject: x\n\nno newline")
            .expect("write");
        let back = read_all(&w.into_inner());
        assert_eq!(back[0].data, b"Subject: x\n\nno newline\n");
    }

    #[test]
    fn mboxo_body_from_without_blank_line_does_not_split() {
        let input = b"From a@b Tue Nov  3 09:05:07 2026\nSubject: x\n\nline\nFrom the start we knew\n\nFrom b@c Tue Nov  3 09:05:07 2026\nSubject: y\n\nz\n";
        let back = read_all(input);
        assert_eq!(back.len(), 2);
        assert_eq!(
            back[0].data,
            b"Subject: x\n\nline\nFrom the start we knew\n"
        );
    }

    #[test]
    fn from_line_without_blank_separator_still_splits_when_it_looks_real() {
        let input = b"From a@b Tue Nov  3 09:05:07 2026\nSubject: x\n\nbody\nFrom b@c Tue Nov  3 09:05:07 2026\nSubject: y\n\nz\n";
        let back = read_all(input);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].data, b"Subject: x\n\nbody\n");
    }

    #[test]
    fn empty_input_is_no_messages_and_garbage_is_an_error() {
        assert!(read_all(b"").is_empty());
        let err = MboxReader::new(&b"\x00\xff garbage\n"[..])
            .next_message()
            .expect_err("not an mbox");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    /// A reader that hands out `chunk` bytes per read, then fails: reading
    /// past what a test allows is an error, as a stalled pipe would block.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
        /// End of input after the bytes, else an error.
        eof: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() && self.eof {
                return Ok(0);
            }
            if self.data.is_empty() {
                return Err(io::Error::other("read past the bytes available"));
            }
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut w = MboxWriter::new(Vec::new());
        w.set_framed(true);
        for m in messages {
            w.write_message("a@b.c", t0(), m).expect("write");
        }
        w.into_inner()
    }

    #[test]
    fn framed_entries_round_trip_and_hide_the_token() {
        let one = b"Subject: 1\r\n\r\nFrom here\r\n>From there\r\n\r\n".to_vec();
        let two = b"Subject: 2\n\nno newline".to_vec();
        let out = framed(&[&one, &two, b""]);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("From a@b.c Tue Nov  3 09:05:07 2026 mailpipe-length="));
        let back = read_all(&out);
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].data, one);
        assert_eq!(back[1].data, b"Subject: 2\n\nno newline\n");
        assert_eq!(back[2].data, b"");
        for m in &back {
            assert_eq!(m.from_line, b"From a@b.c Tue Nov  3 09:05:07 2026");
            assert_eq!(m.defect, None);
        }
        assert_eq!(&out[back[1].offset as usize..][..7], b"From a@");
    }

    #[test]
    fn a_framed_message_is_returned_before_the_next_one_starts() {
        let out = framed(&[b"Subject: 1\n\nbody\n"]);
        // The input fails if read past the entry: the reader must not wait
        // for the next From_ line (on a pipe it would block).
        let mut reader = MboxReader::new(io::BufReader::new(Trickle {
            data: &out,
            chunk: 7,
            eof: false,
        }));
        let m = reader.next_message().expect("read").expect("a message");
        assert_eq!(m.data, b"Subject: 1\n\nbody\n");
        assert!(
            reader.next_message().is_err(),
            "the next read is a new read"
        );
    }

    #[test]
    fn a_stalled_pipe_never_splits_a_message() {
        let one = b"Subject: 1\n\nfirst\n\nFrom the edge\nlast\n".to_vec();
        let two = b"Subject: 2\n\nsecond\n".to_vec();
        let mut plain = MboxWriter::new(Vec::new());
        plain.write_message("a@b.c", t0(), &one).expect("write");
        plain.write_message("a@b.c", t0(), &two).expect("write");
        for bytes in [framed(&[&one, &two]), plain.into_inner()] {
            // One byte per read: every line is cut, every boundary stalls.
            let back: Vec<MboxMessage> = MboxReader::new(io::BufReader::with_capacity(
                1,
                Trickle {
                    data: &bytes,
                    chunk: 1,
                    eof: true,
                },
            ))
            .take(2)
            .collect::<io::Result<_>>()
            .expect("reads");
            assert_eq!(back[0].data, one);
            assert_eq!(back[1].data, two);
        }
    }

    #[test]
    fn a_wrong_length_is_a_defect_and_loses_nothing() {
        let one: &[u8] = b"Subject: 1\n\nhead\n\nbody\n";
        let two: &[u8] = b"Subject: 2\n\nsecond\n";
        let good = framed(&[one, two]);
        let text = String::from_utf8(good.clone()).expect("utf8");
        let right = format!("{LENGTH_TOKEN}{}", one.len() + 1);
        for wrong in [
            format!("{LENGTH_TOKEN}{}", one.len() + 30), // into the next entry
            format!("{LENGTH_TOKEN}{}", 12),             // ends after "Subject: 1\n\n"
            format!("{LENGTH_TOKEN}{}", 5),              // mid-line
            format!("{LENGTH_TOKEN}{}", 99999),          // past the end
        ] {
            let bad = text.replacen(&right, &wrong, 1);
            let back = read_all(bad.as_bytes());
            let all: Vec<u8> = back.iter().flat_map(|m| m.data.clone()).collect();
            let expected: Vec<u8> = [one, two].concat();
            assert_eq!(all, expected, "{wrong}: every byte is kept, in order");
            assert!(back.iter().any(|m| m.defect.is_some()), "{wrong}: a defect");
            assert_eq!(back.last().map(|m| m.data.as_slice()), Some(two), "{wrong}");
        }
        assert_eq!(
            framed_length(b"From a Tue Nov  3 09:05:07 2026 mailpipe-length=x"),
            None
        );
    }

    #[test]
    fn append_to_file_appends_whole_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dead.letter");
        append_to_file(&path, "a@b.c", t0(), b"Subject: 1\n\nFrom x\n").expect("append");
        append_to_file(&path, "a@b.c", t0(), b"Subject: 2\n\nbody\n").expect("append");
        let bytes = std::fs::read(&path).expect("read");
        let back = read_all(&bytes);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].data, b"Subject: 1\n\nFrom x\n");
        assert_eq!(back[1].data, b"Subject: 2\n\nbody\n");
    }

    #[test]
    fn append_to_file_fences_off_a_cut_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (old, fence) in [
            (
                &b"From a Tue Nov  3 09:05:07 2026\nSubject: 1\n\nhalf a li"[..],
                &b"\n\n"[..],
            ),
            (
                b"From a Tue Nov  3 09:05:07 2026\nSubject: 1\n\nwhole line\n",
                b"\n",
            ),
            (
                b"From a Tue Nov  3 09:05:07 2026\nSubject: 1\n\nbody\n\n",
                b"",
            ),
            (
                b"From a Tue Nov  3 09:05:07 2026\r\nSubject: 1\r\n\r\nbody\r\n\r\n",
                b"",
            ),
        ] {
            let path = dir.path().join("dead.letter");
            std::fs::write(&path, old).expect("write");
            append_to_file(&path, "a@b.c", t0(), b"Subject: 2\n\nbody\n").expect("append");
            let bytes = std::fs::read(&path).expect("read");
            let mut expected = old.to_vec();
            expected.extend_from_slice(fence);
            expected
                .extend_from_slice(b"From a@b.c Tue Nov  3 09:05:07 2026\nSubject: 2\n\nbody\n\n");
            assert_eq!(bytes, expected);
            let back = read_all(&bytes);
            assert_eq!(back.len(), 2);
            assert_eq!(back[1].data, b"Subject: 2\n\nbody\n");
        }
    }
}
