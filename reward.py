"""The paper's rule reward (LIMR §2.4): +1 correct, -0.5 wrong but well formatted, -1 format error.

Upstream (GAIR-NLP/LIMR, openrlhf/cli/serve_rm.py) applies these rules in this order, and so do we:
  1. truncated (no end-of-sequence token)         -> -1
  2. no `\\boxed`, or five or more                  -> -1
  3. garbled: > 30% of characters outside a set    -> -1
  4. degenerate repetition                         -> -1
  5. last boxed answer equivalent to the gold      -> +1, else -0.5
What we deliberately fix:
  - equivalence: upstream calls math-verify on bare strings (`parse("\\frac{1}{2}")` finds nothing, so ~10% of
    MATH golds can never be graded correct, and `2\\sqrt{2}` "equals" `2\\sqrt{3}` because both parse as `2`).
    We wrap both sides in `$...$` so they are parsed as LaTeX, gold first, and never use the eval-based parser.
  - extraction: upstream's regex handles three levels of nested braces; we match braces to any depth.
  - repetition: upstream's `(.{5,}?)\\1{4,}` is quadratic (seconds on long responses) and ignores loops that span
    lines (`.` skips newlines). We find the same thing, a block of >= 5 characters repeated >= 5 times back to
    back, newlines included, with a scan that is linear in practice.
  - timeouts: upstream's signal.alarm stops working once math-verify (which uses its own alarm) has run. We grade in
    worker processes and kill any that overruns a wall-clock timeout; a boxed item that times out scores -0.5.
"""

import atexit
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from decimal import Decimal, InvalidOperation
from functools import lru_cache

CORRECT, WRONG, FORMAT_ERROR = 1.0, -0.5, -1.0
MAX_BOXED = 5  # upstream: `response.count("\\boxed") >= 5` is a format error
GARBLED_RATIO = 0.3  # upstream: more than 30% of characters outside VALID_CHARS is garbled text
VALID_CHARS = re.compile(r"[a-zA-Z0-9\s\.,!?\"'\(\)\{\}\[\]_\-+=<>/@#$%^&*\\|:;~`\u2200-\u22FF]")  # upstream's set
MIN_PERIOD, MIN_COPIES = 5, 5  # upstream: `(.{5,}?)\1{4,}`, a block of >= 5 chars and 4 more copies of it
TIMEOUT_S = 5.0  # hard wall-clock limit per graded item
MV_TIMEOUT_S = 2  # math-verify's own (signal-based) limit inside a worker, so most slow items end without a kill


# ---------------------------------------------------------------------------------------------- format rules

