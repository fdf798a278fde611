//! Cheap counters kept by the loop and its connections: one `Cell<u64>`
//! per counter in a fixed array (no lookup, no allocation on the hot path),
//! read as a snapshot with [`IOLoop::metrics`](super::IOLoop::metrics).
//!
//! Labelled families (closes by code and by reason, handshakes by result)
//! are one counter per label value, so recording one is still a single
//! indexed add.

use std::cell::Cell;
use std::fmt::Write as _;

macro_rules! counters {
    ($($name:ident => $family:literal $labels:literal, $help:literal;)*) => {
        /// A counter of the loop's [`Metrics`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        #[allow(missing_docs)]
        pub enum Counter { $($name,)* }

        impl Counter {
            /// Every counter, in display order (a family's members are adjacent).
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];

            /// The counter's metric family name (Prometheus style).
            pub fn name(self) -> &'static str {
                match self { $(Counter::$name => $family,)* }
            }

            /// The counter's labels inside a family (`code="1000"`), or "".
            pub fn labels(self) -> &'static str {
                match self { $(Counter::$name => $labels,)* }
            }

            /// What the counter's family counts.
            pub fn help(self) -> &'static str {
                match self { $(Counter::$name => $help,)* }
            }
        }
    };
}

counters! {
    ConnectionsAccepted => "cyclone_connections_accepted_total" "", "TCP connections accepted";
    AcceptEmfile => "cyclone_accept_fd_exhaustion_total" "", "accept() failures for lack of file descriptors";
    HttpRefused503 => "cyclone_http_refused_503_total" "", "requests refused with 503 (max_connections, shutting down)";
    HttpRequestTimeouts => "cyclone_http_request_timeouts_total" "", "requests that did not complete in time (408)";
    HandlerPanics => "cyclone_handler_panics_total" "", "handler callbacks that panicked";
    CallbackPanics => "cyclone_callback_panics_total" "", "loop callbacks that panicked and were caught: add_callback (any thread), timers, PeriodicCallback ticks, spawned tasks, add_handler and signal callbacks";
    TlsErrors => "cyclone_tls_errors_total" "", "connections ended by a TLS error (failed handshake, bad record)";
    ClientConnected => "cyclone_websocket_client_connected_total" "", "client connections that completed the handshake";
    Upgrades => "cyclone_websocket_handshakes_total" "result=\"ok\"", "server handshakes by result (ok, or the HTTP status answered)";
    HandshakeBadRequest => "cyclone_websocket_handshakes_total" "result=\"400\"", "";
    HandshakeForbidden => "cyclone_websocket_handshakes_total" "result=\"403\"", "";
    HandshakeMethodNotAllowed => "cyclone_websocket_handshakes_total" "result=\"405\"", "";
    HandshakeUpgradeRequired => "cyclone_websocket_handshakes_total" "result=\"426\"", "";
    WsOpened => "cyclone_websocket_opened_total" "", "WebSocket connections opened";
    WsClosed => "cyclone_websocket_closed_total" "", "WebSocket connections closed";
    WsMessagesIn => "cyclone_websocket_messages_in_total" "", "messages received";
    WsMessagesOut => "cyclone_websocket_messages_out_total" "", "messages queued for sending";
    WsBytesIn => "cyclone_websocket_bytes_in_total" "", "bytes received on WebSocket connections";
    WsBytesOut => "cyclone_websocket_bytes_out_total" "", "bytes written to WebSocket connections";
    WsMessagesDropped => "cyclone_websocket_messages_dropped_total" "", "messages dropped for a full write queue (SlowConsumerPolicy::DropMessages)";
    WsProtocolErrors => "cyclone_websocket_protocol_errors_total" "", "connections failed for protocol errors";
    WsPingTimeouts => "cyclone_websocket_ping_timeouts_total" "", "connections closed for ping timeout";
    WsSlowConsumerCloses => "cyclone_websocket_slow_consumer_closes_total" "", "connections closed for a write queue over the cap";
    ClosedPeer => "cyclone_websocket_closes_by_reason_total" "reason=\"peer\"", "WebSocket closes by typed reason (CloseReason)";
    ClosedLocal => "cyclone_websocket_closes_by_reason_total" "reason=\"local\"", "";
    ClosedProtocolError => "cyclone_websocket_closes_by_reason_total" "reason=\"protocol_error\"", "";
    ClosedMessageTooBig => "cyclone_websocket_closes_by_reason_total" "reason=\"message_too_big\"", "";
    ClosedPingTimeout => "cyclone_websocket_closes_by_reason_total" "reason=\"ping_timeout\"", "";
    ClosedCloseTimeout => "cyclone_websocket_closes_by_reason_total" "reason=\"close_timeout\"", "";
    ClosedSlowConsumer => "cyclone_websocket_closes_by_reason_total" "reason=\"slow_consumer\"", "";
    ClosedIdleTimeout => "cyclone_websocket_closes_by_reason_total" "reason=\"idle_timeout\"", "";
    ClosedShutdown => "cyclone_websocket_closes_by_reason_total" "reason=\"shutdown\"", "";
    ClosedHandlerPanic => "cyclone_websocket_closes_by_reason_total" "reason=\"handler_panic\"", "";
    ClosedAbnormal => "cyclone_websocket_closes_by_reason_total" "reason=\"abnormal\"", "";
    ClosedTerminated => "cyclone_websocket_closes_by_reason_total" "reason=\"terminated\"", "";
    Code1000 => "cyclone_websocket_closes_by_code_total" "code=\"1000\"", "WebSocket closes by the code the peer sent (1005: close frame without a code, 1006: no close frame)";
    Code1001 => "cyclone_websocket_closes_by_code_total" "code=\"1001\"", "";
    Code1002 => "cyclone_websocket_closes_by_code_total" "code=\"1002\"", "";
    Code1003 => "cyclone_websocket_closes_by_code_total" "code=\"1003\"", "";
    Code1005 => "cyclone_websocket_closes_by_code_total" "code=\"1005\"", "";
    Code1006 => "cyclone_websocket_closes_by_code_total" "code=\"1006\"", "";
    Code1007 => "cyclone_websocket_closes_by_code_total" "code=\"1007\"", "";
    Code1008 => "cyclone_websocket_closes_by_code_total" "code=\"1008\"", "";
    Code1009 => "cyclone_websocket_closes_by_code_total" "code=\"1009\"", "";
    Code1010 => "cyclone_websocket_closes_by_code_total" "code=\"1010\"", "";
    Code1011 => "cyclone_websocket_closes_by_code_total" "code=\"1011\"", "";
    CodeOther => "cyclone_websocket_closes_by_code_total" "code=\"other\"", "";
}

