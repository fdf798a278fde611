//! The coroutine-style client: `websocket_connect(url).await` and the
//! [`WebSocketClientConnection`] it returns, fed by a handler that queues
//! what arrives.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use super::handshake::{abandon, start_connect};
use super::{ConnectError, ConnectOptions, WRITE_HIGH_WATER};
use crate::http::Request;
use crate::ioloop::{ConnId, IOLoop};
use crate::protocol::ProtocolError;
use crate::websocket::connection::{with_websocket, with_websocket_later, WebSocket};
use crate::websocket::context::{check_ping, PingError};
use crate::websocket::handler::WebSocketHandler;
use crate::websocket::message::{CloseReason, Message, WebSocketClosedError};

// ---- coroutine style ------------------------------------------------------

/// Bytes of received messages waiting for `read_message` (each counted
/// with 64 bytes on top of its length, for its queue entry) above which the
/// connection stops reading from the socket, so that a server sending
/// faster than the application reads is throttled by TCP instead of
/// growing the queue without bound (Tornado's client has the same flow
/// control: its `read_queue` holds one message). Reading resumes once
/// `read_message` has taken the queue down to half of this.
pub const READ_QUEUE_HIGH_WATER: usize = 1024 * 1024;

/// What a queued message costs beyond its payload (the queue entry and
/// its allocation), so that a flood of empty messages is bounded too.
const QUEUED_MESSAGE_COST: usize = 64;

fn queue_cost(m: &Message<'_>) -> usize {
    let len = match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
    };
    len + QUEUED_MESSAGE_COST
}

#[derive(Default)]
struct ClientState {
    queue: VecDeque<Message<'static>>,
    /// [`queue_cost`] of everything in `queue`.
    queued: usize,
    /// Reading is held because `queued` passed [`READ_QUEUE_HIGH_WATER`].
    held: bool,
    /// The `WebSocketClientConnection` was dropped while open: nobody will
    /// read, so what still arrives until the close completes is dropped.
    abandoned: bool,
    closed: bool,
    /// Pending [`ReadMessage`]s in the order they were first polled, each
    /// with its ticket and waker: the front one takes the next message.
    readers: VecDeque<(u64, Option<Waker>)>,
    next_reader: u64,
    close_code: Option<u16>,
    close_reason: Option<String>,
    closed_by: Option<CloseReason>,
    protocol_error: Option<ProtocolError>,
    subprotocol: Option<String>,
    /// The server's 101 headers, kept past the connection.
    headers: Vec<(String, String)>,
    /// The upgrade request, kept past the connection: copied at the close
    /// (until then the connection's own is read), so that an open
    /// connection holds it once.
    request: Option<Request>,
}

impl ClientState {
    /// Wakes the reader next in line, if there is anything for it (a
    /// message, or the end).
    fn wake_front(&self) {
        if self.queue.is_empty() && !self.closed {
            return;
        }
        if let Some((_, Some(w))) = self.readers.front() {
            w.wake_by_ref();
        }
    }

    /// Nobody will read any more: unread messages are dropped, as is what
    /// still arrives, and the hold on reading is lifted (the caller tells
    /// the connection) so that the server's Close is seen.
    fn abandon(&mut self) {
        self.abandoned = true;
        self.queue = VecDeque::new();
        self.queued = 0;
        self.held = false;
    }
}

/// The handler behind [`WebSocketClientConnection`]: queues messages for
/// `read_message` and wakes it.
struct ChannelHandler {
    state: Rc<RefCell<ClientState>>,
}

impl WebSocketHandler for ChannelHandler {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        let mut s = self.state.borrow_mut();
        s.subprotocol = ws.selected_subprotocol().map(str::to_owned);
        s.headers = ws.response_headers().to_vec();
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let mut s = self.state.borrow_mut();
        if s.abandoned {
            return;
        }
        s.queued += queue_cost(&msg);
        s.queue.push_back(msg.into_owned());
        if s.queued > READ_QUEUE_HIGH_WATER && !s.held {
            s.held = true;
            ws.hold_reading(true);
        }
        s.wake_front();
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        let mut s = self.state.borrow_mut();
        s.closed = true;
        s.close_code = ws.close_code();
        s.close_reason = ws.close_reason().map(str::to_owned);
        s.closed_by = ws.closed_by();
        s.protocol_error = ws.protocol_error().cloned();
        s.request = Some(ws.request().clone());
        // Every reader waiting with nothing queued gets `None`.
        for (_, w) in &s.readers {
            if let Some(w) = w {
                w.wake_by_ref();
            }
        }
    }
}

