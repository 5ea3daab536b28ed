"""Learning Impact Measurement (LIMR §2.2): which training problems follow the model's learning curve?

Train on everything and record every problem's reward each epoch. With r_i^k the accuracy of problem i in epoch k
(the fraction of its samples with reward +1) and N problems, K epochs:

    r_avg^k = 1/N sum_i r_i^k                                      (the model's average learning curve)
    s_i     = 1 - sum_k (r_i^k - r_avg^k)^2 / sum_k (1 - r_avg^k)^2  (how closely problem i follows it)

and keep s_i >= theta (0.6 gives the paper's 1,389 of 8,523; the paper writes ">" but its code and its published
subset use ">="). Reads our rollout logs (limr.py) or the paper's OpenRLHF `samples_save_path` dumps.

    python lim.py --threshold 0.6                                  # the last full run under runs/
    python lim.py --rollouts runs/full/rollouts --prompts math8k --threshold 0.6 --out limr.json
    python lim.py --scores scores.json --prompts math8k.json --threshold 0.6 --out limr.json
"""

import argparse
import gzip
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

import data
import figures

THETA = 0.6  # the paper's threshold
LINEAR_THETA = 0.7  # the paper's threshold for its LINEAR baseline
UPSTREAM_STEPS_PER_EPOCH = 8  # upstream lim.sh: 8 steps of 1,024 prompts is one pass over math8k
OUR_LOG = re.compile(r"step_(\d+)\.jsonl(\.gz)?$")
OPENRLHF_LOG = re.compile(r"step_(\d+)\.json$")


# ----------------------------------------------------------------------------------------------- the scores

