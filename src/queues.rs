//! Tornado's `tornado.queues`: items passed between the tasks of one
//! loop, first in first out ([`Queue::new`]), last in first out
//! ([`Queue::lifo`], Tornado's `LifoQueue`) or lowest first
//! ([`Queue::priority`], Tornado's `PriorityQueue`), with an optional
//! bound that makes producers wait (backpressure), and `task_done`/`join`
//! to wait until every item was processed.
//!
//! Not thread-safe, as Tornado's: it belongs to the loop whose tasks use
//! it. Clones share one queue. Tornado's `timeout=` is
//! [`with_timeout`](crate::ioloop::with_timeout) around
//! [`get`](Queue::get) or [`put`](Queue::put); a wait given up (its
//! future dropped) is skipped, and an item already handed to it is not
//! lost: it goes to the next get, or back where it would leave next. A
//! bounded queue filled meanwhile stays within `maxsize`: the item then
//! waits ahead of the waiting puts (uncounted by [`qsize`](Queue::qsize),
//! as theirs are) and leaves with the next get, which makes no room.
//! (Tornado's future has its item once handed, so nothing comes back
//! there.) [`Queue::items`] is Tornado's `async for item in q`, as a
//! [`Stream`].
//!
//! ```
//! use cyclone::ioloop::IOLoop;
//! use cyclone::queues::Queue;
//!
//! let lp = IOLoop::current();
//! let q: Queue<u32> = Queue::new(2);
//! let total = lp.run_sync(async move {
//!     let consumer = q.clone();
//!     IOLoop::current().spawn(async move {
//!         for n in 1..=5 {
//!             q.put(n).await; // waits while two items are queued
//!         }
//!     });
//!     let mut total = 0;
//!     for _ in 0..5 {
//!         total += consumer.get().await;
//!         consumer.task_done().unwrap();
//!     }
//!     consumer.join().await;
//!     total
//! });
//! assert_eq!(total, 15);
//! ```

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::locks::{join_line, Event, Wait, Waiter};

/// A queue of `T`s for the tasks of one loop (Tornado's `Queue`).
pub struct Queue<T>(Rc<RefCell<State<T>>>);

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue(Rc::clone(&self.0))
    }
}

struct State<T> {
    /// 0: unbounded.
    maxsize: usize,
    items: Store<T>,
    /// Tasks waiting for an item, which `put` hands them directly.
    getters: VecDeque<Rc<Slot<T>>>,
    /// Tasks waiting for room, each with its item.
    putters: VecDeque<Rc<Slot<T>>>,
    /// Items handed to a get that was dropped while the queue was full:
    /// still counted in `unfinished`, they leave first, one with each
    /// `take`, ahead of the putters (so the queue stays within `maxsize`).
    returned: VecDeque<T>,
    /// Items put and not yet marked done (`task_done`).
    unfinished: usize,
    /// Set while `unfinished` is 0 (`join`).
    finished: Event,
}

/// The items, in the order they leave.
struct Store<T> {
    order: Order<T>,
    queue: VecDeque<T>,
}

enum Order<T> {
    Fifo,
    Lifo,
    /// Kept sorted, lowest first; equal items in the order they came.
    Priority(fn(&T, &T) -> Ordering),
}

impl<T> Store<T> {
    fn len(&self) -> usize {
        self.queue.len()
    }

    fn push(&mut self, item: T) {
        match self.order {
            Order::Fifo | Order::Lifo => self.queue.push_back(item),
            Order::Priority(cmp) => {
                let at = self
                    .queue
                    .partition_point(|x| cmp(x, &item) != Ordering::Greater);
                self.queue.insert(at, item);
            }
        }
    }

    fn pop(&mut self) -> Option<T> {
        match self.order {
            Order::Fifo | Order::Priority(_) => self.queue.pop_front(),
            Order::Lifo => self.queue.pop_back(),
        }
    }

    /// An item taken out returns to where it would leave next.
    fn give_back(&mut self, item: T) {
        match self.order {
            Order::Fifo => self.queue.push_front(item),
            Order::Lifo => self.queue.push_back(item),
            Order::Priority(_) => self.push(item),
        }
    }
}

/// A waiting task and the item it waits to give or to get.
struct Slot<T> {
    waiter: Waiter,
    item: RefCell<Option<T>>,
}

