//! Who is speaking: a speaker-embedding model (`speaker-embedding` packages, such as
//! pyannote community-1's WeSpeaker ResNet: Kaldi log-mel fbank in, a 256-value voice print
//! out) and [`SpeakerLabels`], which gives each utterance of a stream a label (S1, S2, …) by
//! comparing its voice print with those of the speakers heard so far.
//!
//! Labels are per stream and never change once given: an utterance that sounds like no one
//! heard before gets the next label; one that sounds like a known speaker gets that
//! speaker's label and refines the speaker's print (a running mean). The cost of one label is
//! one model run over at most [`SpeakerEmbedder::max_samples`] of the utterance, and a
//! comparison with each speaker so far (a bounded number: [`SpeakerLabels`] keeps
//! `max_speakers`), so it does not grow with how long anyone has talked.

use std::sync::Arc;

use ort::value::TensorRef;

use crate::dsp::fbank::Fbank;
use crate::models::contract::{ModelFamily, Signature, TensorSig};
use crate::models::package::ModelPackage;
use crate::models::runtime::{Runtime, SessionOptions, SharedSession};
use crate::{Error, Result};

/// The family name in a speaker model's `model.toml`.
pub const FAMILY: &str = crate::models::family::SPEAKER_EMBEDDING;

/// A loaded speaker-embedding model.
pub struct SpeakerEmbedder {
    session: Arc<SharedSession>,
    fbank: Fbank,
    rate: u32,
    /// Most samples of an utterance one print hears (its start): enough for a voice, and a
    /// bound on the cost of a long utterance.
    max_samples: usize,
    /// Least samples for a print at all: shorter audio says little about a voice.
    min_samples: usize,
    features: String,
    weights: Option<String>,
    output: String,
    name: String,
    /// The cosine similarity at which two prints are one speaker (`params.same_speaker`).
    same_speaker: f32,
}

impl ModelFamily for SpeakerEmbedder {
    const NAME: &'static str = FAMILY;
}

impl std::fmt::Debug for SpeakerEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeakerEmbedder")
            .field("name", &self.name)
            .finish()
    }
}

impl SpeakerEmbedder {
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        Self::open(pkg)?;
        let bad = |reason: String| Error::Manifest {
            path: pkg.manifest_path.clone(),
            reason,
        };
        let param = |key: &str| pkg.manifest.params.get(key);
        let n_mels = match param("n_mels").map(|v| v.as_integer()) {
            None => 80,
            Some(Some(n)) if (1..=128).contains(&n) => n as usize,
            Some(_) => return Err(bad("params.n_mels must be an integer from 1 to 128".into())),
        };
        let secs = |key: &str, default: f64| -> Result<f64> {
            match param(key) {
                None => Ok(default),
                Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
                    Some(s) if s > 0.0 => Ok(s),
                    _ => Err(bad(format!(
                        "params.{key} must be a positive number of seconds"
                    ))),
                },
            }
        };
        let same_speaker = match param("same_speaker").and_then(|v| v.as_float()) {
            None if param("same_speaker").is_none() => 0.5,
            Some(t) if (-1.0..=1.0).contains(&t) => t as f32,
            _ => {
                return Err(bad(
                    "params.same_speaker must be a number from -1 to 1".into()
                ));
            }
        };
        if pkg.manifest.sample_rate != 16_000 {
            return Err(bad(format!(
                "the fbank front end runs at 16000 Hz, the package says {}",
                pkg.manifest.sample_rate
            )));
        }
        let rate = pkg.manifest.sample_rate;
        let max_samples = (secs("max_seconds", 3.0)? * rate as f64) as usize;
        let min_samples = (secs("min_seconds", 0.8)? * rate as f64) as usize;
        let model_path = pkg.file("model")?;
        let features = pkg.io_name("features", "fbank").to_string();
        let weights = pkg.io_name("weights", "weights").to_string();
        let output = pkg.io_name("output", "embedding").to_string();
        let weights = (weights != "none").then_some(weights);
        let mut sig = Signature::new()
            .input(TensorSig::f32(&features).rank(3).dim(
                2,
                n_mels as i64,
                format!("params.n_mels is {n_mels}"),
            ))
            .output(TensorSig::f32(&output).rank(2));
        if let Some(w) = &weights {
            sig = sig.input(TensorSig::f32(w).rank(2));
        }
        let (session, _) = Self::session(rt, pkg, "model", opts, &sig)?;
        let model = Self {
            session,
            fbank: Fbank::new(n_mels)?,
            rate,
            max_samples,
            min_samples,
            features,
            weights,
            output,
            name: pkg.display_name(),
            same_speaker,
        };
        // A second of a tone proves the contract (names, shapes) at load.
        let probe: Vec<f32> = (0..rate as usize)
            .map(|i| 0.1 * (i as f32 * 0.05).sin())
            .collect();
        model.embed(&probe).map_err(|e| {
            Self::contract_error(
                &model_path,
                format!("{} does not run as a speaker embedder: {e}", model.name),
            )
        })?;
        Ok(model)
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Most samples of an utterance a print hears.
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// Least samples a print needs.
    pub fn min_samples(&self) -> usize {
        self.min_samples
    }

    /// The similarity at which two prints are taken for one speaker.
    pub fn same_speaker(&self) -> f32 {
        self.same_speaker
    }

    /// The voice print of `audio` (its first [`Self::max_samples`]), unit length.
    pub fn embed(&self, audio: &[f32]) -> Result<Vec<f32>> {
        let audio = &audio[..audio.len().min(self.max_samples)];
        let f = self.fbank.compute(audio);
        if f.frames == 0 {
            return Err(Error::InvalidArgument(
                "a voice print needs at least 25 ms of audio".into(),
            ));
        }
        let feats = TensorRef::from_array_view(([1usize, f.frames, f.n_mels], &f.data[..]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let ones = vec![1.0f32; f.frames];
        let mut session = self.session.lock();
        let outputs = match &self.weights {
            Some(w) => {
                let weights = TensorRef::from_array_view(([1usize, f.frames], &ones[..]))
                    .map_err(|e| Error::Inference(e.to_string()))?;
                session.run(ort::inputs![self.features.as_str() => feats, w.as_str() => weights])
            }
            None => session.run(ort::inputs![self.features.as_str() => feats]),
        }
        .map_err(|e| Error::Inference(e.to_string()))?;
        let out = outputs
            .get(self.output.as_str())
            .ok_or_else(|| Error::Inference(format!("no output named {}", self.output)))?;
        let (_, v) = out
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(Error::Inference(
                "the speaker model gave no voice print".into(),
            ));
        }
        Ok(v.iter().map(|x| x / norm).collect())
    }
}

