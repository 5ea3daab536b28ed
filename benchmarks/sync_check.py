"""The sync self-check's scale: how far vLLM's log-probs of the sampled tokens are from the trainer's, per step.

The demo preset (SmolLM2-135M, toy task, T 0.7, lr 2e-4) for 10 steps on this CPU, five ways:
  fp32 merged          trainer and a float32 engine, merged weights reloaded every step (the CPU default)
  bf16 -> fp32 merged  trainer in bfloat16, merged weights into a float32 engine (the demo preset)
  bf16 lora            trainer and engine in bfloat16, the adapter served unmerged (what a GPU runs)
  bf16 merged          trainer and engine in bfloat16, merged weights: W + BA rounded to bf16 (the pitfall)
  fp32 stale           float32, but the sync is skipped: vLLM keeps sampling from the base model (a bug)
The first three are noise the check must tolerate; the last two are what it must catch. limr.py's default
--max-logprob-diff sits between them. Writes reference/sync_check.json.

    .venv/bin/python benchmarks/sync_check.py        # about 20 minutes on a 2-core CPU
"""

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import data  # noqa: E402
import limr  # noqa: E402
import reward  # noqa: E402

torch = limr.torch
STEPS = 10
VARIANTS = {  # name -> (policy dtype, sync, engine dtype, sync every step)
    "fp32 merged": ("float32", "merged", "float32", True),
    "bf16 -> fp32 merged": ("bfloat16", "merged", "float32", True),
    "bf16 lora": ("bfloat16", "lora", "bfloat16", True),
    "bf16 merged": ("bfloat16", "merged", "bfloat16", True),
    "fp32 stale": ("float32", "merged", "float32", False),
}


def run(dtype: str, sync: str, engine: str, every_step: bool, folder: Path) -> list[dict]:
    args = limr.parse_args(["--preset", "demo", "--dtype", dtype, "--sync", sync, "--no-skip-uniform-groups",
                            "--max-logprob-diff", "inf"])
    path = data.model_path(args.model)
    policy, tokenizer = limr.load_policy(args, path, "cpu")
    rows = limr.encode_prompts(data.toy_task("train"), tokenizer, args)
    optimizer, scheduler = limr.make_optimizer(policy, args)
    state = limr.run_state(args, folder, tokenizer, path, "cpu", reward.rewards)
    state["engine_dtype"] = getattr(torch, engine)
    llm = data.vllm_engine(path, dtype=engine, seed=0, max_model_len=512, logprobs_mode="processed_logprobs",
                           **(dict(enable_lora=True, max_lora_rank=16, max_loras=1) if sync == "lora" else {}))
    limr.sync_weights(llm, policy, state)
    out = []
    for step in range(1, STEPS + 1):
        batch, _ = limr.step_batch(rows, step, args.prompts_per_step, args.seed)
        if every_step:
            _, _, m = limr.grpo_step(llm, policy, optimizer, scheduler, batch, state, args, step)
        else:  # grpo_step without its sync: the engine keeps the weights it started with
            samples = limr.rollout(llm, batch, args, state["stop_ids"], step, state.get("lora"))
            rewards = reward.rewards([s["text"] for s in samples], [batch[s["prompt"]]["answer"] for s in samples],
                                     [s["truncated"] for s in samples])
            grouped = torch.tensor(rewards).view(len(batch), args.n)
            for s, a, u in zip(samples, limr.group_advantages(grouped).flatten().tolist(),
                               limr.uniform_groups(grouped).repeat_interleave(args.n).tolist()):
                s.update(advantage=a, uniform=u, prompt_ids=batch[s["prompt"]]["prompt_ids"])
            m = limr.train_step(policy, optimizer, scheduler, samples, args, state["pad_id"], "cpu", step)
        out.append({"step": step, "logprob_diff_mean": round(m["logprob_diff_mean"], 6),
                    "logprob_diff_max": round(m["logprob_diff_max"], 4)})
        print(dtype, sync, engine, out[-1], flush=True)
    del llm
    return out


def main() -> None:
    t = time.time()
    result = {"date": time.strftime("%Y-%m-%d"), "model": "SmolLM2-135M-Instruct (demo preset, T 0.7, lr 2e-4)"}
    for name, variant in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            result[name] = run(*variant, Path(tmp))
    result["minutes"] = round((time.time() - t) / 60, 1)
    path = ROOT / "reference" / "sync_check.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
