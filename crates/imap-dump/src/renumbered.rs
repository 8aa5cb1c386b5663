//! A mailbox the server renumbered (its UIDVALIDITY changed since the state
//! was saved): rather than dump it all again into an append-only mbox, fetch
//! the key of every message it holds (Message-ID, RFC822.SIZE, INTERNALDATE:
//! keys.rs), match them against the keys the state recorded for the messages
//! written, and resume in the new numbering as if the matched ones had been
//! dumped under it: the highest matched UID is the last one written, and the
//! unmatched below it are to fetch. Only a state from before keys were kept
//! falls back to dumping everything, with a warning.

use mailpipe::{Endpoint, Error};

use crate::keys;
use crate::lanes::uid_set;
use crate::session::{self, imap_error, Session};
use crate::state::{MailboxState, StateFile};

/// Messages whose keys are fetched per command.
const KEYS_PER_FETCH: usize = 5000;

/// Where the dump resumes in the new numbering: after this UID, and these below it.
#[derive(Debug, Default)]
pub struct Resume {
    pub after_uid: u32,
    pub retry: Vec<u32>,
}

/// Matches `mailbox` (renumbered to `uid_validity`) against the keys the
/// state recorded, saves the state in the new numbering when something
/// matched, and says where to resume.
pub fn recover(
    session: &mut Session,
    endpoint: &Endpoint,
    mailbox: &str,
    state: &mut StateFile,
    account: &str,
    saved: &MailboxState,
    uid_validity: u32,
) -> Result<Resume, Error> {
    let changed = format!(
        "imap-dump: {mailbox}: UIDVALIDITY changed from {} to {uid_validity}: the server \
         renumbered the mailbox",
        saved.uid_validity
    );
    let Some(keyed_from) = saved.keyed_from else {
        if saved.last_uid > 0 {
            eprintln!(
                "{changed}; the state is from before imap-dump kept message keys, so nothing \
                 can be matched: dumping all of it again (earlier messages will be duplicated)"
            );
        }
        return Ok(Resume::default());
    };
    let mut recorded = state.keys(account, mailbox)?;
    let mut uids = session
        .uid_search("ALL")
        .map_err(|e| imap_error(endpoint, e))?
        .into_iter()
        .collect::<Vec<u32>>();
    uids.sort_unstable();
    if uids.is_empty() {
        return Ok(Resume::default());
    }
    let mut matched = 0usize;
    let mut last_matched = 0u32;
    let mut unmatched = Vec::new();
    for chunk in uids.chunks(KEYS_PER_FETCH) {
        let mut fetched = fetch_keys(session, endpoint, chunk)?;
        fetched.sort_unstable();
        for (uid, key) in fetched {
            match recorded.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    matched += 1;
                    last_matched = last_matched.max(uid);
                }
                _ => unmatched.push(uid),
            }
        }
    }
    let retry: Vec<u32> = unmatched
        .iter()
        .copied()
        .filter(|&u| u < last_matched)
        .collect();
    let partly = if keyed_from > 0 {
        " (messages dumped before imap-dump kept keys may be written again)"
    } else {
        ""
    };
    eprintln!(
        "{changed}; {matched} of {} messages match what was dumped before, the other {} are \
         dumped now{partly}",
        matched + unmatched.len(),
        unmatched.len()
    );
    if last_matched > 0 {
        state.save(
            account,
            mailbox,
            MailboxState {
                uid_validity,
                last_uid: last_matched,
                skipped: retry.clone(),
                keyed_from: Some(0),
            },
        )?;
    }
    Ok(Resume {
        after_uid: last_matched,
        retry,
    })
}

/// `(UID, key)` of the messages of `uids` (ascending), from one FETCH of
/// their size, INTERNALDATE and Message-ID field.
fn fetch_keys(
    session: &mut Session,
    endpoint: &Endpoint,
    uids: &[u32],
) -> Result<Vec<(u32, u64)>, Error> {
    let tag = session.send_fetch(
        endpoint,
        &uid_set(uids),
        "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
        true,
    )?;
    // A Message-ID field is short; a server sending far more is refused.
    let budget = (uids.len() as u64 + 16) * 4096;
    let (fetched, done) = session::with_read_budget(budget, || session.read_fetch(endpoint))?;
    if done != tag {
        return Err(Error::protocol(format!(
            "{}: the server completed {done:?}, a command not in flight",
            endpoint.url
        )));
    }
    Ok(fetched
        .into_iter()
        .filter_map(|f| {
            let uid = f.uid.filter(|u| uids.binary_search(u).is_ok())?;
            let id = keys::message_id(f.header.as_deref().unwrap_or_default());
            let date = f.internal_date.map_or(0, |d| d.timestamp());
            Some((uid, keys::message_key(&id, f.size?, date)))
        })
        .collect())
}
