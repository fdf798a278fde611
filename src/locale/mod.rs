//! Translations and locale-aware formatting: Tornado's `tornado.locale`.
//!
//! Translations are CSV files named after their locale (`es_LA.csv`), two
//! or three columns each: the English string, its translation, and an
//! optional plural indicator (`plural`, `singular`, or `unknown`/empty):
//!
//! ```text
//! "I love you","Te amo"
//! "%(name)s liked this","A %(name)s les gustó esto","plural"
//! "%(name)s liked this","A %(name)s le gustó esto","singular"
//! ```
//!
//! [`load_translations`] reads a directory of them for the whole process
//! (every worker of [`run_workers`](crate::run_workers) too), as Tornado's
//! function of that name does. A handler's
//! [`RequestContext::locale`](crate::web::RequestContext::locale) is then
//! the closest supported locale to the browser's `Accept-Language` (or what
//! [`RequestHandler::get_user_locale`](crate::web::RequestHandler::get_user_locale)
//! chose), and templates call `_("...")`, `pgettext(..)` and
//! `locale.format_date(..)` with it. Without translations every string is
//! its own translation and every locale but the default is unsupported.
//!
//! ```
//! use cyclone::locale::{Locale, Translations};
//!
//! let mut translations = Translations::new();
//! translations.add_csv("es_LA", "\"I love you\",\"Te amo\"\n\
//!     \"%(name)s liked this\",\"A %(name)s le gustó esto\",\"singular\"\n");
//! let es = translations.get_closest(&["es-la", "en"]);
//! assert_eq!(es.code(), "es_LA");
//! assert_eq!(es.translate("I love you"), "Te amo");
//! let liked = es.translate_plural("%(name)s liked this", "%(names)s liked this", 1);
//! assert_eq!(cyclone::locale::format_named(liked, &[("name", &"Ana")]), "A Ana le gustó esto");
//! assert_eq!(es.list(&["a", "b", "c"]), "a, b and c");
//! // The process-wide translations are empty until `load_translations`.
//! assert_eq!(Locale::get_closest(&["es_LA"]).code(), "en_US");
//! ```
//!
//! Where cyclone differs from Tornado 6.6:
//! - A file that cannot be read or decoded, or whose name has more than one
//!   dot, is logged and skipped; Tornado raises out of `load_translations`.
//!   Each file's encoding is detected from its own byte-order mark (Tornado
//!   keeps the first file's for the rest of the directory).
//! - Translations loaded again are in every locale asked for afterwards
//!   (Tornado keeps handing out the `Locale` objects it made before).
//! - [`Locale::friendly_number`] keeps a minus sign out of the groups:
//!   `-123,456` where Tornado writes `-,123,456`.
//! - A gettext plural expression that divides by zero gives the message
//!   (Python raises `ZeroDivisionError` out of `ngettext`).
//! - A language's gettext catalog (`en`) is its own: see
//!   [`Translations::load_gettext`]. In Tornado, `en` reads the catalog of
//!   `en_US` first when both exist.

mod csv;
mod gettext;
mod names;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Display};
use std::io;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The locale whose strings the application is written in, unless
/// [`set_default_locale`] says otherwise.
pub const DEFAULT_LOCALE: &str = "en_US";

/// The translations of one locale.
#[derive(Debug)]
enum Table {
    Csv(CsvTable),
    Gettext(Arc<gettext::Catalog>),
}

/// A CSV file's translations: message to translation, by plural form.
#[derive(Debug, Default)]
struct CsvTable {
    unknown: HashMap<String, String>,
    singular: HashMap<String, String>,
    plural: HashMap<String, String>,
}

impl Table {
    fn is_empty(&self) -> bool {
        match self {
            Table::Csv(t) => t.unknown.is_empty() && t.singular.is_empty() && t.plural.is_empty(),
            Table::Gettext(c) => c.is_empty(),
        }
    }
}

/// A set of translations and the default locale: what
/// [`load_translations`] installs for the process, or a value of its own
/// (translations compiled in with `include_str!`, tests).
#[derive(Debug, Clone)]
pub struct Translations {
    default: Cow<'static, str>,
    tables: BTreeMap<String, Arc<Table>>,
}

