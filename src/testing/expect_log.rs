//! [`ExpectLog`], Tornado's `tornado.testing.ExpectLog`, and the
//! process-wide logger it needs ([`init_logging`]).
//!
//! The `log` crate has one logger per process. cyclone's test logger
//! prints records to standard error (filtered by `RUST_LOG`, or through
//! a logger of yours, see [`init_logging_with`]) except those an
//! `ExpectLog` alive at the time claims: those it keeps, unprinted, for
//! the test to look at.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};
use regex::Regex;

/// Expects a log record, as Tornado's `with ExpectLog(logger, regex):`
/// does: while it is alive, a record whose target is `target` (or a
/// module under it) and whose message matches `pattern` from its start
/// (Python's `re.match`) is kept here and not printed. When it is
/// dropped, it panics if no record matched, unless it was made
/// [`not_required`](Self::not_required) or the thread is panicking
/// already.
///
/// ```
/// use cyclone::testing::ExpectLog;
///
/// let expected = ExpectLog::new("cyclone::web", "could not open");
/// log::error!(target: "cyclone::web::static_files", "could not open x.css");
/// assert_eq!(expected.logged().len(), 1);
/// ```
///
/// The logger is the process's, and the test runner runs tests in
/// parallel threads: a record another test logs at the same time may
/// match too. Give a pattern only your test's records match, or use
/// [`on_this_thread`](Self::on_this_thread) where the code under test
/// runs on the test's thread. Records a [`TestServer`](super::TestServer)
/// logs come from its thread, maybe after the response has arrived:
/// [`wait`](Self::wait) for them.
#[must_use = "an ExpectLog expects only while it is alive"]
#[derive(Debug)]
pub struct ExpectLog {
    expectation: Arc<Expectation>,
    required: bool,
}

/// What an [`ExpectLog`] matches, and what it got.
#[derive(Debug)]
struct Expectation {
    target: String,
    pattern: Regex,
    /// 0: any level; else the one level, as `Level as u8`.
    level: AtomicU8,
    thread: OnceLock<ThreadId>,
    logged: Mutex<Vec<(Level, String)>>,
    arrived: Condvar,
}

impl Expectation {
    fn matches(&self, record: &Record<'_>, message: &str) -> bool {
        let level = self.level.load(Ordering::Relaxed);
        (level == 0 || level == record.level() as u8)
            && under(record.target(), &self.target)
            && self
                .thread
                .get()
                .is_none_or(|t| *t == thread::current().id())
            && self.pattern.is_match(message)
    }
}

