//! WebSocket settings (DESIGN.md §4), Tornado's names.

use std::fmt;
use std::time::Duration;

use crate::protocol::CompressionOptions;

/// The policy for a connection whose write queue is over
/// [`WebSocketSettings::max_write_buffer`] (a slow consumer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Close after `slow_consumer_grace` (or at once past twice the cap):
    /// the queue is dropped, a 1008 close frame follows what the peer
    /// already has, and `on_close` sees `CloseReason::SlowConsumer` (see
    /// [`WebSocketSettings::max_write_buffer`]). The peer learns that it
    /// lost messages; no message is dropped while the connection goes on.
    #[default]
    Close,
    /// Keep the connection, and do not queue new data messages while the
    /// queue is over the cap: each one is dropped (`write_message` still
    /// returns `Ok`; `broadcast` does not count the connection). The handler
    /// learns how many through `on_messages_dropped` at the end of the
    /// tick. For feeds where the newest message supersedes older ones.
    /// Control frames (pong, close) are always queued.
    DropMessages,
}

/// Settings of WebSocket connections; `Application`-wide, overridable per route.
///
/// Timeouts and intervals (`ping_interval`, `ping_timeout`, `close_timeout`,
/// `slow_consumer_grace`, `idle_timeout`) are kept per connection as 32-bit
/// millisecond deadlines: a duration of 2^31 ms (about 24.8 days) or more
/// means "never" (no ping, no timeout).
///
/// They are not timers: the loop checks every connection's next deadline
/// in a sweep, four times a second by default, so a deadline fires up to
/// 250 ms late. Once a connection whose shortest interval or timeout is
/// under 2 s opens (or a client connects with a `connect_timeout` under
/// 2 s), the loop sweeps every eighth of it (but not more often than every
/// 2 ms), so that a 100 ms `ping_interval` pings every 100 ms, each ping at
/// most 12.5 ms late; the loop keeps that pace for as long as it runs.
#[derive(Clone)]
pub struct WebSocketSettings {
    /// `websocket_ping_interval`: send a ping this often (default: none;
    /// zero, as in Tornado, or 24.8 days or more: never).
    pub ping_interval: Option<Duration>,
    /// `websocket_ping_timeout`: close a peer that has not answered a ping
    /// within this time. Tornado 6.5's rule: defaults to the interval and
    /// never exceeds it (a longer one is cut to it, and an
    /// [`Application`](crate::web::Application)'s `build` warns of it, as
    /// Tornado does; zero, as Tornado's `websocket_ping_timeout = 0`,
    /// or 24.8 days or more: no timeout). The TCP connection is dropped
    /// without a Close frame (`on_close` sees
    /// [`CloseReason::PingTimeout`](super::CloseReason::PingTimeout)),
    /// where Tornado sends Close 1000 "ping timed out" and waits up to the
    /// close timeout more for the answer of a peer that answered no ping.
    ///
    /// While reading is paused by [`write_high_water`](Self::write_high_water),
    /// the pong may wait unread behind what the peer sent meanwhile. The
    /// deadline then reads once (at most the 1 MiB read budget, and what
    /// has arrived): a pong among it counts; if it read something but no
    /// pong, the peer is alive and its answer may be behind what is still
    /// unread only because we paused, so it gets the ping timeout again
    /// from then; if it read nothing, the peer did not answer. Tornado,
    /// which does not pause, reads the pong as soon as it arrives; here a
    /// pong behind many MiB of the peer's messages is reached at one read
    /// budget per ping timeout (plus the pause's own reads), and a peer
    /// that went silent times out once what it had sent has been read.
    pub ping_timeout: Option<Duration>,
    /// `websocket_max_message_size`: larger messages close with 1009 (10 MiB;
    /// after inflation for compressed ones), however the message is
    /// fragmented, as in Tornado. To bound floods of tiny fragments, each
    /// fragment is also charged 16 bytes, and a message whose payload plus
    /// charges passes twice this limit closes with 1009 too: a message of
    /// the full limit may have up to `max_message_size / 16` fragments
    /// (655,360 with the default).
    pub max_message_size: usize,
    /// After sending Close, drop the TCP connection if the peer has not
    /// answered within this time (5 s, as Tornado; 24.8 days or more:
    /// wait for the peer however long it takes). Also how often a
    /// connection whose reading is paused by
    /// [`write_high_water`](Self::write_high_water) reads its peer once
    /// (see there).
    pub close_timeout: Duration,
    /// Cap on bytes queued for one connection (default 16 MiB). Default
    /// policy for a slow consumer ([`SlowConsumerPolicy::Close`]): a queue
    /// still above the cap after a flush starts a grace period
    /// ([`slow_consumer_grace`](Self::slow_consumer_grace)); if it is still
    /// above the cap when the grace ends — or reaches twice the cap at any
    /// time, a write in the middle of a callback included — the queue is
    /// dropped (all but the end of a frame the kernel
    /// has partly sent, so the stream stays well-formed), a close frame
    /// with 1008 "slow consumer" is queued, and the peer has
    /// `close_timeout` to read it and answer before the TCP connection is
    /// dropped; `on_close` sees `CloseReason::SlowConsumer`. Control
    /// frames are queued like data (nothing overtakes a stuck queue), but
    /// they never trigger the close themselves.
    pub max_write_buffer: usize,
    /// How long a queue may stay above `max_write_buffer` (default 2 s;
    /// 24.8 days or more: only twice the cap closes).
    pub slow_consumer_grace: Duration,
    /// What happens when the queue is over `max_write_buffer`: close the
    /// connection after the grace period (default), or drop new messages.
    pub slow_consumer_policy: SlowConsumerPolicy,
    /// Inbound flow control: while more than this many bytes are queued for
    /// a connection, the server stops reading from it (default 1 MiB), as
    /// Tornado waits for `on_message`'s future, and hands its handler no
    /// further message of what it has already read: a burst of small
    /// messages, each answered at length, is answered as fast as the peer
    /// reads, not queued at once past `max_write_buffer` (Tornado, whose
    /// write buffer has no bound, queues every answer). What was read
    /// waits, in order, and is handed out once the kernel has taken the
    /// queue below the mark, before reading resumes. Every `close_timeout`
    /// while paused, the server hands out what it kept and reads once (at
    /// most its read budget, 1 MiB): a Close the peer sent meanwhile is
    /// seen, after the messages before it, and answered as any (the peer
    /// then has `close_timeout` to take the rest before the TCP
    /// connection is dropped), so a peer that stopped reading and closed
    /// ends within twice `close_timeout`, and one that reads a stream kept
    /// over the mark is heard at that pace. A peer that hangs up (FIN)
    /// meanwhile can only end by reading: it is dropped if the kernel
    /// takes nothing of its queue for `close_timeout`.
    ///
    /// The mark counts everything queued, not only answers to the peer's
    /// messages: a handler that keeps the queue over it (a stream written
    /// with [`drained`](super::drained) to a higher mark, broadcasts
    /// faster than the peer reads) hears its peer only once per
    /// `close_timeout`, however fast the peer reads: its messages, pongs
    /// and Close wait up to that long (5 s by default). This is
    /// deliberate: the server cannot tell a stream from answers, and the
    /// pause is the backpressure that keeps a peer which sends faster than
    /// it reads from growing the queue. Tornado, which does not pause,
    /// reads the peer at once. To hear the peer while streaming, keep the
    /// stream's own mark under this one by at least one message
    /// (`drained(id, write_high_water - message_len)`): reading then
    /// resumes each time the kernel takes the queue down to it; or raise
    /// this mark above the stream's.
    pub write_high_water: usize,
    /// Close connections (1001, `CloseReason::IdleTimeout`) that received
    /// nothing for this long (default: none; pings answered count as
    /// traffic; 24.8 days or more: never). While reading is paused by
    /// `write_high_water`, the deadline reads once: bytes the peer sent
    /// meanwhile count as activity (the ping timeout reads once too, for
    /// the pong). While the handler holds reading (`ws.spawn`,
    /// `ws.suspend`), bytes waiting unread count as activity.
    pub idle_timeout: Option<Duration>,
    /// `TCP_NODELAY` on upgraded connections (default true).
    pub nodelay: bool,
    /// Default permessage-deflate options for the route (default off); a
    /// handler's `get_compression_options` takes precedence, and its
    /// `compression` may turn it off per connection.
    pub compression: Option<CompressionOptions>,
    /// `cookie_secret`, for [`WebSocket::get_secure_cookie`](super::WebSocket::get_secure_cookie).
    /// An [`Application`](crate::web::Application) fills it in from its own
    /// `cookie_secret` for every WebSocket route that has none (default
    /// none: `get_secure_cookie` returns `None` and logs an error). A
    /// dictionary of secrets (key rotation) is read as the application
    /// reads it.
    pub cookie_secret: Option<std::sync::Arc<crate::web::signed::CookieSecret>>,
}