/// One-shot slot for the connect result.
type ConnectSlot = Rc<RefCell<(Option<Result<ConnId, ConnectError>>, Option<Waker>)>>;

/// Connects with default options (Tornado's `websocket_connect(url)`).
/// Safe in a destructor as [`websocket_connect_opts`] is.
///
/// # Errors
/// See [`ConnectError`].
pub async fn websocket_connect(url: &str) -> Result<WebSocketClientConnection, ConnectError> {
    websocket_connect_opts(url, ConnectOptions::default()).await
}

/// Connects with `options`; resolves once the handshake completed.
/// Dropping the future before that (under a timeout, say) abandons the
/// attempt: the socket is closed, or a connection that completed meanwhile
/// is closed with 1001.
///
/// Safe in a destructor, a thread-local's included: once the thread's
/// loop is gone (the thread is ending and the loop was dropped first),
/// there is no loop to connect on and none is made, and the future
/// resolves at its first poll to [`ConnectError::Io`] saying so (where
/// Tornado's `websocket_connect` in a thread without its loop raises).
///
/// # Errors
/// See [`ConnectError`].
pub async fn websocket_connect_opts(
    url: &str,
    options: ConnectOptions,
) -> Result<WebSocketClientConnection, ConnectError> {
    let state = Rc::new(RefCell::new(ClientState::default()));
    let slot: ConnectSlot = Rc::new(RefCell::new((None, None)));
    let s2 = slot.clone();
    let handler = ChannelHandler {
        state: state.clone(),
    };
    let id = start_connect(
        url,
        options,
        Box::new(handler),
        Box::new(move |res| {
            let mut s = s2.borrow_mut();
            s.0 = Some(res);
            if let Some(w) = s.1.take() {
                w.wake();
            }
        }),
    )?;
    // Dropping this future from here on abandons the connection.
    let mut owner = Abandon(Some(id), state.clone());
    let res = std::future::poll_fn(|cx| {
        let mut s = slot.borrow_mut();
        match s.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await;
    owner.0 = None;
    let id = res?;
    Ok(WebSocketClientConnection {
        id,
        state: state.clone(),
        _owner: Rc::new(Owner { id, state }),
    })
}

/// Connects in callback style with a connection object (Tornado's
/// `websocket_connect(url, callback=...)`): `callback` gets the
/// [`WebSocketClientConnection`], or the [`ConnectError`] (an invalid URL
/// included), once the handshake completes or fails. Read from it with
/// [`read_message_then`](WebSocketClientConnection::read_message_then).
/// Nothing happens before the loop runs its next iteration.
///
/// Safe in a destructor, a thread-local's included: once the thread's
/// loop is gone (the thread is ending and the loop was dropped first),
/// nothing is left to connect on or to run `callback`, which is dropped
/// uncalled, as [`read_message_then`](WebSocketClientConnection::read_message_then)'s
/// is (Tornado's `websocket_connect` in a thread without its loop raises,
/// and never calls its callback).
pub fn websocket_connect_then(
    url: &str,
    options: ConnectOptions,
    callback: impl FnOnce(Result<WebSocketClientConnection, ConnectError>) + 'static,
) {
    let Some(lp) = IOLoop::current_unless_gone() else {
        return;
    };
    let url = url.to_owned();
    lp.add_future(
        async move { websocket_connect_opts(&url, options).await },
        callback,
    );
}

/// Armed while [`websocket_connect_opts`] waits for the handshake: if its
/// future is dropped meanwhile, the attempt is abandoned (see
/// [`abandon`]) instead of completing into a connection with no owner.
/// What arrives meanwhile has no reader either: it is dropped.
struct Abandon(Option<ConnId>, Rc<RefCell<ClientState>>);

impl Drop for Abandon {
    fn drop(&mut self) {
        if let (Some(id), Some(lp)) = (self.0, IOLoop::existing()) {
            if let Ok(mut s) = self.1.try_borrow_mut() {
                s.abandon();
            }
            abandon(&lp, id);
        }
    }
}

/// An open client connection in coroutine style (Tornado's
/// `WebSocketClientConnection`). Clones share the connection (move one
/// into a callback to keep it open there); dropping the last one starts
/// the closing handshake with 1000 (what was written before is sent
/// first). Call [`close`](Self::close) to choose the code or to wait for
/// the answer.
#[derive(Clone)]
pub struct WebSocketClientConnection {
    id: ConnId,
    state: Rc<RefCell<ClientState>>,
    _owner: Rc<Owner>,
}

/// Shared by the clones of a [`WebSocketClientConnection`]: closes the
/// connection when the last of them goes.
struct Owner {
    id: ConnId,
    state: Rc<RefCell<ClientState>>,
}

impl fmt::Debug for WebSocketClientConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClientConnection")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        {
            let mut s = self.state.borrow_mut();
            if s.closed {
                return;
            }
            // Unread messages go; reading resumes (if held) so that the
            // server's Close is seen behind what it sent before.
            s.abandon();
        }
        if let Some(lp) = IOLoop::existing() {
            now_or_later(&lp, self.id, |ws| {
                ws.hold_reading(false);
                ws.close(Some(1000), "");
            });
        }
    }
}

