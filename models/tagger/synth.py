#!/usr/bin/env python3
"""Synthesize labelled clips for the lalm sound-event tagger (16 kHz mono float32).

Classes (multi-label): alarm, siren, phone, doorbell, speech, music; negatives carry no label.
Every clip is CLIP_S seconds: a background (noise of several kinds, hum, fan, clicks, silence)
with zero, one or two foreground sources mixed in at a random SNR, then optional reverb
(sox), telephone band (sox) and a random overall gain. Each foreground keeps a per-class
activity track at 10 ms resolution (HOP samples); windows are cut from clips later and a class
is "present" in a window when its activity covers >= 0.15 s (training) / >= 0.3 s (eval).

Activity is where the sound is actually heard: beep-on time for beeping patterns, with short
intra-pattern gaps (<= 0.5 s) closed so that a smoke-alarm T3 pattern counts as one sound but
its 1.5 s pause does not; envelope above -40 dB of the note peak and above -10 dB re the background for decaying bells,
-30 dB for music notes; an
energy gate for speech (gaps <= 0.3 s closed).

Library use: `make_clip(rng, kind, speech_pool)` -> (audio, activity[6, n_hop]).
CLI: python synth.py --split train|eval [--clips N] builds the split and caches it under
~/.cache/lalm/tagger-data/ (features are computed by train.py; this file only makes audio).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import wave
from multiprocessing import Pool

import numpy as np
from scipy.signal import lfilter, resample_poly, butter, sosfilt

SR = 16000
HOP = 160  # activity resolution (10 ms), equals the STFT hop
CLIP_S = 6.0
CLIP_N = int(SR * CLIP_S)
LABELS = ["alarm", "siren", "phone", "doorbell", "speech", "music"]
L = {n: i for i, n in enumerate(LABELS)}
CACHE = os.path.join(os.path.expanduser(os.environ.get("LALM_CACHE_DIR", "~/.cache/lalm")), "tagger-data")
SYNTH_VERSION = "8"  # bump when the synthesis changes (part of the cache key)
SPEECH_VERSION = "6"  # espeak utterance pool (unchanged since v6)

SEEDS = {"train": 1000, "eval": 9000000}
SENT_SEEDS = {"train": 11, "eval": 77}


# ----------------------------------------------------------------------------- helpers
def db(x):
    return 10.0 ** (x / 20.0)


def tone(phase, harm="sine", fmax=None, rng=None):
    """Band-limited periodic waveform from an instantaneous phase (radians)."""
    if harm == "sine":
        return np.sin(phase)
    if harm == "harm":  # sine plus weak 2nd/3rd harmonics (electronic sirens, speakers)
        a2, a3 = rng.uniform(0.05, 0.5), rng.uniform(0.0, 0.25) * (rng.random() < 0.6)
        out = np.sin(phase) + a2 * np.sin(2 * phase + rng.uniform(0, 6.3))
        if 3 * fmax < 7600:
            out = out + a3 * np.sin(3 * phase + rng.uniform(0, 6.3))
        return out / (np.max(np.abs(out)) + 1e-9)
    out = np.zeros_like(phase)
    nyq_h = int(7600 / max(fmax, 1.0))
    for k in range(1, max(nyq_h, 1) + 1):
        if harm == "square" and k % 2 == 0:
            continue
        if harm == "tri":
            if k % 2 == 0:
                continue
            out += ((-1) ** ((k - 1) // 2)) * np.sin(k * phase) / (k * k)
        else:
            out += np.sin(k * phase) / k
    return out / (np.max(np.abs(out)) + 1e-9)


def const_phase(f, n, rng):
    return 2 * np.pi * f * np.arange(n) / SR + rng.uniform(0, 2 * np.pi)


def ramp_gate(gate, ms=4.0):
    """Smooth a 0/1 gate with short linear ramps (avoids clicks)."""
    k = max(1, int(SR * ms / 1000))
    if k <= 1:
        return gate
    w = np.ones(k) / k
    return np.convolve(gate, w, mode="same")


def pattern_gate(n, segments, cycle, phase0):
    """segments: list of (start, dur) inside a cycle of `cycle` s, repeated; starts at phase0 s."""
    t = (np.arange(n) / SR + phase0) % cycle
    g = np.zeros(n)
    for s, d in segments:
        g[(t >= s) & (t < s + d)] = 1.0
    return g


def activity_from_gate(g, close_s=0.0):
    """Per-hop activity (fraction of the hop that is on), with gaps <= close_s closed."""
    nh = len(g) // HOP
    a = g[: nh * HOP].reshape(nh, HOP).mean(1) > 0.5
    if close_s > 0:
        k = int(round(close_s * SR / HOP))
        idx = np.flatnonzero(a)
        if len(idx) > 1:
            gaps = np.diff(idx)
            for i in np.flatnonzero((gaps > 1) & (gaps <= k + 1)):
                a[idx[i]:idx[i + 1]] = True
    return a.astype(np.float32)


def activity_from_env(x, rel_db=-25.0, close_s=0.0, abs_floor=None):
    nh = len(x) // HOP
    p = (x[: nh * HOP].reshape(nh, HOP) ** 2).mean(1)
    thr = p.max() * db(rel_db) ** 2
    if abs_floor is not None:
        thr = max(thr, abs_floor)
    g = np.repeat((p > thr).astype(float), HOP)
    return activity_from_gate(g, close_s)


def sox_pipe(x, effects):
    cmd = ["sox", "-q", "-t", "f32", "-r", str(SR), "-c", "1", "-", "-t", "f32", "-"] + effects
    r = subprocess.run(cmd, input=x.astype(np.float32).tobytes(), capture_output=True, check=True)
    y = np.frombuffer(r.stdout, dtype=np.float32).astype(np.float64)
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    return y[: len(x)]


# ----------------------------------------------------------------------------- foregrounds
_LAST = {}  # variant of the last generated event (for the eval breakdown)


def gen_alarm(rng, n, variant=None, start=False):
    v = rng.choice(["t3", "t4", "generic", "generic", "clock"]) if variant is None else variant
    _LAST["variant"] = str(v)
    f = rng.uniform(2900, 3500) if v in ("t3", "t4") else rng.uniform(1500, 4500)
    harm = rng.choice(["sine", "square", "sine", "harm"]) if v in ("t3", "t4") else rng.choice(["sine", "square", "harm"])
    sc = rng.uniform(0.93, 1.07)  # timing jitter of the device
    if v == "t3":
        segs, cyc = [(0, .5 * sc), (1 * sc, .5 * sc), (2 * sc, .5 * sc)], 4.0 * sc
    elif v == "t4":
        segs = [(i * .2 * sc, .1 * sc) for i in range(4)]
        cyc = 0.8 * sc + rng.uniform(1.0, 5.0)
    elif v == "generic":
        b, gp = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4)
        segs, cyc = [(0, b)], b + gp
    else:  # alarm clock: k beeps then a pause
        b, gp, k = rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.12), int(rng.integers(2, 6))
        segs = [(i * (b + gp), b) for i in range(k)]
        cyc = k * (b + gp) + rng.uniform(0.3, 0.5)
    phase0 = 0.0 if (start or rng.random() < 0.6) else rng.uniform(0, cyc)
    gate = pattern_gate(n, segs, cyc, phase0)
    if v == "clock" and rng.random() < 0.5:  # two-frequency alarm clock
        f2 = f * rng.uniform(0.8, 0.95)
        x = np.where((np.arange(n) // int(SR * 0.5)) % 2 == 0,
                     tone(const_phase(f, n, rng), harm, f, rng), tone(const_phase(f2, n, rng), harm, f2, rng))
    else:
        x = tone(const_phase(f, n, rng), harm, f, rng)
    x = x * ramp_gate(gate, rng.uniform(1, 6))
    return x, {L["alarm"]: activity_from_gate(gate, 0.5)}


def gen_siren(rng, n, variant=None, start=False):
    v = rng.choice(["wail", "yelp", "hilo"]) if variant is None else variant
    _LAST["variant"] = str(v)
    t = np.arange(n) / SR
    if v in ("wail", "yelp"):
        lo, hi = rng.uniform(450, 750), rng.uniform(1150, 1700)
        per = rng.uniform(2, 6) if v == "wail" else rng.uniform(0.15, 0.4)
        ph = (t / per + rng.uniform(0, 1)) % 1.0
        r = rng.random()
        if r < 0.4:
            shape = 0.5 - 0.5 * np.cos(2 * np.pi * ph)  # smooth up/down
        elif r < 0.85:
            up = rng.uniform(0.35, 0.85)  # linear up/down, symmetric or asymmetric (mechanical sirens)
            shape = np.where(ph < up, ph / up, (1 - ph) / (1 - up))
        else:  # rising ramp with a fast reset (sawtooth yelp / whoop)
            up = rng.uniform(0.9, 0.99)
            shape = np.where(ph < up, ph / up, (1 - ph) / (1 - up))
        f = lo + (hi - lo) * shape
        fmax = hi
    else:
        lo = rng.uniform(380, 720)
        hi = lo * rng.uniform(1.15, 1.6)
        d = rng.uniform(0.35, 0.8)
        sel = ((t / d + rng.integers(0, 2)) // 1) % 2
        f = np.where(sel == 0, lo, hi)
        f = np.convolve(f, np.ones(40) / 40, mode="same")  # a few ms glide
        fmax = hi
    phase = 2 * np.pi * np.cumsum(f) / SR + rng.uniform(0, 6.3)
    harm = rng.choice(["sine", "harm", "harm", "square", "saw"])
    x = tone(phase, harm, fmax, rng)
    if rng.random() < 0.3:  # Doppler-ish slow amplitude change
        x *= 0.6 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(3, 10) + rng.uniform(0, 6.3))
    # onset fade-in 1-30 ms (abrupt electronic start ... soft), short fade-out
    fi, fo = int(SR * rng.uniform(0.001, 0.03)), int(SR * rng.uniform(0.005, 0.05))
    x[:fi] *= np.linspace(0, 1, fi)
    x[n - fo:] *= np.linspace(1, 0, fo)
    gate = np.ones(n)
    return x, {L["siren"]: activity_from_gate(gate)}


def gen_phone(rng, n, variant=None, start=False):
    v = rng.choice(["na", "uk", "trill", "trill"]) if variant is None else variant
    _LAST["variant"] = str(v)
    off = rng.uniform(0.98, 1.02)
    t = np.arange(n) / SR
    if v in ("na", "uk"):
        fa, fb = (440, 480) if v == "na" else (400, 450)
        x = 0.5 * (np.sin(2 * np.pi * fa * off * t + rng.uniform(0, 6)) + np.sin(2 * np.pi * fb * off * t + rng.uniform(0, 6)))
        if v == "na":
            on = rng.uniform(1.8, 2.2)
            segs, cyc = [(0, on)], on + rng.uniform(3.5, 4.5)
        else:
            segs, cyc = [(0, .4), (.6, .4)], 3.0
        close = 0.25
    else:
        f1 = rng.uniform(1000, 1700)
        f2 = min(f1 * rng.uniform(1.12, 1.45), 2300)
        rate = rng.uniform(10, 25)
        sel = ((t * rate) // 1) % 2 == 0
        ph1, ph2 = const_phase(f1, n, rng), const_phase(f2, n, rng)
        harm = rng.choice(["sine", "square", "sine", "harm"])
        x = np.where(sel, tone(ph1, harm, f1, rng), tone(ph2, harm, f2, rng))
        x = x * ramp_gate(np.ones(n), 1.0)
        if rng.random() < 0.5:
            b = rng.uniform(1.0, 2.0)
            segs, cyc = [(0, b)], b + rng.uniform(1.0, 4.0)
        else:
            b = rng.uniform(0.35, 0.8)
            segs, cyc = [(0, b), (b + .2, b)], 2 * b + .2 + rng.uniform(1.0, 3.0)
        close = 0.25
    phase0 = 0.0 if (start or rng.random() < 0.6) else rng.uniform(0, cyc)
    gate = pattern_gate(n, segs, cyc, phase0)
    x = x * ramp_gate(gate, 5.0)
    return x, {L["phone"]: activity_from_gate(gate, close)}


def bell_note(rng, f, n_tot, start, t60, partials, cut_s=None):
    """A decaying bell/chime note added at sample `start`."""
    x = np.zeros(n_tot)
    if start >= n_tot:
        return x
    m = n_tot - start
    t = np.arange(m) / SR
    y = np.zeros(m)
    for ratio, amp, dec in partials:
        fr = f * ratio
        if fr > 7600:
            continue
        tau = t60 * dec / 6.9
        y += amp * np.exp(-t / tau) * np.sin(2 * np.pi * fr * t + rng.uniform(0, 6.3))
    att = np.minimum(1.0, t / rng.uniform(0.001, 0.006))
    if cut_s is not None:  # electronic chime: the note is gated off (abrupt or short release)
        rel = rng.uniform(0.0, 0.05)
        att = att * np.clip((cut_s + rel - t) / max(rel, 1e-3), 0, 1)
    x[start:] = y * att
    return x


def gen_doorbell(rng, n, variant=None, start=False):
    v = rng.choice(["dingdong", "dingdong", "chime", "chime", "ding"]) if variant is None else variant
    _LAST["variant"] = str(v)
    if rng.random() < 0.6:  # tubular / chime bar / electronic chime: near-harmonic 1, 2, 3
        partials = [(1, 1, 1), (2.0 * rng.uniform(0.995, 1.005), rng.uniform(.1, .7), rng.uniform(.4, 1.0)),
                    (3.0 * rng.uniform(0.99, 1.01), rng.uniform(0, .4), rng.uniform(.3, 1.0))]
    else:  # bell-like inharmonic partials
        partials = [(1, 1, 1), (2.76, rng.uniform(.1, .4), .4), (5.40, rng.uniform(0, .2), .25), (0.5, rng.uniform(0, .15), 1.2)]
    t60 = rng.uniform(0.8, 2.2) if rng.random() < 0.5 else rng.uniform(2.2, 5.5)  # up to long-ringing bars
    cut = rng.random() < 0.35  # notes gated off after a fixed time (electronic chimes)
    if v == "dingdong":
        f1 = rng.uniform(500, 900)
        freqs = [f1, f1 * rng.choice([0.8, 0.794, 0.75, 0.84])]
        gaps = [rng.uniform(0.3, 1.5)]
    elif v == "chime":
        base = rng.uniform(330, 700)
        seq = [[5, 4, 3, 0], [3, 5, 4, 0], [0, 4, 2, 3], [5, 3, 4, 0], [0, 2, 4]][rng.integers(0, 5)]
        scale = [1, 9 / 8, 5 / 4, 4 / 3, 3 / 2, 5 / 3]
        if rng.random() < 0.4:  # other 3-5 note tunes: a random walk on the scale
            seq = list(np.clip(np.cumsum(rng.integers(-2, 3, int(rng.integers(3, 6)))) + int(rng.integers(0, 6)), 0, 5))
        freqs = [base * scale[i] for i in seq]
        g = rng.uniform(0.3, 0.8)
        gaps = [g] * (len(freqs) - 1)
    else:
        freqs, gaps = [rng.uniform(500, 1000)], []
    starts = np.concatenate([[0.0], np.cumsum(gaps)])
    onset = 0 if (start or rng.random() < 0.7) else int(rng.uniform(0, 1.5) * SR)
    reps = [0.0]
    if rng.random() < 0.45:  # pressed again
        reps.append(starts[-1] + rng.uniform(0.8, 3.0))
    x = np.zeros(n)
    acts = np.zeros(n // HOP, dtype=np.float32)
    for r in reps:
        for f, s in zip(freqs, starts):
            st = onset + int((r + s) * SR)
            note = bell_note(rng, f * rng.uniform(0.995, 1.005), n, st, t60, partials,
                             rng.uniform(0.8, 2.0) if cut else None)
            x += note
            if np.any(note):
                acts = np.maximum(acts, activity_from_env(note, -40.0))
    return x, {L["doorbell"]: acts}


def karplus(rng, f, m):
    p = max(2, int(round(SR / f)))
    buf = rng.uniform(-1, 1, p)
    buf = np.convolve(buf, [0.5, 0.5], mode="same") if rng.random() < 0.5 else buf
    out = np.zeros(m)
    decay = rng.uniform(0.985, 0.998)
    i = 0
    while i < m:
        k = min(p, m - i)
        out[i:i + k] = buf[:k]
        buf = decay * 0.5 * (buf + np.roll(buf, 1))
        i += p
    return out


def synth_note(rng, inst, f, dur, m):
    t = np.arange(m) / SR
    if inst == "pluck":
        return karplus(rng, f, m) * np.exp(-t / max(dur, 0.2) / 2)
    ph = 2 * np.pi * f * t + rng.uniform(0, 6.3)
    w = tone(ph, {"sine": "sine", "square": "square", "tri": "tri", "saw": "saw", "organ": "sine"}[inst], f)
    if inst == "organ":
        w = w + 0.5 * np.sin(2 * ph) + 0.3 * np.sin(3 * ph) if 3 * f < 7600 else w
    a, r = 0.01, min(0.08, dur * 0.3)
    env = np.clip(t / a, 0, 1) * np.clip((dur - t) / r, 0, 1) * (0.7 + 0.3 * np.exp(-t / 0.15))
    return w * env


def drum(rng, kind, m):
    t = np.arange(m) / SR
    if kind == "kick":
        f = 50 + 100 * np.exp(-t / 0.03)
        return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / 0.12)
    nz = rng.standard_normal(m)
    if kind == "hat":
        nz = np.diff(np.diff(nz, prepend=0), prepend=0)
        return 0.3 * nz * np.exp(-t / 0.02)
    sn = nz * np.exp(-t / 0.06) + 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
    return 0.6 * sn


def gen_music(rng, n):
    bpm = rng.uniform(70, 170)
    beat = 60.0 / bpm
    key = 110 * 2 ** (rng.integers(0, 12) / 12)
    major = rng.random() < 0.6
    scale = [0, 2, 4, 5, 7, 9, 11] if major else [0, 2, 3, 5, 7, 8, 10]
    prog = [[0, 4, 5, 3], [0, 3, 4, 4], [0, 5, 3, 4], [5, 3, 0, 4]][rng.integers(0, 4)]
    insts = ["pluck", "pluck", "sine", "square", "tri", "saw", "organ"]
    lead, pad = rng.choice(insts), rng.choice(insts)
    style = rng.choice(["arp", "chords", "melody", "melody_chords"])
    x = np.zeros(n + SR)
    t = 0.0
    bar = 0
    sub = rng.choice([0.5, 0.25, 1.0]) if style != "chords" else 1.0

    def semi(deg, octv=0):
        return key * 2 ** ((scale[deg % 7] + 12 * (deg // 7) + 12 * octv) / 12)

    n_total = n / SR
    while t < n_total:
        root = prog[bar % 4]
        chord = [root, root + 2, root + 4]
        bar_t = t
        if style in ("chords", "melody_chords"):
            for b in range(4):
                st = int((bar_t + b * beat) * SR)
                dur = beat * rng.uniform(0.6, 1.0)
                m = int(dur * SR) + 1
                for d in chord:
                    note = synth_note(rng, pad, semi(d, 1), dur, m) * 0.35
                    x[st:st + m] += note[: len(x) - st] if st < len(x) else 0
        if style in ("arp", "melody", "melody_chords"):
            steps = int(round(4 / sub))
            deg = chord[0] + 7
            for s in range(steps):
                st = int((bar_t + s * sub * beat) * SR)
                if style == "arp":
                    d = chord[s % 3] + 7 * (1 + (s // 3) % 2)
                else:
                    deg = int(np.clip(deg + rng.integers(-2, 3), 3, 16))
                    d = deg
                    if rng.random() < 0.15:
                        continue  # rest
                dur = sub * beat * rng.uniform(0.5, 1.0)
                m = int(dur * SR * (2 if lead == "pluck" else 1)) + 1
                note = synth_note(rng, lead, semi(d, 1), dur, m) * 0.5
                if st < len(x):
                    x[st:st + m] += note[: len(x) - st]
        if rng.random() < 0.7:  # bass
            st = int(bar_t * SR)
            m = int(beat * 2 * SR)
            x[st:st + m] += synth_note(rng, rng.choice(["sine", "tri", "pluck"]), semi(root, -1), beat * 2, m)[: max(0, len(x) - st)] * 0.5
        t += 4 * beat
        bar += 1
    if rng.random() < 0.5:  # noise-based drum beat
        for b in range(int(n_total / beat * 2) + 1):
            st = int(b * beat / 2 * SR)
            if st >= len(x):
                break
            m = min(int(0.3 * SR), len(x) - st)
            if b % 4 == 0:
                x[st:st + m] += drum(rng, "kick", m)
            elif b % 4 == 2:
                x[st:st + m] += drum(rng, "snare", m)
            x[st:st + m] += drum(rng, "hat", m) * (1 if rng.random() < 0.8 else 0)
    x = x[:n]
    return x, {L["music"]: activity_from_env(x, -30.0, close_s=0.5)}


# ----------------------------------------------------------------------------- speech
WORDS = {
    "subj": "the driver|my neighbour|a small child|the old teacher|our manager|the engineer|his sister|the nurse|"
            "a tall man|the waiter|my friend|the pilot|every student|the doctor|her uncle|the farmer|a young woman|"
            "the reporter|the captain|my brother|the baker|the painter|a stranger|the team|the mayor|your cousin|"
            "the guard|the singer|a tourist|the librarian|the plumber|the chef|the coach|my mother|the kids".split("|"),
    "verb": "carried|found|opened|painted|cleaned|sold|bought|fixed|lost|moved|watched|described|remembered|"
            "ordered|delivered|forgot|borrowed|covered|checked|measured|counted|folded|wrapped|visited|explained|"
            "answered|repaired|noticed|packed|signed|printed|returned|tested|planted|cooked".split("|"),
    "obj": "the blue box|a heavy table|three letters|the new computer|an old bicycle|the kitchen window|some fresh bread|"
           "the garden gate|a broken chair|the long report|two tickets|the red car|a warm blanket|the paper map|"
           "her favourite book|the small radio|a glass of water|the wooden door|the train schedule|six apples|"
           "the winter coat|a bag of rice|the phone bill|the front steps|a silver key|the yellow tent|the piano".split("|"),
    "adv": "yesterday|this morning|after lunch|before the meeting|last week|on monday|in the evening|at noon|"
           "during the storm|very carefully|without a word|in a hurry|twice|again|near the station|by the river|"
           "at the office|in the park|after the game|before dinner|quite slowly|on the way home|at midnight".split("|"),
    "q": "did you see|have you heard about|do you remember|can you bring|where did you put|who moved|why is|"
         "could you check|would you like|how much is|when will we get".split("|"),
    "x": "well|so|actually|okay|listen|you know|honestly|look|right|anyway|by the way|of course|".split("|"),
}
VOICES = ["en-us", "en", "en-gb-x-rp", "en+f3", "en+m3", "en+f2", "en+m1", "en-us+f4", "en-gb-scotland",
          "en-029", "en+m7", "en-us+m2", "en+f5", "en-gb-x-gbclan", "en+klatt", "en-us+steph", "en+m5", "en+f1"]


def make_sentences(seed, count, exclude=()):
    rng = np.random.default_rng(seed)
    out, seen = [], set(exclude)
    while len(out) < count:
        c = lambda k: WORDS[k][rng.integers(0, len(WORDS[k]))]
        r = rng.random()
        if r < 0.45:
            s = f"{c('x')} {c('subj')} {c('verb')} {c('obj')} {c('adv')}."
        elif r < 0.7:
            s = f"{c('q')} {c('obj')} {c('adv')}?"
        elif r < 0.9:
            s = f"{c('subj')} {c('verb')} {c('obj')}, and {c('subj')} {c('verb')} {c('obj')}."
        else:
            s = f"{c('adv')}, {c('subj')} {c('verb')} {c('obj')} and {c('obj')}."
        s = " ".join(s.split()).capitalize()
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def espeak(text, voice, speed, pitch):
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", "150", "-w", f.name, text],
                       check=True, capture_output=True)
        with wave.open(f.name) as w:
            sr = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64) / 32768
    if sr != SR:
        g = np.gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g)
    return x


def _speech_job(args):
    text, voice, speed, pitch = args
    return espeak(text, voice, speed, pitch)


def speech_pool(split, count, workers=2):
    """A pool of espeak utterances; eval sentences are disjoint from train sentences."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"speech-{split}-{count}-v{SPEECH_VERSION}.npz")
    if os.path.exists(path):
        d = np.load(path)
        return [d[f"u{i}"] for i in range(len(d.files))]
    other = "eval" if split == "train" else "train"
    excl = make_sentences(SENT_SEEDS[other], 1200 if other == "train" else 300)
    sents = make_sentences(SENT_SEEDS[split], count, exclude=excl)
    rng = np.random.default_rng(SENT_SEEDS[split] + 1)
    jobs = [(s, VOICES[rng.integers(0, len(VOICES))], int(rng.integers(130, 191)), int(rng.integers(30, 71))) for s in sents]
    with Pool(workers) as p:
        utts = p.map(_speech_job, jobs, chunksize=8)
    np.savez(path, **{f"u{i}": u.astype(np.float32) for i, u in enumerate(utts)})
    return utts


