//! Request bodies taken as they arrive, on routes marked
//! [`stream_request_body`](super::ApplicationBuilder::stream_request_body)
//! (Tornado's `@stream_request_body`): the HTTP connection hands the body
//! to a [`StreamSink`] piece by piece instead of buffering it.

use std::rc::Rc;

use super::application::Shared;
use super::async_response;
use super::context::Parts;
use super::handler::{before_method, finish_response, on_finish_after, run_method};
use super::{RequestContext, RequestHandler};
use crate::http::{AfterAnswer, BodySink, Reply, Request, Response};

/// One request's handler, between its head and the end of its body.
pub(crate) struct StreamSink {
    /// `None` once the answer was decided early: its `on_finish` went
    /// with it.
    handler: Option<Box<dyn RequestHandler>>,
    /// The head (its body stays empty).
    request: Request,
    shared: Rc<Shared>,
    args: Vec<String>,
    /// The context between calls; `None` once the answer is decided.
    parts: Option<Parts>,
    later: Option<async_response::Shared>,
    /// An answer decided before the body ended, with the handler's
    /// `on_finish`.
    early: Option<(Reply, Option<AfterAnswer>)>,
}

impl StreamSink {
    /// The head arrived: Tornado's `_execute` up to `prepare`.
    pub(crate) fn start(
        handler: Box<dyn RequestHandler>,
        request: Request,
        shared: Rc<Shared>,
        args: Vec<String>,
        kwargs: Vec<(String, String)>,
    ) -> StreamSink {
        let mut handler = handler;
        let mut sink = StreamSink {
            handler: None,
            request,
            shared,
            args,
            parts: None,
            later: None,
            early: None,
        };
        let mut cx = RequestContext::new(&sink.request, &sink.shared);
        cx.set_path_kwargs(kwargs);
        handler.set_default_headers(&mut cx);
        cx.keep_only_headers(200);
        before_method(&mut *handler, &mut cx, false);
        let finished = settle(&mut *handler, cx, &mut sink.parts, &mut sink.later);
        sink.keep(handler, finished);
        sink
    }

    /// After a step: keeps the handler, or gives it to the early answer
    /// `finished`, for its `on_finish` once that is sent.
    fn keep(&mut self, handler: Box<dyn RequestHandler>, finished: Option<Response>) {
        match finished {
            None => self.handler = Some(handler),
            Some(response) => {
                self.early = Some((Reply::Response(response), Some(on_finish_after(handler))));
            }
        }
    }
}

/// After a step of the handler: the context kept in `parts` and `later`,
/// or the response if it is finished.
fn settle(
    handler: &mut dyn RequestHandler,
    mut cx: RequestContext<'_>,
    parts: &mut Option<Parts>,
    later: &mut Option<async_response::Shared>,
) -> Option<Response> {
    if !cx.is_finished() {
        let (kept, open) = cx.into_parts();
        *parts = Some(kept);
        *later = open;
        return None;
    }
    finish_response(handler, &mut cx);
    Some(cx.into_response())
}

impl BodySink for StreamSink {
    fn max_body_size(&self) -> Option<u64> {
        self.parts.as_ref().and_then(Parts::max_body_size)
    }

    fn early_reply(&mut self) -> Option<(Reply, Option<AfterAnswer>)> {
        self.early.take()
    }

    fn data(&mut self, chunk: &[u8]) {
        let (Some(parts), Some(mut handler)) = (self.parts.take(), self.handler.take()) else {
            return;
        };
        let mut cx =
            RequestContext::from_parts(&self.request, &self.shared, parts, self.later.take());
        handler.data_received(&mut cx, chunk);
        let finished = settle(&mut *handler, cx, &mut self.parts, &mut self.later);
        self.keep(handler, finished);
    }

    fn on_connection_close(&mut self) {
        if let (Some(_), Some(handler)) = (&self.parts, self.handler.as_mut()) {
            handler.on_connection_close();
        }
    }

    fn finish(self: Box<Self>, _req: Request) -> (Reply, Option<AfterAnswer>) {
        let StreamSink {
            handler,
            request,
            shared,
            args,
            parts,
            later,
            early,
        } = *self;
        if let Some(reply) = early {
            return reply;
        }
        let (Some(parts), Some(mut handler)) = (parts, handler) else {
            // Not reached: an answer decided early is taken by the
            // connection before the body's end.
            return (Reply::Response(Response::error(500, None)), None);
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cx = RequestContext::from_parts(&request, &shared, parts, later);
        run_method(&mut *handler, &mut cx, &argv);
        if cx.is_open_later() {
            let (parts, later) = cx.into_parts();
            let later = later.expect("open later");
            let reply = async_response::begin(later, request, shared, parts, handler);
            return (Reply::Pending(reply), None);
        }
        finish_response(&mut *handler, &mut cx);
        let response = cx.into_response();
        (Reply::Response(response), Some(on_finish_after(handler)))
    }
}
