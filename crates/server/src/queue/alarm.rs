//! A queue actor's single alarm: the next moment something is due.
//!
//! Three things can be due: the oldest item's `max_delay` (a batch closes),
//! the earliest item deadline (an item expires) and the next look for items
//! whose caller went away. The alarm is tokio's timer for all three, except
//! that for `max_delay` it hands over to the [`PreciseTimer`] within
//! [`PRECISE_WINDOW`] of the due instant (tokio's timer rounds up to whole
//! milliseconds). Nothing due: nothing armed, so an idle queue never wakes.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    sync::oneshot,
    time::{Instant, Sleep},
};

use crate::timer::{PRECISE_WINDOW, PreciseTimer};

/// The alarm of one queue actor.
#[derive(Debug)]
pub(super) struct Alarm {
    /// tokio's timer, reset only when the instant changes.
    timer: Pin<Box<Sleep>>,
    /// The instant `timer` is set for; `None`: not armed.
    armed: Option<Instant>,
    /// Sub-millisecond wake-ups; `None` uses tokio's timer alone (what a
    /// paused test clock needs).
    precise: Option<Arc<PreciseTimer>>,
    /// The precise wake-up asked for, and the due instant it is for.
    precise_wait: Option<oneshot::Receiver<()>>,
    precise_for: Option<Instant>,
}

impl Alarm {
    /// An alarm that is not set.
    pub(super) fn new(precise: Option<Arc<PreciseTimer>>) -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
            precise,
            precise_wait: None,
            precise_for: None,
        }
    }

    /// Sets the alarm for the earliest of `delay_due` (a batch's
    /// `max_delay`, whose last stretch the precise timer takes) and
    /// `others`; none of them: not set.
    pub(super) fn set(
        &mut self,
        now: Instant,
        delay_due: Option<Instant>,
        others: &[Option<Instant>],
    ) {
        // tokio's timer until PRECISE_WINDOW before the batch is due, then
        // the precise timer for the rest.
        let coarse_delay = match (delay_due, &self.precise) {
            (Some(due), Some(precise)) if due.saturating_duration_since(now) <= PRECISE_WINDOW => {
                if self.precise_for != Some(due) {
                    self.precise_wait = Some(precise.wake_at(due.into_std()));
                    self.precise_for = Some(due);
                }
                None
            }
            (Some(due), Some(_)) => Some(due - PRECISE_WINDOW),
            (due, _) => due,
        };
        if coarse_delay.is_some() || delay_due.is_none() {
            self.precise_wait = None;
            self.precise_for = None;
        }
        let wake = others.iter().copied().chain([coarse_delay]).flatten().min();
        if wake != self.armed {
            if let Some(at) = wake {
                self.timer.as_mut().reset(at);
            }
            self.armed = wake;
        }
    }

    /// Whether it will ring.
    pub(super) fn is_set(&self) -> bool {
        self.armed.is_some() || self.precise_wait.is_some()
    }

    /// Resolves when it rings; it is then unset until set again.
    pub(super) fn ring(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx: &mut Context<'_>| {
            if self.armed.is_some() && self.timer.as_mut().poll(cx).is_ready() {
                self.armed = None;
                return Poll::Ready(());
            }
            if let Some(wait) = self.precise_wait.as_mut()
                && Pin::new(wait).poll(cx).is_ready()
            {
                self.precise_wait = None;
                return Poll::Ready(());
            }
            Poll::Pending
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn rings_at_the_earliest_instant_and_not_when_nothing_is_due() {
        let mut alarm = Alarm::new(None);
        let start = Instant::now();
        alarm.set(start, None, &[None, None]);
        assert!(!alarm.is_set(), "nothing due: an idle queue never wakes");
        alarm.set(start, Some(start + 5 * MS), &[Some(start + 9 * MS), None]);
        assert!(alarm.is_set());
        alarm.ring().await;
        assert_eq!(Instant::now() - start, 5 * MS);
        assert!(!alarm.is_set(), "unset once it rang");
        alarm.set(
            Instant::now(),
            None,
            &[Some(start + 9 * MS), Some(start + 7 * MS)],
        );
        alarm.ring().await;
        assert_eq!(Instant::now() - start, 7 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn moving_the_instant_resets_it() {
        let mut alarm = Alarm::new(None);
        let start = Instant::now();
        alarm.set(start, Some(start + 10 * MS), &[]);
        alarm.set(start, Some(start + 3 * MS), &[]);
        alarm.ring().await;
        assert_eq!(Instant::now() - start, 3 * MS);
    }

    #[test]
    fn the_last_stretch_of_a_delay_goes_to_the_precise_timer() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let precise = Arc::new(PreciseTimer::start().unwrap());
            let mut alarm = Alarm::new(Some(precise));
            let now = Instant::now();
            // Far off: tokio's timer, until the window before it.
            alarm.set(now, Some(now + 50 * MS), &[]);
            assert_eq!(alarm.armed, Some(now + 50 * MS - PRECISE_WINDOW));
            assert!(alarm.precise_wait.is_none());
            // Within the window: the precise timer, tokio's not armed.
            let due = now + MS;
            alarm.set(now, Some(due), &[]);
            assert!(alarm.precise_wait.is_some());
            assert_eq!(alarm.armed, None);
            alarm.ring().await;
            assert!(Instant::now() >= due);
        });
    }
}
