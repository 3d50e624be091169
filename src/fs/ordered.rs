//! Work done on several threads, its results taken in the order the work
//! was handed out: a search over many files uses every core and still
//! answers exactly what the one-thread search would (the same files in the
//! same order, the same cap).
//!
//! The producer (the walk, on the calling thread) hands items to a
//! [`Feed`]; they go to the workers in batches (one wake-up per batch, not
//! per file), and the results come back to the producer's thread, where
//! `consume` takes them in order. At most a few batches per worker are in
//! flight: when `consume` says stop, only those are wasted, and memory
//! stays bounded whatever the tree's size. Each worker runs with the
//! call's [`crate::cancel::Stop`] in force, so `cancel::check` works there
//! as on the calling thread. A panic in a worker reaches the caller.

use super::walk::Flow;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Condvar, Mutex, mpsc};

/// Items in one batch.
const BATCH: usize = 32;
/// Batches in flight per worker.
const WINDOW_PER_WORKER: u64 = 4;
/// Most worker threads one call starts.
const MAX_WORKERS: usize = 4;

/// Worker threads for one call: one per core, at most [`MAX_WORKERS`].
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

struct Queue<I> {
    batches: VecDeque<(u64, Vec<I>)>,
    closed: bool,
}

struct Shared<I> {
    queue: Mutex<Queue<I>>,
    ready: Condvar,
}

impl<I> Shared<I> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<I>> {
        // A worker's panic is caught outside the lock: never poisoned in
        // practice, and the queue is consistent either way.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No more batches: idle workers end, busy ones after their batch.
    fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.batches.clear();
        self.ready.notify_all();
    }
}

type Done<O> = (u64, std::thread::Result<Vec<O>>);

/// Where the producer hands its items.
pub(crate) struct Feed<'a, I, O> {
    shared: &'a Shared<I>,
    results: mpsc::Receiver<Done<O>>,
    consume: &'a mut dyn FnMut(O) -> Flow,
    batch: Vec<I>,
    /// Batches handed out, and the next one to consume.
    sent: u64,
    next: u64,
    arrived: BTreeMap<u64, std::thread::Result<Vec<O>>>,
    window: u64,
    stopped: bool,
}

impl<I, O> Feed<'_, I, O> {
    /// Hands `item` to the workers; `Stop` once `consume` has said stop
    /// (the item is then dropped).
    pub(crate) fn push(&mut self, item: I) -> Flow {
        if self.stopped {
            return Flow::Stop;
        }
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.send_batch();
            self.settle(false);
        }
        if self.stopped {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.shared.lock().batches.push_back((self.sent, batch));
        self.sent += 1;
        self.shared.ready.notify_one();
    }

    /// Consumes what has arrived, in order. With `all`, waits until every
    /// batch handed out is consumed; else only until fewer than the window
    /// are in flight.
    fn settle(&mut self, all: bool) {
        loop {
            while let Ok((seq, out)) = self.results.try_recv() {
                self.arrived.insert(seq, out);
            }
            self.consume_arrived();
            let in_flight = self.sent - self.next;
            if self.stopped || in_flight == 0 || (!all && in_flight < self.window) {
                return;
            }
            match self.results.recv() {
                Ok((seq, out)) => {
                    self.arrived.insert(seq, out);
                }
                // Every worker gone (cannot happen while batches are out:
                // a worker sends before it ends).
                Err(_) => return,
            }
        }
    }

    fn consume_arrived(&mut self) {
        while !self.stopped {
            let Some(out) = self.arrived.remove(&self.next) else {
                return;
            };
            self.next += 1;
            match out {
                Ok(outs) => {
                    for o in outs {
                        if (self.consume)(o) == Flow::Stop {
                            self.stopped = true;
                            return;
                        }
                    }
                }
                Err(panic) => {
                    self.shared.close();
                    resume_unwind(panic);
                }
            }
        }
    }
}

