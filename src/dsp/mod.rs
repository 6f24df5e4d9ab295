//! Signal processing the models share.
//!
//! * [`mel`]: the log-mel spectrogram exactly as OpenAI whisper computes it (80 or 128 bins),
//!   including the 30 s window `whisper.transcribe` feeds the encoder; the front end of
//!   Whisper, the turn detector and the taggers that take log-mel input.
//! * [`fbank`]: Kaldi's log mel filterbank, the front end of speaker embedders.
//! * [`window`]: window functions (periodic Hann).

pub mod fbank;
pub mod mel;
pub mod window;
