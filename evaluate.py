"""evaluate.py: AIME24 / AMC23 / MATH500 with vLLM under the paper's protocol, and tables like its Table 2.

    python evaluate.py --model Qwen/Qwen2.5-Math-7B                          # the base model
    python evaluate.py --model Qwen/Qwen2.5-Math-7B --adapter runs/paper-limr/checkpoints/step_000040
    python evaluate.py --run runs/paper-limr                                 # every checkpoint: accuracy vs step
    python evaluate.py --compare results/base results/limr results/full      # one table

Protocol (LIMR §3.1): LIMR's system prompt through the model's chat template; AIME24 and AMC23 4 samples at
temperature 0.4, MATH500 greedy; top_p 0.95; 3,072 new tokens; pass@1 = mean correctness over all samples.
Graded by reward.py (one grader for training and evaluation): correct = reward +1, so a truncated response is wrong.
"""

import argparse
import hashlib
import itertools
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import data  # noqa: E402
import reward  # noqa: E402

PROTOCOL = {"aime24": (4, 0.4), "amc23": (4, 0.4), "math500": (1, 0.0), "toy": (1, 0.0)}  # (samples, temperature)
COLUMNS = {"aime24": "AIME2024", "math500": "MATH500", "amc23": "AMC2023", "toy": "TOY (held out)"}  # Table 2 order
TOP_P, MAX_TOKENS = 0.95, 3072
LORA_IDS = itertools.count(1)


class EvalError(ValueError):
    """Bad input; the message names the flag or file."""


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
    p.add_argument("--n", type=int, help="samples per problem for every benchmark (default: the protocol's)")
    p.add_argument("--temperature", type=float, help="for every benchmark (default: the protocol's)")
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="new tokens per response")
    p.add_argument("--limit", type=int, help="only the first K problems of each benchmark (quick checks)")
    p.add_argument("--tp", type=int, help="tensor-parallel GPUs (default: all visible)")
    p.add_argument("--dtype", default="auto", help="vLLM dtype (auto: the model's, bfloat16 for float32 models)")
    p.add_argument("--name", help="row label and results folder name (default: from model / adapter / run)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results root: <out>/<name>/")
    p.add_argument("--force", action="store_true", help="re-run benchmarks that already have results")
    p.add_argument("--compare", nargs="+", type=Path, help="only print one table of these results folders")
    args = p.parse_args(argv)
    unknown = [b for b in args.benchmarks.split(",") if b not in PROTOCOL]
    if unknown:
        p.error(f"--benchmarks: unknown {', '.join(unknown)}; choose from {', '.join(PROTOCOL)}")
    for k in ("n", "max_tokens", "limit", "tp"):
        if getattr(args, k) is not None and getattr(args, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be at least 1")
    if args.temperature is not None and args.temperature < 0:
        p.error("--temperature must be at least 0")
    if not args.compare and not args.model and not args.run:
        p.error("give --model (and optionally --adapter), --run, or --compare")
    return args


# ---------------------------------------------------------------------------------------------- generation

def adapter_base(adapter: Path) -> str:
    cfg = adapter / "adapter_config.json"
    if not cfg.exists():
        raise EvalError(f"--adapter {adapter}: no adapter_config.json there (not a LoRA checkpoint)")
    return json.loads(cfg.read_text()).get("base_model_name_or_path") or ""


def start_engine(model_path: str, max_lora_rank: int = 0, max_model_len: int = 4096, tp: int | None = None,
                 dtype: str = "auto"):
    """vLLM over all visible GPUs (or the CPU); LoRA enabled when adapters will be served."""
    import torch
    from vllm import LLM

    cuda = torch.cuda.is_available()
    kw = dict(tensor_parallel_size=tp or max(1, torch.cuda.device_count()), gpu_memory_utilization=0.85) if cuda \
        else dict(enforce_eager=True, kv_cache_memory_bytes=2 * 2**30)
    kw["dtype"] = dtype
    if max_lora_rank:
        kw.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=1)
    return LLM(model=model_path, seed=0, max_model_len=max_model_len, **kw)


