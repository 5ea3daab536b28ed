"""Learning Impact Measurement (LIMR §2.2): which training problems follow the model's learning curve?

Train on everything and record every problem's reward each epoch. With r_i^k the accuracy of problem i in epoch k
(the fraction of its samples with reward +1) and N problems, K epochs:

    r_avg^k = 1/N sum_i r_i^k                                      (the model's average learning curve)
    s_i     = 1 - sum_k (r_i^k - r_avg^k)^2 / sum_k (1 - r_avg^k)^2  (how closely problem i follows it)

and keep s_i >= theta (0.6 gives the paper's 1,389 of 8,523; the paper writes ">" but its code and its published
subset use ">="). The selection methods that followed LIM score the same matrix r[i, k] (METHODS below), so they
compare on one run at equal size. Reads our rollout logs (limr.py), the paper's OpenRLHF `samples_save_path`
dumps, verl's `trainer.rollout_data_dir` dumps and TRL's `log_completions` parquet files.

    python lim.py --threshold 0.6                                  # the last full run under runs/
    python lim.py --rollouts runs/full/rollouts --prompts math8k --threshold 0.6 --out limr.json
    python lim.py --rollouts DIR --prompts FILE --method variance --size 200 --out variance.json
    python lim.py --rollouts DIR --prompts FILE --compare-methods   # every method on one run: table and figure
    python lim.py --scores scores.json --prompts math8k.json --threshold 0.6 --out limr.json
    python lim.py --export verl train.parquet --prompts limr.json  # any prompt set for verl (or openrlhf)
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
BAND = (0.2, 0.8)  # --method band: first-epoch accuracy in [low, high]
UPSTREAM_STEPS_PER_EPOCH = 8  # upstream lim.sh: 8 steps of 1,024 prompts is one pass over math8k


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
    """Our precise LINEAR baseline (the paper gives no formula): LIM's score against a straight line from r_avg's first
    epoch to its last. As the paper says of LINEAR, it misses rapid early gains that then plateau (above the line)."""
    r_avg = r.mean(axis=0)
    line = np.linspace(r_avg[0], r_avg[-1], r.shape[1])
    denominator = ((1 - line) ** 2).sum()
    if denominator == 0:
        raise data.LimrError("every problem was solved every epoch: the LINEAR score is undefined")
    return 1 - ((r - line) ** 2).sum(axis=1) / denominator


def variance_scores(r: np.ndarray) -> np.ndarray:
    """The std over epochs of a problem's accuracy: Wang et al. 2025's "historical variance score" (1-shot RLVR)."""
    return r.std(axis=1)


def learnability_scores(r: np.ndarray) -> np.ndarray:
    """Mean over epochs of p(1 - p), largest at p = 1/2 where GRPO's rewards vary most (Foster and Foerster 2025)."""
    return (r * (1 - r)).mean(axis=1)


def informative_scores(r: np.ndarray) -> np.ndarray:
    """The share of epochs in which the problem's samples were neither all right nor all wrong: DAPO's dynamic
    sampling criterion (a group with equal rewards has no gradient), applied offline."""
    return ((r > 0) & (r < 1)).mean(axis=1)


def band_scores(r: np.ndarray, low: float, high: float) -> np.ndarray:
    """Problems whose first-epoch accuracy (the base model's pass rate) lies in [low, high], ranked by closeness
    to 0.5 (pass-rate filtering as in AdaRFT and LIMO-style curation); -inf outside the band."""
    return np.where((r[:, 0] >= low) & (r[:, 0] <= high), -np.abs(r[:, 0] - 0.5), -np.inf)


def passrate_scores(r: np.ndarray) -> np.ndarray:
    """Learnability's p (1 - p) of the first epoch alone: on a screen's log (limr.py --stage screen), the base model's
    pass rate over k samples, so problems always or never solved (no GRPO signal) come last. The screen LIMR's authors
    suggested in place of a full run (GAIR-NLP/LIMR issue 31): the same ranking as learnability, from one pass."""
    return learnability_scores(r[:, :1])


