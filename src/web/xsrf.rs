//! Tornado's XSRF tokens (the `xsrf_cookies` setting): the `_xsrf` cookie
//! and the form field or header that must repeat it on every request that
//! is not `GET`, `HEAD` or `OPTIONS`.
//!
//! A token is 16 random bytes. The cookie and the form field carry it in
//! one of Tornado's two formats, and both are read in either:
//!
//! * version 1: the bytes in lowercase hex (32 characters);
//! * version 2 (the default since Tornado 3.2.2):
//!   `2|<mask>|<masked token>|<timestamp>`, the token XORed with a fresh
//!   random 4-byte mask (RFC 6455's masking) and both in hex, so the field
//!   differs on every page while it names the same token (no BREACH
//!   oracle for a compressed page).
//!
//! Decoding follows Tornado's `_decode_xsrf_token` rule for rule (but for
//! a timestamp written in digits outside ASCII, such as `١٢`, which
//! Python's `int()` reads and which is refused here; `xsrf_cases.rs`
//! holds 38 values decoded by Tornado), so a
//! cyclone application and a Tornado application behind the same domain
//! accept each other's `_xsrf` cookies and fields (checked against Tornado
//! in `tests/peers/interop_tornado_xsrf.py`).

use super::signed::{constant_time_eq, hex};
use crate::protocol::mask::apply_mask;

/// Which format `xsrf_token` writes (Tornado's `xsrf_cookie_version`
/// setting). Both are always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XsrfCookieVersion {
    /// The token in hex: the same text on every page.
    V1,
    /// The token masked afresh for every response (Tornado's default).
    #[default]
    V2,
}

/// A decoded token: its bytes, and the format and timestamp it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawToken {
    /// `None`: made for this request (no usable cookie came with it).
    pub(crate) version: Option<u32>,
    pub(crate) token: Vec<u8>,
    /// Seconds, as Python's `str(int(timestamp))` writes it (any size).
    pub(crate) timestamp: String,
}

/// Tornado's `_decode_xsrf_token`: `None` where it returns
/// `(None, None, None)`.
pub(crate) fn decode(s: &str, now_secs: u64) -> Option<RawToken> {
    match version_prefix(s) {
        Some((version, rest)) => {
            // Tornado splits the whole value on `|` into exactly four.
            if version != "2" {
                return None;
            }
            let mut parts = rest.split('|');
            let (mask, masked, timestamp) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let mask: [u8; 4] = unhex(mask)?.try_into().ok()?;
            let mut token = unhex(masked)?;
            apply_mask(&mut token, mask);
            Some(RawToken {
                version: Some(2),
                token,
                timestamp: python_int(timestamp)?,
            })
        }
        None => Some(RawToken {
            version: Some(1),
            // Not hex: the text itself is the token (Tornado's fallback).
            token: unhex(s).unwrap_or_else(|| s.as_bytes().to_vec()),
            // Version 1 has no timestamp: Tornado uses the current time.
            timestamp: now_secs.to_string(),
        }),
    }
}

/// A new random token, made when the request brought no usable cookie.
pub(crate) fn fresh(now_secs: u64) -> RawToken {
    let mut token = vec![0u8; 16];
    getrandom::fill(&mut token).expect("OS entropy source");
    RawToken {
        version: None,
        token,
        timestamp: now_secs.to_string(),
    }
}

/// The token as `xsrf_token` writes it (Tornado's `xsrf_token`).
pub(crate) fn encode(raw: &RawToken, version: XsrfCookieVersion) -> String {
    match version {
        XsrfCookieVersion::V1 => hex(&raw.token),
        XsrfCookieVersion::V2 => {
            let mut mask = [0u8; 4];
            getrandom::fill(&mut mask).expect("OS entropy source");
            encode_v2(raw, mask)
        }
    }
}

fn encode_v2(raw: &RawToken, mask: [u8; 4]) -> String {
    let mut masked = raw.token.clone();
    apply_mask(&mut masked, mask);
    format!("2|{}|{}|{}", hex(&mask), hex(&masked), raw.timestamp)
}

