"""evaluate.py: AIME24 / AMC23 / MATH500 with vLLM under the paper's protocol, and tables like its Table 2.

    python evaluate.py --model Qwen/Qwen2.5-Math-7B                          # the base model
    python evaluate.py --model Qwen/Qwen2.5-Math-7B --adapter runs/paper-limr/checkpoints/step_000040
    python evaluate.py --run runs/paper-limr                                 # every checkpoint: accuracy vs step
    python evaluate.py --compare results/base results/limr results/full      # one table

Protocol (LIMR §3.1): LIMR's system prompt through the model's chat template; AIME24 and AMC23 4 samples at
temperature 0.4, MATH500 greedy; top_p 0.95; 3,072 new tokens; pass@1 = mean correctness over all samples.
Graded as the paper's eval/eval.py did: correct when the last \\boxed{} answer equals the gold (reward.py's
equivalence), whatever the format; the training reward's format rules (truncation, repetition, five boxes) apply in
training only, and the format-error and truncation rates are reported beside accuracy.
limr.py calls evaluate() during training with its own engine, which then holds the checkpoint's merged weights.
"""

import argparse
import hashlib
import itertools
import json
import random
import sys
from pathlib import Path

import data
import figures
import reward

PROTOCOL = {"aime24": (4, 0.4), "amc23": (4, 0.4), "math500": (1, 0.0), "toy": (1, 0.0)}  # (samples, temperature)
COLUMNS = {"aime24": "AIME2024", "math500": "MATH500", "amc23": "AMC2023", "toy": "TOY (held out)"}  # Table 2 order
TOP_P, MAX_TOKENS = 0.95, 3072
LORA_IDS = itertools.count(1)  # vLLM caches adapters by id: a reused id would serve the old weights


# ------------------------------------------------------------------------------------------- the protocol

def generate(llm, rows: list[dict], n: int, temperature: float, setup: dict, stop_ids: list[int],
             lora=None, progress: bool = True) -> list[list[tuple[str, bool]]]:
    """(response, truncated) for each sample of each problem, prompted as in training (template, end tokens)."""
    from vllm import SamplingParams

    tokenizer = llm.get_tokenizer()
    example = data.TOY_EXAMPLE if setup["one_shot"] else None
    system = setup.get("system", data.SYSTEM_PROMPT)
    prompts = [data.chat_prompt(tokenizer, r["question"], system, example) if setup["template"] == "chat"
               else r["question"] for r in rows]
    params = [SamplingParams(n=n, temperature=temperature, top_p=TOP_P if temperature > 0 else 1.0,
                             max_tokens=setup["max_tokens"], stop_token_ids=stop_ids,
                             seed=random.Random(f"eval/{r['id']}").getrandbits(31))  # same samples on every run
              for r in rows]
    outs = llm.generate(prompts, params, lora_request=lora, use_tqdm=progress and len(rows) > 100)
    return [[(o.text, o.finish_reason == "length") for o in out.outputs] for out in outs]


def grade(rows: list[dict], samples: list[list[tuple[str, bool]]]) -> list[dict]:
    """Per problem: its responses, training rewards (for the format and truncation rates) and the paper's verdicts."""
    flat = [(i, text, cut) for i, s in enumerate(samples) for text, cut in s]
    graded = reward.grade([t for _, t, _ in flat], [rows[i]["answer"] for i, _, _ in flat], [c for _, _, c in flat])
    out = [{**row, "responses": [], "rewards": [], "truncated": [], "correct": []} for row in rows]
    for (i, text, cut), (x, right) in zip(flat, graded):
        for key, value in (("responses", text), ("rewards", x), ("truncated", cut), ("correct", right)):
            out[i][key].append(value)
    return out


def settings(benchmark: str, setup: dict) -> dict:
    """Everything a benchmark's result depends on; stored with each graded row, checked before reusing them."""
    n = setup.get("n") or PROTOCOL[benchmark][0]
    temperature = PROTOCOL[benchmark][1] if setup.get("temperature") is None else setup["temperature"]
    return {"model": setup["model"], "adapter": setup["adapter"],
            "problems": len(data.load_benchmark(benchmark)[: setup.get("limit")]), "n": n,
            "temperature": temperature, "max_tokens": setup["max_tokens"], "template": setup["template"],
            "one_shot": bool(setup["one_shot"]), "system": setup.get("system", data.SYSTEM_PROMPT),
            "verdict": "last boxed answer"}  # results graded by an older rule are not reused