impl Default for Translations {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's translations ([`load_translations`], [`set_default_locale`]).
static INSTALLED: RwLock<Translations> = RwLock::new(Translations::new());

fn installed() -> std::sync::RwLockReadGuard<'static, Translations> {
    INSTALLED.read().unwrap_or_else(PoisonError::into_inner)
}

impl Translations {
    /// No translations; the default locale is [`DEFAULT_LOCALE`].
    pub const fn new() -> Self {
        Translations {
            default: Cow::Borrowed(DEFAULT_LOCALE),
            tables: BTreeMap::new(),
        }
    }

    /// Reads every `LOCALE.csv` in `dir` (Tornado's `load_translations`):
    /// UTF-16 when the file starts with its byte-order mark, else UTF-8
    /// (with or without one). A name that is not `xx.csv` or `xx_YY.csv`
    /// (lower-case language, upper-case region), a file that cannot be read
    /// or decoded, and a row whose plural indicator is not `plural`,
    /// `singular` or `unknown` are logged as errors and skipped; rows with
    /// fewer than two fields are skipped silently. Fields are stripped of
    /// surrounding whitespace.
    ///
    /// # Errors
    /// The directory itself cannot be listed.
    pub fn load(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref();
        let mut out = Translations::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    log::error!("load_translations: listing {}: {e}", dir.display());
                    continue;
                }
            };
            let file_name = entry.file_name();
            let name = file_name.to_string_lossy();
            let Some(code) = name.strip_suffix(".csv") else {
                continue;
            };
            let path = entry.path();
            if code.contains('.') || !is_locale_code(code) {
                log::error!(
                    "load_translations: unrecognized locale {code:?} (path: {}): skipped",
                    path.display()
                );
                continue;
            }
            let text = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(decode)
            {
                Ok(text) => text,
                Err(e) => {
                    log::error!("load_translations: {}: {e}: skipped", path.display());
                    continue;
                }
            };
            out.add_csv_from(code, &text, &name);
        }
        log::debug!("supported locales: {:?}", out.supported_locales());
        Ok(out)
    }

    /// Adds (or replaces) the translations of `code` from the text of a CSV
    /// file in [`load`](Self::load)'s format.
    pub fn add_csv(&mut self, code: &str, csv: &str) {
        self.add_csv_from(code, csv, code);
    }

    fn add_csv_from(&mut self, code: &str, csv: &str, file: &str) {
        let mut table = CsvTable::default();
        for (i, row) in csv::records(csv).into_iter().enumerate() {
            if row.len() < 2 {
                continue;
            }
            let cell = |n: usize| row.get(n).map(|c| c.trim_matches(py_space));
            let (english, translation) = (cell(0).unwrap_or(""), cell(1).unwrap_or(""));
            let map = match cell(2).unwrap_or("") {
                "" | "unknown" => &mut table.unknown,
                "singular" => &mut table.singular,
                "plural" => &mut table.plural,
                other => {
                    log::error!(
                        "load_translations: unrecognized plural indicator {other:?} in {file} \
                         line {}: skipped",
                        i + 1
                    );
                    continue;
                }
            };
            map.insert(english.to_owned(), translation.to_owned());
        }
        self.tables
            .insert(code.to_owned(), Arc::new(Table::Csv(table)));
    }

    /// Adds (or replaces) the translations of `code` from the bytes of a
    /// GNU gettext `.mo` catalog, read as
    /// [`load_gettext`](Self::load_gettext) reads each (a catalog compiled
    /// in with `include_bytes!`, say).
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidData`] for bytes that are not a catalog
    /// Python's `gettext` reads (bad magic number or version, offsets past
    /// the end, text not in its charset, a `Plural-Forms` expression
    /// `c2py` refuses); the translations in place are kept.
    pub fn add_mo(&mut self, code: &str, mo: &[u8]) -> io::Result<()> {
        let catalog = parse_mo(mo)?;
        self.tables
            .insert(code.to_owned(), Arc::new(Table::Gettext(Arc::new(catalog))));
        Ok(())
    }

    /// Reads GNU gettext catalogs, `dir/LANG/LC_MESSAGES/DOMAIN.mo` for
    /// each `LANG` (Tornado's `load_gettext_translations`), as Python's
    /// `gettext` reads them: their plural forms by the header's
    /// `Plural-Forms` (`n != 1` without one), `msgctxt` contexts for
    /// [`Locale::pgettext`], and the UTF-8, ASCII or Latin-1 `charset` of
    /// `Content-Type`. A catalog that cannot be read is logged and skipped.
    /// A country's catalog (`es_LA`) falls back to its language's (`es`)
    /// for the messages it lacks, as `gettext.translation` chains them.
    ///
    /// One difference: Tornado asks `gettext.translation(domain, dir,
    /// languages=[lang])` for each directory, and Python expands `lang`
    /// through `locale.normalize`'s alias table first (`gettext._expand_lang`):
    /// `en` becomes `en_US.ISO8859-1`, `en_US`, `en.ISO8859-1`, `en`, and
    /// every one of those directories that exists joins the chain in that
    /// order. So in Tornado the `en` locale reads `en_US`'s catalog first
    /// and its own only for what `en_US` lacks (likewise `es` after
    /// `es_ES`, `fr` after `fr_FR`, `pt` after `pt_PT`, `zh` after
    /// `zh_CN`, `ja` after `ja_JP`: the alias table's default country),
    /// and directories named with a codeset (`pt.ISO8859-1`) join the chains
    /// too. Here a language's catalog is its own and a country's falls back
    /// to its language's only: matching Python would mean carrying its
    /// alias table (about 1,000 entries, changing between Python versions)
    /// to shadow the translations a `en` directory was written to hold.
    ///
    /// # Errors
    /// The directory itself cannot be listed.
    pub fn load_gettext(dir: impl AsRef<Path>, domain: &str) -> io::Result<Self> {
        let mut catalogs = read_catalogs(dir.as_ref(), domain)?;
        // Languages (no `_`) first, so that each country finds its own.
        catalogs.sort_by_key(|(code, _)| code.contains('_'));
        let mut out = Translations::new();
        for (code, mut catalog) in catalogs {
            if let Some((lang, _)) = code.split_once('_') {
                catalog.fallback = match out.tables.get(lang).map(|t| &**t) {
                    Some(Table::Gettext(c)) => Some(c.clone()),
                    _ => None,
                };
            }
            out.tables
                .insert(code, Arc::new(Table::Gettext(Arc::new(catalog))));
        }
        log::debug!("supported locales: {:?}", out.supported_locales());
        Ok(out)
    }

    /// Sets the locale the application's strings are written in: it needs
    /// no file, and it is what [`get_closest`](Self::get_closest) falls
    /// back to.
    pub fn set_default_locale(&mut self, code: &str) {
        self.default = Cow::Owned(code.to_owned());
    }

    /// The default locale's code.
    pub fn default_locale(&self) -> &str {
        &self.default
    }

    /// Every locale with translations, and the default one, sorted.
    pub fn supported_locales(&self) -> Vec<&str> {
        let mut codes: Vec<&str> = self.tables.keys().map(String::as_str).collect();
        if !self.tables.contains_key(&*self.default) {
            codes.push(&self.default);
            codes.sort_unstable();
        }
        codes
    }

    fn supports(&self, code: &str) -> bool {
        code == self.default || self.tables.contains_key(code)
    }

    /// The locale `code` if it is supported (Tornado's `Locale.get`, which
    /// asserts it is).
    pub fn get(&self, code: &str) -> Option<Locale> {
        self.supports(code).then(|| self.locale(code))
    }

    /// The locale `code` with its translations, if it has any.
    fn locale(&self, code: &str) -> Locale {
        Locale {
            code: code.to_owned(),
            table: self.tables.get(code).cloned(),
        }
    }

    /// The first of `codes` that is supported, either as written (after
    /// `-` becomes `_` and a two-part code is cased `xx_YY`) or by its
    /// language alone (`es` for `es_MX`); else the default locale
    /// (Tornado's `Locale.get_closest`). Codes of more than two parts are
    /// passed over.
    pub fn get_closest(&self, codes: &[&str]) -> Locale {
        for code in codes {
            if code.is_empty() {
                continue;
            }
            let code = code.replace('-', "_");
            let parts: Vec<&str> = code.split('_').collect();
            let cased;
            let full = match parts.as_slice() {
                [_] => code.as_str(),
                [lang, region] => {
                    cased = format!("{}_{}", lang.to_lowercase(), region.to_uppercase());
                    &cased
                }
                _ => continue,
            };
            if let Some(locale) = self.get(full) {
                return locale;
            }
            if let Some(locale) = self.get(&parts[0].to_lowercase()) {
                return locale;
            }
        }
        self.locale(&self.default)
    }

    /// The locale an `Accept-Language` header asks for (Tornado's
    /// `get_browser_locale`): its languages by `q` value, highest first
    /// (equal values in the header's order; a missing `q` is 1, one that is
    /// not a number counts as 0, and languages at 0 are left out), given to
    /// [`get_closest`](Self::get_closest); `default` when the header is
    /// missing or names nothing.
    pub fn from_accept_language(&self, header: Option<&str>, default: &str) -> Locale {
        let mut langs: Vec<(&str, f64)> = Vec::new();
        for language in header.unwrap_or("").split(',') {
            let mut parts = language.trim_matches(py_space).split(';');
            let code = parts.next().unwrap_or("");
            let score = match parts.next() {
                Some(p) if p.trim_matches(py_space).starts_with("q=") => {
                    let q = p.trim_matches(py_space)[2..].trim_matches(py_space);
                    // Python's `float()`, but for digits grouped with `_`
                    // (`1_0`), which count as 0 here.
                    match q.parse::<f64>() {
                        Ok(s) if s >= 0.0 => s,
                        _ => 0.0,
                    }
                }
                _ => 1.0,
            };
            if score > 0.0 {
                langs.push((code, score));
            }
        }
        if header.is_none() || langs.is_empty() {
            return self.get_closest(&[default]);
        }
        langs.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
        let codes: Vec<&str> = langs.iter().map(|(c, _)| *c).collect();
        self.get_closest(&codes)
    }

    /// Makes these the process's translations (what [`load_translations`]
    /// does with the ones it reads).
    pub fn install(self) {
        *INSTALLED.write().unwrap_or_else(PoisonError::into_inner) = self;
    }
}

