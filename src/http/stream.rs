//! A connection's byte stream: plain TCP, or TLS over it (feature `tls`).
//!
//! [`Stream`] is what the HTTP server connection, the lingering close, the
//! WebSocket connection and the client read and write. The plain case is
//! the first arm of every match and costs one compare more than the
//! `TcpStream` it wraps: no allocation, no syscall and no copy more. (The
//! enum is as large as a `TcpStream` in debug builds and 16 bytes in
//! release builds: the TLS box sits beside the descriptor, whose invalid
//! value -1 tells the variants apart.)
//!
//! Over TLS the stream keeps the plain-TCP contract its callers rely on
//! with edge-triggered readiness:
//! - `read` returns fewer bytes than asked only when the socket is drained
//!   (a read of it came back short, or would block) and rustls holds no
//!   more plaintext, or at the end of the stream; so "a short read drained
//!   the socket" stays true. The socket is read in chunks of up to 256 KiB
//!   and rustls fed from them (its own reads are 4–16 KiB). A short
//!   read that stopped at the peer's `close_notify` (which, unlike a FIN,
//!   raises no hang-up flag, and after which the peer may keep the TCP
//!   connection open) sets [`Stream::eof_pending`]: the caller reads on.
//!   A reset met behind plaintext is returned by the next `read`, after
//!   that plaintext (the peer's last message and Close are not lost).
//! - `write` returns the plaintext bytes rustls accepted; the ciphertext it
//!   could not hand to the kernel stays in rustls ([`Stream::has_pending`])
//!   and leaves with [`Stream::flush_pending`] on the next writable edge
//!   (the kernel refused bytes, so the edge comes). When rustls' buffer is
//!   full, `write` fails with `WouldBlock` as a full socket does.
//! - Handshake messages and alerts produced while reading are written at
//!   once (what the kernel refuses waits for the writable edge).
//! - A TLS error (bad record, failed handshake) sends the alert rustls
//!   queued, is logged at warning with the peer's address (as Tornado
//!   logs its SSL errors; a line a second at most), counted
//!   ([`Counter::TlsErrors`](crate::ioloop::Counter::TlsErrors)) and
//!   returned as `InvalidData`: that connection ends, no other.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

/// A connection's byte stream: plain TCP, or TLS over TCP.
///
/// Implements `Read` and `Write` (of plaintext) and `mio::event::Source`
/// (registering the TCP socket).
pub struct Stream(Inner);

enum Inner {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream>),
}

#[cfg(feature = "tls")]
struct TlsStream {
    tcp: TcpStream,
    conn: rustls::Connection,
    /// `shut_write` was asked while ciphertext (the close_notify at least)
    /// was still pending: shut the TCP write half down once it is written.
    shut_pending: bool,
    /// `shut_write` already ran (the close_notify is queued or sent).
    shut: bool,
    /// The peer's close_notify (or the TCP EOF) was read behind plaintext
    /// that `read` returned: the next `read` returns 0 (see
    /// [`Stream::eof_pending`]).
    eof: bool,
    /// A socket error (a reset) met after `read` had plaintext for its
    /// caller: returned by the next `read`, so that what arrived before
    /// it is delivered first, as the kernel does for plain TCP.
    err: Option<io::Error>,
    /// Bytes of TLS records the kernel has taken, in all (see
    /// [`Stream::records_sent`]).
    sent: u64,
    /// Ciphertext read from the socket that rustls had not taken when the
    /// caller's buffer filled, fed before the socket is read again (from
    /// `leftover_at`). Empty and unallocated otherwise.
    leftover: Vec<u8>,
    leftover_at: usize,
}

/// Bytes of ciphertext read from the socket at once (into the thread's
/// scratch buffer), as much as the loop's read buffer takes of plain TCP.
#[cfg(feature = "tls")]
const SCRATCH_SIZE: usize = 256 * 1024;

/// The smallest socket read when the caller's buffer is nearly full (what
/// rustls reads itself).
#[cfg(feature = "tls")]
const MIN_SOCKET_READ: usize = 4096;

