//! Panics stop at the boundary.
//!
//! A panic must not unwind across an `extern "C"` function (since Rust 1.81 that aborts the
//! process), and a bug in one provider must cost one run, not the host. Every entry point on
//! either side therefore runs its code, and polls its futures, under `catch_unwind`.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;

/// Runs `f`, turning a panic into its message.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    // Unwind safety: after a panic the caller only reports it; nothing `f` touched is used again
    // by this call.
    catch_unwind(AssertUnwindSafe(f)).map_err(message)
}

/// Polls `future` to completion, turning a panic in any poll into its message. The future is
/// dropped, never polled again, after it panicked.
pub(crate) async fn catch_future<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = pin!(future);
    poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(message(payload))),
        },
    )
    .await
}

/// The panic's message, when it has one (`panic!` with a format string always does).
fn message(payload: Box<dyn Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    // The payload's own drop could panic; swallow that rather than abort while reporting.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    use super::*;

    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        let number = 42;
        assert_eq!(
            catch(|| -> () { panic!("boom {number}") }),
            Err("boom 42".to_owned())
        );
        assert_eq!(
            catch(|| std::panic::panic_any(3_u8)),
            Err("a panic without a message".to_owned())
        );
    }

    #[test]
    fn a_future_that_panics_after_suspending_is_caught() {
        let mut suspended = false;
        let future = catch_future(poll_fn(|cx| {
            if !suspended {
                suspended = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            panic!("late boom")
        }));
        let mut future = pin!(future);
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(future.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(
            future.as_mut().poll(&mut cx),
            Poll::Ready(Err::<(), _>("late boom".to_owned()))
        );
    }
}