/// `[a-z]+(_[A-Z]+)?`: the locale codes `load_translations` takes from
/// file names.
fn is_locale_code(code: &str) -> bool {
    let (lang, region) = match code.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (code, None),
    };
    !lang.is_empty()
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_uppercase()))
}

/// A translation file's text: UTF-16 after its byte-order mark, else UTF-8
/// with an optional one (Python's `utf-16` and `utf-8-sig`).
fn decode(bytes: Vec<u8>) -> Result<String, String> {
    let utf16 = |bytes: &[u8], be: bool| {
        if bytes.len() % 2 != 0 {
            return Err("UTF-16 text of an odd number of bytes".to_string());
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|p| {
                if be {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    u16::from_le_bytes([p[0], p[1]])
                }
            })
            .collect();
        String::from_utf16(&units).map_err(|e| format!("not UTF-16: {e}"))
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
        [0xEF, 0xBB, 0xBF, rest @ ..] => {
            String::from_utf8(rest.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
        }
        _ => String::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}")),
    }
}

/// Python's `str.isspace`, which `str.strip()` strips.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Reads the translations in `dir` ([`Translations::load`]) and makes them
/// the process's, keeping the default locale (Tornado's
/// `tornado.locale.load_translations`). Call it before the loop starts.
///
/// # Errors
/// The directory cannot be listed; the translations in place are kept.
pub fn load_translations(dir: impl AsRef<Path>) -> io::Result<()> {
    install_keeping_default(Translations::load(dir)?);
    Ok(())
}

