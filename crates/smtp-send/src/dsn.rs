//! Delivery status notifications (RFC 3461): what the sender asks the
//! servers on the way to report (NOTIFY per recipient, RET and ENVID per
//! message, ORCPT so that a report names the address as it was given), and
//! the parameters that carry it on MAIL FROM and RCPT TO.
//!
//! The parameter values are written here, xtext-encoded, and handed to lettre
//! as bare keywords: lettre's own parameter values are xtext-encoded again.

use std::sync::atomic::{AtomicBool, Ordering};

use lettre::transport::smtp::extension::{MailParameter, RcptParameter};
use lettre::Address;
use mailpipe::{Error, Exit};

/// RFC 3461 4.4: ENVID is at most 100 characters.
const MAX_ENVID: usize = 100;

/// `NOTIFY=`: never, or any of success, failure and delay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// `never`, or a comma-separated list of `success`, `failure`, `delay`
    /// (any case, each at most once). `Err` says what is wrong.
    pub fn parse(text: &str) -> Result<Notify, String> {
        let words: Vec<String> = text
            .split(',')
            .map(|w| w.trim().to_ascii_lowercase())
            .collect();
        if words.len() == 1 && words[0] == "never" {
            return Ok(Notify::default());
        }
        let mut notify = Notify::default();
        for word in &words {
            let flag = match word.as_str() {
                "success" => &mut notify.success,
                "failure" => &mut notify.failure,
                "delay" => &mut notify.delay,
                "never" => return Err("\"never\" cannot be combined with other values".into()),
                _ => return Err(format!("{word:?} is not never, success, failure or delay")),
            };
            if *flag {
                return Err(format!("{word:?} is given twice"));
            }
            *flag = true;
        }
        Ok(notify)
    }

    /// The parameter's value: `NEVER`, or `SUCCESS,FAILURE,DELAY` in that order.
    pub fn value(&self) -> String {
        let words: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .into_iter()
        .filter_map(|(on, w)| on.then_some(w))
        .collect();
        if words.is_empty() {
            "NEVER".to_string()
        } else {
            words.join(",")
        }
    }
}

/// `RET=`: the whole message or only its header in a failure report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn parse(text: &str) -> Result<Ret, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Ret::Full),
            "hdrs" => Ok(Ret::Hdrs),
            _ => Err(format!("{text:?} is not full or hdrs")),
        }
    }

    fn value(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// What the sender asks of delivery status notifications for one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    pub notify: Option<Notify>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// `--require-dsn`: a server without DSN is refused (69) instead of warned about.
    pub require: bool,
}

/// The command line's DSN flags, before the account's keys fill the gaps.
#[derive(Debug, Clone, Default)]
pub struct DsnArgs {
    pub notify: Option<String>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub require: bool,
}

impl DsnArgs {
    /// The flags, else the account's `dsn_notify`, `dsn_ret`, `require_dsn`.
    /// A bad flag is 64, a bad account value 78.
    pub fn resolve(&self, endpoint: Option<&mailpipe::Endpoint>) -> Result<Dsn, Error> {
        let notify = match (&self.notify, endpoint.and_then(|e| e.dsn_notify.as_deref())) {
            (Some(text), _) => {
                Some(Notify::parse(text).map_err(|e| Error::usage(format!("--dsn-notify: {e}")))?)
            }
            (None, Some(text)) => Some(
                Notify::parse(text)
                    .map_err(|e| Error::config(format!("account key dsn_notify: {e}")))?,
            ),
            (None, None) => None,
        };
        let ret = match (self.ret, endpoint.and_then(|e| e.dsn_ret.as_deref())) {
            (Some(ret), _) => Some(ret),
            (None, Some(text)) => Some(
                Ret::parse(text).map_err(|e| Error::config(format!("account key dsn_ret: {e}")))?,
            ),
            (None, None) => None,
        };
        if let Some(id) = &self.envid {
            check_envid(id)?;
        }
        Ok(Dsn {
            notify,
            ret,
            envid: self.envid.clone(),
            require: self.require || endpoint.is_some_and(|e| e.require_dsn),
        })
    }
}

/// ENVID: printable ASCII (it is xtext-encoded on the wire), 1 to 100 characters.
fn check_envid(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_ENVID || !id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Error::usage(format!(
            "--envid {id:?}: give 1 to {MAX_ENVID} printable ASCII characters (RFC 3461 4.4)"
        )));
    }
    Ok(())
}

/// Whether the one warning about a server without DSN was printed already.
static WARNED: AtomicBool = AtomicBool::new(false);

impl Dsn {
    /// True when anything was asked for.
    pub fn requested(&self) -> bool {
        self.notify.is_some() || self.ret.is_some() || self.envid.is_some() || self.require
    }

