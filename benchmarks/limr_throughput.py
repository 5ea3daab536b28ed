"""limr.py's step on this CPU, for the tiny test model and the demo model (SmolLM2-135M):

- generated tokens per second through our rollout path against a bare `llm.generate` of the same batch (goal >= 95%),
  and right after a weight sync, whose prefix-cache reset makes the engine recompute the shared prompt, as in training
- seconds per weight sync (merge LoRA, reload into vLLM, reset its prefix cache)
- training tokens per second of one GRPO update (reference pass + forward/backward), per response token

Writes reference/limr_throughput.json.  Run: .venv/bin/python benchmarks/limr_throughput.py
"""

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import data  # noqa: E402
import limr  # noqa: E402

torch = limr.torch

REPEATS = 5


def measure(name: str, model: str, extra: list[str]) -> dict:
    from vllm import SamplingParams

    args = limr.parse_args(["--preset", "demo", "--model", model, *extra])
    path = data.model_path(model)
    policy, tokenizer = limr.load_policy(args, path, "cpu")
    llm = limr.start_vllm(args, path, "cpu")
    rows = limr.encode_prompts(data.toy_task("train")[: args.prompts_per_step], tokenizer, args)
    stop = data.stop_token_ids(tokenizer, path)
    params = SamplingParams(n=args.n, temperature=args.temperature, top_p=1.0, max_tokens=args.max_response_tokens,
                            stop_token_ids=stop)
    llm.generate([{"prompt_token_ids": r["prompt_ids"]} for r in rows], params, use_tqdm=False)  # warm-up
    state = limr.run_state(args, ROOT / "runs", tokenizer, path, "cpu", limr.reward.rewards)
    ours, bare, after_sync, sync = [], [], [], []
    for k in range(REPEATS):  # alternate, so all three see the same machine state
        t = time.perf_counter()
        samples = limr.rollout(llm, rows, args, stop, step=k)
        ours.append(sum(len(s["ids"]) for s in samples) / (time.perf_counter() - t))
        t = time.perf_counter()
        outs = llm.generate([{"prompt_token_ids": r["prompt_ids"]} for r in rows], params, use_tqdm=False)
        bare.append(sum(len(o.token_ids) for g in outs for o in g.outputs) / (time.perf_counter() - t))
        t = time.perf_counter()
        limr.sync_weights(llm, policy, state)  # new weights and an empty prefix cache, as after every training step
        sync.append(time.perf_counter() - t)
        t = time.perf_counter()
        fresh = limr.rollout(llm, rows, args, stop, step=k)
        after_sync.append(sum(len(s["ids"]) for s in fresh) / (time.perf_counter() - t))
    rewards = limr.reward.rewards([s["text"] for s in samples], [rows[s["prompt"]]["answer"] for s in samples],
                                  [s["truncated"] for s in samples])
    adv = limr.group_advantages(torch.tensor(rewards).view(len(rows), args.n)).flatten().tolist()
    for s, a in zip(samples, adv):
        s.update(advantage=a, uniform=False, prompt_ids=rows[s["prompt"]]["prompt_ids"])
    args.skip_uniform_groups = False  # time the update on every sample
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[0]
    t = time.perf_counter()
    stats = limr.train_step(policy, optimizer, scheduler, samples, args, pad, "cpu", step=1)
    train_s = time.perf_counter() - t
    total_tokens = sum(len(s["prompt_ids"]) + len(s["ids"]) for s in samples)
    out = {"model": name, "prompts": len(rows), "samples": len(samples), "torch_threads": torch.get_num_threads(),
           "generate_tokens_per_second_ours": round(sum(ours) / REPEATS, 1),
           "generate_tokens_per_second_bare_llm_generate": round(sum(bare) / REPEATS, 1),
           "ours_over_bare": round(sum(ours) / sum(bare), 3),
           "generate_tokens_per_second_right_after_a_sync": round(sum(after_sync) / REPEATS, 1),
           "after_sync_over_bare": round(sum(after_sync) / sum(bare), 3),
           "sync_seconds": round(sum(sync) / REPEATS, 3),
           "train_seconds": round(train_s, 2), "train_response_tokens": stats["train_tokens"],
           "train_response_tokens_per_second": round(stats["train_tokens"] / train_s, 1),
           "train_all_tokens_per_second": round(total_tokens / train_s, 1)}
    print(out, flush=True)
    del llm
    return out


def main() -> None:
    from conftest import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tiny = str(build_tiny_model(Path(tmp) / "tiny"))
        results = [measure("tiny random Qwen2 (2 layers, hidden 64)", tiny, ["--no-one-shot", "--temperature", "1.0"]),
                   measure("SmolLM2-135M-Instruct (demo preset)", "demo", [])]
    (ROOT / "reference" / "limr_throughput.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
