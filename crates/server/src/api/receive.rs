//! The memory budget on the way in: bytes of gRPC messages still being
//! received. tonic reads a request's body as it comes, so the HTTP/2 window
//! does not hold a message back: a client with many calls open, each
//! sending a message of `max_message_bytes`, would have the server buffer
//! all of them before any handler could refuse one. Each data-plane call's
//! body is read through a [`ChargedBody`] that follows the gRPC framing
//! (a 5-byte prefix: flag, then the length): when a message's prefix
//! arrives, its declared length is charged to the server's
//! [`MemoryBudget`]; once its last byte has passed, the charge goes to the
//! handler ([`Received`], in the request's extensions), which grows it into
//! the item's. A handler that puts a charge in its response's extensions
//! ([`Keep`]) has it held until the response body is gone, so an answer
//! stays counted while it is sent. A unary call whose message
//! does not fit fails at once with RESOURCE_EXHAUSTED, before it is
//! buffered; a stream waits until bytes are given back (its HTTP/2 window
//! then holds the client back), so a long stream is slowed, never cut.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{Status, body::Body, server::NamedService};

use crate::{
    error::Refusal,
    queue::budget::{Charge, MemoryBudget, RoomWait},
};

/// Bytes of a gRPC message's prefix.
const PREFIX: usize = 5;

/// Why the body stopped at a message's prefix.
#[derive(Debug)]
enum Stop {
    /// The budget has no room for the message (yet).
    NoRoom(Refusal),
    /// The framing is broken: the caller's to fix.
    Malformed(String),
}

/// The charges of a call's messages received whole, in order, for its
/// handler to take (a request extension).
#[derive(Debug, Clone, Default)]
pub struct Received(Arc<Mutex<VecDeque<Charge>>>);

impl Received {
    /// The charges of the call whose request had `extensions` (none there
    /// when it did not come through [`Charged`]).
    pub fn of(extensions: &http::Extensions) -> Self {
        extensions.get::<Received>().cloned().unwrap_or_default()
    }

    /// The charge of the call's next message (none if nothing was charged).
    pub fn next(&self) -> Charge {
        self.lock().pop_front().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Charge>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A charge to hold until the response carrying it has been sent (a
/// response extension).
#[derive(Debug, Clone)]
pub struct Keep(Arc<Mutex<Option<Charge>>>);

impl Keep {
    /// Keeps `charge` with the response.
    pub fn new(charge: Charge) -> Self {
        Self(Arc::new(Mutex::new(Some(charge))))
    }

    fn take(&self) -> Charge {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default()
    }
}

/// A data-plane service whose requests' messages are charged while they
/// are received.
#[derive(Debug, Clone)]
pub struct Charged<S> {
    /// The tonic service.
    inner: S,
    /// The server's budget.
    budget: Arc<MemoryBudget>,
    /// `server.max_message_bytes`: a longer message is tonic's to refuse
    /// (OUT_OF_RANGE), not charged.
    max_message_bytes: usize,
}

impl<S> Charged<S> {
    /// `inner`, its requests charged to `budget`.
    pub fn new(inner: S, budget: Arc<MemoryBudget>, max_message_bytes: usize) -> Self {
        Self {
            inner,
            budget,
            max_message_bytes,
        }
    }
}

impl<S: NamedService> NamedService for Charged<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for Charged<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // A stream's messages wait for room; a unary call's is refused.
        let path = parts.uri.path();
        let waits = path.ends_with("/StreamSubmit") || path.ends_with("/ModelStreamInfer");
        let received = Received::default();
        parts.extensions.insert(received.clone());
        let mut body = ChargedBody::new(body, self.budget.clone(), self.max_message_bytes, waits);
        body.received = received;
        body.encoded = parts.headers.contains_key("grpc-encoding");
        let call = self
            .inner
            .call(http::Request::from_parts(parts, Body::new(body)));
        Box::pin(async move {
            let response = call.await?;
            let Some(keep) = response.extensions().get::<Keep>().map(Keep::take) else {
                return Ok(response);
            };
            Ok(response.map(|body| {
                Body::new(KeptBody {
                    inner: body,
                    _charge: keep,
                })
            }))
        })
    }
}

/// Where the body is in its stream of length-prefixed messages.
#[derive(Debug)]
enum Framing {
    /// Reading a prefix: its bytes so far.
    Prefix { read: [u8; PREFIX], len: usize },
    /// Reading a message: bytes still to come.
    Message { left: usize },
}

impl Default for Framing {
    fn default() -> Self {
        Framing::Prefix {
            read: [0; PREFIX],
            len: 0,
        }
    }
}

/// A request body that charges each message it carries while it is
/// received (see the module docs).
struct ChargedBody {
    inner: Body,
    budget: Arc<MemoryBudget>,
    max_message_bytes: usize,
    /// Whether a message that does not fit waits (a stream) or fails.
    waits: bool,
    framing: Framing,
    /// The charge of the message being received.
    charge: Charge,
    /// Data read from the client and held back until the message it
    /// starts fits (the framing has got to its start).
    held: Option<Bytes>,
    /// The wait for room while a frame is held.
    room: Option<RoomWait>,
    /// Where the charges of whole messages go, for the handler.
    received: Received,
    /// Whether the request names a `grpc-encoding` (without one, a
    /// message flagged compressed is malformed).
    encoded: bool,
    /// A malformed body was answered; nothing more is read.
    failed: bool,
}

impl ChargedBody {
    fn new(inner: Body, budget: Arc<MemoryBudget>, max_message_bytes: usize, waits: bool) -> Self {
        Self {
            inner,
            budget,
            max_message_bytes,
            waits,
            framing: Framing::default(),
            charge: Charge::none(),
            held: None,
            room: None,
            received: Received::default(),
            encoded: false,
            failed: false,
        }
    }

