//! The per-connection state other than the handler ([`Core`]): socket,
//! `Session`, buffers and deadlines, and the write path.
//!
//! Write path (PERF-NOTES §3): frames written while the connection is
//! being served go into the loop-wide out buffer and leave in one `write`
//! after the read batch; only bytes the kernel refuses stay in a
//! per-connection backlog. Large uncompressed frames whose payload is in
//! the input being parsed (echoes) are not copied: the loop's [`Cork`]
//! holds them and they leave with one `writev` when the batch has been
//! parsed. Writes from elsewhere (other connections, timers) append to the
//! backlog and mark the connection dirty: it is flushed once at the end of
//! the loop iteration.

use std::io::{self, Write};
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

use super::context::WebSocket;
use super::message::{CloseReason, WebSocketClosedError};
use super::settings::{RouteSettings, SlowConsumerPolicy};
use crate::http::{Request, Stream};
use crate::ioloop::{ConnId, IOLoop, TimeoutHandle};
use crate::protocol::frame::{FrameHeader, MAX_HEADER_LEN};
use crate::protocol::{CloseCode, OpCode, Session};

/// Uncompressed server messages at least this large go out with `writev`
/// from where they are (held by the [`Cork`] when that is the input being
/// parsed) instead of being copied into the write queue.
const DIRECT_WRITE_MIN: usize = 16 * 1024;

/// Frames held by a [`Cork`] at most (then they queue behind it).
const CORK_FRAMES: usize = 32;

/// Large frames a connection sends straight from its input buffer while
/// a read batch is parsed (an echo), held by the loop until the batch is
/// done and then written with one `writev` (PERF-NOTES §3's cork, without
/// the copy). Written one by one, each 64 KiB echo (65,546 bytes with its
/// header) left as a full loopback segment (MSS 65,483) plus a 63-byte
/// one, with a `writev` each; held, the echoes of one read fill whole
/// segments with one `writev`. Scenario c of ../shared/bench, one
/// `run.sh --rounds 2 --scenarios abc` with both builds: 3,702 / 3,709
/// MB/s held against 2,803 / 3,192 written one by one.
///
/// Only the connection being served holds frames, and only ones whose
/// payload lies inside the input it is parsing (a message handed to the
/// handler lies in the part already parsed, which parsing does not touch
/// again before [`Core::cork_end`]); any other frame it sends meanwhile
/// queues behind the held ones, so the order on the wire is the order of
/// sends.
#[derive(Default)]
pub(crate) struct Cork {
    owner: Option<ConnId>,
    /// Address and length of the owner's input.
    base: usize,
    len: usize,
    frames: Vec<HeldFrame>,
    /// Bytes of `frames` (headers and payloads), kept as they are held so
    /// that `buffered_amount` costs no walk over them.
    held: usize,
    /// Messages the free `write_to`, `broadcast` and `publish` sent to a
    /// connection out of its slot (its handler is running): queued when
    /// it next sends anything itself, so the wire keeps the order of the
    /// calls, or else when it is put back. See [`Core::take_inbox`].
    inbox: Vec<Inbound>,
    /// Connections whose handler closed or terminated them from its own
    /// callback: out of their slot, they can be asked nothing, and the
    /// free senders must not count them. Until they end
    /// ([`forget`](Self::forget)).
    closed: Vec<ConnId>,
}

/// A message for a connection out of its slot: its id, the opcode, the
/// encoded frame and the payload (shared by every receiver of a
/// broadcast).
pub(crate) type Inbound = (ConnId, OpCode, Rc<[u8]>, Rc<[u8]>);

impl Cork {
    /// Keeps `msg` for its connection, out of its slot; whether it is the
    /// first kept for it (then the caller arranges delivery when the
    /// connection is put back, in case it sends nothing itself).
    pub(crate) fn keep_for_busy(&mut self, msg: Inbound) -> bool {
        let first = !self.inbox.iter().any(|m| m.0 == msg.0);
        self.inbox.push(msg);
        first
    }

    /// Notes that `id`, out of its slot, takes no more messages.
    pub(crate) fn mark_closed(&mut self, id: ConnId) {
        if !self.closed.contains(&id) {
            self.closed.push(id);
        }
    }

    /// Whether `id` was noted by [`mark_closed`](Self::mark_closed).
    pub(crate) fn is_closed(&self, id: ConnId) -> bool {
        self.closed.contains(&id)
    }

    /// `id` ended: the messages kept for it, which can no longer leave,
    /// and its [`mark_closed`](Self::mark_closed) note are dropped.
    pub(crate) fn forget(&mut self, id: ConnId) {
        if !self.closed.is_empty() {
            self.closed.retain(|c| *c != id);
        }
        drop(self.take_for(id));
    }

    /// Whether no message waits for any connection out of its slot: the
    /// common case, checked on every send (see [`Core::take_inbox`]).
    #[inline]
    pub(crate) fn inbox_is_empty(&self) -> bool {
        self.inbox.is_empty()
    }

    /// The messages kept for `id`, in the order they were sent.
    pub(crate) fn take_for(&mut self, id: ConnId) -> Vec<Inbound> {
        if self.inbox.is_empty() {
            return Vec::new();
        }
        let (mine, rest) = std::mem::take(&mut self.inbox)
            .into_iter()
            .partition(|m| m.0 == id);
        self.inbox = rest;
        mine
    }
}

/// A server frame to write: its header, and its payload as a range of
/// the input it is written from.
struct HeldFrame {
    hdr: [u8; MAX_HEADER_LEN],
    hlen: u8,
    off: usize,
    len: usize,
}

impl HeldFrame {
    /// An unmasked, uncompressed, final frame of `op` whose payload is
    /// `len` bytes at `off`.
    fn new(op: OpCode, off: usize, len: usize) -> HeldFrame {
        let mut hdr = [0u8; MAX_HEADER_LEN];
        let hlen = FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: op.as_u8(),
            mask: None,
            payload_len: len as u64,
        }
        .encode_into(&mut hdr) as u8;
        HeldFrame {
            hdr,
            hlen,
            off,
            len,
        }
    }

    fn header(&self) -> &[u8] {
        &self.hdr[..self.hlen as usize]
    }
}

pub(super) enum Held {
    Yes,
    /// Nothing is held for this connection and this frame cannot be (not
    /// being served, or not from its input): write it at once.
    NotServing,
    /// Frames are held but this one cannot be: queue it behind them.
    Behind,
}

impl Cork {
    /// Starts serving `id`, whose input is `input`.
    fn begin(&mut self, id: ConnId, input: &[u8]) {
        self.owner = Some(id);
        self.base = input.as_ptr() as usize;
        self.len = input.len();
        // Empty unless a batch ended without `cork_end` (it cannot: handler
        // panics are caught inside it); never write stale frames.
        self.frames.clear();
        self.held = 0;
    }