/// Makes `loaded` the process's translations, with the default locale
/// the process had ([`set_default_locale`] is a setting of its own).
fn install_keeping_default(mut loaded: Translations) {
    loaded.default = installed().default.clone();
    loaded.install();
}

/// Reads the gettext catalogs in `dir` ([`Translations::load_gettext`])
/// and makes them the process's, keeping the default locale (Tornado's
/// `load_gettext_translations(directory, domain)`).
///
/// # Errors
/// The directory cannot be listed; the translations in place are kept.
pub fn load_gettext_translations(dir: impl AsRef<Path>, domain: &str) -> io::Result<()> {
    install_keeping_default(Translations::load_gettext(dir, domain)?);
    Ok(())
}

/// Sets the process's default locale ([`Translations::set_default_locale`];
/// Tornado's `set_default_locale`).
pub fn set_default_locale(code: &str) {
    INSTALLED
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .set_default_locale(code);
}

/// The process's supported locales (Tornado's `get_supported_locales`).
pub fn get_supported_locales() -> Vec<String> {
    installed()
        .supported_locales()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The closest of `codes` among the process's locales (Tornado's
/// `tornado.locale.get`): [`Locale::get_closest`].
pub fn get(codes: &[&str]) -> Locale {
    Locale::get_closest(codes)
}

/// A locale: its code, its name, and its translations (Tornado's
/// `tornado.locale.Locale`). Cloning it is cheap.
#[derive(Debug, Clone)]
pub struct Locale {
    code: String,
    table: Option<Arc<Table>>,
}

/// Two locales are equal when their codes are.
impl PartialEq for Locale {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}

/// How [`Locale::format_date`] writes a date (Tornado's keyword arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateFormat {
    /// Minutes the reader's clock is behind UTC (JavaScript's
    /// `getTimezoneOffset()`: 300 for New York in winter, -60 for Paris).
    pub gmt_offset: i64,
    /// "2 minutes ago", "yesterday at 1:05 pm" for recent dates.
    pub relative: bool,
    /// Without the time of day.
    pub shorter: bool,
    /// Always "July 10, 1980 at 1:05 pm".
    pub full_format: bool,
}

