//! Named topics of WebSocket connections: uWebSockets' pub/sub
//! (`ws.subscribe(topic)`, `ws.publish(topic, msg)`, `app.publish(topic,
//! msg)`) on top of [`broadcast`](super::broadcast), for rooms and feeds
//! without a `Rc<RefCell<Vec<ConnId>>>` of one's own.
//!
//! The topics are the current thread's, as its [`IOLoop`](crate::ioloop::IOLoop)
//! is: under [`run_workers`](crate::run_workers) each worker has its own,
//! and a message published on one reaches the subscribers of that worker
//! only. A connection leaves its topics when it ends (after its
//! `on_close`, which may still publish a goodbye to them).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::message::Message;
use crate::ioloop::ConnId;

thread_local! {
    /// Each topic's subscribers; a topic goes with its last subscriber.
    static TOPICS: RefCell<HashMap<Box<str>, HashSet<ConnId>>> = RefCell::new(HashMap::new());
    /// The receivers of the publish under way, kept between calls so that
    /// publishing allocates nothing once the largest topic was seen.
    static SCRATCH: RefCell<Vec<ConnId>> = const { RefCell::new(Vec::new()) };
}

/// Adds `id` to `topic`; false if it was there already.
pub(super) fn subscribe(topic: &str, id: ConnId) -> bool {
    TOPICS.with(|t| {
        let mut t = t.borrow_mut();
        match t.get_mut(topic) {
            Some(ids) => ids.insert(id),
            None => {
                t.insert(topic.into(), HashSet::from([id]));
                true
            }
        }
    })
}

/// Removes `id` from `topic`; false if it was not there.
pub(super) fn unsubscribe(topic: &str, id: ConnId) -> bool {
    TOPICS.with(|t| {
        let mut t = t.borrow_mut();
        let Some(ids) = t.get_mut(topic) else {
            return false;
        };
        let was = ids.remove(&id);
        if ids.is_empty() {
            t.remove(topic);
        }
        was
    })
}

/// Removes `id` from each of `topics` as the connection goes (from its
/// `Drop`: quietly nothing while the thread's storage is torn down, or
/// if the registry is in use up the stack).
pub(super) fn leave_all(topics: &[Box<str>], id: ConnId) {
    let _ = TOPICS.try_with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            for topic in topics {
                if let Some(ids) = t.get_mut(&**topic) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        t.remove(&**topic);
                    }
                }
            }
        }
    });
}

/// Runs `send` with the subscribers of `topic` (but `except`), copied
/// out of the registry first, so that `send` may change the registry
/// (a connection served meanwhile, one that ends and whose `Drop` leaves
/// its topics) without invalidating the list it walks.
pub(super) fn with_subscribers<R>(
    topic: &str,
    except: Option<ConnId>,
    send: impl FnOnce(&[ConnId]) -> R,
) -> R {
    // Each thread-local may be gone (called from a destructor while the
    // thread's storage is torn down): no scratch is a fresh list, no
    // registry no subscribers (their connections went with the loop).
    let mut ids = SCRATCH
        .try_with(|s| std::mem::take(&mut *s.borrow_mut()))
        .unwrap_or_default();
    ids.clear();
    let _ = TOPICS.try_with(|t| {
        if let Some(subs) = t.borrow().get(topic) {
            ids.extend(subs.iter().copied().filter(|id| Some(*id) != except));
        }
    });
    // In the loop's slot order (a set iterates in hash order): the sweep
    // then walks the connections' memory in order, as a list of ids kept
    // by hand would.
    ids.sort_unstable();
    let r = send(&ids);
    let _ = SCRATCH.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.capacity() < ids.capacity() {
            *s = ids;
        }
    });
    r
}

/// Sends `msg` to every connection of the current thread's loop
/// subscribed to `topic` (uWebSockets' `app.publish`), encoding the frame
/// once, as [`broadcast`](super::broadcast) does; a connection whose
/// handler is running now (the publisher's own) gets it in the order of
/// the calls, before what that handler writes or closes with after it.
/// Returns how many received it. It only queues:
/// no handler runs during it.
///
/// Safe in a destructor, a thread-local's included (a leave notice
/// published as a value goes): once the thread's loop or its topics are
/// gone (the thread is ending), the subscribers went with them, and this
/// returns 0.
///
/// ```no_run
/// use std::time::Duration;
/// use cyclone::ioloop::{IOLoop, PeriodicCallback};
/// use cyclone::websocket::publish;
///
/// // A clock every subscriber of "ticks" hears, once a second.
/// let mut n = 0u64;
/// PeriodicCallback::new(
///     move || {
///         n += 1;
///         publish("ticks", format!("tick {n}"));
///     },
///     Duration::from_secs(1),
/// )
/// .start();
/// IOLoop::current().start();
/// ```
pub fn publish<'m>(topic: &str, msg: impl Into<Message<'m>>) -> usize {
    let msg = msg.into();
    with_subscribers(topic, None, |ids| {
        super::broadcast(ids.iter().copied(), msg)
    })
}

/// How many connections of the current thread's loop are subscribed to
/// `topic` (uWebSockets' `numSubscribers`). Safe in a destructor, as
/// [`publish`] is: 0 once the thread's topics are gone.
pub fn subscribers(topic: &str) -> usize {
    TOPICS
        .try_with(|t| t.borrow().get(topic).map_or(0, HashSet::len))
        .unwrap_or(0)
}
