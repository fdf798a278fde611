//! Signed values: Tornado's `create_signed_value` and
//! `decode_signed_value`, the format behind `set_secure_cookie` and
//! `get_secure_cookie` (Tornado 6.3 renamed them `set_signed_cookie` and
//! `get_signed_cookie`).
//!
//! The strings are Tornado's, byte for byte: a cookie signed by a Tornado
//! application decodes here with the same `cookie_secret`, and the other
//! way round, so a Tornado site and a cyclone service can share a login.
//!
//! - **Version 2** (what is written): `2|1:<key version>|10:<timestamp>|<n>:<name>|<n>:<base64 value>|<signature>`,
//!   length-prefixed fields and an HMAC-SHA256 (hex) of everything before
//!   the signature, so no part can move into another.
//! - **Version 1** (read, as Tornado reads it by default):
//!   `<base64 value>|<timestamp>|<HMAC-SHA1 hex of name, value, timestamp>`,
//!   with Tornado's checks against digits moved from the value into the
//!   timestamp (no timestamp more than 31 days ahead, none with a leading
//!   zero).
//!
//! # Key rotation
//!
//! As in Tornado, the secret may be a dictionary of keys by key version
//! ([`CookieSecret::Versioned`], Tornado's `cookie_secret` dict) with the
//! application's `key_version` setting naming the key that signs new
//! values. The key version is written in the value (the `1:<key version>`
//! field, covered by the signature), and a value is checked with the key
//! of the version it names: values signed with a retired key keep being
//! read for as long as that key stays in the dictionary, and the
//! application can sign them again with the current key when
//! [`get_signature_key_version`] says they are older. Exactly as Tornado
//! does:
//!
//! - a value naming a key version the dictionary lacks is refused;
//! - a single secret ([`CookieSecret::Single`], Tornado's `str`) ignores
//!   the key version written in the value: any is accepted when the
//!   signature is right, and signing writes 0 (unless
//!   [`CookieSecret::create_signed_value`] is given another);
//! - signing with a dictionary needs a key version that is in it (Tornado
//!   raises; here the result is `None`).
//!
//! One difference: a version 1 value checked against a dictionary is
//! refused (`None`, a warning logged). Tornado fails an assertion there,
//! so any cookie that does not start with `2|` is a 500 in a Tornado
//! handler with a dictionary of secrets.
//!
//! Another: only the forms Tornado writes are read. In a correctly signed
//! value, Tornado also accepts what Python's `int()` and
//! `base64.b64decode` read and `create_signed_value` never writes: numbers
//! with a sign, spaces or underscores (`+10:`, `2: 1`, `1_0`), a timestamp
//! of more than 19 digits, base64 with characters outside its alphabet
//! (dropped), surplus padding or non-zero trailing bits. They are refused
//! here (only a holder of the secret can make one; 38 such values in the
//! table of cases compared with Tornado, `tests/peers/gen_signed_cases.py`).
//!
//! The length prefixes are written in bytes, which is how Tornado reads
//! them; Tornado writes the name's in characters, so its values for a
//! name that is not ASCII are read by neither, where cyclone's are read
//! by both.
//!
//! Key versions are `u32`: a negative one, or one beyond `u32::MAX`, is in
//! no dictionary, and [`get_signature_key_version`] gives `None` for it.
//!
//! Tornado's `min_version` refuses values of an older format (default
//! [`DEFAULT_SIGNED_VALUE_MIN_VERSION`], which reads both): 2 refuses
//! version 1 values, whose signature does not cover the field boundaries
//! ([`CookieSecret::decode_signed_value_at`],
//! [`RequestContext::get_secure_cookie_with`](super::RequestContext::get_secure_cookie_with)).
//!
//! The value is signed, not encrypted: anyone holding the cookie can read
//! it (base64). Signatures are compared in constant time.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha2::{Digest, Sha256};

/// How long a signed value stays valid by default, in days (Tornado's
/// `max_age_days=31`).
pub const DEFAULT_MAX_AGE_DAYS: f64 = 31.0;

