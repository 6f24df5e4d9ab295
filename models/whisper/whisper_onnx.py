"""Run a gst-lalm `whisper` ONNX package with onnxruntime and numpy only: log-mel features,
greedy decoding with the KV cache, and text decoding from tokenizer.json (byte-level BPE).

Used by prove.py (the faithfulness proof), quantize.py (the int8 check) and selfcheck.py.
"""

import json
import os
import re
import subprocess
import tempfile
import wave

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_FRAMES = 3000

# The proof sentences (espeak-ng en-us); words a 74M-parameter model gets right on TTS speech.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please turn off the lights in the kitchen before you leave.",
    "The weather today is sunny with a light breeze from the west.",
    "My phone number is on the card in the top drawer.",
    "We will meet at the train station tomorrow morning.",
    "Reading books is a wonderful way to spend a quiet evening.",
    "Can you tell me how to get to the nearest hospital?",
    "The children played football in the park after school.",
    "She bought three apples and a loaf of bread at the market.",
    "Remember to water the plants every week during the summer.",
]


# ----- audio ------------------------------------------------------------------------------

def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2, "expect 16-bit PCM"
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    assert rate == SAMPLE_RATE, f"{path}: {rate} Hz, expected {SAMPLE_RATE}"
    return x


def speak(text, path, voice="en-us"):
    """espeak-ng -> 16 kHz mono 16-bit wav via sox."""
    with tempfile.TemporaryDirectory() as td:
        raw = os.path.join(td, "raw.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-w", raw, text], check=True)
        subprocess.run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", path], check=True)
    return path


def hz_to_mel(f):  # Slaney (librosa htk=False)
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(n_mels=80, sr=SAMPLE_RATE, n_fft=N_FFT):
    """librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm='slaney')."""
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio, n_mels=80):
    """Whisper log-mel of up to 30 s of 16 kHz audio -> [n_mels, 3000] float32.

    Same steps as faster-whisper's FeatureExtractor + pad_or_trim (what the proof compares
    against): 160 zero samples appended, centered STFT (reflect padding, periodic Hann 400,
    hop 160), power spectrum, last frame dropped, Slaney mel, log10(max(x, 1e-10)),
    max(x, x.max() - 8), (x + 4) / 4, the content frames kept (frames - 1) and zero-padded to
    3000 frames. (OpenAI's whisper instead appends 30 s of zero audio before the log, so its
    padding frames hold the clamp value instead of 0; both decode the same on clean speech.)
    """
    x = np.pad(np.asarray(audio, np.float32), (0, HOP))
    x = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    spec = np.fft.rfft(frames * window, axis=1).astype(np.complex64)
    power = (np.abs(spec) ** 2).T[:, :-1]  # [201, n-1]
    mel = mel_filters(n_mels) @ power
    logs = np.log10(np.maximum(mel, 1e-10))
    logs = np.maximum(logs, logs.max() - 8.0)
    logs = (logs + 4.0) / 4.0
    logs = logs[:, :max(logs.shape[1] - 1, 0)]  # content frames, as faster-whisper
    if logs.shape[1] >= N_FRAMES:
        return logs[:, :N_FRAMES].astype(np.float32)
    return np.pad(logs, ((0, 0), (0, N_FRAMES - logs.shape[1]))).astype(np.float32)


# ----- tokenizer (decode only) -------------------------------------------------------------

def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Tokenizer:
    def __init__(self, path):
        tok = json.load(open(path, encoding="utf-8"))
        self.id_to_token = {i: t for t, i in tok["model"]["vocab"].items()}
        for t in tok.get("added_tokens", []):
            self.id_to_token[t["id"]] = t["content"]
        self.byte_decoder = _bytes_to_unicode()

    def decode(self, ids, eot=50257):
        """Text of the text tokens (ids below eot), as tokenizers' ByteLevel decoder gives it."""
        s = "".join(self.id_to_token[i] for i in ids if i < eot)
        return bytes(self.byte_decoder[c] for c in s).decode("utf-8", errors="replace")


# ----- the model -----------------------------------------------------------------------------

def read_manifest(pkg):
    """The few manifest values this runner needs (tomllib is in Python 3.11)."""
    import tomllib
    with open(os.path.join(pkg, "model.toml"), "rb") as fh:
        return tomllib.load(fh)


class WhisperOnnx:
    def __init__(self, pkg, threads=0):
        import onnxruntime as ort
        self.pkg = pkg
        self.m = read_manifest(pkg)
        self.p = self.m["params"]
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        files = self.m["files"]
        self.enc = ort.InferenceSession(os.path.join(pkg, files["encoder"]), so, providers=["CPUExecutionProvider"])
        self.dec = ort.InferenceSession(os.path.join(pkg, files["decoder"]), so, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer(os.path.join(pkg, files["tokenizer"]))

    def encode(self, mel):
        k, v = self.enc.run(["n_layer_cross_k", "n_layer_cross_v"], {"mel": mel[None] if mel.ndim == 2 else mel})
        return k, v

    def greedy(self, audio, max_tokens=224, language_token=None):
        """Greedy decoding without timestamps (like faster-whisper / CTranslate2 with beam 1,
        temperature 0, suppress_blank, suppress_tokens=[-1]). Returns (text, token ids)."""
        p = self.p
        cross_k, cross_v = self.encode(log_mel(audio, p["n_mels"]))
        L, C, D = p["n_text_layer"], p["n_text_ctx"], p["d_model"]
        kc = np.zeros((L, 1, C, D), np.float32)
        vc = np.zeros((L, 1, C, D), np.float32)
        prompt = [p["sot"], language_token or p["lang_en"], p["transcribe"], p["no_timestamps"]]
        suppress = set(p["suppress_tokens"]) | {p["transcribe"], p["translate"], p["sot"], p["sot_prev"],
                                                p["sot_lm"], p["no_speech"]}
        suppress = np.array(sorted(suppress), np.int64)
        begin = np.array(p.get("suppress_tokens_begin", [220, p["eot"]]), np.int64)
        tokens, out, offset = prompt, [], 0
        for step in range(min(max_tokens, C - len(prompt))):
            logits, kc, vc = self.dec.run(None, {
                "tokens": np.array([tokens], np.int64), "in_n_layer_self_k_cache": kc,
                "in_n_layer_self_v_cache": vc, "n_layer_cross_k": cross_k, "n_layer_cross_v": cross_v,
                "offset": np.array([offset], np.int64)})
            offset += len(tokens)
            lg = logits[0, -1].copy()
            lg[suppress] = -np.inf
            if step == 0:
                lg[begin] = -np.inf
            nxt = int(np.argmax(lg))
            if nxt == p["eot"]:
                break
            out.append(nxt)
            tokens = [nxt]
        return self.tok.decode(out, p["eot"]).strip(), out


def normalize_space(s):
    return re.sub(r"\s+", " ", s).strip()