    /// Bytes held for `id`: those of its frames waiting for the end of the
    /// read batch (0 unless `id` is the connection being served).
    fn held_by(&self, id: ConnId) -> usize {
        if self.owner == Some(id) {
            self.held
        } else {
            0
        }
    }

    /// Holds the frame of a server message `data` sent by `id`, if `id`
    /// is being served and `data` lies in its input.
    fn hold(&mut self, id: ConnId, op: OpCode, data: &[u8]) -> Held {
        let addr = data.as_ptr() as usize;
        if self.owner != Some(id) || addr < self.base || addr + data.len() > self.base + self.len {
            return if self.owner == Some(id) && !self.frames.is_empty() {
                Held::Behind
            } else {
                Held::NotServing
            };
        }
        if self.frames.len() == CORK_FRAMES {
            return Held::Behind;
        }
        let frame = HeldFrame::new(op, addr - self.base, data.len());
        self.held += frame.hlen as usize + frame.len;
        self.frames.push(frame);
        Held::Yes
    }
}

/// Writes `frames` (payloads in `input`) to `w` with one vectored write
/// and puts what it refuses in front of `out`, whose frames were sent
/// after them (it was empty when the first was held or written). Returns
/// the bytes written and, if any were refused, how many bytes at the new
/// front of `out` finish a frame the kernel took part of.
fn write_frames(
    w: &mut impl Write,
    input: &[u8],
    frames: &[HeldFrame],
    out: &mut Vec<u8>,
) -> (usize, Option<usize>) {
    let mut iov = [io::IoSlice::new(&[]); 2 * CORK_FRAMES];
    for (i, f) in frames.iter().enumerate() {
        iov[2 * i] = io::IoSlice::new(f.header());
        iov[2 * i + 1] = io::IoSlice::new(&input[f.off..f.off + f.len]);
    }
    // An error (WouldBlock, or a dead socket that the next flush reports)
    // leaves everything to the queue.
    let written = w
        .write_vectored(&iov[..2 * frames.len()])
        .unwrap_or_default();
    let total: usize = frames.iter().map(|f| f.hlen as usize + f.len).sum();
    if written >= total {
        return (written, None);
    }
    let queued = out.len();
    out.reserve(total - written);
    let tail = unsent(input, frames, written, out);
    if queued > 0 {
        // The refused bytes were appended: move them in front.
        let rest = out.len() - queued;
        out.rotate_right(rest);
    }
    (written, Some(tail))
}

/// Appends to `out` what the kernel did not take of `frames` (payloads in
/// `input`) after it took `written` bytes of them; returns how many of
/// those bytes finish a frame it took part of (0 if none).
fn unsent(input: &[u8], frames: &[HeldFrame], mut written: usize, out: &mut Vec<u8>) -> usize {
    let mut tail = 0;
    for f in frames {
        let hdr = f.header();
        let payload = &input[f.off..f.off + f.len];
        let size = hdr.len() + payload.len();
        if written >= size {
            written -= size;
            continue;
        }
        if written > 0 {
            tail = size - written;
        }
        if written < hdr.len() {
            out.extend_from_slice(&hdr[written..]);
            out.extend_from_slice(payload);
        } else {
            out.extend_from_slice(&payload[written - hdr.len()..]);
        }
        written = 0;
    }
    tail
}

/// Per-connection state other than the handler.
pub(crate) struct Core {
    /// Plain TCP or TLS. Over TLS, records rustls could not hand to the
    /// kernel count as unflushed output ([`Core::flushed`]).
    pub(crate) stream: Stream,
    pub(crate) session: Session,
    pub(crate) settings: Rc<RouteSettings>,
    /// The handshake request: the one received (server), or the one
    /// sent (client).
    pub(super) request: Request,
    /// Fields most connections never set (one pointer while idle).
    pub(super) rare: Option<Box<Rare>>,
    /// A partial frame waiting for the rest of its bytes, behind the
    /// frames read but not yet handed out, if any (the handler holds
    /// reading, or the queue is over `write_high_water`), and in front
    /// of them, after such a resume, frames already handed out
    /// ([`Core::spill_at`] bytes).
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
    /// The handler asked not to be read from ([`WebSocket::hold_reading`]:
    /// the coroutine client's unread queue is full).
    pub(super) read_held: bool,
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
    /// Finished, reading and dropping what the peer still sends until it
    /// closes: after failing the connection (see `crate::http::linger`),
    /// or on a client after the closing handshake, waiting for the server
    /// to close first (RFC 6455 §7.1.1).
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
    /// Named route captures (`(?P<name>..)`), while `open` runs: Tornado's
    /// `open(**kwargs)` (see `WebSocket::path_kwarg`).
    pub(super) kwargs: Option<Vec<(String, String)>>,
    /// Messages dropped since the handler was last told
    /// (`SlowConsumerPolicy::DropMessages`).
    pub(super) dropped: u64,
    /// See `Core::frame_tail`.
    pub(super) frame_tail: usize,
    /// Bytes at the front of `Core::out` the kernel has already taken
    /// (after a partial write): the queue is `out[out_at..]`. See
    /// `Core::advance_out`.
    pub(super) out_at: usize,
    /// Tasks to wake once the queue is at most so many bytes (the client's
    /// `WriteFuture`s, see [`Core::wake_at_most`]).
    pub(super) writers: Vec<(usize, Waker)>,
    /// `current_user` and the names the handler added for its templates
    /// (`WebSocket::set_current_user`, `WebSocket::set_template_value`).
    pub(super) namespace: Option<Box<Namespace>>,
    /// The topics it subscribed to ([`super::topics`]).
    pub(super) topics: Vec<Box<str>>,
    /// Live [`Suspension`](super::Suspension)s: messages wait while any is.
    pub(super) suspensions: u32,
    /// The coroutine client's own hold on reading (its unread messages
    /// are over the mark).
    pub(super) client_hold: bool,
    /// A client's: the headers of the server's 101.
    pub(super) response_headers: Vec<(String, String)>,
    /// What the peer broke (or the limit it passed) when the library
    /// failed the connection (`WebSocket::protocol_error`).
    pub(super) protocol_error: Option<crate::protocol::ProtocolError>,
    /// The peer hung up while a suspension held the connection (see
    /// `WsConn::read_to_end_if_held`), or while reading was paused on our
    /// queue (`Core::hang_up_while_paused`).
    pub(super) hung_up: bool,
    /// A readiness event said the peer hung up, and the read batch it
    /// brought was cut by the read budget before the end of the stream:
    /// edge-triggered, the hang-up is not reported again, so the next
    /// (synthetic) readiness must still read to the end, or note it if
    /// reading is paused by then.
    pub(super) fin_unread: bool,
    /// The handler called `WebSocket::terminate`: no further frame is
    /// parsed, and the connection ends when the callback returns.
    pub(super) terminate: bool,
    /// The termination is `WebSocket::require_argument`'s: what was
    /// queued before it still leaves, as far as the kernel takes it at
    /// once, as Tornado's writes have left when its `_abort` closes.
    pub(super) terminate_sends_queued: bool,
    /// While reading is paused on our queue (over `write_high_water`):
    /// when to read once, in case the peer sent its Close meanwhile (see
    /// [`Core::pause_on_queue`]).
    pub(super) pause_deadline: Ms,
    /// Bytes at the front of `Core::spill` already parsed: frames kept
    /// there over `write_high_water` (or behind a hold) are parsed from
    /// here at the next resume, and moved to the front only once at
    /// least half of the spill is behind this. See `WsConn::process_spill`.
    pub(super) spill_at: usize,
    /// Its `WebSocket::add_timeout` timers that may still be pending
    /// (fired ones are pruned at the next add): cancelled when it ends.
    pub(super) timers: Vec<TimeoutHandle>,
}

