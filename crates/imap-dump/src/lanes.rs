//! Fetching one mailbox's messages over one or more connections ("lanes"),
//! each keeping the pipe full: the next UID FETCH goes out before the
//! response to the one before has ended, so the server never waits a round
//! trip between batches. Batches are cut from the messages in UID order as
//! lanes ask for them, sized from the measured round trip and rate; the
//! writer (dump.rs) takes them back in that order, one at a time from the
//! lane that fetched each. Each lane has two FETCHes in flight: the server
//! may answer them interleaved (Dovecot does), so messages are sorted into
//! their batch by UID and a batch is done at its tagged OK. Memory: the
//! batches handed out and not yet written stay within a byte budget (four
//! times --batch-size); only a lane with nothing in flight may go beyond it,
//! by one batch (a message larger than the budget still gets through).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mailpipe::{Endpoint, Error, Exit};

use crate::compress::Choice;
use crate::fetch::Fetched;
use crate::session::{self, Session};

/// At most this many messages per FETCH, so the UID set stays short.
pub const BATCH_MESSAGES: usize = 5000;

/// Smallest batch cut once the link is measured: each batch costs a flush
/// (and, with --state, a sync) of the output.
const MIN_BATCH: u64 = 2 << 20;

/// FETCHes in flight per lane: the next one is always sent before the
/// response to the one before has ended; batches are made long enough
/// (two round trips' worth) for that to keep the link busy.
const IN_FLIGHT: usize = 2;

/// One batch: its number in the dump, UID set and announced bytes.
#[derive(Debug, Clone)]
pub struct Batch {
    pub seq: usize,
    pub set: String,
    pub bytes: u64,
    pub messages: usize,
    /// The lowest and highest UID in the batch: batches do not overlap.
    pub first_uid: u32,
    pub last_uid: u32,
}

/// What lanes and the writer share.
struct Plan {
    sized: Vec<(u32, u32)>,
    /// Index in `sized` of the first message not yet in a batch.
    next: usize,
    /// The lane that fetches each batch handed out so far.
    owner: Vec<usize>,
    /// A lane failed: hand out nothing more.
    stopped: bool,
    /// Lanes started and not yet ended.
    alive: usize,
    /// The helper connections that will ever start have started.
    opening_done: bool,
    /// Largest batch (bytes) memory allows.
    cap: u64,
    /// Bytes of the batches handed out and not yet written, and their bound.
    outstanding: u64,
    budget: u64,
    /// Round trip (EXAMINE's, the shortest seen).
    rtt: Duration,
    /// Bytes per second while a lane read a response already in flight.
    rate: Option<f64>,
}

impl Plan {
    /// The bandwidth-delay product: bytes the link holds in one round trip.
    fn in_a_round_trip(&self) -> u64 {
        self.rate.map_or(0, |r| {
            (r * self.rtt.as_secs_f64()).min(u64::MAX as f64) as u64
        })
    }

    /// Bytes per batch now: twice what one round trip carries, so a lane with
    /// the next FETCH sent never idles, within [MIN_BATCH, cap]; the first
    /// batches (nothing measured) are the smallest.
    fn batch_bytes(&self) -> u64 {
        (self.in_a_round_trip() * 2)
            .max(MIN_BATCH)
            .min(self.cap)
            .max(1)
    }
}

/// The plan, and the writer's wait for a batch to be handed out.
pub struct Planner {
    plan: Mutex<Plan>,
    changed: Condvar,
}

