"""pipeline.py: the paper's comparison from one base model, end to end and resumable (`limr.py --stage all`).

    python pipeline.py --preset demo                                   # = python limr.py --preset demo --stage all
    python pipeline.py --preset demo --seeds 0,1,2 --methods lim,rand,variance   # the study, with error bars
    python pipeline.py --preset demo --prompts toy192 --methods lim,passrate,rand --sizes 10,lim,96 \
        --compare-steps 32                                             # LIM against a screen, at several sizes

Per seed: FULL (train on every prompt, logging each one's rewards) -> LIM on that run (lim.py) -> each selection
method's subset, trained from the same base model for as many steps as FULL (the paper's Figure 3; the default
methods are the paper's, LIMR and RAND) -> held-out accuracy of every run's checkpoints -> one table: each method's
accuracy per seed, mean and sd, and the paired differences (LIMR - RAND, LIMR - FULL, ...) with standard errors
and 95% intervals from a bootstrap over seeds and problems; the same numbers in comparison.json; Figure 3.
With passrate among the methods, a screen of the base model (limr.py --stage screen) is run too; with --sizes, every
method is trained at every size (the count LIM keeps at --threshold is 'lim'), for --compare-steps steps, against
FULL's checkpoint at that step, and the table carries what each selection cost and how many of its groups carried a
gradient; a figure plots accuracy against subset size.

Each training stage runs in its own `limr.py` process, which also evaluates its checkpoints with its own engine,
so this process never holds a model or an engine (on a GPU, each stage gets the whole card). Every stage skips
what is already done, so the same command carries on after a crash or Ctrl-C.
"""

import argparse
import contextlib
import io
import json
import re
import shutil
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
              "cpu_kv_cache_gb", "save_every", "no_log_responses", "selection", "seeds", "methods", "steps", "seed",
              "prefix_sharing", "sizes", "compare_steps"}
BOOTSTRAP = 4000  # resamples of (seeds, problems) for the standard errors and intervals


def run_name(preset: str, stage: str, seed: int, size: str | None = None) -> str:
    """A run's folder name; seed 0 and the default size keep the names limr.py --stage X uses."""
    return f"{preset}-{stage}" + (f"-k{size}" if size else "") + (f"-s{seed}" if seed else "")


def check_same_recipe(args, runs: list[Path], fulls: list[Path]) -> None:
    """Refuse to mix recipes in one comparison: a typed flag that a saved run or LIM selection disagrees with."""
    for run in runs:
        saved = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
        # --epochs sets FULL's length alone: the selections train --steps, a screen visits each prompt once
        free = RERUN_FREE | ({"epochs"} if saved.get("stage") != "full" else set())
        for k in sorted(args.given - free):
            if k in saved and saved[k] != getattr(args, k):
                raise data.LimrError(f"{run} was trained with --{k.replace('_', '-')} {saved[k]}, not "
                                     f"{getattr(args, k)}: use another --runs-dir, or delete it to train it again")
    for full in fulls:
        summary = full / "lim" / "lim_summary.json"
        if summary.exists() and (theta := json.loads(summary.read_text())["threshold"]) != args.threshold:
            raise data.LimrError(f"{summary.parent} selected with --threshold {theta}, not {args.threshold}: use "
                                 f"another --runs-dir, or delete {summary.parent} and the runs trained on it")


def done(run: Path, evaluation: dict) -> bool:
    """A screen that wrote its cost, or a run trained to its last step whose last checkpoint is evaluated under
    these evaluation settings."""
    if (run / "cost.json").exists():
        return True
    saved = data.checkpoints(run)
    if not saved or not (run / "config.json").exists():
        return False
    config = json.loads((run / "config.json").read_text())
    step = int(saved[-1].name.split("_")[1])
    setup = limr.eval_setup(run, argparse.Namespace(**{**config, **evaluation}), step)  # as the stage would run it
    return step >= config["total_steps"] and all(
        evaluate.finished(run / "eval" / saved[-1].name / f"{b}.jsonl", evaluate.settings(b, setup)) is not None
        for b in setup["benchmarks"])