METHODS = {  # name -> (score, default threshold or None for "the top --size"), largest score first
    "lim": (lambda r, band: lim_scores(r)[0], THETA),
    "linear": (lambda r, band: linear_scores(r), LINEAR_THETA),
    "rand": (None, None),  # a seeded random subset of the prompt file, the size of LIM's selection
    "variance": (lambda r, band: variance_scores(r), None),
    "learnability": (lambda r, band: learnability_scores(r), None),
    "informative": (lambda r, band: informative_scores(r), None),
    "band": (lambda r, band: band_scores(r, *band), None),
    "passrate": (lambda r, band: passrate_scores(r), None),
}


# -------------------------------------------------------------------------------------------- the selection

def select(records: list[dict], scores: dict[str, float], theta: float, by: str) -> list[dict]:
    """The records (rows of the prompt file, in its order) whose score is >= theta; `by` is 'id' or 'prompt'."""
    return [r for r, k in zip(records, record_keys(records, scores, by)) if scores.get(k, -np.inf) >= theta]


def select_top(records: list[dict], scores: dict[str, float], size: int, by: str) -> list[dict]:
    """The records of the `size` best-scoring problems (ties at the cut broken by id), in file order."""
    ranked = sorted((k for k, s in scores.items() if s > -np.inf), key=lambda k: (-scores[k], str(k)))
    keep = set(ranked[:size])
    return [r for r, k in zip(records, record_keys(records, scores, by)) if k in keep]


def random_subset(records: list[dict], size: int, seed: int) -> list[dict]:
    """RAND: `size` records drawn without replacement, seeded, kept in file order."""
    if size > len(records):
        raise data.LimrError(f"--size {size} is larger than the {len(records)} prompts")
    return [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), size))]


def record_keys(records: list[dict], scores: dict, by: str) -> list[str]:
    """Each record's key in `scores`: its id as text, its problem text (OpenRLHF logs the user's text), or for
    logs that hold the whole templated prompt (verl, TRL's plain format) the logged text that contains it."""
    if by == "id":
        return [str(r["id"]) for r in records]
    keys = [problem_text(r["prompt"]) for r in records]
    # one pass over each logged text, looking up windows as long as the prompts' first 32 characters
    if missing := {k for k in keys if k not in scores}:
        heads: dict[str, list[str]] = {}
        for k in missing:
            heads.setdefault(k[:32], []).append(k)
        found, widths = {}, {len(h) for h in heads}
        for text in scores:
            for i in range(len(text)):
                for k in (k for w in widths for k in heads.get(text[i : i + w], ())):
                    if text.startswith(k, i):
                        found.setdefault(k, text)
        keys = [found.get(k, k) for k in keys]
    return keys


def check_matches(records: list[dict], scores: dict, by: str, prompts: str) -> None:
    """Refuse a selection from a prompt file that shares few problems with the scores: the file the run trained on,
    or a subset or superset of it, matches in full; the wrong file or a --key naming other ids matches in few."""
    keys = set(record_keys(records, scores, by))
    matched = len(keys & scores.keys())
    if matched < MIN_MATCH * min(len(keys), len(scores)):
        mine = str(records[0]["id"]) if by == "id" else problem_text(records[0]["prompt"])
        raise data.LimrError(f"--prompts {prompts}: {matched} of its {len(keys)} problems match the {len(scores)} "
                             f"scored ones by {by} (the file has {mine[:60]!r}, the log {next(iter(scores))[:60]!r}); "
                             f"pass the file the run trained on, or --key naming the log field that holds the file's "
                             f"ids (--key prompt matches by text)")


# ------------------------------------------------------------------------------------------ reading the runs
# Each format's step files, and per row (key, problem text, epoch or None, correct per sample). A sample is correct
# when its --correct field equals 1 (upstream counts reward == 1, not the mean reward).
FORMATS = {  # name -> (step file pattern, prompt field, default key field, default correct field)
    "limr": (re.compile(r"^step_(\d+)\.jsonl(\.gz)?$"), "prompt", "id", "rewards"),
    "openrlhf": (re.compile(r"^step_(\d+)\.json$"), "prompt", "prompt", "reward"),
    "verl": (re.compile(r"^(\d+)\.jsonl$"), "input", "id", "score"),  # verl/trainer/ppo/ray_trainer.py
    "trl": (re.compile(r"^completions_(\d+)\.parquet$"), "prompt", "id", None),  # trl/trainer/grpo_trainer.py, log()
}
TRL_COLUMNS = ("step", "prompt", "completion", "advantage")  # then one column per reward function, log_extra's
MIN_MATCH = 0.5  # a selection where fewer of the problems match between log and prompt file is refused


