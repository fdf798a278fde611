//! The per-connection state other than the handler ([`Core`]): socket,
//! `Session`, buffers and deadlines, and the write path.
//!
//! Write path (PERF-NOTES §3): frames written while the connection is
//! being served go into the loop-wide out buffer and leave in one `write`
//! after the read batch; only bytes the kernel refuses stay in a
//! per-connection backlog. Writes from elsewhere (other connections,
//! timers) append to the backlog and mark the connection dirty: it is
//! flushed once at the end of the loop iteration.

use std::io::{self, Write};
use std::rc::Rc;
use std::time::Instant;

use mio::net::TcpStream;

use super::context::WebSocket;
use super::message::{CloseReason, WebSocketClosedError};
use super::settings::{SlowConsumerPolicy, WebSocketSettings};
use crate::http::Request;
use crate::ioloop::{ConnId, IOLoop};
use crate::protocol::frame::{FrameHeader, MAX_HEADER_LEN};
use crate::protocol::{CloseCode, OpCode, Session};

/// Uncompressed server messages at least this large go out with `writev`
/// from where they are instead of being copied into the write queue.
const DIRECT_WRITE_MIN: usize = 16 * 1024;

/// Per-connection state other than the handler.
pub(crate) struct Core {
    pub(crate) stream: TcpStream,
    pub(crate) session: Session,
    pub(crate) settings: Rc<WebSocketSettings>,
    pub(super) request: Option<Request>,
    /// Fields most connections never set (one pointer while idle).
    pub(super) rare: Option<Box<Rare>>,
    /// A partial frame waiting for the rest of its bytes.
    pub(super) spill: Vec<u8>,
    /// Outgoing bytes: the loop's out buffer while being served, otherwise
    /// what the kernel refused or what others queued.
    pub(crate) out: Vec<u8>,
    /// The code of the peer's close frame: 0 = none received, 1005 = a
    /// close frame without a code (2 bytes, and no separate flag).
    pub(super) close_code: u16,
    pub(super) closed_by: Option<CloseReason>,
    /// Deadlines in milliseconds of the loop's clock (`Ms::NONE` = unset):
    /// 4 bytes each instead of 16 for an `Option<Instant>`.
    pub(super) next_ping: Ms,
    pub(super) pong_deadline: Ms,
    pub(super) close_deadline: Ms,
    /// End of the slow-consumer grace period.
    pub(super) slow_deadline: Ms,
    /// Nothing received since `idle_timeout`.
    pub(super) idle_deadline: Ms,
    /// Reading is paused: the write queue is above `write_high_water`.
    pub(super) read_paused: bool,
    /// Already on the loop's dirty list this tick (broadcasts to a
    /// subscriber add it once, not once per message).
    pub(super) dirty: bool,
    /// The handler saw `on_close`; the connection is finished.
    pub(super) finished: bool,
    /// `open` ran.
    pub(super) opened: bool,
    /// Drop the TCP connection once `out` is flushed.
    pub(super) close_after_flush: bool,
    /// `out` was non-empty after a flush: call `on_drain` once it empties.
    pub(super) backlogged: bool,
    /// Finished after failing the connection; reading and dropping what
    /// the peer still sends until it closes (see `crate::http::linger`).
    pub(super) lingering: bool,
    pub(crate) id: ConnId,
    pub(crate) is_client: bool,
}

#[derive(Default)]
pub(super) struct Rare {
    pub(super) subprotocol: Option<String>,
    pub(super) close_reason: Option<String>,
    /// Route captures, until `open` runs.
    pub(super) args: Option<Vec<String>>,
    /// Messages dropped since the handler was last told
    /// (`SlowConsumerPolicy::DropMessages`).
    pub(super) dropped: u64,
    /// See `Core::frame_tail`.
    pub(super) frame_tail: usize,
}

impl Rare {
    /// Nothing set: the box can go (idle connections keep none).
    pub(super) fn is_unused(&self) -> bool {
        self.subprotocol.is_none()
            && self.close_reason.is_none()
            && self.args.is_none()
            && self.dropped == 0
            && self.frame_tail == 0
    }
}

