//! The latency `lalm-perceive` reports: the configured processing latency, raised at once
//! when a chunk takes longer (so the pipeline never trusts a latency it does not have), and
//! lowered again once a full window of chunks has run well inside it (so one slow chunk, a
//! server timeout say, does not cost every later second of the stream).

use std::collections::VecDeque;

/// Chunks looked back over before the latency is lowered (51 s of 400 ms chunks).
const WINDOW: usize = 128;

/// What a chunk's time did to the reported latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Raised {
        from: gst::ClockTime,
        to: gst::ClockTime,
    },
    Lowered {
        from: gst::ClockTime,
        to: gst::ClockTime,
    },
}

#[derive(Debug)]
pub struct LatencyBudget {
    configured: gst::ClockTime,
    current: gst::ClockTime,
    recent: VecDeque<gst::ClockTime>,
}

impl LatencyBudget {
    pub fn new(configured: gst::ClockTime) -> Self {
        Self {
            configured,
            current: configured,
            recent: VecDeque::with_capacity(WINDOW),
        }
    }

    pub fn current(&self) -> gst::ClockTime {
        self.current
    }

    /// A new configured latency, or a new stream: what was learnt before is forgotten.
    pub fn reset(&mut self, configured: gst::ClockTime) {
        *self = Self::new(configured);
    }

    /// The latency a run of chunk times calls for: a quarter above the slowest, never below
    /// the configured one.
    fn wanted(&self) -> gst::ClockTime {
        let peak = self.recent.iter().copied().max().unwrap_or_default();
        self.configured
            .max(gst::ClockTime::from_mseconds(peak.mseconds() * 5 / 4 + 1))
    }

    /// A chunk took `took`; says whether the reported latency changed.
    pub fn observe(&mut self, took: gst::ClockTime) -> Option<Change> {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
        let from = self.current;
        if took > from {
            self.current = self.wanted();
            return Some(Change::Raised {
                from,
                to: self.current,
            });
        }
        // Lowered only when a full window asks for under three quarters of it: a latency
        // that changes often makes sinks drop or wait.
        let wanted = self.wanted();
        if self.recent.len() == WINDOW && wanted.nseconds() < from.nseconds() / 4 * 3 {
            self.current = wanted;
            return Some(Change::Lowered { from, to: wanted });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(v)
    }

    #[test]
    fn one_slow_chunk_raises_the_latency_and_a_calm_window_lowers_it_again() {
        let mut b = LatencyBudget::new(ms(100));
        assert_eq!(b.observe(ms(20)), None);
        // A server timeout: 2 s for one chunk.
        assert_eq!(
            b.observe(ms(2000)),
            Some(Change::Raised {
                from: ms(100),
                to: ms(2501)
            })
        );
        let mut lowered = None;
        for i in 0..WINDOW {
            if let Some(c) = b.observe(ms(20)) {
                lowered = Some((i, c));
            }
        }
        let (i, c) = lowered.expect("the latency comes down once the slow chunk is out of view");
        assert_eq!(i, WINDOW - 1, "only once the slow chunk left the window");
        assert_eq!(
            c,
            Change::Lowered {
                from: ms(2501),
                to: ms(100)
            }
        );
        assert_eq!(b.current(), ms(100));
    }

    #[test]
    fn steady_slow_chunks_keep_the_latency_they_need() {
        let mut b = LatencyBudget::new(ms(100));
        assert!(matches!(b.observe(ms(400)), Some(Change::Raised { .. })));
        for _ in 0..3 * WINDOW {
            assert_eq!(b.observe(ms(380)), None, "no flapping");
        }
        assert_eq!(b.current(), ms(501));
    }

    #[test]
    fn a_new_stream_starts_from_the_configured_latency() {
        let mut b = LatencyBudget::new(ms(100));
        b.observe(ms(5000));
        assert!(b.current() > ms(5000));
        b.reset(ms(100));
        assert_eq!(b.current(), ms(100));
        assert_eq!(b.observe(ms(50)), None);
    }
}
