//! The queue actor: the one task that owns a queue's backlog, its alarm and
//! its in-flight batches. Callers talk to it only through [`Command`]s on
//! its [`Inbox`], so the queue's state is never locked.
//!
//! Each turn reads the clock once and goes admit → dispatch → wait: the
//! backlog does what is due (expiry, callers gone), as many batches go out
//! as the policy and `max_in_flight_batches` allow, and the alarm is set for
//! the next moment something is due (none for an empty queue). Commands
//! already waiting are taken in the same turn, up to
//! [`turn::MAX_COMMANDS_PER_TURN`] and no more once a full batch is pending; while
//! a batch is still filling the actor yields once, so ready submitters'
//! items arrive in one turn. It drains on `Drain` or when every handle is
//! gone.
//!
//! Its parts, one file each:
//! - `state`: the actor's state, split by what each part touches
//!   ([`state::Actor`] holds the lanes, the batches in flight and the
//!   flags; what was learned is a [`learner::Learner`] whose fields only
//!   `learner` reaches);
//! - `turn`: the loop (admit → dispatch → wait) and taking commands;
//! - `commands`: what each [`Command`](super::command::Command) does;
//! - `admit`: whether and where an item joins;
//! - `batch_keys`: lanes by batch key (not idempotency keys), their gauges;
//! - `dispatch`: which batch is due, taking and launching it;
//! - `learner`: the adaptive modes' and pacing's fit, rate, size cap and
//!   climb;
//! - `learn`: feeding it each finished batch, and what GetQueue shows.

mod admit;
mod batch_keys;
mod commands;
mod dispatch;
mod learn;
mod learner;
mod state;
mod turn;

pub(super) use self::{state::Place, turn::run};
