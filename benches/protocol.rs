//! Criterion benchmarks of the sans-IO core: frame header codec, masking,
//! UTF-8 validation, message assembly, deflate/inflate, handshake parsing.
//! `cargo bench --bench protocol`; see benches/README.md for the
//! end-to-end harness.

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};

use cyclone::http::request::{HeadLimits, HeadStatus, Request};
use cyclone::protocol::deflate::{Deflater, Inflater};
use cyclone::protocol::frame::{encode_frame, FrameHeader};
use cyclone::protocol::handshake::{accept_key, check_upgrade};
use cyclone::protocol::mask::apply_mask;
use cyclone::protocol::utf8::Utf8Validator;
use cyclone::protocol::{
    CompressionOptions, DeflateParams, OpCode, Readout, Role, Session, SessionConfig,
};

fn frame_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header");
    for len in [16usize, 1024, 65536] {
        let mut buf = Vec::new();
        encode_frame(
            &mut buf,
            true,
            false,
            OpCode::Binary,
            &vec![0u8; len],
            Some([1, 2, 3, 4]),
        );
        g.bench_with_input(BenchmarkId::new("parse", len), &buf, |b, buf| {
            b.iter(|| FrameHeader::parse(black_box(buf)))
        });
        g.bench_with_input(BenchmarkId::new("encode", len), &len, |b, &len| {
            let mut out = Vec::with_capacity(16);
            let h = FrameHeader {
                fin: true,
                rsv1: false,
                rsv2: false,
                rsv3: false,
                opcode: 2,
                mask: None,
                payload_len: len as u64,
            };
            b.iter(|| {
                out.clear();
                black_box(&h).encode(&mut out);
            })
        });
    }
    g.finish();
}

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for len in [16usize, 1024, 65536] {
        let mut buf = vec![0xa5u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::from_parameter(len), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), [0x37, 0xfa, 0x21, 0x3d]))
        });
    }
    g.finish();
}

/// ASCII and multi-byte text (two-, three- and four-byte code points).
const TEXT_UNITS: [(&str, &str); 2] = [("ascii", "hello world, "), ("mixed", "héllo wörld ✓ 😀 ")];

/// `unit` repeated to at most `len` bytes, cut at a character boundary.
fn text_of(unit: &str, len: usize) -> String {
    let mut text = unit.repeat(len / unit.len() + 1);
    let mut cut = len;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    // Whole messages of the sizes the end-to-end scenarios send (32 B in b,
    // 1 KiB in g) and a large one: std's validator against simdutf8's two
    // flavours (`basic`: valid or not; `compat`: std's error details).
    for (name, unit) in TEXT_UNITS {
        for len in [32usize, 64, 128, 1024, 65536] {
            let text = text_of(unit, len);
            let bytes = text.as_bytes();
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_function(format!("std_{name}/{len}"), |b| {
                b.iter(|| std::str::from_utf8(black_box(bytes)).is_ok())
            });
            g.bench_function(format!("simdutf8_basic_{name}/{len}"), |b| {
                b.iter(|| simdutf8::basic::from_utf8(black_box(bytes)).is_ok())
            });
            g.bench_function(format!("simdutf8_compat_{name}/{len}"), |b| {
                b.iter(|| simdutf8::compat::from_utf8(black_box(bytes)).is_ok())
            });
            g.bench_function(format!("validator_{name}/{len}"), |b| {
                b.iter(|| {
                    let mut v = Utf8Validator::new();
                    v.feed(black_box(bytes)).unwrap();
                    v.finish().unwrap();
                })
            });
        }
    }
    // A fragmented or compressed text message is checked as it arrives
    // (the validator above) and then becomes a `String`: std's
    // `String::from_utf8` (checks again in place) against `into_string`
    // (simdutf8 and a copy when the text starts with non-ASCII), which is
    // what `Session` does.
    for (name, unit) in TEXT_UNITS {
        for len in [64usize, 1024, 65536] {
            let text = text_of(unit, len);
            let bytes = text.as_bytes();
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_function(format!("string_std_{name}/{len}"), |b| {
                b.iter_batched(
                    || bytes.to_vec(),
                    |v| String::from_utf8(v).unwrap(),
                    BatchSize::SmallInput,
                )
            });
            g.bench_function(format!("string_into_{name}/{len}"), |b| {
                b.iter_batched(
                    || bytes.to_vec(),
                    |v| cyclone::protocol::utf8::into_string(v).unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    let ascii = "hello world, ".repeat(5000);
    let mixed = "héllo wörld ✓ 😀 ".repeat(3000);
    for (name, text) in [("ascii", &ascii), ("mixed", &mixed)] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("incremental_{name}_4k_chunks"), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for chunk in text.as_bytes().chunks(4096) {
                    v.feed(chunk).unwrap();
                }
                v.finish().unwrap();
            })
        });
    }
    g.finish();
}

