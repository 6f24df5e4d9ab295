//! The queue between an element's streaming thread and its worker (a src pad task): jobs and
//! serialized events in one order, a bound on waiting jobs, flushing, and the worker's last
//! flow result handed back to the streaming thread, and a barrier that lets the streaming
//! thread wait until the worker has handled everything queued before it (serialized queries).

use std::collections::VecDeque;

use gst::glib;
use gst::prelude::*;
use parking_lot::{Condvar, Mutex};

pub enum Item<J> {
    Job(J),
    Event(gst::Event),
}

/// What the queue holds: the items for the worker and the barriers between them.
enum Entry<J> {
    Item(Item<J>),
    /// Reached once the worker asks for the item after it: everything before is handled.
    Barrier(u64),
}

struct State<J> {
    items: VecDeque<Entry<J>>,
    jobs: usize,
    flushing: bool,
    last_flow: Result<gst::FlowSuccess, gst::FlowError>,
    /// The last barrier queued and the last one the worker reached.
    barriers_queued: u64,
    barriers_reached: u64,
    /// Changes whenever queued barriers can no longer be reached (flush, clear, failure).
    epoch: u64,
}

pub struct WorkQueue<J> {
    state: Mutex<State<J>>,
    cond: Condvar,
}

/// What became of a job offered to the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<J> {
    Queued,
    /// The queue was full and the caller asked not to wait: the job comes back.
    Full(J),
}

impl<J> Default for WorkQueue<J> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                jobs: 0,
                flushing: true,
                last_flow: Ok(gst::FlowSuccess::Ok),
                barriers_queued: 0,
                barriers_reached: 0,
                epoch: 0,
            }),
            cond: Condvar::new(),
        }
    }
}

impl<J> WorkQueue<J> {
    /// Queues a job once fewer than `max` wait; when full, waits or (`wait == false`) returns
    /// [`Pushed::Full`]. Fails with the worker's last error, or `Flushing`.
    pub fn push_job(&self, job: J, max: usize, wait: bool) -> Result<Pushed<J>, gst::FlowError> {
        let mut st = self.state.lock();
        loop {
            if st.flushing {
                return Err(gst::FlowError::Flushing);
            }
            st.last_flow?;
            if st.jobs < max.max(1) {
                break;
            }
            if !wait {
                return Ok(Pushed::Full(job));
            }
            self.cond.wait(&mut st);
        }
        st.items.push_back(Entry::Item(Item::Job(job)));
        st.jobs += 1;
        self.cond.notify_all();
        Ok(Pushed::Queued)
    }

    /// Replaces the last queued job if `replace` says so, else queues `job` unbounded; for
    /// work where only the newest request matters (a partial hypothesis). Fails like
    /// [`Self::push_job`]: with the worker's last error, or `Flushing`.
    pub fn push_or_replace(
        &self,
        job: J,
        replace: impl Fn(&J) -> bool,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut st = self.state.lock();
        if st.flushing {
            return Err(gst::FlowError::Flushing);
        }
        st.last_flow?;
        if let Some(Entry::Item(Item::Job(last))) = st.items.back_mut()
            && replace(last)
        {
            *last = job;
            return Ok(gst::FlowSuccess::Ok);
        }
        st.items.push_back(Entry::Item(Item::Job(job)));
        st.jobs += 1;
        self.cond.notify_all();
        Ok(gst::FlowSuccess::Ok)
    }

    /// Drops the waiting jobs `drop` picks.
    pub fn remove_jobs(&self, drop: impl Fn(&J) -> bool) {
        let mut st = self.state.lock();
        let before = st.items.len();
        st.items
            .retain(|e| !matches!(e, Entry::Item(Item::Job(j)) if drop(j)));
        st.jobs -= before - st.items.len();
        self.cond.notify_all();
    }

    /// Queues a serialized event behind the jobs before it.
    pub fn push_event(&self, event: gst::Event) -> bool {
        let mut st = self.state.lock();
        if st.flushing {
            return false;
        }
        st.items.push_back(Entry::Item(Item::Event(event)));
        self.cond.notify_all();
        true
    }

