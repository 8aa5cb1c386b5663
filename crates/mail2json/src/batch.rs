//! The ordered parallel pipeline: a reader thread cuts the input into batches
//! of at most [`BATCH_BYTES`] (or [`BATCH_MESSAGES`]), rayon converts two
//! batches at a time on all cores, and the main thread writes the records in
//! input order.
//!
//! At most one batch waits in the channel, two are being converted and the
//! reader fills one, so memory is bounded by a few batches, whatever the size
//! of the mbox.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use mailpipe::progress::Progress;
use mailpipe::{Error, Exit, Outcome};
use rayon::prelude::*;

use crate::convert::{self, Options};
use crate::extract::Extractor;
use crate::input::{self, InputKind, Item};
use crate::schema::Record;

pub const BATCH_BYTES: usize = 8 << 20;
pub const BATCH_MESSAGES: usize = 4096;

/// The most conversion threads `-j` accepts: far past any gain on a batch of
/// 8 MB, and low enough that a typo (`-j 20000`) is a usage error, not
/// minutes of thread start-up or a pool that exhausts memory.
pub const MAX_JOBS: usize = 256;

/// Starts the conversion threads: `jobs`, or one per core up to
/// [`MAX_JOBS`]. Done before anything else so that a system that refuses
/// threads (a memory or process limit) is one line and 71 (EX_OSERR), not a
/// panic at the first batch.
pub fn start_threads(jobs: Option<usize>) -> Result<(), Error> {
    let threads = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_JOBS))
    });
    // Each thread waits until all have started before it runs (and
    // allocates): under a memory limit, workers already running while the
    // last ones could not start took the memory that the one-line error
    // needed, and the process aborted instead (seen once in CI). The gate
    // opens when the last thread has started, or closes at the first that
    // cannot start; rayon then waits for all of them to run.
    let gate = Arc::new(Gate::default());
    let mut started = 0;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .spawn_handler(move |thread| {
            let waits = Arc::clone(&gate);
            let mut builder = std::thread::Builder::new();
            if let Some(name) = thread.name() {
                builder = builder.name(name.to_string());
            }
            if let Some(size) = thread.stack_size() {
                builder = builder.stack_size(size);
            }
            let spawned = builder.spawn(move || {
                if waits.wait() {
                    thread.run();
                }
            });
            match spawned {
                Ok(_) => {
                    started += 1;
                    if started == threads {
                        gate.open(true);
                    }
                    Ok(())
                }
                Err(e) => {
                    gate.open(false);
                    Err(e)
                }
            }
        })
        .build_global()
        .map_err(|e| {
            let context = format!("cannot start {threads} conversion threads");
            match std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
                Some(io) => Error::os(context, io),
                None => Error::new(Exit::OsErr, format!("{context}: {e}")),
            }
        })
}

/// Whether the conversion threads may run: unknown until every one has
/// started (then true), or one could not (false: they end at once).
#[derive(Default)]
struct Gate {
    open: Mutex<Option<bool>>,
    changed: Condvar,
}

impl Gate {
    fn open(&self, run: bool) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = Some(run);
        self.changed.notify_all();
    }

    /// Waits for [`Gate::open`]; whether to run.
    fn wait(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(run) = *open {
                return run;
            }
            open = self
                .changed
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// How records are written.
pub struct Output<'a> {
    pub array: bool,
    pub pretty: bool,
    pub extract: Option<&'a Extractor>,
    /// Messages and their bytes read, on a terminal.
    pub progress: &'a Progress,
    /// Input from a pipe (`input::is_live`): each message is converted and
    /// its record flushed as soon as it is read, not once a batch is full.
    pub live: bool,
}

/// A converted item: serialized already, or a record still to finish
/// (extraction must run in order so that suffixes are deterministic).
enum Done {
    Json {
        bytes: Vec<u8>,
        error: Option<String>,
        source: String,
    },
    Record(Box<Record>),
    Failed(Error),
}

/// Runs the whole conversion; the outcome remembers failed messages.
pub fn run(
    inputs: &[PathBuf],
    forced: Option<InputKind>,
    options: &Options,
    output: &Output<'_>,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Vec<Item>>(1);
        let live = output.live;
        let reader = std::thread::Builder::new().name("reader".into());
        reader
            .spawn_scoped(scope, move || {
                let mut batch = Vec::new();
                let mut bytes = 0usize;
                let mut sink = |item: Item| {
                    if let Item::Message { data, .. } = &item {
                        bytes += data.len();
                    }
                    batch.push(item);
                    if live || bytes >= BATCH_BYTES || batch.len() >= BATCH_MESSAGES {
                        bytes = 0;
                        return tx.send(std::mem::take(&mut batch)).is_ok();
                    }
                    true
                };
                input::read_all(inputs, forced, &mut sink);
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
            })
            .map_err(|e| Error::os("cannot start the reader thread", &e))?;
        consume(rx, options, output, out)
    })
}