def finished(path: Path, wanted: dict) -> list[dict] | None:
    """The graded rows of a benchmark already run with these settings (a --limit 5 check is not a full result)."""
    graded = data.read_rows(path) if path.exists() else []
    return graded if graded and all(g.get("settings") == wanted for g in graded) else None


def evaluate(llm, folder: Path, setup: dict, stop_ids: list[int], lora=None, force: bool = False,
             progress: bool = True) -> dict:
    """Run (or reuse) each of setup['benchmarks'] into folder: <benchmark>.jsonl, summary.json, table.md.
    setup: model, adapter (its weights' sha256), benchmarks, limit, n, temperature, max_tokens, template, one_shot.
    progress: vLLM's bar over a long benchmark (off inside training, where the stage's own bar is the one)."""
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"name": setup.get("name", folder.name), "model": setup["model"], "adapter": setup["adapter"],
               "template": setup["template"], "benchmarks": {}}
    for b in setup["benchmarks"]:
        path, wanted = folder / f"{b}.jsonl", settings(b, setup)
        graded = None if force else finished(path, wanted)
        if graded is None:
            rows = data.load_benchmark(b)[: setup.get("limit")]
            samples = generate(llm, rows, wanted["n"], wanted["temperature"], setup, stop_ids, lora, progress)
            graded = [{**g, "settings": wanted} for g in grade(rows, samples)]
            data.write_atomic(path, "".join(json.dumps(g, ensure_ascii=False) + "\n" for g in graded))
        verdicts = [c for g in graded for c in g["correct"]]
        summary["benchmarks"][b] = {
            "problems": len(graded), "samples_per_problem": wanted["n"], "temperature": wanted["temperature"],
            "pass@1": sum(verdicts) / len(verdicts),
            "boxed_rate": sum(x > reward.FORMAT_ERROR for g in graded for x in g["rewards"]) / len(verdicts),
            "truncation_rate": sum(t for g in graded for t in g["truncated"]) / len(verdicts)}
    data.write_atomic(folder / "summary.json", json.dumps(summary, indent=1))
    data.write_atomic(folder / "table.md", table([summary]))
    return summary


# --------------------------------------------------------------------------------------------------- tables

def table(summaries: list[dict]) -> str:
    """The paper's Table 2: rows = models or checkpoints, columns = benchmarks (pass@1, %) and their average."""
    cols = [b for b in COLUMNS if any(b in s["benchmarks"] for s in summaries)]
    lines = ["| Method | " + " | ".join(COLUMNS[b] for b in cols) + " | AVG. |",
             "| --- |" + " ---: |" * (len(cols) + 1)]
    for s in summaries:
        scores = [100 * s["benchmarks"][b]["pass@1"] if b in s["benchmarks"] else None for b in cols]
        have = [x for x in scores if x is not None]
        cells = ["–" if x is None else f"{x:.1f}" for x in scores]
        lines.append(f"| {s['name']} | " + " | ".join(cells) + f" | {sum(have) / max(len(have), 1):.1f} |")
    return "\n".join(lines) + "\n"


def read_summaries(folders: list[Path]) -> list[dict]:
    out = []
    for f in folders:
        if not (f / "summary.json").exists():
            raise data.LimrError(f"--compare {f}: no summary.json (evaluate it first)")
        s = json.loads((f / "summary.json").read_text())
        out += s["rows"] if "rows" in s else [s]
    return out


def mean_pass(summary: dict) -> float:
    """Average pass@1 over a summary's benchmarks (the AVG. column), in percent."""
    return 100 * sum(b["pass@1"] for b in summary["benchmarks"].values()) / len(summary["benchmarks"])