impl WebSocketClientConnection {
    /// The connection's id (usable with [`write_to`](crate::websocket::write_to)).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The next message; `None` once the connection is closed (messages
    /// received before the close are still returned first). Messages not
    /// read yet are bounded: past [`READ_QUEUE_HIGH_WATER`] bytes the
    /// connection stops reading from the server until they are taken.
    ///
    /// Every read after the close gets `None`: each one waiting at the
    /// close, and each one asked later, at once. This differs from
    /// Tornado, whose close puts a single `None` in the read queue: the
    /// first read gets it, and any other (a second reader waiting then, or
    /// a read asked afterwards) waits forever.
    pub fn read_message(&self) -> ReadMessage {
        ReadMessage {
            id: self.id,
            state: self.state.clone(),
            ticket: None,
        }
    }

    /// The messages as a [`Stream`] that ends when the connection is
    /// closed (Tornado's `while (msg := await conn.read_message()) is not
    /// None`, and what tungstenite's stream gives): each is a
    /// [`read_message`](Self::read_message), so the flow control and the
    /// order among readers are the same. [`Messages::next`] (or any
    /// `StreamExt`'s) gives the next one.
    ///
    /// ```no_run
    /// # use cyclone::websocket::client::websocket_connect;
    /// # async fn chat() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = websocket_connect("ws://127.0.0.1:8888/chat").await?;
    /// let mut messages = conn.messages();
    /// while let Some(msg) = messages.next().await {
    ///     println!("{}", msg.as_text().unwrap_or("(binary)"));
    /// }
    /// println!("closed with {:?}", conn.close_code());
    /// # Ok(()) }
    /// ```
    pub fn messages(&self) -> Messages {
        Messages {
            conn: self.clone(),
            read: None,
        }
    }

    /// [`read_message`](Self::read_message) in callback style (Tornado's
    /// `read_message(callback)`): `callback` gets the next message, or
    /// `None` once the connection is closed, when it is there. Call it
    /// again from `callback` for the one after. Reads waiting at once are
    /// answered in the order they first waited: calls of this method in
    /// the order they were made (each waits from the loop's next
    /// iteration), behind a `read_message().await` already waiting and
    /// ahead of one polled after them.
    ///
    /// `callback` always runs on the loop, never inside this call: asked
    /// while the loop is not running (before [`start`](IOLoop::start), or
    /// after it stopped), it waits for the loop's next run, then gets the
    /// message, or `None` if the connection closed meanwhile (Tornado's
    /// `IOLoop.add_future` waits the same way).
    ///
    /// Safe in a destructor, a thread-local's included: once the thread's
    /// loop is gone (the thread is ending and the loop was dropped first),
    /// the connection went with it and nothing is left to run `callback`,
    /// which is dropped uncalled (Tornado's callback on a closed loop is
    /// never called either).
    #[doc(alias = "read_message(callback)")]
    pub fn read_message_then(&self, callback: impl FnOnce(Option<Message<'static>>) + 'static) {
        if let Some(lp) = IOLoop::existing() {
            lp.add_future(self.read_message(), callback);
        }
    }

    /// Queues a text or binary message (masked with a fresh key). The
    /// returned future resolves once this connection's write queue is down
    /// to [`WRITE_HIGH_WATER`] bytes (or it closed): await it for flow
    /// control, or drop it.
    ///
    /// Safe in a destructor, a thread-local's included (a goodbye sent as
    /// a value goes): once the thread's loop is gone (the thread is ending
    /// and the loop was dropped first), the connection went with it, and
    /// this returns [`WebSocketClosedError`].
    ///
    /// # Errors
    /// [`WebSocketClosedError`] once the connection is closing or closed.
    pub fn write_message<'m>(
        &self,
        msg: impl Into<Message<'m>>,
    ) -> Result<WriteFuture, WebSocketClosedError> {
        if self.state.borrow().closed {
            return Err(WebSocketClosedError);
        }
        let Some(lp) = IOLoop::existing() else {
            return Err(WebSocketClosedError);
        };
        let msg = msg.into();
        let mut msg = Some(msg);
        match with_websocket(&lp, self.id, |ws| {
            ws.write_message(msg.take().unwrap_or_else(|| unreachable!()))
        }) {
            Some(r) => {
                r?;
            }
            None => {
                // Being served right now (called from inside a handler): queue
                // the write for when it is put back.
                let owned = msg.take().map(Message::into_owned);
                let queued = owned.is_some_and(|m| {
                    with_websocket_later(&lp, self.id, move |ws| {
                        let _ = ws.write_message(m);
                    })
                });
                if !queued {
                    return Err(WebSocketClosedError);
                }
            }
        }
        Ok(self.wait_below(WRITE_HIGH_WATER))
    }

