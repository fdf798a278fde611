//! Warnings that can come by the thousand: every connection of a network
//! partition reaching its ping timeout at once, a flood of connections
//! over `max_connections`. Each kind is logged at most once a second per
//! thread (per loop), with the number of like events folded into it since
//! the last line; the metrics counters still count every one.

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// At most one line per kind this often.
const EVERY: Duration = Duration::from_secs(1);

thread_local! {
    /// Per kind: when its last line was written, and events since then.
    static LAST: RefCell<Vec<(&'static str, Instant, u64)>> = const { RefCell::new(Vec::new()) };
}

/// Logs `msg()` at `warn` unless a line of `kind` was written less than a
/// second ago; then only counts it, and the next line says how many were
/// folded. `msg` runs only when a line is written.
pub(crate) fn warn_limited(kind: &'static str, msg: impl FnOnce() -> String) {
    if !log::log_enabled!(log::Level::Warn) {
        return;
    }
    // Gone (a thread-local destructor run after this one's, at the
    // thread's end): nothing to fold into, the line is written.
    let admitted = LAST
        .try_with(|last| admit(&mut last.borrow_mut(), kind, Instant::now()))
        .unwrap_or(Some(0));
    match admitted {
        Some(0) => log::warn!("{}", msg()),
        Some(n) => log::warn!("{} ({n} more like it since the last such line)", msg()),
        None => {}
    }
}

/// Whether an event of `kind` at `now` gets a line: `Some(events folded
/// since the last line)`, or `None` (counted, to be reported by the next).
fn admit(
    last: &mut Vec<(&'static str, Instant, u64)>,
    kind: &'static str,
    now: Instant,
) -> Option<u64> {
    let Some(entry) = last.iter_mut().find(|(k, _, _)| *k == kind) else {
        last.push((kind, now, 0));
        return Some(0);
    };
    if now.saturating_duration_since(entry.1) < EVERY {
        entry.2 += 1;
        return None;
    }
    let folded = entry.2;
    *entry = (kind, now, 0);
    Some(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_second_with_the_count() {
        let mut last = Vec::new();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(admit(&mut last, "a", at(0)), Some(0));
        for ms in [1, 300, 999] {
            assert_eq!(admit(&mut last, "a", at(ms)), None);
        }
        // Another kind is not held back by the first.
        assert_eq!(admit(&mut last, "b", at(500)), Some(0));
        assert_eq!(admit(&mut last, "a", at(1000)), Some(3));
        assert_eq!(admit(&mut last, "a", at(1500)), None);
        assert_eq!(admit(&mut last, "a", at(2600)), Some(1));
        assert_eq!(admit(&mut last, "b", at(2600)), Some(0));
    }

    /// A warning from a thread-local destructor that runs after `LAST`'s
    /// (thread-locals drop in reverse order of first use: `LAST` first
    /// used after it goes before it) is written; it was a panic in a
    /// destructor, which aborts the process. In a child process for that
    /// reason.
    #[test]
    fn a_warning_after_the_thread_s_fold_table_is_gone_is_written() {
        if crate::ioloop::isolated(
            "ioloop::warn::tests::a_warning_after_the_thread_s_fold_table_is_gone_is_written",
        ) {
            return;
        }
        struct WarnsWhenDropped;
        impl Drop for WarnsWhenDropped {
            fn drop(&mut self) {
                warn_limited("late", || "the late line".into());
            }
        }
        thread_local! {
            static WARNS: RefCell<Option<WarnsWhenDropped>> = const { RefCell::new(None) };
        }
        let log = crate::testing::ExpectLog::new("cyclone", "the late line");
        std::thread::spawn(|| {
            WARNS.with(|w| *w.borrow_mut() = Some(WarnsWhenDropped));
            warn_limited("first", || "the first line".into());
        })
        .join()
        .expect("the thread ended");
        assert_eq!(log.logged().len(), 1, "{:?}", log.logged());
    }
}
