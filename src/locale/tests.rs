use super::*;

include!("format_date_cases.rs");
include!("accept_language_cases.rs");

/// The translations `format_date_cases.rs` was printed with.
const ES_LA: &str = include_str!("../../tests/peers/locale/es_LA.csv");

fn es_la() -> Translations {
    let mut t = Translations::new();
    t.add_csv("es_LA", ES_LA);
    t
}

/// A locale with no translations, whatever its code.
fn bare(code: &str) -> Locale {
    let mut t = Translations::new();
    t.set_default_locale(code);
    t.get(code).expect("the default locale is supported")
}

#[test]
fn format_date_is_tornados() {
    let translations = es_la();
    let mut wrong = Vec::new();
    for &(code, date, gmt_offset, relative, shorter, full_format, want) in FORMAT_DATE {
        let locale = translations.get(code).unwrap_or_else(|| bare(code));
        let format = DateFormat {
            gmt_offset,
            relative,
            shorter,
            full_format,
        };
        let got = locale.format_date_us(date, NOW_US, format);
        if got != want {
            wrong.push(format!(
                "{code} {date} {format:?}: {got:?}, Tornado {want:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        FORMAT_DATE.len(),
        wrong.join("\n")
    );
    // The public form, through SystemTime.
    let now = UNIX_EPOCH + std::time::Duration::from_micros(NOW_US as u64);
    let date = now - std::time::Duration::from_secs(3 * 86_400);
    assert_eq!(
        bare("en_US").format_date_at(date, now, DateFormat::default()),
        "Wednesday at 9:30 pm"
    );
}

#[test]
fn format_day_names_the_weekday_and_month() {
    // 2026-12-05 21:30 UTC, a Saturday.
    let es = es_la().get("es_LA").unwrap();
    assert_eq!(
        bare("en_US").format_day_us(NOW_US, 0, true),
        "Saturday, December 5"
    );
    assert_eq!(bare("en_US").format_day_us(NOW_US, 0, false), "December 5");
    // Three hours ahead of UTC it is already Sunday the 6th.
    assert_eq!(
        bare("en_US").format_day_us(NOW_US, -180, true),
        "Sunday, December 6"
    );
    assert_eq!(es.format_day_us(NOW_US, 0, false), "diciembre 5");
    // A Monday, translated.
    assert_eq!(
        es.format_day_us(NOW_US + 2 * DAY_US, 0, true),
        "lunes, diciembre 7"
    );
}

#[test]
fn civil_dates_around_the_epoch_and_leap_days() {
    let at = |us: i64| {
        let c = civil(us);
        (c.year, c.month, c.day, c.weekday, c.hour, c.minute)
    };
    assert_eq!(at(0), (1970, 1, 1, 3, 0, 0));
    assert_eq!(at(-1), (1969, 12, 31, 2, 23, 59));
    // 2000-02-29 12:34 UTC (951827640 s), a Tuesday.
    assert_eq!(at(951_827_640 * SECOND_US), (2000, 2, 29, 1, 12, 34));
    // 2100-03-01 (4107542400 s): 2100 is not a leap year.
    assert_eq!(at(4_107_542_400 * SECOND_US), (2100, 3, 1, 0, 0, 0));
}

#[test]
fn translate_picks_the_plural_form_by_count() {
    let mut t = Translations::new();
    t.add_csv(
        "es_LA",
        "  \"I love you\" ,\"Te amo\"\n\
         \"%(name)s liked this\",\"A %(name)s les gustó esto\",\"plural\"\n\
         \"%(name)s liked this\",\"A %(name)s le gustó esto\",\"singular\"\n\
         \"only\"\n\
         \"bad\",\"malo\",\"dual\"\n\
         \"tab\",\"\ttabulado\u{1f}\",\"\"\n",
    );
    let es = t.get("es_LA").unwrap();
    // Fields are stripped as Python's str.strip() strips (U+001F too),
    // after the CSV is read: a quote after a space is part of the field.
    assert_eq!(es.translate("\"I love you\""), "Te amo");
    assert_eq!(es.translate("I love you"), "I love you");
    assert_eq!(es.translate("tab"), "tabulado");
    assert_eq!(es.translate("only"), "only");
    // A row with an unknown plural indicator is skipped.
    assert_eq!(es.translate("bad"), "bad");
    let liked = |n| es.translate_plural("%(name)s liked this", "%(name)s liked this", n);
    assert_eq!(liked(1), "A %(name)s le gustó esto");
    assert_eq!(liked(2), "A %(name)s les gustó esto");
    assert_eq!(liked(0), "A %(name)s les gustó esto");
    // No singular row for the plural message's singular: the message.
    assert_eq!(es.translate_plural("one", "many", 1), "one");
    assert_eq!(es.translate_plural("one", "many", 3), "many");
    assert_eq!(es.pgettext("law", "one"), "one");
    assert_eq!(es.pgettext_plural("law", "one", "many", 2), "many");
    // The default locale has no file: every string is its own.
    assert_eq!(
        t.get("en_US").unwrap().translate("I love you"),
        "I love you"
    );
    assert!(t.get("fr").is_none());
}

#[test]
fn get_closest_tries_each_code_then_its_language() {
    let mut t = Translations::new();
    for code in ["es", "es_LA", "pt_BR", "fr"] {
        t.add_csv(code, "");
    }
    let closest = |t: &Translations, codes: &[&str]| t.get_closest(codes).code().to_owned();
    assert_eq!(closest(&t, &["es-la"]), "es_LA");
    assert_eq!(closest(&t, &["ES_la"]), "es_LA");
    assert_eq!(closest(&t, &["es_MX"]), "es");
    assert_eq!(closest(&t, &["ES"]), "es");
    assert_eq!(closest(&t, &["", "pt-br"]), "pt_BR");
    assert_eq!(closest(&t, &["pt"]), "en_US");
    assert_eq!(closest(&t, &["es-MX-x", "fr_CA"]), "fr");
    assert_eq!(closest(&t, &["de"]), "en_US");
    assert_eq!(closest(&t, &[]), "en_US");
    assert_eq!(
        t.supported_locales(),
        ["en_US", "es", "es_LA", "fr", "pt_BR"]
    );
    t.set_default_locale("fr");
    assert_eq!(closest(&t, &["de"]), "fr");
    assert_eq!(t.supported_locales(), ["es", "es_LA", "fr", "pt_BR"]);
}

#[test]
fn accept_language_is_read_as_tornado_reads_it() {
    // ACCEPT_LANGUAGE: printed by Tornado 6.6.1's
    // RequestHandler.get_browser_locale with translations for these.
    let mut t = Translations::new();
    for code in ["es", "es_LA", "fr", "pt_BR", "de_DE"] {
        t.add_csv(code, "");
    }
    for &(header, default, want) in ACCEPT_LANGUAGE {
        let got = t.from_accept_language(header, default);
        assert_eq!(
            got.code(),
            want,
            "Accept-Language {header:?}, default {default:?}"
        );
    }
}

#[test]
fn load_reads_a_directory_of_csv_files_in_their_encodings() {
    let dir = std::env::temp_dir().join(format!("cyclone-locale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let utf16 = |text: &str, be: bool| -> Vec<u8> {
        let mut out = if be {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in text.encode_utf16() {
            out.extend(if be { u.to_be_bytes() } else { u.to_le_bytes() });
        }
        out
    };
    let files: &[(&str, Vec<u8>)] = &[
        ("es.csv", b"\"yes\",\"s\xc3\xad\"\n".to_vec()),
        ("fr.csv", b"\xef\xbb\xbf\"yes\",\"oui\"\r\n".to_vec()),
        ("de_DE.csv", utf16("\"yes\",\"ja\"\n", false)),
        ("ru.csv", utf16("\"yes\",\"да\"\n", true)),
        ("it.csv", b"\"yes\",\"s\xec\"\n".to_vec()),
        ("pt_br.csv", b"\"yes\",\"sim\"\n".to_vec()),
        ("es.old.csv", b"\"yes\",\"no\"\n".to_vec()),
        ("notes.txt", b"\"yes\",\"no\"\n".to_vec()),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let t = Translations::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // it.csv is Latin-1, not UTF-8: skipped. pt_br and es.old are not
    // locale names Tornado takes.
    assert_eq!(t.supported_locales(), ["de_DE", "en_US", "es", "fr", "ru"]);
    let yes = |code: &str| t.get(code).unwrap().translate("yes").to_owned();
    assert_eq!(yes("es"), "sí");
    assert_eq!(yes("fr"), "oui");
    assert_eq!(yes("de_DE"), "ja");
    assert_eq!(yes("ru"), "да");
    assert!(Translations::load(dir.join("missing")).is_err());
}

#[test]
fn list_and_friendly_number() {
    let en = bare("en_US");
    assert_eq!(en.list::<&str>(&[]), "");
    assert_eq!(en.list(&["a"]), "a");
    assert_eq!(en.list(&["a", "b"]), "a and b");
    assert_eq!(en.list(&["a", "b", "c"]), "a, b and c");
    assert_eq!(bare("fa_IR").list(&["a", "b", "c"]), "a \u{648} b and c");
    assert_eq!(
        es_la().get("es_LA").unwrap().list(&["a", "b", "c"]),
        "a, b y c"
    );
    assert_eq!(en.friendly_number(0), "0");
    assert_eq!(en.friendly_number(999), "999");
    assert_eq!(en.friendly_number(1000), "1,000");
    assert_eq!(en.friendly_number(1234567), "1,234,567");
    assert_eq!(en.friendly_number(-123456), "-123,456");
    assert_eq!(en.friendly_number(i64::MIN), "-9,223,372,036,854,775,808");
    assert_eq!(bare("en").friendly_number(1000), "1,000");
    assert_eq!(bare("de_DE").friendly_number(1000), "1000");
}

#[test]
fn names_and_direction() {
    assert_eq!(bare("es_LA").name(), "Español");
    assert_eq!(bare("es_LA").name_en(), "Spanish");
    assert_eq!(bare("zh_CN").name(), "中文(简体)");
    assert_eq!(bare("xx").name(), "Unknown");
    assert!(bare("ar_AR").rtl());
    assert!(bare("he_IL").rtl());
    assert!(bare("fa").rtl());
    assert!(!bare("en_US").rtl());
    assert!(names::NAMES.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
}

#[test]
fn format_named_fills_named_placeholders() {
    assert_eq!(
        format_named("%(a)s-%(b)d-%(a)i", &[("a", &"x"), ("b", &2)]),
        "x-2-x"
    );
    assert_eq!(
        format_named("100%% of %(n)s", &[("n", &"it")]),
        "100% of it"
    );
    // What Python would raise on is kept as written.
    assert_eq!(
        format_named("%(missing)s %s %(a)x %(a", &[("a", &1)]),
        "%(missing)s %s %(a)x %(a"
    );
    assert_eq!(format_named("trailing %", &[]), "trailing %");
    assert_eq!(format_named("ü%(a)sü", &[("a", &"é")]), "üéü");
}

#[test]
fn load_gettext_reads_lang_lc_messages_domain_mo() {
    let dir = std::env::temp_dir().join(format!("cyclone-gettext-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |lang: &str, domain: &str, bytes: &[u8]| {
        let d = dir.join(lang).join("LC_MESSAGES");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("{domain}.mo")), bytes).unwrap();
    };
    let header: &[u8] =
        b"Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n > 1);\n";
    write(
        "fr",
        "app",
        &gettext::write_mo(
            &[
                (b"", header),
                (b"Hello", b"Bonjour"),
                (b"%(n)s file\0%(n)s files", b"%(n)s fichier\0%(n)s fichiers"),
                (b"menu\x04Open", b"Ouvrir"),
                (
                    b"menu\x04%(n)s file\0%(n)s files",
                    b"%(n)s menu\0%(n)s menus",
                ),
            ],
            false,
        ),
    );
    write(
        "de",
        "other",
        &gettext::write_mo(&[(b"Hello", b"Hallo")], false),
    );
    write("es", "app", b"not a catalog");
    write(
        ".hidden",
        "app",
        &gettext::write_mo(&[(b"Hello", b"no")], false),
    );
    let t = Translations::load_gettext(&dir, "app").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(t.supported_locales(), ["en_US", "fr"]);
    let fr = t.get_closest(&["fr-FR"]);
    assert_eq!(fr.translate("Hello"), "Bonjour");
    // French: 0 and 1 are singular (plural=(n > 1)); CSV would say 0 files.
    let files = |n| fr.translate_plural("%(n)s file", "%(n)s files", n);
    assert_eq!(
        [files(0), files(1), files(2)],
        ["%(n)s fichier", "%(n)s fichier", "%(n)s fichiers"]
    );
    assert_eq!(fr.pgettext("menu", "Open"), "Ouvrir");
    // No entry in the context: the message, untranslated.
    assert_eq!(fr.pgettext("toolbar", "Hello"), "Hello");
    assert_eq!(
        fr.pgettext_plural("menu", "%(n)s file", "%(n)s files", 2),
        "%(n)s menus"
    );
    // No entry in the context with a plural: the plain plural translation.
    assert_eq!(
        fr.pgettext_plural("toolbar", "%(n)s file", "%(n)s files", 2),
        "%(n)s fichiers"
    );
    assert_eq!(fr.list(&["a", "b"]), "a and b");
    assert!(Translations::load_gettext(dir.join("missing"), "app").is_err());
}

#[test]
fn add_mo_refuses_what_is_not_a_catalog_and_keeps_the_rest() {
    let mut t = Translations::new();
    t.add_mo("fr", &gettext::write_mo(&[(b"Hello", b"Bonjour")], true))
        .unwrap();
    let err = t.add_mo("fr", b"\xde\x12\x04\x95garbage").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(t.get("fr").unwrap().translate("Hello"), "Bonjour");
}

/// Tornado's `load_gettext_translations` (`gettext.translation(domain,
/// dir, languages=["es_LA"])`) chains `es_LA`'s catalog to `es`'s: a
/// message `es_LA` lacks is `es`'s, and a plural it lacks goes by `es`'s
/// own rule. Python prints `Chau Hola` and the plural forms below.
#[test]
fn load_gettext_falls_back_to_the_language_catalog() {
    let dir = std::env::temp_dir().join(format!("cyclone-gettext-fallback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |lang: &str, entries: &[(&[u8], &[u8])]| {
        let d = dir.join(lang).join("LC_MESSAGES");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("app.mo"), gettext::write_mo(entries, false)).unwrap();
    };
    let header: &[u8] = b"Content-Type: text/plain; charset=UTF-8\n";
    write(
        "es",
        &[
            (b"", header),
            (b"Hello", b"Hola"),
            (b"Bye", b"Adios"),
            (b"file\0files", b"archivo\0archivos"),
        ],
    );
    write("es_LA", &[(b"", header), (b"Bye", b"Chau")]);
    let t = Translations::load_gettext(&dir, "app").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let es_la = t.get("es_LA").unwrap();
    assert_eq!(es_la.translate("Bye"), "Chau");
    assert_eq!(es_la.translate("Hello"), "Hola");
    assert_eq!(es_la.translate_plural("file", "files", 2), "archivos");
    assert_eq!(es_la.translate("Unknown"), "Unknown");
    // The language's own catalog has no fallback.
    assert_eq!(t.get("es").unwrap().translate("Bye"), "Adios");
}

/// A language's catalog is its own, where Tornado's `en` reads `en_US`'s
/// first (`gettext._expand_lang("en")` is `en_US.ISO8859-1`, `en_US`,
/// `en.ISO8859-1`, `en`). For these catalogs Tornado 6.6.1's
/// `load_gettext_translations` gives `get("en").translate` "us-a" and
/// "en-b", and `get("en_US")` the same; see [`Translations::load_gettext`].
#[test]
fn a_language_catalog_is_not_shadowed_by_its_default_country() {
    let dir = std::env::temp_dir().join(format!("cyclone-gettext-en-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let header: &[u8] = b"Content-Type: text/plain; charset=UTF-8\n";
    for (lang, entries) in [
        (
            "en",
            &[(&b""[..], header), (b"a", b"en-a"), (b"b", b"en-b")][..],
        ),
        ("en_US", &[(&b""[..], header), (b"a", b"us-a")][..]),
    ] {
        let d = dir.join(lang).join("LC_MESSAGES");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("app.mo"), gettext::write_mo(entries, false)).unwrap();
    }
    let t = Translations::load_gettext(&dir, "app").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let en = t.get("en").unwrap();
    assert_eq!((en.translate("a"), en.translate("b")), ("en-a", "en-b"));
    let us = t.get("en_US").unwrap();
    assert_eq!((us.translate("a"), us.translate("b")), ("us-a", "en-b"));
}

/// A catalog keeps a plural msgid once, however many forms it has (one
/// 100 KB msgid with 100,000 forms used to be copied per form: 10 GB for
/// a 200 KB file), and a later entry for the same msgid replaces form by
/// form, as Python's `catalog[(msgid1, i)] = x` does.
#[test]
fn mo_plural_forms_share_their_msgid_and_replace_form_by_form() {
    let mut id = vec![b'a'; 100_000];
    id.extend_from_slice(b"\0b");
    let forms = vec![0u8; 100_000];
    let mut t = Translations::new();
    t.add_mo("xx", &gettext::write_mo(&[(&id, &forms)], false))
        .unwrap();
    let long = std::str::from_utf8(&id[..100_000]).unwrap();
    assert_eq!(t.get("xx").unwrap().translate_plural(long, "b", 2), "");
    let mo = gettext::write_mo(
        &[(b"x\0xs", b"one\0two\0three"), (b"x\0xs", b"uno\0dos")],
        false,
    );
    let mut t = Translations::new();
    t.add_mo("yy", &mo).unwrap();
    let c = gettext::Catalog::parse(&mo).unwrap();
    assert_eq!(c.ngettext("x", "xs", 1), "uno");
    assert_eq!(c.ngettext("x", "xs", 2), "dos");
    assert_eq!(t.get("yy").unwrap().translate_plural("x", "xs", 1), "uno");
}
