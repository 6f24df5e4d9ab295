//! Whisper's log-mel spectrogram, computed as OpenAI's `whisper.audio.log_mel_spectrogram` does.
//!
//! The steps, for 16 kHz mono samples:
//!
//! 1. STFT with `n_fft` 400, hop 160 and a periodic Hann window of 400, the signal reflect-padded
//!    by 200 samples on both sides (`torch.stft(center=True, pad_mode="reflect")`);
//! 2. squared magnitudes, the last frame dropped (`stft[..., :-1]`), so `len / 160` frames;
//! 3. a mel filterbank of 80 (or 128) bins built like
//!    `librosa.filters.mel(sr=16000, n_fft=400, n_mels=N)`: Slaney mel scale (`htk=False`) and
//!    Slaney area normalisation (`norm="slaney"`), in float32 as librosa returns it (identical to
//!    the matrices in whisper's `assets/mel_filters.npz`);
//! 4. `log10(max(mel, 1e-10))`, then `max(x, x.max() - 8)`, then `(x + 4) / 4`.
//!
//! [`LogMel::compute_padded_30s`] gives the first 30 s window exactly as `whisper.transcribe`
//! (and `DecodingTask` callers built on it) sees it: the audio is padded with
//! [`N_SAMPLES`] (30 s) of zeros, the mel of the whole padded signal is computed (so the maximum
//! in `max - 8` is taken over all of it, which for audio longer than 30 s includes the audio
//! beyond the window), and frames `[0, 3000)` are kept. This differs from
//! `log_mel_spectrogram(pad_or_trim(audio))` in two ways: the frames near the end of the audio see
//! zeros instead of reflected audio, and for audio longer than 30 s the maximum covers everything.
//!
//! The STFT is computed in `f32` (as whisper does with torch), with `realfft`.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::dsp::window::hann_periodic;
use crate::{Error, Result};

/// Sample rate whisper expects.
pub const SAMPLE_RATE: u32 = 16_000;
/// FFT size (25 ms).
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Length of whisper's input window in seconds.
pub const CHUNK_LENGTH_S: usize = 30;
/// Samples in one 30 s window.
pub const N_SAMPLES: usize = CHUNK_LENGTH_S * SAMPLE_RATE as usize;
/// Mel frames in one 30 s window.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// Frequency bins of the one-sided spectrum.
pub const N_FREQS: usize = N_FFT / 2 + 1;

/// A log-mel spectrogram, row-major `[n_mels][n_frames]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MelSpectrogram {
    pub n_mels: usize,
    pub n_frames: usize,
    /// `n_mels * n_frames` values; `data[mel * n_frames + frame]`.
    pub data: Vec<f32>,
}

impl MelSpectrogram {
    /// The value of one mel bin in one frame, `None` when out of range.
    pub fn get(&self, mel: usize, frame: usize) -> Option<f32> {
        if mel < self.n_mels && frame < self.n_frames {
            self.data.get(mel * self.n_frames + frame).copied()
        } else {
            None
        }
    }

    /// All frames of one mel bin.
    pub fn row(&self, mel: usize) -> Option<&[f32]> {
        if mel < self.n_mels {
            self.data
                .get(mel * self.n_frames..(mel + 1) * self.n_frames)
        } else {
            None
        }
    }
}

/// One triangular filter: its weights over FFT bins `start .. start + weights.len()`.
#[derive(Debug, Clone)]
struct Filter {
    start: usize,
    weights: Vec<f32>,
}