def lim_scores(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's s_i for each row of r[N, K] (full trajectories), and the average curve r_avg[K]."""
    r_avg = r.mean(axis=0)
    denominator = ((1 - r_avg) ** 2).sum()
    if denominator == 0:
        raise data.LimrError("every problem was solved every epoch (r_avg = 1 throughout): LIM's denominator "
                       "sum_k (1 - r_avg^k)^2 is 0 and no score is defined; use harder prompts or fewer epochs")
    s = 1 - ((r - r_avg) ** 2).sum(axis=1) / denominator
    return s, r_avg


def linear_scores(r: np.ndarray) -> np.ndarray:
    """Our precise LINEAR baseline (the paper gives no formula): LIM's score with the reference curve replaced by
    a straight line from r_avg's first epoch to its last. It rewards steady improvement and, as the paper says of
    LINEAR, misses problems with rapid early gains that then plateau (they sit above the line early on)."""
    r_avg = r.mean(axis=0)
    line = np.linspace(r_avg[0], r_avg[-1], r.shape[1])
    denominator = ((1 - line) ** 2).sum()
    if denominator == 0:
        raise data.LimrError("every problem was solved every epoch: the LINEAR score is undefined")
    return 1 - ((r - line) ** 2).sum(axis=1) / denominator


# -------------------------------------------------------------------------------------------- the selection

def select(records: list[dict], scores: dict[str, float], theta: float, by: str) -> list[dict]:
    """The records (rows of the prompt file, in its order) whose score is >= theta; `by` is 'id' or 'prompt'."""
    key = (lambda r: r["prompt"].strip()) if by == "prompt" else (lambda r: r["id"])
    return [r for r in records if scores.get(key(r), -np.inf) >= theta]


def random_subset(records: list[dict], size: int, seed: int) -> list[dict]:
    """RAND: `size` records drawn without replacement, seeded, kept in file order."""
    if size > len(records):
        raise data.LimrError(f"--size {size} is larger than the {len(records)} prompts")
    keep = set(random.Random(seed).sample(range(len(records)), size))
    return [r for i, r in enumerate(records) if i in keep]


# ------------------------------------------------------------------------------------------ reading the runs

def step_files(rollouts: Path) -> tuple[str, list[tuple[int, Path]]]:
    """The format of a rollout folder ('limr' or 'openrlhf') and its step files in step order."""
    if not rollouts.is_dir():
        raise data.LimrError(f"--rollouts {rollouts}: no such folder")
    ours = [(int(m[1]), p) for p in rollouts.iterdir() if (m := OUR_LOG.search(p.name))]
    theirs = [(int(m[1]), p) for p in rollouts.iterdir() if (m := OPENRLHF_LOG.search(p.name))]
    if not ours and not theirs:
        raise data.LimrError(f"--rollouts {rollouts}: no step_N.jsonl (limr.py) or step_N.json (OpenRLHF) files")
    return ("limr", sorted(ours)) if ours else ("openrlhf", sorted(theirs))


def read_step(fmt: str, path: Path) -> list[tuple[str, str, int | None, list[float]]]:
    """(key, prompt, epoch or None, rewards) per prompt in one step file. Ours key by id; OpenRLHF by prompt text,
    stripped, as upstream does (so math8k's repeated prompt shares one trajectory there)."""
    try:
        if fmt == "limr":
            with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            return [(r["id"], r["prompt"], r.get("epoch"), r["rewards"]) for r in rows]
        samples = json.loads(path.read_text(encoding="utf-8"))
        per_prompt: dict[str, list[float]] = {}
        for s in samples:
            per_prompt.setdefault(s["prompt"].strip(), []).append(s["reward"])
        return [(p, p, None, r) for p, r in per_prompt.items()]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise data.LimrError(f"{path}: not a valid {fmt} rollout log ({type(e).__name__}: {e})") from None


def trajectories(rollouts: Path, steps_per_epoch: int | None, max_epochs: int | None):
    """Per-problem accuracy each epoch: (keys, prompts, acc[N, K] with NaN where a problem was not sampled)."""
    fmt, files = step_files(rollouts)
    if steps_per_epoch is None and fmt == "openrlhf":
        steps_per_epoch = UPSTREAM_STEPS_PER_EPOCH
    counts: dict[str, dict[int, list[int]]] = {}  # key -> epoch -> [correct, sampled]
    prompts: dict[str, str] = {}
    for n, (step, path) in enumerate(files):
        for key, prompt, epoch, rewards in read_step(fmt, path):
            k = (step - 1) // steps_per_epoch if steps_per_epoch else epoch if epoch is not None else n
            if max_epochs is not None and k >= max_epochs:
                continue
            prompts.setdefault(key, prompt)
            c = counts.setdefault(key, {}).setdefault(k, [0, 0])
            c[0] += sum(r == 1 for r in rewards)  # accuracy counts reward == 1 (upstream), not the mean
            c[1] += len(rewards)
    n_epochs = 1 + max((k for c in counts.values() for k in c), default=-1)
    if max_epochs is not None and n_epochs < max_epochs:
        raise data.LimrError(f"--max-epochs {max_epochs}: {rollouts} holds only {n_epochs} epochs")
    acc = np.full((len(counts), n_epochs), np.nan)
    for i, c in enumerate(counts.values()):
        for k, (correct, sampled) in c.items():
            if sampled:
                acc[i, k] = correct / sampled
    return list(counts), list(prompts.values()), acc, fmt


def fill_missing(acc: np.ndarray) -> np.ndarray:
    """Upstream's gap filling: an epoch where a problem was not sampled takes the next epoch's accuracy, if that
    epoch has one. One pass, so only the last epoch of a longer gap is filled, and a gap in the final epoch is never
    filled: such problems have no full trajectory and are left out."""
    acc = acc.copy()
    fill = np.isnan(acc[:, :-1]) & ~np.isnan(acc[:, 1:])
    acc[:, :-1][fill] = acc[:, 1:][fill]
    return acc


def read_scores(path: Path) -> tuple[dict[str, float], str]:
    """A scores file `[{"prompt", "score"}]` (upstream) or `[{"id", "prompt", "score"}]` (ours)."""
    rows = data.read_rows(path)
    for n, row in enumerate(rows, 1):
        if "score" not in row or not ("id" in row or "prompt" in row):
            raise data.LimrError(f"{path}: row {n} needs a 'score' and an 'id' or 'prompt'")
        if isinstance(row["score"], bool) or not isinstance(row["score"], int | float):
            raise data.LimrError(f"{path}: row {n}: the score must be a number, not {row['score']!r}")
    by = "id" if all("id" in r for r in rows) else "prompt"
    return {(r["id"] if by == "id" else r["prompt"].strip()): float(r["score"]) for r in rows}, by


# ------------------------------------------------------------------------------------------------------ CLI

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rollouts", type=Path, help="rollout folder of a full run (ours or OpenRLHF's); "
                   "default: runs/<newest full run>/rollouts")
    p.add_argument("--scores", type=Path, help="select from a precomputed scores file instead of rollouts")
    p.add_argument("--prompts", help="prompt file (or name: math8k, toy) whose records are selected; "
                   "default: the run's own prompts")
    p.add_argument("--threshold", type=float, help="theta: keep s >= theta (default 0.6; for --baseline linear 0.7)")
    p.add_argument("--out", type=Path, help="selected prompt records (JSON); default: <run>/lim/<method>.json")
    p.add_argument("--scores-out", type=Path, help="scores [{id, prompt, score}]; default: next to --out")
    p.add_argument("--steps-per-epoch", type=int, help="group steps into epochs (OpenRLHF default 8); "
                   "default for our logs: the epoch each step recorded")
    p.add_argument("--max-epochs", type=int, help="use the first E epochs (upstream: 21); default: all")
    p.add_argument("--baseline", choices=["lim", "rand", "linear"], default="lim",
                   help="lim (the paper's method), rand (random subset), linear (steady-improvement score)")
    p.add_argument("--size", type=int, help="rand: subset size; default: the size of the LIM selection")
    p.add_argument("--seed", type=int, default=0, help="rand: random seed")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    args = p.parse_args(argv)
    if args.threshold is None:
        args.threshold = LINEAR_THETA if args.baseline == "linear" else THETA
    if not np.isfinite(args.threshold):
        p.error("--threshold must be a finite number")
    data.check_at_least(p, args, {"steps_per_epoch": 1, "max_epochs": 1, "size": 1})
    return args


def last_full_run(runs: Path = Path("runs")) -> Path:
    """The newest runs/<name>/rollouts of a --stage full run (what `python lim.py` uses with no --rollouts)."""
    candidates = [cfg.parent / "rollouts" for cfg in runs.glob("*/config.json")
                  if json.loads(cfg.read_text()).get("stage") == "full" and (cfg.parent / "rollouts").is_dir()]
    if not candidates:
        raise data.LimrError(f"no --stage full run with rollouts under {runs}/; pass --rollouts DIR or --scores FILE")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def prompt_records(prompts: str | None, rollouts: Path | None) -> list[dict]:
    """The records to select from: --prompts, else the prompt file the run trained on (its config.json)."""
    if prompts is None and rollouts is not None and (rollouts.parent / "config.json").exists():
        prompts = json.loads((rollouts.parent / "config.json").read_text()).get("prompts")
    if prompts is None:
        raise data.LimrError("--prompts is needed: the file (or name, e.g. math8k) whose records are selected")
    return data.load_prompts(prompts, strict=False)


def scores_from_rollouts(args: argparse.Namespace, rollouts: Path, out: Path) -> tuple[dict, np.ndarray, dict]:
    """Each problem's score from a run's logs (its full trajectories only); writes the scores file and figures."""
    keys, prompts, acc, fmt = trajectories(rollouts, args.steps_per_epoch, args.max_epochs)
    full = ~np.isnan(r := fill_missing(acc)).any(axis=1)
    r, keys, prompts = r[full], [k for k, f in zip(keys, full) if f], [p for p, f in zip(prompts, full) if f]
    if not len(r):
        raise data.LimrError(f"{rollouts}: no problem has a full trajectory over {acc.shape[1]} epochs")
    s, r_avg = lim_scores(r)
    if args.baseline == "linear":
        s = linear_scores(r)
    info = dict(source=str(rollouts), format=fmt, epochs=int(r.shape[1]), problems_read=len(full),
                with_full_trajectory=int(full.sum()), left_out=int((~full).sum()),
                r_avg=[round(x, 4) for x in r_avg.tolist()], by="id" if fmt == "limr" else "prompt")
    scores_out = args.scores_out or out.with_name(out.stem + "_scores.json")
    scores_out.parent.mkdir(parents=True, exist_ok=True)
    data.write_atomic(scores_out, json.dumps([{"id": k, "prompt": p, "score": round(float(x), 6)}
                                              for k, p, x in zip(keys, prompts, s)], indent=0))
    if not args.no_plots:
        info["figures"] = [str(figures.lim_trajectories(r, s, r_avg, out.with_name(out.stem + "_trajectories.png"))),
                           str(figures.score_histogram(s, args.threshold, out.with_name(out.stem + "_scores.png")))]
    return dict(zip(keys, s.tolist())), s, info


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    summary: dict = {"threshold": args.threshold, "method": args.baseline}
    if args.scores:
        scores, by = read_scores(args.scores)
        records = prompt_records(args.prompts, None)
        out = args.out or args.scores.with_name("limr.json")
        summary.update(source=str(args.scores), problems_scored=len(scores))
        s = np.array(list(scores.values()))
    else:
        rollouts = args.rollouts or last_full_run()
        out = args.out or rollouts.parent / "lim" / f"{args.baseline}.json"
        scores, s, info = scores_from_rollouts(args, rollouts, out)
        by = info.pop("by")
        summary.update(info)
        records = prompt_records(args.prompts, rollouts)
    selected = select(records, scores, args.threshold, by)
    if args.baseline == "rand":
        selected = random_subset(records, args.size or len(selected), args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.write_atomic(out, json.dumps(selected, indent=1, ensure_ascii=False))
    summary.update(prompts_in_file=len(records), selected=len(selected), out=str(out),
                   score_quantiles={q: round(float(np.quantile(s, q)), 3) for q in (0, 0.1, 0.25, 0.5, 0.75, 0.9, 1)})
    data.write_atomic(out.with_name(out.stem + "_summary.json"), json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "r_avg"}, indent=1))
    return summary


if __name__ == "__main__":
    try:
        main()
    except data.LimrError as e:
        sys.exit(f"lim.py: {e}")