/// Who the connection's user is, and what a handler added to its
/// connection's templates.
#[derive(Default)]
pub(crate) struct Namespace {
    pub(super) current_user: Option<String>,
    /// What `WebSocketHandler::get_user_locale` chose.
    pub(super) locale: Option<crate::locale::Locale>,
    pub(super) values: serde_json::Map<String, serde_json::Value>,
}

impl Namespace {
    /// What the handshake's `get_current_user` and `get_user_locale`
    /// found; no box when they found nothing.
    pub(super) fn of_handshake(
        current_user: Option<String>,
        locale: Option<crate::locale::Locale>,
    ) -> Option<Box<Namespace>> {
        let ns = Namespace {
            current_user,
            locale,
            values: serde_json::Map::new(),
        };
        (!ns.is_empty()).then(|| Box::new(ns))
    }

    /// Nothing kept: the box can go.
    pub(super) fn is_empty(&self) -> bool {
        self.current_user.is_none() && self.locale.is_none() && self.values.is_empty()
    }
}

impl Rare {
    /// Nothing set: the box can go (idle connections keep none).
    pub(super) fn is_unused(&self) -> bool {
        self.subprotocol.is_none()
            && self.close_reason.is_none()
            && self.args.is_none()
            && self.kwargs.is_none()
            && self.dropped == 0
            && self.frame_tail == 0
            && self.out_at == 0
            && self.writers.is_empty()
            && self.namespace.is_none()
            && self.topics.is_empty()
            && self.suspensions == 0
            && !self.client_hold
            && !self.hung_up
            && !self.fin_unread
            && !self.terminate
            && !self.pause_deadline.is_set()
            && self.spill_at == 0
            && self.response_headers.is_empty()
            && self.protocol_error.is_none()
            && self.timers.is_empty()
    }
}

/// A deadline as milliseconds of the loop's clock (since its epoch) modulo
/// 2^32, compared with serial-number arithmetic (RFC 1982): it has passed
/// once the clock is at most 2^31 - 1 ms past it, so deadlines keep working
/// however long the loop runs, in 4 bytes instead of 16 for an
/// `Option<Instant>`. `u32::MAX` = none (a deadline landing on it is kept
/// one millisecond earlier). A deadline 2^31 ms (about 24.8 days) or more
/// ahead cannot be told from one in the past: it is never set (see
/// [`Ms::after_from`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Ms(u32);

impl Default for Ms {
    fn default() -> Ms {
        Ms::NONE
    }
}

impl Ms {
    pub(super) const NONE: Ms = Ms(u32::MAX);

    /// Durations this long or longer are "never" (`Ms::NONE`).
    const MAX_SPAN: std::time::Duration = std::time::Duration::from_millis(1 << 31);

    /// The loop's clock at `when`, in milliseconds modulo 2^32.
    fn ticks(lp: &IOLoop, when: Instant) -> u32 {
        // Truncation is the point: the value wraps every ~49.7 days.
        when.saturating_duration_since(lp.epoch()).as_millis() as u32
    }

    /// The deadline `d` after now (the loop's clock).
    pub(super) fn after(lp: &IOLoop, d: std::time::Duration) -> Ms {
        Ms::after_from(lp, lp.time(), d)
    }

    /// The deadline `d` after `now`; `Ms::NONE` if `d` is at least
    /// [`Ms::MAX_SPAN`] (too far ahead to represent: never).
    pub(super) fn after_from(lp: &IOLoop, now: Instant, d: std::time::Duration) -> Ms {
        if d >= Ms::MAX_SPAN {
            return Ms::NONE;
        }
        // Whole milliseconds from now's millisecond, so the span stays
        // below 2^31 (what `passed` can tell from the past).
        Ms::from_ticks(Ms::ticks(lp, now).wrapping_add(d.as_millis() as u32))
    }

    /// The deadline `d` after this one, as `PeriodicCallback` schedules
    /// from the previous *scheduled* time, so a sweep's lateness does not
    /// add up; `d` after `now` if that is already past (missed periods are
    /// skipped). `Ms::NONE` if `d` is "never".
    pub(super) fn then_every(self, lp: &IOLoop, now: Instant, d: std::time::Duration) -> Ms {
        if d >= Ms::MAX_SPAN || !self.is_set() {
            return Ms::after_from(lp, now, d);
        }
        let next = Ms::from_ticks(self.0.wrapping_add(d.as_millis() as u32));
        if next.passed(lp, now) {
            Ms::after_from(lp, now, d)
        } else {
            next
        }
    }

    fn from_ticks(t: u32) -> Ms {
        Ms(if t == u32::MAX { t - 1 } else { t })
    }

    pub(super) fn is_set(self) -> bool {
        self != Ms::NONE
    }

    /// Milliseconds from `now` (in ticks) until this deadline; zero or
    /// negative once it is due.
    fn remaining(self, now: u32) -> i32 {
        self.0.wrapping_sub(now) as i32
    }

    /// The earlier of two deadlines (a set one before none).
    pub(super) fn sooner(self, other: Ms, lp: &IOLoop) -> Ms {
        if !self.is_set() {
            return other;
        }
        if !other.is_set() {
            return self;
        }
        let t = Ms::ticks(lp, lp.cached_time());
        if self.remaining(t) <= other.remaining(t) {
            self
        } else {
            other
        }
    }

    /// Whether the deadline is set and `now` is at or past it.
    pub(super) fn passed(self, lp: &IOLoop, now: Instant) -> bool {
        self.is_set() && Ms::ticks(lp, now).wrapping_sub(self.0) as i32 >= 0
    }