def step_files(rollouts: Path, fmt: str | None) -> tuple[str, list[tuple[int, Path]]]:
    """The format of a rollout folder and its step files in step order (step 0, a verl validation dump, skipped)."""
    if not rollouts.is_dir():
        raise data.LimrError(f"--rollouts {rollouts}: no such folder")
    if (rollouts / "completions").is_dir():  # TRL writes <output_dir>/completions/
        rollouts = rollouts / "completions"
    found = {name: sorted((int(m[1]), p) for p in rollouts.iterdir() if (m := pattern.match(p.name)) and int(m[1]))
             for name, (pattern, *_) in FORMATS.items() if fmt in (None, name)}
    present = [name for name, files in found.items() if files]
    if not present:
        raise data.LimrError(f"--rollouts {rollouts}: no step_N.jsonl (limr.py), step_N.json (OpenRLHF), N.jsonl "
                             f"(verl) or completions_N.parquet (TRL) files" + (f" of --format {fmt}" if fmt else ""))
    if len(present) > 1:
        raise data.LimrError(f"--rollouts {rollouts}: holds files of {' and '.join(present)}; pass --format")
    return present[0], found[present[0]]


def read_rows_of(fmt: str, path: Path) -> list[dict]:
    """The raw rows of one step file: one per prompt (limr), or one per sample (the others)."""
    if fmt == "trl":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if fmt == "openrlhf":
        return json.loads(path.read_text(encoding="utf-8"))
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def problem_text(prompt) -> str:
    """The text that names a problem: a prompt stripped, or of a conversation (TRL's chat format, a chat prompt file)
    its last user turn, the question as a prompt file holds it, without the system prompt or examples before it."""
    text = prompt
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        text = next((m.get("content") for m in reversed(prompt) if m.get("role") == "user"), None)
        if isinstance(text, list):  # TRL's multimodal content: a list of blocks, some of them text
            text = "".join(b.get("text") or "" for b in text if isinstance(b, dict))
    if not isinstance(text, str):
        raise data.LimrError(f"a prompt must be text or chat messages with a user turn, not {str(prompt)[:80]!r}")
    return text.strip()


def as_id(value) -> str:
    """An id as text however a file holds it (5, "5", 5.0 from a pandas column with gaps): all files' ids compare."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise data.LimrError(f"an id must be text or a whole number, not {value!r}")
    return str(value)


def is_right(value, field: str) -> bool | None:
    """Right: the --correct value is 1; None or NaN (TRL's log of a reward function's None) is not graded."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if not isinstance(value, int | float):
        raise data.LimrError(f"{field!r} must be a number, not {value!r}")
    return value == 1


def read_step(fmt: str, path: Path, key: str | None, correct: str | None) -> tuple[str, str, list[tuple]]:
    """One step file: (key field, correct field, per row (key, problem text, epoch or None, correct per sample))."""
    text, default_key, default_correct = FORMATS[fmt][1:]
    bad = f"{path}: not a valid {fmt} rollout log: "
    try:
        rows = read_rows_of(fmt, path)
    except (OSError, ValueError) as e:  # ValueError: bad JSON or UTF-8, not a parquet file (pyarrow's ArrowInvalid)
        raise data.LimrError(f"{bad}({type(e).__name__}: {e})") from None
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        raise data.LimrError(f"{bad}it holds no list of records")
    # fields not given are resolved from the first row (the key: the format's id field if logged, else the prompt)
    key = key or (default_key if default_key in rows[0] else text)
    correct = correct or default_correct or next((c for c in rows[0] if c not in TRL_COLUMNS), "a reward column")
    problems = []
    for n, r in enumerate(rows, 1):
        try:
            if not isinstance(r, dict):
                raise data.LimrError(f"not a record but {str(r)[:60]!r}")
            prompt = problem_text(r[text])
            k = prompt if key == text else as_id(r[key])
            graded = r[correct] if fmt == "limr" else [r[correct]]
            if not isinstance(graded, list):
                raise data.LimrError(f"{correct!r} must be a list of rewards, not {graded!r}")
            epoch = r.get("epoch") if fmt == "limr" else None
            if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
                raise data.LimrError(f"the epoch must be a whole number >= 0, not {epoch!r}")
            problems.append((k, prompt, epoch, [x for x in (is_right(v, correct) for v in graded) if x is not None]))
        except KeyError as e:
            raise data.LimrError(f"{bad}row {n} has no field {e} (it has {', '.join(map(str, r))}; --key and "
                                 f"--correct name the fields to read)") from None
        except data.LimrError as e:
            raise data.LimrError(f"{bad}row {n}: {e}") from None
    return key, correct, problems


