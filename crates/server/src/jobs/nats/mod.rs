//! The NATS JetStream job store (`jobs.store = "nats"`): every replica of
//! a deployment shares its jobs, and a replica that dies loses nothing.
//!
//! What lives where (`P` is `jobs.nats.prefix`):
//! - a job's record (queue, state, totals, window, labels) in the key-value
//!   bucket `P_jobs`, changed with compare-and-set ([`records`]);
//! - its items on the work-queue stream `P_ITEMS`, subject `P.items.JOB`,
//!   taken through a durable pull consumer per job that every replica
//!   shares: an item is acknowledged only once its result is stored, so a
//!   replica killed mid-batch has its items delivered to another after
//!   `ack_wait` ([`items`]);
//! - its results on the stream `P_RESULTS`, subject `P.results.JOB.K` with
//!   K the outcome (`s` succeeded, `f` failed, `c` cancelled, `x`
//!   expired), each published with the message id `JOB.SEQ`: the stream's
//!   duplicate window (four `ack_wait`s, at least ten minutes) drops a
//!   second result of an item, which is how a redelivered item keeps one
//!   result; a job's counts are its subjects' message counts, so they are
//!   never behind its results ([`results`]).
//!
//! Online items never touch NATS. When it is unreachable, job calls fail
//! UNAVAILABLE naming the server, and the client reconnects by itself.

mod connection;
mod items;
mod records;
mod results;
mod store;

pub use self::store::NatsStore;

// The state every part shares.
use self::connection::Inner;