    /// The earliest of `deadlines` (by time left from now, not by raw
    /// value: the values wrap) as an `Instant`, on the same millisecond
    /// grid as [`Ms::passed`].
    pub(super) fn earliest(lp: &IOLoop, deadlines: &[Ms]) -> Option<Instant> {
        // The sweep asks every connection: no clock read per connection.
        let now = lp.cached_time();
        let t = Ms::ticks(lp, now);
        let left = deadlines
            .iter()
            .filter(|d| d.is_set())
            .map(|d| d.remaining(t))
            .min()?;
        let ms = now.saturating_duration_since(lp.epoch()).as_millis() as i128 + left as i128;
        Some(lp.epoch() + std::time::Duration::from_millis(ms.max(0) as u64))
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
        self.take_inbox(lp);
        if self.should_drop(lp) {
            return Ok(self.queued(lp));
        }
        let direct = data.len() >= DIRECT_WRITE_MIN
            && self.out.is_empty()
            && !self.is_client
            && !self.session.is_compressing()
            && self.session.state().can_send();
        match direct.then(|| lp.cork().hold(self.id, op, data)) {
            Some(Held::Yes) => {}
            Some(Held::NotServing) => self.write_direct(lp, op, data),
            // Not from the input, or the cork is full, while frames are
            // held: queued behind them, so the wire keeps the send order.
            Some(Held::Behind) | None => self
                .session
                .send_message(op, data, &mut self.out)
                .map_err(|_| WebSocketClosedError)?,
        }
        lp.count(crate::ioloop::Counter::WsMessagesOut, 1);
        self.over_twice_the_cap(lp);
        Ok(self.queued(lp))
    }

    /// `max_write_buffer`'s bound holds at any time, not only at the flush
    /// that ends a callback: a handler writing in a loop to a peer that
    /// does not read (or broadcasting to it) would otherwise queue without
    /// limit until the callback returns. Past twice the cap the slow
    /// consumer is closed at once, as a flush would ([`slow_consumer_check`]):
    /// the queue goes, the 1008 is queued and later writes fail. One
    /// compare per message under the cap.
    ///
    /// [`slow_consumer_check`]: Self::slow_consumer_check
    #[inline]
    fn over_twice_the_cap(&mut self, lp: &IOLoop) {
        let twice = self.settings.max_write_buffer.saturating_mul(2);
        if self.out.len() > twice
            && self.out_len() > twice
            && self.settings.slow_consumer_policy == SlowConsumerPolicy::Close
        {
            // True only when our Close was queued already, and then
            // nothing more is queued: writes fail before they get here.
            let _ = self.slow_consumer_check(lp);
        }
    }

    /// Sends a message on behalf of `write_to`/`broadcast`, which count
    /// receivers: false when it was not queued (closing, or dropped under
    /// `SlowConsumerPolicy::DropMessages`, as for any other receiver).
    pub(super) fn send_received(&mut self, lp: &IOLoop, op: OpCode, data: &[u8]) -> bool {
        if self.finished || self.should_drop(lp) {
            return false;
        }
        self.send_data(lp, op, data).is_ok()
    }

    /// Bytes queued for this connection and not yet taken by the kernel:
    /// `out`, plus the frames the loop's [`Cork`] holds for it while its
    /// read batch is parsed (echoes of large messages, which leave from
    /// the input buffer without being copied into `out`).
    pub(super) fn queued(&self, lp: &IOLoop) -> usize {
        self.out_len() + lp.cork().held_by(self.id)
    }

    /// Bytes of `out` the kernel has already taken (0 unless a partial
    /// write left some; always 0 when `out` is empty).
    #[inline]
    fn out_at(&self) -> usize {
        if self.out.is_empty() {
            return 0;
        }
        self.rare.as_ref().map_or(0, |r| r.out_at)
    }

    /// Bytes queued in `out` and not yet taken by the kernel.
    #[inline]
    pub(super) fn out_len(&self) -> usize {
        self.out.len() - self.out_at()
    }

    /// Bytes at the front of `spill` already parsed (0 unless a resume
    /// over the mark or behind a hold left some; always 0 when `spill` is
    /// empty).
    #[inline]
    pub(super) fn spill_at(&self) -> usize {
        self.rare.as_ref().map_or(0, |r| r.spill_at)
    }

    /// Whether more than `mark` bytes of `out` wait for the kernel. One
    /// comparison while `out` is no longer than that.
    #[inline]
    pub(super) fn over(&self, mark: usize) -> bool {
        self.out.len() > mark && self.out_len() > mark
    }

    /// The kernel took `n` more bytes of `out`, but not all of it. The
    /// taken bytes stay in front (an offset moves past them) until they
    /// are at least half of `out`; then the rest, no longer than what was
    /// taken, moves to the front. Each byte is moved at most once on
    /// average, however slowly the peer reads: moving the rest after every
    /// partial write cost O(queue) per writable edge, up to
    /// `max_write_buffer` bytes each time for a slow consumer.
    fn advance_out(&mut self, n: usize) {
        let at = self.out_at() + n;
        debug_assert!(at < self.out.len());
        if at * 2 >= self.out.len() {
            self.out.drain(..at);
            self.set_out_at(0);
        } else {
            self.rare().out_at = at;
        }
    }

    fn set_out_at(&mut self, at: usize) {
        if let Some(r) = self.rare.as_mut() {
            r.out_at = at;
        }
    }

    /// What `out` holds that the kernel has not taken.
    pub(super) fn unsent_out(&self) -> &[u8] {
        &self.out[self.out_at()..]
    }

    /// Replaces `out` with `bytes` (what is kept of the queue), forgets the
    /// offset, and returns the old buffer.
    pub(super) fn replace_out(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        self.set_out_at(0);
        std::mem::replace(&mut self.out, bytes)
    }

    /// Moves the unsent rest of `out` to its front (no offset left).
    fn compact_out(&mut self) {
        let at = self.out_at();
        if at > 0 {
            self.out.drain(..at);
            self.set_out_at(0);
        }
    }

    /// Large uncompressed server message with nothing queued before it:
    /// header and payload leave in one `writev` straight from where the
    /// payload is (the loop's read buffer, for an echo), and only what the
    /// kernel refuses is copied into the queue (PERF-NOTES §3).
    pub(super) fn write_direct(&mut self, lp: &IOLoop, op: OpCode, data: &[u8]) {
        self.send_frames(lp, data, &[HeldFrame::new(op, 0, data.len())]);
    }

    /// Begins a read batch: large frames this connection sends from `input`
    /// while it is parsed may be held by the loop's [`Cork`].
    pub(super) fn cork_begin(&self, lp: &IOLoop, input: &[u8]) {
        lp.cork().begin(self.id, input);
    }

