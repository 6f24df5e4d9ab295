#!/usr/bin/env python3
"""Maps every Proactive-Sound-Bench item's description to the AudioSet labels a perfect tagger
would give its sound, for the label-level score (`lalm-psb-labels`). Writes
tests/data/psb-labels.tsv from the benchmark's manifest.

Source: github.com/masaz14/Proactive-Sound-Effect-Benchmark, proactive_reply_benchmark.jsonl at
commit 0873b2b06ff8461d00ea21342f6db6febf4d6193 (644 items: id, path, description, decision).

How a description is mapped, in order:
1. OVERRIDES below: written by hand for descriptions whose words name no label, or name a wrong
   one ("rock fall" is not "Rock music", "pound door" is a knock). Decided from the
   description alone, never from the item's decision.
2. Otherwise the labels sharing the most content words with the description (plural, -ing and
   -ed endings folded), at most two, never a music genre unless the description is about music.
3. Otherwise none: no AudioSet label names the sound.

Usage: python3 scripts/psb-labels.py MANIFEST.jsonl LABELS.txt > tests/data/psb-labels.tsv
"""
import json
import re
import sys

OVERRIDES = {
    "book fall": ["Thump, thud"],
    "bottlewater fall": ["Thump, thud"],
    "pill bottle fall": ["Rattle"],
    "weight drop": ["Thump, thud"],
    "dumbbel fall": ["Thump, thud"],
    "cupboard fall": ["Smash, crash"],
    "refrigerator fall": ["Smash, crash"],
    "fall down": ["Thump, thud"],
    "slip down": ["Thump, thud"],
    "tree fall": ["Crack"],
    "cloth rip": ["Tearing"],
    "open utility knife": ["Clicking"],
    "pound door": ["Knock"],
    "hit door": ["Knock"],
    "steel basin fall": ["Clang"],
    "pressure cooker": ["Steam", "Hiss"],
    "toaster pop": ["Burst, pop"],
    "tire blow out": ["Burst, pop"],
    "washing machine finish-beep": ["Beep, bleep"],
    "EAS beep": ["Beep, bleep"],
    "low battery": ["Beep, bleep"],
    "heart rate warning": ["Beep, bleep"],
    "incorrect beep": ["Beep, bleep"],
    "incorrect error": ["Beep, bleep"],
    "seatbelt warning": ["Beep, bleep"],
    "car doorbell": ["Ding"],
    "clock": ["Clock"],
    "fire extenguisher": ["Hiss"],
    "forest fire": ["Fire", "Crackle"],
    "fire whoosh": ["Fire", "Whoosh, swoosh, swish"],
    "smoke cough": ["Cough"],
    "choke": ["Cough"],
    "drink choke": ["Cough"],
    "choke on water": ["Cough"],
    "angry": ["Shout"],
    "angry click": ["Clicking"],
    "angry growl": ["Growling"],
    "angry huffing": ["Breathing"],
    "angry slap": ["Slap, smack"],
    "angry type": ["Typing"],
    "man crying": ["Crying, sobbing"],
    "heavy meachine": ["Heavy engine (low frequency)"],
    "heavy gasping air": ["Gasp"],
    "shock": ["Gasp"],
    "spooked": ["Gasp"],
    "big wave": ["Waves, surf"],
    "ice break": ["Crack"],
    "falling rock": ["Rumble"],
    "rock fall": ["Rumble"],
    "stone fall": ["Rumble"],
    "brick debris fall": ["Rumble"],
    "collapsing building": ["Smash, crash", "Rumble"],
    "earthquake": ["Rumble"],
    "earthquake shake furniture": ["Rumble", "Rattle"],
    "landslide": ["Rumble"],
    "rock break": ["Crack"],
    "stone fall into water": ["Splash, splatter"],
    "hurricane": ["Wind"],
    "tornado": ["Wind"],
    "typhoon": ["Wind"],
    "sandstorm": ["Wind"],
    "lightning strike": ["Thunder"],
    "lightening strike": ["Thunder"],
    "rapid river": ["Stream"],
    "flood": ["Stream"],
    "flash flood": ["Stream"],
    "door bell": ["Doorbell"],
    "basketball explosion": ["Burst, pop"],
    "air raid siren": ["Civil defense siren"],
    "subway chime": ["Chime"],
    "backup beep": ["Reversing beeps"],
    "bike bell": ["Bicycle bell"],
    "car breaking skid": ["Skidding", "Tire squeal"],
    "car crash": ["Smash, crash"],
    "fire truck": ["Fire engine, fire truck (siren)"],
    "police car": ["Police car (siren)"],
    "squeaky windshield wipers": ["Squeak"],
    "frozen windshield": ["Scrape"],
    "broken Fascia gun": ["Mechanisms"],
    "fascia gun": ["Mechanisms"],
    "bellows": ["Whoosh, swoosh, swish"],
    "phone ring": ["Telephone bell ringing"],
    "air gun nail": ["Power tool"],
    "cutting machine": ["Power tool"],
    "electric welding": ["Crackle"],
    "powerline short circuit": ["Crackle"],
    "short circuit": ["Crackle"],
    "amp short circuit": ["Crackle"],
    "electric outlet": ["Crackle"],
    "gas leak": ["Hiss"],
    "gas stove fail": ["Clicking"],
    "radio buzz": ["Buzz", "Static"],
    "elevator unnormal sound": ["Mechanisms"],
    "hydraulic press": ["Mechanisms"],
    "treadmill belt slip": ["Squeak"],
    "washing machine broken": ["Mechanisms"],
    "group conflict": ["Shout"],
    "query en": ["Speech"],
    "query why": ["Speech"],
    "wry smile": ["Chuckle, chortle"],
    "frustration": ["Sigh"],
    "frustrate more": ["Sigh"],
    "hungry": ["Stomach rumble"],
    "hurt ow": ["Groan"],
    "painful ow": ["Groan"],
    "asthma": ["Wheeze"],
    "blow nose": ["Snort"],
    "violent vomit": ["Burping, eructation"],
    "teeth chatter": [],
    "chop hurt": ["Chop", "Yell"],
    "fry hurt": ["Frying (food)", "Yell"],
    "computer glitch malfunction": ["Static"],
    "bone crack": ["Crack"],
}

