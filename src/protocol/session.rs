//! Per-connection protocol state: frames in, events and reply bytes out.
//!
//! Calling order (the IO layer's contract): append received bytes to the
//! connection's input buffer, then call [`Session::read_event`] on the
//! unconsumed bytes until it reports `consumed == 0`; after every call
//! write out whatever was appended to `out` (pongs, close echoes). When
//! [`State::is_closed`] becomes true the closing handshake is done: a
//! server closes the TCP connection, a client waits briefly for the server
//! to close it (RFC 6455 §7.1.1).

use std::borrow::Cow;
use std::ops::Deref;

use super::deflate::{CompressionOptions, DeflateParams, Deflater, Inflater};
use super::error::ProtocolError;
use super::frame::{encode_frame, FrameHeader};
use super::mask::{apply_mask, apply_mask_short};
use super::opcode::{CloseCode, OpCode};
use super::utf8::Utf8Validator;

/// Which end of the connection this session is; decided once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections: expects masked frames, sends unmasked ones.
    Server,
    /// Opens connections: sends masked frames, expects unmasked ones.
    Client,
}

/// Receive limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest message accepted, in bytes, after reassembly and inflation.
    /// Default 10 MiB, Tornado's `websocket_max_message_size`. Larger
    /// messages fail with 1009, detected from the frame header before the
    /// payload is buffered.
    pub max_message_size: usize,
    /// Bytes each fragment of a fragmented message is charged, so that a
    /// flood of empty fragments is bounded too: a message also fails with
    /// 1009 once its payload plus this charge per fragment passes twice
    /// `max_message_size`. The payload alone is held to the limit itself,
    /// as in Tornado, so a message of exactly the limit passes however it
    /// is fragmented (up to the limit ÷ this charge fragments). Default 16:
    /// with the default limit, a message may have 655,360 fragments.
    /// Values above 65,535 are treated as 65,535.
    pub fragment_overhead: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_message_size: 10 * 1024 * 1024,
            fragment_overhead: 16,
        }
    }
}

/// A message body: borrowed from the input buffer (single uncompressed
/// frame, zero copy) or owned (reassembled or inflated).
#[derive(Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Points into the `input` given to [`Session::read_event`].
    Borrowed(&'a [u8]),
    /// Reassembled from fragments or inflated.
    Owned(Vec<u8>),
}

impl Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
        }
    }
}

impl Payload<'_> {
    /// The bytes as an owned `Vec` (copies only if borrowed).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Payload::Borrowed(b) => b.to_vec(),
            Payload::Owned(v) => v,
        }
    }
}

/// Something the handler should see.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message, validated once: borrowed from `input` when
    /// it arrived in one uncompressed frame.
    Text(Cow<'a, str>),
    /// A complete binary message.
    Binary(Payload<'a>),
    /// A ping; the pong is already appended to `out` (if we can still send).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's Close frame; the echo is already appended to `out` if we
    /// had not sent a Close ourselves.
    Close {
        /// Status code, if the frame had one (otherwise 1005 applies).
        code: Option<u16>,
        /// Reason text (valid UTF-8, ≤ 123 bytes).
        reason: &'a str,
    },
}

/// Result of one [`Session::read_event`] call.
#[derive(Debug, PartialEq, Eq)]
pub struct Readout<'a> {
    /// Bytes of `input` used; 0 when no complete frame was there yet.
    pub consumed: usize,
    /// What the frame completed, if anything user-visible.
    pub event: Option<Event<'a>>,
}

/// The closing handshake's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Both directions open.
    Open,
    /// We sent Close and wait for the peer's; we still read (the peer may
    /// send data before it sees our Close) but send nothing more.
    CloseSent,
    /// The peer's Close arrived and ours is not sent yet. `read_event`
    /// echoes at once, so a session only passes through this state if the
    /// caller asks; kept so callers can match the full handshake.
    CloseReceived,
    /// Both Close frames exchanged, or the connection was failed.
    Closed,
}

impl State {
    /// Whether data and control frames may still be sent (before our Close).
    pub fn can_send(self) -> bool {
        matches!(self, State::Open | State::CloseReceived)
    }
    /// Whether frames may still arrive (before the peer's Close).
    pub fn can_read(self) -> bool {
        matches!(self, State::Open | State::CloseSent)
    }
    /// Whether the closing handshake is over (or the connection failed).
    pub fn is_closed(self) -> bool {
        self == State::Closed
    }
}

