"""pipeline.py: the paper's comparison from one base model, end to end and resumable (`limr.py --stage all`).

    python pipeline.py --preset demo                                   # = python limr.py --preset demo --stage all
    python pipeline.py --preset demo --seeds 0,1,2 --methods lim,rand,variance   # the study, with error bars

Per seed: FULL (train on every prompt, logging each one's rewards) -> LIM on that run (lim.py) -> each selection
method's subset, trained from the same base model for as many steps as FULL (the paper's Figure 3; the default
methods are the paper's, LIMR and RAND) -> held-out accuracy of every run's checkpoints -> one table: each method's
accuracy per seed, mean and sd, and the paired differences (LIMR - RAND, LIMR - FULL, ...) with standard errors
and 95% intervals from a bootstrap over seeds and problems; the same numbers in comparison.json; Figure 3.

Each training stage runs in its own `limr.py` process, which also evaluates its checkpoints with its own engine,
so this process never holds a model or an engine (on a GPU, each stage gets the whole card). Every stage skips
what is already done, so the same command carries on after a crash or Ctrl-C.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import data
import evaluate
import figures
import lim
import limr

# flags that do not change what a run learns: a rerun may change them (a smaller --token-budget after running out
# of memory, other evaluation flags); any other typed flag must match the runs already on disk
RERUN_FREE = {"preset", "stage", "name", "runs_dir", "resume", "results_dir", "eval_benchmarks", "eval_limit",
              "eval_max_tokens", "threshold", "token_budget", "gradient_checkpointing", "vllm_memory",
              "cpu_kv_cache_gb", "save_every", "no_log_responses", "selection", "seeds", "methods", "steps", "seed"}
BOOTSTRAP = 4000  # resamples of (seeds, problems) for the standard errors and intervals


def run_name(preset: str, stage: str, seed: int) -> str:
    return f"{preset}-{stage}" + (f"-s{seed}" if seed else "")  # seed 0 keeps the names limr.py --stage X uses


def check_same_recipe(root: Path, args, seeds: list[int], stages: list[str]) -> None:
    """Refuse to mix recipes in one comparison: a typed flag that a saved run or LIM selection disagrees with."""
    for seed in seeds:
        for stage in ["full", *stages]:
            cfg = root / run_name(args.preset, stage, seed) / "config.json"
            saved = json.loads(cfg.read_text()) if cfg.exists() else {}
            for k in sorted(args.given - RERUN_FREE):
                if k in saved and saved[k] != getattr(args, k):
                    raise data.LimrError(f"{cfg.parent} was trained with --{k.replace('_', '-')} {saved[k]}, not "
                                         f"{getattr(args, k)}: use another --runs-dir, or delete it to train it again")
        summary = root / run_name(args.preset, "full", seed) / "lim" / "lim_summary.json"
        if summary.exists() and (theta := json.loads(summary.read_text())["threshold"]) != args.threshold:
            raise data.LimrError(f"{summary.parent} selected with --threshold {theta}, not {args.threshold}: use "
                                 f"another --runs-dir, or delete {summary.parent} and the runs trained on it")


def done(run: Path, evaluation: dict) -> bool:
    """A run trained to its last step whose last checkpoint is evaluated under these evaluation settings."""
    saved = data.checkpoints(run)
    if not saved or not (run / "config.json").exists():
        return False
    config = json.loads((run / "config.json").read_text())
    step = int(saved[-1].name.split("_")[1])
    setup = limr.eval_setup(run, argparse.Namespace(**{**config, **evaluation}), step)  # as the stage would run it
    return step >= config["total_steps"] and all(
        evaluate.finished(run / "eval" / saved[-1].name / f"{b}.jsonl", evaluate.settings(b, setup)) is not None
        for b in setup["benchmarks"])


def train_stage(run: Path, stage: str, argv: list[str], extra: list[str], evaluation: dict) -> Path:
    """`limr.py` for one stage in its own process (skipped if done): the GPU is free again when it returns."""
    if not done(run, evaluation):
        resume = ["--resume", str(run)] if (run / "config.json").exists() else []
        cmd = [sys.executable, str(Path(__file__).with_name("limr.py")), *argv, "--stage", stage, "--name", run.name,
               "--eval-benchmarks", evaluation["eval_benchmarks"], *extra, *resume]
        if subprocess.run(cmd).returncode:
            raise data.LimrError(f"limr.py --stage {stage} ({run.name}) failed (its message is above); fix that and "
                                 f"rerun: finished stages are kept")
    return run


def selections(full: Path, methods: list[str], theta: float, seed: int) -> dict[str, Path]:
    """LIM on a FULL run, then every other method at the size of LIM's selection (lim.py), once."""
    folder = full / "lim"
    if not (folder / "lim.json").exists():
        lim.main(["--rollouts", str(full / "rollouts"), "--threshold", str(theta), "--out", str(folder / "lim.json")])
    size = len(data.read_rows(folder / "lim.json"))
    if not size:
        raise data.LimrError(f"{folder / 'lim.json'}: LIM kept no problem at --threshold {theta}; lower it")
    for m in methods:
        if m != "lim" and not (folder / f"{m}.json").exists():
            lim.main(["--rollouts", str(full / "rollouts"), "--method", m, "--size", str(size), "--seed", str(seed),
                      "--out", str(folder / f"{m}.json"), "--no-plots"])
    return {m: folder / f"{m}.json" for m in methods}


