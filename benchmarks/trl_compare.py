"""Seconds per GRPO step: limr.py against TRL's GRPOTrainer, same configuration, on this CPU, in one run.

Both train SmolLM2-135M-Instruct (the demo model) with LoRA r 16 / alpha 32 on every linear layer, on the 96 toy
prompts (the same rendered prompt text: chat template, system prompt, one worked example), 16 prompts x 4 samples
per step at T 0.7, top_p 1, 64 new tokens, one AdamW step per rollout at lr 2e-4, KL 0.01 to the base model (the
adapter switched off), clip 0.2, token-averaged loss, rewards from reward.py. Both sample with vLLM in the training
process: ours through limr.py, TRL's with `use_vllm=True, vllm_mode="colocate"`. We also time TRL's default
(transformers' generate), since that is what a TRL user gets without vLLM. Our demo preset skips groups whose
samples all got the same reward; it is switched off here so both do the same work.

A step is the time between the ends of consecutive optimizer steps (model loading and engine start-up excluded);
the first step is dropped as warm-up and the median of the rest is reported, with each run's mean completion length
so the work per step can be compared. TRL runs in its own environment, .venv-trl (scripts/setup_trl.sh), which adds
trl and its few extra packages on top of .venv, so both use the same torch, transformers, peft and vLLM.

    scripts/setup_trl.sh && .venv/bin/python benchmarks/trl_compare.py      # -> reference/trl_compare.json
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
STEPS = 6  # 1 warm-up + 5 timed
SHARED = dict(n=4, temperature=0.7, max_prompt_tokens=256, max_response_tokens=64, prompts_per_step=16, lr=2e-4,
              kl=0.01, clip_eps=0.2, lora_rank=16, lora_alpha=32, seed=0)


def step_seconds(ends: list[float]) -> dict:
    """Median and all of the step times from the wall-clock ends of steps 1..STEPS (step 1 is warm-up)."""
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    return {"seconds_per_step": round(statistics.median(gaps), 2), "step_seconds": [round(g, 2) for g in gaps]}


def run_ours(out: Path) -> dict:
    import limr

    argv = ["--preset", "demo", "--stage", "full", "--name", "ours", "--runs-dir", str(out), "--steps", str(STEPS),
            "--train-batch", "64", "--save-every", "1000", "--no-skip-uniform-groups"]
    args = limr.parse_args(argv)
    for k, v in SHARED.items():
        assert getattr(args, k) == v, (k, getattr(args, k), v)  # the demo preset is the shared configuration
    run = limr.train(args)
    metrics = [json.loads(line) for line in open(run / "metrics.jsonl")]
    return {**step_seconds([m["time"] for m in metrics]),
            "mean_completion_tokens": round(statistics.mean(m["response_length"] for m in metrics[1:]), 1),
            **{f"median_{k}": round(statistics.median(m[k] for m in metrics[1:]), 2)
               for k in ("seconds_generate", "seconds_reward", "seconds_train", "seconds_sync")},
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
    args = limr.parse_args(["--preset", "demo"])
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
        seed=SHARED["seed"], dataloader_num_workers=0, disable_tqdm=False)
    lora = LoraConfig(r=SHARED["lora_rank"], lora_alpha=SHARED["lora_alpha"], lora_dropout=0.0,
                      target_modules=limr.LORA_TARGETS.split(","), task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=path, reward_funcs=reward_fn, args=config, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora, callbacks=[Clock()])
    trainer.train()
    return {**step_seconds(ends), "mean_completion_tokens": round(statistics.mean(lengths[1:]), 1),
            "peak_rss_gb": round(limr.peak_memory_gb("cpu"), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", choices=["trl-vllm", "trl-generate"], help="internal: run one TRL side, print JSON")
    p.add_argument("--out", default=str(ROOT / "reference" / "trl_compare.json"))
    a = p.parse_args()
    if a.side:
        with tempfile.TemporaryDirectory() as tmp:
            print("RESULT " + json.dumps(run_trl(Path(tmp), use_vllm=a.side == "trl-vllm")), flush=True)
        return
    if not TRL_PYTHON.exists():
        sys.exit(f"{TRL_PYTHON} is missing: run scripts/setup_trl.sh first")
    results = {}
    for side in ("trl-vllm", "trl-generate"):  # TRL first: its runs must not share a process with our engine
        proc = subprocess.run([str(TRL_PYTHON), __file__, "--side", side], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        errors = [x for x in proc.stderr.splitlines() if "Error" in x and not x.startswith(" ")]
        results[side] = json.loads(lines[-1][7:]) if lines else {"error": errors[-1] if errors else proc.stderr[-500:]}
        print(side, results[side], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results["ours"] = run_ours(Path(tmp))
    print("ours", results["ours"], flush=True)
    import torch
    import transformers
    import vllm

    versions = subprocess.run([str(TRL_PYTHON), "-c", "import trl, transformers, vllm; print(trl.__version__, "
                               "transformers.__version__, vllm.__version__)"], capture_output=True, text=True).stdout
    trl_v, trl_transformers, trl_vllm = versions.split()
    results = {"configuration": SHARED, "steps_timed": STEPS - 1, "torch_threads": torch.get_num_threads(),
               "cpu_count": os.cpu_count(), "trl": trl_v, "trl_side_transformers": trl_transformers,
               "trl_side_vllm": trl_vllm, "our_transformers": transformers.__version__, "our_vllm": vllm.__version__,
               **results}
    for side in ("trl-vllm", "trl-generate"):
        if "seconds_per_step" in results[side]:
            ratio = results[side]["seconds_per_step"] / results["ours"]["seconds_per_step"]
            results[f"{side}_over_ours"] = round(ratio, 2)
    Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
