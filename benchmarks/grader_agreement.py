"""How reward.is_equivalent agrees with other projects' graders, before (HEAD) and after (working tree).

1. The assembled suite, tests/grader_cases.jsonl: answer pairs from 11 projects' grader tests (Math-Verify, NeMo-Skills,
   MARIO_EVAL, inspect_ai, ...), our hand-made MATH-style pairs and issue #13's known failures. Each row holds our
   verdict (`equal`); where we chose between projects that disagree, `source_equal` holds the source's own verdict.
   Agreement and false accepts are reported per source project and overall, against the source's verdict and ours.
2. The issues' own pairs (rows whose source names issue #13's known failures or issue #23's adversarial classes),
   graded by the old and the new is_equivalent.
The old one is `git show BASE:reward.py` (BASE: --base, HEAD by default) run in a subprocess (it must not share
math-verify with the new one). Writes reference/grader_agreement.json.
Run: .venv/bin/python benchmarks/grader_agreement.py [--base REV]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import reward  # noqa: E402

GRADE = """
import json, logging, sys
sys.path.insert(0, sys.argv[1])
logging.disable(logging.CRITICAL)
import reward
out = []
for pred, gold in json.load(sys.stdin):
    try:
        out.append(bool(reward.is_equivalent(pred, gold)))
    except Exception:
        out.append(False)
print(json.dumps(out))
"""


def grade_with_base(pairs: list[tuple[str, str]], base: str) -> list[bool]:
    """Verdicts of reward.py as committed at `base`, in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        old = subprocess.run(["git", "show", f"{base}:reward.py"], cwd=ROOT, check=True, capture_output=True, text=True)
        (Path(tmp) / "reward.py").write_text(old.stdout)
        run = subprocess.run([sys.executable, "-c", GRADE, tmp], input=json.dumps(pairs), capture_output=True,
                             text=True, check=True)
    return json.loads(run.stdout)


def project(source: str) -> str:
    """`huggingface/Math-Verify/tests/test_all.py:...` -> `huggingface/Math-Verify`; other labels stay whole."""
    parts = source.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else source


def score(rows: list[dict], verdicts: list[bool], key: str) -> dict:
    """Agreement with rows[i][key] (a verdict), and the false accepts and false rejects against it."""
    fa = [r for r, v in zip(rows, verdicts) if v and not r[key]]
    fr = [r for r, v in zip(rows, verdicts) if not v and r[key]]
    n = len(rows)
    return {"cases": n, "agree": n - len(fa) - len(fr), "agreement": round((n - len(fa) - len(fr)) / max(n, 1), 4),
            "false_accepts": len(fa), "false_rejects": len(fr),
            "false_accept_pairs": [[r["pred"], r["gold"], r["source"]] for r in fa]}


def report(rows: list[dict], verdicts: list[bool]) -> dict:
    by_project = defaultdict(list)
    for i, r in enumerate(rows):
        for p in dict.fromkeys(project(s.strip()) for s in r["source"].split(";")):
            by_project[p].append(i)
    peers = [i for i, r in enumerate(rows) if not r["source"].startswith("limr") and not r.get("disputed")]
    out = {"overall": {"vs_source": score(rows, verdicts, "source_verdict"), "vs_ours": score(rows, verdicts, "equal")},
           "undisputed_peer_cases_vs_source": score([rows[i] for i in peers], [verdicts[i] for i in peers],
                                                    "source_verdict"),
           "per_project": {}}
    for p, idx in sorted(by_project.items(), key=lambda kv: -len(kv[1])):
        sub, v = [rows[i] for i in idx], [verdicts[i] for i in idx]
        s = score(sub, v, "equal" if p.startswith("limr") else "source_verdict")  # a limr row's source verdict is ours
        o = score(sub, v, "equal")
        out["per_project"][p] = {"cases": len(sub), "agree_vs_source": s["agree"],
                                 "false_accepts_vs_source": s["false_accepts"], "agree_vs_ours": o["agree"],
                                 "false_accepts_vs_ours": o["false_accepts"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="HEAD", help="the commit whose reward.py is 'old'")
    base = ap.parse_args().base
    rows = [json.loads(line) for line in (ROOT / "tests/grader_cases.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in rows:
        r["source_verdict"] = r.get("source_equal", r["equal"])
    pairs = [(r["pred"], r["gold"]) for r in rows]
    new = [reward.is_equivalent(p, g) for p, g in pairs]
    old = grade_with_base(pairs, base)
    results = {
        "base": subprocess.run(["git", "rev-parse", "--short", base], cwd=ROOT, check=True, capture_output=True,
                               text=True).stdout.strip(),
        "suite": {"cases": len(rows), "chosen": sum(bool(r.get("chosen")) for r in rows),
                  "known_misses": sum(bool(r.get("miss")) for r in rows),
                  "new": report(rows, new), "old": report(rows, old)},
    }
    for issue in ("issue #13", "issue #23"):
        tricky = [i for i, r in enumerate(rows) if issue in r["source"]]
        t_rows = [rows[i] for i in tricky]
        results[issue.replace(" #", "_") + "_pairs"] = {
            "cases": len(tricky),
            "new": score(t_rows, [new[i] for i in tricky], "equal"),
            "old": score(t_rows, [old[i] for i in tricky], "equal"),
            "pairs": [{"pred": rows[i]["pred"], "gold": rows[i]["gold"], "equal": rows[i]["equal"], "old": old[i],
                       "new": new[i]} for i in tricky],
        }
    for name in ("new", "old"):
        u = results["suite"][name]["undisputed_peer_cases_vs_source"]
        print(f"undisputed peer cases, {name}: {u['agree']}/{u['cases']} agree, {u['false_accepts']} false accepts")
        o = results["suite"][name]["overall"]
        print(f"suite, {name}: {o['vs_source']['agree']}/{o['vs_source']['cases']} agree with the sources "
              f"({o['vs_source']['false_accepts']} false accepts), {o['vs_ours']['agree']}/{o['vs_ours']['cases']} "
              f"with our verdicts ({o['vs_ours']['false_accepts']} false accepts)")
        for issue in ("issue_13", "issue_23"):
            t = results[issue + "_pairs"][name]
            print(f"{issue} pairs, {name}: {t['agree']}/{t['cases']} right, {t['false_accepts']} false accepts, "
                  f"{t['false_rejects']} false rejects")
    for p, s in results["suite"]["new"]["per_project"].items():
        print(f"  {p}: {s}")
    (ROOT / "reference").mkdir(exist_ok=True)
    (ROOT / "reference/grader_agreement.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