/// Runs `produce` on this thread with a [`Feed`]; each item it pushes is
/// turned into a result by `work` on one of `workers` threads (each with
/// its own state from `init`), and `consume` gets the results on this
/// thread in the order the items were pushed, until it says stop. Returns
/// what `produce` returned, after every result it led to was consumed (or
/// `consume` stopped).
pub(crate) fn map_in_order<I, O, S, R>(
    workers: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, I) -> O + Sync,
    mut consume: impl FnMut(O) -> Flow,
    produce: impl FnOnce(&mut Feed<'_, I, O>) -> R,
) -> R
where
    I: Send,
    O: Send,
{
    let workers = workers.max(1);
    let shared = Shared {
        queue: Mutex::new(Queue {
            batches: VecDeque::new(),
            closed: false,
        }),
        ready: Condvar::new(),
    };
    let (done, results) = mpsc::channel::<Done<O>>();
    let stop = crate::cancel::current();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done = done.clone();
            let stop = stop.clone();
            let (shared, init, work) = (&shared, &init, &work);
            scope.spawn(move || {
                let run = || worker(shared, init, work, done);
                match stop {
                    Some(stop) => crate::cancel::with_stop(stop, run),
                    None => run(),
                }
            });
        }
        drop(done);
        let mut feed = Feed {
            shared: &shared,
            results,
            consume: &mut consume,
            batch: Vec::with_capacity(BATCH),
            sent: 0,
            next: 0,
            arrived: BTreeMap::new(),
            window: WINDOW_PER_WORKER * workers as u64,
            stopped: false,
        };
        // Closes the queue however this ends (a panic included), so the
        // scope's join never waits on an idle worker.
        struct CloseOnDrop<'s, I>(&'s Shared<I>);
        impl<I> Drop for CloseOnDrop<'_, I> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _close = CloseOnDrop(&shared);
        let out = produce(&mut feed);
        feed.send_batch();
        feed.settle(true);
        out
    })
}

fn worker<I, O, S>(
    shared: &Shared<I>,
    init: &(impl Fn() -> S + Sync),
    work: &(impl Fn(&mut S, I) -> O + Sync),
    done: mpsc::Sender<Done<O>>,
) {
    let mut state = None;
    loop {
        let job = {
            let mut q = shared.lock();
            loop {
                if let Some(job) = q.batches.pop_front() {
                    break Some(job);
                }
                if q.closed {
                    break None;
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some((seq, items)) = job else { return };
        let out = catch_unwind(AssertUnwindSafe(|| {
            let state = state.get_or_insert_with(init);
            items.into_iter().map(|i| work(state, i)).collect()
        }));
        let panicked = out.is_err();
        if done.send((seq, out)).is_err() || panicked {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_come_in_the_order_pushed() {
        for workers in [1, 2, 4] {
            let mut got = Vec::new();
            let pushed = map_in_order(
                workers,
                || (),
                |_, i: u64| {
                    // Uneven work, so batches finish out of order.
                    if i % 7 == 0 {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                    i * 2
                },
                |o| {
                    got.push(o);
                    Flow::Continue
                },
                |feed| {
                    (0..1000)
                        .take_while(|&i| feed.push(i) == Flow::Continue)
                        .count()
                },
            );
            assert_eq!(pushed, 1000);
            assert_eq!(got, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_stop_ends_the_feed_and_bounds_the_work_done() {
        let worked = AtomicUsize::new(0);
        let mut got = Vec::new();
        let pushed = map_in_order(
            2,
            || (),
            |_, i: usize| {
                worked.fetch_add(1, Ordering::Relaxed);
                i
            },
            |o| {
                got.push(o);
                if got.len() == 10 {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
            |feed| {
                (0..1_000_000)
                    .take_while(|&i| feed.push(i) == Flow::Continue)
                    .count()
            },
        );
        assert_eq!(got, (0..10).collect::<Vec<_>>(), "exactly the first ten");
        let window = (WINDOW_PER_WORKER as usize * 2 + 2) * BATCH;
        assert!(pushed <= window, "{pushed} pushed after the stop");
        assert!(worked.load(Ordering::Relaxed) <= window);
    }

    #[test]
    fn workers_see_the_callers_stop() {
        let stop = crate::cancel::Stop::never();
        stop.token.cancel();
        let seen = crate::cancel::with_stop(stop, || {
            let mut all = Vec::new();
            map_in_order(
                2,
                || (),
                |_, _: u8| crate::cancel::check().is_err(),
                |o| {
                    all.push(o);
                    Flow::Continue
                },
                |feed| {
                    for i in 0..100 {
                        feed.push(i);
                    }
                },
            );
            all
        });
        assert_eq!(seen.len(), 100);
        assert!(seen.iter().all(|&stopped| stopped));
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            map_in_order(
                2,
                || (),
                |_, i: u32| {
                    assert!(i != 40, "boom");
                    i
                },
                |_| Flow::Continue,
                |feed| {
                    for i in 0..200 {
                        feed.push(i);
                    }
                },
            )
        });
        assert!(r.is_err());
    }
}