impl Default for DateFormat {
    fn default() -> Self {
        DateFormat {
            gmt_offset: 0,
            relative: true,
            shorter: false,
            full_format: false,
        }
    }
}

const SECOND_US: i64 = 1_000_000;
const DAY_US: i64 = 86_400 * SECOND_US;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A moment's calendar fields (proleptic Gregorian).
struct Civil {
    year: i64,
    month: usize,
    day: u32,
    /// Monday is 0, as Python's `weekday()`.
    weekday: usize,
    hour: i64,
    minute: i64,
}

/// The calendar fields of `us` microseconds after the Unix epoch (Howard
/// Hinnant's `civil_from_days`).
fn civil(us: i64) -> Civil {
    let days = us.div_euclid(DAY_US);
    let in_day = us.rem_euclid(DAY_US) / SECOND_US;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month: month as usize,
        day,
        // 1970-01-01 was a Thursday (3).
        weekday: (days + 3).rem_euclid(7) as usize,
        hour: in_day / 3600,
        minute: in_day / 60 % 60,
    }
}

/// Microseconds since the Unix epoch (negative before it), saturating.
fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

impl Locale {
    /// [`Translations::get_closest`] in the process's translations.
    pub fn get_closest(codes: &[&str]) -> Locale {
        installed().get_closest(codes)
    }

    /// [`Translations::get`] in the process's translations.
    pub fn get(code: &str) -> Option<Locale> {
        installed().get(code)
    }

    /// [`Translations::from_accept_language`] in the process's
    /// translations (Tornado's `RequestHandler.get_browser_locale`).
    pub fn from_accept_language(header: Option<&str>, default: &str) -> Locale {
        installed().from_accept_language(header, default)
    }

