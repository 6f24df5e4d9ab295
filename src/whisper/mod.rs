//! Whisper: front end, tokenizer, model and decoding.
//!
//! * [`mel`]: the log-mel spectrogram exactly as OpenAI whisper computes it (80 or 128 bins),
//!   including the 30 s window `whisper.transcribe` feeds the encoder.
//! * [`tokenizer`]: a Hugging Face `tokenizer.json` of a Whisper model: text ↔ ids and the
//!   special tokens of the decoder prompt.
//! * [`model`]: a `whisper` model package (encoder + decoder with KV cache) on ONNX Runtime.
//! * [`decode`]: greedy decoding of one window with Whisper's rules and hallucination guards.

pub mod decode;
pub mod mel;
pub mod model;
pub mod responder;
pub mod tokenizer;
pub mod transcriber;

pub use mel::{HOP_LENGTH, LogMel, MelSpectrogram, N_FFT, N_FRAMES, N_SAMPLES, SAMPLE_RATE};
pub use responder::WhisperResponder;
pub use tokenizer::{TokenizerError, WhisperTokenizer};
pub use transcriber::{Piece, Transcriber, Transcript, Window};