/// Whether `target` is `parent` or a module under it (`a::b` is under
/// `a`, `ab` is not); everything is under `""`.
fn under(target: &str, parent: &str) -> bool {
    parent.is_empty()
        || target
            .strip_prefix(parent)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// The expectations alive, oldest first.
static ACTIVE: Mutex<Vec<Arc<Expectation>>> = Mutex::new(Vec::new());

/// `ACTIVE.len()`, read without the lock by every record.
static ACTIVE_COUNT: AtomicUsize = AtomicUsize::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ExpectLog {
    /// Expects a record from `target` (a module path such as
    /// `"cyclone::websocket"`, or `""` for any) whose message matches the
    /// regular expression `pattern` from its start. Installs cyclone's
    /// test logger ([`init_logging`]) if no logger is installed yet.
    ///
    /// # Panics
    /// If `pattern` is not a valid regular expression, or if a logger
    /// other than cyclone's test logger was installed first (call
    /// [`init_logging_with`] instead of installing yours).
    pub fn new(target: &str, pattern: &str) -> ExpectLog {
        let pattern = Regex::new(&format!("^(?:{pattern})"))
            .unwrap_or_else(|e| panic!("ExpectLog: {pattern:?} is not a regular expression: {e}"));
        if !init_logging() {
            panic!(
                "ExpectLog: another logger is installed; install cyclone's test logger \
                 instead (cyclone::testing::init_logging_with can wrap yours)"
            );
        }
        let expectation = Arc::new(Expectation {
            target: target.to_owned(),
            pattern,
            level: AtomicU8::new(0),
            thread: OnceLock::new(),
            logged: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        });
        let mut active = lock(&ACTIVE);
        active.push(expectation.clone());
        ACTIVE_COUNT.store(active.len(), Ordering::Relaxed);
        drop(active);
        update_max_level();
        ExpectLog {
            expectation,
            required: true,
        }
    }

    /// Matches records at `level` only (Tornado's `level=`); any level
    /// otherwise.
    pub fn level(self, level: Level) -> Self {
        self.expectation.level.store(level as u8, Ordering::Relaxed);
        update_max_level();
        self
    }

    /// Matches only records logged on the thread that calls this, so that
    /// tests running beside this one cannot meet its expectation.
    pub fn on_this_thread(self) -> Self {
        let _ = self.expectation.thread.set(thread::current().id());
        self
    }

    /// No panic when nothing matched (Tornado's `required=False`): the
    /// records that match are still kept from the output.
    pub fn not_required(mut self) -> Self {
        self.required = false;
        self
    }

    /// The records matched so far, in the order they were logged: their
    /// level and message.
    pub fn logged(&self) -> Vec<(Level, String)> {
        lock(&self.expectation.logged).clone()
    }

    /// Waits at most `timeout` until at least `count` records have
    /// matched (for records another thread logs, such as a
    /// [`TestServer`](super::TestServer)'s); whether they have.
    pub fn wait(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut logged = lock(&self.expectation.logged);
        while logged.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            logged = self
                .expectation
                .arrived
                .wait_timeout(logged, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        true
    }
}

impl Drop for ExpectLog {
    fn drop(&mut self) {
        let mut active = lock(&ACTIVE);
        active.retain(|e| !Arc::ptr_eq(e, &self.expectation));
        ACTIVE_COUNT.store(active.len(), Ordering::Relaxed);
        drop(active);
        update_max_level();
        if self.required && lock(&self.expectation.logged).is_empty() && !thread::panicking() {
            panic!(
                "ExpectLog: no record from {:?} matching {:?} was logged",
                self.expectation.target,
                self.expectation.pattern.as_str()
            );
        }
    }
}

/// Where records no expectation claims go.
enum Output {
    /// Standard error, for records `filter` lets through.
    Stderr(Filter),
    /// A logger of the user's, with the most verbose level it logs.
    Inner(Box<dyn Log>, LevelFilter),
}

/// cyclone's test logger.
struct TestLogger {
    output: Output,
}

impl TestLogger {
    fn output_level(&self) -> LevelFilter {
        match &self.output {
            Output::Stderr(filter) => filter.max(),
            Output::Inner(_, level) => *level,
        }
    }
}

impl Log for TestLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        ACTIVE_COUNT.load(Ordering::Relaxed) > 0
            || match &self.output {
                Output::Stderr(filter) => filter.enabled(metadata),
                Output::Inner(inner, _) => inner.enabled(metadata),
            }
    }

    fn log(&self, record: &Record<'_>) {
        if ACTIVE_COUNT.load(Ordering::Relaxed) > 0 {
            let message = record.args().to_string();
            let active = lock(&ACTIVE);
            // The newest expectation first, as nested `with` blocks.
            if let Some(e) = active.iter().rev().find(|e| e.matches(record, &message)) {
                lock(&e.logged).push((record.level(), message));
                e.arrived.notify_all();
                return;
            }
        }
        match &self.output {
            Output::Stderr(filter) => {
                if filter.enabled(record.metadata()) {
                    // Tornado's LogFormatter, without the time.
                    let letter = &record.level().as_str()[..1];
                    eprintln!(
                        "[{letter} {}:{}] {}",
                        record.target(),
                        record.line().unwrap_or(0),
                        record.args()
                    );
                }
            }
            Output::Inner(inner, _) => inner.log(record),
        }
    }

    fn flush(&self) {
        if let Output::Inner(inner, _) = &self.output {
            inner.flush();
        }
    }
}

/// The test logger, once installed: `None` when another logger was
/// installed first.
static INSTALLED: OnceLock<Option<&'static TestLogger>> = OnceLock::new();

fn install(make: impl FnOnce() -> TestLogger) -> bool {
    INSTALLED
        .get_or_init(|| {
            let logger: &'static TestLogger = Box::leak(Box::new(make()));
            log::set_logger(logger).ok().map(|()| logger)
        })
        .inspect(|_| update_max_level())
        .is_some()
}