/// Why [`check`] refused a request: the message Tornado's `HTTPError(403,
/// ...)` logs.
pub(crate) fn check(submitted: Option<&str>, expected: &RawToken) -> Result<(), &'static str> {
    let submitted = submitted
        .filter(|s| !s.is_empty())
        .ok_or("'_xsrf' argument missing from POST")?;
    let token = decode(submitted, 0)
        .map(|t| t.token)
        .filter(|t| !t.is_empty())
        .ok_or("'_xsrf' argument has invalid format")?;
    if constant_time_eq(&token, &expected.token) {
        Ok(())
    } else {
        Err("XSRF cookie does not match POST argument")
    }
}

/// Tornado's `_signed_value_version_re`, `^([1-9][0-9]*)\|(.*)$` (`.`
/// stops at a newline): the version digits and what follows the `|`.
fn version_prefix(s: &str) -> Option<(&str, &str)> {
    let (version, rest) = s.split_once('|')?;
    let mut digits = version.bytes();
    let first_ok = matches!(digits.next(), Some(b'1'..=b'9'));
    // `$` also matches before a final newline.
    let line = rest.strip_suffix('\n').unwrap_or(rest);
    (first_ok && digits.all(|b| b.is_ascii_digit()) && !line.contains('\n'))
        .then_some((version, rest))
}

