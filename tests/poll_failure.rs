//! A poll that fails ends `start` with a panic naming the error, as
//! Tornado's `start` raises, rather than a return that looks like a stop.
//! Its own test binary: it swaps every epoll descriptor in the process.

use std::fs;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use cyclone::ioloop::IOLoop;

fn eventpoll_fds() -> Vec<i32> {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = fs::read_link(e.path()).ok()?;
            (target.to_str()? == "anon_inode:[eventpoll]")
                .then(|| e.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

#[test]
fn a_failing_poll_makes_start_and_run_sync_panic_with_the_error() {
    let lp = IOLoop::current();
    lp.run_once(Some(Duration::ZERO)).unwrap();
    // The loop's epoll instance and the registry clone (a dup) it keeps.
    let fds = eventpoll_fds();
    assert!(!fds.is_empty());
    let null = fs::File::open("/dev/null").unwrap();
    for fd in fds {
        // SAFETY: dup2 onto descriptors this process owns (the loop's
        // epoll instance) only replaces what they refer to; mio later
        // closes the replacements, and no Rust object owns `null`'s
        // descriptor. Nothing safe makes epoll_wait fail.
        let r = unsafe { libc::dup2(null.as_raw_fd(), fd) };
        assert_eq!(r, fd);
    }
    let err = catch_unwind(AssertUnwindSafe(|| lp.start())).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.starts_with("IOLoop poll failed: "), "{msg}");
    assert!(!lp.is_running(), "left stopped");
    let err = catch_unwind(AssertUnwindSafe(|| {
        lp.run_sync(std::future::pending::<()>())
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.starts_with("IOLoop poll failed: "), "{msg}");
}
