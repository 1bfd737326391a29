//! A sub-millisecond timer for the last stretch of a batch's `max_delay`
//! (and of the `sim` handler's time, see [`sleep`]).
//!
//! tokio's timer works in whole milliseconds and rounds up, so a 2 ms delay
//! fires after about 3 ms. A queue actor therefore sleeps on tokio's timer
//! until [`PRECISE_WINDOW`] before the batch is due (tokio may be up to a
//! millisecond late, so the window is two), and then asks this timer, a
//! thread that sleeps with the operating system's fine-grained timeout and
//! spins the last few microseconds, to wake it at the due instant. It costs
//! one request per batch that arms a delay, and one spin per batch that
//! actually waits for it; a wake-up whose batch closed early is dropped
//! without a spin.

use std::{
    cmp::Ordering,
    collections::BinaryHeap,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

/// How close to the due instant the actor hands over to the precise timer.
pub const PRECISE_WINDOW: Duration = Duration::from_millis(2);
/// The timer thread sleeps until this long before a due instant, then
/// spins: an OS sleep wakes tens of microseconds late (timer slack and
/// scheduling), a spin does not. At most one spin per delay-triggered batch;
/// none for a wake-up nobody waits for any more (its batch closed early).
const SPIN: Duration = Duration::from_micros(60);

/// The handle to the timer thread; dropping it ends the thread.
#[derive(Debug)]
pub struct PreciseTimer {
    shared: Arc<Shared>,
}

/// What the handle and the thread share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a wake-up earlier than all others arrives, or on stop.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Pending wake-ups, earliest on top.
    due: BinaryHeap<WakeUp>,
    /// Numbers wake-ups so equal instants keep their order.
    seq: u64,
    /// Set when the handle is dropped.
    stopped: bool,
}

/// One wake-up request: when, and whom to tell.
#[derive(Debug)]
struct WakeUp {
    at: Instant,
    seq: u64,
    tx: oneshot::Sender<()>,
}

impl PartialEq for WakeUp {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for WakeUp {}

impl PartialOrd for WakeUp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WakeUp {
    /// Reversed, so the max-heap pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PreciseTimer {
    /// Starts the timer thread.
    ///
    /// # Errors
    /// The OS refused to start a thread.
    pub fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread = shared.clone();
        std::thread::Builder::new()
            .name("batchgate-timer".into())
            .spawn(move || wake_loop(&thread))?;
        Ok(Self { shared })
    }

    /// Completes at `at` (within the OS's timer slack, tens of µs). Dropping
    /// the receiver cancels the wake-up. The thread is woken only when `at`
    /// is earlier than every wake-up it already sleeps for.
    pub fn wake_at(&self, at: Instant) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.shared.lock();
        let earliest = state.due.peek().is_none_or(|next| at < next.at);
        state.seq += 1;
        let seq = state.seq;
        state.due.push(WakeUp { at, seq, tx });
        drop(state);
        if earliest {
            self.shared.changed.notify_one();
        }
        rx
    }
}

/// Sleeps `d`, to within tens of µs with a `timer` (tokio's timer for all
/// but the last [`PRECISE_WINDOW`], then the timer thread); without one,
/// on tokio's timer alone (whole milliseconds, rounded up; what a paused
/// test clock needs).
pub async fn sleep(timer: Option<&PreciseTimer>, d: Duration) {
    let Some(timer) = timer else {
        return tokio::time::sleep(d).await;
    };
    let due = Instant::now() + d;
    if let Some(coarse) = d.checked_sub(PRECISE_WINDOW) {
        tokio::time::sleep(coarse).await;
    }
    // A dropped thread completes the receiver too: then it is time anyway.
    let _ = timer.wake_at(due).await;
}

impl Drop for PreciseTimer {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_one();
    }
}

fn wake_loop(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.stopped {
            // Dropping the senders completes every waiting receiver.
            return;
        }
        let now = Instant::now();
        while let Some(next) = state.due.peek() {
            if next.at > now && !next.tx.is_closed() {
                break;
            }
            if let Some(next) = state.due.pop() {
                let _ = next.tx.send(());
            }
        }
        let Some(at) = state.due.peek().map(|next| next.at) else {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let left = at.saturating_duration_since(now);
        if left <= SPIN {
            // Spin without the lock, so requests are not held up.
            drop(state);
            while Instant::now() < at {
                std::hint::spin_loop();
            }
            state = shared.lock();
        } else {
            state = shared
                .changed
                .wait_timeout(state, left - SPIN)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_never_early_and_in_order() {
        let timer = PreciseTimer::start().unwrap();
        let start = Instant::now();
        let later = timer.wake_at(start + Duration::from_micros(900));
        let sooner = timer.wake_at(start + Duration::from_micros(300));
        sooner.await.unwrap();
        assert!(Instant::now() >= start + Duration::from_micros(300));
        later.await.unwrap();
        assert!(Instant::now() >= start + Duration::from_micros(900));
        // A past instant completes at once.
        timer.wake_at(start).await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_wake_up_holds_up_no_later_one() {
        let timer = PreciseTimer::start().unwrap();
        let start = Instant::now();
        drop(timer.wake_at(start + Duration::from_micros(200)));
        // Later than the cancelled one, so the thread is not even woken for
        // it; it must still fire.
        let later = timer.wake_at(start + Duration::from_micros(700));
        later.await.unwrap();
        assert!(Instant::now() >= start + Duration::from_micros(700));
        assert!(timer.shared.lock().due.is_empty());
    }

    #[tokio::test]
    async fn a_precise_sleep_takes_what_it_says() {
        let timer = PreciseTimer::start().unwrap();
        for d in [Duration::from_micros(300), Duration::from_micros(2_500)] {
            let start = Instant::now();
            sleep(Some(&timer), d).await;
            // Never early; how late is the machine's business (measured in
            // bench/COST.md), not a test's.
            assert!(start.elapsed() >= d);
        }
    }

    #[tokio::test]
    async fn dropping_the_timer_completes_its_waiters() {
        let timer = PreciseTimer::start().unwrap();
        let waiting = timer.wake_at(Instant::now() + Duration::from_secs(3600));
        drop(timer);
        // The sender is dropped with the thread's state: the receiver ends.
        assert!(waiting.await.is_err());
    }
}
