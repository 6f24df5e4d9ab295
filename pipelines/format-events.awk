# Turns the lalm-decision / lalm-response lines of `gst-launch-1.0 -m` into one line per
# event: stream time in seconds, what happened, the response text and its confidence.
function field(name,   s) {
  if (match($0, " " name "=\\(string\\)\"[^\"]*\"") || match($0, " " name "=\\([a-z0-9]+\\)[^,;]*")) {
    s = substr($0, RSTART, RLENGTH); sub(/^[^)]*\)/, "", s); gsub(/\\/, "", s); gsub(/^"|"$/, "", s); return s
  }
  return ""
}
function secs(ns) { return sprintf("%8.3f", ns / 1e9) }
/lalm-decision, kind=\(string\)speech-start/ { printf "%s  speech starts\n", secs(field("start")); fflush() }
/lalm-response,/ { printf "%s  turn ends    %s  (confidence %.2f)\n", secs(field("end")), field("text"), field("confidence"); fflush() }
/ERROR|WARNING|erroneous/ { print; fflush() }
