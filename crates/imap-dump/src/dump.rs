//! Dumping one mailbox: EXAMINE (read-only), the UIDs and sizes to fetch (one
//! UID FETCH of RFC822.SIZE, or UID SEARCH first for --search), then UID FETCH of `BODY.PEEK[]` in batches over one or
//! more connections that keep several FETCHes in flight (lanes.rs), read by
//! `fetch.rs` (not the imap crate's parser, which was the bottleneck). The
//! main thread writes the batches in UID order, each once its tagged OK has
//! arrived (whole messages only), and advances the state after each.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mailpipe::progress::Progress;
use mailpipe::{Endpoint, Error, Exit};

use crate::cap::ByteCap;
use crate::compress::Choice;
use crate::criteria::{self, Literals};
use crate::id;
use crate::keys;
use crate::lanes::{self, uid_set, Fetch, Planner};
use crate::message;
use crate::mutf7;
use crate::renumbered;
use crate::session::{self, imap_error, Session};
use crate::sink::{Message, Sink};
use crate::state::{MailboxState, StateFile};
use crate::throttle;

/// What the user asked for that applies to every mailbox.
pub struct DumpOptions {
    pub search: Option<String>,
    pub limit: Option<usize>,
    pub max_size: Option<u64>,
    pub batch_bytes: u64,
    pub flags: bool,
    pub tag_mailbox: bool,
    /// Connections fetching in parallel at most.
    pub connections: usize,
    /// `user@host`: the account's section of the state file.
    pub account: String,
    /// `--max-bytes`: what this run may still fetch.
    pub max_bytes: Option<ByteCap>,
}

/// The logged-in connections: the one every command uses, and helpers
/// that fetch too, opened the first time they are useful and kept for the
/// next mailbox.
pub struct Sessions {
    pub main: Session,
    helpers: Vec<Option<Session>>,
    /// A connection was refused (a server's limit per user): open no more.
    refused: bool,
    /// Whether connections compress (`--compress`, measured for `auto`).
    choice: Choice,
}

impl Sessions {
    /// `connections` at most, compressing as `choice` says.
    pub fn new(main: Session, connections: usize, choice: Choice) -> Sessions {
        Sessions {
            main,
            helpers: (1..connections.max(1)).map(|_| None).collect(),
            refused: false,
            choice,
        }
    }

    /// Connections at most, the main one included.
    pub fn connections(&self) -> usize {
        1 + self.helpers.len()
    }

    fn all(&mut self) -> impl Iterator<Item = &mut Session> {
        std::iter::once(&mut self.main).chain(self.helpers.iter_mut().flatten())
    }

    /// Ends the sessions after `result`: LOGOUT when it succeeded, and
    /// after an error too (within `GOODBYE_WAIT`) unless the connection was
    /// lost or timed out (75), where there is no one to say goodbye to.
    /// `-v` notes the bytes each connection moved.
    pub fn finish(mut self, result: Result<(), Error>) -> Result<(), Error> {
        if let Some(note) = self.choice.unmeasured_note() {
            self.main.note(&note);
        }
        for session in self.all() {
            match &result {
                Ok(()) => {
                    let _ = session.logout();
                }
                Err(e) if e.exit() == Exit::TempFail => {}
                Err(_) => session.goodbye(),
            }
            session.note_wire_bytes();
        }
        result
    }
}

/// Opens (unless open) the helper in `slot`, compressing as `choice` says
/// now, and examines `mailbox` on it; false if it cannot fetch: refused
/// (`refused` is set: open no more), or the mailbox is not the one the main
/// connection sees.
fn prepare_helper(
    slot: &mut Option<Session>,
    refused: &mut bool,
    endpoint: &Endpoint,
    choice: &Choice,
    wire_name: &str,
    uid_validity: u32,
) -> bool {
    if slot.is_none() && !*refused {
        match session::open(endpoint, choice.at_login()) {
            Ok(s) => *slot = Some(s),
            Err(_) => *refused = true,
        }
    }
    let Some(helper) = slot.as_mut() else {
        return false;
    };
    match helper.examine(wire_name) {
        Ok(selected) if selected.uid_validity.unwrap_or(0) == uid_validity => true,
        Ok(_) => false,
        Err(_) => {
            *slot = None;
            *refused = true;
            false
        }
    }
}

