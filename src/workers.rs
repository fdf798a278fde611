//! One reactor per core: `run_workers` starts `n` threads, each with its own
//! IOLoop, its own `Application` (built by the factory inside the thread:
//! applications hold `Rc`s and are not `Send`) and its own `SO_REUSEPORT`
//! listener on the same address; the kernel spreads new connections.
//!
//! DESIGN.md writes the call as `run_workers(n, || build_app())`; here the
//! address is a parameter, `run_workers(n, addr, || build_app())`, because
//! every worker binds its own listener (a single listener shared by all
//! would need locking or `EPOLLEXCLUSIVE` wake-ups, and would not let the
//! kernel balance by connection hash), and port 0 must be resolved once by
//! the first worker so the others join the same port.

use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::ioloop::{IOLoop, IOLoopHandle};
use crate::web::Application;

/// Running workers: their loop handles and threads.
///
/// Dropping it stops the workers and joins their threads, as
/// [`stop`](Self::stop) then [`join`](Self::join) do, but a worker's
/// panic is logged at error level instead of returned (a drop cannot
/// return it, and resuming it there could abort an unwinding thread).
/// Dropped on one of the worker threads (the `Workers` was moved into a
/// callback or handler there), that thread is not joined, as a thread
/// cannot join itself: its loop stops once the running callback returns
/// and the thread ends on its own. A `Workers` dropped right away,
/// `let _ = run_workers(..)?`, so serves nothing: keep it for as long as
/// the workers are to serve (`join` it to wait until they are stopped).
#[must_use = "dropping Workers stops the workers"]
pub struct Workers {
    addr: SocketAddr,
    handles: Vec<IOLoopHandle>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// The address every worker listens on (the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// One handle per worker loop (to post callbacks or stop one).
    pub fn handles(&self) -> &[IOLoopHandle] {
        &self.handles
    }

    /// Asks every worker loop to stop.
    pub fn stop(&self) {
        for h in &self.handles {
            h.stop();
        }
    }

    /// Waits for every worker thread to end, as
    /// [`JoinHandle::join`](std::thread::JoinHandle::join) does for one.
    ///
    /// Called on one of the worker threads (the `Workers` was moved into
    /// a callback or handler there), it waits for every *other* worker
    /// and not for that thread, which cannot join itself (`JoinHandle::join`
    /// would panic there): the thread ends on its own once its loop stops
    /// (and `join` does not stop any loop: [`stop`](Self::stop) them
    /// first, that one's included, or it waits for ever for the others).
    ///
    /// # Errors
    /// A worker's thread panicked (its loop failed to poll, or something
    /// the loop does not catch unwound): the first such panic's payload,
    /// once every thread has ended; a second one is logged at error
    /// level. Resume it with [`std::panic::resume_unwind`] to end the
    /// program as the worker did, or log it.
    ///
    /// ```no_run
    /// use cyclone::web::Application;
    ///
    /// let workers = cyclone::run_workers(4, "127.0.0.1:8888".parse().unwrap(), || {
    ///     Application::builder().build()
    /// })?;
    /// // ... later, from a signal handler or an admin endpoint:
    /// workers.stop();
    /// if let Err(panic) = workers.join() {
    ///     std::panic::resume_unwind(panic);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join(mut self) -> std::thread::Result<()> {
        let mut first = Ok(());
        // Taken: nothing is left for the drop to stop or join.
        self.handles.clear();
        let me = std::thread::current().id();
        for t in std::mem::take(&mut self.threads) {
            if t.thread().id() == me {
                continue;
            }
            let name = t.thread().name().unwrap_or("worker").to_owned();
            if let Err(panic) = t.join() {
                if first.is_ok() {
                    first = Err(panic);
                } else {
                    log::error!("{name} panicked: {}", crate::ioloop::panic_message(&panic));
                    crate::ioloop::drop_panic_payload(panic);
                }
            }
        }
        first
    }
}