    /// Sends a ping with `data` as its payload (the server answers with a
    /// pong carrying it, which the connection takes without passing it on).
    ///
    /// # Errors
    /// [`PingError::TooLong`] if `data` is over
    /// [`MAX_PING_PAYLOAD`](crate::websocket::MAX_PING_PAYLOAD) (125) bytes,
    /// the limit RFC 6455 §5.5 puts on a control frame's payload: nothing
    /// is sent (it is not cut to fit; Tornado raises `ValueError`).
    /// Otherwise [`PingError::Closed`] once the connection is closing or
    /// closed, or once the thread's loop is gone (safe in a destructor, as
    /// [`write_message`](Self::write_message) is).
    pub fn ping(&self, data: &[u8]) -> Result<(), PingError> {
        check_ping(data)?;
        let Some(lp) = IOLoop::existing() else {
            return Err(PingError::Closed);
        };
        if self.state.borrow().closed {
            return Err(PingError::Closed);
        }
        match with_websocket(&lp, self.id, |ws| ws.ping(data)) {
            Some(r) => r,
            None => {
                let data = data.to_vec();
                if with_websocket_later(&lp, self.id, move |ws| {
                    let _ = ws.ping(&data);
                }) {
                    Ok(())
                } else {
                    Err(PingError::Closed)
                }
            }
        }
    }

    /// Starts the closing handshake; `read_message` then yields `None` once
    /// the server answered (or the close timeout passed). The TCP
    /// connection is then kept until the server closes it, for at most 1 s
    /// (RFC 6455 §7.1.1: the server closes first).
    ///
    /// Safe in a destructor, a thread-local's included: once the thread's
    /// loop is gone (the thread is ending and the loop was dropped first),
    /// the connection went with it, and this does nothing.
    pub fn close(&self, code: Option<u16>, reason: &str) {
        let Some(lp) = IOLoop::existing() else { return };
        let reason = reason.to_owned();
        now_or_later(&lp, self.id, move |ws| ws.close(code, &reason));
    }

    /// Drops the connection without a closing handshake (Node `ws`'s
    /// `terminate()`; see [`WebSocket::terminate`]): no Close frame, and
    /// what is queued and not yet taken by the kernel is dropped, at the
    /// end of this loop iteration. `read_message` then yields `None`, and
    /// [`closed_by`](Self::closed_by) is `CloseReason::Terminated`. Like
    /// [`close`](Self::close), nothing once the thread's loop is gone.
    pub fn terminate(&self) {
        let Some(lp) = IOLoop::existing() else { return };
        now_or_later(&lp, self.id, |ws| ws.terminate());
    }

    /// Resolves once everything queued was handed to the kernel (or the
    /// connection closed).
    pub fn flush(&self) -> WriteFuture {
        self.wait_below(0)
    }

    /// Bytes queued and not yet taken by the kernel (0 once closed, and
    /// once the thread's loop is gone: safe in a destructor).
    pub fn buffered_amount(&self) -> usize {
        IOLoop::existing()
            .and_then(|lp| with_websocket(&lp, self.id, |ws| ws.buffered_amount()))
            .unwrap_or(0)
    }

