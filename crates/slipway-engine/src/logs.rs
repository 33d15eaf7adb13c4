//! A validation's log: every kept line is masked, numbered and written in batches, off the
//! hot path of the command that produced it. The log is bounded whatever the code prints:
//! each step keeps its first lines as they come, then only a ring of its last ones, and at
//! the step's end a marker says how much was dropped before the tail is written. A line past
//! the head costs a copy into the ring: no masking, no database write, no event.

use slipway_core::validation::StepName;
use slipway_core::{Masker, ValidationId};
use slipway_store::Store;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

const BATCH: usize = 512;
/// Kept lines waiting for the writer past which a command's output waits (back-pressure).
const QUEUED_MAX: usize = 4 * BATCH;
/// The validation's steps together keep at most this many times a step's head and tail.
const VALIDATION_HEADS: u64 = 2;

/// How much of each step's log is kept: the first half as it comes, the last half at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub lines: u64,
    pub bytes: u64,
}

impl LogLimits {
    pub fn of(limits: &slipway_core::limits::SandboxLimits) -> Self {
        Self {
            lines: limits.log_lines,
            bytes: limits.log_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// One step's share of the log.
#[derive(Default)]
struct StepLog {
    head_lines: u64,
    head_bytes: u64,
    /// Once a line went to the tail, every later one does (the order is kept).
    full: bool,
    /// The last lines, unmasked until they are written.
    tail: VecDeque<String>,
    tail_bytes: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

struct State {
    limits: LogLimits,
    steps: HashMap<StepName, StepLog>,
    /// Lines of all steps' heads so far (the validation's cap).
    head_lines: u64,
    head_bytes: u64,
    /// Masked lines for the writer, in order.
    queue: VecDeque<(StepName, String)>,
    /// The last lines of each step kept for the judge (none unless asked), unmasked.
    recent: HashMap<StepName, VecDeque<String>>,
    recent_lines: usize,
}

struct Shared {
    state: Mutex<State>,
    masker: Masker,
    /// Lines were queued.
    queued: Notify,
    /// The writer took lines off the queue.
    room: Notify,
}

/// Where a validation's output goes. Cheap to clone; the log ends when every clone is gone.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
    /// Never sent on: the writer sees every clone dropped when its receiver closes.
    _alive: mpsc::Sender<()>,
}

/// The writer task; `finish` flushes everything.
pub struct LogWriter {
    handle: tokio::task::JoinHandle<()>,
}

impl LogSink {
    pub fn start(
        store: Store,
        validation: ValidationId,
        masker: Masker,
        limits: LogLimits,
    ) -> (Self, LogWriter) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                limits,
                steps: HashMap::new(),
                head_lines: 0,
                head_bytes: 0,
                queue: VecDeque::new(),
                recent: HashMap::new(),
                recent_lines: 0,
            }),
            masker,
            queued: Notify::new(),
            room: Notify::new(),
        });
        let (alive, gone) = mpsc::channel(1);
        let handle = tokio::spawn(write(store, validation, shared.clone(), gone));
        (
            Self {
                shared,
                _alive: alive,
            },
            LogWriter { handle },
        )
    }

    /// The limits for lines from now on (once the pipeline's `[sandbox]` is known).
    pub fn set_limits(&self, limits: LogLimits) {
        self.shared.lock().limits = limits;
    }

    /// Keeps each step's last `lines` lines from now on, for [`LogSink::recent`].
    pub fn keep_recent(&self, lines: usize) {
        self.shared.lock().recent_lines = lines;
    }

    /// A step's last lines (as many as [`LogSink::keep_recent`] asked), masked.
    pub fn recent(&self, step: StepName) -> Vec<String> {
        let state = self.shared.lock();
        let lines = state.recent.get(&step).into_iter().flatten();
        lines.map(|line| self.mask(line)).collect()
    }

    /// Masks and records one line of a step (or keeps it for the tail, past the head).
    pub fn line(&self, step: StepName, line: &str) {
        if self.shared.offer(step, line) {
            self.shared.queued.notify_one();
        }
    }

    /// Forwards a process's lines to `step` until the process's output ends; while the
    /// writer is behind, stops reading them (the process then waits on its pipe).
    pub fn follow(
        &self,
        step: StepName,
        mut lines: mpsc::Receiver<String>,
    ) -> tokio::task::JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                sink.line(step, &line);
                sink.room().await;
            }
        })
    }

    /// Waits while the writer has `QUEUED_MAX` lines or more to write.
    async fn room(&self) {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.shared.lock().queue.len() < QUEUED_MAX {
                return;
            }
            room.await;
        }
    }

    /// The step ended: its dropped lines are counted in a marker and its tail written.
    pub fn end_step(&self, step: StepName) {
        self.shared.flush(step);
        self.shared.queued.notify_one();
    }

    /// Masks any text with this validation's secrets.
    pub fn mask(&self, text: &str) -> String {
        self.shared.masker.mask(text).into_owned()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `line` when it is in its step's head; `false` when it went to the tail.
    fn offer(&self, step: StepName, line: &str) -> bool {
        let mut state = self.lock();
        if state.recent_lines > 0 {
            let keep = state.recent_lines;
            let recent = state.recent.entry(step).or_default();
            recent.push_back(line.to_owned());
            if recent.len() > keep {
                recent.pop_front();
            }
        }
        let limits = state.limits;
        let bytes = line.len() as u64;
        let room = state.head_lines < limits.lines * VALIDATION_HEADS
            && state.head_bytes + bytes <= limits.bytes * VALIDATION_HEADS;
        let log = state.steps.entry(step).or_default();
        log.full = log.full
            || !room
            || log.head_lines >= limits.lines / 2
            || log.head_bytes + bytes > limits.bytes / 2;
        if log.full {
            log.tail.push_back(line.to_owned());
            log.tail_bytes += bytes;
            while log.tail.len() > 1
                && (log.tail.len() as u64 > limits.lines - limits.lines / 2
                    || log.tail_bytes > limits.bytes - limits.bytes / 2)
            {
                let gone = log.tail.pop_front().expect("not empty").len() as u64;
                log.tail_bytes -= gone;
                log.dropped_lines += 1;
                log.dropped_bytes += gone;
            }
            return false;
        }
        log.head_lines += 1;
        log.head_bytes += bytes;
        state.head_lines += 1;
        state.head_bytes += bytes;
        let masked = self.masker.mask(line).into_owned();
        state.queue.push_back((step, masked));
        true
    }

    /// Queues `step`'s marker (when lines were dropped) and its tail, masked.
    fn flush(&self, step: StepName) {
        let mut state = self.lock();
        let limits = state.limits;
        let Some(log) = state.steps.get_mut(&step) else {
            return;
        };
        let tail = std::mem::take(&mut log.tail);
        log.tail_bytes = 0;
        let dropped = std::mem::take(&mut log.dropped_lines);
        let dropped_bytes = std::mem::take(&mut log.dropped_bytes);
        let mut lines = Vec::with_capacity(tail.len() + 1);
        if dropped > 0 {
            lines.push(marker(dropped, dropped_bytes, tail.len(), limits));
        }
        lines.extend(tail.iter().map(|line| self.masker.mask(line).into_owned()));
        state
            .queue
            .extend(lines.into_iter().map(|line| (step, line)));
    }

    /// Every step's tail, at the log's end.
    fn flush_all(&self) {
        let steps: Vec<StepName> = self.lock().steps.keys().copied().collect();
        for step in steps {
            self.flush(step);
        }
    }
}

