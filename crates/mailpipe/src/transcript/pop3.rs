//! POP3's transcript rules: `PASS <redacted>`, `APOP name <redacted>`, `AUTH
//! MECH <redacted>` and its continuation lines; the body of a RETR or TOP
//! reply becomes `S: <N bytes>` and `S: .`. Clients may pipeline, so replies
//! are matched to commands in order.

use std::collections::VecDeque;

use super::{Dir, Out, Rules};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reply {
    Single,
    /// Multi-line, shown line by line (CAPA, LIST, UIDL).
    Lines,
    /// Multi-line message text, elided (RETR, TOP).
    Body,
}

#[derive(Default)]
pub(super) struct Pop3 {
    /// The client is sending credentials (SASL continuation lines).
    auth: bool,
    /// Replies expected, in command order.
    pending: VecDeque<Reply>,
    /// Inside a multi-line reply of this kind.
    multi: Option<Reply>,
    /// Bytes of the elided body so far.
    body_bytes: u64,
}

impl Rules for Pop3 {
    fn client(&mut self, out: &mut Out, line: &[u8], _len: u64, cut: Option<u64>) {
        if self.auth {
            return out.redacted(Dir::Client);
        }
        let words: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        let command = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let reply = match (command.as_slice(), words.len()) {
            (b"RETR" | b"TOP", _) => Reply::Body,
            (b"CAPA", _) | (b"LIST" | b"UIDL" | b"AUTH", 1) => Reply::Lines,
            _ => Reply::Single,
        };
        self.pending.push_back(reply);
        match command.as_slice() {
            b"PASS" => out.redacted_after(line, 1),
            b"APOP" => out.redacted_after(line, 2),
            b"AUTH" if words.len() > 1 => {
                self.auth = true;
                out.redacted_after(line, 2)
            }
            _ => out.emit(Dir::Client, line, cut),
        }
    }

    fn server(&mut self, out: &mut Out, line: &[u8], len: u64, cut: Option<u64>) {
        match self.multi {
            Some(Reply::Body) if line == b"." => {
                self.multi = None;
                return out.elided(Dir::Server, self.body_bytes, "");
            }
            Some(Reply::Body) => {
                self.body_bytes += len;
                return;
            }
            Some(_) => {
                if line == b"." {
                    self.multi = None;
                }
                return out.emit(Dir::Server, line, cut);
            }
            None => {}
        }
        let continuation = line == b"+" || line.starts_with(b"+ ");
        if self.auth && continuation {
            return out.emit(Dir::Server, line, cut);
        }
        self.auth = false;
        if line.starts_with(b"+OK") || line.starts_with(b"-ERR") {
            let reply = self.pending.pop_front().unwrap_or(Reply::Single);
            if line.starts_with(b"+OK") && reply != Reply::Single {
                self.multi = Some(reply);
                self.body_bytes = 0;
            }
        }
        out.emit(Dir::Server, line, cut);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_clean, plain_b64, play, transcript, PASS, USER};
    use crate::transcript::Dialect;

    #[test]
    fn pop3_pass_apop_and_auth() {
        let (mut t, sink) = transcript(Dialect::Pop3);
        play(
            &mut t,
            &[
                ("S", "+OK Dovecot ready."),
                ("C", &format!("USER {USER}")),
                ("S", "+OK"),
                ("C", &format!("PASS {PASS}")),
                ("S", "-ERR [AUTH] Authentication failed."),
                (
                    "C",
                    &format!("APOP {USER} c4c9334bac560ecc979e58001b3e22fb"),
                ),
                ("S", "-ERR no"),
                ("C", "AUTH PLAIN"),
                ("S", "+ "),
                ("C", &plain_b64()),
                ("S", "+OK Logged in."),
                ("C", "STAT"),
            ],
        );
        let out = sink.text();
        assert!(out.contains("C: PASS <redacted>\n"), "{out}");
        assert!(
            out.contains(&format!("C: APOP {USER} <redacted>\n")),
            "{out}"
        );
        assert!(!out.contains("c4c9334bac"), "{out}");
        assert!(
            out.contains("C: AUTH PLAIN\nS: + \nC: <redacted>\nS: +OK Logged in.\n"),
            "{out}"
        );
        assert!(out.ends_with("C: STAT\n"), "{out}");
        assert_clean(&out, PASS, USER);
    }

    #[test]
    fn pop3_bodies_are_elided_and_lists_shown() {
        let (mut t, sink) = transcript(Dialect::Pop3);
        // Pipelined: three commands before any reply.
        t.client_bytes(b"LIST\r\nRETR 1\r\nRETR 9\r\nTOP 2 0\r\n");
        let body = "Subject: private\r\n\r\n..dot-stuffed\r\n";
        let wire = format!(
            "+OK 2 messages\r\n1 120\r\n2 300\r\n.\r\n+OK 120 octets\r\n{body}.\r\n\
             -ERR no such message\r\n+OK\r\nSubject: top\r\n\r\n.\r\n"
        );
        t.server_bytes(wire.as_bytes());
        let out = sink.text();
        let expected = format!(
            "C: LIST\nC: RETR 1\nC: RETR 9\nC: TOP 2 0\nS: +OK 2 messages\nS: 1 120\nS: 2 300\nS: .\n\
             S: +OK 120 octets\nS: <{} bytes>\nS: .\nS: -ERR no such message\nS: +OK\n\
             S: <{} bytes>\nS: .\n",
            body.len(),
            "Subject: top\r\n\r\n".len()
        );
        assert_eq!(out, expected);
    }
}