def trajectories(rollouts: Path, steps_per_epoch: int | None, max_epochs: int | None, fmt: str | None = None,
                 key: str | None = None, correct: str | None = None):
    """Per-problem accuracy each epoch: (keys, prompts, acc[N, K] with NaN where a problem was not sampled,
    format, and whether problems are keyed by 'id' or by 'prompt' text)."""
    fmt, files = step_files(rollouts, fmt)
    steps_per_epoch = steps_per_epoch or (UPSTREAM_STEPS_PER_EPOCH if fmt == "openrlhf" else None)
    if fmt in ("verl", "trl") and not steps_per_epoch:
        raise data.LimrError(f"--format {fmt}: pass --steps-per-epoch (its logs record no epoch; verl: "
                             "len(dataset) // train_batch_size, as its loader drops the last partial batch)")
    graded: dict[str, dict[int, list[bool]]] = {}  # key -> epoch -> correct per sample
    prompts: dict[str, str] = {}
    for n, (step, path) in enumerate(files):
        key, correct, problems = read_step(fmt, path, key, correct)  # later files read the first one's fields
        for name, prompt, epoch, right in problems:
            k = (step - 1) // steps_per_epoch if steps_per_epoch else epoch if epoch is not None else n
            if max_epochs is not None and k >= max_epochs:
                continue
            prompts.setdefault(name, prompt)
            graded.setdefault(name, {}).setdefault(k, []).extend(right)
    n_epochs = 1 + max((k for g in graded.values() for k in g), default=-1)
    if max_epochs is not None and n_epochs < max_epochs:
        raise data.LimrError(f"--max-epochs {max_epochs}: {rollouts} holds only {n_epochs} epochs")
    acc = np.full((len(graded), n_epochs), np.nan)
    for i, g in enumerate(graded.values()):
        for k, right in g.items():
            acc[i, k] = sum(right) / len(right) if right else np.nan
    return list(graded), list(prompts.values()), acc, fmt, "prompt" if key == FORMATS[fmt][1] else "id"


def fill_missing(acc: np.ndarray) -> np.ndarray:
    """Upstream's one-pass gap filling: an epoch where a problem was not sampled takes the next epoch's accuracy, so
    only a gap's last epoch is filled, and one in the final epoch never is (no full trajectory: left out)."""
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
    try:
        return {(as_id(r["id"]) if by == "id" else problem_text(r["prompt"])): float(r["score"]) for r in rows}, by
    except data.LimrError as e:
        raise data.LimrError(f"{path}: {e}") from None


# ------------------------------------------------------------------------------------ back to the engines