    /// The locale's code (`es_LA`).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The locale's name in its own language (`Español`), or `Unknown`.
    pub fn name(&self) -> &'static str {
        self.names().map_or("Unknown", |(_, native)| native)
    }

    /// The locale's name in English (`Spanish`), or `Unknown`.
    pub fn name_en(&self) -> &'static str {
        self.names().map_or("Unknown", |(english, _)| english)
    }

    fn names(&self) -> Option<(&'static str, &'static str)> {
        let at = names::NAMES
            .binary_search_by(|(code, _, _)| (*code).cmp(self.code.as_str()))
            .ok()?;
        let (_, english, native) = names::NAMES[at];
        Some((english, native))
    }

    /// Whether the language is written right to left (Farsi, Arabic,
    /// Hebrew).
    pub fn rtl(&self) -> bool {
        ["fa", "ar", "he"].iter().any(|p| self.code.starts_with(p))
    }

    fn csv_lookup<'a>(
        &'a self,
        map: impl Fn(&CsvTable) -> &HashMap<String, String>,
        message: &'a str,
    ) -> &'a str {
        match self.table.as_deref() {
            Some(Table::Csv(t)) => map(t).get(message).map_or(message, String::as_str),
            _ => message,
        }
    }

    /// `message` translated, or `message` itself (Tornado's
    /// `translate(message)`).
    pub fn translate<'a>(&'a self, message: &'a str) -> &'a str {
        match self.table.as_deref() {
            Some(Table::Gettext(c)) => c.gettext(message),
            _ => self.csv_lookup(|t| &t.unknown, message),
        }
    }

    /// `message` translated when `count` is 1, else `plural_message`
    /// translated (Tornado's `translate(message, plural_message, count)`);
    /// with gettext catalogs, the form the catalog's `Plural-Forms` picks
    /// for `count`.
    pub fn translate_plural<'a>(
        &'a self,
        message: &'a str,
        plural_message: &'a str,
        count: i64,
    ) -> &'a str {
        self.translate_count(message, plural_message, count, count == 1)
    }

    /// [`translate_plural`](Self::translate_plural) with the count's test
    /// for CSV translations (`count == 1`, Python's equality) already made.
    pub(crate) fn translate_count<'a>(
        &'a self,
        message: &'a str,
        plural_message: &'a str,
        count: i64,
        one: bool,
    ) -> &'a str {
        match self.table.as_deref() {
            Some(Table::Gettext(c)) => c.ngettext(message, plural_message, count),
            _ if one => self.csv_lookup(|t| &t.singular, message),
            _ => self.csv_lookup(|t| &t.plural, plural_message),
        }
    }

    /// Whether the plural form depends on the count itself (gettext), not
    /// only on whether it is 1 (CSV).
    pub(crate) fn counts_plurals(&self) -> bool {
        matches!(self.table.as_deref(), Some(Table::Gettext(_)))
    }

    /// `message` in `context` (Tornado's `pgettext`): a gettext catalog's
    /// `msgctxt` entry, else `message` untranslated. CSV translations have
    /// no contexts: there it is [`translate`](Self::translate), with a
    /// warning when the locale has translations (as Tornado's `CSVLocale`).
    pub fn pgettext<'a>(&'a self, context: &str, message: &'a str) -> &'a str {
        match self.table.as_deref() {
            Some(Table::Gettext(c)) => {
                let key = format!("{context}{}{message}", gettext::CONTEXT_SEPARATOR);
                c.find(&key).unwrap_or(message)
            }
            _ => {
                self.warn_no_context();
                self.translate(message)
            }
        }
    }

    /// [`pgettext`](Self::pgettext) with a plural form, as
    /// [`translate_plural`](Self::translate_plural); a gettext catalog
    /// without the context's entry gives the plain plural translation.
    pub fn pgettext_plural<'a>(
        &'a self,
        context: &str,
        message: &'a str,
        plural_message: &'a str,
        count: i64,
    ) -> &'a str {
        self.pgettext_count(context, message, plural_message, count, count == 1)
    }

    /// [`pgettext_plural`](Self::pgettext_plural) as
    /// [`translate_count`](Self::translate_count).
    pub(crate) fn pgettext_count<'a>(
        &'a self,
        context: &str,
        message: &'a str,
        plural_message: &'a str,
        count: i64,
        one: bool,
    ) -> &'a str {
        match self.table.as_deref() {
            Some(Table::Gettext(c)) => {
                // Python's ngettext with both ids in the context: only
                // the first is a key.
                let key = format!("{context}{}{message}", gettext::CONTEXT_SEPARATOR);
                c.find_plural(&key, count)
                    .unwrap_or_else(|| c.ngettext(message, plural_message, count))
            }
            _ => {
                self.warn_no_context();
                self.translate_count(message, plural_message, count, one)
            }
        }
    }

    fn warn_no_context(&self) {
        if self.table.as_deref().is_some_and(|t| !t.is_empty()) {
            log::warn!("pgettext is not supported by CSV translations");
        }
    }

    /// `A, B and C` (`A and B`, `A`, empty for none), with the translation
    /// of `%(commas)s and %(last)s` (Tornado's `list`). Farsi joins with
    /// ` و ` where the others use a comma.
    pub fn list<S: AsRef<str>>(&self, parts: &[S]) -> String {
        match parts {
            [] => String::new(),
            [one] => one.as_ref().to_owned(),
            [init @ .., last] => {
                let comma = if self.code.starts_with("fa") {
                    " \u{648} "
                } else {
                    ", "
                };
                let commas = init
                    .iter()
                    .map(AsRef::as_ref)
                    .collect::<Vec<_>>()
                    .join(comma);
                format_named(
                    self.translate("%(commas)s and %(last)s"),
                    &[("commas", &commas), ("last", &last.as_ref())],
                )
            }
        }
    }

    /// `value` with its thousands grouped by commas in English (`en`,
    /// `en_US`), as written elsewhere (Tornado's `friendly_number`).
    pub fn friendly_number(&self, value: i64) -> String {
        let digits = value.unsigned_abs().to_string();
        if !matches!(self.code.as_str(), "en" | "en_US") {
            return value.to_string();
        }
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if value < 0 {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    /// `date` as a person reads it, relative to now (Tornado's
    /// `format_date`): "5 seconds ago", "3 hours ago", "yesterday at 1:05
    /// pm", "Monday at 9:30 am", "July 10 at ...", "July 10, 1980 at ...",
    /// every phrase through the locale's translations. A date less than a
    /// minute in the future counts as now (clocks drift); one further ahead
    /// is written in full. Times are `1:05 pm` in `en` and `en_US`, `下午1:05`
    /// in `zh_CN`, `13:05` elsewhere.
    pub fn format_date(&self, date: SystemTime, format: DateFormat) -> String {
        self.format_date_at(date, SystemTime::now(), format)
    }

    /// [`format_date`](Self::format_date) with `now` given.
    pub fn format_date_at(&self, date: SystemTime, now: SystemTime, format: DateFormat) -> String {
        self.format_date_us(micros(date), micros(now), format)
    }

    pub(crate) fn format_date_us(&self, mut date: i64, now: i64, format: DateFormat) -> String {
        let DateFormat {
            gmt_offset,
            relative,
            shorter,
            mut full_format,
        } = format;
        if date > now {
            if relative && date.saturating_sub(now) < 60 * SECOND_US {
                date = now;
            } else {
                full_format = true;
            }
        }
        let offset = gmt_offset.saturating_mul(60 * SECOND_US);
        let local_date = civil(date.saturating_sub(offset));
        let local_yesterday = civil(now.saturating_sub(offset).saturating_sub(DAY_US));
        let difference = now.saturating_sub(date);
        let days = difference.div_euclid(DAY_US);
        let seconds = difference.rem_euclid(DAY_US) / SECOND_US;
        let mut phrase = None;
        if !full_format {
            if relative && days == 0 {
                let (one, many, key, n) = if seconds < 50 {
                    (
                        "1 second ago",
                        "%(seconds)d seconds ago",
                        "seconds",
                        seconds,
                    )
                } else if seconds < 50 * 60 {
                    let minutes = (seconds as f64 / 60.0).round_ties_even() as i64;
                    (
                        "1 minute ago",
                        "%(minutes)d minutes ago",
                        "minutes",
                        minutes,
                    )
                } else {
                    let hours = (seconds as f64 / 3600.0).round_ties_even() as i64;
                    ("1 hour ago", "%(hours)d hours ago", "hours", hours)
                };
                return format_named(self.translate_plural(one, many, n), &[(key, &n)]);
            }
            phrase = if days == 0 {
                Some("%(time)s")
            } else if days == 1 && local_date.day == local_yesterday.day && relative {
                Some(if shorter {
                    "yesterday"
                } else {
                    "yesterday at %(time)s"
                })
            } else if days < 5 {
                Some(if shorter {
                    "%(weekday)s"
                } else {
                    "%(weekday)s at %(time)s"
                })
            } else if days < 334 {
                Some(if shorter {
                    "%(month_name)s %(day)s"
                } else {
                    "%(month_name)s %(day)s at %(time)s"
                })
            } else {
                None
            };
        }
        let phrase = phrase.unwrap_or(if shorter {
            "%(month_name)s %(day)s, %(year)s"
        } else {
            "%(month_name)s %(day)s, %(year)s at %(time)s"
        });
        let time = match self.code.as_str() {
            "en" | "en_US" => format!(
                "{}:{:02} {}",
                twelve_hour(local_date.hour),
                local_date.minute,
                if local_date.hour >= 12 { "pm" } else { "am" }
            ),
            "zh_CN" => format!(
                "{}{}:{:02}",
                if local_date.hour >= 12 {
                    "\u{4e0b}\u{5348}"
                } else {
                    "\u{4e0a}\u{5348}"
                },
                twelve_hour(local_date.hour),
                local_date.minute
            ),
            _ => format!("{}:{:02}", local_date.hour, local_date.minute),
        };
        format_named(
            self.translate(phrase),
            &[
                ("month_name", &self.translate(MONTHS[local_date.month - 1])),
                ("weekday", &self.translate(WEEKDAYS[local_date.weekday])),
                ("day", &local_date.day),
                ("year", &local_date.year),
                ("time", &time),
            ],
        )
    }

    /// `date` as a day: "Monday, January 22", or "January 22" without the
    /// day of the week (Tornado's `format_day`).
    pub fn format_day(&self, date: SystemTime, gmt_offset: i64, dow: bool) -> String {
        self.format_day_us(micros(date), gmt_offset, dow)
    }

    pub(crate) fn format_day_us(&self, date: i64, gmt_offset: i64, dow: bool) -> String {
        let local = civil(date.saturating_sub(gmt_offset.saturating_mul(60 * SECOND_US)));
        let phrase = if dow {
            "%(weekday)s, %(month_name)s %(day)s"
        } else {
            "%(month_name)s %(day)s"
        };
        format_named(
            self.translate(phrase),
            &[
                ("month_name", &self.translate(MONTHS[local.month - 1])),
                ("weekday", &self.translate(WEEKDAYS[local.weekday])),
                ("day", &local.day),
            ],
        )
    }
}

/// A `.mo` catalog's bytes parsed, as [`Translations::add_mo`] reads them.
fn parse_mo(mo: &[u8]) -> io::Result<gettext::Catalog> {
    gettext::Catalog::parse(mo).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Every `dir/LANG/LC_MESSAGES/DOMAIN.mo` that can be read, with its
/// `LANG` ([`Translations::load_gettext`]); the others are logged.
fn read_catalogs(dir: &Path, domain: &str) -> io::Result<Vec<(String, gettext::Catalog)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let lang = entry.file_name().to_string_lossy().into_owned();
        // Python's glob("*") leaves out names starting with a dot.
        if lang.starts_with('.') {
            continue;
        }
        let path = entry
            .path()
            .join("LC_MESSAGES")
            .join(format!("{domain}.mo"));
        if !path.is_file() {
            continue;
        }
        match std::fs::read(&path).and_then(|mo| parse_mo(&mo)) {
            Ok(catalog) => out.push((lang, catalog)),
            Err(e) => log::error!(
                "cannot load translation for {lang:?} ({}): {e}",
                path.display()
            ),
        }
    }
    Ok(out)
}

