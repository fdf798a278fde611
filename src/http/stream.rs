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
//!   (it would block) and rustls holds no more plaintext, or at the end of
//!   the stream; so "a short read drained the socket" stays true. A short
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
//!   queued, is logged at debug, counted
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
    /// from the socket until `buf` is full or the socket would block.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        let mut n = 0;
        loop {
            match self.conn.reader().read(&mut buf[n..]) {
                // The peer's close_notify (or an empty `buf`). Returned
                // behind plaintext, it is remembered: no readiness event
                // reports it (the TCP connection may stay open).
                Ok(0) => {
                    self.eof = !buf.is_empty();
                    return Ok(n);
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP closed without close_notify: the end of the stream,
                // as for plain TCP (the WebSocket close handshake, or the
                // HTTP framing, tells a truncation).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
            if n == buf.len() {
                return Ok(n);
            }
            match self.conn.read_tls(&mut self.tcp) {
                // EOF: the reader above reports it next round.
                Ok(0) => {}
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        // The alert rustls queued goes out if the kernel
                        // takes it; the connection ends either way.
                        let _ = self.flush_pending();
                        // Typed: `get_ref()` downcasts to `rustls::Error`.
                        let e = io::Error::new(io::ErrorKind::InvalidData, e);
                        count_tls_error(&e);
                        return Err(e);
                    }
                    if self.conn.wants_write() {
                        // Handshake messages, a key update, alerts.
                        self.flush_pending()?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if n > 0 { Ok(n) } else { Err(e) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A record too large for the deframer's buffer is
                // `InvalidData` here: a TLS error too.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    count_tls_error(&e);
                    return Err(e);
                }
                // A reset behind records already decrypted (the peer's
                // last message and Close): those first, the error next.
                Err(e) if n > 0 => {
                    self.err = Some(e);
                    self.eof = true;
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
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
                Ok(_) => {}
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

/// Logs and counts a TLS error; the connection it happened on ends.
#[cfg(feature = "tls")]
fn count_tls_error(e: &io::Error) {
    log::debug!("TLS error: {e}");
    crate::ioloop::IOLoop::current().count(crate::ioloop::Counter::TlsErrors, 1);
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
