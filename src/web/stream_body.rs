//! Request bodies taken as they arrive, on routes marked
//! [`stream_request_body`](super::ApplicationBuilder::stream_request_body)
//! (Tornado's `@stream_request_body`): the HTTP connection hands the body
//! to a [`StreamSink`] piece by piece instead of buffering it.

use std::rc::Rc;

use super::application::Shared;
use super::async_response;
use super::context::Parts;
use super::handler::{before_method, finish_response, run_method, run_on_finish};
use super::{RequestContext, RequestHandler};
use crate::http::{BodySink, Reply, Request};

/// One request's handler, between its head and the end of its body.
pub(crate) struct StreamSink {
    handler: Box<dyn RequestHandler>,
    /// The head (its body stays empty).
    request: Request,
    shared: Rc<Shared>,
    args: Vec<String>,
    /// The context between calls; `None` once the answer is decided.
    parts: Option<Parts>,
    later: Option<async_response::Shared>,
    /// An answer decided before the body ended.
    early: Option<Reply>,
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
        let mut sink = StreamSink {
            handler,
            request,
            shared,
            args,
            parts: None,
            later: None,
            early: None,
        };
        let mut cx = RequestContext::new(&sink.request, &sink.shared);
        cx.set_path_kwargs(kwargs);
        sink.handler.set_default_headers(&mut cx);
        cx.keep_only_headers(200);
        before_method(&mut *sink.handler, &mut cx, false);
        let (parts, later, early) = settle(&mut *sink.handler, cx);
        sink.parts = parts;
        sink.later = later;
        sink.early = early;
        sink
    }
}

/// After a step of the handler: the context to keep, or the answer if the
/// response is finished.
fn settle(
    handler: &mut dyn RequestHandler,
    mut cx: RequestContext<'_>,
) -> (Option<Parts>, Option<async_response::Shared>, Option<Reply>) {
    if !cx.is_finished() {
        let (parts, later) = cx.into_parts();
        return (Some(parts), later, None);
    }
    finish_response(handler, &mut cx);
    let response = cx.into_response();
    run_on_finish(handler, response.status());
    (None, None, Some(Reply::Response(response)))
}

impl BodySink for StreamSink {
    fn max_body_size(&self) -> Option<u64> {
        self.parts.as_ref().and_then(Parts::max_body_size)
    }

    fn early_reply(&mut self) -> Option<Reply> {
        self.early.take()
    }

    fn data(&mut self, chunk: &[u8]) {
        let Some(parts) = self.parts.take() else {
            return;
        };
        let mut cx =
            RequestContext::from_parts(&self.request, &self.shared, parts, self.later.take());
        self.handler.data_received(&mut cx, chunk);
        let (parts, later, early) = settle(&mut *self.handler, cx);
        self.parts = parts;
        self.later = later;
        self.early = early;
    }

    fn on_connection_close(&mut self) {
        if self.parts.is_some() {
            self.handler.on_connection_close();
        }
    }

    fn finish(self: Box<Self>, _req: Request) -> Reply {
        let StreamSink {
            mut handler,
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
        let Some(parts) = parts else {
            // Not reached: an answer decided early is taken by the
            // connection before the body's end.
            return Reply::Response(crate::http::Response::error(500, None));
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cx = RequestContext::from_parts(&request, &shared, parts, later);
        run_method(&mut *handler, &mut cx, &argv);
        if cx.is_open_later() {
            let (parts, later) = cx.into_parts();
            let later = later.expect("open later");
            return Reply::Pending(async_response::begin(
                later, request, shared, parts, handler,
            ));
        }
        finish_response(&mut *handler, &mut cx);
        let response = cx.into_response();
        run_on_finish(&mut *handler, response.status());
        Reply::Response(response)
    }
}
