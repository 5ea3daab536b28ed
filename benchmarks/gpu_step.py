"""Memory and speed of limr.py's GRPO update at the paper preset's shape, with random weights (no download).

Builds Qwen2.5-Math-7B's architecture (or the 1.5B's, or a tiny one to check this script on a CPU) with random
weights, wraps it in LoRA exactly as limr.py does (r 64 on every linear layer, gradient checkpointing, bf16 on CUDA),
and times `limr.train_step` (reference pass, forward, backward, AdamW) on synthetic rollouts of the paper preset's
lengths: 200-token prompts, responses of 500 / 1,500 / 3,072 tokens. Reports peak GPU memory and training tokens
per second: the update's half of the GPU-hours per stage (the other half, generation, needs vLLM on the GPU).
The temperature (1.2), token budget and LoRA are the paper preset's, as limr.py trains them.

    python benchmarks/gpu_step.py                       # on a GPU: 1.5B and 7B -> reference/gpu_step.json (~5 min)
    .venv/bin/python benchmarks/gpu_step.py --shapes tiny --out /tmp/g.json   # the same code path on a CPU
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import limr  # noqa: E402
from benchmarks import shapes  # noqa: E402

torch = limr.torch
# the base models' published configs (the 1.5B ties its LM head to the embedding, the 7B does not); tiny: this
# script's own check on a CPU, a small vocabulary so it takes seconds
SHAPES = {"7b": shapes.QWEN25_MATH_7B, "1.5b": shapes.QWEN25_MATH_1_5B, "tiny": {**shapes.TINY, "vocab_size": 1000}}


def random_policy(shape: str, args, device: str):
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(**SHAPES[shape])
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype))
    return limr.with_lora(model, args), config.vocab_size


def measure(shape: str, a, device: str) -> dict:
    """One shape: weights in memory, then a timed update at each response length (its first one warms up)."""
    args = limr.parse_args(["--preset", "paper"] + ([] if device == "cuda" else ["--token-budget", "2048"]))
    policy, vocab = random_policy(shape, args, device)
    optimizer, scheduler = limr.make_optimizer(policy, args)
    gen = torch.Generator().manual_seed(0)
    out = {"shape": shape, "dtype": args.dtype, "lora_rank": args.lora_rank, "token_budget": args.token_budget,
           "gradient_checkpointing": args.gradient_checkpointing, "temperature": args.temperature,
           "samples": a.samples, "runs": []}
    if device == "cuda":
        out["weights_gb"] = round(torch.cuda.memory_allocated() / 2**30, 2)
    for length in [int(x) for x in a.lengths.split(",")][:1] + [int(x) for x in a.lengths.split(",")]:
        samples = [{"prompt_ids": torch.randint(vocab, (200,), generator=gen).tolist(),
                    "ids": torch.randint(vocab, (length,), generator=gen).tolist(), "advantage": (-1.0) ** k,
                    "uniform": False, "vllm_logprobs": [0.0] * length} for k in range(a.samples)]
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
        print(shape, run, flush=True)
    out["runs"] = out["runs"][1:]  # the warm-up
    del policy, optimizer
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="1.5b,7b", help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--samples", type=int, default=32, help="sequences per timed update (the preset trains 256)")
    p.add_argument("--lengths", default="500,1500,3072", help="response lengths to time, comma-separated")
    p.add_argument("--out", type=Path, default=ROOT / "reference" / "gpu_step.json")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "date": time.strftime("%Y-%m-%d"),
              "shapes": [measure(shape, a, device) for shape in a.shapes.split(",")]}
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