def clean(text: str) -> str:
    """Drop NUL bytes and lone surrogates, which break tokenizers, JSON and the LaTeX parser."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}`, any depth of nested braces; None if absent or unclosed."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0 or text[start:i].strip() not in ("\\boxed", "\\fbox"):
        return None
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "\\":  # `\{` and `\}` are literal braces, not groups
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
        j += 1
    return None


def has_repetition(text: str, min_period: int = MIN_PERIOD, copies: int = MIN_COPIES) -> bool:
    """True if some block of >= min_period characters occurs `copies` times back to back.

    Periods are searched in doubling bands [L, 2L). A run of period p in the band covers an anchor a (a multiple of
    L) inside its first copy, so the L characters at a reappear at a + p: one `str.find` per anchor proposes p,
    one slice comparison confirms it. Python-level work is O(n / min_period); the C-level finds are O(n) per band.
    """
    n, L = len(text), min_period
    while copies * L <= n:
        for a in range(0, n - (copies - 1) * L, L):
            block = text[a : a + L]
            q = text.find(block, a + L, a + 3 * L)
            while 0 <= q < a + 2 * L:
                p = q - a
                if text[a : a + (copies - 2) * p] == text[a + p : a + (copies - 1) * p] and (
                    _periodic_span(text, a, p) >= copies * p
                ):
                    return True
                q = text.find(block, q + 1, a + 3 * L)
        L *= 2
    return False


def _periodic_span(text: str, a: int, p: int) -> int:
    """Length of the maximal stretch around position a where text[j] == text[j + p] holds, plus p."""
    left = a
    while left > 0 and text[left - 1] == text[left - 1 + p]:
        left -= 1
    right = a
    while right + p < len(text) and text[right] == text[right + p]:
        right += 1
    return right - left + p


def is_garbled(text: str) -> bool:
    return bool(text) and len(VALID_CHARS.sub("", text)) / len(text) > GARBLED_RATIO


def format_error(response: str, truncated: bool = False) -> str | None:
    """Why a response breaks the format rules (upstream's order), or None if it is well formatted."""
    if truncated:
        return "truncated"
    n_boxed = response.count("\\boxed") + response.count("\\fbox")
    if n_boxed == 0:
        return "no boxed answer"
    if n_boxed >= MAX_BOXED:
        return f"{n_boxed} boxed answers"
    if is_garbled(response):
        return "garbled"
    if has_repetition(response):
        return "repetition"
    if extract_boxed(response) is None:
        return "unclosed boxed answer"
    return None


# --------------------------------------------------------------------------------------------- equivalence

_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)")
_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(,\d{3})+(\.\d+)?")  # a whole answer like 1,234,567.5


def _normalize(s: str) -> str:
    """Cheap, meaning-preserving rewrites so that exact and numeric comparisons catch the common cases."""
    s = re.sub(r"\s+", "", s).strip("$").rstrip(".")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "")
    return s.replace(",", "") if _THOUSANDS.fullmatch(s) else s


def _as_number(s: str) -> Decimal | None:
    return Decimal(s) if _NUMBER.fullmatch(s) else None


@lru_cache(maxsize=8192)
def _parse(latex: str) -> list:
    """math-verify's parse of `latex` read as LaTeX. Only the LaTeX extractor: the expression one `eval`s text."""
    from math_verify import LatexExtractionConfig, parse

    return parse(f"${latex}$", extraction_config=[LatexExtractionConfig()], parsing_timeout=MV_TIMEOUT_S)


@lru_cache(maxsize=8192)
def is_equivalent(pred: str, gold: str) -> bool:
    """True if the predicted answer means the same as the gold one (math-verify on LaTeX, gold first)."""
    from math_verify import verify

    p, g = _normalize(clean(pred)), _normalize(clean(gold))
    if not p or not g:
        return False
    if p == g:
        return True
    try:
        pn, gn = _as_number(p), _as_number(g)
    except InvalidOperation:
        pn = gn = None
    if pn is not None and gn is not None:  # plain numbers (the usual case): exact decimal comparison, no sympy
        return pn == gn
    gold_parsed, pred_parsed = _parse(g), _parse(p)
    if not gold_parsed or not pred_parsed:
        return False
    try:
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=MV_TIMEOUT_S))
    except Exception:  # a sympy failure on hostile input means "not shown equal"
        return False


def unfinished_reward(response: str, truncated: bool) -> float:
    """The score of an item whose grading timed out or crashed: -0.5 if it has a boxed answer, else -1."""
    return WRONG if extract_boxed(clean(response)) is not None and not truncated else FORMAT_ERROR


def reward(response: str, answer: str, truncated: bool = False) -> float:
    """The paper's reward for one response: 1.0 correct, -0.5 boxed but wrong, -1.0 format error."""
    response = clean(response)
    if format_error(response, truncated):
        return FORMAT_ERROR
    return CORRECT if is_equivalent(extract_boxed(response), answer) else WRONG


