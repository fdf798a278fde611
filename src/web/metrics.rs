//! `MetricsHandler`: the loop's counters in the Prometheus text format, for
//! a `/metrics` route.

use super::{RequestContext, RequestHandler};
use crate::ioloop::IOLoop;

/// Answers `GET` with [`IOLoop::metrics`] of the current thread's loop in
/// the Prometheus text exposition format.
///
/// ```no_run
/// use cyclone::web::{Application, MetricsHandler};
/// let app = Application::builder().route("/metrics", || MetricsHandler).build();
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct MetricsHandler;

impl RequestHandler for MetricsHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        cx.write(IOLoop::current().metrics().to_prometheus());
    }
}