    /// Queues a GAP event, merged into the last item when that is a GAP it continues or
    /// follows (nothing is queued between the two, so the hole between them is a gap too): a
    /// stream dropping chunk after chunk (overload), or a sink that stalls while time moves
    /// on, leaves one growing hole instead of an event per chunk past the bound.
    pub fn push_gap(&self, gap: gst::Event) -> bool {
        let mut st = self.state.lock();
        if st.flushing {
            return false;
        }
        if let gst::EventView::Gap(new) = gap.view()
            && let Some(Entry::Item(Item::Event(last))) = st.items.back_mut()
            && let gst::EventView::Gap(old) = last.view()
        {
            let ((ts, dur), (new_ts, new_dur)) = (old.get(), new.get());
            if let (Some(d), Some(nd)) = (dur, new_dur)
                && new_ts >= ts + d
            {
                *last = gst::event::Gap::builder(ts)
                    .duration(new_ts + nd - ts)
                    .build();
                return true;
            }
        }
        st.items.push_back(Entry::Item(Item::Event(gap)));
        self.cond.notify_all();
        true
    }

    /// Waits until the worker has handled every item queued before this call: for
    /// serialized queries (DRAIN, ALLOCATION), which must not overtake the data before them.
    /// The worker handles one item at a time and asks for the next only when done, so
    /// asking for what follows the barrier means everything before it is done. False when
    /// the queue flushes, is cleared or the worker stops on an error first: those items
    /// will never be handled.
    pub fn barrier(&self) -> bool {
        let mut st = self.state.lock();
        if st.flushing || st.last_flow.is_err() {
            return false;
        }
        st.barriers_queued += 1;
        let id = st.barriers_queued;
        let epoch = st.epoch;
        st.items.push_back(Entry::Barrier(id));
        self.cond.notify_all();
        while st.barriers_reached < id {
            if st.epoch != epoch {
                return false;
            }
            self.cond.wait(&mut st);
        }
        true
    }

    /// The next item, waiting for one; `None` once flushing. Passes the barriers on its way.
    pub fn pop(&self) -> Option<Item<J>> {
        let mut st = self.state.lock();
        loop {
            while st.items.is_empty() && !st.flushing {
                self.cond.wait(&mut st);
            }
            if st.flushing {
                return None;
            }
            match st.items.pop_front() {
                Some(Entry::Barrier(id)) => {
                    st.barriers_reached = id;
                    self.cond.notify_all();
                }
                Some(Entry::Item(item)) => {
                    if matches!(item, Item::Job(_)) {
                        st.jobs -= 1;
                        self.cond.notify_all();
                    }
                    return Some(item);
                }
                None => {}
            }
        }
    }

    /// Starts (false) or stops (true) the flow; stopping wakes every waiter. Starting clears
    /// the last error.
    pub fn set_flushing(&self, flushing: bool) {
        let mut st = self.state.lock();
        st.flushing = flushing;
        if flushing {
            st.epoch += 1;
        } else {
            st.last_flow = Ok(gst::FlowSuccess::Ok);
        }
        self.cond.notify_all();
    }

    /// Items waiting: jobs, events and barriers.
    pub fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_flushing(&self) -> bool {
        self.state.lock().flushing
    }

    pub fn clear(&self) {
        let mut st = self.state.lock();
        st.items.clear();
        st.jobs = 0;
        st.epoch += 1;
        self.cond.notify_all();
    }

    /// Opens the queue and runs `iteration` as `pad`'s task.
    pub fn start(
        &self,
        pad: &gst::Pad,
        iteration: impl FnMut() + Send + 'static,
    ) -> Result<(), glib::BoolError> {
        self.set_flushing(false);
        pad.start_task(iteration)
    }

    /// Closes the queue, drops what waits in it and joins `pad`'s task.
    pub fn stop(&self, pad: &gst::Pad) {
        self.set_flushing(true);
        self.clear();
        let _ = pad.stop_task();
    }

    /// Records the worker's failure for the streaming thread; returns whether it was flushing.
    pub fn fail(&self, err: gst::FlowError) -> bool {
        let mut st = self.state.lock();
        st.last_flow = Err(err);
        st.epoch += 1;
        self.cond.notify_all();
        st.flushing
    }
}

