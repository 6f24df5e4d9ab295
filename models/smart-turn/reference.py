#!/usr/bin/env python3
"""Standalone reference for smart-turn v3.2 (numpy + onnxruntime only, no transformers).

Re-implements what pipecat 1.14.0 does in LocalSmartTurnAnalyzerV3._predict_endpoint
(pipecat/audio/turn/smart_turn/local_smart_turn_v3.py) with its vendored Whisper front end
(pipecat/audio/turn/smart_turn/_whisper_features.py, itself a copy of
transformers.WhisperFeatureExtractor(chunk_length=8)). Written from the spec in NOTES.md; the
Rust port follows the same steps. Every step is float64 except where pipecat works in float32
(the waveform normalisation), so the features match pipecat's to ~1e-6.

    predict(audio_f32_16k) -> probability that the turn is complete (0..1, > 0.5 = complete)

Usage: reference.py MODEL.onnx [WAV16K_MONO]   (prints the probability for the last 8 s)
"""

import sys

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 8 * SAMPLE_RATE  # 128000 samples: the model sees the LAST 8 s, zeros at the START
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 80
N_FRAMES = 800  # 801 STFT frames (centred), the last one dropped
THRESHOLD = 0.5  # pipecat: complete iff probability > 0.5
INPUT = "input_features"  # float32 [batch, 80, 800]
OUTPUT = "logits"  # float32 [batch, 1]; despite the name, already a sigmoid probability


def _hz_to_mel(f):
    """Slaney mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    logstep = 27.0 / np.log(6.4)
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-300) / 1000.0) * logstep, 3.0 * f / 200.0)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), 200.0 * m / 3.0)


def mel_filters():
    """(80, 201) Slaney-normalised triangular filters, 0..8000 Hz, float64.

    Same numbers as librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (Whisper's
    mel_filters.npz) and transformers' mel_filter_bank(norm="slaney", mel_scale="slaney").
    """
    n_bins = N_FFT // 2 + 1
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, n_bins)  # bin k = k * 40 Hz
    mel_pts = np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2)
    hz_pts = _mel_to_hz(mel_pts)  # 82 edges
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]  # (82, 201)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (hz_pts[2 : N_MELS + 2] - hz_pts[:N_MELS])
    return w * enorm[:, None]


MEL = mel_filters()
# Periodic Hann (torch.hann_window(400) default): 0.5 - 0.5*cos(2*pi*n/400), n = 0..399
HANN = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)


def fit_window(audio):
    """Keep the last 8 s; shorter input is left-padded with zeros (speech ends at the window end)."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size >= WINDOW:
        return x[x.size - WINDOW :]
    return np.concatenate([np.zeros(WINDOW - x.size, dtype=np.float32), x])


def log_mel(window_f32):
    """(80, 800) float32 Whisper log-mel of exactly 128000 samples."""
    x = np.asarray(window_f32, dtype=np.float32)
    assert x.shape == (WINDOW,)
    # 1. zero-mean unit-variance over the whole padded window (zeros included), in float32
    #    like pipecat: (x - mean) / sqrt(var + 1e-7), var = population variance (ddof 0).
    x = (x - x.mean()) / np.sqrt(x.var() + np.float32(1e-7))
    # 2. centred STFT: reflect-pad 200 each side (numpy "reflect": no edge repeat),
    #    801 frames of 400 at hop 160, periodic Hann, |rfft|^2 -> (801, 201)
    xp = np.pad(x.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect")
    idx = np.arange(N_FRAMES + 1)[:, None] * HOP + np.arange(N_FFT)[None, :]
    power = np.abs(np.fft.rfft(xp[idx] * HANN, axis=-1)) ** 2
    # 3. mel, floor 1e-10, log10 -> (80, 801); drop the last frame -> (80, 800)
    lm = np.log10(np.maximum(MEL @ power.T, 1e-10))[:, :N_FRAMES]
    # 4. dynamic range 8 (i.e. 80 dB) below the window's max, then (x + 4) / 4
    lm = np.maximum(lm, lm.max() - 8.0)
    return ((lm + 4.0) / 4.0).astype(np.float32)


_sessions = {}


def session(model_path, threads=1):
    import onnxruntime as ort

    key = (model_path, threads)
    if key not in _sessions:
        so = ort.SessionOptions()  # pipecat's options
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        _sessions[key] = ort.InferenceSession(model_path, sess_options=so, providers=["CPUExecutionProvider"])
    return _sessions[key]


def predict(audio_f32_16k, model_path, threads=1):
    """Probability (0..1) that the speaker has finished the turn. Audio: float32 [-1, 1], 16 kHz."""
    feats = log_mel(fit_window(audio_f32_16k))[None]  # (1, 80, 800)
    out = session(model_path, threads).run([OUTPUT], {INPUT: feats})[0]
    return float(out[0, 0])


def read_wav16(path):
    """16-bit PCM mono 16 kHz WAV -> float32 (/32768, as pipecat converts int16)."""
    import wave

    with wave.open(path, "rb") as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    audio = read_wav16(sys.argv[2]) if len(sys.argv) > 2 else np.zeros(0, np.float32)
    p = predict(audio, sys.argv[1])
    print(f"{p:.6f} {'complete' if p > THRESHOLD else 'incomplete'}")
