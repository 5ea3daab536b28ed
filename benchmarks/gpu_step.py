"""Memory and speed of limr.py's GRPO update at the paper preset's shape, with random weights (no download).

Builds Qwen2.5-Math-7B's architecture (or the 1.5B's, or a tiny one to check this script on a CPU) with random
weights, wraps it in LoRA exactly as limr.py does (r 64 on every linear layer, gradient checkpointing, bf16 on CUDA),
and times `limr.train_step` (reference pass, forward, backward, AdamW) on synthetic rollouts of the paper preset's
lengths: 200-token prompts, responses of 500 / 1,500 / 3,072 tokens. Reports peak GPU memory and training tokens
per second; with the rollout throughput of vLLM (measured separately) these give GPU-hours per stage.

    python benchmarks/gpu_step.py --shape 7b            # on a GPU -> reference/gpu_step_7b.json
    .venv/bin/python benchmarks/gpu_step.py --shape tiny   # the same code path on a CPU, in seconds
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import limr  # noqa: E402

torch = limr.torch
SHAPES = {  # Qwen2 configs of the two base models (hidden, layers, heads, kv heads, intermediate, vocab)
    "7b": (3584, 28, 28, 4, 18944, 152064),
    "1.5b": (1536, 28, 12, 2, 8960, 151936),
    "tiny": (64, 2, 2, 1, 128, 1000),
}


def random_policy(shape: str, args, device: str):
    from transformers import AutoModelForCausalLM, Qwen2Config

    hidden, layers, heads, kv, inter, vocab = SHAPES[shape]
    config = Qwen2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv, intermediate_size=inter, vocab_size=vocab,
                         max_position_embeddings=4096, tie_word_embeddings=False)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype))
    return limr.with_lora(model, args), vocab


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=list(SHAPES), default="7b")
    p.add_argument("--samples", type=int, default=32, help="sequences per timed update (the preset trains 256)")
    p.add_argument("--lengths", default="500,1500,3072", help="response lengths to time, comma-separated")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args = limr.parse_args(["--preset", "paper"] + ([] if device == "cuda" else ["--token-budget", "2048"]))
    policy, vocab = random_policy(a.shape, args, device)
    optimizer = torch.optim.AdamW([q for q in policy.parameters() if q.requires_grad], lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    gen = torch.Generator().manual_seed(0)
    out = {"shape": a.shape, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
           "dtype": args.dtype, "lora_rank": args.lora_rank, "token_budget": args.token_budget,
           "gradient_checkpointing": args.gradient_checkpointing, "samples": a.samples, "runs": []}
    if device == "cuda":
        out["weights_gb"] = round(torch.cuda.memory_allocated() / 2**30, 2)
    for length in map(int, a.lengths.split(",")):
        samples = [{"prompt_ids": torch.randint(vocab, (200,), generator=gen).tolist(),
                    "ids": torch.randint(vocab, (length,), generator=gen).tolist(), "advantage": (-1.0) ** k}
                   for k in range(a.samples)]
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        t = time.perf_counter()
        stats = limr.train_step(policy, optimizer, scheduler, samples, args, 0, device, step=1)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
        run = {"response_tokens": length, "seconds": round(seconds, 2),
               "train_tokens_per_second": round(stats["train_tokens"] / seconds, 1),
               "all_tokens_per_second": round(a.samples * (200 + length) / seconds, 1),
               "peak_memory_gb": round(limr.peak_memory_gb(device), 2)}
        out["runs"].append(run)
        print(run, flush=True)
    path = ROOT / "reference" / f"gpu_step_{a.shape}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
