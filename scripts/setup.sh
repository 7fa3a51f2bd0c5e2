#!/usr/bin/env bash
# Set up SpineMed Workstation from nothing on Debian/Ubuntu: system libraries (when root), the venv,
# the pinned Python dependencies and the embedded default model. Safe to run again: every step checks first.
# Usage: scripts/setup.sh [--dev] [--train]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
EXTRAS=""
for arg in "$@"; do
  case "$arg" in
    --dev) EXTRAS="${EXTRAS:+$EXTRAS,}dev" ;;
    --train) EXTRAS="${EXTRAS:+$EXTRAS,}train" ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

SYSTEM_PACKAGES="xvfb xauth libegl1 libgl1 libopengl0 libgl1-mesa-dri libglx-mesa0 libegl-mesa0 libxkbcommon-x11-0
libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0
libxcb-xinerama0 libdbus-1-3 libfontconfig1 poppler-utils"
missing=""
for p in $SYSTEM_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "== missing system packages (install them as root):$missing" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
VPY="$ROOT/.venv/bin/python"
"$VPY" -m pip install -q --upgrade "pip>=24" >/dev/null

# llama-cpp-python has no binary wheel on PyPI: it compiles (4-5 min on 2 cores). Build it only when the pinned
# version is not installed yet; GGML_NATIVE=OFF keeps the binary portable across CPUs.
LLAMA_VERSION=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' pyproject.toml)
if ! "$VPY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$LLAMA_VERSION')" 2>/dev/null; then
  echo "== building llama-cpp-python $LLAMA_VERSION (CPU; set CMAKE_ARGS=-DGGML_CUDA=on for an NVIDIA GPU)"
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$VPY" -m pip install -q "llama-cpp-python==$LLAMA_VERSION"
fi

if [[ ",$EXTRAS," == *",train,"* ]]; then
  # torch first and exactly pinned, so no other package can pull a CUDA build.
  "$VPY" -m pip install -q "torch==2.13.0"
fi
echo "== installing spinemed-workstation${EXTRAS:+[$EXTRAS]}"
"$VPY" -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"

"$VPY" -m core.inference.fetch_default_model --models-dir "$ROOT/models"
echo "== set-up complete"
