//! Cheap counters kept by the loop and its connections: one `Cell<u64>`
//! per counter in a fixed array (no lookup, no allocation on the hot path),
//! read as a snapshot with [`IOLoop::metrics`](super::IOLoop::metrics).

use std::cell::Cell;
use std::fmt::Write as _;

macro_rules! counters {
    ($($name:ident => $text:literal, $help:literal;)*) => {
        /// A counter of the loop's [`Metrics`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        #[allow(missing_docs)]
        pub enum Counter { $($name,)* }

        impl Counter {
            /// Every counter, in display order.
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];

            /// The counter's metric name (Prometheus style).
            pub fn name(self) -> &'static str {
                match self { $(Counter::$name => $text,)* }
            }

            /// What the counter counts.
            pub fn help(self) -> &'static str {
                match self { $(Counter::$name => $help,)* }
            }
        }
    };
}

counters! {
    ConnectionsAccepted => "cyclone_connections_accepted_total", "TCP connections accepted";
    AcceptEmfile => "cyclone_accept_fd_exhaustion_total", "accept() failures for lack of file descriptors";
    HttpRefused503 => "cyclone_http_refused_503_total", "connections refused with 503 (max_connections)";
    HttpRequestTimeouts => "cyclone_http_request_timeouts_total", "requests that did not complete in time (408)";
    HandlerPanics => "cyclone_handler_panics_total", "handler callbacks that panicked";
    ClientConnected => "cyclone_websocket_client_connected_total", "client connections that completed the handshake";
    Upgrades => "cyclone_websocket_upgrades_total", "successful WebSocket handshakes";
    WsOpened => "cyclone_websocket_opened_total", "WebSocket connections opened";
    WsClosed => "cyclone_websocket_closed_total", "WebSocket connections closed";
    WsMessagesIn => "cyclone_websocket_messages_in_total", "messages received";
    WsMessagesOut => "cyclone_websocket_messages_out_total", "messages sent";
    WsBytesIn => "cyclone_websocket_bytes_in_total", "bytes received on WebSocket connections";
    WsProtocolErrors => "cyclone_websocket_protocol_errors_total", "connections failed for protocol errors";
    WsPingTimeouts => "cyclone_websocket_ping_timeouts_total", "connections closed for ping timeout";
    WsSlowConsumerCloses => "cyclone_websocket_slow_consumer_closes_total", "connections closed for a write queue over the cap";
}

pub(crate) struct Counters([Cell<u64>; Counter::ALL.len()]);

impl Default for Counters {
    fn default() -> Self {
        Counters(std::array::from_fn(|_| Cell::new(0)))
    }
}

impl Counters {
    #[inline]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        let cell = &self.0[c as usize];
        cell.set(cell.get().wrapping_add(n));
    }

    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.0[c as usize].get()
    }
}

/// A snapshot of the loop's counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Live registrations (listeners, connections, handlers).
    pub registrations: usize,
    /// Loop iterations so far.
    pub ticks: u64,
    /// `(counter, value)` for every [`Counter`].
    pub counters: Vec<(Counter, u64)>,
}

impl Metrics {
    /// The value of one counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters
            .iter()
            .find(|(k, _)| *k == c)
            .map_or(0, |(_, v)| *v)
    }

    /// The snapshot in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# TYPE cyclone_registrations gauge\ncyclone_registrations {}",
            self.registrations
        );
        for (c, v) in &self.counters {
            let _ = writeln!(
                s,
                "# HELP {} {}\n# TYPE {} counter\n{} {}",
                c.name(),
                c.help(),
                c.name(),
                c.name(),
                v
            );
        }
        s
    }
}

pub(crate) fn snapshot(c: &Counters, registrations: usize, ticks: u64) -> Metrics {
    Metrics {
        registrations,
        ticks,
        counters: Counter::ALL.iter().map(|k| (*k, c.get(*k))).collect(),
    }
}