/// The oldest format version accepted by default (Tornado's
/// `DEFAULT_SIGNED_VALUE_MIN_VERSION`): versions 1 and 2 are read.
pub const DEFAULT_SIGNED_VALUE_MIN_VERSION: u32 = 1;

/// Tornado's `cookie_secret`: one secret, or a dictionary of secrets by
/// key version for key rotation (see the [module documentation](self)).
///
/// Its `Debug` output never shows a secret, only the key versions.
///
/// ```
/// use cyclone::web::signed::{get_signature_key_version, CookieSecret};
///
/// let old = CookieSecret::versioned([(1, "old secret")]);
/// let s = old.create_signed_value(Some(1), "user", b"bob").unwrap();
/// assert!(s.starts_with("2|1:1|10:"));
///
/// // Key 2 signs from now on; key 1 is still read.
/// let rotated = CookieSecret::versioned([(1, "old secret"), (2, "new secret")]);
/// assert_eq!(rotated.decode_signed_value("user", &s).as_deref(), Some(&b"bob"[..]));
/// assert_eq!(get_signature_key_version(&s), Some(1));
/// let s = rotated.create_signed_value(Some(2), "user", b"bob").unwrap();
/// assert_eq!(get_signature_key_version(&s), Some(2));
/// assert_eq!(old.decode_signed_value("user", &s), None);
/// // Signing with a dictionary needs one of its key versions.
/// assert_eq!(rotated.create_signed_value(Some(3), "user", b"bob"), None);
/// assert_eq!(rotated.create_signed_value(None, "user", b"bob"), None);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum CookieSecret {
    /// One secret (Tornado's `str`): signs with key version 0 (unless
    /// [`create_signed_value`](Self::create_signed_value) is given
    /// another) and checks values whatever key version they name, as
    /// Tornado does.
    Single(String),
    /// Secrets by key version (Tornado's `dict`): a value is checked with
    /// the secret of the key version it names, and refused if there is
    /// none; version 1 values (which name none) are refused.
    Versioned(BTreeMap<u32, String>),
}

impl CookieSecret {
    /// A dictionary of secrets from `(key_version, secret)` pairs.
    pub fn versioned<S: Into<String>>(keys: impl IntoIterator<Item = (u32, S)>) -> Self {
        CookieSecret::Versioned(keys.into_iter().map(|(v, s)| (v, s.into())).collect())
    }

    /// The secret that signs and checks values of `key_version`: the
    /// single secret whatever the version, or the dictionary's entry.
    pub fn key(&self, key_version: u32) -> Option<&str> {
        self.borrowed().key(u64::from(key_version))
    }

    /// Signs and timestamps `value` under `name` with the key of
    /// `key_version` (Tornado's `create_signed_value(secret, name, value,
    /// key_version=...)`, version 2). A single secret writes
    /// `key_version` (0 if `None`) and signs with itself; a dictionary
    /// signs with its key for `key_version`, and gives `None` when
    /// `key_version` is `None` or not one of its versions (Tornado
    /// raises).
    pub fn create_signed_value(
        &self,
        key_version: Option<u32>,
        name: &str,
        value: &[u8],
    ) -> Option<String> {
        self.create_signed_value_at(key_version, name, value, now_secs())
    }

    /// [`create_signed_value`](Self::create_signed_value) with the
    /// timestamp given (seconds since the epoch), Tornado's `clock`.
    pub fn create_signed_value_at(
        &self,
        key_version: Option<u32>,
        name: &str,
        value: &[u8],
        timestamp: u64,
    ) -> Option<String> {
        let (key, key_version) = match self {
            CookieSecret::Single(s) => (s.as_str(), key_version.unwrap_or(0)),
            CookieSecret::Versioned(keys) => {
                let v = key_version?;
                (keys.get(&v)?.as_str(), v)
            }
        };
        Some(sign_v2(key, key_version, name, value, timestamp))
    }

