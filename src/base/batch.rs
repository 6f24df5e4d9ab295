//! Cross-stream batching: jobs that several streams submit to one shared model at about the
//! same time run as one inference call.
//!
//! There is no scheduler thread. The first thread to find no batch forming becomes the
//! leader: it waits until the batch is full, until every stream registered on the model has
//! a job waiting, or until the earliest deadline of the waiting jobs (each job's own
//! `wait`), then runs the batch and hands each job back to the thread that submitted it.
//! A stream therefore waits at most its own `wait` beyond the time the model is busy, and a
//! single stream never waits at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::{Error, Result};

/// How long a stream lets its jobs wait for others, and how many jobs one call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// The most a job waits for other streams' jobs before its batch runs.
    pub wait: Duration,
    /// The most jobs one batch may hold; 1 runs every job alone.
    pub max_jobs: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            wait: Duration::from_millis(5),
            max_jobs: 32,
        }
    }
}

struct Waiting<J> {
    ticket: u64,
    deadline: Instant,
    max_jobs: usize,
    job: J,
}

struct State<J> {
    waiting: Vec<Waiting<J>>,
    done: HashMap<u64, std::result::Result<J, String>>,
    next_ticket: u64,
    leader: bool,
    clients: usize,
}

/// Gathers jobs of type `J` from many threads into batches. See the module documentation.
pub struct Batcher<J> {
    state: Mutex<State<J>>,
    cv: Condvar,
    batches: AtomicU64,
    jobs: AtomicU64,
}

impl<J> Default for Batcher<J> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                waiting: Vec::new(),
                done: HashMap::new(),
                next_ticket: 0,
                leader: false,
                clients: 0,
            }),
            cv: Condvar::new(),
            batches: AtomicU64::new(0),
            jobs: AtomicU64::new(0),
        }
    }
}

/// Counts of what a [`Batcher`] has run, for statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub batches: u64,
    pub jobs: u64,
}

impl BatchCounts {
    /// Jobs per inference call: 1.0 before the first call (no job ever shared a call).
    pub fn mean_jobs(&self) -> f64 {
        if self.batches == 0 {
            1.0
        } else {
            self.jobs as f64 / self.batches as f64
        }
    }
}

impl<J> Batcher<J> {
    /// A stream that will submit jobs: while registered, a batch runs as soon as every
    /// registered stream has a job waiting.
    pub fn register(&self) {
        self.state.lock().clients += 1;
        self.cv.notify_all();
    }

    pub fn unregister(&self) {
        let mut st = self.state.lock();
        st.clients = st.clients.saturating_sub(1);
        drop(st);
        // A leader waiting for this stream's job need not wait any more.
        self.cv.notify_all();
    }

    pub fn counts(&self) -> BatchCounts {
        BatchCounts {
            batches: self.batches.load(Ordering::Relaxed),
            jobs: self.jobs.load(Ordering::Relaxed),
        }
    }

