"""LIM: hand-computed scores, gaps, the repeated prompt, both log formats, baselines, and the published selection."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import data
import lim
from lim import fill_missing, lim_scores, linear_scores

SHARED = Path(os.environ["LIMR_DATA_DIR"])


def test_scores_by_hand():
    # r_avg = [1/3, 1/2, 2/3]; sum_k (1 - r_avg)^2 = 4/9 + 1/4 + 1/9 = 29/36
    r = np.array([[0, 0.5, 1], [0, 0, 0], [1, 1, 1]])
    s, r_avg = lim_scores(r)
    np.testing.assert_allclose(r_avg, [1 / 3, 1 / 2, 2 / 3])
    # row 0: (1/3)^2 + 0 + (1/3)^2 = 8/36 -> 1 - 8/29; all-zero row: 29/36 -> 0; all-one row: 29/36 -> 0
    np.testing.assert_allclose(s, [21 / 29, 0, 0], atol=1e-12)


def test_all_zero_and_all_one_against_a_rising_curve():
    r = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 1.0], [0.5, 0.0]])  # r_avg = [0.5, 0.5]; denominator 0.5
    s, _ = lim_scores(r)
    np.testing.assert_allclose(s, [1 - 0.5 / 0.5, 1 - 0.5 / 0.5, 1 - 0.25 / 0.5, 1 - 0.25 / 0.5], atol=1e-12)


def test_degenerate_run_is_a_clear_error():
    with pytest.raises(data.LimrError, match="denominator"):
        lim_scores(np.ones((3, 4)))


def test_linear_scores_follow_a_straight_line():
    # r_avg = [0, 0.5, 0.75]: the line runs 0 -> 0.375 -> 0.75; denominator 1 + 0.390625 + 0.0625 = 1.453125
    r = np.array([[0, 0.5, 1.0], [0, 0.5, 0.5]])
    expected = [1 - (0.125**2 + 0.25**2) / 1.453125, 1 - (0.125**2 + 0.25**2) / 1.453125]
    np.testing.assert_allclose(linear_scores(r), expected)
    ramp = np.array([[0, 0.25, 0.5], [0, 0.25, 0.5]])
    np.testing.assert_allclose(linear_scores(ramp), [1, 1])  # exactly on the line


def test_fill_missing_is_upstreams_one_step_backward_fill():
    nan = np.nan
    acc = np.array([[nan, 0.5, 1.0], [nan, nan, 1.0], [0.5, 1.0, nan], [0.0, nan, 0.5]])
    out = fill_missing(acc)
    np.testing.assert_array_equal(out[0], [0.5, 0.5, 1.0])
    assert np.isnan(out[1, 0]) and out[1, 1] == 1.0  # a two-epoch gap keeps its first epoch missing
    assert np.isnan(out[2, 2])  # a gap in the last epoch is never filled
    np.testing.assert_array_equal(out[3], [0.0, 0.5, 0.5])


# ------------------------------------------------------------------------------------ synthetic rollout logs

def write_ours(folder: Path, run: dict[str, list[list[float]]], steps_per_epoch: int = 1) -> None:
    """run[id][epoch] = rewards of that epoch (empty: not sampled); one step file per epoch step."""
    folder.mkdir(parents=True)
    n_epochs = len(next(iter(run.values())))
    for k in range(n_epochs):
        for j in range(steps_per_epoch):
            step = k * steps_per_epoch + j + 1
            ids = [i for n, i in enumerate(run) if n % steps_per_epoch == j and run[i][k]]
            lines = [json.dumps({"step": step, "epoch": k, "id": i, "prompt": f"prompt {i}", "answer": "1",
                                 "rewards": run[i][k]}) for i in ids]
            (folder / f"step_{step:06d}.jsonl").write_text("\n".join(lines) + "\n")


def write_openrlhf(folder: Path, run: dict[str, list[list[float]]], steps_per_epoch: int = 2) -> None:
    folder.mkdir(parents=True)
    n_epochs = len(next(iter(run.values())))
    for k in range(n_epochs):
        for j in range(steps_per_epoch):
            samples = [{"prompt": f"prompt {i}", "output": "...", "reward": x}
                       for n, i in enumerate(run) if n % steps_per_epoch == j for x in run[i][k]]
            (folder / f"step_{k * steps_per_epoch + j + 1}.json").write_text(json.dumps(samples))


RUN = {  # accuracy = share of rewards equal to 1; -0.5 and -1 both count as wrong
    "a": [[1, -0.5], [1, 1], [1, 1]],
    "b": [[-1, -0.5], [1, -0.5], [1, 1]],
    "c": [[-1, -1], [-0.5, -0.5], [-0.5, 1]],
    "d": [[1, 1], [1, 1], [1, 1]],
}
ACC = np.array([[0.5, 1, 1], [0, 0.5, 1], [0, 0, 0.5], [1, 1, 1]])


def test_both_formats_give_identical_scores(tmp_path):
    write_ours(tmp_path / "ours", RUN, steps_per_epoch=2)
    write_openrlhf(tmp_path / "theirs", RUN, steps_per_epoch=2)
    keys, _, acc, fmt, _ = lim.trajectories(tmp_path / "ours", None, None)  # epochs as our log records them
    assert fmt == "limr" and sorted(keys) == ["a", "b", "c", "d"]
    ours = dict(zip(keys, lim_scores(acc)[0]))
    keys2, _, acc2, fmt2, _ = lim.trajectories(tmp_path / "theirs", 2, None)  # OpenRLHF: steps grouped by 2
    assert fmt2 == "openrlhf"
    theirs = {k.removeprefix("prompt "): v for k, v in zip(keys2, lim_scores(acc2)[0])}
    expected = dict(zip("abcd", lim_scores(ACC)[0]))
    for k in "abcd":
        assert ours[k] == pytest.approx(expected[k]) and theirs[k] == pytest.approx(expected[k])


def test_missing_epochs_and_max_epochs(tmp_path):
    run = {**RUN, "gap": [[], [1, 1], [1, -1]], "end": [[1, 1], [1, 1], []], "long": [[], [], [1, 1]]}
    write_ours(tmp_path / "r", run)
    keys, _, acc, _, _ = lim.trajectories(tmp_path / "r", None, None)
    r = fill_missing(acc)
    full = dict(zip(keys, ~np.isnan(r).any(axis=1)))
    assert full == {"a": True, "b": True, "c": True, "d": True, "gap": True, "end": False, "long": False}
    np.testing.assert_array_equal(r[keys.index("gap")], [1, 1, 0.5])
    keys, _, acc, _, _ = lim.trajectories(tmp_path / "r", None, max_epochs=2)
    assert acc.shape == (6, 2)  # "long" is never seen in the first two epochs
    with pytest.raises(data.LimrError, match="only 3 epochs"):
        lim.trajectories(tmp_path / "r", None, max_epochs=5)


def test_repeated_prompt_shares_a_trajectory_in_openrlhf_logs_but_not_in_ours(tmp_path):
    prompts = [{"id": i, "prompt": "same question" if i in "xy" else f"prompt {i}", "answer": "1", "source": "t"}
               for i in "xyab"]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    folder = tmp_path / "theirs"
    folder.mkdir()
    for k, rewards in enumerate([[-1, -1, -1, 1], [1, -1, 1, 1], [1, 1, 1, 1]]):  # x and y sampled under one text
        samples = [{"prompt": "same question", "reward": x} for x in rewards]
        samples += [{"prompt": "prompt a", "reward": 1}, {"prompt": "prompt b", "reward": -1}]
        (folder / f"step_{k + 1}.json").write_text(json.dumps(samples))
    summary = lim.main(["--rollouts", str(folder), "--steps-per-epoch", "1", "--threshold", "0.5", "--no-plots",
                        "--prompts", str(tmp_path / "prompts.json"), "--out", str(tmp_path / "sel.json")])
    selected = [r["id"] for r in json.loads((tmp_path / "sel.json").read_text())]
    assert summary["problems_read"] == 3 and selected == ["x", "y"]  # both rows of the shared prompt, together


def test_cli_on_our_logs_writes_selection_scores_figures_and_summary(tmp_path):
    write_ours(tmp_path / "run" / "rollouts", RUN)
    prompts = [{"id": i, "prompt": f"prompt {i}", "answer": "1", "source": "t"} for i in "abcdz"]
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    out = tmp_path / "sel" / "limr.json"
    summary = lim.main(["--rollouts", str(tmp_path / "run" / "rollouts"), "--prompts", str(tmp_path / "p.json"),
                        "--threshold", "0.3", "--out", str(out)])
    s = dict(zip("abcd", lim_scores(ACC)[0]))
    assert [r["id"] for r in json.loads(out.read_text())] == [k for k in "abcd" if s[k] >= 0.3]
    scores = json.loads((tmp_path / "sel" / "limr_scores.json").read_text())
    assert {r["id"]: r["score"] for r in scores} == pytest.approx(s, abs=1e-6)
    assert set(scores[0]) == {"id", "prompt", "score"}
    assert all(Path(f).stat().st_size > 1000 for f in summary["figures"])
    assert summary["problems_read"] == 4 and summary["with_full_trajectory"] == 4
    assert json.loads((tmp_path / "sel" / "limr_summary.json").read_text())["selected"] == summary["selected"]


def test_rand_baseline_is_seeded_and_the_size_of_lim(tmp_path):
    args = ["--scores", str(SHARED / "lim_scores.json"), "--prompts", "math8k", "--baseline", "rand", "--no-plots"]
    a = lim.main(args + ["--out", str(tmp_path / "a.json")])
    lim.main(args + ["--out", str(tmp_path / "b.json"), "--seed", "0"])
    c = lim.main(args + ["--out", str(tmp_path / "c.json"), "--seed", "1", "--size", "100"])
    assert a["selected"] == 1389 and c["selected"] == 100
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    rand = json.loads((tmp_path / "a.json").read_text())
    limr_ids = {r["id"] for r in json.loads((SHARED / "limr.json").read_text())}
    assert len({r["id"] for r in rand} - limr_ids) > 1000  # a random draw, not the LIM selection


def test_published_scores_give_the_published_1389(tmp_path):
    lim.main(["--scores", str(SHARED / "lim_scores.json"), "--prompts", str(SHARED / "math8k.json"),
              "--threshold", "0.6", "--out", str(tmp_path / "x.json")])
    ours = json.loads((tmp_path / "x.json").read_text())
    published = json.loads((SHARED / "limr.json").read_text())
    assert [r["id"] for r in ours] == [r["id"] for r in published]


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(data.LimrError, match="no such folder"):
        lim.main(["--rollouts", str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.LimrError, match="no step_N"):
        lim.main(["--rollouts", str(tmp_path / "empty")])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "step_000001.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(data.LimrError, match="step_000001.jsonl: not a valid limr rollout log"):
        lim.main(["--rollouts", str(tmp_path / "bad"), "--prompts", "toy"])
    (tmp_path / "scores.json").write_text('[{"id": "a", "score": 0.7}, {"id": "b", "score": "high"}]')
    with pytest.raises(data.LimrError, match="scores.json: row 2: the score must be a number"):
        lim.main(["--scores", str(tmp_path / "scores.json"), "--prompts", "toy"])
    for flag in ("--size", "--max-epochs", "--steps-per-epoch"):  # 0 or less: refused, not read as "unset"
        with pytest.raises(SystemExit, match="2"):
            lim.parse_args(["--baseline", "rand", flag, "0"])


def test_band_bounds_and_short_selections_are_one_line(tmp_path, capsys):
    write_ours(tmp_path / "run" / "rollouts", RUN)
    prompts = [{"id": i, "prompt": f"prompt {i}", "answer": "1", "source": "t"} for i in "abcd"]
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    common = ["--rollouts", str(tmp_path / "run" / "rollouts"), "--prompts", str(tmp_path / "p.json"), "--no-plots"]
    for bad in (["--low", "0.9", "--high", "0.1"], ["--low", "-0.1"], ["--high", "1.5"]):  # was numpy's IndexError
        with pytest.raises(SystemExit, match="2"):
            lim.main([*common, "--method", "band", *bad])
        assert "--low" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # a scores file has no trajectories to compare (was a KeyError)
        lim.main(["--scores", str(tmp_path / "s.json"), "--compare-methods"])
    assert "--compare-methods" in capsys.readouterr().err
    out = tmp_path / "big.json"
    summary = lim.main([*common, "--method", "variance", "--size", "100000", "--out", str(out)])
    assert summary["selected"] == 4 and summary["note"] == "--size 100000: only 4 could be selected"
    assert "only 4 could be selected" in capsys.readouterr().err and len(json.loads(out.read_text())) == 4
    summary = lim.main([*common, "--threshold", "5", "--out", str(tmp_path / "none.json")])
    assert summary["selected"] == 0 and "lower --threshold" in summary["note"]
    summary = lim.main([*common, "--method", "band", "--low", "0.99", "--high", "1", "--size", "3",
                        "--out", str(tmp_path / "band.json")])
    assert summary["selected"] == 1 and summary["note"] == "--size 3: only 1 could be selected"  # d alone: 1.0


# ----------------------------------------------------------------------------- the methods that followed LIM

HAND = np.array([[0, 0.5, 1], [0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]])


def test_each_method_by_hand():
    np.testing.assert_allclose(lim.variance_scores(HAND), [(1 / 6) ** 0.5, 0, 0, 0])  # population std
    np.testing.assert_allclose(lim.learnability_scores(HAND), [1 / 12, 0, 0, 0.25])  # mean of p(1 - p)
    np.testing.assert_allclose(lim.informative_scores(HAND), [1 / 3, 0, 0, 1])  # epochs neither all right nor wrong
    np.testing.assert_allclose(lim.band_scores(HAND, 0.2, 0.8), [-np.inf, -np.inf, -np.inf, 0])  # first epoch only
    np.testing.assert_allclose(lim.band_scores(np.array([[0.3, 1], [0.6, 0]]), 0.2, 0.8), [-0.2, -0.1])


def test_top_size_breaks_ties_by_id_and_keeps_file_order():
    records = [{"id": i, "prompt": f"p {i}", "answer": "1", "source": "t"} for i in "dcba"]
    scores = dict(zip("abcd", lim.variance_scores(HAND)))  # a: 0.41, then b, c, d tied at 0
    assert [r["id"] for r in lim.select_top(records, scores, 2, "id")] == ["b", "a"]  # file order, tie to "b"
    assert lim.select_top(records, {"a": 1.0, "b": -np.inf}, 2, "id") == [records[3]]  # out of band: never

def test_passrate_puts_problems_sometimes_solved_first_and_breaks_ties_by_id(tmp_path):
    """A screen's pass rates p over 4 samples: p (1 - p) ranks b, d (p = 1/2) before c, f (1/4 and 3/4) before a and
    e (never or always solved: no gradient), each tie by id, whatever the order of the file."""
    screen = {"e": [[1, 1, 1, 1]], "a": [[-0.5] * 4], "f": [[1, 1, 1, -1]], "d": [[1, -0.5, 1, -0.5]],
              "c": [[1, -0.5, -0.5, -0.5]], "b": [[1, 1, -0.5, -0.5]]}
    write_ours(tmp_path / "screen", screen)
    prompts = [{"id": i, "prompt": f"prompt {i}", "answer": "1", "source": "t"} for i in screen]
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    for size, expected in ((2, "bd"), (3, "bcd"), (4, "bcdf"), (5, "abcdf"), (6, "abcdef")):
        out = tmp_path / f"k{size}.json"
        lim.main(["--rollouts", str(tmp_path / "screen"), "--prompts", str(tmp_path / "p.json"), "--method",
                  "passrate", "--size", str(size), "--out", str(out), "--no-plots"])
        chosen = [r["id"] for r in json.loads(out.read_text())]
        assert sorted(chosen) == list(expected) and chosen == [i for i in screen if i in expected]  # file order



RUN_WITH_GAPS = {**RUN, "gap": [[], [1, 1], [1, -1]], "end": [[1, 1], [1, 1], []], "long": [[], [], [1, 1]]}


@pytest.mark.parametrize("fmt", ["limr", "openrlhf"])
@pytest.mark.parametrize("method", ["lim", "variance", "learnability", "informative", "band", "linear", "rand"])
def test_cli_every_method_on_both_logs(tmp_path, fmt, method):
    (write_ours if fmt == "limr" else write_openrlhf)(tmp_path / "r", RUN_WITH_GAPS, 1)
    prompts = [{"id": i, "prompt": f"prompt {i}", "answer": "1", "source": "t"} for i in RUN_WITH_GAPS]
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    out = tmp_path / f"{method}.json"
    summary = lim.main(["--rollouts", str(tmp_path / "r"), "--prompts", str(tmp_path / "p.json"), "--method", method,
                        "--size", "2", "--steps-per-epoch", "1", "--out", str(out), "--no-plots"])
    selected = [r["id"] for r in json.loads(out.read_text())]
    scores = json.loads((tmp_path / f"{method}_scores.json").read_text())
    assert summary["left_out"] == 2  # "end" and "long" have no full trajectory
    assert {r["prompt"] for r in scores} == {f"prompt {i}" for i in RUN_WITH_GAPS if i not in ("end", "long")}
    if method != "rand":  # the two best by this method's score, ties by id (band: only those in the band)
        key = "id" if fmt == "limr" else "prompt"
        best = sorted((r for r in scores if r["score"] is not None), key=lambda r: (-r["score"], str(r[key])))[:2]
        assert sorted(selected) == sorted(r["prompt"].removeprefix("prompt ") for r in best)


def test_size_defaults_to_lims_and_compare_methods(tmp_path):
    write_ours(tmp_path / "run" / "rollouts", RUN_WITH_GAPS)
    prompts = [{"id": i, "prompt": f"prompt {i}", "answer": "1", "source": "t"} for i in RUN_WITH_GAPS]
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    base = ["--rollouts", str(tmp_path / "run" / "rollouts"), "--prompts", str(tmp_path / "p.json")]
    n_lim = lim.main(base + ["--no-plots"])["selected"]
    assert lim.main(base + ["--method", "variance", "--no-plots"])["selected"] == n_lim
    result = lim.main(base + ["--compare-methods"])
    folder = tmp_path / "run" / "lim"
    assert result["methods"]["lim"]["jaccard_with_lim"] == 1.0
    assert all(v["selected"] == n_lim for v in result["methods"].values())
    assert (folder / "compare_methods.png").stat().st_size > 1000 and "| variance |" in (
        folder / "compare_methods.md").read_text()


# ------------------------------------------------------------------------- other engines' logs and datasets

def write_verl(folder: Path, run: dict[str, list[list[float]]], steps_per_epoch: int = 2) -> None:
    """verl's trainer.rollout_data_dir dump (verl v0.6.0, verl/trainer/ppo/ray_trainer.py, _dump_generations): one
    {step}.jsonl per training step from 1, one line per response with input (the templated prompt, special tokens
    dropped), output, gts, score, step, and every key our reward's verl entry point returns (score, acc, id)."""
    folder.mkdir(parents=True)
    for k in range(len(next(iter(run.values())))):
        for j in range(steps_per_epoch):
            lines = [{"input": f"system\nPlease reason step by step.\nuser\nprompt {i}\nassistant\n", "output": "...",
                      "gts": "1", "score": x, "step": k * steps_per_epoch + j + 1, "acc": x == 1, "id": i}
                     for n, i in enumerate(run) if n % steps_per_epoch == j for x in run[i][k]]
            (folder / f"{k * steps_per_epoch + j + 1}.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    (folder / "0.jsonl").write_text(json.dumps({"input": "validation before training", "score": 1, "step": 0}))


def write_trl(folder: Path, run: dict[str, list[list[float]]], steps_per_epoch: int = 2, with_id: bool = True):
    """TRL's GRPOTrainer(log_completions=True, logging_steps=1) files (trl v1.9, trl/trainer/grpo_trainer.py,
    log()): <output_dir>/completions/completions_{step:05d}.parquet with step, prompt (templated text),
    completion, one column per reward function, the columns reward functions add with log_extra, advantage."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "completions").mkdir(parents=True)
    for k in range(len(next(iter(run.values())))):
        for j in range(steps_per_epoch):
            step = k * steps_per_epoch + j + 1
            rows = [{"step": step, "prompt": f"<|im_start|>user\nprompt {i}<|im_end|>\n<|im_start|>assistant\n",
                     "completion": "...", "trl_reward": float(x), **({"id": i} if with_id else {}), "advantage": 0.0}
                    for n, i in enumerate(run) if n % steps_per_epoch == j for x in run[i][k]]
            pq.write_table(pa.Table.from_pylist(rows), folder / "completions" / f"completions_{step:05d}.parquet")


@pytest.mark.parametrize("engine", ["verl", "trl"])
def test_engine_logs_give_the_scores_and_selection_of_our_own_log(tmp_path, engine):
    prompts = [{"id": i, "prompt": f"prompt {i}", "answer": "1", "source": "t"} for i in RUN]
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    write_ours(tmp_path / "ours", RUN, steps_per_epoch=2)
    (write_verl if engine == "verl" else write_trl)(tmp_path / engine, RUN, 2)
    common = ["--prompts", str(tmp_path / "p.json"), "--threshold", "0.3", "--no-plots"]
    lim.main(["--rollouts", str(tmp_path / "ours"), "--out", str(tmp_path / "a.json"), *common])
    lim.main(["--rollouts", str(tmp_path / engine), "--format", engine, "--steps-per-epoch", "2",
              "--out", str(tmp_path / "b.json"), *common])
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert (tmp_path / "a_scores.json").read_text() == (tmp_path / "b_scores.json").read_text()


def test_logs_without_an_id_fall_back_to_the_prompt_text(tmp_path):
    prompts = [{"id": i, "prompt": f"prompt {i}", "answer": "1", "source": "t"} for i in RUN]
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    write_trl(tmp_path / "trl", RUN, 2, with_id=False)
    lim.main(["--rollouts", str(tmp_path / "trl"), "--steps-per-epoch", "2", "--prompts", str(tmp_path / "p.json"),
              "--threshold", "0.3", "--out", str(tmp_path / "b.json"), "--no-plots"])
    s = dict(zip("abcd", lim_scores(ACC)[0]))
    assert [r["id"] for r in json.loads((tmp_path / "b.json").read_text())] == [k for k in "abcd" if s[k] >= 0.3]
    with pytest.raises(data.LimrError, match="pass --steps-per-epoch"):
        lim.main(["--rollouts", str(tmp_path / "trl"), "--prompts", str(tmp_path / "p.json"), "--no-plots"])


def test_export_for_verl_and_openrlhf(tmp_path):
    import pyarrow.parquet as pq

    out = lim.main(["--export", "verl", str(tmp_path / "train.parquet"), "--prompts", str(SHARED / "limr.json")])
    table = pq.read_table(out["out"])
    assert table.num_rows == 1389
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(table.column_names)
    row = table.slice(0, 1).to_pylist()[0]  # what verl's RLHFDataset reads: chat messages under prompt_key "prompt"
    assert [m["role"] for m in row["prompt"]] == ["system", "user"] and row["reward_model"]["style"] == "rule"
    first = json.loads((SHARED / "limr.json").read_text())[0]
    assert row["prompt"][1]["content"] == first["prompt"] and row["reward_model"]["ground_truth"] == first["answer"]
    assert row["extra_info"] == {"index": 0, "split": "train", "id": str(first["id"])}
    lim.main(["--export", "openrlhf", str(tmp_path / "train.jsonl"), "--prompts", str(SHARED / "limr.json")])
    line = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert line["label"] == first["answer"] and line["prompt"][-1]["content"] == first["prompt"]


# ---------------------------------------------------------------- malformed logs, ids of any type

def write_trl_step(folder: Path, rows: list[dict] | None = None, schema=None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "completions").mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows or [], schema=schema)
    pq.write_table(table, folder / "completions" / "completions_00001.parquet")
    return folder


TRL_ROW = {"step": 1, "prompt": "prompt a", "completion": "...", "trl_reward": 1.0, "id": "a", "advantage": 0.0}


@pytest.mark.parametrize("fmt, name, content, message", [
    ("limr", "step_000001.jsonl", "[1, 2]\n", "holds no list of records"),
    ("limr", "step_000001.jsonl", '{"id": "a", "prompt": "p", "epoch": 0, "rewards": [1]}\n"text"\n',
     "row 2: not a record but 'text'"),
    ("limr", "step_000001.jsonl", '{"id": "a", "prompt": "p", "epoch": 0, "rewards": "1,1"}\n',
     "row 1: 'rewards' must be a list of rewards, not '1,1'"),
    ("limr", "step_000001.jsonl", '{"id": "a", "prompt": "p", "epoch": 0, "rewards": ["1"]}\n',
     "row 1: 'rewards' must be a number, not '1'"),
    ("limr", "step_000001.jsonl", '{"id": "a", "prompt": "p", "epoch": "one", "rewards": [1]}\n',
     "row 1: the epoch must be a whole number >= 0, not 'one'"),
    ("limr", "step_000001.jsonl", '{"id": ["a"], "prompt": "p", "epoch": 0, "rewards": [1]}\n',
     r"row 1: an id must be text or a whole number, not \['a'\]"),
    ("limr", "step_000001.jsonl", '{"id": "a", "prompt": {"text": "p"}, "epoch": 0, "rewards": [1]}\n',
     "row 1: a prompt must be text or chat messages with a user turn"),
    ("limr", "step_000001.jsonl", '{"id": "a", "prompt": "p", "epoch": 0, "rewards": [1]\n', "JSONDecodeError"),
    ("openrlhf", "step_1.json", '{"prompt": "p", "reward": 1}', "holds no list of records"),
    ("openrlhf", "step_1.json", '[]', "holds no list of records"),
    ("openrlhf", "step_1.json", '[{"prompt": [{"role": "system", "content": "s"}], "reward": 1}]',
     "row 1: a prompt must be text or chat messages with a user turn"),
    ("verl", "1.jsonl", '{"input": "p", "output": "o", "acc": true, "step": 1}\n', "row 1 has no field 'score'"),
    ("trl", "completions/completions_00001.parquet", "not parquet", "not a valid trl rollout log: .*ArrowInvalid"),
])
def test_malformed_logs_are_one_line_errors(tmp_path, fmt, name, content, message):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(content)
    with pytest.raises(data.LimrError, match=message) as e:
        lim.trajectories(tmp_path, 1, None, fmt)
    assert "\n" not in str(e.value) and f"not a valid {fmt} rollout log" in str(e.value)


@pytest.mark.parametrize("change, message", [
    ({}, "holds no list of records"),  # an empty parquet file: the columns, no rows
    ({"prompt": 5}, "row 1: a prompt must be text or chat messages"),
    ({"prompt": [{"role": "assistant", "content": "x"}]}, "row 1: a prompt must be text or chat messages"),
    ({"id": None}, "row 1: an id must be text or a whole number, not None"),
    ({"trl_reward": "1.0"}, "row 1: 'trl_reward' must be a number, not '1.0'"),
])
def test_malformed_trl_logs_are_one_line_errors(tmp_path, change, message):
    import pyarrow as pa

    rows = [{**TRL_ROW, **change}] if change else None
    schema = None if change else pa.Table.from_pylist([TRL_ROW]).schema
    with pytest.raises(data.LimrError, match=message) as e:
        lim.trajectories(write_trl_step(tmp_path, rows, schema), 1, None, "trl")
    assert "\n" not in str(e.value)


def test_trl_ids_of_any_type_and_ungraded_samples(tmp_path):
    # integer ids (a user's own log_extra), 5.0 from a pandas column with gaps, and a reward function's None (NaN)
    rows = [{**TRL_ROW, "id": 5, "trl_reward": 1.0}, {**TRL_ROW, "id": 5, "trl_reward": float("nan")},
            {**TRL_ROW, "id": 6.0, "trl_reward": -0.5}, {**TRL_ROW, "id": 6.0, "trl_reward": None}]
    keys, _, acc, _, by = lim.trajectories(write_trl_step(tmp_path, rows[:2]), 1, None, "trl")
    assert keys == ["5"] and acc.tolist() == [[1.0]] and by == "id"  # the NaN sample is not graded, not wrong
    keys, _, acc, _, _ = lim.trajectories(write_trl_step(tmp_path / "b", rows[2:]), 1, None, "trl")
    assert keys == ["6"] and acc.tolist() == [[0.0]]


def test_ids_of_prompt_and_scores_files_are_text(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps([{"id": 7, "prompt": "x", "answer": "1"}]))
    assert data.load_prompts(str(tmp_path / "p.json"))[0]["id"] == "7"
    (tmp_path / "p.json").write_text(json.dumps([{"id": [7], "prompt": "x", "answer": "1"}]))
    with pytest.raises(data.LimrError, match=r"row 1: the id must be text or a whole number, not \[7\]"):
        data.load_prompts(str(tmp_path / "p.json"))
    (tmp_path / "s.json").write_text(json.dumps([{"id": {"a": 1}, "score": 0.5}]))
    with pytest.raises(data.LimrError, match="s.json: an id must be text or a whole number"):
        lim.read_scores(tmp_path / "s.json")


# ------------------------------------------------------------------- logs the engines wrote (tests/fixtures/)
# benchmarks/engine_fixtures.py: real TRL 1.16 runs of the demo model (plain and chat prompts) and verl 0.9's reward
# manager and dump writer on the chat run's samples; engines.json holds each run's prompt file and configuration.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ENGINES = json.loads((FIXTURES / "engines.json").read_text())


def prompt_file(tmp_path: Path, run: str) -> Path:
    (path := tmp_path / f"{run}.json").write_text(json.dumps(ENGINES["prompt_files"][run]))
    return path


def ours_from_trl(run: str, folder: Path) -> None:
    """Our own rollout log (limr.log_rollouts' layout) of a TRL run's trajectories, read with pyarrow alone."""
    import gzip

    import pyarrow.parquet as pq

    text = {str(r["id"]): r["prompt"] for r in ENGINES["prompt_files"][run]}
    folder.mkdir(parents=True)
    for path in sorted((FIXTURES / run / "completions").glob("completions_*.parquet")):
        rewards: dict[str, list[float]] = {}
        for row in pq.read_table(path).to_pylist():
            rewards.setdefault(row["id"], []).append(row["trl_reward"])
        step = int(path.stem.split("_")[1])
        lines = [json.dumps({"step": step, "epoch": (step - 1) // ENGINES["steps_per_epoch"], "id": i,
                             "prompt": text[i], "answer": "", "rewards": x}) for i, x in rewards.items()]
        (folder / f"step_{step:06d}.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def select_from(rollouts: Path, prompts: Path, out: Path, *flags: str) -> list:
    lim.main(["--rollouts", str(rollouts), "--prompts", str(prompts), "--threshold", "0.4", "--out", str(out),
              "--no-plots", *flags])
    return json.loads(out.read_text())


@pytest.mark.parametrize("run", ["trl_plain", "trl_chat"])
def test_a_real_trl_run_selects_as_our_own_log_of_it(tmp_path, run):
    prompts, trl = prompt_file(tmp_path, run), ["--format", "trl", "--steps-per-epoch", str(ENGINES["steps_per_epoch"])]
    ours_from_trl(run, tmp_path / "ours")
    ours = select_from(tmp_path / "ours", prompts, tmp_path / "ours.json")
    assert 0 < len(ours) < ENGINES["prompts"]  # a selection that could differ
    assert select_from(FIXTURES / run, prompts, tmp_path / "trl.json", *trl) == ours
    assert (tmp_path / "trl_scores.json").read_text() == (tmp_path / "ours_scores.json").read_text()
    # the key read as the problem's text: TRL's templated text (plain), the last user turn (chat)
    assert select_from(FIXTURES / run, prompts, tmp_path / "text.json", *trl, "--key", "prompt") == ours
    lim.main(["--scores", str(tmp_path / "text_scores.json"), "--prompts", str(prompts), "--threshold", "0.4",
              "--out", str(tmp_path / "again.json")])  # its scores file, keyed by text, read back
    assert json.loads((tmp_path / "again.json").read_text()) == ours
    if run == "trl_chat":  # a user's prompt file with integer ids; TRL logs them as text (reward.trl_reward)
        assert all(isinstance(r["id"], int) for r in json.loads(prompts.read_text()))
        assert [r["id"] for r in ours] == [str(r["id"]) for r in ours]


def test_verls_dump_of_the_chat_runs_samples_selects_as_trl(tmp_path):
    prompts, spe = prompt_file(tmp_path, "trl_chat"), str(ENGINES["steps_per_epoch"])
    trl = select_from(FIXTURES / "trl_chat", prompts, tmp_path / "trl.json", "--steps-per-epoch", spe)
    assert select_from(FIXTURES / "verl", prompts, tmp_path / "verl.json", "--steps-per-epoch", spe) == trl
    assert (tmp_path / "trl_scores.json").read_text() == (tmp_path / "verl_scores.json").read_text()


def test_keys_that_match_few_problems_are_refused_in_one_line(tmp_path):
    spe = str(ENGINES["steps_per_epoch"])
    with pytest.raises(data.LimrError, match=r"--prompts toy: 0 of its 64 problems match the 8 scored ones by id "
                                             r"\(the file has 'toy-train-0', the log '4'\).*--key"):
        select_from(FIXTURES / "trl_chat", "toy", tmp_path / "x.json", "--steps-per-epoch", spe)
    select_from(FIXTURES / "trl_chat", "toy", tmp_path / "x.json", "--steps-per-epoch", spe, "--key", "prompt")
    half = ENGINES["prompt_files"]["trl_chat"][:3] + [{**r, "id": f"other-{r['id']}"}
                                                       for r in ENGINES["prompt_files"]["trl_chat"][3:]]
    (tmp_path / "half.json").write_text(json.dumps(half))  # 3 of 8 match: a mixed-up file, not a subset
    with pytest.raises(data.LimrError, match="3 of its 8 problems match"):
        select_from(FIXTURES / "trl_chat", tmp_path / "half.json", tmp_path / "x.json", "--steps-per-epoch", spe)
    with pytest.raises(data.LimrError, match=r"row 1 has no field 'uid' \(it has step, prompt, completion, "
                                             r"trl_reward, id, advantage; --key"):
        select_from(FIXTURES / "trl_chat", "toy", tmp_path / "x.json", "--steps-per-epoch", spe, "--key", "uid")
    (tmp_path / "scores.json").write_text(json.dumps([{"id": 1, "score": 0.9}, {"id": 2, "score": 0.1}]))
    with pytest.raises(data.LimrError, match="0 of its 64 problems match the 2 scored"):
        lim.main(["--scores", str(tmp_path / "scores.json"), "--prompts", "toy", "--out", str(tmp_path / "x.json")])


def test_the_cli_says_one_line_where_it_crashed_on_a_chat_log(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "lim.py", "--rollouts", str(FIXTURES / "trl_chat"), "--format", "trl",
                           "--steps-per-epoch", "2", "--key", "id", "--prompts", "toy", "--out",
                           str(tmp_path / "x.json")], capture_output=True, text=True, cwd=Path(lim.__file__).parent)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("lim.py: --prompts toy")
