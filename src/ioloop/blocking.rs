//! Tornado's `IOLoop.set_blocking_log_threshold`: a warning when the loop
//! stays in one iteration too long, which means some callback, timer,
//! task or handler is doing blocking work on the loop's thread while every
//! connection waits.
//!
//! The loop publishes what it is doing (a phase) and counts its
//! iterations, with a relaxed atomic store at each phase change; a watch
//! thread, started only when a threshold is set, samples both a few times
//! per threshold. Tornado arms `SIGALRM` and logs the stack; a Rust thread
//! cannot read another's stack, so the log names the phase instead.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handle::Shared;
use super::IOLoop;

/// What the loop's thread is doing, as published in [`Shared::phase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Waiting in `poll`, or not running: not the loop's time.
    Idle = 0,
    Callbacks,
    Timers,
    /// Connection deadlines (ping, close, idle, handshake).
    Sweep,
    Tasks,
    /// Writing what connections queued (and the handler callbacks a
    /// write may lead to: a drained queue, messages a WebSocket kept over
    /// its `write_high_water`).
    Flush,
    /// Readiness events: connections' and handlers' I/O and callbacks.
    Events,
}

impl Phase {
    fn from_u8(n: u8) -> Phase {
        match n {
            1 => Phase::Callbacks,
            2 => Phase::Timers,
            3 => Phase::Sweep,
            4 => Phase::Tasks,
            5 => Phase::Flush,
            6 => Phase::Events,
            _ => Phase::Idle,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Callbacks => "running callbacks",
            Phase::Timers => "running timers",
            Phase::Sweep => "checking connection deadlines",
            Phase::Tasks => "polling spawned tasks",
            Phase::Flush => "flushing connections",
            Phase::Events => "serving connections (handlers and add_handler callbacks)",
        }
    }
}

/// The loop's side: what the watch reads.
#[derive(Default)]
pub(crate) struct Progress {
    phase: AtomicU8,
    iteration: AtomicU64,
    /// Bumped whenever the threshold changes: an older watch ends.
    generation: AtomicU64,
}

impl Progress {
    /// The loop entered `phase`.
    #[inline]
    pub(crate) fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// A new iteration began.
    #[inline]
    pub(crate) fn next_iteration(&self) {
        self.iteration.fetch_add(1, Ordering::Relaxed);
    }
}

impl IOLoop {
    /// Logs a warning when the loop stays busy in one iteration for longer
    /// than `threshold` (Tornado's `set_blocking_log_threshold`;
    /// asyncio's `slow_callback_duration`): a callback, timer, task or
    /// handler on the loop's thread is then doing blocking work, and every
    /// connection waits for it. The warning names what the loop was doing
    /// (running timers, serving connections, ...), and a second one says
    /// how long it lasted once the loop moves on. `None` stops watching.
    ///
    /// A thread samples the loop a few times per threshold while a
    /// threshold is set (the loop's own cost is a few relaxed atomic
    /// stores per iteration, whether watched or not). Blocking work
    /// belongs in [`run_in_executor`](Self::run_in_executor).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cyclone::ioloop::IOLoop;
    ///
    /// // Tornado: IOLoop.current().set_blocking_log_threshold(0.1)
    /// IOLoop::current().set_blocking_log_threshold(Some(Duration::from_millis(100)));
    /// ```
    pub fn set_blocking_log_threshold(&self, threshold: Option<Duration>) {
        let shared = Arc::clone(&self.inner.shared);
        let generation = shared.progress.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(threshold) = threshold.filter(|t| !t.is_zero()) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("cyclone-blocking-watch".into())
            .spawn(move || watch(&shared, generation, threshold));
        if let Err(e) = spawned {
            log::error!("set_blocking_log_threshold: cannot start the watch thread: {e}");
        }
    }
}

/// Samples the loop's progress until the loop is gone or the threshold
/// changes.
fn watch(shared: &Shared, generation: u64, threshold: Duration) {
    let p = &shared.progress;
    let period = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(250));
    // The iteration seen busy, since when, and whether it was reported.
    let mut busy: Option<(u64, Instant, bool)> = None;
    loop {
        std::thread::sleep(period);
        if shared.closed.load(Ordering::SeqCst) || p.generation.load(Ordering::SeqCst) != generation
        {
            return;
        }
        let phase = Phase::from_u8(p.phase.load(Ordering::Relaxed));
        let iteration = p.iteration.load(Ordering::Relaxed);
        let now = Instant::now();
        match busy {
            Some((seen, since, reported)) if seen == iteration && phase != Phase::Idle => {
                if !reported && now - since >= threshold {
                    log::warn!(
                        "IOLoop blocked for more than {} ms ({}): blocking work on the loop's \
                         thread holds up every connection; IOLoop::run_in_executor runs it on \
                         a thread pool",
                        threshold.as_millis(),
                        phase.what()
                    );
                    busy = Some((seen, since, true));
                }
            }
            _ => {
                if let Some((_, since, true)) = busy {
                    log::warn!(
                        "IOLoop was blocked for about {} ms",
                        (now - since).as_millis()
                    );
                }
                busy = (phase != Phase::Idle).then_some((iteration, now, false));
            }
        }
    }
}