/// A deadline as milliseconds since the loop's epoch; `u32::MAX` = none
/// (49 days of range; later deadlines saturate).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Ms(u32);

impl Ms {
    pub(super) const NONE: Ms = Ms(u32::MAX);

    pub(super) fn at(lp: &IOLoop, when: Instant) -> Ms {
        let ms = when.saturating_duration_since(lp.epoch()).as_millis();
        Ms(ms.min(u32::MAX as u128 - 1) as u32)
    }

    pub(super) fn after(lp: &IOLoop, d: std::time::Duration) -> Ms {
        Ms::at(lp, lp.time() + d)
    }

    pub(super) fn is_set(self) -> bool {
        self != Ms::NONE
    }

    pub(super) fn passed(self, lp: &IOLoop, now: Instant) -> bool {
        self.is_set() && Ms::at(lp, now).0 >= self.0
    }

    pub(super) fn instant(self, lp: &IOLoop) -> Option<Instant> {
        self.is_set()
            .then(|| lp.epoch() + std::time::Duration::from_millis(self.0 as u64))
    }
}

impl Core {
    pub(super) fn send_data(
        &mut self,
        lp: &IOLoop,
        op: OpCode,
        data: &[u8],
    ) -> Result<usize, WebSocketClosedError> {
        if self.finished {
            return Err(WebSocketClosedError);
        }
        if self.should_drop(lp) {
            return Ok(self.out.len());
        }
        if data.len() >= DIRECT_WRITE_MIN
            && self.out.is_empty()
            && !self.is_client
            && !self.session.is_compressing()
            && self.session.state().can_send()
        {
            self.write_direct(lp, op, data);
        } else {
            self.session
                .send_message(op, data, &mut self.out)
                .map_err(|_| WebSocketClosedError)?;
        }
        lp.count(crate::ioloop::Counter::WsMessagesOut, 1);
        Ok(self.out.len())
    }

