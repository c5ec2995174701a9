//! Work that can wait for the requests: OS threads of their own, below the
//! CPU priority of the HTTP threads and the store's writer.
//!
//! On a small machine (two cores) the projections, the mood worker and the
//! requests compete for the same cores. A write's latency is the time its
//! request waits for a core, so the background work runs at a lower
//! priority (a higher nice value; on Linux nice is per thread) and takes
//! the cores the requests leave idle. What this costs: under load the read
//! models lag further behind the log (`/metrics` reports the lag, and a
//! read that asks to see its own write waits for it).

use std::future::Future;

use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
use tokio::task::JoinHandle;

/// A CPU priority below the default one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// nice 10: the projections. They still get a tenth of the time the
    /// requests get when both want a core, so the read models keep up
    /// under a steady load.
    Low,
    /// nice 19, the lowest: the mood worker's model, which would take
    /// every core it is given.
    Lowest,
}

impl Priority {
    /// The nice value on Linux.
    pub(crate) const fn nice(self) -> i32 {
        match self {
            Priority::Low => 10,
            Priority::Lowest => 19,
        }
    }

    fn thread_priority(self) -> ThreadPriority {
        match self {
            // thread-priority maps 0..=99 onto nice 19..=-20 for the
            // normal scheduling policy: 22 is nice 10.
            Priority::Low => ThreadPriority::Crossplatform(
                ThreadPriorityValue::try_from(22u8).expect("22 is within 0..=99"),
            ),
            Priority::Lowest => ThreadPriority::Min,
        }
    }
}

/// Lowers the calling thread to `priority`; a failure is logged and
/// ignored (the work still runs, at the default priority). Threads inherit
/// the priority of the thread that creates them.
pub(crate) fn lower_current_thread(priority: Priority, what: &str) {
    if let Err(e) = set_current_thread_priority(priority.thread_priority()) {
        tracing::warn!(error = ?e, what, nice = priority.nice(), "could not lower the CPU priority");
    }
}

/// Runs `work` on an OS thread of its own named `name`, at `priority`, in a
/// current-thread runtime (its blocking threads, created from that thread,
/// inherit the priority). The returned task, on the caller's runtime, ends
/// when `work` has ended.
pub(crate) fn spawn<F>(name: &str, priority: Priority, work: F) -> std::io::Result<JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("{name}-blocking"))
        .build()?;
    let (finished, on_finish) = tokio::sync::oneshot::channel::<()>();
    let what = name.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_current_thread(priority, &what);
            runtime.block_on(work);
            let _ = finished.send(());
        })?;
    let name = name.to_owned();
    Ok(tokio::spawn(async move {
        if on_finish.await.is_err() {
            tracing::error!(thread = %name, "a background thread ended without finishing its work (a panic?)");
        }
    }))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value, from `/proc/thread-self/stat`
    /// (field 19; the name in field 2 may hold spaces, so count after `)`).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn work_runs_at_the_priority_asked_for_and_its_blocking_threads_too() {
        let caller = own_nice();
        for priority in [Priority::Low, Priority::Lowest] {
            // A process already nicer than asked stays so (raising a
            // priority needs a privilege).
            let expected = priority.nice().max(caller);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task = spawn("test-bg", priority, async move {
                let on_thread = own_nice();
                let blocking = tokio::task::spawn_blocking(own_nice).await.unwrap();
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send((on_thread, blocking, name));
            })
            .unwrap();
            task.await.unwrap();
            let (on_thread, blocking, name) = rx.await.unwrap();
            assert_eq!(on_thread, expected, "{priority:?}");
            assert_eq!(blocking, expected, "{priority:?}: blocking thread");
            assert_eq!(name.as_deref(), Some("test-bg"));
        }
        assert_eq!(own_nice(), caller, "the caller's thread is left as it was");
    }

    #[tokio::test]
    async fn a_panic_in_the_work_ends_the_task_instead_of_hanging_it() {
        let task = spawn("test-panic", Priority::Low, async { panic!("boom") }).unwrap();
        task.await.unwrap();
    }
}
