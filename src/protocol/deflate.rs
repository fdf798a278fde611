//! permessage-deflate (RFC 7692): negotiation and the per-message
//! compressor / decompressor, on flate2 with the zlib-rs backend.
//!
//! Window bits: zlib (and zlib-rs) cannot *compress* raw deflate with an
//! 8-bit window (zlib ≥ 1.2.9 silently turns 8 into 9, zlib-rs rejects it),
//! so we never agree to compress with 8: a client offer of
//! `server_max_window_bits=8` is declined (the server "MUST NOT" answer a
//! larger value, RFC 7692 §7.1.2.1), and a client refuses a response with
//! `client_max_window_bits=8`. Our own option values below 9 are raised to
//! 9. Decompression always uses a 15-bit window, which inflates any stream
//! made with a smaller one (including zlib's 8-as-9).
//!
//! Memory level: flate2 does not expose `memLevel`; zlib-rs uses 8, the
//! same as Tornado's default, so [`CompressionOptions::mem_level`] is
//! informational only.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::{HandshakeError, ProtocolError};
use super::handshake::{parse_extensions, ExtensionOffer};
use super::session::Role;

/// permessage-deflate settings (Tornado's `compression_options`).
///
/// Memory: the compressor and decompressor of a connection are created on
/// first use and freed with the connection. Measured with the defaults
/// (level 1, 15-bit windows, context takeover) on 500 connections: an idle
/// compressed connection costs ~1.5 KiB more than a plain one; once both
/// streams exist (one message each way) ~333 KiB, almost all of it the
/// zlib-rs deflate state (windows, hash chains, pending buffer). After
/// close the process returned to its baseline RSS. Smaller
/// `server_max_window_bits` shrinks the deflate state.
///
/// Broadcast with compression: with context takeover every receiver's
/// compressor has its own history, so `broadcast` compresses once per
/// compressing receiver; receivers without compression share one encoded
/// frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompressionOptions {
    /// zlib level 0–9. Default 1, chosen deliberately over Tornado's 6:
    /// on 1 KiB JSON-like messages zlib-rs level 1 costs ~3.4–4.9 µs per
    /// message against 21–29 µs at level 6 (PERF-NOTES §6), for a ratio of
    /// 2.9 instead of 4.05. A single-threaded server is bound by CPU per
    /// message, so the cheaper level serves ~6× more compressed messages;
    /// set 6 for Tornado's ratio.
    pub level: u32,
    /// zlib `memLevel`. Default 8. flate2 cannot set it; zlib-rs uses 8.
    pub mem_level: u8,
    /// Largest window we use for our compressor as a server (9–15; 8 is
    /// treated as 9). Default 15.
    pub server_max_window_bits: u8,
    /// Largest window the client compressor may use (8–15, 8 treated as 9:
    /// a client refuses to be asked for 8). As a server we ask the client
    /// for it when it offers `client_max_window_bits`; as a client it is our
    /// own limit. Default 15.
    pub client_max_window_bits: u8,
    /// Server resets its compressor after every message. Default false
    /// (context takeover is ~2× cheaper per message in zlib-rs, PERF-NOTES §6;
    /// it costs ~256 KiB per connection while a compressor exists).
    pub server_no_context_takeover: bool,
    /// Client resets its compressor after every message. Default false.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed (RSV1 clear).
    /// Default 64: below that the deflate block overhead and the CPU cost
    /// outweigh any saving.
    pub min_size: usize,
}

impl Default for CompressionOptions {
    fn default() -> Self {
        CompressionOptions {
            level: 1,
            mem_level: 8,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            min_size: 64,
        }
    }
}

/// The agreed permessage-deflate parameters of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// Window bits of the server's compressor (9–15).
    pub server_max_window_bits: u8,
    /// Window bits of the client's compressor (8–15; a client we run uses ≥ 9).
    pub client_max_window_bits: u8,
}