impl Drop for Workers {
    /// Stops the workers and joins their threads, but the current one;
    /// their panics are logged (see [`Workers`]).
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stop();
        let me = std::thread::current().id();
        for t in std::mem::take(&mut self.threads) {
            if t.thread().id() == me {
                continue;
            }
            let name = t.thread().name().unwrap_or("worker").to_owned();
            if let Err(panic) = t.join() {
                log::error!("{name} panicked: {}", crate::ioloop::panic_message(&panic));
                crate::ioloop::drop_panic_payload(panic);
            }
        }
    }
}

/// Starts `n` worker threads serving the application built by `factory` on
/// `addr` (port 0: the first worker picks a port, the others join it).
///
/// # Errors
/// A worker could not bind or register its listener, or `factory`
/// panicked (the error carries the panic's message); workers already
/// started are stopped.
///
/// # Panics
/// If `n` is 0.
pub fn run_workers<F>(n: usize, addr: SocketAddr, factory: F) -> io::Result<Workers>
where
    F: Fn() -> Application + Send + Sync + 'static,
{
    start(n, addr, None, factory)
}

/// [`run_workers`] serving HTTPS and `wss://`: every worker listens with
/// `tls` ([`Application::listen_reuse_port_tls`]).
///
/// # Errors
/// As [`run_workers`].
///
/// # Panics
/// If `n` is 0.
#[cfg(feature = "tls")]
pub fn run_workers_tls<F>(
    n: usize,
    addr: SocketAddr,
    tls: crate::tls::ServerTls,
    factory: F,
) -> io::Result<Workers>
where
    F: Fn() -> Application + Send + Sync + 'static,
{
    start(n, addr, Some(tls), factory)
}

#[cfg(feature = "tls")]
type Tls = Option<crate::tls::ServerTls>;
#[cfg(not(feature = "tls"))]
type Tls = Option<std::convert::Infallible>;

