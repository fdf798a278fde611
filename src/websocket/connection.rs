//! Placeholder: the per-connection WebSocket context (being written).
use std::marker::PhantomData;

/// The per-connection context handed to every handler callback.
pub struct WebSocket<'a> {
    _p: PhantomData<&'a mut ()>,
}