/// Whisper's log-mel front end: window, filterbank and FFT plan, built once and shared
/// (`LogMel` is `Send + Sync`; [`LogMel::compute`] takes `&self`).
pub struct LogMel {
    n_mels: usize,
    window: Vec<f32>,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

impl LogMel {
    /// A front end with `n_mels` mel bins. Whisper models use 80 (tiny … large-v2) or 128
    /// (large-v3); any count from 1 to 512 is accepted and built with the same formula.
    pub fn new(n_mels: usize) -> Result<Self> {
        if n_mels == 0 || n_mels > 512 {
            return Err(Error::InvalidArgument(format!(
                "whisper log-mel: n_mels must be between 1 and 512 (whisper uses 80 or 128), got {n_mels}"
            )));
        }
        let window = hann_periodic(N_FFT);
        let dense = slaney_mel_filters(n_mels);
        let filters = dense
            .chunks_exact(N_FREQS)
            .map(|row| {
                let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = row
                    .iter()
                    .rposition(|&w| w != 0.0)
                    .map_or(start, |last| last + 1);
                Filter {
                    start,
                    weights: row[start..end].to_vec(),
                }
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Ok(Self {
            n_mels,
            window,
            filters,
            fft,
        })
    }

    /// Number of mel bins.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The filterbank as a dense row-major `[n_mels][201]` matrix (what
    /// `librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)` returns).
    pub fn filters(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_mels * N_FREQS];
        for (row, filter) in out.chunks_exact_mut(N_FREQS).zip(&self.filters) {
            row[filter.start..filter.start + filter.weights.len()].copy_from_slice(&filter.weights);
        }
        out
    }

    /// `whisper.audio.log_mel_spectrogram(samples)`: `samples.len() / 160` frames, the maximum
    /// for `max - 8` taken over all of them. Fewer than 160 samples give no frames. Inputs of
    /// 200 samples or fewer (which torch's reflect padding rejects) are reflected repeatedly,
    /// as `numpy.pad(mode="reflect")` does.
    pub fn compute(&self, samples: &[f32]) -> MelSpectrogram {
        self.log_mel(samples, 0, None)
    }

    /// The first 30 s window as `whisper.transcribe` computes it: `samples` padded with
    /// [`N_SAMPLES`] zeros, the log-mel of all of it (maximum over all of it), frames
    /// `[0, 3000)` kept. Returns `n_mels * 3000` values, row-major `[n_mels][3000]`.
    /// Silence (or no samples) gives -1.5 everywhere, as in whisper.
    pub fn compute_padded_30s(&self, samples: &[f32]) -> Vec<f32> {
        self.log_mel(samples, N_SAMPLES, Some(N_FRAMES)).data
    }

    /// Log-mel of `samples` followed by `extra_zeros` zeros; with `keep`, only the first `keep`
    /// frames are returned (zero-padded to `keep` frames if there are fewer), but the maximum for
    /// `max - 8` is still taken over every frame.
    fn log_mel(&self, samples: &[f32], extra_zeros: usize, keep: Option<usize>) -> MelSpectrogram {
        let total = samples.len() + extra_zeros;
        let n_frames = total / HOP_LENGTH;
        let out_frames = keep.unwrap_or(n_frames);
        let stored = out_frames.min(n_frames);
        let mut data = vec![0.0f32; self.n_mels * out_frames];

        let mut input = self.fft.make_input_vec();
        let mut spectrum: Vec<Complex<f32>> = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; N_FREQS];
        let mut mel = vec![0.0f32; self.n_mels];
        let mut max = f32::NEG_INFINITY;
        let silent_log = 1e-10f32.log10();
        let pad = (N_FFT / 2) as isize;
        let sample_at = |i: isize| -> f32 {
            let r = reflect(i, total);
            samples.get(r).copied().unwrap_or(0.0)
        };

        for frame in 0..n_frames {
            // Frame `frame` covers samples [frame * hop - 200, frame * hop + 200) of the signal.
            let first = (frame * HOP_LENGTH) as isize - pad;
            let mut silent = true;
            for (n, slot) in input.iter_mut().enumerate() {
                let v = sample_at(first + n as isize) * self.window[n];
                silent &= v == 0.0;
                *slot = v;
            }
            if silent {
                // All-zero frame (padding): every mel bin is the clamp value.
                mel.fill(silent_log);
            } else {
                // The buffers come from this plan, so their lengths are always right.
                self.fft
                    .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                    .expect("FFT buffers are made by the same plan");
                for (p, c) in power.iter_mut().zip(&spectrum) {
                    *p = c.norm_sqr();
                }
                for (m, filter) in mel.iter_mut().zip(&self.filters) {
                    let bins = &power[filter.start..filter.start + filter.weights.len()];
                    let sum: f32 = bins.iter().zip(&filter.weights).map(|(p, w)| p * w).sum();
                    *m = sum.max(1e-10).log10();
                }
            }
            for (m, &v) in mel.iter().enumerate() {
                max = max.max(v);
                if frame < stored {
                    data[m * out_frames + frame] = v;
                }
            }
        }

        let floor = max - 8.0;
        if out_frames > 0 {
            for row in data.chunks_exact_mut(out_frames) {
                for v in row.iter_mut().take(stored) {
                    *v = (v.max(floor) + 4.0) / 4.0;
                }
            }
        }
        MelSpectrogram {
            n_mels: self.n_mels,
            n_frames: out_frames,
            data,
        }
    }
}

/// Index into a signal of `len` samples after reflect padding (`numpy.pad(mode="reflect")`,
/// which for pads shorter than the signal is torch's `reflect`): `-1 → 1`, `len → len - 2`.
fn reflect(i: isize, len: usize) -> usize {
    if len <= 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    if m >= len as isize {
        (period - m) as usize
    } else {
        m as usize
    }
}

/// Slaney mel scale (librosa `hz_to_mel(htk=False)`): linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / logstep
    } else {
        hz / F_SP
    }
}

