//! What the loop drives: the [`Pollable`] trait every registration
//! implements (listeners, connections, user handlers), the [`Readiness`]
//! it is handed and the [`Action`] it answers with.

use std::any::Any;
use std::time::{Duration, Instant};

use mio::Registry;

use super::{ConnId, IOLoop};

/// Readiness reported for a registration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Readable (or a pending accept).
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// The peer closed its write half (`EPOLLRDHUP`/`EPOLLHUP`).
    pub read_closed: bool,
    /// The write half is closed.
    pub write_closed: bool,
    /// An error is pending on the socket.
    pub error: bool,
}

impl Readiness {
    pub(super) fn from_event(ev: &mio::event::Event) -> Readiness {
        Readiness {
            readable: ev.is_readable(),
            writable: ev.is_writable(),
            read_closed: ev.is_read_closed(),
            write_closed: ev.is_write_closed(),
            error: ev.is_error(),
        }
    }

    /// Readiness used to resume a connection left on the "still readable" list.
    pub(crate) fn readable() -> Readiness {
        Readiness {
            readable: true,
            ..Readiness::default()
        }
    }
}

/// What a [`Pollable`] wants after being served.
pub enum Action {
    /// Keep it registered.
    Keep,
    /// Drop it (its socket closes; the slot and id are freed).
    Remove,
    /// Replace it in the same slot (same `ConnId`): an HTTP connection
    /// becoming a WebSocket.
    Replace(Box<dyn Pollable>),
}

impl Action {
    /// `Remove` when `done`, otherwise `Keep`.
    pub(crate) fn remove_if(done: bool) -> Action {
        if done {
            Action::Remove
        } else {
            Action::Keep
        }
    }
}

/// Something the loop drives: listeners, HTTP and WebSocket connections,
/// user handlers from [`IOLoop::add_handler`].
///
/// Implementations live in the upper layers; the loop knows nothing of
/// HTTP or WebSocket.
pub trait Pollable: Any {
    /// Readiness arrived for this registration.
    fn ready(&mut self, lp: &IOLoop, id: ConnId, r: Readiness) -> Action;

    /// Called once per tick for registrations that asked to be flushed
    /// (writes queued from elsewhere): write queued output.
    fn flush(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        let _ = (lp, id);
        Action::Keep
    }

    /// The next deadline of this registration, checked by the sweep.
    fn deadline(&self, lp: &IOLoop) -> Option<Instant> {
        let _ = lp;
        None
    }

    /// The shortest span between this registration's deadlines, when it
    /// needs the deadline sweep more often than every 250 ms: each sweep
    /// runs the next one an eighth of the shortest span registered later
    /// (2 ms at the least), and back at 250 ms once those are gone.
    fn sweep_span(&self) -> Option<Duration> {
        None
    }

    /// A deadline from [`deadline`](Self::deadline) passed.
    fn on_deadline(&mut self, lp: &IOLoop, id: ConnId, now: Instant) -> Action {
        let _ = (lp, id, now);
        Action::Keep
    }

    /// Graceful shutdown was requested (see `Application::shutdown`).
    fn shutdown(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        let _ = (lp, id);
        Action::Keep
    }

    /// The shutdown grace ran out: drop now (a WebSocket runs `on_close`).
    fn abort(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        let _ = (lp, id);
        Action::Remove
    }

    /// Removes the source from the poller before the registration is dropped
    /// by `remove_handler`.
    fn deregister(&mut self, registry: &Registry) {
        let _ = registry;
    }

    /// Registers a source whose registration had to wait (see
    /// `IOLoop::add_handler`); nothing for others.
    #[doc(hidden)]
    fn register_waiting(&mut self, registry: &Registry, id: ConnId) -> std::io::Result<()> {
        let _ = (registry, id);
        Ok(())
    }

    /// Bytes waiting to be written (for [`IOLoop::metrics`]' queued-bytes gauge).
    fn queued_bytes(&self) -> usize {
        0
    }

    /// Whether a graceful shutdown waits for this registration to go
    /// (connections: yes; `add_handler` sources: no).
    #[doc(hidden)]
    fn awaited_by_shutdown(&self) -> bool {
        true
    }

    /// Downcasting, for layers that address their own connection type by id.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}