# ------------------------------------------------------------------------------------ batch grading in workers
# Each worker is `python reward.py --serve`: it reads one JSON item per line and answers `[index, reward]`.
# The parent gives each worker one item at a time, so a worker that overruns TIMEOUT_S can be killed and replaced
# without losing anything else. Plain subprocesses, not multiprocessing: no fork of a process holding vLLM's
# threads, and no re-import of the caller's __main__ (limr.py would import torch in every worker).

_workers: list[subprocess.Popen] = []
atexit.register(lambda: close_workers())


def _start_workers(k: int) -> list[subprocess.Popen]:
    """k workers that have loaded math-verify (started together, then awaited): start-up, seconds on a busy CPU,
    must not eat an item's timeout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    new = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, encoding="utf-8", env=env) for _ in range(k)]
    for w in new:
        w.stdout.readline()  # "ready" (or "" if it died; its first item then sees EOF and replaces it)
    return new


def _kill(w: subprocess.Popen) -> None:
    w.kill()
    w.wait()
    for f in (w.stdin, w.stdout):
        try:
            f.close()
        except OSError:  # a dead worker's pipe may refuse the final flush
            pass


def close_workers() -> None:
    """Stop the grading workers (they also exit on their own when this process dies)."""
    while _workers:
        _kill(_workers.pop())


def rewards(
    responses: list[str],
    answers: list[str],
    truncated: list[bool] | None = None,
    workers: int | None = None,
    timeout: float = TIMEOUT_S,
) -> list[float]:
    """Grade a batch in worker processes, each item under a hard wall-clock timeout. Always returns."""
    if len(responses) != len(answers) or (truncated is not None and len(truncated) != len(responses)):
        raise ValueError("rewards(): responses, answers and truncated must have the same length")
    truncated = truncated or [False] * len(responses)
    workers = max(1, workers or min(os.cpu_count() or 1, 8))
    _workers.extend(_start_workers(workers - len(_workers)))
    pool = _workers[:workers]
    out: list[float | None] = [None] * len(responses)
    todo = list(range(len(responses)))[::-1]
    busy: dict[int, tuple[int, float]] = {}  # worker slot -> (item, deadline)
    while todo or busy:
        for slot in range(workers):
            if slot not in busy and todo:
                i = todo.pop()
                try:
                    pool[slot].stdin.write(json.dumps([i, responses[i], answers[i], bool(truncated[i])]) + "\n")
                    pool[slot].stdin.flush()
                    busy[slot] = (i, time.monotonic() + timeout)
                except (BrokenPipeError, OSError):  # the worker died between items: replace it, retry the item
                    todo.append(i)
                    pool[slot] = _replace(pool[slot])
        if not busy:
            continue
        wait = max(0.0, min(d for _, d in busy.values()) - time.monotonic())
        ready, _, _ = select.select([pool[s].stdout for s in busy], [], [], wait)
        for slot in list(busy):
            i, deadline = busy[slot]
            line = pool[slot].stdout.readline() if pool[slot].stdout in ready else None
            if line:
                out[i] = json.loads(line)[1]
                del busy[slot]
            elif line == "" or time.monotonic() > deadline:  # crashed (EOF) or hung: score it and replace the worker
                out[i] = unfinished_reward(responses[i], truncated[i])
                pool[slot] = _replace(pool[slot])
                del busy[slot]
    return out


def _replace(w: subprocess.Popen) -> subprocess.Popen:
    _kill(w)
    [new] = _start_workers(1)
    _workers[_workers.index(w)] = new
    return new


def _serve() -> None:
    # Ctrl-C reaches every process of the job: the trainer finishes its step, so its graders must finish theirs
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # its "Timeout during comparison" is our -0.5
    is_equivalent("x", "y")  # load math-verify and sympy now, then say so
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        i, response, answer, truncated = json.loads(line)
        try:
            r = reward(response, answer, truncated)
        except Exception:  # never let one item take the worker down; a crash would cost a restart
            r = unfinished_reward(response, truncated)
        sys.stdout.write(json.dumps([i, r]) + "\n")
        sys.stdout.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
