#!/usr/bin/env bash
# Leak check: one short pipeline through the whole loop (wavparse ! lalm-chunker !
# lalm-perceive ! lalm-decide ! lalm-respond, then lalm-interact) under
# valgrind --leak-check=full, with this build's plugin (release profile, debug=1, so the stacks
# have symbols). Reports the "definitely lost" and "indirectly lost" blocks whose allocation
# stack contains the project's code (libgstlalm.so, gstlalm::, soundflow::) and exits non-zero
# if there is any; leaks only in other libraries (GLib, GStreamer, ONNX Runtime) are counted
# and summarized, not failed on.
#
#   bash scripts/leakcheck.sh            # after scripts/setup.sh (models, ONNX Runtime)
#
# Environment: LALM_LEAKCHECK_SECONDS (audio length, default 4), LALM_LEAKCHECK_MODEL (Whisper
# package for lalm-respond, default whisper-tiny-random), LALM_VALGRIND_SUPP (more suppression
# files, colon-separated), LALM_LEAKCHECK_DIR (where the logs go, default a temp dir).
# ONNX Runtime runs some 20-50x slower under valgrind: a run takes a few minutes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
say() { printf '==> %s\n' "$*" >&2; }

seconds=${LALM_LEAKCHECK_SECONDS:-4}
model=${LALM_LEAKCHECK_MODEL:-whisper-tiny-random}
work=${LALM_LEAKCHECK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/lalm-leakcheck.XXXXXX")}
mkdir -p "$work"

# --- tools, models and ONNX Runtime: the setup, with valgrind added -------------------------
LALM_EXTRA_APT=valgrind bash scripts/setup.sh >&2

# --- the plugin of this tree -----------------------------------------------------------------
say "building the plugin (release, with debug info)"
cargo build --release -p gst-plugin-lalm --lib >&2
plugin_dir=$here/target/release
test -f "$plugin_dir/libgstlalm.so" || { echo "no $plugin_dir/libgstlalm.so" >&2; exit 2; }

# --- a few seconds of speech -----------------------------------------------------------------
say "making ${seconds} s of speech in $work"
# A sentence with half a second of silence before and enough after it for a turn end.
espeak-ng -v en-us -s 160 -w "$work/say.wav" "Good morning. Can you hear me?"
sox "$work/say.wav" -r 16000 -c 1 -b 16 "$work/padded.wav" pad 0.5 "$seconds"
sox "$work/padded.wav" "$work/input.wav" trim 0 "$seconds"

# --- suppressions: GLib's, GStreamer's if installed, the user's ------------------------------
supp=()
for f in /usr/share/glib-2.0/valgrind/glib.supp \
         /usr/share/gstreamer-1.0/gst.supp /usr/share/gstreamer-1.0/valgrind/gst.supp \
         /usr/lib/x86_64-linux-gnu/valgrind/gst.supp; do
  [ -f "$f" ] && supp+=("--suppressions=$f")
done
IFS=: read -r -a extra <<< "${LALM_VALGRIND_SUPP:-}"
for f in "${extra[@]}"; do [ -n "$f" ] && supp+=("--suppressions=$f"); done
say "suppressions: ${supp[*]:-none}"

# Only the system plugins and this build's, with a private registry made before valgrind runs
# (the plugin scanner then has nothing to do under it).
export GST_PLUGIN_PATH=$plugin_dir
export GST_PLUGIN_SYSTEM_PATH=/usr/lib/x86_64-linux-gnu/gstreamer-1.0
export GST_REGISTRY=$work/registry.bin
export GST_DEBUG=
export G_SLICE=always-malloc G_DEBUG=gc-friendly
gst-inspect-1.0 lalm >/dev/null

status=0
run() { # name, pipeline...
  local name=$1; shift
  local log=$work/$name.valgrind.log
  say "valgrind: $name (log: $log)"
  local t0=$SECONDS
  if ! valgrind --leak-check=full --show-leak-kinds=definite,indirect \
      --errors-for-leak-kinds=definite,indirect --num-callers=50 --fullpath-after= \
      "${supp[@]}" --log-file="$log" \
      gst-launch-1.0 -q "$@" > "$work/$name.out" 2>&1; then
    echo "gst-launch-1.0 failed under valgrind ($name):" >&2
    cat "$work/$name.out" >&2
    status=2
  fi
  say "$name took $((SECONDS - t0)) s"
  # Loss records (the "==PID== " prefix stripped, one blank-line-separated block each): the
  # definitely/indirectly lost ones, split by whether the project's code is on the stack.
  sed -E 's/^==[0-9]+== ?//' "$log" | awk -v here="$here" -v ours="$work/$name.ours.txt" -v theirs="$work/$name.others.txt" '
    function flush() {
      if (rec != "") {
        if (rec ~ /libgstlalm|gstlalm::|soundflow::/ || index(rec, here "/src/") || index(rec, here "/plugins/src/")) { print rec "\n" > ours; n_ours++ }
        else { print rec "\n" > theirs; n_theirs++ }
      }
      rec = ""
    }
    /are (definitely|indirectly) lost in loss record/ { flush(); rec = $0; inrec = 1; next }
    inrec && /^$/ { flush(); inrec = 0; next }
    inrec { rec = rec "\n" $0; next }
    END { flush(); printf "%d %d\n", n_ours, n_theirs }
  ' > "$work/$name.counts"
  read -r n_ours n_theirs < "$work/$name.counts"
  echo "---- $name: valgrind leak summary"
  sed -E -n 's/^==[0-9]+== //; /LEAK SUMMARY/,/suppressed:/p' "$log"
  grep -E "ERROR SUMMARY" "$log" | sed -E 's/^==[0-9]+== //' || true
  echo "---- $name: $n_ours definitely/indirectly lost records with the project's code on the stack, $n_theirs elsewhere"
  if [ "${n_ours:-0}" -gt 0 ]; then
    cat "$work/$name.ours.txt"
    status=1
  fi
  if [ "${n_theirs:-0}" -gt 0 ]; then
    echo "(the others, not the project's: $work/$name.others.txt)"
  fi
}

run loop filesrc location="$work/input.wav" ! wavparse ! lalm-chunker ! lalm-perceive \
  ! lalm-decide ! lalm-respond model="$model" ! fakesink sync=false
run interact filesrc location="$work/input.wav" ! wavparse ! lalm-interact asr-model="$model" \
  ! fakesink sync=false

case $status in
  0) echo "leakcheck: no leak in the project's code (logs in $work)" ;;
  1) echo "leakcheck: LEAKS in the project's code (logs in $work)" ;;
  *) echo "leakcheck: a pipeline failed under valgrind (logs in $work)" ;;
esac
exit $status
