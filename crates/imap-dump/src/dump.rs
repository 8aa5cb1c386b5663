//! Dumping one mailbox: EXAMINE (read-only), UID SEARCH, the sizes of the
//! messages found, then UID FETCH of `BODY.PEEK[]` in batches cut by a byte
//! budget, read by `fetch.rs` (not the imap crate's parser, which was the
//! bottleneck). A batch is held whole in memory until its tagged OK (whole
//! messages only), so the budget bounds memory. Batches alternate between two connections (the
//! second opened on demand; `--connections 1` or `-v` keep one), each in its
//! own thread, while the main thread writes them in order: the server streams
//! one batch while the other is written, and a slow link costs
//! little more than one round trip per two batches.

use std::sync::mpsc;

use chrono::Utc;
use mailpipe::progress::Progress;
use mailpipe::{Endpoint, Error, Exit};

use crate::criteria::{self, Literals};
use crate::fetch::Fetched;
use crate::id;
use crate::message;
use crate::mutf7;
use crate::output::MboxOutput;
use crate::session::{self, imap_error, Session};
use crate::state::{MailboxState, StateFile};

/// What the user asked for that applies to every mailbox.
pub struct DumpOptions {
    pub search: Option<String>,
    pub limit: Option<usize>,
    pub max_size: Option<u64>,
    pub batch_bytes: u64,
    pub flags: bool,
    pub tag_mailbox: bool,
    /// Connections fetching in parallel (1 or 2).
    pub connections: usize,
    /// `user@host`: the account's section of the state file.
    pub account: String,
}

/// The logged-in connections: the one every command uses, and a helper
/// that fetches every other batch, opened the first time it is useful.
pub struct Sessions<'e> {
    pub main: Session,
    helper: Option<Session>,
    helper_failed: bool,
    endpoint: &'e Endpoint,
}

