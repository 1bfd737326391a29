//! What a request waits for before it goes: one of the queue's
//! `max_in_flight` slots, a token of its `rate` (a token bucket of
//! `burst`), and the end of a pause an API asked for with `429` and
//! `Retry-After`. Shared by every batch of the queue.
//!
//! While an API says 429 the queue's rate is halved (down to a sixteenth),
//! and each request that goes well gives back a thirty-second of it.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tonic::Status;

use crate::handler::config::Rate;

/// Lowest share of the configured rate a 429 may bring it to.
const MIN_FACTOR: f64 = 1.0 / 16.0;
/// The share of the rate each request that goes well gives back.
const RECOVER: f64 = 1.0 / 32.0;

/// Why a request waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// For a token of the rate.
    Rate,
    /// For the pause an API's `Retry-After` asked for.
    RetryAfter,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Rate => "rate",
            Cause::RetryAfter => "retry_after",
        }
    }
}

/// The gate of one queue's requests.
#[derive(Debug)]
pub struct Gate {
    slots: Arc<Semaphore>,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Requests per second and burst; `None`: no rate limit.
    rate: Option<(f64, f64)>,
    /// The bucket as a schedule (GCRA): when the next request would go
    /// if the bucket were empty. Each request reserves its own time, so
    /// waiters never race for a token and a late timer loses no capacity.
    next: Instant,
    /// The share of the rate in force (1 unless an API said 429).
    factor: f64,
    /// No request goes before this (an API's `Retry-After`).
    paused_until: Option<Instant>,
}

impl Gate {
    pub fn new(max_in_flight: usize, rate: Option<Rate>, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
            state: Mutex::new(Bucket {
                rate: rate.map(|r| (r.per_second(), burst)),
                next: Instant::now(),
                factor: 1.0,
                paused_until: None,
            }),
        }
    }

    /// Waits for a slot, then for the rate and any pause; `waited` hears
    /// each wait. The slot is held until the permit drops.
    ///
    /// # Errors
    /// DEADLINE_EXCEEDED when the item's deadline comes first.
    pub async fn enter(
        &self,
        deadline: Instant,
        mut waited: impl FnMut(Cause, Duration),
    ) -> Result<OwnedSemaphorePermit, Status> {
        let permit = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(
                    "the item's deadline passed while max_in_flight requests were running",
                )
            })?
            .map_err(|_| Status::unavailable("the handler was replaced"))?;
        loop {
            let (at, cause) = self.reserve(deadline)?;
            let Some(at) = at else {
                return Ok(permit);
            };
            let wait = at.saturating_duration_since(Instant::now());
            tokio::time::sleep_until(at).await;
            waited(cause, wait);
            // A pause that began while it waited holds it too.
            if cause == Cause::Rate && !self.paused() {
                return Ok(permit);
            }
        }
    }

    /// Reserves the request's time: `None` for now, else when (and what
    /// it waits for).
    fn reserve(&self, deadline: Instant) -> Result<(Option<Instant>, Cause), Status> {
        let mut b = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(until) = b.paused_until {
            if until > now {
                if until > deadline {
                    return Err(Status::deadline_exceeded(
                        "the API's Retry-After would hold the request past the item's deadline",
                    ));
                }
                return Ok((Some(until), Cause::RetryAfter));
            }
            b.paused_until = None;
        }
        let Some((per_second, burst)) = b.rate else {
            return Ok((None, Cause::Rate));
        };
        let every = Duration::from_secs_f64(1.0 / (per_second * b.factor));
        // A full bucket lets `burst` go at once: the schedule may run
        // `burst - 1` intervals ahead of now.
        let ahead = every.mul_f64(burst - 1.0);
        let next = b.next.max(now);
        let at = next.checked_sub(ahead).unwrap_or(now).max(now);
        if at > deadline {
            return Err(Status::deadline_exceeded(
                "the queue's rate would hold the request past the item's deadline",
            ));
        }
        b.next = next + every;
        Ok(((at > now).then_some(at), Cause::Rate))
    }

    fn paused(&self) -> bool {
        let b = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        b.paused_until.is_some_and(|u| u > Instant::now())
    }

    /// An API said 429: every request of the queue waits `retry_after`
    /// (when it said one), and the rate halves.
    pub fn too_many(&self, retry_after: Option<Duration>) {
        let mut b = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        b.factor = (b.factor / 2.0).max(MIN_FACTOR);
        if let Some(after) = retry_after {
            let until = Instant::now() + after;
            b.paused_until = Some(b.paused_until.map_or(until, |p| p.max(until)));
        }
    }

    /// A request went well: the rate recovers a little.
    pub fn went_well(&self) {
        let mut b = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if b.factor < 1.0 {
            b.factor = (b.factor + RECOVER).min(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64) -> Option<Rate> {
        Some(Rate {
            count,
            per: Duration::from_secs(secs),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_spaces_requests_and_a_burst_goes_at_once() {
        let gate = Gate::new(100, rate(10, 1), 3);
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            let _p = gate
                .enter(t0 + Duration::from_secs(60), |_, _| {})
                .await
                .unwrap();
            at.push((Instant::now() - t0).as_millis());
        }
        assert_eq!(at, [0, 0, 0, 100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn many_waiters_get_the_whole_rate_even_past_the_timer_tick() {
        // 2,000/s is one request every 0.5 ms, finer than the timer's 1 ms.
        let gate = Arc::new(Gate::new(10_000, rate(2_000, 1), 1));
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(60);
        let mut waiters = tokio::task::JoinSet::new();
        for _ in 0..5_000 {
            let gate = gate.clone();
            waiters.spawn(async move {
                drop(gate.enter(deadline, |_, _| {}).await.unwrap());
                Instant::now() - t0
            });
        }
        let mut within_a_second = 0;
        while let Some(took) = waiters.join_next().await {
            within_a_second += usize::from(took.unwrap() < Duration::from_secs(1));
        }
        assert!(
            (1_999..=2_001).contains(&within_a_second),
            "{within_a_second}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_request_and_halves_the_rate() {
        let gate = Gate::new(100, rate(10, 1), 1);
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(60);
        drop(gate.enter(deadline, |_, _| {}).await.unwrap());
        gate.too_many(Some(Duration::from_secs(2)));
        let mut causes = Vec::new();
        drop(gate.enter(deadline, |c, _| causes.push(c)).await.unwrap());
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        assert_eq!(causes, [Cause::RetryAfter]);
        // Half the rate: 200 ms between requests.
        let before = Instant::now();
        drop(gate.enter(deadline, |_, _| {}).await.unwrap());
        assert_eq!(Instant::now() - before, Duration::from_millis(200));
        // A pause past the deadline fails at once.
        gate.too_many(Some(Duration::from_secs(120)));
        let e = gate.enter(deadline, |_, _| {}).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
    }

    #[tokio::test(start_paused = true)]
    async fn max_in_flight_bounds_requests_at_once() {
        let gate = Gate::new(2, None, 1);
        let deadline = Instant::now() + Duration::from_secs(1);
        let a = gate.enter(deadline, |_, _| {}).await.unwrap();
        let _b = gate.enter(deadline, |_, _| {}).await.unwrap();
        let e = gate.enter(deadline, |_, _| {}).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
        drop(a);
        let deadline = Instant::now() + Duration::from_secs(1);
        drop(gate.enter(deadline, |_, _| {}).await.unwrap());
    }
}
