//! IMAP's transcript rules: `tag LOGIN <redacted>`; `tag AUTHENTICATE MECH
//! <redacted>` and the client's lines `<redacted>` until the tagged reply.
//! Literals `{N}` in either direction are shown as `{N bytes}`, their bytes
//! left out.

use super::{Dir, Out, Rules};
use crate::wire::announced_literal;

#[derive(Default)]
pub(super) struct Imap {
    /// The tag of the AUTHENTICATE command in progress.
    auth_tag: Option<Vec<u8>>,
}

impl Rules for Imap {
    fn client(&mut self, out: &mut Out, line: &[u8], _len: u64, cut: Option<u64>) {
        if self.auth_tag.is_some() {
            return out.redacted(Dir::Client);
        }
        let mut words = line.splitn(3, |&b| b == b' ');
        let tag = words.next().unwrap_or_default();
        let command = words.next().unwrap_or_default();
        if command.eq_ignore_ascii_case(b"LOGIN") {
            return out.redacted_after(line, 2);
        }
        if command.eq_ignore_ascii_case(b"AUTHENTICATE") {
            self.auth_tag = Some(tag.to_vec());
            return out.redacted_after(line, 3);
        }
        out.emit(Dir::Client, line, cut);
    }

    fn server(&mut self, out: &mut Out, line: &[u8], _len: u64, cut: Option<u64>) {
        if let Some(tag) = &self.auth_tag {
            let tagged = line.starts_with(tag) && line.get(tag.len()) == Some(&b' ');
            if tagged || !(line.starts_with(b"+") || line.starts_with(b"*")) {
                self.auth_tag = None;
            }
        }
        out.emit(Dir::Server, line, cut);
    }

    /// The wire layer's parser: a size past 64 bits is no literal here.
    fn literal(&self, line: &[u8]) -> Option<(usize, u64)> {
        let literal = announced_literal(line).ok().flatten()?;
        Some((literal.open, literal.size))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_clean, plain_b64, play, transcript, PASS, USER};
    use crate::transcript::Dialect;

    #[test]
    fn imap_login_is_redacted() {
        let (mut t, sink) = transcript(Dialect::Imap);
        let quoted = PASS.replace('"', "\\\"");
        play(
            &mut t,
            &[
                ("S", "* OK [CAPABILITY IMAP4rev1] Dovecot ready."),
                ("C", &format!("a1 LOGIN \"{USER}\" \"{quoted}\"")),
                ("S", "a1 OK Logged in"),
                ("C", "a2 SELECT INBOX"),
            ],
        );
        let out = sink.text();
        assert!(out.contains("C: a1 LOGIN <redacted>\n"), "{out}");
        assert!(out.contains("C: a2 SELECT INBOX\n"), "{out}");
        assert!(!out.contains(&quoted));
        assert_clean(&out, PASS, USER);
    }

    #[test]
    fn imap_login_with_literals_is_redacted() {
        let (mut t, sink) = transcript(Dialect::Imap);
        t.client_bytes(format!("a1 LOGIN {{{}}}\r\n", USER.len()).as_bytes());
        t.server_bytes(b"+ Ready for literal data\r\n");
        t.client_bytes(format!("{USER} {{{}+}}\r\n{PASS}\r\n", PASS.len()).as_bytes());
        t.server_bytes(b"a1 OK Logged in\r\n");
        let out = sink.text();
        assert!(out.contains("C: a1 LOGIN <redacted>\n"), "{out}");
        assert_clean(&out, PASS, USER);
    }

    #[test]
    fn imap_authenticate_and_continuations() {
        let (mut t, sink) = transcript(Dialect::Imap);
        play(
            &mut t,
            &[
                ("C", "a1 AUTHENTICATE PLAIN"),
                ("S", "+ "),
                ("C", &plain_b64()),
                ("S", "a1 OK Logged in"),
                ("C", "a2 EXAMINE INBOX"),
            ],
        );
        let out = sink.text();
        assert_eq!(
            out,
            "C: a1 AUTHENTICATE PLAIN\nS: + \nC: <redacted>\nS: a1 OK Logged in\nC: a2 EXAMINE INBOX\n"
        );
        let (mut t, sink) = transcript(Dialect::Imap);
        play(
            &mut t,
            &[("C", &format!("x AUTHENTICATE PLAIN {}", plain_b64()))],
        );
        assert_eq!(sink.text(), "C: x AUTHENTICATE PLAIN <redacted>\n");
    }

    #[test]
    fn oauth_initial_responses_are_redacted_even_when_echoed() {
        use crate::oauth::OAuthMechanism;
        use crate::Secret;
        for mechanism in [OAuthMechanism::Xoauth2, OAuthMechanism::Oauthbearer] {
            let (mut t, sink) = transcript(Dialect::Imap);
            let token = Secret::new("ya29.tok-SECRET");
            t.add_credentials(USER, &token);
            let ir = mechanism.encoded(USER, &token);
            let name = mechanism.name();
            play(
                &mut t,
                &[
                    ("C", &format!("a1 AUTHENTICATE {name} {}", ir.as_str())),
                    ("S", &format!("a1 NO you sent {}", ir.as_str())),
                ],
            );
            let out = sink.text();
            assert!(
                out.contains(&format!("C: a1 AUTHENTICATE {name} <redacted>\n")),
                "{out}"
            );
            let shown = ir.trim_end_matches('=');
            assert!(
                !out.contains(shown) && !out.contains("ya29.tok-SECRET"),
                "{out}"
            );
        }
    }

    #[test]
    fn imap_literals_are_elided() {
        let (mut t, sink) = transcript(Dialect::Imap);
        let message = "From: a@b\r\nSubject: x\r\n\r\nthe body {5}\r\n";
        let wire = format!(
            "* 1 FETCH (UID 7 BODY[] {{{}}}\r\n{message})\r\na3 OK Fetch completed.\r\n",
            message.len()
        );
        // Byte by byte: reads split lines and literals anywhere.
        for b in wire.as_bytes() {
            t.server_bytes(std::slice::from_ref(b));
        }
        let out = sink.text();
        assert_eq!(
            out,
            format!(
                "S: * 1 FETCH (UID 7 BODY[] {{{} bytes}})\nS: a3 OK Fetch completed.\n",
                message.len()
            )
        );
    }
}
