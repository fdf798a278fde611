//! Lingering close: how an error answer reaches a peer that is still
//! sending.
//!
//! When the server answers bad input and closes (an HTTP 413 while the body
//! is still arriving, a WebSocket Close 1009 in the middle of an oversized
//! frame), unread bytes are usually waiting in the socket. Closing a socket
//! with unread bytes makes Linux send a reset instead of a FIN, and a peer
//! whose own write then fails (Node's `http` and `ws` among them) reports
//! `EPIPE` / 1006 without ever reading the 413 or the 1009 that arrived
//! before it. So, like nginx's `lingering_close`, the connection is not
//! closed at once: the write half is shut down (a FIN after the answer) and
//! what the peer still sends is read and dropped until it closes its side,
//! an error, or a deadline, whichever comes first. It costs one `shutdown`
//! and one read more than a plain close.
//!
//! An HTTP connection takes this path for every close it initiates while
//! the peer may still send: after an error answer, and after a plain
//! `Connection: close` / HTTP/1.0 / 500 answer too, since a peer that
//! pipelined more requests than are answered would otherwise get a reset
//! that also discards the part of the response still queued in the kernel.
//! Only a peer that already closed its side (nothing more can arrive) is
//! closed at once.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::stream::Stream;
use crate::ioloop::{Action, ConnId, IOLoop, Pollable, Readiness};

/// Longest an HTTP connection lingers after an error answer (nginx's
/// `lingering_timeout` default; WebSockets use their `close_timeout`).
pub(crate) const HTTP_LINGER: Duration = Duration::from_secs(5);

/// Reads per readiness before yielding to other connections.
const DISCARD_BUDGET: usize = 16;

/// Reads and drops what arrived. True once the lingering is over: the peer
/// closed its side, or the socket failed. Yields after a budget of reads
/// (marking `id` readable again) so a fast sender cannot starve the loop.
/// Over TLS, first writes the records (the `close_notify`) the kernel
/// refused before, and shuts the write half down once they are out.
pub(crate) fn discard(stream: &mut Stream, lp: &IOLoop, id: ConnId) -> bool {
    if stream.flush_pending().is_err() {
        return true;
    }
    let mut buf = lp.take_read_buf();
    let mut done = false;
    let mut rounds = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                done = true;
                break;
            }
            Ok(_) => {
                rounds += 1;
                if rounds >= DISCARD_BUDGET {
                    lp.mark_readable(id);
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                done = true;
                break;
            }
        }
    }
    lp.give_read_buf(buf);
    done
}

/// An HTTP connection after its error answer was written: see the module
/// docs. Replaces the `HttpConn` in its slot.
pub(crate) struct Lingering {
    stream: Stream,
    until: Instant,
}

impl Lingering {
    /// Starts lingering on `stream` (its answer fully written) in slot `id`.
    pub(crate) fn start(lp: &IOLoop, id: ConnId, mut stream: Stream, wait: Duration) -> Action {
        // The peer sees a FIN right after the answer (over TLS, a
        // close_notify and then the FIN: `Stream::shut_write`).
        stream.shut_write();
        // Edge-triggered: bytes may be waiting already; no new edge comes.
        lp.mark_readable(id);
        Action::Replace(Box::new(Lingering {
            stream,
            until: lp.deadline_after(wait),
        }))
    }
}

impl Pollable for Lingering {
    fn ready(&mut self, lp: &IOLoop, id: ConnId, _r: Readiness) -> Action {
        Action::remove_if(discard(&mut self.stream, lp, id))
    }

    fn deadline(&self, _lp: &IOLoop) -> Option<Instant> {
        Some(self.until)
    }

    fn on_deadline(&mut self, _lp: &IOLoop, _id: ConnId, now: Instant) -> Action {
        Action::remove_if(now >= self.until)
    }

    // A graceful shutdown lets it end by itself (within `HTTP_LINGER`);
    // `abort` (the default) drops it.

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
