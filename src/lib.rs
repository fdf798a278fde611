//! # cyclone
//!
//! Tornado's `tornado.websocket` (with the slice of `tornado.ioloop` and
//! `tornado.web` around it) rebuilt in Rust as a single-threaded
//! [mio](https://docs.rs/mio) reactor.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod http;
pub mod ioloop;
pub mod protocol;
pub mod web;
pub mod websocket;
