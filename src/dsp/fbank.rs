//! Kaldi's log mel filterbank, as `torchaudio.compliance.kaldi.fbank` computes it with the
//! settings WeSpeaker-style speaker embedders (pyannote's) were trained on: 16 kHz input
//! scaled to 16-bit range, 25 ms frames every 10 ms (`snip_edges`: only whole frames), per
//! frame the DC offset removed, pre-emphasis 0.97, a Hamming window, a 512-point power
//! spectrum, Kaldi's triangular mel bins (mel = 1127 ln(1 + f/700), 20 Hz to Nyquist; the
//! Nyquist bin weighs nothing), `ln(max(energy, f32::EPSILON))`, no dither, no energy term.
//! [`Fbank::compute`] then subtracts each bin's mean over the frames, as pyannote's
//! `compute_fbank` does.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::{Error, Result};

const FRAME: usize = 400;
const SHIFT: usize = 160;
const PADDED: usize = 512;
const PREEMPH: f32 = 0.97;
const LOW_HZ: f32 = 20.0;

/// Log mel features, row-major `[frames][n_mels]` (the layout an embedder takes).
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub frames: usize,
    pub n_mels: usize,
    pub data: Vec<f32>,
}

pub struct Fbank {
    n_mels: usize,
    window: Vec<f32>,
    /// `n_mels` rows of `PADDED / 2 + 1` weights.
    banks: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for Fbank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fbank")
            .field("n_mels", &self.n_mels)
            .finish()
    }
}

fn mel(hz: f32) -> f32 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

impl Fbank {
    /// Features for 16 kHz audio with `n_mels` bins.
    pub fn new(n_mels: usize) -> Result<Self> {
        if n_mels == 0 || n_mels > 128 {
            return Err(Error::InvalidArgument(format!(
                "a filterbank of {n_mels} mel bins (1 to 128)"
            )));
        }
        let window = (0..FRAME)
            .map(|i| {
                0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / (FRAME - 1) as f64).cos()
            })
            .map(|w| w as f32)
            .collect();
        let bins = PADDED / 2 + 1;
        let (lo, hi) = (mel(LOW_HZ), mel(8000.0));
        let delta = (hi - lo) / (n_mels + 1) as f32;
        let width = 16_000.0 / PADDED as f32;
        let mut banks = vec![0.0f32; n_mels * bins];
        for m in 0..n_mels {
            let left = lo + m as f32 * delta;
            let (center, right) = (left + delta, left + 2.0 * delta);
            // The last (Nyquist) bin stays 0, as in Kaldi.
            for b in 0..bins - 1 {
                let x = mel(width * b as f32);
                let up = (x - left) / (center - left);
                let down = (right - x) / (right - center);
                banks[m * bins + b] = up.min(down).max(0.0);
            }
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(PADDED);
        Ok(Self {
            n_mels,
            window,
            banks,
            fft,
        })
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Whole frames in `n` samples.
    pub fn frames(n: usize) -> usize {
        if n < FRAME {
            0
        } else {
            1 + (n - FRAME) / SHIFT
        }
    }

    /// The mean-normalised log mel features of `audio` (samples in [-1, 1]).
    pub fn compute(&self, audio: &[f32]) -> Features {
        let frames = Self::frames(audio.len());
        let bins = PADDED / 2 + 1;
        let mut data = vec![0.0f32; frames * self.n_mels];
        let mut buf = vec![0.0f32; PADDED];
        let mut spec = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; bins];
        for f in 0..frames {
            let x = &audio[f * SHIFT..f * SHIFT + FRAME];
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() as f32 * 32768.0 / FRAME as f32;
            for (o, &v) in buf.iter_mut().zip(x) {
                *o = v * 32768.0 - mean;
            }
            for i in (1..FRAME).rev() {
                buf[i] -= PREEMPH * buf[i - 1];
            }
            buf[0] -= PREEMPH * buf[0];
            for (o, w) in buf.iter_mut().zip(&self.window) {
                *o *= w;
            }
            buf[FRAME..].fill(0.0);
            // A fixed-size plan with its own scratch cannot fail.
            let _ = self
                .fft
                .process_with_scratch(&mut buf, &mut spec, &mut scratch);
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.norm_sqr();
            }
            let row = &mut data[f * self.n_mels..(f + 1) * self.n_mels];
            for (m, out) in row.iter_mut().enumerate() {
                let bank = &self.banks[m * bins..(m + 1) * bins];
                let e: f32 = bank.iter().zip(&power).map(|(w, p)| w * p).sum();
                *out = e.max(f32::EPSILON).ln();
            }
        }
        if frames > 0 {
            for m in 0..self.n_mels {
                let mean =
                    (0..frames).map(|f| data[f * self.n_mels + m]).sum::<f32>() / frames as f32;
                for f in 0..frames {
                    data[f * self.n_mels + m] -= mean;
                }
            }
        }
        Features {
            frames,
            n_mels: self.n_mels,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_whole_25_ms_frames_every_10_ms() {
        assert_eq!(Fbank::frames(399), 0);
        assert_eq!(Fbank::frames(400), 1);
        assert_eq!(Fbank::frames(16_000), 98);
        // pyannote's reference: 80000 samples give 498 frames.
        assert_eq!(Fbank::frames(80_000), 498);
    }

    #[test]
    fn a_tone_lights_the_bin_of_its_frequency_and_every_bin_is_centred() {
        let fb = Fbank::new(80).expect("fbank");
        let tone: Vec<f32> = (0..16_000)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mut x = tone.clone();
        // A second half an octave up, so the mean removal leaves a contrast over time.
        x.extend(
            (0..16_000)
                .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 1414.0 * i as f32 / 16_000.0).sin()),
        );
        let f = fb.compute(&x);
        assert_eq!((f.frames, f.n_mels), (198, 80));
        for m in 0..80 {
            let mean: f32 = (0..f.frames).map(|t| f.data[t * 80 + m]).sum::<f32>() / 198.0;
            assert!(mean.abs() < 1e-3, "bin {m} is centred: {mean}");
        }
        // In the first second the 1 kHz bin is above its mean, the 1.4 kHz bin below.
        let bin_of = |hz: f32| {
            let (lo, hi) = (mel(LOW_HZ), mel(8000.0));
            ((mel(hz) - lo) / ((hi - lo) / 81.0) - 1.0).round() as usize
        };
        let (a, b) = (bin_of(1000.0), bin_of(1414.0));
        assert!(a < b);
        let at = |t: usize, m: usize| f.data[t * 80 + m];
        assert!(
            at(50, a) > 1.0 && at(50, b) < -1.0,
            "{} {}",
            at(50, a),
            at(50, b)
        );
        assert!(at(150, a) < -1.0 && at(150, b) > 1.0);
    }
}