# ------------------------------------------------------------------------------------------------------ CLI

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="base model: Hugging Face name or folder ('demo' = offline SmolLM2-135M); "
                   "with --run, default: the run's model")
    p.add_argument("--adapter", type=Path, help="a LoRA checkpoint written by limr.py (served by vLLM, not merged)")
    p.add_argument("--run", type=Path, help="evaluate the base model and every checkpoint of this limr.py run")
    p.add_argument("--benchmarks", default="aime24,amc23,math500", help="comma-separated: aime24, amc23, math500, toy")
    p.add_argument("--template", choices=["chat", "none"], default="chat",
                   help="chat: system prompt + chat template (the paper); none: the raw question")
    p.add_argument("--one-shot", action="store_true", help="one worked example first (the demo model needs it)")
    p.add_argument("--system", default=data.SYSTEM_PROMPT, help="system prompt (LIMR's by default)")
    p.add_argument("--n", type=int, help="samples per problem for every benchmark (default: the protocol's)")
    p.add_argument("--temperature", type=float, help="for every benchmark (default: the protocol's)")
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="new tokens per response")
    p.add_argument("--limit", type=int, help="only the first K problems of each benchmark (quick checks)")
    p.add_argument("--tp", type=int, help="tensor-parallel GPUs (default: the most of the visible ones that divide "
                                          "the model's heads)")
    p.add_argument("--dtype", default="auto", help="vLLM dtype (auto: the model's, bfloat16 for float32 models)")
    p.add_argument("--name", help="row label and results folder name (default: from model / adapter / run)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results root: <out>/<name>/")
    p.add_argument("--force", action="store_true", help="re-run benchmarks that already have results")
    p.add_argument("--compare", nargs="+", type=Path, help="only print one table of these results folders")
    args = p.parse_args(argv)
    if unknown := [b for b in args.benchmarks.split(",") if b not in PROTOCOL]:
        p.error(f"--benchmarks: unknown {', '.join(unknown)}; choose from {', '.join(PROTOCOL)}")
    data.check_at_least(p, args, {"n": 1, "max_tokens": 1, "limit": 1, "tp": 1, "temperature": 0})
    if not args.compare and not args.model and not args.run:
        p.error("give --model (and optionally --adapter), --run, or --compare")
    return args


