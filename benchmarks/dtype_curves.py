"""Does bfloat16 hurt the demo's learning? The demo preset's FULL run twice from the same seed, in float32 and in
bfloat16 (the preset's, 2.2x faster per update on this CPU: reference/demo_speed.json): training accuracy per
epoch, held-out accuracy at each checkpoint and the time, side by side. Writes reference/dtype_curves.json and
reference/dtype_curves.png.

    .venv/bin/python benchmarks/dtype_curves.py        # about 30 minutes on a 2-core CPU
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import data  # noqa: E402
import evaluate  # noqa: E402
import figures  # noqa: E402


def main() -> None:
    out = {"date": time.strftime("%Y-%m-%d"), "runs": {},  # wall minutes are not a controlled timing (demo_speed.py is)
           "timing": "wall minutes per run, with whatever else ran on the machine; speed: reference/demo_speed.json"}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "bfloat16"):
            t = time.time()
            subprocess.run([sys.executable, str(ROOT / "limr.py"), "--preset", "demo", "--stage", "full", "--dtype",
                            dtype, "--runs-dir", tmp, "--name", dtype, "--eval-benchmarks", "toy"], check=True)
            run = Path(tmp) / dtype
            metrics = data.read_rows(run / "metrics.jsonl")
            evals = {int(p.parent.name.split("_")[1]): round(evaluate.mean_pass(json.loads(p.read_text())), 1)
                     for p in sorted(run.glob("eval/step_*/summary.json"))}
            out["runs"][dtype] = {
                "minutes": round((time.time() - t) / 60, 1),
                "train_accuracy_per_epoch": [round(statistics.mean(m["accuracy"] for m in metrics if m["epoch"] == e),
                                                   3) for e in sorted({m["epoch"] for m in metrics})],
                "held_out_accuracy": evals, "metrics": metrics}
            print(dtype, {k: v for k, v in out["runs"][dtype].items() if k != "metrics"}, flush=True)
    figures.training_curves({d: r["metrics"] for d, r in out["runs"].items()}, ROOT / "reference" / "dtype_curves.png",
                            {d: (list(r["held_out_accuracy"]), list(r["held_out_accuracy"].values()))
                             for d, r in out["runs"].items()})
    for r in out["runs"].values():
        r.pop("metrics")
    (ROOT / "reference" / "dtype_curves.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