def train_stage(run: Path, stage: str, argv: list[str], extra: list[str], evaluation: dict,
                steps: int | None = None) -> Path:
    """`limr.py` for one stage in its own process (skipped if done): the GPU is free again when it returns. A saved
    run of another step count than the comparison's is refused, not reused."""
    if steps and (run / "config.json").exists() and (saved := json.loads((run / "config.json").read_text())[
            "total_steps"]) != steps:
        raise data.LimrError(f"{run} trained {saved} steps, not {steps} (--compare-steps): use another --runs-dir")
    if not done(run, evaluation):
        resume = ["--resume", str(run)] if (run / "config.json").exists() else []
        cmd = [sys.executable, str(Path(__file__).with_name("limr.py")), *argv, "--stage", stage, "--name", run.name,
               "--eval-benchmarks", evaluation["eval_benchmarks"], *extra, *resume]
        if subprocess.run(cmd).returncode:
            raise data.LimrError(f"limr.py --stage {stage} ({run.name}) failed (its message is above); fix that and "
                                 f"rerun: finished stages are kept")
    return run


def selections(full: Path, screen: Path | None, methods: list[str], sizes: list[str], theta: float,
               seed: int) -> dict[tuple[str, str], Path]:
    """LIM on a FULL run, then each method's selection at each size (lim.py), once: the top K by the method's score
    on the FULL run's trajectories (passrate: on the screen's pass rates; rand: a seeded draw). Size 'lim' is the
    count LIM keeps at theta, so the default compares every method at LIM's own size."""
    folder = full / "lim"
    if not (folder / "lim.json").exists():
        lim.main(["--rollouts", str(full / "rollouts"), "--threshold", str(theta), "--out", str(folder / "lim.json")])
    lim_size = len(data.read_rows(folder / "lim.json"))
    if not lim_size:
        raise data.LimrError(f"{folder / 'lim.json'}: LIM kept no problem at --threshold {theta}; lower it")
    chosen = {}
    for k in sizes:
        for m in methods:
            path = folder / (f"{m}.json" if k == "lim" else f"{m}-k{k}.json")
            if not path.exists():  # lim at its own size is lim.json itself
                source = screen if m == "passrate" else full
                lim.main(["--rollouts", str(source / "rollouts"), "--method", m, "--seed", str(seed), "--out",
                          str(path), "--no-plots", "--size", str(lim_size if k == "lim" else k)])
            chosen[m, k] = path
    return chosen


def reuse_base_evaluation(full: Path, run: Path) -> None:
    """Every run of a seed starts from the same base weights: its step-0 evaluation is FULL's, which evaluate.py
    then finds done under the same settings instead of computing it again."""
    if (full / "eval" / "step_000000").is_dir() and not (run / "eval" / "step_000000").exists():
        shutil.copytree(full / "eval" / "step_000000", run / "eval" / "step_000000")


def seed_list(text: str) -> list[int]:
    given = text.rstrip(",").split(",")  # BSD `seq -s, 0 32` (the README's) ends in a comma
    if not all(s.strip().isdigit() for s in given):
        raise data.LimrError(f"--seeds: expected comma-separated integers such as 0,1,2, got {text!r}")
    return [int(s) for s in given]


def method_list(text: str) -> list[str]:
    unknown = [m for m in text.split(",") if m not in lim.METHODS]
    if unknown:
        raise data.LimrError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(lim.METHODS)}")
    return text.split(",")


def size_list(text: str | None) -> list[str]:
    """--sizes: numbers of problems, and 'lim' for the count LIM keeps; LIM's alone by default."""
    given = (text or "lim").rstrip(",").split(",")
    if not all(re.fullmatch(r"lim|[1-9]\d*", k.strip()) for k in given) or len(set(given)) < len(given):
        raise data.LimrError(f"--sizes: expected distinct subset sizes such as 10,lim,96 (numbers of problems, 'lim' "
                             f"for LIM's own), got {text!r}")
    return [k.strip() for k in given]


