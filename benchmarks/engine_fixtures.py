"""Small logs written by the engines themselves, for tests/test_lim.py: what lim.py reads from TRL and verl runs.

TRL 1.16 (GRPOTrainer in .venv-trl, scripts/setup_trl.sh) trains the demo model (SmolLM2-135M, LoRA r 16, float32)
with reward.trl_reward on the first 8 toy prompts (the demo's system prompt and worked example), 4 prompts x 4
samples a step, 6 steps (3 epochs of 2 steps), T 0.7, 24 new tokens, log_completions=True, logging_steps=1,
num_iterations=1: once with each prompt as plain text (the chat template rendered, string ids, as a user who
templates their own prompts) and once as chat messages (TRL's conversational format, integer ids, as a user's own
file may hold them). verl 0.9 (.venv-verl, scripts/setup_verl.sh) installs and imports on a CPU but trains only
through Ray workers on GPUs, so its log is verl's own reward and dump path run on the chat run's samples: the prompts
and completions tokenised into a DataProto, NaiveRewardManager with reward.compute_score, and
RayPPOTrainer._log_rollout_data (decode, then _dump_generations) on the real class without its __init__.

    scripts/setup_trl.sh && scripts/setup_verl.sh && .venv/bin/python benchmarks/engine_fixtures.py
    # -> tests/fixtures/trl_plain/completions/completions_0000N.parquet, tests/fixtures/trl_chat/completions/...,
    #    tests/fixtures/verl/N.jsonl, tests/fixtures/engines.json (versions, configuration, the prompt files)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures"
PROMPTS, PER_STEP, SAMPLES, STEPS, NEW_TOKENS = 8, 4, 4, 6, 24  # 3 epochs of 2 steps; files of a few KB


def problems(chat: bool) -> list[dict]:
    """The prompt file of each run: the first toy prompts, with integer ids in the chat run."""
    import data

    return [{**r, "id": i if chat else r["id"]} for i, r in enumerate(data.toy_task()[:PROMPTS])]


def conversation(question: str) -> list[dict]:
    """The demo's prompt as chat messages: system prompt, the worked example, the question."""
    import data
    import limr

    return [{"role": "system", "content": limr.PRESETS["demo"]["system"]},
            {"role": "user", "content": data.TOY_EXAMPLE[0]}, {"role": "assistant", "content": data.TOY_EXAMPLE[1]},
            {"role": "user", "content": question}]