    /// Whether the connection is closed (`read_message` may still return
    /// queued messages).
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// The close code the server sent, once closed; `None` if its Close
    /// frame had no code, or if none arrived: the TCP connection ended,
    /// the ping timeout or close timeout passed, or the library failed the
    /// connection itself (a message over `max_message_size`, a protocol
    /// error). [`closed_by`](Self::closed_by) says which.
    pub fn close_code(&self) -> Option<u16> {
        self.state.borrow().close_code
    }

    /// The close reason the server sent, once closed (`None` when it sent
    /// none, or an empty one; a server answering our Close usually echoes
    /// only the code).
    pub fn close_reason(&self) -> Option<String> {
        self.state.borrow().close_reason.clone()
    }

    /// Why the connection closed, once closed (typed; see [`CloseReason`]):
    /// [`Peer`](CloseReason::Peer) when the server's Close started it,
    /// [`Local`](CloseReason::Local) when [`close`](Self::close) did and
    /// the server answered, [`PingTimeout`](CloseReason::PingTimeout),
    /// [`CloseTimeout`](CloseReason::CloseTimeout),
    /// [`Abnormal`](CloseReason::Abnormal) when the TCP connection ended
    /// without a Close, and so on. `None` while open.
    pub fn closed_by(&self) -> Option<CloseReason> {
        self.state.borrow().closed_by
    }

    /// What the server broke, once the client failed the connection for
    /// it ([`closed_by`](Self::closed_by)
    /// [`ProtocolError`](CloseReason::ProtocolError) or
    /// [`MessageTooBig`](CloseReason::MessageTooBig)), typed: e.g.
    /// [`ProtocolError::MaskedFrameFromServer`], whose
    /// [`close_code`](ProtocolError::close_code) (1002) is the code the
    /// client's Close carried. `None` otherwise.
    pub fn protocol_error(&self) -> Option<ProtocolError> {
        self.state.borrow().protocol_error.clone()
    }

    /// The upgrade request this client sent (Tornado's
    /// `WebSocketClientConnection.request`): method, path, query, headers,
    /// the server's address as `peer()`, `protocol()` `https` over
    /// `wss://`. A copy, still given after the connection ends, as
    /// Tornado's `.request` stays (kept from the close on; the head is a
    /// few hundred bytes). `None` only for a connection dropped without
    /// closing (its loop released while it was open; safe in a destructor
    /// run after the thread's loop is gone).
    pub fn request(&self) -> Option<Request> {
        let kept = self.state.borrow().request.clone();
        kept.or_else(|| with_websocket(&IOLoop::existing()?, self.id, |ws| ws.request().clone()))
    }

    /// Every header of the server's `101`, in order (Tornado's
    /// `WebSocketClientConnection.headers`): the cookies it set, and what
    /// its handler added. Kept after the connection ends.
    pub fn headers(&self) -> Vec<(String, String)> {
        let kept = self.state.borrow().headers.clone();
        if !kept.is_empty() {
            return kept;
        }
        // Before `open` ran (the turn the connection is handed over); none
        // once the thread's loop is gone (safe in a destructor).
        IOLoop::existing()
            .and_then(|lp| with_websocket(&lp, self.id, |ws| ws.response_headers().to_vec()))
            .unwrap_or_default()
    }

    /// The first line of the header `name` (any case) of the server's
    /// `101` (Tornado's `conn.headers.get_list("X")[0]`). For Tornado's
    /// `conn.headers["X"]`, which joins a repeated header's lines with
    /// `,`, see [`header_joined`](Self::header_joined).
    pub fn header(&self, name: &str) -> Option<String> {
        let all = self.headers();
        all.into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every line of the header `name` (any case) of the server's `101`
    /// joined with `,`: Tornado's `conn.headers["X"]` (and
    /// `conn.headers.get("X")`), as
    /// [`Request::header_joined`](crate::http::Request::header_joined)
    /// joins a request's; `None` without one. [`header`](Self::header)
    /// gives the first line alone.
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let all = self.headers();
        let lines = all
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes());
        crate::http::request::join_header_lines(lines, String::from_utf8_lossy)
            .map(std::borrow::Cow::into_owned)
    }

    /// The subprotocol the server selected (`None` once the thread's loop
    /// is gone if it was not kept: safe in a destructor).
    pub fn selected_subprotocol(&self) -> Option<String> {
        let s = self.state.borrow().subprotocol.clone();
        s.or_else(|| {
            with_websocket(&IOLoop::existing()?, self.id, |ws| {
                ws.selected_subprotocol().map(str::to_owned)
            })
            .flatten()
        })
    }

    fn wait_below(&self, mark: usize) -> WriteFuture {
        WriteFuture {
            id: self.id,
            state: self.state.clone(),
            mark,
        }
    }
}

