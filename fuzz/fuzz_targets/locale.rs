//! Translation files: CSV (`Translations::add_csv`, what
//! `load_translations` reads) and GNU gettext `.mo` catalogs
//! (`Translations::add_mo`, with their `Plural-Forms` expressions), then
//! every `Locale` method over them, and `Accept-Language` parsing.
//! Translation files usually come with the application, but a catalog
//! from a translators' tool or a header from anyone must not bring the
//! loop down.
//!
//! Input: the first byte's low bit picks CSV (0) or `.mo` (1); the rest is
//! the file (lossily decoded as UTF-8 for CSV), and also, lossily decoded,
//! an `Accept-Language` header.
//!
//! Invariants: no panic; a message the catalog does not hold (one with
//! NULs, unless the input has it) comes back as it is; the same call gives the same answer twice; the locale an
//! `Accept-Language` header picks is a supported one.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

use cyclone::locale::{DateFormat, Translations};

/// A message no catalog of this target holds (it has a NUL).
const ABSENT: &str = "\u{0}absent\u{0}";

fuzz_target!(|data: &[u8]| {
    let Some((&kind, file)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(file);
    let mut t = Translations::new();
    if kind & 1 == 0 {
        t.add_csv("xx", &text);
    } else if t.add_mo("xx", file).is_err() {
        assert_eq!(t.supported_locales(), ["en_US"]);
        return;
    }
    let locale = t.get("xx").expect("just added");
    let words: Vec<&str> = text.split(['\n', ',', '\0']).take(16).collect();
    for (i, w) in words.iter().enumerate() {
        let other = words.get(i + 1).copied().unwrap_or("");
        let _ = locale.translate(w);
        assert_eq!(locale.translate(w), locale.translate(w));
        for n in [i64::MIN, -1, 0, 1, 2, 5, 11, 21, 101, i64::MAX] {
            let a = locale.translate_plural(w, other, n);
            assert_eq!(a, locale.translate_plural(w, other, n));
            let _ = locale.pgettext_plural(other, w, other, n);
        }
        let _ = locale.pgettext(other, w);
    }
    // Unless the file itself translates it (a fuzzer writes NULs too).
    if !data.windows(ABSENT.len()).any(|w| w == ABSENT.as_bytes()) {
        assert_eq!(locale.translate(ABSENT), ABSENT);
    }
    let _ = locale.list(&words);
    let _ = locale.friendly_number(i64::MIN);
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for secs in [0u64, 1_799_999_990, 1_799_990_000, 1_700_000_000] {
        let date = UNIX_EPOCH + Duration::from_secs(secs);
        for gmt_offset in [i64::MIN, -600, 0, 300, i64::MAX] {
            let format = DateFormat {
                gmt_offset,
                ..DateFormat::default()
            };
            let _ = locale.format_date_at(date, now, format);
            let _ = locale.format_day(date, gmt_offset, true);
        }
    }
    let picked = t.from_accept_language(Some(&text), "en_US");
    assert!(t.supported_locales().contains(&picked.code()));
});
