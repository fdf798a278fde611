//! Signed values: Tornado's `create_signed_value` and
//! `decode_signed_value`, the format behind `set_secure_cookie` and
//! `get_secure_cookie` (Tornado 6.3 renamed them `set_signed_cookie` and
//! `get_signed_cookie`).
//!
//! The strings are Tornado's, byte for byte: a cookie signed by a Tornado
//! application decodes here with the same `cookie_secret`, and the other
//! way round, so a Tornado site and a cyclone service can share a login.
//!
//! - **Version 2** (what is written): `2|1:0|10:<timestamp>|<n>:<name>|<n>:<base64 value>|<signature>`,
//!   length-prefixed fields and an HMAC-SHA256 (hex) of everything before
//!   the signature, so no part can move into another.
//! - **Version 1** (read, as Tornado reads it by default):
//!   `<base64 value>|<timestamp>|<HMAC-SHA1 hex of name, value, timestamp>`,
//!   with Tornado's checks against digits moved from the value into the
//!   timestamp (no timestamp more than 31 days ahead, none with a leading
//!   zero).
//!
//! Not supported: Tornado's dictionary of secrets with `key_version` (key
//! rotation); a value with a key version other than 0 is refused.
//!
//! The value is signed, not encrypted: anyone holding the cookie can read
//! it (base64). Signatures are compared in constant time.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha2::{Digest, Sha256};

/// How long a signed value stays valid by default, in days (Tornado's
/// `max_age_days=31`).
pub const DEFAULT_MAX_AGE_DAYS: f64 = 31.0;

/// Signs and timestamps `value` under `name` (Tornado's
/// `create_signed_value(secret, name, value)`, version 2): the result can
/// only be produced by someone holding `secret`, and
/// [`decode_signed_value`] gives `value` back for the same `secret` and
/// `name` for [`DEFAULT_MAX_AGE_DAYS`].
///
/// ```
/// use cyclone::web::{create_signed_value, decode_signed_value};
///
/// let s = create_signed_value("my secret", "user", b"bob");
/// assert!(s.starts_with("2|1:0|10:"));
/// assert_eq!(decode_signed_value("my secret", "user", &s).as_deref(), Some(&b"bob"[..]));
/// assert_eq!(decode_signed_value("another", "user", &s), None);
/// assert_eq!(decode_signed_value("my secret", "admin", &s), None);
/// ```
pub fn create_signed_value(secret: &str, name: &str, value: &[u8]) -> String {
    create_signed_value_at(secret, name, value, now_secs())
}

/// [`create_signed_value`] with the timestamp given (seconds since the
/// epoch), Tornado's `clock` argument.
pub fn create_signed_value_at(secret: &str, name: &str, value: &[u8], timestamp: u64) -> String {
    let value = base64::engine::general_purpose::STANDARD.encode(value);
    let timestamp = timestamp.to_string();
    let mut s = String::with_capacity(40 + name.len() + value.len() + 64);
    s.push_str("2|1:0|");
    for field in [timestamp.as_str(), name, value.as_str()] {
        // Tornado counts characters of the name (a `str`); every other
        // field is ASCII.
        s.push_str(&field.chars().count().to_string());
        s.push(':');
        s.push_str(field);
        s.push('|');
    }
    s.push_str(&hex(&hmac_sha256(secret.as_bytes(), s.as_bytes())));
    s
}

/// The value [`create_signed_value`] signed under `name`, if `signed` is
/// one made with `secret` for that name less than
/// [`DEFAULT_MAX_AGE_DAYS`] ago (Tornado's `decode_signed_value`; version
/// 1 values are read too). `None` for anything else: a wrong secret or
/// name, a changed byte, an expired or malformed value.
pub fn decode_signed_value(secret: &str, name: &str, signed: &str) -> Option<Vec<u8>> {
    decode_signed_value_at(secret, name, signed, DEFAULT_MAX_AGE_DAYS, now_secs_f64())
}

/// [`decode_signed_value`] with its maximum age (`max_age_days`) and the
/// time to check it against (seconds since the epoch, Tornado's `clock`).
pub fn decode_signed_value_at(
    secret: &str,
    name: &str,
    signed: &str,
    max_age_days: f64,
    now: f64,
) -> Option<Vec<u8>> {
    if signed.is_empty() {
        return None;
    }
    let oldest = now - max_age_days * 86400.0;
    match version(signed) {
        1 => decode_v1(secret, name, signed, oldest, now),
        2 => decode_v2(secret, name, signed, oldest),
        _ => None,
    }
}

/// Tornado's `_get_version`: a leading decimal number without a leading
/// zero, followed by `|`, up to 999; anything else is version 1 (which
/// starts with base64).
fn version(s: &str) -> u32 {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || s.as_bytes()[0] == b'0' || s.as_bytes().get(digits) != Some(&b'|') {
        return 1;
    }
    match s[..digits].parse::<u32>() {
        Ok(v) if v <= 999 => v,
        _ => 1,
    }
}

