"""lim.py at the paper's scale: a synthetic OpenRLHF run of all 8,523 math8k prompts every epoch, 8 samples each,
21 epochs of 8 steps (1.43 million sample records), then `python lim.py` on it, timed, with its peak memory.

Each prompt gets a latent difficulty and learning rate; its accuracy follows a logistic curve over epochs and
each sample's reward is drawn from it (+1, or -0.5 / -1). Records carry a 200-character `output`, a stand-in for
the response text OpenRLHF saves beside the prompt and reward. Goal: under 30 s and under 2 GB.
Writes reference/lim_scale.json.  Run: LIMR_DATA_DIR=../shared/data .venv/bin/python benchmarks/lim_scale.py
"""

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import data  # noqa: E402

EPOCHS, STEPS_PER_EPOCH, SAMPLES, OUTPUT_CHARS = 21, 8, 8, 200


def write_run(folder: Path, prompts: list[str], rng: np.random.Generator) -> int:
    n = len(prompts)
    difficulty, speed = rng.normal(0, 2, n), rng.uniform(0.1, 0.8, n)
    order = rng.permutation(n)  # each epoch visits every prompt once, in one shuffled order split into 8 steps
    records = 0
    for k in range(EPOCHS):
        p_correct = 1 / (1 + np.exp(difficulty - speed * k))
        for j, idx in enumerate(np.array_split(order, STEPS_PER_EPOCH)):
            right = rng.random((len(idx), SAMPLES)) < p_correct[idx, None]
            wrong = np.where(rng.random((len(idx), SAMPLES)) < 0.7, -0.5, -1.0)
            reward = np.where(right, 1.0, wrong).tolist()
            samples = [{"prompt": prompts[i], "output": "x" * OUTPUT_CHARS, "reward": reward[a][b]}
                       for a, i in enumerate(idx) for b in range(SAMPLES)]
            (folder / f"step_{k * STEPS_PER_EPOCH + j + 1}.json").write_text(json.dumps(samples))
            records += len(samples)
    return records


def main() -> None:
    rows = data.load_prompts("math8k", strict=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "samples"
        folder.mkdir()
        t = time.perf_counter()
        records = write_run(folder, [r["prompt"] for r in rows], np.random.default_rng(0))
        written = time.perf_counter() - t
        size = sum(p.stat().st_size for p in folder.iterdir())
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "lim.py"), "--rollouts", str(folder), "--prompts", "math8k",
                        "--steps-per-epoch", str(STEPS_PER_EPOCH), "--max-epochs", str(EPOCHS),
                        "--threshold", "0.6", "--out", str(Path(tmp) / "lim" / "limr.json")], check=True, cwd=ROOT)
        seconds = time.perf_counter() - t
        summary = json.loads((Path(tmp) / "lim" / "limr_summary.json").read_text())
    out = {"records": records, "files": EPOCHS * STEPS_PER_EPOCH, "bytes_on_disk": size,
           "seconds_to_write_run": round(written, 1), "lim_seconds": round(seconds, 2),
           "lim_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
           "selected": summary["selected"], "with_full_trajectory": summary["with_full_trajectory"]}
    print(out)
    (ROOT / "reference").mkdir(exist_ok=True)
    (ROOT / "reference" / "lim_scale.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