/// Inverse of [`hz_to_mel`] (librosa `mel_to_hz(htk=False)`).
fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (logstep * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// `librosa.filters.mel(sr=16000, n_fft=400, n_mels, fmin=0, fmax=8000, htk=False,
/// norm="slaney", dtype=float32)`, row-major `[n_mels][201]`. Like librosa, the triangles are
/// computed in f64 and stored as f32, and the f32 weights are then scaled by the f64 Slaney
/// factor `2 / (f[i + 2] - f[i])`.
fn slaney_mel_filters(n_mels: usize) -> Vec<f32> {
    let sr = f64::from(SAMPLE_RATE);
    let fft_freqs: Vec<f64> = (0..N_FREQS).map(|k| k as f64 * sr / N_FFT as f64).collect();
    let (min_mel, max_mel) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    // numpy.linspace(min_mel, max_mel, n_mels + 2)
    let n_points = n_mels + 2;
    let step = (max_mel - min_mel) / (n_points - 1) as f64;
    let mel_f: Vec<f64> = (0..n_points)
        .map(|i| {
            if i == n_points - 1 {
                max_mel
            } else {
                min_mel + i as f64 * step
            }
        })
        .map(mel_to_hz)
        .collect();

    let mut weights = vec![0.0f32; n_mels * N_FREQS];
    for (i, row) in weights.chunks_exact_mut(N_FREQS).enumerate() {
        let fdiff_lo = mel_f[i + 1] - mel_f[i];
        let fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (w, &f) in row.iter_mut().zip(&fft_freqs) {
            let lower = -(mel_f[i] - f) / fdiff_lo;
            let upper = (mel_f[i + 2] - f) / fdiff_hi;
            let tri = lower.min(upper).max(0.0) as f32;
            *w = (f64::from(tri) * enorm) as f32;
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const REFERENCE: &str = include_str!("testdata/mel_reference.txt");

    /// The records of testdata/mel_reference.txt (written by make_mel_reference.py).
    fn reference() -> HashMap<String, Vec<f64>> {
        REFERENCE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let mut parts = l.split_whitespace();
                let name = parts.next().expect("record name").to_string();
                let values = parts
                    .map(|v| v.parse::<f64>().expect("number in reference"))
                    .collect();
                (name, values)
            })
            .collect()
    }

    fn record<'a>(r: &'a HashMap<String, Vec<f64>>, name: &str) -> &'a [f64] {
        r.get(name)
            .unwrap_or_else(|| panic!("reference has no record {name}"))
    }

    /// The formula of make_mel_reference.py's test_signal().
    fn test_signal() -> Vec<f32> {
        use std::f64::consts::PI;
        (0..24_000)
            .map(|n| {
                let t = n as f64 / 16_000.0;
                (0.5 * (2.0 * PI * 440.0 * t).sin()
                    + 0.3 * (2.0 * PI * 1000.0 * t).sin()
                    + 0.2 * (2.0 * PI * (100.0 * t + (2900.0 / 3.0) * t * t)).sin())
                    as f32
            })
            .collect()
    }

    fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() < tol,
            "{what}: got {got}, reference {want} (tolerance {tol})"
        );
    }

    #[test]
    fn test_signal_matches_python() {
        let r = reference();
        let x = test_signal();
        assert_eq!(x.len() as f64, record(&r, "n_samples")[0]);
        let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
        assert_close("signal sum", sum, record(&r, "signal_sum")[0], 1e-4);
        for (i, (&got, &want)) in x.iter().zip(record(&r, "signal_head")).enumerate() {
            assert_close(&format!("sample {i}"), f64::from(got), want, 1e-7);
        }
    }

    #[test]
    fn filterbank_matches_librosa_formula() {
        let r = reference();
        for n_mels in [80usize, 128] {
            let filters = LogMel::new(n_mels).unwrap().filters();
            let sums = record(&r, &format!("filters{n_mels}_row_sums"));
            assert_eq!(sums.len(), n_mels);
            for (m, (row, &want)) in filters.chunks_exact(N_FREQS).zip(sums).enumerate() {
                let got: f64 = row.iter().map(|&w| f64::from(w)).sum();
                assert_close(&format!("filters{n_mels} row {m} sum"), got, want, 1e-8);
            }
        }
        // Every non-zero weight of the 80-bin bank, and no others.
        let filters = LogMel::new(80).unwrap().filters();
        let nz = record(&r, "filters80_nonzero");
        let mut expected = vec![0.0f64; filters.len()];
        for t in nz.chunks_exact(3) {
            expected[t[0] as usize * N_FREQS + t[1] as usize] = t[2];
        }
        let ours = filters.iter().filter(|&&w| w != 0.0).count();
        assert_eq!(ours, nz.len() / 3, "number of non-zero weights");
        for (i, (&got, &want)) in filters.iter().zip(&expected).enumerate() {
            assert_close(
                &format!("filters80[{}][{}]", i / N_FREQS, i % N_FREQS),
                f64::from(got),
                want,
                1e-9,
            );
        }
    }

    #[test]
    fn log_mel_matches_reference() {
        let r = reference();
        let x = test_signal();
        for n_mels in [80usize, 128] {
            let mel = LogMel::new(n_mels).unwrap().compute(&x);
            let shape = record(&r, &format!("mel{n_mels}_shape"));
            assert_eq!(
                (mel.n_mels as f64, mel.n_frames as f64),
                (shape[0], shape[1])
            );
            assert_eq!(mel.data.len(), mel.n_mels * mel.n_frames);

            let mut max_diff = 0.0f64;
            for t in record(&r, &format!("mel{n_mels}_values")).chunks_exact(3) {
                let got = mel.get(t[0] as usize, t[1] as usize).unwrap();
                max_diff = max_diff.max((f64::from(got) - t[2]).abs());
            }
            assert!(max_diff < 1e-3, "mel{n_mels} values: max diff {max_diff}");

            let bin_sums = record(&r, &format!("mel{n_mels}_bin_sums"));
            for (m, &want) in bin_sums.iter().enumerate() {
                let got: f64 = mel.row(m).unwrap().iter().map(|&v| f64::from(v)).sum();
                let n = mel.n_frames as f64;
                assert_close(
                    &format!("mel{n_mels} bin {m} mean"),
                    got / n,
                    want / n,
                    1e-3,
                );
            }
            let frame_sums = record(&r, &format!("mel{n_mels}_frame_sums"));
            for (f, &want) in frame_sums.iter().enumerate() {
                let got: f64 = (0..n_mels).map(|m| f64::from(mel.get(m, f).unwrap())).sum();
                let n = n_mels as f64;
                assert_close(
                    &format!("mel{n_mels} frame {f} mean"),
                    got / n,
                    want / n,
                    1e-3,
                );
            }
            eprintln!("mel{n_mels}: max abs diff over selected values {max_diff:.2e}");
        }
    }

    #[test]
    fn padded_30s_matches_transcribe_reference() {
        let r = reference();
        let x = test_signal();
        for n_mels in [80usize, 128] {
            let front = LogMel::new(n_mels).unwrap();
            let data = front.compute_padded_30s(&x);
            assert_eq!(data.len(), n_mels * N_FRAMES);
            let full = record(&r, &format!("padded{n_mels}_full_frames"))[0];
            assert_eq!(full as usize, (x.len() + N_SAMPLES) / HOP_LENGTH);

            let at = |m: usize, f: usize| f64::from(data[m * N_FRAMES + f]);
            let mut max_diff = 0.0f64;
            for t in record(&r, &format!("padded{n_mels}_values")).chunks_exact(3) {
                max_diff = max_diff.max((at(t[0] as usize, t[1] as usize) - t[2]).abs());
            }
            assert!(
                max_diff < 1e-3,
                "padded{n_mels} values: max diff {max_diff}"
            );

            for (m, &want) in record(&r, &format!("padded{n_mels}_bin_sums"))
                .iter()
                .enumerate()
            {
                let got: f64 = (0..N_FRAMES).map(|f| at(m, f)).sum();
                let n = N_FRAMES as f64;
                assert_close(
                    &format!("padded{n_mels} bin {m} mean"),
                    got / n,
                    want / n,
                    1e-3,
                );
            }
            for (f, &want) in record(&r, &format!("padded{n_mels}_frame_sums"))
                .iter()
                .enumerate()
            {
                let got: f64 = (0..n_mels).map(|m| at(m, f)).sum();
                let n = n_mels as f64;
                assert_close(
                    &format!("padded{n_mels} frame {f} mean"),
                    got / n,
                    want / n,
                    1e-3,
                );
            }
        }
    }

    #[test]
    fn padded_is_plain_compute_of_zero_padded_audio() {
        let x = test_signal();
        let front = LogMel::new(80).unwrap();
        let mut padded = x.clone();
        padded.resize(x.len() + N_SAMPLES, 0.0);
        let full = front.compute(&padded);
        assert_eq!(full.n_frames, 3150);
        let window = front.compute_padded_30s(&x);
        for m in 0..80 {
            assert_eq!(
                &window[m * N_FRAMES..(m + 1) * N_FRAMES],
                &full.row(m).unwrap()[..N_FRAMES]
            );
        }
    }

    #[test]
    fn long_audio_uses_the_max_over_everything() {
        // 40 s: quiet for 30 s, loud after. The window holds only the quiet part, but the
        // floor (max - 8) comes from the loud part, as in whisper.transcribe.
        let n = 40 * 16_000;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let a = if i < 30 * 16_000 { 1e-4 } else { 0.5 };
                a * (i as f32 * 0.1).sin()
            })
            .collect();
        let front = LogMel::new(80).unwrap();
        let window = front.compute_padded_30s(&x);
        let trimmed = front.compute_padded_30s(&x[..30 * 16_000]);
        let lo_w = window.iter().cloned().fold(f32::INFINITY, f32::min);
        let lo_t = trimmed.iter().cloned().fold(f32::INFINITY, f32::min);
        assert!(
            lo_w > lo_t,
            "floor should rise with the louder audio: {lo_w} vs {lo_t}"
        );
    }

    #[test]
    fn silence_short_and_odd_inputs() {
        let front = LogMel::new(80).unwrap();
        // No audio: whisper gives -1.5 everywhere (log10(1e-10) = -10, (-10 + 4) / 4).
        let empty = front.compute_padded_30s(&[]);
        assert_eq!(empty.len(), 80 * N_FRAMES);
        assert!(empty.iter().all(|&v| v == -1.5));
        assert_eq!(front.compute(&[]).n_frames, 0);
        assert!(front.compute(&[]).data.is_empty());
        assert_eq!(front.compute(&[0.1; 159]).n_frames, 0);
        // Shorter than torch's reflect pad allows: still frames, finite values.
        for len in [1usize, 2, 160, 200, 201, 401] {
            let x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.3).sin()).collect();
            let mel = front.compute(&x);
            assert_eq!(mel.n_frames, len / HOP_LENGTH);
            assert!(mel.data.iter().all(|v| v.is_finite()), "len {len}");
        }
        // Non-finite input does not panic.
        let mut x = vec![0.25f32; 1600];
        x[100] = f32::NAN;
        x[200] = f32::INFINITY;
        let mel = front.compute(&x);
        assert_eq!(mel.n_frames, 10);
        let _ = front.compute_padded_30s(&x);
        assert!(LogMel::new(0).is_err());
        assert!(mel.get(80, 0).is_none() && mel.get(0, 10).is_none() && mel.row(80).is_none());
    }

    #[test]
    fn reflect_matches_numpy() {
        // numpy.pad(np.arange(5), 7, mode="reflect")
        let want = [1usize, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3];
        let got: Vec<usize> = (-7isize..12).map(|i| reflect(i, 5)).collect();
        assert_eq!(got, want);
    }
}