/// Cosine similarity of two unit-length prints.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The speakers of one stream: their prints and labels.
#[derive(Debug, Clone)]
pub struct SpeakerLabels {
    same_speaker: f32,
    max_speakers: usize,
    /// Per speaker: the sum of its unit prints and how many there were.
    speakers: Vec<(Vec<f32>, u32)>,
}

impl SpeakerLabels {
    pub fn new(same_speaker: f32, max_speakers: usize) -> Self {
        Self {
            same_speaker,
            max_speakers: max_speakers.max(1),
            speakers: Vec::new(),
        }
    }

    /// Forgets every speaker (a new stream).
    pub fn reset(&mut self) {
        self.speakers.clear();
    }

    pub fn speakers(&self) -> usize {
        self.speakers.len()
    }

    /// The label of a print: the closest known speaker at `same_speaker` or above, else a
    /// new one (or, once `max_speakers` are known, the closest). Labels count from 1.
    pub fn assign(&mut self, print: &[f32]) -> usize {
        let best = self
            .speakers
            .iter()
            .enumerate()
            .map(|(i, (sum, _))| {
                let n = sum
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt()
                    .max(f32::MIN_POSITIVE);
                (i, similarity(sum, print) / n)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let i = match best {
            Some((i, s)) if s >= self.same_speaker || self.speakers.len() >= self.max_speakers => i,
            _ => {
                self.speakers.push((vec![0.0; print.len()], 0));
                self.speakers.len() - 1
            }
        };
        let (sum, n) = &mut self.speakers[i];
        for (s, p) in sum.iter_mut().zip(print) {
            *s += p;
        }
        *n += 1;
        i + 1
    }
}

/// A label as captions show it: `S1`, `S2`, …
pub fn label(n: usize) -> String {
    format!("S{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn labels_follow_the_closest_voice_and_stay_bounded() {
        let mut l = SpeakerLabels::new(0.7, 3);
        let a = unit(&[1.0, 0.0, 0.1]);
        let a2 = unit(&[0.95, 0.05, 0.12]);
        let b = unit(&[0.0, 1.0, 0.0]);
        let c = unit(&[0.0, 0.0, 1.0]);
        let d = unit(&[-1.0, 0.0, 0.0]);
        assert_eq!(l.assign(&a), 1);
        assert_eq!(l.assign(&b), 2);
        assert_eq!(l.assign(&a2), 1, "a close print is the same speaker");
        assert_eq!(l.assign(&c), 3);
        // A fourth voice past max_speakers goes to the closest of the three.
        let got = l.assign(&d);
        assert!((1..=3).contains(&got));
        assert_eq!(l.speakers(), 3);
        l.reset();
        assert_eq!(l.assign(&b), 1, "a new stream counts from 1 again");
    }
}
