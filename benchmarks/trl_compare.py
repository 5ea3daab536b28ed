"""Seconds per GRPO step: limr.py against TRL's GRPOTrainer, one configuration, on this CPU, in one run, repeated.

Both train SmolLM2-135M-Instruct (the demo model) in float32 with LoRA r 16 / alpha 32 on every linear layer, on
the 64 toy prompts (the same rendered prompt text), 16 prompts x 4 samples per step at T 0.7, top_p 1, 64 new
tokens, one AdamW step per rollout at lr 2e-4, KL 0.01 to the base model (the adapter switched off), clip 0.2,
token-averaged loss, rewards from reward.py. Matched on purpose: no gradient checkpointing on either side (TRL's
default turns it on), micro-batches of about 16 sequences on both (TRL: 16 per device x 4 accumulation steps;
ours: --token-budget 1600), our uniform-group skipping off. Ours samples with vLLM in the training process;
TRL's colocated vLLM is tried too (it cannot load weights into vLLM's CPU backend) and TRL's default, transformers'
generate, is timed. TRL has no prefix sharing; ours runs with it (the default) and with --no-prefix-sharing.

A step is the time between the ends of consecutive optimizer steps (model loading and engine start-up excluded),
the first one dropped as warm-up; each side runs --repeats times (3), and we report the median step and the spread
over runs, with the time in generation and in the update per step on both sides (TRL's generation is timed around
its own _generate_and_score_completions). TRL runs in .venv-trl (scripts/setup_trl.sh), layered over .venv.

    scripts/setup_trl.sh && LD_PRELOAD=libtcmalloc_minimal.so.4 .venv/bin/python benchmarks/trl_compare.py --repeats 2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TRL_PYTHON = ROOT / ".venv-trl" / "bin" / "python"
STEPS = 5  # 1 warm-up + 4 timed
REPEATS = 3
SHARED = dict(n=4, temperature=0.7, max_prompt_tokens=256, max_response_tokens=64, prompts_per_step=16, lr=2e-4,
              kl=0.01, clip_eps=0.2, lora_rank=16, lora_alpha=32, seed=0)
OURS = ["--n", "4", "--prompts-per-step", "16", "--dtype", "float32", "--token-budget", "1600", "--train-batch", "64",
        "--no-skip-uniform-groups", "--no-gradient-checkpointing"]


def step_seconds(ends: list[float]) -> dict:
    """Median and all of the step times from the wall-clock ends of steps 1..STEPS (step 1 is warm-up)."""
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    return {"seconds_per_step": round(statistics.median(gaps), 2), "step_seconds": [round(g, 2) for g in gaps]}


def run_ours(out: Path, sharing: bool) -> dict:
    import limr

    argv = ["--preset", "demo", "--stage", "full", "--name", "ours", "--runs-dir", str(out), "--steps", str(STEPS),
            "--save-every", "1000", *OURS, *([] if sharing else ["--no-prefix-sharing"])]
    args = limr.parse_args(argv)
    for k, v in SHARED.items():
        assert getattr(args, k) == v, (k, getattr(args, k), v)  # the demo preset is the shared configuration
    run = limr.train(args)
    metrics = [json.loads(line) for line in open(run / "metrics.jsonl")]
    return {**step_seconds([m["time"] for m in metrics]),
            "mean_completion_tokens": round(statistics.mean(m["response_length"] for m in metrics[1:]), 1),
            "median_seconds_generate": round(statistics.median(m["seconds_generate"] + m["seconds_reward"]
                                                               for m in metrics[1:]), 2),
            "median_seconds_update": round(statistics.median(m["seconds_train"] + m["seconds_sync"]
                                                             for m in metrics[1:]), 2),
            "peak_rss_gb": round(metrics[-1]["peak_memory_gb"], 2),
            "accuracy_per_step": [round(m["accuracy"], 3) for m in metrics]}


def run_trl(out: Path, use_vllm: bool) -> dict:
    """Runs in .venv-trl (called by main through a subprocess)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import data
    import limr  # the same prompt rendering as ours
    import reward

    path = data.model_path("demo")
    tokenizer = AutoTokenizer.from_pretrained(path)
    args = limr.parse_args(["--preset", "demo", *OURS])
    rows = limr.encode_prompts(data.load_prompts("toy"), tokenizer, args)
    texts = [tokenizer.decode(r["prompt_ids"]) for r in rows]  # the exact prompt text ours tokenises
    dataset = Dataset.from_dict({"prompt": texts, "answer": [r["answer"] for r in rows]})
    stop = set(data.stop_token_ids(tokenizer, path))

    def reward_fn(prompts, completions, completion_ids, answer, **_):
        truncated = [len(ids) >= SHARED["max_response_tokens"] and ids[-1] not in stop for ids in completion_ids]
        return reward.rewards(completions, answer, truncated)

    ends, lengths = [], []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            ends.append(time.time())

        def on_log(self, _args, _state, _control, logs=None, **__):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    config = GRPOConfig(
        output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=16, gradient_accumulation_steps=4,
        num_generations=SHARED["n"], max_completion_length=SHARED["max_response_tokens"],
        temperature=SHARED["temperature"], top_p=1.0, learning_rate=SHARED["lr"], lr_scheduler_type="constant",
        weight_decay=0.0, max_grad_norm=1.0, beta=SHARED["kl"], epsilon=SHARED["clip_eps"], loss_type="dapo",
        scale_rewards="group", num_iterations=1, use_vllm=use_vllm, vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.3, vllm_max_model_length=SHARED["max_prompt_tokens"] + 64 + 64,
        use_cpu=True, bf16=False, fp16=False, logging_steps=1, save_strategy="no", report_to="none",
        seed=SHARED["seed"], dataloader_num_workers=0, disable_tqdm=False, gradient_checkpointing=False)
    lora = LoraConfig(r=SHARED["lora_rank"], lora_alpha=SHARED["lora_alpha"], lora_dropout=0.0,
                      target_modules=limr.LORA_TARGETS.split(","), task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=path, reward_funcs=reward_fn, args=config, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora, callbacks=[Clock()])
    generating, generate = [], trainer._generate_and_score_completions

    def timed(*a, **k):  # time TRL's own generation (and scoring) call, to split its step into phases
        t = time.time()
        out = generate(*a, **k)
        generating.append(time.time() - t)
        return out

    trainer._generate_and_score_completions = timed
    trainer.train()
    steps = step_seconds(ends)
    return {**steps, "median_seconds_generate": round(statistics.median(generating[1:]), 2),
            "median_seconds_update": round(steps["seconds_per_step"] - statistics.median(generating[1:]), 2),
            "mean_completion_tokens": round(statistics.mean(lengths[1:]), 1),
            "peak_rss_gb": round(limr.peak_memory_gb("cpu"), 2),
            "gradient_checkpointing": config.gradient_checkpointing}


