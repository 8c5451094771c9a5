#!/usr/bin/env bash
# Set up spotter on a fresh Debian/Ubuntu machine, in ./.venv.
#
#   scripts/setup.sh           system packages + torch + spotter (enough for `spotter listen`)
#   scripts/setup.sh --test    the same plus test/TTS packages, then runs the whole test suite
#
# torch is installed first and only when none is importable, so pip never swaps
# a user's CUDA build for another one. TORCH_SPEC picks what to install
# (default torch==2.13.0; e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu").
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
python="${PYTHON:-python3}"

packages=(libportaudio2)
if [ "$mode" = "--test" ]; then
  packages+=(espeak-ng pulseaudio pulseaudio-utils libasound2-plugins)
fi
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
py=.venv/bin/python
"$py" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "setup: installing ${TORCH_SPEC:-torch==2.13.0}"
  # shellcheck disable=SC2086
  "$py" -m pip install -q ${TORCH_SPEC:-torch==2.13.0} 2>&1 | grep -v "^WARNING: Location" || true
fi
if [ "$mode" = "--test" ]; then
  "$py" -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
  if [ -f scripts/install_tts.sh ]; then
    # the optional engines (Debian's contrib / non-free) too, so that their tests run; without them their tests skip
    PYTHON="$py" bash scripts/install_tts.sh --more-voices \
      || { echo "setup: pico, mbrola or rhvoice could not be installed; going on without them" >&2
           PYTHON="$py" bash scripts/install_tts.sh; }
  fi
  "$py" -c "import torch, spotter; print(f'setup: spotter {spotter.__version__}, torch {torch.__version__}')"
  exec "$py" -m pytest -q -rs --durations=15
else
  "$py" -m pip install -q -e . 2>&1 | grep -v "^WARNING: Location" || true
  "$py" -c "import torch, spotter; print(f'setup: spotter {spotter.__version__}, torch {torch.__version__}')"
fi
