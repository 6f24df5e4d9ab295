//! A Whisper model package run through ONNX Runtime: the encoder turns a log-mel window into
//! the cross-attention keys and values of every decoder layer; the decoder runs a few tokens
//! at a time against a self-attention cache. The tensor layout is the common encoder/decoder
//! export one (`mel` → `n_layer_cross_k`/`n_layer_cross_v`; `tokens`, the self-attention
//! caches, the cross keys/values and `offset` → `logits` and the updated caches), so packages
//! exported elsewhere in that layout load too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::value::TensorRef;

use crate::models::contract::{ModelFamily, Signature, TensorSig};
use crate::models::package::ModelPackage;
use crate::models::runtime::{Runtime, SessionInfo, SessionOptions, SharedSession};
use crate::{Error, Result};

pub const FAMILY: &str = crate::models::family::WHISPER;

/// Dimensions and special tokens, from the manifest's `[params]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperParams {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_text_ctx: usize,
    pub n_vocab: usize,
    pub n_text_layer: usize,
    pub d_model: usize,
    pub sot: u32,
    pub eot: u32,
    pub transcribe: u32,
    pub translate: u32,
    pub no_timestamps: u32,
    pub no_speech: u32,
    pub timestamp_begin: u32,
    pub lang_en: u32,
    /// Previous-text and language-model markers, never sampled.
    pub sot_prev: u32,
    pub sot_lm: u32,
    pub suppress_tokens: Vec<u32>,
    /// Never the first token sampled (the blank and end-of-text).
    pub suppress_tokens_begin: Vec<u32>,
}

impl WhisperParams {
    pub fn from_package(pkg: &ModelPackage) -> Result<Self> {
        let int = |k: &str| -> Result<i64> {
            match pkg.manifest.params.get(k) {
                Some(toml::Value::Integer(i)) if *i >= 0 => Ok(*i),
                Some(other) => Err(Error::Manifest {
                    path: pkg.manifest_path.clone(),
                    reason: format!("params.{k} must be a non-negative integer, found {other}"),
                }),
                None => Err(Error::Manifest {
                    path: pkg.manifest_path.clone(),
                    reason: format!("params.{k} is missing"),
                }),
            }
        };
        let list = |k: &str| -> Result<Vec<u32>> {
            match pkg.manifest.params.get(k) {
                None => Ok(Vec::new()),
                Some(toml::Value::Array(a)) => Ok(a
                    .iter()
                    .filter_map(|v| v.as_integer())
                    .filter(|i| *i >= 0)
                    .map(|i| i as u32)
                    .collect()),
                Some(other) => Err(Error::Manifest {
                    path: pkg.manifest_path.clone(),
                    reason: format!("params.{k} must be an array of token ids, found {other}"),
                }),
            }
        };
        let no_speech = int("no_speech")? as u32;
        let eot = int("eot")? as u32;
        let mut suppress_tokens_begin = list("suppress_tokens_begin")?;
        if suppress_tokens_begin.is_empty() {
            // The blank (" " is 220 in Whisper's byte-level vocabulary) and end-of-text.
            suppress_tokens_begin = vec![220, eot];
        }
        Ok(Self {
            n_mels: int("n_mels")? as usize,
            n_audio_ctx: int("n_audio_ctx")? as usize,
            n_text_ctx: int("n_text_ctx")? as usize,
            n_vocab: int("n_vocab")? as usize,
            n_text_layer: int("n_text_layer")? as usize,
            d_model: int("d_model")? as usize,
            sot: int("sot")? as u32,
            eot,
            transcribe: int("transcribe")? as u32,
            translate: int("translate")? as u32,
            no_timestamps: int("no_timestamps")? as u32,
            no_speech,
            timestamp_begin: int("timestamp_begin")? as u32,
            lang_en: int("lang_en")? as u32,
            sot_prev: int("sot_prev").map_or(no_speech.saturating_sub(1), |v| v as u32),
            sot_lm: int("sot_lm").map_or(no_speech.saturating_sub(2), |v| v as u32),
            suppress_tokens: list("suppress_tokens")?,
            suppress_tokens_begin,
        })
    }

    /// Mel frames of one encoder window (30 s).
    pub fn n_frames(&self) -> usize {
        self.n_audio_ctx * 2
    }
}