def export(records: list[dict], fmt: str, out: Path, system: str = data.SYSTEM_PROMPT) -> Path:
    """A prompt set for verl (parquet, the layout of verl's examples/data_preprocess/math_dataset.py, which its
    RLHFDataset reads) or OpenRLHF (JSONL for --input_key prompt --label_key label --apply_chat_template)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    chat = [[{"role": "system", "content": system}, {"role": "user", "content": r["prompt"]}] for r in records]
    if fmt == "openrlhf":
        return data.write_atomic(out, "".join(json.dumps({"prompt": c, "label": r["answer"], "id": str(r["id"])},
                                                         ensure_ascii=False) + "\n" for r, c in zip(records, chat)))
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"data_source": r.get("source") or "limr", "prompt": c, "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": r["answer"]},
             "extra_info": {"index": i, "split": "train", "id": str(r["id"])}}
            for i, (r, c) in enumerate(zip(records, chat))]
    parquet = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return data.write_atomic(out, parquet.getvalue().to_pybytes())


# ------------------------------------------------------------------------------------------------------ CLI

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--rollouts", type=Path, help="rollout folder of a full run; default: runs/<newest full run>/rollouts")
    a("--format", choices=list(FORMATS), help="its logs' format (default: detected from the file names)")
    a("--scores", type=Path, help="select from a precomputed scores file instead of rollouts")
    a("--prompts", help="prompt file (or name: math8k, toy) whose records are selected; default: the run's own")
    a("--method", choices=list(METHODS), default="lim", help="lim (the paper), linear, rand, variance, learnability, "
      "informative, band, passrate (on a screen's log: limr.py --stage screen); see each score's docstring in lim.py")
    a("--baseline", choices=list(METHODS), dest="method", help=argparse.SUPPRESS)  # the old name of --method
    a("--threshold", type=float, help="keep score >= this (lim: 0.6, linear: 0.7; other methods take the top --size)")
    a("--size", type=int, help="keep the top SIZE problems (default for rand, variance, learnability, "
                               "informative, band: as many as LIM keeps at 0.6, so methods compare at equal size)")
    a("--low", type=float, default=BAND[0], help="--method band: lowest first-epoch accuracy kept")
    a("--high", type=float, default=BAND[1], help="--method band: highest first-epoch accuracy kept")
    a("--out", type=Path, help="selected prompt records (JSON); default: <run>/lim/<method>.json")
    a("--scores-out", type=Path, help="scores [{id, prompt, score}]; default: next to --out")
    a("--steps-per-epoch", type=int, help="group steps into epochs (OpenRLHF default 8; needed for verl and TRL); "
                                          "default for our logs: the epoch each step recorded")
    a("--max-epochs", type=int, help="use the first E epochs (upstream: 21); default: all")
    a("--key", help="the log field that names a problem (default: id; the prompt text where logs have none)")
    a("--correct", help="the log field whose value 1 means a correct sample (default: rewards (ours), reward "
                        "(OpenRLHF), score (verl), the first reward column (TRL))")
    a("--seed", type=int, default=0, help="rand: random seed")
    a("--compare-methods", action="store_true", help="score the run with every method at LIM's size: a table "
                                                     "(overlap with LIM, mean accuracy) and a figure")
    a("--export", nargs=2, metavar=("FORMAT", "OUT"), help="write --prompts for another engine: verl OUT.parquet "
                                                            "or openrlhf OUT.jsonl, then stop")
    a("--no-plots", action="store_true", help="skip the PNG figures")
    args = p.parse_args(argv)
    if args.export and args.export[0] not in ("verl", "openrlhf"):
        p.error("--export: verl or openrlhf")
    if args.threshold is not None and not np.isfinite(args.threshold):
        p.error("--threshold must be a finite number")
    if not 0 <= args.low <= args.high <= 1:
        p.error(f"--low {args.low} and --high {args.high}: accuracies with 0 <= --low <= --high <= 1")
    if args.compare_methods and args.scores:
        p.error("--compare-methods scores trajectories: pass --rollouts, not --scores")
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


def run_scores(args: argparse.Namespace, rollouts: Path) -> dict:
    """Every method's score of each problem with a full trajectory, and what the summary says about the run."""
    keys, prompts, acc, fmt, by = trajectories(rollouts, args.steps_per_epoch, args.max_epochs, args.format,
                                               args.key, args.correct)
    full = ~np.isnan(r := fill_missing(acc)).any(axis=1)
    r, keys, prompts = r[full], [k for k, f in zip(keys, full) if f], [p for p, f in zip(prompts, full) if f]
    if not len(r):
        raise data.LimrError(f"{rollouts}: no problem has a full trajectory over {acc.shape[1]} epochs")
    s, r_avg = lim_scores(r)
    scores = {m: score(r, (args.low, args.high)) for m, (score, _) in METHODS.items() if score}
    info = dict(source=str(rollouts), format=fmt, epochs=int(r.shape[1]), problems_read=len(full),
                with_full_trajectory=int(full.sum()), left_out=int((~full).sum()),
                r_avg=[round(x, 4) for x in r_avg.tolist()])
    return dict(keys=keys, prompts=prompts, r=r, r_avg=r_avg, scores=scores, by=by, info=info)


