#!/usr/bin/env bash
# Real recorded speech for the tests that measure timing on real speech: the Asterisk English
# prompts (Allison Smith, studio speech), from the pinned Debian package
# asterisk-core-sounds-en-g722 1.6.1-1 (CC BY-SA 3.0, Digium, Inc.; transcripts in
# tests/data/asterisk-core-sounds-en.txt, upstream's own prompt list). The package is
# downloaded (not installed), checked by sha256 and unpacked into the cache; its G.722 files
# are decoded with ffmpeg (Debian's; GStreamer 1.22's avdec_g722 fails to open) into one 16 kHz WAV of
# prompts with pauses between them, plus its truth (start, end, text per prompt).
# Idempotent; prints the WAV's path.
#   scripts/fetch-speech.sh [SECONDS] [long]
#     SECONDS  speech to gather (default 150: asterisk-live.wav; any other amount:
#              asterisk-live-<SECONDS>s.wav)
#     long     the prompts of 12 s and more instead (paragraphs up to 73 s with pauses inside:
#              utterances of 20 s and more), asterisk-long-<SECONDS>s.wav; 17 prompts, 389 s
set -euo pipefail
want=${1:-150}
case "$want" in ''|*[!0-9]*) echo "fetch-speech.sh: SECONDS must be a whole number" >&2; exit 2 ;; esac
span=2:12
case "${2:-}" in
  '') ;;
  long) span=12:80 ;;
  *) echo "fetch-speech.sh: the second argument may only be 'long'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}/speech
deb=asterisk-core-sounds-en-g722_1.6.1-1_all.deb
sum=38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806
mkdir -p "$cache"
stem=asterisk-live
[ "$want" = 150 ] || stem=asterisk-live-${want}s
[ "$span" = 2:12 ] || stem=asterisk-long-${want}s
out=$cache/$stem.wav
# Bumped when the selection of prompts changes (2: the silence prompts are left out).
version=2
if [ -f "$out" ] && [ -f "$cache/$stem.json" ] && [ "$(cat "$cache/$stem.version" 2>/dev/null)" = "$version" ]; then
  echo "$out"; exit 0
fi

if ! dpkg-query -W -f='${Status}' ffmpeg 2>/dev/null | grep -q "install ok installed"; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi
if ! { [ -f "$cache/$deb" ] && echo "$sum  $cache/$deb" | sha256sum -c --status; }; then
  (cd "$cache" && rm -f "$deb" && apt-get download -q asterisk-core-sounds-en-g722=1.6.1-1 >&2)
  echo "$sum  $cache/$deb" | sha256sum -c --status || { echo "sha256 mismatch for $cache/$deb" >&2; exit 1; }
fi
rm -rf "$cache/pkg" && dpkg -x "$cache/$deb" "$cache/pkg"
/usr/bin/python3 "$here/tests/data/make_live_speech.py" \
  "$cache/pkg/usr/share/asterisk/sounds/en_US_f_Allison" \
  "$here/tests/data/asterisk-core-sounds-en.txt" "$out.tmp" "$cache/$stem.json" "$want" "$span" >&2
mv -f "$out.tmp" "$out"
echo "$version" > "$cache/$stem.version"
echo "$out"
