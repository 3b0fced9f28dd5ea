//! Lanes: threads that each run a runtime of one thread, so that a client's
//! connection, the calls on it and the backend connections those calls use
//! are all served by one thread (nginx's model: a worker per core).
//!
//! On Tokio's shared runtime, a call crosses threads twice on its way
//! through a proxy: the client's connection and the backend connection are
//! two tasks, and a task woken by the other (or by the socket) is often
//! taken up by the worker that was asleep, which costs a futex wake each
//! way. On a lane the call never leaves its thread. Each lane keeps its own
//! connection to each backend endpoint ([`current`] names the lane, so the
//! endpoint pool can pick the lane's connection), and a new client
//! connection goes to the lane serving the fewest (BENCHMARKS.md).

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Lane numbers are unique in the process, so two sets of lanes (two
/// gateways in one test process) never share a backend connection.
static NEXT_LANE: AtomicUsize = AtomicUsize::new(1);

/// The lane this thread is (a number unique in the process, from 1); 0 off
/// any lane (the shared runtime's workers).
pub fn current() -> usize {
    CURRENT.with(Cell::get)
}

/// The running lanes; dropping them stops their threads (the tasks still on
/// them are dropped).
pub struct Lanes {
    lanes: Vec<Lane>,
    /// Each lane's thread runs until this is dropped.
    _running: tokio::sync::watch::Sender<()>,
}

struct Lane {
    handle: tokio::runtime::Handle,
    /// Tasks spawned on the lane and not yet ended.
    tasks: Arc<AtomicUsize>,
}

impl Lanes {
    /// Starts `count` lanes, their threads named `{name}-{number}`.
    pub fn start(count: NonZeroUsize, name: &str) -> std::io::Result<Self> {
        let (running, stopped) = tokio::sync::watch::channel(());
        let lanes = (1..=count.get())
            .map(|number| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let handle = runtime.handle().clone();
                let mut stopped = stopped.clone();
                let lane = NEXT_LANE.fetch_add(1, Ordering::Relaxed);
                std::thread::Builder::new().name(format!("{name}-{number}")).spawn(move || {
                    CURRENT.with(|current| current.set(lane));
                    runtime.block_on(async move { while stopped.changed().await.is_ok() {} });
                })?;
                Ok(Lane { handle, tasks: Arc::default() })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { lanes, _running: running })
    }

    /// Runs `task` on the lane with the fewest tasks running.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let lane = self
            .lanes
            .iter()
            .min_by_key(|lane| lane.tasks.load(Ordering::Relaxed))
            .expect("there is at least one lane");
        let running = Running::start(lane.tasks.clone());
        lane.handle.spawn(async move {
            let _running = running;
            task.await
        });
    }

    pub fn count(&self) -> usize {
        self.lanes.len()
    }
}

/// A task counted on its lane until it ends (or is dropped with the lane).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(tasks: Arc<AtomicUsize>) -> Self {
        tasks.fetch_add(1, Ordering::Relaxed);
        Self(tasks)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_their_lanes_spread_by_load_and_stop_with_them() {
        let lanes = Lanes::start(NonZeroUsize::new(2).unwrap(), "test-lane").unwrap();
        assert_eq!(current(), 0, "the test's own runtime is on no lane");
        let (release, released) = tokio::sync::watch::channel(false);
        let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..4 {
            let report = report.clone();
            let mut released = released.clone();
            lanes.spawn(async move {
                let lane = current();
                let thread = std::thread::current().name().map(str::to_owned);
                let _ = released.wait_for(|go| *go).await;
                // Still on the same lane after waiting: a lane's tasks never move.
                report.send((lane, current(), thread)).unwrap();
            });
        }
        release.send(true).unwrap();
        let mut per_lane = std::collections::BTreeMap::new();
        for _ in 0..4 {
            let (lane, after, thread) = reports.recv().await.unwrap();
            assert_eq!(lane, after);
            let (thread_of_lane, tasks) = per_lane.entry(lane).or_insert((thread.clone(), 0));
            assert_eq!(*thread_of_lane, thread, "a lane is one thread");
            *tasks += 1;
        }
        let threads: Vec<_> = per_lane.values().cloned().collect();
        assert_eq!(
            threads,
            [(Some("test-lane-1".into()), 2), (Some("test-lane-2".into()), 2)],
            "four long tasks, two on each lane"
        );
        assert!(!per_lane.contains_key(&0), "lanes are numbered from 1");

        // Dropping the lanes ends their threads and drops what still runs there.
        let (kept, mut dropped) = tokio::sync::mpsc::channel::<()>(1);
        lanes.spawn(async move {
            let _kept = kept;
            std::future::pending::<()>().await
        });
        drop(lanes);
        assert_eq!(dropped.recv().await, None);
    }
}
