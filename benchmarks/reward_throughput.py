"""Grading throughput at the paper's step size: 8 samples x 1,024 prompts = 8,192 responses of 1-3k characters,
graded by a committed reward.py (`git show BASE:reward.py`, BASE: --base, HEAD by default; run from a temp dir with
its own workers) and by the working-tree one, in one run on the same responses, so their ratio is not skewed by a
busier or quieter machine.

Responses are built from MATH problems and golds: 45% right (the gold, sometimes in another form), 30% wrong
(another problem's gold), 15% with no boxed answer, 5% truncated, 5% looping. Each timed pass starts a fresh pool
(start-up timed apart, as a training run pays it once) and grades the whole step; old and new take turns, three
times, each going first in turn (a machine that warms up or gets busier favours neither), and the fastest pass of
each counts. Writes reference/reward_throughput.json.
Run: LIMR_DATA_DIR=../shared/data .venv/bin/python benchmarks/reward_throughput.py [--workers 2] [--base REV]
"""

import argparse
import importlib.util
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import data  # noqa: E402
import reward  # noqa: E402

PROMPTS, SAMPLES, ROUNDS = 1024, 8, 3


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


def committed_reward(tmp: Path, base: str):
    """reward.py as committed at `base`, imported from tmp under another name; its workers run that file."""
    path = tmp / "reward.py"
    path.write_text(subprocess.run(["git", "show", f"{base}:reward.py"], cwd=ROOT, check=True, capture_output=True,
                                   text=True).stdout)
    spec = importlib.util.spec_from_file_location("reward_head", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_pass(module, responses, answers, truncated, workers: int) -> tuple[dict, list[float]]:
    module.close_workers()
    t = time.perf_counter()
    module.rewards(["\\boxed{\\frac{1}{2}}"] * workers, ["0.5"] * workers, workers=workers)  # start the pool
    startup = time.perf_counter() - t
    t = time.perf_counter()
    r = module.rewards(responses, answers, truncated, workers=workers)
    dt = time.perf_counter() - t
    module.close_workers()
    return {"startup_seconds": round(startup, 2), "seconds": round(dt, 2),
            "responses_per_second": round(len(r) / dt, 1)}, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--base", default="HEAD", help="the commit whose reward.py is 'old'")
    args = ap.parse_args()
    rng = random.Random(0)
    rows = [r for r in data.load_prompts("math8k")]
    batch = rng.sample(rows, PROMPTS)
    items = [response(rng, p, rng.choice(rows)) for p in batch for _ in range(SAMPLES)]
    responses, answers, truncated = map(list, zip(*items))
    chars = [len(r) for r in responses]
    results = {"responses": len(responses), "chars_min": min(chars), "chars_mean": sum(chars) / len(chars),
               "chars_max": max(chars), "workers": args.workers, "passes": [],
               "base": subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True,
                                      capture_output=True, text=True).stdout.strip()}
    with tempfile.TemporaryDirectory() as tmp:
        impls = {"old (base)": committed_reward(Path(tmp), args.base), "new (working tree)": reward}
        rewards_by = {}
        for round_ in range(ROUNDS):
            for name, module in list(impls.items())[:: 1 if round_ % 2 == 0 else -1]:
                run, rewards_by[name] = timed_pass(module, responses, answers, truncated, args.workers)
                run = {"reward": name, "round": round_, **run}
                results["passes"].append(run)
                print(run, flush=True)
    best = {name: min(p["seconds"] for p in results["passes"] if p["reward"] == name) for name in impls}
    results["best_seconds"] = best
    results["ratio_new_over_old"] = round(best["new (working tree)"] / best["old (base)"], 3)
    old, new = rewards_by["old (base)"], rewards_by["new (working tree)"]
    results["mix"] = {name: {str(v): r.count(v) for v in (1.0, -0.5, -1.0)} for name, r in rewards_by.items()}
    results["verdicts_changed"] = [{"answer": answers[i], "boxed": reward.extract_boxed(responses[i]), "old": old[i],
                                    "new": new[i]} for i in range(len(old)) if old[i] != new[i]]
    print({k: results[k] for k in ("best_seconds", "ratio_new_over_old", "mix")})
    long = " ".join(rng.choice(rows)["prompt"] for _ in range(60))[:19_000]  # one long, loop-free response
    for name, check in (("ours", reward.has_repetition), ("upstream_regex", re.compile(r"(.{5,}?)\1{4,}").search)):
        t = time.perf_counter()
        found = bool(check(long))
        results[f"repetition_check_19k_chars_{name}"] = {"seconds": round(time.perf_counter() - t, 4), "found": found}
    print({k: v for k, v in results.items() if k.startswith("repetition")})
    (ROOT / "reference").mkdir(exist_ok=True)
    (ROOT / "reference/reward_throughput.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
