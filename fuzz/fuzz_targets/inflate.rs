//! The permessage-deflate inflater with a small size cap (64 KiB), over
//! arbitrary data cut into frames, some of which end a message.
//!
//! Input: byte 0 selects role and context takeover, byte 1 seeds the
//! frame cuts and message ends, the rest is compressed data.
//!
//! Invariants: no panic; a message never grows past `max_total + 1` bytes
//! (one byte past the cap is how overflow is detected) and its buffer's
//! capacity stays within `max_total + 64 KiB`; after an error the
//! connection would be failed, so we stop.
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::protocol::deflate::Inflater;
use cyclone::protocol::{DeflateParams, Role};

#[path = "../common/split.rs"]
mod split;

const MAX_TOTAL: usize = 64 * 1024;

fn check(out: &Vec<u8>) {
    assert!(out.len() <= MAX_TOTAL + 1, "inflated {} > cap {}", out.len(), MAX_TOTAL);
    assert!(
        out.capacity() <= MAX_TOTAL + 64 * 1024,
        "capacity {} for a {} cap",
        out.capacity(),
        MAX_TOTAL
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let params = DeflateParams {
        server_no_context_takeover: data[0] & 1 != 0,
        client_no_context_takeover: data[0] & 2 != 0,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let role = if data[0] & 4 == 0 { Role::Server } else { Role::Client };
    let mut inf = Inflater::new(params, role);
    let seed = u64::from(data[1]);
    let body = &data[2..];
    let mut out = Vec::new();
    let mut pos = 0;
    for (i, n) in split::chunk_lengths(seed, body.len()).into_iter().enumerate() {
        let frame = &body[pos..pos + n];
        pos += n;
        let r = inf.decompress(frame, &mut out, MAX_TOTAL);
        check(&out);
        if r.is_err() {
            return;
        }
        // Some frames end their message (finish feeds the stripped tail).
        let fin = (seed >> (i % 8)) & 1 == 1 || pos == body.len();
        if fin {
            let r = inf.finish(&mut out, MAX_TOTAL);
            check(&out);
            if r.is_err() {
                return;
            }
            out = Vec::new();
        }
    }
});