    /// Follows the framing through `data`, advancing it, and charges each
    /// message whose prefix it completes. On a refusal `data` stops just
    /// after that prefix, so the same call with what is left tries again.
    fn account(&mut self, data: &mut &[u8]) -> Result<(), Stop> {
        loop {
            if let Framing::Prefix { read, len: PREFIX } = self.framing {
                match read[0] {
                    0 => {}
                    1 if self.encoded => {}
                    1 => {
                        return Err(Stop::Malformed(
                            "a message is flagged compressed but the request names no grpc-encoding"
                                .to_owned(),
                        ));
                    }
                    flag => {
                        return Err(Stop::Malformed(format!(
                            "a message has compression flag {flag} (0 or 1)"
                        )));
                    }
                }
                let declared = u32::from_be_bytes([read[1], read[2], read[3], read[4]]);
                let declared = usize::try_from(declared).unwrap_or(usize::MAX);
                if declared <= self.max_message_bytes {
                    self.charge = self.budget.charge(declared).map_err(Stop::NoRoom)?;
                }
                self.framing = Framing::Message { left: declared };
            }
            if matches!(self.framing, Framing::Message { left: 0 }) {
                let charge = std::mem::take(&mut self.charge);
                self.received.lock().push_back(charge);
                self.framing = Framing::default();
            }
            if data.is_empty() {
                return Ok(());
            }
            match &mut self.framing {
                Framing::Prefix { read, len } => {
                    let take = (PREFIX - *len).min(data.len());
                    read[*len..*len + take].copy_from_slice(&data[..take]);
                    *len += take;
                    data.advance(take);
                }
                Framing::Message { left } => {
                    let take = (*left).min(data.len());
                    *left -= take;
                    data.advance(take);
                }
            }
        }
    }
}

impl ChargedBody {
    /// What is wrong with a body that ended here, if it ended inside a
    /// message (gRPC libraries say INTERNAL; the input is the caller's).
    fn cut_short(&self) -> Option<String> {
        match self.framing {
            Framing::Prefix { len: 0, .. } => None,
            Framing::Prefix { len, .. } => Some(format!(
                "the request ended {len} bytes into a message's 5-byte prefix"
            )),
            Framing::Message { left } => Some(format!(
                "the request ended {left} bytes short of the message its prefix declared"
            )),
        }
    }

    fn fail(&mut self, problem: String) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.failed = true;
        self.held = None;
        Poll::Ready(Some(Err(Status::invalid_argument(format!(
            "malformed gRPC framing: {problem}"
        )))))
    }
}