/// A worker's item failed: the streaming thread is told (through `queue`), and a real failure
/// (not a flush or a downstream that stopped) becomes an element error naming `element`.
/// Returns whether it was such a failure, after which EOS should follow downstream.
pub fn report_failure<J>(
    queue: &WorkQueue<J>,
    element: &gst::Element,
    err: gst::FlowError,
) -> bool {
    let flushing = queue.fail(err);
    let fatal = !flushing && matches!(err, gst::FlowError::Error | gst::FlowError::NotNegotiated);
    if fatal {
        let name = element
            .factory()
            .map_or_else(|| "lalm".into(), |f| f.name().to_string());
        gst::element_error!(
            element,
            gst::StreamError::Failed,
            ("Internal data stream error in {}", name),
            ["streaming stopped, reason {:?}", err]
        );
    }
    fatal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_gaps_merge_into_one_event() {
        gst::init().unwrap();
        let q = WorkQueue::<u32>::default();
        q.set_flushing(false);
        let ms = gst::ClockTime::from_mseconds;
        for i in 0..1000 {
            assert!(
                q.push_gap(
                    gst::event::Gap::builder(ms(400 * i))
                        .duration(ms(400))
                        .build()
                )
            );
        }
        // A later hole with nothing queued between joins it; one behind an item stays apart.
        q.push_gap(
            gst::event::Gap::builder(ms(500_000))
                .duration(ms(400))
                .build(),
        );
        assert_eq!(q.len(), 1);
        q.push_job(7, 4, false).unwrap();
        q.push_gap(
            gst::event::Gap::builder(ms(600_000))
                .duration(ms(400))
                .build(),
        );
        assert_eq!(q.len(), 3);
        let Some(Item::Event(e)) = q.pop() else {
            panic!("a gap")
        };
        let gst::EventView::Gap(g) = e.view() else {
            panic!("a gap")
        };
        assert_eq!(g.get(), (ms(0), Some(ms(500_400))));
        assert!(matches!(q.pop(), Some(Item::Job(7))));
        assert!(matches!(q.pop(), Some(Item::Event(_))));
        q.set_flushing(true);
        assert!(q.pop().is_none());
    }

    #[test]
    fn jobs_and_events_keep_their_order_and_bound() {
        gst::init().unwrap();
        let q = WorkQueue::<u32>::default();
        assert_eq!(q.push_job(1, 1, false), Err(gst::FlowError::Flushing));
        q.set_flushing(false);
        assert_eq!(q.push_job(1, 2, false), Ok(Pushed::Queued));
        assert!(q.push_event(gst::event::Eos::new()));
        assert_eq!(q.push_job(2, 2, false), Ok(Pushed::Queued));
        assert_eq!(q.push_job(3, 2, false), Ok(Pushed::Full(3)));
        assert_eq!(q.push_or_replace(4, |j| *j == 2), Ok(gst::FlowSuccess::Ok));
        assert!(matches!(q.pop(), Some(Item::Job(1))));
        assert!(matches!(q.pop(), Some(Item::Event(_))));
        assert!(matches!(q.pop(), Some(Item::Job(4))));
        q.fail(gst::FlowError::NotLinked);
        assert_eq!(q.push_job(5, 2, false), Err(gst::FlowError::NotLinked));
        // A failed worker takes no replacement either: the streaming thread learns of it.
        assert_eq!(
            q.push_or_replace(6, |_| true),
            Err(gst::FlowError::NotLinked)
        );
        q.set_flushing(true);
        assert!(q.pop().is_none());
    }

    #[test]
    fn a_barrier_returns_once_the_items_before_it_are_handled() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;
        gst::init().unwrap();
        let q = Arc::new(WorkQueue::<u32>::default());
        q.set_flushing(false);
        q.push_job(1, 4, false).unwrap();
        let passed = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (q, passed) = (q.clone(), passed.clone());
            std::thread::spawn(move || {
                let r = q.barrier();
                passed.store(true, Ordering::SeqCst);
                r
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!passed.load(Ordering::SeqCst), "job 1 is not handled yet");
        assert!(matches!(q.pop(), Some(Item::Job(1))));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!passed.load(Ordering::SeqCst), "job 1 is being handled");
        // Asking for the next item means job 1 is done: the barrier opens.
        q.push_job(2, 4, false).unwrap();
        assert!(matches!(q.pop(), Some(Item::Job(2))));
        assert!(waiter.join().unwrap());
        // A flush releases a waiting barrier with false.
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.barrier())
        };
        std::thread::sleep(Duration::from_millis(100));
        q.set_flushing(true);
        assert!(!waiter.join().unwrap());
        q.clear();
        q.set_flushing(false);
        q.fail(gst::FlowError::Error);
        assert!(!q.barrier(), "a stopped worker never reaches a barrier");
    }
}