impl<T> Slot<T> {
    fn new(item: Option<T>) -> Rc<Slot<T>> {
        Rc::new(Slot {
            waiter: Waiter::default(),
            item: RefCell::new(item),
        })
    }
}

/// The first slot of `line` whose task still waits, taken out of it.
fn first_live<T>(line: &mut VecDeque<Rc<Slot<T>>>) -> Option<Rc<Slot<T>>> {
    while let Some(slot) = line.pop_front() {
        if !slot.waiter.is_gone() {
            return Some(slot);
        }
    }
    None
}

impl<T> State<T> {
    fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() >= self.maxsize
    }

    /// `item` enters the queue (or goes straight to a waiting getter).
    fn admit(&mut self, item: T) {
        self.unfinished += 1;
        self.finished.clear();
        if let Some(item) = self.hand_to_getter(item) {
            self.items.push(item);
        }
    }

    /// Gives `item` to the first getter still waiting; gives it back if
    /// none waits.
    fn hand_to_getter(&mut self, item: T) -> Option<T> {
        let Some(getter) = first_live(&mut self.getters) else {
            return Some(item);
        };
        *getter.item.borrow_mut() = Some(item);
        getter.waiter.wake();
        None
    }

    /// An item out of the queue. A returned item, else a waiting putter's
    /// item, enters first, as in Tornado, so a priority queue gives the
    /// lowest of both and a LIFO queue the newest. (Both wait only while
    /// the queue is full, so no getter waits here.)
    fn take(&mut self) -> Option<T> {
        if let Some(item) = self.returned.pop_front() {
            // Already counted, and it takes the place it leaves: the
            // putters still wait.
            self.items.give_back(item);
        } else if let Some(putter) = first_live(&mut self.putters) {
            if let Some(next) = putter.item.borrow_mut().take() {
                self.admit(next);
            }
            putter.waiter.wake();
        }
        self.items.pop()
    }
}

/// [`Queue::put_nowait`] found the queue full: the item, given back.
#[derive(Clone, PartialEq, Eq)]
pub struct QueueFull<T>(pub T);

impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is full")
    }
}

impl<T> std::error::Error for QueueFull<T> {}

/// [`Queue::get_nowait`] found the queue empty (Tornado's `QueueEmpty`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueEmpty;

impl fmt::Display for QueueEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is empty")
    }
}

impl std::error::Error for QueueEmpty {}

/// [`Queue::task_done`] was called more times than items were put
/// (Tornado's `ValueError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyTaskDone;

impl fmt::Display for TooManyTaskDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TooManyTaskDone {}

impl<T> Queue<T> {
    /// A queue holding at most `maxsize` items (0: no bound), first in
    /// first out.
    pub fn new(maxsize: usize) -> Queue<T> {
        Queue::with_order(maxsize, Order::Fifo)
    }

    /// Last in first out (Tornado's `LifoQueue`).
    pub fn lifo(maxsize: usize) -> Queue<T> {
        Queue::with_order(maxsize, Order::Lifo)
    }

    /// Lowest first, equal items in the order they came (Tornado's
    /// `PriorityQueue`; its `(priority, item)` tuples are Rust tuples).
    pub fn priority(maxsize: usize) -> Queue<T>
    where
        T: Ord,
    {
        Queue::with_order(maxsize, Order::Priority(T::cmp))
    }

    fn with_order(maxsize: usize, order: Order<T>) -> Queue<T> {
        let finished = Event::new();
        finished.set();
        Queue(Rc::new(RefCell::new(State {
            maxsize,
            items: Store {
                order,
                queue: VecDeque::new(),
            },
            getters: VecDeque::new(),
            putters: VecDeque::new(),
            returned: VecDeque::new(),
            unfinished: 0,
            finished,
        })))
    }

    /// Its bound (0: none).
    pub fn maxsize(&self) -> usize {
        self.0.borrow().maxsize
    }

    /// Items in the queue.
    pub fn qsize(&self) -> usize {
        self.0.borrow().items.len()
    }

    /// Whether it holds no item.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether it holds `maxsize` items (never, without a bound).
    pub fn full(&self) -> bool {
        self.0.borrow().full()
    }

