#!/usr/bin/env bash
# Idempotent: creates .venv (project-local) with torch==2.11.0 (libtorch for tch 0.24) and the
# Python test oracles. Does nothing when everything is already in place.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SCAN_VENV:-$ROOT/.venv}"
TORCH_VERSION="2.11.0"
# Python packages used only by tests and benchmarks (oracles); pinned for reproducibility.
TEST_PKGS=(numpy scipy scikit-learn pyarrow "pillow==13.0.0" safetensors "torchvision==0.26.0")
# Pillow is pinned: the augmentation tests compare bit for bit with its resampling (its pass order
# changed across versions). torchvision (matching torch 2.11) is the reference pipeline's transforms in
# the augmentation-strength test.
STAMP="$VENV/.scan-setup-v2"

if [[ -f "$STAMP" ]] && "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null; then
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating virtual environment $VENV" >&2
  python3 -m venv "$VENV"
fi
echo "setup: installing torch==$TORCH_VERSION and test oracles into $VENV (one-time, ~5 GB)" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" "${TEST_PKGS[@]}"
"$VENV/bin/python" -c "import torch; assert torch.__version__.split('+')[0]=='$TORCH_VERSION', torch.__version__"
touch "$STAMP"
echo "setup: done" >&2
