//! SMTP's transcript rules: `AUTH MECH <redacted>`; the client's lines after
//! AUTH are `<redacted>` until the server's next reply that is not `334`.
//! After `354` the message becomes one line `C: <N bytes of message>`, then
//! `C: .`; after `BDAT N [LAST]` (RFC 3030) its N bytes are the line
//! `C: <N bytes of message>`.

use super::{Dir, Out, Rules};

#[derive(Default)]
pub(super) struct Smtp {
    /// The client is sending credentials (SASL continuation lines).
    auth: bool,
    /// Bytes of the message after 354, while it is being sent.
    data: Option<u64>,
}

impl Rules for Smtp {
    fn client(&mut self, out: &mut Out, line: &[u8], len: u64, cut: Option<u64>) {
        if let Some(bytes) = self.data {
            if line == b"." {
                self.data = None;
                out.elided(Dir::Client, bytes, " of message");
            } else {
                self.data = Some(bytes + len);
            }
            return;
        }
        if self.auth {
            return out.redacted(Dir::Client);
        }
        let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
        if verb.eq_ignore_ascii_case(b"AUTH") {
            self.auth = true;
            return out.redacted_after(line, 2);
        }
        out.emit(Dir::Client, line, cut);
    }

    fn chunk(&self, line: &[u8]) -> Option<(u64, &'static str)> {
        if self.data.is_some() || self.auth {
            return None;
        }
        let text = std::str::from_utf8(line).ok()?;
        let mut words = text.split(' ');
        let verb = words.next()?;
        let size = words.next()?.parse().ok()?;
        let rest: Vec<&str> = words.collect();
        let ok = verb.eq_ignore_ascii_case("BDAT")
            && (rest.is_empty() || rest.len() == 1 && rest[0].eq_ignore_ascii_case("LAST"));
        ok.then_some((size, " of message"))
    }

    fn server(&mut self, out: &mut Out, line: &[u8], _len: u64, cut: Option<u64>) {
        if line.starts_with(b"354") {
            self.data = Some(0);
        } else if self.auth && !line.starts_with(b"334") {
            self.auth = false;
        }
        out.emit(Dir::Server, line, cut);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_clean, plain_b64, play, transcript, B64, PASS, USER};
    use crate::transcript::Dialect;
    use base64::Engine;

    #[test]
    fn smtp_auth_plain_initial_response() {
        let (mut t, sink) = transcript(Dialect::Smtp);
        let auth = format!("AUTH PLAIN {}", plain_b64());
        play(
            &mut t,
            &[
                ("S", "220 mail.example.org ESMTP"),
                ("C", "EHLO client"),
                ("S", "250-mail.example.org"),
                ("S", "250 AUTH PLAIN LOGIN"),
                ("C", &auth),
                ("S", "235 2.7.0 Authentication successful"),
                ("C", "MAIL FROM:<alice@example.org>"),
            ],
        );
        let out = sink.text();
        assert!(out.contains("C: AUTH PLAIN <redacted>\n"), "{out}");
        assert!(out.contains("C: MAIL FROM:<alice@example.org>\n"), "{out}");
        assert!(out.contains("S: 250 AUTH PLAIN LOGIN\n"), "{out}");
        assert_clean(&out, PASS, USER);
    }

    #[test]
    fn smtp_auth_login_continuations() {
        let (mut t, sink) = transcript(Dialect::Smtp);
        let user = B64.encode(USER);
        let pass = B64.encode(PASS);
        play(
            &mut t,
            &[
                ("C", "AUTH LOGIN"),
                ("S", "334 VXNlcm5hbWU6"),
                ("C", &user),
                ("S", "334 UGFzc3dvcmQ6"),
                ("C", &pass),
                ("S", "535 5.7.8 Authentication failed"),
                ("C", "QUIT"),
            ],
        );
        let out = sink.text();
        assert_eq!(
            out,
            "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: <redacted>\nS: 334 UGFzc3dvcmQ6\n\
             C: <redacted>\nS: 535 5.7.8 Authentication failed\nC: QUIT\n"
        );
    }

    #[test]
    fn smtp_xoauth2_is_redacted() {
        let (mut t, sink) = transcript(Dialect::Smtp);
        let token = "ya29.a0AfH6SMBx-token-value";
        let sasl = B64.encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01"));
        play(
            &mut t,
            &[
                ("C", &format!("AUTH XOAUTH2 {sasl}")),
                ("S", "334 eyJzdGF0dXMiOiI0MDAifQ=="),
                ("C", ""),
                ("S", "535 5.7.8 no"),
            ],
        );
        let out = sink.text();
        assert!(out.starts_with("C: AUTH XOAUTH2 <redacted>\n"), "{out}");
        assert_clean(&out, token, USER);
    }

    #[test]
    fn smtp_message_body_is_one_line() {
        let (mut t, sink) = transcript(Dialect::Smtp);
        play(
            &mut t,
            &[("C", "DATA"), ("S", "354 End data with <CR><LF>.<CR><LF>")],
        );
        let body = "Subject: hi\r\n\r\nsecret body text\r\n..leading dot\r\n";
        t.client_bytes(body.as_bytes());
        play(
            &mut t,
            &[("C", "."), ("S", "250 2.0.0 Ok: queued"), ("C", "QUIT")],
        );
        let out = sink.text();
        assert!(!out.contains("secret body text"), "{out}");
        assert!(
            out.contains(&format!(
                "C: <{} bytes of message>\nC: .\nS: 250",
                body.len()
            )),
            "{out}"
        );
        assert!(out.ends_with("C: QUIT\n"), "{out}");
    }

    #[test]
    fn smtp_bdat_chunks_are_one_line_each() {
        let (mut t, sink) = transcript(Dialect::Smtp);
        let first = "Subject: hi\r\n\r\nsecret\r\nAUTH PLAIN x\r\n.\r\n";
        let second = "no line end: BDAT 3 LAST";
        let mut wire = format!("MAIL FROM:<a@x>\r\nBDAT {}\r\n{first}", first.len());
        wire.push_str(&format!("BDAT {} LAST\r\n{second}QUIT\r\n", second.len()));
        // Split anywhere: the chunks are counted across writes.
        for piece in wire.as_bytes().chunks(7) {
            t.client_bytes(piece);
        }
        play(&mut t, &[("S", "250 2.0.0 Ok: queued as X")]);
        let out = sink.text();
        assert_eq!(
            out,
            format!(
                "C: MAIL FROM:<a@x>\nC: BDAT {}\nC: <{} bytes of message>\n\
                 C: BDAT {} LAST\nC: <{} bytes of message>\nC: QUIT\n\
                 S: 250 2.0.0 Ok: queued as X\n",
                first.len(),
                first.len(),
                second.len(),
                second.len()
            )
        );
        assert!(!out.contains("secret") && !out.contains("AUTH"), "{out}");
    }

    #[test]
    fn smtp_bdat_chunk_cut_short_says_how_much_went() {
        let (mut t, sink) = transcript(Dialect::Smtp);
        t.client_bytes(b"BDAT 10 LAST\r\nabcd");
        t.finish();
        assert_eq!(
            sink.text(),
            "C: BDAT 10 LAST\nC: <4 of 10 bytes of message, cut>\n"
        );
    }
}