impl Counter {
    /// The counter of closes for the code the peer sent: `None` is a
    /// connection that ended without a close frame (1006); a close frame
    /// without a code arrives as 1005.
    pub fn for_close_code(code: Option<u16>) -> Counter {
        match code.unwrap_or(1006) {
            1000 => Counter::Code1000,
            1001 => Counter::Code1001,
            1002 => Counter::Code1002,
            1003 => Counter::Code1003,
            1005 => Counter::Code1005,
            1006 => Counter::Code1006,
            1007 => Counter::Code1007,
            1008 => Counter::Code1008,
            1009 => Counter::Code1009,
            1010 => Counter::Code1010,
            1011 => Counter::Code1011,
            _ => Counter::CodeOther,
        }
    }

    /// The counter of refused server handshakes for an HTTP status, if any.
    pub fn for_handshake_status(status: u16) -> Option<Counter> {
        match status {
            400 => Some(Counter::HandshakeBadRequest),
            403 => Some(Counter::HandshakeForbidden),
            405 => Some(Counter::HandshakeMethodNotAllowed),
            426 => Some(Counter::HandshakeUpgradeRequired),
            _ => None,
        }
    }
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

/// A snapshot of the loop's counters and gauges.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Live registrations (listeners, connections, handlers).
    pub registrations: usize,
    /// Loop iterations so far.
    pub ticks: u64,
    /// Open WebSocket connections (opened and not yet closed), server and client.
    pub websocket_connections: u64,
    /// Bytes queued for sending on WebSocket connections that are not being
    /// served at the moment of the snapshot (the kernel refused them, or
    /// they were queued from elsewhere this tick).
    pub queued_bytes: u64,
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
        for (name, help, v) in [
            (
                "cyclone_registrations",
                "live loop registrations",
                self.registrations as u64,
            ),
            (
                "cyclone_websocket_connections",
                "open WebSocket connections",
                self.websocket_connections,
            ),
            (
                "cyclone_websocket_queued_bytes",
                "bytes queued for sending",
                self.queued_bytes,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let mut family = "";
        for (c, v) in &self.counters {
            if c.name() != family {
                family = c.name();
                let _ = writeln!(s, "# HELP {family} {}\n# TYPE {family} counter", c.help());
            }
            if c.labels().is_empty() {
                let _ = writeln!(s, "{family} {v}");
            } else {
                let _ = writeln!(s, "{family}{{{}}} {v}", c.labels());
            }
        }
        s
    }
}

pub(crate) fn snapshot(c: &Counters, registrations: usize, ticks: u64, queued: u64) -> Metrics {
    Metrics {
        registrations,
        ticks,
        websocket_connections: c
            .get(Counter::WsOpened)
            .saturating_sub(c.get(Counter::WsClosed)),
        queued_bytes: queued,
        counters: Counter::ALL.iter().map(|k| (*k, c.get(*k))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_groups_families_and_labels() {
        let c = Counters::default();
        c.add(Counter::Code1000, 2);
        c.add(Counter::for_close_code(None), 1);
        c.add(Counter::for_close_code(Some(4000)), 1);
        c.add(Counter::WsOpened, 5);
        c.add(Counter::WsClosed, 4);
        let m = snapshot(&c, 3, 9, 42);
        assert_eq!(m.websocket_connections, 1);
        assert_eq!(m.get(Counter::Code1006), 1);
        assert_eq!(m.get(Counter::CodeOther), 1);
        let text = m.to_prometheus();
        assert!(
            text.contains("cyclone_websocket_queued_bytes 42\n"),
            "{text}"
        );
        assert!(text.contains("cyclone_websocket_connections 1\n"), "{text}");
        assert!(text.contains("cyclone_websocket_closes_by_code_total{code=\"1000\"} 2\n"));
        assert!(text.contains("cyclone_websocket_closes_by_code_total{code=\"other\"} 1\n"));
        // One HELP/TYPE per family, not per label value.
        for family in [
            "cyclone_websocket_closes_by_code_total",
            "cyclone_websocket_closes_by_reason_total",
            "cyclone_websocket_handshakes_total",
        ] {
            let t = format!("# TYPE {family} counter");
            assert_eq!(text.matches(&t).count(), 1, "{family}");
        }
        // Every sample line is `name[{labels}] value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, v) = line.rsplit_once(' ').unwrap();
            assert!(v.parse::<u64>().is_ok(), "{line}");
            assert!(name.starts_with("cyclone_"), "{line}");
        }
    }

    #[test]
    fn handshake_statuses_map_to_their_counters() {
        assert_eq!(
            Counter::for_handshake_status(403),
            Some(Counter::HandshakeForbidden)
        );
        assert_eq!(
            Counter::for_handshake_status(426),
            Some(Counter::HandshakeUpgradeRequired)
        );
        assert_eq!(Counter::for_handshake_status(200), None);
    }
}
