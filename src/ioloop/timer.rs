//! User timers (`call_later`, `call_at`, `PeriodicCallback`): one binary
//! heap ordered by (deadline, sequence) with lazy cancellation — a cancel
//! removes the callback from a map in O(1) and the heap entry is skipped
//! when it surfaces; the heap is compacted when most entries are stale
//! (calloop's approach, not `retain` per cancel).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// Handle returned by `call_later`/`call_at`, for `remove_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeoutHandle(pub(crate) u64);

pub(crate) type TimerCallback = Box<dyn FnOnce()>;

#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    live: HashMap<u64, TimerCallback>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) fn insert(&mut self, deadline: Instant, cb: TimerCallback) -> TimeoutHandle {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((deadline, seq)));
        self.live.insert(seq, cb);
        TimeoutHandle(seq)
    }

    /// Cancels a timer; returns whether it was still pending.
    pub(crate) fn cancel(&mut self, h: TimeoutHandle) -> bool {
        let found = self.live.remove(&h.0).is_some();
        if self.heap.len() > 64 && self.heap.len() > 4 * self.live.len() {
            let live = &self.live;
            self.heap.retain(|Reverse((_, s))| live.contains_key(s));
        }
        found
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((d, s))) = self.heap.peek() {
            if self.live.contains_key(s) {
                return Some(*d);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops one timer due at `now`, earliest first (equal deadlines in
    /// insertion order).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerCallback> {
        loop {
            let Reverse((d, s)) = *self.heap.peek()?;
            if d > now {
                return None;
            }
            self.heap.pop();
            if let Some(cb) = self.live.remove(&s) {
                return Some(cb);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}
