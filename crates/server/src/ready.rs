//! Polling a future once without waiting.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
};

/// Polls `future` once: its output if it is ready now, else `None` (the
/// future keeps its state; poll it again, with a real waker, to wait).
pub fn ready_now<F: Future + ?Sized>(future: Pin<&mut F>) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match future.poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}
