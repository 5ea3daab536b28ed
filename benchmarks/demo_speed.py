"""What makes the demo's GRPO step faster on this CPU, as ratios measured in one run: the shorter demo prompt,
bfloat16 (training and generation; this CPU has avx512_bf16), and both.

Each variant runs in its own process: the demo preset's model and engine, then 4 GRPO steps on the same toy
batches (the first one warms up and is not timed); we record the median seconds of generation and of the update
per step and the tokens they handled. Whether a faster variant also learns as well is a separate question:
benchmarks/dtype_curves.py trains the demo's FULL run both ways. Writes reference/demo_speed.json.

    .venv/bin/python benchmarks/demo_speed.py        # about 10 minutes on a 2-core CPU
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LONG = ["--system", "Please reason step by step, and put your final answer within \\boxed{}.", "--example",
        "What is 3 + 4?|3 + 4 = 7. The answer is \\boxed{7}."]  # the demo's prompt until 2026-11-29
VARIANTS = {  # name -> flags on top of the demo preset (--example QUESTION|ANSWER: the worked example shown)
    "long prompt, float32": LONG,
    "long prompt, bfloat16": [*LONG, "--dtype", "bfloat16"],
    "short prompt, float32": [],
    "short prompt, bfloat16": ["--dtype", "bfloat16"],
}
STEPS = 4


def one(flags: list[str]) -> dict:
    sys.path.insert(0, str(ROOT))
    import data
    import limr
    import reward

    if "--example" in flags:  # the worked example is a constant of data/, not a flag: set it for this process
        i = flags.index("--example")
        data.TOY_EXAMPLE, flags = tuple(flags[i + 1].split("|")), flags[:i] + flags[i + 2:]
    args = limr.parse_args(["--preset", "demo", "--max-logprob-diff", "inf", *flags])
    path = data.model_path(args.model)
    policy, tokenizer = limr.load_policy(args, path, "cpu")
    rows = limr.encode_prompts(data.load_prompts(args.prompts), tokenizer, args)
    optimizer, scheduler = limr.make_optimizer(policy, args)
    llm = limr.start_vllm(args, path, "cpu")
    state = limr.run_state(args, ROOT / "runs", tokenizer, path, "cpu", reward.rewards)
    limr.sync_weights(llm, policy, state)
    steps = []
    for step in range(1, STEPS + 1):
        batch, _ = limr.step_batch(rows, step, args.prompts_per_step, args.seed)
        _, _, m = limr.grpo_step(llm, policy, optimizer, scheduler, batch, state, args, step)
        steps.append(m)
    timed = steps[1:]
    return {"prompt_tokens": round(statistics.mean(len(r["prompt_ids"]) for r in rows), 1),
            "response_tokens": round(statistics.mean(m["response_length"] for m in timed), 1),
            "accuracy": round(statistics.mean(m["accuracy"] for m in steps), 3),
            **{k: round(statistics.median(m[k] for m in timed), 2) for k in ("seconds_generate", "seconds_train")},
            "train_tokens_per_second": round(statistics.median(m["train_tokens_per_second"] for m in timed), 1)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print("RESULT " + json.dumps(one(sys.argv[2:])), flush=True)
        return
    out = {"date": time.strftime("%Y-%m-%d"), "steps_timed": STEPS - 1, "variants": {}}
    for name, flags in VARIANTS.items():
        done = subprocess.run([sys.executable, __file__, "--one", *flags], capture_output=True, text=True)
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        out["variants"][name] = json.loads(line[-1][7:]) if line else {"error": done.stderr[-500:]}
        print(name, out["variants"][name], flush=True)
    base = out["variants"]["long prompt, float32"]
    for v in out["variants"].values():
        if "error" not in v and "error" not in base:
            v["step_seconds_ratio"] = round((v["seconds_generate"] + v["seconds_train"]) /
                                            (base["seconds_generate"] + base["seconds_train"]), 2)
    path = ROOT / "reference" / "demo_speed.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