impl HttpBody for ChargedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            let data = match this.held.take() {
                Some(held) => held,
                None => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => data,
                        Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                    },
                    Poll::Ready(None) => match this.cut_short() {
                        Some(problem) => return this.fail(problem),
                        None => return Poll::Ready(None),
                    },
                    other => return other,
                },
            };
            if this.waits && this.room.is_none() {
                // Armed before the try, so room made meanwhile wakes it.
                this.room = Some(this.budget.room_wait());
            }
            let mut rest = &data[..];
            match this.account(&mut rest) {
                Ok(()) => {
                    this.room = None;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Err(Stop::Malformed(problem)) => return this.fail(problem),
                Err(Stop::NoRoom(refusal)) if !this.waits => {
                    return Poll::Ready(Some(Err(Status::resource_exhausted(refusal.to_string()))));
                }
                Err(Stop::NoRoom(_)) => {
                    // What came before the message that does not fit
                    // goes on now; the rest waits for room.
                    let accounted = data.len() - rest.len();
                    if accounted > 0 {
                        this.held = Some(data.slice(accounted..));
                        return Poll::Ready(Some(Ok(Frame::data(data.slice(..accounted)))));
                    }
                    this.held = Some(data);
                    let Some(room) = this.room.as_mut() else {
                        continue;
                    };
                    match room.poll(cx) {
                        // Bytes were given back: arm again and retry.
                        Poll::Ready(()) => this.room = None,
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed
            || (self.held.is_none() && self.inner.is_end_stream() && self.cut_short().is_none())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body holding a charge until it is dropped (sent, or the
/// call ended).
struct KeptBody {
    inner: Body,
    _charge: Charge,
}

impl HttpBody for KeptBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(budget: &Arc<MemoryBudget>) -> ChargedBody {
        ChargedBody::new(Body::empty(), budget.clone(), 1000, false)
    }

    /// Accounts all of `data` in one go.
    fn all(b: &mut ChargedBody, mut data: &[u8]) -> Result<(), Stop> {
        b.account(&mut data)?;
        assert!(data.is_empty());
        Ok(())
    }

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7, len as usize));
        m
    }

    #[test]
    fn a_message_is_charged_from_its_prefix_to_its_last_byte() {
        let budget = MemoryBudget::new(10_000, metrics::Gauge::noop());
        let mut b = body(&budget);
        let m = message(300);
        // Split anywhere, even inside the prefix.
        all(&mut b, &m[..3]).unwrap();
        assert_eq!(budget.used(), 0);
        all(&mut b, &m[3..100]).unwrap();
        assert_eq!(budget.used(), 300);
        all(&mut b, &m[100..]).unwrap();
        assert_eq!(budget.used(), 300, "handed on at its last byte");
        let mut extensions = http::Extensions::new();
        extensions.insert(b.received.clone());
        assert_eq!(Received::of(&extensions).next().bytes(), 300);
        assert_eq!(
            budget.used(),
            0,
            "given back when the handler is done with it"
        );
        // Two messages and part of a third in one frame.
        let mut frame = [message(10), message(0), message(20)].concat();
        frame.truncate(frame.len() - 5);
        all(&mut b, &frame).unwrap();
        assert_eq!(budget.used(), 30, "10 and 0 handed on, 20 being received");
        drop((b, extensions));
        assert_eq!(budget.used(), 0, "a call that ended midway gives it back");
    }

    #[test]
    fn a_message_past_the_budget_is_refused_where_it_starts_and_one_past_the_size_limit_left_to_tonic()
     {
        let budget = MemoryBudget::new(500, metrics::Gauge::noop());
        let _held = budget.charge(400).unwrap();
        let mut b = body(&budget);
        let m = message(200);
        let mut rest = &m[..];
        let refusal = b.account(&mut rest).unwrap_err();
        assert!(
            matches!(refusal, Stop::NoRoom(Refusal::MemoryFull { need: 200, .. })),
            "{refusal:?}"
        );
        assert_eq!(rest.len(), 200, "stopped just after the prefix");
        drop(_held);
        b.account(&mut rest).unwrap();
        assert_eq!(
            (rest.len(), budget.used()),
            (0, 200),
            "the retry goes on from there"
        );
        drop(b);
        let mut b = body(&budget);
        all(&mut b, &message(5000)[..50]).unwrap();
        assert_eq!(budget.used(), 0, "tonic refuses it as too large");
    }
}