#[cfg(feature = "tls")]
thread_local! {
    /// The thread's scratch buffer for [`TlsStream::read`] (allocated and
    /// zeroed once per thread; taken while a read runs).
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Stream {
    /// A plain TCP stream.
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream(Inner::Plain(tcp))
    }

    /// The server side of a TLS session over `tcp` (the handshake runs as
    /// the stream is read and written).
    ///
    /// # Errors
    /// rustls refused to start a session with `config`.
    #[cfg(feature = "tls")]
    pub fn tls_server(
        tcp: TcpStream,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> io::Result<Stream> {
        let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Stream::tls(tcp, conn.into()))
    }

    /// The client side of a TLS session over `tcp` with `server_name` (SNI
    /// and the name the certificate is checked against).
    ///
    /// # Errors
    /// rustls refused to start a session with `config`.
    #[cfg(feature = "tls")]
    pub fn tls_client(
        tcp: TcpStream,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<Stream> {
        let conn = rustls::ClientConnection::new(config, server_name).map_err(io::Error::other)?;
        Ok(Stream::tls(tcp, conn.into()))
    }

    #[cfg(feature = "tls")]
    fn tls(tcp: TcpStream, conn: rustls::Connection) -> Stream {
        Stream(Inner::Tls(Box::new(TlsStream {
            tcp,
            conn,
            shut_pending: false,
            shut: false,
            eof: false,
            err: None,
            sent: 0,
            leftover: Vec::new(),
            leftover_at: 0,
        })))
    }

    /// The TCP socket under the stream (addresses, socket options).
    pub fn tcp(&self) -> &TcpStream {
        match &self.0 {
            Inner::Plain(s) => s,
            #[cfg(feature = "tls")]
            Inner::Tls(t) => &t.tcp,
        }
    }

    /// Whether this is a TLS stream.
    pub fn is_tls(&self) -> bool {
        match &self.0 {
            Inner::Plain(_) => false,
            #[cfg(feature = "tls")]
            Inner::Tls(_) => true,
        }
    }

    /// The rustls session of a TLS stream (the peer's certificates, the
    /// negotiated ALPN protocol and cipher suite…).
    #[cfg(feature = "tls")]
    pub fn tls_session(&self) -> Option<&rustls::Connection> {
        match &self.0 {
            Inner::Plain(_) => None,
            Inner::Tls(t) => Some(&t.conn),
        }
    }

    /// Whether the TLS handshake is still under way (false for plain TCP).
    pub fn is_handshaking(&self) -> bool {
        match &self.0 {
            Inner::Plain(_) => false,
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.conn.is_handshaking(),
        }
    }

    /// Whether the last short read stopped at the end of the stream rather
    /// than at an empty socket, so the next read returns 0 (or the error
    /// that ended it) although no readiness event may say so: over TLS,
    /// the peer's `close_notify` (or the TCP EOF, or a reset) met behind
    /// the plaintext returned. A peer may send its last bytes and its
    /// `close_notify` and keep the TCP connection open: the kernel then
    /// reports no hang-up. Always false for plain TCP (the kernel's
    /// hang-up flag tells the EOF there). Callers that stop at a short
    /// read check it then.
    #[inline]
    pub fn eof_pending(&self) -> bool {
        match &self.0 {
            Inner::Plain(_) => false,
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.eof,
        }
    }

    /// Whether anything waits unread: bytes in the socket (peeked), and
    /// over TLS also ciphertext kept from the last read, plaintext rustls
    /// has decrypted, or an end of stream or error not yet returned. An
    /// incomplete record rustls holds does not count: its rest is not
    /// here.
    pub(crate) fn may_have_unread(&mut self) -> bool {
        // An empty socket would block; EOF (0) and errors are for a read
        // to find.
        let socket = |tcp: &TcpStream| {
            !matches!(
                tcp.peek(&mut [0u8]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            )
        };
        match &mut self.0 {
            Inner::Plain(s) => socket(s),
            #[cfg(feature = "tls")]
            Inner::Tls(t) => {
                t.eof
                    || t.err.is_some()
                    || t.leftover_at < t.leftover.len()
                    || t.conn
                        .process_new_packets()
                        .map_or(true, |io| io.plaintext_bytes_to_read() > 0)
                    || socket(&t.tcp)
            }
        }
    }

    /// Whether TLS records are waiting for the kernel to take them (never
    /// for plain TCP): the stream is not flushed until they have left, and
    /// a writable edge will come for them.
    #[inline]
    pub fn has_pending(&self) -> bool {
        match &self.0 {
            Inner::Plain(_) => false,
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.conn.wants_write() || t.shut_pending,
        }
    }

    /// How many bytes of TLS records the kernel has taken from this
    /// stream so far (0 for plain TCP, whose callers count their own
    /// writes): tells whether [`flush_pending`](Self::flush_pending) moved
    /// anything.
    #[inline]
    pub fn records_sent(&self) -> u64 {
        match &self.0 {
            Inner::Plain(_) => 0,
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.sent,
        }
    }

    /// Writes pending TLS records (see [`has_pending`](Self::has_pending))
    /// until the kernel refuses more; then finishes a
    /// [`shut_write`](Self::shut_write) that was waiting for them. A no-op
    /// for plain TCP.
    ///
    /// # Errors
    /// The socket failed (not `WouldBlock`: what is refused stays pending).
    #[inline]
    pub fn flush_pending(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Inner::Plain(_) => Ok(()),
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.flush_pending(),
        }
    }

    /// Shuts down the write half once everything written has left: at once
    /// for plain TCP; over TLS a `close_notify` alert goes first, and if
    /// the kernel refuses part of it the shutdown waits for
    /// [`flush_pending`](Self::flush_pending) to write the rest. Errors
    /// are ignored (the peer is gone; the next read says so).
    pub fn shut_write(&mut self) {
        match &mut self.0 {
            // NotConnected: the peer is already gone; reads see it.
            Inner::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            #[cfg(feature = "tls")]
            Inner::Tls(t) if !t.shut => {
                t.shut = true;
                t.conn.send_close_notify();
                t.shut_pending = true;
                let _ = t.flush_pending();
            }
            #[cfg(feature = "tls")]
            Inner::Tls(_) => {}
        }
    }

    /// Writes `buf` that the write half is shut down right after (the
    /// server's side of the WebSocket close handshake). On Linux over
    /// plain TCP, `MSG_MORE` holds the bytes in the socket until the
    /// `shutdown(SHUT_WR)` that follows, which then sends them with the FIN
    /// in one segment instead of two: one loopback or network round through
    /// both TCP stacks fewer per closed connection. If the peer stops
    /// reading, the bytes still leave with the FIN once it reads again, or
    /// the connection is dropped at its close deadline. Over TLS, an
    /// ordinary write (the `close_notify` follows the bytes).
    ///
    /// # Errors
    /// As `write`.
    pub fn write_last(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Inner::Plain(s) => send_more(s, buf),
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.write(buf),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_more(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    socket2::SockRef::from(stream).send_with_flags(buf, libc::MSG_MORE | libc::MSG_NOSIGNAL)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_more(mut stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    stream.write(buf)
}

impl Read for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Inner::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Inner::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.write(buf),
        }
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.0 {
            Inner::Plain(s) => s.write_vectored(bufs),
            #[cfg(feature = "tls")]
            Inner::Tls(t) => t.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()
    }
}

impl mio::event::Source for Stream {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.tcp_mut().register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.tcp_mut().reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.tcp_mut().deregister(registry)
    }
}

impl Stream {
    fn tcp_mut(&mut self) -> &mut TcpStream {
        match &mut self.0 {
            Inner::Plain(s) => s,
            #[cfg(feature = "tls")]
            Inner::Tls(t) => &mut t.tcp,
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("tcp", self.tcp())
            .field("tls", &self.is_tls())
            .finish()
    }
}

#[cfg(feature = "tls")]
impl TlsStream {
    /// Plaintext into `buf`: what rustls holds first, then records read
    /// from the socket until `buf` is full or the socket is drained.
    ///
    /// The socket is read in large chunks into the thread's scratch buffer
    /// ([`SCRATCH_SIZE`], at most what `buf` has room for) and rustls is
    /// fed from that slice: rustls' own `read_tls` reads at most its
    /// deframer's free space (4 KiB, growing to one record, ~16 KiB) per
    /// syscall, so a 64 KiB message cost five `recvfrom`s where plain TCP
    /// costs one. Ciphertext left over when `buf` fills goes to a
    /// per-connection buffer that is freed as soon as the next read has
    /// fed it (an idle connection holds none).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        let mut scratch = Vec::new();
        let r = self.read_with(buf, &mut scratch);
        if !scratch.is_empty() {
            SCRATCH.with(|s| s.set(scratch));
        }
        r
    }

    /// [`read`](Self::read), with the thread's scratch buffer taken into
    /// `scratch` at the first socket read.
    fn read_with(&mut self, buf: &mut [u8], scratch: &mut Vec<u8>) -> io::Result<usize> {
        let mut n = 0;
        // `scratch[at..len]`: ciphertext read from the socket that rustls
        // has not taken yet.
        let (mut at, mut len) = (0, 0);
        // The last socket read was short: the socket is drained (epoll(7)
        // reports the next bytes with a new edge), as a short plain read.
        let mut drained = false;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            // Every piece of plaintext rustls holds, then what ended it.
            loop {
                match self.conn.reader().read(&mut buf[n..]) {
                    // The peer's close_notify. Returned behind plaintext,
                    // it is remembered: no readiness event reports it (the
                    // TCP connection may stay open). What follows a
                    // close_notify is never read: dropped.
                    Ok(0) => {
                        self.eof = true;
                        self.drop_leftover();
                        return Ok(n);
                    }
                    Ok(k) => {
                        n += k;
                        if n == buf.len() {
                            self.keep_leftover(&scratch[at..len]);
                            return Ok(n);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // TCP closed without close_notify: the end of the
                    // stream, as for plain TCP (the WebSocket close
                    // handshake, or the HTTP framing, tells a truncation).
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        self.eof = true;
                        return Ok(n);
                    }
                    Err(e) => return Err(e),
                }
            }
            // Ciphertext for rustls: what the last call left over first,
            // then the scratch, then the socket. (`read_tls` never sees an
            // empty slice: that would be the end of the stream.)
            let fed = if self.leftover_at < self.leftover.len() {
                let r = self.conn.read_tls(&mut &self.leftover[self.leftover_at..]);
                if let Ok(k) = r {
                    self.leftover_at += k;
                    if self.leftover_at == self.leftover.len() {
                        self.drop_leftover();
                    }
                }
                r
            } else if at < len {
                let r = self.conn.read_tls(&mut &scratch[at..len]);
                if let Ok(k) = r {
                    at += k;
                }
                r
            } else if drained {
                self.settle();
                return if n > 0 {
                    Ok(n)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            } else {
                if scratch.is_empty() {
                    *scratch = SCRATCH.with(|s| s.take());
                    if scratch.len() < SCRATCH_SIZE {
                        *scratch = vec![0; SCRATCH_SIZE];
                    }
                }
                // No more than `buf` has room for: little is left over.
                let want = (buf.len() - n).clamp(MIN_SOCKET_READ, SCRATCH_SIZE);
                match self.tcp.read(&mut scratch[..want]) {
                    // EOF: rustls learns it from an empty read; the reader
                    // above reports it next round.
                    Ok(0) => self.conn.read_tls(&mut io::empty()),
                    Ok(k) => {
                        (at, len) = (0, k);
                        drained = k < want;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.settle();
                        return if n > 0 { Ok(n) } else { Err(e) };
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // A reset behind records already decrypted (the peer's
                    // last message and Close): those first, the error next.
                    Err(e) if n > 0 => {
                        self.err = Some(e);
                        self.eof = true;
                        return Ok(n);
                    }
                    Err(e) => return Err(e),
                }
            };
            match fed {
                // The socket's EOF, or rustls takes nothing more after the
                // peer's close_notify: the reader reports either next round.
                Ok(0) => {
                    at = len;
                    self.drop_leftover();
                }
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        // The alert rustls queued goes out if the kernel
                        // takes it; the connection ends either way.
                        let _ = self.flush_pending();
                        // Typed: `get_ref()` downcasts to `rustls::Error`.
                        let e = io::Error::new(io::ErrorKind::InvalidData, e);
                        self.count_error(&e);
                        return Err(e);
                    }
                    if self.conn.wants_write() {
                        // Handshake messages, a key update, alerts.
                        self.flush_pending()?;
                    }
                }
                // A record too large for the deframer's buffer is
                // `InvalidData` here: a TLS error too.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    self.count_error(&e);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Lets rustls shrink its deframer buffer (grown to a record's size,
    /// ~16 KiB, by large messages) back to 4 KiB if no partial record is
    /// in it, as its `read_tls` does before each socket read: fed from
    /// slices, it would otherwise keep the larger buffer while the
    /// connection is idle. Reads nothing.
    fn settle(&mut self) {
        let _ = self.conn.read_tls(&mut WouldBlockReader);
    }

    /// Keeps `bytes` (ciphertext rustls has not taken) for the next read,
    /// in front of what the socket holds.
    fn keep_leftover(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.leftover_at > 0 {
            self.leftover.drain(..self.leftover_at);
            self.leftover_at = 0;
        }
        // Behind what an earlier call left (none: `buf` filled before the
        // scratch was read, or it was fed whole), but keep the order.
        self.leftover.extend_from_slice(bytes);
    }

    /// Frees the leftover ciphertext buffer (consumed, or after the peer's
    /// close_notify, where nothing more is read).
    fn drop_leftover(&mut self) {
        self.leftover = Vec::new();
        self.leftover_at = 0;
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    /// Hands plaintext to rustls (as much as its 64 KiB buffer takes) and
    /// writes the records to the socket; `WouldBlock` when rustls took
    /// nothing because the kernel refused what it holds.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // Older records first, so the buffer has room.
        self.flush_pending()?;
        let n = match bufs {
            [one] => self.conn.writer().write(one)?,
            _ => self.conn.writer().write_vectored(bufs)?,
        };
        self.flush_pending()?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => self.sent += k as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.shut_pending {
            self.shut_pending = false;
            let _ = self.tcp.shutdown(Shutdown::Write);
        }
        Ok(())
    }
}

/// A reader with nothing yet (see [`TlsStream::settle`]).
#[cfg(feature = "tls")]
struct WouldBlockReader;

#[cfg(feature = "tls")]
impl Read for WouldBlockReader {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

#[cfg(feature = "tls")]
impl TlsStream {
    /// Logs and counts a TLS error; the connection it happened on ends.
    /// At warning level, with the peer's address, as Tornado's
    /// `SSLIOStream` logs its `SSL Error on <fd> <peer>: ...` (a failed
    /// handshake) and `error on read: ...` (a bad record later); folded to
    /// a line a second per loop, as the other warnings a flood of peers
    /// can cause (a scanner speaking plain HTTP to the port). A peer that
    /// closes or resets the connection is no TLS error: it goes quietly,
    /// as there.
    fn count_error(&self, e: &io::Error) {
        let handshaking = self.conn.is_handshaking();
        let kind = if handshaking {
            "tls_handshake"
        } else {
            "tls_error"
        };
        crate::ioloop::warn_limited(kind, || {
            let peer = self.tcp.peer_addr();
            let peer: &dyn std::fmt::Display = match &peer {
                Ok(addr) => addr,
                Err(_) => &"(not connected)",
            };
            if handshaking {
                format!("TLS handshake with {peer} failed: {e}")
            } else {
                format!("TLS error from {peer}: {e}")
            }
        });
        crate::ioloop::IOLoop::current().count(crate::ioloop::Counter::TlsErrors, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain case is no larger than the `TcpStream` it wraps in debug
    /// builds (the TLS box shares the space beside the descriptor), and 16
    /// bytes in release builds (`WsConn` stays in its 256-byte class).
    #[test]
    fn stream_is_as_small_as_a_tcp_stream() {
        let tcp = std::mem::size_of::<TcpStream>();
        let stream = std::mem::size_of::<Stream>();
        assert!(
            stream <= tcp.max(16),
            "Stream {stream} B, TcpStream {tcp} B"
        );
    }
}
