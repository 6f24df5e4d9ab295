//! Decide: from what was perceived to what happens: speech started, a turn ended, an alert.
//!
//! * [`decision`]: the per-window speech/turn state machine, its events and the per-chunk
//!   [`Decision`](decision::Decision) that travels downstream.
//! * [`turn`]: the smart-turn model, which judges whether a pause ends the turn.
//! * [`head`]: the learned decision head, a model that decides per chunk whether a sound
//!   calls for a response (instead of the sound classes' thresholds).
//! * [`alerts`]: proactive alert rules (TOML), evaluated over perception and transcripts.

pub mod alerts;
pub mod decision;
pub mod head;
pub mod turn;