impl<'e> Sessions<'e> {
    pub fn new(main: Session, endpoint: &'e Endpoint) -> Sessions<'e> {
        Sessions {
            main,
            helper: None,
            helper_failed: false,
            endpoint,
        }
    }

    /// Opens the helper connection and examines `mailbox` on it; false if
    /// none can be had (a server that refuses a second connection gets one).
    fn prepare_helper(&mut self, wire_name: &str, uid_validity: u32) -> Result<bool, Error> {
        if self.helper.is_none() && !self.helper_failed {
            match session::open(self.endpoint) {
                Ok(s) => self.helper = Some(s),
                Err(_) => self.helper_failed = true,
            }
        }
        let Some(helper) = self.helper.as_mut() else {
            return Ok(false);
        };
        let selected = helper
            .examine(wire_name)
            .map_err(|e| imap_error(self.endpoint, e))?;
        if selected.uid_validity.unwrap_or(0) != uid_validity {
            return Err(Error::new(
                Exit::TempFail,
                format!(
                    "{}: the mailbox's UIDVALIDITY changed during the dump; run again",
                    self.endpoint.url
                ),
            ));
        }
        Ok(true)
    }

    pub fn logout(mut self) {
        let _ = self.main.logout();
        if let Some(mut helper) = self.helper.take() {
            let _ = helper.logout();
        }
    }

    /// Ends the sessions after `result`: LOGOUT when it succeeded, and
    /// after an error too (within `GOODBYE_WAIT`) unless the connection was
    /// lost or timed out (75), where there is no one to say goodbye to.
    pub fn finish(mut self, result: Result<(), Error>) -> Result<(), Error> {
        match &result {
            Ok(()) => self.logout(),
            Err(e) if e.exit() == Exit::TempFail => {}
            Err(_) => {
                self.main.goodbye();
                if let Some(helper) = self.helper.as_mut() {
                    helper.goodbye();
                }
            }
        }
        result
    }
}

/// At most this many messages per FETCH, so the UID set stays short.
const BATCH_MESSAGES: usize = 5000;

/// Dumps `mailbox` (UTF-8 name) into `out`, advancing `state` after each
/// batch is committed. Returns the number of messages written.
pub fn dump_mailbox(
    sessions: &mut Sessions<'_>,
    endpoint: &Endpoint,
    mailbox: &str,
    out: &mut MboxOutput,
    mut state: Option<&mut StateFile>,
    options: &DumpOptions,
    progress: &Progress,
) -> Result<usize, Error> {
    let wire_name = mutf7::encode(mailbox);
    let session = &mut sessions.main;
    let id_sent = session.id_sent();
    let selected = session.examine(&wire_name).map_err(|e| match e {
        imap::Error::No(no) if !id_sent && id::is_unsafe_login(&no.information) => {
            id::unsafe_login_error(endpoint, mailbox, &no.information)
        }
        imap::Error::No(no) => Error::new(
            Exit::NoInput,
            format!(
                "{}: cannot open mailbox {mailbox:?}: {} (imap-dump --list shows the mailboxes)",
                endpoint.url, no.information
            ),
        ),
        other => imap_error(endpoint, other),
    })?;
    let uid_validity = selected.uid_validity.unwrap_or(0);
    let mut after_uid = 0;
    // UIDs an earlier run skipped for --max-size: tried again.
    let mut retry: Vec<u32> = Vec::new();
    if let Some(saved) = state
        .as_deref()
        .and_then(|s| s.get(&options.account, mailbox))
    {
        if saved.uid_validity == uid_validity {
            after_uid = saved.last_uid;
            retry = saved.skipped;
            retry.sort_unstable();
        } else {
            eprintln!(
                "imap-dump: {mailbox}: UIDVALIDITY changed from {} to {uid_validity}: the server \
                 renumbered the mailbox; dumping all of it again (earlier messages will be \
                 duplicated)",
                saved.uid_validity
            );
        }
    }
    if selected.exists == 0 {
        return Ok(0);
    }
    let uids = search(
        session,
        endpoint,
        options.search.as_deref(),
        after_uid,
        &retry,
    )?;
    let uid_next = selected.uid_next.unwrap_or(0);
    if state.is_some()
        && after_uid > 0
        && options.search.is_none()
        && uid_next > after_uid + 1
        && !uids.iter().any(|&u| u > after_uid)
    {
        eprintln!(
            "imap-dump: {mailbox}: warning: UIDNEXT is {uid_next} but UID SEARCH UID {}:* \
             found nothing: the newer messages were deleted, or the server's search is broken \
             (GNU Mailutils imap4d is known to); nothing new was fetched",
            after_uid + 1
        );
    }
    let mut sized = sizes(session, endpoint, &uids)?;
    // Still skipped for size: kept in the state below the last UID written.
    let mut too_big: Vec<u32> = Vec::new();
    if let Some(max) = options.max_size {
        sized.retain(|&(uid, size)| {
            let fits = u64::from(size) <= max;
            if !fits {
                too_big.push(uid);
            }
            fits
        });
        if !too_big.is_empty() {
            eprintln!(
                "imap-dump: {mailbox}: skipped {} messages larger than {max} bytes (a later run \
                 with --state and a larger --max-size fetches them)",
                too_big.len()
            );
        }
    }
    if let Some(limit) = options.limit {
        sized.truncate(limit);
    }
    let batches = plan_batches(&sized, options.batch_bytes);
    let total_bytes: u64 = sized.iter().map(|&(_, s)| u64::from(s)).sum();
    progress.start(mailbox, Some(sized.len() as u64), Some(total_bytes));
    let query = if options.flags {
        "(UID FLAGS INTERNALDATE BODY.PEEK[])"
    } else {
        "(UID INTERNALDATE BODY.PEEK[])"
    };
    let mut written = 0usize;
    // Retried or too big, not yet written: the state's `skipped` below its last UID.
    let mut unwritten: std::collections::BTreeSet<u32> = too_big.iter().copied().collect();
    unwritten.extend(
        sized
            .iter()
            .map(|&(uid, _)| uid)
            .filter(|&u| u <= after_uid),
    );
    let mut last_written = after_uid;
    let two = options.connections > 1
        && batches.len() > 1
        && sessions.prepare_helper(&wire_name, uid_validity)?;
    let mut fetchers: Vec<&mut Session> = vec![&mut sessions.main];
    if two {
        fetchers.extend(sessions.helper.as_mut());
    }
    let lanes = fetchers.len();
    std::thread::scope(|scope| -> Result<(), Error> {
        let mut receivers = Vec::new();
        for (lane, session) in fetchers.into_iter().enumerate() {
            // Rendezvous: each connection holds at most the batch it fetched
            // until the writer takes it.
            let (sender, receiver) = mpsc::sync_channel::<Result<Vec<Fetched>, Error>>(0);
            receivers.push(receiver);
            let batches = &batches;
            scope.spawn(move || {
                for (set, bytes) in batches.iter().skip(lane).step_by(lanes) {
                    // Twice the sizes announced, plus room for the response lines.
                    let budget = bytes * 2 + 256 * (set.len() as u64 + 1024);
                    let fetched = session::with_read_budget(budget, || {
                        session.uid_fetch_bodies(endpoint, set, query)
                    });
                    let failed = fetched.is_err();
                    if sender.send(fetched).is_err() || failed {
                        return;
                    }
                }
            });
        }
        for batch in 0..batches.len() {
            let Ok(fetched) = receivers[batch % lanes].recv() else {
                return Err(Error::new(Exit::Software, "a fetching thread ended early"));
            };
            let fetches = fetched?;
            let mut last_uid = None;
            for fetch in &fetches {
                // Unsolicited FETCH responses (flag changes) carry no body.
                let (Some(body), Some(uid)) = (fetch.body.as_deref(), fetch.uid) else {
                    continue;
                };
                if uid <= after_uid && !unwritten.contains(&uid) {
                    continue;
                }
                let time = fetch
                    .internal_date
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(Utc::now);
                let sender = message::sender(body);
                let mut fields = Vec::new();
                if options.tag_mailbox {
                    fields.push(format!("X-Mailbox: {mailbox}"));
                }
                if options.flags {
                    fields.extend(message::flag_fields(&fetch.flags));
                }
                if fields.is_empty() {
                    out.write_message(&sender, time, body)?;
                } else {
                    let tagged = message::with_header_fields(body, &fields);
                    out.write_message(&sender, time, &tagged)?;
                }
                last_uid = last_uid.max(Some(uid));
                unwritten.remove(&uid);
                written += 1;
                progress.advance(1, body.len() as u64);
            }
            out.commit(state.is_some())?;
            if let (Some(state), Some(last_uid)) = (state.as_deref_mut(), last_uid) {
                last_written = last_written.max(last_uid);
                state.save(
                    &options.account,
                    mailbox,
                    MailboxState {
                        uid_validity,
                        last_uid: last_written,
                        skipped: unwritten.range(..last_written).copied().collect(),
                    },
                )?;
            }
        }
        Ok(())
    })?;
    progress.finish();
    Ok(written)
}

/// UIDs matching `criteria` above `after_uid` or among `retry`, ascending.
fn search(
    session: &mut Session,
    endpoint: &Endpoint,
    criteria: Option<&str>,
    after_uid: u32,
    retry: &[u32],
) -> Result<Vec<u32>, Error> {
    let range = match (after_uid, retry) {
        (0, _) => "ALL".to_string(),
        (n, []) => format!("UID {}:*", n + 1),
        (n, retry) => format!("OR UID {}:* UID {}", n + 1, uid_set(retry)),
    };
    let query = match criteria {
        Some(c) if criteria::needs_encoding(c) => {
            let caps = session
                .capabilities()
                .map_err(|e| imap_error(endpoint, e))?;
            let literals = if caps.has_str("LITERAL+") {
                Literals::Plus
            } else if caps.has_str("LITERAL-") {
                Literals::Minus
            } else {
                Literals::None
            };
            format!("{} {range}", criteria::encode(c, literals))
        }
        Some(c) => format!("{c} {range}"),
        None => range,
    };
    let found = session.uid_search(&query).map_err(|e| match e {
        imap::Error::No(r) if criteria.is_some() => Error::usage(format!(
            "{}: the server refused --search: {}",
            endpoint.url, r.information
        )),
        imap::Error::Bad(r) if criteria.is_some() => Error::usage(format!(
            "{}: the server refused --search: {}",
            endpoint.url, r.information
        )),
        other => imap_error(endpoint, other),
    })?;
    // `UID n:*` matches the last message even when its UID is below n.
    let mut uids: Vec<u32> = found
        .into_iter()
        .filter(|&u| u > after_uid || retry.binary_search(&u).is_ok())
        .collect();
    uids.sort_unstable();
    Ok(uids)
}

/// `(uid, RFC822.SIZE)` of each message, ascending by UID.
fn sizes(
    session: &mut Session,
    endpoint: &Endpoint,
    uids: &[u32],
) -> Result<Vec<(u32, u32)>, Error> {
    let mut sized = Vec::with_capacity(uids.len());
    for chunk in uids.chunks(50_000) {
        let fetches = session
            .uid_fetch(uid_set(chunk), "RFC822.SIZE")
            .map_err(|e| imap_error(endpoint, e))?;
        sized.extend(
            fetches
                .iter()
                .filter_map(|f| Some((f.uid?, f.size?)))
                .filter(|(uid, _)| chunk.binary_search(uid).is_ok()),
        );
    }
    sized.sort_unstable();
    sized.dedup_by_key(|(uid, _)| *uid);
    Ok(sized)
}

/// UID sets of consecutive messages whose sizes add up to about `budget`
/// bytes (a message larger than the budget is a batch of its own), with
/// those sizes' sum.
fn plan_batches(sized: &[(u32, u32)], budget: u64) -> Vec<(String, u64)> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, &(_, size)) in sized.iter().enumerate() {
        let full = i > start && (bytes + u64::from(size) > budget || i - start >= BATCH_MESSAGES);
        if full {
            batches.push((uid_set_of(&sized[start..i]), bytes));
            start = i;
            bytes = 0;
        }
        bytes += u64::from(size);
    }
    if start < sized.len() {
        batches.push((uid_set_of(&sized[start..]), bytes));
    }
    batches
}