    /// The MAIL FROM parameters (RET, ENVID) for a server that `offered` DSN
    /// or not. Without DSN on the server: 69 with `require`, else one warning
    /// line on stderr (once per run) and nothing asked.
    pub fn mail_parameters(&self, offered: bool) -> Result<Vec<MailParameter>, Error> {
        if !self.requested() {
            return Ok(Vec::new());
        }
        if !offered {
            if self.require {
                return Err(Error::new(
                    Exit::Unavailable,
                    "the server does not offer DSN (RFC 3461) and --require-dsn is given; \
                     nothing was sent",
                ));
            }
            if !WARNED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "smtp-send: warning: the server does not offer DSN; sending without \
                     delivery status notification requests"
                );
            }
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if let Some(ret) = self.ret {
            out.push(bare(format!("RET={}", ret.value())));
        }
        if let Some(id) = &self.envid {
            out.push(bare(format!("ENVID={}", xtext(id))));
        }
        Ok(out)
    }

    /// The RCPT TO parameters for `recipient`: NOTIFY when asked, and ORCPT.
    pub fn rcpt_parameters(&self, recipient: &Address) -> Vec<RcptParameter> {
        let mut out = Vec::new();
        let keyword = |text: String| RcptParameter::Other {
            keyword: text,
            value: None,
        };
        if let Some(notify) = &self.notify {
            out.push(keyword(format!("NOTIFY={}", notify.value())));
        }
        out.push(keyword(format!("ORCPT={}", orcpt(recipient.as_ref()))));
        out
    }
}

fn bare(text: String) -> MailParameter {
    MailParameter::Other {
        keyword: text,
        value: None,
    }
}

/// RFC 3461 4: printable ASCII except `+` and `=` as is, every other byte `+XX`.
pub fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// RFC 6533 3 utf-8-addr-xtext: printable ASCII except `+`, `=` and `\` as
/// is, every other character `\x{HEX}` (its code point, at least two digits).
pub fn utf8_addr_xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if ('!'..='~').contains(&c) && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", c as u32));
        }
    }
    out
}

/// ORCPT's value: `rfc822;` and the xtext of an ASCII address, `utf-8;` and
/// the utf-8-addr-xtext of one with a UTF-8 local part (RFC 6533 3), which
/// reads the same whether or not the session uses SMTPUTF8.
pub fn orcpt(address: &str) -> String {
    if address.is_ascii() {
        format!("rfc822;{}", xtext(address))
    } else {
        format!("utf-8;{}", utf8_addr_xtext(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_values() {
        assert_eq!(
            Notify::parse("never").map(|n| n.value()),
            Ok("NEVER".into())
        );
        assert_eq!(
            Notify::parse("Delay, success,FAILURE").map(|n| n.value()),
            Ok("SUCCESS,FAILURE,DELAY".into())
        );
        assert!(Notify::parse("never,success").is_err());
        assert!(Notify::parse("success,success").is_err());
        assert!(Notify::parse("sometimes").is_err());
        assert!(Notify::parse("").is_err());
        assert_eq!(Ret::parse("HDRS"), Ok(Ret::Hdrs));
        assert!(Ret::parse("body").is_err());
    }

    /// The examples of RFC 3461 4.2 and RFC 6533 3.
    #[test]
    fn xtext_encodings() {
        assert_eq!(xtext("a+b=c d@x.org"), "a+2Bb+3Dc+20d@x.org");
        assert_eq!(xtext("QQ-1234"), "QQ-1234");
        assert_eq!(orcpt("Bob@example.org"), "rfc822;Bob@example.org");
        assert_eq!(orcpt("a+tag@x.org"), "rfc822;a+2Btag@x.org");
        assert_eq!(
            orcpt("张三@例子.中国"),
            "utf-8;\\x{5F20}\\x{4E09}@\\x{4F8B}\\x{5B50}.\\x{4E2D}\\x{56FD}"
        );
        assert_eq!(utf8_addr_xtext("a\\b+é"), "a\\x{5C}b\\x{2B}\\x{E9}");
    }

    #[test]
    fn parameters_only_when_offered_or_required() {
        let dsn = Dsn {
            notify: Notify::parse("success,failure").ok(),
            ret: Some(Ret::Hdrs),
            envid: Some("QQ 1+1".into()),
            require: false,
        };
        let mail: Vec<String> = dsn
            .mail_parameters(true)
            .expect("offered")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(mail, ["RET=HDRS", "ENVID=QQ+201+2B1"]);
        let to: Address = "a+b@x.org".parse().expect("address");
        let rcpt: Vec<String> = dsn
            .rcpt_parameters(&to)
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(rcpt, ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a+2Bb@x.org"]);
        assert_eq!(dsn.mail_parameters(false).expect("warned"), []);
        let required = Dsn {
            require: true,
            ..Dsn::default()
        };
        let e = required.mail_parameters(false).expect_err("refused");
        assert_eq!(e.exit(), Exit::Unavailable);
        assert_eq!(Dsn::default().mail_parameters(false).expect("none"), []);
    }
}
