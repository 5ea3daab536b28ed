"""The sync self-check's gap over every finished study run: how often a step's mean went over the limit, whether
such steps came alone, and how many tokens they trained. Backs the README's self-check paragraph and the two-steps
rule in limr.train. Reads each run's metrics.jsonl (logprob_diff_mean, train_tokens per step); a run counts once it
has logged all of its config's total_steps. Writes reference/study/selfcheck.json.

    .venv/bin/python benchmarks/selfcheck_stats.py [--runs-dir runs/study] [--limit 0.1]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import data  # noqa: E402  (read_rows: the JSONL reader limr.py itself uses)


def finished_steps(run: Path) -> list[dict] | None:
    """The run's per-step metrics, or None while it has not logged every step its config plans (a resumed run's
    metrics.jsonl holds each step once: limr.restore cuts it back to the checkpoint)."""
    rows = data.read_rows(run / "metrics.jsonl")
    return rows if len(rows) == json.loads((run / "config.json").read_text())["total_steps"] else None


def p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[98]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "study"), help="the folder make study writes runs to")
    p.add_argument("--limit", type=float, default=0.1, help="limr.py's limit for bfloat16 on either side")
    p.add_argument("--out", default=str(ROOT / "reference" / "study" / "selfcheck.json"))
    args = p.parse_args()
    runs = {}
    for run in sorted(Path(args.runs_dir).glob("*/metrics.jsonl")):
        rows = finished_steps(run.parent)
        if rows:
            runs[run.parent.name] = rows
    gaps = [r["logprob_diff_mean"] for rows in runs.values() for r in rows]
    trained = [r for rows in runs.values() for r in rows if r["train_tokens"]]  # steps where some group had signal
    few = [r["logprob_diff_mean"] for r in trained if r["train_tokens"] < 200]  # one group of 8 short responses
    over, pairs = [], []
    for name, rows in runs.items():
        g = [r["logprob_diff_mean"] for r in rows]
        pairs += [min(a, b) for a, b in zip(g, g[1:])]  # what the two-steps rule compares to the limit
        for i, r in enumerate(rows):
            if g[i] > args.limit:
                over.append({"run": name, "step": r["step"], "gap": round(g[i], 4), "train_tokens": r["train_tokens"],
                             "gap_before": round(g[i - 1], 4) if i else None,
                             "gap_after": round(g[i + 1], 4) if i + 1 < len(g) else None})
    out = {"date": time.strftime("%Y-%m-%d"), "runs": len(runs), "steps": len(gaps), "limit": args.limit,
           "gap_median": round(statistics.median(gaps), 4),
           "gap_p99": round(p99(gaps), 4), "gap_max": round(max(gaps), 4),
           "steps_that_trained": len(trained),
           "train_tokens_median": statistics.median(r["train_tokens"] for r in trained),
           "steps_under_200_train_tokens": len(few), "gap_p99_under_200_train_tokens": round(p99(few), 4),
           "gap_p99_200_or_more_train_tokens": round(p99([r["logprob_diff_mean"] for r in trained
                                                          if r["train_tokens"] >= 200]), 4),
           "steps_over_limit": over,
           "two_in_a_row_over_limit": sum(m > args.limit for m in pairs),
           "largest_of_two_in_a_row": round(max(pairs), 4)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
