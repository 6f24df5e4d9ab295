//! How often a rule may fire, in stream time.

use crate::base::time::ms_to_samples;

/// A rule's cooldown, in stream samples from the start of its previous alert.
#[derive(Debug, Clone)]
pub(super) struct Cooldown {
    length: u64,
    last: Option<u64>,
}

impl Cooldown {
    pub(super) fn new(ms: u32, rate: u32) -> Self {
        Self {
            length: ms_to_samples(ms, rate),
            last: None,
        }
    }

    /// Whether an alert starting at `start` may fire; if so, it counts as fired. A start
    /// before the previous alert's means the timeline restarted (a seek or flush), where the
    /// old clock says nothing, so it is allowed.
    pub(super) fn try_fire(&mut self, start: u64) -> bool {
        if let Some(last) = self.last
            && start >= last
            && start - last < self.length
        {
            return false;
        }
        self.last = Some(start);
        true
    }
}
