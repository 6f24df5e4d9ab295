//! Whisper: tokenizer, model and decoding. Its log-mel front end, which other models share,
//! is [`crate::dsp::mel`].
//!
//! * [`tokenizer`]: a Hugging Face `tokenizer.json` of a Whisper model: text ↔ ids and the
//!   special tokens of the decoder prompt.
//! * [`model`]: a `whisper` model package (encoder + decoder with KV cache) on ONNX Runtime.
//! * [`decode`]: greedy decoding of one window with Whisper's rules and hallucination guards.

pub mod decode;
pub mod model;
pub mod responder;
pub mod tokenizer;
pub mod transcriber;

pub use responder::WhisperResponder;
pub use tokenizer::{TokenizerError, WhisperTokenizer};
pub use transcriber::{Transcriber, Transcript, Window};