def gen_speech(rng, n, pool):
    x = np.zeros(n)
    pos = 0 if rng.random() < 0.6 else int(rng.uniform(0, 0.5) * SR)
    while pos < n:
        u = pool[rng.integers(0, len(pool))]
        # trim espeak's leading/trailing silence
        nz = np.flatnonzero(np.abs(u) > 1e-3)
        if len(nz):
            u = u[nz[0]:nz[-1] + 1]
        u = u / (np.max(np.abs(u)) + 1e-9) * db(rng.uniform(-4, 0))
        m = min(len(u), n - pos)
        x[pos:pos + m] += u[:m]
        pos += m + int(rng.uniform(0.15, 0.9) * SR)
    return x, {L["speech"]: activity_from_env(x, -35.0, close_s=0.3)}


# ----------------------------------------------------------------------------- backgrounds
def colored_noise(rng, n, alpha):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    spec *= f ** (-alpha / 2)
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-12)


def gen_background(rng, n):
    kind = rng.choice(["white", "pink", "brown", "colored", "hum", "fan", "clicks", "mix", "mix", "silence", "lowlevel"],
                      p=[.09, .12, .09, .1, .08, .12, .08, .2, .0, .06, .06])
    if kind == "silence":
        return np.zeros(n), kind
    parts = []
    kinds = [kind] if kind != "mix" else list(rng.choice(["pink", "brown", "hum", "fan", "clicks", "white", "colored"], 2, replace=False))
    for k in kinds:
        if k in ("white", "pink", "brown", "colored", "lowlevel"):
            a = {"white": 0, "pink": 1, "brown": 2, "colored": rng.uniform(0, 2.2), "lowlevel": rng.uniform(0, 2)}[k]
            y = colored_noise(rng, n, a)
        elif k == "hum":
            f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.995, 1.005)
            t = np.arange(n) / SR
            y = sum(rng.uniform(0.05, 1) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) for h in range(1, 12))
            y = y + colored_noise(rng, n, 1) * rng.uniform(0.01, 0.2)
            y /= np.std(y)
        elif k == "fan":
            y = colored_noise(rng, n, rng.uniform(0.5, 1.5))
            lo = rng.uniform(60, 400)
            hi = min(lo * rng.uniform(3, 20), 7000)
            y = sosfilt(butter(2, [lo, hi], btype="band", fs=SR, output="sos"), y)
            if rng.random() < 0.5:  # blade-pass tone
                bp = rng.uniform(80, 400)
                y = y / np.std(y) + rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * bp * np.arange(n) / SR)
            y /= np.std(y)
        elif k == "clicks":
            y = np.zeros(n)
            rate = rng.uniform(2, 12)
            for s in np.cumsum(rng.exponential(1 / rate, int(rate * n / SR * 2) + 1)):
                st = int(s * SR)
                if st >= n:
                    break
                m = min(int(rng.uniform(0.005, 0.025) * SR), n - st)
                burst = rng.standard_normal(m) * np.exp(-np.arange(m) / (m / 4))
                y[st:st + m] += burst * rng.uniform(0.3, 1)
            y = lfilter([1, -rng.uniform(0, 0.95)], [1], y)
            y = y / (np.std(y) + 1e-9) + 0.02 * colored_noise(rng, n, 1)
        parts.append(y * db(rng.uniform(-6, 0)))
    y = sum(parts)
    y /= np.std(y) + 1e-12
    return y, kind


