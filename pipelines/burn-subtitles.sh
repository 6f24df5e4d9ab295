#!/usr/bin/env bash
# Burns live subtitles into a video with textoverlay: INPUT (any video with speech) to an
# Ogg/Theora+Vorbis file (encoders from gst-plugins-base, so it runs on a stock install).
#   pipelines/burn-subtitles.sh INPUT OUTPUT.ogv [lalm-interact properties...]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 INPUT OUTPUT.ogv [property=value ...]" >&2; exit 2; }
in=$1 out=$2; shift 2
# textoverlay waits for the text stream to cover each frame (the loop's GAP events do that
# between cues); the queues let video wait for the text of an utterance still being decoded.
gst-launch-1.0 -e filesrc location="$in" ! decodebin name=d \
  d. ! video/x-raw ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! videoconvert ! t.video_sink \
  d. ! audio/x-raw ! audioconvert ! audioresample ! tee name=a \
    a. ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! lalm-interact "$@" ! t.text_sink \
    a. ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! vorbisenc ! mux. \
  textoverlay name=t valignment=bottom font-desc="Sans 20" wait-text=true ! videoconvert ! theoraenc ! oggmux name=mux ! filesink location="$out"
