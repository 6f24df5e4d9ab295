//! Calling off work under way: a decode, a generation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Calls off the work under way: a responder checks it between steps and gives up with
/// [`crate::Error::Cancelled`]. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Options compare by value; which flag they share does not matter.
impl PartialEq for CancelFlag {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
