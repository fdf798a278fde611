//! UTF-8 validation against std: `protocol::utf8::from_utf8`,
//! `into_string` and `Utf8Validator` fed in chunks (simdutf8 from 64 bytes
//! on, std below).
//!
//! Input: byte 0 seeds the chunking, the rest is the text.
//!
//! Invariants: `from_utf8` is `Some` exactly when std accepts the input,
//! and `into_string` gives what `String::from_utf8` gives;
//! the validator accepts the whole input (every chunk, then `finish`)
//! exactly when std does; when it rejects a chunk, the bytes fed so far
//! are already invalid for std (not merely an incomplete code point), so
//! it never fails early on valid text and fails fast on a bad prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::protocol::utf8::{from_utf8, into_string, Utf8Validator};

#[path = "../common/split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, text)) = data.split_first() else {
        return;
    };
    let std_ok = std::str::from_utf8(text).is_ok();
    assert_eq!(from_utf8(text).is_some(), std_ok);
    assert_eq!(
        into_string(text.to_vec()),
        String::from_utf8(text.to_vec()).ok()
    );

    let mut v = Utf8Validator::new();
    let mut fed = 0;
    let mut ok = true;
    for n in split::chunk_lengths(u64::from(seed), text.len()) {
        fed += n;
        if v.feed(&text[fed - n..fed]).is_err() {
            let e = std::str::from_utf8(&text[..fed]).expect_err("rejected valid text");
            assert!(e.error_len().is_some(), "rejected a valid prefix");
            ok = false;
            break;
        }
    }
    if ok {
        // Every chunk was a valid prefix; the end decides.
        assert_eq!(v.finish().is_ok(), std_ok);
    } else {
        assert!(!std_ok);
    }
});