# ----------------------------------------------------------------------------- clips
EVENT_GENS = {"alarm": gen_alarm, "siren": gen_siren, "phone": gen_phone, "doorbell": gen_doorbell}
CLIP_KINDS = (["alarm", "siren", "phone", "doorbell", "alarm", "phone", "doorbell"], 0.52), (["speech"], 0.14), (["music"], 0.10), (["noise"], 0.10), (["overlap"], 0.14)


def gen_fg(rng, name, n, pool):
    if name in EVENT_GENS:
        return EVENT_GENS[name](rng, n)
    if name == "speech":
        return gen_speech(rng, n, pool)
    return gen_music(rng, n)


def place(rng, x, acts, n_clip, full=False):
    """Put a foreground of len(x) into a clip of n_clip at a random offset (onsets and offsets inside)."""
    out = np.zeros(n_clip)
    act = {k: np.zeros(n_clip // HOP, dtype=np.float32) for k in acts}
    if full:
        return x[:n_clip], {k: v[: n_clip // HOP] for k, v in acts.items()}
    dur = len(x)
    st_h = int(rng.integers(-dur // HOP // 2, n_clip // HOP - 30))
    st_h = st_h if rng.random() < 0.85 else 0
    src0 = max(0, -st_h) * HOP
    dst0 = max(0, st_h) * HOP
    m = min(dur - src0, n_clip - dst0)
    out[dst0:dst0 + m] = x[src0:src0 + m]
    for k, v in acts.items():
        a = v[src0 // HOP: (src0 + m) // HOP]
        act[k][dst0 // HOP: dst0 // HOP + len(a)] = a
    return out, act


def make_clip(rng, kind, pool, n_clip=CLIP_N):
    """Return (audio float32 [n_clip], activity float32 [6, n_clip // HOP], meta dict)."""
    activity = np.zeros((len(LABELS), n_clip // HOP), dtype=np.float32)
    bg, bgk = gen_background(rng, n_clip)
    fgs = []
    if kind in EVENT_GENS:
        fgs = [kind]
    elif kind in ("speech", "music"):
        fgs = [kind]
    elif kind == "overlap":
        ev = ["alarm", "siren", "phone", "doorbell"][rng.integers(0, 4)]
        other = rng.choice(["speech", "speech", "music", "alarm", "siren", "phone", "doorbell"])
        fgs = [ev, other] if other != ev else [ev, "speech"]
    mix = np.zeros(n_clip)
    meta = {"kind": kind, "bg": str(bgk), "fg": []}
    bell_x = None
    for i, name in enumerate(fgs):
        full = name in ("speech", "music") and rng.random() < 0.5
        dur_s = CLIP_S if full else rng.uniform(1.2, CLIP_S)
        _LAST.clear()
        x, acts = gen_fg(rng, name, int(dur_s * SR), pool)
        var = _LAST.get("variant", name)
        x, acts = place(rng, x, acts, n_clip, full)
        if not any(a.sum() > 0 for a in acts.values()):
            continue
        # SNR over the active part vs the background
        on = np.repeat(sum(acts.values()) > 0, HOP)
        p_fg = np.mean(x[: len(on)][on] ** 2) + 1e-12
        snr = (rng.uniform(0, 30) if rng.random() < 0.8 else rng.uniform(30, 55)) if name in EVENT_GENS \
            else rng.uniform(3, 30)
        if i == 1:
            snr = rng.uniform(3, 25)
        x = x / np.sqrt(p_fg) * db(snr)
        rev = rng.random() < 0.25
        meta["fg"].append([str(name), var, round(float(snr), 1), bool(rev)])
        if rev:
            x = sox_pipe(x / (np.max(np.abs(x)) + 1e-9) * 0.5, ["reverb", str(int(rng.uniform(20, 90))),
                                                           str(int(rng.uniform(20, 80))), str(int(rng.uniform(30, 100)))]) \
                * (np.max(np.abs(x)) + 1e-9) / 0.5
        if name == "doorbell":
            bell_x = x.copy()
        mix += x
        for k, a in acts.items():
            activity[k] = np.maximum(activity[k], a)
    bg_level = 1.0 if fgs else db(rng.uniform(-10, 0))
    if bgk == "lowlevel":
        bg_level *= db(rng.uniform(-50, -25))
    elif fgs and fgs[0] in EVENT_GENS and rng.random() < 0.15:  # near-silent room: events start out of silence
        bg_level *= db(rng.uniform(-40, -15))
    if bell_x is not None:  # a decaying bell is heard until it sinks ~10 dB under the background
        nh = n_clip // HOP
        pf = (bell_x[: nh * HOP].reshape(nh, HOP) ** 2).mean(1)
        pb = ((bg * bg_level)[: nh * HOP].reshape(nh, HOP) ** 2).mean(1)
        activity[L["doorbell"]] *= (pf > 0.1 * pb).astype(np.float32)
    y = mix + bg * bg_level
    if "speech" in fgs and rng.random() < 0.15:  # overdriven / hard-clipped speech (labels unchanged)
        pk = np.max(np.abs(y)) + 1e-12
        y = np.clip(y, -pk * db(-rng.uniform(2, 14)), pk * db(-rng.uniform(2, 14)))
    meta["tel"] = bool(rng.random() < 0.15) and not any(n_ == "alarm" for n_ in fgs)  # no alarm > 3.4 kHz
    if meta["tel"]:  # telephone band
        y = sox_pipe(y / (np.max(np.abs(y)) + 1e-9) * 0.5, ["sinc", f"{int(rng.uniform(250, 400))}-{int(rng.uniform(3000, 3600))}"])
    if rng.random() < 0.3:  # random microphone tilt / low cut
        y = sosfilt(butter(1, rng.uniform(50, 300), btype="high", fs=SR, output="sos"), y)
    peak = np.max(np.abs(y)) + 1e-12
    gain_db = rng.uniform(-30, -1)
    if bgk == "lowlevel" and not fgs:
        gain_db = rng.uniform(-70, -40)
    if bgk == "silence" and not fgs:
        y = np.zeros(n_clip)
    else:
        y = y / peak * db(gain_db)
    y = y + rng.standard_normal(n_clip) * db(rng.uniform(-110, -90))  # converter noise floor
    meta["gain_db"] = round(float(gain_db), 1)
    return y.astype(np.float32), activity, meta


def pick_kind(rng):
    r = rng.random()
    acc = 0
    for names, p in CLIP_KINDS:
        acc += p
        if r < acc:
            return names[rng.integers(0, len(names))]
    return "noise"


_POOL = None


def _init(pool):
    global _POOL
    _POOL = pool


def _clip_job(seed):
    rng = np.random.default_rng(seed)
    kind = pick_kind(rng)
    y, act, meta = make_clip(rng, kind, _POOL)
    return y, act, json.dumps(meta)


def build_split(split, n_clips, workers=2):
    """Synthesize a split (cached): audio [N, CLIP_N] float16-safe float32, activity [N, 6, n_hop]."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"{split}-{n_clips}-v{SYNTH_VERSION}.npz")
    if os.path.exists(path):
        d = np.load(path)
        return d["audio"], d["activity"], d["meta"]
    pool = speech_pool(split, 1000 if split == "train" else 250, workers)
    seeds = [SEEDS[split] + i for i in range(n_clips)]
    with Pool(workers, initializer=_init, initargs=(pool,)) as p:
        res = p.map(_clip_job, seeds, chunksize=16)
    audio = np.stack([r[0] for r in res])
    activity = np.stack([r[1] for r in res])
    metas = np.array([r[2] for r in res])
    np.savez(path, audio=audio, activity=activity, meta=metas)
    return audio, activity, metas


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["train", "eval"], required=True)
    ap.add_argument("--clips", type=int, default=None)
    ap.add_argument("--demo", help="write one clip of this kind to DEMO.wav-like path (debug)")
    ap.add_argument("--out", default="/tmp/tagger-demo.wav")
    a = ap.parse_args()
    if a.demo:
        pool = speech_pool(a.split, 1000 if a.split == "train" else 250)
        y, act, meta = make_clip(np.random.default_rng(123), a.demo, pool)
        with wave.open(a.out, "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(SR)
            w.writeframes((np.clip(y / (np.max(np.abs(y)) + 1e-9) * 0.9, -1, 1) * 32767).astype(np.int16).tobytes())
        print(meta, {LABELS[i]: float(act[i].sum() * HOP / SR) for i in range(6)})
        return
    n = a.clips or (8000 if a.split == "train" else 1200)
    audio, act, metas = build_split(a.split, n)
    kinds = np.array([json.loads(m)["kind"] for m in metas])
    print(f"{a.split}: {audio.shape[0]} clips, {audio.shape[1] / SR:.1f} s each; kinds:",
          {str(k): int((kinds == k).sum()) for k in np.unique(kinds)})


if __name__ == "__main__":
    main()