def generate(llm, rows: list[dict], n: int, temperature: float, args, lora=None) -> list[list[tuple[str, bool]]]:
    """(response, truncated) for each sample of each problem."""
    from vllm import SamplingParams

    tokenizer = llm.get_tokenizer()
    example = data.TOY_EXAMPLE if args.one_shot else None
    prompts = [data.chat_prompt(tokenizer, r["question"], example=example) if args.template == "chat"
               else r["question"] for r in rows]
    from limr import stop_token_ids  # the same end tokens as in training (the chat turn end included)

    params = SamplingParams(n=n, temperature=temperature, top_p=TOP_P if temperature > 0 else 1.0,
                            max_tokens=args.max_tokens, stop_token_ids=stop_token_ids(tokenizer, args.model_path))
    outs = llm.generate(prompts, params, lora_request=lora, use_tqdm=True)
    return [[(o.text, o.finish_reason == "length") for o in out.outputs] for out in outs]


def grade(rows: list[dict], samples: list[list[tuple[str, bool]]]) -> list[dict]:
    """Per problem: its responses, rewards and verdicts (correct = reward +1), graded in reward.py's workers."""
    flat = [(i, text, cut) for i, s in enumerate(samples) for text, cut in s]
    r = reward.rewards([t for _, t, _ in flat], [rows[i]["answer"] for i, _, _ in flat], [c for _, _, c in flat])
    out = [{**row, "responses": [], "rewards": [], "truncated": []} for row in rows]
    for (i, text, cut), x in zip(flat, r):
        out[i]["responses"].append(text)
        out[i]["rewards"].append(x)
        out[i]["truncated"].append(cut)
    for o in out:
        o["correct"] = [x == reward.CORRECT for x in o["rewards"]]
    return out


