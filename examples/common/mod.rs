//! Small helpers shared by the examples: `--flag value` parsing, `--help`,
//! logging, Ctrl-C, and the handler that serves an example's page.
#![allow(dead_code)]

use std::collections::HashMap;

/// Parsed command line: `--name value` pairs, `--switch`es and positionals.
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
    pub positional: Vec<String>,
}

impl Args {
    /// Parses `std::env::args`; prints `usage` and exits 0 on `--help`,
    /// exits 2 on an unknown flag. `flags` lists `(name, takes_value)`.
    pub fn parse(usage: &str, flags: &[(&str, bool)]) -> Args {
        let mut a = Args {
            values: HashMap::new(),
            switches: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            if let Some(name) = arg.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (name.to_string(), None),
                };
                match flags.iter().find(|(n, _)| *n == name) {
                    Some((_, true)) => {
                        let v = inline.or_else(|| it.next()).unwrap_or_else(|| {
                            eprintln!("--{name} needs a value\n\n{usage}");
                            std::process::exit(2)
                        });
                        a.values.insert(name, v);
                    }
                    Some((_, false)) => a.switches.push(name),
                    None => {
                        eprintln!("unknown flag --{name}\n\n{usage}");
                        std::process::exit(2);
                    }
                }
            } else {
                a.positional.push(arg);
            }
        }
        a
    }

    /// The value of `--name`, parsed, or `default`; exits 2 if it does not parse.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("invalid value for --{name}: {v}");
                std::process::exit(2)
            }),
        }
    }

    /// Whether `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name) || self.values.contains_key(name)
    }
}

/// env_logger at `info` unless RUST_LOG says otherwise.
pub fn init_logging() {
    init_logging_default("info");
}

/// env_logger at `level` unless RUST_LOG says otherwise.
pub fn init_logging_default(level: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
}

/// Runs `first` on the loop at the first SIGINT (Ctrl-C) or SIGTERM, and
/// exits at once (status 130) at the second. `IOLoop::add_signal_handler`
/// starts no thread, so the server stays single-threaded.
fn on_interrupt(first: impl Fn() + Clone + 'static) {
    let lp = cyclone::ioloop::IOLoop::current();
    let seen = std::rc::Rc::new(std::cell::Cell::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (seen, first) = (seen.clone(), first.clone());
        let res = lp.add_signal_handler(sig, move || {
            if seen.replace(true) {
                log::warn!("second interrupt: exiting now");
                std::process::exit(130);
            }
            first();
        });
        if let Err(e) = res {
            log::warn!("cannot handle signal {sig}: {e}");
        }
    }
}

/// On Ctrl-C (or SIGTERM): graceful shutdown of the current thread's loop —
/// stop accepting, send 1001 to every WebSocket, wait up to `grace`, return
/// from `start()`.
pub fn shutdown_on_ctrl_c(grace: std::time::Duration) {
    on_interrupt(move || {
        log::info!("shutting down (Ctrl-C)");
        cyclone::shutdown(grace);
    });
}

/// For client examples: on Ctrl-C, close every connection with 1001 (the
/// same graceful shutdown), and exit after `grace` if the coroutine has not
/// finished by then (e.g. still connecting).
pub fn close_on_ctrl_c(grace: std::time::Duration) {
    on_interrupt(move || {
        log::info!("Ctrl-C: closing (1001)");
        cyclone::shutdown(grace);
        cyclone::ioloop::IOLoop::current()
            .call_later(grace + std::time::Duration::from_millis(200), || {
                std::process::exit(0)
            });
    });
}

/// `GET /` of an example: its HTML page.
pub struct Page(pub &'static str);

impl cyclone::web::RequestHandler for Page {
    fn get(&mut self, cx: &mut cyclone::web::RequestContext<'_>, _args: &[&str]) {
        cx.set_header("Content-Type", "text/html; charset=UTF-8");
        cx.write(self.0);
    }
}
