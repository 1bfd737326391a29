//! The gRPC services: they convert requests into items, hand them to their
//! queue and turn answers into responses. No batching logic lives here.

mod batcher;
mod call;
mod convert;
mod inference;
mod jobs;
mod receive;
mod rest;
mod state;
mod stream;
mod tensors;
mod triton;

pub use self::batcher::BatcherService;
pub use self::convert::{parse_grpc_timeout, stream_response, submit_response};
pub use self::inference::InferenceService;
pub use self::jobs::{JobsService, job_pb, result_line, result_pb, status as job_status};
pub use self::receive::Charged;
pub use self::rest::failed as http_failure;
pub use self::rest::serve as serve_rest;
pub use self::state::ApiState;
