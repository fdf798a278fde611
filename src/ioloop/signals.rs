//! Unix signals delivered as loop callbacks (asyncio's
//! `loop.add_signal_handler`), without a thread.
//!
//! The OS-level handler (installed through `signal-hook`) only stores `true`
//! in a per-signal flag and writes a byte to a socket pair whose read end the
//! loop polls under its own token; the loop then runs the callbacks of the
//! signals whose flag is set. The usual alternative, a thread blocked in
//! `sigwait` or on a pipe (the `ctrlc` crate), costs every socket syscall of
//! the process a file reference-count round trip: the kernel takes the
//! cheap, uncounted file lookup only while the process has one thread.
//! The gain is small and close to this VM's noise: scenario b of the bench
//! harness (window-1 echo, 100 connections), seven alternating pairs,
//! median 158 k msgs/s with the `ctrlc` thread and 163 k without.
//!
//! Signal dispositions are process-wide while loops are per thread, so a
//! process-wide count per signal remembers how many loops handle it; when
//! the last handler goes, the signal's default action (e.g. terminate on
//! SIGINT) is restored, as asyncio's `remove_signal_handler` does — except
//! for a signal the process ignored before cyclone first handled it, which
//! goes back to ignored: SIGPIPE, which Rust programs start with ignored,
//! and SIGHUP under `nohup`. (asyncio restores the default there too, so a
//! daemon started with `nohup` that stops handling SIGHUP dies at the next
//! hang-up.) The earlier disposition is read from `SigIgn` in
//! `/proc/self/status`, which needs no `unsafe` `sigaction` query; where
//! there is no such file, only SIGPIPE is taken as ignored.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mio::{Interest, Registry, Token};
use signal_hook::SigId;

use super::IOLoop;

/// The token of a loop's signal socket (slot tokens never reach it: it
/// would take a slot index of 2^32 - 2 with generation 2^32 - 1).
pub(super) const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

type Callback = Box<dyn FnMut()>;

struct Entry {
    signal: c_int,
    fired: Arc<AtomicBool>,
    hooks: [SigId; 2],
    /// `None` while the callback runs (it may replace or remove itself).
    callback: Option<Callback>,
}

/// One loop's signal state: the socket pair and the handled signals.
pub(super) struct Signals {
    rx: mio::net::UnixStream,
    tx: std::os::unix::net::UnixStream,
    entries: Vec<Entry>,
}

/// Per signal: how the process treated it before cyclone first hooked it,
/// how many loops handle it, and the hook that emulates the default action
/// once none does.
struct Disposition {
    /// Ignored before cyclone's first hook (signal-hook's handler, once
    /// installed, stays for the life of the process: with no hook left it
    /// does nothing, which is what ignoring it was).
    ignored: bool,
    loops: usize,
    default_hook: Option<SigId>,
}

type ProcessTable = HashMap<c_int, Disposition>;
static PROCESS: Mutex<Option<ProcessTable>> = Mutex::new(None);

fn process_table<R>(f: impl FnOnce(&mut ProcessTable) -> R) -> R {
    let mut g = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Whether the process ignores `signal` now, from the `SigIgn` mask in
/// `/proc/self/status`; without that file, true for SIGPIPE only (Rust's
/// runtime ignores it at startup).
fn ignored_now(signal: c_int) -> bool {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| sig_ign_mask(&status));
    match mask {
        Some(mask) => (1..=64).contains(&signal) && (mask >> (signal - 1)) & 1 == 1,
        None => signal == libc::SIGPIPE,
    }
}