    /// Puts `item` now, or gives it back if the queue is full.
    ///
    /// # Errors
    /// [`QueueFull`] with the item when the queue is full.
    pub fn put_nowait(&self, item: T) -> Result<(), QueueFull<T>> {
        let mut st = self.0.borrow_mut();
        if st.full() {
            return Err(QueueFull(item));
        }
        st.admit(item);
        Ok(())
    }

    /// Puts `item`, waiting while the queue is full (behind the puts
    /// already waiting). Put here if there is room.
    pub fn put(&self, item: T) -> Put<T> {
        let mut st = self.0.borrow_mut();
        // Room means nobody waits to put: `take` admits a waiting put
        // whenever it makes room.
        let slot = if st.full() {
            let slot = Slot::new(Some(item));
            join_line(&mut st.putters, Rc::clone(&slot), |s| s.waiter.is_gone());
            Some(slot)
        } else {
            st.admit(item);
            None
        };
        Put { slot }
    }

    /// An item now, if there is one.
    ///
    /// # Errors
    /// [`QueueEmpty`] when there is none.
    pub fn get_nowait(&self) -> Result<T, QueueEmpty> {
        self.0.borrow_mut().take().ok_or(QueueEmpty)
    }

    /// The next item, waiting for one (behind the gets already waiting).
    /// Taken here if there is one.
    pub fn get(&self) -> Get<T> {
        let mut st = self.0.borrow_mut();
        let state = match st.take() {
            Some(item) => GetState::Ready(item),
            None => {
                let slot = Slot::new(None);
                join_line(&mut st.getters, Rc::clone(&slot), |s| s.waiter.is_gone());
                GetState::Waiting(slot)
            }
        };
        Get {
            queue: self.clone(),
            state,
        }
    }

    /// One item taken from the queue is processed (Tornado's
    /// `task_done`); when every item put has been, [`join`](Self::join)
    /// ends.
    ///
    /// # Errors
    /// [`TooManyTaskDone`] when no item is left to mark.
    pub fn task_done(&self) -> Result<(), TooManyTaskDone> {
        let mut st = self.0.borrow_mut();
        if st.unfinished == 0 {
            return Err(TooManyTaskDone);
        }
        st.unfinished -= 1;
        if st.unfinished == 0 {
            st.finished.set();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done
    /// ([`task_done`](Self::task_done)); ready at once if none is
    /// outstanding.
    pub fn join(&self) -> Wait {
        let finished = self.0.borrow().finished.clone();
        finished.wait()
    }

    /// The queue's items as a [`Stream`] that never ends (Tornado's
    /// `async for item in q`): each is a [`get`](Self::get), so an item
    /// taken is marked with [`task_done`](Self::task_done) as usual.
    /// [`Items::next`] (or any `StreamExt`'s) gives the next one; leave
    /// the loop with `break`.
    ///
    /// ```
    /// use cyclone::ioloop::IOLoop;
    /// use cyclone::queues::Queue;
    ///
    /// let q: Queue<&str> = Queue::new(0);
    /// q.put_nowait("a").unwrap();
    /// q.put_nowait("b").unwrap();
    /// let got = IOLoop::current().run_sync(async move {
    ///     let mut items = q.items();
    ///     let mut got = Vec::new();
    ///     while let Some(item) = items.next().await {
    ///         got.push(item);
    ///         if got.len() == 2 {
    ///             break;
    ///         }
    ///     }
    ///     got
    /// });
    /// assert_eq!(got, ["a", "b"]);
    /// ```
    pub fn items(&self) -> Items<T> {
        Items {
            queue: self.clone(),
            get: None,
        }
    }
}

/// The [`Stream`] of [`Queue::items`]: never ends.
#[must_use = "streams do nothing unless polled"]
pub struct Items<T> {
    queue: Queue<T>,
    /// The get waiting, from the poll that found the queue empty; dropped
    /// with the stream, which gives its place (and an item already handed
    /// to it) to the next get.
    get: Option<Get<T>>,
}

impl<T> Unpin for Items<T> {}

impl<T> Items<T> {
    /// The next item (always `Some`), as `StreamExt::next` gives it,
    /// without needing that trait.
    // An async `next`, `StreamExt::next`'s shape, not `Iterator`'s.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> impl Future<Output = Option<T>> + '_ {
        std::future::poll_fn(move |cx| Pin::new(&mut *self).poll_next(cx))
    }
}

impl<T> Stream for Items<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        let get = this.get.get_or_insert_with(|| this.queue.get());
        let item = std::task::ready!(Pin::new(get).poll(cx));
        this.get = None;
        Poll::Ready(Some(item))
    }
}

