//! End-of-turn detection: a model that hears the last seconds of an utterance up to a pause
//! and says how likely the speaker has finished (smart-turn v3.2: Whisper-style 80-band
//! log-mel of the last 8 s, a probability out). The decision asks it once per pause, after a
//! short silence, so a finished sentence ends its turn without waiting out the full
//! `min-silence-ms`, and a speaker who is only drawing breath keeps the turn.

use std::sync::Arc;

use ort::value::TensorRef;

use crate::dsp::mel::LogMel;
use crate::models::contract::{ModelFamily, Signature, TensorSig};
use crate::models::package::ModelPackage;
use crate::models::runtime::{Runtime, SessionOptions, SharedSession};
use crate::{Error, Result};

/// The family name in a turn model's `model.toml`.
pub const FAMILY: &str = crate::models::family::TURN_DETECTOR;

/// A loaded end-of-turn model.
pub struct TurnModel {
    session: Arc<SharedSession>,
    mel: LogMel,
    rate: u32,
    /// Samples the model hears: the last `window` of the utterance, zeros before it if shorter.
    window: usize,
    /// Scale the waveform to zero mean and unit variance first (Whisper's feature extractor
    /// with `do_normalize`).
    normalize: bool,
    input: String,
    output: String,
    name: String,
}

impl ModelFamily for TurnModel {
    const NAME: &'static str = FAMILY;
}

impl std::fmt::Debug for TurnModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnModel")
            .field("name", &self.name)
            .field("window", &self.window)
            .finish()
    }
}

impl TurnModel {
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        Self::open(pkg)?;
        let bad = |reason: String| Error::Manifest {
            path: pkg.manifest_path.clone(),
            reason,
        };
        let param = |key: &str| pkg.manifest.params.get(key);
        let window = match param("window").map(|v| v.as_integer()) {
            None => 8 * pkg.manifest.sample_rate as usize,
            Some(Some(w)) if w > 0 => w as usize,
            Some(_) => return Err(bad("params.window must be a positive integer".into())),
        };
        let n_mels = match param("n_mels").map(|v| v.as_integer()) {
            None => 80,
            Some(Some(n)) if n > 0 => n as usize,
            Some(_) => return Err(bad("params.n_mels must be a positive integer".into())),
        };
        let normalize = match param("normalize").map(|v| v.as_bool()) {
            None => true,
            Some(Some(b)) => b,
            Some(None) => return Err(bad("params.normalize must be true or false".into())),
        };
        let model_path = pkg.file("model")?;
        let input = pkg.io_name("input", "input_features").to_string();
        let output = pkg.io_name("output", "logits").to_string();
        // The log-mel of the window in (batch x mels x frames), the probability out.
        let sig = Signature::new()
            .input(TensorSig::f32(&input).rank(3).dim(
                1,
                n_mels as i64,
                format!("params.n_mels is {n_mels}"),
            ))
            .output(TensorSig::f32(&output));
        let (session, _) = Self::session(rt, pkg, "model", opts, &sig)?;
        let model = Self {
            session,
            mel: LogMel::new(n_mels)?,
            rate: pkg.manifest.sample_rate,
            window,
            normalize,
            input,
            output,
            name: pkg.display_name(),
        };
        // A silent window proves the contract (names, shapes) at load rather than at the
        // first pause.
        let p = model.completion(&[]).map_err(|e| {
            Self::contract_error(
                &model_path,
                format!("{} does not run as a turn detector: {e}", model.name),
            )
        })?;
        if !(0.0..=1.0).contains(&p) {
            return Err(Self::contract_error(
                &model_path,
                format!("it gave {p} for silence; a probability was expected"),
            ));
        }
        Ok(model)
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Samples of audio the model looks at.
    pub fn window(&self) -> usize {
        self.window
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Probability that the turn is complete, from the audio up to now (its last
    /// [`Self::window`] samples are used).
    pub fn completion(&self, audio: &[f32]) -> Result<f32> {
        let audio = &audio[audio.len().saturating_sub(self.window)..];
        let mut x = vec![0.0f32; self.window];
        x[self.window - audio.len()..].copy_from_slice(audio);
        if self.normalize {
            let n = x.len() as f64;
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            let scale = 1.0 / (var + 1e-7).sqrt();
            for v in &mut x {
                *v = ((*v as f64 - mean) * scale) as f32;
            }
        }
        let mel = self.mel.compute(&x);
        let frames = mel.n_frames;
        let tensor = TensorRef::from_array_view(([1usize, mel.n_mels, frames], &mel.data[..]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let mut session = self.session.lock();
        let outputs = session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(|e| Error::Inference(e.to_string()))?;
        let out = outputs
            .get(self.output.as_str())
            .ok_or_else(|| Error::Inference(format!("no output named {}", self.output)))?;
        let (_, p) = out
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        p.first()
            .copied()
            .ok_or_else(|| Error::Inference("the turn model gave no value".into()))
    }
}