const EXT: &str = "permessage-deflate";

/// Parses a window-bits value: "a decimal integer value without leading
/// zeroes between 8 and 15, inclusive" (RFC 7692 §7.1.2.1).
fn window_bits(v: &str) -> Option<u8> {
    match v.as_bytes() {
        [b'8'] => Some(8),
        [b'9'] => Some(9),
        [b'1', d @ b'0'..=b'5'] => Some(10 + (d - b'0')),
        _ => None,
    }
}

#[derive(Default)]
struct Seen {
    server_nct: bool,
    client_nct: bool,
    server_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_bits: Option<Option<u8>>,
}

/// Reads an offer's (or response's) parameters; `None` on an unknown,
/// repeated or ill-valued parameter.
///
/// Parameter names are matched in any case, on both sides (the server
/// reading an offer, the client reading the answer): RFC 6455 §9.1 makes
/// them HTTP tokens after a `;`, and HTTP parameter names are
/// case-insensitive (RFC 9110 §5.6.6), as the extension name already is
/// here. RFC 7692 §7.1 spells them in lower case, which is what we send.
/// A name repeated in another case is a repeated parameter. Tornado
/// (6.6) reads names with a value in any case too (its header parser
/// lowercases them: `Client_Max_Window_Bits=10` is read), but drops
/// value-less parameters whatever their case (`server_no_context_takeover`
/// included); cyclone reads those, in any case.
fn read_params(offer: &ExtensionOffer) -> Option<Seen> {
    let mut s = Seen::default();
    for (name, value) in &offer.params {
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if !s.server_nct && value.is_none() => s.server_nct = true,
            "client_no_context_takeover" if !s.client_nct && value.is_none() => s.client_nct = true,
            "server_max_window_bits" if s.server_bits.is_none() => {
                s.server_bits = Some(window_bits(value.as_deref()?)?)
            }
            "client_max_window_bits" if s.client_bits.is_none() => {
                s.client_bits = Some(match value {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                })
            }
            _ => return None,
        }
    }
    Some(s)
}

fn clamp_bits(b: u8) -> u8 {
    b.clamp(9, 15)
}

/// Server: picks the first acceptable permessage-deflate offer from all
/// `Sec-WebSocket-Extensions` values, in order. Returns the agreed
/// parameters and the response header value, or `None` to run without
/// compression. Offers with unknown, repeated or invalid parameters are
/// declined ("A server MUST decline an extension negotiation offer for this
/// extension if ... " RFC 7692 §5.1) and the next one is tried; a header
/// that does not parse declines everything (rather than failing the
/// handshake). The `Result` is for future stricter policies; today this
/// never returns `Err`.
///
/// # Errors
/// None today: offers that cannot be accepted are declined (`Ok(None)`); the `Result` leaves room for stricter policies.
pub fn negotiate_server(
    header_values: &[&[u8]],
    opts: &CompressionOptions,
) -> Result<Option<(DeflateParams, String)>, HandshakeError> {
    let mut offers = Vec::new();
    for v in header_values {
        match parse_extensions(v) {
            Ok(o) => offers.extend(o),
            Err(()) => return Ok(None),
        }
    }
    let our_server_bits = clamp_bits(opts.server_max_window_bits);
    let our_client_bits = clamp_bits(opts.client_max_window_bits);
    for offer in offers.iter().filter(|o| o.name.eq_ignore_ascii_case(EXT)) {
        let Some(seen) = read_params(offer) else {
            continue;
        };
        // server_max_window_bits: we must not use more than asked for; we
        // cannot compress with 8 (see module docs), so decline that offer.
        let server_bits = match seen.server_bits {
            Some(8) => continue,
            Some(b) => b.min(our_server_bits),
            None => our_server_bits,
        };
        // client_max_window_bits: only if the client said it supports it;
        // otherwise it uses 15 and our inflater (always 15) copes.
        let client_bits = match seen.client_bits {
            Some(Some(b)) => Some(b.min(our_client_bits)),
            Some(None) if our_client_bits < 15 => Some(our_client_bits),
            _ => None,
        };
        let params = DeflateParams {
            server_no_context_takeover: seen.server_nct || opts.server_no_context_takeover,
            client_no_context_takeover: seen.client_nct || opts.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits.unwrap_or(15),
        };
        let mut resp = String::from(EXT);
        if params.server_no_context_takeover {
            resp.push_str("; server_no_context_takeover");
        }
        if params.client_no_context_takeover {
            resp.push_str("; client_no_context_takeover");
        }
        if seen.server_bits.is_some() || server_bits < 15 {
            resp.push_str("; server_max_window_bits=");
            resp.push_str(&server_bits.to_string());
        }
        if let Some(b) = client_bits {
            resp.push_str("; client_max_window_bits=");
            resp.push_str(&b.to_string());
        }
        return Ok(Some((params, resp)));
    }
    Ok(None)
}

