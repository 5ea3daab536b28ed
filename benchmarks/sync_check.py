"""The sync self-check's scale: how far vLLM's log-probs of the sampled tokens are from the trainer's, per step.

Three ways to run the demo preset (SmolLM2-135M, toy task, T 0.7) for a few steps on this CPU:
  fp32        trainer and vLLM in float32, weights synced after every step (what the demo does)
  bf16        both in bfloat16, synced (what a GPU run does)
  stale fp32  float32, but the sync is skipped: vLLM keeps sampling from the base model while the policy learns
The first two are the noise the check must tolerate; the third is the bug it must catch. limr.py's default
--max-logprob-diff sits between them. Writes reference/sync_check.json.

    .venv/bin/python benchmarks/sync_check.py        # about 10 minutes on a 2-core CPU
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import data  # noqa: E402
import limr  # noqa: E402
import reward  # noqa: E402

torch = limr.torch
STEPS = 6


def run(dtype: str, sync: bool) -> list[dict]:
    args = limr.parse_args(["--preset", "demo", "--dtype", dtype, "--no-skip-uniform-groups"])
    path = data.model_path(args.model)
    policy, tokenizer = limr.load_policy(args, path, "cpu")
    rows = limr.encode_prompts(data.toy_task("train"), tokenizer, args)
    optimizer, scheduler = limr.make_optimizer(policy, args)
    llm = limr.start_vllm(args, path, "cpu")
    state = {"device": "cpu", "dtype": getattr(torch, dtype), "stop_ids": data.stop_token_ids(tokenizer, path),
             "reward_fn": reward.rewards, "pad_id": tokenizer.pad_token_id}
    limr.sync_weights(llm, policy, state["dtype"])
    out = []
    for step in range(1, STEPS + 1):
        batch, _ = limr.step_batch(rows, step, args.prompts_per_step, args.seed)
        if sync:
            _, _, m = limr.grpo_step(llm, policy, optimizer, scheduler, batch, state, args, step)
        else:  # grpo_step without its last line: the engine keeps the weights it started with
            samples = limr.rollout(llm, batch, args, state["stop_ids"], step)
            rewards = reward.rewards([s["text"] for s in samples], [batch[s["prompt"]]["answer"] for s in samples],
                                     [s["truncated"] for s in samples])
            grouped = torch.tensor(rewards).view(len(batch), args.n)
            for s, a, u in zip(samples, limr.group_advantages(grouped).flatten().tolist(),
                               limr.uniform_groups(grouped).repeat_interleave(args.n).tolist()):
                s.update(advantage=a, uniform=u, prompt_ids=batch[s["prompt"]]["prompt_ids"])
            m = limr.train_step(policy, optimizer, scheduler, samples, args, state["pad_id"], "cpu", step)
        out.append({"step": step, "logprob_diff_mean": round(m["logprob_diff_mean"], 6),
                    "logprob_diff_max": round(m["logprob_diff_max"], 4)})
        print(dtype, "synced" if sync else "stale", out[-1], flush=True)
    del llm
    return out


def main() -> None:
    t = time.time()
    result = {"date": time.strftime("%Y-%m-%d"), "model": "SmolLM2-135M-Instruct (demo preset, T 0.7, lr 2e-4)",
              "fp32": run("float32", True), "bf16": run("bfloat16", True), "stale_fp32": run("float32", False)}
    result["minutes"] = round((time.time() - t) / 60, 1)
    path = ROOT / "reference" / "sync_check.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
