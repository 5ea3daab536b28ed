"""pipeline.py: the paper's comparison from one base model, end to end and resumable (`limr.py --stage all`).

    python pipeline.py --preset demo          # = python limr.py --preset demo --stage all (make demo)

FULL (train on every prompt, logging each one's rewards) -> LIM on that run (lim.py) -> LIMR (the LIM selection)
and RAND (a random subset of the same size) from the same base model -> one Table-2-style table and Figure 3.
Each training stage runs in its own `limr.py` process, which also evaluates its checkpoints with its own engine,
so this process never holds a model or an engine (on a GPU, each stage gets the whole card). Every stage skips
what is already done, so the same command carries on after a crash or Ctrl-C.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import data
import evaluate
import figures
import lim
import limr

STAGES = ("full", "limr", "rand")
# flags that do not change what a run learns: a rerun may change them (a smaller --token-budget after running out
# of memory, other evaluation flags); any other typed flag must match the runs already on disk
RERUN_FREE = {"preset", "stage", "name", "runs_dir", "resume", "results_dir", "eval_benchmarks", "eval_limit",
              "eval_max_tokens", "threshold", "token_budget", "gradient_checkpointing", "vllm_memory",
              "cpu_kv_cache_gb", "save_every", "no_log_responses", "selection"}


def check_same_recipe(root: Path, args) -> None:
    """Refuse to mix recipes in one comparison: a typed flag that a saved run or LIM selection disagrees with."""
    for stage in STAGES:
        cfg = root / f"{args.preset}-{stage}" / "config.json"
        saved = json.loads(cfg.read_text()) if cfg.exists() else {}
        for k in sorted(args.given - RERUN_FREE):
            if k in saved and saved[k] != getattr(args, k):
                raise data.LimrError(f"{cfg.parent} was trained with --{k.replace('_', '-')} {saved[k]}, not "
                                     f"{getattr(args, k)}: use another --runs-dir, or delete it to train it again")
    summary = root / f"{args.preset}-full" / "lim" / "lim_summary.json"
    if summary.exists() and (theta := json.loads(summary.read_text())["threshold"]) != args.threshold:
        raise data.LimrError(f"{summary.parent} selected with --threshold {theta}, not {args.threshold}: use another "
                             f"--runs-dir, or delete {summary.parent} and the limr and rand runs")


def done(run: Path, evaluation: dict) -> bool:
    """A run trained to its last step whose last checkpoint is evaluated under these evaluation settings."""
    saved = limr.checkpoints(run)
    if not saved or not (run / "config.json").exists():
        return False
    config = json.loads((run / "config.json").read_text())
    step = int(saved[-1].name.split("_")[1])
    setup = limr.eval_setup(run, argparse.Namespace(**{**config, **evaluation}), step)  # as the stage would run it
    return step >= config["total_steps"] and all(
        evaluate.finished(run / "eval" / saved[-1].name / f"{b}.jsonl", evaluate.settings(b, setup)) is not None
        for b in setup["benchmarks"])


def train_stage(root: Path, stage: str, argv: list[str], extra: list[str], args, evaluation: dict) -> Path:
    """`limr.py` for one stage in its own process (skipped if done): the GPU is free again when it returns."""
    run = root / f"{args.preset}-{stage}"
    if not done(run, evaluation):
        resume = ["--resume", str(run)] if (run / "config.json").exists() else []
        cmd = [sys.executable, str(Path(__file__).with_name("limr.py")), *argv, "--stage", stage, "--name", run.name,
               *extra, *resume]
        if subprocess.run(cmd).returncode:
            raise data.LimrError(f"limr.py --stage {stage} failed (its message is above); fix that and rerun")
    return run


def last_eval(run: Path) -> tuple[dict, list[tuple[int, float]]]:
    """A run's final evaluation summary, and (step, average held-out accuracy) at every evaluated step."""
    rows = [(int(p.parent.name.split("_")[1]), json.loads(p.read_text()))
            for p in sorted((run / "eval").glob("step_*/summary.json"))]
    return rows[-1][1], [(step, evaluate.mean_pass(s)) for step, s in rows]


def main(argv: list[str] | None = None) -> Path:
    argv = [a for a in (sys.argv[1:] if argv is None else argv)]
    args = limr.parse_args(argv + ["--stage", "all"])
    root, results = Path(args.runs_dir), Path(args.results_dir) / args.preset
    check_same_recipe(root, args)
    bench = args.eval_benchmarks or ("toy" if args.prompts == "toy" else "aime24,amc23,math500")
    evaluation = {"eval_benchmarks": bench, "eval_limit": args.eval_limit, "eval_max_tokens": args.eval_max_tokens}
    full = train_stage(root, "full", argv, ["--eval-benchmarks", bench], args, evaluation)
    selection = full / "lim" / "lim.json"
    if not selection.exists():
        lim.main(["--rollouts", str(full / "rollouts"), "--threshold", str(args.threshold)])
    rand = full / "lim" / "rand.json"
    if not rand.exists():  # the same draw as `limr.py --stage rand` makes: seeded, the size of the LIM selection
        subset = lim.random_subset(data.load_prompts(args.prompts), len(data.read_rows(selection)), args.seed)
        data.write_atomic(rand, json.dumps(subset, indent=1, ensure_ascii=False))
    runs = {"full": full}
    for stage, chosen in (("limr", selection), ("rand", rand)):
        runs[stage] = train_stage(root, stage, argv, ["--eval-benchmarks", bench, "--selection", str(chosen)], args,
                                  evaluation)
    return write_results(runs, results, args)


def write_results(runs: dict[str, Path], results: Path, args) -> Path:
    """results/<preset>/: table.md (base and the final checkpoint of each run), summary.json, Figure 3."""
    base = json.loads(sorted((runs["full"] / "eval").glob("step_000000/summary.json"))[0].read_text())
    rows, held_out, metrics = [{**base, "name": f"{args.model} (base)"}], {}, {}
    for stage, run in runs.items():
        last, curve = last_eval(run)
        count = json.loads((run / "config.json").read_text())["prompts_count"]
        rows.append({**last, "name": f"{stage.upper()} ({count} prompts)"})
        held_out[stage.upper()] = ([s for s, _ in curve], [a for _, a in curve])
        metrics[stage.upper()] = data.read_rows(run / "metrics.jsonl")
    results.mkdir(parents=True, exist_ok=True)
    text = evaluate.table(rows)
    data.write_atomic(results / "table.md", text)
    data.write_atomic(results / "summary.json", json.dumps({"rows": rows}, indent=1))
    figures.training_curves(metrics, results / "training_curves.png", held_out)
    print(text)
    return results


if __name__ == "__main__":
    try:
        print(f"done: {main()}")
    except data.LimrError as e:
        sys.exit(f"pipeline.py: {e}")
    except KeyboardInterrupt:
        sys.exit("pipeline.py: interrupted; finished stages and evaluations are kept, the same command carries on")
