#!/usr/bin/env bash
# Real recorded sound clips (and real speech) for calibrating and testing the sound-event alerts.
# Every clip comes from a pinned Debian bookworm package listed in tests/data/real-sounds.tsv (the
# single source of truth: package, version, sha256 of the .deb, path inside it, optional segment,
# licence, source); see tests/data/REAL-SOUNDS.md. Packages are downloaded with
# `apt-get download PKG=VERSION` (not installed), checked by sha256, and only the needed files are
# unpacked. Each clip becomes $cache/clips/<id>.wav (16 kHz mono s16). The speech set,
# $cache/speech/<voice>.wav, is the Asterisk prompt packs decoded and joined with 0.4 s pauses
# (English: all of en_US_f_Allison, ~24 min; a few minutes each of other speakers/languages).
# Idempotent and fast on a warm cache; no audio is ever written into the clone.
# Prints the cache dir.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifest=$here/tests/data/real-sounds.tsv
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}/sounds
mkdir -p "$cache/debs" "$cache/pkg" "$cache/clips" "$cache/speech"

# Speech packs: package version sha256 sounds-dir minutes(0 = all) voice-name
speech_packs=(
  "asterisk-core-sounds-en-g722 1.6.1-1 38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806 usr/share/asterisk/sounds/en_US_f_Allison 0 en_US_f_Allison"
  "asterisk-core-sounds-it-g722 1.6.1-1 46b4cf7afc508a5fcfc051b7ea233251c0d195dd4ef83cc4b7facb4c6429b016 usr/share/asterisk/sounds/it_IT_m_Carlo 5 it_IT_m_Carlo"
  "asterisk-core-sounds-fr-g722 1.6.1-1 7add61d5e42279ecff1bbdf842a5a946ac3644fac9a0fe44384731aa7270c8e0 usr/share/asterisk/sounds/fr_CA_f_June 3 fr_CA_f_June"
  "asterisk-core-sounds-ru-g722 1.6.1-1 673b4238a6b8269960f055d868c6a11083f7a0d00979167cb01554046b48ed9b usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU 3 ru_RU_f_IvrvoiceRU"
  "asterisk-prompt-es-co 0.20070403-2.1 6702696e045514699e87dc8fb70f370717e5df91f821f7bec8dd0df1be008e83 usr/share/asterisk/sounds/es 3 es_CO"
)