def selection(method: str, records: list[dict], run: dict, theta: float | None, size: int, seed: int = 0) -> list[dict]:
    """One method's selection: the records whose score is >= theta, or with theta None the top `size`."""
    if method == "rand":  # from the records a run can train on (math8k has two empty golds)
        return random_subset([r for r in records if str(r["answer"]).strip()], size, seed)
    scores = dict(zip(run["keys"], run["scores"][method].tolist()))
    return select_top(records, scores, size, run["by"]) if theta is None else select(records, scores, theta, run["by"])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.export:
        return {"out": str(export(data.load_prompts(args.prompts or "math8k", strict=False), args.export[0],
                                  Path(args.export[1])))}
    if args.scores:
        if args.method not in ("lim", "rand"):
            raise data.LimrError(f"--method {args.method} scores trajectories: pass --rollouts (a scores file holds "
                                 f"LIM scores only)")
        lim, by = read_scores(args.scores)
        records, out = prompt_records(args.prompts, None), args.out or args.scores.with_name("limr.json")
        run = {"keys": list(lim), "scores": {"lim": np.array(list(lim.values()))}, "by": by,
               "info": {"source": str(args.scores), "problems_scored": len(lim)}}
    else:
        rollouts = args.rollouts or last_full_run()
        run = run_scores(args, rollouts)
        by, records = run["by"], prompt_records(args.prompts, rollouts)
        if by == "id":  # the prompt file's text, not the engine's templated copy, in the scores file
            text = {str(r["id"]): problem_text(r["prompt"]) for r in records}
            run["prompts"] = [text.get(k, p) for k, p in zip(run["keys"], run["prompts"])]
        out = args.out or rollouts.parent / "lim" / f"{args.method}.json"
        lim = dict(zip(run["keys"], run["scores"]["lim"].tolist()))
    check_matches(records, lim, by, args.prompts or "(the run's)")
    lim_size = len(select(records, lim, THETA, by))
    if args.compare_methods:
        return compare_methods(args, run, records, lim_size, out.parent)
    # a threshold (given, or lim's 0.6 and linear's 0.7) unless --size is; else the top --size, or LIM's size
    theta = None if args.size else args.threshold if args.threshold is not None else METHODS[args.method][1]
    chosen = selection(args.method, records, run, theta, args.size or lim_size, args.seed)
    return write_selection(args, run, chosen, records, out, theta, None if theta is not None else args.size or lim_size)