/// The `SigIgn:` line of a `/proc/<pid>/status` text: bit `n - 1` is set
/// when signal `n` is ignored.
fn sig_ign_mask(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Before the first hook on `signal` in this process: remember whether it
/// was ignored (later calls find signal-hook's handler in place).
fn before_first_hook(signal: c_int) {
    process_table(|t| {
        t.entry(signal).or_insert_with(|| Disposition {
            ignored: ignored_now(signal),
            loops: 0,
            default_hook: None,
        });
    });
}

fn loop_added(signal: c_int) {
    process_table(|t| {
        let e = t.get_mut(&signal).expect("before_first_hook ran");
        e.loops += 1;
        if let Some(id) = e.default_hook.take() {
            signal_hook::low_level::unregister(id);
        }
    });
}

fn loop_removed(signal: c_int) {
    process_table(|t| {
        let Some(e) = t.get_mut(&signal) else { return };
        e.loops = e.loops.saturating_sub(1);
        // A signal ignored before stays ignored. For SIGPIPE that matters
        // most: with its default back, a write to a peer that reset the
        // connection would kill the process (`writev` passes no
        // MSG_NOSIGNAL).
        if e.loops == 0 && e.default_hook.is_none() && !e.ignored {
            // Unknown (e.g. real-time) signals have no default to emulate;
            // they stay ignored, which is their state under signal-hook.
            e.default_hook = signal_hook::flag::register_conditional_default(
                signal,
                Arc::new(AtomicBool::new(true)),
            )
            .ok();
        }
    });
}

impl Signals {
    fn new(registry: &Registry) -> io::Result<Signals> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let mut rx = mio::net::UnixStream::from_std(rx);
        registry.register(&mut rx, SIGNAL_TOKEN, Interest::READABLE)?;
        Ok(Signals {
            rx,
            tx,
            entries: Vec::new(),
        })
    }

    fn unhook(e: &Entry) {
        for id in e.hooks {
            signal_hook::low_level::unregister(id);
        }
        loop_removed(e.signal);
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for e in &self.entries {
            Signals::unhook(e);
        }
    }
}

impl IOLoop {
    /// Calls `callback` on this loop's thread each time `signal` arrives
    /// (asyncio's `loop.add_signal_handler`; e.g. `libc::SIGINT` for
    /// Ctrl-C, then [`crate::shutdown`] from the callback). A second call
    /// for the same signal replaces the callback. Signals that arrive
    /// together may be reported once. No thread is started: see the module
    /// docs for why that matters to a single-threaded server.
    ///
    /// A panic in `callback` is caught, logged at error level and counted in
    /// [`Counter::CallbackPanics`](super::Counter::CallbackPanics); the
    /// callback stays installed for the next delivery.
    ///
    /// # Errors
    /// `InvalidInput` for the signals no process may handle (SIGKILL,
    /// SIGSTOP, SIGILL, SIGFPE, SIGSEGV); an OS error if the socket pair or
    /// the handler cannot be set up.
    pub fn add_signal_handler(
        &self,
        signal: c_int,
        callback: impl FnMut() + 'static,
    ) -> io::Result<()> {
        if signal <= 0
            || signal > libc::SIGRTMAX()
            || signal_hook::consts::FORBIDDEN.contains(&signal)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {signal} cannot be handled"),
            ));
        }
        let mut slot = self.inner.signals.borrow_mut();
        if slot.is_none() {
            *slot = Some(Signals::new(&self.inner.registry)?);
        }
        let sigs = slot.as_mut().unwrap_or_else(|| unreachable!());
        if let Some(e) = sigs.entries.iter_mut().find(|e| e.signal == signal) {
            e.callback = Some(Box::new(callback));
            return Ok(());
        }
        before_first_hook(signal);
        let fired = Arc::new(AtomicBool::new(false));
        let flag = signal_hook::flag::register(signal, fired.clone())?;
        let wake = match sigs
            .tx
            .try_clone()
            .and_then(|tx| signal_hook::low_level::pipe::register(signal, tx))
        {
            Ok(id) => id,
            Err(e) => {
                signal_hook::low_level::unregister(flag);
                return Err(e);
            }
        };
        loop_added(signal);
        sigs.entries.push(Entry {
            signal,
            fired,
            hooks: [flag, wake],
            callback: Some(Box::new(callback)),
        });
        Ok(())
    }

    /// Stops handling `signal` on this loop; returns whether it was
    /// handled. When no loop handles it any more, its default action is
    /// back (SIGINT terminates again), unless the process ignored it
    /// before cyclone first handled it: then it is ignored again (SIGPIPE,
    /// ignored as every Rust program starts; SIGHUP under `nohup`).
    pub fn remove_signal_handler(&self, signal: c_int) -> bool {
        let mut slot = self.inner.signals.borrow_mut();
        let Some(sigs) = slot.as_mut() else {
            return false;
        };
        match sigs.entries.iter().position(|e| e.signal == signal) {
            Some(i) => {
                let e = sigs.entries.swap_remove(i);
                Signals::unhook(&e);
                true
            }
            None => false,
        }
    }

    /// The signal socket is readable: drain it, then run the callbacks of
    /// the signals that fired (flags are cleared before the callbacks run,
    /// so a signal arriving meanwhile is reported on the next tick).
    pub(super) fn run_signal_handlers(&self) {
        let fired: Vec<(c_int, Callback)> = {
            let mut slot = self.inner.signals.borrow_mut();
            let Some(sigs) = slot.as_mut() else {
                return;
            };
            let mut sink = [0u8; 64];
            while matches!((&sigs.rx).read(&mut sink), Ok(n) if n > 0) {}
            sigs.entries
                .iter_mut()
                .filter(|e| e.fired.swap(false, Ordering::SeqCst))
                .filter_map(|e| e.callback.take().map(|cb| (e.signal, cb)))
                .collect()
        };
        for (signal, mut cb) in fired {
            // A panic is logged and the callback kept, as for a timer that
            // fires again: the next delivery of the signal calls it again.
            self.guard(SignalKind(signal), &mut cb);
            let mut slot = self.inner.signals.borrow_mut();
            if let Some(e) = slot
                .as_mut()
                .and_then(|s| s.entries.iter_mut().find(|e| e.signal == signal))
            {
                // Unless the callback installed a replacement.
                if e.callback.is_none() {
                    e.callback = Some(cb);
                }
            }
        }
    }
}

