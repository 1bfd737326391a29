//! `http_each`: each item of a batch is its own HTTP request, for APIs
//! without a batch endpoint. Requests of a batch go concurrently, within
//! the queue's `max_in_flight` and `rate` (shared by every batch, see
//! [`gate`]), over one pool of reused connections (HTTP/1.1 keep-alive,
//! HTTP/2 where the server offers it, HTTPS with rustls); each answer
//! goes to its caller as soon as it exists.
//!
//! A request is `method url` with the item's attributes in the URL's
//! placeholders, its payload as the body (when it has one) and the
//! configured headers. Connect errors and 429/502/503/504 are tried again
//! (at most `retries` times, within the item's deadline) after a jittered
//! exponential backoff, and never before the `Retry-After` the API said;
//! a 429 also pauses and slows the whole queue. A connection that broke
//! after the request went is tried again only for an idempotent method
//! (GET, HEAD, PUT, DELETE, OPTIONS): a POST may have been carried out.
//!
//! The result: the body as the payload, the status code as attribute
//! `status` and the `keep_headers` as attributes (lower-case names). A
//! final non-2xx status fails the item (see [`request::code_of`]) with the
//! body's first bytes in the message.

mod gate;
mod handler;
mod request;

pub use self::handler::Each;