def write_selection(args, run: dict, chosen: list[dict], records: list[dict], out: Path, theta: float | None,
                    wanted: int | None) -> dict:
    """OUT.json (the selected records), OUT_summary.json, and from rollouts OUT_scores.json and the figures."""
    out.parent.mkdir(parents=True, exist_ok=True)
    data.write_atomic(out, json.dumps(chosen, indent=1, ensure_ascii=False))
    s = run["scores"].get(args.method, run["scores"]["lim"])  # rand: LIM's
    finite = s[np.isfinite(s)]
    summary = {"method": args.method, "threshold": theta, **run["info"],
               "prompts_in_file": len(records), "selected": len(chosen), "out": str(out),
               "score_quantiles": {q: round(float(np.quantile(finite, q)), 3) for q in (0, 0.1, 0.25, 0.5, 0.75, 1)}
               if len(finite) else None}
    if wanted and len(chosen) < wanted or not chosen:  # a short selection is said, never silently written
        summary["note"] = (f"{'--size' if args.size else 'LIM size'} {wanted}: only {len(chosen)} could be selected"
                           if wanted else f"no score reached the threshold {theta}: lower --threshold")
        print(f"lim.py: {summary['note']}", file=sys.stderr)
    if "r" in run:
        named = [{"id": k, "prompt": p} if run["by"] == "id" else {"prompt": k}  # by text: upstream's {prompt,
                 for k, p in zip(run["keys"], run["prompts"])]  # score}, which --scores reads back by text, not as ids
        data.write_atomic(args.scores_out or out.with_name(out.stem + "_scores.json"), json.dumps(  # None: out of band
            [{**n, "score": round(float(x), 6) if np.isfinite(x) else None} for n, x in zip(named, s)], indent=0))
    if "r" in run and not args.no_plots and chosen:
        cut = theta if theta is not None else float(np.sort(finite)[-len(chosen)])
        summary["figures"] = [str(figures.lim_trajectories(run["r"], run["scores"]["lim"], run["r_avg"],
                                                           out.with_name(out.stem + "_trajectories.png"))),
                              str(figures.score_histogram(finite, cut, out.with_name(out.stem + "_scores.png"),
                                                          args.method))]
    data.write_atomic(out.with_name(out.stem + "_summary.json"), json.dumps(summary, indent=1))
    print(f"{args.method}: {len(chosen)} of {summary['problems_read' if 'r' in run else 'problems_scored']} "
          f"problems -> {out} (summary: {out.with_name(out.stem + '_summary.json')})")
    return summary


def compare_methods(args, run: dict, records: list[dict], lim_size: int, folder: Path) -> dict:
    """Every method on one run, LIM at its threshold and the others at LIM's size: each selection's mean trajectory, its
    overlap with LIM's (Jaccard), and how far each score is plain difficulty (correlation with mean accuracy)."""
    index = {k: i for i, k in enumerate(run["keys"])}
    mean_acc = run["r"].mean(axis=1)
    rows, lim_kept = {}, set()
    for m in METHODS:  # lim first: the others' overlap is with its selection
        s = run["scores"].get(m, run["scores"]["lim"])
        theta = (args.threshold if args.threshold is not None else THETA) if m == "lim" else None
        chosen = selection(m, records, run, theta, lim_size, args.seed)
        kept = {index[k] for k in record_keys(chosen, index, run["by"]) if k in index}  # rows of r
        lim_kept = kept if m == "lim" else lim_kept
        finite = np.isfinite(s)
        rows[m] = {"selected": len(chosen),
                   "jaccard_with_lim": round(len(kept & lim_kept) / max(1, len(kept | lim_kept)), 3),
                   "corr_with_mean_accuracy": round(float(np.corrcoef(s[finite], mean_acc[finite])[0, 1]), 3)
                   if m != "rand" and finite.sum() > 2 and np.std(s[finite]) > 0 else None,
                   "mean_trajectory": [round(float(x), 3) for x in run["r"][sorted(kept)].mean(axis=0)] if kept else []}
    folder.mkdir(parents=True, exist_ok=True)
    result = {"r_avg": run["info"]["r_avg"], "methods": rows}
    data.write_atomic(folder / "compare_methods.json", json.dumps(result, indent=1))
    lines = ["| method | selected | Jaccard with LIM | corr. with mean accuracy | mean accuracy per epoch |",
             "| --- | ---: | ---: | ---: | --- |"]
    lines += [f"| {m} | {v['selected']} | {v['jaccard_with_lim']} | {v['corr_with_mean_accuracy']} | "
              f"{', '.join(f'{x:.2f}' for x in v['mean_trajectory'])} |" for m, v in rows.items()]
    lines.append(f"| (all problems) | {len(run['keys'])} | | | {', '.join(f'{x:.2f}' for x in run['info']['r_avg'])} |")
    data.write_atomic(folder / "compare_methods.md", "\n".join(lines) + "\n")
    if not args.no_plots:
        figures.compare_methods({m: v["mean_trajectory"] for m, v in rows.items() if v["mean_trajectory"]},
                                run["r_avg"], run["scores"]["lim"], mean_acc, args.threshold or THETA,
                                folder / "compare_methods.png")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    try:
        main()
    except data.LimrError as e:
        sys.exit(f"lim.py: {e}")