/// Names a signal callback in the log line of its panic (formatted only
/// then).
struct SignalKind(c_int);

impl std::fmt::Display for SignalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signal handler for signal {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    // Tests in this binary run on several threads: each uses its own signal
    // so that one test's signal never reaches another's handler.

    fn spin(lp: &IOLoop, until: impl Fn() -> bool) {
        for _ in 0..200 {
            if until() {
                return;
            }
            lp.run_once(Some(Duration::from_millis(10))).unwrap();
        }
    }

    /// Raises `signal`, runs the loop until `n` reads `want` (bounded), and
    /// checks that it does.
    fn raise_and_expect(lp: &IOLoop, signal: c_int, n: &Cell<i32>, want: i32) {
        signal_hook::low_level::raise(signal).unwrap();
        spin(lp, || n.get() == want);
        assert_eq!(n.get(), want);
    }

    #[test]
    fn callback_runs_on_the_loop_for_each_signal_and_stops_after_removal() {
        let lp = IOLoop::current();
        let n = Rc::new(Cell::new(0));
        let n2 = n.clone();
        lp.add_signal_handler(libc::SIGUSR1, move || n2.set(n2.get() + 1))
            .unwrap();
        raise_and_expect(&lp, libc::SIGUSR1, &n, 1);
        raise_and_expect(&lp, libc::SIGUSR1, &n, 2);
        // No signal: the callback does not run on its own.
        lp.run_once(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(n.get(), 2);
        assert!(lp.remove_signal_handler(libc::SIGUSR1));
        assert!(!lp.remove_signal_handler(libc::SIGUSR1));
        // (SIGUSR1's default action, terminating, is back now: not raised
        // until handled again.)
        let lp2 = lp.clone();
        let n3 = n.clone();
        lp.add_signal_handler(libc::SIGUSR1, move || {
            n3.set(n3.get() + 10);
            // Replacing the handler from inside it keeps the replacement.
            let n4 = n3.clone();
            lp2.add_signal_handler(libc::SIGUSR1, move || n4.set(n4.get() + 100))
                .unwrap();
        })
        .unwrap();
        raise_and_expect(&lp, libc::SIGUSR1, &n, 12);
        raise_and_expect(&lp, libc::SIGUSR1, &n, 112);
        assert!(lp.remove_signal_handler(libc::SIGUSR1));
    }

    /// Rust ignores SIGPIPE at startup (writes to a reset peer fail with
    /// EPIPE); handling it and then removing the handler must not bring
    /// back its default action, which would kill this test process.
    #[test]
    fn sigpipe_stays_ignored_after_its_handler_is_removed() {
        let lp = IOLoop::current();
        let n = Rc::new(Cell::new(0));
        let n2 = n.clone();
        lp.add_signal_handler(libc::SIGPIPE, move || n2.set(n2.get() + 1))
            .unwrap();
        raise_and_expect(&lp, libc::SIGPIPE, &n, 1);
        assert!(lp.remove_signal_handler(libc::SIGPIPE));
        signal_hook::low_level::raise(libc::SIGPIPE).unwrap();
        lp.run_once(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(n.get(), 1, "the removed handler ran");
    }

    #[test]
    fn sig_ign_mask_is_read_from_proc_status() {
        let status = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\nSigCgt:\t0\n";
        let mask = sig_ign_mask(status).unwrap();
        // Bit n - 1 for signal n: SIGHUP (1) and SIGPIPE (13).
        assert_eq!(mask, (1 << (libc::SIGHUP - 1)) | (1 << (libc::SIGPIPE - 1)));
        assert_eq!(sig_ign_mask("Name:\tx\n"), None);
        assert_eq!(sig_ign_mask("SigIgn:\tzz\n"), None);
        // In this process SIGUSR2 is never ignored (default, or caught
        // once a test handles it). SIGPIPE is not checked here: ignored as
        // Rust starts, it reads as caught once the SIGPIPE test below has
        // hooked it. (tests/ioloop.rs checks SIGHUP under nohup.)
        assert!(!ignored_now(libc::SIGUSR2));
    }

    #[test]
    fn signals_that_cannot_be_handled_are_a_typed_error() {
        let lp = IOLoop::current();
        for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -3, 4096] {
            let e = lp.add_signal_handler(sig, || {}).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "signal {sig}");
        }
        assert!(!lp.remove_signal_handler(libc::SIGKILL));
    }