/// Future of [`WebSocketClientConnection::read_message`]. Several may
/// wait at once (from [`read_message_then`](WebSocketClientConnection::read_message_then)
/// called twice, or from different tasks): each gets its own message, in
/// the order they were first polled, and all get `None` at the end. One
/// dropped while waiting gives up its place.
pub struct ReadMessage {
    id: ConnId,
    state: Rc<RefCell<ClientState>>,
    /// Its place among the waiting readers, from its first poll until it
    /// completes or is dropped.
    ticket: Option<u64>,
}

impl Future for ReadMessage {
    type Output = Option<Message<'static>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut s = this.state.borrow_mut();
        let ticket = match this.ticket {
            Some(t) => t,
            None => {
                let t = s.next_reader;
                s.next_reader += 1;
                s.readers.push_back((t, None));
                this.ticket = Some(t);
                t
            }
        };
        if s.readers.front().map(|r| r.0) == Some(ticket) {
            if let Some(m) = s.queue.pop_front() {
                s.queued -= queue_cost(&m);
                s.readers.pop_front();
                this.ticket = None;
                s.wake_front();
                if s.held && s.queued <= READ_QUEUE_HIGH_WATER / 2 {
                    s.held = false;
                    drop(s);
                    resume_reading(this.id);
                }
                return Poll::Ready(Some(m));
            }
        }
        if s.closed && s.queue.is_empty() {
            s.readers.retain(|r| r.0 != ticket);
            this.ticket = None;
            return Poll::Ready(None);
        }
        if let Some(r) = s.readers.iter_mut().find(|r| r.0 == ticket) {
            match &r.1 {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => r.1 = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

/// The [`Stream`] of [`WebSocketClientConnection::messages`]: ends when
/// the connection is closed. It holds a clone of the connection, which
/// therefore stays open while the stream lives.
#[must_use = "streams do nothing unless polled"]
pub struct Messages {
    conn: WebSocketClientConnection,
    /// The read waiting, kept between polls so that it keeps its place.
    read: Option<ReadMessage>,
}

impl Messages {
    /// The next message, `None` once the connection is closed, as
    /// `StreamExt::next` gives it, without needing that trait.
    // An async `next`, `StreamExt::next`'s shape, not `Iterator`'s.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> impl Future<Output = Option<Message<'static>>> + '_ {
        std::future::poll_fn(move |cx| Pin::new(&mut *self).poll_next(cx))
    }
}

impl Stream for Messages {
    type Item = Message<'static>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let read = this.read.get_or_insert_with(|| this.conn.read_message());
        let msg = std::task::ready!(Pin::new(read).poll(cx));
        this.read = None;
        Poll::Ready(msg)
    }
}

impl fmt::Debug for Messages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Drop for ReadMessage {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else { return };
        let Ok(mut s) = self.state.try_borrow_mut() else {
            return;
        };
        let was_front = s.readers.front().map(|r| r.0) == Some(ticket);
        s.readers.retain(|r| r.0 != ticket);
        if was_front {
            s.wake_front();
        }
    }
}

/// Lifts the hold [`ChannelHandler::on_message`] put on reading.
fn resume_reading(id: ConnId) {
    let Some(lp) = IOLoop::existing() else {
        return;
    };
    now_or_later(&lp, id, |ws| ws.hold_reading(false));
}

/// Runs `f` on the connection now or, while the loop is serving it (its
/// handler is on the stack), once it is put back.
fn now_or_later(lp: &IOLoop, id: ConnId, f: impl FnOnce(&mut WebSocket<'_>) + Clone + 'static) {
    if with_websocket(lp, id, f.clone()).is_none() {
        with_websocket_later(lp, id, f);
    }
}

/// Flow control for [`WebSocketClientConnection::write_message`] and
/// [`flush`](WebSocketClientConnection::flush): resolves once the write
/// queue is at or below its mark, or the connection closed.
pub struct WriteFuture {
    id: ConnId,
    state: Rc<RefCell<ClientState>>,
    mark: usize,
}

impl Future for WriteFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.borrow().closed {
            return Poll::Ready(());
        }
        crate::websocket::context::poll_drained(self.id, self.mark, cx)
    }
}
