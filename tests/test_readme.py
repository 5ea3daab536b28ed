"""The README's reading order names functions that exist, and stays within the length it promises."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reading_order_exists_and_is_short():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Read the code"):]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| \d+ \| `([\w/.]+)` \| `(\w+)` \|", section, flags=re.M)
    assert len(rows) >= 15
    total = 0
    for file, name in rows:
        tree = ast.parse((ROOT / file).read_text())
        [node] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
        total += node.end_lineno - node.lineno + 1
    assert total <= 450, total


def test_no_import_cycles_and_figures_import_nothing_of_ours():
    ours = {p.stem for p in ROOT.glob("*.py")} | {"data"}
    graph = {}
    for p in [*ROOT.glob("*.py"), ROOT / "data" / "__init__.py"]:
        name = "data" if p.parent.name == "data" else p.stem
        imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(p.read_text()))
                    if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(ast.parse(p.read_text()))
                     if isinstance(n, ast.ImportFrom) and n.module}
        graph[name] = imported & ours - {name}
    assert graph["figures"] == set()

    def reach(start, node, seen):
        for nxt in graph.get(node, ()):
            assert nxt != start, f"import cycle through {start} and {node}"
            if nxt not in seen:
                seen.add(nxt)
                reach(start, nxt, seen)

    for module in graph:
        reach(module, module, set())


def test_no_core_function_longer_than_60_lines():
    long = []
    for file in ["limr.py", "lim.py", "evaluate.py", "reward.py", "data/__init__.py"]:
        for node in ast.walk(ast.parse((ROOT / file).read_text())):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{file}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