    /// A panicking signal callback is logged and counted, the loop goes on,
    /// and the callback stays installed for the next delivery.
    #[test]
    fn a_panicking_signal_handler_is_logged_and_stays_installed() {
        let lp = IOLoop::current();
        let before = lp.metrics().get(super::super::Counter::CallbackPanics);
        let n = Rc::new(Cell::new(0));
        let n2 = n.clone();
        // SIGWINCH: ignored by default, so a stray one harms nothing.
        lp.add_signal_handler(libc::SIGWINCH, move || {
            n2.set(n2.get() + 1);
            panic!("boom in signal handler");
        })
        .unwrap();
        raise_and_expect(&lp, libc::SIGWINCH, &n, 1);
        raise_and_expect(&lp, libc::SIGWINCH, &n, 2);
        let after = lp.metrics().get(super::super::Counter::CallbackPanics);
        assert_eq!(after - before, 2);
        assert!(lp.remove_signal_handler(libc::SIGWINCH));
    }

    #[test]
    fn a_signal_handler_does_not_count_as_a_registration() {
        let lp = IOLoop::current();
        let before = lp.registrations();
        lp.add_signal_handler(libc::SIGUSR2, || {}).unwrap();
        assert_eq!(lp.registrations(), before);
        assert!(lp.remove_signal_handler(libc::SIGUSR2));
    }
}
