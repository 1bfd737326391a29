//! A sub-millisecond timer for the last stretch of a batch's `max_delay`.
//!
//! tokio's timer works in whole milliseconds and rounds up, so a 2 ms delay
//! fires after about 3 ms. A queue actor therefore sleeps on tokio's timer
//! until [`PRECISE_WINDOW`] before the batch is due (tokio may be up to a
//! millisecond late, so the window is two), and then asks this timer, a
//! thread that sleeps with the operating system's fine-grained timeout and
//! spins the last few microseconds, to wake it at the due instant. It costs
//! one request per batch that arms a delay, and one spin per batch that
//! actually waits for it.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{Mutex, PoisonError, mpsc},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

/// How close to the due instant the actor hands over to the precise timer.
pub const PRECISE_WINDOW: Duration = Duration::from_millis(2);
/// The timer thread sleeps until this long before a due instant, then
/// spins: an OS sleep wakes tens of microseconds late (timer slack and
/// scheduling), a spin does not. At most one spin per delay-triggered batch.
const SPIN: Duration = Duration::from_micros(60);

/// A wake-up request: when, and whom to tell.
type Request = (Instant, oneshot::Sender<()>);

/// The handle to the timer thread; dropping every handle ends the thread.
#[derive(Debug)]
pub struct PreciseTimer {
    /// Requests to the thread.
    requests: Mutex<mpsc::Sender<Request>>,
}

impl PreciseTimer {
    /// Starts the timer thread.
    ///
    /// # Errors
    /// The OS refused to start a thread.
    pub fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("batchgate-timer".into())
            .spawn(move || run(&rx))?;
        Ok(Self {
            requests: Mutex::new(tx),
        })
    }

    /// Completes at `at` (within the OS's timer slack, tens of µs). If the
    /// timer thread is gone it completes at once, so a caller can never
    /// sleep forever.
    pub fn wake_at(&self, at: Instant) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        // On failure the sender is dropped with the request: `rx` completes.
        let _ = requests.send((at, tx));
        rx
    }
}

fn run(requests: &mpsc::Receiver<Request>) {
    // Ordered by due instant; `seq` keeps equal instants apart.
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut waiting: std::collections::HashMap<u64, oneshot::Sender<()>> = Default::default();
    let mut seq = 0u64;
    loop {
        let mut now = Instant::now();
        if let Some(Reverse((at, _))) = due.peek().copied()
            && at > now
            && at - now <= SPIN
        {
            while Instant::now() < at {
                std::hint::spin_loop();
            }
            now = Instant::now();
        }
        while let Some(Reverse((at, id))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(tx) = waiting.remove(&id) {
                let _ = tx.send(());
            }
        }
        let next = match due.peek() {
            Some(Reverse((at, _))) => {
                requests.recv_timeout(at.saturating_duration_since(now).saturating_sub(SPIN))
            }
            None => requests
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok((at, tx)) => {
                seq += 1;
                due.push(Reverse((at, seq)));
                waiting.insert(seq, tx);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
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
}