def repeated(run, repeats: int) -> dict:
    """Repeated runs of one side: the median step and its spread over the runs, and the phases."""
    runs = [run() for _ in range(repeats)]
    if any("error" in r for r in runs):
        return next(r for r in runs if "error" in r)
    per_run = [r["seconds_per_step"] for r in runs]
    phases = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0] if k.startswith("median_")}
    return {"seconds_per_step": round(statistics.median(per_run), 2), "runs": per_run, **phases,
            "mean_completion_tokens": round(statistics.mean(r["mean_completion_tokens"] for r in runs), 1),
            "peak_rss_gb": max(r["peak_rss_gb"] for r in runs)}


def trl_side(side: str) -> dict:
    proc = subprocess.run([str(TRL_PYTHON), __file__, "--side", side], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    errors = [x for x in proc.stderr.splitlines() if "Error" in x and not x.startswith(" ")]
    return json.loads(lines[-1][7:]) if lines else {"error": errors[-1] if errors else proc.stderr[-500:]}


def ours_once(side: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:  # in its own process, like TRL's, so runs do not share an engine
        proc = subprocess.run([sys.executable, __file__, "--side", side, "--out", tmp], capture_output=True,
                              text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else {"error": proc.stderr[-500:]}


def ratio(slow: dict, fast: dict) -> dict:
    """slow's step time over fast's, every run against every run: the median and the range."""
    ratios = [t / o for t in slow["runs"] for o in fast["runs"]]
    return {"median": round(statistics.median(ratios), 2), "min": round(min(ratios), 2), "max": round(max(ratios), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", choices=["trl-vllm", "trl-generate", "ours", "ours-no-sharing"],
                   help="internal: one run, print JSON")
    p.add_argument("--out", default=str(ROOT / "reference" / "trl_compare.json"))
    p.add_argument("--repeats", type=int, default=REPEATS, help="runs of each side (the median is reported)")
    a = p.parse_args()
    if a.side in ("ours", "ours-no-sharing"):
        print("RESULT " + json.dumps(run_ours(Path(a.out), sharing=a.side == "ours")), flush=True)
        return
    if a.side:
        with tempfile.TemporaryDirectory() as tmp:
            print("RESULT " + json.dumps(run_trl(Path(tmp), use_vllm=a.side == "trl-vllm")), flush=True)
        return
    if not TRL_PYTHON.exists():
        sys.exit(f"{TRL_PYTHON} is missing: run scripts/setup_trl.sh first")
    results = {"trl-vllm": trl_side("trl-vllm")}  # one try: it fails at its first weight sync on a CPU
    print("trl-vllm", results["trl-vllm"], flush=True)
    results["trl-generate"] = repeated(lambda: trl_side("trl-generate"), a.repeats)
    print("trl-generate", results["trl-generate"], flush=True)
    for side in ("ours", "ours-no-sharing"):  # TRL has no prefix sharing: ours with it on (default) and off
        results[side] = repeated(lambda s=side: ours_once(s), a.repeats)
        print(side, results[side], flush=True)
    import torch
    import transformers
    import vllm

    versions = subprocess.run([str(TRL_PYTHON), "-c", "import trl, transformers, vllm; print(trl.__version__, "
                               "transformers.__version__, vllm.__version__)"], capture_output=True, text=True).stdout
    trl_v, trl_transformers, trl_vllm = versions.split()
    results = {"date": time.strftime("%Y-%m-%d"), "configuration": SHARED, "ours_flags": OURS,
               "steps_timed": STEPS - 1, "repeats": a.repeats, "torch_threads": torch.get_num_threads(),
               "cpu_count": os.cpu_count(), "trl": trl_v, "trl_side_transformers": trl_transformers,
               "trl_side_vllm": trl_vllm, "our_transformers": transformers.__version__, "our_vllm": vllm.__version__,
               **results}
    if "seconds_per_step" in results["trl-generate"]:
        results["trl-generate_over_ours"] = ratio(results["trl-generate"], results["ours"])
    if "seconds_per_step" in results["ours-no-sharing"]:
        results["sharing_off_over_on"] = ratio(results["ours-no-sharing"], results["ours"])
    Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
