//! The slab of registrations: inserting, serving (a registration is taken
//! out of its slot while its code runs, so no borrow is held across user
//! code; work aimed at a busy slot is deferred until it is put back), the
//! dirty and still-readable lists, the deadline sweep, and Tornado's
//! `add_handler`/`remove_handler` for user sources.

use std::any::Any;
use std::io;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Interest, Registry};

use super::{Action, ConnId, Deferred, IOLoop, Pollable, Readiness, Slot};

impl IOLoop {
    // ---- registrations -----------------------------------------------------

    /// Inserts a registration built by `make` (which receives its id) and
    /// registers `source` for it. Used by listeners and connections.
    pub(crate) fn insert(&self, make: impl FnOnce(ConnId) -> Box<dyn Pollable>) -> ConnId {
        let mut slots = self.inner.slots.borrow_mut();
        let entry = slots.vacant_entry();
        let key = entry.key();
        let mut gens = self.inner.gens.borrow_mut();
        if gens.len() <= key {
            gens.resize(key + 1, 0);
        }
        gens[key] = gens[key].wrapping_add(1);
        let id = ConnId::new(key, gens[key]);
        entry.insert(Slot {
            gen: id.gen,
            item: None,
        });
        drop(gens);
        drop(slots);
        let item = make(id);
        if let Some(slot) = self.inner.slots.borrow_mut().get_mut(key) {
            slot.item = Some(item);
        }
        id
    }

    /// Registers `source` with the poller under `id`.
    pub(crate) fn register(
        &self,
        source: &mut impl Source,
        id: ConnId,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.registry.register(source, id.token(), interest)
    }

    /// Removes a registration without running it (used when a `make` failed).
    pub(crate) fn remove(&self, id: ConnId) -> Option<Box<dyn Pollable>> {
        let mut slots = self.inner.slots.borrow_mut();
        match slots.get(id.key()) {
            Some(s) if s.gen == id.gen => slots.remove(id.key()).item,
            _ => None,
        }
    }

    /// Whether `id` still names a live registration (false for a stale id).
    pub fn contains(&self, id: ConnId) -> bool {
        matches!(self.inner.slots.borrow().get(id.key()), Some(s) if s.gen == id.gen)
    }

    /// Number of live registrations.
    pub fn registrations(&self) -> usize {
        self.inner.slots.borrow().len()
    }

    /// Registrations a graceful shutdown waits for (not `add_handler`
    /// sources; a registration being served counts).
    pub(crate) fn awaited_by_shutdown(&self) -> usize {
        self.inner
            .slots
            .borrow()
            .iter()
            .filter(|(_, s)| s.item.as_ref().is_none_or(|p| p.awaited_by_shutdown()))
            .count()
    }

    /// Takes the item out of its slot (the slot stays, marked busy).
    pub(super) fn take(&self, id: ConnId) -> Option<Box<dyn Pollable>> {
        let mut slots = self.inner.slots.borrow_mut();
        match slots.get_mut(id.key()) {
            Some(s) if s.gen == id.gen => s.item.take(),
            _ => None,
        }
    }

    /// Puts an item back after it was served, applying its action and any
    /// operations deferred while it was out.
    pub(super) fn put_back(&self, id: ConnId, mut item: Box<dyn Pollable>, action: Action) {
        let mut action = action;
        loop {
            {
                let mut rm = self.inner.pending_removals.borrow_mut();
                if let Some(i) = rm.iter().position(|r| *r == id) {
                    rm.swap_remove(i);
                    // `remove_handler` from its own callback: deregistered
                    // here, since a source need not own its descriptor
                    // (a `SourceFd` stays in the poll set after its drop).
                    item.deregister(&self.inner.registry);
                    action = Action::Remove;
                    drop(rm);
                    self.register_waiting();
                }
            }
            match action {
                Action::Keep => {}
                Action::Replace(new) => item = new,
                Action::Remove => {
                    let mut slots = self.inner.slots.borrow_mut();
                    if matches!(slots.get(id.key()), Some(s) if s.gen == id.gen) {
                        slots.remove(id.key());
                    }
                    drop(slots);
                    self.inner.deferred.borrow_mut().retain(|(d, _)| *d != id);
                    drop(item);
                    return;
                }
            }
            // Apply deferred operations aimed at this id.
            let pending: Vec<Deferred> = {
                let mut d = self.inner.deferred.borrow_mut();
                if d.is_empty() {
                    Vec::new()
                } else {
                    let mut mine = Vec::new();
                    let mut i = 0;
                    while i < d.len() {
                        if d[i].0 == id {
                            mine.push(d.remove(i).1);
                        } else {
                            i += 1;
                        }
                    }
                    mine
                }
            };
            if pending.is_empty() {
                break;
            }
            for f in pending {
                f(item.as_mut(), self, id);
            }
            action = Action::Keep;
        }
        let mut slots = self.inner.slots.borrow_mut();
        match slots.get_mut(id.key()) {
            Some(s) if s.gen == id.gen => s.item = Some(item),
            _ => {}
        }
    }