/// Error for sending after our Close frame went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebSocket is closed")
    }
}

impl std::error::Error for Closed {}

/// Kind of the fragmented message in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    None,
    Text,
    Binary,
}

/// Heap state, only for connections that need it: reassembly buffer,
/// deflate streams, and the client's pool of masking keys.
struct Extra {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    deflate: Option<DeflateState>,
    masks: [u8; 64],
    mask_pos: u8,
}

struct DeflateState {
    deflater: Deflater,
    inflater: Inflater,
    min_size: usize,
}

/// Per-connection WebSocket protocol state (sans IO).
///
/// 48 bytes inline on 64-bit; heap state lives behind one
/// `Option<Box<_>>` and is allocated only for fragmented messages, deflate
/// or the client role.
pub struct Session {
    max_message_size: usize,
    /// `SessionConfig::fragment_overhead`, saturated to 16 bits (kept small:
    /// a `Session` lives in every idle connection).
    fragment_overhead: u16,
    /// Payload bytes of the message in progress (as received: compressed
    /// for a compressed message).
    charged: u64,
    /// Fragments of the message in progress so far, each charged
    /// `fragment_overhead` against twice the limit.
    fragments: u32,
    extra: Option<Box<Extra>>,
    utf8: Utf8Validator,
    role: Role,
    state: State,
    msg: Msg,
    /// The message in progress is compressed (RSV1 on its first frame).
    compressed: bool,
    deflate: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("deflate", &self.deflate)
            .finish()
    }
}

impl Extra {
    fn new() -> Box<Extra> {
        Box::new(Extra {
            buf: Vec::new(),
            scratch: Vec::new(),
            deflate: None,
            masks: [0; 64],
            mask_pos: 64,
        })
    }
}

#[cfg(test)]
thread_local! {
    /// Tests turn the small-message fast path off to compare it with the
    /// general path.
    pub(super) static FAST_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

#[inline(always)]
fn fast_path_on() -> bool {
    #[cfg(test)]
    return FAST_PATH.with(|f| f.get());
    #[cfg(not(test))]
    true
}

/// A whole message that arrived in one uncompressed frame, borrowed from
/// the input: text is validated here, once.
#[inline]
fn single_frame_message(text: bool, payload: &[u8]) -> Result<Event<'_>, ProtocolError> {
    Ok(if text {
        let s = super::utf8::from_utf8(payload).ok_or(ProtocolError::InvalidUtf8)?;
        Event::Text(Cow::Borrowed(s))
    } else {
        Event::Binary(Payload::Borrowed(payload))
    })
}

impl Session {
    /// A session in `State::Open`. `deflate` is the negotiated
    /// permessage-deflate parameters, if any; `compression` supplies the
    /// level and `min_size` used when sending (ignored without `deflate`).
    pub fn new(
        role: Role,
        config: SessionConfig,
        deflate: Option<DeflateParams>,
        compression: &CompressionOptions,
    ) -> Session {
        let mut extra = None;
        if let Some(p) = deflate {
            let mut e = Extra::new();
            e.deflate = Some(DeflateState {
                deflater: Deflater::new(p, role, compression.level),
                inflater: Inflater::new(p, role),
                min_size: compression.min_size,
            });
            extra = Some(e);
        } else if role == Role::Client {
            extra = Some(Extra::new());
        }
        Session {
            max_message_size: config.max_message_size,
            fragment_overhead: u16::try_from(config.fragment_overhead).unwrap_or(u16::MAX),
            charged: 0,
            fragments: 0,
            extra,
            utf8: Utf8Validator::new(),
            role,
            state: State::Open,
            msg: Msg::None,
            compressed: false,
            deflate: deflate.is_some(),
        }
    }

    /// Whether permessage-deflate was negotiated for this session.
    pub fn is_compressing(&self) -> bool {
        self.deflate
    }

    /// The closing handshake's progress.
    pub fn state(&self) -> State {
        self.state
    }

    /// This session's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether permessage-deflate was negotiated.
    pub fn deflate_enabled(&self) -> bool {
        self.deflate
    }

    fn too_big(&self, size: u64) -> ProtocolError {
        ProtocolError::MessageTooBig {
            size,
            limit: self.max_message_size,
            inflated: false,
        }
    }

