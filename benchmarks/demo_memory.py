"""Memory and time of the demo's GRPO update against --token-budget (and gradient checkpointing), on this CPU.

One update of the demo model (SmolLM2-135M, float32, LoRA r 16) on a full rollout of 16 toy prompts x 4 samples
(no group skipped) with 21-token responses, the demo's typical length: the reference pass, then forward and
backward. Each setting runs in its own process, so its peak resident memory (ru_maxrss, model and all) is its own.

    .venv/bin/python benchmarks/demo_memory.py            # -> reference/demo_memory.json
"""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = [(8192, False), (4096, False), (2048, False), (8192, True)]  # (token budget, gradient checkpointing)


def one(budget: int, checkpointing: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    import data
    import limr

    flags = ["--preset", "demo", "--token-budget", str(budget), "--no-skip-uniform-groups"]
    args = limr.parse_args(flags + (["--gradient-checkpointing"] if checkpointing else []))
    policy, tokenizer = limr.load_policy(args, data.model_path(args.model), "cpu")
    rows = limr.encode_prompts(data.toy_task("train")[: args.prompts_per_step], tokenizer, args)
    response = tokenizer("12 + 30 = 42, so the answer is \\boxed{42}.", add_special_tokens=False).input_ids
    samples = [{"prompt_ids": r["prompt_ids"], "ids": response[:21], "advantage": (-1.0) ** k}
               for r in rows for k in range(args.n)]
    optimizer = limr.torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=args.lr)
    scheduler = limr.torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    seconds = []
    for step in (1, 2):  # the first one warms up
        t = time.perf_counter()
        limr.train_step(policy, optimizer, scheduler, samples, args, tokenizer.eos_token_id, "cpu", step)
        seconds.append(time.perf_counter() - t)
    return {"token_budget": budget, "gradient_checkpointing": checkpointing, "sequences": len(samples),
            "tokens": sum(len(s["prompt_ids"]) + len(s["ids"]) for s in samples),
            "update_seconds": round(seconds[1], 1),
            "peak_rss_gb": round(limr.peak_memory_gb("cpu"), 2)}


def main() -> None:
    if len(sys.argv) == 3:
        print("RESULT " + json.dumps(one(int(sys.argv[1]), sys.argv[2] == "1")), flush=True)
        return
    results = []
    for budget, ckpt in SETTINGS:
        out = subprocess.run([sys.executable, __file__, str(budget), str(int(ckpt))], capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        results.append(json.loads(line[-1][7:]) if line else {"token_budget": budget, "error": out.stderr[-400:]})
        print(results[-1], flush=True)
    path = ROOT / "reference" / "demo_memory.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