/// Batches are converted two at a time: the next one starts as soon as it
/// is read, so the cores that finish the last (largest) messages of one
/// batch early take up the next, and records are written while it converts.
/// A live input waits for each batch (one message) and flushes it at once.
fn consume(
    rx: Receiver<Vec<Item>>,
    options: &Options,
    output: &Output<'_>,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let mut writer = Records {
        outcome: Outcome::default(),
        first: true,
        output,
        out,
    };
    if output.array {
        writer.out.write_all(b"[").map_err(write_err)?;
    }
    let depth = if output.live { 1 } else { 2 };
    rayon::in_place_scope(|scope| -> Result<(), Error> {
        let mut pending = VecDeque::new();
        for batch in rx {
            let (tx, done) = sync_channel(1);
            scope.spawn(move |_| {
                let _ = tx.send(convert_batch(batch, options, output));
            });
            pending.push_back(done);
            while pending.len() >= depth {
                writer.write(pending.pop_front())?;
            }
        }
        while !pending.is_empty() {
            writer.write(pending.pop_front())?;
        }
        Ok(())
    })?;
    if output.array {
        writer.out.write_all(b"]\n").map_err(write_err)?;
    }
    writer.out.flush().map_err(write_err)?;
    Ok(writer.outcome)
}

fn write_err(e: std::io::Error) -> Error {
    Error::io("writing stdout", e)
}

fn convert_batch(batch: Vec<Item>, options: &Options, output: &Output<'_>) -> Vec<Done> {
    batch
        .into_par_iter()
        .map(|item| match item {
            Item::Failed(e) => Done::Failed(e),
            Item::Message {
                source,
                data,
                defect,
            } => {
                let mut record = convert::convert_safely(&data, source, options);
                record.defects.extend(defect.map(str::to_string));
                // Counted as converted, not as read: the reader runs a whole
                // batch ahead, and a display fed by it would stand still
                // while the conversion, the real work, goes on.
                output.progress.advance(1, data.len() as u64);
                if output.extract.is_some() {
                    Done::Record(Box::new(record))
                } else {
                    serialize(&record, output.pretty)
                }
            }
        })
        .collect()
}

/// Writes converted batches in input order.
struct Records<'a, 'o> {
    outcome: Outcome,
    first: bool,
    output: &'a Output<'o>,
    out: &'a mut dyn Write,
}

impl Records<'_, '_> {
    /// The records of the batch converting into `done`.
    fn write(&mut self, done: Option<Receiver<Vec<Done>>>) -> Result<(), Error> {
        // A conversion that panicked outside convert_safely sent nothing.
        let Some(done) = done.and_then(|d| d.recv().ok()) else {
            return Err(Error::new(
                Exit::Software,
                "internal error: a batch of messages was not converted",
            ));
        };
        let output = self.output;
        for d in done {
            let (bytes, error, source) = match d {
                Done::Failed(e) => {
                    mailpipe::exit::report("mail2json", &e);
                    self.outcome.record(e.exit());
                    continue;
                }
                Done::Record(mut record) => {
                    if let Some(x) = output.extract {
                        extract(&mut record, x, &mut self.outcome);
                    }
                    match serialize(&record, output.pretty) {
                        Done::Json {
                            bytes,
                            error,
                            source,
                        } => (bytes, error, source),
                        _ => continue,
                    }
                }
                Done::Json {
                    bytes,
                    error,
                    source,
                } => (bytes, error, source),
            };
            if let Some(error) = error {
                mailpipe::exit::report("mail2json", &Error::data(format!("{source}: {error}")));
                self.outcome.record(Exit::Data);
            }
            if output.array && !self.first {
                self.out.write_all(b",\n").map_err(write_err)?;
            }
            self.first = false;
            self.out.write_all(&bytes).map_err(write_err)?;
            if !output.array {
                self.out.write_all(b"\n").map_err(write_err)?;
            }
        }
        if output.live {
            self.out.flush().map_err(write_err)?;
        }
        Ok(())
    }
}

fn serialize(record: &Record, pretty: bool) -> Done {
    // Room for the usual record at once: its text and HTML, and headers;
    // growing from serde_json's 128 bytes copied each record several times.
    let text = record.text.as_ref().map_or(0, String::len);
    let html = record.html.as_ref().map_or(0, String::len);
    let mut bytes = Vec::with_capacity(2048 + (text + html) * 9 / 8);
    let result = if pretty {
        serde_json::to_writer_pretty(&mut bytes, record)
    } else {
        serde_json::to_writer(&mut bytes, record)
    }
    .map(|()| bytes);
    let source = match record.source.offset {
        Some(o) => format!("{} at byte {o}", record.source.path),
        None => record.source.path.clone(),
    };
    match result {
        Ok(bytes) => Done::Json {
            bytes,
            error: record.error.clone(),
            source,
        },
        Err(e) => Done::Failed(Error::new(
            Exit::Software,
            format!("{source}: cannot write JSON: {e}"),
        )),
    }
}

fn extract(record: &mut Record, extractor: &Extractor, outcome: &mut Outcome) {
    for a in &mut record.attachments {
        if let Some(content) = a.content.take() {
            match extractor.write(a.filename.as_deref(), &a.content_type, &content) {
                Ok(path) => a.path = Some(path.to_string_lossy().into_owned()),
                Err(e) => {
                    let e = Error::io("--extract", e);
                    mailpipe::exit::report("mail2json", &e);
                    outcome.record(e.exit());
                }
            }
        }
        // An attached message's attachments are written too, after it.
        if let Some(inner) = &mut a.message {
            extract(inner, extractor, outcome);
        }
    }
}
