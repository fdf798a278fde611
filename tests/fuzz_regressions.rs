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

/// http_stream, first seconds of fuzzing (its input, after the limits and
/// split bytes: `\r\n\nGET / HTTP/1/ HTTP:\x07GET //`, no line end after
/// the request line). Whole, the head is refused at once (httparse sees
/// the bad version before the line ends). Arriving in pieces, a head
/// is re-validated only when a line completes (once per line, so a peer
/// trickling bytes costs linear parsing, not the quadratic re-parse of
/// CVE-2023-43669): byte by byte it is still `Partial` at the end of the
/// input, and is refused the same way as soon as its line ends. Both
/// refuse the request; this pins that the split path does refuse it once
/// the line is complete (the harness expected the whole buffer's answer
/// at once; it was a harness expectation, not a bug). `HTTP/1/` is not
/// the `HTTP/D.D` shape: 400, not 505.
#[test]
fn malformed_last_line_is_refused_when_it_ends_when_trickled() {
    use cyclone::http::reader::{HeadPoll, RequestReader};
    let limits = HeadLimits {
        max_head_bytes: 64,
        max_headers: 1,
    };
    let stream = b"\r\n\nGET / HTTP/1/ HTTP:\x07GET //";

    let mut whole = RequestReader::new();
    whole.push(stream);
    assert_eq!(
        whole.poll_head(&limits),
        Err(ParseError::Malformed("bad version"))
    );

    let mut trickled = RequestReader::new();
    for b in stream {
        trickled.push(&[*b]);
        assert!(matches!(
            trickled.poll_head(&limits),
            Ok(HeadPoll::Idle | HeadPoll::Partial)
        ));
    }
    assert_eq!(trickled.buffered(), &stream[3..]);
    // What is buffered is refused as a whole, as the server does once
    // the line ends.
    assert_eq!(
        Request::parse_head(trickled.buffered(), &limits).err(),
        Some(ParseError::Malformed("bad version"))
    );
    trickled.push(b"\r");
    assert_eq!(trickled.poll_head(&limits), Ok(HeadPoll::Partial));
    trickled.push(b"\n");
    assert_eq!(
        trickled.poll_head(&limits),
        Err(ParseError::Malformed("bad version"))
    );
}

/// template, first minutes of fuzzing the `{% if %}` conditions (before
/// they were committed): a vertical tab (`\x0b`) is whitespace to
/// `char::is_whitespace`, which ends a word, but was not to
/// `u8::is_ascii_whitespace`, which skipped whitespace; the tokenizer read
/// an empty word at it forever and ran out of memory. Every whitespace
/// character now separates operands (Python takes only space, tab and
/// form feed; cyclone is the more lenient here).
#[test]
fn a_condition_with_a_vertical_tab_parses_without_looping() {
    use cyclone::web::Template;
    let v = serde_json::json!({"a": 1, "b": 1});
    for ws in ["\x0b", "\x0c", "\u{a0}", "\u{2003}", "\u{3000}"] {
        let src = format!("{{% if a{ws}=={ws}b %}}eq{{% end %}}");
        let t = Template::parse(&src).unwrap_or_else(|e| panic!("{ws:?}: {e}"));
        assert_eq!(t.render_value(&v).unwrap(), "eq", "{ws:?}");
    }
    // The fuzzer's input itself: refused, quickly.
    let found = b"&{% if a.b == 1 andelif 0 <= \xc8\0\0\0\0\0z\x0b{% end %y{% set k = 3.5 %}";
    assert!(Template::parse(&String::from_utf8_lossy(found)).is_err());
}

/// template, 180 s of fuzzing after `{% while %}` came in: a parent
/// template with `{% while f %}` (`f` is 1.5, so it never ends) ran the
/// whole 50 M step budget and timed out the fuzzer. The budget is what
/// stops it; with the fuzz target's 200,000 steps (`render_value_within`)
/// it ends at once with `TooLarge`.
#[test]
fn a_while_that_never_ends_stops_at_the_step_budget() {
    use cyclone::web::{Template, TemplateError};
    let parent = Template::parse("<h1>{% block a %}base{% end %}</h1>{% while f %}x{% end %}")
        .map(std::sync::Arc::new)
        .unwrap();
    let child =
        Template::parse_with_loader("{% extends \"a.html\" %}", |_| Ok(parent.clone())).unwrap();
    let err = child
        .render_value_within(&serde_json::json!({"f": 1.5}), 200_000, 1 << 20)
        .unwrap_err();
    assert!(
        matches!(err.innermost(), TemplateError::TooLarge(_)),
        "{err}"
    );
}

/// http_request and http_stream, 30 s runs in CI after the version rule
/// became `HTTP/D.D` (400 for anything else, 505 for that shape): httparse
/// refuses a version at its first byte past `HTTP/1.`, and a prefix that
/// ended there (`HTTP/0`, `HTTP/0.1`) was answered 505 while the whole
/// line (`HTTP/0.1\x0f`, `HTTP/0\xf3...`) is malformed (400). A version
/// still a beginning of the shape now waits for more, so every prefix's
/// first answer is the whole head's.
#[test]
fn a_version_is_judged_only_once_its_shape_is_decided() {
    let limits = HeadLimits {
        max_head_bytes: 1024,
        max_headers: 32,
    };
    let answer = |buf: &[u8]| match Request::parse_head(buf, &limits) {
        Ok(HeadStatus::Partial) => None,
        Ok(HeadStatus::Complete(..)) => Some(Ok(())),
        Err(e) => Some(Err(e)),
    };
    for (whole, want) in [
        (&b"\n\tPOST /p HTTP/0.1\x0f\nHost: 1\r\n\r\n"[..], 400),
        (b"\r\n\nGET /2 HTTP/0\xf3\xf3\xf3\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        (b"GET / HTTP/1.10\r\n\r\n", 400),
    ] {
        let first = (0..=whole.len())
            .find_map(|end| answer(&whole[..end]))
            .expect("an answer");
        assert_eq!(first, answer(whole).unwrap(), "{whole:?}");
        match first {
            Err(e) => assert_eq!(e.status(), want, "{whole:?}"),
            Ok(()) => panic!("accepted: {whole:?}"),
        }
    }
}
