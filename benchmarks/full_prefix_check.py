"""Is a 2-epoch FULL run the first two epochs of a 4-epoch one? (reference/study-screen-e2/declaration.md)

The learning rate is constant after warm-up, each epoch's order is a seeded shuffle of its own and sampling seeds
follow the step, so a shorter run should repeat a longer one's first steps exactly, up to floating-point noise on
the CPU. Per pair of runs (the same seed), over their common steps: how many steps logged the same problems, the
same responses and the same rewards, the first step that differs, and how many problems LIM keeps reading each
run's first two epochs. Reads run folders, trains nothing.

    .venv/bin/python benchmarks/full_prefix_check.py runs/study-screen-e2 runs/study-screen \\
        --out reference/study-screen-e2/full_prefix_check.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lim  # noqa: E402


def step_rows(run: Path, step: int) -> list[dict]:
    return lim.read_rows_of("limr", run / "rollouts" / f"step_{step:06d}.jsonl.gz")  # as lim.py reads our log


def kept(run: Path, epochs: int) -> int:
    """How many problems LIM keeps at the paper's theta reading the run's first `epochs` epochs."""
    acc = lim.trajectories(run / "rollouts", None, epochs)[2]
    s, _ = lim.lim_scores(lim.fill_missing(acc))  # as lim.py scores it
    return int((s >= lim.THETA).sum())


def finished(run: Path) -> bool:
    """A run folder whose every step's rollouts were written."""
    if not (run / "config.json").exists():
        return False
    steps = json.loads((run / "config.json").read_text())["total_steps"]
    return (run / "rollouts" / f"step_{steps:06d}.jsonl.gz").exists()


def compare(short: Path, long: Path) -> dict:
    steps = json.loads((short / "config.json").read_text())["total_steps"]
    same = {"problems": 0, "responses": 0, "rewards": 0}
    first_diff = None
    for step in range(1, steps + 1):
        a, b = step_rows(short, step), step_rows(long, step)
        checks = {"problems": [r["id"] for r in a] == [r["id"] for r in b],
                  "responses": [r["responses"] for r in a] == [r["responses"] for r in b],
                  "rewards": [r["rewards"] for r in a] == [r["rewards"] for r in b]}
        for k, ok in checks.items():
            same[k] += ok
        if first_diff is None and not all(checks.values()):
            first_diff = step
    return {"short": str(short), "long": str(long), "common_steps": steps, "steps_same": same,
            "first_step_that_differs": first_diff, "lim_kept_short": kept(short, 2), "lim_kept_long_2_epochs":
            kept(long, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("short_dir", help="runs folder of the 2-epoch FULL runs")
    p.add_argument("long_dir", help="runs folder of the 4-epoch FULL runs (the same names)")
    p.add_argument("--out", default="reference/study-screen-e2/full_prefix_check.json")
    args = p.parse_args()
    pairs = [(f, Path(args.long_dir) / f.name) for f in sorted(Path(args.short_dir).glob("demo-full*"))
             if finished(f) and finished(Path(args.long_dir) / f.name)]
    report = {"date": time.strftime("%Y-%m-%d"), "pairs": [compare(a, b) for a, b in pairs]}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    for r in report["pairs"]:
        print(Path(r["short"]).name, r["steps_same"], "of", r["common_steps"], "first differing step:",
              r["first_step_that_differs"], "LIM keeps", r["lim_kept_short"], "/", r["lim_kept_long_2_epochs"])


if __name__ == "__main__":
    main()