    /// The value signed under `name` with one of these keys less than
    /// [`DEFAULT_MAX_AGE_DAYS`] ago, versions 1 and 2 (Tornado's
    /// `decode_signed_value(secret, name, value)`): as the free
    /// [`decode_signed_value`], with the key chosen by the key version
    /// the value names (see [`CookieSecret`]).
    pub fn decode_signed_value(&self, name: &str, signed: &str) -> Option<Vec<u8>> {
        self.decode_signed_value_at(
            name,
            signed,
            DEFAULT_MAX_AGE_DAYS,
            now_secs_f64(),
            DEFAULT_SIGNED_VALUE_MIN_VERSION,
        )
    }

    /// [`decode_signed_value`](Self::decode_signed_value) with Tornado's
    /// other arguments: `max_age_days`, the time to check against
    /// (seconds since the epoch, Tornado's `clock`), and `min_version`,
    /// the oldest format accepted (2 refuses version 1 values). A
    /// `min_version` above 2 refuses everything and logs an error
    /// (Tornado raises `ValueError`).
    pub fn decode_signed_value_at(
        &self,
        name: &str,
        signed: &str,
        max_age_days: f64,
        now: f64,
        min_version: u32,
    ) -> Option<Vec<u8>> {
        decode(
            self.borrowed(),
            name,
            signed,
            max_age_days,
            now,
            min_version,
        )
    }

    fn borrowed(&self) -> Secret<'_> {
        match self {
            CookieSecret::Single(s) => Secret::Single(s),
            CookieSecret::Versioned(keys) => Secret::Versioned(keys),
        }
    }

    /// Whether anyone but the holder can sign with it: an empty secret,
    /// an empty dictionary or a dictionary with an empty secret.
    fn is_weak(&self) -> bool {
        match self {
            CookieSecret::Single(s) => s.is_empty(),
            CookieSecret::Versioned(keys) => keys.is_empty() || keys.values().any(String::is_empty),
        }
    }
}

impl From<&str> for CookieSecret {
    fn from(s: &str) -> Self {
        CookieSecret::Single(s.to_owned())
    }
}

impl From<String> for CookieSecret {
    fn from(s: String) -> Self {
        CookieSecret::Single(s)
    }
}

impl From<BTreeMap<u32, String>> for CookieSecret {
    fn from(keys: BTreeMap<u32, String>) -> Self {
        CookieSecret::Versioned(keys)
    }
}

/// `Single(<redacted>)` or `Versioned({1: <redacted>, ...})`: the key
/// versions, never a secret.
impl fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieSecret::Single(_) => f.debug_tuple("Single").field(&Redacted).finish(),
            CookieSecret::Versioned(keys) => f
                .debug_tuple("Versioned")
                .field(&RedactedKeys(keys))
                .finish(),
        }
    }
}

/// Prints `<redacted>`.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Prints `{1: <redacted>, ...}`.
struct RedactedKeys<'a>(&'a BTreeMap<u32, String>);

impl fmt::Debug for RedactedKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Redacted)))
            .finish()
    }
}

/// A [`CookieSecret`] borrowed, or a `&str` given to the free functions.
#[derive(Clone, Copy)]
enum Secret<'a> {
    Single(&'a str),
    Versioned(&'a BTreeMap<u32, String>),
}

impl<'a> Secret<'a> {
    /// Tornado's lookup: a `str` secret whatever the key version, a dict's
    /// entry for it (a key version beyond `u32` is in no dictionary).
    fn key(self, key_version: u64) -> Option<&'a str> {
        match self {
            Secret::Single(s) => Some(s),
            Secret::Versioned(keys) => keys
                .get(&u32::try_from(key_version).ok()?)
                .map(String::as_str),
        }
    }
}

/// The key version a version 2 (or later) value names, `None` for a
/// version 1 value or one that does not parse (Tornado's
/// `get_signature_key_version`; a key version beyond `u32::MAX`, which
/// Tornado would return, is `None` too). The signature is **not**
/// checked: use it on a value [`decode_signed_value`] (or
/// [`CookieSecret::decode_signed_value`]) accepted, to decide whether to
/// sign it again with the current key.
///
/// ```
/// use cyclone::web::signed::get_signature_key_version;
///
/// assert_eq!(get_signature_key_version("2|1:3|10:1764921600|4:user|4:Ym9i|ea1e91586bdb1f9a29fc2c09270f8f67b3b36283f6760ecc9125fda95e3f65bf"), Some(3));
/// assert_eq!(get_signature_key_version("Ym9i|1764921600|7ca174fd3c7dd862da2ce2a5c459821d104e5d9e"), None);
/// ```
pub fn get_signature_key_version(signed: &str) -> Option<u32> {
    if version(signed) < 2 {
        return None;
    }
    let (fields, _) = v2_fields(signed)?;
    u32::try_from(parse_decimal(fields[0])?).ok()
}

