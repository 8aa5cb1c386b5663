//! What is in the maildrop: STAT, LIST and UIDL joined into one entry per
//! message, and `--list`, which prints them without downloading anything.

use std::collections::HashMap;
use std::io::Write;

use mailpipe::Error;
use serde_json::json;

use crate::session::Session;

/// One message on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Message number in this session (1-based).
    pub number: u32,
    /// Size in octets as LIST reports it (CRLF line ends, before dot-stuffing).
    pub size: u64,
    /// The unique id, when the server supports UIDL.
    pub uidl: Option<String>,
}

/// The maildrop's messages in server order, and whether UIDLs are known.
pub struct Maildrop {
    pub entries: Vec<Entry>,
    pub has_uidl: bool,
}

impl Maildrop {
    /// Asks the server. UIDL is only sent when `want_uidl` (it costs a round
    /// trip and a line per message); a server that refuses it gives `has_uidl` false.
    pub fn scan(session: &mut Session, want_uidl: bool) -> Result<Maildrop, Error> {
        let client = &mut session.client;
        let caps = &session.capabilities;
        let want_uidl = want_uidl && (!caps.known || caps.uidl);
        // With PIPELINING the three cost one round trip, not three: what
        // a server far away charges most for. STAT's count still bounds
        // the listings, read after it.
        let pipelined = caps.pipelining;
        if pipelined {
            client.send("STAT");
            client.send("LIST");
            if want_uidl {
                client.send("UIDL");
            }
            client.flush()?;
        }
        let (count, _) = if pipelined {
            client.read_stat()?
        } else {
            client.stat()?
        };
        let listed = match pipelined {
            true => client.read_list(count)?,
            false => client.list(count)?,
        };
        let uidls = match (want_uidl, pipelined) {
            (false, _) => None,
            (true, true) => client.read_uidl(count)?,
            (true, false) => client.uidl(count)?,
        };
        let has_uidl = uidls.is_some();
        let mut by_number: HashMap<u32, String> = uidls
            .unwrap_or_default()
            .into_iter()
            .map(|u| (u.number, u.uidl))
            .collect();
        let entries = listed
            .into_iter()
            .map(|l| Entry {
                number: l.number,
                size: l.size,
                uidl: by_number.remove(&l.number),
            })
            .collect();
        Ok(Maildrop { entries, has_uidl })
    }
}

/// `--list`: `number size uidl` per line (`-` without UIDL), or JSON Lines
/// `{"number":1,"size":1234,"uidl":"..."}` (`"uidl":null` without UIDL).
pub fn print_list(maildrop: &Maildrop, json: bool, out: &mut impl Write) -> Result<(), Error> {
    let write_error = |e| Error::io("writing stdout", e);
    for entry in &maildrop.entries {
        if json {
            let line = json!({"number": entry.number, "size": entry.size, "uidl": entry.uidl});
            writeln!(out, "{line}").map_err(write_error)?;
        } else {
            let uidl = entry.uidl.as_deref().unwrap_or("-");
            writeln!(out, "{} {} {uidl}", entry.number, entry.size).map_err(write_error)?;
        }
    }
    out.flush().map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_and_json() {
        let maildrop = Maildrop {
            entries: vec![
                Entry {
                    number: 1,
                    size: 120,
                    uidl: Some("a\"b".to_string()),
                },
                Entry {
                    number: 2,
                    size: 7,
                    uidl: None,
                },
            ],
            has_uidl: true,
        };
        let mut out = Vec::new();
        print_list(&maildrop, false, &mut out).expect("text");
        assert_eq!(String::from_utf8_lossy(&out), "1 120 a\"b\n2 7 -\n");
        out.clear();
        print_list(&maildrop, true, &mut out).expect("json");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"number\":1,\"size\":120,\"uidl\":\"a\\\"b\"}\n{\"number\":2,\"size\":7,\"uidl\":null}\n"
        );
    }
}