/// Client: the `Sec-WebSocket-Extensions` offer for `opts`. Always offers
/// `client_max_window_bits` (so the server may limit our window).
pub fn client_offer(opts: &CompressionOptions) -> String {
    let mut s = String::from(EXT);
    if opts.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if opts.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    let sb = clamp_bits(opts.server_max_window_bits);
    if sb < 15 {
        s.push_str("; server_max_window_bits=");
        s.push_str(&sb.to_string());
    }
    s.push_str("; client_max_window_bits");
    let cb = clamp_bits(opts.client_max_window_bits);
    if cb < 15 {
        s.push('=');
        s.push_str(&cb.to_string());
    }
    s
}

/// Client: checks the server's `Sec-WebSocket-Extensions` response against
/// what [`client_offer`] sent for `opts` (RFC 7692 §5, §7.1: "the client
/// MUST _Fail the WebSocket Connection_" on a response it cannot accept).
///
/// # Errors
/// [`HandshakeError`] when the server's answer names another extension, repeats or misspells a parameter, or asks for something the client did not allow (the client must then fail the connection, RFC 7692 §5).
pub fn client_accept(
    response_value: &str,
    opts: &CompressionOptions,
) -> Result<DeflateParams, HandshakeError> {
    let bad = |why: &str| HandshakeError::InvalidResponse(why.to_owned());
    let offers = parse_extensions(response_value.as_bytes())
        .map_err(|_| bad("malformed Sec-WebSocket-Extensions"))?;
    let mut it = offers.into_iter();
    let resp = it
        .next()
        .ok_or_else(|| bad("empty Sec-WebSocket-Extensions"))?;
    if !resp.name.eq_ignore_ascii_case(EXT) {
        return Err(HandshakeError::UnrequestedExtension(resp.name));
    }
    if let Some(extra) = it.next() {
        return Err(HandshakeError::UnrequestedExtension(extra.name));
    }
    let seen = read_params(&resp).ok_or_else(|| bad("invalid permessage-deflate parameters"))?;
    let offered_sb = clamp_bits(opts.server_max_window_bits);
    if opts.server_no_context_takeover && !seen.server_nct {
        return Err(bad("server_no_context_takeover offered but not accepted"));
    }
    let server_bits = match seen.server_bits {
        Some(b) if offered_sb < 15 && b > offered_sb => {
            return Err(bad("server_max_window_bits above the offered value"))
        }
        Some(b) => b,
        None if offered_sb < 15 => {
            return Err(bad("server_max_window_bits offered but not accepted"))
        }
        None => 15,
    };
    let our_cb = clamp_bits(opts.client_max_window_bits);
    let client_bits = match seen.client_bits {
        Some(None) => return Err(bad("client_max_window_bits without a value")),
        Some(Some(8)) => return Err(bad("client_max_window_bits=8 is not supported by zlib")),
        Some(Some(b)) if b > our_cb => {
            return Err(bad("client_max_window_bits above the offered value"))
        }
        Some(Some(b)) => b,
        None => our_cb,
    };
    Ok(DeflateParams {
        server_no_context_takeover: seen.server_nct,
        client_no_context_takeover: seen.client_nct || opts.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

/// "00 00 ff ff", the sync-flush tail stripped from / re-added to messages
/// (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output growth step for inflate and deflate.
const CHUNK: usize = 16 * 1024;

/// Our side's compressor. The zlib stream is created on first use.
pub struct Deflater {
    stream: Option<Compress>,
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("level", &self.level)
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Deflater {
    /// A compressor for `role`'s side of `params`, at zlib `level` (0–9).
    pub fn new(params: DeflateParams, role: Role, level: u32) -> Deflater {
        let (bits, nct) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
        };
        Deflater {
            stream: None,
            level: level.min(9),
            window_bits: clamp_bits(bits),
            no_context_takeover: nct,
        }
    }

    /// Appends `payload` compressed as one message (raw deflate, sync flush,
    /// trailing `00 00 ff ff` removed) to `out`.
    ///
    /// # Panics
    /// If the compressor reports an internal error, which zlib-rs does not do for a valid stream state.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let (level, bits) = (self.level, self.window_bits);
        let z = self.stream.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        let start = out.len();
        let base_in = z.total_in();
        loop {
            let consumed = (z.total_in() - base_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve((payload.len() - consumed) / 2 + 64);
            }
            z.compress_vec(&payload[consumed..], out, FlushCompress::Sync)
                .expect("deflate on valid state cannot fail");
            let consumed = (z.total_in() - base_in) as usize;
            // The flush is complete once all input is taken and zlib left
            // output space unused.
            if consumed == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() - start >= 4 && out[out.len() - 4..] == TAIL {
            out.truncate(out.len() - 4);
        } else if out.len() == start {
            // zlib emits nothing for an empty input right after a previous
            // sync flush (Z_BUF_ERROR); send an empty stored block
            // (RFC 7692 §7.2.3.6).
            out.push(0x00);
        } else {
            debug_assert!(false, "sync flush did not end with 00 00 ff ff");
        }
        if self.no_context_takeover {
            z.reset();
        }
    }
}

/// The peer's decompressor. The zlib stream is created on first use.
pub struct Inflater {
    stream: Option<Decompress>,
    no_context_takeover: bool,
    /// The peer ended a deflate stream (BFINAL) inside this message.
    stream_ended: bool,
    /// This message has had compressed bytes (see [`finish`](Self::finish)).
    fed: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Inflater {
    /// A decompressor for the peer of `role` under `params`.
    pub fn new(params: DeflateParams, role: Role) -> Inflater {
        let nct = match role {
            Role::Server => params.client_no_context_takeover,
            Role::Client => params.server_no_context_takeover,
        };
        Inflater {
            stream: None,
            no_context_takeover: nct,
            stream_ended: false,
            fed: false,
        }
    }

    /// Inflates one frame's compressed payload, appending to `out`. Fails
    /// with `MessageTooBig` (`inflated: true`) as soon as `out.len()` would exceed `max_total`
    /// (never growing `out` past `max_total + 1` bytes of capacity beyond
    /// what it had), `InvalidCompressedData` on a corrupt stream.
    ///
    /// # Errors
    /// [`ProtocolError::MessageTooBig`] (1009) once the output would exceed `max_total`; [`ProtocolError::InvalidCompressedData`] (1007) for a corrupt stream.
    pub fn decompress(
        &mut self,
        compressed: &[u8],
        out: &mut Vec<u8>,
        max_total: usize,
    ) -> Result<(), ProtocolError> {
        self.fed |= !compressed.is_empty();
        let z = self
            .stream
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
        let base_in = z.total_in();
        loop {
            if self.stream_ended {
                // Bytes after a final block are ignored until the reset.
                return Ok(());
            }
            let consumed = (z.total_in() - base_in) as usize;
            if out.len() == out.capacity() {
                if out.len() > max_total {
                    return Err(too_big(out.len(), max_total));
                }
                // Grow geometrically, in at least CHUNK steps, capped one byte
                // past the limit so that overflow is detected (saturating: a
                // limit of `usize::MAX` means none, and must neither
                // overflow nor leave no room to inflate into).
                let want = out
                    .len()
                    .max(CHUNK)
                    .min(max_total.saturating_add(1) - out.len());
                out.reserve_exact(want);
            }
            let before_out = out.len();
            let status = z
                .decompress_vec(&compressed[consumed..], out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            if out.len() > max_total {
                return Err(too_big(out.len(), max_total));
            }
            let consumed_now = (z.total_in() - base_in) as usize;
            match status {
                Status::StreamEnd => {
                    self.stream_ended = true;
                    return Ok(());
                }
                Status::Ok | Status::BufError => {
                    let progress = consumed_now != consumed || out.len() != before_out;
                    if consumed_now == compressed.len() && out.len() < out.capacity() {
                        return Ok(());
                    }
                    if !progress && out.len() < out.capacity() {
                        return Err(ProtocolError::InvalidCompressedData);
                    }
                }
            }
        }
    }

    /// Ends the message: feeds the stripped `00 00 ff ff` tail, then resets
    /// the stream if the peer does not take over context (or ended it).
    /// A message without a single compressed byte (RFC 7692 §7.2.3.6 sends
    /// an empty one as `00`, but a frame with RSV1 and no payload reaches
    /// here too) is empty, and the tail is not fed: alone it would start a
    /// stored block and leave the stream inside it, failing the next
    /// message.
    ///
    /// # Errors
    /// As [`decompress`](Self::decompress): 1009 past `max_total`, 1007 for a corrupt stream.
    pub fn finish(&mut self, out: &mut Vec<u8>, max_total: usize) -> Result<(), ProtocolError> {
        let r = if self.fed {
            self.decompress(&TAIL, out, max_total)
        } else {
            Ok(())
        };
        self.fed = false;
        if self.no_context_takeover || self.stream_ended || r.is_err() {
            if let Some(z) = &mut self.stream {
                z.reset(false);
            }
            self.stream_ended = false;
        }
        r
    }
}

fn too_big(size: usize, limit: usize) -> ProtocolError {
    ProtocolError::MessageTooBig {
        size: size as u64,
        limit,
        inflated: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }

    fn inflate(inf: &mut Inflater, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        inf.decompress(data, &mut out, 1 << 20).unwrap();
        inf.finish(&mut out, 1 << 20).unwrap();
        out
    }

    #[test]
    fn rfc_7692_7_2_3_1_hello() {
        let mut d = Deflater::new(params(), Role::Server, 6);
        let mut out = Vec::new();
        d.compress(b"Hello", &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut i = Inflater::new(params(), Role::Client);
        assert_eq!(inflate(&mut i, &out), b"Hello");
        // §7.2.3.2: the second "Hello" with context takeover.
        out.clear();
        d.compress(b"Hello", &mut out);
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        assert_eq!(inflate(&mut i, &out), b"Hello");
    }

    #[test]
    fn rfc_7692_7_2_3_3_uncompressed_block_and_split() {
        let mut i = Inflater::new(params(), Role::Server);
        let data = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate(&mut i, &data), b"Hello");
        // §7.2.3.1 split over two frames: f2 48 cd | c9 c9 07 00
        let mut out = Vec::new();
        i.decompress(&[0xf2, 0x48, 0xcd], &mut out, 100).unwrap();
        i.decompress(&[0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
            .unwrap();
        i.finish(&mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn round_trip_with_and_without_context_takeover() {
        for nct in [false, true] {
            let p = DeflateParams {
                server_no_context_takeover: nct,
                client_no_context_takeover: nct,
                server_max_window_bits: 10,
                client_max_window_bits: 9,
            };
            let mut d = Deflater::new(p, Role::Client, 1);
            let mut i = Inflater::new(p, Role::Server);
            let mut sizes = Vec::new();
            for n in 0..50 {
                let msg = format!(
                    "{{\"seq\": {n}, \"payload\": \"{}\"}}",
                    "abcdefgh".repeat(n % 7 * 20)
                );
                let mut c = Vec::new();
                d.compress(msg.as_bytes(), &mut c);
                sizes.push(c.len());
                assert_eq!(inflate(&mut i, &c), msg.as_bytes());
            }
            let mut c = Vec::new();
            d.compress(b"", &mut c);
            assert_eq!(inflate(&mut i, &c), b"");
        }
    }

    #[test]
    fn corrupt_data_is_1007() {
        let mut i = Inflater::new(params(), Role::Server);
        let mut out = Vec::new();
        let e = i
            .decompress(&[0xff, 0xff, 0xff, 0xff], &mut out, 1000)
            .and_then(|_| i.finish(&mut out, 1000));
        assert_eq!(e, Err(ProtocolError::InvalidCompressedData));
        assert_eq!(ProtocolError::InvalidCompressedData.close_code().0, 1007);
    }

    #[test]
    fn bomb_is_capped() {
        let mut d = Deflater::new(params(), Role::Client, 9);
        let big = vec![0u8; 8 << 20];
        let mut c = Vec::new();
        d.compress(&big, &mut c);
        assert!(c.len() < 16 * 1024, "{}", c.len());
        // Deflate tops out near 1032:1, so 4 KiB of it is ~4 MiB of zeros.
        let c = &c[..4096.min(c.len())];
        let limit = 1 << 20;
        let mut i = Inflater::new(params(), Role::Server);
        let mut out = Vec::new();
        let r = i.decompress(c, &mut out, limit);
        assert!(
            matches!(r, Err(ProtocolError::MessageTooBig { .. })),
            "{r:?}"
        );
        assert!(out.capacity() <= limit + 64 * 1024, "{}", out.capacity());
    }

    pub(super) fn neg(v: &[&str], opts: &CompressionOptions) -> Option<(DeflateParams, String)> {
        let vals: Vec<&[u8]> = v.iter().map(|s| s.as_bytes()).collect();
        negotiate_server(&vals, opts).unwrap()
    }

    #[test]
    fn server_negotiation() {
        let o = CompressionOptions::default();
        let (p, r) = neg(&["permessage-deflate"], &o).unwrap();
        assert_eq!(r, "permessage-deflate");
        assert_eq!(p, params());
        let (p, r) = neg(&["permessage-deflate; client_max_window_bits"], &o).unwrap();
        assert_eq!(
            (p.client_max_window_bits, r.as_str()),
            (15, "permessage-deflate")
        );
        let (p, r) = neg(
            &["permessage-deflate; client_max_window_bits=10; server_max_window_bits=12"],
            &o,
        )
        .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"
        );
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (12, 10)
        );
        // Multiple offers and headers: first acceptable one wins.
        let (_, r) = neg(
            &[
                "x-webkit-deflate-frame, permessage-deflate; foo=1",
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover",
            ],
            &o,
        )
        .unwrap();
        assert_eq!(r, "permessage-deflate; server_no_context_takeover");
        // Duplicates / invalid values declined.
        for bad in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; unknown",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=\"", // malformed header
        ] {
            assert_eq!(neg(&[bad], &o), None, "{bad}");
        }
        // Quoted values are fine.
        assert!(neg(&["permessage-deflate; server_max_window_bits=\"10\""], &o).is_some());
        // Server options.
        let o2 = CompressionOptions {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 11,
            client_max_window_bits: 12,
            ..CompressionOptions::default()
        };
        let (p, r) = neg(&["permessage-deflate; client_max_window_bits"], &o2).unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=12"
        );
        assert!(p.server_no_context_takeover && p.client_no_context_takeover);
        // Client did not offer client_max_window_bits: we must not send it.
        let (_, r) = neg(&["permessage-deflate"], &o2).unwrap();
        assert!(!r.contains("client_max_window_bits"));
        assert_eq!(neg(&["x-foo"], &o), None);
        assert_eq!(neg(&[], &o), None);
    }

    #[test]
    fn client_negotiation() {
        let o = CompressionOptions::default();
        assert_eq!(
            client_offer(&o),
            "permessage-deflate; client_max_window_bits"
        );
        let (p, r) = neg(&[&client_offer(&o)], &o).unwrap();
        assert_eq!(client_accept(&r, &o).unwrap(), p);
        let o2 = CompressionOptions {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 11,
            ..CompressionOptions::default()
        };
        let offer = client_offer(&o2);
        assert_eq!(
            offer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11"
        );
        let (p, r) = neg(&[&offer], &CompressionOptions::default()).unwrap();
        assert_eq!(client_accept(&r, &o2).unwrap(), p);
        assert_eq!(p.server_max_window_bits, 10);
        assert_eq!(p.client_max_window_bits, 11);
        for bad in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate, permessage-deflate",
            "x-foo",
            "",
        ] {
            assert!(client_accept(bad, &o).is_err(), "{bad}");
        }
        assert!(client_accept("permessage-deflate; client_max_window_bits=12", &o2).is_err());
        assert!(client_accept(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
            &o2
        )
        .is_err());
        assert!(client_accept("permessage-deflate; server_max_window_bits=10", &o2).is_err());
    }
}

/// Negotiation edges and the window the compressor keeps to, checked
/// with an inflater of exactly the negotiated window.
#[cfg(test)]
mod edge_tests {
    use super::tests::neg;
    use super::*;

    #[test]
    fn negotiation_edges_and_client_round_trips() {
        let o = CompressionOptions::default();
        // A value-less client_max_window_bits, duplicates, a quoted empty
        // value, a mixed-case name.
        let cases: &[(&str, Option<&str>)] = &[
            (
                "permessage-deflate;client_max_window_bits",
                Some("permessage-deflate"),
            ),
            (
                "permessage-deflate; client_max_window_bits=8",
                Some("permessage-deflate; client_max_window_bits=8"),
            ),
            (
                "permessage-deflate; server_max_window_bits=9",
                Some("permessage-deflate; server_max_window_bits=9"),
            ),
            (
                "permessage-deflate; client_max_window_bits; client_max_window_bits",
                None,
            ),
            ("permessage-deflate; server_no_context_takeover=\"\"", None),
            ("PerMessage-Deflate", Some("permessage-deflate")),
            // Parameter names in any case (HTTP tokens, RFC 9110 §5.6.6);
            // one repeated in another case is still repeated.
            (
                "permessage-deflate; SERVER_NO_CONTEXT_TAKEOVER; Client_Max_Window_Bits=10",
                Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=10"),
            ),
            (
                "permessage-deflate; server_no_context_takeover; Server_No_Context_Takeover",
                None,
            ),
        ];
        for (offer, want) in cases {
            assert_eq!(neg(&[offer], &o).map(|x| x.1).as_deref(), *want, "{offer}");
        }
        // The client reads the server's answer's names in any case too.
        let co = CompressionOptions {
            client_max_window_bits: 12,
            ..CompressionOptions::default()
        };
        let p = client_accept(
            "permessage-deflate; Server_No_Context_Takeover; CLIENT_MAX_WINDOW_BITS=10",
            &co,
        )
        .expect("accepted");
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (15, 10)
        );
        assert!(client_accept(
            "permessage-deflate; client_max_window_bits=10; Client_Max_Window_Bits=10",
            &co
        )
        .is_err());
        // client side round trips against our own server with various options
        for sb in [9u8, 10, 15] {
            for cb in [8u8, 9, 12, 15] {
                for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
                    let co = CompressionOptions {
                        server_max_window_bits: sb,
                        client_max_window_bits: cb,
                        server_no_context_takeover: snct,
                        client_no_context_takeover: cnct,
                        ..CompressionOptions::default()
                    };
                    for so in [o.clone(), co.clone()] {
                        let offer = client_offer(&co);
                        let (p, r) = neg(&[&offer], &so).unwrap_or_else(|| panic!("{offer}"));
                        assert_eq!(client_accept(&r, &co).unwrap(), p, "{offer} -> {r}");
                    }
                }
            }
        }
    }

    fn inflate_in_small_steps(
        inf: &mut Decompress,
        data: &[u8],
    ) -> Result<Vec<u8>, flate2::DecompressError> {
        // Small output steps: back references must come from the window.
        let mut all = Vec::new();
        let base = inf.total_in();
        loop {
            let used = (inf.total_in() - base) as usize;
            let mut out = Vec::with_capacity(64);
            inf.decompress_vec(&data[used..], &mut out, FlushDecompress::Sync)?;
            let progressed = !out.is_empty() || (inf.total_in() - base) as usize != used;
            all.extend_from_slice(&out);
            if !progressed || ((inf.total_in() - base) as usize == data.len() && out.len() < 64) {
                return Ok(all);
            }
        }
    }

    /// 3000 pseudo-random bytes: a block that compresses only by a match
    /// with an earlier copy of itself.
    fn random_block() -> Vec<u8> {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let mut chunk = vec![0u8; 3000];
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x % 251) as u8;
        }
        chunk
    }

    /// What our compressor sends under a negotiated window must inflate
    /// with a peer inflater of exactly that window (RFC 7692 §7.1.2.1).
    #[test]
    fn compressor_respects_the_negotiated_window() {
        let chunk = random_block();
        // The same random block twice: a match 3000 bytes back.
        let msg = [chunk.clone(), chunk.clone(), chunk].concat();
        for bits in 9u8..=14 {
            for level in [0u32, 1, 2, 6, 9] {
                for nct in [false, true] {
                    let p = DeflateParams {
                        server_no_context_takeover: nct,
                        client_no_context_takeover: nct,
                        server_max_window_bits: bits,
                        client_max_window_bits: 15,
                    };
                    let mut d = Deflater::new(p, Role::Server, level);
                    let mut inf = Decompress::new_with_window_bits(false, bits);
                    for round in 0..3 {
                        let mut c = Vec::new();
                        d.compress(&msg, &mut c);
                        c.extend_from_slice(&TAIL);
                        let r = inflate_in_small_steps(&mut inf, &c);
                        assert!(
                            matches!(&r, Ok(out) if *out == msg),
                            "bits {bits} level {level} nct {nct} round {round}: {:?}",
                            r.as_ref().map(|o| o.len())
                        );
                        if nct {
                            inf.reset(false);
                        }
                    }
                }
            }
        }
    }

    /// The check above can fail: a 15-bit stream with a match 3000 bytes
    /// back does not inflate with a 9-bit window.
    #[test]
    fn a_15_bit_stream_fails_a_9_bit_inflater() {
        let chunk = random_block();
        let msg = [chunk.clone(), chunk].concat();
        let mut d = Deflater::new(
            DeflateParams {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
            },
            Role::Server,
            1,
        );
        let mut c = Vec::new();
        d.compress(&msg, &mut c);
        c.extend_from_slice(&TAIL);
        let mut inf = Decompress::new_with_window_bits(false, 9);
        let r = inflate_in_small_steps(&mut inf, &c);
        assert!(r.is_err(), "{:?}", r.map(|o| o.len()));
    }
}
