//! What every layer stands on: stream time, errors, framing, batching, cancellation.
//!
//! * [`time`]: sample positions and their conversions to and from nanoseconds and ms.
//! * [`error`]: the crate's [`Error`](error::Error) and [`Result`](error::Result).
//! * [`framing`]: re-framing arbitrary sample runs into fixed chunks, counted in samples.
//! * [`batch`]: batching the requests of many streams into one model run.
//! * [`cancel`]: the flag that calls off work under way.

pub mod batch;
pub mod cancel;
pub mod error;
pub mod framing;
pub mod time;
