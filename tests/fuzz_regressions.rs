//! Inputs found by the fuzz targets under `fuzz/`, replayed through the
//! same APIs (`scripts/fuzz` runs the targets; a crash lands in
//! `fuzz/artifacts/<target>/` and becomes a test here).

use cyclone::http::request::{HeadLimits, HeadStatus, ParseError, Request};

/// http_request, first seconds of fuzzing: with `max_head_bytes = 64` a
/// request that is still incomplete after 89 bytes is refused with
/// `HeadTooLarge` (431) as soon as those bytes are seen, while the whole
/// buffer parses to `Malformed("bad token")` (400) because of a bad byte
/// further on. Both refuse the request; a server reading incrementally
/// answers 431 without waiting for the rest. This pins that behaviour
/// (the harness accepts it; it was a harness expectation, not a bug).
#[test]
fn head_too_large_on_a_prefix_is_a_refusal_like_the_whole() {
    let limits = HeadLimits {
        max_head_bytes: 64,
        max_headers: 32,
    };
    let mut whole = b"GET /".to_vec();
    whole.extend(std::iter::repeat_n(b'a', 84));
    assert_eq!(whole.len(), 89);
    whole.extend_from_slice(b" HTTP/1.1\r\nBad Name: x\r\n\r\n");

    let prefix = &whole[..89];
    match Request::parse_head(prefix, &limits) {
        Err(ParseError::HeadTooLarge) => {}
        other => panic!("prefix: {other:?}"),
    }
    match Request::parse_head(&whole, &limits) {
        Err(ParseError::Malformed(_)) => {}
        other => panic!("whole: {other:?}"),
    }
    // Within the limit, every prefix is Partial until the error shows.
    for end in 0..=64 {
        assert!(matches!(
            Request::parse_head(&whole[..end], &limits),
            Ok(HeadStatus::Partial)
        ));
    }
}