/// A route's settings as its connections hold them (one `Rc` per route):
/// the public [`WebSocketSettings`] and the application the route
/// belongs to (templates, static URLs and named routes, for
/// `WebSocket::render_string`). Kept apart from `WebSocketSettings`,
/// which stays `Send` for `run_workers` factories.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteSettings {
    pub(crate) ws: WebSocketSettings,
    pub(crate) app: Option<crate::web::ApplicationContext>,
}

impl RouteSettings {
    /// Whether the route's application has `debug` on (its refusals then
    /// carry their reason in the page).
    pub(crate) fn debug(&self) -> bool {
        self.app.as_ref().is_some_and(|app| app.settings().debug)
    }
}

impl From<WebSocketSettings> for RouteSettings {
    fn from(ws: WebSocketSettings) -> Self {
        RouteSettings { ws, app: None }
    }
}

impl std::ops::Deref for RouteSettings {
    type Target = WebSocketSettings;
    fn deref(&self) -> &WebSocketSettings {
        &self.ws
    }
}

impl std::ops::DerefMut for RouteSettings {
    fn deref_mut(&mut self) -> &mut WebSocketSettings {
        &mut self.ws
    }
}

/// Every field but `cookie_secret`'s value, which a log line of the
/// settings must not carry.
impl fmt::Debug for WebSocketSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketSettings")
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("close_timeout", &self.close_timeout)
            .field("max_write_buffer", &self.max_write_buffer)
            .field("slow_consumer_grace", &self.slow_consumer_grace)
            .field("slow_consumer_policy", &self.slow_consumer_policy)
            .field("write_high_water", &self.write_high_water)
            .field("idle_timeout", &self.idle_timeout)
            .field("nodelay", &self.nodelay)
            .field("compression", &self.compression)
            .field("cookie_secret", &redacted(self.cookie_secret.is_some()))
            .finish()
    }
}

