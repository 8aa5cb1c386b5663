//! pop3-dump's POP3 client against a server whose every byte is fuzz input.
//!
//! The first byte chooses the mode:
//! - even: a whole session as `pop3-dump` runs it (greeting, CAPA, STAT, LIST,
//!   UIDL, pipelined RETRs, QUIT), with the rest as what the server sends.
//!   Any reply may be an error; none may panic or hang.
//! - odd: a multi-line message body (`read_body`), checked against a plain
//!   model of RFC 1939's dot-stuffing: lines up to a line that is exactly
//!   `.` (CRLF or bare LF), one leading dot removed from every other line.
#![no_main]

use std::io::{self, Read, Write};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mailpipe::wire::{Deadline, Timed, WireReader};
use pop3_dump::protocol::Client;
use pop3_dump::response;

/// The server: reads come from the fuzz input, writes are dropped.
struct Server<'a> {
    replies: &'a [u8],
}

impl Read for Server<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.replies.read(buf)
    }
}

impl Timed for Server<'_> {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

impl Write for Server<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, replies)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        session(replies);
    } else {
        body(replies, usize::from(mode >> 1) + 1);
    }
});

fn session(replies: &[u8]) {
    let mut client = Client::new(Server { replies }, Duration::from_secs(10));
    if client.greeting().is_err() {
        return;
    }
    let Ok(_capabilities) = client.capa() else {
        return;
    };
    let Ok((count, _total)) = client.stat() else {
        return;
    };
    let Ok(listed) = client.list(count) else {
        return;
    };
    if client.uidl(count).is_err() {
        return;
    }
    // Pipelined as pop3-dump does: all RETRs sent, then the replies read.
    let wanted = &listed[..listed.len().min(4)];
    for message in wanted {
        client.send(&format!("RETR {}", message.number));
    }
    if client.flush().is_err() {
        return;
    }
    let mut body = Vec::new();
    for message in wanted {
        if client
            .read_message(&mut body, message.size, "RETR")
            .is_err()
        {
            return;
        }
    }
    let _ = client.quit();
}

fn body(replies: &[u8], buffer: usize) {
    // A small buffer, so that lines and the final dot cross buffer boundaries.
    let mut input = WireReader::with_capacity(replies, Duration::from_secs(60), buffer);
    let mut message = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(60));
    let got = response::read_body(&mut input, &mut message, u64::MAX, &deadline, "RETR");
    match (model(replies), got) {
        (Some(expected), Ok(())) => assert_eq!(message, expected),
        (None, Err(_)) => {}
        (expected, got) => panic!("model {expected:?}, read_body {got:?}"),
    }
}

/// The body RFC 1939 describes, or `None` when the final `.` never comes.
fn model(replies: &[u8]) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    for line in replies.split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") {
            return None;
        }
        match line.strip_prefix(b".") {
            Some(b"\r\n" | b"\n") => return Some(message),
            Some(unstuffed) => message.extend_from_slice(unstuffed),
            None => message.extend_from_slice(line),
        }
    }
    None
}
