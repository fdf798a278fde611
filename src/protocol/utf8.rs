//! UTF-8 validation for text messages: [`from_utf8`] for a whole message
//! that arrived in one frame, [`Utf8Validator`] for text split across
//! frames or inflate chunks, where a code point may straddle two calls,
//! and [`into_string`] to turn such a message into a `String`.
//!
//! All three give std's answers. Inputs of [`SIMD_MIN`] bytes
//! or more go through `simdutf8` (AVX2 or SSE 4.2, chosen at run time;
//! its `compat` flavour reports errors through std's own validator, so the
//! error position and the "incomplete at the end" case are std's). Criterion,
//! `cargo bench --bench protocol -- utf8`, pinned to one core: multi-byte
//! text 1 KiB 806 -> 69 ns, 64 KiB 62.6 -> 4.5 µs; ASCII 1 KiB 41 -> 12 ns,
//! 64 B 8.4 -> 4.4 ns. Below 64 bytes std is as fast or faster (32 B of
//! ASCII 5.4 ns against 7.9), so short messages stay with std.

/// From this many bytes on, validation goes through `simdutf8`.
pub const SIMD_MIN: usize = 64;

/// `std::str::from_utf8(bytes).ok()`, through `simdutf8` from
/// [`SIMD_MIN`] bytes on.
#[inline]
pub fn from_utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.len() < SIMD_MIN {
        std::str::from_utf8(bytes).ok()
    } else {
        simdutf8::basic::from_utf8(bytes).ok()
    }
}

/// `String::from_utf8(bytes).ok()` for a text message assembled from
/// fragments or inflated (already checked by a [`Utf8Validator`]; making a
/// `String` without `unsafe` takes one more check). Text that has a
/// non-ASCII byte in its first [`SIMD_MIN`] bytes is checked through
/// `simdutf8` and copied into a new `String`; anything else (short, or
/// starting with ASCII, most likely all ASCII) is checked in place by std,
/// which is fastest there. Criterion `utf8/string_*`, pinned: multi-byte
/// text of 64 B, 1 KiB and 64 KiB 37.4 ns, 584 ns and 42.7 µs in place
/// against 16.6 ns, 95 ns and 5.3 µs through here; ASCII pays the 64-byte
/// look (64 B 5.4 -> 10.0 ns, 1 KiB and 64 KiB within noise), where always
/// checking through simdutf8 and copying cost more (1 KiB 29.9 -> 43.7 ns,
/// 64 KiB 1.31 -> 2.21 µs).
pub fn into_string(bytes: Vec<u8>) -> Option<String> {
    if bytes.len() >= SIMD_MIN && !bytes[..SIMD_MIN].is_ascii() {
        from_utf8(&bytes).map(str::to_owned)
    } else {
        String::from_utf8(bytes).ok()
    }
}

/// On failure, `(valid_up_to, error_len)` as `std::str::Utf8Error` gives
/// them: `error_len` is `None` when the input ends inside a code point
/// whose bytes so far are a valid prefix.
#[inline]
fn check(bytes: &[u8]) -> Result<(), (usize, Option<usize>)> {
    if bytes.len() < SIMD_MIN {
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) => Err((e.valid_up_to(), e.error_len())),
        }
    } else {
        match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) => Err((e.valid_up_to(), e.error_len())),
        }
    }
}

/// Streaming UTF-8 validator: 5 bytes of state (an incomplete code point
/// carried between calls).
///
/// Fails at the earliest byte that makes the input invalid, also for a
/// truncated prefix: `F4 90`, `ED A0`, `E0 80`, `C0`, `F5` fail as soon as
/// they are fed, as Autobahn's 6.x "fail fast" cases want. This relies on
/// `std::str::from_utf8`, which checks the second byte of a sequence
/// against its lead's range before it reports "incomplete input"
/// (`Utf8Error::error_len() == None`); `simdutf8::compat` hands its
/// errors to std's validator from the failing block on, so long chunks
/// report the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    pending: [u8; 4],
    len: u8,
}

