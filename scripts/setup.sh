#!/usr/bin/env bash
# Set up clrepro on a fresh machine: the offline Fashion-MNIST data (Debian package, where
# apt is available) and a virtual environment in .venv with clrepro and its dependencies.
# Idempotent: rerunning it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
    echo "== installing Debian package dataset-fashion-mnist (quick preset data)"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
        || echo "!! could not install dataset-fashion-mnist; put the four Fashion-MNIST IDX files in resources/raw/fashion_mnist instead"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
echo "== installing torch, torchvision and clrepro into .venv"
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install -q -e '.[dev]'
echo "== ready: .venv/bin/snakemake --cores 2   (or: source .venv/bin/activate)"
