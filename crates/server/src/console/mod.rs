//! The console: a page in the browser at `/ui/` on the metrics port that
//! shows every queue live (state, depth, rates, batch sizes, handler and
//! item times, errors) with small charts of the last five minutes.
//!
//! Every asset is in the binary (no network at view time): the page, its
//! script and style (`assets/console/`) and uPlot, the charting library,
//! vendored with its licence. The data is what the control plane's
//! `WatchStats` sends (the same [`crate::control::snapshot`]), as JSON at
//! `/ui/api/snapshot` and as server-sent events at `/ui/api/events`, one a
//! second per open page and none when no page is open. The console only
//! reads: changing a queue stays with the control plane and its token.
//! A queue's own page (`#/queue/NAME`) charts its batch sizes, what
//! closes its batches, queue wait against handler time, what target mode
//! learned, cost and padding, batch keys' shares and its endpoints, from
//! the same snapshots. With jobs on, the page lists the newest jobs with
//! their progress ([`jobs`], read every two seconds while the page is
//! open), a job's errors and its results as a download.
//! With a control token configured, the page can pause, resume, flush and
//! drain a queue, change its policy and cancel a job ([`actions`]);
//! without one it only reads. At most [`MAX_EVENT_STREAMS`] pages get live
//! updates at once (more get 503 and retry).

mod actions;
mod jobs;
mod routes;

pub use self::routes::{MAX_EVENT_STREAMS, router};
