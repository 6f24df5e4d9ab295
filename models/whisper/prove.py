#!/usr/bin/env python3
"""Proof that the ONNX package transcribes like the CTranslate2 model it was converted from.

For each espeak-ng sentence (en-us, resampled to 16 kHz mono with sox) it decodes greedily
  (a) with the ONNX package through onnxruntime (whisper_onnx.py: log-mel + a plain greedy
      loop over decoder.onnx with the KV cache), and
  (b) with faster-whisper loading the CTranslate2 folder (model.bin + config.json +
      tokenizer.json + vocabulary.txt), compute_type float32, beam 1, temperature 0,
      without timestamps, language en, no VAD, no conditioning on previous text,
and prints both texts and whether they agree exactly. Exit 1 if more than one sentence differs.

    prove.py --pkg PKG --ct2-dir DIR [--work DIR]
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whisper_onnx as wo  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pkg", required=True, help="the ONNX whisper package (folder with model.toml)")
    ap.add_argument("--ct2-dir", required=True, help="CTranslate2 model folder for faster-whisper")
    ap.add_argument("--work", help="where the wav files go (default: a temporary folder)")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()

    from faster_whisper import WhisperModel

    work = a.work or tempfile.mkdtemp(prefix="lalm-whisper-proof-")
    os.makedirs(work, exist_ok=True)
    onnx_model = wo.WhisperOnnx(a.pkg, threads=a.threads)
    fw = WhisperModel(a.ct2_dir, device="cpu", compute_type="float32", cpu_threads=a.threads)
    agree = 0
    t_onnx = t_fw = 0.0
    for i, sentence in enumerate(wo.SENTENCES):
        wav = wo.speak(sentence, os.path.join(work, f"s{i:02d}.wav"))
        audio = wo.read_wav(wav)
        t0 = time.perf_counter()
        text_onnx, _ = onnx_model.greedy(audio)
        t1 = time.perf_counter()
        segments, _ = fw.transcribe(audio, language="en", task="transcribe", beam_size=1, best_of=1,
                                    temperature=0.0, without_timestamps=True, vad_filter=False,
                                    condition_on_previous_text=False)
        text_fw = "".join(s.text for s in segments)
        t2 = time.perf_counter()
        t_onnx += t1 - t0
        t_fw += t2 - t1
        same = wo.normalize_space(text_onnx) == wo.normalize_space(text_fw)
        agree += same
        print(f"[{i + 1}/{len(wo.SENTENCES)}] said:   {sentence}")
        print(f"       onnx:   {wo.normalize_space(text_onnx)}")
        print(f"       ct2/fw: {wo.normalize_space(text_fw)}")
        print(f"       {'AGREE' if same else 'DIFFER'}  ({len(audio) / 16000:.2f} s audio, onnx {t1 - t0:.2f} s, "
              f"faster-whisper {t2 - t1:.2f} s)", flush=True)
    n = len(wo.SENTENCES)
    print(f"agreement: {agree}/{n} sentences identical (onnx {t_onnx:.1f} s, faster-whisper {t_fw:.1f} s in all)")
    ok = agree >= n - 1
    print("proof", "PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