/// Dumps `mailbox` (UTF-8 name) into `out`, advancing `state` after each
/// batch is committed (after each message with `--exec`). Returns the
/// number of messages written.
pub fn dump_mailbox(
    sessions: &mut Sessions,
    endpoint: &Endpoint,
    mailbox: &str,
    out: &mut Sink<'_>,
    mut state: Option<&mut StateFile>,
    options: &DumpOptions,
    progress: &Progress,
) -> Result<usize, Error> {
    let wire_name = mutf7::encode(mailbox);
    let session = &mut sessions.main;
    let asked = Instant::now();
    let id_sent = session.id_sent();
    let selected = session.examine(&wire_name).map_err(|e| match e {
        imap::Error::No(no) if !id_sent && id::is_unsafe_login(&no.information) => {
            id::unsafe_login_error(endpoint, mailbox, &no.information)
        }
        imap::Error::No(no) if throttle::temporary_code(&no.information).is_some() => {
            imap_error(endpoint, imap::Error::No(no))
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
    // The round trip batches are sized from (an upper bound: EXAMINE's work too).
    let rtt = asked.elapsed();
    let uid_validity = selected.uid_validity.unwrap_or(0);
    let mut after_uid = 0;
    // UIDs an earlier run skipped for --max-size: tried again.
    let mut retry: Vec<u32> = Vec::new();
    // Every message written with a UID above this has its key recorded.
    let mut keyed_from = 0;
    if let Some(saved) = state
        .as_deref()
        .and_then(|s| s.get(&options.account, mailbox))
    {
        if saved.uid_validity == uid_validity {
            after_uid = saved.last_uid;
            retry = saved.skipped;
            retry.sort_unstable();
            keyed_from = saved.keyed_from.unwrap_or(saved.last_uid);
        } else if let Some(state) = state.as_deref_mut() {
            let resume = renumbered::recover(
                session,
                endpoint,
                mailbox,
                state,
                &options.account,
                &saved,
                uid_validity,
            )?;
            after_uid = resume.after_uid;
            retry = resume.retry;
        }
    }
    if selected.exists == 0 {
        return Ok(0);
    }
    let mut sized = match options.search.as_deref() {
        Some(criteria) => {
            let uids = search(session, endpoint, criteria, after_uid, &retry)?;
            sizes(session, endpoint, &uids)?
        }
        // Without criteria the sizes come from one FETCH over the UID range:
        // a round trip less than UID SEARCH first.
        None => sizes_from(session, endpoint, after_uid, &retry)?,
    };
    let uid_next = selected.uid_next.unwrap_or(0);
    if state.is_some()
        && after_uid > 0
        && options.search.is_none()
        && uid_next > after_uid + 1
        && !sized.iter().any(|&(u, _)| u > after_uid)
    {
        eprintln!(
            "imap-dump: {mailbox}: warning: UIDNEXT is {uid_next} but UID FETCH {}:* \
             found nothing: the newer messages were deleted, or the server's UID ranges are \
             broken; nothing new was fetched",
            after_uid + 1
        );
    }
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
    // Retried or too big, not yet written: the state's `skipped` below its
    // last UID (also those --limit or --max-bytes leave for the next run).
    let mut unwritten: std::collections::BTreeSet<u32> = too_big.iter().copied().collect();
    unwritten.extend(
        sized
            .iter()
            .map(|&(uid, _)| uid)
            .filter(|&u| u <= after_uid),
    );
    if let Some(limit) = options.limit {
        sized.truncate(limit);
    }
    if let Some(cap) = &options.max_bytes {
        let was_reached = cap.reached();
        let fit = cap.take(&sized);
        if fit < sized.len() && !was_reached {
            eprintln!(
                "imap-dump: {mailbox}: --max-bytes {} reached: {fit} of {} messages fetched, \
                 the rest left for the next run; run again to resume",
                mailpipe::ByteSize(cap.max()),
                sized.len()
            );
        }
        sized.truncate(fit);
    }
    let total_bytes: u64 = sized.iter().map(|&(_, s)| u64::from(s)).sum();
    progress.start(mailbox, Some(sized.len() as u64), Some(total_bytes));
    let query = if options.flags {
        "(UID FLAGS INTERNALDATE BODY.PEEK[])"
    } else {
        "(UID INTERNALDATE BODY.PEEK[])"
    };
    let mut written = 0usize;
    let mut last_written = after_uid;
    // One more connection per two batches' worth of mail (16 MiB by
    // default), up to --connections: a small mailbox is done before a
    // helper has logged in.
    let per_connection = options.batch_bytes.saturating_mul(2).max(1);
    let lanes = options
        .connections
        .min(1 + (total_bytes / per_connection).min(u64::from(u16::MAX)) as usize)
        .max(1);
    // Two batches in flight per lane and one being written, within the
    // budget of --batch-size times four.
    let budget = options.batch_bytes.saturating_mul(4);
    let cap = options
        .batch_bytes
        .min(budget / (2 * lanes as u64 + 1))
        .max(1);
    let rtt = rtt.max(Duration::from_micros(100));
    // RFC822.SIZE by UID, for the keys of the messages written.
    let size_of: HashMap<u32, u32> = match state {
        Some(_) => sized.iter().copied().collect(),
        None => HashMap::new(),
    };
    let planner = &Planner::new(sized, cap, budget, rtt);
    let Sessions {
        main,
        helpers,
        refused,
        choice,
        ..
    } = sessions;
    let choice = &*choice;
    let wire_name = wire_name.as_str();
    let result = std::thread::scope(|scope| -> Result<(), Error> {
        // Rendezvous: a lane holds the batch it fetched until the writer takes it.
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..lanes).map(|_| mpsc::sync_channel::<Fetch>(0)).unzip();
        let mut senders = senders.into_iter();
        if let Some(to_writer) = senders.next() {
            planner.started();
            scope.spawn(move || {
                lanes::run_lane(0, main, endpoint, query, planner, choice, &to_writer)
            });
        }
        // Helpers one after another, each fetching as soon as it is ready;
        // the first refusal ends the opening.
        let slots = helpers.iter_mut().take(lanes - 1);
        scope.spawn(move || {
            for (lane, (slot, to_writer)) in slots.zip(senders).enumerate() {
                if !prepare_helper(slot, refused, endpoint, choice, wire_name, uid_validity) {
                    break;
                }
                let Some(helper) = slot.as_mut() else { break };
                planner.started();
                scope.spawn(move || {
                    lanes::run_lane(
                        lane + 1,
                        helper,
                        endpoint,
                        query,
                        planner,
                        choice,
                        &to_writer,
                    )
                });
            }
            planner.opening_done();
        });
        let written_all = (|| -> Result<(), Error> {
            for seq in 0.. {
                let Some(lane) = planner.lane_of(seq)? else {
                    return Ok(());
                };
                let Ok(fetched) = receivers[lane].recv() else {
                    return Err(Error::new(Exit::Software, "a fetching thread ended early"));
                };
                let (fetches, batch_bytes) = fetched?;
                let mut last_uid = None;
                let mut keys = Vec::new();
                // Advances the state to `last_uid` once `out` made it durable,
                // the keys of what it holds (UIDVALIDITY recovery) first.
                let mut advance = |last_uid: Option<u32>,
                                   unwritten: &std::collections::BTreeSet<u32>,
                                   keys: &mut Vec<_>,
                                   out: &mut Sink<'_>|
                 -> Result<(), Error> {
                    out.commit(state.is_some())?;
                    if let (Some(state), Some(last_uid)) = (state.as_deref_mut(), last_uid) {
                        last_written = last_written.max(last_uid);
                        state.add_keys(&options.account, mailbox, keys)?;
                        keys.clear();
                        state.save(
                            &options.account,
                            mailbox,
                            MailboxState {
                                uid_validity,
                                last_uid: last_written,
                                skipped: unwritten.range(..last_written).copied().collect(),
                                keyed_from: Some(keyed_from),
                            },
                        )?;
                    }
                    Ok(())
                };
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
                    let tagged;
                    let bytes = if fields.is_empty() {
                        body
                    } else {
                        tagged = message::with_header_fields(body, &fields);
                        &tagged
                    };
                    out.deliver(&Message {
                        mailbox,
                        uid,
                        uid_validity,
                        sender: &sender,
                        time,
                        bytes,
                    })?;
                    last_uid = last_uid.max(Some(uid));
                    if let Some(&size) = size_of.get(&uid) {
                        let date = fetch.internal_date.map_or(0, |d| d.timestamp());
                        keys.push(keys::message_key(&keys::message_id(body), size, date));
                    }
                    unwritten.remove(&uid);
                    written += 1;
                    progress.advance(1, body.len() as u64);
                    if out.per_message() {
                        advance(Some(uid), &unwritten, &mut keys, out)?;
                    }
                }
                if !out.per_message() {
                    advance(last_uid, &unwritten, &mut keys, out)?;
                }
                planner.written(batch_bytes);
            }
            Ok(())
        })();
        if written_all.is_err() {
            // Lanes stop at their next batch; the receivers go with this scope.
            planner.stop();
        }
        written_all
    });
    result?;
    progress.finish();
    Ok(written)
}

/// UIDs matching `criteria` above `after_uid` or among `retry`, ascending.
fn search(
    session: &mut Session,
    endpoint: &Endpoint,
    criteria: &str,
    after_uid: u32,
    retry: &[u32],
) -> Result<Vec<u32>, Error> {
    let range = match (after_uid, retry) {
        (0, _) => "ALL".to_string(),
        (n, []) => format!("UID {}:*", n + 1),
        (n, retry) => format!("OR UID {}:* UID {}", n + 1, uid_set(retry)),
    };
    let query = if criteria::needs_encoding(criteria) {
        let literals = if session.has_capability(endpoint, "LITERAL+")? {
            Literals::Plus
        } else if session.has_capability(endpoint, "LITERAL-")? {
            Literals::Minus
        } else {
            Literals::None
        };
        format!("{} {range}", criteria::encode(criteria, literals))
    } else {
        format!("{criteria} {range}")
    };
    let found = session.uid_search(&query).map_err(|e| match e {
        imap::Error::No(r) if throttle::temporary_code(&r.information).is_none() => {
            Error::usage(format!(
                "{}: the server refused --search: {}",
                endpoint.url, r.information
            ))
        }
        imap::Error::Bad(r) => Error::usage(format!(
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

/// `(uid, RFC822.SIZE)` of every message above `after_uid` or among `retry`,
/// ascending by UID, from one UID FETCH.
fn sizes_from(
    session: &mut Session,
    endpoint: &Endpoint,
    after_uid: u32,
    retry: &[u32],
) -> Result<Vec<(u32, u32)>, Error> {
    let range = match retry {
        [] => format!("{}:*", after_uid + 1),
        retry => format!("{}:*,{}", after_uid + 1, uid_set(retry)),
    };
    let fetches = session
        .uid_fetch(range, "RFC822.SIZE")
        .map_err(|e| imap_error(endpoint, e))?;
    // `n:*` names the last message even when its UID is below n.
    let mut sized: Vec<(u32, u32)> = fetches
        .iter()
        .filter_map(|f| Some((f.uid?, f.size?)))
        .filter(|&(uid, _)| uid > after_uid || retry.binary_search(&uid).is_ok())
        .collect();
    sized.sort_unstable();
    sized.dedup_by_key(|(uid, _)| *uid);
    Ok(sized)
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
