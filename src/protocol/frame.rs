//! Frame header codec (RFC 6455 §5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! ```
//!
//! Parsing consumes nothing until the whole header (≤ 14 bytes) is there;
//! policy (reserved bits, masks, limits) is the session's business.
//! Non-minimal length encodings ("the minimal number of bytes MUST be used",
//! RFC 6455 §5.2) are accepted, as tungstenite and browsers do.

use super::mask::apply_mask;
use super::opcode::OpCode;

/// A decoded frame header, as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: final fragment of a message.
    pub fin: bool,
    /// RSV1 (permessage-deflate's "compressed" bit, RFC 7692 §6).
    pub rsv1: bool,
    /// RSV2, unused by any extension we know.
    pub rsv2: bool,
    /// RSV3, unused by any extension we know.
    pub rsv3: bool,
    /// The raw 4-bit opcode (reserved values included; see [`OpCode::from_u8`]).
    pub opcode: u8,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length. A 64-bit length with its most significant bit set is
    /// returned as is; the session rejects it (RFC 6455 §5.2).
    pub payload_len: u64,
}

/// Length of a header for a payload of `payload_len` bytes.
#[inline]
pub fn header_len(payload_len: u64, masked: bool) -> usize {
    let base = match payload_len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    if masked {
        base + 4
    } else {
        base
    }
}