need_tools() {
  local missing=()
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
  command -v sox >/dev/null || missing+=(sox)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

apt_updated=0
# fetch_deb PKG VERSION SHA256 -> prints the path of the verified .deb in the cache
fetch_deb() {
  local pkg=$1 ver=$2 sum=$3 deb="$cache/debs/${1%%:*}_${2//:/%3a}.deb"
  if [ -f "$deb" ] && echo "$sum  $deb" | sha256sum -c --status; then echo "$deb"; return; fi
  # Reuse fetch-speech.sh's copy of the English prompts if it is there.
  local other=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}/speech/${pkg}_${ver}_all.deb
  if [ -f "$other" ] && echo "$sum  $other" | sha256sum -c --status; then cp -f "$other" "$deb"; echo "$deb"; return; fi
  if [ $apt_updated -eq 0 ] && ! apt-cache show "$pkg=$ver" >/dev/null 2>&1; then
    local sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq >&2; apt_updated=1
  fi
  local tmp; tmp=$(mktemp -d "$cache/debs/dl.XXXXXX"); chmod 755 "$tmp"
  local opt=(); [ "$(id -u)" -eq 0 ] && opt=(-o APT::Sandbox::User=root)
  (cd "$tmp" && apt-get "${opt[@]}" download -q "$pkg=$ver" >&2) \
    || { rm -rf "$tmp"; echo "fetch-sounds: cannot download $pkg=$ver (is it still in Debian bookworm?)" >&2; exit 1; }
  mv -f "$tmp"/*.deb "$deb"; rm -rf "$tmp"
  echo "$sum  $deb" | sha256sum -c --status || {
    echo "fetch-sounds: sha256 mismatch for $pkg=$ver ($deb): expected $sum, got $(sha256sum "$deb" | cut -d' ' -f1)" >&2
    exit 1; }
  echo "$deb"
}

# unpack DEB DIR PATH... : extract only the given paths (skipping those already there)
unpack() {
  local deb=$1 dir=$2; shift 2
  local want=() p
  for p in "$@"; do [ -e "$dir/$p" ] || want+=("./$p"); done
  [ ${#want[@]} -eq 0 ] && return 0
  mkdir -p "$dir"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" "${want[@]}"
}

decode_args() { # input-format args for ffmpeg by extension
  case $1 in *.g722) echo "-f g722";; *.gsm) echo "-f gsm";; *) echo "";; esac
}

need_tools

# ---- clips --------------------------------------------------------------------------------
# Read the manifest (awk turns empty fields into "-" so that `read` keeps the columns apart).
declare -A pkg_paths=() pkg_ver=() pkg_sum=()
rows=()
while IFS=$'\t' read -r id class role split pkg ver sum path start dur licence source; do
  [ "$start" = - ] && start=""; [ "$dur" = - ] && dur=""
  spec="$pkg $ver $sum $path $start $dur"
  rows+=("$id"$'\t'"$spec")
  [ -f "$cache/clips/$id.wav" ] && [ "$(cat "$cache/clips/$id.spec" 2>/dev/null)" = "$spec" ] && continue
  pkg_paths[$pkg]+="$path"$'\n'; pkg_ver[$pkg]=$ver; pkg_sum[$pkg]=$sum
done < <(awk -F'\t' 'NR>1 && NF>=8 {for(i=1;i<=NF;i++) if($i=="") $i="-"; print}' OFS='\t' "$manifest")

for pkg in "${!pkg_paths[@]}"; do
  deb=$(fetch_deb "$pkg" "${pkg_ver[$pkg]}" "${pkg_sum[$pkg]}")
  mapfile -t paths < <(printf '%s' "${pkg_paths[$pkg]}" | sort -u)
  unpack "$deb" "$cache/pkg/${pkg%%:*}_${pkg_ver[$pkg]}" "${paths[@]}"
done

n_new=0
for row in "${rows[@]}"; do
  id=${row%%$'\t'*}; spec=${row#*$'\t'}
  IFS=$'\t' read -r _ _ _ _ pkg ver sum path s_start s_dur _ < <(awk -F'\t' -v id="$id" '$1==id {for(i=1;i<=NF;i++) if($i=="") $i="-"; print}' OFS='\t' "$manifest")
  [ "$s_start" = - ] && s_start=""; [ "$s_dur" = - ] && s_dur=""
  out=$cache/clips/$id.wav
  [ -f "$out" ] && [ "$(cat "$cache/clips/$id.spec" 2>/dev/null)" = "$spec" ] && continue
  src=$cache/pkg/${pkg%%:*}_$ver/$path
  [ -f "$src" ] || { echo "fetch-sounds: $path not found in $pkg=$ver" >&2; exit 1; }
  seg=(); [ -n "$s_start" ] && seg+=(-ss "$s_start"); [ -n "$s_dur" ] && seg+=(-t "$s_dur")
  # shellcheck disable=SC2046
  # -v fatal: orage Knock.wav has a stray odd trailing byte that ffmpeg reports but decodes fine.
  ffmpeg -v fatal -nostdin -y $(decode_args "$src") -i "$src" "${seg[@]}" -vn -ac 1 -ar 16000 -c:a pcm_s16le "$out.tmp.wav"
  mv -f "$out.tmp.wav" "$out"; echo "$spec" > "$cache/clips/$id.spec"; n_new=$((n_new+1))
done
[ $n_new -gt 0 ] && echo "fetch-sounds: wrote $n_new clip(s) to $cache/clips" >&2

# ---- speech -------------------------------------------------------------------------------
for entry in "${speech_packs[@]}"; do
  read -r pkg ver sum dir minutes voice <<<"$entry"
  out=$cache/speech/$voice.wav
  [ -f "$out" ] && [ "$(cat "$cache/speech/$voice.spec" 2>/dev/null)" = "$entry" ] && continue
  deb=$(fetch_deb "$pkg" "$ver" "$sum")
  pdir=$cache/pkg/${pkg}_$ver
  [ -d "$pdir/$dir" ] || { mkdir -p "$pdir"; dpkg-deb -x "$deb" "$pdir"; }
  raw=$cache/speech/$voice.raw; : > "$raw"
  gap=$(mktemp); head -c $((16000 * 2 * 4 / 10)) /dev/zero > "$gap"   # 0.4 s of silence, s16
  limit=$((minutes * 60 * 16000 * 2))
  while IFS= read -r f; do
    # shellcheck disable=SC2046
    ffmpeg -v error -nostdin $(decode_args "$f") -i "$f" -ac 1 -ar 16000 -f s16le - >> "$raw"
    cat "$gap" >> "$raw"
    [ "$minutes" -gt 0 ] && [ "$(stat -c %s "$raw")" -ge "$limit" ] && break
  done < <(find "$pdir/$dir" -type f \( -name '*.g722' -o -name '*.gsm' -o -name '*.wav' \) | LC_ALL=C sort)
  rm -f "$gap"
  ffmpeg -v error -nostdin -y -f s16le -ar 16000 -ac 1 -i "$raw" -c:a pcm_s16le "$out.tmp.wav"
  rm -f "$raw"; mv -f "$out.tmp.wav" "$out"; echo "$entry" > "$cache/speech/$voice.spec"
  echo "fetch-sounds: speech $voice: $(soxi -D "$out" | cut -d. -f1) s" >&2
done

echo "$cache"