fn decode_v1(secret: &str, name: &str, s: &str, oldest: f64, now: f64) -> Option<Vec<u8>> {
    let mut parts = s.split('|');
    let (value, ts, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let mut msg = Vec::with_capacity(name.len() + value.len() + ts.len());
    msg.extend_from_slice(name.as_bytes());
    msg.extend_from_slice(value.as_bytes());
    msg.extend_from_slice(ts.as_bytes());
    let expected = hex(&hmac_sha1(secret.as_bytes(), &msg));
    if !constant_time_eq(sig.as_bytes(), expected.as_bytes()) {
        log::warn!("Invalid cookie signature {s:?}");
        return None;
    }
    let t = parse_decimal(ts)? as f64;
    if t < oldest {
        log::warn!("Expired cookie {s:?}");
        return None;
    }
    // The v1 signature hashes no delimiter: digits could move from the
    // value to the timestamp without changing it (Tornado's checks).
    if t > now + 31.0 * 86400.0 {
        log::warn!("Cookie timestamp in future; possible tampering {s:?}");
        return None;
    }
    if ts.starts_with('0') {
        log::warn!("Tampered cookie {s:?}");
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(value).ok()
}

fn decode_v2(secret: &str, name: &str, s: &str, oldest: f64) -> Option<Vec<u8>> {
    // "2|" then four length-prefixed fields, each followed by '|'.
    let mut rest = s.get(2..)?;
    let mut fields = [""; 4];
    for f in &mut fields {
        let (len, after) = rest.split_once(':')?;
        let n = parse_decimal(len)?;
        let n = usize::try_from(n).ok()?;
        let value = after.get(..n)?;
        if after.as_bytes().get(n) != Some(&b'|') {
            return None;
        }
        *f = value;
        rest = &after[n + 1..];
    }
    let [key_version, ts, field_name, value] = fields;
    let signed_part = &s[..s.len() - rest.len()];
    let expected = hex(&hmac_sha256(secret.as_bytes(), signed_part.as_bytes()));
    if !constant_time_eq(rest.as_bytes(), expected.as_bytes()) {
        return None;
    }
    if field_name != name || parse_decimal(key_version)? != 0 {
        return None;
    }
    if (parse_decimal(ts)? as f64) < oldest {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(value).ok()
}

/// ASCII digits only (Tornado writes nothing else), at most 19 of them.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch, the clock signed values are checked against.
pub(crate) fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A `cookie_secret` setting as it is used: an empty one is none
/// (Tornado's `require_setting` refuses a falsy setting), since HMAC with
/// an empty key is anyone's to compute.
pub(crate) fn usable_secret(secret: Option<&str>) -> Option<&str> {
    secret.filter(|s| !s.is_empty())
}

/// [`usable_secret`], logging at `error` when there is none: `call` on the
/// cookie `name` is a programming error without one, as in Tornado.
pub(crate) fn secret_for<'a>(secret: Option<&'a str>, call: &str, name: &str) -> Option<&'a str> {
    let s = usable_secret(secret);
    if s.is_none() {
        log::error!("{call}({name:?}) needs the cookie_secret setting");
    }
    s
}

/// Equal length and bytes, in time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// HMAC (RFC 2104) over a hash with a 64-byte block, given as a function
/// of the concatenated parts.
fn hmac<const N: usize>(key: &[u8], msg: &[u8], hash: impl Fn(&[&[u8]]) -> [u8; N]) -> [u8; N] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..N].copy_from_slice(&hash(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: [u8; 64] = std::array::from_fn(|i| k[i] ^ 0x36);
    let opad: [u8; 64] = std::array::from_fn(|i| k[i] ^ 0x5c);
    let inner = hash(&[&ipad, msg]);
    hash(&[&opad, &inner])
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    hmac(key, msg, |parts| {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    })
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    hmac(key, msg, |parts| {
        let mut h = sha1::Sha1::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Produced by Tornado 6.6.1 (`tornado.web.create_signed_value(SECRET,
    /// name, value, version=v, clock=lambda: 1764921600.7)`).
    const SECRET: &str = "n0t-s0-s3cret|with:odd=chars";
    const T: u64 = 1_764_921_600;
    const TORNADO: &[(u32, &str, &[u8], &str)] = &[
        (1, "user", b"bob", "Ym9i|1764921600|7ca174fd3c7dd862da2ce2a5c459821d104e5d9e"),
        (1, "session", b"\x00\xff\xfe binary\n", "AP/+IGJpbmFyeQo=|1764921600|8625c99fe8d346977fc593a617e528c5f049b4e0"),
        (1, "e", b"", "|1764921600|bf8c12025301ebef47b36721170cce353330bd5c"),
        (1, "nick", "Zoë 🌀".as_bytes(), "Wm/DqyDwn4yA|1764921600|70d565dea260dd3dbe8c5b2093edd009b16808f0"),
        (2, "user", b"bob", "2|1:0|10:1764921600|4:user|4:Ym9i|616a8c96db3a48f9f3767e51befbde4d57702a7bc273baa38d3b9b5c83ba67a4"),
        (2, "session", b"\x00\xff\xfe binary\n", "2|1:0|10:1764921600|7:session|16:AP/+IGJpbmFyeQo=|072bf1b5dcaae25e9e8a87691f53e0615e8046bd251a87f6bb3cd8f9f7240b3d"),
        (2, "e", b"", "2|1:0|10:1764921600|1:e|0:|6d0a550e7f83ab0d580931b446c9cf6415c985ed060e4538b18fed3ec7e12af8"),
        (2, "nick", "Zoë 🌀".as_bytes(), "2|1:0|10:1764921600|4:nick|12:Wm/DqyDwn4yA|371f2f1d0833e9fe11d155611e8fa04b0494e729b1adc846bc29e3a1f0cd93b3"),
    ];

    fn decode(name: &str, s: &str, now: f64) -> Option<Vec<u8>> {
        decode_signed_value_at(SECRET, name, s, DEFAULT_MAX_AGE_DAYS, now)
    }

    #[test]
    fn same_strings_as_tornado_both_ways() {
        for &(v, name, value, tornado) in TORNADO {
            if v == 2 {
                assert_eq!(create_signed_value_at(SECRET, name, value, T), tornado);
            }
            assert_eq!(
                decode(name, tornado, T as f64 + 5.0).as_deref(),
                Some(value),
                "{tornado}"
            );
        }
    }

    #[test]
    fn hmac_matches_rfc_test_vectors() {
        // RFC 4231 test case 2 and RFC 2202 test case 2 ("Jefe").
        let msg = b"what do ya want for nothing?";
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", msg)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", msg)),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // RFC 4231 test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn expiry_as_tornado_counts_it() {
        let s = TORNADO[4].3;
        let day = 86400.0;
        assert!(decode("user", s, T as f64 + 31.0 * day - 1.0).is_some());
        assert!(decode("user", s, T as f64 + 31.0 * day + 1.0).is_none());
        assert!(decode_signed_value_at(SECRET, "user", s, 0.5, T as f64 + 0.4 * day).is_some());
        assert!(decode_signed_value_at(SECRET, "user", s, 0.5, T as f64 + 0.6 * day).is_none());
        // Version 1: no more than 31 days ahead of the clock either.
        let v1 = TORNADO[0].3;
        assert!(decode("user", v1, T as f64 - 30.0 * day).is_some());
        assert!(decode("user", v1, T as f64 - 32.0 * day).is_none());
    }

    #[test]
    fn every_changed_byte_is_refused() {
        for &(_, name, _, s) in TORNADO {
            for i in 0..s.len() {
                for repl in [b'0', b'A', b'|', b':'] {
                    let mut b = s.as_bytes().to_vec();
                    if b[i] == repl {
                        continue;
                    }
                    b[i] = repl;
                    let t = String::from_utf8(b).unwrap();
                    // A '|' turning a v1 value into "v2-looking" text, or any
                    // other change: never the old value, and never a panic.
                    assert_eq!(decode(name, &t, T as f64), None, "{t}");
                }
            }
            assert_eq!(decode(name, &s[..s.len() - 1], T as f64), None);
            assert_eq!(decode(name, &format!("{s}0"), T as f64), None);
        }
    }

    #[test]
    fn wrong_name_secret_key_version_or_shape_is_refused() {
        let s = TORNADO[4].3;
        assert_eq!(decode("admin", s, T as f64), None);
        assert_eq!(
            decode_signed_value_at("other", "user", s, 31.0, T as f64),
            None
        );
        // Key version 1 (a secrets dictionary in Tornado), correctly signed.
        let mut kv = String::from("2|1:1|10:1764921600|4:user|4:Ym9i|");
        kv.push_str(&hex(&hmac_sha256(SECRET.as_bytes(), kv.as_bytes())));
        assert_eq!(decode("user", &kv, T as f64), None);
        for bad in [
            "",
            "2",
            "2|",
            "2|1:0",
            "2|99999999999999999999:0|",
            "3|1:0|",
            "|||",
            "2|-1:0|",
        ] {
            assert_eq!(decode("user", bad, T as f64), None, "{bad:?}");
        }
        // v1 with a leading zero on the timestamp (Tornado's tamper check).
        let sig = hex(&hmac_sha1(SECRET.as_bytes(), b"userYm9i01764921600"));
        assert_eq!(
            decode("user", &format!("Ym9i|01764921600|{sig}"), T as f64),
            None
        );
    }

    #[test]
    fn version_detection_is_tornados() {
        assert_eq!(version("2|1:0"), 2);
        assert_eq!(version("Ym9i|1"), 1);
        assert_eq!(version("1234|x"), 1);
        assert_eq!(version("02|x"), 1);
        assert_eq!(version("7|x"), 7);
    }
}
