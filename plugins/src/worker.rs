//! The queue between an element's streaming thread and its worker (a src pad task): jobs and
//! serialized events in one order, a bound on waiting jobs, flushing, and the worker's last
//! flow result handed back to the streaming thread.

use std::collections::VecDeque;

use gst::glib;
use gst::prelude::*;
use parking_lot::{Condvar, Mutex};

pub enum Item<J> {
    Job(J),
    Event(gst::Event),
}

struct State<J> {
    items: VecDeque<Item<J>>,
    jobs: usize,
    flushing: bool,
    last_flow: Result<gst::FlowSuccess, gst::FlowError>,
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
        st.items.push_back(Item::Job(job));
        st.jobs += 1;
        self.cond.notify_all();
        Ok(Pushed::Queued)
    }

    /// Replaces the last queued job if `replace` says so, else queues `job` unbounded; for
    /// work where only the newest request matters (a partial hypothesis).
    pub fn push_or_replace(&self, job: J, replace: impl Fn(&J) -> bool) -> bool {
        let mut st = self.state.lock();
        if st.flushing {
            return false;
        }
        if let Some(Item::Job(last)) = st.items.back_mut()
            && replace(last)
        {
            *last = job;
            return true;
        }
        st.items.push_back(Item::Job(job));
        st.jobs += 1;
        self.cond.notify_all();
        true
    }

    /// Queues a serialized event behind the jobs before it.
    pub fn push_event(&self, event: gst::Event) -> bool {
        let mut st = self.state.lock();
        if st.flushing {
            return false;
        }
        st.items.push_back(Item::Event(event));
        self.cond.notify_all();
        true
    }

    /// The next item, waiting for one; `None` once flushing.
    pub fn pop(&self) -> Option<Item<J>> {
        let mut st = self.state.lock();
        while st.items.is_empty() && !st.flushing {
            self.cond.wait(&mut st);
        }
        if st.flushing {
            return None;
        }
        let item = st.items.pop_front();
        if matches!(item, Some(Item::Job(_))) {
            st.jobs -= 1;
            self.cond.notify_all();
        }
        item
    }

    /// Starts (false) or stops (true) the flow; stopping wakes every waiter. Starting clears
    /// the last error.
    pub fn set_flushing(&self, flushing: bool) {
        let mut st = self.state.lock();
        st.flushing = flushing;
        if !flushing {
            st.last_flow = Ok(gst::FlowSuccess::Ok);
        }
        self.cond.notify_all();
    }

    pub fn is_flushing(&self) -> bool {
        self.state.lock().flushing
    }

    pub fn clear(&self) {
        let mut st = self.state.lock();
        st.items.clear();
        st.jobs = 0;
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
        self.cond.notify_all();
        st.flushing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(q.push_or_replace(4, |j| *j == 2));
        assert!(matches!(q.pop(), Some(Item::Job(1))));
        assert!(matches!(q.pop(), Some(Item::Event(_))));
        assert!(matches!(q.pop(), Some(Item::Job(4))));
        q.fail(gst::FlowError::NotLinked);
        assert_eq!(q.push_job(5, 2, false), Err(gst::FlowError::NotLinked));
        q.set_flushing(true);
        assert!(q.pop().is_none());
    }
}
