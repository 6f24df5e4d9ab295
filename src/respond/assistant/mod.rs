//! The assistant: a language model that answers what was said.
//!
//! * [`interaction`]: the interaction model, a decoder language model with a KV cache.

pub mod interaction;
