#!/usr/bin/env bash
# .venv-verl: verl for benchmarks/engine_fixtures.py only, layered over .venv like .venv-trl (a .pth file puts
# .venv's packages after its own). verl installs and imports on a CPU; the fixture script runs its reward manager
# and rollout dump writer, not its Ray/GPU trainer.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || scripts/setup.sh
purelib() { "$1" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"; }
python3 -m venv .venv-verl
purelib .venv/bin/python > "$(purelib .venv-verl/bin/python)/limr_base.pth"
.venv-verl/bin/python -m pip install "verl==0.9.1"
