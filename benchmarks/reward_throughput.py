"""Grading throughput at the paper's step size: 8 samples x 1,024 prompts = 8,192 responses of 1-3k characters.

Responses are built from MATH problems and golds: 45% right (the gold, sometimes in another form), 30% wrong
(another problem's gold), 15% with no boxed answer, 5% truncated, 5% looping. Each worker count starts a
fresh pool (start-up timed apart, as a training run pays it once), then grades one step it has never seen.
Writes reference/reward_throughput.json.
Run: LIMR_DATA_DIR=../shared/data .venv/bin/python benchmarks/reward_throughput.py
"""

import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import data  # noqa: E402
import reward  # noqa: E402

PROMPTS, SAMPLES = 1024, 8


def response(rng: random.Random, problem: dict, other: dict) -> tuple[str, str, bool]:
    """One synthetic response: reasoning filler of 1-3k characters, then an ending drawn from the mix above."""
    words = (problem["prompt"] + " so we compute each term and simplify the expression step by step").split()
    body = " ".join(rng.choice(words) for _ in range(rng.randint(150, 450)))
    kind = rng.random()
    if kind < 0.45:
        gold = problem["answer"]
        ans = gold.replace("\\frac", "\\dfrac") if rng.random() < 0.3 else gold
        return f"{body}\n\nTherefore the answer is $\\boxed{{{ans}}}$.", problem["answer"], False
    if kind < 0.75:
        return f"{body}\n\nThus the answer is \\boxed{{{other['answer']}}}.", problem["answer"], False
    if kind < 0.90:
        return f"{body}\n\nSo the final answer is {problem['answer']}.", problem["answer"], False
    if kind < 0.95:
        return body, problem["answer"], True
    return body + " Let me check again." * 40 + f" \\boxed{{{problem['answer']}}}", problem["answer"], False


def main() -> None:
    rng = random.Random(0)
    rows = [r for r in data.load_prompts("math8k")]
    batch = rng.sample(rows, PROMPTS)
    items = [response(rng, p, rng.choice(rows)) for p in batch for _ in range(SAMPLES)]
    responses, answers, truncated = map(list, zip(*items))
    chars = [len(r) for r in responses]
    results = {"responses": len(responses), "chars_min": min(chars), "chars_mean": sum(chars) / len(chars),
               "chars_max": max(chars), "runs": []}
    for workers in (1, 2):
        reward.close_workers()
        t = time.perf_counter()
        reward.rewards(["\\boxed{\\frac{1}{2}}"] * workers, ["0.5"] * workers, workers=workers)
        startup = time.perf_counter() - t
        t = time.perf_counter()
        r = reward.rewards(responses, answers, truncated, workers=workers)
        dt = time.perf_counter() - t
        run = {"workers": workers, "startup_seconds": round(startup, 2), "seconds": round(dt, 2),
               "responses_per_second": round(len(r) / dt, 1), "mix": {str(v): r.count(v) for v in (1.0, -0.5, -1.0)}}
        results["runs"].append(run)
        print(run, flush=True)
    long = " ".join(rng.choice(rows)["prompt"] for _ in range(60))[:19_000]  # one long, loop-free response
    for name, check in (("ours", reward.has_repetition), ("upstream_regex", re.compile(r"(.{5,}?)\1{4,}").search)):
        t = time.perf_counter()
        found = bool(check(long))
        results[f"repetition_check_19k_chars_{name}"] = {"seconds": round(time.perf_counter() - t, 4), "found": found}
    print({k: v for k, v in results.items() if k.startswith("repetition")})
    Path("reference").mkdir(exist_ok=True)
    Path("reference/reward_throughput.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