/// Signs and timestamps `value` under `name` (Tornado's
/// `create_signed_value(secret, name, value)`, version 2, key version 0;
/// for a dictionary of secrets see [`CookieSecret`]): the result can
/// only be produced by someone holding `secret`, and
/// [`decode_signed_value`] gives `value` back for the same `secret` and
/// `name` for [`DEFAULT_MAX_AGE_DAYS`]. Except for a `name` holding a
/// newline (no cookie name can): Tornado's version check stops at a
/// newline and reads such a value as version 1, so neither Tornado nor
/// cyclone reads it back.
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
    sign_v2(secret, 0, name, value, timestamp)
}

/// A version 2 value naming `key_version`, signed with `key`.
fn sign_v2(key: &str, key_version: u32, name: &str, value: &[u8], timestamp: u64) -> String {
    let value = base64::engine::general_purpose::STANDARD.encode(value);
    let timestamp = timestamp.to_string();
    let key_version = key_version.to_string();
    let mut s = String::with_capacity(40 + name.len() + value.len() + 64);
    s.push_str("2|");
    for field in [
        key_version.as_str(),
        timestamp.as_str(),
        name,
        value.as_str(),
    ] {
        // The length in bytes, which is what Tornado reads. (Tornado
        // writes the name's length in characters: a name that is not
        // ASCII makes a value that neither Tornado nor cyclone reads.)
        s.push_str(&field.len().to_string());
        s.push(':');
        s.push_str(field);
        s.push('|');
    }
    s.push_str(&hex(&hmac_sha256(key.as_bytes(), s.as_bytes())));
    s
}

/// The value [`create_signed_value`] signed under `name`, if `signed` is
/// one made with `secret` for that name less than
/// [`DEFAULT_MAX_AGE_DAYS`] ago (Tornado's `decode_signed_value`; version
/// 1 values are read too). `None` for anything else: a wrong secret or
/// name, a changed byte, an expired or malformed value. As in Tornado,
/// the key version a version 2 value names is not looked at with a single
/// secret (see the [module documentation](self)); a dictionary of secrets
/// is [`CookieSecret::decode_signed_value`].
pub fn decode_signed_value(secret: &str, name: &str, signed: &str) -> Option<Vec<u8>> {
    decode_signed_value_at(secret, name, signed, DEFAULT_MAX_AGE_DAYS, now_secs_f64())
}

/// [`decode_signed_value`] with its maximum age (`max_age_days`) and the
/// time to check it against (seconds since the epoch, Tornado's `clock`).
/// For `min_version`, see [`CookieSecret::decode_signed_value_at`].
pub fn decode_signed_value_at(
    secret: &str,
    name: &str,
    signed: &str,
    max_age_days: f64,
    now: f64,
) -> Option<Vec<u8>> {
    decode(
        Secret::Single(secret),
        name,
        signed,
        max_age_days,
        now,
        DEFAULT_SIGNED_VALUE_MIN_VERSION,
    )
}

fn decode(
    secret: Secret<'_>,
    name: &str,
    signed: &str,
    max_age_days: f64,
    now: f64,
    min_version: u32,
) -> Option<Vec<u8>> {
    if min_version > 2 {
        log::error!("decode_signed_value: unsupported min_version {min_version}");
        return None;
    }
    if signed.is_empty() {
        return None;
    }
    let oldest = now - max_age_days * 86400.0;
    let version = version(signed);
    if version < min_version {
        return None;
    }
    match (version, secret) {
        (1, Secret::Single(secret)) => decode_v1(secret, name, signed, oldest, now),
        (1, Secret::Versioned(_)) => {
            // Tornado asserts here (`assert not isinstance(secret, dict)`).
            log::warn!(
                "Cookie {signed:?} is not of version 2, which a dictionary of secrets needs"
            );
            None
        }
        (2, _) => decode_v2(secret, name, signed, oldest),
        _ => None,
    }
}