impl FrameHeader {
    /// Parses a header at the start of `buf`. `None` when `buf` does not yet
    /// hold the whole header; otherwise the header and its length in bytes.
    #[inline]
    pub fn parse(buf: &[u8]) -> Option<(FrameHeader, usize)> {
        if buf.len() < 2 {
            return None;
        }
        let (b0, b1) = (buf[0], buf[1]);
        let len7 = b1 & 0x7f;
        let masked = b1 & 0x80 != 0;
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let hlen = 2 + ext + if masked { 4 } else { 0 };
        if buf.len() < hlen {
            return None;
        }
        let payload_len = match len7 {
            126 => u16::from_be_bytes([buf[2], buf[3]]) as u64,
            127 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&buf[2..10]);
                u64::from_be_bytes(a)
            }
            n => n as u64,
        };
        let mask = if masked {
            let m = &buf[2 + ext..hlen];
            Some([m[0], m[1], m[2], m[3]])
        } else {
            None
        };
        Some((
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode: b0 & 0x0f,
                mask,
                payload_len,
            },
            hlen,
        ))
    }

    /// Appends the encoded header to `out`, using the shortest length form.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut hdr = [0u8; MAX_HEADER_LEN];
        let n = self.encode_into(&mut hdr);
        out.extend_from_slice(&hdr[..n]);
    }

    /// Writes the encoded header into `hdr`; returns its length. A fixed
    /// array instead of a `Vec`: one bounds-free store per field and a
    /// single append by the caller.
    #[inline]
    pub fn encode_into(&self, hdr: &mut [u8; MAX_HEADER_LEN]) -> usize {
        hdr[0] = (self.fin as u8) << 7
            | (self.rsv1 as u8) << 6
            | (self.rsv2 as u8) << 5
            | (self.rsv3 as u8) << 4
            | (self.opcode & 0x0f);
        let mbit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = match self.payload_len {
            len @ 0..=125 => {
                hdr[1] = mbit | len as u8;
                2
            }
            len @ 126..=65535 => {
                hdr[1] = mbit | 126;
                hdr[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                hdr[1] = mbit | 127;
                hdr[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(m) = self.mask {
            hdr[n..n + 4].copy_from_slice(&m);
            n += 4;
        }
        n
    }
}

/// The longest frame header: 2 bytes, a 64-bit length and a masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// Appends a whole frame (header, then the payload masked with `mask` if
/// given) to `out`, reserving once.
#[inline]
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    if mask.is_none() && payload.len() <= 125 {
        // A server's small frame: a two-byte header of constant size, so
        // both stores are inline rather than a `memcpy` call.
        let b0 = (fin as u8) << 7 | (rsv1 as u8) << 6 | opcode.as_u8();
        out.reserve(2 + payload.len());
        out.extend_from_slice(&[b0, payload.len() as u8]);
        out.extend_from_slice(payload);
        return;
    }
    let mut hdr = [0u8; MAX_HEADER_LEN];
    let n = FrameHeader {
        fin,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode: opcode.as_u8(),
        mask,
        payload_len: payload.len() as u64,
    }
    .encode_into(&mut hdr);
    out.reserve(n + payload.len());
    out.extend_from_slice(&hdr[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_bytewise(bytes: &[u8]) -> (FrameHeader, usize) {
        for n in 0..bytes.len() {
            if let Some(r) = FrameHeader::parse(&bytes[..n]) {
                return r;
            }
        }
        FrameHeader::parse(bytes).expect("complete")
    }

    #[test]
    fn rfc_5_7_single_frame_unmasked() {
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = parse_bytewise(&wire);
        assert!(FrameHeader::parse(&wire[..1]).is_none());
        assert_eq!(n, 2);
        assert!(h.fin && !h.rsv1 && h.mask.is_none());
        assert_eq!(h.opcode, 1);
        assert_eq!(h.payload_len, 5);
        let mut out = Vec::new();
        encode_frame(&mut out, true, false, OpCode::Text, b"Hello", None);
        assert_eq!(out, wire);
    }

    #[test]
    fn rfc_5_7_single_frame_masked() {
        let wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = parse_bytewise(&wire);
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let mut payload = wire[n..].to_vec();
        apply_mask(&mut payload, h.mask.unwrap());
        assert_eq!(payload, b"Hello");
        let mut out = Vec::new();
        encode_frame(&mut out, true, false, OpCode::Text, b"Hello", h.mask);
        assert_eq!(out, wire);
    }

    #[test]
    fn rfc_5_7_fragmented_and_ping() {
        let mut out = Vec::new();
        encode_frame(&mut out, false, false, OpCode::Text, b"Hel", None);
        assert_eq!(out, [0x01, 0x03, 0x48, 0x65, 0x6c]);
        out.clear();
        encode_frame(&mut out, true, false, OpCode::Continuation, b"lo", None);
        assert_eq!(out, [0x80, 0x02, 0x6c, 0x6f]);
        out.clear();
        encode_frame(&mut out, true, false, OpCode::Ping, b"Hello", None);
        assert_eq!(out, [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let (h, _) = FrameHeader::parse(&[0x01, 0x03]).unwrap();
        assert!(!h.fin);
        assert_eq!(h.opcode, 1);
        let (h, _) = FrameHeader::parse(&[0x80, 0x02]).unwrap();
        assert!(h.fin);
        assert_eq!(h.opcode, 0);
    }

    #[test]
    fn rfc_5_7_long_binary_headers() {
        let mut out = Vec::new();
        encode_frame(&mut out, true, false, OpCode::Binary, &[0u8; 256], None);
        assert_eq!(&out[..4], &[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
        let (h, n) = parse_bytewise(&out[..4]);
        assert_eq!((h.payload_len, n), (256, 4));

        out.clear();
        encode_frame(
            &mut out,
            true,
            false,
            OpCode::Binary,
            &vec![0u8; 65536],
            None,
        );
        assert_eq!(&out[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        let (h, n) = parse_bytewise(&out[..10]);
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn all_length_forms_round_trip() {
        for &len in &[0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40, u64::MAX] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = FrameHeader {
                    fin: len % 2 == 0,
                    rsv1: true,
                    rsv2: false,
                    rsv3: true,
                    opcode: 0xB,
                    mask,
                    payload_len: len,
                };
                let mut out = Vec::new();
                h.encode(&mut out);
                assert_eq!(out.len(), header_len(len, mask.is_some()));
                assert_eq!(parse_bytewise(&out), (h, out.len()));
                for n in 0..out.len() {
                    assert!(FrameHeader::parse(&out[..n]).is_none());
                }
            }
        }
    }
}
