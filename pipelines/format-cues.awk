# Turns the lalm-transcript lines of `gst-launch-1.0 -m` into subtitle lines as they come:
# final cues as "start --> end  text", partial ones (committed words so far) marked with "…".
function field(name,   s) {
  if (match($0, " " name "=\\(string\\)\"[^\"]*\"") || match($0, " " name "=\\([a-z0-9]+\\)[^,;]*")) {
    s = substr($0, RSTART, RLENGTH); sub(/^[^)]*\)/, "", s); gsub(/\\/, "", s); gsub(/^"|"$/, "", s); return s
  }
  return ""
}
function clock(ns,   ms) { ms = int(ns / 1e6); return sprintf("%02d:%02d:%02d.%03d", ms / 3600000, (ms / 60000) % 60, (ms / 1000) % 60, ms % 1000) }
/lalm-transcript,/ {
  if (field("final") == "true") printf "%s --> %s  %s\n", clock(field("start")), clock(field("end")), field("text")
  else if (show_partials) printf "%s ...           %s …\n", clock(field("start")), field("text")
  fflush()
}
/ERROR|WARNING|erroneous/ { print; fflush() }