fn start<F>(n: usize, addr: SocketAddr, tls: Tls, factory: F) -> io::Result<Workers>
where
    F: Fn() -> Application + Send + Sync + 'static,
{
    assert!(n > 0, "run_workers needs at least one worker");
    let factory = Arc::new(factory);
    let mut workers = Workers {
        addr,
        handles: Vec::with_capacity(n),
        threads: Vec::with_capacity(n),
    };
    for i in 0..n {
        let (tx, rx) = mpsc::channel();
        let f = factory.clone();
        let bind = workers.addr;
        #[cfg_attr(not(feature = "tls"), allow(clippy::clone_on_copy))]
        let tls = tls.clone();
        let t = std::thread::Builder::new()
            .name(format!("cyclone-worker-{i}"))
            .spawn(move || {
                let app = f();
                let bound = match tls {
                    None => app.listen_reuse_port(bind),
                    #[cfg(feature = "tls")]
                    Some(tls) => app.listen_reuse_port_tls(bind, tls),
                    #[cfg(not(feature = "tls"))]
                    Some(never) => match never {},
                };
                match bound {
                    Ok(a) => {
                        let lp = IOLoop::current();
                        let _ = tx.send(Ok((a, lp.handle())));
                        lp.start();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                workers.stop();
                // Undoing a failed start: the error says what failed.
                let _ = workers.join();
                return Err(e);
            }
        };
        match rx.recv() {
            Ok(Ok((a, h))) => {
                workers.addr = a;
                workers.handles.push(h);
                workers.threads.push(t);
            }
            Ok(Err(e)) => {
                workers.stop();
                // Undoing a failed start: the error says what failed.
                let _ = workers.join();
                return Err(e);
            }
            Err(_) => {
                // The factory (or the listener's setup) panicked: the
                // error says with what, for the caller to log.
                let why = match t.join() {
                    Err(panic) => format!(
                        "worker thread panicked while starting: {}",
                        crate::ioloop::panic_message(&panic)
                    ),
                    Ok(()) => "worker thread died while starting".to_string(),
                };
                workers.stop();
                let _ = workers.join();
                return Err(io::Error::other(why));
            }
        }
    }
    Ok(workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker thread's panic reaches `join`'s caller, after every other
    /// thread was joined; only the first is returned.
    #[test]
    fn join_reports_the_first_worker_panic_after_joining_all() {
        let (tx, rx) = mpsc::channel::<()>();
        let spawn = |f: Box<dyn FnOnce() + Send>| std::thread::Builder::new().spawn(f).unwrap();
        let workers = Workers {
            addr: "127.0.0.1:0".parse().unwrap(),
            handles: Vec::new(),
            threads: vec![
                spawn(Box::new(|| panic!("IOLoop poll failed: EBADF"))),
                spawn(Box::new(move || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    tx.send(()).unwrap();
                })),
                spawn(Box::new(|| panic!("a second one"))),
            ],
        };
        let panic = workers.join().expect_err("a worker's panic was discarded");
        assert_eq!(
            crate::ioloop::panic_message(&panic),
            "IOLoop poll failed: EBADF"
        );
        assert!(
            rx.try_recv().is_ok(),
            "join returned before every thread ended"
        );

        let ok = Workers {
            addr: "127.0.0.1:0".parse().unwrap(),
            handles: Vec::new(),
            threads: vec![spawn(Box::new(|| ()))],
        };
        assert!(ok.join().is_ok());
    }

    /// `join` on one of the workers' own threads waits for the others and
    /// skips that one (joining itself would panic): it returns once the
    /// other worker has ended.
    #[test]
    fn join_on_a_worker_s_thread_waits_for_the_others_only() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (give, take) = mpsc::channel::<Workers>();
        let (result_tx, result) = mpsc::channel();
        let joiner = std::thread::spawn(move || {
            let workers = take.recv().unwrap();
            let joined = workers.join().is_ok();
            result_tx.send(joined).unwrap();
        });
        let (release, held) = mpsc::channel::<()>();
        let other_ended = Arc::new(AtomicBool::new(false));
        let e = other_ended.clone();
        let other = std::thread::spawn(move || {
            let _ = held.recv_timeout(std::time::Duration::from_secs(10));
            e.store(true, Ordering::SeqCst);
        });
        give.send(Workers {
            addr: "127.0.0.1:0".parse().unwrap(),
            handles: Vec::new(),
            threads: vec![joiner, other],
        })
        .unwrap();
        release.send(()).unwrap();
        let joined = result
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("join on a worker's thread panicked or never returned");
        assert!(joined, "join reported a panic");
        assert!(
            other_ended.load(Ordering::SeqCst),
            "join returned before the other worker ended"
        );
    }

    /// Dropped without `join`, the workers' panics are logged at error
    /// level, not resumed: the drop returns once every thread has ended.
    #[test]
    fn a_drop_logs_worker_panics_after_joining_all() {
        let logged =
            crate::testing::ExpectLog::new("cyclone", "cyclone-test-drop-[01] panicked: boom")
                .level(log::Level::Error);
        let (tx, rx) = mpsc::channel::<()>();
        let spawn = |i: usize, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("cyclone-test-drop-{i}"))
                .spawn(f)
                .unwrap()
        };
        let workers = Workers {
            addr: "127.0.0.1:0".parse().unwrap(),
            handles: Vec::new(),
            threads: vec![
                spawn(0, Box::new(|| panic!("boom"))),
                spawn(
                    2,
                    Box::new(move || {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        tx.send(()).unwrap();
                    }),
                ),
                spawn(1, Box::new(|| panic!("boom"))),
            ],
        };
        drop(workers);
        assert!(
            rx.try_recv().is_ok(),
            "the drop returned before every thread ended"
        );
        assert_eq!(logged.logged().len(), 2, "{:?}", logged.logged());
    }
}