def seed_list(text: str) -> list[int]:
    given = text.rstrip(",").split(",")  # BSD `seq -s, 0 32` (the README's) ends in a comma
    if not all(s.strip().isdigit() for s in given):
        raise data.LimrError(f"--seeds: expected comma-separated integers such as 0,1,2, got {text!r}")
    return [int(s) for s in given]


def main(argv: list[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = limr.parse_args(argv + ["--stage", "all"])
    seeds, methods = seed_list(args.seeds), args.methods.split(",")
    unknown = [m for m in methods if m not in lim.METHODS]
    if unknown:
        raise data.LimrError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(lim.METHODS)}")
    stage_of = {method: stage for stage, method in limr.STAGES.items()}  # lim -> limr, the others their own name
    stages = {m: stage_of[m] for m in methods}
    root, results = Path(args.runs_dir), Path(args.results_dir) / args.preset
    check_same_recipe(root, args, seeds, list(stages.values()))
    bench = args.eval_benchmarks or ("toy" if args.prompts == "toy" else "aime24,amc23,math500")
    evaluation = {"eval_benchmarks": bench, "eval_limit": args.eval_limit, "eval_max_tokens": args.eval_max_tokens}
    runs: dict[str, dict[int, Path]] = {"full": {}, **{stage: {} for stage in stages.values()}}
    for seed in seeds:
        common = [*argv, "--seed", str(seed)]
        full = train_stage(root / run_name(args.preset, "full", seed), "full", common, [], evaluation)
        runs["full"][seed] = full
        steps = json.loads((full / "config.json").read_text())["total_steps"]  # every selection: as many steps
        for m, chosen in selections(full, methods, args.threshold, seed).items():
            runs[stages[m]][seed] = train_stage(root / run_name(args.preset, stages[m], seed), stages[m], common,
                                                ["--selection", str(chosen), "--steps", str(steps)], evaluation)
    for full in runs["full"].values():  # what each selection method would choose on the run, against LIM's choice
        if not (full / "lim" / "compare_methods.json").exists():
            lim.main(["--rollouts", str(full / "rollouts"), "--compare-methods", "--threshold", str(args.threshold)])
    return write_results(runs, results, args)


# ------------------------------------------------------------------------------------------- the comparison

def verdicts(run: Path) -> tuple[int, dict[str, dict[str, float]]]:
    """A run's last evaluated step and, per benchmark, each problem's accuracy there (mean over its samples)."""
    step_dir = sorted((run / "eval").glob("step_*/summary.json"))[-1].parent
    summary = json.loads((step_dir / "summary.json").read_text())
    return int(step_dir.name.split("_")[1]), {
        b: {str(g["id"]): float(np.mean(g["correct"])) for g in data.read_rows(step_dir / f"{b}.jsonl")}
        for b in summary["benchmarks"]}


def paired(a: dict, b: dict, seeds: list[int], rng: np.random.Generator) -> dict:
    """Method a minus method b on the same held-out problems and seeds (a[seed][benchmark][problem] = accuracy):
    the mean difference in points (benchmarks weighted equally, as Table 2's average), its standard error and 95%
    interval from a bootstrap that resamples seeds and problems, and the difference per seed."""
    bench = list(a[seeds[0]])
    d = {k: np.array([[a[s][k][p] - b[s][k][p] for p in sorted(a[seeds[0]][k])] for s in seeds]) for k in bench}
    stat = lambda rows, cols: np.mean([d[k][rows][:, cols[k]].mean() for k in bench])  # noqa: E731
    every = {k: np.arange(d[k].shape[1]) for k in bench}
    boot = [stat(rng.integers(len(seeds), size=len(seeds)), {k: rng.integers(len(v), size=len(v))
                                                            for k, v in every.items()}) for _ in range(BOOTSTRAP)]
    per_seed = [stat(np.array([i]), every) for i in range(len(seeds))]
    return {"mean": round(100 * stat(np.arange(len(seeds)), every), 2), "se": round(100 * float(np.std(boot)), 2),
            "ci95": [round(100 * float(x), 2) for x in np.percentile(boot, [2.5, 97.5])],
            "per_seed": [round(100 * float(x), 2) for x in per_seed], "wins": int(sum(x > 0 for x in per_seed)),
            "losses": int(sum(x < 0 for x in per_seed))}


def write_results(runs: dict[str, dict[int, Path]], results: Path, args) -> Path:
    """results/<preset>/: table.md, comparison.json (per method and seed, paired differences), Figure 3."""
    seeds = sorted(runs["full"])
    acc = {stage: {s: verdicts(run)[1] for s, run in by_seed.items()} for stage, by_seed in runs.items()}
    base_seed = seeds[0]
    base = json.loads((runs["full"][base_seed] / "eval" / "step_000000" / "summary.json").read_text())
    mean = lambda v: 100 * float(np.mean([np.mean(list(p.values())) for p in v.values()]))  # noqa: E731
    report = {"seeds": seeds, "base": round(evaluate.mean_pass(base), 2), "methods": {}, "differences": {}}
    for stage, by_seed in runs.items():
        configs = {s: json.loads((by_seed[s] / "config.json").read_text()) for s in seeds}
        per_seed = {s: round(mean(acc[stage][s]), 2) for s in seeds}
        report["methods"][stage] = {"prompts": {s: c["prompts_count"] for s, c in configs.items()},
                                    "steps": configs[base_seed]["total_steps"],
                                    "per_seed": per_seed, "mean": round(float(np.mean(list(per_seed.values()))), 2),
                                    "sd": round(float(np.std(list(per_seed.values()), ddof=1)), 2)
                                    if len(seeds) > 1 else None}
    rng = np.random.default_rng(0)
    first = "limr" if "limr" in runs else next(s for s in runs if s != "full")
    for other in [s for s in runs if s != first]:
        report["differences"][f"{first} - {other}"] = paired(acc[first], acc[other], seeds, rng)
    results.mkdir(parents=True, exist_ok=True)
    data.write_atomic(results / "comparison.json", json.dumps(report, indent=1))
    text = comparison_table(report, args.model)
    data.write_atomic(results / "table.md", text)
    curves = {stage.upper(): mean_curve([by_seed[s] for s in seeds]) for stage, by_seed in runs.items()}
    figures.training_curves({stage.upper(): data.read_rows(by_seed[base_seed] / "metrics.jsonl")
                             for stage, by_seed in runs.items()}, results / "training_curves.png", curves)
    print(text)
    return results


def mean_curve(runs: list[Path]) -> tuple[list[int], list[float]]:
    """Average held-out accuracy against step, over the seeds' runs (the steps every one of them evaluated)."""
    per_run = [{int(p.parent.name.split("_")[1]): evaluate.mean_pass(json.loads(p.read_text()))
                for p in run.glob("eval/step_*/summary.json")} for run in runs]
    steps = sorted(set.intersection(*(set(r) for r in per_run)))
    return steps, [float(np.mean([r[s] for r in per_run])) for s in steps]


def comparison_table(report: dict, model: str) -> str:
    """Held-out accuracy per method and seed with mean and sd, then the paired differences."""
    seeds = report["seeds"]
    lines = ["| Method | prompts | steps | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |",
             "| --- | ---: | ---: |" + " ---: |" * (len(seeds) + 1),
             f"| {model} (base) | | 0 | " + " | ".join(f"{report['base']:.1f}" for _ in seeds) + f" | "
             f"{report['base']:.1f} |"]
    for stage, m in report["methods"].items():
        sd = f" ± {m['sd']:.1f}" if m["sd"] is not None else ""
        prompts = ", ".join(str(n) for n in dict.fromkeys(m["prompts"].values()))  # one number if all seeds agree
        lines.append(f"| {stage.upper()} | {prompts} | {m['steps']} | " +
                     " | ".join(f"{m['per_seed'][s]:.1f}" for s in seeds) + f" | {m['mean']:.1f}{sd} |")
    lines += ["", "| Paired difference (points) | mean | SE | 95% interval | per seed | wins / losses |",
              "| --- | ---: | ---: | --- | --- | --- |"]
    for name, d in report["differences"].items():
        lines.append(f"| {name.upper()} | {d['mean']:+.1f} | {d['se']:.1f} | [{d['ci95'][0]:+.1f}, "
                     f"{d['ci95'][1]:+.1f}] | {', '.join(f'{x:+.1f}' for x in d['per_seed'])} | "
                     f"{d['wins']} / {d['losses']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        print(f"done: {main()}")
    except data.LimrError as e:
        sys.exit(f"pipeline.py: {e}")
    except KeyboardInterrupt:
        sys.exit("pipeline.py: interrupted; finished stages and evaluations are kept, the same command carries on")
