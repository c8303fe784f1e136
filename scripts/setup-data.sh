#!/usr/bin/env bash
# Idempotent: makes Fashion-MNIST available at /usr/share/datasets/fashion-mnist through Debian's
# dataset-fashion-mnist package (the default pipeline and the test suite use it). Does nothing when
# the files are there.
set -euo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [[ -f "$DIR/train-images-idx3-ubyte.gz" && -f "$DIR/t10k-labels-idx1-ubyte.gz" ]]; then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "setup: Fashion-MNIST missing: run 'apt-get install dataset-fashion-mnist' as root, or set SCAN_DATA_DIR to a folder with the four IDX files" >&2
    exit 1
  fi
fi
echo "setup: installing dataset-fashion-mnist (Debian package)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