    /// Serves `id` right now as if `r` had been reported by the poller.
    pub(crate) fn serve_now(&self, id: ConnId, r: Readiness) {
        self.dispatch(id, r)
    }

    pub(super) fn dispatch(&self, id: ConnId, r: Readiness) {
        /// If `ready` panics (a bug: connection handlers and `add_handler`
        /// callbacks catch their own panics), the item is dropped by the
        /// unwinding: free its slot too, so the registration does not stay
        /// "busy" forever. Forgotten on the normal path, so it costs nothing.
        struct Unwinding<'a>(&'a IOLoop, ConnId);
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                self.0.remove(self.1);
                self.0
                    .inner
                    .deferred
                    .borrow_mut()
                    .retain(|(d, _)| *d != self.1);
            }
        }
        if let Some(mut item) = self.take(id) {
            let unwinding = Unwinding(self, id);
            let action = item.ready(self, id, r);
            std::mem::forget(unwinding);
            self.put_back(id, item, action);
        }
    }

    /// Runs `f` on the registration `id` (now, or — if it is being served
    /// right now — as soon as it is put back). Returns false for a stale id.
    /// `f` must not run user code; it queues data and marks the id dirty.
    pub(crate) fn with_conn(
        &self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Pollable, &IOLoop, ConnId) + 'static,
    ) -> bool {
        let busy = {
            let slots = self.inner.slots.borrow();
            match slots.get(id.key()) {
                Some(s) if s.gen == id.gen => s.item.is_none(),
                _ => return false,
            }
        };
        if busy {
            self.inner.deferred.borrow_mut().push((id, Box::new(f)));
            return true;
        }
        if let Some(mut item) = self.take(id) {
            f(item.as_mut(), self, id);
            self.put_back(id, item, Action::Keep);
        }
        true
    }

    /// Runs `f` on registration `id` in place, without taking it out of its
    /// slot: `Ok` with `f`'s result, `Err(true)` if the slot is busy (being
    /// served), `Err(false)` if `id` is stale. The slab stays borrowed while
    /// `f` runs, so `f` must not call user code or anything that touches
    /// the registrations (it may mark ids dirty and count metrics). For the
    /// broadcast fan-out, where take/put back per receiver was the cost.
    pub(crate) fn with_idle<R>(
        &self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Pollable) -> R,
    ) -> Result<R, bool> {
        let mut slots = self.inner.slots.borrow_mut();
        match slots.get_mut(id.key()) {
            Some(s) if s.gen == id.gen => match s.item.as_mut() {
                Some(item) => Ok(f(item.as_mut())),
                None => Err(true),
            },
            _ => Err(false),
        }
    }

    /// Serves `id` with `f` (which may run user code and decides the
    /// registration's fate), now if it is idle or when it is put back.
    pub(crate) fn with_conn_serve(
        &self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Pollable, &IOLoop, ConnId) -> Action + 'static,
    ) -> bool {
        match self.take(id) {
            Some(mut item) => {
                let action = f(item.as_mut(), self, id);
                self.put_back(id, item, action);
                true
            }
            None => self.with_conn(id, move |p, lp, id| {
                if let Action::Remove = f(p, lp, id) {
                    lp.inner.pending_removals.borrow_mut().push(id);
                }
            }),
        }
    }

    /// Runs `f` on the registration `id` right now if it is idle (not being
    /// served), returning its result; `None` for a stale or busy id.
    pub(crate) fn with_conn_now<R>(
        &self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Pollable) -> R,
    ) -> Option<R> {
        let mut item = self.take(id)?;
        let r = f(item.as_mut());
        self.put_back(id, item, Action::Keep);
        Some(r)
    }

    /// Asks for `id`'s [`Pollable::flush`] at the end of this tick.
    pub(crate) fn mark_dirty(&self, id: ConnId) {
        self.inner.dirty.borrow_mut().push(id);
    }

    /// Asks for another `ready(readable)` for `id` next tick (its read budget
    /// ran out; edge-triggered readiness will not repeat).
    pub(crate) fn mark_readable(&self, id: ConnId) {
        self.inner.still_readable.borrow_mut().push(id);
    }

    pub(super) fn flush_dirty(&self) {
        loop {
            let dirty = std::mem::take(&mut *self.inner.dirty.borrow_mut());
            if dirty.is_empty() {
                return;
            }
            for id in dirty {
                if let Some(mut item) = self.take(id) {
                    let action = item.flush(self, id);
                    self.put_back(id, item, action);
                }
            }
        }
    }

    /// Runs the due deadlines, and sets when the next sweep runs from the
    /// shortest [`Pollable::sweep_span`] still registered.
    pub(super) fn sweep(&self, now: Instant) {
        let mut span = None::<Duration>;
        let due: Vec<ConnId> = self
            .inner
            .slots
            .borrow()
            .iter()
            .filter_map(|(key, s)| {
                let item = s.item.as_ref()?;
                if let Some(mine) = item.sweep_span() {
                    span = Some(span.map_or(mine, |m| m.min(mine)));
                }
                let d = item.deadline(self)?;
                (d <= now).then_some(ConnId::new(key, s.gen))
            })
            .collect();
        // Before the deadlines run: a registration they add lowers it again
        // through `sweep_within`.
        self.set_sweep_interval(now, span);
        for id in due {
            if let Some(mut item) = self.take(id) {
                let action = item.on_deadline(self, id, now);
                self.put_back(id, item, action);
            }
        }
    }

    /// The ids of every live registration.
    pub(super) fn all_ids(&self) -> Vec<ConnId> {
        self.inner
            .slots
            .borrow()
            .iter()
            .map(|(k, s)| ConnId::new(k, s.gen))
            .collect()
    }

    /// Calls [`Pollable::shutdown`] on every registration (graceful shutdown;
    /// see [`crate::shutdown`]). A registration being served right now
    /// (shutdown called from its own handler) is shut down as soon as it is
    /// put back.
    pub fn shutdown_all(&self) {
        for id in self.all_ids() {
            self.with_conn_serve(id, |p, lp, id| p.shutdown(lp, id));
        }
    }

    /// Drops every registration now ([`Pollable::abort`]): the end of a
    /// graceful shutdown whose grace ran out.
    pub fn abort_all(&self) {
        for id in self.all_ids() {
            self.with_conn_serve(id, |p, lp, id| p.abort(lp, id));
        }
    }

    // ---- user handlers (Tornado's add_handler) ---------------------------

    /// Registers any mio [`Source`] and calls `callback` with it on each
    /// readiness event (Tornado's `add_handler(fd, handler, events)`).
    ///
    /// A panic in `callback` is caught, logged at error level (with the
    /// handler's id) and counted in [`Counter::CallbackPanics`](super::Counter::CallbackPanics);
    /// the handler stays registered and is called on the next readiness
    /// event, as Tornado logs a handler's exception and keeps the handler
    /// (readiness is edge-triggered, so a handler that panics before
    /// reading is not called again until new readiness arrives). Call
    /// [`remove_handler`](Self::remove_handler) from the callback, before
    /// the panic, to drop it instead.
    ///
    /// # Errors
    /// Registration with the poller failed.
    ///
    /// # Panics
    /// Never in practice: the registration just inserted is looked up by its own id and type.
    pub fn add_handler<S, F>(
        &self,
        source: S,
        interest: Interest,
        callback: F,
    ) -> io::Result<ConnId>
    where
        S: Source + 'static,
        F: FnMut(&mut S, Readiness) + 'static,
    {
        let mut entry = Some(Box::new(UserHandler {
            source,
            callback,
            waiting: None,
        }));
        let id =
            self.insert(|_| entry.take().unwrap_or_else(|| unreachable!()) as Box<dyn Pollable>);
        let res = self.with_conn_now(id, |p| {
            let h = p
                .as_any_mut()
                .downcast_mut::<UserHandler<S, F>>()
                .expect("user handler type");
            self.inner
                .registry
                .register(&mut h.source, id.token(), interest)
        });
        match res {
            Some(Ok(())) => Ok(id),
            // The descriptor is still in the poll set under a handler that
            // removed itself from its own callback (Tornado's
            // `remove_handler` then `add_handler` on one fd): registered as
            // soon as that one is put back, before the next poll.
            Some(Err(e))
                if e.kind() == io::ErrorKind::AlreadyExists
                    && !self.inner.pending_removals.borrow().is_empty() =>
            {
                self.with_conn_now(id, |p| {
                    if let Some(h) = p.as_any_mut().downcast_mut::<UserHandler<S, F>>() {
                        h.waiting = Some(interest);
                    }
                });
                self.inner.waiting_registrations.borrow_mut().push(id);
                Ok(id)
            }
            Some(Err(e)) => {
                self.remove(id);
                Err(e)
            }
            None => Err(io::Error::other("handler vanished")),
        }
    }

    /// Registers the `add_handler`s that waited for a removal (see
    /// `add_handler`); one whose descriptor is still taken waits on while
    /// removals are pending, and is dropped with an error log otherwise.
    fn register_waiting(&self) {
        let ids = std::mem::take(&mut *self.inner.waiting_registrations.borrow_mut());
        for id in ids {
            let res = self.with_conn_now(id, |p| p.register_waiting(&self.inner.registry, id));
            match res {
                Some(Err(e))
                    if e.kind() == io::ErrorKind::AlreadyExists
                        && !self.inner.pending_removals.borrow().is_empty() =>
                {
                    self.inner.waiting_registrations.borrow_mut().push(id);
                }
                Some(Err(e)) => {
                    log::error!("add_handler {id}: registration failed: {e}");
                    self.remove(id);
                }
                Some(Ok(())) | None => {}
            }
        }
    }

    /// Deregisters and drops a handler added with [`add_handler`](Self::add_handler)
    /// (or any registration). Returns false for a stale id. Safe to call from
    /// inside that handler's own callback.
    pub fn remove_handler(&self, id: ConnId) -> bool {
        if !self.contains(id) {
            return false;
        }
        match self.take(id) {
            Some(mut item) => {
                item.deregister(&self.inner.registry);
                self.put_back(id, item, Action::Remove);
            }
            // Being served right now (called from its own callback):
            // deregistered and removed when it is put back.
            None => self.inner.pending_removals.borrow_mut().push(id),
        }
        true
    }
}

