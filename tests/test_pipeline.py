"""--stage all on the tiny model: per seed full -> LIM -> the selections at equal steps -> evaluation -> one table
with paired differences; a rerun redoes nothing; the orchestrating process never holds a model or an engine."""

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
            "--eval-max-tokens", "8", "--cpu-kv-cache-gb", "0.2", "--reward", f"{HERE / 'rewards.py'}:has_digit",
            "--seeds", "0,1", "--methods", "lim,rand,variance", "--dtype", "float32"]
    # in a process of its own, to see what that process holds: no engine and no model, ever (each stage and its
    # evaluations run in their own limr.py process, so on a GPU every one of them gets the whole card)
    check = ("import gc, sys, torch, pipeline; pipeline.main(sys.argv[1:]); "
             "assert 'vllm' not in sys.modules, 'an engine in the orchestrator'; "
             "assert not [o for o in gc.get_objects() if isinstance(o, torch.nn.Module)], 'a model there too'")
    done = subprocess.run([sys.executable, "-c", check, *argv], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    results, runs = tmp_path / "results" / "demo", tmp_path / "runs"
    for seed, suffix in ((0, ""), (1, "-s1")):
        full_cfg = json.loads((runs / f"demo-full{suffix}" / "config.json").read_text())
        selection = json.loads((runs / f"demo-full{suffix}" / "lim" / "lim.json").read_text())
        assert 0 < len(selection) <= 8 and full_cfg["total_steps"] == 4 and full_cfg["seed"] == seed
        for stage, method in (("limr", "lim"), ("rand", "rand"), ("variance", "variance")):
            cfg = json.loads((runs / f"demo-{stage}{suffix}" / "config.json").read_text())
            chosen = json.loads((runs / f"demo-full{suffix}" / "lim" / f"{method}.json").read_text())
            assert cfg["prompts_count"] == len(chosen) == len(selection)  # every method at LIM's size
            assert cfg["total_steps"] == full_cfg["total_steps"]  # and at FULL's steps, revisiting its prompts
            trained = {json.loads(line)["id"] for f in (runs / f"demo-{stage}{suffix}" / "rollouts").iterdir()
                       for line in gzip.decompress(f.read_bytes()).splitlines()}
            assert trained == {r["id"] for r in chosen}  # exactly the selected problems, every one of them
    report = json.loads((results / "comparison.json").read_text())
    assert report["seeds"] == [0, 1] and set(report["methods"]) == {"full", "limr", "rand", "variance"}
    for m in report["methods"].values():  # per method and seed, the held-out accuracy (and the prompts trained)
        assert set(m["per_seed"]) == set(m["prompts"]) == {"0", "1"} and m["sd"] is not None
    d = report["differences"]["limr - rand"]
    assert d["ci95"][0] <= d["mean"] <= d["ci95"][1] and len(d["per_seed"]) == 2
    table = (results / "table.md").read_text()
    assert "(base)" in table and "| LIMR - RAND |" in table and "| LIMR - FULL |" in table
    assert (results / "training_curves.png").stat().st_size > 1000
    assert (runs / "demo-full" / "lim" / "compare_methods.md").exists()
    before = {p: p.stat().st_mtime for p in runs.rglob("*.jsonl")}
    pipeline.main(argv + ["--seeds", "0,1,"])  # the same seeds: a trailing comma (BSD `seq -s,`) is dropped
    assert before == {p: p.stat().st_mtime for p in before}  # nothing trained or evaluated twice
    for flag, value, saved in (("--lr", "0.5", "demo-full was trained with --lr 0.0002"),
                               ("--threshold", "0.5", "selected with --threshold 0.0"),
                               ("--seeds", "0,one", "--seeds: expected comma-separated integers")):
        with pytest.raises(data.LimrError, match=saved):  # a changed recipe is not mixed with saved runs; bad seeds
            pipeline.main(argv + [flag, value])
    pipeline.main(argv + ["--token-budget", "2048"])  # a memory knob may change


def test_sizes_screen_and_costs(tiny_model, tmp_path):
    """--methods lim,passrate,rand at two sizes (2 problems, and LIM's own), each trained --compare-steps steps
    against FULL's checkpoint at that step; passrate from a screen of the base model; each selection's cost."""
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    argv = ["--preset", "demo", "--model", tiny_model, "--prompts", str(tmp_path / "prompts.json"),
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--n", "4",
            "--prompts-per-step", "4", "--epochs", "2", "--max-response-tokens", "12", "--no-one-shot",
            "--temperature", "1.0", "--threshold", "0.0", "--eval-benchmarks", "toy", "--eval-limit", "4",
            "--eval-max-tokens", "8", "--cpu-kv-cache-gb", "0.2", "--reward", f"{HERE / 'rewards.py'}:has_digit",
            "--methods", "lim,passrate,rand", "--sizes", "2,lim", "--compare-steps", "2", "--dtype", "float32"]
    with pytest.raises(data.LimrError, match="--sizes: expected distinct subset sizes"):
        pipeline.main(argv + ["--sizes", "2,0"])
    pipeline.main(argv)
    runs, results = tmp_path / "runs", tmp_path / "results" / "demo"
    full = runs / "demo-full"
    assert json.loads((full / "config.json").read_text())["total_steps"] == 4  # 2 epochs of 8 prompts, 4 a step
    assert (full / "eval" / "step_000002" / "summary.json").exists()  # FULL's checkpoint at the comparison's step
    screen = json.loads((runs / "demo-screen" / "cost.json").read_text())
    assert screen["trained_tokens"] == 0 and screen["generated_tokens"] > 0
    lim_size = len(json.loads((full / "lim" / "lim.json").read_text()))
    for stage in ("limr", "passrate", "rand"):
        for k, size in (("2", 2), ("lim", lim_size)):
            cfg = json.loads((runs / f"demo-{stage}-k{k}" / "config.json").read_text())
            assert cfg["total_steps"] == 2 and cfg["prompts_count"] == size  # every method: same steps, same size
    chosen = json.loads((full / "lim" / "passrate-k2.json").read_text())
    summary = json.loads((full / "lim" / "passrate-k2_summary.json").read_text())
    assert len(chosen) == 2 and summary["source"] == str(runs / "demo-screen" / "rollouts")
    report = json.loads((results / "comparison.json").read_text())
    methods = report["methods"]
    assert set(methods) == {"full", *(f"{s}-k{k}" for s in ("limr", "passrate", "rand") for k in ("2", "lim"))}
    assert methods["limr-k2"]["selection_cost"]["from"] == "full" and methods["rand-klim"]["selection_cost"][
        "minutes"] == 0
    assert methods["passrate-klim"]["selection_cost"]["generated_tokens"] == screen["generated_tokens"]
    assert all(0 <= x <= 1 for x in methods["limr-k2"]["gradient_groups"].values())
    for name in ("limr-k2 - passrate-k2", "limr-k2 - rand-k2", "limr-klim - full", "passrate-klim - full"):
        assert name in report["differences"]
    assert (results / "accuracy_vs_size.png").stat().st_size > 1000
    assert "selection cost" in (results / "table.md").read_text()
    with pytest.raises(data.LimrError, match="no evaluated checkpoint at step 3"):  # FULL has none there
        pipeline.main(argv + ["--compare-steps", "3"])
    # --epochs changes FULL alone: the screen and the selections (trained --steps) stay reusable, FULL is refused
    others = [p for p in runs.iterdir() if p.name != "demo-full"]
    args = pipeline.limr.parse_args(argv + ["--epochs", "3", "--stage", "all"])
    pipeline.check_same_recipe(args, others, [])
    with pytest.raises(data.LimrError, match="demo-full was trained with --epochs 2, not 3"):
        pipeline.check_same_recipe(args, [full, *others], [])
    # packed without weights (scripts/pack_runs.py) and unpacked elsewhere, every run is still done: a fresh
    # machine carries a study on from the archives, training nothing again, and reads the same comparison from them
    pack = [sys.executable, str(ROOT / "scripts" / "pack_runs.py")]
    subprocess.run([*pack, str(runs), str(tmp_path / "packed")], check=True)
    subprocess.run([*pack, "--unpack", str(tmp_path / "packed"), str(tmp_path / "fresh")], check=True)
    assert {p.name for p in (tmp_path / "fresh").iterdir()} == {p.name for p in runs.iterdir()}
    pipeline.main(argv + ["--runs-dir", str(tmp_path / "fresh"), "--results-dir", str(tmp_path / "again")])
    assert not list((tmp_path / "fresh").rglob("adapter_model.safetensors"))  # no stage trained again
    assert json.loads((tmp_path / "again" / "demo" / "comparison.json").read_text()) == report


def test_new_flags_are_refused_in_one_line_before_anything_runs(tmp_path, capsys):
    argv = ["--preset", "demo", "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    for sizes in ("2,2", "lim,0", "ten", "-5"):  # repeated, zero, words, negative
        with pytest.raises(data.LimrError, match="--sizes: expected distinct subset sizes"):
            pipeline.main(argv + ["--sizes", sizes])
    with pytest.raises(SystemExit, match="2"):  # 0 must not mean "all of FULL's steps"
        pipeline.main(argv + ["--compare-steps", "0"])
    assert "--compare-steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(data.LimrError, match="--methods: unknown screen"):  # the screen is a stage, passrate its method
        pipeline.main(argv + ["--methods", "lim,screen"])
    assert not (tmp_path / "runs").exists()


def test_table_lists_every_seeds_subset_size():
    """LIM's size differs by seed and may repeat: the prompts column must keep each seed's count, in seed order."""
    def method(prompts: list[int]) -> dict:
        return {"prompts": dict(enumerate(prompts)), "steps": 32, "per_seed": {s: 50.0 for s in range(3)},
                "mean": 50.0, "sd": 0.0, "gradient_groups": {s: 0.4 for s in range(3)}, "selection_cost": None}
    report = {"seeds": [0, 1, 2], "base": 28.75, "differences": {},
              "methods": {"full": method([192, 192, 192]), "limr-klim": method([34, 29, 34])}}
    table = pipeline.comparison_table(report, "demo")
    assert "| FULL | 192 | 32 |" in table and "| LIMR-KLIM | 34, 29, 34 | 32 |" in table
