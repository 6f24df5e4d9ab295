#!/usr/bin/python3
"""Write the 527 AudioSet class names of CED's outputs, one per line in output order, from the
`soundevents-dataset` crate's `src/rated/generated.rs` (each entry has its `name` and the
`index` of its output). Fails unless indices 0..N-1 each appear exactly once."""
import re
import sys

src, out = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
entry = re.compile(
    r"RatedSoundEvent\s*\{.*?\bname:\s*\"((?:[^\"\\]|\\.)*)\".*?\bindex:\s*(\d+)usize", re.S
)
names = {}
for m in entry.finditer(text):
    i = int(m.group(2))
    if i in names:
        sys.exit(f"{src}: index {i} appears twice")
    names[i] = m.group(1).replace('\\"', '"')
n = len(names)
if n == 0 or sorted(names) != list(range(n)):
    sys.exit(f"{src}: expected indices 0..{n - 1}, found {n} entries with gaps")
with open(out, "w", encoding="utf-8") as f:
    for i in range(n):
        f.write(names[i] + "\n")
print(f"{n} labels")