/// The encoder's output for one window.
#[derive(Debug, Clone)]
pub struct CrossKv {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Positions per layer (1500 for a full window).
    pub len: usize,
}

/// The decoder's self-attention cache for one hypothesis.
#[derive(Debug, Clone)]
pub struct SelfCache {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Tokens already in the cache.
    pub offset: usize,
}

struct Names {
    mel: String,
    cross_k: String,
    cross_v: String,
    tokens: String,
    self_k_in: String,
    self_v_in: String,
    offset: String,
    logits: String,
    self_k_out: String,
    self_v_out: String,
}

pub struct WhisperModel {
    // Shared with every stream of this process that runs the same package and options: the
    // sessions are stateless, each stream keeps its own caches.
    encoder: Arc<SharedSession>,
    decoder: Arc<SharedSession>,
    info: SessionInfo,
    names: Names,
    params: WhisperParams,
    tokenizer_path: PathBuf,
    dir: PathBuf,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("dir", &self.dir)
            .field("provider", &self.info.active)
            .finish()
    }
}

impl WhisperModel {
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        Self::open(pkg)?;
        let params = WhisperParams::from_package(pkg)?;
        // Every file is there before anything loads.
        pkg.file("encoder")?;
        pkg.file("decoder")?;
        let tokenizer_path = pkg.file("tokenizer")?;
        let n = |k: &str, d: &str| pkg.io_name(k, d).to_string();
        // The [io] keys are the layout's own tensor names; a package may rename any of them.
        let names = Names {
            mel: n("mel", "mel"),
            cross_k: n("n_layer_cross_k", "n_layer_cross_k"),
            cross_v: n("n_layer_cross_v", "n_layer_cross_v"),
            tokens: n("tokens", "tokens"),
            self_k_in: n("in_n_layer_self_k_cache", "in_n_layer_self_k_cache"),
            self_v_in: n("in_n_layer_self_v_cache", "in_n_layer_self_v_cache"),
            offset: n("offset", "offset"),
            logits: n("logits", "logits"),
            self_k_out: n("out_n_layer_self_k_cache", "out_n_layer_self_k_cache"),
            self_v_out: n("out_n_layer_self_v_cache", "out_n_layer_self_v_cache"),
        };
        // Every decode has its own window length and token count.
        let opts = &SessionOptions {
            memory_pattern: false,
            ..opts.clone()
        };
        let (encoder, _) = Self::session(rt, pkg, "encoder", opts, &names.encoder())?;
        let info = encoder.info().clone();
        // The decoder goes where the encoder went, so both sides of a fall back agree.
        let dec_opts = SessionOptions {
            provider: info.active,
            ..opts.clone()
        };
        let (decoder, _) = Self::session(rt, pkg, "decoder", &dec_opts, &names.decoder())?;
        Ok(Self {
            encoder,
            decoder,
            info,
            names,
            params,
            tokenizer_path,
            dir: pkg.dir.clone(),
        })
    }

    pub fn params(&self) -> &WhisperParams {
        &self.params
    }

    pub fn session_info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn tokenizer_path(&self) -> &Path {
        &self.tokenizer_path
    }

    /// Runs the encoder on `mel` (`n_mels` rows of `n_frames` frames, row-major).
    pub fn encode(&mut self, mel: &[f32], n_frames: usize) -> Result<CrossKv> {
        let p = &self.params;
        if mel.len() != p.n_mels * n_frames {
            return Err(Error::InvalidArgument(format!(
                "mel has {} values, expected {} x {n_frames}",
                mel.len(),
                p.n_mels
            )));
        }
        let e = |e: ort::Error| Error::Inference(format!("whisper encoder: {e}"));
        let input = TensorRef::from_array_view(([1usize, p.n_mels, n_frames], mel)).map_err(e)?;
        let mut encoder = self.encoder.lock();
        let out = encoder
            .run(ort::inputs![self.names.mel.as_str() => input])
            .map_err(e)?;
        let (shape, k) = out[self.names.cross_k.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(e)?;
        let len = shape.get(2).copied().unwrap_or(0).max(0) as usize;
        let k = k.to_vec();
        let (_, v) = out[self.names.cross_v.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(e)?;
        Ok(CrossKv {
            k,
            v: v.to_vec(),
            len,
        })
    }

    pub fn new_cache(&self) -> SelfCache {
        let n = self.params.n_text_layer * self.params.n_text_ctx * self.params.d_model;
        SelfCache {
            k: vec![0.0; n],
            v: vec![0.0; n],
            offset: 0,
        }
    }

    /// Feeds `tokens` after what `cache` holds; returns the logits of every fed position
    /// (`tokens.len()` rows of `n_vocab`) and advances the cache.
    pub fn decode(
        &mut self,
        tokens: &[u32],
        cache: &mut SelfCache,
        cross: &CrossKv,
    ) -> Result<Vec<f32>> {
        let p = &self.params;
        if cache.offset + tokens.len() > p.n_text_ctx {
            return Err(Error::InvalidArgument(format!(
                "{} tokens exceed the decoder context of {}",
                cache.offset + tokens.len(),
                p.n_text_ctx
            )));
        }
        let toks: Vec<i64> = tokens.iter().map(|t| *t as i64).collect();
        let offset = [cache.offset as i64];
        let cache_shape = [p.n_text_layer, 1usize, p.n_text_ctx, p.d_model];
        let cross_shape = [p.n_text_layer, 1usize, cross.len, p.d_model];
        let e = |e: ort::Error| Error::Inference(format!("whisper decoder: {e}"));
        let inputs = ort::inputs![
            self.names.tokens.as_str() => TensorRef::from_array_view(([1usize, toks.len()], &toks[..])).map_err(e)?,
            self.names.self_k_in.as_str() => TensorRef::from_array_view((cache_shape, &cache.k[..])).map_err(e)?,
            self.names.self_v_in.as_str() => TensorRef::from_array_view((cache_shape, &cache.v[..])).map_err(e)?,
            self.names.cross_k.as_str() => TensorRef::from_array_view((cross_shape, &cross.k[..])).map_err(e)?,
            self.names.cross_v.as_str() => TensorRef::from_array_view((cross_shape, &cross.v[..])).map_err(e)?,
            self.names.offset.as_str() => TensorRef::from_array_view(([1usize], &offset[..])).map_err(e)?,
        ];
        let mut decoder = self.decoder.lock();
        let out = decoder.run(inputs).map_err(e)?;
        let (_, logits) = out[self.names.logits.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(e)?;
        let logits = logits.to_vec();
        let (_, k) = out[self.names.self_k_out.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(e)?;
        let (_, v) = out[self.names.self_v_out.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(e)?;
        if k.len() != cache.k.len() || v.len() != cache.v.len() {
            return Err(Error::Inference(format!(
                "decoder cache output has {} values, expected {}",
                k.len(),
                cache.k.len()
            )));
        }
        cache.k.copy_from_slice(k);
        cache.v.copy_from_slice(v);
        cache.offset += tokens.len();
        Ok(logits)
    }
}

impl ModelFamily for WhisperModel {
    const NAME: &'static str = FAMILY;
}

impl Names {
    /// The encoder: the log-mel window in, the cross-attention keys and values out.
    fn encoder(&self) -> Signature {
        Signature::new()
            .input(
                TensorSig::f32(&self.mel)
                    .rank(3)
                    .about("batch x mels x frames"),
            )
            .output(TensorSig::f32(&self.cross_k))
            .output(TensorSig::f32(&self.cross_v))
    }

    /// The decoder step: tokens, the self-attention cache and the cross keys and values in,
    /// the logits and the advanced cache out.
    fn decoder(&self) -> Signature {
        Signature::new()
            .input(TensorSig::i64(&self.tokens).rank(2))
            .input(TensorSig::f32(&self.self_k_in).rank(4))
            .input(TensorSig::f32(&self.self_v_in).rank(4))
            .input(TensorSig::f32(&self.cross_k).rank(4))
            .input(TensorSig::f32(&self.cross_v).rank(4))
            .input(TensorSig::i64(&self.offset).rank(1))
            .output(TensorSig::f32(&self.logits))
            .output(TensorSig::f32(&self.self_k_out))
            .output(TensorSig::f32(&self.self_v_out))
    }
}
