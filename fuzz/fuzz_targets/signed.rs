//! Signed values (`web::signed`, behind `get_secure_cookie`): a cookie is
//! input from anyone.
//!
//! Input: the first byte picks the mode, the rest is split on 0xFF into
//! a secret, a name and a third part, each lossily decoded as UTF-8.
//!
//! - Mode even: the third part is a signed value to decode, at a fixed
//!   clock. No panic; a value accepted must be one the secret signs: made
//!   again from what it says (its key version too, which a single secret
//!   does not look at), it is the same string (version 2), or it is a
//!   version-1 value. Decoding with a dictionary holding the secret under
//!   the value's key version gives the same answer.
//! - Mode odd: the third part is a value to sign under an ASCII name
//!   without a newline (see `create_signed_value`'s docs); the
//!   result decodes to it at its own timestamp, not after the maximum age,
//!   not under another secret or name, and no change of a single byte
//!   (to any of a few replacements) is accepted. Signed with a dictionary
//!   under the key version `mode`, it decodes with that dictionary and
//!   not with one holding the secret under another version.
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::web::signed::{
    create_signed_value_at, decode_signed_value_at, get_signature_key_version, CookieSecret,
};

const NOW: u64 = 1_764_921_600;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest
        .splitn(3, |b| *b == 0xFF)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let secret = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    let third = parts.next().unwrap_or_default();
    if mode % 2 == 0 {
        let decoded = decode_signed_value_at(&secret, &name, &third, 31.0, NOW as f64);
        if let Some(v) = &decoded {
            if third.starts_with("2|") {
                // "2|1:<kv>|<n>:<ts>|...": the timestamp as it was written.
                let ts_field = third.split('|').nth(2).unwrap_or("");
                let ts = ts_field.split_once(':').map_or("", |(_, t)| t);
                let ts: u64 = ts.parse().expect("accepted timestamp parses");
                // A key version beyond u32 is accepted by a single secret
                // (as in Tornado) but cannot be written again.
                if let Some(kv) = get_signature_key_version(&third) {
                    let again = CookieSecret::Single(secret.clone())
                        .create_signed_value_at(Some(kv), &name, v, ts);
                    assert_eq!(again.as_deref(), Some(third.as_str()));
                }
            }
        }
        if let Some(kv) = get_signature_key_version(&third) {
            if third.starts_with("2|") {
                let keys = CookieSecret::versioned([(kv, secret.as_str())]);
                let d = keys.decode_signed_value_at(&name, &third, 31.0, NOW as f64, 1);
                assert_eq!(d, decoded);
            }
        }
        return;
    }
    // A newline in the name makes the value version 1 to Tornado's
    // `_get_version` (its `.` stops at a newline), so neither Tornado nor
    // cyclone reads it back; no cookie name holds one.
    if !name.is_ascii() || name.contains('\n') {
        return;
    }
    let signed = create_signed_value_at(&secret, &name, third.as_bytes(), NOW);
    let back = decode_signed_value_at(&secret, &name, &signed, 31.0, NOW as f64);
    assert_eq!(back.as_deref(), Some(third.as_bytes()));
    assert_eq!(
        decode_signed_value_at(&secret, &name, &signed, 31.0, NOW as f64 + 32.0 * 86400.0),
        None
    );
    let other = format!("{secret}x");
    assert_eq!(decode_signed_value_at(&other, &name, &signed, 31.0, NOW as f64), None);
    assert_eq!(
        decode_signed_value_at(&secret, &format!("{name}x"), &signed, 31.0, NOW as f64),
        None
    );
    let kv = u32::from(mode);
    let keys = CookieSecret::versioned([(kv, secret.as_str())]);
    let by_keys = keys
        .create_signed_value_at(Some(kv), &name, third.as_bytes(), NOW)
        .expect("the key version is in the dictionary");
    assert_eq!(get_signature_key_version(&by_keys), Some(kv));
    let back = keys.decode_signed_value_at(&name, &by_keys, 31.0, NOW as f64, 2);
    assert_eq!(back.as_deref(), Some(third.as_bytes()));
    let elsewhere = CookieSecret::versioned([(kv + 1, secret.as_str())]);
    assert_eq!(
        elsewhere.decode_signed_value_at(&name, &by_keys, 31.0, NOW as f64, 1),
        None
    );
    let bytes = signed.as_bytes();
    for i in 0..bytes.len() {
        for repl in [b'0', b'a', b'|', b':', b'='] {
            if bytes[i] == repl {
                continue;
            }
            let mut b = bytes.to_vec();
            b[i] = repl;
            let changed = String::from_utf8(b).expect("ASCII");
            assert_eq!(
                decode_signed_value_at(&secret, &name, &changed, 31.0, NOW as f64),
                None,
                "{changed}"
            );
        }
    }
});