/// Sets `log`'s global level to what the output and the expectations
/// alive want, so that records nobody wants cost one comparison.
fn update_max_level() {
    let Some(Some(logger)) = INSTALLED.get() else {
        return;
    };
    let wanted = lock(&ACTIVE)
        .iter()
        .map(|e| match e.level.load(Ordering::Relaxed) {
            0 => LevelFilter::Trace,
            n => LEVELS[usize::from(n) - 1].to_level_filter(),
        })
        .fold(logger.output_level(), Ord::max);
    log::set_max_level(wanted);
}

const LEVELS: [Level; 5] = [
    Level::Error,
    Level::Warn,
    Level::Info,
    Level::Debug,
    Level::Trace,
];

/// Installs cyclone's test logger unless a logger is installed already:
/// records go to standard error as `[W target:line] message`, filtered
/// by `RUST_LOG` (`warn` when unset; `info`, `cyclone::access=info,warn`
/// and other `env_logger` directives without a `/regex`), except those an
/// [`ExpectLog`] claims. `true` when the process's logger is cyclone's
/// test logger (installed now or before).
pub fn init_logging() -> bool {
    install(|| TestLogger {
        output: Output::Stderr(Filter::parse(
            std::env::var("RUST_LOG").ok().as_deref().unwrap_or(""),
        )),
    })
}

/// As [`init_logging`], with the records no [`ExpectLog`] claims going to
/// `inner` (say, an `env_logger::Logger`), which logs at `max` at most
/// (`env_logger::Logger::filter()`). `false`, and `inner` unused, when a
/// logger was installed first, cyclone's included.
pub fn init_logging_with(inner: Box<dyn Log>, max: LevelFilter) -> bool {
    let mut used = false;
    let ours = install(|| {
        used = true;
        TestLogger {
            output: Output::Inner(inner, max),
        }
    });
    ours && used
}

/// `RUST_LOG`'s directives: a level for everything, and levels for
/// targets (the longest matching target wins).
struct Filter {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// `directives` as `env_logger` reads them (`level`, `target`,
    /// `target=level`, comma-separated; a `/regex` suffix is ignored);
    /// `warn` for everything when none gives a bare level.
    fn parse(directives: &str) -> Filter {
        let mut filter = Filter {
            default: LevelFilter::Warn,
            targets: Vec::new(),
        };
        let directives = directives.split('/').next().unwrap_or_default();
        for directive in directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            match directive.split_once('=') {
                Some((target, level)) => {
                    if let Ok(level) = level.trim().parse() {
                        filter.targets.push((target.trim().to_owned(), level));
                    }
                }
                None => match directive.parse() {
                    Ok(level) => filter.default = level,
                    Err(_) => filter
                        .targets
                        .push((directive.to_owned(), LevelFilter::Trace)),
                },
            }
        }
        filter
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(t, _)| under(target, t))
            .max_by_key(|(t, _)| t.len())
            .map_or(self.default, |(_, level)| *level)
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level_for(metadata.target())
    }

    fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, level)| *level)
            .fold(self.default, Ord::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_nest_by_module() {
        assert!(under("cyclone::web::static_files", "cyclone::web"));
        assert!(under("cyclone::web", "cyclone::web"));
        assert!(under("anything", ""));
        assert!(!under("cyclone::webx", "cyclone::web"));
        assert!(!under("cyclone", "cyclone::web"));
    }

    #[test]
    fn rust_log_directives_filter_as_env_logger_reads_them() {
        let at = |directives: &str, target: &str| Filter::parse(directives).level_for(target);
        assert_eq!(at("", "cyclone"), LevelFilter::Warn);
        assert_eq!(at("info", "cyclone"), LevelFilter::Info);
        assert_eq!(at("off", "cyclone"), LevelFilter::Off);
        let d = "error, cyclone=info, cyclone::access=debug";
        assert_eq!(at(d, "other"), LevelFilter::Error);
        assert_eq!(at(d, "cyclone::websocket"), LevelFilter::Info);
        assert_eq!(at(d, "cyclone::access"), LevelFilter::Debug);
        assert_eq!(at(d, "cyclone::accessx"), LevelFilter::Info);
        assert_eq!(at("cyclone::web", "cyclone::web::x"), LevelFilter::Trace);
        assert_eq!(at("cyclone::web", "cyclone"), LevelFilter::Warn);
        assert_eq!(at("info,x=nonsense/abc", "x"), LevelFilter::Info);
        assert_eq!(Filter::parse(d).max(), LevelFilter::Debug);
    }
}