def weights_id(adapter: Path | None) -> str:
    """sha256 of an adapter's weights: a result belongs to these weights, not to a folder name."""
    # weights deleted after their evaluation leave their id beside them (scripts/pack_runs.py): results stay theirs
    if adapter is None or not (adapter / "adapter_model.safetensors").exists():
        return (adapter / "weights_id").read_text() if adapter else ""
    with open(adapter / "adapter_model.safetensors", "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def checkpoints_of(args: argparse.Namespace) -> tuple[str, dict, list[tuple[int, Path | None]]]:
    """The model, how to prompt it (worked example, system prompt: a run's own), and the (step, adapter) pairs."""
    if not args.run:
        return args.model, {"one_shot": args.one_shot, "system": args.system}, [(0, args.adapter)]
    if not (args.run / "config.json").exists():
        raise data.LimrError(f"--run {args.run}: no config.json (not a limr.py run)")
    config = json.loads((args.run / "config.json").read_text())
    saved = data.checkpoints(args.run)
    prompting = {"one_shot": args.one_shot or config.get("one_shot", False),
                 "system": config.get("system", args.system) if args.system == data.SYSTEM_PROMPT else args.system}
    return args.model or config["model"], prompting, [(0, None)] + [(int(p.name.split("_")[1]), p) for p in saved]


def lora_rank(adapter: Path, model: str, model_path: str) -> int:
    """The adapter's rank, after checking that it was trained on this base model."""
    cfg = adapter / "adapter_config.json"
    if not cfg.exists():
        raise data.LimrError(f"--adapter {adapter}: no adapter_config.json there (not a LoRA checkpoint)")
    config = json.loads(cfg.read_text())
    base = config.get("base_model_name_or_path") or ""
    if base and base != model_path and Path(base).name != Path(model_path).name:
        raise data.LimrError(f"--adapter {adapter} was trained on {base}, not on --model {model}")
    return config["r"]


def start_engine(model_path: str, max_lora_rank: int = 0, max_model_len: int = 4096, tp: int | None = None,
                 dtype: str = "auto", heads: tuple[int, int] = (0, 0)):
    """vLLM over the visible GPUs (or the CPU); LoRA enabled when adapters will be served."""
    import torch

    kw = dict(tensor_parallel_size=tp or tensor_parallel(torch.cuda.device_count(), *heads)) \
        if torch.cuda.is_available() else {}
    if max_lora_rank:
        kw.update(enable_lora=True, max_lora_rank=vllm_lora_rank(max_lora_rank), max_loras=1)
    return data.vllm_engine(model_path, seed=0, max_model_len=max_model_len, dtype=dtype, **kw)


def vllm_lora_rank(r: int) -> int:
    """The smallest rank vLLM accepts as max_lora_rank that holds r: vLLM takes only a fixed set
    (vllm/config/lora.py, MaxLoRARanks) and refuses e.g. 24; verl rounds up the same way (get_vllm_max_lora_rank)."""
    allowed = (1, 8, 16, 32, 64, 128, 256, 320, 512)
    if r > allowed[-1]:
        raise data.LimrError(f"LoRA rank {r}: vLLM serves adapters of rank {allowed[-1]} at most")
    return next(a for a in allowed if a >= r)


def tensor_parallel(gpus: int, heads: int, kv_heads: int) -> int:
    """The largest power of two <= the GPUs that divides the attention and KV heads: vLLM refuses a tensor-parallel
    size that does not divide them (vllm/config/model.py, verify_with_parallel_config), e.g. Qwen2.5-7B's 28 heads
    on 8 GPUs; powers of two also divide the hidden and MLP widths of the models we use."""
    tp = 1
    while tp * 2 <= gpus and heads % (tp * 2) == 0 and kv_heads % (tp * 2) == 0:
        tp *= 2
    return tp


def model_shape(model: str, model_path: str, max_tokens: int) -> tuple[int, tuple[int, int]]:
    """The engine's length (room for prompt and answer within the model's context: a response reaching the end is
    truncated) and the (attention, KV) head counts; the one clear line for a wrong --model, before vLLM's
    screenful of validation errors."""
    from transformers import AutoConfig

    config = data.pretrained(model, AutoConfig.from_pretrained, model_path)
    context = getattr(config, "max_position_embeddings", None) or max_tokens + 1024
    heads = getattr(config, "num_attention_heads", 1)
    return min(max_tokens + 1024, context), (heads, getattr(config, "num_key_value_heads", None) or heads)


def checkpoint_name(args: argparse.Namespace, step: int, adapter: Path | None, model_path: str) -> str:
    """Results folder name: --name, else the run's name and step, else the model's (+ the adapter's)."""
    if args.run:
        return f"{args.name or args.run.name}/step_{step:06d}"
    name = Path(model_path).name  # 'demo' -> SmolLM2-135M-Instruct, not the pipeline's results/demo
    return args.name or (name if adapter is None else f"{name}+{adapter.parent.parent.name}-{adapter.name}")


def main(argv: list[str] | None = None, llm=None) -> list[dict]:
    args = parse_args(argv)
    if args.compare:
        print(table(read_summaries(args.compare)))
        return []
    from vllm.lora.request import LoRARequest

    model, prompting, checkpoints = checkpoints_of(args)
    model_path = data.model_path(model)
    ranks = [lora_rank(a, model, model_path) for _, a in checkpoints if a is not None]
    common = {"benchmarks": args.benchmarks.split(","), "limit": args.limit, "n": args.n,
              "temperature": args.temperature, "max_tokens": args.max_tokens, "template": args.template, **prompting}
    jobs = [(step, adapter, {"name": checkpoint_name(args, step, adapter, model_path), "model": model,
                             "adapter": weights_id(adapter), **common}) for step, adapter in checkpoints]
    pending = args.force or any(finished(args.out / s["name"] / f"{b}.jsonl", settings(b, s)) is None
                                for _, _, s in jobs for b in s["benchmarks"])
    if pending and llm is None:  # no engine (and no minute of start-up) when every result is already there
        length, heads = model_shape(model, model_path, args.max_tokens)
        llm = start_engine(model_path, max(ranks, default=0), length, args.tp, args.dtype, heads)
    stop_ids = data.stop_token_ids(llm.get_tokenizer(), model_path) if llm is not None else []
    rows = []
    for step, adapter, setup in jobs:
        lora = LoRARequest(str(adapter), next(LORA_IDS), str(adapter)) if adapter is not None else None
        print(f"{setup['name']}: {', '.join(setup['benchmarks'])}", flush=True)
        rows.append({**evaluate(llm, args.out / setup["name"], setup, stop_ids, lora, args.force), "step": step})
    if args.run:
        folder = args.out / (args.name or args.run.name)
        data.write_atomic(folder / "summary.json", json.dumps({"rows": rows}, indent=1))
        data.write_atomic(folder / "table.md", table(rows))
        figures.accuracy_vs_step({COLUMNS[b]: ([r["step"] for r in rows], [100 * r["benchmarks"][b]["pass@1"]
                                                for r in rows]) for b in rows[0]["benchmarks"]},
                                 folder / "accuracy_vs_step.png")
    print(table(rows))
    return rows


if __name__ == "__main__":
    try:
        main()
    except data.LimrError as e:
        sys.exit(f"evaluate.py: {e}")
    except KeyboardInterrupt:
        sys.exit("evaluate.py: interrupted; finished benchmarks are kept, the same command carries on")