    /// Bytes still missing before the frame at the start of `input` is
    /// complete (at least 1 while the header is incomplete; 0 if complete).
    /// A sizing hint for reads; limits are not checked here.
    pub fn bytes_needed(input: &[u8]) -> u64 {
        match FrameHeader::parse(input) {
            None => {
                let need = if input.len() >= 2 {
                    super::frame::header_len(
                        match input[1] & 0x7f {
                            126 => 126,
                            127 => 1 << 16,
                            n => n as u64,
                        },
                        input[1] & 0x80 != 0,
                    )
                } else {
                    2
                };
                (need - input.len()) as u64
            }
            Some((h, hlen)) => (hlen as u64)
                .saturating_add(h.payload_len)
                .saturating_sub(input.len() as u64),
        }
    }

    /// Parses the next complete frame at the start of `input` (the caller
    /// keeps unconsumed bytes and calls again with more appended).
    ///
    /// Unmasks in place. Returns `consumed == 0` and no event when `input`
    /// does not hold a complete frame; header checks (including the size
    /// limit) run as soon as the header is there, before the payload.
    /// Automatic replies (pong, close echo) are appended to `out`, framed
    /// and masked for the client role. A frame that completes nothing
    /// user-visible (a non-final fragment) returns `consumed > 0` and no
    /// event. Single-frame uncompressed messages are `Payload::Borrowed`
    /// from `input`; fragmented or compressed ones are `Payload::Owned`.
    ///
    /// On `Err`, call [`fail`](Self::fail) and stop reading.
    ///
    /// # Errors
    /// A [`ProtocolError`] when the peer broke RFC 6455/7692; its `close_code()` is the code to fail the connection with (call [`fail`](Self::fail)).
    pub fn read_event<'a>(
        &mut self,
        input: &'a mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<Readout<'a>, ProtocolError> {
        const NOTHING: Readout<'static> = Readout {
            consumed: 0,
            event: None,
        };
        if input.is_empty() {
            return Ok(NOTHING);
        }
        if !self.state.can_read() {
            // "The application MUST NOT send any more data frames after
            // sending a Close frame" applies to the peer after its Close.
            return Err(ProtocolError::FrameAfterClose);
        }
        if let Some((hlen, total)) = self.whole_small_message(input).filter(|_| fast_path_on()) {
            if hlen == 6 {
                let key = [input[2], input[3], input[4], input[5]];
                apply_mask_short(&mut input[hlen..total], key);
            }
            let text = input[0] == 0x81;
            let input: &'a [u8] = input;
            return Ok(Readout {
                consumed: total,
                event: Some(single_frame_message(text, &input[hlen..total])?),
            });
        }
        let Some((h, hlen)) = FrameHeader::parse(input) else {
            return Ok(NOTHING);
        };
        let opcode = OpCode::from_u8(h.opcode).ok_or(ProtocolError::ReservedOpcode(h.opcode))?;
        // "If an unknown opcode is received, the receiving endpoint MUST _Fail
        // the WebSocket Connection_." (RFC 6455 §5.2) -- done above.
        // "MUST be 0 unless an extension is negotiated that defines meanings
        // for non-zero values." (RFC 6455 §5.2)
        if h.rsv2 || h.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        if h.rsv1 {
            if !self.deflate {
                return Err(ProtocolError::ReservedBits);
            }
            // "An endpoint MUST NOT set the "Per-Message Compressed" bit of
            // control frames and non-first fragments of a data message."
            // (RFC 7692 §6.1)
            if opcode.is_control() {
                return Err(ProtocolError::CompressedControlFrame);
            }
            if opcode == OpCode::Continuation {
                return Err(ProtocolError::CompressedContinuation);
            }
        }
        match (self.role, h.mask.is_some()) {
            // "The server MUST close the connection upon receiving a frame
            // that is not masked." (RFC 6455 §5.1)
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrameFromClient),
            // "A client MUST close a connection if it detects a masked frame."
            // (RFC 6455 §5.1)
            (Role::Client, true) => return Err(ProtocolError::MaskedFrameFromServer),
            _ => {}
        }
        // "the most significant bit MUST be 0" (RFC 6455 §5.2, 64-bit length)
        if h.payload_len >> 63 != 0 {
            return Err(ProtocolError::InvalidFrameLength);
        }
        if opcode.is_control() {
            // "All control frames MUST have a payload length of 125 bytes or
            // less and MUST NOT be fragmented." (RFC 6455 §5.5)
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooBig);
            }
        } else {
            match (opcode, self.msg) {
                // A continuation needs a message in progress (RFC 6455 §5.4).
                (OpCode::Continuation, Msg::None) => {
                    return Err(ProtocolError::UnexpectedContinuation)
                }
                // "fragments of one message MUST NOT be interleaved between
                // fragments of another message" (RFC 6455 §5.4)
                (OpCode::Text | OpCode::Binary, Msg::Text | Msg::Binary) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                _ => {}
            }
            // Size limit from the header, before buffering the payload.
            let fragmented = self.msg != Msg::None || !h.fin;
            let overhead = if fragmented {
                self.fragment_overhead as u64
            } else {
                0
            };
            let size = self.charged.saturating_add(h.payload_len);
            if size > self.max_message_size as u64 {
                return Err(self.too_big(size));
            }
            let charges = (u64::from(self.fragments) + 1) * overhead;
            if size.saturating_add(charges) > (self.max_message_size as u64).saturating_mul(2) {
                return Err(self.too_big(size.saturating_add(charges)));
            }
        }
        // Payload length fits usize now: ≤ max_message_size or ≤ 125.
        let total = hlen + h.payload_len as usize;
        if input.len() < total {
            return Ok(NOTHING);
        }
        if let Some(m) = h.mask {
            // "A server MUST remove masking for data frames received from a
            // client as described in Section 5.3." (RFC 6455 §5.1)
            apply_mask(&mut input[hlen..total], m);
        }
        let input: &'a [u8] = input;
        let payload = &input[hlen..total];
        let event = match opcode {
            OpCode::Ping => {
                // "Upon receipt of a Ping frame, an endpoint MUST send a Pong
                // frame in response" (RFC 6455 §5.5.2)
                if self.state == State::Open {
                    self.write_frame(OpCode::Pong, payload, out);
                }
                Some(Event::Ping(payload))
            }
            OpCode::Pong => Some(Event::Pong(payload)),
            OpCode::Close => Some(self.on_close(payload, out)?),
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.on_data(opcode, h.fin, h.rsv1, payload)?
            }
        };
        Ok(Readout {
            consumed: total,
            event,
        })
    }

    /// The common case in one step: a complete, unfragmented, uncompressed
    /// Text or Binary frame with a 7-bit length, masked exactly when it must
    /// be, while no message is in progress and within the size limit. Every
    /// check `read_event` would make on such a frame passes, so it gives the
    /// same result as the general path; anything else returns `None` and
    /// takes that path (and its errors). Returns the header and frame
    /// lengths (`hlen`, `total`); the caller unmasks and hands out the
    /// payload. Part of the change that took a 16-byte echo from 608 to 299
    /// instructions (benches/README.md, callgrind).
    #[inline]
    fn whole_small_message(&self, input: &[u8]) -> Option<(usize, usize)> {
        let (&b0, &b1) = (input.first()?, input.get(1)?);
        // FIN, no RSV bits, opcode 1 or 2.
        if !(b0 == 0x81 || b0 == 0x82) || self.msg != Msg::None {
            return None;
        }
        let masked = b1 & 0x80 != 0;
        let len = (b1 & 0x7f) as usize;
        if len >= 126
            || masked != (self.role == Role::Server)
            || self.charged.saturating_add(len as u64) > self.max_message_size as u64
        {
            return None;
        }
        let hlen = if masked { 6 } else { 2 };
        let total = hlen + len;
        (input.len() >= total).then_some((hlen, total))
    }

    fn on_close<'a>(
        &mut self,
        payload: &'a [u8],
        out: &mut Vec<u8>,
    ) -> Result<Event<'a>, ProtocolError> {
        let (code, reason) = match payload.len() {
            0 => (None, ""),
            // "If there is a body, the first two bytes of the body MUST be a
            // 2-byte unsigned integer" (RFC 6455 §5.5.1)
            1 => return Err(ProtocolError::InvalidClosePayload),
            _ => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                if !CloseCode::is_valid_received(code) {
                    return Err(ProtocolError::InvalidCloseCode(code));
                }
                // "the data [...] is not guaranteed to be human readable [...]
                // it MUST be UTF-8" -> 1007 (RFC 6455 §5.5.1, §8.1)
                let reason =
                    std::str::from_utf8(&payload[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
                (Some(code), reason)
            }
        };
        match self.state {
            State::Open | State::CloseReceived => {
                // "If an endpoint receives a Close frame and did not previously
                // send a Close frame, the endpoint MUST send a Close frame in
                // response. [...] it typically echos the status code it
                // received." (RFC 6455 §5.5.1)
                let body = code.unwrap_or(0).to_be_bytes();
                let echo: &[u8] = if code.is_some() { &body } else { &[] };
                self.write_frame(OpCode::Close, echo, out);
                self.state = State::Closed;
            }
            State::CloseSent => self.state = State::Closed,
            State::Closed => {}
        }
        Ok(Event::Close { code, reason })
    }

    fn on_data<'a>(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        payload: &'a [u8],
    ) -> Result<Option<Event<'a>>, ProtocolError> {
        let first = opcode != OpCode::Continuation;
        // Fast path: a whole uncompressed message in one frame, zero copy.
        if first && fin && !rsv1 {
            return single_frame_message(opcode == OpCode::Text, payload).map(Some);
        }
        let max = self.max_message_size;
        if first {
            self.msg = if opcode == OpCode::Text {
                Msg::Text
            } else {
                Msg::Binary
            };
            self.compressed = rsv1;
            self.charged = 0;
            self.fragments = 0;
            self.utf8.reset();
        }
        if !fin || !first {
            self.charged += payload.len() as u64;
            self.fragments = self.fragments.saturating_add(1);
        }
        let extra = self.extra.get_or_insert_with(Extra::new);
        let start = extra.buf.len();
        if self.compressed {
            let d = extra
                .deflate
                .as_mut()
                .expect("RSV1 accepted only with deflate");
            let r = d.inflater.decompress(payload, &mut extra.buf, max);
            let r = r.and_then(|()| {
                if fin {
                    d.inflater.finish(&mut extra.buf, max)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = r {
                extra.buf = Vec::new();
                self.msg = Msg::None;
                return Err(e);
            }
        } else {
            extra.buf.extend_from_slice(payload);
        }
        if self.msg == Msg::Text {
            // Fail fast: validate each fragment as it arrives.
            let ok =
                self.utf8.feed(&extra.buf[start..]).is_ok() && (!fin || self.utf8.finish().is_ok());
            if !ok {
                extra.buf = Vec::new();
                self.msg = Msg::None;
                return Err(ProtocolError::InvalidUtf8);
            }
        }
        if !fin {
            return Ok(None);
        }
        let body = std::mem::take(&mut extra.buf);
        let kind = self.msg;
        self.msg = Msg::None;
        self.charged = 0;
        self.fragments = 0;
        Ok(Some(if kind == Msg::Text {
            // Validated fragment by fragment above; making the `String`
            // checks once more (fast; see `into_string`) rather than
            // trusting that with `unsafe`.
            let s = super::utf8::into_string(body).ok_or(ProtocolError::InvalidUtf8)?;
            Event::Text(Cow::Owned(s))
        } else {
            Event::Binary(Payload::Owned(body))
        }))
    }

    /// The key for the next outgoing frame: none for a server, inlined so
    /// that costs one compare there.
    #[inline]
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        if self.role == Role::Server {
            return None;
        }
        Some(self.next_client_mask())
    }

    fn next_client_mask(&mut self) -> [u8; 4] {
        let e = self.extra.get_or_insert_with(Extra::new);
        if e.mask_pos as usize >= e.masks.len() {
            // "The masking key needs to be unpredictable; thus, the masking
            // key MUST be derived from a strong source of entropy" (RFC 6455
            // §10.3). One getrandom call per 16 frames.
            getrandom::fill(&mut e.masks).expect("OS entropy source");
            e.mask_pos = 0;
        }
        let i = e.mask_pos as usize;
        e.mask_pos += 4;
        [e.masks[i], e.masks[i + 1], e.masks[i + 2], e.masks[i + 3]]
    }

    fn write_frame(&mut self, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
        let mask = self.next_mask();
        encode_frame(out, true, false, opcode, payload, mask);
    }

    /// Appends a whole Text or Binary message as one frame, compressed when
    /// deflate was negotiated and `payload.len() >= min_size`, masked with a
    /// fresh key in the client role. Text must be UTF-8 (the caller's `&str`).
    ///
    /// # Errors
    /// [`Closed`] once a close frame was sent or received.
    pub fn send_message(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Closed> {
        debug_assert!(matches!(opcode, OpCode::Text | OpCode::Binary));
        if !self.state.can_send() {
            return Err(Closed);
        }
        let mask = self.next_mask();
        if let Some(e) = self.extra.as_deref_mut() {
            if let Some(d) = e.deflate.as_mut() {
                if payload.len() >= d.min_size {
                    e.scratch.clear();
                    d.deflater.compress(payload, &mut e.scratch);
                    encode_frame(out, true, true, opcode, &e.scratch, mask);
                    if e.scratch.capacity() > 64 * 1024 {
                        e.scratch = Vec::new();
                    }
                    return Ok(());
                }
            }
        }
        encode_frame(out, true, false, opcode, payload, mask);
        Ok(())
    }

    /// Appends a ping (payload truncated to 125 bytes).
    ///
    /// # Errors
    /// [`Closed`] once a close frame was sent or received.
    pub fn send_ping(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Closed> {
        self.send_control(OpCode::Ping, data, out)
    }

    /// Appends an unsolicited pong (payload truncated to 125 bytes).
    ///
    /// # Errors
    /// [`Closed`] once a close frame was sent or received.
    pub fn send_pong(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Closed> {
        self.send_control(OpCode::Pong, data, out)
    }

    fn send_control(&mut self, op: OpCode, data: &[u8], out: &mut Vec<u8>) -> Result<(), Closed> {
        if !self.state.can_send() {
            return Err(Closed);
        }
        self.write_frame(op, &data[..data.len().min(125)], out);
        Ok(())
    }

    /// Starts (or, after the peer's Close, completes) the closing handshake.
    /// `reason` is truncated at a char boundary to fit 123 bytes; a
    /// non-empty reason without a code is sent with 1000 (Tornado's
    /// `WebSocketProtocol13.close`), and no code and no reason send an
    /// empty Close. A code that is not [`CloseCode::is_sendable`] is not
    /// put on the wire (the Close goes out without a body).
    ///
    /// # Errors
    /// [`Closed`] if a close frame was already sent (closing twice sends nothing).
    pub fn send_close(
        &mut self,
        code: Option<CloseCode>,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), Closed> {
        if !self.state.can_send() {
            return Err(Closed);
        }
        let mut body = [0u8; 125];
        // A reason can only travel after a code (RFC 6455 §5.5.1).
        let code = code.or((!reason.is_empty()).then_some(CloseCode::NORMAL));
        let n = match code {
            Some(c) if c.is_sendable() => {
                let mut end = reason.len().min(123);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                body[..2].copy_from_slice(&c.0.to_be_bytes());
                body[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
                2 + end
            }
            _ => 0,
        };
        self.write_frame(OpCode::Close, &body[..n], out);
        self.state = if self.state == State::CloseReceived {
            State::Closed
        } else {
            State::CloseSent
        };
        Ok(())
    }

    /// Fails the connection after `err` (RFC 6455 §7.1.7): sends a Close with
    /// `err.close_code()` (for 1009 with Tornado's reason, "message too
    /// big", or "message too big after decompression" when the inflated
    /// data passed the limit) if we have not sent one, and moves to `Closed`.
    pub fn fail(&mut self, err: &ProtocolError, out: &mut Vec<u8>) {
        if self.state.can_send() {
            let mut payload = err.close_code().0.to_be_bytes().to_vec();
            // Tornado's reasons for 1009; the other codes go without one.
            if let ProtocolError::MessageTooBig { inflated, .. } = err {
                payload.extend_from_slice(if *inflated {
                    b"message too big after decompression"
                } else {
                    b"message too big"
                });
            }
            self.write_frame(OpCode::Close, &payload, out);
        }
        self.abort();
    }

    /// Drops the connection without a closing handshake (a user's
    /// `terminate`, RFC 6455 §7.1.1's "abruptly"): moves to `Closed` and
    /// writes nothing; a message being assembled is discarded.
    pub fn abort(&mut self) {
        self.state = State::Closed;
        self.msg = Msg::None;
        if let Some(e) = &mut self.extra {
            e.buf = Vec::new();
        }
    }
}