fn twelve_hour(hour: i64) -> i64 {
    match hour % 12 {
        0 => 12,
        h => h,
    }
}

/// Python's `template % {"name": value, ...}` for the placeholders
/// translations use: `%(name)s`, `%(name)d` (and `%(name)i`) write the
/// value as it displays, `%%` writes `%`. A placeholder naming no value,
/// or of another kind (`%(name)r` among them: a `Display` value has no
/// `repr`), is kept as written (where Python raises or quotes).
///
/// ```
/// use cyclone::locale::format_named;
///
/// assert_eq!(format_named("%(n)d files, 100%%", &[("n", &3)]), "3 files, 100%");
/// ```
pub fn format_named(template: &str, values: &[(&str, &dyn Display)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
            continue;
        }
        let placeholder = after.strip_prefix('(').and_then(|inner| {
            let close = inner.find(')')?;
            let name = &inner[..close];
            let kind = inner[close + 1..].chars().next()?;
            let (_, value) = values.iter().find(|(n, _)| *n == name)?;
            matches!(kind, 's' | 'd' | 'i').then_some((value, close + 2 + kind.len_utf8()))
        });
        match placeholder {
            Some((value, len)) => {
                use fmt::Write;
                let _ = write!(out, "{value}");
                rest = &after[len..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