def run_trl(out: Path, chat: bool) -> None:
    """One TRL run (in .venv-trl); its completions/ folder lands in `out`."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    import data
    import limr
    import reward

    path = data.model_path("demo")
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = problems(chat)
    prompts = [conversation(r["prompt"]) if chat else tokenizer.apply_chat_template(
        conversation(r["prompt"]), tokenize=False, add_generation_prompt=True) for r in rows]
    dataset = Dataset.from_dict({"prompt": prompts, "answer": [r["answer"] for r in rows],
                                 "id": [r["id"] for r in rows]})
    config = GRPOConfig(
        output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=PER_STEP * SAMPLES,
        gradient_accumulation_steps=1, num_generations=SAMPLES, max_completion_length=NEW_TOKENS, temperature=0.7,
        learning_rate=2e-4, beta=0.0, num_iterations=1, log_completions=True, logging_steps=1, use_cpu=True,
        bf16=False, fp16=False, save_strategy="no", report_to="none", seed=0, dataloader_num_workers=0,
        gradient_checkpointing=False)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=limr.LORA_TARGETS.split(","),
                      task_type="CAUSAL_LM")
    GRPOTrainer(model=path, reward_funcs=[reward.trl_reward], args=config, train_dataset=dataset,
                processing_class=tokenizer, peft_config=lora).train()


def run_verl(chat_run: Path, out: Path) -> None:
    """verl's reward manager and rollout dump (in .venv-verl) on the TRL chat run's prompts and completions."""
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.workers.reward_manager.naive import NaiveRewardManager

    import data
    import reward

    tokenizer = AutoTokenizer.from_pretrained(data.model_path("demo"))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    manager = NaiveRewardManager(tokenizer, num_examine=0, compute_score=reward.compute_score)
    trainer = object.__new__(RayPPOTrainer)  # the real methods; only what they read is set
    trainer.tokenizer = tokenizer
    trainer._init_dump_executor()
    for step in range(1, STEPS + 1):
        rows = pq.read_table(chat_run / f"completions_{step:05d}.parquet").to_pylist()
        prompts = [tokenizer(tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True),
                             add_special_tokens=False).input_ids for r in rows]
        responses = [tokenizer(r["completion"][-1]["content"], add_special_tokens=False).input_ids for r in rows]
        width_p, width_r = max(map(len, prompts)), max(map(len, responses))
        left = torch.tensor([[pad] * (width_p - len(p)) + p for p in prompts])  # verl: prompts left-padded
        right = torch.tensor([r + [pad] * (width_r - len(r)) for r in responses])  # responses right-padded
        mask = torch.tensor([[0] * (width_p - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (width_r - len(r))
                             for p, r in zip(prompts, responses)])
        answers = {str(r["id"]): r["answer"] for r in problems(chat=True)}
        batch = DataProto.from_dict(
            tensors={"prompts": left, "responses": right, "attention_mask": mask},
            non_tensors={"data_source": np.array(["toy"] * len(rows), dtype=object),
                         "reward_model": np.array([{"style": "rule", "ground_truth": answers[r["id"]]} for r in rows],
                                                  dtype=object),
                         "extra_info": np.array([{"index": int(r["id"]), "split": "train", "id": r["id"]}
                                                 for r in rows], dtype=object)})
        scored = manager(batch, return_dict=True)
        batch.batch["token_level_scores"] = scored["reward_tensor"]
        trainer.global_steps = step
        RayPPOTrainer._log_rollout_data(trainer, batch, dict(scored["reward_extra_info"]), {}, str(out))
    trainer._shutdown_dump_executor()


def side(python: Path, *args: str) -> None:
    """Run one side of this script in its own environment, offline."""
    if not python.exists():
        sys.exit(f"{python} is missing: run scripts/setup_trl.sh and scripts/setup_verl.sh first")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "WANDB_MODE": "disabled"}
    subprocess.run([str(python), __file__, *args], check=True, env=env)


def versions(python: Path, modules: str) -> dict:
    code = f"import importlib; print(*[importlib.import_module(m).__version__ for m in {modules.split()!r}])"
    return dict(zip(modules.split(), subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                                                    check=True).stdout.split()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", choices=["trl-plain", "trl-chat", "verl"], help="internal: one engine's log")
    p.add_argument("--out", type=Path, help="internal: where that side writes")
    a = p.parse_args()
    if a.side == "verl":
        return run_verl(FIXTURES / "trl_chat" / "completions", a.out)
    if a.side:
        return run_trl(a.out, chat=a.side == "trl-chat")
    trl_python, verl_python = ROOT / ".venv-trl" / "bin" / "python", ROOT / ".venv-verl" / "bin" / "python"
    for name in ("trl_plain", "trl_chat"):
        with tempfile.TemporaryDirectory() as tmp:
            side(trl_python, "--side", name.replace("_", "-"), "--out", tmp)
            shutil.rmtree(FIXTURES / name, ignore_errors=True)
            shutil.copytree(Path(tmp) / "completions", FIXTURES / name / "completions")
    shutil.rmtree(FIXTURES / "verl", ignore_errors=True)
    side(verl_python, "--side", "verl", "--out", str(FIXTURES / "verl"))
    info = {"trl_side": versions(trl_python, "trl transformers torch peft"),
            "verl_side": versions(verl_python, "verl transformers torch"),
            "model": "SmolLM2-135M-Instruct (data.model_path('demo')), LoRA r 16 / alpha 32, float32",
            "prompts": PROMPTS, "prompts_per_step": PER_STEP, "samples": SAMPLES, "steps": STEPS,
            "steps_per_epoch": PROMPTS // PER_STEP, "max_completion_length": NEW_TOKENS, "temperature": 0.7,
            "reward": {"trl": "reward.trl_reward", "verl": "reward.compute_score"},
            "prompt_files": {"trl_plain": problems(chat=False), "trl_chat": problems(chat=True)}}
    (FIXTURES / "engines.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {FIXTURES}")


if __name__ == "__main__":
    main()