/// Tornado's `_get_version`: a leading decimal number without a leading
/// zero, followed by `|`, up to 999; anything else is version 1 (which
/// starts with base64). Its pattern, `^([1-9][0-9]*)\|(.*)$`, does not
/// match across a newline (`$` only before a final one): such a value is
/// version 1 too.
fn version(s: &str) -> u32 {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || s.as_bytes()[0] == b'0' || s.as_bytes().get(digits) != Some(&b'|') {
        return 1;
    }
    let rest = &s[digits + 1..];
    if rest.strip_suffix('\n').unwrap_or(rest).contains('\n') {
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

/// Tornado's `_decode_fields_v2`: the four length-prefixed fields after
/// the leading `2|` (key version, timestamp, name, value) and what
/// follows them (the signature).
fn v2_fields(s: &str) -> Option<([&str; 4], &str)> {
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
    Some((fields, rest))
}

fn decode_v2(secret: Secret<'_>, name: &str, s: &str, oldest: f64) -> Option<Vec<u8>> {
    let ([key_version, ts, field_name, value], sig) = v2_fields(s)?;
    // Tornado's order: the key of the version named (a dictionary without
    // it refuses the value), then the signature.
    let key = secret.key(parse_decimal(key_version)?)?;
    let signed_part = &s[..s.len() - sig.len()];
    let expected = hex(&hmac_sha256(key.as_bytes(), signed_part.as_bytes()));
    if !constant_time_eq(sig.as_bytes(), expected.as_bytes()) {
        return None;
    }
    if field_name != name {
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

pub(crate) fn now_secs() -> u64 {
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
/// an empty key is anyone's to compute; so is an empty dictionary, and
/// one holding an empty secret (stricter than Tornado, which would sign
/// with it).
pub(crate) fn usable_secret(secret: Option<&CookieSecret>) -> Option<&CookieSecret> {
    secret.filter(|s| !s.is_weak())
}

/// [`usable_secret`], logging at `error` when there is none: `call` on the
/// cookie `name` is a programming error without one, as in Tornado.
pub(crate) fn secret_for<'a>(
    secret: Option<&'a CookieSecret>,
    call: &str,
    name: &str,
) -> Option<&'a CookieSecret> {
    let s = usable_secret(secret);
    if s.is_none() {
        log::error!(
            "{call}({name:?}) needs the cookie_secret setting (not empty, no empty secret in it)"
        );
    }
    s
}

/// The value of the signed cookie `name` holding `value`: Tornado's
/// `RequestHandler.create_signed_value`, signed with `secret` (the
/// `key_version` setting picks the key of a dictionary of secrets, and is
/// not used with a single one). `None` with the reason logged at `error`
/// when there is no secret, or `key_version` names none of the
/// dictionary's: a programming error, which Tornado raises.
pub(crate) fn cookie_value(
    secret: Option<&CookieSecret>,
    key_version: Option<u32>,
    name: &str,
    value: impl AsRef<[u8]>,
) -> Option<String> {
    let secret = secret_for(secret, "set_secure_cookie", name)?;
    let key_version = match secret {
        CookieSecret::Single(_) => None,
        CookieSecret::Versioned(_) => key_version,
    };
    let signed = secret.create_signed_value(key_version, name, value.as_ref());
    if signed.is_none() {
        log::error!(
            "set_secure_cookie({name:?}): the key_version setting ({key_version:?}) must \
             name one of the cookie_secret dictionary's versions"
        );
    }
    signed
}

/// Equal length and bytes, in time that depends only on the length.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `bytes` in lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Appends `bytes` in lowercase hex. A table lookup per digit: a SHA-1
/// formatted through `Display` (`{:02x}` a byte) costs about ten times as
/// many instructions, which showed on every answer's Etag.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
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
        let mut h = sha1_smol::Sha1::new();
        for p in parts {
            h.update(p);
        }
        h.digest().bytes()
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
    fn a_name_that_is_not_ascii_signs_a_value_tornado_reads() {
        // Tornado 6.6.1: create_signed_value(SECRET, "Zoë", b"bob") writes
        // "3:Zoë" and decode_signed_value refuses it (it counts bytes);
        // with "4:Zoë" it gives b"bob".
        let s = create_signed_value_at(SECRET, "Zoë", b"bob", T);
        assert_eq!(
            s,
            "2|1:0|10:1764921600|4:Zoë|4:Ym9i|ae2ff1e5ef17f5c11ed3b95d567ed13b5838ceebfdfdec66d107bf57df9b037e"
        );
        assert_eq!(decode("Zoë", &s, T as f64).as_deref(), Some(&b"bob"[..]));
        let s = create_signed_value_at(SECRET, "日本", b"", T);
        assert_eq!(decode("日本", &s, T as f64).as_deref(), Some(&b""[..]));
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
    fn wrong_name_secret_or_shape_is_refused() {
        let s = TORNADO[4].3;
        assert_eq!(decode("admin", s, T as f64), None);
        assert_eq!(
            decode_signed_value_at("other", "user", s, 31.0, T as f64),
            None
        );
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

    // Key rotation. Produced by Tornado 6.6.1:
    //   from tornado.web import create_signed_value
    //   keys = {1: OLD, 3: SECRET}; clock = lambda: 1764921600.7
    //   KV3 = create_signed_value(keys, "user", b"bob", clock=clock, key_version=3)
    //   KV1 = create_signed_value(keys, "user", b"bob", clock=clock, key_version=1)
    //   STR_KV5 = create_signed_value(SECRET, "user", b"bob", clock=clock, key_version=5)
    // and, with the same clock, in Tornado:
    //   decode_signed_value(keys, "user", KV3) == b"bob" (KV1 too)
    //   decode_signed_value({1: OLD}, "user", KV3) is None
    //   decode_signed_value({3: OLD}, "user", KV3) is None
    //   decode_signed_value(SECRET, "user", KV3) == b"bob"   (str: key version ignored)
    //   decode_signed_value(OLD, "user", KV1) == b"bob"
    //   decode_signed_value(OLD, "user", KV3) is None
    //   decode_signed_value({0: SECRET}, "user", <TORNADO[4]>) == b"bob"
    //   decode_signed_value(SECRET, "user", <TORNADO[0]>, min_version=2) is None
    //   decode_signed_value(keys, "user", KV3, min_version=2) == b"bob"
    //   decode_signed_value(SECRET, "user", KV3, min_version=3): ValueError
    //   decode_signed_value(keys, "user", <TORNADO[0]>): AssertionError
    //   create_signed_value(keys, "user", b"bob"): AssertionError (no key_version)
    //   create_signed_value(keys, "user", b"bob", key_version=2): KeyError
    const OLD: &str = "old secret, retired";
    const KV3: &str = "2|1:3|10:1764921600|4:user|4:Ym9i|ea1e91586bdb1f9a29fc2c09270f8f67b3b36283f6760ecc9125fda95e3f65bf";
    const KV1: &str = "2|1:1|10:1764921600|4:user|4:Ym9i|cdc357aff9f6ca21bfd14787859b1ff5101f417aa2b400512a8d1417248d7e4a";
    const STR_KV5: &str = "2|1:5|10:1764921600|4:user|4:Ym9i|149c1586fb4e46ab24cb389679966ab0f945ebb1d481390b4ba2d7cc12bf4ea7";

    fn keys() -> CookieSecret {
        CookieSecret::versioned([(1, OLD), (3, SECRET)])
    }

    fn decode_with(secret: &CookieSecret, s: &str, min_version: u32) -> Option<Vec<u8>> {
        secret.decode_signed_value_at("user", s, DEFAULT_MAX_AGE_DAYS, T as f64, min_version)
    }

    #[test]
    fn a_dictionary_of_secrets_signs_and_reads_as_tornado() {
        let keys = keys();
        assert_eq!(
            keys.create_signed_value_at(Some(3), "user", b"bob", T)
                .as_deref(),
            Some(KV3)
        );
        assert_eq!(
            keys.create_signed_value_at(Some(1), "user", b"bob", T)
                .as_deref(),
            Some(KV1)
        );
        for s in [KV3, KV1] {
            assert_eq!(
                decode_with(&keys, s, 1).as_deref(),
                Some(&b"bob"[..]),
                "{s}"
            );
        }
        // The key version named must be in the dictionary, with the key
        // that signed it.
        let without_3 = CookieSecret::versioned([(1, OLD)]);
        assert_eq!(decode_with(&without_3, KV3, 1), None);
        assert_eq!(
            decode_with(&without_3, KV1, 1).as_deref(),
            Some(&b"bob"[..])
        );
        assert_eq!(
            decode_with(&CookieSecret::versioned([(3, OLD)]), KV3, 1),
            None
        );
        // Key version 0, what a single secret writes, read from a dictionary.
        let zero = CookieSecret::versioned([(0, SECRET)]);
        assert_eq!(
            decode_with(&zero, TORNADO[4].3, 1).as_deref(),
            Some(&b"bob"[..])
        );
        // Signing needs a key version of the dictionary (Tornado raises).
        assert_eq!(keys.create_signed_value_at(None, "user", b"bob", T), None);
        assert_eq!(
            keys.create_signed_value_at(Some(2), "user", b"bob", T),
            None
        );
        // A version 1 value is refused (Tornado fails an assertion).
        assert_eq!(decode_with(&keys, TORNADO[0].3, 1), None);
        assert_eq!(
            decode_with(&CookieSecret::versioned([(0, SECRET)]), TORNADO[0].3, 1),
            None
        );
        // Expiry and name as with one secret.
        let late = T as f64 + 32.0 * 86400.0;
        assert_eq!(
            keys.decode_signed_value_at("user", KV3, 31.0, late, 1),
            None
        );
        assert_eq!(
            keys.decode_signed_value_at("admin", KV3, 31.0, T as f64, 1),
            None
        );
    }

    #[test]
    fn a_single_secret_ignores_the_key_version_as_tornado_does() {
        // Tornado: `if isinstance(secret, dict): secret = secret[key_version]`,
        // nothing else looks at the key version.
        assert_eq!(decode("user", KV3, T as f64).as_deref(), Some(&b"bob"[..]));
        assert_eq!(
            decode("user", STR_KV5, T as f64).as_deref(),
            Some(&b"bob"[..])
        );
        let old = |s| decode_signed_value_at(OLD, "user", s, DEFAULT_MAX_AGE_DAYS, T as f64);
        assert_eq!(old(KV1).as_deref(), Some(&b"bob"[..]));
        assert_eq!(old(KV3), None);
        let single = CookieSecret::from(SECRET);
        assert_eq!(decode_with(&single, KV3, 1).as_deref(), Some(&b"bob"[..]));
        assert_eq!(decode_with(&single, KV1, 1), None);
        // Signing: key version 0 unless given one.
        assert_eq!(
            single
                .create_signed_value_at(Some(5), "user", b"bob", T)
                .as_deref(),
            Some(STR_KV5)
        );
        assert_eq!(
            single
                .create_signed_value_at(None, "user", b"bob", T)
                .as_deref(),
            Some(TORNADO[4].3)
        );
        assert_eq!(single.key(7), Some(SECRET));
        assert_eq!(keys().key(7), None);
        assert_eq!(keys().key(1), Some(OLD));
    }

    #[test]
    fn min_version_refuses_older_formats() {
        let single = CookieSecret::from(SECRET);
        let v1 = TORNADO[0].3;
        assert_eq!(decode_with(&single, v1, 1).as_deref(), Some(&b"bob"[..]));
        assert_eq!(decode_with(&single, v1, 2), None);
        assert_eq!(
            decode_with(&single, TORNADO[4].3, 2).as_deref(),
            Some(&b"bob"[..])
        );
        assert_eq!(decode_with(&keys(), KV3, 2).as_deref(), Some(&b"bob"[..]));
        // Above 2: Tornado raises ValueError; nothing is accepted here.
        assert_eq!(decode_with(&single, TORNADO[4].3, 3), None);
        assert_eq!(decode_with(&single, v1, 0).as_deref(), Some(&b"bob"[..]));
    }

    #[test]
    fn key_version_as_tornados_get_signature_key_version() {
        // Tornado 6.6.1's get_signature_key_version on each.
        for (s, v) in [
            (KV3, Some(3)),
            (KV1, Some(1)),
            (STR_KV5, Some(5)),
            (TORNADO[4].3, Some(0)),
            (TORNADO[0].3, None),
            ("3|1:7|", None),
            ("2|1:x|", None),
            ("garbage", None),
            ("", None),
            ("2|1:4|10:1764921600|4:user|4:Ym9i|", Some(4)),
            ("3|1:7|10:1764921600|4:user|4:Ym9i|sig", Some(7)),
            ("2|1:0|10:1764921600|4:user|4:Ym9i", None),
            ("1|1:2|1:1|1:a|0:|x", None),
        ] {
            assert_eq!(get_signature_key_version(s), v, "{s:?}");
        }
        // Tornado returns 4294967296; beyond u32 it is none here (and in
        // no dictionary), and a single secret still ignores it.
        let mut big = String::from("2|10:4294967296|10:1764921600|4:user|4:Ym9i|");
        assert_eq!(get_signature_key_version(&big), None);
        big.push_str(&hex(&hmac_sha256(SECRET.as_bytes(), big.as_bytes())));
        assert_eq!(decode("user", &big, T as f64).as_deref(), Some(&b"bob"[..]));
    }

    #[test]
    fn secrets_are_not_in_debug_output_and_weak_ones_are_none() {
        let dbg = format!("{:?} {:?}", keys(), CookieSecret::from(SECRET));
        assert_eq!(
            dbg,
            "Versioned({1: <redacted>, 3: <redacted>}) Single(<redacted>)"
        );
        let usable = |s: CookieSecret| usable_secret(Some(&s)).is_some();
        assert!(usable(keys()));
        assert!(usable(CookieSecret::from(SECRET)));
        assert!(!usable(CookieSecret::from("")));
        assert!(!usable(CookieSecret::versioned::<&str>([])));
        assert!(!usable(CookieSecret::versioned([(1, OLD), (2, "")])));
    }

    #[test]
    fn decodes_what_tornado_decodes() {
        // `signed_cases.rs`: Tornado's decode_signed_value and
        // get_signature_key_version on each value.
        let dict = CookieSecret::versioned([(0, SECRET), (1, OLD), (3, SECRET), (7, SECRET)]);
        let single = CookieSecret::from(SECRET);
        let mut wrong = Vec::new();
        let mut lenient = 0;
        for &(secret, name, s, max_age, now, min_version, want, key_version, refused) in
            crate::web::signed_cases::CASES
        {
            let secret = if secret == "S" { &single } else { &dict };
            let got = secret.decode_signed_value_at(name, s, max_age, now, min_version);
            let kv = get_signature_key_version(s).map(|v| v.to_string());
            // Values Tornado accepts only through Python's leniency may be
            // refused, and their key version not read.
            if refused
                && (got.is_none() || got.as_deref() == want)
                && (kv.is_none() || kv.as_deref() == key_version)
            {
                lenient += usize::from(got.is_none() && want.is_some());
                continue;
            }
            if got.as_deref() != want || kv.as_deref() != key_version {
                wrong.push(format!("{name:?} {s:?} {max_age} {now}: {got:?} {kv:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} differ:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert_eq!(lenient, 38);
    }

    #[test]
    fn version_detection_is_tornados() {
        assert_eq!(version("2|1:0"), 2);
        assert_eq!(version("Ym9i|1"), 1);
        assert_eq!(version("1234|x"), 1);
        assert_eq!(version("02|x"), 1);
        assert_eq!(version("7|x"), 7);
        assert_eq!(version("2|a\nb"), 1);
        assert_eq!(version("2|ab\n"), 2);
    }
}