struct UserHandler<S, F> {
    source: S,
    callback: F,
    /// The interest to register with once the descriptor is free (see
    /// `IOLoop::add_handler`).
    waiting: Option<Interest>,
}

/// Names an `add_handler` callback in the log line of its panic (formatted
/// only then).
struct HandlerKind(ConnId);

impl std::fmt::Display for HandlerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "add_handler callback for {}", self.0)
    }
}

impl<S: Source + 'static, F: FnMut(&mut S, Readiness) + 'static> Pollable for UserHandler<S, F> {
    fn ready(&mut self, lp: &IOLoop, id: ConnId, r: Readiness) -> Action {
        // A panic is logged and the registration kept (see `add_handler`).
        let (callback, source) = (&mut self.callback, &mut self.source);
        lp.guard(HandlerKind(id), || callback(source, r));
        Action::Keep
    }

    fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.source);
    }

    fn awaited_by_shutdown(&self) -> bool {
        false
    }

    fn register_waiting(&mut self, registry: &Registry, id: ConnId) -> io::Result<()> {
        match self.waiting.take() {
            Some(interest) => registry.register(&mut self.source, id.token(), interest),
            None => Ok(()),
        }
    }

    /// Dropped by `abort_all` (the end of `crate::shutdown`): out of the
    /// poll set first, as `remove_handler` does.
    fn abort(&mut self, lp: &IOLoop, _id: ConnId) -> Action {
        self.deregister(&lp.inner.registry);
        Action::Remove
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