/// Python's `binascii.a2b_hex`: an even number of hex digits, either case.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    b.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Python's `str(int(s))` for ASCII text: surrounding whitespace, one
/// sign, and digits with single underscores between them; the result has
/// no leading zeros, no `+` and no `-0`. `None` where `int()` raises (and
/// for digits outside ASCII, which `int()` would take).
pub(crate) fn python_int(s: &str) -> Option<String> {
    let s = s.trim_matches(|c: char| c.is_whitespace());
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let b = digits.as_bytes();
    let well_formed = b.first()?.is_ascii_digit()
        && b.last()?.is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'_')
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    let plain: String = digits.chars().filter(|c| *c != '_').collect();
    let plain = plain.trim_start_matches('0');
    Some(match (plain.is_empty(), negative) {
        (true, _) => "0".to_string(),
        (false, true) => format!("-{plain}"),
        (false, false) => plain.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(token: &[u8], ts: &str) -> RawToken {
        RawToken {
            version: None,
            token: token.to_vec(),
            timestamp: ts.into(),
        }
    }

    #[test]
    fn version_2_round_trips_with_any_mask() {
        let t = raw(b"\x00\x01\xfe\xff sixteen bytes", "1700000000");
        let encoded = encode_v2(&t, [0xde, 0xad, 0xbe, 0xef]);
        assert!(encoded.starts_with("2|deadbeef|"), "{encoded}");
        assert!(encoded.ends_with("|1700000000"), "{encoded}");
        let back = decode(&encoded, 5).unwrap();
        assert_eq!(back.version, Some(2));
        assert_eq!(back.token, t.token);
        assert_eq!(back.timestamp, "1700000000");
        // A fresh mask every time, the same token underneath.
        let (a, b) = (
            encode(&t, XsrfCookieVersion::V2),
            encode(&t, XsrfCookieVersion::V2),
        );
        assert_eq!(decode(&a, 0).unwrap().token, decode(&b, 0).unwrap().token);
        assert_eq!(encode(&t, XsrfCookieVersion::V1), hex(&t.token));
    }

    #[test]
    fn a_known_tornado_token_decodes() {
        // Token 00..0f masked with 01020304: Tornado's _websocket_mask.
        let s = "2|01020304|0103010705070503090b090f0d0f0d0b|1700000000";
        let t = decode(s, 0).unwrap();
        assert_eq!(t.token, (0u8..16).collect::<Vec<_>>());
    }

    #[test]
    fn version_1_is_hex_or_else_the_text_itself() {
        let t = decode("00ff10", 42).unwrap();
        assert_eq!(
            (t.version, t.token, t.timestamp),
            (Some(1), vec![0, 255, 16], "42".into())
        );
        assert_eq!(decode("ABcd", 0).unwrap().token, vec![0xab, 0xcd]);
        for text in ["abc", "xyz1", "0x12", "not hex at all", "|2|a"] {
            assert_eq!(decode(text, 0).unwrap().token, text.as_bytes(), "{text}");
        }
    }

    #[test]
    fn broken_version_2_and_other_versions_are_nothing() {
        for s in [
            "2|0102030|00|1",     // odd mask
            "2|010203|00|1",      // three-byte mask
            "2|0102030405|00|1",  // five-byte mask
            "2|01020304|0|1",     // odd token
            "2|01020304|zz|1",    // not hex
            "2|01020304|00|x",    // timestamp not an int
            "2|01020304|00|1|",   // five fields
            "2|01020304|00",      // three fields
            "3|01020304|00|1",    // unknown version
            "10|01020304|00|1",   // unknown version
            "2|01020304|00|1_",   // underscore at the end
            "2|01020304|00|1__0", // double underscore
            "2|01020304|00|",     // empty timestamp
        ] {
            assert_eq!(decode(s, 0), None, "{s}");
        }
        // Not a version prefix: version 1 text.
        for s in ["02|01020304|00|1", "2x|a", "|2"] {
            assert_eq!(decode(s, 0).unwrap().version, Some(1), "{s}");
        }
        let empty = decode("2|01020304||1", 0).unwrap();
        assert!(empty.token.is_empty());
    }

    #[test]
    fn timestamps_read_as_python_int_reads_them() {
        for (s, v) in [
            ("17", "17"),
            (" 17 ", "17"),
            ("+17", "17"),
            ("-17", "-17"),
            ("0017", "17"),
            ("-0", "0"),
            ("1_000", "1000"),
            (
                "\t99999999999999999999999999\n",
                "99999999999999999999999999",
            ),
        ] {
            assert_eq!(python_int(s).as_deref(), Some(v), "{s:?}");
        }
        for s in [
            "", " ", "+", "-", "_1", "1_", "1__0", "1 0", "0x10", "1.0", "--1", "+-1",
        ] {
            assert_eq!(python_int(s), None, "{s:?}");
        }
    }

    #[test]
    fn check_says_what_tornado_logs() {
        let expected = raw(&[7; 16], "1");
        let v1 = hex(&expected.token);
        let v2 = encode(&expected, XsrfCookieVersion::V2);
        assert_eq!(check(Some(&v1), &expected), Ok(()));
        assert_eq!(check(Some(&v2), &expected), Ok(()));
        assert_eq!(
            check(None, &expected),
            Err("'_xsrf' argument missing from POST")
        );
        assert_eq!(
            check(Some(""), &expected),
            Err("'_xsrf' argument missing from POST")
        );
        for bad in ["3|a|b|c", "2|01020304||1"] {
            assert_eq!(
                check(Some(bad), &expected),
                Err("'_xsrf' argument has invalid format")
            );
        }
        let other = encode(&raw(&[8; 16], "1"), XsrfCookieVersion::V2);
        for wrong in [other.as_str(), "0707", "guess"] {
            assert_eq!(
                check(Some(wrong), &expected),
                Err("XSRF cookie does not match POST argument"),
                "{wrong}"
            );
        }
    }

    #[test]
    fn fresh_tokens_are_random() {
        let (a, b) = (fresh(1), fresh(1));
        assert_eq!(a.token.len(), 16);
        assert_ne!(a.token, b.token);
        assert_eq!(a.version, None);
    }

    #[test]
    fn decodes_as_tornado_decodes() {
        // `xsrf_cases.rs`. The one difference: a timestamp of digits outside
        // ASCII, which Python's `int()` reads (see `python_int`).
        let mut outside_ascii = 0;
        for &(s, version, token, timestamp) in super::super::xsrf_cases::CASES {
            let got = decode(s, 12345).map(|r| {
                let ts = if r.version == Some(1) {
                    assert_eq!(r.timestamp, "12345");
                    "NOW".to_string()
                } else {
                    r.timestamp
                };
                (r.version, hex(&r.token), ts)
            });
            let want = token.map(|t| (version, t.to_string(), timestamp.unwrap().to_string()));
            if got != want {
                assert!(
                    got.is_none() && !s.is_ascii(),
                    "{s:?}: {got:?}, Tornado {want:?}"
                );
                outside_ascii += 1;
            }
        }
        assert_eq!(outside_ascii, 1);
    }
}