fn assembly(c: &mut Criterion) {
    // 1,000 masked continuation fragments of 64 bytes each, one message.
    let mut wire = Vec::new();
    let frag = vec![b'x'; 64];
    for i in 0..1000 {
        let op = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        encode_frame(&mut wire, i == 999, false, op, &frag, Some([9, 8, 7, 6]));
    }
    let mut g = c.benchmark_group("assembly");
    g.throughput(Throughput::Bytes(64_000));
    g.bench_function("1000_fragments", |b| {
        let mut input = wire.clone();
        let mut out = Vec::new();
        b.iter(|| {
            input.copy_from_slice(&wire);
            let mut s = Session::new(
                Role::Server,
                SessionConfig::default(),
                None,
                &CompressionOptions::default(),
            );
            let mut pos = 0;
            let mut msgs = 0;
            while pos < input.len() {
                let Readout { consumed, event } =
                    s.read_event(&mut input[pos..], &mut out).unwrap();
                pos += consumed;
                msgs += event.is_some() as usize;
            }
            assert_eq!(msgs, 1);
        })
    });
    g.finish();
}

fn deflate(c: &mut Criterion) {
    let mut json = String::from("[");
    let mut i = 0;
    while json.len() < 16 * 1024 {
        json.push_str(&format!(
            r#"{{"id":{i},"name":"user{i}","score":{},"active":true}},"#,
            i * 37 % 1000
        ));
        i += 1;
    }
    json.push('{');
    json.push('}');
    json.push(']');
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let mut g = c.benchmark_group("deflate_16k_json");
    g.throughput(Throughput::Bytes(json.len() as u64));
    for level in [1u32, 6] {
        g.bench_function(format!("compress_level{level}"), |b| {
            let mut d = Deflater::new(params, Role::Server, level);
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                d.compress(black_box(json.as_bytes()), &mut out);
            })
        });
    }
    let mut compressed = Vec::new();
    Deflater::new(params, Role::Client, 6).compress(json.as_bytes(), &mut compressed);
    g.bench_function("inflate", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            // A fresh inflater per message: the compressed input was made by a fresh deflater.
            let mut inf = Inflater::new(params, Role::Server);
            out.clear();
            inf.decompress(black_box(&compressed), &mut out, 1 << 20)
                .unwrap();
            inf.finish(&mut out, 1 << 20).unwrap();
        })
    });
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let raw = b"GET /chat?room=1 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:9001\r\n\r\n";
    let limits = HeadLimits {
        max_head_bytes: 16384,
        max_headers: 100,
    };
    c.bench_function("handshake/parse_and_accept", |b| {
        b.iter(|| {
            let HeadStatus::Complete(req, _) =
                Request::parse_head(black_box(raw), &limits).unwrap()
            else {
                panic!("partial")
            };
            let headers: Vec<(&str, &[u8])> = req.headers().collect();
            let up = check_upgrade(req.method(), req.version_minor(), &headers).unwrap();
            black_box(accept_key(up.key));
        })
    });
}

/// The accept key alone: SHA-1 of the 24-byte key and the GUID (two
/// blocks) and base64, once per handshake.
fn accept(c: &mut Criterion) {
    c.bench_function("handshake/accept_key", |b| {
        b.iter(|| accept_key(black_box(b"dGhlIHNhbXBsZSBub25jZQ==")))
    });
}

criterion_group!(
    benches,
    frame_header,
    mask,
    utf8,
    assembly,
    deflate,
    handshake,
    accept
);
criterion_main!(benches);
