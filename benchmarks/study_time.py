"""How long `make study` (or `make study-screen`) took, read back from the run folders it wrote, so a study spread
over several sittings (every stage skips what is done) still gets one honest figure.

A stage is timed from its config.json (written once the model is loaded and the run folder made) to its last
evaluation's summary.json (a screen's: its cost.json); what comes before the folder (starting Python, loading the
model, LIM on the FULL run) is the gap from the previous stage's end to that config.json, measured wherever two
stages ran back to back, and added as its median. Writes reference/study/time.json.

    .venv/bin/python benchmarks/study_time.py [--runs-dir runs/study] [--seeds 0,...,32] [--stages full,limr,rand]
    .venv/bin/python benchmarks/study_time.py --runs-dir runs/study-screen --seeds 0,1,2,3,4,5,6,7 --stages \
        full,screen,limr-k10,passrate-k10,rand-k10,limr-klim,passrate-klim,rand-klim,limr-k96,passrate-k96,rand-k96 \
        --out reference/study-screen/time.json
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import run_name, seed_list  # noqa: E402  (--stage all's folder names and --seeds)


def stage_times(run: Path) -> tuple[float, float]:
    """(start, end): the run's config.json written, its last evaluation (or a screen's cost) written."""
    end = max(p.stat().st_mtime for p in finished(run))
    return (run / "config.json").stat().st_mtime, end


def finished(run: Path) -> list[Path]:
    return [*run.glob("eval/step_*/summary.json"), *run.glob("cost.json")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "study"))
    p.add_argument("--seeds", default=",".join(str(s) for s in range(33)), help="make study's seeds")
    p.add_argument("--stages", default="full,limr,rand", help="the stages `make study` runs per seed")
    p.add_argument("--out", default=str(ROOT / "reference" / "study" / "time.json"))
    args = p.parse_args()
    root, stages = Path(args.runs_dir), args.stages.split(",")
    seeds = seed_list(args.seeds)
    runs = {(s, st): root / run_name("demo", st, s) for s in seeds for st in stages}
    missing = [str(r) for r in runs.values() if not finished(r)]
    if missing:
        raise SystemExit(f"not finished: {', '.join(missing)}")
    spans = {k: stage_times(r) for k, r in runs.items()}
    # every run folder under runs-dir (the study-methods stages too), in the order they ran: the back-to-back gaps
    every = sorted(stage_times(r) for r in root.iterdir() if finished(r))
    gaps = [b[0] - a[1] for a, b in zip(every, every[1:]) if 0 < b[0] - a[1] < 300]
    gap = statistics.median(gaps)
    per_seed = {s: sum(spans[s, st][1] - spans[s, st][0] + gap for st in stages) / 60 for s in seeds}
    out = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "seeds": seeds, "stages": stages,
           "start_up_seconds_median": round(gap, 1), "start_up_gaps_measured": len(gaps),
           "stage_minutes_mean": {st: round(statistics.mean(spans[s, st][1] - spans[s, st][0] + gap
                                                            for s in seeds) / 60, 2) for st in stages},
           "per_seed_minutes": {s: round(m, 2) for s, m in per_seed.items()},
           "total_minutes": round(sum(per_seed.values()), 1),
           "total_hours": round(sum(per_seed.values()) / 60, 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