/// Length of the sequence a valid lead byte starts.
#[inline]
fn width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    /// A validator with nothing pending.
    pub const fn new() -> Utf8Validator {
        Utf8Validator {
            pending: [0; 4],
            len: 0,
        }
    }

    /// Validates the next chunk. `Err(())` as soon as the bytes seen so far
    /// can no longer be a prefix of valid UTF-8; after an error the
    /// validator's state is unspecified (call [`reset`](Self::reset)).
    #[allow(clippy::result_unit_err)]
    ///
    /// # Errors
    /// `Err(())` at the first byte that makes the text invalid UTF-8, even when the code point is split across calls.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ()> {
        if self.len > 0 {
            let have = self.len as usize;
            let need = width(self.pending[0]);
            let take = (need - have).min(bytes.len());
            self.pending[have..have + take].copy_from_slice(&bytes[..take]);
            self.len += take as u8;
            bytes = &bytes[take..];
            match std::str::from_utf8(&self.pending[..self.len as usize]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_none() => return Ok(()), // still short, prefix valid
                Err(_) => return Err(()),
            }
        }
        match check(bytes) {
            Ok(()) => Ok(()),
            Err((valid_up_to, error_len)) => match error_len {
                Some(_) => Err(()),
                None => {
                    let tail = &bytes[valid_up_to..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    self.len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// End of message: `Err(())` if a code point is incomplete.
    #[allow(clippy::result_unit_err)]
    ///
    /// # Errors
    /// `Err(())` when the text ends inside a multi-byte sequence.
    pub fn finish(&self) -> Result<(), ()> {
        if self.len == 0 {
            Ok(())
        } else {
            Err(())
        }
    }

    /// Forgets any pending bytes (start of a new message).
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(b: &[u8]) -> bool {
        let mut v = Utf8Validator::new();
        v.feed(b).is_ok() && v.finish().is_ok()
    }

    fn bytewise(b: &[u8]) -> bool {
        let mut v = Utf8Validator::new();
        b.iter().all(|x| v.feed(std::slice::from_ref(x)).is_ok()) && v.finish().is_ok()
    }

    fn split_all(b: &[u8]) -> bool {
        let expect = std::str::from_utf8(b).is_ok();
        for i in 0..=b.len() {
            for j in i..=b.len() {
                let mut v = Utf8Validator::new();
                let ok = v.feed(&b[..i]).is_ok()
                    && v.feed(&b[i..j]).is_ok()
                    && v.feed(&b[j..]).is_ok()
                    && v.finish().is_ok();
                assert_eq!(ok, expect, "{b:02x?} split at {i},{j}");
            }
        }
        expect
    }

    fn check(b: &[u8], valid: bool) {
        assert_eq!(
            std::str::from_utf8(b).is_ok(),
            valid,
            "std disagrees on {b:02x?}"
        );
        assert_eq!(whole(b), valid, "whole {b:02x?}");
        assert_eq!(bytewise(b), valid, "bytewise {b:02x?}");
        assert_eq!(split_all(b), valid);
    }

    #[test]
    fn autobahn_6_like_vectors() {
        let valid: &[&[u8]] = &[
            b"",
            b"Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!",
            "κόσμε".as_bytes(),
            b"\x00",
            b"\xC2\x80",
            b"\xE0\xA0\x80",
            b"\xF0\x90\x80\x80",
            b"\x7F",
            b"\xDF\xBF",
            b"\xEF\xBF\xBF",
            b"\xF4\x8F\xBF\xBF",
            b"\xED\x9F\xBF",
            b"\xEE\x80\x80",
            b"\xEF\xBF\xBD",
            b"\xF0\x9D\x84\x9E",
        ];
        for v in valid {
            check(v, true);
        }
        let invalid: &[&[u8]] = &[
            b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80edited",
            b"\xF8\x88\x80\x80\x80",
            b"\xF4\x90\x80\x80",
            b"\x80",
            b"\xBF",
            b"\xC0\xAF",
            b"\xE0\x80\xAF",
            b"\xF0\x80\x80\xAF",
            b"\xC1\xBF",
            b"\xED\xA0\x80",
            b"\xED\xAD\xBF",
            b"\xED\xBF\xBF",
            b"\xED\xA0\x80\xED\xB0\x80",
            b"\xFE",
            b"\xFF",
            b"\xC0 ",
            b"\xE0\x80",
            b"\xF7\xBF\xBF",
            b"\xC2",
            b"\xE0\xA0",
            b"\xF0\x90\x80",
            b"abc\xF0\x90\x80",
            b"\xEF\xBF\xBF\xBF",
        ];
        for v in invalid {
            check(v, false);
        }
    }

    #[test]
    fn fails_fast_on_truncated_prefix() {
        for bad in [
            &b"\xF4\x90"[..],
            b"\xED\xA0",
            b"\xE0\x80",
            b"\xF0\x80",
            b"\xC0",
            b"\xC1",
            b"\xF5",
            b"\xFF",
        ] {
            let mut v = Utf8Validator::new();
            assert!(v.feed(bad).is_err(), "{bad:02x?} whole");
            let mut v = Utf8Validator::new();
            let mut failed = false;
            for b in bad {
                if v.feed(std::slice::from_ref(b)).is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "{bad:02x?} bytewise");
        }
        // Valid prefixes are not failures yet.
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xF4\x8F").is_ok());
        assert!(v.finish().is_err());
        assert!(v.feed(b"\xBF\xBF").is_ok());
        assert!(v.finish().is_ok());
    }

    #[test]
    fn into_string_agrees_with_std() {
        let mixed = "héllo wörld ✓ 😀 ".repeat(8);
        let ascii = "hello world, ".repeat(12);
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for base in [mixed.as_bytes(), ascii.as_bytes()] {
            for len in [0, 1, 63, 64, 65, 100, base.len()] {
                let v = base[..len].to_vec();
                inputs.push(v.clone());
                // A bad byte at the start, inside the first 64 bytes and after them.
                for at in [0, 10, 63, 64, 90] {
                    if at < v.len() {
                        let mut bad = v.clone();
                        bad[at] = 0xFF;
                        inputs.push(bad);
                    }
                }
            }
        }
        // ASCII start, multi-byte later; multi-byte start, ASCII later.
        inputs.push([ascii.as_bytes(), mixed.as_bytes()].concat());
        inputs.push([mixed.as_bytes(), ascii.as_bytes()].concat());
        for v in inputs {
            assert_eq!(
                into_string(v.clone()),
                String::from_utf8(v.clone()).ok(),
                "{v:?}"
            );
        }
    }

    /// Valid and invalid sequences (complete, truncated, overlong,
    /// surrogate, out of range) inside long text, so that the input is at
    /// least [`SIMD_MIN`] bytes and goes through simdutf8, at every offset
    /// across a 64-byte block boundary, whole and split around the sequence.
    #[test]
    fn long_inputs_agree_with_std_at_every_offset() {
        let vectors: &[&[u8]] = &[
            b"\xC2\xB5",
            b"\xF0\x9D\x84\x9E",
            b"\xEF\xBF\xBD",
            b"\xED\xA0\x80",
            b"\xF4\x90\x80\x80",
            b"\xC0\xAF",
            b"\xE0\x80\xAF",
            b"\x80",
            b"\xFF",
            b"\xF5",
            b"\xC2",
            b"\xE0\xA0",
            b"\xF0\x90\x80",
            b"\xF4\x90",
            b"\xED\xA0",
        ];
        let fill = "héllo wörld ✓ 😀 ascii-run-of-plain-text ".repeat(8);
        let fill = fill.as_bytes();
        for v in vectors {
            for at in 0..=140usize {
                // Text before `at` cut back to a code point boundary.
                let mut pre = at.min(fill.len());
                while pre > 0 && (fill[pre] & 0xC0) == 0x80 {
                    pre -= 1;
                }
                for tail in [0usize, 1, 70] {
                    let mut b = fill[..pre].to_vec();
                    b.extend_from_slice(v);
                    b.extend(std::iter::repeat_n(b'x', tail));
                    let expect = std::str::from_utf8(&b).is_ok();
                    assert_eq!(
                        from_utf8(&b).is_some(),
                        expect,
                        "from_utf8 {at} {tail} {v:02x?}"
                    );
                    assert_eq!(whole(&b), expect, "whole {at} {tail} {v:02x?}");
                    // Split around the vector: before it, inside it, after it.
                    for cut in pre.saturating_sub(2)..=(pre + v.len() + 1).min(b.len()) {
                        let mut w = Utf8Validator::new();
                        let ok = w.feed(&b[..cut]).is_ok()
                            && w.feed(&b[cut..]).is_ok()
                            && w.finish().is_ok();
                        assert_eq!(ok, expect, "split {cut} of {at} {tail} {v:02x?}");
                    }
                    // A chunk of 64+ bytes that ends in a bad truncated prefix
                    // fails when it is fed, not only at the end of the message.
                    if tail == 0 && b.len() >= SIMD_MIN {
                        let prefix_bad = std::str::from_utf8(&b)
                            .err()
                            .is_some_and(|e| e.error_len().is_some());
                        let mut w = Utf8Validator::new();
                        assert_eq!(w.feed(&b).is_err(), prefix_bad, "fail fast {at} {v:02x?}");
                    }
                }
            }
        }
    }

    #[test]
    fn all_two_and_three_byte_prefixes_agree_with_std() {
        for a in 0u8..=255 {
            for b in 0u8..=255 {
                let s = [a, b];
                let mut v = Utf8Validator::new();
                let whole_ok = v.feed(&s).is_ok();
                let mut w = Utf8Validator::new();
                let split_ok = w.feed(&s[..1]).is_ok() && w.feed(&s[1..]).is_ok();
                assert_eq!(whole_ok, split_ok, "{s:02x?}");
                if whole_ok {
                    assert_eq!(v.finish().is_ok(), std::str::from_utf8(&s).is_ok());
                }
            }
        }
    }
}