/// What a reader of a capped log is told where lines are missing.
fn marker(lines: u64, bytes: u64, tail: usize, limits: LogLimits) -> String {
    let size = if bytes < 1_048_576 {
        format!("{} KB", bytes.div_ceil(1_024))
    } else {
        format!("{:.1} MB", bytes as f64 / 1_048_576.0)
    };
    format!(
        "[slipway] {lines} lines ({size}) of this step's output were dropped here; its last \
         {tail} lines follow (the log keeps {} lines and {} MB per step: [sandbox] log_lines \
         and log_mb)",
        limits.lines,
        limits.bytes / 1_048_576,
    )
}

/// Writes queued lines in batches until every sink is gone and the tails are written.
async fn write(
    store: Store,
    validation: ValidationId,
    shared: Arc<Shared>,
    mut gone: mpsc::Receiver<()>,
) {
    let mut seq = match store.last_log_seq(validation).await {
        Ok(seq) => seq,
        Err(error) => {
            tracing::error!(%error, validation = %validation, "log unavailable");
            return;
        }
    };
    let mut ended = false;
    loop {
        // Lines that arrive while a write is in flight make the next batch bigger.
        let batch: Vec<(StepName, String)> = {
            let mut state = shared.lock();
            let n = state.queue.len().min(BATCH);
            state.queue.drain(..n).collect()
        };
        if !batch.is_empty() {
            shared.room.notify_waiters();
            match store.append_logs(validation, seq, &batch).await {
                Ok(last) => seq = last,
                Err(error) => tracing::error!(%error, validation = %validation, "log lines lost"),
            }
            continue;
        }
        if ended {
            return;
        }
        tokio::select! {
            _ = shared.queued.notified() => {}
            None = gone.recv() => {
                shared.flush_all();
                ended = true;
            }
        }
    }
}

impl LogWriter {
    /// Waits until every line sent by `sink` (dropped by then) is stored.
    pub async fn finish(self, sink: LogSink) {
        drop(sink);
        let _ = self.handle.await;
    }
}
