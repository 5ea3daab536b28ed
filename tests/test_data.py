"""Loaders: the pinned upstream files, user files with bad rows, downloads with checksums, the toy task."""

import functools
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

import data
from data import LimrError, load_benchmark, load_prompts

SHARED = Path(os.environ["LIMR_DATA_DIR"])


def test_math8k_keeps_every_row_for_selection_and_drops_the_two_empty_answers_for_training():
    assert len(load_prompts("math8k", strict=False)) == 8523
    rows = load_prompts("math8k")
    assert len(rows) == 8521 and all(r["answer"].strip() for r in rows)
    assert set(rows[0]) == {"id", "prompt", "answer", "source"}


def test_limr_is_the_published_1389():
    ours = load_prompts("limr")
    published = json.loads((SHARED / "limr.json").read_text())
    assert len(ours) == 1389
    assert [r["id"] for r in ours] == [r["id"] for r in published]


@pytest.mark.parametrize("name, n", [("aime24", 30), ("amc23", 40), ("math500", 500)])
def test_benchmarks(name, n):
    rows = load_benchmark(name)
    assert len(rows) == n
    assert all(isinstance(r["answer"], str) and r["answer"] and r["question"] for r in rows)
    assert len({r["id"] for r in rows}) == n


def test_unknown_benchmark_names_the_choices():
    with pytest.raises(LimrError, match="unknown benchmark 'gsm8k'.*aime24"):
        load_benchmark("gsm8k")


def test_user_files_json_and_jsonl(tmp_path):
    rows = [{"id": "a", "prompt": "1+1?", "answer": "2", "source": "me"}, {"prompt": "2+2?", "answer": 4}]
    (tmp_path / "p.json").write_text(json.dumps(rows))
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    for f in ("p.json", "p.jsonl"):
        got = load_prompts(str(tmp_path / f))
        assert [r["answer"] for r in got] == ["2", "4"]  # a number answer is read as its text
        assert got[1]["id"] == "p-1" and got[1]["source"] == "p"  # optional fields filled in


@pytest.mark.parametrize("content, message", [
    ('[{"id": "a", "prompt": "x", "answer": "1"},\n {"id": "b", "prompt": "y", "answer": ', "invalid JSON at line 2"),
    ('{"id": "a", "prompt": "x", "answer": "1"}\n{"id": "b", "prompt": "y"\n', "line 2 is not valid JSON"),
    ('{"id": "a", "prompt": "x", "answer": "1"}\n{"id": "b", "answer": "2"}\n', "row 2 has no field 'prompt'"),
    ('{"id": "a", "prompt": "x", "answer": "1"}\n{"id": "b", "prompt": "y", "answer": " "}\n',
     "row 2 has an empty answer"),
    ('[1, 2]', "row 1 is not a JSON object"),
    ('{"id": "a", "prompt": "x", "answer": "1"}\n{"id": "a", "prompt": "y", "answer": "2"}\n',
     "rows 1 and 2 share the id 'a'"),
    ('{"id": "a", "prompt": "x", "answer": ["1", "2"]}\n', "row 1: the answer must be text or a number"),
])
def test_bad_files_name_file_and_row(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(LimrError, match=message) as e:
        load_prompts(str(path))
    assert str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(LimrError, match="no such file"):
        load_prompts(str(tmp_path / "nope.json"))


@pytest.fixture
def served(tmp_path):
    """A loopback HTTP server over a folder laid out like the upstream repository."""
    root = tmp_path / "upstream"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_is_verified_and_cached(served, tmp_path, monkeypatch):
    root, url = served
    (root / "eval/data").mkdir(parents=True)
    (root / "eval/data/aime24.jsonl").write_bytes((SHARED / "aime24.jsonl").read_bytes())
    monkeypatch.setattr(data, "UPSTREAM", url)
    monkeypatch.delenv("LIMR_DATA_DIR")
    monkeypatch.setenv("LIMR_CACHE", str(tmp_path / "cache"))
    assert len(load_benchmark("aime24")) == 30
    cached = tmp_path / "cache" / "aime24.jsonl"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == data.FILES["aime24.jsonl"][1]
    (root / "eval/data/aime24.jsonl").unlink()
    assert len(load_benchmark("aime24")) == 30  # from the cache, no second download


def test_corrupt_download_is_refused(served, tmp_path, monkeypatch):
    root, url = served
    (root / "eval/data").mkdir(parents=True)
    (root / "eval/data/amc23.jsonl").write_text('{"question": "tampered", "answer": "1"}\n')
    monkeypatch.setattr(data, "UPSTREAM", url)
    monkeypatch.delenv("LIMR_DATA_DIR")
    monkeypatch.setenv("LIMR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(LimrError, match="pinned sha256"):
        load_benchmark("amc23")
    assert not (tmp_path / "cache" / "amc23.jsonl").exists()


def test_failed_download_names_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "UPSTREAM", "http://127.0.0.1:9/")
    monkeypatch.delenv("LIMR_DATA_DIR")
    monkeypatch.setenv("LIMR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(LimrError, match=r"could not download http://127.0.0.1:9/eval/data/math500.jsonl.*LIMR_DATA_DIR"):
        load_benchmark("math500")


def test_toy_task_is_seeded_exact_and_split():
    train, test = data.toy_task("train"), data.toy_task("test")
    assert train == data.toy_task("train") and len(train) == 64 and len(test) == 400
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    for r in train + test:
        expr = r["prompt"].removeprefix("What is ").removesuffix("?")
        assert set(expr) <= set("0123456789+-*() ") and str(eval(expr)) == r["answer"]
    assert load_prompts("toy") == train and len(load_benchmark("toy")) == 400
    assert data.toy_task("train", seed=1) != train
