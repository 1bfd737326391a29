//! The Open Inference Protocol's REST side (KServe v2 HTTP/JSON, with
//! Triton's binary tensor extension and its config, statistics and index
//! paths), on `server.http_addr` when it is set. Every request becomes the
//! gRPC side's request and runs the same way: same queues, limits, errors
//! (as HTTP statuses with `{"error": "..."}`), priority (the `priority`
//! parameter) and deadline (the `timeout` parameter, microseconds).

mod answer;
mod infer;
mod json;
mod models;
mod routes;

pub use self::answer::failed;
pub use self::routes::serve;