    /// Large uncompressed server message with nothing queued before it:
    /// header and payload leave in one `writev` straight from where the
    /// payload is (the loop's read buffer, for an echo), and only what the
    /// kernel refuses is copied into the queue (PERF-NOTES §3).
    pub(super) fn write_direct(&mut self, lp: &IOLoop, op: OpCode, data: &[u8]) {
        let mut hdr = [0u8; MAX_HEADER_LEN];
        let n = FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: op.as_u8(),
            mask: None,
            payload_len: data.len() as u64,
        }
        .encode_into(&mut hdr);
        let bufs = [io::IoSlice::new(&hdr[..n]), io::IoSlice::new(data)];
        // An error (WouldBlock, or a dead socket that the next flush
        // reports) leaves everything to the queue.
        let written = self.stream.write_vectored(&bufs).unwrap_or_default();
        lp.count(crate::ioloop::Counter::WsBytesOut, written as u64);
        if written < n {
            self.out.reserve(n - written + data.len());
            self.out.extend_from_slice(&hdr[written..n]);
            self.out.extend_from_slice(data);
        } else if written < n + data.len() {
            self.out.extend_from_slice(&data[written - n..]);
        }
        if written > 0 && written < n + data.len() {
            // The queue (empty before) now starts inside this frame.
            self.set_frame_tail(self.out.len());
        }
    }

    /// Bytes at the front of `out` that finish a frame the kernel has
    /// partly taken (0: `out` starts at a frame boundary). Kept in the rare
    /// box: only a connection under backpressure has one.
    fn frame_tail(&self) -> usize {
        if self.out.is_empty() {
            return 0;
        }
        self.rare.as_ref().map_or(0, |r| r.frame_tail)
    }

    fn set_frame_tail(&mut self, tail: usize) {
        if tail != 0 || self.rare.is_some() {
            self.rare().frame_tail = tail;
        }
    }

    /// After the kernel took `written` bytes of `out` (not all of it): how
    /// many bytes of a partly sent frame then lead the queue. Walks the
    /// headers of our own frames (whole ones only are appended), so the cost
    /// is paid under backpressure only.
    fn tail_after(&self, written: usize) -> usize {
        let mut pos = self.frame_tail();
        while pos < written {
            match FrameHeader::parse(&self.out[pos..]) {
                Some((h, hlen)) => pos = pos.saturating_add(hlen + h.payload_len as usize),
                None => return 0, // unreachable: the queue holds whole frames
            }
        }
        pos - written
    }

    /// Queues a broadcast frame; returns false if this connection cannot send.
    pub(super) fn queue_shared(
        &mut self,
        lp: &IOLoop,
        op: OpCode,
        payload: &[u8],
        frame: &[u8],
    ) -> bool {
        if self.finished || !self.session.state().can_send() || self.should_drop(lp) {
            return false;
        }
        if self.session.is_compressing() || self.is_client {
            // Compressed per receiver (context takeover) or masked: not the
            // shared frame. Nothing changed since `should_drop` said no.
            return self.send_data(lp, op, payload).is_ok();
        }
        self.out.extend_from_slice(frame);
        lp.count(crate::ioloop::Counter::WsMessagesOut, 1);
        true
    }

    /// `SlowConsumerPolicy::DropMessages`: true (and the drop recorded, to
    /// be reported to the handler at the end of the tick) when the queue is
    /// over `max_write_buffer`, so the message must not be queued.
    #[inline]
    pub(super) fn should_drop(&mut self, lp: &IOLoop) -> bool {
        // One compare per message while under the cap.
        self.out.len() > self.settings.max_write_buffer && self.drop_over_cap(lp)
    }

    fn drop_over_cap(&mut self, lp: &IOLoop) -> bool {
        if self.settings.slow_consumer_policy != SlowConsumerPolicy::DropMessages
            || !self.session.state().can_send()
        {
            return false;
        }
        self.rare().dropped += 1;
        lp.count(crate::ioloop::Counter::WsMessagesDropped, 1);
        self.mark_dirty(lp, self.id);
        true
    }

    /// Slow-consumer policy (see `WebSocketSettings::max_write_buffer`),
    /// checked after each flush attempt. When it fires, the queue is
    /// dropped except the end of a frame the kernel has partly taken (so
    /// the stream stays well-formed), a 1008 close follows it, and the
    /// close handshake gets `close_timeout`; returns true only when the
    /// connection must be dropped at once (our close was already queued).
    pub(super) fn slow_consumer_check(&mut self, lp: &IOLoop) -> bool {
        let cap = self.settings.max_write_buffer;
        let queued = self.out.len();
        if queued <= cap || self.settings.slow_consumer_policy == SlowConsumerPolicy::DropMessages {
            self.slow_deadline = Ms::NONE;
            return false;
        }
        let expired = self.slow_deadline.passed(lp, lp.time());
        if queued <= cap.saturating_mul(2) && !expired {
            if !self.slow_deadline.is_set() {
                self.slow_deadline = Ms::after(lp, self.settings.slow_consumer_grace);
            }
            return false;
        }
        log::warn!(
            "{} slow consumer: {queued} bytes queued (max_write_buffer {cap}); dropping the queue, closing with 1008",
            self.id
        );
        lp.count(crate::ioloop::Counter::WsSlowConsumerCloses, 1);
        self.closed_by = Some(CloseReason::SlowConsumer);
        self.slow_deadline = Ms::NONE;
        // Keep only the end of the frame the kernel has partly taken, so
        // the close frame after it is not read as part of that frame.
        let tail = self.frame_tail().min(self.out.len());
        let mut kept = Vec::with_capacity(tail + 140);
        kept.extend_from_slice(&self.out[..tail]);
        self.out = kept;
        if !self.session.state().can_send() {
            // Our close frame is already queued (or sent): drop now.
            self.out = Vec::new();
            return true;
        }
        // The peer has close_timeout to read it and answer.
        self.start_close(
            lp,
            Some(CloseCode::POLICY),
            "slow consumer",
            CloseReason::SlowConsumer,
        );
        false
    }

    pub(super) fn start_close(
        &mut self,
        lp: &IOLoop,
        code: Option<CloseCode>,
        reason: &str,
        why: CloseReason,
    ) {
        if self.finished || !self.session.state().can_send() {
            return;
        }
        if self.session.send_close(code, reason, &mut self.out).is_ok() {
            self.closed_by.get_or_insert(why);
            self.close_deadline = Ms::after(lp, self.settings.close_timeout);
            self.mark_dirty(lp, self.id);
        }
    }

    /// Asks for a flush at the end of this tick (once, however many
    /// messages are queued meanwhile).
    pub(super) fn mark_dirty(&mut self, lp: &IOLoop, id: ConnId) {
        if !self.dirty {
            self.dirty = true;
            lp.mark_dirty(id);
        }
    }

    /// Writes as much of `out` as the kernel takes. Err = the socket is dead.
    pub(super) fn flush(&mut self, lp: &IOLoop) -> io::Result<()> {
        // A server answering the peer's Close shuts the socket down right
        // after this flush: the last bytes (the Close echo) wait for the FIN
        // and leave in the same segment (see `send_before_close`). Failing
        // the connection (protocol error, 1009) writes its Close at once and
        // shuts down in `WsConn::linger` instead.
        let last =
            self.close_after_flush && !self.is_client && self.closed_by == Some(CloseReason::Peer);
        while !self.out.is_empty() {
            let res = if last {
                send_before_close(&self.stream, &self.out)
            } else {
                self.stream.write(&self.out)
            };
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) if n == self.out.len() => {
                    lp.count(crate::ioloop::Counter::WsBytesOut, n as u64);
                    self.out.clear();
                    self.set_frame_tail(0);
                }
                Ok(n) => {
                    lp.count(crate::ioloop::Counter::WsBytesOut, n as u64);
                    let tail = self.tail_after(n);
                    self.out.drain(..n);
                    self.set_frame_tail(tail);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if last && self.out.is_empty() {
            // Send the held bytes and the FIN now rather than at `close()`:
            // a byte the peer sends after its Close (Autobahn 7.1.2: a
            // second Close) that lands before `close()` would turn it into
            // a reset that discards the held Close echo unsent.
            crate::http::linger::shut_write(&self.stream);
        }
        Ok(())
    }

    pub(super) fn ctx<'a>(&'a mut self, lp: &'a IOLoop) -> WebSocket<'a> {
        WebSocket { core: self, lp }
    }

    pub(super) fn next_deadline(&self, lp: &IOLoop) -> Option<Instant> {
        let m = [
            self.next_ping,
            self.pong_deadline,
            self.close_deadline,
            self.slow_deadline,
            self.idle_deadline,
        ]
        .iter()
        .map(|d| d.0)
        .min()
        .unwrap_or(u32::MAX);
        Ms(m).instant(lp)
    }

    /// Drop the connection once `out` is flushed — or at the close timeout
    /// if the peer stops reading, so a stuck close never pins the slot.
    pub(super) fn close_after_flush(&mut self, lp: &IOLoop) {
        self.close_after_flush = true;
        if !self.close_deadline.is_set() {
            self.close_deadline = Ms::after(lp, self.settings.close_timeout);
        }
    }

    pub(super) fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// Writes `buf` to a socket that is shut down as soon as all of it is
/// written (the server's side of the close handshake, RFC 6455 §7.1.1). On
/// Linux `MSG_MORE` holds the bytes in the socket until the
/// `shutdown(SHUT_WR)` that follows (in `Core::flush`), which then sends
/// them with the FIN in one segment instead of two: one loopback or network
/// round through both TCP stacks fewer per closed connection. If the peer
/// stops reading, the bytes still leave with the FIN once it reads again,
/// or the connection is dropped at the close deadline.
fn send_before_close(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        socket2::SockRef::from(stream).send_with_flags(buf, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let mut s = stream;
        s.write(buf)
    }
}