def weights_id(adapter: Path | None) -> str:
    """sha256 of an adapter's weights: a result belongs to these weights, not to a folder name."""
    if adapter is None:
        return ""
    with open(adapter / "adapter_model.safetensors", "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def settings(b: str, args, adapter: Path | None) -> dict:
    """Everything a benchmark's result depends on; stored with each graded row, checked before reusing them."""
    n, temperature = args.n or PROTOCOL[b][0], PROTOCOL[b][1] if args.temperature is None else args.temperature
    return {"model": args.model, "adapter": weights_id(adapter), "problems": len(data.load_benchmark(b)[: args.limit]),
            "n": n, "temperature": temperature, "max_tokens": args.max_tokens, "template": args.template,
            "one_shot": bool(args.one_shot)}


def finished(path: Path, setup: dict) -> list[dict] | None:
    """The graded rows of a benchmark already run with these settings (a --limit 5 check is not a full result)."""
    if not path.exists():
        return None
    graded = [json.loads(line) for line in path.read_text().splitlines() if line]
    return graded if graded and all(g.get("settings") == setup for g in graded) else None


def evaluate(llm, args, name: str, lora=None) -> dict:
    """Run (or load) each benchmark into <out>/<name>/: <benchmark>.jsonl, summary.json, table.md."""
    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"name": name, "model": args.model, "adapter": str(args.adapter or ""), "template": args.template,
               "benchmarks": {}}
    for b in args.benchmarks.split(","):
        path, setup = folder / f"{b}.jsonl", settings(b, args, args.adapter)
        n, temperature = setup["n"], setup["temperature"]
        graded = None if args.force else finished(path, setup)
        if graded is None:
            rows = data.load_benchmark(b)[: args.limit]
            print(f"{name}: {b} ({len(rows)} problems x {n} samples, T={temperature})", flush=True)
            graded = [{**g, "settings": setup} for g in grade(rows, generate(llm, rows, n, temperature, args, lora))]
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(json.dumps(g, ensure_ascii=False) + "\n" for g in graded))
            tmp.replace(path)  # a finished benchmark is never half-written, so it is safely skipped next time
        verdicts = [c for g in graded for c in g["correct"]]
        summary["benchmarks"][b] = {
            "problems": len(graded), "samples_per_problem": len(graded[0]["correct"]) if graded else 0,
            "temperature": temperature, "pass@1": sum(verdicts) / max(len(verdicts), 1),
            "boxed_rate": sum(x > reward.FORMAT_ERROR for g in graded for x in g["rewards"]) / max(len(verdicts), 1),
            "truncation_rate": sum(t for g in graded for t in g["truncated"]) / max(len(verdicts), 1)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    (folder / "table.md").write_text(table([summary]))
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
        path = f / "summary.json"
        if not path.exists():
            raise EvalError(f"--compare {f}: no summary.json (evaluate it first)")
        s = json.loads(path.read_text())
        out += s["rows"] if "rows" in s else [s]
    return out


def plot_run(rows: list[dict], path: Path) -> None:
    """Accuracy against training step per benchmark (the paper's Figure 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for b in rows[0]["benchmarks"]:
        ax.plot([r["step"] for r in rows], [100 * r["benchmarks"][b]["pass@1"] for r in rows], marker="o",
                label=COLUMNS[b])
    ax.set(xlabel="training step", ylabel="pass@1 (%)", title="accuracy during training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------- main

def checkpoint_name(args: argparse.Namespace, step: int, adapter: Path | None) -> str:
    """Results folder name: --name, else the run's name and step, else model (+ adapter)."""
    if args.run:
        return f"{args.name or args.run.name}/step_{step:06d}"
    if adapter is not None:
        return args.name or f"{Path(args.model_path).name}+{adapter.parent.parent.name}-{adapter.name}"
    return args.name or Path(args.model_path).name  # 'demo' -> SmolLM2-135M-Instruct, not the pipeline's results/demo


def main(argv: list[str] | None = None, llm=None) -> list[dict]:
    args = parse_args(argv)
    if args.compare:
        text = table(read_summaries(args.compare))
        print(text)
        return []
    from vllm.lora.request import LoRARequest

    checkpoints: list[tuple[int, Path | None]] = [(0, args.adapter)]
    if args.run:
        cfg = args.run / "config.json"
        if not cfg.exists():
            raise EvalError(f"--run {args.run}: no config.json (not a limr.py run)")
        config = json.loads(cfg.read_text())
        args.model = args.model or config["model"]
        args.one_shot = args.one_shot or config.get("one_shot", False)
        saved = sorted(p for p in (args.run / "checkpoints").glob("step_[0-9]*") if not p.name.endswith(".tmp"))
        checkpoints = [(0, None)] + [(int(p.name.split("_")[1]), p) for p in saved]
    model_path = args.model_path = data.model_path(args.model)
    ranks = []
    for _, adapter in checkpoints:
        if adapter is None:
            continue
        base = adapter_base(adapter)
        if base and base != model_path and Path(base).name != Path(model_path).name:
            raise EvalError(f"--adapter {adapter} was trained on {base}, not on --model {args.model}")
        ranks.append(json.loads((adapter / "adapter_config.json").read_text())["r"])
    names = [checkpoint_name(args, step, adapter) for step, adapter in checkpoints]
    pending = args.force or any(finished(args.out / name / f"{b}.jsonl", settings(b, args, adapter)) is None
                                for (_, adapter), name in zip(checkpoints, names) for b in args.benchmarks.split(","))
    if pending and llm is None:  # no engine (and no minute of start-up) when every result is already there
        from transformers import AutoConfig

        try:  # one clear line for a wrong --model, before vLLM's screenful of validation errors
            context = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
        except (OSError, ValueError) as e:
            raise EvalError(f"--model {args.model}: cannot load it ({str(e).splitlines()[0].strip()})") from None
        # room for the prompt, within the model's context (a response that reaches the end counts as truncated)
        length = min(args.max_tokens + 1024, context or args.max_tokens + 1024)
        llm = start_engine(model_path, max(ranks, default=0), length, args.tp, args.dtype)
    rows = []
    for (step, adapter), name in zip(checkpoints, names):
        # a new id per request: vLLM caches adapters by id, and a reused id would serve the old weights
        lora = LoRARequest(str(adapter), next(LORA_IDS), str(adapter)) if adapter is not None else None
        args.adapter = adapter
        rows.append({**evaluate(llm, args, name, lora), "step": step})
    if args.run:
        folder = args.out / (args.name or args.run.name)
        (folder / "summary.json").write_text(json.dumps({"rows": rows}, indent=1))
        (folder / "table.md").write_text(table(rows))
        plot_run(rows, folder / "accuracy_vs_step.png")
    print(table(rows))
    return rows


if __name__ == "__main__":
    try:
        main()
    except (EvalError, data.DataError) as e:
        sys.exit(f"evaluate.py: {e}")
    except KeyboardInterrupt:
        sys.exit("evaluate.py: interrupted; finished benchmarks are kept, the same command carries on")