    /// Runs `job` in a batch with whatever other streams submit meanwhile and returns it
    /// processed. `run` processes a batch in place; every thread passes the same function
    /// (the model's), and the leader's runs the batch. An error from `run` fails every job
    /// of that batch.
    pub fn submit<F>(&self, job: J, policy: BatchPolicy, run: F) -> Result<J>
    where
        F: Fn(&mut [J]) -> Result<()>,
    {
        let mut st = self.state.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.waiting.push(Waiting {
            ticket,
            deadline: Instant::now() + policy.wait,
            max_jobs: policy.max_jobs.max(1),
            job,
        });
        self.cv.notify_all();
        loop {
            if let Some(r) = st.done.remove(&ticket) {
                return r.map_err(Error::Inference);
            }
            if st.leader {
                self.cv.wait(&mut st);
                continue;
            }
            st.leader = true;
            // From here until `lead` drops, this thread leads; its Drop gives the role up
            // even when `run` panics, so the other streams are never left waiting on it.
            let mut lead = Leadership {
                st: &mut st,
                cv: &self.cv,
                tickets: Vec::new(),
            };
            let take = loop {
                let max = lead
                    .st
                    .waiting
                    .iter()
                    .map(|w| w.max_jobs)
                    .min()
                    .unwrap_or(1);
                let n = lead.st.waiting.len();
                let deadline = lead.st.waiting.iter().map(|w| w.deadline).min();
                let all_in = n >= lead.st.clients.max(1);
                match deadline {
                    None => break 0,
                    Some(_) if n >= max || all_in => break n.min(max),
                    Some(d) if Instant::now() >= d => break n.min(max),
                    Some(d) => {
                        self.cv.wait_until(lead.st, d);
                    }
                }
            };
            if take == 0 {
                continue;
            }
            let batch: Vec<Waiting<J>> = lead.st.waiting.drain(..take).collect();
            lead.tickets = batch.iter().map(|w| w.ticket).collect();
            let mut jobs: Vec<J> = batch.into_iter().map(|w| w.job).collect();
            // A panic in `run` unwinds through `unlocked`, which locks the state again
            // before `lead` drops and fails this batch's jobs.
            let r = parking_lot::MutexGuard::unlocked(lead.st, || {
                let r = run(&mut jobs);
                self.batches.fetch_add(1, Ordering::Relaxed);
                self.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
                // Every job gets the error back as Error::Inference: keep an inference
                // error's own message, so it does not read "inference failed" twice.
                r.map_err(|e| match e {
                    Error::Inference(msg) => msg,
                    other => other.to_string(),
                })
            });
            let tickets = std::mem::take(&mut lead.tickets);
            match r {
                Ok(()) => {
                    for (t, j) in tickets.into_iter().zip(jobs) {
                        lead.st.done.insert(t, Ok(j));
                    }
                }
                Err(e) => {
                    for t in tickets {
                        lead.st.done.insert(t, Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// The leader role, held while a thread gathers and runs a batch. Dropping it (normally or
/// while unwinding from a panic in the model) clears the leader flag, fails the jobs of a
/// batch that never finished and wakes every waiting stream, one of which leads next.
struct Leadership<'a, 'g, J> {
    st: &'a mut parking_lot::MutexGuard<'g, State<J>>,
    cv: &'a Condvar,
    /// Tickets of the batch being run, until their results are stored.
    tickets: Vec<u64>,
}

impl<J> Drop for Leadership<'_, '_, J> {
    fn drop(&mut self) {
        for t in self.tickets.drain(..) {
            self.st
                .done
                .insert(t, Err("the batch's inference panicked".into()));
        }
        self.st.leader = false;
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_jobs_is_one_before_the_first_call() {
        assert_eq!(BatchCounts::default().mean_jobs(), 1.0);
        let c = BatchCounts {
            batches: 4,
            jobs: 10,
        };
        assert_eq!(c.mean_jobs(), 2.5);
    }
    use std::sync::Arc;

    fn double(jobs: &mut [(u32, u32)]) -> Result<()> {
        for j in jobs.iter_mut() {
            j.1 = j.0 * 2;
        }
        Ok(())
    }

    #[test]
    fn one_stream_runs_at_once() {
        let b = Batcher::default();
        b.register();
        let policy = BatchPolicy {
            wait: Duration::from_secs(10),
            max_jobs: 8,
        };
        let t = Instant::now();
        let out = b.submit((21, 0), policy, double).unwrap();
        assert_eq!(out, (21, 42));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(b.counts().batches, 1);
    }

    #[test]
    fn streams_ready_together_share_one_call_and_get_their_own_results() {
        let b = Arc::new(Batcher::default());
        let n = 6;
        for _ in 0..n {
            b.register();
        }
        let calls = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let b = b.clone();
                let calls = calls.clone();
                std::thread::spawn(move || {
                    let policy = BatchPolicy {
                        wait: Duration::from_secs(5),
                        max_jobs: 64,
                    };
                    b.submit((i, 0), policy, |jobs| {
                        calls.fetch_add(1, Ordering::Relaxed);
                        double(jobs)
                    })
                    .unwrap()
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), (i as u32, 2 * i as u32));
        }
        // Every stream was in before the 5 s wait ran out, so one call took them all.
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(b.counts().jobs, n as u64);
    }

    #[test]
    fn a_missing_stream_costs_at_most_the_wait() {
        let b = Batcher::default();
        b.register();
        b.register(); // never submits
        let policy = BatchPolicy {
            wait: Duration::from_millis(30),
            max_jobs: 8,
        };
        let t = Instant::now();
        b.submit((1, 0), policy, double).unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(29), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn max_jobs_splits_batches_and_errors_reach_every_job_of_their_batch() {
        let b = Arc::new(Batcher::<(u32, u32)>::default());
        for _ in 0..4 {
            b.register();
        }
        let handles: Vec<_> = (0..4u32)
            .map(|i| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let policy = BatchPolicy {
                        wait: Duration::from_millis(200),
                        max_jobs: 2,
                    };
                    b.submit((i, 0), policy, |jobs| {
                        assert!(jobs.len() <= 2);
                        if jobs.iter().any(|j| j.0 == 3) {
                            Err(Error::Inference("three".into()))
                        } else {
                            double(jobs)
                        }
                    })
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        match &results[3] {
            Err(e) => assert_eq!(e.to_string(), Error::Inference("three".into()).to_string()),
            Ok(j) => panic!("job 3 succeeded: {j:?}"),
        }
        assert!(b.counts().batches >= 2);
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert!((1..=2).contains(&failed));
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    /// Doubles each job, but panics on a batch that holds job 1: a model that crashes.
    fn double_or_panic(jobs: &mut [(u32, u32)]) -> Result<()> {
        assert!(jobs.iter().all(|j| j.0 != 1), "the model crashed");
        for j in jobs.iter_mut() {
            j.1 = j.0 * 2;
        }
        Ok(())
    }

    #[test]
    fn a_panicking_batch_fails_its_jobs_and_the_next_stream_still_leads() {
        let b = Arc::new(Batcher::<(u32, u32)>::default());
        b.register();
        b.register();
        // Two streams submit together: whichever leads runs both jobs, and the run panics.
        let (tx, rx) = mpsc::channel();
        for id in [1u32, 2] {
            let b = b.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                let policy = BatchPolicy {
                    wait: Duration::from_secs(2),
                    max_jobs: 8,
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    b.submit((id, 0), policy, double_or_panic)
                }));
                let _ = tx.send((id, r.map(|r| r.map_err(|e| e.to_string()))));
            });
        }
        let timeout = Duration::from_secs(10);
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            outcomes.push(
                rx.recv_timeout(timeout)
                    .expect("every stream gets an answer"),
            );
        }
        outcomes.sort_by_key(|o| o.0);
        // Job 1 never succeeds: its thread panicked (it led) or got the batch's error.
        assert!(!matches!(outcomes[0].1, Ok(Ok(_))), "{:?}", outcomes[0]);
        // Job 2 got an error if it shared the crashed batch, or its result if it ran alone.
        match &outcomes[1].1 {
            Ok(Ok(j)) => assert_eq!(*j, (2, 4)),
            Ok(Err(e)) => assert!(e.contains("panicked"), "{e}"),
            Err(_) => {} // it led the batch with job 1 and the panic reached it
        }
        // The session is usable afterwards: a new job leads and completes at once.
        let b2 = b.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let policy = BatchPolicy {
                wait: Duration::from_millis(10),
                max_jobs: 8,
            };
            let _ = tx.send(b2.submit((3, 0), policy, double_or_panic));
        });
        let r = rx.recv_timeout(timeout).expect("a later job is not stuck");
        assert_eq!(r.expect("runs"), (3, 6));
    }
}