impl Planner {
    /// Batches of `sized` (UID, RFC822.SIZE), in UID order, of at most
    /// `cap` bytes (a larger message is a batch of its own), at most
    /// `budget` bytes of them handed out and not yet written (`written`);
    /// `rtt` as measured.
    pub fn new(sized: Vec<(u32, u32)>, cap: u64, budget: u64, rtt: Duration) -> Planner {
        Planner {
            plan: Mutex::new(Plan {
                sized,
                next: 0,
                owner: Vec::new(),
                stopped: false,
                alive: 0,
                opening_done: false,
                cap,
                outstanding: 0,
                budget,
                rtt,
                rate: None,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Plan)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// The next batch, for `lane`; `None` when all are handed out, a lane
    /// failed, or (for a lane that has FETCHes in flight, `busy`) it would
    /// take the bytes not yet written beyond the budget.
    /// At most `limit` bytes (unless one message is more).
    fn claim(&self, lane: usize, busy: bool, limit: u64) -> Option<Batch> {
        let mut plan = self.lock();
        if plan.stopped || plan.next >= plan.sized.len() {
            return None;
        }
        let start = plan.next;
        let end = batch_end(&plan.sized, start, plan.batch_bytes().min(limit));
        let batch = &plan.sized[start..end];
        let bytes = batch.iter().map(|&(_, s)| u64::from(s)).sum();
        if busy && plan.outstanding + bytes > plan.budget {
            return None;
        }
        let uids: Vec<u32> = batch.iter().map(|&(u, _)| u).collect();
        let claimed = Batch {
            seq: plan.owner.len(),
            set: uid_set(&uids),
            bytes,
            messages: batch.len(),
            first_uid: uids.first().copied().unwrap_or(0),
            last_uid: uids.last().copied().unwrap_or(0),
        };
        plan.next = end;
        plan.outstanding += bytes;
        plan.owner.push(lane);
        drop(plan);
        self.changed.notify_all();
        Some(claimed)
    }

    /// Every batch is handed out, or a lane failed: nothing left to claim.
    pub fn exhausted(&self) -> bool {
        let plan = self.lock();
        plan.stopped || plan.next >= plan.sized.len()
    }

    /// The writer wrote a batch of `bytes` (as announced): room for more.
    pub fn written(&self, bytes: u64) {
        self.update(|p| p.outstanding = p.outstanding.saturating_sub(bytes));
    }

    /// A lane read `bytes` in `took`, of a response that was in flight.
    fn measured(&self, bytes: u64, took: Duration) {
        if bytes < 64 * 1024 || took.is_zero() {
            return;
        }
        let rate = bytes as f64 / took.as_secs_f64();
        self.update(|p| p.rate = Some(p.rate.map_or(rate, |r| (r + rate) / 2.0)));
    }

    /// The lane fetching batch `seq`, once it is handed out; `Ok(None)` when
    /// there is no such batch (all were handed out before it).
    pub fn lane_of(&self, seq: usize) -> Result<Option<usize>, Error> {
        let mut plan = self.lock();
        loop {
            if let Some(&lane) = plan.owner.get(seq) {
                return Ok(Some(lane));
            }
            if plan.next >= plan.sized.len() {
                return Ok(None);
            }
            if plan.stopped || (plan.alive == 0 && plan.opening_done) {
                return Err(Error::new(
                    Exit::Software,
                    "the fetching connections ended early",
                ));
            }
            plan = self.changed.wait(plan).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Counts a lane as started (before its thread runs).
    pub fn started(&self) {
        self.update(|p| p.alive += 1);
    }

    /// No more helper connections will start.
    pub fn opening_done(&self) {
        self.update(|p| p.opening_done = true);
    }

    pub fn stop(&self) {
        self.update(|p| p.stopped = true);
    }
}

/// What a lane hands the writer: one batch and its announced bytes, or why
/// the lane stopped.
pub type Fetch = Result<(Vec<Fetched>, u64), Error>;

/// Ends a lane's count when its thread ends, however it ends.
struct Alive<'p>(&'p Planner);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.update(|p| p.alive -= 1);
    }
}

/// A FETCH sent, and the messages of its batch read so far.
struct InFlight {
    batch: Batch,
    tag: String,
    got: Vec<Fetched>,
    /// Its tagged OK has arrived.
    done: bool,
}

/// One lane (counted by `Planner::started` before): claims batches, keeps
/// `IN_FLIGHT` FETCHes in flight, reads their responses within the read
/// budget and hands each batch over on `to_writer`, in order, once its
/// tagged OK has arrived. Stops at the first failure, which it hands over
/// in place of the next batch. While `--compress auto` measures the link
/// (`choice`), a helper lane (`lane` > 0) waits for the verdict, and the
/// main lane times its responses and keeps one FETCH in flight, so
/// that a switch to COMPRESS (which needs nothing in flight) comes soon
/// after the verdict, in batches no larger than the measure needs.
pub fn run_lane(
    lane: usize,
    session: &mut Session,
    endpoint: &Endpoint,
    query: &str,
    planner: &Planner,
    choice: &Choice,
    to_writer: &std::sync::mpsc::SyncSender<Fetch>,
) {
    let _alive = Alive(planner);
    if lane > 0 {
        choice.wait_while_measuring(|| planner.exhausted());
    }
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    // The first response also waits a round trip: not a measure of the rate.
    let mut first = true;
    // COMPRESS sent on this connection (or it already compresses).
    let mut switched = session.compressing();
    session.set_meter(if switched { None } else { choice.meter() });
    // FETCHes to keep in flight now: none while a switch to COMPRESS
    // waits for those in flight to end.
    let depth = |switched: bool| {
        if !switched && choice.switch() {
            0
        } else if !switched && choice.measuring() {
            1
        } else {
            IN_FLIGHT
        }
    };
    let fill = |session: &mut Session, in_flight: &mut VecDeque<InFlight>, depth: usize| {
        while in_flight.len() < depth {
            let limit = choice.probe_bytes();
            let Some(batch) = planner.claim(lane, !in_flight.is_empty(), limit) else {
                break;
            };
            let alone = in_flight.iter().all(|f| f.done);
            let tag = session.send_fetch(endpoint, &batch.set, query, alone)?;
            in_flight.push_back(InFlight {
                batch,
                tag,
                got: Vec::new(),
                done: false,
            });
        }
        Ok::<(), Error>(())
    };
    loop {
        let step = (|| {
            if in_flight.is_empty() && !switched && choice.switch() {
                switched = true;
                session.set_meter(None);
                session.start_compress(endpoint)?;
            }
            fill(session, &mut in_flight, depth(switched))?;
            if in_flight.front().is_some_and(|f| f.done) {
                let Some(front) = in_flight.pop_front() else {
                    return Ok(None);
                };
                // The next FETCH goes out before the writer takes this one.
                fill(session, &mut in_flight, depth(switched))?;
                return Ok(Some((front.got, front.batch.bytes)));
            }
            if in_flight.is_empty() {
                return Ok(None);
            }
            // Twice the sizes announced, plus room for the response lines.
            let budget = in_flight
                .iter()
                .filter(|f| !f.done)
                .map(|f| f.batch.bytes * 2 + 256 * (f.batch.messages as u64 + 1024))
                .sum();
            let started = Instant::now();
            let (fetched, tag) =
                session::with_read_budget(budget, || session.read_fetch(endpoint))?;
            if let Some(verdict) = session.verdict() {
                session.set_meter(None);
                if let Some(note) = choice.decide(verdict) {
                    session.note(&note);
                }
            }
            let mut bytes = 0;
            for fetch in fetched {
                // Unsolicited FETCH responses (flag changes) have no batch.
                let Some(uid) = fetch.uid else { continue };
                if let Some(f) = in_flight
                    .iter_mut()
                    .find(|f| (f.batch.first_uid..=f.batch.last_uid).contains(&uid))
                {
                    bytes += fetch.body.as_ref().map_or(0, |b| b.len() as u64);
                    f.got.push(fetch);
                }
            }
            let Some(f) = in_flight.iter_mut().find(|f| f.tag == tag && !f.done) else {
                return Err(Error::protocol(format!(
                    "{}: the server completed {tag:?}, a command not in flight",
                    endpoint.url
                )));
            };
            f.done = true;
            if !std::mem::replace(&mut first, false) {
                planner.measured(bytes, started.elapsed());
            }
            Ok(None)
        })();
        match step {
            Ok(Some(fetched)) => {
                if to_writer.send(Ok(fetched)).is_err() {
                    return planner.stop();
                }
            }
            Ok(None) if in_flight.is_empty() => return,
            Ok(None) => {}
            Err(e) => {
                planner.stop();
                let _ = to_writer.send(Err(e));
                return;
            }
        }
    }
}

/// The end (exclusive) of the batch starting at `start`: consecutive
/// messages whose sizes add up to about `budget` bytes (a message larger
/// than the budget is a batch of its own), at most `BATCH_MESSAGES`.
fn batch_end(sized: &[(u32, u32)], start: usize, budget: u64) -> usize {
    let mut bytes = 0u64;
    for (i, &(_, size)) in sized.iter().enumerate().skip(start) {
        let full = i > start && (bytes + u64::from(size) > budget || i - start >= BATCH_MESSAGES);
        if full {
            return i;
        }
        bytes += u64::from(size);
    }
    sized.len()
}

/// Ascending UIDs as an IMAP set with ranges: `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
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

    fn sets(sized: &[(u32, u32)], cap: u64) -> Vec<(String, u64)> {
        let planner = Planner::new(sized.to_vec(), cap, u64::MAX, Duration::ZERO);
        std::iter::from_fn(|| planner.claim(0, true, u64::MAX))
            .map(|b| (b.set, b.bytes))
            .collect()
    }

    #[test]
    fn batches_follow_the_byte_budget() {
        let sized = [(1, 400), (2, 400), (3, 400), (5, 5000), (6, 10), (8, 10)];
        let names = |b: Vec<(String, u64)>| b.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        let batches = sets(&sized, 1000);
        assert_eq!(batches[0].1, 800);
        assert_eq!(names(batches), vec!["1:2", "3", "5", "6,8"]);
        assert_eq!(names(sets(&sized, 1 << 20)), vec!["1:3,5:6,8"]);
        assert!(sets(&[], 1000).is_empty());
        let many: Vec<(u32, u32)> = (1..=12_000).map(|u| (u, 1)).collect();
        assert_eq!(
            names(sets(&many, 1 << 30)),
            vec!["1:5000", "5001:10000", "10001:12000"]
        );
    }

    /// A busy lane gets no batch beyond the budget of bytes not yet
    /// written; an idle one does, so that a large message still goes.
    #[test]
    fn batches_not_yet_written_stay_within_the_budget() {
        let sized = [(1, 600), (2, 600), (3, 5000), (4, 10)];
        let planner = Planner::new(sized.to_vec(), 1000, 1500, Duration::ZERO);
        let first = planner.claim(0, false, u64::MAX).expect("first");
        assert_eq!(first.set, "1");
        assert_eq!(
            planner.claim(1, true, u64::MAX).map(|b| b.set),
            Some("2".into())
        );
        assert!(
            planner.claim(0, true, u64::MAX).is_none(),
            "1200 + 5000 > 1500"
        );
        assert_eq!(
            planner.claim(2, false, u64::MAX).map(|b| b.set),
            Some("3".into())
        );
        planner.written(600);
        planner.written(600);
        planner.written(5000);
        assert_eq!(
            planner.claim(0, true, u64::MAX).map(|b| b.set),
            Some("4".into())
        );
    }

    /// Batches grow with the measured bandwidth-delay product, within the cap.
    #[test]
    fn batches_are_sized_from_the_link() {
        let planner = Planner::new(Vec::new(), 64 << 20, u64::MAX, Duration::from_millis(100));
        assert_eq!(planner.lock().batch_bytes(), MIN_BATCH);
        // 100 Mbit/s: 1.25 MB a round trip; batches of twice that.
        planner.measured(12_500_000, Duration::from_secs(1));
        assert_eq!(planner.lock().batch_bytes(), 2_500_000);
        let planner = Planner::new(Vec::new(), 3 << 20, u64::MAX, Duration::from_secs(1));
        planner.measured(100_000_000, Duration::from_secs(1));
        assert_eq!(planner.lock().batch_bytes(), 3 << 20);
    }
}
