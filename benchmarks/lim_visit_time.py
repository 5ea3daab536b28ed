"""Why LIM keeps fewer problems of a larger pool: the model learns within an epoch, and LIM's epoch accuracy does not
say when in the epoch a problem was drawn.

On a FULL run's rollouts (our log: each problem once per epoch, at a step of its own), per epoch: the correlation
between the step a problem was drawn at and its accuracy, and the training accuracy of the epoch's first and last
thirds of steps. Then LIM's s against a reference that knows the step: a problem's accuracy each epoch compared with
the run's accuracy around the step it was drawn at (the mean over the steps within +-W of it), in place of the
epoch's mean r_avg^k (same denominator as LIM's): how many problems that version keeps at theta = 0.6, beside LIM's
own count. Reads run folders, trains nothing. Writes reference/study-screen/visit_time.json.

    .venv/bin/python benchmarks/lim_visit_time.py runs/study-screen/demo-full*
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lim  # noqa: E402

WINDOW = 4  # steps either side of a problem's step in the run's smoothed accuracy


def visits(run: Path) -> tuple[dict, np.ndarray]:
    """id -> {epoch: (step, accuracy)}, and the run's accuracy at each step (index step - 1)."""
    out: dict[str, dict[int, tuple[int, float]]] = {}
    per_step = []
    for f in sorted((run / "rollouts").glob("step_*.jsonl.gz")):
        rows = lim.read_rows_of("limr", f)  # our rollout log, read as lim.py reads it
        per_step.append(np.mean([x == 1 for r in rows for x in r["rewards"]]))
        for r in rows:
            out.setdefault(r["id"], {})[r["epoch"]] = (r["step"], float(np.mean([x == 1 for x in r["rewards"]])))
    return out, np.array(per_step)


def analyse(run: Path, theta: float = lim.THETA) -> dict:
    seen, step_acc = visits(run)
    ids = [i for i, v in seen.items() if len(v) == max(map(len, seen.values()))]
    epochs = sorted(seen[ids[0]])
    r = np.array([[seen[i][k][1] for k in epochs] for i in ids])
    steps = np.array([[seen[i][k][0] for k in epochs] for i in ids])
    smooth = np.array([step_acc[max(0, s - 1 - WINDOW): s + WINDOW].mean() for s in range(1, len(step_acc) + 1)])
    reference = smooth[steps - 1]  # the run's accuracy around the step each problem was drawn at
    s, r_avg = lim.lim_scores(r)
    s_step = 1 - ((r - reference) ** 2).sum(axis=1) / ((1 - r_avg) ** 2).sum()
    per_epoch = []
    for k in range(len(epochs)):
        in_epoch = np.unique(steps[:, k])
        third = max(1, len(in_epoch) // 3)
        per_epoch.append({"corr_step_accuracy": round(float(np.corrcoef(steps[:, k], r[:, k])[0, 1]), 3),
                          "accuracy_first_third": round(float(step_acc[in_epoch[:third] - 1].mean()), 3),
                          "accuracy_last_third": round(float(step_acc[in_epoch[-third:] - 1].mean()), 3)})
    return {"problems": len(ids), "steps_per_epoch": int(len(step_acc) / len(epochs)),
            "r_avg": [round(float(x), 3) for x in r_avg], "per_epoch": per_epoch,
            "lim_kept": int((s >= theta).sum()), "step_reference_kept": int((s_step >= theta).sum())}


def main() -> None:
    runs = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "runs" / "study-screen").glob("demo-full*"))
    out = {"date": time.strftime("%Y-%m-%d"), "window": WINDOW, "runs": {r.name: analyse(r) for r in runs}}
    kept = [v["lim_kept"] for v in out["runs"].values()]
    out["lim_kept_mean"] = round(float(np.mean(kept)), 1)
    out["step_reference_kept_mean"] = round(float(np.mean([v["step_reference_kept"] for v in out["runs"].values()])),
                                            1)
    path = ROOT / "reference" / "study-screen" / "visit_time.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
