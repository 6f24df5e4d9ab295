# Sourced by the model build scripts: model_venv VENV REQUIREMENTS makes (or remakes, when
# the requirements file changed) a Python venv with exactly those pins, and prints its python.
model_venv() {
  local venv=$1 req=$2 want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$want" ]; then
    printf 'creating %s\n' "$venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
    echo "$want" >"$venv/.requirements-sha256"
  fi
  echo "$venv/bin/python"
}
