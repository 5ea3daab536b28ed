"""LIMR against RAND at toy scale, over seeds: is the demo's difference more than noise?

The demo pipeline (`make demo`) trains FULL once, lets LIM pick the LIMR set, then trains LIMR and RAND once each.
This reruns the last two (or FULL) for several seeds (the seed sets the sampling, the data order and RAND's
subset; the LIM set stays the one picked from the seed-0 FULL run) and grades each final policy greedily on the 64
held-out toy problems. One vLLM engine does everything: after a run it holds that run's final merged weights, so it
evaluates them directly (the pipeline serves the same weights as a LoRA adapter; greedy answers can differ in rare
ties).

    make demo && .venv/bin/python benchmarks/seed_spread.py        # -> results/seed_spread.json (about 12 min)
    .venv/bin/python benchmarks/seed_spread.py --stages full --seeds 1,2 --out results/seed_spread_full.json
"""

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import data  # noqa: E402
import evaluate  # noqa: E402
import limr  # noqa: E402  (sets the vLLM and OpenMP environment before torch loads)


def held_out_accuracy(llm, eval_args, name: str) -> float:
    summary = evaluate.evaluate(llm, eval_args, name)
    return round(100 * summary["benchmarks"]["toy"]["pass@1"], 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    p.add_argument("--stages", default="limr,rand", help="comma-separated: limr, rand, full (full takes ~8 min)")
    p.add_argument("--runs-dir", default=str(ROOT / "runs"), help="holds demo-full (from make demo)")
    p.add_argument("--out", default=str(ROOT / "results" / "seed_spread.json"))
    a = p.parse_args()
    seeds, stages = [int(x) for x in a.seeds.split(",")], a.stages.split(",")
    selection = Path(a.runs_dir) / "demo-full" / "lim" / "lim.json"
    if not selection.exists():
        sys.exit(f"{selection} is missing: run `make demo` (or limr.py --preset demo --stage full; lim.py) first")
    args = limr.parse_args(["--preset", "demo", "--runs-dir", a.runs_dir])
    args.model_path = data.model_path(args.model)
    llm = limr.start_vllm(args, "cpu")
    eval_args = evaluate.parse_args(["--model", "demo", "--benchmarks", "toy", "--one-shot", "--max-tokens",
                                     str(args.max_response_tokens), "--out", str(ROOT / "results" / "seed_spread")])
    eval_args.model_path = data.model_path("demo")
    out = {"base": held_out_accuracy(llm, eval_args, "base"), "seeds": seeds, "held_out_problems": 64}
    for stage in stages:
        out[stage] = []
    for seed in seeds:
        for stage in stages:
            name = f"spread-{stage}-seed{seed}"
            shutil.rmtree(Path(a.runs_dir) / name, ignore_errors=True)  # a half-finished run from a crash
            shutil.rmtree(Path(eval_args.out) / name, ignore_errors=True)
            run_args = limr.parse_args(["--preset", "demo", "--stage", stage, "--seed", str(seed), "--name", name,
                                        "--runs-dir", a.runs_dir])
            limr.train(run_args, llm=llm)
            out[stage].append(held_out_accuracy(llm, eval_args, name))
            print(f"seed {seed} {stage}: {out[stage][-1]}", flush=True)
    for stage in stages:
        config = json.loads((Path(a.runs_dir) / f"spread-{stage}-seed{seeds[0]}" / "config.json").read_text())
        out[f"{stage}_prompts"], out[f"{stage}_steps"] = config["prompts_count"], config["total_steps"]
        out[f"{stage}_mean"] = round(statistics.mean(out[stage]), 1)
        out[f"{stage}_sd"] = round(statistics.stdev(out[stage]), 1) if len(seeds) > 1 else None
    if "limr" in stages and "rand" in stages:
        diff = [x - y for x, y in zip(out["limr"], out["rand"])]
        out.update(limr_minus_rand_mean=round(statistics.mean(diff), 1),
                   limr_minus_rand_sd=round(statistics.stdev(diff), 1) if len(diff) > 1 else None,
                   limr_wins=sum(d > 0 for d in diff), ties=sum(d == 0 for d in diff),
                   rand_wins=sum(d < 0 for d in diff))
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