# "machine" names too many things to choose a label by ("copy machine" is no "Machine gun").
STOP = set("a an the of and or in on to with by from for at is are be sound sounds noise machine".split())
FIXES = {"zipepr": "zipper", "meachine": "machine", "extenguisher": "extinguisher",
         "dumbbel": "dumbbell", "lightening": "lightning", "plopp": "plop", "unnormal": "abnormal"}
MUSIC_WORDS = {"music", "song", "guitar", "piano", "trumpet", "flute", "violin", "drum", "sing"}


def stem(w):
    for suf in ("ing", "es", "s", "ed"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)]
    return w


def words(s):
    return {stem(FIXES.get(w, w)) for w in re.findall(r"[a-z]+", s.lower()) if w not in STOP}


def clean(desc):
    return re.sub(r"[(（]\d+[)）]", "", desc).strip()


def main():
    manifest, labels_path = sys.argv[1], sys.argv[2]
    labels = [l.strip() for l in open(labels_path, encoding="utf-8") if l.strip()]
    known = set(labels)
    for d, ls in OVERRIDES.items():
        for l in ls:
            if l not in known:
                sys.exit(f"override {d!r}: {l!r} is not an AudioSet label of the tagger")
    label_words = [(l, words(l)) for l in labels]
    print("# Proactive-Sound-Bench items (github.com/masaz14/Proactive-Sound-Effect-Benchmark,")
    print("# proactive_reply_benchmark.jsonl at commit 0873b2b06ff8461d00ea21342f6db6febf4d6193), each")
    print("# with the AudioSet labels its description names (scripts/psb-labels.py; ';' between labels,")
    print("# empty where no label names the sound). Label level: no audio is scored from this file.")
    print("id\tdomain\tcategory\tdescription\tdecision\tlabels")
    for line in open(manifest, encoding="utf-8"):
        it = json.loads(line)
        parts = it["path"].split("/")
        domain, category = parts[2], parts[3]
        desc = clean(it["description"])
        if desc in OVERRIDES:
            chosen = OVERRIDES[desc]
        else:
            d = words(desc)
            musical = bool(d & MUSIC_WORDS) or category == "Artistic"
            scored = []
            for l, lw in label_words:
                shared = len(d & lw)
                if not shared:
                    continue
                if not musical and ("music" in l.lower() or l in ("Heavy metal", "Rock and roll")):
                    continue
                scored.append((shared / len(lw) ** 0.5, l))
            scored.sort(key=lambda x: (-x[0], x[1]))
            top = scored[0][0] if scored else 0
            chosen = [l for s, l in scored if s == top][:2]
        print("\t".join([it["id"], domain, category, it["description"].replace("\t", " "),
                         it["decision"], ";".join(chosen)]))


if __name__ == "__main__":
    main()
