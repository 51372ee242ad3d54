//! Phase 12, respond: the decided reply written to the client — a JSON answer (within
//! `limits.response_body_bytes_max`), a call relayed as it happens, or a notification stream.

use std::cell::Cell;
use std::future::Future;
use std::io::{self, ErrorKind};
use std::time::Duration;

use futures_lite::future;
use serde_json::value::RawValue;

use crate::http::ResponseWriter;
use crate::mcp::answer::answer_message;
use crate::mcp::call::Era;
use crate::mcp::listen::Subscription;
use crate::mcp::transport::{HttpReply, Refused, Reply};
use crate::pipeline::context::RequestContext;
use crate::pipeline::hooks::Hooks;
use crate::pipeline::Pipeline;
use crate::refusal::RefusalReason;
use crate::upstream::call::Relay;
use crate::wire::jsonrpc;

/// What a relayed call yields next for its client.
pub enum Relayed {
    /// A notification or request of the call, ahead of its answer.
    Event(Vec<u8>),
    /// The answer, which ends the call.
    Answer(Vec<u8>),
}

/// A source of [`Relayed`] messages: a call on this shard, or one another shard runs. Read on
/// the client's shard; its futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait EventSource {
    /// The next message; `None` when the source ended without an answer.
    async fn next_message(&mut self) -> Option<Relayed>;
}

/// What a notification stream is for: a session's GET stream, or a 2026-07-28
/// `subscriptions/listen`, which opens with its acknowledgment, carries only what it asked for
/// and ends with its result when the gateway closes it.
pub enum StreamFeed {
    SessionGet,
    Listen(Subscription),
}

impl<H: Hooks> Pipeline<H> {
    /// Writes `reply`.
    pub async fn respond(
        &self,
        reply: Reply,
        response: &mut ResponseWriter<'_>,
        cx: &mut RequestContext,
    ) -> io::Result<()> {
        match reply {
            Reply::Http(reply) => self.write_reply(response, reply, cx).await,
            Reply::Stream { ended } => {
                cx.status = Some(200);
                let ended = || async { ended.wait().await };
                self.notification_stream(response, StreamFeed::SessionGet, ended)
                    .await
            }
            Reply::Listen(subscription) => {
                cx.status = Some(200);
                let feed = StreamFeed::Listen(subscription);
                self.notification_stream(response, feed, future::pending::<()>)
                    .await
            }
            Reply::Relay { relay, id, era } => self.relay_call(relay, &id, era, response, cx).await,
        }
    }

    /// Writes `reply`, or a 502 naming the limit when its body exceeds
    /// `limits.response_body_bytes_max`.
    pub async fn write_reply(
        &self,
        response: &mut ResponseWriter<'_>,
        reply: HttpReply,
        cx: &mut RequestContext,
    ) -> io::Result<()> {
        let body_bytes = reply.json.as_ref().map_or(0, Vec::len) as u64;
        let body_bytes_max = self.config.limits.response_body_bytes_max;
        let reply = match body_bytes > body_bytes_max {
            false => reply,
            true => {
                let refused = Refused::invalid(
                    RefusalReason::ResponseTooLarge,
                    format!(
                        "response body {body_bytes} bytes exceeds \
                         limits.response_body_bytes_max {body_bytes_max}"
                    ),
                );
                self.refuse(cx, refused)
            }
        };
        cx.status = Some(reply.status);
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        match &reply.json {
            Some(body) => response.json(reply.status, &headers, body),
            None => response.empty(reply.status, &headers),
        }
    }

