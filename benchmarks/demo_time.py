"""The README's main job, timed: `make demo` (limr.py --preset demo --stage all --compare-steps 16 --save-every 16,
tcmalloc preloaded where installed) from empty runs/ and results/ folders (in a temporary folder, so the repo's own
are untouched), and where the time goes.

Each stage is timed from the end of the previous one to its last evaluation (so FULL includes starting Python,
loading the model and vLLM and evaluating step 0; LIMR includes LIM, seconds), with its training steps' share.
Writes reference/demo_time.json, and keeps what the README shows of the run in reference/demo/ (the table, Figure 3,
FULL's metrics, LIM's Figure 2 and score histogram, the methods compared on FULL's run).

    .venv/bin/python benchmarks/demo_time.py        # about 10 minutes on a 2-core CPU
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs, results = Path(tmp) / "runs", Path(tmp) / "results"
        start = time.time()
        subprocess.run(["make", "-s", "demo", f"ARGS=--runs-dir {runs} --results-dir {results}"], check=True, cwd=ROOT)
        end = time.time()
        out = {"date": time.strftime("%Y-%m-%d", time.gmtime(start)), "cpus": os.cpu_count(),
               "total_minutes": round((end - start) / 60, 2)}
        previous = start
        for stage in ("full", "limr", "rand"):
            run = runs / f"demo-{stage}"
            metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
            last = max(p.stat().st_mtime for p in run.glob("eval/step_*/summary.json"))
            out[f"{stage}_minutes"] = round((last - previous) / 60, 2)
            steps = sum(m["seconds_generate"] + m["seconds_reward"] + m["seconds_train"] + m["seconds_sync"]
                        for m in metrics)
            out[f"{stage}_training_minutes"] = round(steps / 60, 2)
            out[f"{stage}_peak_rss_gb"] = round(max(m["peak_memory_gb"] for m in metrics), 1)
            previous = last
        out["table"] = (results / "demo" / "table.md").read_text().splitlines()
        keep = ROOT / "reference" / "demo"
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for f in ("table.md", "comparison.json", "training_curves.png"):
            shutil.copy(results / "demo" / f, keep / f)
        shutil.copy(runs / "demo-full" / "metrics.jsonl", keep / "full_metrics.jsonl")
        for f in (runs / "demo-full" / "lim").iterdir():
            if f.suffix in (".png", ".md") or f.name.endswith("_summary.json") or f.name == "compare_methods.json":
                shutil.copy(f, keep / f.name)
    path = ROOT / "reference" / "demo_time.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
