//! User timers (`call_later`, `call_at`, `PeriodicCallback`): one binary
//! heap ordered by (deadline, sequence) with lazy cancellation — a cancel
//! removes the callback from a map in O(1) and the heap entry is skipped
//! when it surfaces; the heap is compacted when most entries are stale
//! (calloop's approach, not `retain` per cancel).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Handle returned by `call_later`/`call_at`, for `remove_timeout`. It names
/// its loop too: given to another loop's `remove_timeout` it cancels nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeoutHandle {
    queue: u32,
    seq: u64,
}

pub(crate) type TimerCallback = Box<dyn FnOnce()>;

pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    live: HashMap<u64, TimerCallback>,
    next_seq: u64,
    /// Which queue (loop) this is, for the handles it gives out.
    id: u32,
    /// Due timers set during the current pass, set aside by
    /// [`pop_due`](Self::pop_due) so the older ones behind them still run;
    /// back in the heap at [`unpark`](Self::unpark).
    parked: Vec<(Instant, u64)>,
}

impl Default for TimerQueue {
    fn default() -> Self {
        static NEXT_QUEUE: AtomicU32 = AtomicU32::new(0);
        TimerQueue {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            next_seq: 0,
            id: NEXT_QUEUE.fetch_add(1, Ordering::Relaxed),
            parked: Vec::new(),
        }
    }
}

impl TimerQueue {
    pub(crate) fn insert(&mut self, deadline: Instant, cb: TimerCallback) -> TimeoutHandle {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((deadline, seq)));
        self.live.insert(seq, cb);
        TimeoutHandle {
            queue: self.id,
            seq,
        }
    }

    /// Cancels a timer; returns its callback if it was still pending (`None`
    /// for a handle from another loop). The caller drops the callback once
    /// the queue is no longer borrowed: what it captured may touch timers.
    pub(crate) fn cancel(&mut self, h: TimeoutHandle) -> Option<TimerCallback> {
        if h.queue != self.id {
            return None;
        }
        let found = self.live.remove(&h.seq);
        if self.heap.len() > 64 && self.heap.len() > 4 * self.live.len() {
            let live = &self.live;
            self.heap.retain(|Reverse((_, s))| live.contains_key(s));
        }
        found
    }

    /// Whether `h` is a timer of this queue that has neither fired nor
    /// been cancelled.
    pub(crate) fn is_pending(&self, h: TimeoutHandle) -> bool {
        h.queue == self.id && self.live.contains_key(&h.seq)
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.unpark();
        while let Some(Reverse((d, s))) = self.heap.peek() {
            if self.live.contains_key(s) {
                return Some(*d);
            }
            self.heap.pop();
        }
        None
    }

    /// The sequence number the next timer will get: timers inserted from
    /// now on are at or above it.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Pops one timer due at `now` that was inserted before sequence number
    /// `before`, earliest first (equal deadlines in insertion order). The
    /// loop takes `before` from [`next_seq`](Self::next_seq) when a tick
    /// starts, before its callbacks, so a timer set by a callback or a
    /// timer callback — even
    /// `call_later(0)` or a `call_at` in the past — waits for the next
    /// iteration instead of running in the same pass, and a chain of them
    /// cannot starve callbacks, I/O or the other due timers (Tornado and
    /// asyncio collect the due timers first, too). Newer due timers met on
    /// the way are parked until [`unpark`](Self::unpark).
    pub(crate) fn pop_due(&mut self, now: Instant, before: u64) -> Option<TimerCallback> {
        loop {
            let Reverse((d, s)) = *self.heap.peek()?;
            if d > now {
                return None;
            }
            self.heap.pop();
            if s >= before {
                self.parked.push((d, s));
                continue;
            }
            if let Some(cb) = self.live.remove(&s) {
                return Some(cb);
            }
        }
    }

    /// Puts the timers [`pop_due`](Self::pop_due) parked back in the heap
    /// (at the end of a pass; also before the next one, in case a panic
    /// ended this one).
    pub(crate) fn unpark(&mut self) {
        self.heap.extend(self.parked.drain(..).map(Reverse));
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}
