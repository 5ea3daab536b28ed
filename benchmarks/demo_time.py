"""The README's main job, timed: `limr.py --preset demo --stage all` from empty runs/ and results/ folders (in a
temporary folder, so the repo's own runs/ and results/ are untouched), and where the time goes.

Stage times are wall clock between the last step of one run and the last step of the next, read from each run's
metrics.jsonl (`time`), so FULL includes loading the model and starting vLLM, and LIMR includes LIM (seconds).
Evaluation is everything after RAND's last step: the base model and every checkpoint of the three runs.
Writes reference/demo_time.json.

    .venv/bin/python benchmarks/demo_time.py        # 15-25 minutes on a 2-core CPU
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs, results = Path(tmp) / "runs", Path(tmp) / "results"
        start = time.time()
        subprocess.run([sys.executable, str(ROOT / "limr.py"), "--preset", "demo", "--stage", "all", "--runs-dir",
                        str(runs), "--results-dir", str(results)], check=True, cwd=ROOT)
        end = time.time()
        out = {"date": time.strftime("%Y-%m-%d", time.gmtime(start)), "cpus": os.cpu_count(),
               "total_minutes": round((end - start) / 60, 2)}
        previous = start
        for stage in ("full", "limr", "rand"):
            last = metrics(runs / f"demo-{stage}")[-1]["time"]
            out[f"{stage}_minutes"] = round((last - previous) / 60, 2)
            previous = last
        out["evaluation_minutes"] = round((end - previous) / 60, 2)
        out["training_peak_rss_gb"] = round(max(m["peak_memory_gb"] for s in ("full", "limr", "rand")
                                                for m in metrics(runs / f"demo-{s}")), 1)
        out["table"] = (results / "demo" / "table.md").read_text().splitlines()
    path = ROOT / "reference" / "demo_time.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