/// How settings print a secret: whether there is one, never its value.
pub(crate) fn redacted(set: bool) -> Option<&'static str> {
    set.then_some("<redacted>")
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            ping_interval: None,
            ping_timeout: None,
            max_message_size: 10 * 1024 * 1024,
            close_timeout: Duration::from_secs(5),
            max_write_buffer: 16 * 1024 * 1024,
            slow_consumer_grace: Duration::from_secs(2),
            slow_consumer_policy: SlowConsumerPolicy::Close,
            write_high_water: 1024 * 1024,
            idle_timeout: None,
            nodelay: true,
            compression: None,
            cookie_secret: None,
        }
    }
}

impl WebSocketSettings {
    /// The shortest interval or timeout these settings set: how precise
    /// the loop's deadline sweep must be for them.
    pub(crate) fn shortest_span(&self) -> std::time::Duration {
        [
            self.effective_ping_interval(),
            self.effective_ping_timeout(),
            self.idle_timeout,
            Some(self.close_timeout),
            Some(self.slow_consumer_grace),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(std::time::Duration::MAX)
    }

    /// The effective ping interval: `ping_interval`, except that zero
    /// means no pings (Tornado pings only when the interval is above 0).
    pub fn effective_ping_interval(&self) -> Option<Duration> {
        self.ping_interval.filter(|i| !i.is_zero())
    }

    /// The effective ping timeout: the configured one, capped by the
    /// interval, or the interval itself (Tornado 6.5). A zero timeout
    /// disables it, as Tornado's `websocket_ping_timeout = 0` does.
    pub fn effective_ping_timeout(&self) -> Option<Duration> {
        match (self.effective_ping_interval(), self.ping_timeout) {
            (_, Some(t)) if t.is_zero() => None,
            (Some(i), Some(t)) => Some(t.min(i)),
            (Some(i), None) => Some(i),
            (None, t) => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WebSocketSettings;
    use std::time::Duration;

    /// Tornado 6.6's defaults: no keep-alive ping
    /// (`websocket_ping_interval` unset), a ping timeout that follows the
    /// interval and never exceeds it, messages up to 10 MiB, 5 s for the
    /// peer to answer a Close.
    #[test]
    fn defaults_and_ping_rules_are_tornados() {
        let d = WebSocketSettings::default();
        assert_eq!(d.effective_ping_interval(), None);
        assert_eq!(d.max_message_size, 10 * 1024 * 1024);
        assert_eq!(d.close_timeout, Duration::from_secs(5));
        let s = |interval: u64, timeout: Option<u64>| WebSocketSettings {
            ping_interval: Some(Duration::from_secs(interval)),
            ping_timeout: timeout.map(Duration::from_secs),
            ..WebSocketSettings::default()
        };
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        // The timeout defaults to the interval.
        assert_eq!(secs(s(20, None).effective_ping_timeout()), Some(20));
        assert_eq!(secs(s(20, Some(5)).effective_ping_timeout()), Some(5));
        // Longer than the interval: cut to it (Tornado 6.5 warns and does).
        assert_eq!(secs(s(20, Some(60)).effective_ping_timeout()), Some(20));
        // Zero turns either off.
        assert_eq!(s(20, Some(0)).effective_ping_timeout(), None);
        assert_eq!(s(0, None).effective_ping_interval(), None);
        assert_eq!(s(0, None).effective_ping_timeout(), None);
    }
}
