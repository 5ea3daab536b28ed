"""--stage all on the tiny model: full -> LIM -> limr and rand -> evaluation -> one table; a rerun redoes nothing."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_limr import PROMPTS

import data
import pipeline

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def test_stage_all_runs_every_stage_once(tiny_model, tmp_path):
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    argv = ["--preset", "demo", "--model", tiny_model, "--prompts", str(tmp_path / "prompts.json"),
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--n", "4",
            "--prompts-per-step", "4", "--epochs", "2", "--max-response-tokens", "12", "--no-one-shot",
            "--temperature", "1.0", "--threshold", "0.0", "--eval-benchmarks", "toy", "--eval-limit", "4",
            "--eval-max-tokens", "8", "--cpu-kv-cache-gb", "0.2", "--reward", f"{HERE / 'rewards.py'}:has_digit"]
    # in a process of its own, to see what that process holds: no engine and no model, ever (each stage and its
    # evaluations run in their own limr.py process, so on a GPU every one of them gets the whole card)
    check = ("import gc, sys, torch, pipeline; pipeline.main(sys.argv[1:]); "
             "assert 'vllm' not in sys.modules, 'an engine in the orchestrator'; "
             "assert not [o for o in gc.get_objects() if isinstance(o, torch.nn.Module)], 'a model there too'")
    done = subprocess.run([sys.executable, "-c", check, *argv], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results" / "demo"
    runs = tmp_path / "runs"
    selection = json.loads((runs / "demo-full" / "lim" / "lim.json").read_text())
    limr_cfg = json.loads((runs / "demo-limr" / "config.json").read_text())
    rand_cfg = json.loads((runs / "demo-rand" / "config.json").read_text())
    assert 0 < len(selection) <= 8 and limr_cfg["prompts_count"] == rand_cfg["prompts_count"] == len(selection)
    rand = json.loads((runs / "demo-full" / "lim" / "rand.json").read_text())
    for stage, chosen in (("limr", selection), ("rand", rand)):
        trained = {json.loads(line)["id"] for f in (runs / f"demo-{stage}" / "rollouts").iterdir()
                   for line in gzip.decompress(f.read_bytes()).splitlines()}
        assert trained == {r["id"] for r in chosen}  # exactly the selected problems, every one of them
    table = (results / "table.md").read_text()
    assert table.count("\n") == 6 and "(base)" in table and "FULL (8 prompts)" in table and "RAND" in table
    assert (results / "training_curves.png").stat().st_size > 1000
    before = {p: p.stat().st_mtime for p in runs.rglob("*.jsonl")}
    pipeline.main(argv)
    assert before == {p: p.stat().st_mtime for p in before}  # nothing trained or evaluated twice
    for flag, value, saved in (("--lr", "0.5", "demo-full was trained with --lr 0.0002"),
                               ("--threshold", "0.5", "selected with --threshold 0.0")):
        with pytest.raises(data.LimrError, match=saved):  # a changed recipe is not mixed with the saved runs
            pipeline.main(argv + [flag, value])
    pipeline.main(argv + ["--token-budget", "2048"])  # a memory knob may change