impl<T> fmt::Debug for Items<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Items")
            .field("queue", &self.queue)
            .field("waiting", &self.get.is_some())
            .finish()
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.0.borrow();
        f.debug_struct("Queue")
            .field("maxsize", &st.maxsize)
            .field("qsize", &st.items.len())
            .field("unfinished", &st.unfinished)
            .finish()
    }
}

/// The future of [`Queue::put`]: `()` once the item is in the queue.
#[must_use = "futures do nothing unless awaited"]
pub struct Put<T> {
    /// `None`: put already.
    slot: Option<Rc<Slot<T>>>,
}

impl<T> Future for Put<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.slot {
            None => Poll::Ready(()),
            Some(slot) => slot.waiter.poll_done(cx),
        }
    }
}

impl<T> Drop for Put<T> {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            if !slot.waiter.is_done() {
                // Given up: its item is not put.
                slot.waiter.leave();
                slot.item.borrow_mut().take();
            }
        }
    }
}

impl<T> fmt::Debug for Put<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put").finish_non_exhaustive()
    }
}

/// The future of [`Queue::get`]: the item.
#[must_use = "futures do nothing unless awaited"]
pub struct Get<T> {
    queue: Queue<T>,
    state: GetState<T>,
}

enum GetState<T> {
    Ready(T),
    Waiting(Rc<Slot<T>>),
    Taken,
}

impl<T> Unpin for Get<T> {}

impl<T> Future for Get<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let GetState::Waiting(slot) = &self.state {
            if slot.waiter.poll_done(cx).is_pending() {
                return Poll::Pending;
            }
            let item = slot.item.borrow_mut().take();
            self.state = match item {
                Some(item) => GetState::Ready(item),
                None => GetState::Taken,
            };
        }
        match std::mem::replace(&mut self.state, GetState::Taken) {
            GetState::Ready(item) => Poll::Ready(item),
            _ => panic!("Get polled after it completed"),
        }
    }
}

impl<T> Drop for Get<T> {
    fn drop(&mut self) {
        let item = match std::mem::replace(&mut self.state, GetState::Taken) {
            GetState::Ready(item) => Some(item),
            GetState::Waiting(slot) => {
                slot.waiter.leave();
                slot.item.borrow_mut().take()
            }
            GetState::Taken => None,
        };
        // An item handed to this get and never returned goes to the next
        // get waiting, or back to where it would leave next; into the
        // queue if it has room, else ahead of the waiting puts.
        if let Some(item) = item {
            let mut st = self.queue.0.borrow_mut();
            if let Some(item) = st.hand_to_getter(item) {
                if st.full() {
                    st.returned.push_back(item);
                } else {
                    st.items.give_back(item);
                }
            }
        }
    }
}

impl<T> fmt::Debug for Get<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer that gives up again and again on an idle queue (or a
    /// producer on a full one) leaves no trail of dead places.
    #[test]
    fn waits_given_up_do_not_pile_up() {
        let q: Queue<u32> = Queue::new(1);
        let live = q.get();
        for _ in 0..10_000 {
            drop(q.get());
        }
        assert!(
            q.0.borrow().getters.len() <= 64,
            "{}",
            q.0.borrow().getters.len()
        );
        // The live one kept its place at the front.
        q.put_nowait(7).unwrap();
        let waker = std::task::Waker::noop();
        let mut get = live;
        let polled = Pin::new(&mut get).poll(&mut Context::from_waker(waker));
        assert_eq!(polled, Poll::Ready(7));

        q.put_nowait(0).unwrap();
        let waiting_put = q.put(1);
        for i in 2..10_000 {
            drop(q.put(i));
        }
        assert!(
            q.0.borrow().putters.len() <= 64,
            "{}",
            q.0.borrow().putters.len()
        );
        assert_eq!(q.get_nowait(), Ok(0));
        assert_eq!(q.get_nowait(), Ok(1), "the live put kept its place");
        drop(waiting_put);
        assert_eq!(q.get_nowait(), Err(QueueEmpty));
    }
}
