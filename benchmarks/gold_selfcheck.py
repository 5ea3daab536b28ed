"""Gold self-check: every gold answer, boxed in a response, must grade +1 against itself; and no false accepts:
2,000 random pairs of golds from different problems, every pair graded equivalent listed for a human to check.

Also counts how many golds math-verify alone accepts (our LaTeX parse, none of our shortcuts or guards), and how
often the upstream call (math-verify on bare strings) does. Writes reference/gold_selfcheck.json.
Run: LIMR_DATA_DIR=../shared/data .venv/bin/python benchmarks/gold_selfcheck.py
"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from math_verify import parse, verify  # noqa: E402
from tqdm import tqdm  # noqa: E402

import data  # noqa: E402
from reward import _clean, _parse, rewards  # noqa: E402


def main() -> None:
    golds = [(f"math8k/{r['id']}", r["answer"]) for r in data.load_prompts("math8k", strict=False)]
    for b in data.BENCHMARKS:
        golds += [(r["id"], r["answer"]) for r in data.load_benchmark(b)]
    responses = ["Let me think step by step. ... The answer is \\boxed{" + g + "}." for _, g in golds]
    r = rewards(responses, [g for _, g in golds], workers=2)
    failed = [{"id": i, "gold": g, "reward": x} for (i, g), x in zip(golds, r) if x != 1.0]
    mv_only = upstream = 0
    for _, g in tqdm(golds, desc="math-verify alone", mininterval=5):
        gp = _parse(_clean(g))
        mv_only += bool(gp) and verify(gp, gp)
        try:
            upstream += verify(parse(g), parse(g))  # upstream's math_equal2(gold, pred) with pred == gold
        except Exception:
            pass
    rng = random.Random(0)
    pairs = []
    while len(pairs) < 2000:
        (i, a), (j, b) = rng.sample(golds, 2)
        if i != j and a.strip() and b.strip():
            pairs.append(((i, a), (j, b)))
    verdicts = rewards(["\\boxed{" + a + "}" for (_, a), _ in pairs], [b for _, (_, b) in pairs], workers=2)
    accepted = [{"pred": a, "gold": b, "ids": [i, j]} for ((i, a), (j, b)), v in zip(pairs, verdicts) if v == 1.0]
    out = {
        "answers": len(golds),
        "reward_1.0": len(golds) - len(failed),
        "rate": (len(golds) - len(failed)) / len(golds),
        "failed": failed,
        "math_verify_latex_alone_accepts": int(mv_only),
        "upstream_bare_string_accepts": int(upstream),
        "random_pairs": len(pairs),
        "random_pairs_graded_equivalent": accepted,
    }
    Path("reference").mkdir(exist_ok=True)
    Path("reference/gold_selfcheck.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
