//! Throttling and limits: the replies with which a provider stops a long
//! export for now (Gmail's `* BYE Session expired`, Yahoo's `NO [LIMIT]`,
//! RFC 5530's `[UNAVAILABLE]`, `[OVERQUOTA]` and `[INUSE]`) are temporary
//! failures (75), not broken protocol: what was complete is written and in
//! the state, and the next run resumes there. The one error line names the
//! server's words and says so.

use mailpipe::{Error, Exit};

/// RFC 5530 response codes that mean "not now" rather than "never".
const TEMPORARY_CODES: &[&str] = &["LIMIT", "UNAVAILABLE", "OVERQUOTA", "INUSE"];

/// What the error line ends with when `--state` lets the next run resume.
pub const RESUME: &str = "run again to resume";

/// The temporary RFC 5530 code a NO's text starts with (`[LIMIT] ...`), if any.
pub fn temporary_code(text: &str) -> Option<&'static str> {
    let inner = text.trim_start().strip_prefix('[')?;
    let end = inner.find([']', ' ']).unwrap_or(inner.len());
    let code = &inner[..end];
    TEMPORARY_CODES
        .iter()
        .copied()
        .find(|c| c.eq_ignore_ascii_case(code))
}

/// A tagged NO or BAD as the tool's error: 75 for a temporary code, else the
/// server broke the protocol (76), as before.
pub fn refused(url: &impl std::fmt::Display, status: &str, text: &str) -> Error {
    let exit = match temporary_code(text) {
        Some(_) if status.eq_ignore_ascii_case("NO") => Exit::TempFail,
        _ => Exit::Protocol,
    };
    Error::new(exit, format!("{url}: server said {status}: {text}"))
}

/// An untagged `* BYE text` in the middle of a command: the server ends the
/// session (Gmail: "Session expired" once the day's download is used up).
pub fn bye(text: &str) -> Error {
    Error::new(
        Exit::TempFail,
        format!("the server ended the session: {}", text.trim()),
    )
}

/// A temporary failure of a dump with `--state` says that a run again
/// resumes (the state holds exactly what was written).
pub fn resumable(e: Error, with_state: bool) -> Error {
    if with_state && e.exit() == Exit::TempFail && !e.message().contains(RESUME) {
        Error::new(Exit::TempFail, format!("{}; {RESUME}", e.message()))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_codes_are_told_from_others() {
        assert_eq!(temporary_code("[LIMIT] Too many downloads"), Some("LIMIT"));
        assert_eq!(temporary_code("[overquota] full"), Some("OVERQUOTA"));
        assert_eq!(temporary_code("[UNAVAILABLE]"), Some("UNAVAILABLE"));
        assert_eq!(temporary_code("[SERVERBUG] oops"), None);
        assert_eq!(temporary_code("LIMIT reached"), None);
        let e = refused(&"imaps://h", "NO", "[LIMIT] Download limit");
        assert_eq!(e.exit(), Exit::TempFail);
        assert_eq!(
            e.message(),
            "imaps://h: server said NO: [LIMIT] Download limit"
        );
        assert_eq!(refused(&"u", "NO", "[SERVERBUG] x").exit(), Exit::Protocol);
        assert_eq!(refused(&"u", "BAD", "[LIMIT] x").exit(), Exit::Protocol);
    }

    #[test]
    fn a_temporary_failure_with_state_says_run_again() {
        let e = resumable(bye("Session expired"), true);
        assert_eq!(
            e.message(),
            "the server ended the session: Session expired; run again to resume"
        );
        let twice = resumable(resumable(bye("Session expired"), true), true);
        assert_eq!(twice.message(), e.message());
        let other = Error::protocol("garbled");
        assert_eq!(resumable(other, true).message(), "garbled");
        assert!(!resumable(bye("x"), false).message().contains(RESUME));
    }
}