def main(argv: list[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = limr.parse_args(argv + ["--stage", "all"])
    seeds, methods, sizes = seed_list(args.seeds), method_list(args.methods), size_list(args.sizes)
    stage_of = {method: stage for stage, method in limr.STAGES.items()}  # lim -> limr, the others their own name
    label = (lambda stage, k: f"{stage}-k{k}") if args.sizes else (lambda stage, k: stage)
    root, results = Path(args.runs_dir), Path(args.results_dir) / args.preset
    name = {(stage, k, seed): root / run_name(args.preset, stage, seed, k if args.sizes else None)
            for seed in seeds for k in sizes for stage in map(stage_of.get, methods)}
    fulls = {seed: root / run_name(args.preset, "full", seed) for seed in seeds}
    screens = {seed: root / run_name(args.preset, "screen", seed) for seed in seeds} if "passrate" in methods else {}
    check_same_recipe(args, [*fulls.values(), *screens.values(), *name.values()], list(fulls.values()))
    bench = args.eval_benchmarks or ("toy" if re.fullmatch(r"toy\d*", args.prompts or "") else "aime24,amc23,math500")
    evaluation = {"eval_benchmarks": bench, "eval_limit": args.eval_limit, "eval_max_tokens": args.eval_max_tokens}
    runs: dict[str, dict[int, Path]] = {"full": {}}
    for seed in seeds:
        common = [*argv, "--seed", str(seed)]
        compare = ["--save-every", str(args.compare_steps)] if args.compare_steps else []  # FULL's checkpoint there
        runs["full"][seed] = train_stage(fulls[seed], "full", common, compare, evaluation)
        steps = args.compare_steps or json.loads((fulls[seed] / "config.json").read_text())["total_steps"]
        if not (fulls[seed] / "eval" / f"step_{steps:06d}" / "summary.json").exists():
            raise data.LimrError(f"--compare-steps {steps}: {fulls[seed]} has no evaluated checkpoint at step {steps} "
                                 f"to compare with (a FULL run trained before saves at its --save-every steps)")
        screen = train_stage(screens[seed], "screen", common, [], evaluation) if screens else None
        for (m, k), chosen in selections(fulls[seed], screen, methods, sizes, args.threshold, seed).items():
            run = name[stage_of[m], k, seed]
            reuse_base_evaluation(fulls[seed], run)
            runs.setdefault(label(stage_of[m], k), {})[seed] = train_stage(
                run, stage_of[m], common, ["--selection", str(chosen), "--steps", str(steps)], evaluation, steps)
    for full in fulls.values():  # what each selection method would choose on the run, against LIM's choice
        if not (full / "lim" / "compare_methods.json").exists():
            with contextlib.redirect_stdout(io.StringIO()):  # its table is in the file; this output is one table
                lim.main(["--rollouts", str(full / "rollouts"), "--compare-methods", "--threshold",
                          str(args.threshold)])
    costs = {seed: {"full": limr.run_cost(fulls[seed]), "screen": limr.run_cost(screens[seed]) if screens else None}
             for seed in seeds}
    return write_results(runs, results, args, costs)


# ------------------------------------------------------------------------------------------- the comparison

def verdicts(run: Path, step: int | None = None) -> dict[str, dict[str, float]]:
    """Per benchmark, each problem's accuracy (mean over its samples) at a run's last evaluated step, or at step."""
    last = sorted((run / "eval").glob("step_*/summary.json"))[-1].parent
    step_dir = run / "eval" / f"step_{step:06d}" if step else last
    summary = json.loads((step_dir / "summary.json").read_text())
    return {b: {str(g["id"]): float(np.mean(g["correct"])) for g in data.read_rows(step_dir / f"{b}.jsonl")}
            for b in summary["benchmarks"]}


def bootstrap(d: dict[str, np.ndarray], rng: np.random.Generator) -> dict:
    """The mean in points of d[benchmark][seed, problem] (benchmarks weighted equally, as Table 2's average), its
    standard error and 95% interval from a bootstrap that resamples seeds and problems together, and per seed."""
    stat = lambda rows, cols: np.mean([d[k][rows][:, cols[k]].mean() for k in d])  # noqa: E731
    every, seeds = {k: np.arange(v.shape[1]) for k, v in d.items()}, next(iter(d.values())).shape[0]
    boot = [stat(rng.integers(seeds, size=seeds), {k: rng.integers(len(v), size=len(v)) for k, v in every.items()})
            for _ in range(BOOTSTRAP)]
    per_seed = [round(100 * float(stat(np.array([i]), every)), 2) for i in range(seeds)]
    return {"mean": round(100 * stat(np.arange(seeds), every), 2), "se": round(100 * float(np.std(boot)), 2),
            "ci95": [round(100 * float(x), 2) for x in np.percentile(boot, [2.5, 97.5])], "per_seed": per_seed}


def paired(a: dict, b: dict, seeds: list[int], rng: np.random.Generator) -> dict:
    """Method a minus method b on the same held-out problems and seeds (a[seed][benchmark][problem] = accuracy),
    with its bootstrap, and on how many seeds a was ahead or behind."""
    d = bootstrap({k: np.array([[a[s][k][p] - b[s][k][p] for p in sorted(a[seeds[0]][k])] for s in seeds])
                   for k in a[seeds[0]]}, rng)
    return {**d, "wins": sum(x > 0 for x in d["per_seed"]), "losses": sum(x < 0 for x in d["per_seed"])}


def selection_cost(stage: str, costs: dict) -> dict | None:
    """What a selection cost, mean over seeds: the FULL run whose trajectories it reads (LIM and the methods after
    it), the screen (passrate), nothing (rand); FULL itself is no selection."""
    source = {"full": None, "rand": None, "passrate": "screen"}.get(stage, "full")
    if stage == "rand":
        return {"minutes": 0, "generated_tokens": 0, "trained_tokens": 0, "from": "nothing"}
    if source is None:
        return None
    per_seed = [c[source] for c in costs.values()]
    return {**{k: round(float(np.mean([c[k] for c in per_seed])), 2) for k in ("minutes", "generated_tokens",
                                                                            "trained_tokens")}, "from": source}


def gradient_share(run: Path, until: int) -> float | None:
    """The share of a run's GRPO groups, over its first `until` steps, whose rewards differed: the groups that
    carried a policy gradient. A subset used up (every group right) trains on nothing but KL."""
    shares = [r["mixed_groups"] for r in data.read_rows(run / "metrics.jsonl") if r["step"] <= until]
    return round(float(np.mean(shares)), 3) if shares and all(x is not None for x in shares) else None


def write_results(runs: dict[str, dict[int, Path]], results: Path, args, costs: dict) -> Path:
    """results/<preset>/: table.md, comparison.json (per method, size and seed; paired differences at each size;
    selection costs; the share of groups with a gradient), Figure 3, and with --sizes accuracy against size."""
    seeds, sizes = sorted(runs["full"]), size_list(args.sizes)
    steps = args.compare_steps or json.loads((runs["full"][seeds[0]] / "config.json").read_text())["total_steps"]
    acc = {label: {s: verdicts(run, steps if label == "full" else None) for s, run in by_seed.items()}
           for label, by_seed in runs.items()}
    base = json.loads((runs["full"][seeds[0]] / "eval" / "step_000000" / "summary.json").read_text())
    report = {"seeds": seeds, "base": round(evaluate.mean_pass(base), 2), "steps": steps, "sizes": sizes,
              "methods": {}, "differences": {}}
    rng = np.random.default_rng(0)
    for label, by_seed in runs.items():
        stage = label.split("-k")[0]
        per_seed = {s: round(100 * float(np.mean([np.mean(list(p.values())) for p in acc[label][s].values()])), 2)
                    for s in seeds}
        level = bootstrap({k: np.array([[acc[label][s][k][p] for p in sorted(acc[label][seeds[0]][k])] for s in seeds])
                           for k in acc[label][seeds[0]]}, rng)
        report["methods"][label] = {
            "prompts": {s: json.loads((by_seed[s] / "config.json").read_text())["prompts_count"] for s in seeds},
            "steps": steps, "per_seed": per_seed, "mean": round(float(np.mean(list(per_seed.values()))), 2),
            "sd": round(float(np.std(list(per_seed.values()), ddof=1)), 2) if len(seeds) > 1 else None,
            "se": level["se"], "ci95": level["ci95"],
            "gradient_groups": {s: gradient_share(by_seed[s], steps) for s in seeds},
            "selection_cost": selection_cost(stage, costs)}
    stage_of = {method: stage for stage, method in limr.STAGES.items()}
    for k in sizes:  # the first method against the others at each size, and every method against FULL
        arms = [label for m in args.methods.split(",") if (label := f"{stage_of[m]}-k{k}" if args.sizes
                                                           else stage_of[m]) in runs]
        for other in arms[1:] + ["full"]:
            report["differences"][f"{arms[0]} - {other}"] = paired(acc[arms[0]], acc[other], seeds, rng)
        for arm in arms[1:]:
            report["differences"][f"{arm} - full"] = paired(acc[arm], acc["full"], seeds, rng)
    results.mkdir(parents=True, exist_ok=True)
    data.write_atomic(results / "comparison.json", json.dumps(report, indent=1))
    text = comparison_table(report, args.model)
    data.write_atomic(results / "table.md", text)
    own = [label for label in runs if not args.sizes or label == "full" or label.endswith("-klim")]  # Figure 3
    curves = {label.upper(): mean_curve([runs[label][s] for s in seeds]) for label in own}
    figures.training_curves({label.upper(): data.read_rows(runs[label][seeds[0]] / "metrics.jsonl") for label in own},
                            results / "training_curves.png", curves)
    if args.sizes:
        figures.accuracy_vs_size(size_series(report), report["methods"]["full"], results / "accuracy_vs_size.png")
    print(text)
    return results


def size_series(report: dict) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per method, (mean prompts, mean accuracy, 95% interval) at each size, for the accuracy-against-size figure."""
    series: dict[str, list] = {}
    for label, m in report["methods"].items():
        if "-k" in label:
            series.setdefault(label.split("-k")[0].upper(), []).append(
                (float(np.mean(list(m["prompts"].values()))), m["mean"], *m["ci95"]))
    return {k: sorted(v) for k, v in series.items()}


def mean_curve(runs: list[Path]) -> tuple[list[int], list[float]]:
    """Average held-out accuracy against step, over the seeds' runs (the steps every one of them evaluated)."""
    per_run = [{int(p.parent.name.split("_")[1]): evaluate.mean_pass(json.loads(p.read_text()))
                for p in run.glob("eval/step_*/summary.json")} for run in runs]
    steps = sorted(set.intersection(*(set(r) for r in per_run)))
    return steps, [float(np.mean([r[s] for r in per_run])) for s in steps]


def comparison_table(report: dict, model: str) -> str:
    """Held-out accuracy per method (and size) and seed with mean and sd, the share of groups that carried a
    gradient, what the selection cost; then the paired differences."""
    seeds = report["seeds"]
    lines = ["| Method | prompts | steps | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd | groups with a "
             "gradient | selection cost |", "| --- | ---: | ---: |" + " ---: |" * (len(seeds) + 2) + " --- |",
             f"| {model} (base) | | 0 | " + " | ".join(f"{report['base']:.1f}" for _ in seeds) + f" | "
             f"{report['base']:.1f} | | |"]
    for label, m in report["methods"].items():
        sd = f" ± {m['sd']:.1f}" if m["sd"] is not None else ""
        counts = [str(n) for n in m["prompts"].values()]
        prompts = counts[0] if len(set(counts)) == 1 else ", ".join(counts)  # one number only if all seeds agree
        shares = [x for x in m["gradient_groups"].values() if x is not None]
        groups = f"{100 * np.mean(shares):.0f}%" if shares else ""
        c = m["selection_cost"]
        cost = "" if c is None else "none" if c["from"] == "nothing" else (
            f"{c['from']}: {c['minutes']:.1f} min, {c['generated_tokens'] / 1e3:.0f}k generated, "
            f"{c['trained_tokens'] / 1e3:.0f}k trained tokens")
        lines.append(f"| {label.upper()} | {prompts} | {m['steps']} | " +
                     " | ".join(f"{m['per_seed'][s]:.1f}" for s in seeds) + f" | {m['mean']:.1f}{sd} | {groups} | "
                     f"{cost} |")
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
