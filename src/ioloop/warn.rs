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
    match LAST.with(|last| admit(&mut last.borrow_mut(), kind, Instant::now())) {
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
}