    /// Serves a notification stream: its opening event, then `notifications/*/list_changed`
    /// when a merged list changes and keep-alive comments every
    /// `limits.sse_keepalive_interval_ms`, until `session_ended`, the client leaves, or the
    /// shard drains.
    pub async fn notification_stream<F, Fut>(
        &self,
        response: &mut ResponseWriter<'_>,
        feed: StreamFeed,
        session_ended: F,
    ) -> io::Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        enum Wake {
            Ended,
            Drained,
            Left,
            KeepAlive,
            ListsChanged,
        }
        let keepalive = Duration::from_millis(self.config.limits.sse_keepalive_interval_ms);
        let router = self.endpoint.router();
        let _open = StreamGauge::open(&self.notification_streams);
        let mut stream = response.sse(200, &[])?;
        match &feed {
            StreamFeed::SessionGet => stream.event(Some("0"), b"")?,
            StreamFeed::Listen(subscription) => {
                stream.event(None, &subscription.acknowledgment())?
            }
        }
        stream.flush().await?;
        let ended = session_ended();
        futures_lite::pin!(ended);
        let mut lists_changed = router.lists_changed();
        loop {
            let tick = async {
                glommio::timer::sleep(keepalive).await;
                Wake::KeepAlive
            };
            let ended = async {
                ended.as_mut().await;
                Wake::Ended
            };
            let drained = async {
                self.shutdown.wait().await;
                Wake::Drained
            };
            let changed = async {
                lists_changed.wait().await;
                Wake::ListsChanged
            };
            let left = async {
                stream.peer_closed().await;
                Wake::Left
            };
            let stop = future::or(ended, future::or(drained, left));
            let wake = future::or(stop, future::or(changed, tick)).await;
            match wake {
                Wake::Ended | Wake::Left => break,
                Wake::Drained => {
                    if let StreamFeed::Listen(subscription) = &feed {
                        stream.event(None, &subscription.closing())?;
                    }
                    break;
                }
                Wake::KeepAlive => stream.comment("keep-alive"),
                Wake::ListsChanged => {
                    lists_changed = router.lists_changed();
                    for method in router.changed_list_methods() {
                        let notification = match &feed {
                            StreamFeed::SessionGet => {
                                Some(jsonrpc::notification_bytes(method, None))
                            }
                            StreamFeed::Listen(subscription) => subscription.list_changed(method),
                        };
                        if let Some(notification) = notification {
                            stream.event(None, &notification)?;
                        }
                    }
                }
            }
            stream.flush().await?;
        }
        stream.finish().await
    }

    /// Relays an upstream call to the client as it happens: a JSON answer when nothing came
    /// before it, else an event stream opened at the first notification and ended by the
    /// answer. Returning early (the client left) drops the relay, which cancels the call
    /// upstream. A call the upstream side turned away is counted once it ended.
    async fn relay_call(
        &self,
        mut relay: Relay,
        id: &RawValue,
        era: Era,
        response: &mut ResponseWriter<'_>,
        cx: &mut RequestContext,
    ) -> io::Result<()> {
        let gone = || io::Error::new(ErrorKind::ConnectionAborted, "the client left");
        let first = future::or(async { Some(relay.next().await) }, async {
            response.peer_gone().await;
            None
        })
        .await;
        let event = match first.ok_or_else(gone)? {
            Ok(answer) => {
                if let Some(reason) = relay.refusal() {
                    self.count(cx, reason);
                }
                let (status, body) = answer_message(id, answer, era);
                cx.status = Some(status);
                return response.json(status, &[], &body);
            }
            Err(event) => event,
        };
        cx.status = Some(200);
        let mut source = CallEvents { relay, id, era };
        let written = stream_events(response, event, &mut source, gone).await;
        if let Some(reason) = source.relay.refusal() {
            self.count(cx, reason);
        }
        written
    }
}

/// A call on this shard, relayed to its client under the client's `id`.
struct CallEvents<'a> {
    relay: Relay,
    id: &'a RawValue,
    era: Era,
}

impl EventSource for CallEvents<'_> {
    async fn next_message(&mut self) -> Option<Relayed> {
        Some(match self.relay.next().await {
            Err(event) => Relayed::Event(event),
            Ok(answer) => Relayed::Answer(answer_message(self.id, answer, self.era).1),
        })
    }
}

/// Writes an event stream that opens with `first`, carries each event `source` yields and
/// ends with its answer. When the client leaves or the source ends without an answer, returns
/// the error `gone` makes (which may also tell the source's owner).
pub async fn stream_events(
    response: &mut ResponseWriter<'_>,
    first: Vec<u8>,
    source: &mut impl EventSource,
    gone: impl Fn() -> io::Error,
) -> io::Result<()> {
    let mut stream = response.sse(200, &[])?;
    let mut event = first;
    loop {
        stream.event(None, &event)?;
        stream.flush().await?;
        let next = future::or(source.next_message(), async {
            stream.peer_closed().await;
            None
        })
        .await;
        event = match next.ok_or_else(&gone)? {
            Relayed::Event(event) => event,
            Relayed::Answer(answer) => {
                stream.event(None, &answer)?;
                return stream.finish().await;
            }
        };
    }
}

/// Counts an open notification stream for `/status` while it lives.
struct StreamGauge<'a>(&'a Cell<u32>);

impl<'a> StreamGauge<'a> {
    fn open(gauge: &'a Cell<u32>) -> StreamGauge<'a> {
        gauge.set(gauge.get() + 1);
        StreamGauge(gauge)
    }
}

impl Drop for StreamGauge<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