    /// Ends the batch begun by [`Core::cork_begin`] with the same `input`
    /// (parsing unmasks frames in place, but never one already consumed, so
    /// held payloads are as they were handed out): the held frames leave in
    /// one `writev`, and only what the kernel refuses is copied, in front
    /// of anything queued behind them. A connection finished (or
    /// terminated) meanwhile drops them, as it drops its queue (unless
    /// `WebSocket::require_argument` terminated it: they are sent, as its
    /// queue is).
    pub(super) fn cork_end(&mut self, lp: &IOLoop, input: &[u8]) {
        let mut frames = {
            let mut c = lp.cork();
            c.owner = None;
            c.held = 0;
            if c.frames.is_empty() {
                return;
            }
            std::mem::take(&mut c.frames)
        };
        if !self.finished && (!self.terminating() || self.terminate_sends_queued()) {
            self.send_frames(lp, input, &frames);
        }
        // Keep the vector's capacity for the next batch.
        frames.clear();
        lp.cork().frames = frames;
    }

    /// [`write_frames`] to this connection's socket, in front of its queue.
    fn send_frames(&mut self, lp: &IOLoop, input: &[u8], frames: &[HeldFrame]) {
        // The refused bytes go in front of the queue: no offset then.
        self.compact_out();
        let (written, tail) = write_frames(&mut self.stream, input, frames, &mut self.out);
        lp.count(crate::ioloop::Counter::WsBytesOut, written as u64);
        if let Some(tail) = tail {
            self.set_frame_tail(tail);
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
        let (at, mut pos) = (self.out_at(), self.frame_tail());
        while pos < written {
            match FrameHeader::parse(&self.out[at + pos..]) {
                Some((h, hlen)) => pos = pos.saturating_add(hlen + h.payload_len as usize),
                None => return 0, // unreachable: the queue holds whole frames
            }
        }
        pos - written
    }

    /// Queues what the free `write_to`, `broadcast` and `publish` sent this
    /// connection while its handler was running, ahead of what it sends
    /// now: they were called first. One empty check when there is none.
    ///
    /// Inlined, the empty check is a shared borrow and one compare; the
    /// call it replaced (`take_for` returning an empty `Vec`, a loop over
    /// it and its drop) cost about 70 instructions of each echoed message
    /// in scenario a (`benches/callgrind.sh`).
    #[inline]
    pub(super) fn take_inbox(&mut self, lp: &IOLoop) {
        if lp.cork_ref().inbox_is_empty() {
            return;
        }
        self.take_inbox_now(lp);
    }

    #[inline(never)]
    fn take_inbox_now(&mut self, lp: &IOLoop) {
        let mine = lp.cork().take_for(self.id);
        for (_, op, frame, payload) in mine {
            if self.queue_shared(lp, op, &payload, &frame) {
                self.mark_dirty(lp, self.id);
            }
        }
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
        self.over_twice_the_cap(lp);
        true
    }

    /// `SlowConsumerPolicy::DropMessages`: true (and the drop recorded, to
    /// be reported to the handler at the end of the tick) when the queue is
    /// over `max_write_buffer`, so the message must not be queued.
    #[inline]
    pub(super) fn should_drop(&mut self, lp: &IOLoop) -> bool {
        // One compare per message while under the cap.
        self.out.len() > self.settings.max_write_buffer
            && self.out_len() > self.settings.max_write_buffer
            && self.drop_over_cap(lp)
    }

    #[cold]
    #[inline(never)]
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
        let queued = self.out_len();
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
        let (at, tail) = (self.out_at(), self.frame_tail().min(self.out_len()));
        let mut kept = Vec::with_capacity(tail + 140);
        kept.extend_from_slice(&self.out[at..at + tail]);
        self.replace_out(kept);
        if !self.session.state().can_send() {
            // Our close frame is already queued (or sent): drop now.
            self.replace_out(Vec::new());
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

    /// The connection ends for `why` (a hang-up, a reset, a protocol
    /// error) while our own Close is unanswered: the closing handshake
    /// did not complete, so `CloseReason::Local` ("the handshake
    /// completed") gives way to `why`, as it gives way to `CloseTimeout`
    /// when the answer never comes and to `Terminated`. A close the
    /// library started keeps its own reason.
    pub(super) fn note_unanswered_close(&mut self, why: CloseReason) {
        if self.closed_by == Some(CloseReason::Local) && !self.session.state().is_closed() {
            self.closed_by = Some(why);
        }
    }

    /// A handler callback, or a future it spawned with
    /// [`WebSocket::spawn`], panicked: this connection alone closes with
    /// 1011. One already closing keeps the reason it closes for (the panic
    /// may follow the handler's own `close`).
    pub(super) fn handler_panicked(&mut self, lp: &IOLoop) {
        lp.count(crate::ioloop::Counter::HandlerPanics, 1);
        self.closed_by.get_or_insert(CloseReason::HandlerPanic);
        self.start_close(
            lp,
            Some(CloseCode::INTERNAL_ERROR),
            "",
            CloseReason::HandlerPanic,
        );
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
        // What was sent to it before the close goes before the Close.
        self.take_inbox(lp);
        if self.session.send_close(code, reason, &mut self.out).is_ok() {
            self.closed_by.get_or_insert(why);
            self.close_deadline = Ms::after(lp, self.settings.close_timeout);
            self.stop_keepalive();
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

    /// [`flush`](Self::flush), then what follows it outside a read batch
    /// (nothing held by the cork: `out` is all): a hung-up peer that took
    /// bytes gets more time to read, and writers waiting on the queue are
    /// woken. Err = the socket is dead (nothing woken).
    pub(super) fn flush_and_wake(&mut self, lp: &IOLoop) -> io::Result<()> {
        let queued = self.out_len();
        self.flush(lp)?;
        if self.out_len() < queued {
            self.peer_read_after_hang_up(lp);
        }
        self.wake_writers();
        Ok(())
    }

    /// Writes as much of `out` as the kernel takes. Err = the socket is dead.
    pub(super) fn flush(&mut self, lp: &IOLoop) -> io::Result<()> {
        // A server answering the peer's Close shuts the socket down right
        // after this flush: the last bytes (the Close echo) wait for the FIN
        // and leave in the same segment (see `Stream::write_last`). Failing
        // the connection (protocol error, 1009) writes its Close at once and
        // shuts down in `WsConn::linger` instead.
        let last =
            self.close_after_flush && !self.is_client && self.closed_by == Some(CloseReason::Peer);
        while !self.out.is_empty() {
            let pending = &self.out[self.out_at()..];
            let res = if last {
                self.stream.write_last(pending)
            } else {
                self.stream.write(pending)
            };
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) if n == self.out_len() => {
                    lp.count(crate::ioloop::Counter::WsBytesOut, n as u64);
                    self.out.clear();
                    self.set_out_at(0);
                    self.set_frame_tail(0);
                }
                Ok(n) => {
                    lp.count(crate::ioloop::Counter::WsBytesOut, n as u64);
                    let tail = self.tail_after(n);
                    self.advance_out(n);
                    self.set_frame_tail(tail);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // TLS records rustls holds beyond what the kernel took (plain TCP:
        // nothing, one compare). What is still refused keeps the
        // connection unflushed until the writable edge.
        self.stream.flush_pending()?;
        if last && self.out.is_empty() {
            // Send the held bytes and the FIN now rather than at `close()`:
            // a byte the peer sends after its Close (Autobahn 7.1.2: a
            // second Close) that lands before `close()` would turn it into
            // a reset that discards the held Close echo unsent. (Over TLS
            // a close_notify goes first, and the FIN waits until the kernel
            // has taken every record: `Stream::shut_write`.)
            self.stream.shut_write();
        }
        Ok(())
    }

    /// Everything queued has left: `out` is empty and, over TLS, rustls
    /// holds no record the kernel refused. Only then may the connection
    /// be closed or `on_drain` run.
    #[inline]
    pub(super) fn flushed(&self) -> bool {
        self.out.is_empty() && !self.stream.has_pending()
    }

    pub(super) fn ctx<'a>(&'a mut self, lp: &'a IOLoop) -> WebSocket<'a> {
        WebSocket { core: self, lp }
    }

    pub(super) fn next_deadline(&self, lp: &IOLoop) -> Option<Instant> {
        Ms::earliest(
            lp,
            &[
                self.next_ping,
                self.pong_deadline,
                self.close_deadline,
                self.slow_deadline,
                self.idle_deadline,
                self.pause_deadline(),
            ],
        )
    }

    /// The deadline of a pause on our queue, if reading is paused on it
    /// (see [`pause_on_queue`](Self::pause_on_queue)); none otherwise.
    fn pause_deadline(&self) -> Ms {
        match &self.rare {
            Some(r) if self.read_paused && !self.read_held => r.pause_deadline,
            _ => Ms::NONE,
        }
    }

    /// Reading pauses (or stays paused) because our queue is over
    /// `write_high_water` and the peer sent more. What it sent waits
    /// unread, its Close too: a peer that stopped reading and then closed
    /// (without a FIN), or one that reads a stream its handler keeps over
    /// the mark, would keep its connection for as long as nothing else
    /// ends it (Tornado, which does not pause, reads the Close at once).
    /// So a pause has a deadline, `close_timeout` from its start and from
    /// each time it passes: the connection then reads once
    /// ([`pause_passed`](Self::pause_passed)), which hands out the frames
    /// read before and kept over the mark, then takes at most the read
    /// budget, and a Close among them is answered as any, with
    /// `close_timeout` for the peer to take the rest.
    pub(super) fn pause_on_queue(&mut self, lp: &IOLoop) {
        self.read_paused = true;
        if !self.read_held && !self.pause_deadline().is_set() {
            self.rare().pause_deadline = Ms::after(lp, self.settings.close_timeout);
        }
    }

    /// Reading resumes: the pause's deadline goes with it.
    pub(super) fn end_pause(&mut self) {
        self.read_paused = false;
        if let Some(r) = self.rare.as_mut() {
            r.pause_deadline = Ms::NONE;
        }
    }

    /// Whether the deadline of a pause on our queue has passed; if so the
    /// next one is set, `close_timeout` from `now`, for the read the
    /// caller does.
    pub(super) fn pause_passed(&mut self, lp: &IOLoop, now: Instant) -> bool {
        if !self.pause_deadline().passed(lp, now) || self.finished {
            return false;
        }
        self.rare().pause_deadline = Ms::after_from(lp, now, self.settings.close_timeout);
        true
    }

    /// Drop the connection once `out` is flushed — or at the close timeout
    /// if the peer stops reading, so a stuck close never pins the slot.
    pub(super) fn close_after_flush(&mut self, lp: &IOLoop) {
        self.close_after_flush = true;
        self.stop_keepalive();
        if !self.close_deadline.is_set() {
            self.close_deadline = Ms::after(lp, self.settings.close_timeout);
        }
    }

    /// Arms the pong deadline: the ping timeout from `now` (none when
    /// there is no ping timeout).
    pub(super) fn arm_pong_deadline(&mut self, lp: &IOLoop, now: Instant) {
        self.pong_deadline = self
            .settings
            .effective_ping_timeout()
            .map_or(Ms::NONE, |t| Ms::after_from(lp, now, t));
    }

    /// Closing (ours, the peer's, or a protocol error): no keep-alive
    /// ping, which could not be sent, and no pong deadline to cut the
    /// close timeout short.
    pub(super) fn stop_keepalive(&mut self) {
        self.next_ping = Ms::NONE;
        self.pong_deadline = Ms::NONE;
    }

    /// Whether a [`Suspension`](super::Suspension) (the handler's own hold,
    /// as `ws.spawn` takes) is alive; the coroutine client's flow-control
    /// hold does not count.
    pub(super) fn held_by_handler(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.suspensions > 0)
    }

    /// Whether the peer hung up while the handler held the connection, and
    /// the hold still lasts.
    pub(super) fn hung_up_while_held(&self) -> bool {
        self.read_held && self.rare.as_ref().is_some_and(|r| r.hung_up)
    }

    /// The peer hung up (FIN) while reading was paused on our queue (over
    /// `write_high_water`), with no hold of the handler's: it will send
    /// nothing more, and unless it reads what is queued the pause never
    /// ends, nor does the connection (Tornado, which does not pause,
    /// reads the Close and closes at once). It gets `close_timeout` to
    /// take something of the queue, and `close_timeout` more each time it
    /// does ([`peer_read_after_hang_up`](Self::peer_read_after_hang_up));
    /// then it is dropped.
    pub(super) fn hang_up_while_paused(&mut self, lp: &IOLoop) {
        self.rare().hung_up = true;
        let by = Ms::after(lp, self.settings.close_timeout);
        self.close_deadline = self.close_deadline.sooner(by, lp);
    }

    /// The kernel took some of the queue of a peer that hung up (see
    /// [`hang_up_while_paused`](Self::hang_up_while_paused)): it is still
    /// reading, so it gets `close_timeout` from now.
    pub(super) fn peer_read_after_hang_up(&mut self, lp: &IOLoop) {
        if self.rare.as_ref().is_some_and(|r| r.hung_up) && !self.held_by_handler() {
            self.close_deadline = Ms::after(lp, self.settings.close_timeout);
        }
    }

    /// Whether the peer hung up while reading was paused on our queue, and
    /// it still is (see [`hang_up_while_paused`](Self::hang_up_while_paused)).
    pub(super) fn hung_up_while_paused(&self) -> bool {
        self.read_paused && !self.read_held && self.rare.as_ref().is_some_and(|r| r.hung_up)
    }

    /// Whether the handler called `WebSocket::terminate`.
    pub(super) fn terminating(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.terminate)
    }

    /// Whether the termination sends what was queued before it
    /// (`WebSocket::require_argument`'s).
    pub(super) fn terminate_sends_queued(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.terminate_sends_queued)
    }

    pub(super) fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Wakes `waker` once the queue ([`Core::queued`]) is at most `mark`
    /// bytes, as seen after a flush, or when the connection ends. A waker
    /// already registered (the same task) keeps one entry, with the larger
    /// mark: woken there, the task polls again and registers what it still
    /// waits for.
    pub(super) fn wake_at_most(&mut self, mark: usize, waker: &Waker) {
        const MAX_WRITERS: usize = 64;
        let writers = &mut self.rare().writers;
        match writers.iter_mut().find(|(_, w)| w.will_wake(waker)) {
            Some(entry) => entry.0 = entry.0.max(mark),
            None => {
                // Futures dropped while waiting (under a timeout, each with
                // its own waker) leave entries behind: past a bound, wake
                // them all (a spurious wake-up makes a live one poll and
                // register again) rather than let the list grow.
                if writers.len() >= MAX_WRITERS {
                    writers.drain(..).for_each(|(_, w)| w.wake());
                }
                writers.push((mark, waker.clone()));
            }
        }
    }

    /// After a flush: wakes the writers whose mark the queue has reached
    /// (all of them once `finished`). Only a connection whose writers wait
    /// pays more than one branch.
    pub(super) fn wake_writers(&mut self) {
        let queued = self.out_len();
        let finished = self.finished;
        if let Some(r) = self.rare.as_mut().filter(|r| !r.writers.is_empty()) {
            r.writers.retain(|(mark, w)| {
                let ready = finished || queued <= *mark;
                if ready {
                    w.wake_by_ref();
                }
                !ready
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Moves `lp`'s clock to `ms` milliseconds after its epoch (it must not
    /// be past it already).
    fn clock_at(lp: &IOLoop, ms: u64) {
        let now = lp.time().saturating_duration_since(lp.epoch());
        lp.advance_clock(Duration::from_millis(ms).saturating_sub(now));
    }

    /// A deadline set just before the loop's millisecond count wraps at
    /// 2^32 (~49.7 days of uptime) and due just after it: not passed
    /// early, passed in time, and reported at the right instant.
    #[test]
    fn deadlines_survive_the_wrap_of_the_millisecond_count() {
        let lp = IOLoop::current();
        clock_at(&lp, (1 << 32) - 3_000);
        let before = Ms::after(&lp, Duration::from_secs(5));
        let close = Ms::after(&lp, Duration::from_secs(2));
        // Stored modulo 2^32: `before` lands after the wrap, `close` just
        // before it.
        assert!(
            before.0 < 3_000 && close.0 > before.0,
            "{before:?} {close:?}"
        );
        assert!(!before.passed(&lp, lp.time()));
        let left = Ms::earliest(&lp, &[before]).unwrap() - lp.time();
        assert!(
            left > Duration::from_millis(4_900) && left <= Duration::from_secs(5),
            "{left:?}"
        );
        lp.advance_clock(Duration::from_secs(4));
        assert!(Ms::ticks(&lp, lp.time()) < 2_000, "wrapped");
        assert!(close.passed(&lp, lp.time()));
        assert!(!before.passed(&lp, lp.time()));
        lp.advance_clock(Duration::from_millis(1_100));
        assert!(before.passed(&lp, lp.time()));
        // Passed deadlines stay passed (for 2^31 ms).
        lp.advance_clock(Duration::from_secs(24 * 24 * 3600));
        assert!(before.passed(&lp, lp.time()));
        assert!(!Ms::NONE.passed(&lp, lp.time()));
    }

    /// The earliest deadline is the one with the least time left, not the
    /// smallest value: one set before the wrap (a large value) comes before
    /// one after it (a small value).
    #[test]
    fn earliest_deadline_is_by_time_left() {
        let lp = IOLoop::current();
        clock_at(&lp, (1 << 32) - 10_000);
        let soon = Ms::after(&lp, Duration::from_secs(1));
        let later = Ms::after(&lp, Duration::from_secs(20));
        assert!(soon.0 > later.0, "{soon:?} {later:?}");
        let at = Ms::earliest(&lp, &[later, Ms::NONE, soon]).unwrap();
        let left = at - lp.time();
        assert!(
            left > Duration::from_millis(900) && left <= Duration::from_secs(1),
            "{left:?}"
        );
        assert_eq!(Ms::earliest(&lp, &[Ms::NONE, Ms::NONE]), None);
        // A passed deadline is reported as due (at or before now).
        lp.advance_clock(Duration::from_secs(2));
        assert!(Ms::earliest(&lp, &[later, soon]).unwrap() <= lp.time());
    }

    /// `u32::MAX` means "no deadline": a real one landing on it moves a
    /// millisecond earlier; spans of 2^31 ms or more are "never".
    #[test]
    fn none_sentinel_and_unrepresentable_spans() {
        assert_eq!(Ms::from_ticks(u32::MAX), Ms(u32::MAX - 1));
        assert_eq!(Ms::from_ticks(7), Ms(7));
        let lp = IOLoop::current();
        clock_at(&lp, 1_000);
        assert_eq!(Ms::after(&lp, Duration::from_millis(1 << 31)), Ms::NONE);
        assert_eq!(
            Ms::after(&lp, Duration::from_secs(60 * 24 * 3600)),
            Ms::NONE
        );
        let far = Ms::after(&lp, Duration::from_millis((1 << 31) - 1));
        assert!(far.is_set());
        assert!(!far.passed(&lp, lp.time()));
        lp.advance_clock(Duration::from_millis((1 << 31) - 2));
        assert!(!far.passed(&lp, lp.time()));
        lp.advance_clock(Duration::from_millis(2));
        assert!(far.passed(&lp, lp.time()));
    }

    fn frame_bytes(f: &HeldFrame, input: &[u8]) -> Vec<u8> {
        let mut v = f.header().to_vec();
        v.extend_from_slice(&input[f.off..f.off + f.len]);
        v
    }

    /// Three held frames (7-bit, 16-bit and 64-bit lengths) with gaps
    /// between their payloads in the input: whatever the kernel takes,
    /// the rest is exactly the unsent end of the concatenated frames, and
    /// the tail is what remains of a frame cut inside.
    #[test]
    fn unsent_is_the_rest_of_the_frames_at_every_cut() {
        let input: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut cork = Cork::default();
        let id = ConnId::new(1, 1);
        cork.begin(id, &input);
        for (off, len, op) in [
            (5, 3, OpCode::Text),
            (40, 130, OpCode::Binary),
            (300, 65_540, OpCode::Binary),
        ] {
            assert!(matches!(
                cork.hold(id, op, &input[off..off + len]),
                Held::Yes
            ));
        }
        let frames = &cork.frames;
        assert_eq!(
            frames
                .iter()
                .map(|f| (f.off, f.len, f.hlen))
                .collect::<Vec<_>>(),
            [(5, 3, 2), (40, 130, 4), (300, 65_540, 10)]
        );
        let all: Vec<u8> = frames.iter().flat_map(|f| frame_bytes(f, &input)).collect();
        let ends: Vec<usize> = frames
            .iter()
            .scan(0, |end, f| {
                *end += f.hlen as usize + f.len;
                Some(*end)
            })
            .collect();
        assert_eq!(all[..2], [0x81, 3]);
        let near_a_boundary = |cut: usize| ends.iter().any(|e| cut.abs_diff(*e) <= 16);
        let mut checked = 0;
        for cut in 0..=all.len() {
            if cut > 400 && !near_a_boundary(cut) && cut % 997 != 0 {
                continue;
            }
            let mut rest = Vec::new();
            let tail = unsent(&input, frames, cut, &mut rest);
            assert!(rest == all[cut..], "cut {cut}: rest differs");
            let start = ends.iter().rev().find(|e| **e <= cut).copied().unwrap_or(0);
            let want_tail = match ends.iter().find(|e| **e > cut) {
                Some(end) if cut > start => end - cut,
                _ => 0,
            };
            assert_eq!(tail, want_tail, "cut {cut}");
            checked += 1;
        }
        assert!(checked > 450, "{checked} cuts");
    }

    /// Takes at most `limit` bytes per call, across slices.
    struct Takes {
        limit: usize,
        got: Vec<u8>,
    }

    impl Write for Takes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[io::IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            if self.limit == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let before = self.got.len();
            for b in bufs {
                let room = self.limit - (self.got.len() - before);
                self.got.extend_from_slice(&b[..b.len().min(room)]);
            }
            Ok(self.got.len() - before)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// One vectored write of the held frames; what the writer refuses goes
    /// in front of what was queued behind them (a pong), and together they
    /// are the frames in the order they were sent.
    #[test]
    fn refused_bytes_go_in_front_of_frames_queued_behind() {
        let input: Vec<u8> = (0..3000u32).map(|i| (i * 5 + 1) as u8).collect();
        let id = ConnId::new(3, 1);
        let mut cork = Cork::default();
        cork.begin(id, &input);
        for (off, len) in [(0, 100), (500, 1000), (2000, 126)] {
            assert!(matches!(
                cork.hold(id, OpCode::Binary, &input[off..off + len]),
                Held::Yes
            ));
        }
        let all: Vec<u8> = cork
            .frames
            .iter()
            .flat_map(|f| frame_bytes(f, &input))
            .collect();
        let pong = [0x8a, 2, b'h', b'i'];
        for limit in [
            0,
            1,
            2,
            3,
            101,
            102,
            103,
            105,
            600,
            1106,
            1107,
            1110,
            all.len() - 1,
            all.len(),
        ] {
            let mut w = Takes {
                limit,
                got: Vec::new(),
            };
            let mut out = pong.to_vec();
            let (written, tail) = write_frames(&mut w, &input, &cork.frames, &mut out);
            assert_eq!(written, limit, "limit {limit}");
            assert_eq!(w.got, all[..limit], "limit {limit}");
            assert_eq!(out[..out.len() - 4], all[limit..], "limit {limit}");
            assert_eq!(out[out.len() - 4..], pong, "limit {limit}");
            let want = if limit == all.len() {
                None
            } else {
                Some(unsent(&input, &cork.frames, limit, &mut Vec::new()))
            };
            assert_eq!(tail, want, "limit {limit}");
        }
        // Cut inside the second frame's payload: the rest of that frame.
        let mut out = Vec::new();
        let (_, tail) = write_frames(
            &mut Takes {
                limit: 600,
                got: Vec::new(),
            },
            &input,
            &cork.frames,
            &mut out,
        );
        assert_eq!(tail, Some(102 + 1004 - 600));
    }

    /// Only the connection being served holds frames, only from its
    /// input, and at most `CORK_FRAMES`; with frames held, anything else
    /// it sends queues behind them.
    #[test]
    fn hold_takes_only_the_owners_input() {
        let input = vec![0u8; 64 * 1024];
        let other = vec![0u8; 64 * 1024];
        let (a, b) = (ConnId::new(1, 1), ConnId::new(2, 1));
        let mut cork = Cork::default();
        assert!(matches!(
            cork.hold(a, OpCode::Binary, &input),
            Held::NotServing
        ));
        // The input is the first 1,000 bytes.
        cork.begin(a, &input[..1000]);
        assert!(matches!(
            cork.hold(b, OpCode::Binary, &input[..10]),
            Held::NotServing
        ));
        assert!(matches!(
            cork.hold(a, OpCode::Binary, &other),
            Held::NotServing
        ));
        assert!(matches!(
            cork.hold(a, OpCode::Binary, &input[990..1010]),
            Held::NotServing
        ));
        assert!(matches!(
            cork.hold(a, OpCode::Binary, &input[1000..1010]),
            Held::NotServing
        ));
        assert!(cork.frames.is_empty());
        for i in 0..CORK_FRAMES {
            assert!(matches!(
                cork.hold(a, OpCode::Binary, &input[i..i + 100]),
                Held::Yes
            ));
        }
        assert!(matches!(
            cork.hold(a, OpCode::Binary, &input[..1]),
            Held::Behind
        ));
        assert!(matches!(
            cork.hold(a, OpCode::Binary, &input[990..1010]),
            Held::Behind
        ));
        assert!(matches!(cork.hold(a, OpCode::Binary, &other), Held::Behind));
        assert!(matches!(
            cork.hold(b, OpCode::Binary, &other),
            Held::NotServing
        ));
        assert_eq!(cork.frames.len(), CORK_FRAMES);
        assert_eq!(cork.frames[3].off, 3);
        // What is held counts for the owner only (2-byte headers).
        assert_eq!(cork.held_by(a), CORK_FRAMES * 102);
        assert_eq!(cork.held_by(b), 0);
    }
}