fn uid_set_of(sized: &[(u32, u32)]) -> String {
    let uids: Vec<u32> = sized.iter().map(|&(u, _)| u).collect();
    uid_set(&uids)
}

/// Ascending UIDs as an IMAP set with ranges: `1:3,7,9:10`.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j + 1] == uids[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            out.push_str(&format!("{}:{}", uids[i], uids[j]));
        } else {
            out.push_str(&uids[i].to_string());
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_use_ranges() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn batches_follow_the_byte_budget() {
        let sized = [(1, 400), (2, 400), (3, 400), (5, 5000), (6, 10), (8, 10)];
        let sets = |b: Vec<(String, u64)>| b.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        let batches = plan_batches(&sized, 1000);
        assert_eq!(batches[0].1, 800);
        assert_eq!(sets(batches), vec!["1:2", "3", "5", "6,8"]);
        assert_eq!(sets(plan_batches(&sized, 1 << 20)), vec!["1:3,5:6,8"]);
        assert!(plan_batches(&[], 1000).is_empty());
        let many: Vec<(u32, u32)> = (1..=12_000).map(|u| (u, 1)).collect();
        assert_eq!(
            sets(plan_batches(&many, 1 << 30)),
            vec!["1:5000", "5001:10000", "10001:12000"]
        );
    }
}
